//! Task integrations: what a Task state's `Resource` does.
//!
//! - a function ARN (`arn:aws:lambda:…:function:NAME`) or any other ARN in the target
//!   registry: invoked with the state's input, its answer is the result;
//! - `arn:aws:states:::lambda:invoke` (`.waitForTaskToken`): `FunctionName` invoked with
//!   `Payload`, the result wrapped as AWS does (`{"Payload": …, "StatusCode": 200, …}`);
//! - `arn:aws:states:::states:startExecution` (`.sync`, `.sync:2`, `.waitForTaskToken`): a
//!   child execution of this service;
//! - `arn:aws:states:::events:putEvents`: each entry put on its event bus (the bus's target);
//! - `arn:aws:states:::http:invoke` (`.waitForTaskToken`): one HTTP request through an
//!   EventBridge connection
//!   (`http_task`);
//! - an activity ARN: queued for `GetActivityTask` (see the executor's dispatch).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use trellis_core::target::TargetError;

use super::executor::{ExecDoc, StartRequest};
use super::{Activity, Inner};
use crate::interpreter::{Failure, TaskOutcome, TaskRequest};
use crate::time::Timestamp;

impl Inner {
    pub(crate) fn activity(&self, resource: &str) -> Option<Arc<Activity>> {
        if !resource.contains(":activity:") {
            return None;
        }
        self.activities
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(resource)
            .cloned()
    }

    /// Runs one task; `None` when its result arrives later by task token.
    /// `parent` is the ARN of the execution the task belongs to.
    pub(crate) async fn run_task(
        self: Arc<Self>,
        parent: &str,
        t: &TaskRequest,
    ) -> Option<TaskOutcome> {
        let wait_for_token = t.task_token.is_some();
        let integration = service_integration(&t.resource);
        let outcome = match integration {
            Some(("lambda", action)) if action.starts_with("invoke") => {
                self.lambda_invoke(t, wait_for_token).await
            }
            Some(("states", action)) if action.starts_with("startExecution") => {
                return self
                    .start_child(parent, t, action.trim_start_matches("startExecution"))
                    .await;
            }
            Some(("events", "putEvents")) | Some(("events", "putEvents.waitForTaskToken")) => {
                Some(self.put_events(t).await)
            }
            // `.waitForTaskToken`: the request carries the token (`$$.Task.Token` in its
            // parameters); a failed request fails the task, a sent one waits for SendTask*.
            Some(("http", "invoke" | "invoke.waitForTaskToken")) => {
                Some(self.http_invoke(t).await)
            }
            Some((service, action)) => Some(TaskOutcome::Failed(Failure::new(
                "States.Runtime",
                format!(
                    "The resource '{}' is not supported by Trellis (service integration {service}:{action})",
                    t.resource
                ),
            ))),
            None => {
                let r = self
                    .targets
                    .invoke(&t.resource, Bytes::from(t.input.to_string()))
                    .await;
                Some(match r {
                    Ok(body) => TaskOutcome::Succeeded(parse_result(&body)),
                    Err(e) => TaskOutcome::Failed(target_failure(&t.resource, e)),
                })
            }
        };
        // A `.waitForTaskToken` task that reached its worker waits for SendTask*.
        match outcome {
            Some(TaskOutcome::Succeeded(_)) if wait_for_token => None,
            other => other,
        }
    }

    async fn lambda_invoke(&self, t: &TaskRequest, _wait: bool) -> Option<TaskOutcome> {
        let Some(name) = t.input.get("FunctionName").and_then(Value::as_str) else {
            return Some(TaskOutcome::Failed(Failure::new(
                "States.Runtime",
                "The field 'FunctionName' is required by arn:aws:states:::lambda:invoke",
            )));
        };
        let arn = self.function_arn(name);
        let payload = match t.input.get("Payload") {
            Some(Value::String(s)) => Bytes::from(s.clone()),
            Some(v) => Bytes::from(v.to_string()),
            None => Bytes::from_static(b"{}"),
        };
        let mut r = self.targets.invoke(&arn, payload.clone()).await;
        if matches!(r, Err(TargetError::NotFound(_))) {
            // `…:function:NAME:QUALIFIER` registered without its qualifier.
            if let Some(base) = unqualified(&arn) {
                r = self.targets.invoke(base, payload).await;
            }
        }
        Some(match r {
            Ok(body) => TaskOutcome::Succeeded(json!({
                "ExecutedVersion": "$LATEST",
                "Payload": parse_result(&body),
                "SdkHttpMetadata": {"HttpHeaders": {}, "HttpStatusCode": 200},
                "SdkResponseMetadata": {"RequestId": crate::intrinsics::uuid_v4()},
                "StatusCode": 200,
            })),
            Err(e) => TaskOutcome::Failed(target_failure(&arn, e)),
        })
    }

    /// `events:putEvents`: each entry becomes an event put on its bus (through the bus's
    /// target); the result is PutEvents' answer. Any failed entry fails the task with
    /// `EventBridge.FailedEntry`, as AWS does.
    async fn put_events(&self, t: &TaskRequest) -> TaskOutcome {
        let Some(entries) = t.input.get("Entries").and_then(Value::as_array) else {
            return TaskOutcome::Failed(Failure::new(
                "States.Runtime",
                "The field 'Entries' is required by arn:aws:states:::events:putEvents",
            ));
        };
        let time = Timestamp::now().to_rfc3339();
        // EventBridge times have whole seconds: `2024-01-02T03:04:05Z`.
        let time = match time.split_once('.') {
            Some((secs, _)) => format!("{secs}Z"),
            None => time,
        };
        let mut results = Vec::new();
        let mut failed = 0;
        for entry in entries {
            let bus = entry["EventBusName"].as_str().unwrap_or("default");
            let bus_arn = if bus.starts_with("arn:") {
                bus.to_string()
            } else {
                self.arn.arn("events", &format!("event-bus/{bus}"))
            };
            let detail = match &entry["Detail"] {
                Value::String(s) => serde_json::from_str(s).unwrap_or(json!({})),
                Value::Null => json!({}),
                v => v.clone(),
            };
            let id = crate::intrinsics::uuid_v4();
            let event = json!({
                "version": "0",
                "id": id,
                "detail-type": entry["DetailType"].as_str().unwrap_or_default(),
                "source": entry["Source"].as_str().unwrap_or_default(),
                "account": self.arn.account,
                "time": time,
                "region": self.arn.region,
                "resources": entry.get("Resources").cloned().unwrap_or(json!([])),
                "detail": detail,
            });
            match self
                .targets
                .invoke(&bus_arn, Bytes::from(event.to_string()))
                .await
            {
                Ok(_) => results.push(json!({"EventId": id})),
                Err(e) => {
                    failed += 1;
                    let (code, message) = match e {
                        TargetError::NotFound(_) => (
                            "NotFoundException",
                            format!("Event bus {bus} does not exist."),
                        ),
                        other => ("InternalFailure", other.to_string()),
                    };
                    results.push(json!({"ErrorCode": code, "ErrorMessage": message}));
                }
            }
        }
        let out = json!({"Entries": results, "FailedEntryCount": failed});
        if failed > 0 {
            TaskOutcome::Failed(Failure::new("EventBridge.FailedEntry", out.to_string()))
        } else {
            TaskOutcome::Succeeded(out)
        }
    }

    /// A function name, partial ARN or ARN as a full function ARN.
    fn function_arn(&self, name: &str) -> String {
        if name.starts_with("arn:") {
            name.to_string()
        } else if name.contains(":function:") {
            format!(
                "arn:{}:lambda:{}:{name}",
                self.arn.partition, self.arn.region
            )
        } else {
            self.arn.arn("lambda", &format!("function:{name}"))
        }
    }

    /// `states:startExecution` with `suffix` "", ".sync", ".sync:2" or ".waitForTaskToken".
    async fn start_child(
        self: Arc<Self>,
        parent: &str,
        t: &TaskRequest,
        suffix: &str,
    ) -> Option<TaskOutcome> {
        let Some(sm) = t.input.get("StateMachineArn").and_then(Value::as_str) else {
            return Some(TaskOutcome::Failed(Failure::new(
                "States.Runtime",
                "The field 'StateMachineArn' is required by arn:aws:states:::states:startExecution",
            )));
        };
        let input = match t.input.get("Input") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "{}".to_string(),
        };
        // A name derived from the parent task, so the task re-dispatched after a crash
        // finds the child it started before.
        let name = match t.input.get("Name").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => super::definition_id(&format!("{parent}#{}", t.id))[..32].to_string(),
        };
        let started = self
            .start_execution(StartRequest {
                state_machine_arn: sm,
                name: Some(name),
                input: Some(input),
                reuse_existing: true,
            })
            .await;
        let child = match started {
            Ok((h, _)) => h,
            Err(e) => {
                return Some(TaskOutcome::Failed(Failure::new(
                    format!("StepFunctions.{}Exception", e.code),
                    format!(
                        "{} (Service: AWSStepFunctions; Status Code: 400; Error Code: {}; Request ID: {}; Proxy: null)",
                        e.message,
                        e.code,
                        crate::intrinsics::uuid_v4()
                    ),
                )))
            }
        };
        match suffix {
            ".waitForTaskToken" => None,
            ".sync" | ".sync:2" => {
                let doc = child.wait().await;
                let out = sync_output(&doc, suffix == ".sync:2");
                Some(if doc.status == "SUCCEEDED" {
                    TaskOutcome::Succeeded(out)
                } else {
                    TaskOutcome::Failed(Failure::new("States.TaskFailed", out.to_string()))
                })
            }
            _ => {
                let start = child.state.lock().await.doc.start_date;
                Some(TaskOutcome::Succeeded(json!({
                    "ExecutionArn": child.arn,
                    "StartDate": start,
                })))
            }
        }
    }
}

/// `arn:aws:states:::lambda:invoke.waitForTaskToken` -> ("lambda", "invoke.waitForTaskToken").
fn service_integration(resource: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" && parts[2] == "states" && parts[3].is_empty() {
        return parts[5].split_once(':');
    }
    None
}

fn unqualified(arn: &str) -> Option<&str> {
    let idx = arn.find(":function:")?;
    let rest = &arn[idx + ":function:".len()..];
    let colon = rest.find(':')?;
    Some(&arn[..idx + ":function:".len() + colon])
}

/// A target's answer as JSON (a string when it is not JSON).
fn parse_result(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// A failed invocation as the task failure AWS reports.
fn target_failure(resource: &str, e: TargetError) -> Failure {
    let lambda = resource.contains(":lambda:");
    match e {
        TargetError::NotFound(arn) if lambda => Failure::new(
            "Lambda.ResourceNotFoundException",
            format!(
                "Function not found: {arn} (Service: Lambda, Status Code: 404, Request ID: {})",
                crate::intrinsics::uuid_v4()
            ),
        ),
        TargetError::NotFound(arn) => Failure::new(
            "States.TaskFailed",
            format!("The resource '{arn}' does not exist or is not invocable"),
        ),
        // AWS gives a function's error payload as the cause: keep one that is JSON, make one
        // from the type and message otherwise.
        TargetError::Failed { error, cause }
            if lambda && !serde_json::from_str::<Value>(&cause).is_ok_and(|v| v.is_object()) =>
        {
            let payload = json!({"errorMessage": cause, "errorType": error}).to_string();
            Failure::new(error, payload)
        }
        TargetError::Failed { error, cause } => Failure::new(error, cause),
        TargetError::Timeout(arn) => Failure::new(
            if lambda {
                "Lambda.SdkClientException"
            } else {
                "States.TaskFailed"
            },
            format!("The invocation of {arn} timed out"),
        ),
        TargetError::Unavailable(why) => Failure::new(
            if lambda {
                "Lambda.ServiceException"
            } else {
                "States.TaskFailed"
            },
            why,
        ),
    }
}

/// The result of a `.sync` child: DescribeExecution in the integration's PascalCase, with
/// `Input`/`Output` as JSON for `.sync:2` and as text for `.sync`.
fn sync_output(doc: &ExecDoc, json_values: bool) -> Value {
    let text = |s: &str| -> Value {
        if json_values {
            serde_json::from_str(s).unwrap_or(Value::String(s.to_string()))
        } else {
            Value::String(s.to_string())
        }
    };
    let mut m = serde_json::Map::new();
    m.insert("ExecutionArn".into(), json!(doc.execution_arn));
    m.insert("Input".into(), text(&doc.input));
    m.insert("InputDetails".into(), json!({"Included": true}));
    m.insert("Name".into(), json!(doc.name));
    if let Some(o) = &doc.output {
        m.insert("Output".into(), text(o));
        m.insert("OutputDetails".into(), json!({"Included": true}));
    }
    m.insert("StartDate".into(), json!(doc.start_date));
    m.insert("StateMachineArn".into(), json!(doc.state_machine_arn));
    m.insert("Status".into(), json!(doc.status));
    if let Some(s) = doc.stop_date {
        m.insert("StopDate".into(), json!(s));
    }
    if let Some(e) = &doc.error {
        m.insert("Error".into(), json!(e));
    }
    if let Some(c) = &doc.cause {
        m.insert("Cause".into(), json!(c));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_integrations() {
        assert_eq!(
            service_integration("arn:aws:states:::lambda:invoke.waitForTaskToken"),
            Some(("lambda", "invoke.waitForTaskToken"))
        );
        assert_eq!(
            service_integration("arn:aws:states:::states:startExecution.sync:2"),
            Some(("states", "startExecution.sync:2"))
        );
        assert_eq!(
            service_integration("arn:aws:lambda:us-east-1:1:function:f"),
            None
        );
        assert_eq!(
            unqualified("arn:aws:lambda:us-east-1:1:function:f:prod"),
            Some("arn:aws:lambda:us-east-1:1:function:f")
        );
        assert_eq!(unqualified("arn:aws:lambda:us-east-1:1:function:f"), None);
    }
}
