//! The AWS-compatible API listener (`--api`). One port serves every service in its own
//! protocol: requests with `X-Amz-Target` go to the JSON 1.0/1.1 services (EventBridge, Step
//! Functions) by prefix, the others to the rest-json services (VPC Lattice, Lambda) by path.
//! Beside them: `GET /health`, `GET /metrics` (Prometheus), and Trellis's own
//! `POST /trellis/config` (what `trellis apply` sends). Any credentials are accepted for now.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use trellis_core::api::{JsonService, QueryService, RestService, StreamingOutput};
use trellis_core::model::HttpRequest;
use trellis_core::target::StreamingBody;
use trellis_core::ApiError;

use crate::controller::Controller;

/// Largest API request body accepted (Lambda zips are the largest legitimate ones).
const MAX_BODY: usize = 70 * 1024 * 1024;

pub struct Api {
    /// The Lattice controller: also answers `/metrics` and `/trellis/config`.
    pub lattice: Arc<Controller>,
    /// rest-json services, tried in order by method and path (Lattice first).
    pub rest: Vec<Arc<dyn RestService>>,
    /// JSON 1.0/1.1 services by `X-Amz-Target` prefix.
    pub json: Vec<Arc<dyn JsonService>>,
    /// Query-protocol services (STS, IAM) by action.
    pub query: Vec<Arc<dyn QueryService>>,
}

type Resp = Response<Full<Bytes>>;

/// What [`Api::handle`] answers: a whole document, or a streaming operation's answer.
enum Answer {
    Whole(Resp),
    Stream(Response<StreamingBody>),
}

/// A streaming operation's answer as an HTTP response.
fn streaming_response(out: StreamingOutput) -> Response<StreamingBody> {
    let mut r = Response::new(out.body);
    *r.status_mut() = StatusCode::from_u16(out.status).unwrap_or(StatusCode::OK);
    for (k, v) in out.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

// === impl Api ===

impl Api {
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let api = self.clone();
                    let svc = service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.answer(req).await) }
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                    tokio::spawn(graceful.watch(conn));
                }
                _ = shutdown.changed() => break,
            }
        }
        drop(listener);
        let _ = tokio::time::timeout(crate::dataplane::server::DRAIN, graceful.shutdown()).await;
    }

    /// Answers one request: most answers are whole documents; a streaming operation's body is
    /// written as it is produced.
    pub async fn answer(&self, req: Request<Incoming>) -> Response<StreamingBody> {
        match self.handle(req).await {
            Answer::Whole(r) => r.map(|full| full.map_err(|never| match never {}).boxed()),
            Answer::Stream(r) => r,
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Answer {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Answer::Whole(rest_error(&ApiError::new(
                    "RequestEntityTooLargeException",
                    413,
                    "request body too large",
                )))
            }
        };
        let path = parts.uri.path();
        match (parts.method.as_str(), path) {
            ("GET", "/health") => {
                return Answer::Whole(json(StatusCode::OK, br#"{"status":"ok"}"#.to_vec()))
            }
            ("GET", "/metrics") => {
                let mut text = self.lattice.dataplane.metrics.render();
                text.push_str(&crate::lattice::resource_association::render_metrics());
                for service in &self.json {
                    service.render_metrics(&mut text);
                }
                for service in &self.rest {
                    service.render_metrics(&mut text);
                }
                let mut r = Response::new(Full::new(Bytes::from(text)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                return Answer::Whole(r);
            }
            ("POST", "/trellis/config") => {
                return Answer::Whole(self.apply_config(&body, parts.uri.query()).await);
            }
            _ => {}
        }
        if let Some(target) = parts.headers.get("x-amz-target") {
            let target = target.to_str().unwrap_or_default().to_string();
            return Answer::Whole(self.json_call(&target, &body).await);
        }
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if parts.method == http::Method::POST && path == "/" && is_form {
            return Answer::Whole(self.query_call(&body).await);
        }
        let query = parts.uri.query();
        for service in &self.rest {
            let model = service.model();
            let Some((op, labels)) = model.route(parts.method.as_str(), path, query) else {
                continue;
            };
            let http_req = HttpRequest {
                method: parts.method.as_str(),
                path,
                query,
                headers: &parts.headers,
                body: &body,
            };
            let input = match model.rest_input(op, &labels, &http_req) {
                Ok(i) => i,
                Err(e) => return Answer::Whole(rest_error(&e)),
            };
            if service.streams(&op.name) {
                return match service.call_streaming(&op.name, input).await {
                    Ok(out) => Answer::Stream(streaming_response(out)),
                    Err(e) => Answer::Whole(rest_error(&e)),
                };
            }
            let answer = match service.call(&op.name, input).await {
                Ok(output) => {
                    let out = model.rest_output(op, output);
                    let mut r = Response::new(Full::new(Bytes::from(out.body)));
                    *r.status_mut() = StatusCode::from_u16(out.status).unwrap_or(StatusCode::OK);
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    for (k, v) in out.headers {
                        if let (Ok(k), Ok(v)) = (
                            http::HeaderName::from_bytes(k.as_bytes()),
                            HeaderValue::from_str(&v),
                        ) {
                            r.headers_mut().insert(k, v);
                        }
                    }
                    r
                }
                Err(e) => rest_error(&e),
            };
            return Answer::Whole(answer);
        }
        Answer::Whole(rest_error(&ApiError::unknown_operation(&format!(
            "{} {}",
            parts.method, path
        ))))
    }

    /// A query-protocol call: `Action=…&…` in a form body, answered in XML.
    async fn query_call(&self, body: &[u8]) -> Resp {
        let params = trellis_core::model::parse_query(Some(&String::from_utf8_lossy(body)));
        let action = params
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let Some(service) = self
            .query
            .iter()
            .find(|s| s.model().operation(&action).is_some())
        else {
            return xml_error(&ApiError::new(
                "InvalidAction",
                400,
                format!("could not find operation {action}"),
            ));
        };
        let request_id = trellis_core::id::new_id("req");
        match service.call(&action, params).await {
            Ok(result) => {
                let xml = format!(
                    "<{action}Response xmlns=\"{}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>",
                    service.xml_namespace()
                );
                let mut r = Response::new(Full::new(Bytes::from(xml)));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
                r
            }
            Err(e) => xml_error(&e),
        }
    }

    /// A JSON 1.0/1.1 call: `X-Amz-Target: Prefix.Operation`, input in the body.
    async fn json_call(&self, target: &str, body: &[u8]) -> Resp {
        let (prefix, op) = target.split_once('.').unwrap_or((target, ""));
        let Some(service) = self.json.iter().find(|s| s.target_prefix() == prefix) else {
            return json_error(
                &ApiError::new(
                    "UnknownOperationException",
                    400,
                    format!("no service answers X-Amz-Target {target}"),
                ),
                "1.1",
            );
        };
        let version = service.json_version().to_string();
        let input: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
            serde_json::json!({})
        } else {
            match serde_json::from_slice(body) {
                Ok(v @ serde_json::Value::Object(_)) => v,
                Ok(_) | Err(_) => {
                    return json_error(
                        &ApiError::new(
                            "SerializationException",
                            400,
                            "request body is not a JSON object",
                        ),
                        &version,
                    )
                }
            }
        };
        if let Some(model) = service.model() {
            match model.operation(op) {
                None => {
                    return json_error(
                        &ApiError::new(
                            "UnknownOperationException",
                            400,
                            format!("unknown operation {target}"),
                        ),
                        &version,
                    )
                }
                Some(operation) => {
                    if let Err(e) = model.validate_input(operation, &input) {
                        return json_error(&e, &version);
                    }
                }
            }
        }
        match service.call(op, input).await {
            Ok(mut out) => {
                if let Some(o) = out.as_object_mut() {
                    trellis_core::model::strip_nulls(o);
                }
                let mut r = json(StatusCode::OK, out.to_string().into_bytes());
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, json_content_type(&version));
                r
            }
            Err(e) => json_error(&e, &version),
        }
    }

    /// `POST /trellis/config[?locate=false][&base=FOLDER]`: applies a config document; `base`
    /// is the folder its relative paths are resolved against.
    async fn apply_config(&self, body: &[u8], query: Option<&str>) -> Resp {
        let text = String::from_utf8_lossy(body);
        let params = trellis_core::model::parse_query(query);
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let source = crate::config::Source {
            locate: param("locate") != Some("false"),
            base: param("base").map(std::path::PathBuf::from),
        };
        let engines = crate::config::Engines::from_services(&self.rest, &self.json);
        match crate::config::apply(&self.lattice, &engines, &text, &source).await {
            Ok(summary) => json(StatusCode::OK, summary.to_string().into_bytes()),
            Err(e) => rest_error(&e),
        }
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn with_error_type(mut r: Resp, e: &ApiError) -> Resp {
    *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    if let Ok(v) = HeaderValue::from_str(&e.code) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// An error in the rest-json shape (Lattice, Lambda).
pub fn rest_error(e: &ApiError) -> Resp {
    with_error_type(json(StatusCode::BAD_REQUEST, e.rest_json_body()), e)
}

/// An error in the JSON 1.0/1.1 shape (EventBridge, Step Functions).
pub fn json_error(e: &ApiError, version: &str) -> Resp {
    let mut r = with_error_type(json(StatusCode::BAD_REQUEST, e.json_body()), e);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, json_content_type(version));
    r
}

fn json_content_type(version: &str) -> HeaderValue {
    if version == "1.0" {
        HeaderValue::from_static("application/x-amz-json-1.0")
    } else {
        HeaderValue::from_static("application/x-amz-json-1.1")
    }
}

/// An error in the query protocol's XML shape (STS, IAM).
pub fn xml_error(e: &ApiError) -> Resp {
    let kind = if e.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    let xml = format!(
        "<ErrorResponse><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(&e.code),
        xml_escape(&e.message),
        trellis_core::id::new_id("req")
    );
    let mut r = Response::new(Full::new(Bytes::from(xml)));
    *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    r
}

/// Escapes text for an XML element or attribute.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
