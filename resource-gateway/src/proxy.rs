//! One accepted connection: allow-list, limit, then either TCP (connect, copy both ways,
//! close, log) or, on an HTTP endpoint, HTTP requests forwarded one by one ([`crate::http`]).

use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, Interest};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;
use trellis_core::json_line::JsonLine;

use crate::dns::Resolver;
use crate::metrics::{Counters, Metrics};
use crate::origin::Origin;
use crate::{Cidr, EndpointSpec};

/// Per direction and connection: large enough for bulk transfers, small enough for thousands
/// of idle database connections.
const BUFFER: usize = 32 * 1024;

/// A running endpoint's settings and, for an HTTP endpoint, its pooled clients to the
/// destination: one per worker thread, so a request and its pooled upstream connection are
/// served by the same thread. Replaced as a whole when the spec changes.
pub(crate) struct Endpoint {
    pub spec: EndpointSpec,
    /// Empty for a TCP endpoint.
    pub origins: Vec<Arc<Origin>>,
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

/// Serves one accepted connection on worker thread `worker`.
pub(crate) async fn serve(
    client: TcpStream,
    peer: SocketAddr,
    ep: Arc<Endpoint>,
    s: Shared,
    worker: usize,
) {
    let start = Instant::now();
    let spec = &ep.spec;
    let counters = s.metrics.of(&spec.resource_configuration_id);
    let identity = identity(spec, peer, s.local);
    let log = |destination: Option<SocketAddr>, up: u64, down: u64, reason: &str| {
        log_access(&identity, |line| {
            match destination {
                Some(d) => line.display("destinationAddress", d),
                None => line.raw("destinationAddress", "null"),
            }
            .num("bytesToDestination", up)
            .num("bytesFromDestination", down)
            .num("durationMs", start.elapsed().as_millis() as u64)
            .str("closeReason", reason);
        });
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
    if let Some(origin) = ep.origins.get(worker % ep.origins.len().max(1)) {
        let identity = Arc::new(identity);
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
    let (reason, up, down) = pump(client, upstream, spec.idle_timeout, s.kill, &counters).await;
    log(Some(dest), up, down, &reason);
}

/// Which endpoint and client an access-log line is about: its fields, written once per
/// connection.
pub(crate) struct Identity {
    /// JSON object members (`"source":"…",…`), without braces.
    fields: String,
    pub resource_configuration_id: String,
}

impl Identity {
    pub fn new(resource_configuration_id: &str, fill: impl FnOnce(&mut JsonLine)) -> Self {
        let mut line = JsonLine::with_capacity(384);
        fill(&mut line);
        Self {
            fields: line.into_fields(),
            resource_configuration_id: resource_configuration_id.to_string(),
        }
    }
}

pub(crate) fn identity(spec: &EndpointSpec, peer: SocketAddr, local: SocketAddr) -> Identity {
    Identity::new(&spec.resource_configuration_id, |line| {
        line.display("source", peer)
            .display("endpoint", local)
            .str("serviceNetworkId", &spec.service_network_id)
            .str("serviceNetworkResourceAssociationId", &spec.association_id)
            .str("resourceConfigurationId", &spec.resource_configuration_id)
            .str("resourceConfigurationArn", &spec.resource_configuration_arn)
            .display(
                "destination",
                format_args!("{}:{}", spec.destination_host, spec.destination_port),
            );
    })
}

/// Whether access-log lines are wanted (`TRELLIS_LOG` can turn the target off): when not,
/// callers skip building them.
pub(crate) fn access_log_on() -> bool {
    tracing::enabled!(target: "trellis::resource_access", tracing::Level::INFO)
}

/// Writes one JSON access-log line: type and time, `identity`, then what `fill` adds.
pub(crate) fn log_access(identity: &Identity, fill: impl FnOnce(&mut JsonLine)) {
    if !access_log_on() {
        return;
    }
    let mut line = JsonLine::with_capacity(768);
    line.str("type", "resource_access")
        .str("time", &trellis_core::clock::now_iso8601())
        .fields(&identity.fields);
    fill(&mut line);
    let line = line.finish();
    tracing::info!(target: "trellis::resource_access", "{line}");
}

/// Copies both ways until both sides have closed, one fails, the connection idles out or the
/// endpoint is deleted; returns the close reason and the bytes moved each way.
async fn pump(
    client: TcpStream,
    upstream: TcpStream,
    idle: Duration,
    mut kill: watch::Receiver<bool>,
    counters: &Counters,
) -> (String, u64, u64) {
    let mut pump = Pump::new(client, upstream, idle, counters);
    let mut killed = *kill.borrow();
    let reason = loop {
        if killed {
            break "endpoint_deleted".to_string();
        }
        tokio::select! {
            biased;
            reason = &mut pump => break reason,
            changed = kill.changed() => {
                // A dropped sender means the manager is gone: close as if deleted.
                killed = changed.is_err() || *kill.borrow();
            }
        }
    };
    pump.fold();
    (reason, pump.up.bytes, pump.down.bytes)
}

/// How long bytes may be counted on a connection before they are added to the shared
/// per-resource counters: adding at most once a second keeps the shared cache line out of
/// the per-read path, and `/metrics` at most this late.
const FOLD_EVERY: Duration = Duration::from_secs(1);

/// Both directions of one TCP connection in one future: no task per direction, no split
/// halves, plain counters. Each poll moves what is ready each way, then arms one timer for
/// the earlier of the idle deadline and the next fold of the byte counters.
struct Pump<'a> {
    client: TcpStream,
    upstream: TcpStream,
    /// Client to destination.
    up: Flow,
    /// Destination to client.
    down: Flow,
    /// The side that closed first: once one has, an error on the other is part of closing.
    first_closed: Option<&'static str>,
    idle: Duration,
    /// When a byte last moved either way.
    last: Instant,
    /// When the counters were last folded into `counters`.
    folded: Instant,
    timer: Pin<Box<Sleep>>,
    counters: &'a Counters,
}

/// One direction: its buffer (what was read and is not written yet) and its byte counts.
struct Flow {
    buf: Box<[u8]>,
    /// Written up to here.
    at: usize,
    /// Read up to here.
    len: usize,
    /// The source has ended (its end is passed on by shutting the sink's write side).
    eof: bool,
    done: bool,
    bytes: u64,
    /// Bytes not yet added to the shared counter.
    unfolded: u64,
}

impl Flow {
    fn new() -> Self {
        Self {
            buf: vec![0u8; BUFFER].into_boxed_slice(),
            at: 0,
            len: 0,
            eof: false,
            done: false,
            bytes: 0,
            unfolded: 0,
        }
    }

    /// Moves bytes from `from` to `to` until `from` has nothing more for now (`Pending`),
    /// `from` ends and `to` is shut for writing (`Ready(Ok)`), or an error.
    ///
    /// A read that fills less than the buffer has drained the socket, so the read readiness
    /// is cleared there and then instead of by one more `read` that would only answer
    /// `EAGAIN`: for the small request/answer exchanges of database protocols that saves a
    /// third of the system calls. Clearing is safe: Tokio clears only the readiness it saw, and
    /// data that arrives later raises a new edge.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &TcpStream,
        to: &mut TcpStream,
        moved: &mut bool,
    ) -> Poll<std::io::Result<()>> {
        loop {
            while self.at < self.len {
                ready!(to.poll_write_ready(cx))?;
                match to.try_write(&self.buf[self.at..self.len]) {
                    Ok(0) => return Poll::Ready(Err(ErrorKind::WriteZero.into())),
                    Ok(n) => self.at += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if self.eof {
                let _ = ready!(Pin::new(&mut *to).poll_shutdown(cx));
                return Poll::Ready(Ok(()));
            }
            ready!(from.poll_read_ready(cx))?;
            let n = match from.try_read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            };
            if n == 0 {
                self.eof = true;
                continue;
            }
            if n < self.buf.len() {
                let _ = from.try_io(Interest::READABLE, || {
                    Err::<(), _>(ErrorKind::WouldBlock.into())
                });
            }
            (self.at, self.len) = (0, n);
            self.bytes += n as u64;
            self.unfolded += n as u64;
            *moved = true;
        }
    }
}

impl<'a> Pump<'a> {
    fn new(client: TcpStream, upstream: TcpStream, idle: Duration, counters: &'a Counters) -> Self {
        let now = Instant::now();
        Self {
            client,
            upstream,
            up: Flow::new(),
            down: Flow::new(),
            first_closed: None,
            idle,
            last: now,
            folded: now,
            timer: Box::pin(tokio::time::sleep_until(later(now, idle).into())),
            counters,
        }
    }

    /// Adds the bytes counted since the last fold to the shared counters.
    fn fold(&mut self) {
        for (flow, metric) in [
            (&mut self.up, &self.counters.bytes_to_destination),
            (&mut self.down, &self.counters.bytes_from_destination),
        ] {
            if flow.unfolded > 0 {
                metric.fetch_add(flow.unfolded, Relaxed);
                flow.unfolded = 0;
            }
        }
        self.folded = Instant::now();
    }

    /// When the timer must fire next: at the idle deadline, or sooner to fold counted bytes.
    fn deadline(&self) -> Instant {
        let idle = later(self.last, self.idle);
        if self.up.unfolded + self.down.unfolded > 0 {
            idle.min(self.folded + FOLD_EVERY)
        } else {
            idle
        }
    }
}

/// `t + d`, or about thirty years from `t` when that overflows (an idle timeout of "never").
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .unwrap_or_else(|| t + Duration::from_secs(30 * 365 * 86_400))
}

impl Future for Pump<'_> {
    type Output = String;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        let this = self.get_mut();
        let mut moved = false;
        if !this.up.done {
            match this
                .up
                .poll(cx, &this.client, &mut this.upstream, &mut moved)
            {
                Poll::Ready(Ok(())) => {
                    this.up.done = true;
                    this.first_closed.get_or_insert("client_closed");
                }
                // A reset after the other side closed is part of closing.
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(this.first_closed.map_or_else(
                        || format!("error: client to destination: {e}"),
                        str::to_string,
                    ))
                }
                Poll::Pending => {}
            }
        }
        if !this.down.done {
            match this
                .down
                .poll(cx, &this.upstream, &mut this.client, &mut moved)
            {
                Poll::Ready(Ok(())) => {
                    this.down.done = true;
                    this.first_closed.get_or_insert("destination_closed");
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(this.first_closed.map_or_else(
                        || format!("error: destination to client: {e}"),
                        str::to_string,
                    ))
                }
                Poll::Pending => {}
            }
        }
        if this.up.done && this.down.done {
            return Poll::Ready(this.first_closed.unwrap_or("closed").to_string());
        }
        if moved {
            this.last = Instant::now();
        }
        // The timer only ever moves earlier here (a fold due before the idle deadline); a
        // later idle deadline is taken up when the timer fires.
        let deadline = this.deadline();
        if deadline < this.timer.deadline().into_std() {
            this.timer.as_mut().reset(deadline.into());
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            this.fold();
            if this.last.elapsed() >= this.idle {
                return Poll::Ready("idle_timeout".into());
            }
            let next = this.deadline();
            this.timer.as_mut().reset(next.into());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Both ends of a fresh loopback connection.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    async fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .expect("bytes in time")
            .unwrap();
        buf
    }

    #[tokio::test]
    async fn counts_bytes_each_way_passes_half_closes_on_and_names_who_closed_first() {
        let (mut client, proxy_client) = pair().await;
        let (proxy_upstream, mut server) = pair().await;
        let counters = Counters::default();
        let (_kill_tx, kill) = watch::channel(false);
        let pumped = pump(
            proxy_client,
            proxy_upstream,
            Duration::from_secs(30),
            kill,
            &counters,
        );
        let talk = async {
            client.write_all(b"hello").await.unwrap();
            assert_eq!(read_exactly(&mut server, 5).await, b"hello");
            // More than a buffer's worth, so the copy loops and writes in parts.
            let big = vec![7u8; 3 * BUFFER + 11];
            server.write_all(&big).await.unwrap();
            assert_eq!(read_exactly(&mut client, big.len()).await, big);
            // The client half-closes: the server sees the end and may still answer.
            client.shutdown().await.unwrap();
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            server.write_all(b"bye").await.unwrap();
            drop(server);
            let mut tail = Vec::new();
            client.read_to_end(&mut tail).await.unwrap();
            assert_eq!(tail, b"bye");
        };
        let ((reason, up, down), ()) = tokio::join!(pumped, talk);
        let down_want = (3 * BUFFER + 11 + 3) as u64;
        assert_eq!((reason.as_str(), up, down), ("client_closed", 5, down_want));
        assert_eq!(counters.bytes_to_destination.load(Relaxed), 5);
        assert_eq!(counters.bytes_from_destination.load(Relaxed), down_want);
    }

    #[tokio::test]
    async fn counters_move_while_open_and_traffic_keeps_the_connection_from_idling_out() {
        let (mut client, proxy_client) = pair().await;
        let (proxy_upstream, mut server) = pair().await;
        let counters = Counters::default();
        let (kill_tx, kill) = watch::channel(false);
        let idle = Duration::from_millis(400);
        let pumped = pump(proxy_client, proxy_upstream, idle, kill, &counters);
        let talk = async {
            // A byte every 150 ms for 1.5 s: never idle for 400 ms, so never closed.
            let mut last_sent = Instant::now();
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                client.write_all(b"x").await.unwrap();
                last_sent = Instant::now();
                assert_eq!(read_exactly(&mut server, 1).await, b"x");
            }
            // The shared counters saw the bytes of the open connection (folded within a
            // second of their moving).
            let t = Instant::now();
            while counters.bytes_to_destination.load(Relaxed) < 10 {
                assert!(t.elapsed() < Duration::from_secs(3), "bytes not folded in");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Quiet now: closed the idle timeout after the last byte.
            let mut buf = [0u8; 8];
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .expect("closed in time")
                .unwrap_or(0);
            assert_eq!(n, 0);
            assert!(last_sent.elapsed() >= idle, "{:?}", last_sent.elapsed());
            drop(kill_tx);
        };
        let ((reason, up, down), ()) = tokio::join!(pumped, talk);
        assert_eq!((reason.as_str(), up, down), ("idle_timeout", 10, 0));
        assert_eq!(counters.bytes_to_destination.load(Relaxed), 10);
    }

    #[tokio::test]
    async fn a_deleted_endpoint_closes_its_open_connections() {
        let (mut client, proxy_client) = pair().await;
        let (proxy_upstream, mut server) = pair().await;
        let counters = Counters::default();
        let (kill_tx, kill) = watch::channel(false);
        let pumped = pump(
            proxy_client,
            proxy_upstream,
            Duration::from_secs(30),
            kill,
            &counters,
        );
        let talk = async {
            client.write_all(b"abc").await.unwrap();
            assert_eq!(read_exactly(&mut server, 3).await, b"abc");
            kill_tx.send(true).unwrap();
        };
        let ((reason, up, down), ()) = tokio::join!(pumped, talk);
        assert_eq!((reason.as_str(), up, down), ("endpoint_deleted", 3, 0));
        assert_eq!(counters.bytes_to_destination.load(Relaxed), 3);
        let mut buf = [0u8; 8];
        assert!(matches!(client.read(&mut buf).await, Ok(0) | Err(_)));
    }
}
