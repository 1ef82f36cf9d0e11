//! The operations, with AWS's error codes and texts.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use trellis_core::clock::now_millis;
use trellis_core::ApiError;
use trellis_store::Write;

use super::delivery::event_text;
use super::schedules::first_fire;
use super::{
    epoch_seconds, BusDoc, Inner, RuleDoc, KIND_BUS, KIND_CONNECTION, KIND_DESTINATION, KIND_RULE,
};
use crate::{Pattern, Schedule};

/// AWS's limit on the entries of one `PutEvents` call, in bytes.
const MAX_PUT_EVENTS_BYTES: usize = 256 * 1024;
/// Targets per rule.
const MAX_TARGETS: usize = 5;

fn error(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(code, 400, message)
}

fn validation(message: impl Into<String>) -> ApiError {
    error("ValidationException", message)
}

fn bus_not_found(name: &str) -> ApiError {
    error(
        "ResourceNotFoundException",
        format!("Event bus {name} does not exist."),
    )
}

fn rule_not_found(rule: &str, bus: &str) -> ApiError {
    error(
        "ResourceNotFoundException",
        format!("Rule {rule} does not exist on EventBus {bus}."),
    )
}

fn str_field<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

/// A bus name from a name or an event-bus ARN; `default` when absent.
fn bus_name(input: &Value, key: &str) -> String {
    match str_field(input, key) {
        None | Some("") => "default".into(),
        Some(s) if s.starts_with("arn:") => s.rsplit('/').next().unwrap_or(s).to_string(),
        Some(s) => s.to_string(),
    }
}

/// `Limit` / `NextToken` paging over an ordered list; the token is the next index.
pub(crate) fn page<T: Clone>(
    items: &[T],
    input: &Value,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start = match str_field(input, "NextToken") {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| validation("The NextToken provided is invalid."))?,
    };
    let limit = input
        .get("Limit")
        .and_then(Value::as_u64)
        .map_or(100, |l| l as usize)
        .max(1);
    let end = (start + limit).min(items.len());
    let slice = items
        .get(start.min(items.len())..end)
        .unwrap_or(&[])
        .to_vec();
    let next = (end < items.len()).then(|| end.to_string());
    Ok((slice, next))
}

impl Inner {
    pub(crate) async fn call(self: Arc<Self>, op: &str, input: Value) -> Result<Value, ApiError> {
        match op {
            "CreateEventBus" => self.create_event_bus(input).await,
            "DescribeEventBus" => self.describe_event_bus(input),
            "ListEventBuses" => self.list_event_buses(input),
            "DeleteEventBus" => self.delete_event_bus(input).await,
            "PutEvents" => self.put_events(input).await,
            "PutRule" => self.put_rule(input).await,
            "DescribeRule" => self.describe_rule(input),
            "ListRules" => self.list_rules(input),
            "DeleteRule" => self.delete_rule(input).await,
            "EnableRule" => self.set_rule_state(input, "ENABLED").await,
            "DisableRule" => self.set_rule_state(input, "DISABLED").await,
            "PutTargets" => self.put_targets(input).await,
            "RemoveTargets" => self.remove_targets(input).await,
            "ListTargetsByRule" => self.list_targets_by_rule(input),
            "ListRuleNamesByTarget" => self.list_rule_names_by_target(input),
            "TestEventPattern" => test_event_pattern(input),
            "CreateConnection" => self.create_connection(input).await,
            "UpdateConnection" => self.update_connection(input).await,
            "DescribeConnection" => self.describe_named(KIND_CONNECTION, input, "Connection"),
            "ListConnections" => self.list_named(KIND_CONNECTION, input, "Connections"),
            "DeleteConnection" => {
                self.delete_named(KIND_CONNECTION, input, "Connection")
                    .await
            }
            "CreateApiDestination" => self.create_api_destination(input).await,
            "UpdateApiDestination" => self.update_api_destination(input).await,
            "DescribeApiDestination" => {
                self.describe_named(KIND_DESTINATION, input, "ApiDestination")
            }
            "ListApiDestinations" => self.list_named(KIND_DESTINATION, input, "ApiDestinations"),
            "CreateArchive" => self.create_archive(input).await,
            "DescribeArchive" => self.describe_archive(input).await,
            "ListArchives" => self.list_archives(input),
            "DeleteArchive" => self.delete_archive(input).await,
            "StartReplay" => self.start_replay(input).await,
            "DescribeReplay" => self.describe_replay(input),
            "ListReplays" => self.list_replays(input),
            "DeleteApiDestination" => {
                self.delete_named(KIND_DESTINATION, input, "ApiDestination")
                    .await
            }
            _ => Err(error(
                "UnknownOperationException",
                format!("Trellis does not implement AWSEvents.{op} yet"),
            )),
        }
    }

    // --- event buses ---

    async fn create_event_bus(&self, input: Value) -> Result<Value, ApiError> {
        let name = str_field(&input, "Name").unwrap_or_default().to_string();
        if name.contains('/') || name.is_empty() {
            return Err(validation(format!("Event bus name {name} is not valid.")));
        }
        let _admin = self.admin.lock().await;
        if self.lock().buses.contains_key(&name) {
            return Err(error(
                "ResourceAlreadyExistsException",
                format!("Event bus {name} already exists."),
            ));
        }
        let now = now_millis();
        let bus = BusDoc {
            arn: self.bus_arn(&name),
            name: name.clone(),
            description: str_field(&input, "Description").map(str::to_string),
            created_ms: now,
            modified_ms: now,
        };
        self.commit(vec![Write::put(KIND_BUS, &name, to_doc(&bus)?)])
            .await?;
        self.lock().buses.insert(name.clone(), bus.clone());
        self.register_bus(&name);
        self.rebuild();
        Ok(json!({"EventBusArn": bus.arn}))
    }

    fn describe_event_bus(&self, input: Value) -> Result<Value, ApiError> {
        let name = bus_name(&input, "Name");
        let st = self.lock();
        let bus = st.buses.get(&name).ok_or_else(|| bus_not_found(&name))?;
        Ok(bus_json(bus))
    }

    fn list_event_buses(&self, input: Value) -> Result<Value, ApiError> {
        let prefix = str_field(&input, "NamePrefix").unwrap_or_default();
        let buses: Vec<Value> = self
            .lock()
            .buses
            .values()
            .filter(|b| b.name.starts_with(prefix))
            .map(bus_json)
            .collect();
        let (items, next) = page(&buses, &input)?;
        Ok(json!({"EventBuses": items, "NextToken": next}))
    }

    async fn delete_event_bus(&self, input: Value) -> Result<Value, ApiError> {
        let name = bus_name(&input, "Name");
        if name == "default" {
            return Err(validation("Cannot delete event bus default."));
        }
        let _admin = self.admin.lock().await;
        let rules: Vec<(String, String)> = {
            let st = self.lock();
            if !st.buses.contains_key(&name) {
                return Ok(json!({}));
            }
            st.rules
                .keys()
                .filter(|(b, _)| *b == name)
                .cloned()
                .collect()
        };
        let mut writes = vec![Write::delete(KIND_BUS, &name)];
        for (b, r) in &rules {
            writes.push(Write::delete(KIND_RULE, &format!("{b}/{r}")));
        }
        self.commit(writes).await?;
        {
            let mut st = self.lock();
            st.buses.remove(&name);
            for k in &rules {
                st.rules.remove(k);
            }
        }
        self.targets.unregister(&self.bus_arn(&name));
        self.rebuild();
        Ok(json!({}))
    }

    // --- events ---

    async fn put_events(&self, input: Value) -> Result<Value, ApiError> {
        let entries = input
            .get("Entries")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let size: usize = entries.iter().map(entry_size).sum();
        if size > MAX_PUT_EVENTS_BYTES {
            return Err(validation(
                "Total size of the entries in the request is over the limit.",
            ));
        }
        let now = now_millis();
        let mut results = Vec::with_capacity(entries.len());
        let mut deliveries = Vec::new();
        let mut archived = Vec::new();
        let mut failed = 0;
        for entry in &entries {
            match self.make_event(entry, now) {
                Ok((id, bus, event, plain)) => {
                    deliveries.extend(self.route(&bus, &event, now, plain));
                    archived.extend(self.archive_writes(&bus, &event, now));
                    results.push(json!({"EventId": id}));
                }
                Err((code, message)) => {
                    failed += 1;
                    results.push(json!({"ErrorCode": code, "ErrorMessage": message}));
                }
            }
        }
        self.accept(deliveries, archived)
            .await
            .map_err(ApiError::internal)?;
        let accepted = (entries.len() - failed) as u64;
        super::metrics::Metrics::add(&self.metrics.put_entries, accepted);
        Ok(json!({"FailedEntryCount": failed, "Entries": results}))
    }

    /// One `PutEvents` entry as (event id, bus name, event text, whether the event is plain:
    /// see [`crate::machine::is_plain`]), or its per-entry error.
    fn make_event(
        &self,
        entry: &Value,
        now: u64,
    ) -> Result<(String, String, String, bool), (&'static str, String)> {
        let required = |key: &str| {
            str_field(entry, key).filter(|s| !s.is_empty()).ok_or((
                "InvalidArgument",
                format!("Parameter {key} is not valid. Reason: {key} is a required argument."),
            ))
        };
        let source = required("Source")?;
        let detail_type = required("DetailType")?;
        let detail = required("Detail")?;
        // Checked once here (a JSON object), which also tells whether matching may take the
        // plain path: the envelope's own keys are plain, so the event is plain when the detail is.
        let plain = crate::machine::is_plain(detail)
            .map_err(|_| ("MalformedDetail", "Detail is malformed.".to_string()))?;
        let time = match entry.get("Time") {
            Some(Value::Number(n)) => n.as_f64().map(|f| f as i64),
            Some(Value::String(s)) => s.parse::<f64>().ok().map(|f| f as i64),
            _ => None,
        }
        .unwrap_or((now / 1000) as i64);
        let resources: Vec<String> = entry
            .get("Resources")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let id = super::uuid();
        let event = event_text(
            &id,
            detail_type,
            source,
            &self.arn.account,
            &crate::schedule::format_utc(time),
            &self.arn.region,
            &resources,
            detail.trim(),
        );
        Ok((id, bus_name(entry, "EventBusName"), event, plain))
    }

    // --- rules ---

    async fn put_rule(&self, input: Value) -> Result<Value, ApiError> {
        let name = str_field(&input, "Name").unwrap_or_default().to_string();
        let bus = bus_name(&input, "EventBusName");
        let pattern = str_field(&input, "EventPattern").map(str::to_string);
        let schedule = str_field(&input, "ScheduleExpression").map(str::to_string);
        if pattern.is_none() && schedule.is_none() {
            return Err(validation(
                "Parameter(s) EventPattern or ScheduleExpression must be specified.",
            ));
        }
        if let Some(p) = &pattern {
            Pattern::parse(p).map_err(|e| error("InvalidEventPatternException", e.to_string()))?;
        }
        let parsed_schedule = match &schedule {
            Some(s) => {
                if bus != "default" {
                    return Err(validation(
                        "ScheduleExpression is supported only on the default event bus.",
                    ));
                }
                Some(
                    Schedule::parse(s)
                        .map_err(|_| validation(crate::ScheduleError::AWS_MESSAGE))?,
                )
            }
            None => None,
        };
        let state = str_field(&input, "State").unwrap_or("ENABLED").to_string();
        let _admin = self.admin.lock().await;
        let existing = {
            let st = self.lock();
            if !st.buses.contains_key(&bus) {
                return Err(bus_not_found(&bus));
            }
            st.rules.get(&(bus.clone(), name.clone())).cloned()
        };
        let now = now_millis();
        let now_secs = (now / 1000) as i64;
        let (created_ms, targets, old_schedule, old_next) = match existing {
            Some(r) => (r.created_ms, r.targets, r.schedule, r.next_fire),
            None => (now, Vec::new(), None, None),
        };
        let next_fire = match &parsed_schedule {
            Some(_) if old_schedule == schedule && old_next.is_some() => old_next,
            Some(s) => first_fire(s, now_secs),
            None => None,
        };
        // A changed schedule counts its rate from now.
        let created_ms = if parsed_schedule.is_some() && old_schedule != schedule {
            now
        } else {
            created_ms
        };
        let rule = RuleDoc {
            arn: self.rule_arn(&bus, &name),
            name: name.clone(),
            bus: bus.clone(),
            event_pattern: pattern,
            schedule,
            state,
            description: str_field(&input, "Description").map(str::to_string),
            role_arn: str_field(&input, "RoleArn").map(str::to_string),
            targets,
            created_ms,
            next_fire,
        };
        self.save_rule(rule.clone()).await?;
        Ok(json!({"RuleArn": rule.arn}))
    }

    async fn save_rule(&self, rule: RuleDoc) -> Result<(), ApiError> {
        let id = format!("{}/{}", rule.bus, rule.name);
        self.commit(vec![Write::put(KIND_RULE, &id, to_doc(&rule)?)])
            .await?;
        self.lock()
            .rules
            .insert((rule.bus.clone(), rule.name.clone()), rule);
        self.rebuild();
        self.schedule_wake.notify_one();
        Ok(())
    }

    fn get_rule(&self, input: &Value, key: &str) -> Result<RuleDoc, ApiError> {
        let name = str_field(input, key).unwrap_or_default().to_string();
        let bus = bus_name(input, "EventBusName");
        let st = self.lock();
        if !st.buses.contains_key(&bus) {
            return Err(bus_not_found(&bus));
        }
        st.rules
            .get(&(bus.clone(), name.clone()))
            .cloned()
            .ok_or_else(|| rule_not_found(&name, &bus))
    }

    fn describe_rule(&self, input: Value) -> Result<Value, ApiError> {
        let rule = self.get_rule(&input, "Name")?;
        let mut out = rule_json(&rule);
        out["CreatedBy"] = json!(self.arn.account);
        if let Some(n) = rule.next_fire {
            // Trellis extension: when the schedule fires next.
            out["NextFireTime"] = json!(n);
        }
        Ok(out)
    }

    fn list_rules(&self, input: Value) -> Result<Value, ApiError> {
        let bus = bus_name(&input, "EventBusName");
        let prefix = str_field(&input, "NamePrefix").unwrap_or_default();
        let rules: Vec<Value> = {
            let st = self.lock();
            if !st.buses.contains_key(&bus) {
                return Err(bus_not_found(&bus));
            }
            st.rules
                .values()
                .filter(|r| r.bus == bus && r.name.starts_with(prefix))
                .map(rule_json)
                .collect()
        };
        let (items, next) = page(&rules, &input)?;
        Ok(json!({"Rules": items, "NextToken": next}))
    }

    async fn delete_rule(&self, input: Value) -> Result<Value, ApiError> {
        let _admin = self.admin.lock().await;
        let rule = match self.get_rule(&input, "Name") {
            Ok(r) => r,
            Err(e) if e.message.starts_with("Rule ") => return Ok(json!({})),
            Err(e) => return Err(e),
        };
        let force = input.get("Force").and_then(Value::as_bool).unwrap_or(false);
        if !rule.targets.is_empty() && !force {
            return Err(validation("Rule can't be deleted since it has targets."));
        }
        self.commit(vec![Write::delete(
            KIND_RULE,
            &format!("{}/{}", rule.bus, rule.name),
        )])
        .await?;
        self.lock().rules.remove(&(rule.bus, rule.name));
        self.rebuild();
        Ok(json!({}))
    }

    async fn set_rule_state(&self, input: Value, state: &str) -> Result<Value, ApiError> {
        let _admin = self.admin.lock().await;
        let mut rule = self.get_rule(&input, "Name")?;
        if rule.state != state {
            rule.state = state.to_string();
            if let (Some(s), "ENABLED") = (&rule.schedule, state) {
                // A re-enabled schedule starts counting again; disabled time is not caught up.
                if let Ok(s) = Schedule::parse(s) {
                    let now = now_millis();
                    rule.created_ms = now;
                    rule.next_fire = first_fire(&s, (now / 1000) as i64);
                }
            }
            self.save_rule(rule).await?;
        }
        Ok(json!({}))
    }

    // --- targets ---

    async fn put_targets(&self, input: Value) -> Result<Value, ApiError> {
        let new: Vec<Value> = input
            .get("Targets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for t in &new {
            validate_target(t)?;
        }
        let _admin = self.admin.lock().await;
        let mut rule = self.get_rule(&input, "Rule")?;
        for t in new {
            let id = t.get("Id").cloned();
            match rule.targets.iter_mut().find(|x| x.get("Id") == id.as_ref()) {
                Some(slot) => *slot = t,
                None => rule.targets.push(t),
            }
        }
        if rule.targets.len() > MAX_TARGETS {
            return Err(error(
                "LimitExceededException",
                "The requested resource exceeds the maximum number allowed.",
            ));
        }
        self.save_rule(rule).await?;
        Ok(json!({"FailedEntryCount": 0, "FailedEntries": []}))
    }

    async fn remove_targets(&self, input: Value) -> Result<Value, ApiError> {
        let ids: Vec<String> = input
            .get("Ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let _admin = self.admin.lock().await;
        let mut rule = self.get_rule(&input, "Rule")?;
        rule.targets.retain(|t| {
            !t.get("Id")
                .and_then(Value::as_str)
                .is_some_and(|id| ids.iter().any(|x| x == id))
        });
        self.save_rule(rule).await?;
        Ok(json!({"FailedEntryCount": 0, "FailedEntries": []}))
    }

    fn list_targets_by_rule(&self, input: Value) -> Result<Value, ApiError> {
        let rule = self.get_rule(&input, "Rule")?;
        let (items, next) = page(&rule.targets, &input)?;
        Ok(json!({"Targets": items, "NextToken": next}))
    }

    fn list_rule_names_by_target(&self, input: Value) -> Result<Value, ApiError> {
        let target = str_field(&input, "TargetArn").unwrap_or_default();
        let bus = bus_name(&input, "EventBusName");
        let names: Vec<Value> = self
            .lock()
            .rules
            .values()
            .filter(|r| r.bus == bus)
            .filter(|r| {
                r.targets
                    .iter()
                    .any(|t| t.get("Arn").and_then(Value::as_str) == Some(target))
            })
            .map(|r| json!(r.name))
            .collect();
        let (items, next) = page(&names, &input)?;
        Ok(json!({"RuleNames": items, "NextToken": next}))
    }

    // --- connections and API destinations ---

    async fn create_connection(&self, input: Value) -> Result<Value, ApiError> {
        let name = str_field(&input, "Name").unwrap_or_default().to_string();
        validate_connectivity(&input)?;
        let _admin = self.admin.lock().await;
        if self.lock().connections.contains_key(&name) {
            return Err(error(
                "ResourceAlreadyExistsException",
                format!("Connection {name} already exists."),
            ));
        }
        let now = epoch_seconds(now_millis());
        let arn = self
            .arn
            .arn("events", &format!("connection/{name}/{}", super::uuid()));
        let mut doc = input.clone();
        doc["ConnectionArn"] = json!(arn);
        doc["CreationTime"] = now.clone();
        self.connectivity_associations(&mut doc, None);
        self.save_connection(&name, &mut doc).await?;
        Ok(json!({
            "ConnectionArn": arn, "ConnectionState": doc["ConnectionState"],
            "CreationTime": now, "LastModifiedTime": now,
        }))
    }

    /// `UpdateConnection`: the given members replace the stored ones; within `AuthParameters`
    /// each given group replaces its stored group, and a changed `AuthorizationType` drops the
    /// other types' groups.
    async fn update_connection(&self, input: Value) -> Result<Value, ApiError> {
        let name = str_field(&input, "Name").unwrap_or_default().to_string();
        validate_connectivity(&input)?;
        let _admin = self.admin.lock().await;
        let Some(old) = self.lock().connections.get(&name).cloned() else {
            return Err(error(
                "ResourceNotFoundException",
                format!("Connection '{name}' does not exist."),
            ));
        };
        let mut doc = old.clone();
        for key in [
            "AuthorizationType",
            "Description",
            "KmsKeyIdentifier",
            "InvocationConnectivityParameters",
        ] {
            if let Some(v) = input.get(key).filter(|v| !v.is_null()) {
                doc[key] = v.clone();
            }
        }
        if let Some(Value::Object(auth)) = input.get("AuthParameters") {
            let stored = doc["AuthParameters"].as_object_mut();
            let mut merged = stored.map(std::mem::take).unwrap_or_default();
            for (k, v) in auth {
                match (merged.get_mut(k), v) {
                    (Some(Value::Object(m)), Value::Object(n)) => {
                        for (nk, nv) in n {
                            m.insert(nk.clone(), nv.clone());
                        }
                    }
                    _ => {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
            doc["AuthParameters"] = Value::Object(merged);
        }
        if doc["AuthorizationType"] != old["AuthorizationType"] {
            let keep = match doc["AuthorizationType"].as_str() {
                Some("API_KEY") => "ApiKeyAuthParameters",
                Some("BASIC") => "BasicAuthParameters",
                _ => "OAuthParameters",
            };
            let groups = [
                "ApiKeyAuthParameters",
                "BasicAuthParameters",
                "OAuthParameters",
            ];
            if let Some(auth) = doc["AuthParameters"].as_object_mut() {
                auth.retain(|k, _| k == keep || !groups.contains(&k.as_str()));
            }
        }
        self.connectivity_associations(&mut doc, Some(&old));
        self.save_connection(&name, &mut doc).await?;
        Ok(json!({
            "ConnectionArn": doc["ConnectionArn"], "ConnectionState": doc["ConnectionState"],
            "CreationTime": doc["CreationTime"], "LastModifiedTime": doc["LastModifiedTime"],
            "LastAuthorizedTime": doc["LastAuthorizedTime"],
        }))
    }

    /// Gives each resource configuration of a connection (invocation and OAuth endpoint) the
    /// `ResourceAssociationArn` that `DescribeConnection` returns: AWS associates the
    /// configuration with a service network of EventBridge's; Trellis keeps the ARN stable
    /// while the configuration stays the same.
    fn connectivity_associations(&self, doc: &mut Value, old: Option<&Value>) {
        let paths: [&[&str]; 2] = [
            &["InvocationConnectivityParameters", "ResourceParameters"],
            &[
                "AuthParameters",
                "ConnectivityParameters",
                "ResourceParameters",
            ],
        ];
        for path in paths {
            let previous = old.map(|o| path.iter().fold(o, |v, k| &v[*k]));
            let Some(params) = path.iter().try_fold(&mut *doc, |v, k| v.get_mut(*k)) else {
                continue;
            };
            let same = previous
                .filter(|p| p["ResourceConfigurationArn"] == params["ResourceConfigurationArn"]);
            params["ResourceAssociationArn"] = match same {
                Some(p) if p["ResourceAssociationArn"].is_string() => {
                    p["ResourceAssociationArn"].clone()
                }
                _ => json!(self.arn.arn(
                    "vpc-lattice",
                    &format!(
                        "servicenetworkresourceassociation/{}",
                        trellis_core::id::new_id("snra")
                    ),
                )),
            };
        }
    }

    /// Stores a connection (state and times set here) and registers it as a target (its API
    /// destinations reach it by ARN, so they see the change at once).
    async fn save_connection(&self, name: &str, doc: &mut Value) -> Result<(), ApiError> {
        let now = epoch_seconds(now_millis());
        // A connection to a private endpoint is ACTIVE, a public one AUTHORIZED (AWS passes
        // through CREATING/AUTHORIZING/PENDING first; Trellis is ready at once).
        let private =
            super::connection::resource_configuration(&doc["InvocationConnectivityParameters"])
                .is_some();
        doc["ConnectionState"] = json!(if private { "ACTIVE" } else { "AUTHORIZED" });
        doc["LastModifiedTime"] = now.clone();
        doc["LastAuthorizedTime"] = now;
        self.commit(vec![Write::put(KIND_CONNECTION, name, doc.clone())])
            .await?;
        self.register_connection(doc);
        self.lock()
            .connections
            .insert(name.to_string(), doc.clone());
        Ok(())
    }

    async fn create_api_destination(&self, input: Value) -> Result<Value, ApiError> {
        let name = str_field(&input, "Name").unwrap_or_default().to_string();
        let connection = str_field(&input, "ConnectionArn").unwrap_or_default();
        let _admin = self.admin.lock().await;
        {
            let st = self.lock();
            if st.destinations.contains_key(&name) {
                return Err(error(
                    "ResourceAlreadyExistsException",
                    format!("An api-destination '{name}' already exists."),
                ));
            }
            if !st
                .connections
                .values()
                .any(|c| c.get("ConnectionArn").and_then(Value::as_str) == Some(connection))
            {
                return Err(error(
                    "ResourceNotFoundException",
                    format!("Connection '{connection}' does not exist."),
                ));
            }
        }
        let now = epoch_seconds(now_millis());
        let arn = self.arn.arn(
            "events",
            &format!("api-destination/{name}/{}", super::uuid()),
        );
        let mut doc = input.clone();
        doc["ApiDestinationArn"] = json!(arn);
        doc["ApiDestinationState"] = json!("ACTIVE");
        doc["CreationTime"] = now.clone();
        doc["LastModifiedTime"] = now.clone();
        self.commit(vec![Write::put(KIND_DESTINATION, &name, doc.clone())])
            .await?;
        self.register_destination(&doc);
        self.lock().destinations.insert(name, doc);
        Ok(json!({
            "ApiDestinationArn": arn, "ApiDestinationState": "ACTIVE",
            "CreationTime": now, "LastModifiedTime": now,
        }))
    }

    /// `UpdateApiDestination`: the given members replace the stored ones.
    async fn update_api_destination(&self, input: Value) -> Result<Value, ApiError> {
        let name = str_field(&input, "Name").unwrap_or_default().to_string();
        let _admin = self.admin.lock().await;
        let mut doc = {
            let st = self.lock();
            let Some(doc) = st.destinations.get(&name).cloned() else {
                return Err(error(
                    "ResourceNotFoundException",
                    format!("An api-destination '{name}' does not exist."),
                ));
            };
            if let Some(c) = str_field(&input, "ConnectionArn") {
                if !st.connections.values().any(|v| v["ConnectionArn"] == c) {
                    return Err(error(
                        "ResourceNotFoundException",
                        format!("Connection '{c}' does not exist."),
                    ));
                }
            }
            doc
        };
        for key in [
            "ConnectionArn",
            "Description",
            "HttpMethod",
            "InvocationEndpoint",
            "InvocationRateLimitPerSecond",
        ] {
            if let Some(v) = input.get(key).filter(|v| !v.is_null()) {
                doc[key] = v.clone();
            }
        }
        doc["LastModifiedTime"] = epoch_seconds(now_millis());
        self.commit(vec![Write::put(KIND_DESTINATION, &name, doc.clone())])
            .await?;
        self.register_destination(&doc);
        self.lock().destinations.insert(name, doc.clone());
        Ok(json!({
            "ApiDestinationArn": doc["ApiDestinationArn"],
            "ApiDestinationState": doc["ApiDestinationState"],
            "CreationTime": doc["CreationTime"], "LastModifiedTime": doc["LastModifiedTime"],
        }))
    }

    fn describe_named(&self, kind: &str, input: Value, what: &str) -> Result<Value, ApiError> {
        let name = str_field(&input, "Name").unwrap_or_default();
        let st = self.lock();
        let map = if kind == KIND_CONNECTION {
            &st.connections
        } else {
            &st.destinations
        };
        let mut doc = map.get(name).cloned().ok_or_else(|| {
            error(
                "ResourceNotFoundException",
                format!("Failed to describe the {what}(s). {what} '{name}' does not exist."),
            )
        })?;
        hide_secrets(&mut doc);
        Ok(doc)
    }

    fn list_named(&self, kind: &str, input: Value, key: &str) -> Result<Value, ApiError> {
        let prefix = str_field(&input, "NamePrefix").unwrap_or_default();
        let items: Vec<Value> = {
            let st = self.lock();
            let map = if kind == KIND_CONNECTION {
                &st.connections
            } else {
                &st.destinations
            };
            map.iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .map(|(_, v)| {
                    let mut v = v.clone();
                    if let Some(o) = v.as_object_mut() {
                        o.remove("AuthParameters");
                        o.remove("InvocationConnectivityParameters");
                    }
                    v
                })
                .collect()
        };
        let (items, next) = page(&items, &input)?;
        Ok(json!({key: items, "NextToken": next}))
    }

    async fn delete_named(&self, kind: &str, input: Value, what: &str) -> Result<Value, ApiError> {
        let name = str_field(&input, "Name").unwrap_or_default().to_string();
        let _admin = self.admin.lock().await;
        let existing = {
            let st = self.lock();
            if kind == KIND_CONNECTION {
                st.connections.get(&name).cloned()
            } else {
                st.destinations.get(&name).cloned()
            }
        };
        let Some(doc) = existing else {
            return Err(error(
                "ResourceNotFoundException",
                format!("{what} '{name}' does not exist."),
            ));
        };
        self.commit(vec![Write::delete(kind, &name)]).await?;
        {
            let mut st = self.lock();
            if kind == KIND_CONNECTION {
                st.connections.remove(&name);
            } else {
                st.destinations.remove(&name);
            }
        }
        let key = if kind == KIND_CONNECTION {
            "ConnectionArn"
        } else {
            "ApiDestinationArn"
        };
        if let Some(arn) = doc[key].as_str() {
            self.targets.unregister(arn);
        }
        Ok(json!({}))
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<(), ApiError> {
        self.store
            .commit(writes)
            .await
            .map(|_| ())
            .map_err(ApiError::internal)
    }
}

fn to_doc<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

/// Checks a connection's resource configuration ARNs beyond the model's pattern (which also
/// admits an empty string).
fn validate_connectivity(input: &Value) -> Result<(), ApiError> {
    for (params, at) in [
        (
            &input["InvocationConnectivityParameters"],
            "invocationConnectivityParameters",
        ),
        (
            &input["AuthParameters"]["ConnectivityParameters"],
            "authParameters.connectivityParameters",
        ),
    ] {
        if !params.is_null() && super::connection::resource_configuration(params).is_none() {
            return Err(validation(format!(
                "1 validation error detected: Value at '{at}.resourceParameters.resourceConfigurationArn' failed to satisfy constraint: Member must not be empty"
            )));
        }
    }
    Ok(())
}

fn hide_secrets(doc: &mut Value) {
    if let Some(auth) = doc.get_mut("AuthParameters").and_then(Value::as_object_mut) {
        if let Some(c) = auth
            .get_mut("OAuthParameters")
            .and_then(|o| o.get_mut("ClientParameters"))
            .and_then(Value::as_object_mut)
        {
            c.remove("ClientSecret");
        }
        // Parameters marked `IsValueSecret` are returned without their value.
        let mut groups: Vec<&mut Value> = Vec::new();
        for (k, v) in auth.iter_mut() {
            match k.as_str() {
                "InvocationHttpParameters" => groups.push(v),
                "OAuthParameters" => groups.extend(v.get_mut("OAuthHttpParameters")),
                _ => {}
            }
        }
        for group in groups {
            for list in [
                "HeaderParameters",
                "QueryStringParameters",
                "BodyParameters",
            ] {
                for p in group
                    .get_mut(list)
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if p["IsValueSecret"] == json!(true) {
                        if let Some(o) = p.as_object_mut() {
                            o.remove("Value");
                        }
                    }
                }
            }
        }
        if let Some(k) = auth
            .get_mut("ApiKeyAuthParameters")
            .and_then(Value::as_object_mut)
        {
            k.remove("ApiKeyValue");
        }
        if let Some(b) = auth
            .get_mut("BasicAuthParameters")
            .and_then(Value::as_object_mut)
        {
            b.remove("Password");
        }
    }
}

fn bus_json(bus: &BusDoc) -> Value {
    let mut out = Map::new();
    out.insert("Name".into(), json!(bus.name));
    out.insert("Arn".into(), json!(bus.arn));
    if let Some(d) = &bus.description {
        out.insert("Description".into(), json!(d));
    }
    out.insert("CreationTime".into(), epoch_seconds(bus.created_ms));
    out.insert("LastModifiedTime".into(), epoch_seconds(bus.modified_ms));
    Value::Object(out)
}

fn rule_json(rule: &RuleDoc) -> Value {
    let mut out = Map::new();
    out.insert("Name".into(), json!(rule.name));
    out.insert("Arn".into(), json!(rule.arn));
    out.insert("EventBusName".into(), json!(rule.bus));
    if let Some(p) = &rule.event_pattern {
        out.insert("EventPattern".into(), json!(p));
    }
    if let Some(s) = &rule.schedule {
        out.insert("ScheduleExpression".into(), json!(s));
    }
    out.insert("State".into(), json!(rule.state));
    if let Some(d) = &rule.description {
        out.insert("Description".into(), json!(d));
    }
    if let Some(r) = &rule.role_arn {
        out.insert("RoleArn".into(), json!(r));
    }
    Value::Object(out)
}

/// AWS's size of one `PutEvents` entry: `Time` counts 14 bytes, then the UTF-8 lengths of
/// `Source`, `DetailType`, `Detail` and every resource.
fn entry_size(entry: &Value) -> usize {
    let mut n = 0;
    if entry.get("Time").is_some_and(|t| !t.is_null()) {
        n += 14;
    }
    for key in ["Source", "DetailType", "Detail"] {
        n += str_field(entry, key).map_or(0, str::len);
    }
    if let Some(r) = entry.get("Resources").and_then(Value::as_array) {
        n += r
            .iter()
            .filter_map(Value::as_str)
            .map(str::len)
            .sum::<usize>();
    }
    n
}

/// Checks what `PutTargets` checks beyond the model: one input kind, JSON `Input`, a valid
/// transformer.
fn validate_target(t: &Value) -> Result<(), ApiError> {
    let id = str_field(t, "Id").unwrap_or_default();
    let kinds = ["Input", "InputPath", "InputTransformer"]
        .iter()
        .filter(|k| t.get(**k).is_some_and(|v| !v.is_null()))
        .count();
    if kinds > 1 {
        return Err(validation(format!(
            "Only one of Input, InputPath, or InputTransformer must be provided for target {id}."
        )));
    }
    if let Some(input) = str_field(t, "Input") {
        if serde_json::from_str::<Value>(input).is_err() {
            return Err(validation(format!(
                "Input for target {id} is not a valid JSON text."
            )));
        }
    }
    if let Some(p) = str_field(t, "InputPath") {
        crate::transform::JsonPath::parse(p)
            .map_err(|_| validation(format!("InputPath for target {id} is invalid.")))?;
    }
    if let Some(tr) = t.get("InputTransformer") {
        let template = str_field(tr, "InputTemplate").unwrap_or_default();
        let paths: Vec<(&str, &str)> = tr
            .get("InputPathsMap")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                    .collect()
            })
            .unwrap_or_default();
        crate::InputTransformer::new(paths, template).map_err(|e| {
            validation(
                e.aws_message(id)
                    .unwrap_or_else(|| format!("InputTransformer for target {id} is invalid: {e}")),
            )
        })?;
    }
    Ok(())
}

fn test_event_pattern(input: Value) -> Result<Value, ApiError> {
    let pattern = str_field(&input, "EventPattern").unwrap_or_default();
    let event = str_field(&input, "Event").unwrap_or_default();
    match crate::test_event_pattern(pattern, event) {
        Ok(result) => Ok(json!({"Result": result})),
        Err(crate::TestPatternError::Pattern(e)) => {
            Err(error("InvalidEventPatternException", e.to_string()))
        }
        Err(crate::TestPatternError::Event(_)) => Err(validation("Parameter Event is not valid.")),
    }
}
