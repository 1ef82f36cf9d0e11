//! Group commit: many callers' writes share one durable commit (one fsync), so the rate of
//! acknowledged writes is not bounded by the disk's fsync rate.
//!
//! Callers hand their writes to a [`GroupCommit`]; a single task takes every request queued when
//! it starts a commit (up to a bound on the number of writes), commits them as one atomic batch
//! and answers each caller with the outcome. Requests from one caller are committed in the order
//! they were made (a later request never lands in an earlier batch), so a caller that waits for
//! each answer before its next request also sees its own writes in order.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::{Store, Write};

/// Most writes in one batch (a single request larger than this is committed alone).
const MAX_WRITES: usize = 4096;

/// A handle to a group-commit task over one store; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Request>,
}

struct Request {
    writes: Vec<Write>,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

impl GroupCommit {
    /// Starts the commit task (on the current Tokio runtime) over `store`; `label` names it in
    /// logs.
    pub fn start(store: Arc<dyn Store>, label: &'static str) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx, label));
        Self { queue }
    }

    /// Commits `writes` atomically and durably, with whatever else is queued, and returns once
    /// they are on disk (or the error that kept the whole batch out).
    pub async fn commit(&self, writes: Vec<Write>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Request {
                writes,
                done: Some(tx),
            })
            .map_err(|_| "the commit task has stopped".to_string())?;
        rx.await
            .map_err(|_| "the commit task has stopped".to_string())?
    }

    /// Queues `writes` without waiting for them: for writes whose loss only repeats work (an
    /// acknowledgement that a delivered item may be forgotten).
    pub fn commit_later(&self, writes: Vec<Write>) {
        let _ = self.queue.send(Request { writes, done: None });
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Request>, label: &'static str) {
    while let Some(first) = rx.recv().await {
        let mut n = first.writes.len();
        let mut batch = vec![first];
        while n < MAX_WRITES {
            match rx.try_recv() {
                Ok(r) => {
                    n += r.writes.len();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        let writes: Vec<Write> = batch
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.writes))
            .collect();
        let started = std::time::Instant::now();
        let result = store
            .commit(writes)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        match &result {
            Ok(()) => tracing::trace!(
                label,
                requests = batch.len(),
                writes = n,
                elapsed_us = started.elapsed().as_micros() as u64,
                "group commit"
            ),
            Err(e) => tracing::error!(label, "group commit failed: {e}"),
        }
        for r in batch {
            if let Some(done) = r.done {
                let _ = done.send(result.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;

    #[tokio::test]
    async fn concurrent_callers_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
        let group = GroupCommit::start(store.clone(), "test");
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let g = group.clone();
                tokio::spawn(async move {
                    g.commit(vec![Write::put(
                        "k",
                        &format!("{i:03}"),
                        serde_json::json!(i),
                    )])
                    .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        group.commit_later(vec![Write::delete("k", "000")]);
        // A waited-for commit after a queued one is committed with it or after it.
        group.commit(vec![]).await.unwrap();
        let all = store.list("k").await.unwrap();
        assert_eq!(all.len(), 199);
        // Fewer commits than callers: the revision counts commits.
        assert!(store.revision().await.unwrap() < 200);
    }
}
