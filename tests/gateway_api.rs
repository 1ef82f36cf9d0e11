//! The Kubernetes Gateway API conformance cases that VPC Lattice rules can express, run
//! end to end against one Trellis.
//!
//! `tests/fixtures/gateway-api/cases.json` is the translation (made by `translate.py` beside it;
//! see its README): per upstream manifest, the target groups, services, listeners and rules in
//! Lattice terms, and each case with its request and the expected status and backend. This test
//! creates every resource with the AWS SDK, starts one echo upstream per Gateway API backend name,
//! sends every case and prints a table. Every expressible case must pass except the ones in
//! [`KNOWN_DIFFERENCES`], which must fail (a known difference that starts passing is an error
//! too, so the list stays true).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_vpclattice::types::*;
use bytes::Bytes;
use common::*;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

const FIXTURE: &str = include_str!("fixtures/gateway-api/cases.json");

/// Requests for the statistical weight case, and how far each backend's share may be from its
/// weight (the upstream suite also checks the distribution within a tolerance).
const WEIGHT_SAMPLES: usize = 2000;
const WEIGHT_TOLERANCE: f64 = 0.05;

/// A case that Trellis answers differently from the Gateway API for a reason in the model, not a
/// bug: the request, what it is, and why.
struct KnownDifference {
    manifest: &'static str,
    case: usize,
    request: &'static str,
    reason: &'static str,
}

const KNOWN_DIFFERENCES: &[KnownDifference] = &[KnownDifference {
    manifest: "httproute-hostname-intersection.yaml",
    case: 1,
    request: "GET very.specific.com:1234/s1",
    reason: "Trellis serves every listener on one address, so the port in Host stands in for \
                 the port the request arrived on and selects the listener: there is none on 1234, \
                 404. The Gateway API ignores the port in Host and uses the arrival port (80).",
}];

/// Differences the translation bridges, so that they are not failures (see translate.py); listed
/// here so that nothing is bridged silently.
const BRIDGED_DIFFERENCES: &[(&str, &str)] = &[
    (
        "PathPrefix is segment-aware",
        "Gateway API PathPrefix /v2 matches /v2, /v2/ and /v2/x but not /v2example (a trailing / \
         is ignored); a Lattice prefix is a string prefix. Translated to two adjacent rules, \
         exact /v2 and prefix /v2/, which match the same set (httproute-matching #7 checks it).",
    ),
    (
        "precedence",
        "Gateway API orders matches by exact path, longest prefix, method, header count, route \
         age and name, rule and match order; Lattice by priority. The translation assigns \
         priorities in that order.",
    ),
    (
        "header values",
        "Gateway API header values match exactly; Lattice header matches ignore case unless \
         caseSensitive, so every header match sets caseSensitive: true.",
    ),
    (
        "one Trellis for every manifest",
        "host names get a per-manifest suffix (foo.com -> foo.com.g1.<manifest>.gwapi.test); \
         requests without a host go to a stand-in host of the Gateway.",
    ),
    (
        "gRPC",
        "a GRPCRoute service/method match is the exact path /<service>/<method>; a gRPC client \
         reads HTTP 404 as UNIMPLEMENTED.",
    ),
    (
        "backendRef to no Service",
        "Gateway API answers 500; the rule gets a fixed-response 500 action.",
    ),
    (
        "timeouts",
        "timeouts.backendRequest (else request) becomes trellis:timeout-ms, the time to the \
         target's response headers; 0s means no timeout, so no tag.",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_conformance() {
    let started = Instant::now();
    let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    let manifests = fixture["manifests"].as_array().expect("manifests");

    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();

    // One echo upstream per Gateway API backend name, shared by every manifest.
    let mut backends = HashMap::new();
    for name in fixture["backends"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        backends.insert(name.to_string(), Backend::start(name).await);
    }
    let addrs: HashMap<String, SocketAddr> =
        backends.iter().map(|(k, b)| (k.clone(), b.addr)).collect();

    for m in manifests.iter().filter(|m| m.get("skip").is_none()) {
        create_manifest(&c, m, &addrs).await;
    }
    let configured = started.elapsed();

    // The manifests' resources are disjoint, so their cases run concurrently; the cases of one
    // manifest run in order (the retry and timeout cases keep their own timing).
    let client = http_client();
    let runs = manifests.iter().map(|m| {
        let client = client.clone();
        let listen = t.listen;
        async move {
            let mut results = Vec::new();
            for case in m["cases"].as_array().into_iter().flatten() {
                if case.get("skip").is_some() {
                    continue;
                }
                results.push((case, run_case(&client, listen, case).await));
            }
            results
        }
    });
    let results = futures_util::future::join_all(runs).await;

    let report = Report::new(manifests, &results);
    println!("{}", report.render(configured, started.elapsed()));
    let problems = report.problems();
    assert!(
        problems.is_empty(),
        "Gateway API conformance:\n{}",
        problems.join("\n")
    );
}

// === the cases ===

/// What one case got: pass or not, and the answer in words.
struct Outcome {
    pass: bool,
    got: String,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

async fn run_case(client: &HttpClient, listen: SocketAddr, case: &Value) -> Outcome {
    let req = &case["request"];
    let expect = &case["expect"];
    if req["grpc"] == true {
        return run_grpc(listen, req, expect).await;
    }
    let mut path = req["path"].as_str().unwrap().to_string();
    if req["uniqueQuery"] == true {
        // As the Go suite does: the echo upstream counts attempts per request id.
        let id = UNIQUE.fetch_add(1, Ordering::Relaxed);
        path.push_str(&format!("&uuid={id}"));
    }
    let headers: Vec<(String, String)> = req["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let method = req["method"].as_str().unwrap();
    let host = req["host"].as_str().unwrap();

    if let Some(dist) = expect["distribution"].as_object() {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut bad_status = BTreeMap::new();
        for _ in 0..WEIGHT_SAMPLES {
            let r = send(client, listen, method, host, &path, &headers).await;
            if !status_ok(expect, r.status) {
                *bad_status.entry(r.status).or_insert(0usize) += 1;
            }
            *counts.entry(r.upstream()).or_default() += 1;
        }
        let share = |b: &str| counts.get(b).copied().unwrap_or(0) as f64 / WEIGHT_SAMPLES as f64;
        let pass = bad_status.is_empty()
            && counts.keys().all(|b| dist.contains_key(b))
            && dist.iter().all(|(b, want)| {
                let want = want.as_f64().unwrap();
                if want == 0.0 {
                    share(b) == 0.0
                } else {
                    (share(b) - want).abs() <= WEIGHT_TOLERANCE
                }
            });
        let mut got: Vec<String> = counts
            .keys()
            .map(|b| format!("{b} {:.3}", share(b)))
            .collect();
        if !bad_status.is_empty() {
            got.push(format!("statuses {bad_status:?}"));
        }
        return Outcome {
            pass,
            got: format!("over {WEIGHT_SAMPLES} requests: {}", got.join(", ")),
        };
    }

    let r = send(client, listen, method, host, &path, &headers).await;
    let backend = r.upstream();
    let pass = status_ok(expect, r.status)
        && expect["backend"]
            .as_str()
            .is_none_or(|want| want == backend);
    Outcome {
        pass,
        got: answer(r.status, &backend, None),
    }
}

/// A gRPC call over HTTP/2 (prior knowledge): POST /<service>/<method> with the metadata as
/// headers. A gRPC client reads HTTP 404 as UNIMPLEMENTED, which is what the cases expect when no
/// route matches.
async fn run_grpc(listen: SocketAddr, req: &Value, expect: &Value) -> Outcome {
    let stream = tokio::net::TcpStream::connect(listen).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let mut b = http::Request::post(format!(
        "http://{}{}",
        req["host"].as_str().unwrap(),
        req["path"].as_str().unwrap()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers");
    for (k, v) in req["headers"].as_object().into_iter().flatten() {
        b = b.header(k.to_ascii_lowercase(), v.as_str().unwrap());
    }
    let resp = sender
        .send_request(b.body(Full::new(Bytes::from(grpc_frame(b"{}")))).unwrap())
        .await
        .expect("data plane answers the gRPC call");
    let status = resp.status().as_u16();
    let collected = resp.into_body().collect().await.unwrap();
    let grpc_status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = collected.to_bytes();
    let backend = body
        .get(5..)
        .and_then(|m| serde_json::from_slice::<Value>(m).ok())
        .and_then(|v| v["name"].as_str().map(str::to_string))
        .unwrap_or_default();
    let pass = status_ok(expect, status)
        && match expect["backend"].as_str() {
            Some(want) => want == backend && grpc_status.as_deref() == Some("0"),
            None => true,
        };
    Outcome {
        pass,
        got: answer(status, &backend, grpc_status.as_deref()),
    }
}

fn status_ok(expect: &Value, status: u16) -> bool {
    match expect["statusAnyOf"].as_array() {
        Some(any) => any.iter().any(|s| s.as_u64() == Some(u64::from(status))),
        None => expect["status"].as_u64() == Some(u64::from(status)),
    }
}

fn answer(status: u16, backend: &str, grpc_status: Option<&str>) -> String {
    let mut s = status.to_string();
    if let Some(g) = grpc_status {
        s.push_str(&format!(" grpc-status {g}"));
    }
    if !backend.is_empty() {
        s.push_str(&format!(" from {backend}"));
    }
    s
}

fn expected(expect: &Value) -> String {
    let mut s = match expect["statusAnyOf"].as_array() {
        Some(any) => format!("one of {any:?}"),
        None => expect["status"].to_string(),
    };
    if let Some(code) = expect["grpcCode"].as_str() {
        s.push_str(&format!(" (gRPC {code})"));
    }
    if let Some(b) = expect["backend"].as_str() {
        s.push_str(&format!(" from {b}"));
    }
    if let Some(d) = expect["distribution"].as_object() {
        let parts: Vec<String> = d.iter().map(|(b, w)| format!("{b} {w}")).collect();
        s.push_str(&format!(
            ", shares {} ±{WEIGHT_TOLERANCE}",
            parts.join(", ")
        ));
    }
    s
}

// === the report ===

struct Report<'a> {
    manifests: &'a [Value],
    results: &'a [Vec<(&'a Value, Outcome)>],
}

impl<'a> Report<'a> {
    fn new(manifests: &'a [Value], results: &'a [Vec<(&'a Value, Outcome)>]) -> Self {
        Self { manifests, results }
    }

    fn known(manifest: &str, case: &Value) -> Option<&'static KnownDifference> {
        KNOWN_DIFFERENCES
            .iter()
            .find(|k| k.manifest == manifest && Some(k.case as u64) == case["index"].as_u64())
    }

    fn render(&self, configured: Duration, total: Duration) -> String {
        let mut out = String::new();
        let w = self
            .manifests
            .iter()
            .map(|m| m["manifest"].as_str().unwrap().len())
            .max()
            .unwrap_or(0);
        out.push_str(&format!(
            "\nGateway API conformance on Trellis (Lattice translation)\n{:<w$}  {:>6}  {:>11}  {:>7}\n",
            "manifest", "passed", "expressible", "skipped"
        ));
        let (mut passed, mut expressible, mut skipped) = (0, 0, 0);
        let mut failures = Vec::new();
        let mut skips = Vec::new();
        for (m, results) in self.manifests.iter().zip(self.results) {
            let name = m["manifest"].as_str().unwrap();
            let total = m["caseCount"].as_u64().unwrap() as usize;
            let p = results.iter().filter(|(_, o)| o.pass).count();
            let e = results.len();
            let s = total - e;
            passed += p;
            expressible += e;
            skipped += s;
            out.push_str(&format!("{name:<w$}  {p:>6}  {e:>11}  {s:>7}\n"));
            if let Some(reason) = m["skip"].as_str() {
                skips.push(format!("{name}: all {total} cases: {reason}"));
            }
            for case in m["cases"].as_array().into_iter().flatten() {
                if let Some(reason) = case["skip"].as_str() {
                    skips.push(format!(
                        "{name} #{} {}: {reason}",
                        case["index"],
                        case["summary"].as_str().unwrap()
                    ));
                }
            }
            for (case, o) in results.iter().filter(|(_, o)| !o.pass) {
                let tag = match Self::known(name, case) {
                    Some(_) => "known difference",
                    None => "UNEXPECTED",
                };
                failures.push(format!(
                    "[{tag}] {name} #{} {}\n    expected {}\n    got      {}",
                    case["index"],
                    case["summary"].as_str().unwrap(),
                    expected(&case["expect"]),
                    o.got
                ));
            }
        }
        out.push_str(&format!(
            "{:<w$}  {passed:>6}  {expressible:>11}  {skipped:>7}\n",
            "total"
        ));
        out.push_str(&format!(
            "\n{} failures:\n{}\n",
            failures.len(),
            failures.join("\n")
        ));
        out.push_str("\nknown differences (Gateway API vs Lattice/Trellis):\n");
        for k in KNOWN_DIFFERENCES {
            out.push_str(&format!(
                "  {} #{} {}: {}\n",
                k.manifest, k.case, k.request, k.reason
            ));
        }
        out.push_str("\nbridged by the translation (not failures):\n");
        for (what, how) in BRIDGED_DIFFERENCES {
            out.push_str(&format!("  {what}: {how}\n"));
        }
        out.push_str(&format!(
            "\nskipped, not expressible with Lattice rules ({skipped} cases):\n  {}\n",
            skips.join("\n  ")
        ));
        out.push_str(&format!(
            "\nconfigured in {:.1} s, all cases done in {:.1} s\n",
            configured.as_secs_f64(),
            total.as_secs_f64()
        ));
        out
    }

    /// Every failure that is not a known difference, and every known difference that is stale.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (m, results) in self.manifests.iter().zip(self.results) {
            let name = m["manifest"].as_str().unwrap();
            for (case, o) in results {
                if !o.pass && Self::known(name, case).is_none() {
                    problems.push(format!(
                        "{name} #{} {}: expected {}, got {}",
                        case["index"],
                        case["summary"].as_str().unwrap(),
                        expected(&case["expect"]),
                        o.got
                    ));
                }
            }
        }
        for k in KNOWN_DIFFERENCES {
            let found = self
                .manifests
                .iter()
                .zip(self.results)
                .filter(|(m, _)| m["manifest"] == k.manifest)
                .flat_map(|(_, r)| r.iter())
                .find(|(case, _)| case["index"].as_u64() == Some(k.case as u64));
            match found {
                None => problems.push(format!(
                    "known difference {} #{} is not an expressible case of the fixture",
                    k.manifest, k.case
                )),
                Some((case, _)) if case["summary"] != k.request => problems.push(format!(
                    "known difference {} #{} names {:?}, but that case is {}",
                    k.manifest, k.case, k.request, case["summary"]
                )),
                Some((_, o)) if o.pass => problems.push(format!(
                    "known difference {} #{} {} now passes: remove it from KNOWN_DIFFERENCES",
                    k.manifest, k.case, k.request
                )),
                Some(_) => {}
            }
        }
        problems
    }
}

// === Lattice resources from the fixture ===

async fn create_manifest(
    c: &aws_sdk_vpclattice::Client,
    m: &Value,
    backends: &HashMap<String, SocketAddr>,
) {
    let manifest = m["manifest"].as_str().unwrap();
    let mut groups = HashMap::new();
    for tg in m["targetGroups"].as_array().unwrap() {
        let name = tg["name"].as_str().unwrap();
        let addr = backends[tg["backend"].as_str().unwrap()];
        let version = match tg["protocolVersion"].as_str().unwrap() {
            "GRPC" => TargetGroupProtocolVersion::Grpc,
            "HTTP2" => TargetGroupProtocolVersion::Http2,
            _ => TargetGroupProtocolVersion::Http1,
        };
        let out = c
            .create_target_group()
            .name(name)
            .r#type(TargetGroupType::Ip)
            .config(
                TargetGroupConfig::builder()
                    .port(i32::from(addr.port()))
                    .protocol(TargetGroupProtocol::Http)
                    .protocol_version(version)
                    .health_check(HealthCheckConfig::builder().enabled(false).build())
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{manifest}: create target group {name}: {e:?}"));
        let id = out.id().unwrap().to_string();
        let reg = c
            .register_targets()
            .target_group_identifier(&id)
            .targets(
                Target::builder()
                    .id(addr.ip().to_string())
                    .port(i32::from(addr.port()))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{manifest}: register target in {name}: {e:?}"));
        assert!(reg.unsuccessful().is_empty(), "{:?}", reg.unsuccessful());
        groups.insert(name.to_string(), id);
    }

    for svc in m["services"].as_array().unwrap() {
        let name = svc["name"].as_str().unwrap();
        let out = c
            .create_service()
            .name(name)
            .custom_domain_name(svc["customDomainName"].as_str().unwrap())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{manifest}: create service {name}: {e:?}"));
        let svc_id = out.id().unwrap().to_string();
        for l in svc["listeners"].as_array().unwrap() {
            let out = c
                .create_listener()
                .service_identifier(&svc_id)
                .name(l["name"].as_str().unwrap())
                .protocol(ListenerProtocol::Http)
                .port(l["port"].as_i64().unwrap() as i32)
                .default_action(action(&l["defaultAction"], &groups))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{manifest}: create listener on {name}: {e:?}"));
            let listener_id = out.id().unwrap().to_string();
            for r in l["rules"].as_array().unwrap() {
                let mut req = c
                    .create_rule()
                    .service_identifier(&svc_id)
                    .listener_identifier(&listener_id)
                    .name(r["name"].as_str().unwrap())
                    .priority(r["priority"].as_i64().unwrap() as i32)
                    .r#match(RuleMatch::HttpMatch(http_match(&r["match"]["httpMatch"])))
                    .action(action(&r["action"], &groups));
                for (k, v) in r["tags"].as_object().into_iter().flatten() {
                    req = req.tags(k, v.as_str().unwrap());
                }
                req.send().await.unwrap_or_else(|e| {
                    panic!("{manifest}: create rule {} on {name}: {e:?}", r["from"])
                });
            }
        }
    }
}

fn action(a: &Value, groups: &HashMap<String, String>) -> RuleAction {
    if let Some(code) = a["fixedResponse"]["statusCode"].as_i64() {
        return RuleAction::FixedResponse(
            FixedResponseAction::builder()
                .status_code(code as i32)
                .build()
                .unwrap(),
        );
    }
    let weighted: Vec<(&str, i32)> = a["forward"]["targetGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                groups[g["targetGroupName"].as_str().unwrap()].as_str(),
                g["weight"].as_i64().unwrap() as i32,
            )
        })
        .collect();
    forward(&weighted)
}

fn http_match(m: &Value) -> HttpMatch {
    let mut b = HttpMatch::builder();
    if let Some(method) = m["method"].as_str() {
        b = b.method(method);
    }
    if let Some(p) = m.get("pathMatch") {
        let kind = match (p["match"]["exact"].as_str(), p["match"]["prefix"].as_str()) {
            (Some(exact), _) => PathMatchType::Exact(exact.into()),
            (None, Some(prefix)) => PathMatchType::Prefix(prefix.into()),
            _ => panic!("path match {p}"),
        };
        b = b.path_match(
            PathMatch::builder()
                .r#match(kind)
                .case_sensitive(p["caseSensitive"].as_bool().unwrap_or(true))
                .build(),
        );
    }
    for h in m["headerMatches"].as_array().into_iter().flatten() {
        let v = &h["match"];
        let kind = if let Some(x) = v["exact"].as_str() {
            HeaderMatchType::Exact(x.into())
        } else if let Some(x) = v["prefix"].as_str() {
            HeaderMatchType::Prefix(x.into())
        } else {
            HeaderMatchType::Contains(v["contains"].as_str().unwrap().into())
        };
        b = b.header_matches(
            HeaderMatch::builder()
                .name(h["name"].as_str().unwrap())
                .r#match(kind)
                .case_sensitive(h["caseSensitive"].as_bool().unwrap_or(false))
                .build()
                .unwrap(),
        );
    }
    b.build()
}

// === the conformance echo upstream ===

/// An upstream like the conformance suite's echo server: answers JSON with its name and what it
/// received; `?delay=1s` (a Go duration, or milliseconds) waits first; `?responseCode=N` answers
/// N, and with `&succeedAfter=K` only for the first K attempts of one request (told apart by the
/// rest of the query, which carries a unique id). A gRPC call (content-type application/grpc) gets
/// the JSON as its one message and `grpc-status: 0`. HTTP/1.1 and h2c.
struct Backend {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Backend {
    async fn start(name: &str) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let name: Arc<str> = name.into();
        let attempts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    a = listener.accept() => match a { Ok((s, _)) => s, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                let name = name.clone();
                let attempts = attempts.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        echo(name.clone(), attempts.clone(), req)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Backend { addr, _stop: stop }
    }
}

async fn echo(
    name: Arc<str>,
    attempts: Arc<Mutex<HashMap<String, u64>>>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let param = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    if let Some(d) = param("delay") {
        tokio::time::sleep(go_duration(d)).await;
    }
    let mut status = 200;
    if let Some(code) = param("responseCode").and_then(|c| c.parse().ok()) {
        status = code;
        if let Some(k) = param("succeedAfter").and_then(|k| k.parse::<u64>().ok()) {
            let key = req.uri().query().unwrap_or("").to_string();
            let mut seen = attempts.lock().unwrap();
            let n = seen.entry(key).or_insert(0);
            *n += 1;
            if *n > k {
                status = 200;
            }
        }
    }
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
        .collect();
    let body = json!({
        "name": &*name,
        "namespace": "gateway-conformance-infra",
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "host": req.headers().get("host").and_then(|h| h.to_str().ok()).or(req.uri().host()),
        "headers": headers,
    })
    .to_string();
    let grpc = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let _ = req.into_body().collect().await;
    let mut resp = if grpc {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let frames = vec![
            Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(grpc_frame(
                body.as_bytes(),
            )))),
            Ok(hyper::body::Frame::trailers(trailers)),
        ];
        let mut r = http::Response::new(
            http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed(),
        );
        r.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/grpc"),
        );
        r
    } else {
        http::Response::new(Full::new(Bytes::from(body)).boxed())
    };
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
    Ok(resp)
}

/// A Go duration like `1s` or `500ms` (or plain milliseconds).
fn go_duration(s: &str) -> Duration {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().unwrap_or(0);
    match unit {
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => Duration::from_millis(n),
    }
}

fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8];
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(msg);
    f
}
