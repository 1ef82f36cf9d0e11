//! Tags on any Lattice resource, by ARN.

use serde_json::{json, Map, Value};
use trellis_core::ApiError;

use super::{kind, s, State};

/// The resource kind an ARN names, from its resource part (`service/…`, `targetgroup/…`).
fn exists(state: &State, arn: &str) -> bool {
    kind::ALL
        .iter()
        .filter(|k| ![kind::TAGS, kind::IDEMPOTENCY].contains(k))
        .any(|k| state.all(k).any(|r| r["arn"] == arn))
}

fn check(state: &State, arn: &str) -> Result<(), ApiError> {
    if exists(state, arn) {
        Ok(())
    } else {
        Err(ApiError::not_found("RESOURCE", arn))
    }
}

pub fn list(state: &State, input: &Value) -> Result<Value, ApiError> {
    let arn = s(input, "resourceArn").unwrap_or_default();
    check(state, arn)?;
    let tags = state
        .get(kind::TAGS, arn)
        .cloned()
        .unwrap_or_else(|| json!({}));
    Ok(json!({ "tags": tags }))
}

pub fn tag(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let arn = s(input, "resourceArn").unwrap_or_default().to_string();
    check(state, &arn)?;
    let mut tags = match state.get(kind::TAGS, &arn) {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if let Some(Value::Object(new)) = input.get("tags") {
        for (k, v) in new {
            tags.insert(k.clone(), v.clone());
        }
    }
    if tags.len() > 50 {
        return Err(ApiError::invalid_field(
            "tags",
            "a resource can have at most 50 tags",
        ));
    }
    state.put(kind::TAGS, &arn, Value::Object(tags));
    Ok(json!({}))
}

pub fn untag(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let arn = s(input, "resourceArn").unwrap_or_default().to_string();
    check(state, &arn)?;
    if let Some(Value::Object(tags)) = state.get_mut(kind::TAGS, &arn) {
        for k in input["tagKeys"].as_array().into_iter().flatten() {
            if let Some(k) = k.as_str() {
                tags.remove(k);
            }
        }
    }
    Ok(json!({}))
}
