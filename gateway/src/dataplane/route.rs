//! The compiled route table: what the control plane's records become for the hot path. A
//! request finds its service by host, its listener by port, then walks the listener's rules in
//! priority order. The table is immutable; a config change compiles a new one and swaps it in.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;
use serde_json::Value;

use super::target_group::{Runtimes, TargetGroupRuntime};
use crate::lattice::{kind, State};

/// Listener protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
    TlsPassthrough,
}

pub struct RouteTable {
    hosts: HashMap<String, Arc<ServiceRoute>, FastHash>,
}

/// FNV-1a for maps on the request path (keys come from config; see `trellis_core::hash`).
pub use trellis_core::hash::FastHash;

pub struct ServiceRoute {
    pub id: String,
    pub arn: String,
    pub name: String,
    /// The first service network the service is associated with, for the Lattice headers.
    pub network_arn: Option<String>,
    pub listeners: Vec<ListenerRoute>,
    /// The certificate for HTTPS listeners, from `certificateArn` (see [`super::tls`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub metrics: Arc<super::metrics::ServiceMetrics>,
}

pub struct ListenerRoute {
    pub arn: String,
    pub protocol: Protocol,
    pub port: u16,
    /// `x-forwarded-port`, made once.
    pub port_header: http::HeaderValue,
    pub rules: Vec<Rule>,
    pub default_action: Action,
}

pub struct Rule {
    pub arn: String,
    pub priority: u64,
    pub method: Option<Method>,
    pub path: Option<PathMatch>,
    pub headers: Vec<HeaderMatch>,
    pub action: Action,
    pub policy: RulePolicy,
}

pub enum PathMatch {
    Exact { value: String, case_sensitive: bool },
    Prefix { value: String, case_sensitive: bool },
}

pub struct HeaderMatch {
    pub name: http::HeaderName,
    pub kind: MatchKind,
    pub value: String,
    pub case_sensitive: bool,
}

#[derive(Clone, Copy)]
pub enum MatchKind {
    Exact,
    Prefix,
    Contains,
}

#[derive(Clone)]
pub enum Action {
    Forward(Arc<WeightedGroups>),
    Fixed(u16),
}

/// Target groups with cumulative weights, for one weighted pick per request.
pub struct WeightedGroups {
    pub groups: Vec<WeightedGroup>,
    pub total: u64,
    /// `x-amzn-lattice-network` for the service these groups belong to, made once.
    pub network_header: http::HeaderValue,
}

pub struct WeightedGroup {
    /// Cumulative weight up to and including this group.
    pub cumulative: u64,
    pub runtime: Arc<TargetGroupRuntime>,
    /// `x-amzn-lattice-target` for this service and group, made once.
    pub target_header: http::HeaderValue,
}

/// Trellis extensions on a rule (or a listener's default action), set with `trellis:` tags:
/// `trellis:timeout-ms`, `trellis:retries`, `trellis:fault-delay-ms`,
/// `trellis:fault-delay-percent`, `trellis:fault-abort-status`, `trellis:fault-abort-percent`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulePolicy {
    pub timeout_ms: Option<u64>,
    pub retries: u32,
    pub fault_delay_ms: u64,
    pub fault_delay_percent: f64,
    pub fault_abort_status: u16,
    pub fault_abort_percent: f64,
    /// `trellis:retry-on`: answer statuses that are retried (`502,503,504` by default;
    /// `5xx` for all server errors).
    pub retry_on: Vec<(u16, u16)>,
}

/// What a request resolved to.
pub struct Resolved<'a> {
    pub service: &'a Arc<ServiceRoute>,
    pub listener: &'a ListenerRoute,
    pub action: &'a Action,
    pub policy: &'a RulePolicy,
}

// === impl RouteTable ===

impl RouteTable {
    pub fn empty() -> Self {
        Self {
            hosts: HashMap::default(),
        }
    }

    /// Compiles the route table from the control plane's state, reusing target-group runtimes
    /// (and so their health) where the group did not change.
    pub fn compile(
        state: &State,
        runtimes: &Runtimes,
        metrics: &super::metrics::Metrics,
        cert_dir: &std::path::Path,
    ) -> Self {
        let tags = |arn: &Value| -> HashMap<String, String> {
            arn.as_str()
                .and_then(|a| state.get(kind::TAGS, a))
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let groups = runtimes.sync(state, &tags);
        let action_of = |a: &Value, service_arn: &str, network_arn: Option<&str>| -> Action {
            if let Some(code) = a["fixedResponse"]["statusCode"].as_u64() {
                return Action::Fixed(code as u16);
            }
            let mut total = 0;
            let mut list = Vec::new();
            for g in a["forward"]["targetGroups"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let id = g["targetGroupIdentifier"].as_str().unwrap_or_default();
                let w = g["weight"].as_u64().unwrap_or(1);
                if let Some(rt) = groups.get(id) {
                    if w > 0 {
                        total += w;
                        let target = format!(
                            "ServiceArn={service_arn}; ServiceNetworkArn={}; TargetGroupArn={}",
                            network_arn.unwrap_or(""),
                            rt.arn
                        );
                        list.push(WeightedGroup {
                            cumulative: total,
                            runtime: rt.clone(),
                            target_header: header_value(&target),
                        });
                    }
                }
            }
            if list.is_empty() {
                // Forward to nothing: Lattice answers as if no target were healthy.
                return Action::Fixed(503);
            }
            let network = match network_arn {
                Some(n) => format!("ServiceNetworkArn={n}"),
                None => "SourceVpcArn=".to_string(),
            };
            Action::Forward(Arc::new(WeightedGroups {
                groups: list,
                total,
                network_header: header_value(&network),
            }))
        };

        let mut hosts = HashMap::default();
        for svc in state.all(kind::SERVICE) {
            let id = svc["id"].as_str().unwrap_or_default();
            let arn = svc["arn"].as_str().unwrap_or_default().to_string();
            let network_arn = state
                .all(kind::SN_SERVICE_ASSOC)
                .find(|a| a["serviceId"] == id)
                .and_then(|a| a["serviceNetworkArn"].as_str().map(str::to_string));
            let net = network_arn.as_deref();
            let mut listeners: Vec<ListenerRoute> = state
                .all(kind::LISTENER)
                .filter(|l| l["serviceId"] == id)
                .map(|l| {
                    let lid = &l["id"];
                    let mut rules: Vec<Rule> = state
                        .all(kind::RULE)
                        .filter(|r| &r["listenerId"] == lid)
                        .map(|r| {
                            compile_rule(r, action_of(&r["action"], &arn, net), &tags(&r["arn"]))
                        })
                        .collect();
                    rules.sort_by_key(|r| r.priority);
                    ListenerRoute {
                        arn: l["arn"].as_str().unwrap_or_default().to_string(),
                        protocol: match l["protocol"].as_str() {
                            Some("HTTPS") => Protocol::Https,
                            Some("TLS_PASSTHROUGH") => Protocol::TlsPassthrough,
                            _ => Protocol::Http,
                        },
                        port: l["port"].as_u64().unwrap_or(80) as u16,
                        port_header: http::HeaderValue::from(
                            l["port"].as_u64().unwrap_or(80) as u16
                        ),
                        rules,
                        default_action: action_of(&l["defaultAction"], &arn, net),
                    }
                })
                .collect();
            listeners.sort_by_key(|l| l.port);
            let route = Arc::new(ServiceRoute {
                id: id.to_string(),
                name: svc["name"].as_str().unwrap_or_default().to_string(),
                network_arn,
                listeners,
                tls: svc["certificateArn"].as_str().and_then(|c| {
                    match super::tls::load_server_config(cert_dir, c) {
                        Ok(config) => Some(config),
                        Err(e) => {
                            tracing::error!(service = %id, "{e}");
                            None
                        }
                    }
                }),
                metrics: metrics.service(&arn),
                arn,
            });
            for host in [&svc["dnsEntry"]["domainName"], &svc["customDomainName"]] {
                if let Some(h) = host.as_str() {
                    hosts.insert(h.to_ascii_lowercase(), route.clone());
                }
            }
        }
        Self { hosts }
    }

    /// The service for a host name (without port), case-insensitively.
    pub fn service(&self, host: &str) -> Option<&Arc<ServiceRoute>> {
        if let Some(s) = self.hosts.get(host) {
            return Some(s);
        }
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.hosts.get(&host.to_ascii_lowercase());
        }
        None
    }

    /// Resolves host, port and request line to an action.
    pub fn resolve<'a>(
        &'a self,
        host: &str,
        port: u16,
        tls: bool,
        method: &Method,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Option<Resolved<'a>> {
        let service = self.service(host)?;
        let listener = service.listeners.iter().find(|l| {
            l.port == port
                && match l.protocol {
                    Protocol::Http => !tls,
                    Protocol::Https => tls,
                    Protocol::TlsPassthrough => false,
                }
        })?;
        for rule in &listener.rules {
            if rule.matches(method, path, headers) {
                return Some(Resolved {
                    service,
                    listener,
                    action: &rule.action,
                    policy: &rule.policy,
                });
            }
        }
        static DEFAULT: RulePolicy = RulePolicy {
            timeout_ms: None,
            retries: 0,
            fault_delay_ms: 0,
            fault_delay_percent: 0.0,
            fault_abort_status: 0,
            fault_abort_percent: 0.0,
            retry_on: Vec::new(),
        };
        Some(Resolved {
            service,
            listener,
            action: &listener.default_action,
            policy: &DEFAULT,
        })
    }

    /// Every host name served, for diagnostics.
    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.hosts.keys()
    }
}

fn compile_rule(r: &Value, action: Action, tags: &HashMap<String, String>) -> Rule {
    let http = &r["match"]["httpMatch"];
    let path = http["pathMatch"].as_object().and_then(|pm| {
        let cs = pm
            .get("caseSensitive")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let m = &pm.get("match")?;
        if let Some(v) = m["exact"].as_str() {
            Some(PathMatch::Exact {
                value: fold(v, cs),
                case_sensitive: cs,
            })
        } else {
            m["prefix"].as_str().map(|v| PathMatch::Prefix {
                value: fold(v, cs),
                case_sensitive: cs,
            })
        }
    });
    let headers = http["headerMatches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            let name = http::HeaderName::from_bytes(h["name"].as_str()?.as_bytes()).ok()?;
            let cs = h["caseSensitive"].as_bool().unwrap_or(false);
            let m = &h["match"];
            let (kind, value) = if let Some(v) = m["exact"].as_str() {
                (MatchKind::Exact, v)
            } else if let Some(v) = m["prefix"].as_str() {
                (MatchKind::Prefix, v)
            } else {
                (MatchKind::Contains, m["contains"].as_str()?)
            };
            Some(HeaderMatch {
                name,
                kind,
                value: fold(value, cs),
                case_sensitive: cs,
            })
        })
        .collect();
    Rule {
        arn: r["arn"].as_str().unwrap_or_default().to_string(),
        priority: r["priority"].as_u64().unwrap_or(u64::MAX),
        method: http["method"]
            .as_str()
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok()),
        path,
        headers,
        action,
        policy: RulePolicy::from_tags(tags),
    }
}

fn fold(v: &str, case_sensitive: bool) -> String {
    if case_sensitive {
        v.to_string()
    } else {
        v.to_ascii_lowercase()
    }
}

// === impl Rule ===

impl Rule {
    pub fn matches(&self, method: &Method, path: &str, headers: &http::HeaderMap) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        if let Some(p) = &self.path {
            let ok = match p {
                PathMatch::Exact {
                    value,
                    case_sensitive,
                } => eq(path, value, *case_sensitive),
                PathMatch::Prefix {
                    value,
                    case_sensitive,
                } => {
                    path.len() >= value.len()
                        && path.is_char_boundary(value.len())
                        && eq(&path[..value.len()], value, *case_sensitive)
                }
            };
            if !ok {
                return false;
            }
        }
        self.headers.iter().all(|h| {
            headers.get_all(&h.name).iter().any(|v| {
                // Byte comparisons, case folded on the fly: no allocation per request.
                let (v, want) = (v.as_bytes(), h.value.as_bytes());
                let same = |a: &[u8]| {
                    if h.case_sensitive {
                        a == want
                    } else {
                        a.eq_ignore_ascii_case(want)
                    }
                };
                match h.kind {
                    MatchKind::Exact => same(v),
                    MatchKind::Prefix => v.len() >= want.len() && same(&v[..want.len()]),
                    MatchKind::Contains => want.is_empty() || v.windows(want.len()).any(same),
                }
            })
        })
    }
}

fn eq(a: &str, b: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

// === impl RulePolicy ===

impl RulePolicy {
    pub fn from_tags(tags: &HashMap<String, String>) -> Self {
        let num = |k: &str| tags.get(k).and_then(|v| v.trim().parse::<f64>().ok());
        Self {
            // 0 means no timeout, as in Envoy and the Gateway API.
            timeout_ms: num("trellis:timeout-ms")
                .map(|v| v as u64)
                .filter(|ms| *ms > 0),
            retries: num("trellis:retries").map(|v| v as u32).unwrap_or(0),
            fault_delay_ms: num("trellis:fault-delay-ms").map(|v| v as u64).unwrap_or(0),
            fault_delay_percent: num("trellis:fault-delay-percent").unwrap_or(0.0),
            fault_abort_status: num("trellis:fault-abort-status")
                .map(|v| v as u16)
                .unwrap_or(0),
            fault_abort_percent: num("trellis:fault-abort-percent").unwrap_or(0.0),
            retry_on: match tags.get("trellis:retry-on") {
                Some(list) => list
                    .split(',')
                    .filter_map(|c| match c.trim() {
                        "5xx" => Some((500, 599)),
                        "4xx" => Some((400, 499)),
                        code => code.parse().ok().map(|c| (c, c)),
                    })
                    .collect(),
                None => vec![(502, 504)],
            },
        }
    }

    /// Whether an answer with `status` is retried.
    pub fn retries_status(&self, status: u16) -> bool {
        self.retry_on
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

// === impl WeightedGroups ===

impl WeightedGroups {
    /// One target group, chosen with probability proportional to its weight.
    pub fn pick(&self) -> &WeightedGroup {
        if self.groups.len() == 1 {
            return &self.groups[0];
        }
        let r = fastrand::u64(0..self.total);
        let i = self.groups.partition_point(|g| g.cumulative <= r);
        &self.groups[i.min(self.groups.len() - 1)]
    }
}

/// A header value from text made by us (ARNs); falls back to empty rather than failing a route.
fn header_value(s: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(s).unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: Value) -> Rule {
        compile_rule(&json, Action::Fixed(200), &HashMap::new())
    }

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn path_prefix_is_case_sensitive_by_default() {
        let r = rule(
            serde_json::json!({"match": {"httpMatch": {"pathMatch": {"match": {"prefix": "/API"}}}}}),
        );
        assert!(r.matches(&Method::GET, "/API/x", &headers(&[])));
        assert!(!r.matches(&Method::GET, "/api/x", &headers(&[])));
        let r = rule(
            serde_json::json!({"match": {"httpMatch": {"pathMatch": {"match": {"prefix": "/API"}, "caseSensitive": false}}}}),
        );
        assert!(r.matches(&Method::GET, "/api/x", &headers(&[])));
    }

    #[test]
    fn exact_path_and_method() {
        let r = rule(
            serde_json::json!({"match": {"httpMatch": {"method": "POST", "pathMatch": {"match": {"exact": "/checkout"}}}}}),
        );
        assert!(r.matches(&Method::POST, "/checkout", &headers(&[])));
        assert!(!r.matches(&Method::GET, "/checkout", &headers(&[])));
        assert!(!r.matches(&Method::POST, "/checkout/x", &headers(&[])));
    }

    #[test]
    fn header_matches_all_must_hold() {
        let r = rule(
            serde_json::json!({"match": {"httpMatch": {"headerMatches": [
                {"name": "x-version", "match": {"exact": "v2"}},
                {"name": "user-agent", "match": {"contains": "Mobile"}, "caseSensitive": true},
                {"name": "x-tenant", "match": {"prefix": "acme"}}
            ]}}}),
        );
        let ok = headers(&[
            ("x-version", "V2"),
            ("user-agent", "a Mobile b"),
            ("x-tenant", "ACME-1"),
        ]);
        assert!(r.matches(&Method::GET, "/", &ok));
        let bad = headers(&[
            ("x-version", "v2"),
            ("user-agent", "a mobile b"),
            ("x-tenant", "acme"),
        ]);
        assert!(!r.matches(&Method::GET, "/", &bad));
        assert!(!r.matches(&Method::GET, "/", &headers(&[("x-version", "v2")])));
    }

    #[test]
    fn policy_from_tags() {
        let mut t = HashMap::new();
        t.insert("trellis:timeout-ms".to_string(), "250".to_string());
        t.insert(
            "trellis:fault-abort-percent".to_string(),
            "12.5".to_string(),
        );
        let p = RulePolicy::from_tags(&t);
        assert_eq!(p.timeout_ms, Some(250));
        assert_eq!(p.fault_abort_percent, 12.5);
        assert_eq!(p.retries, 0);
        assert!(
            p.retries_status(503) && !p.retries_status(500),
            "502-504 by default"
        );
        t.insert("trellis:retry-on".to_string(), "500, 4xx".to_string());
        t.insert("trellis:timeout-ms".to_string(), "0".to_string());
        let p = RulePolicy::from_tags(&t);
        assert!(p.retries_status(500) && p.retries_status(404) && !p.retries_status(503));
        assert_eq!(p.timeout_ms, None, "0 means no timeout");
    }
}
