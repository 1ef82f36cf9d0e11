//! Shared pieces of the end-to-end tests: start the built `trellis` binary on free ports and
//! read its readiness line, an AWS SDK client pointed at it, echo upstreams, and plain HTTP
//! clients for the data plane.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// A client of an AWS SDK for Rust service crate pointed at a [`Trellis`], with test
/// credentials, plain HTTP and the SDK's defaults otherwise:
/// `aws_client!(aws_sdk_eventbridge, &trellis)`.
#[macro_export]
macro_rules! aws_client {
    ($sdk:ident, $trellis:expr) => {{
        let config = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new("us-east-1"))
            .credentials_provider($sdk::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .endpoint_url($trellis.endpoint())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        $sdk::Client::from_conf(config)
    }};
}

/// A running `trellis serve`, killed when dropped.
pub struct Trellis {
    pub child: Child,
    pub api: SocketAddr,
    pub listen: SocketAddr,
    pub listen_tls: SocketAddr,
    pub data_dir: PathBuf,
}

impl Trellis {
    /// Starts `trellis serve` on port 0 everywhere with `data_dir` and extra args.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Trellis {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// [`Trellis::start`] with extra environment variables.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Trellis {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trellis"))
            .arg("serve")
            .args([
                "--api",
                "127.0.0.1:0",
                "--listen",
                "127.0.0.1:0",
                "--listen-tls",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("TRELLIS_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start trellis");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read readiness line");
        let ready: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("readiness line {line:?}: {e}"));
        assert_eq!(ready["ready"], true);
        let addr = |k: &str| ready[k].as_str().unwrap().parse().unwrap();
        Trellis {
            child,
            api: addr("api"),
            listen: addr("listen"),
            listen_tls: addr("listen_tls"),
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.api)
    }

    /// An AWS SDK for Rust client of VPC Lattice pointed at this Trellis.
    pub fn lattice(&self) -> aws_sdk_vpclattice::Client {
        aws_client!(aws_sdk_vpclattice, self)
    }

    /// SIGKILL: nothing gets to flush or clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Trellis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An upstream that answers JSON naming itself and echoing what it got. `?status=N` sets the
/// status, `?delay=MS` waits first. Counts requests.
pub struct Echo {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Echo {
    pub async fn start(name: &str) -> Echo {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(name: &str, addr: SocketAddr) -> Echo {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let name = name.to_string();
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    a = listener.accept() => match a { Ok((s, _)) => s, Err(_) => continue },
                    _ = &mut rx => return,
                };
                let name = name.clone();
                let h = h.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let name = name.clone();
                        let h = h.clone();
                        async move {
                            h.fetch_add(1, Ordering::Relaxed);
                            let q: HashMap<String, String> = req
                                .uri()
                                .query()
                                .unwrap_or("")
                                .split('&')
                                .filter_map(|kv| {
                                    kv.split_once('=')
                                        .map(|(k, v)| (k.to_string(), v.to_string()))
                                })
                                .collect();
                            if let Some(ms) = q.get("delay").and_then(|d| d.parse().ok()) {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            let headers: serde_json::Map<String, Value> = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        k.to_string(),
                                        Value::String(v.to_str().unwrap_or("").to_string()),
                                    )
                                })
                                .collect();
                            // Names the target received more than once.
                            let mut repeated: Vec<&str> = req
                                .headers()
                                .keys()
                                .filter(|k| req.headers().get_all(*k).iter().count() > 1)
                                .map(|k| k.as_str())
                                .collect();
                            repeated.dedup();
                            let body = json!({
                                "repeated": repeated,
                                "name": name,
                                "method": req.method().as_str(),
                                "path": req.uri().path(),
                                "version": format!("{:?}", req.version()),
                                "headers": headers,
                            });
                            let status = q
                                .get("status")
                                .and_then(|s| s.parse().ok())
                                .unwrap_or(200u16);
                            let mut resp =
                                http::Response::new(Full::new(Bytes::from(body.to_string())));
                            *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Echo {
            addr,
            hits,
            stop: Some(tx),
        }
    }

    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP/1.1 response from the data plane.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The name of the echo upstream that answered.
    pub fn upstream(&self) -> String {
        self.json()["name"].as_str().unwrap_or("").to_string()
    }
}

/// The tests' HTTP/1.1 client for the data plane.
pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// A pooled HTTP/1.1 client for the data plane.
pub fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request to the data plane at `addr` with `Host: host`.
pub async fn send(
    client: &HttpClient,
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    send_with_body(client, addr, method, host, path, headers, Bytes::new()).await
}

/// [`send`] with a request body.
pub async fn send_with_body(
    client: &HttpClient,
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header(http::header::HOST, host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client
        .request(b.body(Full::new(body)).unwrap())
        .await
        .expect("data plane answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// A GET with no body over a fresh connection, for probing.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    send(&http_client(), addr, "GET", host, path, &[]).await
}

/// Polls `f` every 200 ms until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

pub fn empty() -> Empty<Bytes> {
    Empty::new()
}

/// Creates a target group of type IP on `targets`, health checks every 5 s (the AWS minimum).
pub async fn target_group(
    c: &aws_sdk_vpclattice::Client,
    name: &str,
    targets: &[SocketAddr],
) -> String {
    use aws_sdk_vpclattice::types::*;
    let tg = c
        .create_target_group()
        .name(name)
        .r#type(TargetGroupType::Ip)
        .config(
            TargetGroupConfig::builder()
                .port(80)
                .protocol(TargetGroupProtocol::Http)
                .health_check(
                    HealthCheckConfig::builder()
                        .enabled(true)
                        .health_check_interval_seconds(5)
                        .health_check_timeout_seconds(1)
                        .healthy_threshold_count(2)
                        .unhealthy_threshold_count(2)
                        .path("/health")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("create target group");
    let id = tg.id().unwrap().to_string();
    if !targets.is_empty() {
        let mut req = c.register_targets().target_group_identifier(&id);
        for t in targets {
            req = req.targets(
                Target::builder()
                    .id(t.ip().to_string())
                    .port(t.port() as i32)
                    .build()
                    .unwrap(),
            );
        }
        let out = req.send().await.expect("register targets");
        assert!(out.unsuccessful().is_empty(), "{:?}", out.unsuccessful());
    }
    id
}

/// A forward action to weighted target groups.
pub fn forward(groups: &[(&str, i32)]) -> aws_sdk_vpclattice::types::RuleAction {
    use aws_sdk_vpclattice::types::*;
    let mut f = ForwardAction::builder();
    for (id, w) in groups {
        f = f.target_groups(
            WeightedTargetGroup::builder()
                .target_group_identifier(*id)
                .weight(*w)
                .build()
                .unwrap(),
        );
    }
    RuleAction::Forward(f.build().unwrap())
}

/// A service with an HTTP listener on port 80 whose default action is `action`; returns the
/// service id, its DNS name and the listener id.
pub async fn service(
    c: &aws_sdk_vpclattice::Client,
    name: &str,
    action: aws_sdk_vpclattice::types::RuleAction,
) -> (String, String, String) {
    use aws_sdk_vpclattice::types::*;
    let svc = c
        .create_service()
        .name(name)
        .send()
        .await
        .expect("create service");
    let id = svc.id().unwrap().to_string();
    let dns = svc.dns_entry().unwrap().domain_name().unwrap().to_string();
    let l = c
        .create_listener()
        .service_identifier(&id)
        .name("http-80")
        .protocol(ListenerProtocol::Http)
        .port(80)
        .default_action(action)
        .send()
        .await
        .expect("create listener");
    (id, dns, l.id().unwrap().to_string())
}
