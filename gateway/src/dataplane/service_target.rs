//! Service-network services as targets. On every route-table publish each Lattice service is
//! registered in the target registry under its ARN and under [`host_key`] of its
//! `dnsEntry.domainName` and custom domain name, so that an EventBridge rule can name a service
//! by ARN and a connection holding only a URL finds the service owning its host.
//!
//! Requests go through the data plane's own routing, over loopback to the bound `--listen`
//! address with the `Host` header naming the service: listeners, rules, target groups, Lattice
//! headers, metrics and the access log apply as to any client. `invoke(payload)` POSTs the
//! payload (an event) to `/` of the service's first HTTP listener; `invoke_http(req)` sends the
//! request to the listener on its URI's port (80 by default). HTTPS listeners are not reached
//! this way yet.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use trellis_core::target::{
    host_key, BoxFuture, HttpRequest, HttpResponse, Target, TargetError, TargetRegistry,
};

use crate::lattice::{kind, State};

/// How long one invocation may take (EventBridge's limit for HTTP targets).
const TIMEOUT: Duration = Duration::from_secs(5);

type LoopbackClient = Client<HttpConnector, Full<Bytes>>;

/// The registrations of the services of the last published state.
pub struct ServiceTargets {
    /// Where the data plane's HTTP listeners answer, once bound.
    listen: Arc<OnceLock<SocketAddr>>,
    registered: Mutex<HashSet<String>>,
    client: LoopbackClient,
}

/// One service, shared by its registrations.
struct Service {
    arn: String,
    /// `dnsEntry.domainName`: the `Host` of requests whose URI names no host.
    host: String,
    /// The ports of its HTTP listeners, lowest first.
    http_ports: Vec<u16>,
    listen: Arc<OnceLock<SocketAddr>>,
    client: LoopbackClient,
}

/// A service registered under one key (its ARN or a host key).
struct ServiceTarget {
    key: String,
    service: Arc<Service>,
}

// === impl ServiceTargets ===

impl Default for ServiceTargets {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            listen: Arc::new(OnceLock::new()),
            registered: Mutex::new(HashSet::new()),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

impl ServiceTargets {
    /// Records the bound `--listen` address; an unspecified address (`0.0.0.0`, `::`) is
    /// reached over the loopback address of its family.
    pub fn set_listen(&self, addr: SocketAddr) {
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let _ = self.listen.set(SocketAddr::new(ip, addr.port()));
    }

    /// Registers every service of `state` and unregisters those no longer there.
    pub fn sync(&self, state: &State, registry: &TargetRegistry) {
        let mut keys = HashSet::new();
        for svc in state.all(kind::SERVICE) {
            let Some(arn) = svc["arn"].as_str() else {
                continue;
            };
            let mut http_ports: Vec<u16> = state
                .all(kind::LISTENER)
                .filter(|l| l["serviceId"] == svc["id"] && l["protocol"] == "HTTP")
                .filter_map(|l| l["port"].as_u64().map(|p| p as u16))
                .collect();
            http_ports.sort_unstable();
            let service = Arc::new(Service {
                arn: arn.to_string(),
                host: svc["dnsEntry"]["domainName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                http_ports,
                listen: self.listen.clone(),
                client: self.client.clone(),
            });
            let hosts = [&svc["dnsEntry"]["domainName"], &svc["customDomainName"]];
            let host_keys = hosts.into_iter().filter_map(Value::as_str).map(host_key);
            for key in std::iter::once(arn.to_string()).chain(host_keys) {
                registry.register(Arc::new(ServiceTarget {
                    key: key.clone(),
                    service: service.clone(),
                }));
                keys.insert(key);
            }
        }
        let mut registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        for gone in registered.difference(&keys) {
            registry.unregister(gone);
        }
        *registered = keys;
    }
}

// === impl Service ===

impl Service {
    /// Sends `req` to the data plane with `Host: host:port`.
    async fn send(&self, mut req: HttpRequest) -> Result<HttpResponse, TargetError> {
        let listen = *self.listen.get().ok_or_else(|| {
            TargetError::Unavailable("the data plane is not listening yet".into())
        })?;
        let uri = req.uri().clone();
        if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            return Err(TargetError::Unavailable(format!(
                "{}: HTTPS listeners of service-network services are not reachable as targets yet",
                self.arn
            )));
        }
        let host = uri.host().unwrap_or(&self.host);
        let port = uri.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let unavailable = |e: String| TargetError::Unavailable(format!("{}: {e}", self.arn));
        *req.uri_mut() = format!("http://{listen}{path}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| unavailable(e.to_string()))?;
        let host_header = http::HeaderValue::from_str(&format!("{host}:{port}"))
            .map_err(|e| unavailable(e.to_string()))?;
        req.headers_mut().insert(http::header::HOST, host_header);
        let exchange = async {
            let resp = self
                .client
                .request(req.map(Full::new))
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body))
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| TargetError::Timeout(self.arn.clone()))?
    }

    /// POSTs `payload` to `/` of the first HTTP listener; a 2xx answer is success and any
    /// other is a failure named `HTTP <status>` (how EventBridge tells which to retry).
    async fn post(&self, payload: Bytes) -> Result<Bytes, TargetError> {
        let port = *self.http_ports.first().ok_or_else(|| {
            TargetError::Unavailable(format!("{} has no HTTP listener", self.arn))
        })?;
        let req = http::Request::post(format!("http://{}:{port}/", self.host))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(payload)
            .map_err(|e| TargetError::Unavailable(format!("{}: {e}", self.arn)))?;
        let resp = self.send(req).await?;
        if resp.status().is_success() {
            return Ok(resp.into_body());
        }
        Err(TargetError::Failed {
            error: format!("HTTP {}", resp.status().as_u16()),
            cause: String::from_utf8_lossy(resp.body())
                .chars()
                .take(256)
                .collect(),
        })
    }
}

// === impl ServiceTarget ===

impl Target for ServiceTarget {
    fn arn(&self) -> &str {
        &self.key
    }

    fn invoke(&self, payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
        let service = self.service.clone();
        Box::pin(async move { service.post(payload).await })
    }

    fn invoke_http(
        &self,
        req: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, TargetError>> {
        let service = self.service.clone();
        Box::pin(async move { service.send(req).await })
    }
}
