//! One accepted connection: allow-list, limit, then either TCP (connect, copy both ways,
//! close, log) or, on an HTTP endpoint, HTTP requests forwarded one by one ([`crate::http`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use std::io::ErrorKind;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::dns::Resolver;
use crate::metrics::{Counters, Metrics};
use crate::origin::Origin;
use crate::{Cidr, EndpointSpec};

/// Per direction and connection: large enough for bulk transfers, small enough for thousands
/// of idle database connections.
const BUFFER: usize = 32 * 1024;

/// A running endpoint's settings and, for an HTTP endpoint, its pooled client to the
/// destination. Replaced as a whole when the spec changes.
pub(crate) struct Endpoint {
    pub spec: EndpointSpec,
    pub origin: Option<Arc<Origin>>,
}

/// What a connection shares with its endpoint.
#[derive(Clone)]
pub(crate) struct Shared {
    pub metrics: Arc<Metrics>,
    pub resolver: Arc<Resolver>,
    /// Destination addresses that are never dialed.
    pub forbidden: Arc<Vec<Cidr>>,
    /// Open connections of this endpoint, for the limit.
    pub active: Arc<AtomicUsize>,
    /// Turns true when the endpoint is deleted and its drain time is over.
    pub kill: watch::Receiver<bool>,
    /// The address the endpoint is bound to.
    pub local: SocketAddr,
}

struct ActiveGuard(Arc<AtomicUsize>, Arc<Counters>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
        self.1.active.fetch_sub(1, Relaxed);
    }
}

pub(crate) async fn serve(client: TcpStream, peer: SocketAddr, ep: Arc<Endpoint>, s: Shared) {
    let start = Instant::now();
    let spec = &ep.spec;
    let counters = s.metrics.of(&spec.resource_configuration_id);
    let identity = identity(spec, peer, s.local);
    let log = |destination: Option<SocketAddr>, up: u64, down: u64, reason: &str| {
        log_access(
            &identity,
            json!({
                "destinationAddress": destination.map(|d| d.to_string()),
                "bytesToDestination": up,
                "bytesFromDestination": down,
                "durationMs": start.elapsed().as_millis() as u64,
                "closeReason": reason,
            }),
        );
    };

    if let Some(cidrs) = &spec.allowed_cidrs {
        if !cidrs.iter().any(|c| c.contains(peer.ip())) {
            counters.denied_cidr.fetch_add(1, Relaxed);
            log(None, 0, 0, "denied: source not in the allow-list");
            return;
        }
    }
    let open = s.active.fetch_add(1, Relaxed) + 1;
    counters.active.fetch_add(1, Relaxed);
    let _guard = ActiveGuard(s.active.clone(), counters.clone());
    if spec.max_connections.is_some_and(|max| open > max) {
        counters.denied_limit.fetch_add(1, Relaxed);
        log(None, 0, 0, "denied: connection limit reached");
        return;
    }
    counters.connections.fetch_add(1, Relaxed);
    if let Some(origin) = &ep.origin {
        let identity = Arc::new(identity.clone());
        crate::http::serve(client, spec, origin.clone(), identity, s.kill, counters).await;
        return;
    }

    let connect = s
        .resolver
        .connect(&spec.destination_host, spec.destination_port, &s.forbidden);
    let (upstream, dest) = match tokio::time::timeout(spec.connect_timeout, connect).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            counters.connect_errors.fetch_add(1, Relaxed);
            log(None, 0, 0, &format!("connect_error: {e}"));
            return;
        }
        Err(_) => {
            counters.connect_errors.fetch_add(1, Relaxed);
            log(None, 0, 0, "connect_timeout");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let up = AtomicU64::new(0);
    let down = AtomicU64::new(0);
    let reason = pump(client, upstream, spec, s.kill, &counters, &up, &down).await;
    log(Some(dest), up.load(Relaxed), down.load(Relaxed), &reason);
}

/// The fields that say which endpoint and client an access-log line is about.
pub(crate) fn identity(
    spec: &EndpointSpec,
    peer: SocketAddr,
    local: SocketAddr,
) -> Map<String, Value> {
    let v = json!({
        "source": peer.to_string(),
        "endpoint": local.to_string(),
        "serviceNetworkId": spec.service_network_id,
        "serviceNetworkResourceAssociationId": spec.association_id,
        "resourceConfigurationId": spec.resource_configuration_id,
        "resourceConfigurationArn": spec.resource_configuration_arn,
        "destination": format!("{}:{}", spec.destination_host, spec.destination_port),
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Writes one JSON access-log line: type and time, `identity`, then `fields`.
pub(crate) fn log_access(identity: &Map<String, Value>, fields: Value) {
    let mut line = Map::new();
    line.insert("type".into(), "resource_access".into());
    line.insert("time".into(), trellis_core::clock::now_iso8601().into());
    line.extend(identity.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Value::Object(f) = fields {
        line.extend(f);
    }
    let line = Value::Object(line);
    tracing::info!(target: "trellis::resource_access", "{line}");
}

/// Copies both ways until both sides have closed, one fails, the connection idles out or the
/// endpoint is deleted; returns the close reason.
async fn pump(
    mut client: TcpStream,
    mut upstream: TcpStream,
    spec: &EndpointSpec,
    mut kill: watch::Receiver<bool>,
    counters: &Counters,
    up: &AtomicU64,
    down: &AtomicU64,
) -> String {
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let to_dest = copy(
        &mut cr,
        &mut uw,
        up,
        &counters.bytes_to_destination,
        &last,
        start,
    );
    let from_dest = copy(
        &mut ur,
        &mut cw,
        down,
        &counters.bytes_from_destination,
        &last,
        start,
    );
    tokio::pin!(to_dest, from_dest);
    let (mut client_done, mut dest_done) = (false, false);
    let mut first_closed: Option<&str> = None;
    let idle = spec.idle_timeout;
    let mut killed = *kill.borrow();
    loop {
        if killed {
            return "endpoint_deleted".into();
        }
        let idle_for = Duration::from_millis(start.elapsed().as_millis() as u64)
            .saturating_sub(Duration::from_millis(last.load(Relaxed)));
        let idle_left = idle.saturating_sub(idle_for);
        tokio::select! {
            r = &mut to_dest, if !client_done => match r {
                Ok(()) => {
                    client_done = true;
                    first_closed.get_or_insert("client_closed");
                }
                // A reset after the other side closed is part of closing.
                Err(e) => return first_closed.map_or_else(
                    || format!("error: client to destination: {e}"),
                    str::to_string,
                ),
            },
            r = &mut from_dest, if !dest_done => match r {
                Ok(()) => {
                    dest_done = true;
                    first_closed.get_or_insert("destination_closed");
                }
                Err(e) => return first_closed.map_or_else(
                    || format!("error: destination to client: {e}"),
                    str::to_string,
                ),
            },
            _ = tokio::time::sleep(idle_left) => {
                let idle_for = Duration::from_millis(start.elapsed().as_millis() as u64)
                    .saturating_sub(Duration::from_millis(last.load(Relaxed)));
                if idle_for >= idle {
                    return "idle_timeout".into();
                }
            }
            changed = kill.changed() => {
                // A dropped sender means the manager is gone: close as if deleted.
                killed = changed.is_err() || *kill.borrow();
            }
        }
        if client_done && dest_done {
            return first_closed.unwrap_or("closed").to_string();
        }
    }
}

/// Copies `r` to `w` until `r` ends, then half-closes `w`.
///
/// A read that fills less than the buffer has drained the socket, so the read readiness is
/// cleared there and then instead of by one more `read` that would only answer `EAGAIN`: for
/// the small request/answer exchanges of database protocols that saves a third of the system
/// calls. Clearing is safe: Tokio clears only the readiness it saw, and data that arrives
/// later raises a new edge.
async fn copy(
    r: &mut ReadHalf<'_>,
    w: &mut WriteHalf<'_>,
    total: &AtomicU64,
    metric: &AtomicU64,
    last: &AtomicU64,
    start: Instant,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    let socket: &TcpStream = r.as_ref();
    loop {
        socket.readable().await?;
        let n = match socket.try_read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        if n < buf.len() {
            let _ = socket.try_io(Interest::READABLE, || {
                Err::<(), _>(ErrorKind::WouldBlock.into())
            });
        }
        w.write_all(&buf[..n]).await?;
        total.fetch_add(n as u64, Relaxed);
        metric.fetch_add(n as u64, Relaxed);
        last.store(start.elapsed().as_millis() as u64, Relaxed);
    }
}
