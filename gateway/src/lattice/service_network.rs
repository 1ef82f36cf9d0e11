//! Service networks: the boundary that groups services and resource configurations.

use serde_json::{json, Value};
use trellis_core::id::new_id;
use trellis_core::ApiError;

use super::{
    ensure_unique_name, kind, now, ordered, paginate, project, s, set_tags, touch, Ctx, State,
};

const TYPE: &str = "SERVICE_NETWORK";

pub fn create(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let name = s(input, "name").unwrap_or_default();
    ensure_unique_name(state, kind::SERVICE_NETWORK, TYPE, name, None, None)?;
    let id = new_id("sn");
    let arn = ctx.arn.arn("vpc-lattice", &format!("servicenetwork/{id}"));
    let at = now();
    let mut record = json!({
        "id": id,
        "arn": arn,
        "name": name,
        "authType": s(input, "authType").unwrap_or("NONE"),
        "createdAt": at,
        "lastUpdatedAt": at,
    });
    if let Some(sc) = input.get("sharingConfig") {
        record["sharingConfig"] = sc.clone();
    }
    set_tags(state, &arn, input);
    state.put(kind::SERVICE_NETWORK, &id, record.clone());
    Ok(project(ctx.model, "CreateServiceNetworkResponse", &record))
}

pub fn get(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let record = state.find(
        kind::SERVICE_NETWORK,
        s(input, "serviceNetworkIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    let full = with_counts(state, record);
    Ok(project(ctx.model, "GetServiceNetworkResponse", &full))
}

pub fn list(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let items = ordered(state, kind::SERVICE_NETWORK)
        .into_iter()
        .map(|r| project(ctx.model, "ServiceNetworkSummary", &with_counts(state, r)))
        .collect();
    paginate(items, input)
}

pub fn update(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::SERVICE_NETWORK,
        s(input, "serviceNetworkIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    let record = state
        .get_mut(kind::SERVICE_NETWORK, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    if let Some(a) = s(input, "authType") {
        record["authType"] = a.into();
    }
    touch(record);
    Ok(project(ctx.model, "UpdateServiceNetworkResponse", record))
}

pub fn delete(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::SERVICE_NETWORK,
        s(input, "serviceNetworkIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    let in_use = state
        .all(kind::SN_SERVICE_ASSOC)
        .chain(state.all(kind::SN_VPC_ASSOC))
        .chain(state.all(kind::SN_RESOURCE_ASSOC))
        .any(|a| a["serviceNetworkId"] == id.as_str());
    if in_use {
        return Err(ApiError::conflict(
            TYPE,
            &id,
            format!("service network {id} still has service, VPC or resource associations; delete them first"),
        ));
    }
    if let Some(r) = state.remove(kind::SERVICE_NETWORK, &id) {
        if let Some(arn) = r["arn"].as_str() {
            state.remove(kind::TAGS, arn);
            state.remove(kind::AUTH_POLICY, arn);
            state.remove(kind::RESOURCE_POLICY, arn);
        }
    }
    Ok(json!({}))
}

fn with_counts(state: &State, record: &Value) -> Value {
    let id = &record["id"];
    let services = state
        .all(kind::SN_SERVICE_ASSOC)
        .filter(|a| &a["serviceNetworkId"] == id)
        .count();
    let vpcs = state
        .all(kind::SN_VPC_ASSOC)
        .filter(|a| &a["serviceNetworkId"] == id)
        .count();
    let mut full = record.clone();
    full["numberOfAssociatedServices"] = services.into();
    full["numberOfAssociatedVPCs"] = vpcs.into();
    let resources = state
        .all(kind::SN_RESOURCE_ASSOC)
        .filter(|a| &a["serviceNetworkId"] == id)
        .count();
    full["numberOfAssociatedResourceConfigurations"] = resources.into();
    full
}
