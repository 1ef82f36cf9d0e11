//! WebAssembly components exporting `wasi:http/incoming-handler` (what `componentize-py`,
//! `jco` or `cargo component` build for the `wasi:http/proxy` world): an HTTP request goes in,
//! an HTTP response comes out, no event translation.
//!
//! They share the rules of preview-1 modules (see [`crate::wasm`]): the process's one engine
//! (pooling allocator, epoch ticker), a [`ProxyPre`] compiled and linked once per component file,
//! a fresh [`Store`] per request with linear memory capped at the function's `MemorySize` and
//! a deadline at its timeout. Unlike modules, a component runs on the calling task, on a wasmtime
//! fiber (async bindings): no hop to the blocking pool and back, which cost more than the guest
//! itself. The guest yields to the runtime at every epoch tick, so a busy guest never holds a
//! runtime thread (a current-thread runtime included) for longer than a tick, and it is
//! interrupted there once its deadline has passed. The guest gets WASI preview 2 with no preopened
//! directories, no sockets, no name lookups and only the function's own environment variables;
//! its stdout and stderr are the function's log. Outgoing `wasi:http` requests are refused
//! (`HTTP-request-denied`) unless the function's environment variable
//! [`OUTGOING_HTTP_VARIABLE`] lists the host (or `*`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Limited};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::wasm::{describe, MemoryCap, MAX_WASM32_MEMORY, TICK};

/// The function environment variable that grants outgoing HTTP: a comma-separated list of
/// host names (`api.example.com,localhost:8080`) or `*` for any host.
pub const OUTGOING_HTTP_VARIABLE: &str = "TRELLIS_WASI_HTTP_OUTGOING";
/// How much of stdout and stderr one request keeps.
const LOG_CAPACITY: usize = 1 << 20;
/// The interface a component must export.
pub const HANDLER_INTERFACE: &str = "wasi:http/incoming-handler";

/// Whether `bytes` is a component rather than a core module: the binary header's layer field
/// (bytes 6 and 7) is 1 for components, 0 for modules.
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

/// A component compiled and linked against WASI preview 2 and `wasi:http`, ready to
/// instantiate once per request.
pub struct HttpComponent {
    pre: ProxyPre<State>,
}

struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: Hooks,
    table: ResourceTable,
    limits: MemoryCap,
}

/// What the guest may do beyond answering: outgoing HTTP only to the granted hosts.
struct Hooks {
    outgoing: Vec<String>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl Hooks {
    fn allows(&self, authority: Option<&http::uri::Authority>) -> bool {
        let Some(authority) = authority else {
            return false;
        };
        self.outgoing.iter().any(|granted| {
            granted == "*"
                || granted.eq_ignore_ascii_case(authority.as_str())
                || granted.eq_ignore_ascii_case(authority.host())
        })
    }
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn std::future::Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<
                            dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>>
                                + Send,
                        >,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        drop(fut);
        if !self.allows(request.uri().authority()) {
            tracing::debug!(uri = %request.uri(), "outgoing HTTP from a wasm function refused");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io)
                    as Box<
                        dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>>
                            + Send,
                    >,
            ))
        })
    }
}

/// The linker every component is linked with: WASI preview 2 and `wasi:http`, async bindings
/// so that the guest runs on the caller's task and a host call that waits (a `poll`, an
/// outgoing request) suspends the guest's fiber instead of blocking a runtime thread.
fn linker() -> &'static Linker<State> {
    static LINKER: std::sync::OnceLock<Linker<State>> = std::sync::OnceLock::new();
    LINKER.get_or_init(|| {
        let mut linker = Linker::new(crate::wasm::engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("WASI preview 2 links");
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .expect("wasi:http links");
        linker
    })
}

/// Compiles and links a component, checking that it exports `wasi:http/incoming-handler`.
/// The error says what is wrong, for `InvalidParameterValueException`.
pub fn compile(bytes: &[u8], name: &str) -> Result<HttpComponent, String> {
    let component = Component::from_binary(crate::wasm::engine(), bytes).map_err(|e| {
        format!(
            "{name} is not a valid WebAssembly component: {}",
            describe(&e)
        )
    })?;
    let exports_handler = component
        .component_type()
        .exports(crate::wasm::engine())
        .any(|(export, _)| export.starts_with(&format!("{HANDLER_INTERFACE}@0.2.")));
    if !exports_handler {
        return Err(format!(
            "{name} is a component but does not export {HANDLER_INTERFACE}@0.2.x (build it for the wasi:http/proxy world)"
        ));
    }
    let pre = linker().instantiate_pre(&component).map_err(|e| {
        format!(
            "{name} cannot be linked (only WASI 0.2 and wasi:http 0.2 imports are provided): {}",
            describe(&e)
        )
    })?;
    let pre = ProxyPre::new(pre).map_err(|e| {
        format!(
            "{name} does not export {HANDLER_INTERFACE} as wasi:http 0.2 defines it: {}",
            describe(&e)
        )
    })?;
    Ok(HttpComponent { pre })
}

/// What one request needs beyond the component.
pub struct HttpCall<'a> {
    /// The request; its body is read as the guest reads it.
    pub request: trellis_core::target::StreamingRequest,
    pub memory_mb: u64,
    pub timeout: Duration,
    pub variables: &'a [(String, String)],
    /// The largest response body taken.
    pub max_response: usize,
}

/// How a request ended.
pub enum HttpEnded {
    /// The guest set a response and wrote its body.
    Response(http::Response<Bytes>),
    /// The guest set an error code instead of a response.
    ErrorCode(String),
    /// The handler returned without setting a response.
    NoResponse,
    /// A trap (or a host error): the message.
    Trap(String),
    /// Memory growth was denied and the guest then died.
    OutOfMemory(String),
    TimedOut,
    TooLarge(usize),
    /// The guest set a response whose body was streamed to the caller (see
    /// [`HttpComponent::stream`]): read to its end, or abandoned by the reader.
    Streamed,
}

/// The result of [`HttpComponent::handle`], and what a streamed response's end reports.
pub struct HttpRun {
    pub ended: HttpEnded,
    /// What the guest wrote to stdout and stderr.
    pub log: Bytes,
    /// Creating the store and instantiating the component; `None` when it never finished.
    pub instantiate: Option<Duration>,
    /// Peak linear memory, in bytes.
    pub memory_used: usize,
}

/// How the guest's part ended.
struct GuestDone {
    result: wasmtime::Result<()>,
    instantiate: Duration,
    denied: bool,
    peak: usize,
}

type Outparam = Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;
type Guest = Pin<Box<dyn Future<Output = GuestDone> + Send>>;
/// Called once with how a streamed response's run ended, when its body is done (or dropped)
/// and the guest has returned.
pub type OnEnd = Box<dyn FnOnce(HttpRun) + Send>;

/// What [`HttpComponent::stream`] gives.
pub enum Streamed {
    /// The guest set a response: its head, and a body that runs the guest as it is read.
    Response(http::Response<GuestBody>),
    /// The guest ended without a response (or set an error code): how.
    Ended(HttpRun),
}

impl HttpComponent {
    /// Instantiates the component in a fresh store and hands it `call.request`; the guest runs
    /// on this task (see the module's documentation) while the same task takes its response.
    /// The whole body is buffered, up to `call.max_response` bytes.
    pub async fn handle(self: &Arc<Self>, call: HttpCall<'_>) -> HttpRun {
        let max_response = call.max_response;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let resp = match self
            .stream(
                call,
                Box::new(move |run| {
                    let _ = tx.send(run);
                }),
            )
            .await
        {
            Streamed::Ended(run) => return run,
            Streamed::Response(resp) => resp,
        };
        let (parts, body) = resp.into_parts();
        let collected = Limited::new(body, max_response).collect().await;
        // The body is dropped by now, so its end has been (or, once the guest returns, will
        // be) reported.
        let Ok(mut run) = rx.await else {
            unreachable!("a streamed response reports its end")
        };
        match (collected, &run.ended) {
            (Ok(b), HttpEnded::Streamed) => {
                run.ended = HttpEnded::Response(http::Response::from_parts(parts, b.to_bytes()));
            }
            (Err(e), _)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                run.ended = HttpEnded::TooLarge(max_response + 1);
            }
            _ => {}
        }
        run
    }

    /// As [`handle`](Self::handle), but answers as soon as the guest has set its response:
    /// the body is read while the guest writes it, the guest running whenever the body is
    /// polled (on the reader's task, as in `handle`). A body nobody reads for longer than the
    /// timeout fails; `on_end` gets the run's end once the body is done or dropped and the
    /// guest has returned (or been stopped at its deadline).
    pub async fn stream(self: &Arc<Self>, call: HttpCall<'_>, on_end: OnEnd) -> Streamed {
        let started = Instant::now();
        let log = MemoryOutputPipe::new(LOG_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stdout(log.clone())
            .stderr(log.clone())
            .envs(call.variables)
            .build();
        let outgoing = call
            .variables
            .iter()
            .find(|(k, _)| k == OUTGOING_HTTP_VARIABLE)
            .map(|(_, v)| {
                v.split(',')
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let max_bytes = (call.memory_mb << 20).min(MAX_WASM32_MEMORY) as usize;
        let mut store = Store::new(
            self.pre.engine(),
            State {
                wasi,
                http: WasiHttpCtx::new(),
                hooks: Hooks { outgoing },
                table: ResourceTable::new(),
                limits: MemoryCap::new(max_bytes),
            },
        );
        store.limiter(|s| &mut s.limits);
        // At every epoch tick the guest gives its thread back to the runtime, so other tasks
        // run even on a current-thread runtime; once its time is up it stops there instead.
        let end = started + call.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= end {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });

        let mut request = call.request;
        if request.uri().authority().is_none()
            && !request.headers().contains_key(http::header::HOST)
        {
            request.headers_mut().insert(
                http::header::HOST,
                http::HeaderValue::from_static("localhost"),
            );
        }
        // A request body that breaks off (the client went away) is, to the guest reading it,
        // a terminated connection.
        let request =
            request.map(|b| b.map_err(|_| wasmtime_wasi_http::Error::ConnectionTerminated));
        let (tx, rx) = tokio::sync::oneshot::channel::<Outparam>();
        let setup = || -> wasmtime::Result<_> {
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(tx)?;
            Ok((req, out))
        };
        let (req, out) = match setup() {
            Ok(x) => x,
            Err(e) => {
                return Streamed::Ended(HttpRun {
                    ended: HttpEnded::Trap(describe(&e)),
                    log: Bytes::new(),
                    instantiate: None,
                    memory_used: 0,
                })
            }
        };

        // The store lives in this future, so it is dropped as soon as the guest is done: that
        // closes the outparam and the response body if the guest left them open.
        let this = self.clone();
        let guest = async move {
            let result = this.pre.instantiate_async(&mut store).await;
            let instantiate = started.elapsed();
            let result = match result {
                Ok(proxy) => {
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, req, out)
                        .await
                }
                Err(e) => Err(e),
            };
            let limits = &store.data().limits;
            GuestDone {
                result,
                instantiate,
                denied: limits.denied,
                peak: limits.peak,
            }
        };
        // Boxed: the guest's future is large, and moving it (into the body) would copy it.
        let mut guest: Guest = Box::pin(catch_panic(guest, started));

        // The epoch callback stops guest code at the timeout; this deadline also bounds a
        // guest waiting in a host call, or a body nobody reads.
        let deadline = tokio::time::Instant::from_std(end) + TICK * 40;
        let mut sleep = Box::pin(tokio::time::sleep_until(deadline));
        let mut done = None;
        let mut rx = rx;
        let set = loop {
            tokio::select! {
                biased;
                d = &mut guest, if done.is_none() => done = Some(d),
                // Closed without a value: the store (and so the outparam) is gone; the
                // guest's end says why.
                set = &mut rx => break set.ok(),
                () = &mut sleep => break Some(Err(ErrorCode::ConnectionReadTimeout)),
            }
        };
        let finish = Finish {
            log,
            deadline,
            on_end: None,
        };
        match set {
            Some(Ok(resp)) => {
                let (parts, body) = resp.into_parts();
                let running = Running {
                    guest: if done.is_none() { Some(guest) } else { None },
                    done,
                    body: Some(body),
                    sleep,
                    finish: Some(Finish {
                        on_end: Some(on_end),
                        ..finish
                    }),
                };
                Streamed::Response(http::Response::from_parts(
                    parts,
                    GuestBody(std::sync::Mutex::new(running)),
                ))
            }
            other => {
                let timed_out = sleep.as_mut().is_elapsed();
                let done = match done {
                    Some(d) => Some(d),
                    None if !timed_out => tokio::time::timeout_at(deadline, guest).await.ok(),
                    None => None,
                };
                let answered = match other {
                    _ if timed_out => Answered::TimedOut,
                    Some(Err(code)) => Answered::Code(format!("{code:?}")),
                    _ => Answered::Nothing,
                };
                Streamed::Ended(finish.run(answered, done))
            }
        }
    }
}

/// What the guest answered, for [`Finish::run`].
enum Answered {
    /// A response whose body was read to its end (or abandoned by the reader).
    Complete,
    /// A response whose body failed: why.
    BodyFailed(String),
    Code(String),
    Nothing,
    TimedOut,
}

/// What is needed to report a run once the guest has returned.
struct Finish {
    log: MemoryOutputPipe,
    deadline: tokio::time::Instant,
    on_end: Option<OnEnd>,
}

impl Finish {
    /// How the run ended: what it answered and how the guest returned (`None`: stopped at the
    /// deadline, or never returned).
    fn run(self, answered: Answered, done: Option<GuestDone>) -> HttpRun {
        let failure = done.as_ref().and_then(|done| match &done.result {
            Ok(()) => None,
            Err(e) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                Some(HttpEnded::TimedOut)
            }
            Err(e) if done.denied => Some(HttpEnded::OutOfMemory(describe(e))),
            Err(e) => Some(HttpEnded::Trap(describe(e))),
        });
        let ended = match (answered, failure) {
            // A complete response stands even if the guest failed after sending it.
            (Answered::Complete, f) => {
                if let Some(HttpEnded::Trap(m) | HttpEnded::OutOfMemory(m)) = &f {
                    tracing::warn!("a wasm function failed after answering: {m}");
                }
                HttpEnded::Streamed
            }
            (Answered::TimedOut, _) => HttpEnded::TimedOut,
            (_, Some(f)) => f,
            (Answered::BodyFailed(m), None) => HttpEnded::Trap(m),
            (Answered::Code(c), None) => HttpEnded::ErrorCode(c),
            (Answered::Nothing, None) if done.is_none() => HttpEnded::TimedOut,
            (Answered::Nothing, None) => HttpEnded::NoResponse,
        };
        HttpRun {
            ended,
            log: self.log.contents(),
            instantiate: done.as_ref().map(|d| d.instantiate),
            memory_used: done.map_or(0, |d| d.peak),
        }
    }

    /// Reports the run through `on_end`, at once if the guest has returned, else once it does
    /// (on a task of its own: the body's reader has gone).
    fn report(mut self, answered: Answered, guest: Option<Guest>, done: Option<GuestDone>) {
        let Some(on_end) = self.on_end.take() else {
            return;
        };
        match guest {
            None => on_end(self.run(answered, done)),
            Some(guest) => {
                tokio::spawn(async move {
                    let done = tokio::time::timeout_at(self.deadline, guest).await.ok();
                    on_end(self.run(answered, done));
                });
            }
        }
    }
}

/// A streamed response's body: reading it runs the guest (which writes it) on the reader's
/// task. Behind a mutex only so that it is `Sync`, as hyper's boxed bodies must be: the lock
/// is never taken (`get_mut`).
pub struct GuestBody(std::sync::Mutex<Running>);

pub struct Running {
    guest: Option<Guest>,
    done: Option<GuestDone>,
    body: Option<HyperOutgoingBody>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    finish: Option<Finish>,
}

impl Running {
    fn end(&mut self, answered: Answered) {
        self.body = None;
        if let Some(finish) = self.finish.take() {
            finish.report(answered, self.guest.take(), self.done.take());
        }
    }
}

impl http_body::Body for GuestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let r = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(guest) = r.guest.as_mut() {
            if let Poll::Ready(done) = guest.as_mut().poll(cx) {
                r.done = Some(done);
                r.guest = None;
            }
        }
        let Some(body) = r.body.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                r.end(Answered::BodyFailed(format!(
                    "the response body failed: {e}"
                )));
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                r.end(Answered::Complete);
                Poll::Ready(None)
            }
            Poll::Pending if r.sleep.as_mut().poll(cx).is_ready() => {
                r.end(Answered::TimedOut);
                Poll::Ready(Some(Err(
                    "the function timed out while writing its response".into(),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for GuestBody {
    fn drop(&mut self) {
        let r = self.0.get_mut().unwrap_or_else(|p| p.into_inner());
        // Not read to its end: the reader went away; the guest is stopped with the store.
        r.guest = None;
        r.end(Answered::Complete);
    }
}

/// Runs `guest`, turning a panic in a host function into a failed run, as a panic on the
/// blocking pool used to be, instead of unwinding through the caller's task.
async fn catch_panic(
    guest: impl std::future::Future<Output = GuestDone>,
    started: Instant,
) -> GuestDone {
    let mut guest = std::pin::pin!(guest);
    let polled = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| guest.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(done)) => std::task::Poll::Ready(Ok(done)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    })
    .await;
    polled.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a host function panicked".to_string());
        GuestDone {
            result: Err(wasmtime::Error::msg(format!(
                "the host panicked: {message}"
            ))),
            instantiate: started.elapsed(),
            denied: false,
            peak: 0,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wasm/http.wat");

    /// The `http.wat` component, with `before` in place of its `;; BEFORE` line.
    fn component(before: &str) -> Vec<u8> {
        let text = std::fs::read_to_string(FIXTURE).unwrap();
        assert!(text.contains(";; BEFORE"));
        wat::parse_str(text.replace(";; BEFORE", before)).unwrap()
    }

    async fn handle(bytes: &[u8], timeout_ms: u64) -> HttpRun {
        let c = Arc::new(compile(bytes, "http.wasm").unwrap());
        let request = http::Request::builder()
            .method("POST")
            .uri("/x?y=1")
            .header("x-a", "1")
            .body(trellis_core::target::whole(Bytes::from_static(b"hello")))
            .unwrap();
        c.handle(HttpCall {
            request,
            memory_mb: 128,
            timeout: Duration::from_millis(timeout_ms),
            variables: &[],
            max_response: 1 << 20,
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_component_answers_http() {
        let bytes = component("");
        assert!(is_component(&bytes));
        let run = handle(&bytes, 1000).await;
        let HttpEnded::Response(r) = run.ended else {
            panic!("no response")
        };
        assert_eq!(r.status(), 202);
        assert!(r.body().is_empty());
        assert!(run.instantiate.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loops_traps_and_missing_responses_are_reported() {
        let started = Instant::now();
        let run = handle(&component("(loop $l (br $l))"), 100).await;
        assert!(matches!(run.ended, HttpEnded::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(2));
        let HttpEnded::Trap(message) = handle(&component("unreachable"), 1000).await.ended else {
            panic!("no trap")
        };
        assert!(message.contains("unreachable"), "{message}");
        let run = handle(&component("(return)"), 1000).await;
        assert!(matches!(run.ended, HttpEnded::NoResponse));
    }

    /// The guest runs on the caller's thread: on a current-thread runtime a busy guest must
    /// still let the runtime's other tasks run, and its timeout must still fire.
    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_guest_does_not_hold_a_current_thread_runtime() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let beats = Arc::new(AtomicUsize::new(0));
        let counter = beats.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        let started = Instant::now();
        let run = handle(&component("(loop $l (br $l))"), 300).await;
        assert!(matches!(run.ended, HttpEnded::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(2));
        let beats = beats.load(Ordering::Relaxed);
        assert!(beats >= 5, "only {beats} heartbeats while the guest looped");
        heartbeat.abort();
        let run = handle(&component(""), 1000).await;
        assert!(matches!(run.ended, HttpEnded::Response(_)));
    }

    #[tokio::test]
    async fn a_streamed_response_reports_its_end_once_its_body_is_done() {
        let call = || HttpCall {
            request: http::Request::new(trellis_core::target::whole(Bytes::new())),
            memory_mb: 128,
            timeout: Duration::from_secs(1),
            variables: &[],
            max_response: 1 << 20,
        };
        let (tx, mut ended) = tokio::sync::mpsc::unbounded_channel();
        let on_end = |tx: tokio::sync::mpsc::UnboundedSender<HttpRun>| -> OnEnd {
            Box::new(move |run| tx.send(run).unwrap())
        };
        let c = Arc::new(compile(&component(""), "http.wasm").unwrap());
        let Streamed::Response(r) = c.stream(call(), on_end(tx.clone())).await else {
            panic!("no response")
        };
        assert_eq!(r.status(), 202);
        assert!(
            ended.try_recv().is_err(),
            "reported before the body was read"
        );
        assert!(r.into_body().collect().await.unwrap().to_bytes().is_empty());
        let run = ended.recv().await.unwrap();
        assert!(matches!(run.ended, HttpEnded::Streamed));
        assert!(run.instantiate.is_some());

        // A body dropped unread is reported too, once.
        let Streamed::Response(r) = c.stream(call(), on_end(tx.clone())).await else {
            panic!("no response")
        };
        drop(r);
        assert!(matches!(
            ended.recv().await.unwrap().ended,
            HttpEnded::Streamed
        ));
        assert!(ended.try_recv().is_err());

        // No response: the end comes back at once and `on_end` is not called.
        let c = Arc::new(compile(&component("unreachable"), "http.wasm").unwrap());
        let Streamed::Ended(run) = c.stream(call(), on_end(tx)).await else {
            panic!("a response from a trapping guest")
        };
        assert!(matches!(run.ended, HttpEnded::Trap(_)));
        assert!(
            ended.recv().await.is_none(),
            "on_end called for a run without a response"
        );
    }

    #[tokio::test]
    async fn memory_is_capped_at_memory_size() {
        let text = std::fs::read_to_string(FIXTURE).unwrap();
        let text = text
            .replace(
                "(func (export \"handle\")",
                "(memory 1) (func (export \"handle\")",
            )
            .replace(
                ";; BEFORE",
                "(if (i32.lt_s (memory.grow (i32.const 1000)) (i32.const 0)) (then unreachable))",
            );
        let c = Arc::new(compile(&wat::parse_str(text).unwrap(), "http.wasm").unwrap());
        let run = c
            .handle(HttpCall {
                request: http::Request::new(trellis_core::target::whole(Bytes::new())),
                memory_mb: 16,
                timeout: Duration::from_secs(1),
                variables: &[],
                max_response: 1 << 20,
            })
            .await;
        let HttpEnded::OutOfMemory(message) = run.ended else {
            panic!("the growth was not refused")
        };
        assert!(message.contains("unreachable"), "{message}");
    }

    /// The data plane spawns request handling on a multi-thread runtime.
    #[test]
    fn handling_a_request_is_send() {
        fn send<T: Send>(_: T) {}
        let c = Arc::new(compile(&component(""), "http.wasm").unwrap());
        send(c.handle(HttpCall {
            request: http::Request::new(trellis_core::target::whole(Bytes::new())),
            memory_mb: 128,
            timeout: Duration::from_secs(1),
            variables: &[],
            max_response: 1 << 20,
        }));
    }

    #[test]
    fn bad_components_are_refused_with_the_reason() {
        let empty = wat::parse_str("(component)").unwrap();
        assert!(is_component(&empty));
        let e = compile(&empty, "f.wasm").err().unwrap();
        assert!(
            e.contains("does not export wasi:http/incoming-handler"),
            "{e}"
        );
        let e = compile(b"\0asm\x0d\0\x01\0\x99", "f.wasm").err().unwrap();
        assert!(
            e.starts_with("f.wasm is not a valid WebAssembly component"),
            "{e}"
        );
        let module = wat::parse_str("(module)").unwrap();
        assert!(!is_component(&module));
        // A component importing what the host does not provide cannot be linked.
        let text = std::fs::read_to_string(FIXTURE)
            .unwrap()
            .replace("wasi:http/types@0.2.0", "acme:http/types@1.0.0");
        let e = compile(&wat::parse_str(text).unwrap(), "f.wasm")
            .err()
            .unwrap();
        assert!(e.contains("cannot be linked"), "{e}");
    }
}
