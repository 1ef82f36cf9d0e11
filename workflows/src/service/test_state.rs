//! TestState: runs one state in isolation and reports its output, error and next state.
//!
//! The state runs inside a small machine: the state itself (its Retry removed, since TestState
//! reports `RETRIABLE` instead of retrying), a `Succeed` placeholder for every state it can
//! transition to, and, when `variables` are given, a Pass state before it that assigns them.
//! The first placeholder entered is the next state and its input is the state's output. Time
//! is virtual (a Wait state does not wait); tasks run through the real integrations unless a
//! `mock` result or error is given.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use trellis_core::ApiError;

use super::api::str_field;
use super::{invalid_definition, Inner};
use crate::interpreter::{Execution, ExecutionInfo, Failure, Status, Step, TaskOutcome};
use crate::time::Timestamp;
use crate::validate::{validate_for, Diagnostic, InvalidDefinition, MachineType};

const PRELUDE: &str = "TrellisTestStateVariables";
const MAX_STEPS: usize = 100_000;

impl Inner {
    pub(crate) async fn test_state(self: Arc<Self>, input: &Value) -> Result<Value, ApiError> {
        let def: Value = serde_json::from_str(str_field(input, "definition"))
            .map_err(|e| invalid(format!("Definition must be a valid JSON object: {e}")))?;
        let given_name = input["stateName"].as_str();
        let (name, state, query_language) = if let Some(states) = def.get("States") {
            let name = given_name.ok_or_else(|| {
                ApiError::invalid("stateName is required when the definition is a state machine")
            })?;
            let state = states.get(name).cloned().ok_or_else(|| {
                invalid(format!(
                    "The state '{name}' is not in the state machine definition"
                ))
            })?;
            (name.to_string(), state, def.get("QueryLanguage").cloned())
        } else {
            (
                given_name.unwrap_or("TestState").to_string(),
                def.clone(),
                None,
            )
        };
        let Value::Object(mut state_obj) = state else {
            return Err(invalid("A state must be a JSON object".into()));
        };
        let retry = state_obj.remove("Retry");
        let success_targets = success_targets(&state_obj);
        let catch_targets: BTreeSet<String> = state_obj
            .get("Catch")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["Next"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let placeholders: BTreeSet<String> = success_targets
            .iter()
            .chain(&catch_targets)
            .filter(|t| **t != name)
            .cloned()
            .collect();

        let mut states = Map::new();
        let variables = match input.get("variables").and_then(Value::as_str) {
            Some(text) => Some(
                serde_json::from_str::<Value>(text)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| ApiError::invalid("variables must be a JSON object"))?,
            ),
            None => None,
        };
        if let Some(vars) = &variables {
            states.insert(
                PRELUDE.into(),
                json!({"Type": "Pass", "Assign": vars, "Next": name}),
            );
        }
        states.insert(name.clone(), Value::Object(state_obj.clone()));
        for p in &placeholders {
            states.insert(p.clone(), json!({"Type": "Succeed"}));
        }
        let mut machine_def = json!({
            "StartAt": if variables.is_some() { PRELUDE } else { name.as_str() },
            "States": states,
        });
        if let Some(ql) = query_language {
            machine_def["QueryLanguage"] = ql;
        }
        let machine = validate_for(&machine_def.to_string(), MachineType::Standard)
            .map_err(|e| invalid_definition(&e))?;

        let input_text = input["input"].as_str().unwrap_or("{}");
        let exec_input: Value = serde_json::from_str(input_text).map_err(|e| {
            ApiError::new(
                "InvalidExecutionInput",
                400,
                format!(
                    "Invalid State Machine Execution Input: '{}'",
                    crate::json_syntax::error_message(input_text, &e)
                ),
            )
        })?;
        let now = Timestamp::now();
        let info = ExecutionInfo::new(
            &self.arn.region,
            &self.arn.account,
            "TestState",
            &crate::intrinsics::uuid_v4(),
            exec_input,
            now,
        );
        let parent = info.execution_arn.clone();
        let mut exec = Execution::start(&machine, info);
        let mock = mock_outcome(input)?;
        let mut clock = now;
        for _ in 0..MAX_STEPS {
            match exec.step(&machine, clock) {
                Step::Progressed => {}
                Step::Finished => break,
                Step::Blocked { until, tasks } => {
                    if tasks.is_empty() {
                        match until {
                            Some(t) => clock = clock.max(t),
                            None => break,
                        }
                    }
                    for t in tasks {
                        let outcome = match &mock {
                            Some(m) => m.clone(),
                            None => self.clone().run_task(&parent, &t).await.unwrap_or_else(|| {
                                TaskOutcome::Failed(Failure::new(
                                    "States.Runtime",
                                    "TestState does not wait for task tokens; pass a mock result",
                                ))
                            }),
                        };
                        exec.complete_task(t.id, outcome);
                    }
                }
            }
            // Stop as soon as a placeholder is entered: its input is the answer.
            if reached(&exec, &placeholders).is_some() {
                break;
            }
        }

        let mut out = Map::new();
        if let Some((next, output)) = reached(&exec, &placeholders) {
            out.insert("output".into(), json!(output));
            if success_targets.contains(&next) {
                out.insert("status".into(), json!("SUCCEEDED"));
                out.insert("nextState".into(), json!(next));
            } else {
                let caught: Value = serde_json::from_str(&output).unwrap_or(Value::Null);
                let (error, cause) = caught_error(&state_obj, &next, &caught);
                let retriable = error
                    .as_deref()
                    .is_some_and(|e| retry_matches(retry.as_ref(), e));
                out.insert(
                    "status".into(),
                    json!(if retriable {
                        "RETRIABLE"
                    } else {
                        "CAUGHT_ERROR"
                    }),
                );
                if !retriable {
                    out.insert("nextState".into(), json!(next));
                }
                if let Some(e) = error {
                    out.insert("error".into(), json!(e));
                }
                if let Some(c) = cause {
                    out.insert("cause".into(), json!(c));
                }
            }
        } else {
            match exec.status() {
                Status::Succeeded => {
                    out.insert("status".into(), json!("SUCCEEDED"));
                    if let Some(o) = exec.output() {
                        out.insert("output".into(), json!(o.to_string()));
                    }
                }
                _ => {
                    let f = exec.failure().cloned().unwrap_or(Failure {
                        error: Some("States.Runtime".into()),
                        cause: Some("the state did not finish".into()),
                    });
                    let retriable = f
                        .error
                        .as_deref()
                        .is_some_and(|e| retry_matches(retry.as_ref(), e));
                    out.insert(
                        "status".into(),
                        json!(if retriable { "RETRIABLE" } else { "FAILED" }),
                    );
                    if let Some(e) = f.error {
                        out.insert("error".into(), json!(e));
                    }
                    if let Some(c) = f.cause {
                        out.insert("cause".into(), json!(c));
                    }
                }
            }
        }
        if input.get("inspectionLevel").is_some() {
            let mut data = Map::new();
            data.insert("input".into(), json!(input_text));
            if let Some(vars) = &variables {
                data.insert("variables".into(), json!(vars.to_string()));
            }
            if let Some(result) = task_result(&exec) {
                data.insert("result".into(), json!(result));
            }
            if let Some(o) = out.get("output") {
                data.insert("afterResultPath".into(), o.clone());
            }
            out.insert("inspectionData".into(), Value::Object(data));
        }
        Ok(Value::Object(out))
    }
}

fn invalid(message: String) -> ApiError {
    invalid_definition(&InvalidDefinition(vec![Diagnostic {
        code: "SCHEMA_VALIDATION_FAILED",
        message,
        location: String::new(),
        detail: None,
    }]))
}

/// The states a state moves to without an error: `Next`, a Choice's rules and `Default`.
fn success_targets(state: &Map<String, Value>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(n) = state.get("Next").and_then(Value::as_str) {
        out.insert(n.to_string());
    }
    if let Some(d) = state.get("Default").and_then(Value::as_str) {
        out.insert(d.to_string());
    }
    if let Some(choices) = state.get("Choices").and_then(Value::as_array) {
        out.extend(
            choices
                .iter()
                .filter_map(|c| c["Next"].as_str().map(str::to_string)),
        );
    }
    out
}

/// The first placeholder entered and its input text.
fn reached(exec: &Execution, placeholders: &BTreeSet<String>) -> Option<(String, String)> {
    exec.history().iter().find_map(|e| {
        let d = e.details.get("stateEnteredEventDetails")?;
        let name = d["name"].as_str()?;
        placeholders.contains(name).then(|| {
            (
                name.to_string(),
                d["input"].as_str().unwrap_or("").to_string(),
            )
        })
    })
}

/// The task's own result (before ResultSelector/ResultPath), when it ran one.
fn task_result(exec: &Execution) -> Option<String> {
    exec.history().iter().find_map(|e| {
        [
            "taskSucceededEventDetails",
            "lambdaFunctionSucceededEventDetails",
        ]
        .iter()
        .find_map(|k| e.details.get(*k))
        .and_then(|d| d["output"].as_str().map(str::to_string))
    })
}

/// The error a catcher caught, read back from where its ResultPath put it.
fn caught_error(
    state: &Map<String, Value>,
    next: &str,
    output: &Value,
) -> (Option<String>, Option<String>) {
    let catcher = state
        .get("Catch")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["Next"] == next));
    let path = catcher
        .and_then(|c| c["ResultPath"].as_str())
        .unwrap_or("$");
    let mut v = output;
    for part in path
        .trim_start_matches('$')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        v = &v[part];
    }
    (
        v["Error"].as_str().map(str::to_string),
        v["Cause"].as_str().map(str::to_string),
    )
}

fn retry_matches(retry: Option<&Value>, error: &str) -> bool {
    retry.and_then(Value::as_array).is_some_and(|rs| {
        rs.iter().any(|r| {
            r["MaxAttempts"].as_u64() != Some(0)
                && r["ErrorEquals"].as_array().is_some_and(|es| {
                    es.iter().any(|e| {
                        e == error
                            || e == "States.ALL"
                            || e == "States.TaskFailed"
                                && !matches!(error, "States.Timeout" | "States.Runtime")
                                && !error.starts_with("States.")
                    })
                })
        })
    })
}

/// `mock.result` (JSON text) or `mock.errorOutput` as every task's outcome.
fn mock_outcome(input: &Value) -> Result<Option<TaskOutcome>, ApiError> {
    let Some(mock) = input.get("mock") else {
        return Ok(None);
    };
    if let Some(text) = mock["result"].as_str() {
        let v = serde_json::from_str(text)
            .map_err(|e| ApiError::invalid(format!("mock.result is not valid JSON: {e}")))?;
        return Ok(Some(TaskOutcome::Succeeded(v)));
    }
    if let Some(e) = mock.get("errorOutput") {
        return Ok(Some(TaskOutcome::Failed(Failure {
            error: e["error"].as_str().map(str::to_string),
            cause: e["cause"].as_str().map(str::to_string),
        })));
    }
    Ok(None)
}
