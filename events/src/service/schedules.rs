//! Scheduled rules: each enabled rule with a `ScheduleExpression` keeps its next fire time in
//! its stored record. Firing commits the deliveries of the scheduled events and the advanced
//! fire time in one batch, so a crash either fires an occurrence and moves past it, or does
//! neither: no double firing, and occurrences missed while the node was down are fired on
//! start (up to [`MAX_CATCH_UP`] per rule; older ones are skipped with a warning).

use std::sync::{Arc, Weak};
use std::time::Duration;

use trellis_core::clock::now_millis;
use trellis_store::Write;

use super::delivery::{deliveries_for, event_text};
use super::{rule_snap, Inner, RuleDoc, KIND_RULE};
use crate::schedule::format_utc;
use crate::Schedule;

/// Most missed occurrences fired for one rule after a downtime.
pub(crate) const MAX_CATCH_UP: usize = 1440;

/// The longest the loop sleeps without looking again.
const IDLE: Duration = Duration::from_secs(30);

pub(crate) async fn schedule_loop(inner: Weak<Inner>) {
    loop {
        let Some(me) = inner.upgrade() else { return };
        let now = (now_millis() / 1000) as i64;
        let next = me.tick_schedules(now).await;
        let wait = next.map_or(IDLE, |n| {
            // Wake just after the second the occurrence is due.
            let ms = (n * 1000 + 5).saturating_sub(now_millis() as i64).max(10) as u64;
            Duration::from_millis(ms).min(IDLE)
        });
        let wake = me.schedule_wake.clone();
        drop(me);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
        }
    }
}

/// The fire times of `schedule` due at `now` starting at `next` (all Unix seconds), and the
/// first fire time after them. At most `cap` are returned; later missed ones are skipped.
pub(crate) fn due_fires(
    schedule: &Schedule,
    next: i64,
    now: i64,
    anchor: i64,
    cap: usize,
) -> (Vec<i64>, Option<i64>) {
    let mut fires = Vec::new();
    let mut t = Some(next);
    while let Some(at) = t {
        if at > now {
            break;
        }
        if fires.len() == cap {
            // Too far behind: skip to the first occurrence after now.
            return (fires, schedule.next_after(now, anchor));
        }
        fires.push(at);
        t = schedule.next_after(at, anchor);
    }
    (fires, t)
}

/// The first fire time of a schedule rule created (or changed) at `created_secs`.
pub(crate) fn first_fire(schedule: &Schedule, created_secs: i64) -> Option<i64> {
    schedule.next_after(created_secs, created_secs)
}

impl Inner {
    /// Fires every schedule occurrence due at `now` (Unix seconds) and returns the earliest
    /// next fire time of any rule.
    pub(crate) async fn tick_schedules(self: &Arc<Self>, now: i64) -> Option<i64> {
        let _admin = self.admin.lock().await;
        let due: Vec<RuleDoc> = self
            .lock()
            .rules
            .values()
            .filter(|r| r.schedule.is_some() && r.state != "DISABLED")
            .filter(|r| r.next_fire.is_some_and(|n| n <= now))
            .cloned()
            .collect();
        for mut rule in due {
            let Some(Ok(schedule)) = rule.schedule.as_deref().map(Schedule::parse) else {
                continue;
            };
            let anchor = (rule.created_ms / 1000) as i64;
            let Some(next) = rule.next_fire else { continue };
            let (fires, after) = due_fires(&schedule, next, now, anchor, MAX_CATCH_UP);
            if after.is_some_and(|a| a > now) && fires.len() == MAX_CATCH_UP {
                tracing::warn!(rule = %rule.arn, "schedule fell behind; skipping to the next occurrence");
            }
            let snap = rule_snap(&rule);
            let mut deliveries = Vec::new();
            for at in &fires {
                let event = event_text(
                    &super::uuid(),
                    "Scheduled Event",
                    "aws.events",
                    &self.arn.account,
                    &format_utc(*at),
                    &self.arn.region,
                    std::slice::from_ref(&rule.arn),
                    "{}",
                );
                deliveries.extend(deliveries_for(&snap, &event, now_millis()));
            }
            rule.next_fire = after;
            let doc = match serde_json::to_value(&rule) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("cannot encode rule {}: {e}", rule.arn);
                    continue;
                }
            };
            let id = format!("{}/{}", rule.bus, rule.name);
            match self
                .accept(deliveries, vec![Write::put(KIND_RULE, &id, doc)])
                .await
            {
                Ok(()) => {
                    self.lock()
                        .rules
                        .insert((rule.bus.clone(), rule.name.clone()), rule);
                }
                Err(e) => tracing::error!(rule = %rule.arn, "schedule not fired: {e}"),
            }
        }
        self.lock()
            .rules
            .values()
            .filter(|r| r.schedule.is_some() && r.state != "DISABLED")
            .filter_map(|r| r.next_fire)
            .min()
    }
}
