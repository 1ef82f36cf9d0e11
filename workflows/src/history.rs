//! Execution history events, shaped like `GetExecutionHistory`: an id, the previous event's
//! id, a timestamp, an AWS event type and one `…EventDetails` object.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::time::Timestamp;

/// One history event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub id: u64,
    #[serde(rename = "previousEventId")]
    pub previous_event_id: u64,
    pub timestamp: Timestamp,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The details object keyed by its AWS name (`stateEnteredEventDetails` …), if any.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

/// The serialized JSON text AWS puts in `input`/`output` fields.
pub fn json_text(v: &Value) -> String {
    v.to_string()
}

impl HistoryEvent {
    /// The event as `GetExecutionHistory` renders it (timestamp as epoch seconds).
    pub fn to_api_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("previousEventId".into(), json!(self.previous_event_id));
        m.insert(
            "timestamp".into(),
            json!(self.timestamp.millis() as f64 / 1000.0),
        );
        m.insert("type".into(), json!(self.event_type));
        for (k, v) in &self.details {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// Details helpers, one per AWS details shape.
pub mod details {
    use super::*;

    /// `executionStartedEventDetails`, with the version and alias the execution was
    /// started through, if any.
    pub fn execution_started(
        input: &Value,
        role_arn: &str,
        version_arn: Option<&str>,
        alias_arn: Option<&str>,
    ) -> (String, Value) {
        let mut d = json!({"input": json_text(input), "inputDetails": {"truncated": false}, "roleArn": role_arn});
        if let Some(a) = alias_arn {
            d["stateMachineAliasArn"] = json!(a);
        }
        if let Some(v) = version_arn {
            d["stateMachineVersionArn"] = json!(v);
        }
        ("executionStartedEventDetails".into(), d)
    }

    pub fn execution_redriven(redrive_count: u32) -> (String, Value) {
        (
            "executionRedrivenEventDetails".into(),
            json!({ "redriveCount": redrive_count }),
        )
    }

    pub fn execution_succeeded(output: &Value) -> (String, Value) {
        (
            "executionSucceededEventDetails".into(),
            json!({"output": json_text(output), "outputDetails": {"truncated": false}}),
        )
    }

    /// Failure details (`executionFailedEventDetails`, `taskFailedEventDetails` …) with
    /// only the fields that are set.
    pub fn failure(key: &str, error: Option<&str>, cause: Option<&str>) -> (String, Value) {
        let mut m = Map::new();
        if let Some(c) = cause {
            m.insert("cause".into(), json!(c));
        }
        if let Some(e) = error {
            m.insert("error".into(), json!(e));
        }
        (key.into(), Value::Object(m))
    }

    pub fn state_entered(name: &str, input: &Value) -> (String, Value) {
        (
            "stateEnteredEventDetails".into(),
            json!({"input": json_text(input), "inputDetails": {"truncated": false}, "name": name}),
        )
    }

    pub fn state_exited(
        name: &str,
        output: &Value,
        assigned: Option<&Map<String, Value>>,
    ) -> (String, Value) {
        let mut m = Map::new();
        if let Some(a) = assigned.filter(|a| !a.is_empty()) {
            let texts: Map<String, Value> = a
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(json_text(v))))
                .collect();
            m.insert("assignedVariables".into(), Value::Object(texts));
            m.insert(
                "assignedVariablesDetails".into(),
                json!({"truncated": false}),
            );
        }
        m.insert("name".into(), json!(name));
        m.insert("output".into(), json!(json_text(output)));
        m.insert("outputDetails".into(), json!({"truncated": false}));
        ("stateExitedEventDetails".into(), Value::Object(m))
    }

    pub fn map_state_started(length: usize) -> (String, Value) {
        (
            "mapStateStartedEventDetails".into(),
            json!({"length": length}),
        )
    }

    pub fn map_iteration(event_type: &str, name: &str, index: usize) -> (String, Value) {
        // MapIterationStarted -> mapIterationStartedEventDetails
        let mut key = event_type.to_string();
        key[..1].make_ascii_lowercase();
        (
            format!("{key}EventDetails"),
            json!({"index": index, "name": name}),
        )
    }

    pub fn map_run_started(map_run_arn: &str) -> (String, Value) {
        (
            "mapRunStartedEventDetails".into(),
            json!({"mapRunArn": map_run_arn}),
        )
    }

    pub fn task_scheduled(
        resource: &str,
        parameters: &Value,
        timeout: Option<u64>,
    ) -> (String, Value) {
        let (resource_type, name) = split_resource(resource);
        let mut m = Map::new();
        m.insert("parameters".into(), json!(json_text(parameters)));
        m.insert("region".into(), json!(region_of(resource)));
        m.insert("resource".into(), json!(name));
        m.insert("resourceType".into(), json!(resource_type));
        if let Some(t) = timeout {
            m.insert("timeoutInSeconds".into(), json!(t));
        }
        ("taskScheduledEventDetails".into(), Value::Object(m))
    }

    pub fn task_started(resource: &str) -> (String, Value) {
        let (resource_type, name) = split_resource(resource);
        (
            "taskStartedEventDetails".into(),
            json!({"resource": name, "resourceType": resource_type}),
        )
    }

    pub fn task_succeeded(resource: &str, output: &Value) -> (String, Value) {
        let (resource_type, name) = split_resource(resource);
        (
            "taskSucceededEventDetails".into(),
            json!({"output": json_text(output), "outputDetails": {"truncated": false}, "resource": name, "resourceType": resource_type}),
        )
    }

    pub fn task_failed(
        key: &str,
        resource: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> (String, Value) {
        let (resource_type, name) = split_resource(resource);
        let (k, mut v) = failure(key, error, cause);
        if let Value::Object(m) = &mut v {
            m.insert("resource".into(), json!(name));
            m.insert("resourceType".into(), json!(resource_type));
        }
        (k, v)
    }

    pub fn lambda_scheduled(
        resource: &str,
        input: &Value,
        timeout: Option<u64>,
    ) -> (String, Value) {
        let mut m = Map::new();
        m.insert("input".into(), json!(json_text(input)));
        m.insert("inputDetails".into(), json!({"truncated": false}));
        m.insert("resource".into(), json!(resource));
        if let Some(t) = timeout {
            m.insert("timeoutInSeconds".into(), json!(t));
        }
        (
            "lambdaFunctionScheduledEventDetails".into(),
            Value::Object(m),
        )
    }

    pub fn lambda_succeeded(output: &Value) -> (String, Value) {
        (
            "lambdaFunctionSucceededEventDetails".into(),
            json!({"output": json_text(output), "outputDetails": {"truncated": false}}),
        )
    }

    /// `arn:aws:states:::lambda:invoke.waitForTaskToken` -> ("lambda", "invoke.waitForTaskToken").
    fn split_resource(resource: &str) -> (String, String) {
        let parts: Vec<&str> = resource.splitn(6, ':').collect();
        if parts.len() == 6 && parts[2] == "states" {
            let rest = parts[5];
            if let Some((ty, name)) = rest.split_once(':') {
                return (ty.to_string(), name.to_string());
            }
        }
        let ty = parts.get(2).copied().unwrap_or("unknown");
        (ty.to_string(), resource.to_string())
    }

    fn region_of(resource: &str) -> String {
        resource
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .unwrap_or("us-east-1")
            .to_string()
    }
}
