//! Resource gateways: where a network's private resources (databases, IPs, HTTPS services) are
//! reached from. In Trellis a gateway is this process; its VPC, subnets and security groups are
//! kept as given, for tools that read them back.

use serde_json::{json, Value};
use trellis_core::id::new_id;
use trellis_core::ApiError;

use super::{
    ensure_unique_name, kind, now, ordered, paginate, project, s, set_tags, touch, Ctx, State,
};

pub const TYPE: &str = "RESOURCE_GATEWAY";

pub fn create(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let name = s(input, "name").unwrap_or_default();
    ensure_unique_name(state, kind::RESOURCE_GATEWAY, TYPE, name, None, None)?;
    let id = new_id("rgw");
    let arn = ctx.arn.arn("vpc-lattice", &format!("resourcegateway/{id}"));
    let at = now();
    let vpc = input.get("vpcIdentifier").cloned().unwrap_or(Value::Null);
    let record = json!({
        "id": id,
        "arn": arn,
        "name": name,
        "status": "ACTIVE",
        "vpcId": vpc,
        "vpcIdentifier": vpc,
        "subnetIds": input.get("subnetIds").cloned().unwrap_or_else(|| json!([])),
        "securityGroupIds": input.get("securityGroupIds").cloned().unwrap_or_else(|| json!([])),
        "ipAddressType": s(input, "ipAddressType").unwrap_or("IPV4"),
        "ipv4AddressesPerEni": input.get("ipv4AddressesPerEni").cloned().unwrap_or_else(|| json!(16)),
        "resourceConfigDnsResolution": input.get("resourceConfigDnsResolution"),
        "serviceManaged": false,
        "createdAt": at,
        "lastUpdatedAt": at,
    });
    set_tags(state, &arn, input);
    state.put(kind::RESOURCE_GATEWAY, &id, record.clone());
    Ok(project(ctx.model, "CreateResourceGatewayResponse", &record))
}

pub fn get(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let record = state.find(
        kind::RESOURCE_GATEWAY,
        s(input, "resourceGatewayIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    Ok(project(ctx.model, "GetResourceGatewayResponse", record))
}

pub fn list(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let items = ordered(state, kind::RESOURCE_GATEWAY)
        .into_iter()
        .map(|r| project(ctx.model, "ResourceGatewaySummary", r))
        .collect();
    paginate(items, input)
}

pub fn update(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::RESOURCE_GATEWAY,
        s(input, "resourceGatewayIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    let record = state
        .get_mut(kind::RESOURCE_GATEWAY, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    if let Some(sg) = input.get("securityGroupIds") {
        record["securityGroupIds"] = sg.clone();
    }
    touch(record);
    Ok(project(ctx.model, "UpdateResourceGatewayResponse", record))
}

pub fn delete(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::RESOURCE_GATEWAY,
        s(input, "resourceGatewayIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    if let Some(c) = state
        .all(kind::RESOURCE_CONFIGURATION)
        .find(|c| c["resourceGatewayId"] == id.as_str())
    {
        return Err(ApiError::conflict(
            TYPE,
            &id,
            format!(
                "resource gateway {id} still has resource configuration {}; delete it first",
                c["id"].as_str().unwrap_or_default()
            ),
        ));
    }
    let record = state
        .remove(kind::RESOURCE_GATEWAY, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    if let Some(arn) = record["arn"].as_str() {
        state.remove(kind::TAGS, arn);
    }
    Ok(json!({
        "id": record["id"],
        "arn": record["arn"],
        "name": record["name"],
        "status": "DELETE_IN_PROGRESS",
    }))
}
