//! The ports through which domain crates serve their AWS APIs on the shared `--api` listener.
//! The gateway owns the listener and the wire format; a service only maps an operation name and
//! its input (a JSON object shaped like the model's input) to an output object or an
//! [`ApiError`].

use std::sync::Arc;

use serde_json::Value;

use crate::model::ServiceModel;
use crate::target::BoxFuture;
use crate::ApiError;

/// A JSON 1.0/1.1 service, chosen by the `X-Amz-Target` prefix (`AWSEvents`,
/// `AWSStepFunctions`).
pub trait JsonService: Send + Sync {
    /// The target prefix, e.g. `AWSStepFunctions`.
    fn target_prefix(&self) -> &str;
    /// `1.0` or `1.1`: the `application/x-amz-json-*` content type of answers.
    fn json_version(&self) -> &str;
    /// The service model, for input validation before `call` (optional).
    fn model(&self) -> Option<Arc<ServiceModel>> {
        None
    }
    fn call(&self, op: &str, input: Value) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// Appends the service's counters to `GET /metrics` (Prometheus text format; none by default).
    fn render_metrics(&self, _out: &mut String) {}
}

/// A rest-json service, chosen by matching the request's method and path against its model
/// (VPC Lattice, Lambda). The gateway gathers the input from path, query, headers and body.
pub trait RestService: Send + Sync {
    fn model(&self) -> Arc<ServiceModel>;
    fn call(&self, op: &str, input: Value) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// Whether `op` answers with a body written as it is produced (an event stream, such as
    /// Lambda's `InvokeWithResponseStream`): then [`RestService::call_streaming`] answers it.
    fn streams(&self, _op: &str) -> bool {
        false
    }
    /// Answers an operation for which [`RestService::streams`] is true.
    fn call_streaming(
        &self,
        op: &str,
        _input: Value,
    ) -> BoxFuture<'_, Result<StreamingOutput, ApiError>> {
        let e = ApiError::unknown_operation(op);
        Box::pin(async move { Err(e) })
    }
    /// Appends the service's counters to `GET /metrics` (Prometheus text format; none by default).
    fn render_metrics(&self, _out: &mut String) {}
}

/// The answer of a streaming operation: status, headers (the model's header members, already
/// named) and a body written as it is produced.
pub struct StreamingOutput {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: crate::target::StreamingBody,
}

/// An AWS query-protocol service (`Action=…` form posts answered in XML: STS, IAM), chosen by
/// whether its model has the action.
pub trait QueryService: Send + Sync {
    fn model(&self) -> Arc<ServiceModel>;
    /// The XML namespace of answers, e.g. `https://sts.amazonaws.com/doc/2011-06-15/`.
    fn xml_namespace(&self) -> &str;
    /// Answers the action with the XML of its `<ActionResult>` element's content.
    fn call(
        &self,
        action: &str,
        params: Vec<(String, String)>,
    ) -> BoxFuture<'_, Result<String, ApiError>>;
}
