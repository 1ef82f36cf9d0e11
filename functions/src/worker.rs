//! One worker: a `bootstrap` process and the Lambda Runtime API endpoint it alone talks to
//! (`AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT`). Giving each worker its own port tells us, without
//! trusting the process, which invocation a `/response` or a crash belongs to. A worker runs one
//! invocation at a time; its stdout and stderr go to a ring buffer from which each invocation's
//! tail is cut.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify};

/// The largest synchronous response a function may post (Lambda's 6 MB).
pub const MAX_RESPONSE: usize = 6 * 1024 * 1024;
/// The largest response a function may stream to `InvokeWithResponseStream` (Lambda's 200 MB).
pub const MAX_STREAMED_RESPONSE: usize = 200 * 1024 * 1024;
/// The request header with which a runtime streams its response.
const RESPONSE_MODE: &str = "lambda-runtime-function-response-mode";
/// The trailers with which a runtime reports an error in the middle of a streamed response.
const ERROR_TYPE: &str = "lambda-runtime-function-error-type";
const ERROR_BODY: &str = "lambda-runtime-function-error-body";
/// How long a fresh worker may take to ask for its first invocation.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
const LOG_CAPACITY: usize = 64 * 1024;
const PREFIX: &str = "/2018-06-01/runtime";
const SETPRIV_PATH: &str = "/usr/bin/setpriv";
const PRLIMIT_PATH: &str = "/usr/bin/prlimit";

/// What a worker is started with: everything that does not change per invocation.
#[derive(Debug, Clone)]
pub struct Spec {
    pub function_name: String,
    pub version: String,
    pub code_dir: PathBuf,
    pub handler: String,
    pub memory_mb: u64,
    pub timeout: Duration,
    pub region: String,
    pub variables: Vec<(String, String)>,
}

/// One invocation as the Runtime API hands it to the function.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    pub invoked_arn: String,
    pub trace_id: String,
    /// JSON, already decoded from the caller's base64 `X-Amz-Client-Context`.
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    /// The caller takes a streamed response as it comes (`InvokeWithResponseStream`); for
    /// other callers a streamed response is gathered (at most [`MAX_RESPONSE`]).
    pub stream: bool,
}

/// How an invocation ended.
#[derive(Debug)]
pub enum Outcome {
    /// `/response`.
    Response(Bytes),
    /// `/error` (or `/init/error`): the function's error document.
    Error(Bytes),
    /// The process exited before answering.
    Exited(String),
    /// The bootstrap could not be started (missing, not executable, bad interpreter).
    NotStarted(String),
    /// The deadline passed; the worker was killed.
    TimedOut,
    /// The function posted more than Lambda allows.
    TooLarge(usize),
    /// The function streamed more than Lambda allows ([`MAX_STREAMED_RESPONSE`]).
    StreamTooLarge(usize),
    /// A streaming invocation's response has begun: its body follows in the stream, and the
    /// invocation ends with it.
    Streaming(ResponseStream),
}

impl Outcome {
    pub fn is_timeout(&self) -> bool {
        matches!(self, Outcome::TimedOut)
    }
}

/// A response the function streams (`Lambda-Runtime-Function-Response-Mode: streaming`), as
/// its runtime posts it. The runtime's POST is answered once this is read to the end or dropped.
pub struct ResponseStream {
    /// The runtime's `Content-Type` (`application/octet-stream` when it set none).
    pub content_type: String,
    /// When the function's timeout passes (it runs from when the event was taken).
    pub deadline: tokio::time::Instant,
    body: Incoming,
    _posted: oneshot::Sender<()>,
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// A piece of a streamed response.
#[derive(Debug, PartialEq)]
pub enum StreamPart {
    Chunk(Bytes),
    /// The end: `None` when the function finished, else the error document its runtime
    /// reported in the error trailers.
    End(Option<Bytes>),
    /// The runtime's connection broke off before the end (the process died, most likely).
    Broken(String),
}

impl ResponseStream {
    /// The next piece of the response.
    pub async fn next(&mut self) -> StreamPart {
        loop {
            return match self.body.frame().await {
                None => StreamPart::End(None),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => StreamPart::Chunk(data),
                    Err(frame) => match frame.into_trailers() {
                        Ok(trailers) => StreamPart::End(trailer_error(&trailers)),
                        Err(_) => continue,
                    },
                },
                Some(Err(e)) => StreamPart::Broken(format!(
                    "Error: Runtime exited with error: the response stream broke off: {e}"
                )),
            };
        }
    }
}

/// The error a runtime reported in the trailers of a streamed response, as an error document.
fn trailer_error(trailers: &http::HeaderMap) -> Option<Bytes> {
    let error_type = trailers
        .get(ERROR_TYPE)?
        .to_str()
        .ok()
        .unwrap_or("Unhandled");
    let body = trailers
        .get(ERROR_BODY)
        .and_then(|v| trellis_core::model::base64_decode(v.to_str().ok()?))
        .unwrap_or_default();
    Some(error_document(
        Bytes::from(body),
        Some(error_type),
        "Unhandled",
    ))
}
pub struct Worker {
    shared: Arc<Shared>,
    pid: Option<u32>,
    next_tx: mpsc::Sender<Invocation>,
    server: tokio::task::JoinHandle<()>,
}

struct Shared {
    spec: Spec,
    next_rx: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    inflight: Mutex<Option<Inflight>>,
    logs: Mutex<Logs>,
    alive: AtomicBool,
    kill: Notify,
    exit_status: Mutex<Option<String>>,
    /// An `/init/error` posted before any invocation was in flight.
    init_error: Mutex<Option<Bytes>>,
    /// When the process was spawned, and how long it took to ask for its first event (its
    /// init: the REPORT line's `Init Duration`).
    spawned: Instant,
    ready: std::sync::OnceLock<Duration>,
}

struct Inflight {
    request_id: String,
    /// The caller takes a streamed response as it comes ([`Invocation::stream`]).
    stream: bool,
    /// When the function's timeout passes: set when the process takes the event.
    deadline: Option<tokio::time::Instant>,
    result: oneshot::Sender<Outcome>,
    picked: Option<oneshot::Sender<()>>,
}

/// The last `LOG_CAPACITY` bytes of output and how many were ever written, so an invocation
/// can cut out what was written since it started.
#[derive(Default)]
struct Logs {
    buf: VecDeque<u8>,
    total: u64,
}

// === impl Worker ===

impl Worker {
    /// Binds the worker's Runtime API port and starts its process.
    pub async fn start(spec: Spec) -> Result<Worker, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot bind the runtime API: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let (next_tx, next_rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            spec,
            next_rx: tokio::sync::Mutex::new(next_rx),
            inflight: Mutex::new(None),
            logs: Mutex::new(Logs::default()),
            alive: AtomicBool::new(true),
            kill: Notify::new(),
            exit_status: Mutex::new(None),
            init_error: Mutex::new(None),
            spawned: Instant::now(),
            ready: std::sync::OnceLock::new(),
        });
        let mut child = command(&shared.spec, port).spawn().map_err(|e| {
            format!(
                "cannot start {}/bootstrap: {e}",
                shared.spec.code_dir.display()
            )
        })?;
        let pid = child.id();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump(shared.clone(), out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump(shared.clone(), err));
        }
        tokio::spawn(supervise(shared.clone(), child));
        let server = tokio::spawn(serve(shared.clone(), listener));
        Ok(Worker {
            shared,
            pid,
            next_tx,
            server,
        })
    }

    /// From spawning the process to its first `/next`, once it has asked.
    pub fn init_duration(&self) -> Option<Duration> {
        self.shared.ready.get().copied()
    }

    pub fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::Acquire)
    }

    /// The process's peak resident memory in MB (Linux `VmHWM`), when it can be read.
    pub fn max_memory_mb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb.div_ceil(1024))
    }

    /// The log offset now: an invocation's logs are what is written after it.
    pub fn log_mark(&self) -> u64 {
        lock(&self.shared.logs).total
    }

    /// Output written since `mark`, at most the last `max` bytes.
    pub fn logs_since(&self, mark: u64, max: usize) -> Vec<u8> {
        let logs = lock(&self.shared.logs);
        let new = (logs.total - mark).min(logs.buf.len() as u64) as usize;
        let take = new.min(max);
        logs.buf
            .iter()
            .skip(logs.buf.len() - take)
            .copied()
            .collect()
    }

    /// Appends a platform line (`START`, `END`, `REPORT`) to the worker's log.
    pub fn log_line(&self, line: &str) {
        append(&self.shared, line.as_bytes());
    }

    /// Runs one invocation: waits for the process to take it (at most [`INIT_TIMEOUT`]), then
    /// for its answer until the function's timeout, killing the process when that passes.
    pub async fn invoke(&self, inv: Invocation) -> Outcome {
        let (result_tx, mut result_rx) = oneshot::channel();
        let (picked_tx, picked_rx) = oneshot::channel();
        *lock(&self.shared.inflight) = Some(Inflight {
            request_id: inv.request_id.clone(),
            stream: inv.stream,
            deadline: None,
            result: result_tx,
            picked: Some(picked_tx),
        });
        if let Some(doc) = lock(&self.shared.init_error).take() {
            lock(&self.shared.inflight).take();
            self.kill();
            return Outcome::Error(doc);
        }
        if !self.is_alive() {
            lock(&self.shared.inflight).take();
            let status = lock(&self.shared.exit_status)
                .clone()
                .unwrap_or_else(|| "killed".into());
            return Outcome::Exited(format!(
                "RequestId: {} Error: Runtime exited with error: {status}",
                inv.request_id
            ));
        }
        let timeout = self.shared.spec.timeout;
        if self.next_tx.send(inv).await.is_err() {
            lock(&self.shared.inflight).take();
            return Outcome::Exited("the runtime API is gone".into());
        }
        // Until the process asks for the invocation, only an exit or a stuck init can happen.
        let no_answer = || Outcome::Exited("Runtime exited without an answer".into());
        tokio::select! {
            biased;
            r = &mut result_rx => return r.unwrap_or_else(|_| no_answer()),
            p = tokio::time::timeout(INIT_TIMEOUT, picked_rx) => match p {
                Ok(Ok(())) => {}
                // The process exited: its outcome is on its way.
                Ok(Err(_)) => return result_rx.await.unwrap_or_else(|_| no_answer()),
                Err(_) => {
                    self.kill();
                    lock(&self.shared.inflight).take();
                    return Outcome::TimedOut;
                }
            }
        }
        match tokio::time::timeout(timeout, result_rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::Exited("no answer".into()),
            Err(_) => {
                lock(&self.shared.inflight).take();
                self.kill();
                Outcome::TimedOut
            }
        }
    }

    /// The answer of the invocation in flight, for a new owner: its caller went away, and
    /// whoever takes this waits for the end in its place. `None` when nothing is in flight.
    pub fn take_over(&self) -> Option<oneshot::Receiver<Outcome>> {
        let mut inflight = lock(&self.shared.inflight);
        let inflight = inflight.as_mut()?;
        let (tx, rx) = oneshot::channel();
        inflight.result = tx;
        Some(rx)
    }

    pub fn kill(&self) {
        self.shared.alive.store(false, Ordering::Release);
        self.shared.kill.notify_one();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
        self.server.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process with the environment the Lambda service gives `provided` runtimes.
fn command(spec: &Spec, port: u16) -> tokio::process::Command {
    // Workers must not outlive Trellis, even when it is SIGKILLed: util-linux's `setpriv` sets
    // the parent-death signal and execs the bootstrap (same pid), without unsafe code here.
    // Memory is capped the same way: util-linux's `prlimit` sets RLIMIT_DATA (heap and private
    // writable mappings, what a function's allocations grow) to `MemorySize`, then execs.
    static SETPRIV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    static PRLIMIT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let bootstrap = spec.code_dir.join("bootstrap");
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    if *PRLIMIT.get_or_init(|| std::path::Path::new(PRLIMIT_PATH).is_file()) {
        let bytes = spec.memory_mb.saturating_mul(1024 * 1024);
        argv.extend([
            PRLIMIT_PATH.into(),
            format!("--data={bytes}:{bytes}").into(),
            "--".into(),
        ]);
    }
    if *SETPRIV.get_or_init(|| std::path::Path::new(SETPRIV_PATH).is_file()) {
        argv.extend([
            SETPRIV_PATH.into(),
            "--pdeathsig".into(),
            "KILL".into(),
            "--".into(),
        ]);
    }
    argv.push(bootstrap.into());
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let task_root = spec.code_dir.display().to_string();
    let stream = format!(
        "{}/[{}]{:032x}",
        trellis_core::clock::iso8601(trellis_core::clock::now_millis())
            .get(..10)
            .unwrap_or("")
            .replace('-', "/"),
        spec.version,
        fastrand::u128(..)
    );
    cmd.current_dir(&spec.code_dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin")
        .env(
            "LD_LIBRARY_PATH",
            format!("{task_root}/lib:/lib64:/usr/lib64:/opt/lib"),
        )
        .env("LANG", "en_US.UTF-8")
        .env("TZ", ":UTC")
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", &spec.function_name)
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        )
        .env("AWS_LAMBDA_FUNCTION_VERSION", &spec.version)
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.function_name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", stream)
        .env("AWS_REGION", &spec.region)
        .env("AWS_DEFAULT_REGION", &spec.region)
        .env("_HANDLER", &spec.handler)
        .env("LAMBDA_TASK_ROOT", &task_root)
        .env("LAMBDA_RUNTIME_DIR", &task_root)
        .envs(spec.variables.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Ok(home) = std::env::var("HOME") {
        cmd.env("HOME", home);
    }
    cmd
}

fn append(shared: &Shared, bytes: &[u8]) {
    let mut logs = lock(&shared.logs);
    logs.total += bytes.len() as u64;
    logs.buf.extend(bytes);
    let excess = logs.buf.len().saturating_sub(LOG_CAPACITY);
    logs.buf.drain(..excess);
}

/// Copies the process's output, line by line, into the log buffer and the Trellis log.
async fn pump(shared: Arc<Shared>, out: impl tokio::io::AsyncRead + Unpin) {
    let mut reader = tokio::io::BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                append(&shared, &line);
                tracing::info!(
                    target: "trellis::function",
                    function = %shared.spec.function_name,
                    "{}",
                    String::from_utf8_lossy(&line).trim_end()
                );
            }
        }
    }
}

/// Waits for the process to exit (or to be killed) and fails its in-flight invocation.
async fn supervise(shared: Arc<Shared>, mut child: tokio::process::Child) {
    let status = tokio::select! {
        s = child.wait() => s,
        _ = shared.kill.notified() => {
            let _ = child.kill().await;
            child.wait().await
        }
    };
    let status = match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    *lock(&shared.exit_status) = Some(status.clone());
    shared.alive.store(false, Ordering::Release);
    // Let the output pumps catch up so the error carries the last lines.
    tokio::time::sleep(Duration::from_millis(5)).await;
    if let Some(inflight) = lock(&shared.inflight).take() {
        let _ = inflight.result.send(Outcome::Exited(format!(
            "RequestId: {} Error: Runtime exited with error: {status}",
            inflight.request_id
        )));
    }
}

/// The Runtime API for this worker's process.
async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors, most likely: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            // Flattened writes: each `/next` answer leaves in one write(2).
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .writev(false)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Resp {
    reply(
        status,
        &serde_json::json!({"errorMessage": message, "errorType": error_type}).to_string(),
    )
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path");
    };
    let method = req.method().clone();
    if method == Method::GET && rest == "/invocation/next" {
        return next(shared).await;
    }
    if method != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "InvalidRequest",
            "method not allowed",
        );
    }
    let error_type = req
        .headers()
        .get(ERROR_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let streamed = req
        .headers()
        .get(RESPONSE_MODE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"));
    if streamed && rest.ends_with("/response") {
        return streamed_response(shared, rest, req).await;
    }
    let body = match Limited::new(req.into_body(), MAX_RESPONSE + 1)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if rest == "/init/error" {
        let doc = error_document(body, error_type.as_deref(), "Runtime.InitError");
        match lock(&shared.inflight).take() {
            Some(inflight) => {
                let _ = inflight.result.send(Outcome::Error(doc));
            }
            None => *lock(&shared.init_error) = Some(doc),
        }
        return reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#);
    }
    let Some(tail) = rest.strip_prefix("/invocation/") else {
        return error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path");
    };
    let Some((id, what)) = tail.split_once('/') else {
        return error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path");
    };
    let mut guard = lock(&shared.inflight);
    if guard.as_ref().is_none_or(|i| i.request_id != id) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "Invalid request ID",
        );
    }
    let outcome = match what {
        "response" if body.len() > MAX_RESPONSE => Outcome::TooLarge(body.len()),
        "response" => Outcome::Response(body),
        "error" => Outcome::Error(error_document(body, error_type.as_deref(), "Unhandled")),
        _ => return error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path"),
    };
    let too_large = matches!(outcome, Outcome::TooLarge(_));
    if let Some(inflight) = guard.take() {
        let _ = inflight.result.send(outcome);
    }
    drop(guard);
    if too_large {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE} bytes)."),
        );
    }
    reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

/// `POST /invocation/{id}/response` in streaming mode. A streaming caller gets the body as it
/// comes ([`Outcome::Streaming`]) and the POST is answered when the caller has read it or let
/// it go; for any other caller the stream is gathered here like a buffered response.
async fn streamed_response(shared: &Shared, rest: &str, req: Request<Incoming>) -> Resp {
    let id = rest
        .strip_prefix("/invocation/")
        .and_then(|t| t.strip_suffix("/response"))
        .unwrap_or_default();
    let inflight = {
        let mut guard = lock(&shared.inflight);
        if guard.as_ref().is_none_or(|i| i.request_id != id) {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestID",
                "Invalid request ID",
            );
        }
        guard.take().expect("checked above")
    };
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let (posted, read) = oneshot::channel();
    let deadline = inflight
        .deadline
        .unwrap_or_else(|| tokio::time::Instant::now() + shared.spec.timeout);
    let mut stream = ResponseStream {
        content_type,
        deadline,
        body: req.into_body(),
        _posted: posted,
    };
    if inflight.stream {
        let _ = inflight.result.send(Outcome::Streaming(stream));
        // Answered when the stream is dropped: read to its end, or given up on.
        let _ = read.await;
        return reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#);
    }
    let mut body = Vec::new();
    let outcome = loop {
        match stream.next().await {
            StreamPart::Chunk(c) if body.len() + c.len() > MAX_RESPONSE => {
                break Outcome::TooLarge(body.len() + c.len())
            }
            StreamPart::Chunk(c) => body.extend_from_slice(&c),
            StreamPart::End(None) => break Outcome::Response(Bytes::from(body)),
            StreamPart::End(Some(doc)) => break Outcome::Error(doc),
            StreamPart::Broken(why) => {
                // Not to be handed another invocation before its exit is seen.
                shared.alive.store(false, Ordering::Release);
                shared.kill.notify_one();
                break Outcome::Exited(format!("RequestId: {id} {why}"));
            }
        }
    };
    let too_large = matches!(outcome, Outcome::TooLarge(_));
    let _ = inflight.result.send(outcome);
    if too_large {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE} bytes)."),
        );
    }
    reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

/// The error document a caller sees: the function's own when it posted JSON, else one built
/// from the error-type header.
fn error_document(body: Bytes, error_type: Option<&str>, default: &str) -> Bytes {
    if serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v.is_object()) {
        return body;
    }
    Bytes::from(
        serde_json::json!({
            "errorType": error_type.unwrap_or(default),
            "errorMessage": String::from_utf8_lossy(&body),
        })
        .to_string(),
    )
}

/// `GET /next`: long-polls for the worker's next invocation.
async fn next(shared: &Shared) -> Resp {
    shared.ready.get_or_init(|| shared.spawned.elapsed());
    let inv = {
        let mut rx = shared.next_rx.lock().await;
        match rx.recv().await {
            Some(i) => i,
            // The worker was retired; its process is being killed.
            None => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Runtime.Retired",
                    "this worker was retired",
                )
            }
        }
    };
    // The timeout runs from now, when the function gets the event, as Worker::invoke counts it.
    let deadline_ms = trellis_core::clock::now_millis() + shared.spec.timeout.as_millis() as u64;
    if let Some(inflight) = lock(&shared.inflight).as_mut() {
        if inflight.request_id == inv.request_id {
            inflight.deadline = Some(tokio::time::Instant::now() + shared.spec.timeout);
            if let Some(p) = inflight.picked.take() {
                let _ = p.send(());
            }
        }
    }
    let mut r = Response::new(Full::new(inv.payload));
    let h = r.headers_mut();
    let mut set = |k: &'static str, v: &str| {
        if let Ok(v) = http::HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set("content-type", "application/json");
    set("lambda-runtime-aws-request-id", &inv.request_id);
    set("lambda-runtime-deadline-ms", &deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &inv.invoked_arn);
    set("lambda-runtime-trace-id", &inv.trace_id);
    if let Some(c) = &inv.client_context {
        set("lambda-runtime-client-context", c);
    }
    if let Some(c) = &inv.cognito_identity {
        set("lambda-runtime-cognito-identity", c);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::Pool;

    /// A Runtime API client in bash (`/dev/tcp`): answers each event by its text: `fail` posts
    /// an error with an error-type header, `exit` exits 1, `sleep` sleeps 5 s, anything else is
    /// echoed. With `INIT_ERROR` set it reports an init error and exits.
    const BOOTSTRAP: &str = r#"#!/bin/bash
host=${AWS_LAMBDA_RUNTIME_API%:*}; port=${AWS_LAMBDA_RUNTIME_API#*:}
post() { # path, body, extra header
  exec 3<>/dev/tcp/$host/$port
  printf 'POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s' "$1" ${#2} "$3" "$2" >&3
  read -r _ <&3; exec 3>&-
}
if [ -n "$INIT_ERROR" ]; then
  post /2018-06-01/runtime/init/error '{"errorType":"Init.Bad","errorMessage":"no config"}' ''
  exit 1
fi
while true; do
  exec 3<>/dev/tcp/$host/$port
  printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n' >&3
  id=; len=0
  while IFS= read -r line <&3; do
    line=${line%$'\r'}; [ -z "$line" ] && break
    case "${line,,}" in
      lambda-runtime-aws-request-id:*) id=${line#*: } ;;
      content-length:*) len=${line#*: } ;;
    esac
  done
  body=$(head -c "$len" <&3); exec 3>&-
  case "$body" in
    *stream*) # "first", then "second" 300 ms later, then the end: an error trailer when
      # the event says "broken"; with "stall" it stops after "first", with "die" it exits there
      exec 3<>/dev/tcp/$host/$port
      printf 'POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\nLambda-Runtime-Function-Response-Mode: streaming\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n\r\n5\r\nfirst\r\n' "$id" >&3
      case "$body" in *stall*) sleep 5 ;; *die*) exit 3 ;; esac
      sleep 0.3; printf '6\r\nsecond\r\n' >&3
      case "$body" in
        *broken*) printf '0\r\nLambda-Runtime-Function-Error-Type: Bash.Broken\r\nLambda-Runtime-Function-Error-Body: %s\r\n\r\n' "$(printf 'half way' | base64)" >&3 ;;
        *) printf '0\r\n\r\n' >&3 ;;
      esac
      read -r _ <&3; exec 3>&- ;;
    *fail*) post /2018-06-01/runtime/invocation/$id/error 'it failed' $'Lambda-Runtime-Function-Error-Type: Bash.Failure\r\n' ;;
    *exit*) echo "exiting now"; exit 1 ;;
    *sleep*) sleep 5; post /2018-06-01/runtime/invocation/$id/response "$body" '' ;;
    *slow*) sleep 0.3; post /2018-06-01/runtime/invocation/$id/response "$body" '' ;;
    *) echo "got $body"; post /2018-06-01/runtime/invocation/$id/response "$body" '' ;;
  esac
done
"#;

    fn spec(dir: &std::path::Path, vars: &[(&str, &str)]) -> Spec {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("bootstrap");
        std::fs::write(&path, BOOTSTRAP).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Spec {
            function_name: "bash".into(),
            version: "$LATEST".into(),
            code_dir: dir.to_path_buf(),
            handler: "bootstrap".into(),
            memory_mb: 128,
            timeout: Duration::from_secs(1),
            region: "us-east-1".into(),
            variables: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn event(payload: &'static str) -> Invocation {
        Invocation {
            request_id: format!("req-{}", fastrand::u64(..)),
            payload: Bytes::from_static(payload.as_bytes()),
            invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:bash".into(),
            trace_id: "Root=1-0-0".into(),
            client_context: None,
            cognito_identity: None,
            stream: false,
        }
    }

    /// Starts a streaming invocation of `payload` that must stream: its content type and pieces.
    async fn streaming(
        pool: &Arc<Pool>,
        payload: &'static str,
        tail: usize,
    ) -> (String, tokio::sync::mpsc::Receiver<crate::pool::Piece>) {
        match pool.invoke_streaming(event(payload), tail).await.unwrap() {
            crate::pool::InvokeStream::Stream { content_type, rx } => (content_type, rx),
            crate::pool::InvokeStream::Done(done) => panic!("no stream: {:?}", done.outcome),
        }
    }

    /// The rest of a streamed invocation: its remaining chunks, then how it ended.
    async fn rest(
        mut rx: tokio::sync::mpsc::Receiver<crate::pool::Piece>,
    ) -> (Vec<Bytes>, crate::pool::Finished) {
        let mut chunks = Vec::new();
        loop {
            match rx
                .recv()
                .await
                .expect("a streamed invocation ends with its end")
            {
                crate::pool::Piece::Chunk(c) => chunks.push(c),
                crate::pool::Piece::End(done) => return (chunks, done),
            }
        }
    }

    /// The response of an outcome that must be one.
    fn response(outcome: &Outcome) -> &[u8] {
        match outcome {
            Outcome::Response(b) => b,
            other => panic!("not a response: {other:?}"),
        }
    }

    /// The error document of an outcome that must be one.
    fn error_doc(outcome: &Outcome) -> serde_json::Value {
        match outcome {
            Outcome::Error(doc) => serde_json::from_slice(doc).unwrap(),
            other => panic!("not an error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn streamed_responses_reach_streaming_callers_as_they_come() {
        use crate::pool::{InvokeStream, Piece};
        let dir = tempfile::tempdir().unwrap();
        let pool = Arc::new(Pool::new(spec(dir.path(), &[]), 1));

        let (content_type, mut rx) = streaming(&pool, r#""stream""#, 4096).await;
        assert_eq!(content_type, "text/plain");
        let Some(Piece::Chunk(first)) = rx.recv().await else {
            panic!("the first piece")
        };
        assert_eq!(first, "first");
        // The function is still writing: its worker is busy and nothing else has come.
        assert!(rx.try_recv().is_err());
        assert_eq!(pool.idle_workers(), 0);
        let (chunks, done) = rest(rx).await;
        assert_eq!(chunks, ["second"]);
        assert_eq!(response(&done.outcome), b"", "the bytes were streamed");
        let logs = String::from_utf8(done.logs).unwrap();
        assert!(logs.contains("REPORT RequestId: req-"), "{logs}");
        assert_eq!(pool.idle_workers(), 1, "the worker is free again");

        // An error trailer ends the stream with the function's error.
        let (_, rx) = streaming(&pool, r#""stream broken""#, 0).await;
        let (chunks, done) = rest(rx).await;
        assert_eq!(chunks, ["first", "second"]);
        let doc = error_doc(&done.outcome);
        assert_eq!(doc["errorType"], "Bash.Broken");
        assert_eq!(doc["errorMessage"], "half way");

        // The timeout still holds while the function streams.
        let (_, rx) = streaming(&pool, r#""stream stall""#, 0).await;
        let (chunks, done) = rest(rx).await;
        assert_eq!(chunks, ["first"]);
        assert!(done.outcome.is_timeout(), "{:?}", done.outcome);
        assert_eq!(pool.idle_workers(), 0, "a timed-out worker is not reused");

        // A process that dies mid-stream ends it as an exit, and is not reused.
        let (_, rx) = streaming(&pool, r#""stream die""#, 0).await;
        let (chunks, done) = rest(rx).await;
        assert_eq!(chunks, ["first"]);
        let exited = matches!(done.outcome, Outcome::Exited(_));
        assert!(exited, "{:?}", done.outcome);
        let idle = pool.idle_workers();
        assert_eq!(idle, 0, "a worker whose stream broke is not reused");

        // A function that answers whole is whole to a streaming caller too.
        let InvokeStream::Done(done) = pool.invoke_streaming(event("{}"), 0).await.unwrap() else {
            panic!("a buffered answer")
        };
        assert_eq!(response(&done.outcome), b"{}");
    }

    #[tokio::test]
    async fn streamed_responses_are_gathered_for_other_callers() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Arc::new(Pool::new(spec(dir.path(), &[]), 1));
        let done = pool.invoke(event(r#""stream""#), 0).await.unwrap();
        assert_eq!(response(&done.outcome), b"firstsecond");
        let done = pool.invoke(event(r#""stream broken""#), 0).await.unwrap();
        assert_eq!(error_doc(&done.outcome)["errorType"], "Bash.Broken");
        assert_eq!(pool.idle_workers(), 1);
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_leaves_the_worker_warm() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Arc::new(Pool::new(spec(dir.path(), &[]), 1));
        pool.invoke(event("{}"), 0).await.unwrap();
        assert_eq!(pool.idle_workers(), 1);
        let gone = tokio::time::timeout(
            Duration::from_millis(50),
            pool.invoke(event(r#""slow""#), 0),
        )
        .await;
        assert!(gone.is_err(), "the caller gave up first");
        // The invocation runs to its end and its worker comes back, alive.
        for _ in 0..100 {
            if pool.idle_workers() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            pool.idle_workers(),
            1,
            "the worker was not killed with the caller"
        );
        let done = pool.invoke(event(r#"{"b":2}"#), 0).await.unwrap();
        assert_eq!(response(&done.outcome), br#"{"b":2}"#);
    }

    #[tokio::test]
    async fn answers_errors_timeouts_and_exits() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Arc::new(Pool::new(spec(dir.path(), &[]), 2));

        let done = pool.invoke(event(r#"{"a":1}"#), 4096).await.unwrap();
        assert_eq!(response(&done.outcome), br#"{"a":1}"#);
        let logs = String::from_utf8(done.logs).unwrap();
        assert!(logs.contains("got {\"a\":1}"), "{logs}");
        assert!(logs.contains("REPORT RequestId: req-"), "{logs}");
        assert_eq!(pool.idle_workers(), 1);

        let done = pool.invoke(event(r#""fail""#), 0).await.unwrap();
        let Outcome::Error(doc) = done.outcome else {
            panic!("{:?}", done.outcome)
        };
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(doc["errorType"], "Bash.Failure");
        assert_eq!(doc["errorMessage"], "it failed");
        assert_eq!(pool.idle_workers(), 1, "a function error keeps the worker");

        let done = pool.invoke(event(r#""sleep""#), 0).await.unwrap();
        assert!(done.outcome.is_timeout(), "{:?}", done.outcome);
        assert_eq!(pool.idle_workers(), 0, "a timed-out worker is not reused");

        let done = pool.invoke(event(r#""exit""#), 0).await.unwrap();
        let Outcome::Exited(why) = &done.outcome else {
            panic!("{:?}", done.outcome)
        };
        assert!(why.contains("exit status: 1"), "{why}");
        assert_eq!(
            done.last_lines.last().map(String::as_str),
            Some("exiting now")
        );

        let done = pool.invoke(event("{}"), 0).await.unwrap();
        assert_eq!(response(&done.outcome), b"{}");
        assert_eq!(pool.idle_workers(), 1);
        pool.reap(Duration::from_secs(60));
        assert_eq!(pool.idle_workers(), 1, "recently used workers stay warm");
        pool.reap(Duration::ZERO);
        assert_eq!(pool.idle_workers(), 0, "idle workers are reaped");
    }

    #[tokio::test]
    async fn a_missing_bootstrap_is_an_invalid_entrypoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path(), &[]);
        spec.code_dir = dir.path().join("nowhere");
        let done = Arc::new(Pool::new(spec, 1))
            .invoke(event("{}"), 0)
            .await
            .unwrap();
        assert!(
            matches!(&done.outcome, Outcome::NotStarted(why) if why.contains("cannot start")),
            "{:?}",
            done.outcome
        );
    }

    #[tokio::test]
    async fn init_errors_reach_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Arc::new(Pool::new(spec(dir.path(), &[("INIT_ERROR", "1")]), 1));
        let done = pool.invoke(event("{}"), 0).await.unwrap();
        let Outcome::Error(doc) = done.outcome else {
            panic!("{:?}", done.outcome)
        };
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(doc["errorType"], "Init.Bad");
    }
}
