//! Service-network resource associations: a resource configuration made reachable from a
//! service network. Each association of a SINGLE configuration (or of each CHILD of a GROUP)
//! gets a TCP endpoint per port on a loopback address of its own, run by the
//! `trellis-resource-gateway` crate and reported in the Trellis field `endpoints`
//! (`[{"host","port","url"}]`) beside the AWS fields of `GetServiceNetworkResourceAssociation`
//! and `ListServiceNetworkResourceAssociations`.
//!
//! Trellis settings, as `trellis:` tags on the resource configuration (a GROUP's apply to its
//! children, a CHILD's override its group's) or on the association (overriding both):
//! `trellis:allowed-cidrs` (client CIDR blocks, comma-separated; all clients when unset),
//! `trellis:max-connections`, `trellis:connect-timeout-ms`, `trellis:idle-timeout-ms`,
//! `trellis:drain-timeout-ms`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Map, Value};
use trellis_core::id::new_id;
use trellis_core::ApiError;
use trellis_resource_gateway::{Cidr, EndpointSpec, Manager};

use super::resource_configuration::{destination, effective_ports};
use super::{kind, now, ordered, paginate, project, s, set_tags, Ctx, State};

pub const TYPE: &str = "SERVICE_NETWORK_RESOURCE_ASSOCIATION";

/// This process's endpoints, once [`start`]ed (`trellis serve`); `trellis validate` never
/// starts it, so it binds nothing.
static MANAGER: OnceLock<Manager> = OnceLock::new();

/// Starts the endpoint manager and brings up the endpoints of `state`.
pub fn start(state: &State) -> Manager {
    let m = MANAGER.get_or_init(Manager::new).clone();
    m.apply(endpoint_specs(state));
    m
}

/// Hands the endpoints of `state` to the manager, if it runs. Called after every Lattice write.
pub fn publish(state: &State) {
    if let Some(m) = MANAGER.get() {
        m.apply(endpoint_specs(state));
    }
}

/// The endpoints' counters in the Prometheus text format (empty until [`start`]).
pub fn render_metrics() -> String {
    MANAGER
        .get()
        .map(Manager::render_metrics)
        .unwrap_or_default()
}

pub fn create(state: &mut State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let rc = state
        .find(
            kind::RESOURCE_CONFIGURATION,
            s(input, "resourceConfigurationIdentifier").unwrap_or_default(),
            super::resource_configuration::TYPE,
        )?
        .clone();
    if rc["type"] == "CHILD" {
        return Err(ApiError::invalid_field(
            "resourceConfigurationIdentifier",
            format!(
                "{} is a CHILD resource configuration; associate its group {} instead",
                rc["id"].as_str().unwrap_or_default(),
                rc["resourceConfigurationGroupId"]
                    .as_str()
                    .unwrap_or_default()
            ),
        ));
    }
    let sn_id = state.resolve(
        kind::SERVICE_NETWORK,
        s(input, "serviceNetworkIdentifier").unwrap_or_default(),
        "SERVICE_NETWORK",
    )?;
    let sn = state
        .get(kind::SERVICE_NETWORK, &sn_id)
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(a) = state
        .all(kind::SN_RESOURCE_ASSOC)
        .find(|a| a["resourceConfigurationId"] == rc["id"] && a["serviceNetworkId"] == sn["id"])
    {
        return Err(ApiError::conflict(
            TYPE,
            a["id"].as_str().unwrap_or(""),
            "the resource configuration is already associated with this service network",
        ));
    }
    let id = new_id("snra");
    let arn = ctx.arn.arn(
        "vpc-lattice",
        &format!("servicenetworkresourceassociation/{id}"),
    );
    let at = now();
    let record = json!({
        "id": id,
        "arn": arn,
        "status": "ACTIVE",
        "createdBy": ctx.arn.account,
        "createdAt": at,
        "lastUpdatedAt": at,
        "isManagedAssociation": false,
        "privateDnsEnabled": input.get("privateDnsEnabled").cloned().unwrap_or(Value::Bool(false)),
        "resourceConfigurationId": rc["id"],
        "resourceConfigurationName": rc["name"],
        "resourceConfigurationArn": rc["arn"],
        "serviceNetworkId": sn["id"],
        "serviceNetworkName": sn["name"],
        "serviceNetworkArn": sn["arn"],
    });
    set_tags(state, &arn, input);
    state.put(kind::SN_RESOURCE_ASSOC, &id, record.clone());
    Ok(project(
        ctx.model,
        "CreateServiceNetworkResourceAssociationResponse",
        &record,
    ))
}

pub fn get(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let r = state.find(
        kind::SN_RESOURCE_ASSOC,
        s(input, "serviceNetworkResourceAssociationIdentifier").unwrap_or_default(),
        TYPE,
    )?;
    let mut out = project(ctx.model, "GetServiceNetworkResourceAssociationResponse", r);
    out["endpoints"] = endpoints(state, r["id"].as_str().unwrap_or_default());
    Ok(out)
}

pub fn list(state: &State, ctx: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let sn = s(input, "serviceNetworkIdentifier").map(trellis_core::id::id_of);
    let rc = s(input, "resourceConfigurationIdentifier").map(trellis_core::id::id_of);
    let items = ordered(state, kind::SN_RESOURCE_ASSOC)
        .into_iter()
        .filter(|a| {
            sn.is_none_or(|id| a["serviceNetworkId"] == id || a["serviceNetworkName"] == id)
        })
        .filter(|a| rc.is_none_or(|id| a["resourceConfigurationId"] == id))
        .map(|r| {
            let mut item = project(ctx.model, "ServiceNetworkResourceAssociationSummary", r);
            item["endpoints"] = endpoints(state, r["id"].as_str().unwrap_or_default());
            item
        })
        .collect();
    paginate(items, input)
}

pub fn delete(state: &mut State, input: &Value) -> Result<Value, ApiError> {
    let ident = s(input, "serviceNetworkResourceAssociationIdentifier").unwrap_or_default();
    let id = state.find(kind::SN_RESOURCE_ASSOC, ident, TYPE)?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = state
        .remove(kind::SN_RESOURCE_ASSOC, &id)
        .unwrap_or(Value::Null);
    if let Some(arn) = r["arn"].as_str() {
        state.remove(kind::TAGS, arn);
    }
    Ok(json!({"id": r["id"], "arn": r["arn"], "status": "DELETE_IN_PROGRESS"}))
}

/// `trellis endpoints`: prints every association's endpoints, one a line (association id,
/// resource configuration name, URL), as the running Trellis at `endpoint` lists them.
pub async fn print_endpoints(endpoint: &str) -> anyhow::Result<()> {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let mut token: Option<String> = None;
    loop {
        let mut uri = format!(
            "{}/servicenetworkresourceassociations?maxResults=100",
            endpoint.trim_end_matches('/')
        );
        if let Some(t) = &token {
            uri.push_str("&nextToken=");
            uri.extend(percent_encode(t));
        }
        let req = http::Request::get(uri.parse::<http::Uri>()?).body(Empty::new())?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {endpoint}: {e}"))?;
        let status = resp.status();
        let body: Value = serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())
            .unwrap_or_default();
        if !status.is_success() {
            anyhow::bail!(
                "{}: {}",
                body["__type"].as_str().unwrap_or(status.as_str()),
                body["message"].as_str().unwrap_or_default()
            );
        }
        for a in body["items"].as_array().into_iter().flatten() {
            for e in a["endpoints"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}",
                    a["id"].as_str().unwrap_or_default(),
                    e["resourceConfigurationName"]
                        .as_str()
                        .or(e["resourceConfigurationId"].as_str())
                        .unwrap_or_default(),
                    e["url"].as_str().unwrap_or_default()
                );
            }
        }
        match body["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(()),
        }
    }
}

fn percent_encode(s: &str) -> impl Iterator<Item = String> + '_ {
    s.bytes().map(|b| {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            (b as char).to_string()
        } else {
            format!("%{b:02X}")
        }
    })
}

/// Resource endpoint associations tie a VPC endpoint to a resource configuration; Trellis has
/// no VPC endpoints (clients use the service-network association's `endpoints`), so the list
/// is empty for any resource configuration that exists.
pub fn list_endpoint_associations(state: &State, input: &Value) -> Result<Value, ApiError> {
    state.find(
        kind::RESOURCE_CONFIGURATION,
        s(input, "resourceConfigurationIdentifier").unwrap_or_default(),
        super::resource_configuration::TYPE,
    )?;
    paginate(Vec::new(), input)
}

/// An association's endpoints: as bound when the manager runs, else as planned.
fn endpoints(state: &State, association_id: &str) -> Value {
    let list: Vec<(String, SocketAddr)> = match MANAGER.get() {
        Some(m) => m
            .bound()
            .into_iter()
            .filter(|b| b.association_id == association_id)
            .map(|b| (b.resource_configuration_id, b.addr))
            .collect(),
        None => endpoint_specs(state)
            .into_iter()
            .filter(|s| s.association_id == association_id)
            .map(|s| (s.resource_configuration_id, s.listen))
            .collect(),
    };
    list.into_iter()
        .map(|(rc, addr)| {
            let name = state
                .get(kind::RESOURCE_CONFIGURATION, &rc)
                .map_or(Value::Null, |r| r["name"].clone());
            json!({
                "host": addr.ip().to_string(),
                "port": addr.port(),
                "url": EndpointSpec::url(addr),
                "resourceConfigurationId": rc,
                "resourceConfigurationName": name,
            })
        })
        .collect()
}

/// Every endpoint the state asks for: per association of a live service network, per SINGLE
/// configuration or CHILD of a GROUP with a DNS or IP destination, per port (at most
/// [`trellis_resource_gateway::MAX_PORTS_PER_RESOURCE`]), on a loopback address chosen by
/// association and configuration, unique among the state's endpoints.
pub fn endpoint_specs(state: &State) -> Vec<EndpointSpec> {
    let mut taken: HashSet<Ipv4Addr> = state
        .all(kind::RESOURCE_CONFIGURATION)
        .filter_map(destination)
        .filter_map(|d| d.parse::<Ipv4Addr>().ok())
        .collect();
    let mut specs = Vec::new();
    for a in ordered(state, kind::SN_RESOURCE_ASSOC) {
        let (Some(aid), Some(sn)) = (a["id"].as_str(), a["serviceNetworkId"].as_str()) else {
            continue;
        };
        if state.get(kind::SERVICE_NETWORK, sn).is_none() {
            continue;
        }
        let Some(rc) = a["resourceConfigurationId"]
            .as_str()
            .and_then(|id| state.get(kind::RESOURCE_CONFIGURATION, id))
        else {
            continue;
        };
        let members: Vec<&Value> = match rc["type"].as_str() {
            Some("SINGLE") => vec![rc],
            Some("GROUP") => ordered(state, kind::RESOURCE_CONFIGURATION)
                .into_iter()
                .filter(|c| c["resourceConfigurationGroupId"] == rc["id"])
                .collect(),
            _ => Vec::new(),
        };
        for m in members {
            let (Some(dest), Some(mid)) = (destination(m), m["id"].as_str()) else {
                continue;
            };
            let mut tags = Map::new();
            for arn in [&rc["arn"], &m["arn"], &a["arn"]] {
                if let Some(Value::Object(t)) =
                    arn.as_str().and_then(|arn| state.get(kind::TAGS, arn))
                {
                    tags.extend(t.clone());
                }
            }
            let settings = Settings::from_tags(&tags, aid);
            let host = trellis_resource_gateway::pick_host(&format!("{aid}/{mid}"), |h| {
                taken.contains(&h)
            });
            taken.insert(host);
            let ports = effective_ports(state, m)
                .into_iter()
                .flat_map(|(lo, hi)| lo..=hi)
                .take(trellis_resource_gateway::MAX_PORTS_PER_RESOURCE);
            for port in ports {
                specs.push(EndpointSpec {
                    association_id: aid.to_string(),
                    service_network_id: sn.to_string(),
                    resource_configuration_id: mid.to_string(),
                    resource_configuration_arn: m["arn"].as_str().unwrap_or_default().to_string(),
                    listen: SocketAddr::new(IpAddr::V4(host), port),
                    destination_host: dest.clone(),
                    destination_port: port,
                    allowed_cidrs: settings.allowed_cidrs.clone(),
                    max_connections: settings.max_connections,
                    connect_timeout: settings.connect_timeout,
                    idle_timeout: settings.idle_timeout,
                    drain_timeout: settings.drain_timeout,
                });
            }
        }
    }
    specs
}

struct Settings {
    allowed_cidrs: Option<Vec<Cidr>>,
    max_connections: Option<usize>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    drain_timeout: Duration,
}

impl Settings {
    fn from_tags(tags: &Map<String, Value>, association: &str) -> Self {
        let text = |k: &str| tags.get(k).and_then(Value::as_str).map(str::trim);
        let ms = |k: &str, default: Duration| {
            text(k)
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(default, Duration::from_millis)
        };
        let allowed_cidrs = text("trellis:allowed-cidrs").map(|v| {
            Cidr::parse_list(v).unwrap_or_else(|e| {
                // Fail closed: a mistyped allow-list lets nobody in rather than everybody.
                tracing::warn!(
                    association,
                    "trellis:allowed-cidrs: {e}; denying every client"
                );
                Vec::new()
            })
        });
        Self {
            allowed_cidrs,
            max_connections: text("trellis:max-connections").and_then(|v| v.parse().ok()),
            connect_timeout: ms(
                "trellis:connect-timeout-ms",
                trellis_resource_gateway::DEFAULT_CONNECT_TIMEOUT,
            ),
            idle_timeout: ms(
                "trellis:idle-timeout-ms",
                trellis_resource_gateway::DEFAULT_IDLE_TIMEOUT,
            ),
            drain_timeout: ms(
                "trellis:drain-timeout-ms",
                trellis_resource_gateway::DEFAULT_DRAIN_TIMEOUT,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let mut st = State::default();
        st.put(
            kind::SERVICE_NETWORK,
            "sn-1",
            json!({"id": "sn-1", "name": "net"}),
        );
        st.put(
            kind::RESOURCE_CONFIGURATION,
            "rcfg-g",
            json!({"id": "rcfg-g", "arn": "arn:g", "type": "GROUP", "portRanges": ["5432", "6000-6001"], "createdAt": "1"}),
        );
        for (id, ip, at) in [("rcfg-a", "10.0.0.1", "2"), ("rcfg-b", "10.0.0.2", "3")] {
            st.put(
                kind::RESOURCE_CONFIGURATION,
                id,
                json!({"id": id, "arn": format!("arn:{id}"), "type": "CHILD", "resourceConfigurationGroupId": "rcfg-g",
                       "resourceConfigurationDefinition": {"ipResource": {"ipAddress": ip}}, "createdAt": at}),
            );
        }
        st.put(
            kind::SN_RESOURCE_ASSOC,
            "snra-1",
            json!({"id": "snra-1", "arn": "arn:snra-1", "serviceNetworkId": "sn-1", "resourceConfigurationId": "rcfg-g", "createdAt": "4"}),
        );
        st
    }

    #[test]
    fn a_group_exposes_each_child_on_its_own_address_and_the_groups_ports() {
        let specs = endpoint_specs(&state());
        assert_eq!(specs.len(), 6, "2 children x 3 ports");
        let hosts: HashSet<IpAddr> = specs.iter().map(|s| s.listen.ip()).collect();
        assert_eq!(hosts.len(), 2);
        assert!(specs.iter().all(|s| s.listen.port() == s.destination_port));
        assert!(specs
            .iter()
            .any(|s| s.destination_host == "10.0.0.2" && s.destination_port == 6001));
        // Stable: the same state compiles to the same addresses.
        assert_eq!(specs, endpoint_specs(&state()));
    }

    #[test]
    fn tags_set_limits_with_association_tags_winning() {
        let mut st = state();
        st.put(
            kind::TAGS,
            "arn:g",
            json!({"trellis:max-connections": "5", "trellis:allowed-cidrs": "10.0.0.0/8"}),
        );
        st.put(
            kind::TAGS,
            "arn:rcfg-a",
            json!({"trellis:idle-timeout-ms": "1000"}),
        );
        st.put(
            kind::TAGS,
            "arn:snra-1",
            json!({"trellis:max-connections": "7"}),
        );
        let specs = endpoint_specs(&st);
        assert!(specs.iter().all(|s| s.max_connections == Some(7)));
        assert!(specs
            .iter()
            .all(|s| s.allowed_cidrs.as_ref().is_some_and(|c| c.len() == 1)));
        for s in &specs {
            let want = if s.resource_configuration_id == "rcfg-a" {
                Duration::from_millis(1000)
            } else {
                trellis_resource_gateway::DEFAULT_IDLE_TIMEOUT
            };
            assert_eq!(s.idle_timeout, want);
        }
        // A mistyped allow-list denies everyone rather than allowing everyone.
        st.put(
            kind::TAGS,
            "arn:snra-1",
            json!({"trellis:allowed-cidrs": "10.0.0.0/99"}),
        );
        assert!(endpoint_specs(&st)
            .iter()
            .all(|s| s.allowed_cidrs.as_deref() == Some(&[][..])));
    }

    #[test]
    fn no_endpoints_without_a_live_service_network() {
        let mut st = state();
        st.remove(kind::SERVICE_NETWORK, "sn-1");
        assert!(endpoint_specs(&st).is_empty());
    }
}
