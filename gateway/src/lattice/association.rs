//! Service-network associations: of services (which networks a service joins) and of client
//! networks ("VPCs": which clients reach a network's services).

use serde_json::{json, Value};
use trellis_core::id::new_id;
use trellis_core::ApiError;

use super::{kind, now, ordered, paginate, project, s, set_tags, Ctx, State};

pub fn create_service(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let svc = state
        .find(
            kind::SERVICE,
            s(input, "serviceIdentifier").unwrap_or_default(),
            "SERVICE",
        )?
        .clone();
    let sn = state
        .find(
            kind::SERVICE_NETWORK,
            s(input, "serviceNetworkIdentifier").unwrap_or_default(),
            "SERVICE_NETWORK",
        )?
        .clone();
    if let Some(a) = state
        .all(kind::SN_SERVICE_ASSOC)
        .find(|a| a["serviceId"] == svc["id"] && a["serviceNetworkId"] == sn["id"])
    {
        return Err(ApiError::conflict(
            "SERVICE_NETWORK_SERVICE_ASSOCIATION",
            a["id"].as_str().unwrap_or(""),
            "the service is already associated with this service network",
        ));
    }
    let id = new_id("snsa");
    let arn = ctx.arn.arn(
        "vpc-lattice",
        &format!("servicenetworkserviceassociation/{id}"),
    );
    let record = json!({
        "id": id,
        "arn": arn,
        "status": "ACTIVE",
        "createdBy": ctx.arn.account,
        "createdAt": now(),
        "serviceId": svc["id"],
        "serviceName": svc["name"],
        "serviceArn": svc["arn"],
        "serviceNetworkId": sn["id"],
        "serviceNetworkName": sn["name"],
        "serviceNetworkArn": sn["arn"],
        "dnsEntry": svc["dnsEntry"],
        "customDomainName": svc["customDomainName"],
    });
    set_tags(state, &arn, input);
    state.put(kind::SN_SERVICE_ASSOC, &id, record.clone());
    Ok(project(
        ctx.model,
        "CreateServiceNetworkServiceAssociationResponse",
        &record,
    ))
}

pub fn get_service(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let r = state.find(
        kind::SN_SERVICE_ASSOC,
        s(input, "serviceNetworkServiceAssociationIdentifier").unwrap_or_default(),
        "SERVICE_NETWORK_SERVICE_ASSOCIATION",
    )?;
    Ok(project(
        ctx.model,
        "GetServiceNetworkServiceAssociationResponse",
        r,
    ))
}

pub fn list_service(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let sn = s(input, "serviceNetworkIdentifier").map(trellis_core::id::id_of);
    let svc = s(input, "serviceIdentifier").map(trellis_core::id::id_of);
    let items = ordered(state, kind::SN_SERVICE_ASSOC)
        .into_iter()
        .filter(|a| {
            sn.is_none_or(|id| a["serviceNetworkId"] == id || a["serviceNetworkName"] == id)
        })
        .filter(|a| svc.is_none_or(|id| a["serviceId"] == id || a["serviceName"] == id))
        .map(|r| project(ctx.model, "ServiceNetworkServiceAssociationSummary", r))
        .collect();
    paginate(items, input)
}

pub fn delete_service(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let ident = s(input, "serviceNetworkServiceAssociationIdentifier").unwrap_or_default();
    let id = state.find(
        kind::SN_SERVICE_ASSOC,
        ident,
        "SERVICE_NETWORK_SERVICE_ASSOCIATION",
    )?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = state
        .remove(kind::SN_SERVICE_ASSOC, &id)
        .unwrap_or(Value::Null);
    if let Some(arn) = r["arn"].as_str() {
        state.remove(kind::TAGS, arn);
    }
    Ok(json!({"id": r["id"], "arn": r["arn"], "status": "DELETE_IN_PROGRESS"}))
}

pub fn create_vpc(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let sn = state
        .find(
            kind::SERVICE_NETWORK,
            s(input, "serviceNetworkIdentifier").unwrap_or_default(),
            "SERVICE_NETWORK",
        )?
        .clone();
    let vpc = s(input, "vpcIdentifier").unwrap_or_default();
    if let Some(a) = state
        .all(kind::SN_VPC_ASSOC)
        .find(|a| a["vpcId"] == vpc && a["serviceNetworkId"] == sn["id"])
    {
        return Err(ApiError::conflict(
            "SERVICE_NETWORK_VPC_ASSOCIATION",
            a["id"].as_str().unwrap_or(""),
            format!("client network {vpc} is already associated with this service network"),
        ));
    }
    let id = new_id("snva");
    let arn = ctx
        .arn
        .arn("vpc-lattice", &format!("servicenetworkvpcassociation/{id}"));
    let record = json!({
        "id": id,
        "arn": arn,
        "status": "ACTIVE",
        "createdBy": ctx.arn.account,
        "createdAt": now(),
        "lastUpdatedAt": now(),
        "vpcId": vpc,
        "securityGroupIds": input.get("securityGroupIds"),
        "serviceNetworkId": sn["id"],
        "serviceNetworkName": sn["name"],
        "serviceNetworkArn": sn["arn"],
    });
    set_tags(state, &arn, input);
    state.put(kind::SN_VPC_ASSOC, &id, record.clone());
    Ok(project(
        ctx.model,
        "CreateServiceNetworkVpcAssociationResponse",
        &record,
    ))
}

pub fn get_vpc(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let r = state.find(
        kind::SN_VPC_ASSOC,
        s(input, "serviceNetworkVpcAssociationIdentifier").unwrap_or_default(),
        "SERVICE_NETWORK_VPC_ASSOCIATION",
    )?;
    Ok(project(
        ctx.model,
        "GetServiceNetworkVpcAssociationResponse",
        r,
    ))
}

pub fn list_vpc(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let sn = s(input, "serviceNetworkIdentifier").map(trellis_core::id::id_of);
    let vpc = s(input, "vpcIdentifier");
    let items = ordered(state, kind::SN_VPC_ASSOC)
        .into_iter()
        .filter(|a| {
            sn.is_none_or(|id| a["serviceNetworkId"] == id || a["serviceNetworkName"] == id)
        })
        .filter(|a| vpc.is_none_or(|v| a["vpcId"] == v))
        .map(|r| project(ctx.model, "ServiceNetworkVpcAssociationSummary", r))
        .collect();
    paginate(items, input)
}

pub fn update_vpc(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let ident = s(input, "serviceNetworkVpcAssociationIdentifier").unwrap_or_default();
    let id = state.find(kind::SN_VPC_ASSOC, ident, "SERVICE_NETWORK_VPC_ASSOCIATION")?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = state
        .get_mut(kind::SN_VPC_ASSOC, &id)
        .ok_or_else(|| ApiError::not_found("SERVICE_NETWORK_VPC_ASSOCIATION", &id))?;
    r["securityGroupIds"] = input["securityGroupIds"].clone();
    r["lastUpdatedAt"] = now().into();
    Ok(project(
        ctx.model,
        "UpdateServiceNetworkVpcAssociationResponse",
        r,
    ))
}

pub fn delete_vpc(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let ident = s(input, "serviceNetworkVpcAssociationIdentifier").unwrap_or_default();
    let id = state.find(kind::SN_VPC_ASSOC, ident, "SERVICE_NETWORK_VPC_ASSOCIATION")?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = state.remove(kind::SN_VPC_ASSOC, &id).unwrap_or(Value::Null);
    if let Some(arn) = r["arn"].as_str() {
        state.remove(kind::TAGS, arn);
    }
    Ok(json!({"id": r["id"], "arn": r["arn"], "status": "DELETE_IN_PROGRESS"}))
}
