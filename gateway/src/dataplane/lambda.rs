//! LAMBDA target groups: the request becomes a VPC Lattice event (V1 or V2, per the group's
//! `lambdaEventStructureVersion`), the function is invoked through the Target registry, and its
//! answer (`statusCode`, `headers`, `body`, `isBase64Encoded`) becomes the HTTP response.
//! WASM target groups (a Trellis extension) pass the request to a `wasi:http` component as HTTP
//! and its response back ([`http_response`]); a preview-1 module in one gets the event.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Map, Value};
use trellis_core::model::{base64_decode, base64_encode, parse_query};

use super::proxy::text;
use super::route::Resolved;
use super::target_group::TargetGroupRuntime;
use super::Body;

/// Lattice's limit on a request body sent to a function, and on the function's answer.
pub(crate) const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// The event a function receives for `req`.
pub fn event(
    parts: &http::request::Parts,
    body: &[u8],
    resolved: &Resolved<'_>,
    tg: &TargetGroupRuntime,
    region: &str,
) -> Value {
    let (body_text, is_base64) = match std::str::from_utf8(body) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (base64_encode(body), true),
    };
    let query = parse_query(parts.uri.query());
    if tg.lambda_event_version == "V2" {
        let mut headers: Map<String, Value> = Map::new();
        for (k, v) in &parts.headers {
            let v = Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned());
            match headers.get_mut(k.as_str()) {
                Some(Value::Array(values)) => values.push(v),
                _ => {
                    headers.insert(k.as_str().to_string(), Value::Array(vec![v]));
                }
            }
        }
        let mut event = json!({
            "version": "2.0",
            "path": parts.uri.path(),
            "method": parts.method.as_str(),
            "headers": headers,
            "body": body_text,
            "isBase64Encoded": is_base64,
            "requestContext": {
                "serviceNetworkArn": resolved.service.network_arn.as_deref().unwrap_or(""),
                "serviceArn": resolved.service.arn,
                "targetGroupArn": tg.arn,
                "identity": {"type": "NONE"},
                "region": region,
                "timeEpoch": (std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or(0))
                .to_string(),
            },
        });
        if !query.is_empty() {
            event["queryStringParameters"] = query_map(&query);
        }
        event
    } else {
        let mut headers: Map<String, Value> = Map::new();
        for (k, v) in &parts.headers {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            // One value per name in V1: repeated headers are joined as HTTP allows.
            match headers.get_mut(k.as_str()) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(&v);
                }
                _ => {
                    headers.insert(k.as_str().to_string(), Value::String(v));
                }
            }
        }
        json!({
            "raw_path": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
            "method": parts.method.as_str(),
            "headers": headers,
            "query_string_parameters": query_map(&query),
            "body": body_text,
            "is_base64_encoded": is_base64,
        })
    }
}

/// Query parameters as a map; a repeated key keeps its values joined with commas.
fn query_map(query: &[(String, String)]) -> Value {
    let mut m: Map<String, Value> = Map::new();
    for (k, v) in query {
        match m.get_mut(k) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(v);
            }
            _ => {
                m.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    Value::Object(m)
}

/// Maps a function's answer to an HTTP response.
pub fn response(answer: &[u8]) -> Response<Body> {
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        return text(
            StatusCode::BAD_GATEWAY,
            "Bad Gateway: the function's answer is not JSON\n",
        );
    };
    let status = v["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let body = match &v["body"] {
        Value::String(s) if v["isBase64Encoded"] == true => base64_decode(s).unwrap_or_default(),
        Value::String(s) => s.clone().into_bytes(),
        Value::Null => Vec::new(),
        other => other.to_string().into_bytes(),
    };
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    if let Some(h) = v["headers"].as_object() {
        for (k, val) in h {
            let values: Vec<&Value> = match val {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for one in values {
                let text = match one {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(&text),
                ) {
                    resp.headers_mut().append(name, value);
                }
            }
        }
    }
    resp
}

/// A `wasi:http` component's response, as the data plane answers it.
pub fn http_response(answer: trellis_core::target::StreamingResponse) -> Response<Body> {
    let (mut parts, body) = answer.into_parts();
    // hyper frames the body again for the client's connection.
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts.headers.remove(http::header::CONNECTION);
    Response::from_parts(parts, body)
}

/// Reads the request body within Lattice's limit.
pub async fn read_body(
    req: Request<Body>,
) -> Result<(http::request::Parts, Bytes), Response<Body>> {
    let (parts, mut body) = req.into_parts();
    // Frame by frame rather than through `Limited`, whose boxed-error bound over this boxed
    // body makes the connection's future fail the `Send` check.
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "Bad Request: the body broke off\n",
            ));
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_PAYLOAD {
                return Err(text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Payload Too Large: a function target takes at most 6 MB\n",
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok((parts, buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_http() {
        let r = response(br#"{"statusCode": 201, "headers": {"x-a": "1", "x-b": ["2", "3"]}, "body": "aGk=", "isBase64Encoded": true}"#);
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["x-a"], "1");
        assert_eq!(r.headers().get_all("x-b").iter().count(), 2);
        let r = response(b"not json");
        assert_eq!(r.status(), 502);
    }
}
