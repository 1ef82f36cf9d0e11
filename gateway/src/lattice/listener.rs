//! Listeners: a protocol and port on a service, with a default action.

use serde_json::{json, Value};
use trellis_core::id::new_id;
use trellis_core::ApiError;

use super::{
    ensure_unique_name, kind, now, ordered, paginate, project, s, set_tags, touch, Ctx, State,
};

const TYPE: &str = "LISTENER";

pub fn create(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let service = state
        .find(
            kind::SERVICE,
            s(input, "serviceIdentifier").unwrap_or_default(),
            "SERVICE",
        )?
        .clone();
    let service_id = service["id"].as_str().unwrap_or_default();
    let name = s(input, "name").unwrap_or_default();
    ensure_unique_name(
        state,
        kind::LISTENER,
        TYPE,
        name,
        Some(("serviceId", service_id)),
        None,
    )?;
    let protocol = s(input, "protocol").unwrap_or("HTTP");
    let port = input
        .get("port")
        .and_then(Value::as_u64)
        .unwrap_or(if protocol == "HTTP" { 80 } else { 443 });
    if let Some(other) = state
        .all(kind::LISTENER)
        .find(|l| l["serviceId"] == service_id && l["port"] == port)
    {
        return Err(ApiError::conflict(
            TYPE,
            other["id"].as_str().unwrap_or(""),
            format!("service {service_id} already has a listener on port {port}"),
        ));
    }
    let action = check_action(state, input.get("defaultAction"), "defaultAction")?;
    let id = new_id("listener");
    let arn = format!("{}/listener/{id}", service["arn"].as_str().unwrap_or(""));
    let at = now();
    let record = json!({
        "id": id,
        "arn": arn,
        "name": name,
        "serviceArn": service["arn"],
        "serviceId": service_id,
        "protocol": protocol,
        "port": port,
        "defaultAction": action,
        "createdAt": at,
        "lastUpdatedAt": at,
    });
    set_tags(state, &arn, input);
    state.put(kind::LISTENER, &id, record.clone());
    Ok(project(ctx.model, "CreateListenerResponse", &record))
}

/// The listener named by `listenerIdentifier` within `serviceIdentifier`.
pub fn find<'a>(state: &'a State, input: &Value) -> Result<&'a Value, ApiError> {
    let service = state.find(
        kind::SERVICE,
        s(input, "serviceIdentifier").unwrap_or_default(),
        "SERVICE",
    )?;
    let ident = s(input, "listenerIdentifier").unwrap_or_default();
    let listener = state.find(kind::LISTENER, ident, TYPE)?;
    if listener["serviceId"] != service["id"] {
        return Err(ApiError::not_found(TYPE, ident));
    }
    Ok(listener)
}

pub fn get(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    Ok(project(
        ctx.model,
        "GetListenerResponse",
        find(state, input)?,
    ))
}

pub fn list(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let service = state.find(
        kind::SERVICE,
        s(input, "serviceIdentifier").unwrap_or_default(),
        "SERVICE",
    )?;
    let items = ordered(state, kind::LISTENER)
        .into_iter()
        .filter(|l| l["serviceId"] == service["id"])
        .map(|r| project(ctx.model, "ListenerSummary", r))
        .collect();
    paginate(items, input)
}

pub fn update(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = find(state, input)?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let action = check_action(state, input.get("defaultAction"), "defaultAction")?;
    let record = state
        .get_mut(kind::LISTENER, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    record["defaultAction"] = action;
    touch(record);
    Ok(project(ctx.model, "UpdateListenerResponse", record))
}

pub fn delete(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let id = find(state, input)?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    remove_with_rules(state, &id);
    Ok(json!({}))
}

pub(crate) fn remove_with_rules(state: &mut State, listener_id: &str) {
    let rules: Vec<String> = state
        .all(kind::RULE)
        .filter(|r| r["listenerId"] == listener_id)
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    for r in rules {
        if let Some(rec) = state.remove(kind::RULE, &r) {
            if let Some(arn) = rec["arn"].as_str() {
                state.remove(kind::TAGS, arn);
            }
        }
    }
    if let Some(rec) = state.remove(kind::LISTENER, listener_id) {
        if let Some(arn) = rec["arn"].as_str() {
            state.remove(kind::TAGS, arn);
        }
    }
}

/// Checks a rule action (forward or fixed response) and returns it with target groups named by
/// id and every weight filled in. `field` names it in errors.
pub(crate) fn check_action(
    state: &State,
    action: Option<&Value>,
    field: &str,
) -> Result<Value, ApiError> {
    let Some(action) = action else {
        return Err(ApiError::invalid_field(field, "Member must not be null"));
    };
    if let Some(fixed) = action.get("fixedResponse") {
        return Ok(json!({ "fixedResponse": fixed }));
    }
    let Some(groups) = action["forward"]["targetGroups"].as_array() else {
        return Err(ApiError::invalid_field(
            field,
            "action must have forward or fixedResponse",
        ));
    };
    if groups.is_empty() {
        return Err(ApiError::invalid_field(
            format!("{field}.forward.targetGroups"),
            "Member must have length greater than or equal to 1",
        ));
    }
    let single = groups.len() == 1;
    let mut out = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let ident = g["targetGroupIdentifier"].as_str().unwrap_or_default();
        let id = state
            .resolve(kind::TARGET_GROUP, ident, "TARGET_GROUP")
            .map_err(|_| {
                ApiError::invalid_field(
                    format!(
                        "{field}.forward.targetGroups.{}.targetGroupIdentifier",
                        i + 1
                    ),
                    format!("target group {ident} does not exist"),
                )
            })?;
        let weight = g["weight"].as_u64().unwrap_or(if single { 100 } else { 1 });
        out.push(json!({"targetGroupIdentifier": id, "weight": weight}));
    }
    if out.iter().all(|g| g["weight"] == 0) {
        return Err(ApiError::invalid_field(
            format!("{field}.forward.targetGroups"),
            "at least one target group must have a weight above 0",
        ));
    }
    Ok(json!({ "forward": { "targetGroups": out } }))
}
