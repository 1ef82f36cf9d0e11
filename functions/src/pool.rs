//! The workers of one function version: started on demand up to the function's concurrency,
//! invocations beyond it wait in a bounded queue, idle workers are reused (warm starts) and
//! reaped after a while, and a worker that crashed or timed out is replaced by a fresh one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

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
