//! The declarative JSON config: the same resources as the Lattice, Lambda, EventBridge and Step
//! Functions APIs, nested the way people think of them, and applied through the same operations
//! and the same validation. A file is applied entirely or not at all: every section is checked
//! first (Lattice on a copy of its state, the engines through their own validation calls), every
//! error is reported at once with its JSON pointer, and only a file without errors changes
//! anything. Resources are matched by name: present ones are updated, missing ones created.
//! The format is documented in `docs/config.md` and by `trellis schema`.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use trellis_core::error::FieldError;
use trellis_core::ApiError;

use crate::controller::Controller;
use crate::lattice::{self, kind, Ctx, State};

pub mod engines;
pub mod locate;
pub mod schema;

pub use engines::Engines;

/// Reads a config file, or every `*.json` file of a folder (in name order) merged into one.
pub fn read_path(path: &Path) -> Result<String, String> {
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut merged = Map::new();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            let doc: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{}:{}:{}: {e}", f.display(), e.line(), e.column()))?;
            for (k, v) in doc.as_object().cloned().unwrap_or_default() {
                match (merged.get_mut(&k), v) {
                    (Some(Value::Array(a)), Value::Array(b)) => a.extend(b),
                    (_, v) => {
                        merged.insert(k, v);
                    }
                }
            }
        }
        Ok(Value::Object(merged).to_string())
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The folder that relative paths in the config at `path` (function code, state machine
/// definition files) are resolved against: the folder itself, or the file's folder.
pub fn base_of(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if abs.is_dir() {
        abs
    } else {
        abs.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// How a config document is to be read.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// False when the text is not what the user wrote (the merge of a folder of files), where
    /// lines and columns would mislead.
    pub locate: bool,
    /// The folder relative paths are resolved against (else the working directory).
    pub base: Option<PathBuf>,
}

/// Parses and applies a Lattice-only config document (no engines, paths relative to the working
/// directory); answers a summary of what changed. Errors name the line and column of the
/// offending value in `text`.
pub async fn apply_text(controller: &Controller, text: &str) -> Result<Value, ApiError> {
    let source = Source {
        locate: true,
        base: None,
    };
    apply(controller, &Engines::default(), text, &source).await
}

/// Parses a config document, checks every section, and applies it when nothing is wrong.
pub async fn apply(
    controller: &Controller,
    engines: &Engines,
    text: &str,
    source: &Source,
) -> Result<Value, ApiError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::cannot_parse(format!(
            "config is not valid JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    let fail = |mut errors: Vec<FieldError>| {
        if source.locate {
            // Name the line and column too: a pointer alone is hard to find in a big file.
            let positions = locate::positions(text);
            for e in &mut errors {
                if let Some((line, col)) = locate::find(&positions, &e.name) {
                    e.message = format!("{} (line {line}, column {col})", e.message);
                }
            }
        }
        ApiError::validation(errors)
    };
    let mut errors = Vec::new();
    match doc.as_object() {
        None => errors.push(FieldError {
            name: "/".into(),
            message: "the config must be a JSON object".into(),
        }),
        Some(obj) => {
            for k in obj.keys().filter(|k| !TOP_LEVEL.contains(&k.as_str())) {
                errors.push(FieldError {
                    name: format!("/{k}"),
                    message: format!(
                        "unknown section {k:?}; expected one of {}",
                        TOP_LEVEL[1..].join(", ")
                    ),
                });
            }
        }
    }
    // The engines' part is checked (and planned) first, reading only; the Lattice part runs
    // on a copy of the state that is kept only when neither part found an error.
    let base = source.base.clone().unwrap_or_default();
    let plan = engines::plan(engines, &controller.arn, &doc, &base, &mut errors).await;
    let runtimes = controller.dataplane.runtimes.clone();
    let health = move |tg: &str, ip: &str, port: u16| runtimes.target_health(tg, ip, port);
    let ctx = Ctx {
        arn: &controller.arn,
        model: &controller.model,
        health: &health,
    };
    let lattice_changes = controller
        .write(|state| {
            let mut applier = Applier {
                ctx: &ctx,
                state,
                errors,
                changes: 0,
            };
            applier.document(&doc);
            if applier.errors.is_empty() {
                Ok(applier.changes)
            } else {
                Err(fail(applier.errors))
            }
        })
        .await?;
    let engine_changes = engines::run(engines, plan)
        .await
        .map_err(|e| fail(vec![e]))?;
    Ok(json!({"applied": true, "operations": lattice_changes + engine_changes}))
}

struct Applier<'a, 'c> {
    ctx: &'a Ctx<'c>,
    state: &'a mut State,
    errors: Vec<FieldError>,
    changes: usize,
}

/// The sections of a config (`$schema` first: it is allowed, never reported as expected).
const TOP_LEVEL: &[&str] = &[
    "$schema",
    "serviceNetworks",
    "targetGroups",
    "services",
    "resourceGateways",
    "functions",
    "stateMachines",
    "connections",
    "apiDestinations",
    "eventBuses",
];

// === impl Applier ===

impl Applier<'_, '_> {
    /// The Lattice sections (the engines' are [`engines`]'s).
    fn document(&mut self, doc: &Value) {
        for (i, sn) in items(doc, "serviceNetworks") {
            self.service_network(&format!("/serviceNetworks/{i}"), sn);
        }
        for (i, tg) in items(doc, "targetGroups") {
            self.target_group(&format!("/targetGroups/{i}"), tg);
        }
        for (i, svc) in items(doc, "services") {
            self.service(&format!("/services/{i}"), svc);
        }
        for (i, gw) in items(doc, "resourceGateways") {
            self.resource_gateway(&format!("/resourceGateways/{i}"), gw);
        }
    }

    fn service_network(&mut self, at: &str, sn: &Value) {
        let name = sn["name"].as_str().unwrap_or_default();
        let existing = self.id_by_name(kind::SERVICE_NETWORK, name, None);
        let input = pick(sn, &["name", "authType", "sharingConfig", "tags"]);
        let id = match existing {
            Some(id) => {
                let mut u = pick(sn, &["authType"]);
                u["serviceNetworkIdentifier"] = id.clone().into();
                if u.get("authType").is_some() {
                    self.op(at, "UpdateServiceNetwork", u);
                }
                self.retag(at, kind::SERVICE_NETWORK, &id, sn);
                Some(id)
            }
            None => self
                .op(at, "CreateServiceNetwork", input)
                .and_then(|o| id_of(&o)),
        };
        if let (Some(id), Some(policy)) = (id, sn.get("authPolicy")) {
            self.op(
                at,
                "PutAuthPolicy",
                json!({"resourceIdentifier": id, "policy": policy.to_string()}),
            );
        }
    }

    fn target_group(&mut self, at: &str, tg: &Value) {
        let name = tg["name"].as_str().unwrap_or_default();
        let id = match self.id_by_name(kind::TARGET_GROUP, name, None) {
            Some(id) => {
                if let Some(hc) = tg["config"].get("healthCheck") {
                    self.op(
                        at,
                        "UpdateTargetGroup",
                        json!({"targetGroupIdentifier": id, "healthCheck": hc}),
                    );
                }
                self.retag(at, kind::TARGET_GROUP, &id, tg);
                Some(id)
            }
            None => self
                .op(
                    at,
                    "CreateTargetGroup",
                    pick(tg, &["name", "type", "config", "tags"]),
                )
                .and_then(|o| id_of(&o)),
        };
        let (Some(id), Some(targets)) = (id, tg.get("targets")) else {
            return;
        };
        let registered: Vec<Value> = self
            .state
            .get(kind::TARGET_GROUP, &id)
            .and_then(|r| r["targets"].as_array().cloned())
            .unwrap_or_default();
        let default_port = self
            .state
            .get(kind::TARGET_GROUP, &id)
            .and_then(|r| r["config"]["port"].as_u64());
        let wanted: Vec<Value> = targets.as_array().cloned().unwrap_or_default();
        let stale: Vec<Value> = registered
            .into_iter()
            .filter(|r| {
                !wanted.iter().any(|w| {
                    w["id"] == r["id"] && w["port"].as_u64().or(default_port) == r["port"].as_u64()
                })
            })
            .collect();
        if !stale.is_empty() {
            self.op(
                at,
                "DeregisterTargets",
                json!({"targetGroupIdentifier": id, "targets": stale}),
            );
        }
        if !wanted.is_empty() {
            if let Some(out) = self.op(
                &format!("{at}/targets"),
                "RegisterTargets",
                json!({"targetGroupIdentifier": id, "targets": wanted}),
            ) {
                for f in out["unsuccessful"].as_array().into_iter().flatten() {
                    let msg = f["failureMessage"]
                        .as_str()
                        .unwrap_or("invalid target")
                        .to_string();
                    self.error(&format!("{at}/targets"), &msg);
                }
            }
        }
    }

    fn service(&mut self, at: &str, svc: &Value) {
        let name = svc["name"].as_str().unwrap_or_default();
        let id = match self.id_by_name(kind::SERVICE, name, None) {
            Some(id) => {
                let mut u = pick(svc, &["authType", "certificateArn"]);
                if u.as_object().is_some_and(|o| !o.is_empty()) {
                    u["serviceIdentifier"] = id.clone().into();
                    self.op(at, "UpdateService", u);
                }
                self.retag(at, kind::SERVICE, &id, svc);
                Some(id)
            }
            None => self
                .op(
                    at,
                    "CreateService",
                    pick(
                        svc,
                        &[
                            "name",
                            "customDomainName",
                            "certificateArn",
                            "authType",
                            "tags",
                        ],
                    ),
                )
                .and_then(|o| id_of(&o)),
        };
        let Some(id) = id else { return };
        if let Some(policy) = svc.get("authPolicy") {
            self.op(
                at,
                "PutAuthPolicy",
                json!({"resourceIdentifier": id, "policy": policy.to_string()}),
            );
        }
        for (i, sn) in svc["serviceNetworks"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let sn_at = format!("{at}/serviceNetworks/{i}");
            let Some(sn_id) = self.service_network_id(&sn_at, sn) else {
                continue;
            };
            let associated = self
                .state
                .all(kind::SN_SERVICE_ASSOC)
                .any(|a| a["serviceId"] == id.as_str() && a["serviceNetworkId"] == sn_id.as_str());
            if !associated {
                self.op(
                    &sn_at,
                    "CreateServiceNetworkServiceAssociation",
                    json!({"serviceIdentifier": id, "serviceNetworkIdentifier": sn_id}),
                );
            }
        }
        for (i, l) in items(svc, "listeners") {
            self.listener(&format!("{at}/listeners/{i}"), &id, l);
        }
    }

    fn listener(&mut self, at: &str, service_id: &str, l: &Value) {
        let name = l["name"].as_str().unwrap_or_default();
        let action = self.resolve_action(&format!("{at}/defaultAction"), &l["defaultAction"]);
        let id = match self.id_by_name(kind::LISTENER, name, Some(("serviceId", service_id))) {
            Some(id) => {
                self.op(at, "UpdateListener", json!({"serviceIdentifier": service_id, "listenerIdentifier": id, "defaultAction": action}));
                self.retag(at, kind::LISTENER, &id, l);
                Some(id)
            }
            None => {
                let mut input = pick(l, &["name", "protocol", "port", "tags"]);
                input["serviceIdentifier"] = service_id.into();
                input["defaultAction"] = action;
                self.op(at, "CreateListener", input).and_then(|o| id_of(&o))
            }
        };
        let Some(id) = id else { return };
        for (i, r) in items(l, "rules") {
            let rule_at = format!("{at}/rules/{i}");
            let action = self.resolve_action(&format!("{rule_at}/action"), &r["action"]);
            let rname = r["name"].as_str().unwrap_or_default();
            match self.id_by_name(kind::RULE, rname, Some(("listenerId", &id))) {
                Some(rid) => {
                    self.op(&rule_at, "UpdateRule", json!({"serviceIdentifier": service_id, "listenerIdentifier": id, "ruleIdentifier": rid, "match": r["match"], "priority": r["priority"], "action": action}));
                    self.retag(&rule_at, kind::RULE, &rid, r);
                }
                None => {
                    let mut input = pick(r, &["name", "match", "priority", "tags"]);
                    input["serviceIdentifier"] = service_id.into();
                    input["listenerIdentifier"] = id.clone().into();
                    input["action"] = action;
                    self.op(&rule_at, "CreateRule", input);
                }
            }
        }
    }

    fn resource_gateway(&mut self, at: &str, gw: &Value) {
        let name = gw["name"].as_str().unwrap_or_default();
        let id = match self.id_by_name(kind::RESOURCE_GATEWAY, name, None) {
            Some(id) => {
                let current = self.state.get(kind::RESOURCE_GATEWAY, &id);
                if let Some(sg) = gw
                    .get("securityGroupIds")
                    .filter(|sg| current.is_some_and(|c| &c["securityGroupIds"] != *sg))
                {
                    self.op(
                        at,
                        "UpdateResourceGateway",
                        json!({"resourceGatewayIdentifier": id, "securityGroupIds": sg}),
                    );
                }
                self.retag(at, kind::RESOURCE_GATEWAY, &id, gw);
                Some(id)
            }
            None => {
                let input = pick(
                    gw,
                    &[
                        "name",
                        "vpcIdentifier",
                        "subnetIds",
                        "securityGroupIds",
                        "ipAddressType",
                        "ipv4AddressesPerEni",
                        "resourceConfigDnsResolution",
                        "tags",
                    ],
                );
                self.op(at, "CreateResourceGateway", input)
                    .and_then(|o| id_of(&o))
            }
        };
        let Some(id) = id else { return };
        for (i, rc) in items(gw, "resourceConfigurations") {
            let rc_at = format!("{at}/resourceConfigurations/{i}");
            self.resource_configuration(&rc_at, ("resourceGatewayIdentifier", &id), rc);
        }
    }

    /// A resource configuration of a gateway, or (`parent` naming the group) a CHILD of a
    /// GROUP; then its children and its service-network associations.
    fn resource_configuration(&mut self, at: &str, parent: (&str, &str), rc: &Value) {
        let (parent_key, parent_id) = parent;
        let child = parent_key == "resourceConfigurationGroupIdentifier";
        let name = rc["name"].as_str().unwrap_or_default();
        let id = match self.id_by_name(kind::RESOURCE_CONFIGURATION, name, None) {
            Some(id) => {
                let Some(current) = self.state.get(kind::RESOURCE_CONFIGURATION, &id).cloned()
                else {
                    return;
                };
                let owner = if child {
                    &current["resourceConfigurationGroupId"]
                } else {
                    &current["resourceGatewayId"]
                };
                if owner != parent_id {
                    let what = if child { "group" } else { "resource gateway" };
                    self.error(
                        &format!("{at}/name"),
                        &format!("resource configuration {name} already exists under another {what} ({}); names are unique", owner.as_str().unwrap_or("none")),
                    );
                    return;
                }
                let mut u = Map::new();
                for k in [
                    "portRanges",
                    "resourceConfigurationDefinition",
                    "allowAssociationToShareableServiceNetwork",
                ] {
                    if let Some(v) = rc.get(k).filter(|v| current.get(k) != Some(*v)) {
                        u.insert(k.to_string(), v.clone());
                    }
                }
                if !u.is_empty() {
                    u.insert("resourceConfigurationIdentifier".into(), id.clone().into());
                    self.op(at, "UpdateResourceConfiguration", Value::Object(u));
                }
                self.retag(at, kind::RESOURCE_CONFIGURATION, &id, rc);
                Some(id)
            }
            None => {
                let mut input = pick(
                    rc,
                    &[
                        "name",
                        "type",
                        "portRanges",
                        "protocol",
                        "resourceConfigurationDefinition",
                        "allowAssociationToShareableServiceNetwork",
                        "customDomainName",
                        "groupDomain",
                        "tags",
                    ],
                );
                if child && input.get("type").is_none() {
                    input["type"] = "CHILD".into();
                }
                input[parent_key] = parent_id.into();
                self.op(at, "CreateResourceConfiguration", input)
                    .and_then(|o| id_of(&o))
            }
        };
        let Some(id) = id else { return };
        for (i, c) in items(rc, "children") {
            let c_at = format!("{at}/children/{i}");
            self.resource_configuration(&c_at, ("resourceConfigurationGroupIdentifier", &id), c);
        }
        for (i, sn) in items(rc, "serviceNetworks") {
            let sn_at = format!("{at}/serviceNetworks/{i}");
            let Some(sn_id) = self.service_network_id(&sn_at, sn) else {
                continue;
            };
            let associated = self.state.all(kind::SN_RESOURCE_ASSOC).any(|a| {
                a["resourceConfigurationId"] == id.as_str()
                    && a["serviceNetworkId"] == sn_id.as_str()
            });
            if !associated {
                self.op(
                    &sn_at,
                    "CreateServiceNetworkResourceAssociation",
                    json!({"resourceConfigurationIdentifier": id, "serviceNetworkIdentifier": sn_id}),
                );
            }
        }
    }

    /// The id of the service network a config names (by name or id) at `at`.
    fn service_network_id(&mut self, at: &str, sn: &Value) -> Option<String> {
        let Some(sn_name) = sn.as_str() else {
            self.error(at, "a service network is named by a string");
            return None;
        };
        match self
            .state
            .resolve(kind::SERVICE_NETWORK, sn_name, "SERVICE_NETWORK")
        {
            Ok(id) => Some(id),
            Err(_) => {
                self.error(at, &format!("service network {sn_name} does not exist"));
                None
            }
        }
    }

    /// Target groups in a config's actions may be named by name; the API wants ids.
    fn resolve_action(&mut self, at: &str, action: &Value) -> Value {
        let mut action = action.clone();
        // `pointer_mut`, not indexing: indexing a missing key would insert a null `forward`.
        if let Some(groups) = action
            .pointer_mut("/forward/targetGroups")
            .and_then(Value::as_array_mut)
        {
            for (i, g) in groups.iter_mut().enumerate() {
                let Some(ident) = g["targetGroupIdentifier"].as_str().map(str::to_string) else {
                    continue;
                };
                match self
                    .state
                    .resolve(kind::TARGET_GROUP, &ident, "TARGET_GROUP")
                {
                    Ok(id) => g["targetGroupIdentifier"] = id.into(),
                    Err(_) => {
                        self.error(
                            &format!("{at}/forward/targetGroups/{i}/targetGroupIdentifier"),
                            &format!("target group {ident} does not exist"),
                        );
                    }
                }
            }
        }
        action
    }

    fn retag(&mut self, at: &str, k: &str, id: &str, item: &Value) {
        let Some(tags) = item.get("tags") else { return };
        let Some(arn) = self
            .state
            .get(k, id)
            .and_then(|r| r["arn"].as_str().map(str::to_string))
        else {
            return;
        };
        if self.state.get(kind::TAGS, &arn) != Some(tags) {
            self.op(at, "TagResource", json!({"resourceArn": arn, "tags": tags}));
        }
    }

    fn id_by_name(&self, k: &str, name: &str, scope: Option<(&str, &str)>) -> Option<String> {
        self.state
            .all(k)
            .find(|r| r["name"] == name && scope.is_none_or(|(sk, sv)| r[sk] == sv))
            .and_then(|r| r["id"].as_str().map(str::to_string))
    }

    /// Validates and runs one operation; errors are recorded against `at`.
    fn op(&mut self, at: &str, op: &str, input: Value) -> Option<Value> {
        let model = self.ctx.model;
        let Some(operation) = model.operation(op) else {
            self.error(at, &format!("unknown operation {op}"));
            return None;
        };
        let result = model
            .validate_input(operation, &input)
            .and_then(|()| lattice::write(self.state, self.ctx, op, &input));
        match result {
            Ok(out) => {
                self.changes += 1;
                Some(out)
            }
            Err(e) => {
                match e.extra.get("fieldList").and_then(Value::as_array) {
                    Some(fields) => {
                        for f in fields {
                            let name = f["name"].as_str().unwrap_or_default();
                            let msg = f["message"].as_str().unwrap_or_default().to_string();
                            self.errors.push(FieldError {
                                name: pointer(at, name),
                                message: msg,
                            });
                        }
                    }
                    None => self.error(at, &format!("{}: {}", e.code, e.message)),
                }
                None
            }
        }
    }

    fn error(&mut self, at: &str, message: &str) {
        self.errors.push(FieldError {
            name: if at.is_empty() {
                "/".into()
            } else {
                at.to_string()
            },
            message: message.to_string(),
        });
    }
}

/// `/services/0` + `config.healthCheck.port` (AWS's dotted, 1-based form) as a JSON pointer.
fn pointer(at: &str, field: &str) -> String {
    let mut p = at.to_string();
    for seg in field.split('.').filter(|s| !s.is_empty()) {
        p.push('/');
        match seg.parse::<usize>() {
            Ok(n) if n > 0 => p.push_str(&(n - 1).to_string()),
            _ => p.push_str(seg),
        }
    }
    p
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    v[key].as_array().into_iter().flatten().enumerate()
}

fn pick(v: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    for k in keys {
        if let Some(x) = v.get(*k).filter(|x| !x.is_null()) {
            out.insert((*k).to_string(), x.clone());
        }
    }
    Value::Object(out)
}

fn id_of(out: &Value) -> Option<String> {
    out["id"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_from_aws_field_paths() {
        assert_eq!(
            pointer("/services/0", "config.healthCheck.port"),
            "/services/0/config/healthCheck/port"
        );
        assert_eq!(pointer("/t/1", "targets.2.id"), "/t/1/targets/1/id");
    }

    #[tokio::test]
    async fn a_bad_file_reports_every_error_and_changes_nothing() {
        let c = Controller::in_memory(Default::default());
        let text = r#"{
            "targetGroups": [{"name": "ok-tg", "type": "IP", "config": {"port": 8080}}],
            "services": [
                {"name": "good", "listeners": [{"name": "web", "protocol": "HTTP", "port": 80,
                    "defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": "ok-tg"}]}}}]},
                {"name": "-Bad-", "listeners": []},
                {"name": "other", "listeners": [{"name": "web2", "protocol": "HTTP", "port": 70000,
                    "defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": "missing"}]}}}]}
            ]
        }"#;
        let err = apply_text(&c, text).await.unwrap_err();
        let names: Vec<&str> = err.extra["fieldList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"/services/1/name"), "{names:?}");
        assert!(names.contains(&"/services/2/listeners/0/port"), "{names:?}");
        assert!(names.contains(&"/services/2/listeners/0/defaultAction/forward/targetGroups/0/targetGroupIdentifier"), "{names:?}");
        assert!(
            c.state().kinds.values().all(|m| m.is_empty()),
            "nothing applied"
        );

        let good = r#"{"targetGroups": [{"name": "ok-tg", "type": "IP", "config": {"port": 8080},
            "targets": [{"id": "127.0.0.1"}]}],
            "services": [{"name": "good", "listeners": [{"name": "web", "protocol": "HTTP", "port": 80,
                "defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": "ok-tg"}]}}}]}]}"#;
        apply_text(&c, good).await.unwrap();
        apply_text(&c, good).await.unwrap();
        let st = c.state();
        assert_eq!(
            st.all(kind::SERVICE).count(),
            1,
            "applying twice creates nothing twice"
        );
        assert_eq!(st.all(kind::LISTENER).count(), 1);
        let tg = st.all(kind::TARGET_GROUP).next().unwrap();
        assert_eq!(tg["targets"], json!([{"id": "127.0.0.1", "port": 8080}]));
    }
    #[tokio::test]
    async fn wasm_target_groups_are_a_valid_type() {
        let c = Controller::in_memory(Default::default());
        let good = r#"{"targetGroups": [{"name": "fn-tg", "type": "WASM",
            "targets": [{"id": "hello"}, {"id": "arn:aws:lambda:us-east-1:000000000000:function:f:live"}]}]}"#;
        apply_text(&c, good).await.unwrap();
        let st = c.state();
        let tg = st.all(kind::TARGET_GROUP).next().unwrap();
        assert_eq!(tg["type"], "WASM");
        assert_eq!(tg["targets"].as_array().unwrap().len(), 2);
        let bad = r#"{"targetGroups": [{"name": "bad-tg", "type": "WASI"}]}"#;
        let err = apply_text(&c, bad).await.unwrap_err();
        assert!(format!("{err:?}").contains("WASM"), "{err:?}");
        let bad = r#"{"targetGroups": [{"name": "fn-tg", "type": "WASM", "targets": [{"id": "no/such name"}]}]}"#;
        assert!(apply_text(&c, bad).await.is_err());
    }

    #[tokio::test]
    async fn resource_gateways_nest_configurations_children_and_associations() {
        let c = Controller::in_memory(Default::default());
        let text = r#"{"serviceNetworks": [{"name": "data"}],
            "resourceGateways": [{"name": "local-gw", "resourceConfigurations": [
                {"name": "postgres", "type": "SINGLE", "portRanges": ["5432"], "serviceNetworks": ["data"],
                 "resourceConfigurationDefinition": {"ipResource": {"ipAddress": "127.0.0.1"}}},
                {"name": "group", "type": "GROUP", "portRanges": ["6000-6001"], "serviceNetworks": ["data"],
                 "children": [{"name": "replica-a", "resourceConfigurationDefinition": {"dnsResource": {"domainName": "a.internal"}}}]}]}]}"#;
        apply_text(&c, text).await.unwrap();
        let again = apply_text(&c, text).await.unwrap();
        assert_eq!(again["operations"], 0, "nothing left to do");
        let st = c.state();
        assert_eq!(st.all(kind::RESOURCE_CONFIGURATION).count(), 3);
        assert_eq!(st.all(kind::SN_RESOURCE_ASSOC).count(), 2);
        let group = st
            .all(kind::RESOURCE_CONFIGURATION)
            .find(|r| r["name"] == "group")
            .unwrap();
        let child = st
            .all(kind::RESOURCE_CONFIGURATION)
            .find(|r| r["name"] == "replica-a")
            .unwrap();
        assert_eq!(child["type"], "CHILD");
        assert_eq!(child["resourceConfigurationGroupId"], group["id"]);

        // A change is an update in place; an error anywhere changes nothing.
        let moved = text.replace(r#"["5432"]"#, r#"["5433"]"#);
        apply_text(&c, &moved).await.unwrap();
        let ports = |st: &State| {
            st.all(kind::RESOURCE_CONFIGURATION)
                .find(|r| r["name"] == "postgres")
                .unwrap()["portRanges"]
                .clone()
        };
        assert_eq!(ports(&c.state()), json!(["5433"]));
        let bad = moved
            .replace(r#"["5433"]"#, r#"["5434"]"#)
            .replace(r#""a.internal""#, r#""-bad-""#);
        let err = apply_text(&c, &bad).await.unwrap_err();
        let names: Vec<&str> = err.extra["fieldList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["/resourceGateways/0/resourceConfigurations/1/children/0/resourceConfigurationDefinition/dnsResource/domainName"]
        );
        assert_eq!(ports(&c.state()), json!(["5433"]), "unchanged");
    }
}
