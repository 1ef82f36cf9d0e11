//! The threads that run endpoint connections: each has its own single-threaded Tokio runtime,
//! so a connection's two directions, its timers and its wake-ups stay on one thread (no work
//! stealing, no cross-thread wake-ups). The listeners accept on the caller's runtime and hand
//! each accepted socket to the worker with the fewest open connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// What a worker runs for one connection, given the socket registered with its runtime and
/// the worker's index.
pub(crate) type Job =
    Box<dyn FnOnce(TcpStream, usize) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

pub(crate) struct Workers {
    threads: Vec<Worker>,
}

struct Worker {
    jobs: mpsc::UnboundedSender<(std::net::TcpStream, Job)>,
    /// Connections handed to this worker and not finished yet.
    load: Arc<AtomicUsize>,
}

/// Lowers a worker's load when its connection ends (or is dropped with the runtime).
struct Load(Arc<AtomicUsize>);

impl Drop for Load {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Workers {
    /// Starts `n` worker threads (0: `TRELLIS_RESOURCE_WORKERS` when set, else one per core).
    /// A thread that cannot be started is left out; with none, [`Workers::run`] runs
    /// connections on the caller's runtime.
    pub fn start(n: usize) -> Self {
        let n = if n == 0 {
            std::env::var("TRELLIS_RESOURCE_WORKERS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        } else {
            n
        };
        let mut threads = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let (tx, mut rx) = mpsc::unbounded_channel::<(std::net::TcpStream, Job)>();
            let load = Arc::new(AtomicUsize::new(0));
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("resource endpoint worker {i}: cannot build a runtime: {e}");
                    continue;
                }
            };
            let worker_load = load.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("resource-ep-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        // Ends when the manager (the last sender) is gone; dropping the
                        // runtime then closes the connections still open.
                        while let Some((socket, job)) = rx.recv().await {
                            let guard = Load(worker_load.clone());
                            match TcpStream::from_std(socket) {
                                Ok(socket) => {
                                    tokio::spawn(async move {
                                        let _guard = guard;
                                        job(socket, i).await;
                                    });
                                }
                                Err(e) => tracing::warn!("resource endpoint worker {i}: {e}"),
                            }
                        }
                    });
                });
            match spawned {
                Ok(_) => threads.push(Worker { jobs: tx, load }),
                Err(e) => tracing::error!("cannot start resource endpoint worker {i}: {e}"),
            }
        }
        Self { threads }
    }

    /// How many worker threads run.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Runs `job` for `socket` (accepted on the caller's runtime) on the least loaded worker.
    pub fn run(&self, socket: TcpStream, job: Job) {
        let Some(worker) = self.threads.iter().min_by_key(|w| w.load.load(Relaxed)) else {
            return self.run_here(socket, job);
        };
        let socket = match socket.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("resource endpoint: cannot hand a connection over: {e}");
                return;
            }
        };
        worker.load.fetch_add(1, Relaxed);
        if let Err(mpsc::error::SendError((socket, job))) = worker.jobs.send((socket, job)) {
            // The worker is gone (its thread panicked): serve here rather than drop the client.
            worker.load.fetch_sub(1, Relaxed);
            match TcpStream::from_std(socket) {
                Ok(socket) => self.run_here(socket, job),
                Err(e) => tracing::warn!("resource endpoint: {e}"),
            }
        }
    }

    /// On the caller's runtime.
    fn run_here(&self, socket: TcpStream, job: Job) {
        tokio::spawn(job(socket, 0));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn connections_go_to_the_least_loaded_worker_and_stay_on_its_thread() {
        let workers = Workers::start(2);
        assert_eq!(workers.len(), 2);
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (names_tx, mut names) = mpsc::unbounded_channel();
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(
                tokio::net::TcpStream::connect(l.local_addr().unwrap())
                    .await
                    .unwrap(),
            );
            let (accepted, _) = l.accept().await.unwrap();
            let names_tx = names_tx.clone();
            workers.run(
                accepted,
                Box::new(move |mut socket, worker| {
                    Box::pin(async move {
                        let thread = std::thread::current().name().map(str::to_string);
                        let _ = names_tx.send((worker, thread));
                        // Open until the client closes: the worker's load stays up.
                        let mut buf = [0u8; 8];
                        let _ = socket.read(&mut buf).await;
                    })
                }),
            );
            // Each job has started before the next is placed.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(names.recv().await.unwrap());
        }
        got.sort();
        let want = |i: usize| (i, Some(format!("resource-ep-{i}")));
        assert_eq!(got, vec![want(0), want(0), want(1), want(1)]);
        drop(clients);
        // Closed connections lower the load again.
        let t = std::time::Instant::now();
        while workers.threads.iter().any(|w| w.load.load(Relaxed) > 0) {
            assert!(t.elapsed() < Duration::from_secs(5), "load not released");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
