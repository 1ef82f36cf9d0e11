//! Auth policies (on service networks and services) and resource policies, stored as given.
//! Enforcement belongs to the data plane's auth phase.

use serde_json::{json, Value};
use trellis_core::ApiError;

use super::{kind, s, State};

/// The ARN of the service network or service an identifier (id or ARN) names.
fn target_arn(state: &State, ident: &str) -> Result<String, ApiError> {
    let id = trellis_core::id::id_of(ident);
    for k in [kind::SERVICE_NETWORK, kind::SERVICE] {
        if let Some(r) = state.get(k, id) {
            return Ok(r["arn"].as_str().unwrap_or_default().to_string());
        }
    }
    Err(ApiError::not_found("RESOURCE", ident))
}

fn check_policy(policy: &str) -> Result<(), ApiError> {
    match serde_json::from_str::<Value>(policy) {
        Ok(Value::Object(_)) => Ok(()),
        _ => Err(ApiError::invalid_field(
            "policy",
            "policy must be a JSON object",
        )),
    }
}

pub fn put_auth(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let arn = target_arn(state, s(input, "resourceIdentifier").unwrap_or_default())?;
    let policy = s(input, "policy").unwrap_or_default();
    check_policy(policy)?;
    state.put(
        kind::AUTH_POLICY,
        &arn,
        json!({"arn": arn, "policy": policy}),
    );
    let auth_type = state
        .all(kind::SERVICE)
        .chain(state.all(kind::SERVICE_NETWORK))
        .find(|r| r["arn"] == arn.as_str())
        .map(|r| r["authType"].clone())
        .unwrap_or(Value::Null);
    let status = if auth_type == "AWS_IAM" {
        "Active"
    } else {
        "Inactive"
    };
    Ok(json!({"policy": policy, "state": status}))
}

pub fn get_auth(state: &State, input: &Value) -> Result<Value, ApiError> {
    let arn = target_arn(state, s(input, "resourceIdentifier").unwrap_or_default())?;
    let p = state
        .get(kind::AUTH_POLICY, &arn)
        .ok_or_else(|| ApiError::not_found("AUTH_POLICY", &arn))?;
    Ok(json!({"policy": p["policy"], "state": "Active"}))
}

pub fn delete_auth(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let arn = target_arn(state, s(input, "resourceIdentifier").unwrap_or_default())?;
    state.remove(kind::AUTH_POLICY, &arn);
    Ok(json!({}))
}

pub fn put_resource(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let arn = s(input, "resourceArn").unwrap_or_default().to_string();
    let policy = s(input, "policy").unwrap_or_default();
    check_policy(policy)?;
    state.put(
        kind::RESOURCE_POLICY,
        &arn,
        json!({"arn": arn, "policy": policy}),
    );
    Ok(json!({}))
}

pub fn get_resource(state: &State, input: &Value) -> Result<Value, ApiError> {
    let arn = s(input, "resourceArn").unwrap_or_default();
    let p = state
        .get(kind::RESOURCE_POLICY, arn)
        .ok_or_else(|| ApiError::not_found("RESOURCE_POLICY", arn))?;
    Ok(json!({"policy": p["policy"]}))
}

pub fn delete_resource(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let arn = s(input, "resourceArn").unwrap_or_default();
    state.remove(kind::RESOURCE_POLICY, arn);
    Ok(json!({}))
}
