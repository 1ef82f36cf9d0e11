//! The event bus's counters on `GET /metrics`, named after EventBridge's CloudWatch metrics
//! (`MatchedEvents`, `TriggeredRules`, `Invocations`, `FailedInvocations`,
//! `RetryInvocationAttempts`, `DeadLetterInvocations`) so that dashboards read the same.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub(crate) struct Metrics {
    /// `PutEvents` entries accepted (durably, with every delivery they make).
    pub(crate) put_entries: AtomicU64,
    /// Events that matched at least one rule.
    pub(crate) matched_events: AtomicU64,
    /// Rule matches (an event matching three rules counts three).
    pub(crate) triggered_rules: AtomicU64,
    /// First attempts to invoke a target (retries are counted apart).
    pub(crate) invocations: AtomicU64,
    /// Deliveries that ended with the target's success.
    pub(crate) delivered: AtomicU64,
    /// Deliveries that ended without success (retries exhausted or not retryable).
    pub(crate) failed_invocations: AtomicU64,
    pub(crate) retry_attempts: AtomicU64,
    /// Failed deliveries handed to their dead-letter target.
    pub(crate) dead_letter_invocations: AtomicU64,
    /// Delivery tasks started and not yet finished: the backlog, including waits for a retry.
    pub(crate) pending: AtomicU64,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &str, &AtomicU64); 9] = [
            (
                "trellis_events_put_entries_total",
                "counter",
                "PutEvents entries accepted",
                &self.put_entries,
            ),
            (
                "trellis_events_matched_events_total",
                "counter",
                "events that matched at least one rule",
                &self.matched_events,
            ),
            (
                "trellis_events_triggered_rules_total",
                "counter",
                "rule matches",
                &self.triggered_rules,
            ),
            (
                "trellis_events_invocations_total",
                "counter",
                "first attempts to invoke a rule target",
                &self.invocations,
            ),
            (
                "trellis_events_delivered_total",
                "counter",
                "deliveries the target accepted",
                &self.delivered,
            ),
            (
                "trellis_events_failed_invocations_total",
                "counter",
                "deliveries that failed for good",
                &self.failed_invocations,
            ),
            (
                "trellis_events_retry_invocation_attempts_total",
                "counter",
                "retried target invocations",
                &self.retry_attempts,
            ),
            (
                "trellis_events_dead_letter_invocations_total",
                "counter",
                "failed deliveries sent to the dead-letter target",
                &self.dead_letter_invocations,
            ),
            (
                "trellis_events_pending_deliveries",
                "gauge",
                "deliveries started and not yet finished",
                &self.pending,
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Relaxed)
            );
        }
    }
}
