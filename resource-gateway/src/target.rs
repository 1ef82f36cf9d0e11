//! A resource configuration as a [`Target`]: an event rule's HTTP target or a workflow's
//! `http:invoke` Task calls the private service by the configuration's ARN, through the same
//! origination as an HTTP endpoint (only the configured destination is dialed).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use trellis_core::target::{BoxFuture, HttpRequest, HttpResponse, Target, TargetError};

use crate::http::Exchange;
use crate::metrics::Counters;
use crate::origin::{Dialed, Origin};
use crate::proxy::Identity;
use crate::HttpSettings;

/// What a resource configuration's target needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// The resource configuration's ARN, the key in the registry.
    pub arn: String,
    pub resource_configuration_id: String,
    /// An IP address or a DNS name, resolved at connect time.
    pub destination_host: String,
    /// The configuration's port ranges: a request whose URI names a port in them goes to that
    /// port, any other to the first port of the first range.
    pub ports: Vec<(u16, u16)>,
    pub http: HttpSettings,
    pub connect_timeout: Duration,
}

impl TargetSpec {
    /// The destination port for a request to `uri`.
    pub fn port_for(&self, uri: &http::Uri) -> Option<u16> {
        let first = self.ports.first().map(|r| r.0)?;
        Some(
            uri.port_u16()
                .filter(|p| self.ports.iter().any(|(lo, hi)| (*lo..=*hi).contains(p)))
                .unwrap_or(first),
        )
    }
}

/// A registered resource configuration.
pub struct ResourceTarget {
    spec: TargetSpec,
    origin: Arc<Origin>,
    counters: Arc<Counters>,
}

impl ResourceTarget {
    pub(crate) fn new(spec: TargetSpec, origin: Arc<Origin>, counters: Arc<Counters>) -> Self {
        Self {
            spec,
            origin,
            counters,
        }
    }
}

impl Target for ResourceTarget {
    fn arn(&self) -> &str {
        &self.spec.arn
    }

    /// POSTs `payload` (JSON) to `/`; a non-2xx answer is `Failed`.
    fn invoke(&self, payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
        let mut req = Request::new(payload);
        *req.method_mut() = http::Method::POST;
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let answer = self.invoke_http(req);
        Box::pin(async move {
            let resp = answer.await?;
            if resp.status().is_success() {
                return Ok(resp.into_body());
            }
            Err(TargetError::Failed {
                error: format!("HTTP {}", resp.status().as_u16()),
                cause: String::from_utf8_lossy(resp.body()).into_owned(),
            })
        })
    }

    fn invoke_http(
        &self,
        req: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, TargetError>> {
        let arn = self.spec.arn.clone();
        let origin = self.origin.clone();
        let port = self.spec.port_for(req.uri());
        let identity = Identity::new(&self.spec.resource_configuration_id, |line| {
            line.str("source", "target")
                .str(
                    "resourceConfigurationId",
                    &self.spec.resource_configuration_id,
                )
                .str("resourceConfigurationArn", &self.spec.arn)
                .display(
                    "destination",
                    format_args!("{}:{}", self.spec.destination_host, port.unwrap_or(0)),
                );
        });
        let exchange = Exchange::new(Arc::new(identity), &req, self.counters.clone());
        Box::pin(async move {
            let Some(port) = port else {
                return Err(TargetError::Unavailable(format!("{arn} has no ports")));
            };
            let req = req.map(|b| exchange.count_up(Full::new(b)));
            let resp = match origin.send(port, req, None).await {
                Ok(r) => r,
                Err(f) => {
                    exchange.failed(&f);
                    return Err(if f.timeout {
                        TargetError::Timeout(arn)
                    } else {
                        TargetError::Unavailable(format!("{arn}: {}", f.reason))
                    });
                }
            };
            let dialed = resp.extensions().get::<Dialed>().map(|d| d.0);
            let (parts, body) = resp.into_parts();
            let status = parts.status.as_u16();
            match tokio::time::timeout(origin.response_timeout, body.collect()).await {
                Ok(Ok(body)) => {
                    let body = body.to_bytes();
                    exchange.log(status, dialed, body.len() as u64, "completed");
                    Ok(HttpResponse::from_parts(parts, body))
                }
                Ok(Err(e)) => {
                    exchange.log(status, dialed, 0, &format!("error: {e}"));
                    Err(TargetError::Unavailable(format!(
                        "{arn}: response body: {e}"
                    )))
                }
                Err(_) => {
                    exchange.log(status, dialed, 0, "response_timeout");
                    Err(TargetError::Timeout(arn))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use trellis_core::target::{TargetError, TargetRegistry};

    use super::*;
    use crate::testing::{https_server, pki};
    use crate::{Manager, TlsSettings};
    use serde_json::Value;

    const ARN: &str = "arn:aws:vpc-lattice:us-east-1:000000000000:resourceconfiguration/rcfg-api";

    #[tokio::test]
    async fn a_resource_configuration_answers_http_requests_by_arn() {
        let good = pki(&["api.internal", "127.0.0.1"]);
        let server = https_server(good.server.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &good.ca_pem).unwrap();
        let spec = TargetSpec {
            arn: ARN.into(),
            resource_configuration_id: "rcfg-api".into(),
            destination_host: "127.0.0.1".into(),
            ports: vec![(server.port(), server.port())],
            // An IP resource whose certificate is checked for another name.
            http: HttpSettings {
                host: "api.internal".into(),
                tls: Some(TlsSettings {
                    server_name: "api.internal".into(),
                    ca_file: Some(ca),
                    client_identity: None,
                }),
                response_timeout: Duration::from_secs(5),
                http2: false,
            },
            connect_timeout: Duration::from_secs(2),
        };
        let registry = TargetRegistry::default();
        let m = Manager::new();
        m.apply_targets(&registry, vec![spec.clone()]);

        // The URI's host is not dialed; its port is used when it is one of the resource's.
        let req = http::Request::get(format!(
            "https://evil.example:{}/orders?id=1",
            server.port()
        ))
        .body(Bytes::new())
        .unwrap();
        let resp = registry.invoke_http(ARN, req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let got: Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(got["host"], format!("api.internal:{}", server.port()));
        assert_eq!(got["path"], "/orders");
        // A port outside the ranges goes to the first port.
        let req = http::Request::get("https://10.0.0.1:1/x")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(registry.invoke_http(ARN, req).await.unwrap().status(), 200);

        // invoke POSTs the payload to `/`.
        let out = registry
            .invoke(ARN, Bytes::from_static(b"{\"a\":1}"))
            .await
            .unwrap();
        let got: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (got["method"].as_str(), got["path"].as_str()),
            (Some("POST"), Some("/"))
        );
        assert_eq!(got["body"], "{\"a\":1}");

        // Slower than the response timeout: Timeout.
        let mut slow = spec.clone();
        slow.http.response_timeout = Duration::from_millis(300);
        m.apply_targets(&registry, vec![slow]);
        let req = http::Request::get("/slow").body(Bytes::new()).unwrap();
        assert!(matches!(
            registry.invoke_http(ARN, req).await,
            Err(TargetError::Timeout(_))
        ));

        // Another CA: no answer.
        let mut wrong = spec.clone();
        let other = dir.path().join("other.pem");
        std::fs::write(&other, pki(&["api.internal"]).ca_pem).unwrap();
        wrong.http.tls.as_mut().unwrap().ca_file = Some(other);
        m.apply_targets(&registry, vec![wrong]);
        let req = http::Request::get("/").body(Bytes::new()).unwrap();
        match registry.invoke_http(ARN, req).await {
            Err(TargetError::Unavailable(e)) => assert!(e.contains("tls_error"), "{e}"),
            other => panic!("{other:?}"),
        }

        // Gone from the state: gone from the registry.
        m.apply_targets(&registry, vec![]);
        assert!(registry.get(ARN).is_none());
    }
}
