//! API destinations as targets: an HTTP request to the destination's endpoint with the
//! connection's authorization. Plain `http://` endpoints only for now.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use trellis_core::target::{BoxFuture, Target, TargetError};

use super::Inner;

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// How long one invocation may take (AWS: 5 s for API destinations).
const TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new()).build(connector)
}

pub(crate) struct DestinationTarget {
    arn: String,
    endpoint: String,
    method: String,
    headers: Vec<(String, String)>,
    client: HttpClient,
}

impl Inner {
    /// Registers (or re-registers) an API destination record as a target.
    pub(crate) fn register_destination(&self, dest: &Value) {
        let Some(arn) = dest.get("ApiDestinationArn").and_then(Value::as_str) else {
            return;
        };
        let connection = dest
            .get("ConnectionArn")
            .and_then(Value::as_str)
            .and_then(|c| {
                self.lock()
                    .connections
                    .values()
                    .find(|v| v.get("ConnectionArn").and_then(Value::as_str) == Some(c))
                    .cloned()
            });
        let headers = connection.as_ref().map(auth_headers).unwrap_or_default();
        self.targets.register(Arc::new(DestinationTarget {
            arn: arn.to_string(),
            endpoint: dest
                .get("InvocationEndpoint")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            method: dest
                .get("HttpMethod")
                .and_then(Value::as_str)
                .unwrap_or("POST")
                .to_string(),
            headers,
            client: self.http.clone(),
        }));
    }
}

/// The headers a connection adds: its API key or basic credentials and its invocation
/// header parameters.
fn auth_headers(conn: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let auth = &conn["AuthParameters"];
    if let (Some(k), Some(v)) = (
        auth["ApiKeyAuthParameters"]["ApiKeyName"].as_str(),
        auth["ApiKeyAuthParameters"]["ApiKeyValue"].as_str(),
    ) {
        out.push((k.to_string(), v.to_string()));
    }
    if let (Some(u), Some(p)) = (
        auth["BasicAuthParameters"]["Username"].as_str(),
        auth["BasicAuthParameters"]["Password"].as_str(),
    ) {
        let token = trellis_core::model::base64_encode(format!("{u}:{p}").as_bytes());
        out.push(("authorization".into(), format!("Basic {token}")));
    }
    if let Some(params) = auth["InvocationHttpParameters"]["HeaderParameters"].as_array() {
        for p in params {
            if let (Some(k), Some(v)) = (p["Key"].as_str(), p["Value"].as_str()) {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

impl Target for DestinationTarget {
    fn arn(&self) -> &str {
        &self.arn
    }

    fn invoke(&self, payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
        let client = self.client.clone();
        let mut req = http::Request::builder()
            .method(self.method.as_str())
            .uri(self.endpoint.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .header(
                http::header::USER_AGENT,
                "Amazon/EventBridge/ApiDestinations",
            );
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let endpoint = self.endpoint.clone();
        let req = req.body(Full::new(payload));
        Box::pin(async move {
            if endpoint.starts_with("https://") {
                return Err(TargetError::Unavailable(format!(
                    "{endpoint}: https API destinations are not supported yet"
                )));
            }
            let req = req.map_err(|e| TargetError::Failed {
                error: "InvalidRequest".into(),
                cause: e.to_string(),
            })?;
            let resp = tokio::time::timeout(TIMEOUT, client.request(req))
                .await
                .map_err(|_| TargetError::Timeout(endpoint.clone()))?
                .map_err(|e| TargetError::Unavailable(format!("{endpoint}: {e}")))?;
            let status = resp.status();
            let body = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
                .await
                .map_err(|_| TargetError::Timeout(endpoint.clone()))?
                .map_err(|e| TargetError::Unavailable(format!("{endpoint}: {e}")))?
                .to_bytes();
            if status.is_success() {
                Ok(body)
            } else {
                Err(TargetError::Failed {
                    error: format!("HTTP {}", status.as_u16()),
                    cause: String::from_utf8_lossy(&body).chars().take(256).collect(),
                })
            }
        })
    }
}
