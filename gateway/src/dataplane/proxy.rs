//! One request through the data plane, phase by phase.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;

use super::route::{Action, Resolved, RulePolicy, WeightedGroup};
use super::target_group::{Endpoint, Outcome, TargetGroupRuntime, Version as UpVersion};
use super::{Body, BoxError, DataPlane};
use trellis_core::target::{StreamingAnswer, TargetError};

/// What forwarding produced: the answer, the target that gave it, and how long it took.
type Forwarded = (Response<Body>, Option<Arc<Endpoint>>, Option<Duration>);

/// What the accept phase knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The peer's IP as a header value, made once per connection for `x-forwarded-for`.
    pub peer_ip: HeaderValue,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        Self { peer, tls, peer_ip }
    }
}

/// Why the auth phase refused a request (filled in by the auth policies).
pub struct Denied {
    pub reason: String,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static LATTICE_NETWORK: HeaderName = HeaderName::from_static("x-amzn-lattice-network");
static LATTICE_TARGET: HeaderName = HeaderName::from_static("x-amzn-lattice-target");
static LATTICE_IDENTITY: HeaderName = HeaderName::from_static("x-amzn-lattice-identity");

/// Headers that describe one hop and are never forwarded (`connection` first: see
/// [`strip_hop_by_hop`]).
static HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::TRAILER,
    header::UPGRADE,
];

/// The outcome of one request, for metrics and the access log.
pub struct Served<'a> {
    pub status: u16,
    pub service_arn: Option<&'a str>,
    pub network_arn: Option<&'a str>,
    pub target_group: Option<Arc<TargetGroupRuntime>>,
    pub target: Option<Arc<Endpoint>>,
    pub auth_denied: Option<String>,
    pub upstream_time: Option<Duration>,
}

/// The parts of a request the access log needs, taken before the request is forwarded.
pub struct RequestSummary {
    /// The host the request addressed, lowercase, without port.
    pub host: String,
    pub method: Method,
    pub path: String,
    pub version: Version,
    pub user_agent: Option<String>,
    pub bytes_in: Option<u64>,
}

impl RequestSummary {
    fn of(req: &Request<Incoming>, host: &str) -> Self {
        Self {
            host: host.to_ascii_lowercase(),
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            version: req.version(),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            bytes_in: http_body::Body::size_hint(req.body()).exact(),
        }
    }
}

impl Served<'_> {
    fn status(status: u16) -> Self {
        Self {
            status,
            service_arn: None,
            network_arn: None,
            target_group: None,
            target: None,
            auth_denied: None,
            upstream_time: None,
        }
    }
}

// === impl DataPlane: the phases ===

impl DataPlane {
    pub async fn handle(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Response<Body> {
        let start = Instant::now();
        let table = self.routes.load_full();
        let (host, port) = host_and_port(&req, conn.tls);
        let summary = self
            .access_log
            .as_ref()
            .map(|_| RequestSummary::of(&req, host));
        let resolved = table.resolve(
            host,
            port,
            conn.tls,
            req.method(),
            req.uri().path(),
            req.headers(),
        );
        let Some(resolved) = resolved else {
            self.metrics
                .unrouted_requests
                .fetch_add(1, Ordering::Relaxed);
            let resp = text(
                StatusCode::NOT_FOUND,
                "Not Found: no service listens for this host and port\n",
            );
            self.log(summary, conn, start, &Served::status(404));
            return resp;
        };
        let mut served = Served::status(0);
        served.service_arn = Some(&resolved.service.arn);
        served.network_arn = resolved.service.network_arn.as_deref();

        let resp = if let Err(denied) = authorize(&req, &resolved) {
            served.auth_denied = Some(denied.reason);
            text(
                StatusCode::FORBIDDEN,
                "AccessDeniedException: not authorized\n",
            )
        } else if let Some(resp) = inject_fault(resolved.policy).await {
            resp
        } else {
            match resolved.action {
                Action::Fixed(code) => {
                    empty(StatusCode::from_u16(*code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE))
                }
                Action::Forward(groups) => {
                    let group = groups.pick();
                    let upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
                    let (resp, target, took) = self
                        .forward(req, group, &groups.network_header, &resolved, conn, upgrade)
                        .await;
                    served.target_group = Some(group.runtime.clone());
                    served.target = target;
                    served.upstream_time = took;
                    resp
                }
            }
        };
        served.status = resp.status().as_u16();
        resolved
            .service
            .metrics
            .record(served.status, start.elapsed().as_micros() as u64);
        self.log(summary, conn, start, &served);
        resp
    }

    fn log(
        &self,
        summary: Option<RequestSummary>,
        conn: &ConnInfo,
        start: Instant,
        served: &Served<'_>,
    ) {
        if let (Some(log), Some(summary)) = (&self.access_log, summary) {
            log.write(&super::access_log::Entry {
                summary,
                conn,
                start,
                served,
            });
        }
    }

    /// Sends the request to a target of the picked group, with the rule's timeout and retries.
    async fn forward(
        &self,
        req: Request<Incoming>,
        group: &WeightedGroup,
        network_header: &HeaderValue,
        resolved: &Resolved<'_>,
        conn: &ConnInfo,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Forwarded {
        let tg = &group.runtime;
        if tg.kind == "LAMBDA" || tg.kind == "WASM" {
            return (self.invoke_function(req, tg, resolved).await, None, None);
        }
        if tg.kind != "IP" && tg.kind != "INSTANCE" {
            return (
                text(
                    StatusCode::BAD_GATEWAY,
                    "Bad Gateway: target group type not served\n",
                ),
                None,
                None,
            );
        }
        let policy = resolved.policy;
        // The circuit breaker: a slot at once, or a wait in line that counts toward the timeout.
        let admitted = match (tg.try_admit(), policy.timeout_ms) {
            (Some(slot), _) => Ok(Some(slot)),
            (None, Some(ms)) => tokio::time::timeout(Duration::from_millis(ms), tg.admit())
                .await
                .map_err(|_| ()),
            (None, None) => Ok(tg.admit().await),
        };
        let _slot = match admitted {
            Ok(Some(slot)) => slot,
            Ok(None) => {
                tg.metrics.overflows.fetch_add(1, Ordering::Relaxed);
                return (
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable: circuit breaker open\n",
                    ),
                    None,
                    None,
                );
            }
            Err(()) => {
                tg.metrics.timeouts.fetch_add(1, Ordering::Relaxed);
                return (
                    text(
                        StatusCode::GATEWAY_TIMEOUT,
                        "Gateway Timeout: no target was free in time\n",
                    ),
                    None,
                    None,
                );
            }
        };
        let (parts, body) = req.into_parts();
        // Only requests that can be sent again unchanged are retried: idempotent, no body.
        let retriable = is_idempotent(&parts.method)
            && http_body::Body::is_end_stream(&body)
            && client_upgrade.is_none();
        let attempts = if retriable { policy.retries + 1 } else { 1 };
        let mut body = Some(body);
        // Plain HTTP/1.1 groups use this thread's own connection pool (see `send_upstream`).
        let direct_h1 = !tg.https && tg.version == UpVersion::Http1;
        let (headers, added) = forwarded_headers(
            parts.headers,
            conn,
            &resolved.listener.port_header,
            network_header,
            &group.target_header,
            client_upgrade.is_some(),
            direct_h1,
        );
        let mut headers = Some(headers);
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let mut last: Option<Forwarded> = None;

        for attempt in 0..attempts {
            let Some(ep) = tg.pick() else {
                return (
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable: no healthy target\n",
                    ),
                    None,
                    None,
                );
            };
            if attempt > 0 {
                tg.metrics.retries.fetch_add(1, Ordering::Relaxed);
            }
            let _retry_guard = (attempt > 0).then(|| InFlight::enter(&tg.retries_in_flight));
            let up_body: Body = match body.take() {
                Some(b) => b.map_err(Into::into).boxed(),
                None => empty_body(),
            };
            let mut up = Request::new(up_body);
            *up.method_mut() = parts.method.clone();
            // The last attempt takes the headers; earlier ones send a copy.
            *up.headers_mut() = if attempt + 1 == attempts {
                headers.take().unwrap_or_default()
            } else {
                headers.clone().unwrap_or_default()
            };
            if tg.version != UpVersion::Http1 {
                *up.version_mut() = Version::HTTP_2;
            }
            if direct_h1 {
                // Straight onto a connection: origin-form, and a `Host` (h2 clients send none).
                *up.uri_mut() = http::Uri::from(path_and_query.clone());
                if !up.headers().contains_key(header::HOST) {
                    up.headers_mut()
                        .insert(header::HOST, ep.host_header.clone());
                }
            } else {
                let scheme = if tg.https {
                    http::uri::Scheme::HTTPS
                } else {
                    http::uri::Scheme::HTTP
                };
                let uri = http::Uri::builder()
                    .scheme(scheme)
                    .authority(ep.authority.clone())
                    .path_and_query(path_and_query.clone())
                    .build();
                match uri {
                    Ok(u) => *up.uri_mut() = u,
                    Err(_) => {
                        return (
                            text(StatusCode::BAD_REQUEST, "Bad Request: invalid path\n"),
                            None,
                            None,
                        )
                    }
                }
            }

            // A guard, not paired adds: a client that goes away drops this future midway.
            let ep_guard = InFlight::enter(&ep.outstanding);
            tg.metrics.requests.fetch_add(1, Ordering::Relaxed);
            let sent = Instant::now();
            let call = send_upstream(tg, ep, up, &added);
            let result = match policy.timeout_ms {
                Some(ms) => tokio::time::timeout(Duration::from_millis(ms), call)
                    .await
                    .ok(),
                None => Some(call.await),
            };
            drop(ep_guard);
            let target = Some(ep.clone());
            let took = Some(sent.elapsed());
            match result {
                None => {
                    tg.metrics.timeouts.fetch_add(1, Ordering::Relaxed);
                    tg.observe(ep, Outcome::Status5xx);
                    last = Some((
                        text(
                            StatusCode::GATEWAY_TIMEOUT,
                            "Gateway Timeout: the target did not answer in time\n",
                        ),
                        target,
                        took,
                    ));
                }
                Some(Err(e)) => {
                    tg.metrics.connect_errors.fetch_add(1, Ordering::Relaxed);
                    tg.observe(ep, Outcome::ConnectError);
                    tracing::debug!(target = %ep.authority, error = %e, "upstream request failed");
                    last = Some((
                        text(
                            StatusCode::BAD_GATEWAY,
                            "Bad Gateway: the target refused or reset the connection\n",
                        ),
                        target,
                        took,
                    ));
                }
                Some(Ok(mut resp)) => {
                    let status = resp.status();
                    tg.observe(
                        ep,
                        if status.is_server_error() {
                            Outcome::Status5xx
                        } else {
                            Outcome::Ok
                        },
                    );
                    let retry = policy.retries_status(status.as_u16())
                        && attempt + 1 < attempts
                        && retry_budget_left(tg);
                    if !retry {
                        if status == StatusCode::SWITCHING_PROTOCOLS {
                            if let Some(client_up) = client_upgrade {
                                let upstream_up = hyper::upgrade::on(&mut resp);
                                tokio::spawn(tunnel(client_up, upstream_up));
                            }
                            let (mut p, _) = resp.into_parts();
                            strip_hop_by_hop(&mut p.headers, true);
                            return (Response::from_parts(p, empty_body()), target, took);
                        }
                        // Plain HTTP/1.1 answers come without hop-by-hop headers already.
                        if !direct_h1 {
                            strip_hop_by_hop(resp.headers_mut(), false);
                        }
                        return (resp, target, took);
                    }
                    last = Some((
                        Response::from_parts(resp.into_parts().0, empty_body()),
                        target,
                        took,
                    ));
                }
            }
            // A failed attempt is retried only within the budget; otherwise its answer stands.
            if attempt + 1 < attempts && !retry_budget_left(tg) {
                break;
            }
        }
        last.unwrap_or_else(|| (text(StatusCode::BAD_GATEWAY, "Bad Gateway\n"), None, None))
    }
}

impl DataPlane {
    /// A LAMBDA target group: the request as a Lattice event to the group's function. A WASM
    /// group (a Trellis extension) hands the request as HTTP to a `wasi:http` component
    /// function, and sends a preview-1 module function the Lattice event as LAMBDA does.
    async fn invoke_function(
        &self,
        req: Request<Incoming>,
        tg: &TargetGroupRuntime,
        resolved: &Resolved<'_>,
    ) -> Response<Body> {
        let Some(function) = tg.functions.first() else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: no function registered\n",
            );
        };
        // A body of known length within Lattice's 6 MB is read before the function is called,
        // so that a slow upload holds no concurrency slot and does not count against the
        // function's timeout; a longer or unknown-length one streams into a `wasi:http`
        // component in a WASM group (any other function gets it read, at most 6 MB).
        let small = http_body::Body::size_hint(req.body())
            .exact()
            .is_some_and(|n| n <= super::lambda::MAX_PAYLOAD as u64);
        let req: Request<Body> = req.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed());
        // A component takes the request itself (the version is chosen there, once); any other
        // function gives it back untouched, for the Lattice event.
        let component = match tg.kind.as_str() {
            "WASM" => self.targets.get(function),
            _ => None,
        };
        let input = match component {
            None => Input::read(req).await,
            Some(target) if small => match super::lambda::read_body(req).await {
                Ok((parts, body)) => {
                    let req = Request::from_parts(parts, trellis_core::target::whole(body.clone()));
                    match target.invoke_http_streaming(req) {
                        Ok(answer) => Ok(Input::Http(answer)),
                        Err(req) => Ok(Input::Event(Box::new(req.into_parts().0), body)),
                    }
                }
                Err(resp) => Err(resp),
            },
            Some(target) => match target.invoke_http_streaming(req) {
                Ok(answer) => Ok(Input::Http(answer)),
                Err(req) => Input::read(req).await,
            },
        };
        let input = match input {
            Ok(input) => input,
            Err(resp) => return resp,
        };
        tg.metrics.requests.fetch_add(1, Ordering::Relaxed);
        let call = async {
            match input {
                Input::Http(answer) => answer.await.map(super::lambda::http_response),
                Input::Event(parts, body) => {
                    let event = super::lambda::event(&parts, &body, resolved, tg, &self.region);
                    self.targets
                        .invoke(function, Bytes::from(event.to_string()))
                        .await
                        .map(|answer| super::lambda::response(&answer))
                }
            }
        };
        let result = match resolved.policy.timeout_ms {
            Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), call).await {
                Ok(r) => r,
                Err(_) => {
                    tg.metrics.timeouts.fetch_add(1, Ordering::Relaxed);
                    return text(
                        StatusCode::GATEWAY_TIMEOUT,
                        "Gateway Timeout: the function did not answer in time\n",
                    );
                }
            },
            None => call.await,
        };
        match result {
            Ok(resp) => resp,
            Err(TargetError::NotFound(_)) => text(
                StatusCode::BAD_GATEWAY,
                "Bad Gateway: the function does not exist\n",
            ),
            Err(TargetError::Timeout(_)) => text(
                StatusCode::GATEWAY_TIMEOUT,
                "Gateway Timeout: the function timed out\n",
            ),
            Err(e) => {
                tracing::debug!(function = %function, error = %e, "function invocation failed");
                text(
                    StatusCode::BAD_GATEWAY,
                    "Bad Gateway: the function failed\n",
                )
            }
        }
    }
}

/// What a function target is given: the request, already started on a `wasi:http` component,
/// or its head and body read for the Lattice event.
enum Input {
    Http(StreamingAnswer),
    Event(Box<http::request::Parts>, Bytes),
}

impl Input {
    /// The request read for the Lattice event (at most 6 MB).
    async fn read(req: Request<Body>) -> Result<Input, Response<Body>> {
        let (parts, body) = super::lambda::read_body(req).await?;
        Ok(Input::Event(Box::new(parts), body))
    }
}

/// One attempt to `ep`: plain HTTP/1.1 over this thread's connection pool
/// ([`super::h1_pool`], which writes the `added` headers itself), HTTP/2 and TLS over
/// hyper-util's pooled clients (the headers are in the request's map).
async fn send_upstream(
    tg: &TargetGroupRuntime,
    ep: &Endpoint,
    req: Request<Body>,
    added: &Added,
) -> Result<Response<Body>, BoxError> {
    let http1 = tg.version == UpVersion::Http1;
    if http1 && !tg.https {
        return super::h1_pool::send(ep.addr, req, added).await;
    }
    let call = super::Upstreams::with(|u| match (tg.https, http1) {
        (false, _) => u.h2.request(req),
        (true, true) => u.h1_tls.request(req),
        (true, false) => u.h2_tls.request(req),
    });
    Ok(call.await?.map(|b| b.map_err(Into::into).boxed()))
}

/// The retry budget: retries in flight stay under a fifth of the group's requests (at least
/// 3), so retries cannot multiply an overload.
fn retry_budget_left(tg: &TargetGroupRuntime) -> bool {
    let budget = (tg.in_flight.load(Ordering::Relaxed) / 5).max(3);
    tg.retries_in_flight.load(Ordering::Relaxed) < budget
}

/// Counts one unit in an atomic gauge for as long as it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a std::sync::atomic::AtomicUsize) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The auth phase. Auth policies fill this in; until then every request is allowed.
fn authorize(_req: &Request<Incoming>, _resolved: &Resolved<'_>) -> Result<(), Denied> {
    Ok(())
}

/// Fault injection (a Trellis extension on rules): delay some requests, abort some.
async fn inject_fault(policy: &RulePolicy) -> Option<Response<Body>> {
    if policy.fault_delay_ms > 0 && fastrand::f64() * 100.0 < policy.fault_delay_percent {
        tokio::time::sleep(Duration::from_millis(policy.fault_delay_ms)).await;
    }
    if policy.fault_abort_status > 0 && fastrand::f64() * 100.0 < policy.fault_abort_percent {
        let status = StatusCode::from_u16(policy.fault_abort_status)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Some(text(status, "fault injected\n"));
    }
    None
}

/// The headers Trellis adds to every forwarded request: `x-forwarded-for`, `-port`, `-proto`
/// and the Lattice headers.
pub type Added = [(HeaderName, HeaderValue); 6];

/// The request headers a target receives: the client's, less hop-by-hop headers and any
/// Lattice or forwarding headers the client tried to set, and the ones Trellis adds. With
/// `inline`, those are returned apart for the request writer to append (plain HTTP/1.1
/// upstreams: no header-map insertions); otherwise they are in the map too.
fn forwarded_headers(
    mut h: HeaderMap,
    conn: &ConnInfo,
    port_header: &HeaderValue,
    network_header: &HeaderValue,
    target_header: &HeaderValue,
    upgrade: bool,
    inline: bool,
) -> (HeaderMap, Added) {
    // One pass over the names (no hashing) says whether there is anything to remove or extend.
    let mut forged = false;
    let mut xff = false;
    for k in h.keys() {
        forged |= k.as_str().starts_with("x-amzn-lattice-")
            || k == X_FORWARDED_PORT
            || k == X_FORWARDED_PROTO;
        xff |= k == X_FORWARDED_FOR;
    }
    if forged {
        let names: Vec<HeaderName> = h
            .keys()
            .filter(|k| {
                k.as_str().starts_with("x-amzn-lattice-")
                    || *k == X_FORWARDED_PORT
                    || *k == X_FORWARDED_PROTO
            })
            .cloned()
            .collect();
        for k in names {
            h.remove(k);
        }
    }
    strip_hop_by_hop(&mut h, upgrade);
    if upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // A client's `x-forwarded-for` is extended with its address.
    let xff = if xff {
        let joined = h
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .and_then(|prev| HeaderValue::from_str(&format!("{prev}, {}", conn.peer.ip())).ok());
        h.remove(&X_FORWARDED_FOR);
        joined.unwrap_or_else(|| conn.peer_ip.clone())
    } else {
        conn.peer_ip.clone()
    };
    let added: Added = [
        (X_FORWARDED_FOR.clone(), xff),
        (X_FORWARDED_PORT.clone(), port_header.clone()),
        (
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
        ),
        (LATTICE_NETWORK.clone(), network_header.clone()),
        (LATTICE_TARGET.clone(), target_header.clone()),
        (
            LATTICE_IDENTITY.clone(),
            HeaderValue::from_static("Principal=Anonymous"),
        ),
    ];
    if !inline {
        h.reserve(added.len());
        for (name, value) in &added {
            h.insert(name.clone(), value.clone());
        }
    }
    (h, added)
}

pub(super) fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names (comparisons, no hashing) finds which are present; most
    // messages have none, or only `connection`.
    let mut present = [false; HOP_BY_HOP.len()];
    let mut te = false;
    for k in h.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|n| n == k) {
            present[i] = true;
        }
        te |= k == header::TE;
    }
    // Headers named in Connection are hop-by-hop too. The usual tokens need no work:
    // `keep-alive` and `upgrade` are in HOP_BY_HOP, `close` names no header.
    if present[0] {
        let named: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|n| {
                !["keep-alive", "close", "upgrade"]
                    .iter()
                    .any(|t| n.eq_ignore_ascii_case(t))
            })
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for (n, present) in HOP_BY_HOP.iter().zip(present) {
        if present && !(keep_upgrade && (n == header::UPGRADE || n == header::CONNECTION)) {
            h.remove(n);
        }
    }
    // `te` only survives as `trailers`, which gRPC needs.
    if te && h.get(header::TE).is_some_and(|v| v != "trailers") {
        h.remove(header::TE);
    }
}

fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11 && req.headers().contains_key(header::UPGRADE)
}

async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (Ok(c), Ok(u)) = (client.await, upstream.await) else {
        return;
    };
    let mut c = hyper_util::rt::TokioIo::new(c);
    let mut u = hyper_util::rt::TokioIo::new(u);
    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The host (without port, as written: the route table folds case) and the listener port a
/// request addresses.
fn host_and_port(req: &Request<Incoming>, tls: bool) -> (&str, u16) {
    let default = if tls { 443 } else { 80 };
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("");
    split_host_port(authority, default)
}

pub fn split_host_port(authority: &str, default: u16) -> (&str, u16) {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(rest) = authority.strip_prefix('[') {
        // [v6]:port
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default);
        return (host, port);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().unwrap_or(default)),
        _ => (authority, default),
    }
}

fn empty_body() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(empty_body());
    *r.status_mut() = status;
    r
}

pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_forms() {
        assert_eq!(
            split_host_port("Svc.Example.com", 80),
            ("Svc.Example.com", 80)
        );
        assert_eq!(split_host_port("svc:8081", 80), ("svc", 8081));
        assert_eq!(split_host_port("[::1]:9000", 80), ("::1", 9000));
        assert_eq!(split_host_port("[::1]", 443), ("::1", 443));
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "close, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert(header::TE, "gzip".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-private").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get(header::TE).is_none());
        assert!(h.get("x-keep").is_some());
        let mut h = HeaderMap::new();
        h.insert(header::TE, "trailers".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
    }
}
