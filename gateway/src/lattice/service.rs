//! Services: addressable HTTP/gRPC services with a DNS name and an optional custom domain.

use serde_json::{json, Value};
use trellis_core::id::new_id;
use trellis_core::{ApiError, ArnContext};

use super::{
    ensure_unique_name, kind, now, ordered, paginate, project, s, set_tags, touch, Ctx, State,
};

const TYPE: &str = "SERVICE";

/// The generated DNS name: `<name>-<id digits>.<account digest>.vpc-lattice-svcs.<region>.on.aws`,
/// the shape AWS gives, so clients that parse it keep working.
pub fn domain_name(arn: &ArnContext, name: &str, id: &str) -> String {
    let digest = arn.account.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!(
        "{name}-{}.{:07x}.vpc-lattice-svcs.{}.on.aws",
        id.trim_start_matches("svc-"),
        digest & 0x0fff_ffff,
        arn.region
    )
}

pub fn create(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let name = s(input, "name").unwrap_or_default();
    ensure_unique_name(state, kind::SERVICE, TYPE, name, None, None)?;
    if let Some(domain) = s(input, "customDomainName") {
        ensure_domain_free(state, domain, None)?;
    }
    let id = new_id("svc");
    let arn = ctx.arn.arn("vpc-lattice", &format!("service/{id}"));
    let at = now();
    let record = json!({
        "id": id,
        "arn": arn,
        "name": name,
        "customDomainName": input.get("customDomainName"),
        "certificateArn": input.get("certificateArn"),
        "authType": s(input, "authType").unwrap_or("NONE"),
        "status": "ACTIVE",
        "dnsEntry": {
            "domainName": domain_name(ctx.arn, name, &id),
            "hostedZoneId": "Z0TRELLIS0LOCAL",
        },
        "createdAt": at,
        "lastUpdatedAt": at,
    });
    set_tags(state, &arn, input);
    state.put(kind::SERVICE, &id, record.clone());
    Ok(project(ctx.model, "CreateServiceResponse", &record))
}

pub fn get(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let record = state.find(
        kind::SERVICE,
        s(input, "serviceIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    Ok(project(ctx.model, "GetServiceResponse", record))
}

pub fn list(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let items = ordered(state, kind::SERVICE)
        .into_iter()
        .map(|r| project(ctx.model, "ServiceSummary", r))
        .collect();
    paginate(items, input)
}

pub fn update(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::SERVICE,
        s(input, "serviceIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    let record = state
        .get_mut(kind::SERVICE, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    if let Some(a) = s(input, "authType") {
        record["authType"] = a.into();
    }
    if let Some(c) = s(input, "certificateArn") {
        record["certificateArn"] = c.into();
    }
    touch(record);
    Ok(project(ctx.model, "UpdateServiceResponse", record))
}

pub fn delete(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::SERVICE,
        s(input, "serviceIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    if state
        .all(kind::SN_SERVICE_ASSOC)
        .any(|a| a["serviceId"] == id.as_str())
    {
        return Err(ApiError::conflict(
            TYPE,
            &id,
            format!(
                "service {id} is associated with a service network; delete the association first"
            ),
        ));
    }
    let record = state
        .remove(kind::SERVICE, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    // A service's listeners and rules go with it.
    let listeners: Vec<String> = state
        .all(kind::LISTENER)
        .filter(|l| l["serviceId"] == id.as_str())
        .filter_map(|l| l["id"].as_str().map(str::to_string))
        .collect();
    for l in listeners {
        super::listener::remove_with_rules(state, &l);
    }
    if let Some(arn) = record["arn"].as_str() {
        state.remove(kind::TAGS, arn);
        state.remove(kind::AUTH_POLICY, arn);
        state.remove(kind::RESOURCE_POLICY, arn);
    }
    Ok(json!({
        "id": record["id"],
        "arn": record["arn"],
        "name": record["name"],
        "status": "DELETE_IN_PROGRESS",
    }))
}

fn ensure_domain_free(state: &State, domain: &str, except: Option<&str>) -> Result<(), ApiError> {
    let clash = state.all(kind::SERVICE).find(|r| {
        r["customDomainName"]
            .as_str()
            .is_some_and(|d| d.eq_ignore_ascii_case(domain))
            && except.is_none_or(|id| r["id"] != id)
    });
    match clash {
        Some(r) => Err(ApiError::conflict(
            TYPE,
            r["id"].as_str().unwrap_or(""),
            format!("custom domain name {domain} is already used by another service"),
        )),
        None => Ok(()),
    }
}
