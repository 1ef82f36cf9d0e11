//! The L7 data plane. A request goes through these phases, each a function in
//! [`proxy`]: accept (plain or TLS, [`server`]) → route (host, port, rules: [`route`]) → auth
//! (allows everything until the auth policies are enforced) → fault injection → target group
//! pick (weights) → target pick (health, balancing, breaker: [`target_group`]) → upstream
//! request with timeout and retries → response → metrics and access log.
//! See `docs/data-plane.md` for the phase chart.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub mod access_log;
pub mod h1_pool;
pub mod health;
pub mod lambda;
pub mod metrics;
pub mod proxy;
pub mod route;
pub mod server;
pub mod service_target;
pub mod target_group;
pub mod tls;
pub mod upstream_tls;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type both directions use: an upstream's or client's stream, or bytes we made.
pub type Body = BoxBody<Bytes, BoxError>;

/// Everything the hot path needs, shared by every connection.
pub struct DataPlane {
    pub routes: ArcSwap<route::RouteTable>,
    pub metrics: Arc<metrics::Metrics>,
    pub runtimes: Arc<target_group::Runtimes>,
    pub access_log: Option<access_log::AccessLog>,
    /// Where certificates named by ARN live (`<data-dir>/certificates`).
    pub cert_dir: std::path::PathBuf,
    /// Functions and other invocable targets, for LAMBDA target groups.
    pub targets: Arc<trellis_core::target::TargetRegistry>,
    /// The region in Lattice events.
    pub region: String,
    /// Services registered as targets (by ARN and host) on every publish.
    pub service_targets: service_target::ServiceTargets,
}

/// Pooled upstream clients for HTTP/2 and TLS target groups (plain HTTP/1.1 ones use
/// [`h1_pool`]). Each data-plane thread has its own (see [`Upstreams::with`]), so a request, its
/// pooled connection and that connection's task stay on one thread.
#[derive(Clone)]
pub struct Upstreams {
    pub h2: Client<HttpConnector, Body>,
    pub h1_tls: Client<upstream_tls::HttpsConnector, Body>,
    pub h2_tls: Client<upstream_tls::HttpsConnector, Body>,
}

thread_local! {
    static UPSTREAMS: Upstreams = Upstreams::new();
}

// === impl Upstreams ===

impl Upstreams {
    fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
        let idle = std::time::Duration::from_secs(60);
        Self {
            h2: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .pool_idle_timeout(idle)
                .build(connector.clone()),
            h1_tls: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(idle)
                .build(upstream_tls::HttpsConnector::new(connector.clone(), false)),
            h2_tls: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .pool_idle_timeout(idle)
                .build(upstream_tls::HttpsConnector::new(connector, true)),
        }
    }

    /// This thread's clients.
    pub fn with<T>(f: impl FnOnce(&Upstreams) -> T) -> T {
        UPSTREAMS.with(f)
    }
}

// === impl DataPlane ===

impl DataPlane {
    pub fn new(access_log: Option<access_log::AccessLog>, cert_dir: std::path::PathBuf) -> Self {
        let metrics = Arc::new(metrics::Metrics::default());
        Self {
            routes: ArcSwap::from_pointee(route::RouteTable::empty()),
            runtimes: Arc::new(target_group::Runtimes::new(metrics.clone())),
            metrics,
            access_log,
            cert_dir,
            targets: Arc::new(trellis_core::target::TargetRegistry::default()),
            region: "us-east-1".into(),
            service_targets: service_target::ServiceTargets::default(),
        }
    }

    /// Uses `targets` (shared with the other engines) for LAMBDA target groups.
    pub fn with_targets(
        mut self,
        targets: Arc<trellis_core::target::TargetRegistry>,
        region: &str,
    ) -> Self {
        self.targets = targets;
        self.region = region.to_string();
        self
    }

    /// Compiles `state` and swaps the new route table in.
    pub fn publish(&self, state: &crate::lattice::State) {
        let table =
            route::RouteTable::compile(state, &self.runtimes, &self.metrics, &self.cert_dir);
        self.routes.store(Arc::new(table));
        self.service_targets.sync(state, &self.targets);
    }
}
