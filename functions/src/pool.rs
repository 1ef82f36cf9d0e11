//! The workers of one function version: started on demand up to the function's concurrency,
//! invocations beyond it wait in a bounded queue, idle workers are reused (warm starts) and
//! reaped after a while, and a worker that crashed or timed out is replaced by a fresh one.
//! A WebAssembly function's pool has the same limits and queue but no workers: each invocation
//! instantiates its module in a fresh store on a blocking thread (see [`crate::wasm`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::wasm::{Call, Ended, WasmModule};
use crate::worker::{Invocation, Outcome, Spec, Worker};

/// Lambda's default when no reserved concurrency is set (ours; AWS's is the account's pool).
pub const DEFAULT_CONCURRENCY: usize = 10;
/// Invocations that may wait for a worker beyond the running ones, per unit of concurrency.
pub const QUEUE_PER_WORKER: usize = 100;
/// How long an idle worker is kept warm.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Pool {
    pub spec: Spec,
    permits: Semaphore,
    queue_limit: usize,
    waiting: AtomicUsize,
    idle: Mutex<Vec<(Worker, Instant)>>,
    /// A WebAssembly function runs this module in-process instead of worker processes.
    wasm: Option<Arc<WasmModule>>,
}

/// A finished invocation: how it ended and its log tail (platform lines included).
pub struct Finished {
    pub outcome: Outcome,
    pub logs: Vec<u8>,
    pub duration: Duration,
    /// The process's last output lines when it exited: what it said before dying.
    pub last_lines: Vec<String>,
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
            permits: Semaphore::new(concurrency),
            queue_limit: concurrency * QUEUE_PER_WORKER,
            waiting: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            wasm: None,
        }
    }

    /// A pool whose invocations run `module` (a WASI command) instead of worker processes; the
    /// concurrency limit and queue are the same.
    pub fn wasm(spec: Spec, concurrency: usize, module: Arc<WasmModule>) -> Self {
        Self {
            wasm: Some(module),
            ..Self::new(spec, concurrency)
        }
    }

    /// Runs `inv` on a worker of this pool; `tail` is how many bytes of log to keep.
    pub async fn invoke(&self, inv: Invocation, tail: usize) -> Result<Finished, Throttled> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Throttled);
        }
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let Ok(_permit) = permit else {
            return Err(Throttled);
        };
        if let Some(module) = &self.wasm {
            return Ok(self.invoke_wasm(module.clone(), inv, tail).await);
        }
        let started = Instant::now();
        // A fresh worker's invocation owns everything the process printed from its start.
        let (worker, fresh) = match self.take_idle() {
            Some(w) => (w, false),
            None => match Worker::start(self.spec.clone()).await {
                Ok(w) => (w, true),
                Err(e) => {
                    return Ok(Finished {
                        outcome: Outcome::NotStarted(e),
                        logs: Vec::new(),
                        duration: started.elapsed(),
                        last_lines: Vec::new(),
                    })
                }
            },
        };
        let request_id = inv.request_id.clone();
        let mark = if fresh { 0 } else { worker.log_mark() };
        worker.log_line(&format!(
            "START RequestId: {request_id} Version: {}\n",
            self.spec.version
        ));
        let outcome = worker.invoke(inv).await;
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
        if outcome == Outcome::TimedOut {
            worker.log_line(&format!(
                "{} {request_id} Task timed out after {:.2} seconds\n",
                trellis_core::clock::now_iso8601(),
                self.spec.timeout.as_secs_f64()
            ));
        }
        let ms = duration.as_secs_f64() * 1000.0;
        worker.log_line(&format!(
            "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t\n",
            ms.ceil() as u64,
            self.spec.memory_mb,
            worker.max_memory_mb().unwrap_or(0),
        ));
        let logs = worker.logs_since(mark, tail);
        if worker.is_alive() {
            crate::lock(&self.idle).push((worker, Instant::now()));
        }
        Ok(Finished {
            outcome,
            logs,
            duration,
            last_lines,
        })
    }

    async fn invoke_wasm(&self, module: Arc<WasmModule>, inv: Invocation, tail: usize) -> Finished {
        let started = Instant::now();
        let spec = self.spec.clone();
        let request_id = inv.request_id.clone();
        let timeout = spec.timeout;
        let run = tokio::task::spawn_blocking(move || {
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
            Ok(Ok(run)) => Some(run),
            Ok(Err(e)) => {
                return Finished {
                    outcome: Outcome::Error(crate::lambda::error_payload(
                        "Runtime.WasmTrap",
                        &format!("RequestId: {request_id} Error: {e}"),
                    )),
                    logs: Vec::new(),
                    duration: started.elapsed(),
                    last_lines: Vec::new(),
                }
            }
            Err(_) => None,
        };
        let duration = started.elapsed();
        let mut log = format!(
            "START RequestId: {request_id} Version: {}\n",
            self.spec.version
        )
        .into_bytes();
        let mut last_lines = Vec::new();
        let (outcome, init, memory) = match run {
            None => (Outcome::TimedOut, None, 0),
            Some(run) => {
                log.extend_from_slice(&run.stderr);
                if !run.stderr.is_empty() && !run.stderr.ends_with(b"\n") {
                    log.push(b'\n');
                }
                let stderr = String::from_utf8_lossy(&run.stderr);
                for line in stderr.lines() {
                    tracing::info!(target: "trellis::function", function = %self.spec.function_name, "{line}");
                }
                let outcome = match run.ended {
                    Ended::Ok(out) if out.is_empty() => Outcome::Response(bytes::Bytes::from_static(b"null")),
                    Ended::Ok(out) => Outcome::Response(out),
                    Ended::TimedOut => Outcome::TimedOut,
                    Ended::TooLarge(n) => Outcome::TooLarge(n),
                    Ended::Exit(code) => {
                        last_lines = stderr.lines().map(str::to_string).collect();
                        last_lines.drain(..last_lines.len().saturating_sub(10));
                        Outcome::Exited(format!(
                            "RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
                        ))
                    }
                    Ended::Trap(message) => Outcome::Error(crate::lambda::error_payload(
                        "Runtime.WasmTrap",
                        &format!("RequestId: {request_id} Error: {message}"),
                    )),
                    Ended::OutOfMemory(message) => Outcome::Error(crate::lambda::error_payload(
                        "Runtime.OutOfMemory",
                        &format!(
                            "RequestId: {request_id} Error: Runtime exited after exceeding its memory limit of {} MB ({message})",
                            self.spec.memory_mb
                        ),
                    )),
                };
                (outcome, Some(run.instantiate), run.memory_used)
            }
        };
        if outcome == Outcome::TimedOut {
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
        let init = init
            .map(|d| format!("Init Duration: {:.3} ms\t", d.as_secs_f64() * 1000.0))
            .unwrap_or_default();
        log.extend_from_slice(format!(
            "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t{init}\n",
            ms.ceil() as u64,
            self.spec.memory_mb,
            memory.div_ceil(1 << 20),
        ).as_bytes());
        let logs = log[log.len().saturating_sub(tail)..].to_vec();
        Finished {
            outcome,
            logs,
            duration,
            last_lines,
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
