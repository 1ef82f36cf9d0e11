//! Listener rules: a priority, one HTTP match and an action.

use serde_json::{json, Value};
use trellis_core::id::new_id;
use trellis_core::ApiError;

use super::listener::{self, check_action};
use super::{
    ensure_unique_name, kind, now, ordered, paginate, project, s, set_tags, touch, Ctx, State,
};

const TYPE: &str = "RULE";

pub fn create(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let l = listener::find(state, input)?.clone();
    let listener_id = l["id"].as_str().unwrap_or_default();
    let name = s(input, "name").unwrap_or_default();
    ensure_unique_name(
        state,
        kind::RULE,
        TYPE,
        name,
        Some(("listenerId", listener_id)),
        None,
    )?;
    let priority = input["priority"].as_u64().unwrap_or(0);
    ensure_priority_free(state, listener_id, priority, None)?;
    check_match(&input["match"], "match")?;
    let action = check_action(state, input.get("action"), "action")?;
    let id = new_id("rule");
    let arn = format!("{}/rule/{id}", l["arn"].as_str().unwrap_or(""));
    let at = now();
    let record = json!({
        "id": id,
        "arn": arn,
        "name": name,
        "listenerId": listener_id,
        "serviceId": l["serviceId"],
        "isDefault": false,
        "match": input["match"],
        "priority": priority,
        "action": action,
        "createdAt": at,
        "lastUpdatedAt": at,
    });
    set_tags(state, &arn, input);
    state.put(kind::RULE, &id, record.clone());
    Ok(project(ctx.model, "CreateRuleResponse", &record))
}

fn find<'a>(state: &'a State, input: &Value, ident: &str) -> Result<&'a Value, ApiError> {
    let l = listener::find(state, input)?;
    let rule = state.find(kind::RULE, ident, TYPE)?;
    if rule["listenerId"] != l["id"] {
        return Err(ApiError::not_found(TYPE, ident));
    }
    Ok(rule)
}

pub fn get(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let rule = find(state, input, s(input, "ruleIdentifier").unwrap_or_default())?;
    Ok(project(ctx.model, "GetRuleResponse", rule))
}

pub fn list(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let l = listener::find(state, input)?;
    let mut rules: Vec<&Value> = ordered(state, kind::RULE)
        .into_iter()
        .filter(|r| r["listenerId"] == l["id"])
        .collect();
    rules.sort_by_key(|r| r["priority"].as_u64().unwrap_or(0));
    let items = rules
        .into_iter()
        .map(|r| project(ctx.model, "RuleSummary", r))
        .collect();
    paginate(items, input)
}

pub fn update(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let ident = s(input, "ruleIdentifier").unwrap_or_default().to_string();
    let record = apply_update(state, input, &ident, input, "")?;
    Ok(project(ctx.model, "UpdateRuleResponse", &record))
}

/// Applies one rule update (from UpdateRule or one entry of BatchUpdateRule).
fn apply_update(
    state: &mut State,
    scope: &Value,
    ident: &str,
    update: &Value,
    field: &str,
) -> Result<Value, ApiError> {
    let rule = find(state, scope, ident)?.clone();
    let id = rule["id"].as_str().unwrap_or_default().to_string();
    let listener_id = rule["listenerId"].as_str().unwrap_or_default().to_string();
    let mut next = rule;
    if let Some(p) = update.get("priority").and_then(Value::as_u64) {
        ensure_priority_free(state, &listener_id, p, Some(&id))?;
        next["priority"] = p.into();
    }
    if let Some(m) = update.get("match").filter(|m| !m.is_null()) {
        check_match(m, &format!("{field}match"))?;
        next["match"] = m.clone();
    }
    if let Some(a) = update.get("action").filter(|a| !a.is_null()) {
        next["action"] = check_action(state, Some(a), &format!("{field}action"))?;
    }
    touch(&mut next);
    state.put(kind::RULE, &id, next.clone());
    Ok(next)
}

pub fn batch_update(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    listener::find(state, input)?;
    let mut successful = Vec::new();
    let mut unsuccessful = Vec::new();
    for (i, u) in input["rules"].as_array().into_iter().flatten().enumerate() {
        let ident = u["ruleIdentifier"].as_str().unwrap_or_default();
        // Each entry succeeds or fails alone, as AWS reports them.
        let mut trial = state.clone();
        match apply_update(&mut trial, input, ident, u, &format!("rules.{}.", i + 1)) {
            Ok(rec) => {
                *state = trial;
                successful.push(project(ctx.model, "RuleUpdateSuccess", &rec));
            }
            Err(e) => unsuccessful.push(json!({
                "ruleIdentifier": ident,
                "failureCode": e.code,
                "failureMessage": e.message,
            })),
        }
    }
    Ok(json!({"successful": successful, "unsuccessful": unsuccessful}))
}

pub fn delete(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let rule = find(state, input, s(input, "ruleIdentifier").unwrap_or_default())?;
    let id = rule["id"].as_str().unwrap_or_default().to_string();
    if let Some(rec) = state.remove(kind::RULE, &id) {
        if let Some(arn) = rec["arn"].as_str() {
            state.remove(kind::TAGS, arn);
        }
    }
    Ok(json!({}))
}

fn ensure_priority_free(
    state: &State,
    listener_id: &str,
    priority: u64,
    except: Option<&str>,
) -> Result<(), ApiError> {
    match state.all(kind::RULE).find(|r| {
        r["listenerId"] == listener_id
            && r["priority"] == priority
            && except.is_none_or(|id| r["id"] != id)
    }) {
        Some(r) => Err(ApiError::conflict(
            TYPE,
            r["id"].as_str().unwrap_or(""),
            format!("listener {listener_id} already has a rule with priority {priority}"),
        )),
        None => Ok(()),
    }
}

/// A rule must match on something: a method, a path or at least one header.
fn check_match(m: &Value, field: &str) -> Result<(), ApiError> {
    let http = &m["httpMatch"];
    let has_headers = http["headerMatches"]
        .as_array()
        .is_some_and(|h| !h.is_empty());
    if http["method"].is_null() && http["pathMatch"].is_null() && !has_headers {
        return Err(ApiError::invalid_field(
            format!("{field}.httpMatch"),
            "a rule match needs a method, a path match or a header match",
        ));
    }
    if let Some(p) = http["pathMatch"]["match"]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
    {
        if !p.starts_with('/') {
            return Err(ApiError::invalid_field(
                format!("{field}.httpMatch.pathMatch.match"),
                format!("path {p} must start with /"),
            ));
        }
    }
    Ok(())
}
