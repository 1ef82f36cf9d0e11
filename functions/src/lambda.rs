//! The Lambda API (rest-json, from the Lambda model in `core/models/`): functions, versions,
//! aliases with weighted routing, concurrency, asynchronous invocation with retries and
//! destinations, and `Invoke` itself. Each function is one store document (kind
//! `lambda-function`) holding `$LATEST`, its published versions and aliases; its code is unpacked
//! under `<data-dir>/functions/<name>/`. Every function, version and alias is registered as a
//! [`Target`] under its ARN.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use trellis_core::api::{RestService, StreamingOutput};
use trellis_core::model::{base64_decode, base64_encode, ServiceModel};
use trellis_core::target::{
    BoxFuture, StreamingAnswer, StreamingRequest, Target, TargetError, TargetRegistry,
};
use trellis_core::{ApiError, ArnContext};
use trellis_store::{Store, Write};

use crate::eventstream;
use crate::package::{self, Package};
use crate::pool::{Finished, HttpStreamed, InvokeStream, Pool, DEFAULT_CONCURRENCY, IDLE_TIMEOUT};
use crate::wasm;
use crate::worker::{Invocation, Outcome, Spec};

/// The store kind of function documents.
pub const KIND: &str = "lambda-function";
/// Store kind of an accepted `Event` invocation not yet finished (removed when it is): what
/// makes a `202` survive a crash.
pub const KIND_ASYNC: &str = "lambda-async";
/// Largest synchronous request and response payload.
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// Largest asynchronous (`Event`) payload.
pub const MAX_ASYNC_PAYLOAD: usize = 256 * 1024;
/// How many bytes of log `X-Amz-Log-Type: Tail` returns.
pub const TAIL_BYTES: usize = 4096;
/// The `S3Bucket` that means "run the folder named by `S3Key` in place" (LocalStack's name).
pub const HOT_RELOAD_BUCKET: &str = "hot-reload";

/// The Lambda model, parsed once.
pub fn lambda_model() -> Arc<ServiceModel> {
    static MODEL: std::sync::OnceLock<Arc<ServiceModel>> = std::sync::OnceLock::new();
    trellis_core::model::embedded(
        &MODEL,
        include_str!("../../core/models/lambda-2015-03-31.json"),
    )
}

/// The Lambda service: cheap to clone, every clone is the same service.
#[derive(Clone)]
pub struct Lambda {
    inner: Arc<Inner>,
}

struct Inner {
    model: Arc<ServiceModel>,
    arn: ArnContext,
    store: Arc<dyn Store>,
    code_root: PathBuf,
    targets: Arc<TargetRegistry>,
    functions: Mutex<HashMap<String, Value>>,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    write_lock: tokio::sync::Mutex<()>,
    /// Group commit of accepted asynchronous invocations and their completion.
    commits: trellis_store::GroupCommit,
}

/// What a caller passes besides the payload.
#[derive(Debug, Default, Clone)]
pub struct InvokeOptions {
    pub qualifier: Option<String>,
    /// Base64 JSON, as `X-Amz-Client-Context` carries it.
    pub client_context: Option<String>,
    pub tail: bool,
}

/// An accepted `Event` invocation, as stored until it has run.
struct AsyncRecord {
    function: String,
    payload: Bytes,
    opts: InvokeOptions,
    received_ms: u64,
}

impl AsyncRecord {
    fn to_doc(&self) -> Value {
        json!({
            "function": self.function,
            // Checked to be JSON (so UTF-8) before it was accepted.
            "payload": String::from_utf8_lossy(&self.payload),
            "qualifier": self.opts.qualifier,
            "clientContext": self.opts.client_context,
            "receivedMs": self.received_ms,
        })
    }

    fn from_doc(doc: &Value) -> Option<Self> {
        Some(AsyncRecord {
            function: doc["function"].as_str()?.to_string(),
            payload: Bytes::from(doc["payload"].as_str()?.to_string()),
            opts: InvokeOptions {
                qualifier: doc["qualifier"].as_str().map(str::to_string),
                client_context: doc["clientContext"].as_str().map(str::to_string),
                tail: false,
            },
            received_ms: doc["receivedMs"].as_u64()?,
        })
    }
}

/// A finished synchronous invocation.
#[derive(Debug, Clone)]
pub struct InvokeResult {
    pub payload: Bytes,
    /// `Unhandled` when the function failed.
    pub function_error: Option<String>,
    pub executed_version: String,
    pub logs: Vec<u8>,
    pub timed_out: bool,
}

/// A synchronous invocation ready to run ([`Inner::prepare`]).
struct Prepared {
    pool: Arc<Pool>,
    inv: Invocation,
    tail: usize,
    settle: Settle,
}

/// What turns a finished invocation into the caller's result.
struct Settle {
    request_id: String,
    version: String,
    timeout: Duration,
}

impl Settle {
    /// The caller's result: the response, or the error document Lambda gives for each failure.
    fn result(&self, finished: Finished) -> InvokeResult {
        let request_id = &self.request_id;
        let timeout = self.timeout.as_secs_f64();
        let unhandled = Some("Unhandled".to_string());
        let (payload, function_error, timed_out) = match finished.outcome {
            Outcome::Response(b) => (b, None, false),
            Outcome::Error(b) => (b, unhandled, false),
            Outcome::Exited(message) => (
                exit_payload(&message, &finished.last_lines),
                unhandled,
                false,
            ),
            Outcome::NotStarted(message) => (
                error_payload(
                    "Runtime.InvalidEntrypoint",
                    &format!("RequestId: {request_id} Error: {message}"),
                ),
                unhandled,
                false,
            ),
            Outcome::TimedOut => (
                error_payload(
                    "Sandbox.Timedout",
                    &format!("RequestId: {request_id} Error: Task timed out after {timeout:.2} seconds"),
                ),
                unhandled,
                true,
            ),
            Outcome::TooLarge(n) => (
                error_payload(
                    "Function.ResponseSizeTooLarge",
                    &format!("Response payload size ({n} bytes) exceeded maximum allowed payload size ({MAX_SYNC_PAYLOAD} bytes)."),
                ),
                unhandled,
                false,
            ),
            Outcome::StreamTooLarge(n) => (
                error_payload(
                    "Function.ResponseSizeTooLarge",
                    &format!("Response payload size ({n} bytes) exceeded maximum allowed payload size ({} bytes).", crate::worker::MAX_STREAMED_RESPONSE),
                ),
                unhandled,
                false,
            ),
            // Only a caller that asked for a stream is handed one (`Pool::invoke_streaming`).
            Outcome::Streaming(_) => (
                error_payload(
                    "Runtime.StreamError",
                    "the function streamed its response to a caller that takes none",
                ),
                unhandled,
                false,
            ),
        };
        InvokeResult {
            payload,
            function_error,
            executed_version: self.version.clone(),
            logs: finished.logs,
            timed_out,
        }
    }
}

/// The `InvokeComplete` event that ends `InvokeWithResponseStream`'s answer: the error's type
/// and message when the invocation failed, and the log tail when it was asked for.
fn invoke_complete(r: &InvokeResult) -> Bytes {
    let mut doc = Map::new();
    if r.function_error.is_some() {
        let e: Value = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
        doc.insert(
            "ErrorCode".into(),
            str_of(&e, "errorType").unwrap_or("Unhandled").into(),
        );
        doc.insert(
            "ErrorDetails".into(),
            str_of(&e, "errorMessage").unwrap_or_default().into(),
        );
    }
    if !r.logs.is_empty() {
        doc.insert("LogResult".into(), base64_encode(&r.logs).into());
    }
    eventstream::event(
        "InvokeComplete",
        "application/json",
        Value::Object(doc).to_string().as_bytes(),
    )
}

#[derive(Clone)]
struct FunctionTarget {
    arn: String,
    name: String,
    qualifier: Option<String>,
    inner: Weak<Inner>,
}

fn error(code: &str, status: u16, message: impl Into<String>) -> ApiError {
    ApiError::new(code, status, message).with("Type", "User")
}

fn invalid(message: impl Into<String>) -> ApiError {
    error("InvalidParameterValueException", 400, message)
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn new_uuid() -> String {
    let n = fastrand::u128(..);
    let h = format!("{n:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn last_modified() -> String {
    trellis_core::clock::now_iso8601().replace('Z', "+0000")
}

/// Splits `name`, `name:qualifier`, a partial ARN (`123456789012:function:name`) or a full ARN
/// into the name and the qualifier.
pub fn parse_function_name(s: &str) -> (String, Option<String>) {
    let rest = match s.find("function:") {
        Some(i) if s.starts_with("arn:") || s.contains(":function:") => &s[i + 9..],
        _ => s,
    };
    match rest.split_once(':') {
        Some((n, q)) => (n.to_string(), Some(q.to_string())),
        None => (rest.to_string(), None),
    }
}

// === impl Lambda ===

impl Lambda {
    /// The service over `store`, with the functions it holds registered in `targets`; code lives
    /// under `data_dir/functions`.
    pub async fn load(
        store: Arc<dyn Store>,
        arn: ArnContext,
        data_dir: &Path,
        targets: Arc<TargetRegistry>,
    ) -> Result<Lambda, trellis_store::StoreError> {
        let mut functions = HashMap::new();
        for (id, doc) in store.list(KIND).await? {
            functions.insert(id, doc);
        }
        let pending = store.list(KIND_ASYNC).await?;
        let commits = trellis_store::GroupCommit::start(store.clone(), "lambda");
        let inner = Arc::new(Inner {
            model: lambda_model(),
            arn,
            store,
            // Absolute, so workers' `LAMBDA_TASK_ROOT` and program path do not depend on the
            // directory Trellis was started in.
            code_root: std::path::absolute(data_dir.join("functions"))
                .unwrap_or_else(|_| data_dir.join("functions")),
            targets,
            functions: Mutex::new(functions),
            pools: Mutex::new(HashMap::new()),
            write_lock: tokio::sync::Mutex::new(()),
            commits,
        });
        let docs: Vec<(String, Value)> = crate::lock(&inner.functions)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, doc) in docs {
            inner.register_targets(&name, &doc);
        }
        // Asynchronous invocations accepted before a stop or crash run again (at least once).
        if !pending.is_empty() {
            tracing::info!(
                count = pending.len(),
                "resuming accepted asynchronous invocations"
            );
        }
        for (id, record) in pending {
            match AsyncRecord::from_doc(&record) {
                Some(r) => inner.clone().spawn_async(id, r),
                None => tracing::error!(record = %id, "unreadable asynchronous invocation record"),
            }
        }
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let Some(inner) = weak.upgrade() else { return };
                let pools: Vec<Arc<Pool>> = crate::lock(&inner.pools).values().cloned().collect();
                for p in pools {
                    p.reap(IDLE_TIMEOUT);
                }
            }
        });
        Ok(Lambda { inner })
    }

    /// Runs one API operation on already-gathered input.
    pub async fn call(&self, op: &str, input: Value) -> Result<Value, ApiError> {
        let inner = &self.inner;
        let operation = inner
            .model
            .operation(op)
            .ok_or_else(|| ApiError::unknown_operation(op))?;
        inner.model.validate_input(operation, &input)?;
        match op {
            "CreateFunction" => inner.create_function(input).await,
            "GetFunction" => inner.get_function(&input),
            "GetFunctionConfiguration" => {
                let (name, q) = inner.name_and_qualifier(&input)?;
                inner.configuration(&name, q.as_deref())
            }
            "UpdateFunctionCode" => inner.update_code(input).await,
            "UpdateFunctionConfiguration" => inner.update_configuration(input).await,
            "DeleteFunction" => inner.delete_function(&input).await,
            "ListFunctions" => inner.list_functions(&input),
            "ListVersionsByFunction" => inner.list_versions(&input),
            "PublishVersion" => inner.publish_version(&input).await,
            "CreateAlias" | "UpdateAlias" => inner.put_alias(op, &input).await,
            "GetAlias" => inner.get_alias(&input),
            "ListAliases" => inner.list_aliases(&input),
            "DeleteAlias" => inner.delete_alias(&input).await,
            "PutFunctionConcurrency" => inner.put_concurrency(&input).await,
            "GetFunctionConcurrency" => inner.get_concurrency(&input),
            "DeleteFunctionConcurrency" => inner.delete_concurrency(&input).await,
            "PutFunctionEventInvokeConfig" | "UpdateFunctionEventInvokeConfig" => {
                inner.put_event_invoke_config(op, &input).await
            }
            "GetFunctionEventInvokeConfig" => inner.get_event_invoke_config(&input),
            "DeleteFunctionEventInvokeConfig" => inner.delete_event_invoke_config(&input).await,
            "ListTags" => inner.list_tags(&input),
            "TagResource" | "UntagResource" => inner.tag(op, &input).await,
            "GetAccountSettings" => Ok(json!({
                "AccountLimit": {"ConcurrentExecutions": 1000, "CodeSizeUnzipped": package::MAX_UNZIPPED, "CodeSizeZipped": 52428800, "TotalCodeSize": 80530636800u64, "UnreservedConcurrentExecutions": 1000},
                "AccountUsage": {"FunctionCount": crate::lock(&inner.functions).len(), "TotalCodeSize": 0},
            })),
            "Invoke" => self.invoke_api(input).await,
            _ => Err(error(
                "UnsupportedOperationException",
                400,
                format!("Trellis does not implement the Lambda operation {op} yet"),
            )),
        }
    }

    /// Invokes a function synchronously, as `Invoke` with `RequestResponse` does.
    pub async fn invoke(
        &self,
        function: &str,
        payload: Bytes,
        opts: InvokeOptions,
    ) -> Result<InvokeResult, ApiError> {
        self.inner.clone().invoke(function, payload, opts).await
    }

    async fn invoke_api(&self, input: Value) -> Result<Value, ApiError> {
        let inner = &self.inner;
        let kind = str_of(&input, "InvocationType").unwrap_or("RequestResponse");
        let limit = if kind == "Event" {
            MAX_ASYNC_PAYLOAD
        } else {
            MAX_SYNC_PAYLOAD
        };
        let (function, payload, opts) = invoke_input(&input, limit)?;
        match kind {
            "DryRun" => {
                inner.check_invocable(&function, opts.qualifier.as_deref())?;
                Ok(json!({"StatusCode": 204}))
            }
            "Event" => {
                inner.check_invocable(&function, opts.qualifier.as_deref())?;
                // Durable before the 202: a crash after it runs the invocation at the next start.
                let record = AsyncRecord {
                    function,
                    payload,
                    opts,
                    received_ms: trellis_core::clock::now_millis(),
                };
                let id = format!("{:013}-{}", record.received_ms, new_uuid());
                inner
                    .commits
                    .commit(vec![Write::put(KIND_ASYNC, &id, record.to_doc())])
                    .await
                    .map_err(ApiError::internal)?;
                inner.clone().spawn_async(id, record);
                Ok(json!({"StatusCode": 202}))
            }
            _ => {
                let r = inner.clone().invoke(&function, payload, opts).await?;
                let mut out = json!({
                    "StatusCode": 200,
                    "ExecutedVersion": r.executed_version,
                    "Payload": base64_encode(&r.payload),
                });
                if let Some(e) = r.function_error {
                    out["FunctionError"] = e.into();
                }
                if !r.logs.is_empty() {
                    out["LogResult"] = base64_encode(&r.logs).into();
                }
                Ok(out)
            }
        }
    }
}

impl RestService for Lambda {
    fn model(&self) -> Arc<ServiceModel> {
        self.inner.model.clone()
    }

    fn call(&self, op: &str, input: Value) -> BoxFuture<'_, Result<Value, ApiError>> {
        let op = op.to_string();
        Box::pin(async move { Lambda::call(self, &op, input).await })
    }

    fn streams(&self, op: &str) -> bool {
        op == "InvokeWithResponseStream"
    }

    fn call_streaming(
        &self,
        op: &str,
        input: Value,
    ) -> BoxFuture<'_, Result<StreamingOutput, ApiError>> {
        let valid = match self.inner.model.operation(op) {
            Some(operation) => self.inner.model.validate_input(operation, &input),
            None => Ok(()),
        };
        Box::pin(async move {
            valid?;
            let (function, payload, opts) = invoke_input(&input, MAX_SYNC_PAYLOAD)?;
            let inner = self.inner.clone();
            if str_of(&input, "InvocationType") == Some("DryRun") {
                inner.check_invocable(&function, opts.qualifier.as_deref())?;
                return Ok(StreamingOutput {
                    status: 204,
                    headers: Vec::new(),
                    body: trellis_core::target::whole(Bytes::new()),
                });
            }
            inner.invoke_streaming(&function, payload, &opts).await
        })
    }
}

/// The function, payload and options of `Invoke` or `InvokeWithResponseStream`, checked:
/// the payload within `limit` and JSON (an empty one is `{}`).
fn invoke_input(input: &Value, limit: usize) -> Result<(String, Bytes, InvokeOptions), ApiError> {
    let function = str_of(input, "FunctionName")
        .unwrap_or_default()
        .to_string();
    let payload = match str_of(input, "Payload") {
        Some(b64) => {
            Bytes::from(base64_decode(b64).ok_or_else(|| ApiError::cannot_parse("bad payload"))?)
        }
        None => Bytes::new(),
    };
    let payload = if payload.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        payload
    };
    if payload.len() > limit {
        return Err(error(
            "RequestTooLargeException",
            413,
            format!("Request must be smaller than {limit} bytes for the InvokeFunction operation"),
        ));
    }
    if serde_json::from_slice::<Value>(&payload).is_err() {
        return Err(error(
            "InvalidRequestContentException",
            400,
            "Could not parse request body into json: Could not parse payload into json",
        ));
    }
    let opts = InvokeOptions {
        qualifier: str_of(input, "Qualifier").map(str::to_string),
        client_context: str_of(input, "ClientContext").map(str::to_string),
        tail: str_of(input, "LogType") == Some("Tail"),
    };
    Ok((function, payload, opts))
}

// === impl Inner ===

impl Inner {
    fn function_arn(&self, name: &str) -> String {
        self.arn.arn("lambda", &format!("function:{name}"))
    }

    fn not_found(&self, name: &str, qualifier: Option<&str>) -> ApiError {
        let arn = match qualifier {
            Some(q) => format!("{}:{q}", self.function_arn(name)),
            None => self.function_arn(name),
        };
        error(
            "ResourceNotFoundException",
            404,
            format!("Function not found: {arn}"),
        )
    }

    /// Reads a function's document in place (the hot path: no clone).
    fn with_doc<T>(&self, name: &str, f: impl FnOnce(&Value) -> T) -> Result<T, ApiError> {
        crate::lock(&self.functions)
            .get(name)
            .map(f)
            .ok_or_else(|| self.not_found(name, None))
    }

    fn doc(&self, name: &str) -> Result<Value, ApiError> {
        crate::lock(&self.functions)
            .get(name)
            .cloned()
            .ok_or_else(|| self.not_found(name, None))
    }

    /// The name and qualifier of a request's `FunctionName` and `Qualifier`.
    fn name_and_qualifier(&self, input: &Value) -> Result<(String, Option<String>), ApiError> {
        self.resolve_name(
            str_of(input, "FunctionName").unwrap_or_default(),
            str_of(input, "Qualifier"),
        )
    }

    fn resolve_name(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<(String, Option<String>), ApiError> {
        let (name, from_name) = parse_function_name(function);
        match (from_name, qualifier) {
            (Some(a), Some(b)) if a != b => Err(invalid(
                "The derived qualifier from the function name does not match the specified qualifier.",
            )),
            (a, b) => Ok((name, a.or(b.map(str::to_string)))),
        }
    }

    /// Persists `doc` (or deletes the function when `None`) and swaps it in.
    async fn save(&self, name: &str, doc: Option<Value>) -> Result<(), ApiError> {
        let write = match &doc {
            Some(d) => Write::put(KIND, name, d.clone()),
            None => Write::delete(KIND, name),
        };
        self.store
            .commit(vec![write])
            .await
            .map_err(ApiError::internal)?;
        let mut functions = crate::lock(&self.functions);
        match doc {
            Some(d) => functions.insert(name.to_string(), d),
            None => functions.remove(name),
        };
        Ok(())
    }

    fn drop_pools(&self, name: &str, version: Option<&str>) {
        let prefix = format!("{name}:");
        crate::lock(&self.pools).retain(|k, _| match version {
            Some(v) => k != &format!("{name}:{v}"),
            None => !k.starts_with(&prefix),
        });
    }

    fn register_targets(self: &Arc<Self>, name: &str, doc: &Value) {
        let base = self.function_arn(name);
        let mut quals: Vec<Option<String>> = vec![None, Some("$LATEST".into())];
        if let Some(v) = doc["versions"].as_object() {
            quals.extend(v.keys().map(|k| Some(k.clone())));
        }
        if let Some(a) = doc["aliases"].as_object() {
            quals.extend(a.keys().map(|k| Some(k.clone())));
        }
        for q in quals {
            let arn = match &q {
                Some(q) => format!("{base}:{q}"),
                None => base.clone(),
            };
            self.targets.register(Arc::new(FunctionTarget {
                arn,
                name: name.to_string(),
                qualifier: q,
                inner: Arc::downgrade(self),
            }));
        }
    }

    fn unregister_targets(&self, name: &str, doc: &Value) {
        let base = self.function_arn(name);
        self.targets.unregister(&base);
        self.targets.unregister(&format!("{base}:$LATEST"));
        for key in ["versions", "aliases"] {
            if let Some(m) = doc[key].as_object() {
                for q in m.keys() {
                    self.targets.unregister(&format!("{base}:{q}"));
                }
            }
        }
    }

    /// Unpacks the request's code (`ZipFile`, or a folder through the `hot-reload` bucket) for
    /// a function with `handler`; a WebAssembly handler's module is compiled (and cached) here,
    /// so invalid WASM is refused before anything changes.
    async fn package(&self, name: &str, code: &Value, handler: &str) -> Result<Package, ApiError> {
        let pkg = self.unpack(name, code, handler).await?;
        if wasm::is_wasm_handler(handler) {
            check_wasm(&pkg.dir, handler).await?;
        }
        Ok(pkg)
    }

    async fn unpack(&self, name: &str, code: &Value, handler: &str) -> Result<Package, ApiError> {
        if let Some(zip) = str_of(code, "ZipFile") {
            let zip = base64_decode(zip).ok_or_else(|| invalid("ZipFile is not valid base64"))?;
            let root = self.code_root.join(name);
            let handler = handler.to_string();
            return tokio::task::spawn_blocking(move || package::unpack_for(&zip, &root, &handler))
                .await
                .map_err(ApiError::internal)?
                .map_err(|e| invalid(e.to_string()));
        }
        match (str_of(code, "S3Bucket"), str_of(code, "S3Key")) {
            (Some(HOT_RELOAD_BUCKET), Some(path)) => {
                package::folder_for(Path::new(path), handler).map_err(|e| invalid(e.to_string()))
            }
            (Some(_), _) => Err(invalid(
                "Trellis has no S3: pass the code as ZipFile, or a local folder as S3Bucket \"hot-reload\" with the folder's absolute path as S3Key",
            )),
            _ if code.get("ImageUri").is_some() => {
                Err(invalid("container image functions are not supported; use a zip package"))
            }
            _ => Err(invalid("Please provide a source for function code.")),
        }
    }

    async fn create_function(self: &Arc<Self>, input: Value) -> Result<Value, ApiError> {
        check_limits(&input)?;
        let _guard = self.write_lock.lock().await;
        let name = parse_function_name(str_of(&input, "FunctionName").unwrap_or_default()).0;
        if crate::lock(&self.functions).contains_key(&name) {
            return Err(error(
                "ResourceConflictException",
                409,
                format!("Function already exist: {name}"),
            ));
        }
        if str_of(&input, "PackageType") == Some("Image") {
            return Err(invalid(
                "container image functions are not supported; use a zip package",
            ));
        }
        let handler = str_of(&input, "Handler").unwrap_or("bootstrap");
        let pkg = self.package(&name, &input["Code"], handler).await?;
        let arn = self.function_arn(&name);
        let mut config = json!({
            "FunctionName": name,
            "FunctionArn": arn,
            "Runtime": str_of(&input, "Runtime").unwrap_or("provided.al2023"),
            "Role": input["Role"],
            "Handler": str_of(&input, "Handler").unwrap_or("bootstrap"),
            "Description": str_of(&input, "Description").unwrap_or(""),
            "Timeout": input.get("Timeout").and_then(Value::as_u64).unwrap_or(3),
            "MemorySize": input.get("MemorySize").and_then(Value::as_u64).unwrap_or(128),
            "Version": "$LATEST",
            "TracingConfig": {"Mode": input["TracingConfig"]["Mode"].as_str().unwrap_or("PassThrough")},
            "PackageType": "Zip",
            "Architectures": input.get("Architectures").cloned().unwrap_or(json!(["x86_64"])),
            "EphemeralStorage": input.get("EphemeralStorage").cloned().unwrap_or(json!({"Size": 512})),
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{name}")},
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            "State": "Active",
            "LastUpdateStatus": "Successful",
        });
        if let Some(env) = input.get("Environment").filter(|e| !e.is_null()) {
            config["Environment"] = json!({"Variables": env["Variables"].clone()});
        }
        set_code(&mut config, &pkg);
        let mut doc = json!({
            "latest": config,
            "code": {"$LATEST": pkg.dir.display().to_string()},
            "versions": {},
            "aliases": {},
            "nextVersion": 1,
            "tags": input.get("Tags").cloned().unwrap_or(json!({})),
        });
        let mut answer = doc["latest"].clone();
        if input["Publish"].as_bool() == Some(true) {
            answer = publish(&mut doc, &arn, None);
        }
        self.save(&name, Some(doc.clone())).await?;
        self.register_targets(&name, &doc);
        Ok(answer)
    }

    fn get_function(&self, input: &Value) -> Result<Value, ApiError> {
        let (name, q) = self.name_and_qualifier(input)?;
        let config = self.configuration(&name, q.as_deref())?;
        let doc = self.doc(&name)?;
        let version = str_of(&config, "Version").unwrap_or("$LATEST").to_string();
        let dir = doc["code"][&version]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut out = json!({
            "Configuration": config,
            "Code": {"RepositoryType": "S3", "Location": format!("file://{dir}")},
        });
        if doc["tags"].as_object().is_some_and(|t| !t.is_empty()) {
            out["Tags"] = doc["tags"].clone();
        }
        if let Some(c) = doc["concurrency"].as_u64() {
            out["Concurrency"] = json!({"ReservedConcurrentExecutions": c});
        }
        Ok(out)
    }

    /// The configuration of `$LATEST`, a version, or what an alias points at.
    fn configuration(&self, name: &str, qualifier: Option<&str>) -> Result<Value, ApiError> {
        let doc = self.doc(name)?;
        match qualifier {
            None | Some("$LATEST") => Ok(doc["latest"].clone()),
            Some(q) => {
                if let Some(v) = doc["versions"].get(q) {
                    return Ok(v.clone());
                }
                if let Some(a) = doc["aliases"].get(q) {
                    let v = str_of(a, "FunctionVersion").unwrap_or("$LATEST");
                    return Ok(if v == "$LATEST" {
                        doc["latest"].clone()
                    } else {
                        doc["versions"][v].clone()
                    });
                }
                Err(self.not_found(name, Some(q)))
            }
        }
    }

    async fn update_code(self: &Arc<Self>, input: Value) -> Result<Value, ApiError> {
        let _guard = self.write_lock.lock().await;
        let (name, _) = self.name_and_qualifier(&input)?;
        let mut doc = self.doc(&name)?;
        check_revision(&doc["latest"], &input)?;
        let handler = str_of(&doc["latest"], "Handler")
            .unwrap_or("bootstrap")
            .to_string();
        let pkg = self.package(&name, &input, &handler).await?;
        if input["DryRun"].as_bool() == Some(true) {
            return Ok(doc["latest"].clone());
        }
        set_code(&mut doc["latest"], &pkg);
        touch(&mut doc["latest"]);
        doc["code"]["$LATEST"] = pkg.dir.display().to_string().into();
        let mut answer = doc["latest"].clone();
        if input["Publish"].as_bool() == Some(true) {
            answer = publish(&mut doc, &self.function_arn(&name), None);
        }
        self.save(&name, Some(doc.clone())).await?;
        self.drop_pools(&name, Some("$LATEST"));
        self.register_targets(&name, &doc);
        Ok(answer)
    }

    async fn update_configuration(&self, input: Value) -> Result<Value, ApiError> {
        check_limits(&input)?;
        let _guard = self.write_lock.lock().await;
        let (name, _) = self.name_and_qualifier(&input)?;
        let mut doc = self.doc(&name)?;
        check_revision(&doc["latest"], &input)?;
        if let Some(handler) = str_of(&input, "Handler").filter(|h| wasm::is_wasm_handler(h)) {
            let code = doc["code"]["$LATEST"].as_str().unwrap_or_default();
            check_wasm(Path::new(code), handler).await?;
        }
        let config = &mut doc["latest"];
        for key in [
            "Role",
            "Handler",
            "Description",
            "Timeout",
            "MemorySize",
            "Runtime",
            "EphemeralStorage",
        ] {
            if let Some(v) = input.get(key).filter(|v| !v.is_null()) {
                config[key] = v.clone();
            }
        }
        if let Some(env) = input.get("Environment").filter(|e| !e.is_null()) {
            config["Environment"] = json!({"Variables": env["Variables"].clone()});
        }
        if let Some(mode) = input["TracingConfig"]["Mode"].as_str() {
            config["TracingConfig"] = json!({"Mode": mode});
        }
        touch(config);
        let answer = config.clone();
        self.save(&name, Some(doc)).await?;
        self.drop_pools(&name, Some("$LATEST"));
        Ok(answer)
    }

    async fn delete_function(&self, input: &Value) -> Result<Value, ApiError> {
        let _guard = self.write_lock.lock().await;
        let (name, q) = self.name_and_qualifier(input)?;
        let mut doc = self.doc(&name)?;
        match q.as_deref() {
            None => {
                self.save(&name, None).await?;
                self.unregister_targets(&name, &doc);
                self.drop_pools(&name, None);
                let dir = self.code_root.join(&name);
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
            }
            Some("$LATEST") => {
                return Err(invalid(
                    "$LATEST version cannot be deleted without deleting the function.",
                ))
            }
            Some(v) => {
                if doc["versions"].get(v).is_none() {
                    return Err(self.not_found(&name, Some(v)));
                }
                let used = doc["aliases"].as_object().is_some_and(|a| {
                    a.values().any(|al| {
                        str_of(al, "FunctionVersion") == Some(v)
                            || al["RoutingConfig"]["AdditionalVersionWeights"]
                                .get(v)
                                .is_some()
                    })
                });
                if used {
                    return Err(error(
                        "ResourceConflictException",
                        409,
                        format!("Unable to delete version because the following aliases reference it: version {v}"),
                    ));
                }
                if let Some(m) = doc["versions"].as_object_mut() {
                    m.remove(v);
                }
                if let Some(m) = doc["code"].as_object_mut() {
                    m.remove(v);
                }
                self.save(&name, Some(doc)).await?;
                self.targets
                    .unregister(&format!("{}:{v}", self.function_arn(&name)));
                self.drop_pools(&name, Some(v));
            }
        }
        Ok(json!({"StatusCode": 204}))
    }

    fn list_functions(&self, input: &Value) -> Result<Value, ApiError> {
        let all = str_of(input, "FunctionVersion") == Some("ALL");
        let mut docs: Vec<(String, Value)> = crate::lock(&self.functions)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        docs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut items = Vec::new();
        for (_, doc) in docs {
            items.push(doc["latest"].clone());
            if all {
                items.extend(sorted_versions(&doc));
            }
        }
        let (page, next) = paginate(items, input)?;
        Ok(json!({"Functions": page, "NextMarker": next}))
    }

    fn list_versions(&self, input: &Value) -> Result<Value, ApiError> {
        let (name, _) = self.name_and_qualifier(input)?;
        let doc = self.doc(&name)?;
        let mut items = vec![doc["latest"].clone()];
        items.extend(sorted_versions(&doc));
        let (page, next) = paginate(items, input)?;
        Ok(json!({"Versions": page, "NextMarker": next}))
    }

    async fn publish_version(self: &Arc<Self>, input: &Value) -> Result<Value, ApiError> {
        let _guard = self.write_lock.lock().await;
        let (name, _) = self.name_and_qualifier(input)?;
        let mut doc = self.doc(&name)?;
        check_revision(&doc["latest"], input)?;
        if let Some(sha) = str_of(input, "CodeSha256") {
            if str_of(&doc["latest"], "CodeSha256") != Some(sha) {
                return Err(invalid(format!(
                    "CodeSha256 ({sha}) is different from current CodeSha256 in $LATEST. Please try again with the CodeSha256 in $LATEST."
                )));
            }
        }
        let answer = publish(
            &mut doc,
            &self.function_arn(&name),
            str_of(input, "Description"),
        );
        self.save(&name, Some(doc.clone())).await?;
        self.register_targets(&name, &doc);
        Ok(answer)
    }

    async fn put_alias(self: &Arc<Self>, op: &str, input: &Value) -> Result<Value, ApiError> {
        let _guard = self.write_lock.lock().await;
        let (name, _) =
            self.resolve_name(str_of(input, "FunctionName").unwrap_or_default(), None)?;
        let alias = str_of(input, "Name").unwrap_or_default().to_string();
        let mut doc = self.doc(&name)?;
        if alias.chars().all(|c| c.is_ascii_digit()) || alias == "$LATEST" {
            return Err(invalid(format!("alias name {alias} must not be a version")));
        }
        let existing = doc["aliases"].get(&alias).cloned();
        let mut a = match (op, existing) {
            ("CreateAlias", Some(_)) => {
                return Err(error(
                    "ResourceConflictException",
                    409,
                    format!("Alias already exists: {}:{alias}", self.function_arn(&name)),
                ))
            }
            ("CreateAlias", None) => json!({
                "AliasArn": format!("{}:{alias}", self.function_arn(&name)),
                "Name": alias,
                "Description": "",
            }),
            (_, None) => return Err(self.not_found(&name, Some(&alias))),
            (_, Some(a)) => a,
        };
        if let Some(rev) = str_of(input, "RevisionId") {
            if str_of(&a, "RevisionId") != Some(rev) {
                return Err(precondition());
            }
        }
        if let Some(v) = str_of(input, "FunctionVersion") {
            a["FunctionVersion"] = v.into();
        }
        if let Some(d) = str_of(input, "Description") {
            a["Description"] = d.into();
        }
        if let Some(r) = input.get("RoutingConfig").filter(|r| !r.is_null()) {
            a["RoutingConfig"] = r.clone();
        }
        let version = str_of(&a, "FunctionVersion")
            .unwrap_or_default()
            .to_string();
        let exists = |v: &str| v == "$LATEST" || doc["versions"].get(v).is_some();
        if !exists(&version) {
            return Err(self.not_found(&name, Some(&version)));
        }
        if let Some(w) = a["RoutingConfig"]["AdditionalVersionWeights"].as_object() {
            let mut total = 0.0;
            for (v, weight) in w {
                if !exists(v) || v == "$LATEST" {
                    return Err(invalid(format!(
                        "the routing config names version {v}, which is not a published version"
                    )));
                }
                if *v == version {
                    return Err(invalid(
                        "the routing config cannot name the alias's own version",
                    ));
                }
                total += weight.as_f64().unwrap_or(0.0);
            }
            if total > 1.0 {
                return Err(invalid(
                    "the routing config's weights add up to more than 1",
                ));
            }
        }
        a["RevisionId"] = new_uuid().into();
        doc["aliases"][&alias] = a.clone();
        self.save(&name, Some(doc.clone())).await?;
        self.register_targets(&name, &doc);
        Ok(a)
    }

    fn get_alias(&self, input: &Value) -> Result<Value, ApiError> {
        let (name, _) =
            self.resolve_name(str_of(input, "FunctionName").unwrap_or_default(), None)?;
        let alias = str_of(input, "Name").unwrap_or_default();
        self.doc(&name)?["aliases"]
            .get(alias)
            .cloned()
            .ok_or_else(|| self.not_found(&name, Some(alias)))
    }

    fn list_aliases(&self, input: &Value) -> Result<Value, ApiError> {
        let (name, _) =
            self.resolve_name(str_of(input, "FunctionName").unwrap_or_default(), None)?;
        let doc = self.doc(&name)?;
        let version = str_of(input, "FunctionVersion");
        let mut items: Vec<Value> = doc["aliases"]
            .as_object()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        items.retain(|a| version.is_none() || str_of(a, "FunctionVersion") == version);
        items.sort_by(|a, b| str_of(a, "Name").cmp(&str_of(b, "Name")));
        let (page, next) = paginate(items, input)?;
        Ok(json!({"Aliases": page, "NextMarker": next}))
    }

    async fn delete_alias(&self, input: &Value) -> Result<Value, ApiError> {
        let _guard = self.write_lock.lock().await;
        let (name, _) =
            self.resolve_name(str_of(input, "FunctionName").unwrap_or_default(), None)?;
        let alias = str_of(input, "Name").unwrap_or_default().to_string();
        let mut doc = self.doc(&name)?;
        let removed = doc["aliases"]
            .as_object_mut()
            .and_then(|m| m.remove(&alias));
        if removed.is_some() {
            self.save(&name, Some(doc)).await?;
            self.targets
                .unregister(&format!("{}:{alias}", self.function_arn(&name)));
        }
        Ok(json!({}))
    }

    async fn put_concurrency(&self, input: &Value) -> Result<Value, ApiError> {
        let _guard = self.write_lock.lock().await;
        let (name, _) =
            self.resolve_name(str_of(input, "FunctionName").unwrap_or_default(), None)?;
        let mut doc = self.doc(&name)?;
        let n = input["ReservedConcurrentExecutions"].as_u64().unwrap_or(0);
        doc["concurrency"] = n.into();
        self.save(&name, Some(doc)).await?;
        self.drop_pools(&name, None);
        Ok(json!({"ReservedConcurrentExecutions": n}))
    }

    fn get_concurrency(&self, input: &Value) -> Result<Value, ApiError> {
        let (name, _) =
            self.resolve_name(str_of(input, "FunctionName").unwrap_or_default(), None)?;
        let doc = self.doc(&name)?;
        Ok(match doc["concurrency"].as_u64() {
            Some(n) => json!({"ReservedConcurrentExecutions": n}),
            None => json!({}),
        })
    }

    async fn delete_concurrency(&self, input: &Value) -> Result<Value, ApiError> {
        let _guard = self.write_lock.lock().await;
        let (name, _) =
            self.resolve_name(str_of(input, "FunctionName").unwrap_or_default(), None)?;
        let mut doc = self.doc(&name)?;
        if let Some(m) = doc.as_object_mut() {
            m.remove("concurrency");
        }
        self.save(&name, Some(doc)).await?;
        self.drop_pools(&name, None);
        Ok(json!({}))
    }

    async fn put_event_invoke_config(&self, op: &str, input: &Value) -> Result<Value, ApiError> {
        let _guard = self.write_lock.lock().await;
        let (name, q) = self.name_and_qualifier(input)?;
        let q = q.unwrap_or_else(|| "$LATEST".into());
        let mut doc = self.doc(&name)?;
        let mut config = match (op, doc["eventInvokeConfig"].get(&q)) {
            ("UpdateFunctionEventInvokeConfig", Some(c)) => c.clone(),
            _ => json!({}),
        };
        for key in [
            "MaximumRetryAttempts",
            "MaximumEventAgeInSeconds",
            "DestinationConfig",
        ] {
            if let Some(v) = input.get(key).filter(|v| !v.is_null()) {
                config[key] = v.clone();
            }
        }
        config["FunctionArn"] = format!("{}:{q}", self.function_arn(&name)).into();
        config["LastModified"] = (trellis_core::clock::now_millis() as f64 / 1000.0).into();
        if !doc["eventInvokeConfig"].is_object() {
            doc["eventInvokeConfig"] = json!({});
        }
        doc["eventInvokeConfig"][&q] = config.clone();
        self.save(&name, Some(doc)).await?;
        Ok(config)
    }

    fn get_event_invoke_config(&self, input: &Value) -> Result<Value, ApiError> {
        let (name, q) = self.name_and_qualifier(input)?;
        let q = q.unwrap_or_else(|| "$LATEST".into());
        self.doc(&name)?["eventInvokeConfig"]
            .get(&q)
            .cloned()
            .ok_or_else(|| {
                error(
                    "ResourceNotFoundException",
                    404,
                    format!(
                        "The function {}:{q} doesn't have an EventInvokeConfig",
                        self.function_arn(&name)
                    ),
                )
            })
    }

    async fn delete_event_invoke_config(&self, input: &Value) -> Result<Value, ApiError> {
        let _guard = self.write_lock.lock().await;
        let (name, q) = self.name_and_qualifier(input)?;
        let q = q.unwrap_or_else(|| "$LATEST".into());
        let mut doc = self.doc(&name)?;
        if let Some(m) = doc["eventInvokeConfig"].as_object_mut() {
            m.remove(&q);
        }
        self.save(&name, Some(doc)).await?;
        Ok(json!({}))
    }

    fn list_tags(&self, input: &Value) -> Result<Value, ApiError> {
        let (name, _) = parse_function_name(str_of(input, "Resource").unwrap_or_default());
        Ok(json!({"Tags": self.doc(&name)?["tags"].clone()}))
    }

    async fn tag(&self, op: &str, input: &Value) -> Result<Value, ApiError> {
        let _guard = self.write_lock.lock().await;
        let (name, _) = parse_function_name(str_of(input, "Resource").unwrap_or_default());
        let mut doc = self.doc(&name)?;
        if !doc["tags"].is_object() {
            doc["tags"] = json!({});
        }
        if op == "TagResource" {
            if let Some(tags) = input["Tags"].as_object() {
                for (k, v) in tags {
                    doc["tags"][k] = v.clone();
                }
            }
        } else if let (Some(keys), Some(tags)) =
            (input["TagKeys"].as_array(), doc["tags"].as_object_mut())
        {
            for k in keys.iter().filter_map(Value::as_str) {
                tags.remove(k);
            }
        }
        self.save(&name, Some(doc)).await?;
        Ok(json!({}))
    }

    /// Whether `function` (with `qualifier`) names a version that can be invoked: what
    /// `DryRun` checks, and what an `Event` invocation checks before it is accepted.
    fn check_invocable(&self, function: &str, qualifier: Option<&str>) -> Result<(), ApiError> {
        let (name, q) = self.resolve_name(function, qualifier)?;
        self.with_doc(&name, |doc| self.pick_version_in(doc, &name, q.as_deref()))?
            .map(drop)
    }

    /// The version an invocation of `qualifier` runs: `$LATEST`, a version, or one of an
    /// alias's versions chosen by its routing weights.
    fn pick_version_in(
        &self,
        doc: &Value,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<String, ApiError> {
        match qualifier {
            None | Some("$LATEST") => Ok("$LATEST".into()),
            Some(q) if doc["versions"].get(q).is_some() => Ok(q.to_string()),
            Some(q) => {
                let a = doc["aliases"]
                    .get(q)
                    .ok_or_else(|| self.not_found(name, Some(q)))?;
                let mut roll = fastrand::f64();
                if let Some(w) = a["RoutingConfig"]["AdditionalVersionWeights"].as_object() {
                    for (v, weight) in w {
                        let weight = weight.as_f64().unwrap_or(0.0);
                        if roll < weight {
                            return Ok(v.clone());
                        }
                        roll -= weight;
                    }
                }
                Ok(str_of(a, "FunctionVersion")
                    .unwrap_or("$LATEST")
                    .to_string())
            }
        }
    }

    fn pool(&self, name: &str, version: &str) -> Result<Arc<Pool>, ApiError> {
        let key = format!("{name}:{version}");
        if let Some(p) = crate::lock(&self.pools).get(&key) {
            return Ok(p.clone());
        }
        let doc = self.doc(name)?;
        let config = if version == "$LATEST" {
            &doc["latest"]
        } else {
            &doc["versions"][version]
        };
        let code = doc["code"][version]
            .as_str()
            .ok_or_else(|| self.not_found(name, Some(version)))?;
        let variables = config["Environment"]["Variables"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let spec = Spec {
            function_name: name.to_string(),
            version: version.to_string(),
            code_dir: PathBuf::from(code),
            handler: str_of(config, "Handler").unwrap_or("bootstrap").to_string(),
            memory_mb: config["MemorySize"].as_u64().unwrap_or(128),
            timeout: Duration::from_secs(config["Timeout"].as_u64().unwrap_or(3)),
            region: self.arn.region.clone(),
            variables,
        };
        let concurrency = doc["concurrency"]
            .as_u64()
            .map(|n| n as usize)
            .unwrap_or(DEFAULT_CONCURRENCY);
        let pool = if wasm::is_wasm_handler(&spec.handler) {
            // Compiled when the code was uploaded; only after a restart is this a compile.
            let module = wasm::load(&spec.code_dir, &spec.handler)
                .map_err(|e| error("InvalidRuntimeException", 502, e))?;
            Arc::new(Pool::wasm(spec, concurrency, module))
        } else {
            Arc::new(Pool::new(spec, concurrency))
        };
        crate::lock(&self.pools).insert(key, pool.clone());
        Ok(pool)
    }

    async fn invoke(
        self: Arc<Self>,
        function: &str,
        payload: Bytes,
        opts: InvokeOptions,
    ) -> Result<InvokeResult, ApiError> {
        let p = self.prepare(function, payload, &opts)?;
        let finished = p
            .pool
            .invoke(p.inv, p.tail)
            .await
            .map_err(|_| throttled())?;
        Ok(p.settle.result(finished))
    }

    /// `InvokeWithResponseStream`: the function's response as it streams it, then how the
    /// invocation ended. A function that answers whole gives its response as one chunk.
    async fn invoke_streaming(
        self: Arc<Self>,
        function: &str,
        payload: Bytes,
        opts: &InvokeOptions,
    ) -> Result<StreamingOutput, ApiError> {
        let p = self.prepare(function, payload, opts)?;
        let settle = p.settle;
        let mut headers = vec![("X-Amz-Executed-Version".to_string(), settle.version.clone())];
        let body = match p.pool.invoke_streaming(p.inv, p.tail).await {
            Err(_) => return Err(throttled()),
            Ok(InvokeStream::Done(finished)) => {
                headers.push(("Content-Type".into(), "application/octet-stream".into()));
                let r = settle.result(finished);
                let mut events = Vec::new();
                if r.function_error.is_none() && !r.payload.is_empty() {
                    events.extend_from_slice(&eventstream::payload_chunk(&r.payload));
                }
                events.extend_from_slice(&invoke_complete(&r));
                trellis_core::target::whole(Bytes::from(events))
            }
            Ok(InvokeStream::Stream { content_type, rx }) => {
                headers.push(("Content-Type".into(), content_type));
                let complete = Box::new(move |f| invoke_complete(&settle.result(f)));
                BodyExt::boxed(eventstream::EventBody::new(rx, complete).map_err(|n| match n {}))
            }
        };
        Ok(StreamingOutput {
            status: 200,
            headers,
            body,
        })
    }

    /// Resolves the function, version and pool of a synchronous invocation and builds its
    /// event.
    fn prepare(
        &self,
        function: &str,
        payload: Bytes,
        opts: &InvokeOptions,
    ) -> Result<Prepared, ApiError> {
        let (name, qualifier) = self.resolve_name(function, opts.qualifier.as_deref())?;
        let version = self.with_doc(&name, |doc| {
            if doc["concurrency"].as_u64() == Some(0) {
                return Err(throttled());
            }
            self.pick_version_in(doc, &name, qualifier.as_deref())
        })??;
        let pool = self.pool(&name, &version)?;
        let invoked_arn = match &qualifier {
            Some(q) => format!("{}:{q}", self.function_arn(&name)),
            None => self.function_arn(&name),
        };
        let client_context = opts
            .client_context
            .as_deref()
            .and_then(base64_decode)
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let request_id = new_uuid();
        let inv = Invocation {
            request_id: request_id.clone(),
            payload,
            invoked_arn,
            trace_id: format!(
                "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0;Lineage=1:{:08x}:0",
                trellis_core::clock::now_millis() / 1000,
                fastrand::u128(..) >> 32,
                fastrand::u64(..),
                fastrand::u32(..)
            ),
            client_context,
            cognito_identity: None,
            stream: false,
        };
        Ok(Prepared {
            settle: Settle {
                request_id,
                version,
                timeout: pool.spec.timeout,
            },
            tail: if opts.tail { TAIL_BYTES } else { 0 },
            pool,
            inv,
        })
    }

    /// One HTTP request to a `wasi:http` component function, as the function's
    /// [`Target::invoke_http`]: version routing, concurrency and logging as `invoke` has them.
    /// A function that is not a component answers [`not_an_http_function`].
    async fn invoke_http(
        self: Arc<Self>,
        function: &str,
        qualifier: Option<&str>,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, TargetError> {
        let (pool, arn) = self.http_pool(function, qualifier)?;
        if request.body().len() > MAX_SYNC_PAYLOAD {
            return Err(TargetError::Failed {
                error: "RequestTooLargeException".into(),
                cause: format!(
                    "Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the InvokeFunction operation"
                ),
            });
        }
        let Some(done) = pool.invoke_http(request, &new_uuid()).await else {
            return Err(not_an_http_function(&arn));
        };
        let done = done.map_err(|_| throttled_target())?;
        match done.response {
            Some(response) => Ok(response),
            None => Err(http_failure(done.finished.outcome, arn)),
        }
    }

    /// As [`invoke_http`](Self::invoke_http), both bodies streamed: the request's read as the
    /// component reads it, the response's as the component writes it
    /// ([`Target::invoke_http_streaming`], for `WASM` target groups). The version is chosen
    /// here, once: when it is not a component, the request is given back untouched.
    fn invoke_http_streaming(
        &self,
        function: &str,
        qualifier: Option<&str>,
        request: StreamingRequest,
    ) -> Result<StreamingAnswer, StreamingRequest> {
        let (pool, arn) = match self.http_pool(function, qualifier) {
            Ok(found) => found,
            Err(e) => return Ok(Box::pin(async move { Err(e) })),
        };
        if pool.component().is_none() {
            return Err(request);
        }
        Ok(Box::pin(async move {
            let Some(done) = pool.stream_http(request, &new_uuid()).await else {
                return Err(not_an_http_function(&arn));
            };
            match done.map_err(|_| throttled_target())? {
                HttpStreamed::Response(r) => Ok(r.map(BodyExt::boxed)),
                HttpStreamed::Failed(finished) => Err(http_failure(finished.outcome, arn)),
            }
        }))
    }

    fn http_pool(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<(Arc<Pool>, String), TargetError> {
        let arn = match qualifier {
            Some(q) => format!("{}:{q}", self.function_arn(function)),
            None => self.function_arn(function),
        };
        let api = |e: ApiError| {
            if e.status == 404 {
                TargetError::NotFound(arn.clone())
            } else {
                TargetError::Unavailable(e.message)
            }
        };
        let version = self
            .with_doc(function, |doc| {
                if doc["concurrency"].as_u64() == Some(0) {
                    return Err(throttled());
                }
                self.pick_version_in(doc, function, qualifier)
            })
            .map_err(api)?
            .map_err(api)?;
        let pool = self.pool(function, &version).map_err(api)?;
        Ok((pool, arn))
    }

    /// Runs an accepted `Event` invocation, then forgets its record.
    fn spawn_async(self: Arc<Self>, id: String, r: AsyncRecord) {
        tokio::spawn(async move {
            self.clone()
                .invoke_async(r.function, r.payload, r.opts, r.received_ms)
                .await;
            self.commits
                .commit_later(vec![Write::delete(KIND_ASYNC, &id)]);
        });
    }

    /// An `Event` invocation: retried per the function's event invoke config (two retries by
    /// default, 1 s then 2 s apart) while younger than its maximum age (counted from when it
    /// was accepted), then sent to its on-success or on-failure destination.
    async fn invoke_async(
        self: Arc<Self>,
        function: String,
        payload: Bytes,
        opts: InvokeOptions,
        received_ms: u64,
    ) {
        let Ok((name, q)) = self.resolve_name(&function, opts.qualifier.as_deref()) else {
            return;
        };
        let Ok(doc) = self.doc(&name) else { return };
        let config = doc["eventInvokeConfig"]
            .get(q.as_deref().unwrap_or("$LATEST"))
            .cloned()
            .unwrap_or(Value::Null);
        let retries = config["MaximumRetryAttempts"].as_u64().unwrap_or(2);
        let max_age = Duration::from_secs(
            config["MaximumEventAgeInSeconds"]
                .as_u64()
                .unwrap_or(21_600),
        );
        let opts = InvokeOptions {
            tail: false,
            ..opts
        };
        let mut attempts = 0;
        let (result, condition) = loop {
            attempts += 1;
            let r = self
                .clone()
                .invoke(&function, payload.clone(), opts.clone())
                .await;
            let failed = match &r {
                Ok(r) => r.function_error.is_some(),
                Err(_) => true,
            };
            if !failed {
                break (r, "Success");
            }
            if attempts > retries {
                break (r, "RetriesExhausted");
            }
            let wait = Duration::from_secs(attempts);
            let age = Duration::from_millis(
                trellis_core::clock::now_millis().saturating_sub(received_ms),
            );
            if age + wait > max_age {
                break (r, "EventAgeExceeded");
            }
            tokio::time::sleep(wait).await;
        };
        let destination = if condition == "Success" {
            config["DestinationConfig"]["OnSuccess"]["Destination"].as_str()
        } else {
            tracing::warn!(function = %name, condition, "asynchronous invocation failed");
            config["DestinationConfig"]["OnFailure"]["Destination"].as_str()
        };
        let Some(destination) = destination else {
            return;
        };
        let request_payload: Value = serde_json::from_slice(&payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&payload).into_owned()));
        let (response_context, response_payload) = match &result {
            Ok(r) => {
                let mut ctx = json!({"statusCode": 200, "executedVersion": r.executed_version});
                if let Some(e) = &r.function_error {
                    ctx["functionError"] = e.clone().into();
                }
                (
                    ctx,
                    serde_json::from_slice(&r.payload).unwrap_or(Value::Null),
                )
            }
            Err(e) => (
                json!({"statusCode": e.status, "functionError": e.code}),
                json!({"errorMessage": e.message}),
            ),
        };
        let record = json!({
            "version": "1.0",
            "timestamp": trellis_core::clock::now_iso8601(),
            "requestContext": {
                "requestId": new_uuid(),
                "functionArn": format!("{}:{}", self.function_arn(&name), q.as_deref().unwrap_or("$LATEST")),
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "requestPayload": request_payload,
            "responseContext": response_context,
            "responsePayload": response_payload,
        });
        if let Err(e) = self
            .targets
            .invoke(destination, Bytes::from(record.to_string()))
            .await
        {
            tracing::warn!(function = %name, destination, "destination failed: {e}");
        }
    }
}

fn throttled() -> ApiError {
    error("TooManyRequestsException", 429, "Rate Exceeded.").with(
        "Reason",
        "ReservedFunctionConcurrentInvocationLimitExceeded",
    )
}

fn precondition() -> ApiError {
    error(
        "PreconditionFailedException",
        412,
        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
    )
}

/// Compiles (and caches) the WebAssembly module `handler` names in `dir`.
async fn check_wasm(dir: &Path, handler: &str) -> Result<(), ApiError> {
    let (dir, handler) = (dir.to_path_buf(), handler.to_string());
    tokio::task::spawn_blocking(move || wasm::load(&dir, &handler))
        .await
        .map_err(ApiError::internal)?
        .map(drop)
        .map_err(invalid)
}

pub(crate) fn error_payload(error_type: &str, message: &str) -> Bytes {
    Bytes::from(json!({"errorType": error_type, "errorMessage": message}).to_string())
}

/// `Runtime.ExitError`, with the process's last output lines in `trace` when it said anything.
fn exit_payload(message: &str, last_lines: &[String]) -> Bytes {
    let mut doc = json!({"errorType": "Runtime.ExitError", "errorMessage": message});
    if !last_lines.is_empty() {
        doc["trace"] = json!(last_lines);
    }
    Bytes::from(doc.to_string())
}

/// Lambda's limits that the model does not state: 900 s and 10,240 MB.
fn check_limits(input: &Value) -> Result<(), ApiError> {
    if input["Timeout"].as_u64().is_some_and(|t| t > 900) {
        return Err(invalid("Timeout must be at most 900 seconds (15 minutes)."));
    }
    if input["MemorySize"].as_u64().is_some_and(|m| m > 10_240) {
        return Err(invalid(
            "'MemorySize' value failed to satisfy constraint: Member must have value less than or equal to 10240",
        ));
    }
    Ok(())
}

fn check_revision(config: &Value, input: &Value) -> Result<(), ApiError> {
    match str_of(input, "RevisionId") {
        Some(rev) if str_of(config, "RevisionId") != Some(rev) => Err(precondition()),
        _ => Ok(()),
    }
}

fn set_code(config: &mut Value, pkg: &Package) {
    config["CodeSha256"] = pkg.sha256.clone().into();
    config["CodeSize"] = pkg.size.into();
    touch(config);
}

fn touch(config: &mut Value) {
    config["LastModified"] = last_modified().into();
    config["RevisionId"] = new_uuid().into();
    config["State"] = "Active".into();
    config["LastUpdateStatus"] = "Successful".into();
}

/// Publishes `$LATEST` as a new version, unless the newest version already has the same code
/// and configuration (then that version is the answer, as on AWS).
fn publish(doc: &mut Value, function_arn: &str, description: Option<&str>) -> Value {
    let latest = doc["latest"].clone();
    let same = |a: &Value, b: &Value| {
        let strip = |v: &Value| {
            let mut m: Map<String, Value> = v.as_object().cloned().unwrap_or_default();
            for k in [
                "Version",
                "FunctionArn",
                "LastModified",
                "RevisionId",
                "Description",
            ] {
                m.remove(k);
            }
            m
        };
        strip(a) == strip(b)
    };
    if let Some(newest) = sorted_versions(doc).last() {
        if same(newest, &latest) {
            return newest.clone();
        }
    }
    let n = doc["nextVersion"].as_u64().unwrap_or(1);
    let v = n.to_string();
    let mut config = latest;
    config["Version"] = v.clone().into();
    config["FunctionArn"] = format!("{function_arn}:{v}").into();
    if let Some(d) = description {
        config["Description"] = d.into();
    }
    config["RevisionId"] = new_uuid().into();
    doc["versions"][&v] = config.clone();
    doc["code"][&v] = doc["code"]["$LATEST"].clone();
    doc["nextVersion"] = (n + 1).into();
    config
}

fn sorted_versions(doc: &Value) -> Vec<Value> {
    let mut v: Vec<(u64, Value)> = doc["versions"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.parse().unwrap_or(0), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|(n, _)| *n);
    v.into_iter().map(|(_, v)| v).collect()
}

/// `Marker` is the index of the first item; `MaxItems` defaults to 50.
fn paginate(items: Vec<Value>, input: &Value) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let start = match str_of(input, "Marker") {
        Some(m) => m.parse::<usize>().map_err(|_| invalid("invalid Marker"))?,
        None => 0,
    };
    let max = input["MaxItems"].as_u64().unwrap_or(50) as usize;
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((items.into_iter().skip(start).take(max).collect(), next))
}

// === impl FunctionTarget ===

impl FunctionTarget {
    /// The Lambda service this target belongs to, while it runs.
    fn service(&self) -> Result<Arc<Inner>, TargetError> {
        self.inner
            .upgrade()
            .ok_or_else(|| TargetError::NotFound(self.arn.clone()))
    }
}

impl Target for FunctionTarget {
    fn arn(&self) -> &str {
        &self.arn
    }

    fn invoke(&self, payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
        let FunctionTarget {
            arn,
            name,
            qualifier,
            ..
        } = self.clone();
        let inner = self.service();
        Box::pin(async move {
            let opts = InvokeOptions {
                qualifier,
                ..Default::default()
            };
            let r = inner?.invoke(&name, payload, opts).await.map_err(|e| {
                if e.status == 404 {
                    TargetError::NotFound(arn.clone())
                } else {
                    TargetError::Unavailable(e.message)
                }
            })?;
            if r.timed_out {
                return Err(TargetError::Timeout(arn));
            }
            match r.function_error {
                None => Ok(r.payload),
                Some(_) => {
                    let doc: Value = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
                    Err(TargetError::Failed {
                        error: str_of(&doc, "errorType").unwrap_or("Unhandled").to_string(),
                        cause: str_of(&doc, "errorMessage")
                            .map(str::to_string)
                            .unwrap_or_else(|| String::from_utf8_lossy(&r.payload).into_owned()),
                    })
                }
            }
        })
    }

    fn invoke_http(
        &self,
        req: trellis_core::target::HttpRequest,
    ) -> BoxFuture<'static, Result<trellis_core::target::HttpResponse, TargetError>> {
        let this = self.clone();
        Box::pin(async move {
            this.service()?
                .invoke_http(&this.name, this.qualifier.as_deref(), req)
                .await
        })
    }

    fn invoke_http_streaming(
        &self,
        req: StreamingRequest,
    ) -> Result<StreamingAnswer, StreamingRequest> {
        match self.service() {
            Ok(inner) => inner.invoke_http_streaming(&self.name, self.qualifier.as_deref(), req),
            Err(e) => Ok(Box::pin(async move { Err(e) })),
        }
    }
}

/// What a function that is not a `wasi:http` component answers to `invoke_http` (one that
/// streams, [`Target::invoke_http_streaming`], gives the request back instead).
pub fn not_an_http_function(arn: &str) -> TargetError {
    TargetError::Unavailable(format!("{arn} is not a wasi:http component function"))
}

/// A component that gave no HTTP answer, as the caller's error.
fn http_failure(outcome: Outcome, arn: String) -> TargetError {
    match outcome {
        Outcome::TimedOut => TargetError::Timeout(arn),
        Outcome::TooLarge(n) => TargetError::Failed {
            error: "Function.ResponseSizeTooLarge".into(),
            cause: format!("Response payload size ({n} bytes) exceeded maximum allowed payload size ({MAX_SYNC_PAYLOAD} bytes)."),
        },
        Outcome::Error(doc) => {
            let doc: Value = serde_json::from_slice(&doc).unwrap_or(Value::Null);
            TargetError::Failed {
                error: str_of(&doc, "errorType").unwrap_or("Unhandled").to_string(),
                cause: str_of(&doc, "errorMessage").unwrap_or_default().to_string(),
            }
        }
        other => TargetError::Failed {
            error: "Unhandled".into(),
            cause: format!("{other:?}"),
        },
    }
}

/// A function at its concurrency limit with a full queue, as the caller's error.
fn throttled_target() -> TargetError {
    TargetError::Unavailable(throttled().message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_and_qualifiers() {
        assert_eq!(parse_function_name("f"), ("f".into(), None));
        assert_eq!(
            parse_function_name("f:live"),
            ("f".into(), Some("live".into()))
        );
        assert_eq!(
            parse_function_name("arn:aws:lambda:us-east-1:000000000000:function:f:3"),
            ("f".into(), Some("3".into()))
        );
        assert_eq!(
            parse_function_name("000000000000:function:f"),
            ("f".into(), None)
        );
    }

    #[test]
    fn publishing_unchanged_code_returns_the_newest_version() {
        let mut doc = json!({
            "latest": {"FunctionName": "f", "CodeSha256": "a", "Version": "$LATEST"},
            "code": {"$LATEST": "/x"},
            "versions": {},
            "nextVersion": 1,
        });
        let v1 = publish(&mut doc, "arn:f", None);
        assert_eq!(v1["Version"], "1");
        assert_eq!(publish(&mut doc, "arn:f", None)["Version"], "1");
        doc["latest"]["CodeSha256"] = "b".into();
        assert_eq!(publish(&mut doc, "arn:f", None)["Version"], "2");
        assert_eq!(doc["code"]["2"], "/x");
    }

    #[test]
    fn the_model_routes_lambda_paths() {
        let m = lambda_model();
        let (op, labels) = m
            .route("POST", "/2015-03-31/functions/echo/invocations", None)
            .unwrap();
        assert_eq!(op.name, "Invoke");
        assert_eq!(labels["FunctionName"], "echo");
    }
}
