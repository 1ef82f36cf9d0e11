//! Target groups at run time: their endpoints with health, outstanding requests and passive
//! ejection; load balancing (round robin, least outstanding requests); the circuit breaker;
//! active health checks. A runtime survives config swaps while its group is unchanged, and
//! endpoints keep their health across a change of the group's other settings.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::Value;

use crate::lattice::{kind, State};

pub const INITIAL: u8 = 0;
pub const HEALTHY: u8 = 1;
pub const UNHEALTHY: u8 = 2;
pub const UNAVAILABLE: u8 = 3;

/// Upstream protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http1,
    Http2,
    Grpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balancing {
    RoundRobin,
    LeastOutstanding,
}

/// One registered target.
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `ip:port`, for the upstream URI and logs.
    pub authority: http::uri::Authority,
    /// The same as a `Host` header, for requests that come without one.
    pub host_header: http::HeaderValue,
    pub health: AtomicU8,
    pub outstanding: AtomicUsize,
    consecutive_failures: AtomicU32,
    /// Passive ejection: not picked before this time (ms since epoch).
    ejected_until: AtomicU64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub enabled: bool,
    pub path: String,
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Accepted status ranges, from a matcher like `200`, `200-299` or `200,204`.
    pub codes: Vec<(u16, u16)>,
    pub version: Version,
}

/// Circuit-breaker and outlier settings (`trellis:` tags on the target group).
#[derive(Debug, Clone, PartialEq)]
pub struct Breaker {
    /// `trellis:max-requests`: concurrent requests before new ones wait or get 503.
    pub max_requests: usize,
    /// `trellis:max-pending`: requests that may wait for a slot while `max_requests` are in
    /// flight; beyond it they get 503 at once (default 0: none wait).
    pub max_pending: usize,
    /// `trellis:consecutive-5xx`: 5xx answers in a row that eject a target (0 = off).
    pub consecutive_5xx: u32,
    /// Connect failures and resets in a row that eject a target.
    pub consecutive_errors: u32,
    pub ejection: Duration,
}

pub struct TargetGroupRuntime {
    pub id: String,
    pub arn: String,
    pub kind: String,
    /// LAMBDA and WASM groups: the registered function ARNs (a WASM group's function names are
    /// made ARNs in the group's own partition, region and account) and the event version
    /// (`V1`/`V2`).
    pub functions: Vec<String>,
    pub lambda_event_version: String,
    pub https: bool,
    pub version: Version,
    pub balancing: Balancing,
    pub breaker: Breaker,
    pub health_check: HealthCheck,
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Requests in flight (holding a [`Slot`]).
    pub in_flight: AtomicUsize,
    /// Requests waiting for a slot.
    pub pending: AtomicUsize,
    /// Wakes a waiting request when a slot frees.
    slot_freed: tokio::sync::Notify,
    /// Retries in flight, held under the retry budget.
    pub retries_in_flight: AtomicUsize,
    pub metrics: Arc<super::metrics::TargetGroupMetrics>,
    rr: AtomicUsize,
    /// What this runtime was built from: a new config is compared with it.
    signature: String,
}

/// Every target group's runtime, by id.
#[derive(Default)]
pub struct Runtimes {
    groups: Mutex<HashMap<String, Arc<TargetGroupRuntime>>>,
    metrics: Arc<super::metrics::Metrics>,
}

// === impl Endpoint ===

impl Endpoint {
    fn new(addr: SocketAddr) -> Self {
        let text = addr.to_string();
        Self {
            addr,
            host_header: http::HeaderValue::from_str(&text)
                .expect("a socket address is a valid header value"),
            authority: text.parse().expect("a socket address is a valid authority"),
            health: AtomicU8::new(INITIAL),
            outstanding: AtomicUsize::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
        }
    }

    /// Whether new requests may go here: not failed by health checks, not ejected.
    pub fn routable(&self, now_ms: u64) -> bool {
        self.health.load(Ordering::Relaxed) != UNHEALTHY
            && self.ejected_until.load(Ordering::Relaxed) <= now_ms
    }

    pub fn status_name(&self) -> &'static str {
        match self.health.load(Ordering::Relaxed) {
            HEALTHY => "HEALTHY",
            UNHEALTHY => "UNHEALTHY",
            UNAVAILABLE => "UNAVAILABLE",
            _ => "INITIAL",
        }
    }
}

/// One admitted request's place under the circuit breaker; dropping it frees the place.
pub struct Slot<'a>(&'a TargetGroupRuntime);

// === impl TargetGroupRuntime ===

impl TargetGroupRuntime {
    /// Admits one request under the circuit breaker: at once while fewer than `max_requests`
    /// are in flight, else after a wait in line while fewer than `max_pending` wait; `None`
    /// (503) when neither.
    pub async fn admit(&self) -> Option<Slot<'_>> {
        if let Some(slot) = self.try_admit() {
            return Some(slot);
        }
        if self.pending.fetch_add(1, Ordering::SeqCst) >= self.breaker.max_pending {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        // Counted as waiting until admitted or dropped (the client went away, a timeout).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&self.pending);
        loop {
            let freed = self.slot_freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a slot freed in between still wakes us.
            freed.as_mut().enable();
            if let Some(slot) = self.try_admit() {
                return Some(slot);
            }
            freed.await;
        }
    }

    /// A slot if one is free now.
    pub fn try_admit(&self) -> Option<Slot<'_>> {
        let max = self.breaker.max_requests;
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self))
    }

    /// Picks an endpoint for one request, or `None` when no target can take it.
    pub fn pick(&self) -> Option<&Arc<Endpoint>> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let now = trellis_core::clock::now_millis();
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        match self.balancing {
            Balancing::RoundRobin => (0..n)
                .map(|i| &self.endpoints[(start + i) % n])
                .find(|e| e.routable(now)),
            Balancing::LeastOutstanding => (0..n)
                .map(|i| &self.endpoints[(start + i) % n])
                .filter(|e| e.routable(now))
                .min_by_key(|e| e.outstanding.load(Ordering::Relaxed)),
        }
    }

    /// Records how a request to `ep` ended, for passive ejection.
    pub fn observe(&self, ep: &Endpoint, outcome: Outcome) {
        let limit = match outcome {
            Outcome::Ok => {
                ep.consecutive_failures.store(0, Ordering::Relaxed);
                return;
            }
            Outcome::Status5xx if self.breaker.consecutive_5xx == 0 => return,
            Outcome::Status5xx => self.breaker.consecutive_5xx,
            Outcome::ConnectError => self.breaker.consecutive_errors,
        };
        let n = ep.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= limit {
            ep.consecutive_failures.store(0, Ordering::Relaxed);
            let until =
                trellis_core::clock::now_millis() + self.breaker.ejection.as_millis() as u64;
            ep.ejected_until.store(until, Ordering::Relaxed);
            tracing::warn!(target_group = %self.id, target = %ep.authority, "target ejected after {n} consecutive failures");
        }
    }

    pub fn healthy_count(&self) -> usize {
        let now = trellis_core::clock::now_millis();
        self.endpoints.iter().filter(|e| e.routable(now)).count()
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let tg = self.0;
        tg.in_flight.fetch_sub(1, Ordering::SeqCst);
        if tg.pending.load(Ordering::SeqCst) > 0 {
            tg.slot_freed.notify_one();
        }
    }
}

/// How an upstream request ended, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Status5xx,
    ConnectError,
}

// === impl Runtimes ===

impl Runtimes {
    pub fn new(metrics: Arc<super::metrics::Metrics>) -> Self {
        Self {
            groups: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Brings the runtimes in line with `state`: unchanged groups are kept, changed ones rebuilt
    /// (keeping their endpoints' health), removed ones dropped (their health checks stop).
    pub fn sync(
        &self,
        state: &State,
        tags: &dyn Fn(&Value) -> HashMap<String, String>,
    ) -> HashMap<String, Arc<TargetGroupRuntime>> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::new();
        for tg in state.all(kind::TARGET_GROUP) {
            let id = tg["id"].as_str().unwrap_or_default().to_string();
            let t = tags(&tg["arn"]);
            let mut sorted_tags: Vec<_> = t.iter().collect();
            sorted_tags.sort();
            let signature = format!("{}{}{:?}", tg["config"], tg["targets"], sorted_tags);
            if let Some(existing) = groups.get(&id).filter(|g| g.signature == signature) {
                next.insert(id, existing.clone());
                continue;
            }
            let old = groups.get(&id);
            let rt = Arc::new(build(tg, &t, signature, old, &self.metrics));
            if rt.health_check.enabled && !rt.endpoints.is_empty() {
                super::health::spawn(Arc::downgrade(&rt));
            }
            next.insert(id, rt);
        }
        *groups = next.clone();
        next
    }

    /// Health of one target for `ListTargets`: status and reason code.
    pub fn target_health(&self, tg: &str, ip: &str, port: u16) -> (String, Option<String>) {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let Some(g) = groups.get(tg) else {
            return ("UNAVAILABLE".into(), None);
        };
        let ep = ip.parse::<IpAddr>().ok().and_then(|ip| {
            g.endpoints
                .iter()
                .find(|e| e.addr == SocketAddr::new(ip, port))
        });
        match ep {
            Some(e) => {
                let status = e.status_name().to_string();
                let reason = match status.as_str() {
                    "UNHEALTHY" => Some("HealthCheckFailed".to_string()),
                    "UNAVAILABLE" => Some("HealthCheckDisabled".to_string()),
                    "INITIAL" => Some("HealthCheckInProgress".to_string()),
                    _ => None,
                };
                (status, reason)
            }
            None if g.kind == "LAMBDA" || g.kind == "WASM" => ("UNAVAILABLE".into(), None),
            None => ("UNAVAILABLE".into(), None),
        }
    }

    pub fn all(&self) -> Vec<Arc<TargetGroupRuntime>> {
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

fn build(
    tg: &Value,
    tags: &HashMap<String, String>,
    signature: String,
    old: Option<&Arc<TargetGroupRuntime>>,
    metrics: &super::metrics::Metrics,
) -> TargetGroupRuntime {
    let config = &tg["config"];
    let hc = &config["healthCheck"];
    let version = match config["protocolVersion"].as_str() {
        Some("HTTP2") => Version::Http2,
        Some("GRPC") => Version::Grpc,
        _ => Version::Http1,
    };
    let health_check = HealthCheck {
        // gRPC targets are not HTTP-checked by Lattice unless configured to.
        enabled: hc["enabled"].as_bool().unwrap_or(true),
        path: hc["path"].as_str().unwrap_or("/").to_string(),
        port: hc["port"].as_u64().map(|p| p as u16),
        interval: Duration::from_secs(hc["healthCheckIntervalSeconds"].as_u64().unwrap_or(30)),
        timeout: Duration::from_secs(hc["healthCheckTimeoutSeconds"].as_u64().unwrap_or(5)),
        healthy_threshold: hc["healthyThresholdCount"].as_u64().unwrap_or(5) as u32,
        unhealthy_threshold: hc["unhealthyThresholdCount"].as_u64().unwrap_or(2) as u32,
        codes: parse_matcher(hc["matcher"]["httpCode"].as_str().unwrap_or("200")),
        version: if hc["protocolVersion"] == "HTTP2" {
            Version::Http2
        } else {
            Version::Http1
        },
    };
    let num = |k: &str| tags.get(k).and_then(|v| v.trim().parse::<u64>().ok());
    let breaker = Breaker {
        max_requests: num("trellis:max-requests").unwrap_or(u64::MAX) as usize,
        max_pending: num("trellis:max-pending").unwrap_or(0) as usize,
        consecutive_5xx: num("trellis:consecutive-5xx").unwrap_or(0) as u32,
        consecutive_errors: num("trellis:consecutive-errors").unwrap_or(5) as u32,
        ejection: Duration::from_millis(num("trellis:ejection-ms").unwrap_or(30_000)),
    };
    let balancing = match tags.get("trellis:load-balancing").map(String::as_str) {
        Some("LEAST_OUTSTANDING_REQUESTS") => Balancing::LeastOutstanding,
        _ => Balancing::RoundRobin,
    };
    let default_port = config["port"].as_u64().unwrap_or(80) as u16;
    let endpoints = tg["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let ip: IpAddr = t["id"].as_str()?.parse().ok()?;
            let port = t["port"].as_u64().map(|p| p as u16).unwrap_or(default_port);
            let addr = SocketAddr::new(ip, port);
            // Keep the endpoint (and so its health) when the target stays registered.
            let reused = old.and_then(|o| o.endpoints.iter().find(|e| e.addr == addr).cloned());
            let ep = reused.unwrap_or_else(|| Arc::new(Endpoint::new(addr)));
            if !health_check.enabled {
                ep.health.store(UNAVAILABLE, Ordering::Relaxed);
            } else if ep.health.load(Ordering::Relaxed) == UNAVAILABLE {
                ep.health.store(INITIAL, Ordering::Relaxed);
            }
            Some(ep)
        })
        .collect();
    let arn = tg["arn"].as_str().unwrap_or_default().to_string();
    let functions = if tg["type"] == "LAMBDA" || tg["type"] == "WASM" {
        tg["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["id"].as_str())
            .map(|id| {
                if tg["type"] == "WASM" {
                    function_arn(id, &arn)
                } else {
                    id.to_string()
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    TargetGroupRuntime {
        id: tg["id"].as_str().unwrap_or_default().to_string(),
        metrics: metrics.target_group(&arn),
        arn,
        kind: tg["type"].as_str().unwrap_or("IP").to_string(),
        functions,
        lambda_event_version: config["lambdaEventStructureVersion"]
            .as_str()
            .unwrap_or("V1")
            .to_string(),
        https: config["protocol"] == "HTTPS",
        version,
        balancing,
        breaker,
        health_check,
        endpoints,
        in_flight: AtomicUsize::new(0),
        pending: AtomicUsize::new(0),
        slot_freed: tokio::sync::Notify::new(),
        retries_in_flight: AtomicUsize::new(0),
        rr: AtomicUsize::new(fastrand::usize(..1024)),
        signature,
    }
}

/// A function target as the ARN it is registered under: an ARN stays as it is; a name (WASM
/// groups take names too) becomes the function's ARN in the target group's partition, region
/// and account.
fn function_arn(id: &str, tg_arn: &str) -> String {
    if id.starts_with("arn:") {
        return id.to_string();
    }
    let mut parts = tg_arn.splitn(6, ':');
    let (_, partition, _, region, account) = (
        parts.next(),
        parts.next().unwrap_or("aws"),
        parts.next(),
        parts.next().unwrap_or("us-east-1"),
        parts.next().unwrap_or("000000000000"),
    );
    format!("arn:{partition}:lambda:{region}:{account}:function:{id}")
}

/// `200`, `200-299`, `200,204,301-302` to inclusive ranges.
pub fn parse_matcher(m: &str) -> Vec<(u16, u16)> {
    m.split(',')
        .filter_map(|part| {
            let part = part.trim();
            match part.split_once('-') {
                Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
                None => part.parse().ok().map(|c| (c, c)),
            }
        })
        .collect()
}

/// Weak handle a health checker holds, so dropping the runtime stops it.
pub type WeakRuntime = Weak<TargetGroupRuntime>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn runtime(targets: Value, tags: &[(&str, &str)]) -> TargetGroupRuntime {
        let tg = json!({"id": "tg-1", "arn": "arn:tg", "type": "IP",
            "config": {"port": 80, "healthCheck": {"enabled": false}}, "targets": targets});
        let tags = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        build(
            &tg,
            &tags,
            String::new(),
            None,
            &super::super::metrics::Metrics::default(),
        )
    }

    #[test]
    fn wasm_targets_may_be_function_names() {
        let tg = "arn:aws:vpc-lattice:eu-west-1:123456789012:targetgroup/tg-0123456789abcdef0";
        assert_eq!(
            function_arn("hello", tg),
            "arn:aws:lambda:eu-west-1:123456789012:function:hello"
        );
        let arn = "arn:aws:lambda:us-east-1:000000000000:function:f:live";
        assert_eq!(function_arn(arn, tg), arn);
    }

    #[test]
    fn round_robin_visits_every_target() {
        let rt = runtime(
            json!([{"id": "127.0.0.1", "port": 1}, {"id": "127.0.0.1", "port": 2}, {"id": "127.0.0.1", "port": 3}]),
            &[],
        );
        let mut seen: Vec<u16> = (0..6).map(|_| rt.pick().unwrap().addr.port()).collect();
        seen.sort();
        assert_eq!(seen, [1, 1, 2, 2, 3, 3]);
    }

    #[test]
    fn least_outstanding_prefers_idle_targets() {
        let rt = runtime(
            json!([{"id": "127.0.0.1", "port": 1}, {"id": "127.0.0.1", "port": 2}]),
            &[("trellis:load-balancing", "LEAST_OUTSTANDING_REQUESTS")],
        );
        rt.endpoints[0].outstanding.store(5, Ordering::Relaxed);
        for _ in 0..10 {
            assert_eq!(rt.pick().unwrap().addr.port(), 2);
        }
    }

    #[test]
    fn unhealthy_and_ejected_targets_are_skipped() {
        let rt = runtime(
            json!([{"id": "127.0.0.1", "port": 1}, {"id": "127.0.0.1", "port": 2}]),
            &[("trellis:consecutive-errors", "2")],
        );
        rt.endpoints[0].health.store(UNHEALTHY, Ordering::Relaxed);
        for _ in 0..4 {
            assert_eq!(rt.pick().unwrap().addr.port(), 2);
        }
        rt.observe(&rt.endpoints[1], Outcome::ConnectError);
        assert!(rt.pick().is_some());
        rt.observe(&rt.endpoints[1], Outcome::ConnectError);
        assert!(rt.pick().is_none(), "second failure ejects the last target");
    }

    #[tokio::test]
    async fn breaker_admits_max_requests_then_max_pending_waiters() {
        let rt = runtime(
            json!([{"id": "127.0.0.1", "port": 1}]),
            &[("trellis:max-requests", "1"), ("trellis:max-pending", "1")],
        );
        let first = rt.admit().await.expect("a free slot");
        let mut waiter = Box::pin(rt.admit());
        let waited = tokio::time::timeout(Duration::from_millis(20), &mut waiter).await;
        assert!(waited.is_err(), "waits in line");
        assert_eq!(rt.pending.load(Ordering::SeqCst), 1);
        assert!(rt.admit().await.is_none(), "the line is full: 503 at once");
        drop(first);
        let second = waiter.await.expect("admitted when the slot frees");
        assert_eq!(rt.in_flight.load(Ordering::SeqCst), 1);
        assert_eq!(rt.pending.load(Ordering::SeqCst), 0);
        drop(second);
        assert_eq!(rt.in_flight.load(Ordering::SeqCst), 0);

        let strict = runtime(json!([]), &[("trellis:max-requests", "1")]);
        let _held = strict.admit().await.unwrap();
        assert!(strict.admit().await.is_none(), "no max-pending: none wait");
    }

    #[test]
    fn matcher_ranges() {
        assert_eq!(parse_matcher("200"), vec![(200, 200)]);
        assert_eq!(parse_matcher("200-299, 301"), vec![(200, 299), (301, 301)]);
    }
}
