//! The set of running endpoints and registered targets, reconciled with the wanted specs on
//! every config change.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use trellis_core::target::TargetRegistry;

use crate::dns::Resolver;
use crate::metrics::Metrics;
use crate::origin::Origin;
use crate::proxy::{self, Endpoint, Shared};
use crate::target::{ResourceTarget, TargetSpec};
use crate::workers::Workers;
use crate::{Cidr, EndpointSpec, Key};

/// Runs the endpoints; cheap to clone (one shared state).
#[derive(Clone, Default)]
pub struct Manager {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    running: Mutex<HashMap<Key, Running>>,
    /// The targets registered by [`Manager::apply_targets`], by ARN.
    targets: Mutex<HashMap<String, TargetSpec>>,
    metrics: Arc<Metrics>,
    resolver: Arc<Resolver>,
    /// Destination addresses never dialed, whatever a resource's name resolves to.
    forbidden: Arc<Vec<Cidr>>,
    /// How many threads serve endpoint connections (0: one per core).
    worker_threads: usize,
    workers: OnceLock<Arc<Workers>>,
}

struct Running {
    spec: watch::Sender<Arc<Endpoint>>,
    bound: SocketAddr,
    /// Turns true to stop accepting.
    stop: watch::Sender<bool>,
    /// Turns true to close the connections still open.
    kill: watch::Sender<bool>,
}

/// An endpoint as bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub association_id: String,
    pub resource_configuration_id: String,
    /// The resource's port this endpoint forwards to.
    pub destination_port: u16,
    pub addr: SocketAddr,
    /// `tcp://ADDR` or, for an HTTP endpoint, `http://ADDR`.
    pub url: String,
}

impl Manager {
    pub fn new() -> Self {
        Self::default()
    }

    /// A manager that never dials an address in `forbidden` (the operator's forbidden ranges),
    /// whatever a destination's name resolves to.
    pub fn with_forbidden_cidrs(forbidden: Vec<Cidr>) -> Self {
        Self {
            inner: Arc::new(Inner {
                forbidden: Arc::new(forbidden),
                ..Inner::default()
            }),
        }
    }

    /// Serves endpoint connections on `n` threads, each with its own single-threaded runtime
    /// (0, the default: `TRELLIS_RESOURCE_WORKERS` when set, else one per core). Takes effect
    /// when the first endpoint starts; later calls on a manager that runs endpoints are ignored.
    pub fn with_worker_threads(mut self, n: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.worker_threads = n;
        }
        self
    }

    /// Makes the running endpoints match `specs`: starts new ones, swaps changed ones in for new
    /// connections (open ones finish on the old target), and stops removed ones (no new
    /// connections at once; open ones are closed after the spec's drain timeout). Must be called
    /// within a Tokio runtime; outside one it does nothing.
    pub fn apply(&self, specs: Vec<EndpointSpec>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("resource endpoints not applied: no Tokio runtime");
            return;
        };
        let _enter = runtime.enter();
        let mut wanted: HashMap<Key, EndpointSpec> = HashMap::new();
        for s in specs {
            wanted.entry(s.key()).or_insert(s);
        }
        let mut running = self.lock();
        let stale: Vec<Key> = running
            .iter()
            .filter(|(k, r)| {
                wanted
                    .get(*k)
                    .is_none_or(|w| w.listen != r.spec.borrow().spec.listen)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(r) = running.remove(&k) {
                stop(r);
            }
        }
        for (key, spec) in wanted {
            if let Some(r) = running.get(&key) {
                if r.spec.borrow().spec != spec {
                    tracing::info!(
                        association = %spec.association_id,
                        resource_configuration = %spec.resource_configuration_id,
                        destination = %format!("{}:{}", spec.destination_host, spec.destination_port),
                        "resource endpoint updated: new connections use the new settings"
                    );
                    r.spec.send_replace(self.endpoint(spec));
                }
                continue;
            }
            match self.start(spec) {
                Ok(r) => {
                    running.insert(key, r);
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
    }

    /// Every running endpoint as bound.
    pub fn bound(&self) -> Vec<Bound> {
        let mut v: Vec<Bound> = self
            .lock()
            .values()
            .map(|r| {
                let s = &r.spec.borrow().spec;
                Bound {
                    association_id: s.association_id.clone(),
                    resource_configuration_id: s.resource_configuration_id.clone(),
                    destination_port: s.destination_port,
                    addr: r.bound,
                    url: s.url(r.bound),
                }
            })
            .collect();
        v.sort_by(|a, b| {
            (
                &a.association_id,
                &a.resource_configuration_id,
                a.destination_port,
            )
                .cmp(&(
                    &b.association_id,
                    &b.resource_configuration_id,
                    b.destination_port,
                ))
        });
        v
    }

    /// The counters of every resource configuration, in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        self.inner.metrics.render()
    }

    /// Makes the targets registered in `registry` under resource configuration ARNs match
    /// `specs`: registers new and changed ones (a change replaces the target, so new requests
    /// use the new settings) and unregisters those no longer wanted.
    pub fn apply_targets(&self, registry: &TargetRegistry, specs: Vec<TargetSpec>) {
        let mut registered = self.inner.targets.lock().unwrap_or_else(|p| p.into_inner());
        let wanted: HashMap<String, TargetSpec> =
            specs.into_iter().map(|s| (s.arn.clone(), s)).collect();
        registered.retain(|arn, _| {
            let keep = wanted.contains_key(arn);
            if !keep {
                registry.unregister(arn);
                tracing::info!(arn, "resource configuration target unregistered");
            }
            keep
        });
        for (arn, spec) in wanted {
            if registered.get(&arn) == Some(&spec) {
                continue;
            }
            let origin = Arc::new(Origin::new(
                &spec.destination_host,
                &spec.http,
                spec.connect_timeout,
                self.inner.resolver.clone(),
                self.inner.forbidden.clone(),
            ));
            let counters = self.inner.metrics.of(&spec.resource_configuration_id);
            registry.register(Arc::new(ResourceTarget::new(
                spec.clone(),
                origin,
                counters,
            )));
            tracing::info!(arn = %arn, destination = %spec.destination_host, "resource configuration target registered");
            registered.insert(arn, spec);
        }
    }

    /// Stops every endpoint (on shutdown).
    pub fn shutdown(&self) {
        for (_, r) in self.lock().drain() {
            stop(r);
        }
    }

    /// A spec with its clients to the destination (one per worker), when it is an HTTP
    /// endpoint.
    fn endpoint(&self, spec: EndpointSpec) -> Arc<Endpoint> {
        let origins = match &spec.http {
            None => Vec::new(),
            Some(http) => (0..self.workers().len().max(1))
                .map(|_| {
                    Arc::new(Origin::new(
                        &spec.destination_host,
                        http,
                        spec.connect_timeout,
                        self.inner.resolver.clone(),
                        self.inner.forbidden.clone(),
                    ))
                })
                .collect(),
        };
        Arc::new(Endpoint { spec, origins })
    }

    /// The worker threads of endpoint connections, started on first use.
    fn workers(&self) -> &Arc<Workers> {
        self.inner
            .workers
            .get_or_init(|| Arc::new(Workers::start(self.inner.worker_threads)))
    }

    fn start(&self, spec: EndpointSpec) -> Result<Running, String> {
        let listener = bind(spec.listen).map_err(|e| {
            format!(
                "resource endpoint for {} ({}) not started: cannot bind {} or a fallback: {e}",
                spec.association_id, spec.resource_configuration_id, spec.listen
            )
        })?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        if bound != spec.listen {
            tracing::warn!(
                wanted = %spec.listen,
                bound = %bound,
                "resource endpoint address taken; bound a fallback address"
            );
        }
        tracing::info!(
            association = %spec.association_id,
            resource_configuration = %spec.resource_configuration_id,
            endpoint = %spec.url(bound),
            destination = %format!("{}:{}", spec.destination_host, spec.destination_port),
            "resource endpoint listening"
        );
        let (spec_tx, spec_rx) = watch::channel(self.endpoint(spec));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (kill_tx, kill_rx) = watch::channel(false);
        tokio::spawn(accept_loop(
            listener,
            spec_rx,
            stop_rx,
            Shared {
                metrics: self.inner.metrics.clone(),
                resolver: self.inner.resolver.clone(),
                forbidden: self.inner.forbidden.clone(),
                active: Arc::new(AtomicUsize::new(0)),
                kill: kill_rx,
                local: bound,
            },
            self.workers().clone(),
        ));
        Ok(Running {
            spec: spec_tx,
            bound,
            stop: stop_tx,
            kill: kill_tx,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Running>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Stops accepting now and closes what is still open after the drain timeout.
fn stop(r: Running) {
    let spec = r.spec.borrow().spec.clone();
    tracing::info!(
        association = %spec.association_id,
        resource_configuration = %spec.resource_configuration_id,
        endpoint = %spec.url(r.bound),
        "resource endpoint closed"
    );
    let _ = r.stop.send(true);
    let kill = r.kill;
    let drain = spec.drain_timeout;
    tokio::spawn(async move {
        if !kill.is_closed() {
            tokio::time::sleep(drain).await;
        }
        let _ = kill.send(true);
    });
}

/// Binds `addr`, else port 0 on its address, else `127.0.0.1:0` (as on systems where only
/// 127.0.0.1 is a loopback address).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let candidates = [
        addr,
        SocketAddr::new(addr.ip(), 0),
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0),
    ];
    let mut last = None;
    for a in candidates {
        match std::net::TcpListener::bind(a) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                return TcpListener::from_std(l);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to bind")))
}

/// Accepts until stopped; each connection gets the endpoint's spec as it is at that moment.
/// Each connection is served on one of `workers`.
async fn accept_loop(
    listener: TcpListener,
    spec: watch::Receiver<Arc<Endpoint>>,
    mut stop: watch::Receiver<bool>,
    shared: Shared,
    workers: Arc<Workers>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let ep = spec.borrow().clone();
                    let shared = shared.clone();
                    workers.run(
                        stream,
                        Box::new(move |stream, worker| {
                            Box::pin(proxy::serve(stream, peer, ep, shared, worker))
                        }),
                    );
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(endpoint = %shared.local, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::Cidr;

    /// A TCP server that answers every chunk with `name:` and the chunk.
    async fn echo(name: &'static str) -> SocketAddr {
        echo_on(name, "127.0.0.1:0".parse().unwrap()).await
    }

    async fn echo_on(name: &'static str, addr: SocketAddr) -> SocketAddr {
        let l = TcpListener::bind(addr).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let mut out = format!("{name}:").into_bytes();
                        out.extend_from_slice(&buf[..n]);
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn spec(assoc: &str, dest: SocketAddr) -> EndpointSpec {
        EndpointSpec {
            association_id: assoc.into(),
            service_network_id: "sn-1".into(),
            resource_configuration_id: "rcfg-1".into(),
            resource_configuration_arn:
                "arn:aws:vpc-lattice:us-east-1:000000000000:resourceconfiguration/rcfg-1".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            destination_host: dest.ip().to_string(),
            destination_port: dest.port(),
            allowed_cidrs: None,
            max_connections: None,
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_millis(300),
            http: None,
        }
    }

    fn addr_of(m: &Manager, assoc: &str) -> SocketAddr {
        m.bound()
            .into_iter()
            .find(|b| b.association_id == assoc)
            .expect("endpoint bound")
            .addr
    }

    async fn roundtrip(s: &mut TcpStream, msg: &str) -> String {
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answer in time")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Reads until EOF (or an error), failing if the connection stays open.
    async fn closed(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn proxies_both_ways_and_counts() {
        let a = echo("a").await;
        let m = Manager::new();
        m.apply(vec![spec("snra-1", a)]);
        let ep = addr_of(&m, "snra-1");
        let mut c = TcpStream::connect(ep).await.unwrap();
        assert_eq!(roundtrip(&mut c, "hello").await, "a:hello");
        // A large payload both ways.
        let big = vec![b'x'; 1 << 20];
        c.write_all(&big).await.unwrap();
        let mut got = 0;
        let mut buf = vec![0u8; 1 << 16];
        while got < big.len() {
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got += buf[..n].iter().filter(|b| **b == b'x').count();
        }
        drop(c);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = m.render_metrics();
        assert!(
            text.contains(
                "trellis_resource_connections_total{resource_configuration=\"rcfg-1\"} 1"
            ),
            "{text}"
        );
        assert!(text
            .contains("trellis_resource_active_connections{resource_configuration=\"rcfg-1\"} 0"));
        // Every byte the client sent, counted once the connection closed.
        assert!(
            text.contains(&format!(
                "trellis_resource_bytes_total{{resource_configuration=\"rcfg-1\",direction=\"to_destination\"}} {}",
                5 + (1 << 20)
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_moved_destination_drains_gracefully() {
        let a = echo("a").await;
        // b listens on the same port as a, on another loopback address: the same resource port,
        // so the same endpoint, with a new target.
        let b = echo_on("b", SocketAddr::new([127, 0, 0, 2].into(), a.port())).await;
        let m = Manager::new();
        m.apply(vec![spec("snra-1", a)]);
        let ep = addr_of(&m, "snra-1");
        let mut old = TcpStream::connect(ep).await.unwrap();
        assert_eq!(roundtrip(&mut old, "1").await, "a:1");
        m.apply(vec![spec("snra-1", b)]);
        assert_eq!(addr_of(&m, "snra-1"), ep, "the listener is kept");
        let mut new = TcpStream::connect(ep).await.unwrap();
        assert_eq!(
            roundtrip(&mut new, "2").await,
            "b:2",
            "new connections go to b"
        );
        assert_eq!(
            roundtrip(&mut old, "3").await,
            "a:3",
            "open ones finish on a"
        );
        // Applying the same specs again changes nothing.
        m.apply(vec![spec("snra-1", b)]);
        assert_eq!(roundtrip(&mut old, "4").await, "a:4");
    }

    #[tokio::test]
    async fn removal_refuses_new_and_closes_open_connections_after_drain() {
        let a = echo("a").await;
        let m = Manager::new();
        m.apply(vec![spec("snra-1", a)]);
        let ep = addr_of(&m, "snra-1");
        let mut open = TcpStream::connect(ep).await.unwrap();
        assert_eq!(roundtrip(&mut open, "1").await, "a:1");
        m.apply(vec![]);
        assert!(m.bound().is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(ep).await.is_err(), "no longer listening");
        // Still usable during the drain time, closed after it.
        assert_eq!(roundtrip(&mut open, "2").await, "a:2");
        assert!(closed(&mut open).await);
    }

    #[tokio::test]
    async fn allow_list_and_limit_close_connections() {
        let a = echo("a").await;
        let m = Manager::new();
        let mut denied = spec("snra-1", a);
        denied.allowed_cidrs = Some(vec!["10.0.0.0/8".parse::<Cidr>().unwrap()]);
        let mut allowed = spec("snra-2", a);
        allowed.allowed_cidrs = Some(vec!["127.0.0.0/8".parse::<Cidr>().unwrap()]);
        allowed.max_connections = Some(1);
        m.apply(vec![denied, allowed]);
        let mut c = TcpStream::connect(addr_of(&m, "snra-1")).await.unwrap();
        assert!(closed(&mut c).await, "outside the allow-list");
        let mut first = TcpStream::connect(addr_of(&m, "snra-2")).await.unwrap();
        assert_eq!(roundtrip(&mut first, "1").await, "a:1");
        let mut second = TcpStream::connect(addr_of(&m, "snra-2")).await.unwrap();
        assert!(closed(&mut second).await, "over the limit");
        drop(first);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(addr_of(&m, "snra-2")).await.unwrap();
        assert_eq!(roundtrip(&mut third, "3").await, "a:3");
        let text = m.render_metrics();
        assert!(text.contains("reason=\"cidr\"} 1"), "{text}");
        assert!(text.contains("reason=\"limit\"} 1"), "{text}");
    }

    #[tokio::test]
    async fn refused_destinations_and_idle_connections_are_closed() {
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let a = echo("a").await;
        let m = Manager::new();
        let mut idle = spec("snra-2", a);
        idle.idle_timeout = Duration::from_millis(300);
        m.apply(vec![spec("snra-1", free), idle]);
        let mut c = TcpStream::connect(addr_of(&m, "snra-1")).await.unwrap();
        assert!(
            closed(&mut c).await,
            "refused destination closes the client"
        );
        assert!(m.render_metrics().contains(
            "trellis_resource_connect_errors_total{resource_configuration=\"rcfg-1\"} 1"
        ));
        let mut c = TcpStream::connect(addr_of(&m, "snra-2")).await.unwrap();
        assert_eq!(roundtrip(&mut c, "1").await, "a:1");
        let t = std::time::Instant::now();
        assert!(closed(&mut c).await, "idle connection closed");
        assert!(t.elapsed() >= Duration::from_millis(250));
    }

    #[tokio::test]
    async fn a_taken_address_falls_back_to_another_port() {
        let a = echo("a").await;
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = spec("snra-1", a);
        s.listen = taken.local_addr().unwrap();
        let m = Manager::new();
        m.apply(vec![s]);
        let ep = addr_of(&m, "snra-1");
        assert_ne!(ep, taken.local_addr().unwrap());
        let mut c = TcpStream::connect(ep).await.unwrap();
        assert_eq!(roundtrip(&mut c, "1").await, "a:1");
    }

    #[tokio::test]
    async fn dns_destinations_are_resolved_at_connect_time() {
        let a = echo("a").await;
        let mut s = spec("snra-1", a);
        s.destination_host = "localhost".into();
        let m = Manager::new();
        m.apply(vec![s]);
        let mut c = TcpStream::connect(addr_of(&m, "snra-1")).await.unwrap();
        // localhost may resolve to ::1 first; the resolver tries each address.
        assert_eq!(roundtrip(&mut c, "1").await, "a:1");
    }
}
