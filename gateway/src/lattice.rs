//! The VPC Lattice control plane: service networks, services, listeners, rules, target groups,
//! associations, tags and policies, with AWS's shapes, defaults, uniqueness and dependency rules.
//!
//! Every resource is a JSON record shaped like its `Get…` response, kept in a [`State`] by kind
//! and id. An operation reads a `&State` or edits a copy of it; the [`crate::controller`]
//! persists what changed and swaps the copy in, so an operation (or a whole config file) is
//! applied entirely or not at all.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use trellis_core::model::ServiceModel;
use trellis_core::{ApiError, ArnContext};

pub mod association;
pub mod listener;
pub mod policy;
pub mod resource_association;
pub mod resource_configuration;
pub mod resource_gateway;
pub mod rule;
pub mod service;
pub mod service_network;
pub mod tags;
pub mod target_group;

/// Resource kinds, also the store's `kind` column.
pub mod kind {
    pub const SERVICE_NETWORK: &str = "servicenetwork";
    pub const SERVICE: &str = "service";
    pub const LISTENER: &str = "listener";
    pub const RULE: &str = "rule";
    pub const TARGET_GROUP: &str = "targetgroup";
    pub const SN_SERVICE_ASSOC: &str = "snsa";
    pub const SN_VPC_ASSOC: &str = "snva";
    pub const TAGS: &str = "tags";
    pub const AUTH_POLICY: &str = "authpolicy";
    pub const RESOURCE_POLICY: &str = "resourcepolicy";
    pub const IDEMPOTENCY: &str = "idempotency";
    pub const RESOURCE_GATEWAY: &str = "resourcegateway";
    pub const RESOURCE_CONFIGURATION: &str = "resourceconfiguration";
    pub const SN_RESOURCE_ASSOC: &str = "snra";

    pub const ALL: &[&str] = &[
        SERVICE_NETWORK,
        SERVICE,
        LISTENER,
        RULE,
        TARGET_GROUP,
        SN_SERVICE_ASSOC,
        SN_VPC_ASSOC,
        TAGS,
        AUTH_POLICY,
        RESOURCE_POLICY,
        IDEMPOTENCY,
        RESOURCE_GATEWAY,
        RESOURCE_CONFIGURATION,
        SN_RESOURCE_ASSOC,
    ];
}

/// Every Lattice resource, by kind and id. Cheap enough to clone per write: a control plane holds
/// thousands of records, not millions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub kinds: BTreeMap<String, BTreeMap<String, Value>>,
}

/// Status and reason code of target (group id, ip, port), from the data plane.
pub type HealthLookup = dyn Fn(&str, &str, u16) -> (String, Option<String>) + Send + Sync;

/// What an operation needs besides the state: the ARN context and the model (for projections).
pub struct Ctx<'a> {
    pub arn: &'a ArnContext,
    pub model: &'a ServiceModel,
    /// Health of registered targets, for `ListTargets`.
    pub health: &'a HealthLookup,
}

// === impl State ===

impl State {
    pub fn all(&self, kind: &str) -> impl Iterator<Item = &Value> {
        self.kinds.get(kind).into_iter().flat_map(|m| m.values())
    }

    pub fn get(&self, kind: &str, id: &str) -> Option<&Value> {
        self.kinds.get(kind).and_then(|m| m.get(id))
    }

    pub fn get_mut(&mut self, kind: &str, id: &str) -> Option<&mut Value> {
        self.kinds.get_mut(kind).and_then(|m| m.get_mut(id))
    }

    pub fn put(&mut self, kind: &str, id: &str, record: Value) {
        self.kinds
            .entry(kind.to_string())
            .or_default()
            .insert(id.to_string(), record);
    }

    pub fn remove(&mut self, kind: &str, id: &str) -> Option<Value> {
        self.kinds.get_mut(kind).and_then(|m| m.remove(id))
    }

    /// The record named by an id or ARN, or `ResourceNotFoundException` naming it.
    pub fn find(&self, kind: &str, identifier: &str, type_name: &str) -> Result<&Value, ApiError> {
        let id = trellis_core::id::id_of(identifier);
        self.get(kind, id)
            .ok_or_else(|| ApiError::not_found(type_name, identifier))
    }

    /// The id named by an id, an ARN or (for the declarative config) a unique name.
    pub fn resolve(
        &self,
        kind: &str,
        identifier: &str,
        type_name: &str,
    ) -> Result<String, ApiError> {
        let id = trellis_core::id::id_of(identifier);
        if self.get(kind, id).is_some() {
            return Ok(id.to_string());
        }
        self.all(kind)
            .find(|r| r["name"] == identifier)
            .and_then(|r| r["id"].as_str().map(str::to_string))
            .ok_or_else(|| ApiError::not_found(type_name, identifier))
    }

    /// Writes needed to turn `self` into `next`.
    pub fn diff(&self, next: &State) -> Vec<trellis_store::Write> {
        let empty = BTreeMap::new();
        let mut writes = Vec::new();
        for k in kind::ALL {
            let old = self.kinds.get(*k).unwrap_or(&empty);
            let new = next.kinds.get(*k).unwrap_or(&empty);
            for (id, rec) in new {
                if old.get(id) != Some(rec) {
                    writes.push(trellis_store::Write::put(k, id, rec.clone()));
                }
            }
            for id in old.keys() {
                if !new.contains_key(id) {
                    writes.push(trellis_store::Write::delete(k, id));
                }
            }
        }
        writes
    }
}

/// Whether an operation only reads.
pub fn is_read(op: &str) -> bool {
    op.starts_with("Get") || op.starts_with("List")
}

/// Runs a read-only operation.
pub fn read(state: &State, ctx: &Ctx<'_>, op: &str, input: &Value) -> Result<Value, ApiError> {
    match op {
        "GetServiceNetwork" => service_network::get(state, ctx, input),
        "ListServiceNetworks" => service_network::list(state, ctx, input),
        "GetService" => service::get(state, ctx, input),
        "ListServices" => service::list(state, ctx, input),
        "GetListener" => listener::get(state, ctx, input),
        "ListListeners" => listener::list(state, ctx, input),
        "GetRule" => rule::get(state, ctx, input),
        "ListRules" => rule::list(state, ctx, input),
        "GetTargetGroup" => target_group::get(state, ctx, input),
        "ListTargetGroups" => target_group::list(state, ctx, input),
        "ListTargets" => target_group::list_targets(state, ctx, input),
        "GetServiceNetworkServiceAssociation" => association::get_service(state, ctx, input),
        "ListServiceNetworkServiceAssociations" => association::list_service(state, ctx, input),
        "GetServiceNetworkVpcAssociation" => association::get_vpc(state, ctx, input),
        "ListServiceNetworkVpcAssociations" => association::list_vpc(state, ctx, input),
        "ListTagsForResource" => tags::list(state, input),
        "GetAuthPolicy" => policy::get_auth(state, input),
        "GetResourcePolicy" => policy::get_resource(state, input),
        "GetResourceGateway" => resource_gateway::get(state, ctx, input),
        "ListResourceGateways" => resource_gateway::list(state, ctx, input),
        "GetResourceConfiguration" => resource_configuration::get(state, ctx, input),
        "ListResourceConfigurations" => resource_configuration::list(state, ctx, input),
        "GetServiceNetworkResourceAssociation" => resource_association::get(state, ctx, input),
        "ListServiceNetworkResourceAssociations" => resource_association::list(state, ctx, input),
        "ListResourceEndpointAssociations" => {
            resource_association::list_endpoint_associations(state, input)
        }
        other => Err(not_implemented(other)),
    }
}

/// Runs an operation that changes `state`.
pub fn write(state: &mut State, ctx: &Ctx<'_>, op: &str, input: &Value) -> Result<Value, ApiError> {
    match op {
        "CreateServiceNetwork" => service_network::create(state, ctx, input),
        "UpdateServiceNetwork" => service_network::update(state, ctx, input),
        "DeleteServiceNetwork" => service_network::delete(state, input),
        "CreateService" => service::create(state, ctx, input),
        "UpdateService" => service::update(state, ctx, input),
        "DeleteService" => service::delete(state, input),
        "CreateListener" => listener::create(state, ctx, input),
        "UpdateListener" => listener::update(state, ctx, input),
        "DeleteListener" => listener::delete(state, input),
        "CreateRule" => rule::create(state, ctx, input),
        "UpdateRule" => rule::update(state, ctx, input),
        "DeleteRule" => rule::delete(state, input),
        "BatchUpdateRule" => rule::batch_update(state, ctx, input),
        "CreateTargetGroup" => target_group::create(state, ctx, input),
        "UpdateTargetGroup" => target_group::update(state, ctx, input),
        "DeleteTargetGroup" => target_group::delete(state, input),
        "RegisterTargets" => target_group::register(state, input),
        "DeregisterTargets" => target_group::deregister(state, input),
        "CreateServiceNetworkServiceAssociation" => association::create_service(state, ctx, input),
        "DeleteServiceNetworkServiceAssociation" => association::delete_service(state, input),
        "CreateServiceNetworkVpcAssociation" => association::create_vpc(state, ctx, input),
        "UpdateServiceNetworkVpcAssociation" => association::update_vpc(state, ctx, input),
        "DeleteServiceNetworkVpcAssociation" => association::delete_vpc(state, input),
        "TagResource" => tags::tag(state, input),
        "UntagResource" => tags::untag(state, input),
        "PutAuthPolicy" => policy::put_auth(state, input),
        "DeleteAuthPolicy" => policy::delete_auth(state, input),
        "PutResourcePolicy" => policy::put_resource(state, input),
        "DeleteResourcePolicy" => policy::delete_resource(state, input),
        "CreateResourceGateway" => resource_gateway::create(state, ctx, input),
        "UpdateResourceGateway" => resource_gateway::update(state, ctx, input),
        "DeleteResourceGateway" => resource_gateway::delete(state, input),
        "CreateResourceConfiguration" => resource_configuration::create(state, ctx, input),
        "UpdateResourceConfiguration" => resource_configuration::update(state, ctx, input),
        "DeleteResourceConfiguration" => resource_configuration::delete(state, input),
        "CreateServiceNetworkResourceAssociation" => {
            resource_association::create(state, ctx, input)
        }
        "DeleteServiceNetworkResourceAssociation" => resource_association::delete(state, input),
        other => Err(not_implemented(other)),
    }
}

fn not_implemented(op: &str) -> ApiError {
    ApiError::new(
        "UnknownOperationException",
        400,
        format!("operation {op} is not supported by Trellis yet"),
    )
}

// === helpers shared by the resource modules ===

pub(crate) fn s<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

/// Keeps only the members of `shape` (an output shape) from `record`.
pub(crate) fn project(model: &ServiceModel, shape: &str, record: &Value) -> Value {
    let mut out = Map::new();
    if let Some(trellis_core::model::Shape::Structure { members, .. }) = model.shape(shape) {
        for m in members {
            if let Some(v) = record.get(&m.name).filter(|v| !v.is_null()) {
                out.insert(m.name.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// A page of `items` (already in list order) per `maxResults`/`nextToken`; the token is the
/// index of the next item, so a page never repeats or skips while the list is unchanged.
pub(crate) fn paginate(items: Vec<Value>, input: &Value) -> Result<Value, ApiError> {
    let max = input
        .get("maxResults")
        .and_then(Value::as_u64)
        .unwrap_or(100) as usize;
    let start = match s(input, "nextToken") {
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_field("nextToken", "Invalid pagination token"))?,
        None => 0,
    };
    let end = (start + max).min(items.len());
    let page: Vec<Value> = items.get(start..end).unwrap_or_default().to_vec();
    let mut out = json!({ "items": page });
    if end < items.len() {
        out["nextToken"] = Value::String(end.to_string());
    }
    Ok(out)
}

/// Records of a kind in creation order.
pub(crate) fn ordered<'a>(state: &'a State, kind: &str) -> Vec<&'a Value> {
    let mut v: Vec<&Value> = state.all(kind).collect();
    v.sort_by(|a, b| {
        a["createdAt"]
            .as_str()
            .cmp(&b["createdAt"].as_str())
            .then(a["id"].as_str().cmp(&b["id"].as_str()))
    });
    v
}

/// Stores the tags given at creation for `arn`.
pub(crate) fn set_tags(state: &mut State, arn: &str, input: &Value) {
    if let Some(Value::Object(tags)) = input.get("tags") {
        if !tags.is_empty() {
            state.put(kind::TAGS, arn, Value::Object(tags.clone()));
        }
    }
}

/// Names are unique per kind within a scope (`scope_key` = `scope` in each record).
pub(crate) fn ensure_unique_name(
    state: &State,
    kind: &str,
    type_name: &str,
    name: &str,
    scope: Option<(&str, &str)>,
    except_id: Option<&str>,
) -> Result<(), ApiError> {
    let clash = state.all(kind).find(|r| {
        r["name"] == name
            && scope.is_none_or(|(k, v)| r[k] == v)
            && except_id.is_none_or(|id| r["id"] != id)
    });
    match clash {
        Some(r) => Err(ApiError::conflict(
            type_name,
            r["id"].as_str().unwrap_or(""),
            format!("a {type_name} named {name} already exists"),
        )),
        None => Ok(()),
    }
}

pub(crate) fn now() -> String {
    trellis_core::clock::now_iso8601()
}

/// Sets `lastUpdatedAt` on a record.
pub(crate) fn touch(record: &mut Value) {
    record["lastUpdatedAt"] = Value::String(now());
}
