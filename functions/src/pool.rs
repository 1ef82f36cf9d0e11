//! The workers of one function version: started on demand up to the function's concurrency,
//! invocations beyond it wait in a bounded queue, idle workers are reused (warm starts) and
//! reaped after a while, and a worker that crashed or timed out is replaced by a fresh one.
//! A WebAssembly function's pool has the same limits and queue but no workers: each invocation
//! instantiates its module in a fresh store on a blocking thread (see [`crate::wasm`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use bytes::Bytes;

use crate::component::{GuestBody, HttpCall, HttpComponent, HttpEnded, HttpRun, OnEnd, Streamed};
use crate::wasm::{Call, Ended, Wasm};
use crate::worker::{
    Invocation, Outcome, ResponseStream, Spec, StreamPart, Worker, MAX_STREAMED_RESPONSE,
};

/// Lambda's default when no reserved concurrency is set (ours; AWS's is the account's pool).
pub const DEFAULT_CONCURRENCY: usize = 10;
/// Invocations that may wait for a worker beyond the running ones, per unit of concurrency.
pub const QUEUE_PER_WORKER: usize = 100;
/// How long an idle worker is kept warm.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Pool {
    pub spec: Spec,
    permits: Arc<Semaphore>,
    queue_limit: usize,
    waiting: AtomicUsize,
    idle: Mutex<Vec<(Worker, Instant)>>,
    /// A WebAssembly function runs this module or component in-process instead of workers.
    wasm: Option<Arc<Wasm>>,
}

/// A finished invocation: how it ended and its log tail (platform lines included).
pub struct Finished {
    pub outcome: Outcome,
    pub logs: Vec<u8>,
    pub duration: Duration,
    /// The process's last output lines when it exited: what it said before dying.
    pub last_lines: Vec<String>,
}

/// A finished HTTP request to a component: its response, or the failure in `finished.outcome`.
pub struct HttpFinished {
    pub response: Option<http::Response<Bytes>>,
    pub finished: Finished,
}

/// A component's answer with its body streamed ([`Pool::stream_http`]).
pub enum HttpStreamed {
    /// The response; its run is logged when the body ends.
    Response(http::Response<GuestBody>),
    /// No response: how the run ended.
    Failed(Finished),
}

/// What [`Pool::invoke_streaming`] gives.
pub enum InvokeStream {
    /// The invocation is over: a buffered response or a failure.
    Done(Finished),
    /// The function streams its response: [`Piece::Chunk`]s, then one [`Piece::End`].
    Stream {
        content_type: String,
        rx: tokio::sync::mpsc::Receiver<Piece>,
    },
}

/// A piece of a streamed invocation.
pub enum Piece {
    Chunk(Bytes),
    /// How it ended: `Outcome::Response` (with no bytes: they were streamed) or a failure.
    End(Finished),
}

/// Holds an invocation in progress while its caller waits. Dropped with the invocation still
/// in it (the caller went away), it lets the invocation finish on a task of its own: the
/// worker's in-flight answer is taken over and the worker goes back warm, the concurrency slot
/// held until then, instead of the process being killed with the caller's future.
struct Detach {
    pool: Arc<Pool>,
    run: Option<(Run, OwnedSemaphorePermit)>,
}

impl Detach {
    fn worker(&self) -> &Worker {
        &self.run.as_ref().expect("armed until disarmed").0.worker
    }

    /// The invocation back, once its caller has its answer.
    fn disarm(mut self) -> (Run, OwnedSemaphorePermit) {
        self.run.take().expect("armed until disarmed")
    }
}

impl Drop for Detach {
    fn drop(&mut self) {
        let Some((run, permit)) = self.run.take() else {
            return;
        };
        let pool = self.pool.clone();
        let answer = run.worker.take_over();
        tokio::spawn(async move {
            let _permit = permit;
            let outcome = match answer {
                // Still running: wait for its end, as long as `Worker::invoke` would have
                // (the time to take the event and the function's timeout).
                Some(answer) => {
                    let limit = pool.spec.timeout + crate::worker::INIT_TIMEOUT;
                    match tokio::time::timeout(limit, answer).await {
                        Ok(Ok(outcome)) => outcome,
                        _ => {
                            run.worker.kill();
                            Outcome::TimedOut
                        }
                    }
                }
                // Already answered (or never handed over): the worker is free.
                None => Outcome::Response(Bytes::new()),
            };
            pool.end(run, outcome, 0).await;
        });
    }
}

/// An invocation in progress on a worker process, between [`Pool::begin`] and [`Pool::end`].
struct Run {
    worker: Worker,
    fresh: bool,
    started: Instant,
    mark: u64,
    request_id: String,
}

/// How a wasm run ended, before the platform log lines are added.
struct WasmDone {
    outcome: Outcome,
    log: Bytes,
    instantiate: Option<std::time::Duration>,
    memory: usize,
    last_lines: Vec<String>,
}

/// An invocation whose task failed (it panicked): an exit, as far as the caller can tell.
fn lost(why: &str) -> Finished {
    Finished {
        outcome: Outcome::Exited(format!("the invocation's task failed: {why}")),
        logs: Vec::new(),
        duration: Duration::ZERO,
        last_lines: Vec::new(),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[derive(Debug, thiserror::Error)]
#[error("Rate Exceeded.")]
pub struct Throttled;

// === impl Pool ===

impl Pool {
    pub fn new(spec: Spec, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            spec,
            permits: Arc::new(Semaphore::new(concurrency)),
            queue_limit: concurrency * QUEUE_PER_WORKER,
            waiting: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            wasm: None,
        }
    }

    /// A pool whose invocations run `program` (a WASI command module or a `wasi:http`
    /// component) instead of worker processes; the concurrency limit and queue are the same.
    pub fn wasm(spec: Spec, concurrency: usize, program: Arc<Wasm>) -> Self {
        Self {
            wasm: Some(program),
            ..Self::new(spec, concurrency)
        }
    }

    /// Runs `inv` on a worker of this pool; `tail` is how many bytes of log to keep.
    ///
    /// A caller that goes away (a client that timed out) does not end the invocation: it runs
    /// to its end, as on Lambda, on a task of its own, and the worker stays warm (see
    /// [`Detach`]). The common case pays for no task.
    pub async fn invoke(
        self: &Arc<Self>,
        inv: Invocation,
        tail: usize,
    ) -> Result<Finished, Throttled> {
        let permit = self.admit().await?;
        if let Some(program) = &self.wasm {
            return Ok(self.invoke_wasm(program.clone(), inv, tail).await);
        }
        let run = match self.begin(&inv, tail).await {
            Ok(run) => run,
            Err(finished) => return Ok(finished),
        };
        let guard = Detach {
            pool: self.clone(),
            run: Some((run, permit)),
        };
        let outcome = guard.worker().invoke(inv).await;
        let (run, permit) = guard.disarm();
        let finished = self.end(run, outcome, tail).await;
        drop(permit);
        Ok(finished)
    }

    /// Runs `inv` for a caller that takes a streamed response as it comes
    /// (`InvokeWithResponseStream`). A function that streams gives [`InvokeStream::Stream`]:
    /// its pieces, then how it ended; the worker and its concurrency slot stay taken until
    /// then. Every other answer (a buffered response, an error) is [`InvokeStream::Done`].
    pub async fn invoke_streaming(
        self: &Arc<Self>,
        mut inv: Invocation,
        tail: usize,
    ) -> Result<InvokeStream, Throttled> {
        let permit = self.admit().await?;
        if let Some(program) = &self.wasm {
            inv.stream = false;
            return Ok(InvokeStream::Done(
                self.invoke_wasm(program.clone(), inv, tail).await,
            ));
        }
        inv.stream = true;
        // The invocation runs on its own task: a caller that goes away does not stop the
        // function (nor does one on Lambda); what it would have read is dropped.
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let pool = self.clone();
        tokio::spawn(async move {
            let run = match pool.begin(&inv, tail).await {
                Ok(run) => run,
                Err(finished) => return drop(first_tx.send(InvokeStream::Done(finished))),
            };
            let mut stream = match run.worker.invoke(inv).await {
                Outcome::Streaming(stream) => stream,
                outcome => {
                    let finished = pool.end(run, outcome, tail).await;
                    drop(permit);
                    return drop(first_tx.send(InvokeStream::Done(finished)));
                }
            };
            let content_type = std::mem::take(&mut stream.content_type);
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            let _ = first_tx.send(InvokeStream::Stream { content_type, rx });
            let outcome = pool.pump(&run, stream, &tx).await;
            let finished = pool.end(run, outcome, tail).await;
            // The slot is free once the function is done, whether or not the caller reads on.
            drop(permit);
            let _ = tx.send(Piece::End(finished)).await;
        });
        Ok(first_rx
            .await
            .unwrap_or_else(|_| InvokeStream::Done(lost("it ended without an answer"))))
    }

    /// Passes a streamed response's pieces on until it ends, the function's timeout passes
    /// or it outgrows [`MAX_STREAMED_RESPONSE`]. A caller that went away does not stop the
    /// function: as on Lambda, it runs to its end and the rest is dropped.
    async fn pump(
        &self,
        run: &Run,
        mut stream: ResponseStream,
        tx: &tokio::sync::mpsc::Sender<Piece>,
    ) -> Outcome {
        let (worker, request_id) = (&run.worker, &run.request_id);
        let deadline = stream.deadline;
        let mut total = 0usize;
        let read = async {
            loop {
                match stream.next().await {
                    StreamPart::Chunk(c) => {
                        total += c.len();
                        if total > MAX_STREAMED_RESPONSE {
                            return Outcome::StreamTooLarge(total);
                        }
                        let _ = tx.send(Piece::Chunk(c)).await;
                    }
                    StreamPart::End(None) => return Outcome::Response(Bytes::new()),
                    StreamPart::End(Some(doc)) => return Outcome::Error(doc),
                    StreamPart::Broken(why) => {
                        return Outcome::Exited(format!("RequestId: {request_id} {why}"))
                    }
                }
            }
        };
        let outcome = tokio::time::timeout_at(deadline, read)
            .await
            .unwrap_or(Outcome::TimedOut);
        // A process that is over its time or size, or whose stream broke off, is not reused.
        if matches!(
            outcome,
            Outcome::TimedOut | Outcome::StreamTooLarge(_) | Outcome::Exited(_)
        ) {
            worker.kill();
        }
        outcome
    }

    /// Takes an idle worker or starts one, and logs the invocation's START line when its log
    /// tail is asked for (`tail` > 0). `Err` when no process could be started.
    ///
    /// The platform's lines (START, END, REPORT) are read only through the tail, so they are
    /// written only then: REPORT's `Max Memory Used` reads `/proc/PID/status`, which cost about
    /// a sixth of the server's CPU per warm invoke.
    async fn begin(&self, inv: &Invocation, tail: usize) -> Result<Run, Finished> {
        let started = Instant::now();
        // A fresh worker's invocation owns everything the process printed from its start.
        let (worker, fresh) = match self.take_idle() {
            Some(w) => (w, false),
            None => match Worker::start(self.spec.clone()).await {
                Ok(w) => (w, true),
                Err(e) => {
                    return Err(Finished {
                        outcome: Outcome::NotStarted(e),
                        logs: Vec::new(),
                        duration: started.elapsed(),
                        last_lines: Vec::new(),
                    })
                }
            },
        };
        let mark = if fresh { 0 } else { worker.log_mark() };
        if tail > 0 {
            worker.log_line(&format!(
                "START RequestId: {} Version: {}\n",
                inv.request_id, self.spec.version
            ));
        }
        Ok(Run {
            worker,
            fresh,
            started,
            mark,
            request_id: inv.request_id.clone(),
        })
    }

    /// The END and REPORT lines of an invocation (and the timeout line when it timed out).
    fn log_end(
        &self,
        worker: &Worker,
        fresh: bool,
        duration: Duration,
        request_id: &str,
        outcome: &Outcome,
    ) {
        if outcome.is_timeout() {
            worker.log_line(&format!(
                "{} {request_id} Task timed out after {:.2} seconds\n",
                trellis_core::clock::now_iso8601(),
                self.spec.timeout.as_secs_f64()
            ));
        }
        // As on Lambda, a cold start's REPORT gives the init apart from the invocation.
        let init = worker.init_duration().filter(|_| fresh);
        let ms = duration
            .saturating_sub(init.unwrap_or_default())
            .as_secs_f64()
            * 1000.0;
        let init = init
            .map(|d| format!("Init Duration: {:.2} ms\t", d.as_secs_f64() * 1000.0))
            .unwrap_or_default();
        worker.log_line(&format!(
        "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t{init}\n",
        ms.ceil() as u64,
        self.spec.memory_mb,
        worker.max_memory_mb().unwrap_or(0),
    ));
    }

    /// Ends an invocation begun by [`Pool::begin`]: its END and REPORT lines (with a tail), the log tail,
    /// and the worker back among the idle ones if it is still alive.
    async fn end(&self, run: Run, outcome: Outcome, tail: usize) -> Finished {
        let Run {
            worker,
            fresh,
            started,
            mark,
            request_id,
        } = run;
        let duration = started.elapsed();
        if tail > 0 {
            // Output written just before the answer may still be in the pipe.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut last_lines = Vec::new();
        if let Outcome::Exited(why) = &outcome {
            let out = worker.logs_since(mark, 2048);
            let out = String::from_utf8_lossy(&out);
            last_lines = out
                .lines()
                .filter(|l| !l.starts_with("START RequestId:"))
                .map(str::to_string)
                .collect();
            last_lines.drain(..last_lines.len().saturating_sub(10));
            tracing::warn!(function = %self.spec.function_name, version = %self.spec.version, "worker exited: {why}");
        }
        if tail > 0 {
            self.log_end(&worker, fresh, duration, &request_id, &outcome);
        }
        let logs = worker.logs_since(mark, tail);
        if worker.is_alive() {
            crate::lock(&self.idle).push((worker, Instant::now()));
        }
        Finished {
            outcome,
            logs,
            duration,
            last_lines,
        }
    }

    /// Sends one HTTP request to this pool's `wasi:http` component (the function's
    /// `invoke_http`), under the same concurrency limit and queue as invocations. `None` when
    /// the function is not a component.
    pub async fn invoke_http(
        &self,
        request: http::Request<Bytes>,
        request_id: &str,
    ) -> Option<Result<HttpFinished, Throttled>> {
        let component = self.component()?;
        let _permit = match self.admit().await {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let started = Instant::now();
        let run = self.call_component(&component, request).await;
        let (response, outcome) = match run.ended {
            HttpEnded::Response(r) => (Some(r), Outcome::Response(Bytes::new())),
            other => (None, self.component_failure(other, request_id)),
        };
        let done = WasmDone {
            outcome,
            log: run.log,
            instantiate: run.instantiate,
            memory: run.memory_used,
            last_lines: Vec::new(),
        };
        Some(Ok(HttpFinished {
            response,
            finished: self.finish_wasm(request_id, started, done, 0),
        }))
    }

    /// As [`invoke_http`](Self::invoke_http), but answers once the component has set its
    /// response and streams the body as the guest writes it. The concurrency slot is held, and
    /// the run logged (REPORT), until the body is done.
    pub async fn stream_http(
        self: &Arc<Self>,
        request: trellis_core::target::StreamingRequest,
        request_id: &str,
    ) -> Option<Result<HttpStreamed, Throttled>> {
        let component = self.component()?;
        let permit = match self.admit().await {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let started = Instant::now();
        let (pool, id) = (self.clone(), request_id.to_string());
        let on_end: OnEnd = Box::new(move |run| {
            drop(permit);
            pool.finish_wasm(&id, started, pool.component_done(run, &id), 0);
        });
        let streamed = component
            .stream(
                HttpCall {
                    request,
                    memory_mb: self.spec.memory_mb,
                    timeout: self.spec.timeout,
                    variables: &self.spec.variables,
                    max_response: crate::lambda::MAX_SYNC_PAYLOAD,
                },
                on_end,
            )
            .await;
        Some(Ok(match streamed {
            Streamed::Response(r) => HttpStreamed::Response(r),
            Streamed::Ended(run) => HttpStreamed::Failed(self.finish_wasm(
                request_id,
                started,
                self.component_done(run, request_id),
                0,
            )),
        }))
    }

    /// A component run that answered over HTTP, as a wasm run's end.
    fn component_done(&self, run: HttpRun, request_id: &str) -> WasmDone {
        WasmDone {
            outcome: self.component_failure(run.ended, request_id),
            log: run.log,
            instantiate: run.instantiate,
            memory: run.memory_used,
            last_lines: Vec::new(),
        }
    }

    /// Hands `request` to the component with this version's memory, timeout and environment.
    async fn call_component(
        &self,
        component: &Arc<HttpComponent>,
        request: http::Request<Bytes>,
    ) -> crate::component::HttpRun {
        component
            .handle(HttpCall {
                request: request.map(trellis_core::target::whole),
                memory_mb: self.spec.memory_mb,
                timeout: self.spec.timeout,
                variables: &self.spec.variables,
                max_response: crate::lambda::MAX_SYNC_PAYLOAD,
            })
            .await
    }

    /// The component this pool runs, if it runs one.
    pub fn component(&self) -> Option<Arc<HttpComponent>> {
        match self.wasm.as_deref() {
            Some(Wasm::Component(c)) => Some(c.clone()),
            _ => None,
        }
    }

    /// Waits for a slot within the function's concurrency, or refuses when the queue is full.
    async fn admit(&self) -> Result<OwnedSemaphorePermit, Throttled> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Throttled);
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| Throttled)
    }

    async fn invoke_wasm(&self, program: Arc<Wasm>, inv: Invocation, tail: usize) -> Finished {
        let started = Instant::now();
        let request_id = inv.request_id.clone();
        let done = match &*program {
            Wasm::Module(_) => self.run_module(program.clone(), inv).await,
            Wasm::Component(c) => self.run_component_json(c.clone(), inv).await,
        };
        self.finish_wasm(&request_id, started, done, tail)
    }

    /// A preview-1 module: the payload on stdin, stdout the answer.
    async fn run_module(&self, program: Arc<Wasm>, inv: Invocation) -> WasmDone {
        let spec = self.spec.clone();
        let request_id = inv.request_id.clone();
        let timeout = spec.timeout;
        let run = tokio::task::spawn_blocking(move || {
            let Wasm::Module(module) = &*program else {
                unreachable!("run_module is only called for modules")
            };
            module.run(Call {
                payload: inv.payload,
                memory_mb: spec.memory_mb,
                timeout: spec.timeout,
                variables: &spec.variables,
                handler: &spec.handler,
                max_response: crate::lambda::MAX_SYNC_PAYLOAD,
            })
        });
        // The epoch deadline stops guest code; this also bounds a guest blocked in a host call
        // (a long `poll_oneoff` sleep), whose thread finishes on its own afterwards.
        let run = match tokio::time::timeout(timeout + Duration::from_millis(200), run).await {
            Ok(Ok(run)) => run,
            Ok(Err(e)) => {
                return WasmDone {
                    outcome: Outcome::Error(crate::lambda::error_payload(
                        "Runtime.WasmTrap",
                        &format!("RequestId: {request_id} Error: {e}"),
                    )),
                    log: Bytes::new(),
                    instantiate: None,
                    memory: 0,
                    last_lines: Vec::new(),
                }
            }
            Err(_) => {
                return WasmDone {
                    outcome: Outcome::TimedOut,
                    log: Bytes::new(),
                    instantiate: None,
                    memory: 0,
                    last_lines: Vec::new(),
                }
            }
        };
        let mut last_lines = Vec::new();
        let outcome = match run.ended {
            Ended::Ok(out) if out.is_empty() => Outcome::Response(Bytes::from_static(b"null")),
            Ended::Ok(out) => Outcome::Response(out),
            Ended::TimedOut => Outcome::TimedOut,
            Ended::TooLarge(n) => Outcome::TooLarge(n),
            Ended::Exit(code) => {
                let stderr = String::from_utf8_lossy(&run.stderr);
                last_lines = stderr.lines().map(str::to_string).collect();
                last_lines.drain(..last_lines.len().saturating_sub(10));
                Outcome::Exited(format!(
                    "RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
                ))
            }
            Ended::Trap(message) => self.wasm_failure("Runtime.WasmTrap", &request_id, &message),
            Ended::OutOfMemory(message) => self.out_of_memory(&request_id, &message),
        };
        WasmDone {
            outcome,
            log: run.stderr,
            instantiate: Some(run.instantiate),
            memory: run.memory_used,
            last_lines,
        }
    }

    /// A component invoked through the Lambda API: the payload is POSTed to `/` as JSON; a 2xx
    /// body is the result, any other status a function error carrying the status and body.
    async fn run_component_json(&self, component: Arc<HttpComponent>, inv: Invocation) -> WasmDone {
        let mut request = http::Request::new(inv.payload);
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static("/");
        let headers = request.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
        for (name, value) in [
            ("lambda-runtime-aws-request-id", &inv.request_id),
            ("lambda-runtime-invoked-function-arn", &inv.invoked_arn),
            ("lambda-runtime-trace-id", &inv.trace_id),
        ] {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        }
        let run = self.call_component(&component, request).await;
        let outcome = match run.ended {
            HttpEnded::Response(r) if r.status().is_success() => {
                let body = r.into_body();
                Outcome::Response(if body.is_empty() {
                    Bytes::from_static(b"null")
                } else {
                    body
                })
            }
            HttpEnded::Response(r) => {
                let status = r.status();
                let body = String::from_utf8_lossy(r.body()).into_owned();
                Outcome::Error(Bytes::from(
                    serde_json::json!({
                        "errorType": "HttpError",
                        "errorMessage": format!("the handler answered HTTP {}: {}", status.as_u16(), truncate(&body, 1024)),
                        "statusCode": status.as_u16(),
                        "body": body,
                    })
                    .to_string(),
                ))
            }
            other => self.component_failure(other, &inv.request_id),
        };
        WasmDone {
            outcome,
            log: run.log,
            instantiate: run.instantiate,
            memory: run.memory_used,
            last_lines: Vec::new(),
        }
    }

    /// A component run that produced no response, as the Lambda outcome.
    fn component_failure(&self, ended: HttpEnded, request_id: &str) -> Outcome {
        match ended {
            HttpEnded::TimedOut => Outcome::TimedOut,
            HttpEnded::TooLarge(n) => Outcome::TooLarge(n),
            HttpEnded::Trap(message) => self.wasm_failure("Runtime.WasmTrap", request_id, &message),
            HttpEnded::OutOfMemory(message) => self.out_of_memory(request_id, &message),
            HttpEnded::ErrorCode(code) => self.wasm_failure(
                "Runtime.HttpErrorCode",
                request_id,
                &format!("the handler answered with the wasi:http error code {code}"),
            ),
            HttpEnded::NoResponse => self.wasm_failure(
                "Runtime.NoResponse",
                request_id,
                "the handler returned without setting a response",
            ),
            HttpEnded::Response(_) | HttpEnded::Streamed => Outcome::Response(Bytes::new()),
        }
    }

    fn wasm_failure(&self, error_type: &str, request_id: &str, message: &str) -> Outcome {
        Outcome::Error(crate::lambda::error_payload(
            error_type,
            &format!("RequestId: {request_id} Error: {message}"),
        ))
    }

    fn out_of_memory(&self, request_id: &str, message: &str) -> Outcome {
        self.wasm_failure(
            "Runtime.OutOfMemory",
            request_id,
            &format!(
                "Runtime exited after exceeding its memory limit of {} MB ({message})",
                self.spec.memory_mb
            ),
        )
    }

    /// The platform log lines around a wasm run (START, the guest's output, a timeout line,
    /// END and REPORT), as a worker's invocation has them.
    fn finish_wasm(
        &self,
        request_id: &str,
        started: Instant,
        done: WasmDone,
        tail: usize,
    ) -> Finished {
        let duration = started.elapsed();
        let timeout = self.spec.timeout;
        let mut log = format!(
            "START RequestId: {request_id} Version: {}\n",
            self.spec.version
        )
        .into_bytes();
        log.extend_from_slice(&done.log);
        if !done.log.is_empty() && !done.log.ends_with(b"\n") {
            log.push(b'\n');
        }
        for line in String::from_utf8_lossy(&done.log).lines() {
            tracing::info!(target: "trellis::function", function = %self.spec.function_name, "{line}");
        }
        if done.outcome.is_timeout() {
            log.extend_from_slice(
                format!(
                    "{} {request_id} Task timed out after {:.2} seconds\n",
                    trellis_core::clock::now_iso8601(),
                    timeout.as_secs_f64()
                )
                .as_bytes(),
            );
        }
        let ms = duration.as_secs_f64() * 1000.0;
        let init = done
            .instantiate
            .map(|d| format!("Init Duration: {:.3} ms\t", d.as_secs_f64() * 1000.0))
            .unwrap_or_default();
        log.extend_from_slice(format!(
            "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t{init}\n",
            ms.ceil() as u64,
            self.spec.memory_mb,
            done.memory.div_ceil(1 << 20),
        ).as_bytes());
        let logs = log[log.len().saturating_sub(tail)..].to_vec();
        Finished {
            outcome: done.outcome,
            logs,
            duration,
            last_lines: done.last_lines,
        }
    }

    fn take_idle(&self) -> Option<Worker> {
        let mut idle = crate::lock(&self.idle);
        while let Some((w, _)) = idle.pop() {
            if w.is_alive() {
                return Some(w);
            }
        }
        None
    }

    /// Stops workers idle for longer than `max_idle`.
    pub fn reap(&self, max_idle: Duration) {
        let now = Instant::now();
        crate::lock(&self.idle)
            .retain(|(w, at)| w.is_alive() && now.duration_since(*at) < max_idle);
    }

    /// Workers ready for a warm start.
    pub fn idle_workers(&self) -> usize {
        crate::lock(&self.idle).len()
    }
}
