//! RedriveExecution: restarting a failed, timed-out or aborted STANDARD execution from its
//! unsuccessful states, with AWS's eligibility rules and reasons.

use serde_json::{json, Value};
use trellis_core::ApiError;

use super::api::{secs, str_field};
use super::executor::{ExecDoc, Summary};
use super::Inner;
use crate::time::Timestamp;

const DAY_MS: i64 = 24 * 3600 * 1000;
/// How long after it stopped an execution can be redriven.
const REDRIVABLE_PERIOD_MS: i64 = 14 * DAY_MS;
/// An execution's maximum open time (one year), which a redrive cannot extend.
const MAX_OPEN_MS: i64 = 365 * DAY_MS;
/// AWS's hard quota of events in one execution history.
const MAX_HISTORY_EVENTS: u64 = 25_000;
/// How long a `clientToken` answers for the redrive it made.
const CLIENT_TOKEN_MS: i64 = 15 * 60 * 1000;

/// Why `doc` cannot be redriven at `now` (AWS's `redriveStatusReason`), or `None` when it can.
pub(crate) fn not_redrivable(
    doc: &ExecDoc,
    machine_exists: bool,
    now: i64,
) -> Option<&'static str> {
    match doc.status.as_str() {
        "RUNNING" => return Some("Execution is RUNNING and cannot be redriven"),
        "SUCCEEDED" => return Some("Execution is SUCCEEDED and cannot be redriven"),
        _ => {}
    }
    if !machine_exists {
        return Some("State machine is in DELETING status");
    }
    let Some(exec) = &doc.redrive_from else {
        return Some("Execution was started before the launch of RedriveExecution");
    };
    if exec.event_count() >= MAX_HISTORY_EVENTS {
        return Some("Execution history event limit exceeded");
    }
    if now - doc.start_date >= MAX_OPEN_MS {
        return Some("Execution has exceeded the max execution time");
    }
    if doc
        .stop_date
        .is_some_and(|stop| now - stop > REDRIVABLE_PERIOD_MS)
    {
        return Some("Execution redrivable period exceeded");
    }
    None
}

impl Inner {
    /// `redriveStatus` and `redriveStatusReason` of an execution, as DescribeExecution
    /// shows them.
    pub(crate) fn redrive_status(&self, doc: &ExecDoc) -> (&'static str, Option<&'static str>) {
        let exists = self.machine(&doc.state_machine_arn).is_some();
        match not_redrivable(doc, exists, Timestamp::now().millis()) {
            None => ("REDRIVABLE", None),
            Some(reason) => ("NOT_REDRIVABLE", Some(reason)),
        }
    }

    /// RedriveExecution: records `ExecutionRedriven` durably, then drives the execution
    /// again from the states that failed or were interrupted.
    pub(crate) async fn redrive_execution(&self, input: &Value) -> Result<Value, ApiError> {
        let h = self
            .existing_execution_handle(str_field(input, "executionArn"))
            .await?;
        let token = input["clientToken"].as_str().map(str::to_string);
        let mut st = h.state.lock().await;
        let now = Timestamp::now();
        // A retried request (same client token, shortly after) answers the same redrive.
        if let (Some(t), Some(date)) = (&token, st.doc.redrive_date) {
            if st.doc.redrive_token.as_ref() == Some(t) && now.millis() - date < CLIENT_TOKEN_MS {
                return Ok(json!({"redriveDate": secs(date)}));
            }
        }
        let exists = self.machine(&st.doc.state_machine_arn).is_some();
        if let Some(reason) = not_redrivable(&st.doc, exists, now.millis()) {
            return Err(ApiError::new("ExecutionNotRedrivable", 400, reason));
        }
        let mut exec = st.doc.redrive_from.take().expect("checked redrivable");
        let before = st.doc.clone();
        exec.redrive(now);
        let events = exec.take_events();
        let doc = &mut st.doc;
        doc.execution = Some(exec);
        doc.status = "RUNNING".into();
        doc.stop_date = None;
        doc.output = None;
        doc.error = None;
        doc.cause = None;
        doc.redrive_count += 1;
        doc.redrive_date = Some(now.millis());
        doc.redrive_token = token;
        if !self.save(&h, &mut st, events).await {
            st.unsaved.clear();
            st.doc = before;
            return Err(ApiError::internal("could not persist the redrive"));
        }
        *Self::lock(&h.summary) = Summary::of(&st.doc);
        h.done.send_replace(false);
        self.kick_locked(&h, &mut st);
        Ok(json!({"redriveDate": secs(now.millis())}))
    }
}
