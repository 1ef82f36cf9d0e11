//! State machine versions and aliases.
//!
//! A version is an immutable snapshot of a state machine's definition and role, numbered from 1
//! per state machine (numbers are never reused): `…:stateMachine:NAME:3`. An alias names one
//! or two versions with weights that add up to 100 (`…:stateMachine:NAME:prod`); starting an
//! execution by the alias picks one of them by weight. Executions started by a version or an
//! alias run that version's definition and report the version (and alias) ARN in
//! `DescribeExecution`.
//!
//! Store layout: `sfn.version` and `sfn.alias`, by ARN. The state machine document counts the
//! versions it ever published, so a deleted version's number is not given again.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use trellis_core::ApiError;
use trellis_store::Write;

use super::api::{check_arn, machine_missing, page, secs, str_field};
use super::{machine_type, Inner, Machine, Version, KIND_MACHINE};
use crate::time::Timestamp;

pub(crate) const KIND_VERSION: &str = "sfn.version";
pub(crate) const KIND_ALIAS: &str = "sfn.alias";

/// AWS's quotas per state machine.
const MAX_VERSIONS: usize = 1000;
const MAX_ALIASES: usize = 100;

/// A published version as `DescribeStateMachine` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VersionDoc {
    pub state_machine_version_arn: String,
    pub state_machine_arn: String,
    pub number: u64,
    pub definition: String,
    pub role_arn: String,
    #[serde(rename = "type")]
    pub machine_type: String,
    pub creation_date: i64,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub revision_id: Option<String>,
    #[serde(default)]
    pub logging_configuration: Option<Value>,
    #[serde(default)]
    pub tracing_configuration: Option<Value>,
}

pub(crate) struct Published {
    pub doc: VersionDoc,
    pub version: Arc<Version>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Route {
    pub state_machine_version_arn: String,
    pub weight: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AliasDoc {
    pub state_machine_alias_arn: String,
    pub state_machine_arn: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub routing_configuration: Vec<Route>,
    pub creation_date: i64,
    #[serde(default)]
    pub update_date: Option<i64>,
}

/// What an execution started by some state machine ARN runs.
pub(crate) struct Launch {
    pub machine: Arc<Machine>,
    pub version: Arc<Version>,
    pub role_arn: String,
    pub version_arn: Option<String>,
    pub alias_arn: Option<String>,
}

/// `…:stateMachine:NAME` and the qualifier after it (a version number or an alias name).
pub(crate) fn split_qualifier(arn: &str) -> (&str, Option<&str>) {
    let parts: Vec<&str> = arn.splitn(8, ':').collect();
    if parts.len() == 8 && parts[5] == "stateMachine" {
        let base_len = arn.len() - parts[7].len() - 1;
        return (&arn[..base_len], Some(parts[7]));
    }
    (arn, None)
}

fn is_version_number(q: &str) -> bool {
    !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit())
}

fn resource_not_found(arn: &str) -> ApiError {
    ApiError::new(
        "ResourceNotFound",
        400,
        format!("Resource not found: '{arn}'"),
    )
    .with("resourceName", arn)
}

fn invalid_routing(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationException", 400, message)
        .with("reason", "INVALID_ROUTING_CONFIGURATION")
}

impl Inner {
    pub(crate) fn published(&self, arn: &str) -> Option<Arc<Published>> {
        self.published
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(arn)
            .cloned()
    }

    fn alias(&self, arn: &str) -> Option<AliasDoc> {
        self.aliases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(arn)
            .cloned()
    }

    /// The versions of a state machine, newest first.
    fn versions_of(&self, machine_arn: &str) -> Vec<Arc<Published>> {
        let mut all: Vec<Arc<Published>> = self
            .published
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|p| p.doc.state_machine_arn == machine_arn)
            .cloned()
            .collect();
        all.sort_by_key(|p| std::cmp::Reverse(p.doc.number));
        all
    }

    fn aliases_of(&self, machine_arn: &str) -> Vec<AliasDoc> {
        let mut all: Vec<AliasDoc> = self
            .aliases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|a| a.state_machine_arn == machine_arn)
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.creation_date, &a.name).cmp(&(b.creation_date, &b.name)));
        all
    }

    /// Loads versions and aliases (after the state machines).
    pub(crate) async fn load_versions(&self) -> Result<(), trellis_store::StoreError> {
        for (arn, doc) in self.store.list(KIND_VERSION).await? {
            let Ok(doc) = serde_json::from_value::<VersionDoc>(doc) else {
                tracing::error!(%arn, "unreadable state machine version; skipped");
                continue;
            };
            match self.version(&doc.definition, machine_type(&doc.machine_type)) {
                Ok(version) => {
                    self.register_target(&arn);
                    self.published
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(arn, Arc::new(Published { doc, version }));
                }
                Err(e) => tracing::error!(%arn, "stored version no longer valid: {e}"),
            }
        }
        for (arn, doc) in self.store.list(KIND_ALIAS).await? {
            let Ok(doc) = serde_json::from_value::<AliasDoc>(doc) else {
                tracing::error!(%arn, "unreadable state machine alias; skipped");
                continue;
            };
            self.register_target(&arn);
            self.aliases
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(arn, doc);
        }
        Ok(())
    }

    /// What StartExecution runs for a state machine, version or alias ARN; an alias picks one
    /// of its versions by weight.
    pub(crate) fn launch(&self, arn: &str) -> Result<Launch, ApiError> {
        check_arn(arn, "stateMachine")?;
        let (base, qualifier) = split_qualifier(arn);
        let machine = self.machine(base).ok_or_else(|| machine_missing(arn))?;
        let Some(q) = qualifier else {
            return Ok(Launch {
                role_arn: machine.doc.role_arn.clone(),
                version: machine.version.clone(),
                machine,
                version_arn: None,
                alias_arn: None,
            });
        };
        let (version_arn, alias_arn) = if is_version_number(q) {
            (arn.to_string(), None)
        } else {
            let alias = self.alias(arn).ok_or_else(|| machine_missing(arn))?;
            (pick(&alias.routing_configuration), Some(arn.to_string()))
        };
        let published = self
            .published(&version_arn)
            .ok_or_else(|| machine_missing(&version_arn))?;
        Ok(Launch {
            machine,
            version: published.version.clone(),
            role_arn: published.doc.role_arn.clone(),
            version_arn: Some(version_arn),
            alias_arn,
        })
    }

    /// Publishes the machine's current revision as a new version (the caller holds the admin
    /// lock). The latest version already of this revision is returned again, as AWS does.
    pub(crate) async fn publish_locked(
        &self,
        m: &Arc<Machine>,
        description: Option<String>,
        expected_revision: Option<&str>,
    ) -> Result<(String, i64), ApiError> {
        let current = m.doc.revision_id.clone().unwrap_or_default();
        if let Some(r) = expected_revision {
            if r != current {
                return Err(ApiError::new(
                    "ConflictException",
                    400,
                    format!("Failed to publish the State Machine version for revision {r}. The current State Machine revision is {current}."),
                ));
            }
        }
        let existing = self.versions_of(&m.doc.state_machine_arn);
        if let Some(latest) = existing.first() {
            let same_revision = latest.doc.revision_id.as_deref() == Some(current.as_str())
                && latest.doc.definition == m.doc.definition
                && latest.doc.role_arn == m.doc.role_arn;
            if same_revision {
                if description.is_some() && description != latest.doc.description {
                    return Err(ApiError::new(
                        "ConflictException",
                        400,
                        format!("Failed to publish the State Machine version: version {} already publishes this revision with a different description.", latest.doc.state_machine_version_arn),
                    ));
                }
                return Ok((
                    latest.doc.state_machine_version_arn.clone(),
                    latest.doc.creation_date,
                ));
            }
        }
        if existing.len() >= MAX_VERSIONS {
            return Err(ApiError::new(
                "ServiceQuotaExceededException",
                400,
                format!("The maximum number of versions ({MAX_VERSIONS}) for the state machine '{}' has been reached.", m.doc.state_machine_arn),
            ));
        }
        let mut machine_doc = m.doc.clone();
        machine_doc.versions_published += 1;
        let number = machine_doc.versions_published;
        let now = Timestamp::now().millis();
        let d = &m.doc;
        let doc = VersionDoc {
            state_machine_version_arn: format!("{}:{number}", d.state_machine_arn),
            state_machine_arn: d.state_machine_arn.clone(),
            number,
            definition: d.definition.clone(),
            role_arn: d.role_arn.clone(),
            machine_type: d.machine_type.clone(),
            creation_date: now,
            description,
            revision_id: d.revision_id.clone(),
            logging_configuration: d.logging_configuration.clone(),
            tracing_configuration: d.tracing_configuration.clone(),
        };
        let arn = doc.state_machine_version_arn.clone();
        self.commit_admin(vec![
            Write::put(KIND_MACHINE, &d.state_machine_arn, to_value(&machine_doc)?),
            Write::put(KIND_VERSION, &arn, to_value(&doc)?),
        ])
        .await?;
        self.machines
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                d.state_machine_arn.clone(),
                Arc::new(Machine {
                    doc: machine_doc,
                    version: m.version.clone(),
                }),
            );
        self.published
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                arn.clone(),
                Arc::new(Published {
                    doc,
                    version: m.version.clone(),
                }),
            );
        self.register_target(&arn);
        Ok((arn, now))
    }

    async fn commit_admin(&self, writes: Vec<Write>) -> Result<(), ApiError> {
        self.store
            .commit(writes)
            .await
            .map(|_| ())
            .map_err(ApiError::internal)
    }

    // --- operations ---

    pub(crate) async fn publish_state_machine_version(
        &self,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let arn = str_field(input, "stateMachineArn");
        let _w = self.admin.lock().await;
        let m = self.existing_machine(arn)?;
        let (version_arn, created) = self
            .publish_locked(
                &m,
                input["description"].as_str().map(str::to_string),
                input["revisionId"].as_str(),
            )
            .await?;
        Ok(json!({"stateMachineVersionArn": version_arn, "creationDate": secs(created)}))
    }

    pub(crate) fn list_state_machine_versions(&self, input: &Value) -> Result<Value, ApiError> {
        let m = self.existing_machine(str_field(input, "stateMachineArn"))?;
        let items = self
            .versions_of(&m.doc.state_machine_arn)
            .iter()
            .map(|p| {
                json!({
                    "stateMachineVersionArn": p.doc.state_machine_version_arn,
                    "creationDate": secs(p.doc.creation_date),
                })
            })
            .collect();
        page(items, input, "stateMachineVersions")
    }

    pub(crate) async fn delete_state_machine_version(
        &self,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let arn = str_field(input, "stateMachineVersionArn");
        check_arn(arn, "stateMachine")?;
        if !split_qualifier(arn).1.is_some_and(is_version_number) {
            return Err(ApiError::new(
                "ValidationException",
                400,
                format!("Invalid version ARN: '{arn}'"),
            ));
        }
        let _w = self.admin.lock().await;
        let referencing: Vec<String> = self
            .aliases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|a| {
                a.routing_configuration
                    .iter()
                    .any(|r| r.state_machine_version_arn == arn)
            })
            .map(|a| a.state_machine_alias_arn.clone())
            .collect();
        if !referencing.is_empty() {
            return Err(ApiError::new(
                "ConflictException",
                400,
                format!(
                    "Version to be deleted must not be referenced by an alias. Current list of aliases referencing this version: [{}]",
                    referencing.join(", ")
                ),
            ));
        }
        if self.published(arn).is_some() {
            self.commit_admin(vec![Write::delete(KIND_VERSION, arn)])
                .await?;
            self.published
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(arn);
            self.targets.unregister(arn);
        }
        Ok(json!({}))
    }

    /// Checks a routing configuration: one or two distinct, existing versions of one state
    /// machine, weights adding up to 100. Returns that state machine's ARN.
    fn check_routing(&self, routes: &[Route]) -> Result<String, ApiError> {
        if routes.is_empty() || routes.len() > 2 {
            return Err(invalid_routing(
                "Routing configuration must contain one or two state machine versions",
            ));
        }
        let mut machine = None;
        for r in routes {
            let arn = &r.state_machine_version_arn;
            check_arn(arn, "stateMachine")?;
            let (base, q) = split_qualifier(arn);
            if !q.is_some_and(is_version_number) {
                return Err(invalid_routing(format!(
                    "Routing configuration must contain state machine version ARNs: '{arn}'"
                )));
            }
            if machine.is_some_and(|m| m != base) {
                return Err(invalid_routing(
                    "Routing configuration must contain versions of the same state machine",
                ));
            }
            machine = Some(base);
            if r.weight > 100 {
                return Err(invalid_routing("Weights must be between 0 and 100"));
            }
        }
        if routes.len() == 2
            && routes[0].state_machine_version_arn == routes[1].state_machine_version_arn
        {
            return Err(invalid_routing(
                "Routing configuration must contain distinct state machine version ARNs",
            ));
        }
        if routes.iter().map(|r| r.weight).sum::<u64>() != 100 {
            return Err(invalid_routing(
                "Sum of routing configuration weights must be equal to 100",
            ));
        }
        for r in routes {
            if self.published(&r.state_machine_version_arn).is_none() {
                return Err(resource_not_found(&r.state_machine_version_arn));
            }
        }
        Ok(machine.unwrap_or_default().to_string())
    }

    pub(crate) async fn create_state_machine_alias(
        &self,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let name = str_field(input, "name");
        let name_ok = !name.is_empty()
            && name.len() <= 80
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            && !is_version_number(name);
        if !name_ok {
            return Err(ApiError::new(
                "InvalidName",
                400,
                format!("Invalid Name: '{name}'"),
            ));
        }
        let routes = routes(input)?;
        let description = input["description"].as_str().map(str::to_string);
        let _w = self.admin.lock().await;
        let machine_arn = self.check_routing(&routes)?;
        if self.machine(&machine_arn).is_none() {
            return Err(machine_missing(&machine_arn));
        }
        let arn = format!("{machine_arn}:{name}");
        if let Some(existing) = self.alias(&arn) {
            if existing.routing_configuration == routes && existing.description == description {
                return Ok(
                    json!({"stateMachineAliasArn": arn, "creationDate": secs(existing.creation_date)}),
                );
            }
            return Err(ApiError::new(
                "ConflictException",
                400,
                format!("Failed to create alias because an alias with the same name and a different routing configuration already exists: '{arn}'"),
            ));
        }
        if self.aliases_of(&machine_arn).len() >= MAX_ALIASES {
            return Err(ApiError::new(
                "ServiceQuotaExceededException",
                400,
                format!("The maximum number of aliases ({MAX_ALIASES}) for the state machine '{machine_arn}' has been reached."),
            ));
        }
        let now = Timestamp::now().millis();
        let doc = AliasDoc {
            state_machine_alias_arn: arn.clone(),
            state_machine_arn: machine_arn,
            name: name.to_string(),
            description,
            routing_configuration: routes,
            creation_date: now,
            update_date: None,
        };
        self.put_alias(doc).await?;
        self.register_target(&arn);
        Ok(json!({"stateMachineAliasArn": arn, "creationDate": secs(now)}))
    }

    async fn put_alias(&self, doc: AliasDoc) -> Result<(), ApiError> {
        let arn = doc.state_machine_alias_arn.clone();
        self.commit_admin(vec![Write::put(KIND_ALIAS, &arn, to_value(&doc)?)])
            .await?;
        self.aliases
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(arn, doc);
        Ok(())
    }

    fn existing_alias(&self, arn: &str) -> Result<AliasDoc, ApiError> {
        check_arn(arn, "stateMachine")?;
        self.alias(arn).ok_or_else(|| resource_not_found(arn))
    }

    pub(crate) fn describe_state_machine_alias(&self, input: &Value) -> Result<Value, ApiError> {
        let a = self.existing_alias(str_field(input, "stateMachineAliasArn"))?;
        let mut out = json!({
            "stateMachineAliasArn": a.state_machine_alias_arn,
            "name": a.name,
            "routingConfiguration": a.routing_configuration,
            "creationDate": secs(a.creation_date),
        });
        if let Some(d) = &a.description {
            out["description"] = json!(d);
        }
        if let Some(u) = a.update_date {
            out["updateDate"] = json!(secs(u));
        }
        Ok(out)
    }

    pub(crate) async fn update_state_machine_alias(
        &self,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let arn = str_field(input, "stateMachineAliasArn");
        if input.get("description").is_none() && input.get("routingConfiguration").is_none() {
            return Err(ApiError::new(
                "ValidationException",
                400,
                "Either the description or the routing configuration must be specified",
            )
            .with("reason", "MISSING_REQUIRED_PARAMETER"));
        }
        let _w = self.admin.lock().await;
        let mut a = self.existing_alias(arn)?;
        if input.get("routingConfiguration").is_some() {
            let routes = routes(input)?;
            if self.check_routing(&routes)? != a.state_machine_arn {
                return Err(invalid_routing(
                    "Routing configuration must contain versions of the alias's state machine",
                ));
            }
            a.routing_configuration = routes;
        }
        if let Some(d) = input["description"].as_str() {
            a.description = Some(d.to_string());
        }
        let now = Timestamp::now().millis();
        a.update_date = Some(now);
        self.put_alias(a).await?;
        Ok(json!({"updateDate": secs(now)}))
    }

    pub(crate) async fn delete_state_machine_alias(
        &self,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let arn = str_field(input, "stateMachineAliasArn");
        let _w = self.admin.lock().await;
        self.existing_alias(arn)?;
        self.commit_admin(vec![Write::delete(KIND_ALIAS, arn)])
            .await?;
        self.aliases
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(arn);
        self.targets.unregister(arn);
        Ok(json!({}))
    }

    pub(crate) fn list_state_machine_aliases(&self, input: &Value) -> Result<Value, ApiError> {
        let m = self.existing_machine(str_field(input, "stateMachineArn"))?;
        let items = self
            .aliases_of(&m.doc.state_machine_arn)
            .iter()
            .map(|a| {
                json!({
                    "stateMachineAliasArn": a.state_machine_alias_arn,
                    "creationDate": secs(a.creation_date),
                })
            })
            .collect();
        page(items, input, "stateMachineAliases")
    }

    /// DescribeStateMachine for a version ARN.
    pub(crate) fn describe_version(&self, arn: &str) -> Result<Value, ApiError> {
        let p = self.published(arn).ok_or_else(|| machine_missing(arn))?;
        let d = &p.doc;
        let name = self
            .machine(&d.state_machine_arn)
            .map(|m| m.doc.name.clone())
            .unwrap_or_default();
        let mut out = json!({
            "stateMachineArn": d.state_machine_version_arn,
            "name": name,
            "status": "ACTIVE",
            "definition": d.definition,
            "roleArn": d.role_arn,
            "type": d.machine_type,
            "creationDate": secs(d.creation_date),
            "loggingConfiguration": d.logging_configuration.clone()
                .unwrap_or(json!({"level": "OFF", "includeExecutionData": false})),
            "tracingConfiguration": d.tracing_configuration.clone().unwrap_or(json!({"enabled": false})),
        });
        if let Some(r) = &d.revision_id {
            out["revisionId"] = json!(r);
        }
        if let Some(desc) = &d.description {
            out["description"] = json!(desc);
        }
        Ok(out)
    }

    /// Writes that delete a state machine's versions and aliases (with the machine).
    pub(crate) fn forget_versions(&self, machine_arn: &str) -> Vec<Write> {
        let mut writes = Vec::new();
        for p in self.versions_of(machine_arn) {
            let arn = &p.doc.state_machine_version_arn;
            writes.push(Write::delete(KIND_VERSION, arn));
            self.published
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(arn);
            self.targets.unregister(arn);
        }
        for a in self.aliases_of(machine_arn) {
            let arn = &a.state_machine_alias_arn;
            writes.push(Write::delete(KIND_ALIAS, arn));
            self.aliases
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(arn);
            self.targets.unregister(arn);
        }
        writes
    }
}

/// One version of a routing configuration, by weight.
fn pick(routes: &[Route]) -> String {
    let roll = fastrand::u64(0..100);
    let mut acc = 0;
    for r in routes {
        acc += r.weight;
        if roll < acc {
            return r.state_machine_version_arn.clone();
        }
    }
    routes
        .last()
        .map(|r| r.state_machine_version_arn.clone())
        .unwrap_or_default()
}

fn routes(input: &Value) -> Result<Vec<Route>, ApiError> {
    serde_json::from_value(input["routingConfiguration"].clone())
        .map_err(|e| invalid_routing(format!("Invalid routing configuration: {e}")))
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

/// A check of the `publish` / `versionDescription` pair of Create/UpdateStateMachine.
pub(crate) fn publish_flags(input: &Value) -> Result<(bool, Option<String>), ApiError> {
    let publish = input["publish"].as_bool().unwrap_or(false);
    let description = input["versionDescription"].as_str().map(str::to_string);
    if description.is_some() && !publish {
        return Err(ApiError::new(
            "ValidationException",
            400,
            "Version description can only be set when publish is true",
        ));
    }
    Ok((publish, description))
}

#[cfg(test)]
mod tests {
    use trellis_core::target::TargetRegistry;
    use trellis_core::ArnContext;

    use super::*;
    use crate::service::{start, StepFunctions};

    async fn service(dir: &std::path::Path) -> Arc<StepFunctions> {
        let store = trellis_store::open(None, dir).unwrap();
        let targets = Arc::new(TargetRegistry::default());
        start(store, ArnContext::default(), targets).await.unwrap()
    }

    fn pass(result: &str) -> String {
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": result, "End": true}}})
            .to_string()
    }

    #[tokio::test]
    async fn versions_aliases_and_their_errors_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sf = service(dir.path()).await;
        let created = sf
            .call_op(
                "CreateStateMachine",
                json!({"name": "orders", "definition": pass("one"), "publish": true,
                       "versionDescription": "first",
                       "roleArn": "arn:aws:iam::000000000000:role/r"}),
            )
            .await
            .unwrap();
        let sm = created["stateMachineArn"].as_str().unwrap().to_string();
        let v1 = format!("{sm}:1");
        assert_eq!(created["stateMachineVersionArn"], v1.as_str());

        // The same revision again: the same version; a stale revision id: a conflict.
        let again = sf
            .call_op("PublishStateMachineVersion", json!({"stateMachineArn": sm}))
            .await
            .unwrap();
        assert_eq!(again["stateMachineVersionArn"], v1.as_str());
        let e = sf
            .call_op(
                "PublishStateMachineVersion",
                json!({"stateMachineArn": sm, "revisionId": "stale"}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "ConflictException");
        let e = sf
            .call_op(
                "UpdateStateMachine",
                json!({"stateMachineArn": sm, "versionDescription": "x", "definition": pass("x")}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "ValidationException");

        let updated = sf
            .call_op(
                "UpdateStateMachine",
                json!({"stateMachineArn": sm, "definition": pass("two"), "publish": true}),
            )
            .await
            .unwrap();
        let v2 = format!("{sm}:2");
        assert_eq!(updated["stateMachineVersionArn"], v2.as_str());

        let bad = [
            (
                json!([{"stateMachineVersionArn": v1, "weight": 60}]),
                "ValidationException",
            ),
            (
                json!([{"stateMachineVersionArn": v1, "weight": 50},
                       {"stateMachineVersionArn": v1, "weight": 50}]),
                "ValidationException",
            ),
            (
                json!([{"stateMachineVersionArn": sm, "weight": 100}]),
                "ValidationException",
            ),
            (
                json!([{"stateMachineVersionArn": format!("{sm}:9"), "weight": 100}]),
                "ResourceNotFound",
            ),
        ];
        for (routing, code) in bad {
            let e = sf
                .call_op(
                    "CreateStateMachineAlias",
                    json!({"name": "prod", "routingConfiguration": routing}),
                )
                .await
                .unwrap_err();
            assert_eq!(e.code, code, "{routing}");
        }
        let alias = sf
            .call_op(
                "CreateStateMachineAlias",
                json!({"name": "prod", "description": "live",
                       "routingConfiguration": [{"stateMachineVersionArn": v1, "weight": 100}]}),
            )
            .await
            .unwrap();
        let prod = format!("{sm}:prod");
        assert_eq!(alias["stateMachineAliasArn"], prod.as_str());
        let e = sf
            .call_op(
                "DeleteStateMachineVersion",
                json!({"stateMachineVersionArn": v1}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "ConflictException");
        assert!(e.message.contains(&prod), "{}", e.message);

        // Everything is read back after a restart, and numbers are not reused.
        drop(sf);
        let sf = service(dir.path()).await;
        let versions = sf
            .call_op("ListStateMachineVersions", json!({"stateMachineArn": sm}))
            .await
            .unwrap();
        let listed: Vec<&str> = versions["stateMachineVersions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["stateMachineVersionArn"].as_str().unwrap())
            .collect();
        assert_eq!(listed, [v2.as_str(), v1.as_str()]);
        let d = sf
            .call_op("DescribeStateMachine", json!({"stateMachineArn": v1}))
            .await
            .unwrap();
        assert_eq!(d["definition"], pass("one"));
        assert_eq!(d["description"], "first");
        let d = sf
            .call_op(
                "DescribeStateMachineAlias",
                json!({"stateMachineAliasArn": prod}),
            )
            .await
            .unwrap();
        assert_eq!(d["routingConfiguration"][0]["weight"], 100);
        sf.call_op(
            "DeleteStateMachineVersion",
            json!({"stateMachineVersionArn": v2}),
        )
        .await
        .unwrap();
        let v3 = sf
            .call_op(
                "UpdateStateMachine",
                json!({"stateMachineArn": sm, "definition": pass("three"), "publish": true}),
            )
            .await
            .unwrap();
        assert_eq!(v3["stateMachineVersionArn"], format!("{sm}:3"));

        // Deleting the machine deletes its versions and aliases.
        sf.call_op("DeleteStateMachine", json!({"stateMachineArn": sm}))
            .await
            .unwrap();
        let e = sf
            .call_op(
                "DescribeStateMachineAlias",
                json!({"stateMachineAliasArn": prod}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "ResourceNotFound");
        let e = sf
            .call_op("StartExecution", json!({"stateMachineArn": v1}))
            .await
            .unwrap_err();
        assert_eq!(e.code, "StateMachineDoesNotExist");
    }

    #[test]
    fn qualifiers_and_weights() {
        let sm = "arn:aws:states:us-east-1:000000000000:stateMachine:orders";
        assert_eq!(split_qualifier(sm), (sm, None));
        assert_eq!(split_qualifier(&format!("{sm}:7")), (sm, Some("7")));
        assert_eq!(split_qualifier(&format!("{sm}:prod")), (sm, Some("prod")));
        let only = vec![
            Route {
                state_machine_version_arn: "a".into(),
                weight: 0,
            },
            Route {
                state_machine_version_arn: "b".into(),
                weight: 100,
            },
        ];
        assert!((0..50).all(|_| pick(&only) == "b"));
    }
}
