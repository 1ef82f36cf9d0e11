//! The operations of the Step Functions API, with AWS's error codes and messages.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use trellis_core::ApiError;
use trellis_store::Write;

use super::executor::{ExecDoc, ExecHandle, StartRequest, Summary};
use super::versions::{publish_flags, split_qualifier};
use super::{
    history_kind, machine_type, Activity, Inner, Machine, MachineDoc, KIND_ACTIVITY, KIND_MACHINE,
};
use crate::history::HistoryEvent;
use crate::interpreter::{Failure, TaskOutcome};
use crate::time::Timestamp;
use crate::validate::validate_for;

impl Inner {
    pub(crate) async fn call(self: Arc<Self>, op: &str, input: Value) -> Result<Value, ApiError> {
        match op {
            "CreateStateMachine" => self.create_state_machine(&input).await,
            "DescribeStateMachine" => self.describe_state_machine(&input),
            "UpdateStateMachine" => self.update_state_machine(&input).await,
            "DeleteStateMachine" => self.delete_state_machine(&input).await,
            "ListStateMachines" => self.list_state_machines(&input),
            "ValidateStateMachineDefinition" => Ok(validate_definition(&input)),
            "StartExecution" => self.start(&input).await,
            "StartSyncExecution" => self.start_sync(&input).await,
            "DescribeExecution" => self.describe_execution(&input).await,
            "DescribeStateMachineForExecution" => {
                self.describe_state_machine_for_execution(&input).await
            }
            "StopExecution" => self.stop_execution(&input).await,
            "RedriveExecution" => self.redrive_execution(&input).await,
            "ListExecutions" => self.list_executions(&input).await,
            "GetExecutionHistory" => self.get_execution_history(&input).await,
            "SendTaskSuccess" => {
                let output = str_field(&input, "output");
                let value: Value = serde_json::from_str(output).map_err(|e| {
                    let message = crate::json_syntax::error_message(output, &e);
                    ApiError::new("InvalidOutput", 400, format!("Invalid Output: '{message}'"))
                })?;
                self.send_task(&input, TaskOutcome::Succeeded(value)).await
            }
            "SendTaskFailure" => {
                let f = Failure {
                    error: input["error"].as_str().map(str::to_string),
                    cause: input["cause"].as_str().map(str::to_string),
                };
                self.send_task(&input, TaskOutcome::Failed(f)).await
            }
            "SendTaskHeartbeat" => self.send_heartbeat(&input).await,
            "CreateActivity" => self.create_activity(&input).await,
            "DescribeActivity" => self.describe_activity(&input),
            "DeleteActivity" => self.delete_activity(&input).await,
            "ListActivities" => self.list_activities(&input),
            "GetActivityTask" => self.get_activity_task(&input).await,
            "TestState" => self.clone().test_state(&input).await,
            "PublishStateMachineVersion" => self.publish_state_machine_version(&input).await,
            "ListStateMachineVersions" => self.list_state_machine_versions(&input),
            "DeleteStateMachineVersion" => self.delete_state_machine_version(&input).await,
            "CreateStateMachineAlias" => self.create_state_machine_alias(&input).await,
            "DescribeStateMachineAlias" => self.describe_state_machine_alias(&input),
            "UpdateStateMachineAlias" => self.update_state_machine_alias(&input).await,
            "DeleteStateMachineAlias" => self.delete_state_machine_alias(&input).await,
            "ListStateMachineAliases" => self.list_state_machine_aliases(&input),
            "ListTagsForResource" => Ok(json!({"tags": []})),
            _ => Err(ApiError::new(
                "UnknownOperationException",
                400,
                format!("Trellis does not implement the Step Functions operation {op}"),
            )),
        }
    }

    // --- state machines ---

    async fn create_state_machine(&self, input: &Value) -> Result<Value, ApiError> {
        let name = str_field(input, "name").to_string();
        check_name(&name)?;
        let definition = str_field(input, "definition").to_string();
        let ty = input["type"].as_str().unwrap_or("STANDARD").to_string();
        let (publish, version_description) = publish_flags(input)?;
        let version = self.version(&definition, machine_type(&ty))?;
        let arn = self.arn.arn("states", &format!("stateMachine:{name}"));
        let _w = self.admin.lock().await;
        if let Some(existing) = self.machine(&arn) {
            let d = &existing.doc;
            if d.definition == definition
                && d.role_arn == str_field(input, "roleArn")
                && d.machine_type == ty
            {
                let mut out =
                    json!({"stateMachineArn": arn, "creationDate": secs(d.creation_date)});
                if publish {
                    let (v, _) = self
                        .publish_locked(&existing, version_description, None)
                        .await?;
                    out["stateMachineVersionArn"] = json!(v);
                }
                return Ok(out);
            }
            return Err(ApiError::new(
                "StateMachineAlreadyExists",
                400,
                format!("State Machine Already Exists: '{arn}'"),
            ));
        }
        let now = Timestamp::now().millis();
        let doc = MachineDoc {
            state_machine_arn: arn.clone(),
            name,
            definition,
            role_arn: str_field(input, "roleArn").to_string(),
            machine_type: ty,
            creation_date: now,
            update_date: None,
            logging_configuration: input.get("loggingConfiguration").cloned(),
            tracing_configuration: input.get("tracingConfiguration").cloned(),
            description: None,
            revision_id: Some(crate::intrinsics::uuid_v4()),
            versions_published: 0,
        };
        let m = self.put_machine(doc, version).await?;
        self.register_target(&arn);
        let mut out = json!({"stateMachineArn": arn, "creationDate": secs(now)});
        if publish {
            let (v, _) = self.publish_locked(&m, version_description, None).await?;
            out["stateMachineVersionArn"] = json!(v);
        }
        Ok(out)
    }

    async fn put_machine(
        &self,
        doc: MachineDoc,
        version: Arc<super::Version>,
    ) -> Result<Arc<Machine>, ApiError> {
        let value = serde_json::to_value(&doc).map_err(ApiError::internal)?;
        self.store
            .commit(vec![Write::put(
                KIND_MACHINE,
                &doc.state_machine_arn,
                value,
            )])
            .await
            .map_err(ApiError::internal)?;
        let m = Arc::new(Machine { doc, version });
        self.machines
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(m.doc.state_machine_arn.clone(), m.clone());
        Ok(m)
    }

    pub(crate) fn existing_machine(&self, arn: &str) -> Result<Arc<Machine>, ApiError> {
        check_arn(arn, "stateMachine")?;
        self.machine(arn).ok_or_else(|| machine_missing(arn))
    }

    fn describe_state_machine(&self, input: &Value) -> Result<Value, ApiError> {
        let arn = str_field(input, "stateMachineArn");
        if split_qualifier(arn).1.is_some() {
            check_arn(arn, "stateMachine")?;
            return self.describe_version(arn);
        }
        let m = self.existing_machine(arn)?;
        let d = &m.doc;
        let mut out = json!({
            "stateMachineArn": d.state_machine_arn,
            "name": d.name,
            "status": "ACTIVE",
            "definition": d.definition,
            "roleArn": d.role_arn,
            "type": d.machine_type,
            "creationDate": secs(d.creation_date),
            "loggingConfiguration": logging(d),
            "tracingConfiguration": d.tracing_configuration.clone().unwrap_or(json!({"enabled": false})),
        });
        if let Some(r) = &d.revision_id {
            out["revisionId"] = json!(r);
        }
        Ok(out)
    }

    async fn update_state_machine(&self, input: &Value) -> Result<Value, ApiError> {
        let arn = str_field(input, "stateMachineArn");
        let (publish, version_description) = publish_flags(input)?;
        let _w = self.admin.lock().await;
        let m = self.existing_machine(arn)?;
        let definition = input.get("definition").and_then(Value::as_str);
        let role = input.get("roleArn").and_then(Value::as_str);
        if definition.is_none()
            && role.is_none()
            && input.get("loggingConfiguration").is_none()
            && input.get("tracingConfiguration").is_none()
        {
            return Err(ApiError::new(
                "MissingRequiredParameter",
                400,
                "Either the definition, the role ARN, the LoggingConfiguration, or the TracingConfiguration must be specified",
            ));
        }
        let mut doc = m.doc.clone();
        let version = match definition {
            Some(d) => {
                doc.definition = d.to_string();
                self.version(d, machine_type(&doc.machine_type))?
            }
            None => m.version.clone(),
        };
        if let Some(r) = role {
            doc.role_arn = r.to_string();
        }
        if let Some(l) = input.get("loggingConfiguration") {
            doc.logging_configuration = Some(l.clone());
        }
        if let Some(t) = input.get("tracingConfiguration") {
            doc.tracing_configuration = Some(t.clone());
        }
        let now = Timestamp::now().millis();
        doc.update_date = Some(now);
        doc.revision_id = Some(crate::intrinsics::uuid_v4());
        let revision = doc.revision_id.clone();
        let m = self.put_machine(doc, version).await?;
        let mut out = json!({"updateDate": secs(now), "revisionId": revision});
        if publish {
            let (v, _) = self.publish_locked(&m, version_description, None).await?;
            out["stateMachineVersionArn"] = json!(v);
        }
        Ok(out)
    }

    async fn delete_state_machine(&self, input: &Value) -> Result<Value, ApiError> {
        let arn = str_field(input, "stateMachineArn");
        check_arn(arn, "stateMachine")?;
        let _w = self.admin.lock().await;
        if self.machine(arn).is_some() {
            let mut writes = self.forget_versions(arn);
            writes.push(Write::delete(KIND_MACHINE, arn));
            self.store
                .commit(writes)
                .await
                .map_err(ApiError::internal)?;
            self.machines
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(arn);
            self.targets.unregister(arn);
        }
        Ok(json!({}))
    }

    fn list_state_machines(&self, input: &Value) -> Result<Value, ApiError> {
        let mut all: Vec<Arc<Machine>> = self
            .machines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.doc.name.cmp(&b.doc.name));
        let items: Vec<Value> = all
            .iter()
            .map(|m| {
                json!({
                    "stateMachineArn": m.doc.state_machine_arn,
                    "name": m.doc.name,
                    "type": m.doc.machine_type,
                    "creationDate": secs(m.doc.creation_date),
                })
            })
            .collect();
        page(items, input, "stateMachines")
    }

    // --- executions ---

    async fn start(&self, input: &Value) -> Result<Value, ApiError> {
        let (h, _) = self
            .start_execution(StartRequest {
                state_machine_arn: str_field(input, "stateMachineArn"),
                name: input["name"].as_str().map(str::to_string),
                input: input["input"].as_str().map(str::to_string),
                reuse_existing: false,
            })
            .await?;
        let start = h.state.lock().await.doc.start_date;
        Ok(json!({"executionArn": h.arn, "startDate": secs(start)}))
    }

    async fn start_sync(&self, input: &Value) -> Result<Value, ApiError> {
        let arn = str_field(input, "stateMachineArn");
        let m = self.launch(arn)?.machine;
        if m.doc.machine_type != "EXPRESS" {
            return Err(ApiError::new(
                "StateMachineTypeNotSupported",
                400,
                "This operation is not supported by this type of state machine",
            ));
        }
        let (h, _) = self
            .start_execution(StartRequest {
                state_machine_arn: arn,
                name: input["name"].as_str().map(str::to_string),
                input: input["input"].as_str().map(str::to_string),
                reuse_existing: false,
            })
            .await?;
        let doc = h.wait().await;
        let mut out = execution_json(&doc);
        if let Value::Object(o) = &mut out {
            o.remove("redriveCount");
            o.insert(
                "billingDetails".into(),
                json!({"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": 100}),
            );
        }
        Ok(out)
    }

    pub(crate) async fn existing_execution_handle(
        &self,
        arn: &str,
    ) -> Result<Arc<ExecHandle>, ApiError> {
        check_arn(arn, "execution")?;
        self.execution(arn).ok_or_else(|| {
            ApiError::new(
                "ExecutionDoesNotExist",
                400,
                format!("Execution Does Not Exist: '{arn}'"),
            )
        })
    }

    async fn describe_execution(&self, input: &Value) -> Result<Value, ApiError> {
        let h = self
            .existing_execution_handle(str_field(input, "executionArn"))
            .await?;
        let doc = h.state.lock().await.doc.clone();
        let mut out = execution_json(&doc);
        let (status, reason) = self.redrive_status(&doc);
        out["redriveStatus"] = json!(status);
        if let Some(r) = reason {
            out["redriveStatusReason"] = json!(r);
        }
        Ok(out)
    }

    async fn describe_state_machine_for_execution(&self, input: &Value) -> Result<Value, ApiError> {
        let h = self
            .existing_execution_handle(str_field(input, "executionArn"))
            .await?;
        let doc = h.state.lock().await.doc.clone();
        let current = self.machine(&doc.state_machine_arn);
        let mut out = json!({
            "stateMachineArn": doc.state_machine_arn,
            "name": doc.state_machine_name,
            "definition": h.version.definition,
            "roleArn": doc.role_arn,
            "updateDate": secs(current.as_ref().and_then(|m| m.doc.update_date).unwrap_or(doc.start_date)),
        });
        if let Some(m) = current {
            out["loggingConfiguration"] = logging(&m.doc);
            out["tracingConfiguration"] = m
                .doc
                .tracing_configuration
                .clone()
                .unwrap_or(json!({"enabled": false}));
        }
        Ok(out)
    }

    async fn stop_execution(&self, input: &Value) -> Result<Value, ApiError> {
        let h = self
            .existing_execution_handle(str_field(input, "executionArn"))
            .await?;
        let mut st = h.state.lock().await;
        if let Some(exec) = st.doc.execution.as_mut() {
            exec.abort(
                Timestamp::now(),
                input["error"].as_str().map(str::to_string),
                input["cause"].as_str().map(str::to_string),
            );
            let events = exec.take_events();
            self.settle(&h, &mut st, events).await;
            if st.doc.execution.is_some() {
                return Err(ApiError::internal("could not persist the stop"));
            }
        }
        let stop = st
            .doc
            .stop_date
            .unwrap_or_else(|| Timestamp::now().millis());
        Ok(json!({"stopDate": secs(stop)}))
    }

    async fn list_executions(&self, input: &Value) -> Result<Value, ApiError> {
        let sm = input["stateMachineArn"].as_str();
        // A version or alias ARN lists the executions started through it.
        let qualified = sm.is_some_and(|a| split_qualifier(a).1.is_some());
        if let Some(arn) = sm {
            let m = self.existing_machine(split_qualifier(arn).0)?;
            if qualified && self.published(arn).is_none() && self.launch(arn).is_err() {
                return Err(ApiError::new(
                    "ResourceNotFound",
                    400,
                    format!("Resource not found: '{arn}'"),
                )
                .with("resourceName", arn));
            }
            if m.doc.machine_type == "EXPRESS" {
                return Err(ApiError::new(
                    "StateMachineTypeNotSupported",
                    400,
                    "This operation is not supported by this type of state machine",
                ));
            }
        } else if input.get("mapRunArn").is_none() {
            return Err(ApiError::invalid(
                "Must provide a StateMachine ARN or MapRun ARN",
            ));
        }
        let filter = input["statusFilter"].as_str();
        let redriven = match input["redriveFilter"].as_str() {
            Some("REDRIVEN") => Some(true),
            Some("NOT_REDRIVEN") => Some(false),
            _ => None,
        };
        let handles: Vec<Arc<ExecHandle>> = self
            .executions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|h| h.durable)
            .cloned()
            .collect();
        let mut found: Vec<(String, Summary)> = handles
            .into_iter()
            .filter_map(|h| {
                let s = Self::lock(&h.summary).clone();
                let through = if qualified {
                    s.version_arn.as_deref() == sm && s.alias_arn.is_none()
                        || s.alias_arn.as_deref() == sm
                } else {
                    Some(s.state_machine_arn.as_str()) == sm
                };
                let wanted = through
                    && filter.is_none_or(|f| f == s.status)
                    && redriven.is_none_or(|r| r == (s.redrive_count > 0));
                wanted.then(|| (h.arn.clone(), s))
            })
            .collect();
        // Newest first, as AWS lists them.
        found.sort_by(|(a_arn, a), (b_arn, b)| {
            b.start_date
                .cmp(&a.start_date)
                .then_with(|| a_arn.cmp(b_arn))
        });
        let items = found.iter().map(|(arn, s)| summary_json(arn, s)).collect();
        page(items, input, "executions")
    }

    async fn get_execution_history(&self, input: &Value) -> Result<Value, ApiError> {
        let h = self
            .existing_execution_handle(str_field(input, "executionArn"))
            .await?;
        // Hold the execution while reading, so the history is that of a committed step.
        let events = {
            let _st = h.state.lock().await;
            self.store
                .list(&history_kind(&h.arn))
                .await
                .map_err(ApiError::internal)?
        };
        let include_data = input["includeExecutionData"].as_bool().unwrap_or(true);
        let mut items: Vec<Value> = events
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_value::<HistoryEvent>(v).ok())
            .map(|e| {
                let mut v = e.to_api_json();
                if !include_data {
                    strip_data(&mut v);
                }
                v
            })
            .collect();
        if input["reverseOrder"].as_bool() == Some(true) {
            items.reverse();
        }
        page(items, input, "events")
    }

    // --- task tokens and activities ---

    async fn token_target(&self, token: &str) -> Result<(Arc<ExecHandle>, Option<u64>), ApiError> {
        let found = Self::lock(&self.tokens).get(token).cloned();
        let Some(r) = found else {
            return Err(ApiError::new(
                "TaskDoesNotExist",
                400,
                "Task Does Not Exist: the task token does not belong to a running task",
            ));
        };
        let h = self
            .execution(&r.execution)
            .ok_or_else(|| ApiError::new("TaskDoesNotExist", 400, "Task Does Not Exist"))?;
        Ok((h, r.task_id))
    }

    async fn send_task(&self, input: &Value, outcome: TaskOutcome) -> Result<Value, ApiError> {
        let token = str_field(input, "taskToken");
        let (h, task_id) = self.token_target(token).await?;
        let mut st = h.state.lock().await;
        let Some(exec) = st.doc.execution.as_mut() else {
            return Err(ApiError::new(
                "TaskTimedOut",
                400,
                "Task Timed Out: the execution has ended",
            ));
        };
        let accepted = match task_id {
            Some(id) => exec.complete_task(id, outcome),
            None => exec.complete_task_by_token(token, outcome),
        };
        if !accepted {
            return Err(ApiError::new(
                "TaskTimedOut",
                400,
                "Task Timed Out: the task is no longer waiting for a result",
            ));
        }
        Self::lock(&self.tokens).remove(token);
        // The result is durable before the call is answered: the interpreter state now
        // holds it, and the next step turns it into the task's history events.
        if !self.save(&h, &mut st, Vec::new()).await {
            return Err(ApiError::internal("cannot persist the task result"));
        }
        self.kick_locked(&h, &mut st);
        Ok(json!({}))
    }

    async fn send_heartbeat(&self, input: &Value) -> Result<Value, ApiError> {
        let token = str_field(input, "taskToken");
        let (h, task_id) = self.token_target(token).await?;
        let mut st = h.state.lock().await;
        let ok = match (st.doc.execution.as_mut(), task_id) {
            (Some(exec), None) => exec.record_heartbeat(token, Timestamp::now()),
            (Some(_), Some(_)) => true,
            (None, _) => false,
        };
        if !ok {
            return Err(ApiError::new("TaskTimedOut", 400, "Task Timed Out"));
        }
        Ok(json!({}))
    }

    async fn create_activity(&self, input: &Value) -> Result<Value, ApiError> {
        let name = str_field(input, "name").to_string();
        check_name(&name)?;
        let arn = self.arn.arn("states", &format!("activity:{name}"));
        let _w = self.admin.lock().await;
        if let Some(a) = self.activity(&arn) {
            return Ok(json!({"activityArn": arn, "creationDate": secs(a.creation_date)}));
        }
        let now = Timestamp::now().millis();
        self.store
            .commit(vec![Write::put(
                KIND_ACTIVITY,
                &arn,
                json!({"name": name, "creationDate": now}),
            )])
            .await
            .map_err(ApiError::internal)?;
        self.activities
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(arn.clone(), Arc::new(Activity::new(arn.clone(), name, now)));
        Ok(json!({"activityArn": arn, "creationDate": secs(now)}))
    }

    fn existing_activity(&self, arn: &str) -> Result<Arc<Activity>, ApiError> {
        check_arn(arn, "activity")?;
        self.activity(arn).ok_or_else(|| {
            ApiError::new(
                "ActivityDoesNotExist",
                400,
                format!("Activity Does Not Exist: '{arn}'"),
            )
        })
    }

    fn describe_activity(&self, input: &Value) -> Result<Value, ApiError> {
        let a = self.existing_activity(str_field(input, "activityArn"))?;
        Ok(json!({"activityArn": a.arn, "name": a.name, "creationDate": secs(a.creation_date)}))
    }

    async fn delete_activity(&self, input: &Value) -> Result<Value, ApiError> {
        let arn = str_field(input, "activityArn");
        check_arn(arn, "activity")?;
        let _w = self.admin.lock().await;
        self.store
            .commit(vec![Write::delete(KIND_ACTIVITY, arn)])
            .await
            .map_err(ApiError::internal)?;
        self.activities
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(arn);
        Ok(json!({}))
    }

    fn list_activities(&self, input: &Value) -> Result<Value, ApiError> {
        let mut all: Vec<Arc<Activity>> = self
            .activities
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let items = all
            .iter()
            .map(|a| json!({"activityArn": a.arn, "name": a.name, "creationDate": secs(a.creation_date)}))
            .collect();
        page(items, input, "activities")
    }

    /// Long-polls (up to 60 s, as AWS) for a task of the activity.
    async fn get_activity_task(&self, input: &Value) -> Result<Value, ApiError> {
        let a = self.existing_activity(str_field(input, "activityArn"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let notified = a.ready.notified();
            let next = Self::lock(&a.queue).pop_front();
            if let Some((token, input)) = next {
                if self.activity_task_waits(&token).await {
                    return Ok(json!({"taskToken": token, "input": input}));
                }
                continue;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(json!({}));
            }
        }
    }
}

impl Inner {
    /// Whether the activity task behind `token` still waits for a worker (it may have timed
    /// out, or its execution ended, while queued).
    async fn activity_task_waits(&self, token: &str) -> bool {
        let Some(r) = Self::lock(&self.tokens).get(token).cloned() else {
            return false;
        };
        let (Some(h), Some(id)) = (self.execution(&r.execution), r.task_id) else {
            return false;
        };
        let st = h.state.lock().await;
        let waits = st
            .doc
            .execution
            .as_ref()
            .is_some_and(|e| e.pending_tasks().iter().any(|t| t.id == id));
        drop(st);
        if !waits {
            Self::lock(&self.tokens).remove(token);
        }
        waits
    }
}

// --- helpers ---

pub(crate) fn str_field<'a>(input: &'a Value, key: &str) -> &'a str {
    input[key].as_str().unwrap_or_default()
}

/// Epoch seconds, the JSON 1.0 timestamp form.
pub(crate) fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn logging(d: &MachineDoc) -> Value {
    d.logging_configuration
        .clone()
        .unwrap_or(json!({"level": "OFF", "includeExecutionData": false}))
}

pub(crate) fn machine_missing(arn: &str) -> ApiError {
    ApiError::new(
        "StateMachineDoesNotExist",
        400,
        format!("State Machine Does Not Exist: '{arn}'"),
    )
}

/// AWS's `InvalidArn` unless `arn` is a Step Functions ARN of resource type `kind`
/// (`stateMachine`, `execution` — which also admits `express` — or `activity`).
pub(crate) fn check_arn(arn: &str, kind: &str) -> Result<(), ApiError> {
    let parsed = trellis_core::Arn::parse(arn);
    let ok = parsed.as_ref().is_some_and(|a| {
        let ty = a.resource.split(':').next().unwrap_or_default();
        a.service == "states" && (ty == kind || kind == "execution" && ty == "express")
    });
    if ok {
        return Ok(());
    }
    let why = match parsed {
        None => format!("Invalid Arn: 'Invalid ARN prefix: {arn}'"),
        Some(_) => format!("Invalid Arn: 'Resource type not valid in this context: {arn}'"),
    };
    Err(ApiError::new("InvalidArn", 400, why))
}

/// AWS's `InvalidName` for names with whitespace, wildcard, bracket or control characters.
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    const BAD: &str = " <>{}[]?*\"#%\\^|~`$&,;:/";
    let bad = name.is_empty()
        || name.chars().count() > 80
        || name
            .chars()
            .any(|c| BAD.contains(c) || c.is_whitespace() || c.is_control());
    if bad {
        return Err(ApiError::new(
            "InvalidName",
            400,
            format!("Invalid Name: '{name}'"),
        ));
    }
    Ok(())
}

fn execution_json(doc: &ExecDoc) -> Value {
    let mut m = Map::new();
    m.insert("executionArn".into(), json!(doc.execution_arn));
    m.insert("stateMachineArn".into(), json!(doc.state_machine_arn));
    m.insert("name".into(), json!(doc.name));
    m.insert("status".into(), json!(doc.status));
    m.insert("startDate".into(), json!(secs(doc.start_date)));
    if let Some(s) = doc.stop_date {
        m.insert("stopDate".into(), json!(secs(s)));
    }
    m.insert("input".into(), json!(doc.input));
    m.insert("inputDetails".into(), json!({"included": true}));
    if let Some(o) = &doc.output {
        m.insert("output".into(), json!(o));
        m.insert("outputDetails".into(), json!({"included": true}));
    }
    if let Some(e) = &doc.error {
        m.insert("error".into(), json!(e));
    }
    if let Some(c) = &doc.cause {
        m.insert("cause".into(), json!(c));
    }
    if let Some(v) = &doc.state_machine_version_arn {
        m.insert("stateMachineVersionArn".into(), json!(v));
    }
    if let Some(a) = &doc.state_machine_alias_arn {
        m.insert("stateMachineAliasArn".into(), json!(a));
    }
    m.insert("redriveCount".into(), json!(doc.redrive_count));
    if let Some(d) = doc.redrive_date {
        m.insert("redriveDate".into(), json!(secs(d)));
    }
    Value::Object(m)
}

fn summary_json(arn: &str, s: &Summary) -> Value {
    let mut v = json!({
        "executionArn": arn,
        "stateMachineArn": s.state_machine_arn,
        "name": s.name,
        "status": s.status,
        "startDate": secs(s.start_date),
    });
    if let Some(s) = s.stop_date {
        v["stopDate"] = json!(secs(s));
    }
    if let Some(a) = &s.version_arn {
        v["stateMachineVersionArn"] = json!(a);
    }
    if let Some(a) = &s.alias_arn {
        v["stateMachineAliasArn"] = json!(a);
    }
    v["redriveCount"] = json!(s.redrive_count);
    if let Some(d) = s.redrive_date {
        v["redriveDate"] = json!(secs(d));
    }
    v
}

fn strip_data(event: &mut Value) {
    if let Value::Object(m) = event {
        for (k, v) in m.iter_mut() {
            if k.ends_with("EventDetails") {
                if let Value::Object(d) = v {
                    for key in ["input", "output", "parameters"] {
                        d.remove(key);
                    }
                }
            }
        }
    }
}

/// One page of `items`: `maxResults` (default 100, at most 1000) from the offset in
/// `nextToken`, under `key`, with the next token when more remain.
pub(crate) fn page(items: Vec<Value>, input: &Value, key: &str) -> Result<Value, ApiError> {
    let max = match input["maxResults"].as_u64() {
        Some(0) | None => 100,
        Some(n) => n.min(1000) as usize,
    };
    let start = match input["nextToken"].as_str() {
        None => 0,
        Some(t) => t
            .strip_prefix("trellis-page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| ApiError::new("InvalidToken", 400, format!("Invalid Token: '{t}'")))?,
    };
    let end = (start + max).min(items.len());
    let mut out = Map::new();
    out.insert(key.into(), Value::Array(items[start..end].to_vec()));
    if end < items.len() {
        out.insert("nextToken".into(), json!(format!("trellis-page-{end}")));
    }
    Ok(Value::Object(out))
}

/// ValidateStateMachineDefinition: `OK`, or `FAIL` with one diagnostic per problem.
fn validate_definition(input: &Value) -> Value {
    let definition = str_field(input, "definition");
    let kind = machine_type(input["type"].as_str().unwrap_or("STANDARD"));
    let max = input["maxResults"]
        .as_u64()
        .filter(|n| *n > 0)
        .unwrap_or(100) as usize;
    match validate_for(definition, kind) {
        Ok(_) => json!({"result": "OK", "diagnostics": [], "truncated": false}),
        Err(e) => {
            let truncated = e.0.len() > max;
            let diags: Vec<Value> = e
                .0
                .iter()
                .take(max)
                .map(|d| {
                    let mut v = json!({"severity": "ERROR", "code": d.code, "message": d.message});
                    if !d.location.is_empty() {
                        v["location"] = json!(d.location);
                    }
                    v
                })
                .collect();
            json!({"result": "FAIL", "diagnostics": diags, "truncated": truncated})
        }
    }
}
