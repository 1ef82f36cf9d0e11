//! API destinations as targets: an HTTP request to the destination's endpoint, sent through its
//! connection's target (which authorizes it and finds the way: resource configuration,
//! service-network service or the endpoint itself, `http://` or `https://`).

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use trellis_core::target::{BoxFuture, Target, TargetError, TargetRegistry};

use super::connection::{Connection, ConnectionTarget};
use super::Inner;

/// How far ahead of now an invocation may be paced; beyond that it fails (and is retried
/// later) rather than hold a delivery slot.
const MAX_PACING_WAIT: Duration = Duration::from_secs(1);

pub(crate) struct DestinationTarget {
    arn: String,
    endpoint: String,
    method: http::Method,
    connection_arn: String,
    registry: Weak<TargetRegistry>,
    pacer: Option<Arc<Pacer>>,
}

/// `InvocationRateLimitPerSecond`: invocations spaced evenly, at most `1 / interval` a second.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

/// The error of an answer that is not a 2xx (see [`http_status`] for reading it back).
pub(crate) fn http_failure(status: http::StatusCode, body: &[u8]) -> TargetError {
    TargetError::Failed {
        error: format!("HTTP {}", status.as_u16()),
        cause: String::from_utf8_lossy(body).chars().take(256).collect(),
    }
}

/// The HTTP status of an error made by [`http_failure`].
pub(crate) fn http_status(e: &TargetError) -> Option<u16> {
    match e {
        TargetError::Failed { error, .. } => error.strip_prefix("HTTP ")?.parse().ok(),
        _ => None,
    }
}

impl Inner {
    /// Registers (or re-registers) a connection record as an HTTP target under its ARN.
    pub(crate) fn register_connection(&self, doc: &Value) {
        let registry = Arc::downgrade(&self.targets);
        if let Some(c) = Connection::from_doc(doc, registry, self.http.clone()) {
            self.targets.register(Arc::new(ConnectionTarget::new(c)));
        }
    }

    /// Registers (or re-registers) an API destination record as a target.
    pub(crate) fn register_destination(&self, dest: &Value) {
        let Some(arn) = dest["ApiDestinationArn"].as_str() else {
            return;
        };
        let pacer = dest["InvocationRateLimitPerSecond"]
            .as_u64()
            .filter(|r| *r > 0)
            .map(|rate| {
                Arc::new(Pacer {
                    interval: Duration::from_secs(1) / rate as u32,
                    next: Mutex::new(Instant::now()),
                })
            });
        self.targets.register(Arc::new(DestinationTarget {
            arn: arn.to_string(),
            endpoint: dest["InvocationEndpoint"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            method: dest["HttpMethod"]
                .as_str()
                .and_then(|m| m.parse().ok())
                .unwrap_or(http::Method::POST),
            connection_arn: dest["ConnectionArn"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            registry: Arc::downgrade(&self.targets),
            pacer,
        }));
    }
}

impl Pacer {
    /// Waits for this invocation's slot, or fails when it is more than [`MAX_PACING_WAIT`] away.
    async fn wait(&self, arn: &str) -> Result<(), TargetError> {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            if slot > now + MAX_PACING_WAIT {
                return Err(TargetError::Unavailable(format!(
                    "{arn}: InvocationRateLimitPerSecond reached"
                )));
            }
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
        Ok(())
    }
}

impl Target for DestinationTarget {
    fn arn(&self) -> &str {
        &self.arn
    }

    fn invoke(&self, payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
        let req = http::Request::builder()
            .method(self.method.clone())
            .uri(self.endpoint.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .header(
                http::header::USER_AGENT,
                "Amazon/EventBridge/ApiDestinations",
            )
            .body(payload);
        let registry = self.registry.clone();
        let connection = self.connection_arn.clone();
        let pacer = self.pacer.clone();
        let arn = self.arn.clone();
        let endpoint = self.endpoint.clone();
        Box::pin(async move {
            let req = req.map_err(|e| TargetError::Failed {
                error: "InvalidEndpoint".into(),
                cause: format!("{endpoint}: {e}"),
            })?;
            if let Some(p) = pacer {
                p.wait(&arn).await?;
            }
            let registry = registry
                .upgrade()
                .ok_or_else(|| TargetError::Unavailable("the target registry is gone".into()))?;
            let resp = registry.invoke_http(&connection, req).await?;
            if resp.status().is_success() {
                Ok(resp.into_body())
            } else {
                Err(http_failure(resp.status(), resp.body()))
            }
        })
    }
}
