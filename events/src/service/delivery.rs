//! Durable at-least-once delivery: matching, delivery records, group commit, retries with
//! exponential backoff, dead letters, and event buses as targets.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use trellis_core::clock::now_millis;
use trellis_core::target::{BoxFuture, Target, TargetError};
use trellis_store::{StoreError, Write};

use super::metrics::Metrics;
use super::{Inner, InputSpec, RuleSnap, TargetSpec, KIND_DELIVERY};
use crate::RuleContext;

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(180);

/// One pending delivery of one event to one target, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Delivery {
    pub(crate) id: String,
    pub(crate) rule_arn: String,
    pub(crate) target_id: String,
    pub(crate) target_arn: String,
    /// The target's input (after `Input`, `InputPath` or `InputTransformer`).
    pub(crate) payload: String,
    /// The event as matched, for the dead-letter message.
    pub(crate) event: String,
    pub(crate) ingested_ms: u64,
    pub(crate) max_attempts: u32,
    pub(crate) max_age_secs: u64,
    #[serde(default)]
    pub(crate) dead_letter: Option<String>,
}

/// Restarts every delivery still in the store.
pub(crate) async fn resume(inner: &Arc<Inner>) -> Result<(), StoreError> {
    let pending = inner.store.list(KIND_DELIVERY).await?;
    if !pending.is_empty() {
        tracing::info!(count = pending.len(), "resuming pending event deliveries");
    }
    for (id, doc) in pending {
        match serde_json::from_value::<Delivery>(doc) {
            Ok(d) => spawn_delivery(inner, d),
            Err(e) => tracing::error!(delivery = %id, "unreadable delivery record: {e}"),
        }
    }
    Ok(())
}

/// The event a `PutEvents` entry becomes (raw JSON text; `detail` is copied as written).
#[allow(clippy::too_many_arguments)]
pub(crate) fn event_text(
    id: &str,
    detail_type: &str,
    source: &str,
    account: &str,
    time: &str,
    region: &str,
    resources: &[String],
    detail: &str,
) -> String {
    format!(
        r#"{{"version":"0","id":{},"detail-type":{},"source":{},"account":{},"time":{},"region":{},"resources":{},"detail":{}}}"#,
        Value::from(id),
        Value::from(detail_type),
        Value::from(source),
        Value::from(account),
        Value::from(time),
        Value::from(region),
        json!(resources),
        detail
    )
}

impl Inner {
    /// The deliveries an event on `bus` makes (no store access; nothing is delivered yet).
    /// An unknown bus swallows the event, as AWS does.
    /// `plain`: the event is known to be plain ([`crate::machine::is_plain`]), so the matcher
    /// may skip what no rule reads without checking it.
    pub(crate) fn route(
        &self,
        bus: &str,
        event: &str,
        ingested_ms: u64,
        plain: bool,
    ) -> Vec<Delivery> {
        let snap = self.snapshot.load();
        let Some(bus) = snap.buses.get(bus) else {
            return Vec::new();
        };
        let matched = if plain {
            bus.machine.matches_plain(event)
        } else {
            bus.machine.matches(event)
        };
        let matched = match matched {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("event could not be matched: {e}");
                return Vec::new();
            }
        };
        if !matched.is_empty() {
            Metrics::add(&self.metrics.matched_events, 1);
            Metrics::add(&self.metrics.triggered_rules, matched.len() as u64);
        }
        let mut out = Vec::new();
        for &i in matched {
            let rule = &bus.rules[i];
            out.extend(deliveries_for(rule, event, ingested_ms));
        }
        out
    }

    /// Makes `deliveries` (and `extra` writes) durable, then starts them.
    pub(crate) async fn accept(
        &self,
        deliveries: Vec<Delivery>,
        extra: Vec<Write>,
    ) -> Result<(), String> {
        if deliveries.is_empty() && extra.is_empty() {
            return Ok(());
        }
        let mut writes = extra;
        for d in &deliveries {
            writes.push(Write::put(
                KIND_DELIVERY,
                &d.id,
                serde_json::to_value(d).map_err(|e| e.to_string())?,
            ));
        }
        self.commits.commit(writes).await?;
        if let Some(me) = self.me.upgrade() {
            for d in deliveries {
                spawn_delivery(&me, d);
            }
        }
        Ok(())
    }

    /// Puts one event on `bus` (raw JSON text): what a bus target and schedules do.
    pub(crate) async fn put_event(&self, bus: &str, event: &str) -> Result<(), String> {
        let now = now_millis();
        let deliveries = self.route(bus, event, now, false);
        let archived = self.archive_writes(bus, event, now);
        self.accept(deliveries, archived).await
    }

    fn ack(&self, id: &str) {
        self.commits
            .commit_later(vec![Write::delete(KIND_DELIVERY, id)]);
    }
}

/// The deliveries of `event` to every target of `rule`. A target whose input cannot be made
/// is skipped, as AWS skips it.
pub(crate) fn deliveries_for(rule: &RuleSnap, event: &str, ingested_ms: u64) -> Vec<Delivery> {
    let mut out = Vec::new();
    for t in &rule.targets {
        match target_input(rule, t, event, ingested_ms) {
            Ok(payload) => out.push(Delivery {
                id: format!("{ingested_ms:013}-{}", super::uuid()),
                rule_arn: rule.arn.clone(),
                target_id: t.id.clone(),
                target_arn: t.arn.clone(),
                payload,
                event: event.to_string(),
                ingested_ms,
                max_attempts: t.max_attempts,
                max_age_secs: t.max_age_secs,
                dead_letter: t.dead_letter.clone(),
            }),
            Err(e) => {
                tracing::warn!(rule = %rule.arn, target = %t.id, "target input not made: {e}")
            }
        }
    }
    out
}

fn target_input(
    rule: &RuleSnap,
    t: &TargetSpec,
    event: &str,
    ingested_ms: u64,
) -> Result<String, String> {
    match &t.input {
        InputSpec::Event => Ok(event.to_string()),
        InputSpec::Constant(c) => Ok(c.clone()),
        InputSpec::Path(p) => crate::transform::input_path(event, p)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("InputPath {p} selects nothing")),
        InputSpec::Transformer(tr) => {
            let time = crate::schedule::format_utc((ingested_ms / 1000) as i64);
            tr.apply(
                event,
                &RuleContext {
                    rule_arn: &rule.arn,
                    rule_name: &rule.name,
                    ingestion_time: &time,
                },
            )
            .map_err(|e| e.to_string())
        }
    }
}

pub(crate) fn spawn_delivery(inner: &Arc<Inner>, d: Delivery) {
    Metrics::add(&inner.metrics.pending, 1);
    let weak = Arc::downgrade(inner);
    tokio::spawn(async move {
        let outcome = deliver(weak.clone(), d).await;
        if let Some(me) = weak.upgrade() {
            let m = &me.metrics;
            m.pending.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            match outcome {
                Outcome::Delivered => Metrics::add(&m.delivered, 1),
                Outcome::Failed { dead_lettered } => {
                    Metrics::add(&m.failed_invocations, 1);
                    if dead_lettered {
                        Metrics::add(&m.dead_letter_invocations, 1);
                    }
                }
                Outcome::Stopped => {}
            }
        }
    });
}

/// How one delivery ended.
enum Outcome {
    Delivered,
    /// Retries ran out or the failure is not retried; whether a dead-letter target took it.
    Failed {
        dead_lettered: bool,
    },
    /// The service stopped first (the record stays in the store for the next start).
    Stopped,
}

/// The wait before retry `attempt` (0-based): 1 s doubling, capped, with jitter.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.min(16)).min(MAX_BACKOFF);
    base.mul_f64(0.5 + fastrand::f64() * 0.5)
}

async fn deliver(inner: Weak<Inner>, d: Delivery) -> Outcome {
    let mut retries = 0u32;
    loop {
        let Some(me) = inner.upgrade() else {
            return Outcome::Stopped;
        };
        let counter = if retries == 0 {
            &me.metrics.invocations
        } else {
            &me.metrics.retry_attempts
        };
        Metrics::add(counter, 1);
        let result = {
            let permits = me.permits.clone();
            let _permit = permits.acquire_owned().await;
            me.targets
                .invoke(&d.target_arn, Bytes::from(d.payload.clone()))
                .await
        };
        let error = match result {
            Ok(_) => {
                me.ack(&d.id);
                return Outcome::Delivered;
            }
            Err(e) => e,
        };
        if !retryable(&error) {
            let dead_lettered = dead_letter(&me, &d, &error, None, retries).await;
            me.ack(&d.id);
            return Outcome::Failed { dead_lettered };
        }
        let age_ms = now_millis().saturating_sub(d.ingested_ms);
        let max_age_ms = d.max_age_secs.saturating_mul(1000);
        let exhausted = if retries >= d.max_attempts {
            Some("MaximumRetryAttempts")
        } else if age_ms >= max_age_ms {
            Some("MaximumEventAgeInSeconds")
        } else {
            None
        };
        if let Some(condition) = exhausted {
            let dead_lettered = dead_letter(&me, &d, &error, Some(condition), retries).await;
            me.ack(&d.id);
            return Outcome::Failed { dead_lettered };
        }
        tracing::debug!(target = %d.target_arn, retries, "delivery failed, retrying: {error}");
        let wait = backoff(retries).min(Duration::from_millis(max_age_ms - age_ms));
        retries += 1;
        drop(me);
        tokio::time::sleep(wait).await;
    }
}

/// Whether a failed invocation is tried again. An HTTP answer is, as AWS retries API
/// destinations, only for 401, 407, 409, 429 and 5xx; any other failure (no answer, a timeout,
/// a function error) is.
pub(crate) fn retryable(e: &TargetError) -> bool {
    match super::http_target::http_status(e) {
        Some(status) => matches!(status, 401 | 407 | 409 | 429 | 500..=599),
        None => true,
    }
}

/// AWS's `ERROR_CODE` attribute for a failed invocation.
fn error_code(e: &TargetError) -> &'static str {
    match e {
        TargetError::NotFound(_) => "RESOURCE_NOT_FOUND",
        TargetError::Failed { .. } => "CLIENT_ERROR",
        TargetError::Timeout(_) => "SDK_CLIENT_ERROR",
        TargetError::Unavailable(_) => "SDK_CLIENT_ERROR",
    }
}

/// The dead-letter message: SQS `SendMessage` input (the event as body, AWS's attributes).
/// `condition` is the retry limit reached; a failure that is not retried has none.
pub(crate) fn dead_letter_message(
    d: &Delivery,
    e: &TargetError,
    condition: Option<&str>,
    retries: u32,
) -> Value {
    let attr = |v: String| json!({"DataType": "String", "StringValue": v});
    let mut attrs = json!({
        "ERROR_CODE": attr(error_code(e).to_string()),
        "ERROR_MESSAGE": attr(e.to_string()),
        "RETRY_ATTEMPTS": {"DataType": "Number", "StringValue": retries.to_string()},
        "RULE_ARN": attr(d.rule_arn.clone()),
        "TARGET_ARN": attr(d.target_arn.clone()),
    });
    if let Some(c) = condition {
        attrs["EXHAUSTED_RETRY_CONDITION"] = attr(c.to_string());
    }
    json!({"MessageBody": d.event, "MessageAttributes": attrs})
}

/// Hands a failed delivery to its dead-letter target; whether that target took it.
async fn dead_letter(
    inner: &Inner,
    d: &Delivery,
    e: &TargetError,
    condition: Option<&str>,
    retries: u32,
) -> bool {
    let Some(dlq) = &d.dead_letter else {
        let why = condition.unwrap_or("not retryable");
        tracing::warn!(
            rule = %d.rule_arn, target = %d.target_arn,
            "event dropped after {retries} retries ({why}): {e}"
        );
        return false;
    };
    let message = dead_letter_message(d, e, condition, retries).to_string();
    for attempt in 0..3u32 {
        match inner
            .targets
            .invoke(dlq, Bytes::from(message.clone()))
            .await
        {
            Ok(_) => return true,
            Err(err) => {
                tracing::warn!(dlq = %dlq, attempt, "dead-letter delivery failed: {err}");
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    }
    tracing::error!(rule = %d.rule_arn, target = %d.target_arn, "event dropped: dead-letter target failed");
    false
}

/// An event bus as a target: the payload is put on the bus. A payload that is an event
/// (an object with `source` and `detail-type`) is forwarded as it is; anything else becomes
/// the `detail` of an event from `trellis.events`.
pub(crate) struct BusTarget {
    pub(crate) arn: String,
    pub(crate) bus: String,
    pub(crate) inner: Weak<Inner>,
}

impl Target for BusTarget {
    fn arn(&self) -> &str {
        &self.arn
    }

    fn invoke(&self, payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
        let inner = self.inner.clone();
        let bus = self.bus.clone();
        let arn = self.arn.clone();
        Box::pin(async move {
            let inner = inner
                .upgrade()
                .ok_or_else(|| TargetError::Unavailable("event bus service stopped".into()))?;
            if !inner.lock().buses.contains_key(&bus) {
                return Err(TargetError::NotFound(arn));
            }
            let text = std::str::from_utf8(&payload)
                .map_err(|_| TargetError::Failed {
                    error: "InvalidArgument".into(),
                    cause: "payload is not UTF-8".into(),
                })?
                .to_string();
            let parsed: Option<Value> = serde_json::from_str(&text).ok();
            let is_event = parsed.as_ref().is_some_and(|v| {
                v.get("source").is_some_and(Value::is_string)
                    && v.get("detail-type").is_some_and(Value::is_string)
            });
            let event = if is_event {
                text
            } else {
                let detail = match &parsed {
                    Some(v @ Value::Object(_)) => v.to_string(),
                    Some(v) => json!({ "payload": v }).to_string(),
                    None => json!({ "payload": text }).to_string(),
                };
                event_text(
                    &super::uuid(),
                    "Target Invocation",
                    "trellis.events",
                    &inner.arn.account,
                    &crate::schedule::format_utc((now_millis() / 1000) as i64),
                    &inner.arn.region,
                    &[],
                    &detail,
                )
            };
            inner
                .put_event(&bus, &event)
                .await
                .map_err(TargetError::Unavailable)?;
            Ok(Bytes::from_static(b"{}"))
        })
    }
}

impl Inner {
    pub(crate) fn register_bus(&self, name: &str) {
        self.targets.register(Arc::new(BusTarget {
            arn: self.bus_arn(name),
            bus: name.to_string(),
            inner: self.me.clone(),
        }));
    }
}
