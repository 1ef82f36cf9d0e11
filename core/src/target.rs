//! The Target port: anything addressable by ARN that can be invoked with a payload (an HTTP
//! target group, a function, a state machine, an event bus, a resource configuration's HTTPS
//! endpoint). Each domain crate implements [`Target`] for its own resources; the binary
//! registers them all in one [`TargetRegistry`], so a listener rule, an event-rule target and a
//! workflow Task state all reach their target through the same code path.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an invocation failed, in the terms callers map to their own errors
/// (`States.TaskFailed`, a dead-letter attribute, an HTTP status).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TargetError {
    #[error("target {0} not found")]
    NotFound(String),
    /// The target ran and reported an error (a function error, a 5xx answer).
    #[error("{error}: {cause}")]
    Failed { error: String, cause: String },
    #[error("target {0} timed out")]
    Timeout(String),
    #[error("target unavailable: {0}")]
    Unavailable(String),
}

/// One HTTP request through the Target port. The URI may be absolute
/// (`https://orders.internal/v1/x?y=1`) or a path; what the target does with the scheme and
/// authority is its own rule (a resource configuration dials only its own destination).
pub type HttpRequest = http::Request<Bytes>;
/// The answer to an [`HttpRequest`], whatever its status: a 4xx or 5xx from the far end is an
/// `Ok` response; `Err` means no answer was had (refused, timed out, not an HTTP target).
pub type HttpResponse = http::Response<Bytes>;

/// A response body passed on as it is produced.
pub type StreamingBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
/// The answer to an [`HttpRequest`] with its body streamed ([`Target::invoke_http_streaming`]).
pub type StreamingResponse = http::Response<StreamingBody>;
/// An HTTP request whose body is read as the target consumes it.
pub type StreamingRequest = http::Request<StreamingBody>;
/// A streamed HTTP answer on its way ([`Target::invoke_http_streaming`]).
pub type StreamingAnswer = BoxFuture<'static, Result<StreamingResponse, TargetError>>;

/// Something that can be invoked by ARN.
pub trait Target: Send + Sync {
    fn arn(&self) -> &str;

    /// Invokes the target with a JSON (or opaque) payload and returns its answer.
    fn invoke(&self, payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>>;

    /// Sends one HTTP request to the target. Targets that are HTTP endpoints (a resource
    /// configuration's HTTPS service, an EventBridge connection, a service-network service)
    /// implement it; the others answer `Unavailable`.
    fn invoke_http(
        &self,
        req: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, TargetError>> {
        let _ = req;
        let arn = self.arn().to_string();
        Box::pin(async move {
            Err(TargetError::Unavailable(format!(
                "{arn} does not take HTTP requests"
            )))
        })
    }

    /// As [`invoke_http`](Self::invoke_http), but both bodies stream: the request's is read as
    /// the target consumes it, and the response comes as soon as its head is known, its body
    /// as it is produced (a `wasi:http` component, for the data plane). A target that takes
    /// whole requests only gives the request back, untouched (the default): the caller then
    /// decides what to send it (a data-plane `WASM` group sends the Lattice event).
    fn invoke_http_streaming(
        &self,
        req: StreamingRequest,
    ) -> Result<StreamingAnswer, StreamingRequest> {
        Err(req)
    }
}

/// A whole body as a [`StreamingBody`].
pub fn whole(body: Bytes) -> StreamingBody {
    use http_body_util::BodyExt;
    http_body_util::Full::new(body)
        .map_err(|never| match never {})
        .boxed()
}

/// The registry key under which an HTTP target answers for a host name (a service-network
/// service registers its `dnsEntry.domainName` and custom domain name this way), so that a
/// caller holding only a URL finds the service that owns its host.
pub fn host_key(host: &str) -> String {
    format!("host:{}", host.to_ascii_lowercase())
}

/// Every invocable resource of the running node, by ARN.
#[derive(Default)]
pub struct TargetRegistry {
    targets: RwLock<HashMap<String, Arc<dyn Target>>>,
}

// === impl TargetRegistry ===

impl TargetRegistry {
    pub fn register(&self, target: Arc<dyn Target>) {
        let arn = target.arn().to_string();
        self.write().insert(arn, target);
    }

    pub fn unregister(&self, arn: &str) {
        self.write().remove(arn);
    }

    pub fn get(&self, arn: &str) -> Option<Arc<dyn Target>> {
        self.targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(arn)
            .cloned()
    }

    /// Invokes the target registered under `arn`.
    pub async fn invoke(&self, arn: &str, payload: Bytes) -> Result<Bytes, TargetError> {
        let target = self.found(arn)?;
        target.invoke(payload).await
    }

    /// Sends an HTTP request to the target registered under `arn`.
    pub async fn invoke_http(
        &self,
        arn: &str,
        req: HttpRequest,
    ) -> Result<HttpResponse, TargetError> {
        let target = self.found(arn)?;
        target.invoke_http(req).await
    }

    /// The target registered under `arn`, or `NotFound`.
    fn found(&self, arn: &str) -> Result<Arc<dyn Target>, TargetError> {
        self.get(arn)
            .ok_or_else(|| TargetError::NotFound(arn.to_string()))
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<dyn Target>>> {
        self.targets.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Target for Echo {
        fn arn(&self) -> &str {
            "arn:aws:lambda:us-east-1:000000000000:function:echo"
        }
        fn invoke(&self, payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
            Box::pin(async move { Ok(payload) })
        }
    }

    #[test]
    fn registry_invokes_by_arn() {
        let reg = TargetRegistry::default();
        reg.register(Arc::new(Echo));
        let fut = reg.invoke(
            "arn:aws:lambda:us-east-1:000000000000:function:echo",
            Bytes::from_static(b"{}"),
        );
        // A ready future: poll it once without a runtime.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = Box::pin(fut);
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => assert_eq!(r.unwrap(), Bytes::from_static(b"{}")),
            std::task::Poll::Pending => panic!("echo should be ready"),
        }
        assert!(reg.get("arn:nope").is_none());
    }
}
