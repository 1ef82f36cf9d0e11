//! Service-network resource associations: a resource configuration made reachable from a
//! service network. Each association of a SINGLE configuration (or of each CHILD of a GROUP)
//! gets an endpoint per port on a loopback address of its own (TCP, or HTTP originating TLS
//! with `trellis:protocol` = `HTTPS`), run by the `trellis-resource-gateway` crate and reported
//! in the Trellis field `endpoints` (`[{"host","port","url"}]`) beside the AWS fields of
//! `GetServiceNetworkResourceAssociation` and `ListServiceNetworkResourceAssociations`. Each
//! associated SINGLE or CHILD configuration is also registered in the Target registry under
//! its ARN, so event rules and workflows can call it.
//!
//! Trellis settings, as `trellis:` tags on the resource configuration (a GROUP's apply to its
//! children, a CHILD's override its group's) or on the association (overriding both, for its
//! endpoints): `trellis:allowed-cidrs` (client CIDR blocks, comma-separated; all clients when
//! unset), `trellis:max-connections`, `trellis:connect-timeout-ms`, `trellis:idle-timeout-ms`,
//! `trellis:drain-timeout-ms`, `trellis:protocol` (`TCP`, `HTTPS`, `HTTP`),
//! `trellis:tls-server-name`, `trellis:ca-certificate`, `trellis:client-certificate` and
//! `trellis:client-key` (mutual TLS toward the resource), `trellis:protocol-version` (`HTTP1`,
//! `HTTP2` or `GRPC`: the version spoken to the resource), `trellis:response-timeout-ms`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Map, Value};
use trellis_core::id::new_id;
use trellis_core::target::TargetRegistry;
use trellis_core::ApiError;
use trellis_resource_gateway::{
    Cidr, ClientIdentity, EndpointSpec, HttpSettings, Manager, TargetSpec, TlsSettings,
};

use super::resource_configuration::{destination, effective_ports};
use super::{kind, now, ordered, paginate, project, s, set_tags, Ctx, State};

pub const TYPE: &str = "SERVICE_NETWORK_RESOURCE_ASSOCIATION";

/// This process's endpoints and targets, once [`start`]ed (`trellis serve`); `trellis
/// validate` never starts it, so it binds nothing.
static RUNTIME: OnceLock<Runtime> = OnceLock::new();

struct Runtime {
    manager: Manager,
    options: Options,
}

/// What `trellis serve` hands the resource gateway.
#[derive(Default)]
pub struct Options {
    /// Where associated resource configurations register as targets.
    pub targets: Option<Arc<TargetRegistry>>,
    /// Where a relative `trellis:ca-certificate` is read from (`<data-dir>/certificates`).
    pub certificates: PathBuf,
    /// `--resource-forbidden-cidrs`: no definition may name an address in them, and no
    /// endpoint or target dials one, whatever a DNS name resolves to.
    pub forbidden_cidrs: Vec<Cidr>,
}

/// Starts the endpoint manager and brings up the endpoints and targets of `state`.
pub fn start(state: &State, options: Options) -> Manager {
    let rt = RUNTIME.get_or_init(|| Runtime {
        manager: Manager::with_forbidden_cidrs(options.forbidden_cidrs.clone()),
        options,
    });
    apply(rt, state);
    rt.manager.clone()
}

/// Hands the endpoints and targets of `state` to the manager, if it runs. Called after every
/// Lattice write.
pub fn publish(state: &State) {
    if let Some(rt) = RUNTIME.get() {
        apply(rt, state);
    }
}

fn apply(rt: &Runtime, state: &State) {
    rt.manager.apply(endpoint_specs(state));
    if let Some(targets) = &rt.options.targets {
        rt.manager.apply_targets(targets, target_specs(state));
    }
}

/// The operator's forbidden destination ranges (none until [`start`]).
pub fn forbidden_cidrs() -> &'static [Cidr] {
    RUNTIME
        .get()
        .map_or(&[][..], |rt| rt.options.forbidden_cidrs.as_slice())
}

/// The endpoints' counters in the Prometheus text format (empty until [`start`]).
pub fn render_metrics() -> String {
    RUNTIME
        .get()
        .map(|rt| rt.manager.render_metrics())
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
    let list: Vec<(String, SocketAddr, String)> = match RUNTIME.get() {
        Some(rt) => rt
            .manager
            .bound()
            .into_iter()
            .filter(|b| b.association_id == association_id)
            .map(|b| (b.resource_configuration_id, b.addr, b.url))
            .collect(),
        None => endpoint_specs(state)
            .into_iter()
            .filter(|s| s.association_id == association_id)
            .map(|s| {
                let url = s.url(s.listen);
                (s.resource_configuration_id, s.listen, url)
            })
            .collect(),
    };
    list.into_iter()
        .map(|(rc, addr, url)| {
            let name = state
                .get(kind::RESOURCE_CONFIGURATION, &rc)
                .map_or(Value::Null, |r| r["name"].clone());
            json!({
                "host": addr.ip().to_string(),
                "port": addr.port(),
                "url": url,
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
    for Exposed {
        association: a,
        configuration: rc,
        member: m,
        destination: dest,
    } in exposed(state)
    {
        let (aid, sn, mid) = (
            str_of(&a["id"]),
            str_of(&a["serviceNetworkId"]),
            str_of(&m["id"]),
        );
        let tags = tags_of(state, [&rc["arn"], &m["arn"], &a["arn"]]);
        let settings = Settings::from_tags(&tags, aid);
        let host =
            trellis_resource_gateway::pick_host(&format!("{aid}/{mid}"), |h| taken.contains(&h));
        taken.insert(host);
        let http = settings.http(&dest, false);
        let ports = effective_ports(state, m)
            .into_iter()
            .flat_map(|(lo, hi)| lo..=hi)
            .take(trellis_resource_gateway::MAX_PORTS_PER_RESOURCE);
        for port in ports {
            specs.push(EndpointSpec {
                association_id: aid.to_string(),
                service_network_id: sn.to_string(),
                resource_configuration_id: mid.to_string(),
                resource_configuration_arn: str_of(&m["arn"]).to_string(),
                listen: SocketAddr::new(IpAddr::V4(host), port),
                destination_host: dest.clone(),
                destination_port: port,
                allowed_cidrs: settings.allowed_cidrs.clone(),
                max_connections: settings.max_connections,
                connect_timeout: settings.connect_timeout,
                idle_timeout: settings.idle_timeout,
                drain_timeout: settings.drain_timeout,
                http: http.clone(),
            });
        }
    }
    specs
}

/// Every associated SINGLE configuration or CHILD of an associated GROUP with a DNS or IP
/// destination, as a target: TLS to the destination (its own and its group's tags, not the
/// associations'), plain HTTP with `trellis:protocol` = `HTTP`.
pub fn target_specs(state: &State) -> Vec<TargetSpec> {
    let mut seen = HashSet::new();
    let mut specs = Vec::new();
    for Exposed {
        configuration: rc,
        member: m,
        destination: dest,
        ..
    } in exposed(state)
    {
        let arn = str_of(&m["arn"]);
        if arn.is_empty() || !seen.insert(arn) {
            continue;
        }
        let tags = tags_of(state, [&rc["arn"], &m["arn"]]);
        let settings = Settings::from_tags(&tags, arn);
        let Some(http) = settings.http(&dest, true) else {
            continue;
        };
        specs.push(TargetSpec {
            arn: arn.to_string(),
            resource_configuration_id: str_of(&m["id"]).to_string(),
            destination_host: dest,
            ports: effective_ports(state, m),
            http,
            connect_timeout: settings.connect_timeout,
        });
    }
    specs
}

/// One resource reachable through one association.
struct Exposed<'a> {
    association: &'a Value,
    /// The associated configuration: the SINGLE itself, or the GROUP.
    configuration: &'a Value,
    /// The SINGLE, or one CHILD of the GROUP.
    member: &'a Value,
    destination: String,
}

/// Per association of a live service network, its SINGLE configuration or each CHILD of its
/// GROUP that has a DNS or IP destination.
fn exposed(state: &State) -> Vec<Exposed<'_>> {
    let mut out = Vec::new();
    for a in ordered(state, kind::SN_RESOURCE_ASSOC) {
        let (Some(_), Some(sn)) = (a["id"].as_str(), a["serviceNetworkId"].as_str()) else {
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
            if let (Some(destination), Some(_)) = (destination(m), m["id"].as_str()) {
                out.push(Exposed {
                    association: a,
                    configuration: rc,
                    member: m,
                    destination,
                });
            }
        }
    }
    out
}

/// The tags of `arns`, later ones overriding earlier ones.
fn tags_of<'a>(state: &State, arns: impl IntoIterator<Item = &'a Value>) -> Map<String, Value> {
    let mut tags = Map::new();
    for arn in arns {
        if let Some(Value::Object(t)) = arn.as_str().and_then(|arn| state.get(kind::TAGS, arn)) {
            tags.extend(t.clone());
        }
    }
    tags
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Tcp,
    Http,
    Https,
}

struct Settings {
    allowed_cidrs: Option<Vec<Cidr>>,
    max_connections: Option<usize>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    drain_timeout: Duration,
    protocol: Protocol,
    tls_server_name: Option<String>,
    ca_file: Option<PathBuf>,
    client_identity: Option<ClientIdentity>,
    http2: bool,
    response_timeout: Duration,
}

impl Settings {
    fn from_tags(tags: &Map<String, Value>, owner: &str) -> Self {
        let text = |k: &str| {
            tags.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let ms = |k: &str, default: Duration| {
            text(k)
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(default, Duration::from_millis)
        };
        let allowed_cidrs = text("trellis:allowed-cidrs").map(|v| {
            Cidr::parse_list(v).unwrap_or_else(|e| {
                // Fail closed: a mistyped allow-list lets nobody in rather than everybody.
                tracing::warn!(owner, "trellis:allowed-cidrs: {e}; denying every client");
                Vec::new()
            })
        });
        let protocol = match text("trellis:protocol")
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("TCP") => Protocol::Tcp,
            Some("HTTPS") => Protocol::Https,
            Some("HTTP") => Protocol::Http,
            Some(other) => {
                tracing::warn!(
                    owner,
                    "trellis:protocol {other:?} is not TCP, HTTPS or HTTP; using TCP"
                );
                Protocol::Tcp
            }
        };
        let file = |name: &str| {
            let path = PathBuf::from(name);
            if path.is_absolute() {
                path
            } else {
                certificates_dir().join(path)
            }
        };
        let ca_file = text("trellis:ca-certificate").map(file);
        // The key may sit in the certificate's own PEM file, as many tools write them.
        let client_identity = match (
            text("trellis:client-certificate"),
            text("trellis:client-key"),
        ) {
            (Some(cert), key) => Some(ClientIdentity {
                certificate_file: file(cert),
                key_file: file(key.unwrap_or(cert)),
            }),
            (None, Some(_)) => {
                tracing::warn!(
                    owner,
                    "trellis:client-key without trellis:client-certificate; no client certificate is presented"
                );
                None
            }
            (None, None) => None,
        };
        let http2 = match text("trellis:protocol-version")
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("HTTP1") => false,
            Some("HTTP2" | "GRPC") => true,
            Some(other) => {
                tracing::warn!(
                    owner,
                    "trellis:protocol-version {other:?} is not HTTP1, HTTP2 or GRPC; using HTTP1"
                );
                false
            }
        };
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
            protocol,
            tls_server_name: text("trellis:tls-server-name").map(str::to_string),
            ca_file,
            client_identity,
            http2,
            response_timeout: ms(
                "trellis:response-timeout-ms",
                trellis_resource_gateway::DEFAULT_RESPONSE_TIMEOUT,
            ),
        }
    }

    /// How HTTP reaches `destination`: `None` for a TCP endpoint. A target always speaks HTTP,
    /// over TLS unless the protocol is `HTTP`.
    fn http(&self, destination: &str, target: bool) -> Option<HttpSettings> {
        let tls = match self.protocol {
            Protocol::Https => true,
            Protocol::Http => false,
            Protocol::Tcp if target => true,
            Protocol::Tcp => return None,
        };
        let name = self
            .tls_server_name
            .clone()
            .unwrap_or_else(|| destination.trim_end_matches('.').to_string());
        Some(HttpSettings {
            host: name.clone(),
            tls: tls.then(|| TlsSettings {
                server_name: name,
                ca_file: self.ca_file.clone(),
                client_identity: self.client_identity.clone(),
            }),
            response_timeout: self.response_timeout,
            http2: self.http2,
        })
    }
}

fn certificates_dir() -> PathBuf {
    RUNTIME.get().map_or_else(
        || PathBuf::from(".trellis/certificates"),
        |rt| rt.options.certificates.clone(),
    )
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
    fn https_tags_make_http_endpoints_and_members_register_as_targets() {
        // Untagged: TCP endpoints (TLS passes through), but targets still originate TLS.
        let st = state();
        assert!(endpoint_specs(&st).iter().all(|s| s.http.is_none()));
        let targets = target_specs(&st);
        assert_eq!(targets.len(), 2, "one per CHILD");
        assert_eq!(targets[0].arn, "arn:rcfg-a");
        assert_eq!(targets[0].ports, vec![(5432, 5432), (6000, 6001)]);
        assert!(targets.iter().all(|t| t.http.tls.is_some()));

        let mut st = state();
        st.put(
            kind::TAGS,
            "arn:g",
            json!({"trellis:protocol": "https", "trellis:ca-certificate": "/etc/trellis/ca.pem"}),
        );
        st.put(
            kind::TAGS,
            "arn:rcfg-b",
            json!({"trellis:tls-server-name": "b.internal", "trellis:response-timeout-ms": "250"}),
        );
        let specs = endpoint_specs(&st);
        assert!(specs.iter().all(|s| s.url(s.listen).starts_with("http://")));
        let b = specs
            .iter()
            .find(|s| s.resource_configuration_id == "rcfg-b")
            .and_then(|s| s.http.clone())
            .unwrap();
        assert_eq!(b.host, "b.internal");
        assert_eq!(b.response_timeout, Duration::from_millis(250));
        let tls = b.tls.unwrap();
        assert_eq!(tls.server_name, "b.internal");
        assert_eq!(tls.ca_file, Some(PathBuf::from("/etc/trellis/ca.pem")));
        let a = specs
            .iter()
            .find(|s| s.resource_configuration_id == "rcfg-a")
            .and_then(|s| s.http.clone())
            .unwrap();
        let a_tls = a.tls.unwrap();
        assert_eq!(
            a_tls.server_name, "10.0.0.1",
            "an IP resource verifies its IP"
        );
        assert_eq!(a_tls.client_identity, None);
        assert!(!a.http2);

        // Mutual TLS and HTTP/2 toward the resource; the key defaults to the certificate's file.
        st.put(
            kind::TAGS,
            "arn:rcfg-b",
            json!({"trellis:client-certificate": "/etc/trellis/gw.pem", "trellis:protocol-version": "grpc"}),
        );
        st.put(
            kind::TAGS,
            "arn:rcfg-a",
            json!({"trellis:client-certificate": "gw.pem", "trellis:client-key": "/keys/gw.key", "trellis:protocol-version": "HTTP1"}),
        );
        let specs = endpoint_specs(&st);
        let http = |id: &str| {
            specs
                .iter()
                .find(|s| s.resource_configuration_id == id)
                .and_then(|s| s.http.clone())
                .unwrap()
        };
        let b = http("rcfg-b");
        assert!(b.http2);
        assert_eq!(
            b.tls.unwrap().client_identity,
            Some(ClientIdentity {
                certificate_file: PathBuf::from("/etc/trellis/gw.pem"),
                key_file: PathBuf::from("/etc/trellis/gw.pem"),
            })
        );
        let a = http("rcfg-a");
        assert!(!a.http2);
        let id = a.tls.unwrap().client_identity.unwrap();
        assert!(
            id.certificate_file.ends_with("certificates/gw.pem"),
            "{id:?}"
        );
        assert_eq!(id.key_file, PathBuf::from("/keys/gw.key"));

        // Plain HTTP, for the endpoints and the targets.
        st.put(kind::TAGS, "arn:g", json!({"trellis:protocol": "HTTP"}));
        assert!(endpoint_specs(&st)
            .iter()
            .all(|s| s.http.as_ref().is_some_and(|h| h.tls.is_none())));
        assert!(target_specs(&st).iter().all(|t| t.http.tls.is_none()));

        // No association, no target.
        st.remove(kind::SN_RESOURCE_ASSOC, "snra-1");
        assert!(target_specs(&st).is_empty());
    }

    #[test]
    fn no_endpoints_without_a_live_service_network() {
        let mut st = state();
        st.remove(kind::SERVICE_NETWORK, "sn-1");
        assert!(endpoint_specs(&st).is_empty());
    }
}
