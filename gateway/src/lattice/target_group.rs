//! Target groups and their registered targets.

use std::net::IpAddr;

use serde_json::{json, Value};
use trellis_core::id::new_id;
use trellis_core::ApiError;

use super::{
    ensure_unique_name, kind, now, ordered, paginate, project, s, set_tags, touch, Ctx, State,
};

const TYPE: &str = "TARGET_GROUP";

/// The health-check settings AWS applies when a field is left out.
pub fn health_check_defaults(protocol: &str, given: Option<&Value>) -> Value {
    let mut hc = json!({
        "enabled": true,
        "protocol": if protocol == "HTTPS" { "HTTPS" } else { "HTTP" },
        "protocolVersion": "HTTP1",
        "path": "/",
        "healthCheckIntervalSeconds": 30,
        "healthCheckTimeoutSeconds": 5,
        "healthyThresholdCount": 5,
        "unhealthyThresholdCount": 2,
        "matcher": {"httpCode": "200"},
    });
    if let Some(Value::Object(g)) = given {
        for (k, v) in g {
            if !v.is_null() {
                hc[k] = v.clone();
            }
        }
    }
    hc
}

pub fn create(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let name = s(input, "name").unwrap_or_default();
    ensure_unique_name(state, kind::TARGET_GROUP, TYPE, name, None, None)?;
    let tg_type = s(input, "type").unwrap_or("IP");
    let config = match tg_type {
        "IP" | "INSTANCE" => {
            let Some(c) = input.get("config").filter(|c| c.is_object()) else {
                return Err(ApiError::invalid_field(
                    "config",
                    format!("config is required for target groups of type {tg_type}"),
                ));
            };
            let protocol = c["protocol"].as_str().unwrap_or("HTTP");
            let mut config = c.clone();
            config["protocol"] = protocol.into();
            if config["port"].is_null() {
                config["port"] = (if protocol == "HTTPS" { 443 } else { 80 }).into();
            }
            if config["protocolVersion"].is_null() {
                config["protocolVersion"] = "HTTP1".into();
            }
            if tg_type == "IP" && config["ipAddressType"].is_null() {
                config["ipAddressType"] = "IPV4".into();
            }
            config["healthCheck"] = health_check_defaults(protocol, c.get("healthCheck"));
            config
        }
        // WASM (a Trellis extension) takes functions as LAMBDA does; the event version is what
        // a preview-1 module function in the group receives.
        "LAMBDA" | "WASM" => {
            let mut config = input.get("config").cloned().unwrap_or_else(|| json!({}));
            if config["lambdaEventStructureVersion"].is_null() {
                config["lambdaEventStructureVersion"] = "V1".into();
            }
            config
        }
        _ => input.get("config").cloned().unwrap_or_else(|| json!({})),
    };
    let id = new_id("tg");
    let arn = ctx.arn.arn("vpc-lattice", &format!("targetgroup/{id}"));
    let at = now();
    let record = json!({
        "id": id,
        "arn": arn,
        "name": name,
        "type": tg_type,
        "config": config,
        "status": "ACTIVE",
        "createdAt": at,
        "lastUpdatedAt": at,
        "targets": [],
    });
    set_tags(state, &arn, input);
    state.put(kind::TARGET_GROUP, &id, record.clone());
    Ok(project(ctx.model, "CreateTargetGroupResponse", &record))
}

/// The ARNs of the services whose listeners or rules forward to target group `id`.
fn service_arns(state: &State, id: &str) -> Vec<Value> {
    let forwards_here = |action: &Value| {
        action["forward"]["targetGroups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|t| t["targetGroupIdentifier"] == id))
    };
    let mut services: Vec<String> = Vec::new();
    for l in state.all(kind::LISTENER) {
        if forwards_here(&l["defaultAction"]) {
            services.push(l["serviceArn"].as_str().unwrap_or_default().to_string());
        }
    }
    for r in state.all(kind::RULE) {
        if forwards_here(&r["action"]) {
            if let Some(svc) = state.get(kind::SERVICE, r["serviceId"].as_str().unwrap_or("")) {
                services.push(svc["arn"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    services.sort();
    services.dedup();
    services.into_iter().map(Value::String).collect()
}

fn with_services(state: &State, record: &Value) -> Value {
    let mut full = record.clone();
    let arns = service_arns(state, record["id"].as_str().unwrap_or(""));
    if !arns.is_empty() {
        full["serviceArns"] = Value::Array(arns);
    }
    full
}

pub fn get(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let record = state.find(
        kind::TARGET_GROUP,
        s(input, "targetGroupIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    Ok(project(
        ctx.model,
        "GetTargetGroupResponse",
        &with_services(state, record),
    ))
}

pub fn list(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let items = ordered(state, kind::TARGET_GROUP)
        .into_iter()
        .filter(|r| s(input, "targetGroupType").is_none_or(|t| r["type"] == t))
        .map(|r| {
            let mut full = with_services(state, r);
            for k in ["port", "protocol", "ipAddressType", "vpcIdentifier"] {
                full[k] = r["config"][k].clone();
            }
            full["lambdaEventStructureVersion"] =
                r["config"]["lambdaEventStructureVersion"].clone();
            project(ctx.model, "TargetGroupSummary", &full)
        })
        .collect();
    paginate(items, input)
}

pub fn update(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::TARGET_GROUP,
        s(input, "targetGroupIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    let record = state
        .get_mut(kind::TARGET_GROUP, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    let protocol = record["config"]["protocol"]
        .as_str()
        .unwrap_or("HTTP")
        .to_string();
    let current = record["config"]["healthCheck"].clone();
    let merged = health_check_defaults(&protocol, Some(&current));
    record["config"]["healthCheck"] = health_check_defaults(&protocol, Some(&merged));
    if let Some(Value::Object(given)) = input.get("healthCheck") {
        for (k, v) in given {
            if !v.is_null() {
                record["config"]["healthCheck"][k] = v.clone();
            }
        }
    }
    touch(record);
    Ok(project(ctx.model, "UpdateTargetGroupResponse", record))
}

pub fn delete(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::TARGET_GROUP,
        s(input, "targetGroupIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    if !service_arns(state, &id).is_empty() {
        return Err(ApiError::conflict(
            TYPE,
            &id,
            format!("target group {id} is used by a listener or rule; remove it from them first"),
        ));
    }
    let record = state
        .remove(kind::TARGET_GROUP, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    if let Some(arn) = record["arn"].as_str() {
        state.remove(kind::TAGS, arn);
    }
    Ok(json!({"id": record["id"], "arn": record["arn"], "status": "DELETE_IN_PROGRESS"}))
}

pub fn register(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::TARGET_GROUP,
        s(input, "targetGroupIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    let record = state
        .get_mut(kind::TARGET_GROUP, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    let tg_type = record["type"].as_str().unwrap_or("IP").to_string();
    let default_port = record["config"]["port"].as_u64();
    let mut targets = record["targets"].as_array().cloned().unwrap_or_default();
    let mut successful = Vec::new();
    let mut unsuccessful = Vec::new();
    for t in input["targets"].as_array().into_iter().flatten() {
        let tid = t["id"].as_str().unwrap_or_default();
        let port = t["port"].as_u64().or(default_port);
        let problem = match tg_type.as_str() {
            "IP" if tid.parse::<IpAddr>().is_err() => {
                Some(format!("target id {tid} is not an IP address"))
            }
            "IP" | "INSTANCE" if port.is_none() => Some("target port is required".to_string()),
            "WASM" if !is_function_target(tid) => Some(format!(
                "target id {tid} is not a function name or function ARN"
            )),
            _ => None,
        };
        if let Some(message) = problem {
            unsuccessful.push(json!({"id": tid, "port": t["port"], "failureCode": "InvalidTarget", "failureMessage": message}));
            continue;
        }
        let entry = match port {
            Some(p) => json!({"id": tid, "port": p}),
            None => json!({"id": tid}),
        };
        if !targets.contains(&entry) {
            targets.push(entry.clone());
        }
        successful.push(entry);
    }
    record["targets"] = Value::Array(targets);
    touch(record);
    Ok(json!({"successful": successful, "unsuccessful": unsuccessful}))
}

/// A function name (`my-function`) or ARN (`arn:aws:lambda:…:function:my-function[:qualifier]`).
fn is_function_target(id: &str) -> bool {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    match id.strip_prefix("arn:") {
        None => name_ok(id),
        Some(rest) => {
            let parts: Vec<&str> = rest.split(':').collect();
            matches!(parts.len(), 6 | 7)
                && parts[1] == "lambda"
                && parts[4] == "function"
                && name_ok(parts[5])
        }
    }
}

pub fn deregister(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::TARGET_GROUP,
        s(input, "targetGroupIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    let record = state
        .get_mut(kind::TARGET_GROUP, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    let default_port = record["config"]["port"].as_u64();
    let mut targets = record["targets"].as_array().cloned().unwrap_or_default();
    let mut successful = Vec::new();
    let mut unsuccessful = Vec::new();
    for t in input["targets"].as_array().into_iter().flatten() {
        let tid = t["id"].as_str().unwrap_or_default();
        let port = t["port"].as_u64().or(default_port);
        let before = targets.len();
        targets.retain(|e| !(e["id"] == tid && e["port"].as_u64() == port));
        if targets.len() < before {
            successful.push(json!({"id": tid, "port": port}));
        } else {
            unsuccessful.push(json!({"id": tid, "port": port, "failureCode": "TargetNotFound", "failureMessage": format!("target {tid} is not registered")}));
        }
    }
    record["targets"] = Value::Array(targets);
    touch(record);
    Ok(json!({"successful": successful, "unsuccessful": unsuccessful}))
}

pub fn list_targets(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let record = state.find(
        kind::TARGET_GROUP,
        s(input, "targetGroupIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    let tg_id = record["id"].as_str().unwrap_or_default();
    let wanted = input["targets"].as_array();
    let items = record["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| wanted.is_none_or(|w| w.iter().any(|x| x["id"] == t["id"])))
        .map(|t| {
            let port = t["port"].as_u64().unwrap_or(0) as u16;
            let (status, reason) = (ctx.health)(tg_id, t["id"].as_str().unwrap_or(""), port);
            let mut item = json!({"id": t["id"], "port": t["port"], "status": status});
            if let Some(r) = reason {
                item["reasonCode"] = r.into();
            }
            item
        })
        .collect();
    paginate(items, input)
}
