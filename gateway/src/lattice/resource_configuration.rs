//! Resource configurations: a private resource (by DNS name or IP address, or an AWS ARN) and
//! the TCP ports it is reached on, behind a resource gateway. SINGLE is one resource; a GROUP
//! holds the gateway and ports for its CHILD members, each one resource; ARN names a resource
//! by ARN (kept, not reachable through Trellis endpoints). An IP address in the operator's
//! forbidden ranges (`--resource-forbidden-cidrs`) is refused.

use serde_json::{json, Value};
use trellis_core::id::new_id;
use trellis_core::ApiError;

use super::{
    ensure_unique_name, kind, now, ordered, paginate, project, s, set_tags, touch, Ctx, State,
};

pub const TYPE: &str = "RESOURCE_CONFIGURATION";

pub fn create(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let name = s(input, "name").unwrap_or_default();
    ensure_unique_name(state, kind::RESOURCE_CONFIGURATION, TYPE, name, None, None)?;
    let ty = s(input, "type").unwrap_or_default();
    let (gateway_id, group_id) = if ty == "CHILD" {
        for field in ["resourceGatewayIdentifier", "portRanges", "protocol"] {
            forbid(
                input,
                field,
                "a CHILD resource configuration takes it from its group",
            )?;
        }
        let Some(group) = s(input, "resourceConfigurationGroupIdentifier") else {
            return Err(ApiError::invalid_field(
                "resourceConfigurationGroupIdentifier",
                "is required for a CHILD resource configuration",
            ));
        };
        let group = state.find(kind::RESOURCE_CONFIGURATION, group, TYPE)?;
        if group["type"] != "GROUP" {
            return Err(ApiError::invalid_field(
                "resourceConfigurationGroupIdentifier",
                format!(
                    "must name a resource configuration of type GROUP; {} is {}",
                    group["id"].as_str().unwrap_or_default(),
                    group["type"].as_str().unwrap_or_default()
                ),
            ));
        }
        (
            group["resourceGatewayId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            Some(group["id"].as_str().unwrap_or_default().to_string()),
        )
    } else {
        forbid(
            input,
            "resourceConfigurationGroupIdentifier",
            "only a CHILD resource configuration belongs to a group",
        )?;
        let Some(gw) = s(input, "resourceGatewayIdentifier") else {
            return Err(ApiError::invalid_field(
                "resourceGatewayIdentifier",
                format!("is required for a {ty} resource configuration"),
            ));
        };
        let gw = state.find(kind::RESOURCE_GATEWAY, gw, super::resource_gateway::TYPE)?;
        (gw["id"].as_str().unwrap_or_default().to_string(), None)
    };
    check_definition(ty, input.get("resourceConfigurationDefinition"))?;
    let ports = match ty {
        "SINGLE" | "GROUP" => {
            let Some(ranges) = input.get("portRanges").and_then(Value::as_array) else {
                return Err(ApiError::invalid_field(
                    "portRanges",
                    format!("is required for a {ty} resource configuration"),
                ));
            };
            check_ports(state, &gateway_id, ranges, None)?;
            Value::Array(ranges.clone())
        }
        _ => {
            forbid(
                input,
                "portRanges",
                "only SINGLE and GROUP resource configurations have port ranges",
            )?;
            Value::Null
        }
    };
    let id = new_id("rcfg");
    let arn = ctx
        .arn
        .arn("vpc-lattice", &format!("resourceconfiguration/{id}"));
    let at = now();
    let record = json!({
        "id": id,
        "arn": arn,
        "name": name,
        "type": ty,
        "status": "ACTIVE",
        "resourceGatewayId": gateway_id,
        "resourceConfigurationGroupId": group_id,
        "portRanges": ports,
        "protocol": if ty == "ARN" { Value::Null } else { json!(s(input, "protocol").unwrap_or("TCP")) },
        "resourceConfigurationDefinition": input.get("resourceConfigurationDefinition"),
        "allowAssociationToShareableServiceNetwork": input
            .get("allowAssociationToShareableServiceNetwork")
            .cloned()
            .unwrap_or(Value::Bool(true)),
        "amazonManaged": false,
        "customDomainName": input.get("customDomainName"),
        "groupDomain": input.get("groupDomain"),
        "createdAt": at,
        "lastUpdatedAt": at,
    });
    set_tags(state, &arn, input);
    state.put(kind::RESOURCE_CONFIGURATION, &id, record.clone());
    Ok(project(
        ctx.model,
        "CreateResourceConfigurationResponse",
        &record,
    ))
}

pub fn get(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let record = state.find(
        kind::RESOURCE_CONFIGURATION,
        s(input, "resourceConfigurationIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    Ok(project(
        ctx.model,
        "GetResourceConfigurationResponse",
        &with_inherited(state, record),
    ))
}

pub fn list(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let gw = s(input, "resourceGatewayIdentifier").map(trellis_core::id::id_of);
    let group = s(input, "resourceConfigurationGroupIdentifier").map(trellis_core::id::id_of);
    let items = ordered(state, kind::RESOURCE_CONFIGURATION)
        .into_iter()
        .filter(|r| gw.is_none_or(|id| r["resourceGatewayId"] == id))
        .filter(|r| group.is_none_or(|id| r["resourceConfigurationGroupId"] == id))
        .map(|r| project(ctx.model, "ResourceConfigurationSummary", r))
        .collect();
    paginate(items, input)
}

pub fn update(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::RESOURCE_CONFIGURATION,
        s(input, "resourceConfigurationIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    let current = state
        .get(kind::RESOURCE_CONFIGURATION, &id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    let ty = current["type"].as_str().unwrap_or_default();
    if let Some(ranges) = input.get("portRanges").and_then(Value::as_array) {
        if !matches!(ty, "SINGLE" | "GROUP") {
            return Err(ApiError::invalid_field(
                "portRanges",
                format!("a {ty} resource configuration has no port ranges of its own"),
            ));
        }
        let gw = current["resourceGatewayId"].as_str().unwrap_or_default();
        check_ports(state, gw, ranges, Some(&id))?;
    }
    if let Some(def) = input.get("resourceConfigurationDefinition") {
        check_definition(ty, Some(def))?;
    }
    let record = state
        .get_mut(kind::RESOURCE_CONFIGURATION, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    for field in [
        "portRanges",
        "resourceConfigurationDefinition",
        "allowAssociationToShareableServiceNetwork",
    ] {
        if let Some(v) = input.get(field) {
            record[field] = v.clone();
        }
    }
    touch(record);
    let record = record.clone();
    Ok(project(
        ctx.model,
        "UpdateResourceConfigurationResponse",
        &with_inherited(state, &record),
    ))
}

pub fn delete(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let id = state.resolve(
        kind::RESOURCE_CONFIGURATION,
        s(input, "resourceConfigurationIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    if let Some(child) = state
        .all(kind::RESOURCE_CONFIGURATION)
        .find(|c| c["resourceConfigurationGroupId"] == id.as_str())
    {
        return Err(ApiError::conflict(
            TYPE,
            &id,
            format!(
                "resource configuration group {id} still has child {}; delete the children first",
                child["id"].as_str().unwrap_or_default()
            ),
        ));
    }
    if let Some(a) = state
        .all(kind::SN_RESOURCE_ASSOC)
        .find(|a| a["resourceConfigurationId"] == id.as_str())
    {
        return Err(ApiError::conflict(
            TYPE,
            &id,
            format!(
                "resource configuration {id} is associated with service network {} ({}); delete the association first",
                a["serviceNetworkId"].as_str().unwrap_or_default(),
                a["id"].as_str().unwrap_or_default()
            ),
        ));
    }
    let record = state
        .remove(kind::RESOURCE_CONFIGURATION, &id)
        .ok_or_else(|| ApiError::not_found(TYPE, &id))?;
    if let Some(arn) = record["arn"].as_str() {
        state.remove(kind::TAGS, arn);
        state.remove(kind::AUTH_POLICY, arn);
        state.remove(kind::RESOURCE_POLICY, arn);
    }
    Ok(json!({}))
}

/// A CHILD's record with its group's port ranges and protocol, as it is reached.
pub(crate) fn with_inherited(state: &State, record: &Value) -> Value {
    let mut r = record.clone();
    if let Some(group) = record["resourceConfigurationGroupId"]
        .as_str()
        .and_then(|g| state.get(kind::RESOURCE_CONFIGURATION, g))
    {
        r["portRanges"] = group["portRanges"].clone();
        r["protocol"] = group["protocol"].clone();
    }
    r
}

/// The port ranges a configuration is reached on (a CHILD's come from its group).
pub(crate) fn effective_ports(state: &State, record: &Value) -> Vec<(u16, u16)> {
    with_inherited(state, record)["portRanges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|r| trellis_resource_gateway::parse_port_range(r).ok())
        .collect()
}

/// The host a SINGLE or CHILD configuration forwards to: its DNS name or IP address.
pub(crate) fn destination(record: &Value) -> Option<String> {
    let def = &record["resourceConfigurationDefinition"];
    def["ipResource"]["ipAddress"]
        .as_str()
        .or_else(|| def["dnsResource"]["domainName"].as_str())
        .map(str::to_string)
}

fn forbid(input: &Value, field: &str, why: &str) -> Result<(), ApiError> {
    match input.get(field) {
        Some(v) if !v.is_null() => Err(ApiError::invalid_field(
            field,
            format!("must not be set: {why}"),
        )),
        _ => Ok(()),
    }
}

/// The definition a type needs: SINGLE and CHILD a DNS name or an IP address, ARN an ARN,
/// GROUP none.
fn check_definition(ty: &str, def: Option<&Value>) -> Result<(), ApiError> {
    const FIELD: &str = "resourceConfigurationDefinition";
    let def = def.filter(|d| !d.is_null());
    match (ty, def) {
        ("GROUP", None) => Ok(()),
        ("GROUP", Some(_)) => Err(ApiError::invalid_field(
            FIELD,
            "must not be set for a GROUP resource configuration: its CHILD members define the resources",
        )),
        (_, None) => Err(ApiError::invalid_field(
            FIELD,
            format!("is required for a {ty} resource configuration"),
        )),
        ("ARN", Some(d)) => match d.get("arnResource") {
            Some(_) => Ok(()),
            None => Err(ApiError::invalid_field(
                format!("{FIELD}.arnResource"),
                "is required for an ARN resource configuration",
            )),
        },
        (_, Some(d)) => {
            if d.get("arnResource").is_some() {
                return Err(ApiError::invalid_field(
                    format!("{FIELD}.arnResource"),
                    format!("a {ty} resource configuration is defined by a DNS name or an IP address"),
                ));
            }
            if let Some(ip) = d.get("ipResource") {
                let text = ip["ipAddress"].as_str().unwrap_or_default();
                let Ok(addr) = text.parse::<std::net::IpAddr>() else {
                    return Err(ApiError::invalid_field(
                        format!("{FIELD}.ipResource.ipAddress"),
                        format!("{text:?} is not an IPv4 or IPv6 address"),
                    ));
                };
                let forbidden = super::resource_association::forbidden_cidrs();
                if let Some(range) = forbidden.iter().find(|c| c.contains(addr)) {
                    return Err(ApiError::invalid_field(
                        format!("{FIELD}.ipResource.ipAddress"),
                        format!("{text} is in the forbidden range {range} of this Trellis"),
                    ));
                }
                return Ok(());
            }
            if let Some(dns) = d.get("dnsResource") {
                let name = dns["domainName"].as_str().unwrap_or_default();
                if !valid_domain(name) {
                    return Err(ApiError::invalid_field(
                        format!("{FIELD}.dnsResource.domainName"),
                        format!("{name:?} is not a valid DNS name"),
                    ));
                }
                return Ok(());
            }
            Err(ApiError::invalid_field(
                FIELD,
                "needs a dnsResource or an ipResource",
            ))
        }
    }
}

fn valid_domain(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Port ranges must be valid, not overlap each other, and not overlap those of the gateway's
/// other SINGLE and GROUP configurations.
fn check_ports(
    state: &State,
    gateway_id: &str,
    ranges: &[Value],
    except: Option<&str>,
) -> Result<(), ApiError> {
    if ranges.is_empty() {
        return Err(ApiError::invalid_field(
            "portRanges",
            "needs at least one port range",
        ));
    }
    let mut parsed: Vec<(u16, u16)> = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        let field = format!("portRanges.{}", i + 1);
        let text = r.as_str().unwrap_or_default();
        let range = trellis_resource_gateway::parse_port_range(text)
            .map_err(|e| ApiError::invalid_field(&field, format!("invalid port range: {e}")))?;
        if let Some(j) = parsed
            .iter()
            .position(|p| trellis_resource_gateway::ranges_overlap(*p, range))
        {
            return Err(ApiError::invalid_field(
                &field,
                format!(
                    "port range {text} overlaps port range {} (portRanges.{})",
                    ranges[j].as_str().unwrap_or_default(),
                    j + 1
                ),
            ));
        }
        for other in state.all(kind::RESOURCE_CONFIGURATION).filter(|c| {
            c["resourceGatewayId"] == gateway_id
                && except.is_none_or(|id| c["id"] != id)
                && c["resourceConfigurationGroupId"].is_null()
        }) {
            for o in other["portRanges"].as_array().into_iter().flatten() {
                let o = o.as_str().unwrap_or_default();
                if let Ok(or) = trellis_resource_gateway::parse_port_range(o) {
                    if trellis_resource_gateway::ranges_overlap(or, range) {
                        return Err(ApiError::invalid_field(
                            &field,
                            format!(
                                "port range {text} overlaps port range {o} of resource configuration {} on the same resource gateway",
                                other["id"].as_str().unwrap_or_default()
                            ),
                        ));
                    }
                }
            }
        }
        parsed.push(range);
    }
    Ok(())
}
