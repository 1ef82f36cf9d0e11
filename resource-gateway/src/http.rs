//! HTTP endpoints: every request on a client's connection (HTTP/1.1, or HTTP/2 with prior
//! knowledge) is sent to the resource through the endpoint's [`Origin`] (TLS origination, or
//! plain HTTP), and its answer streamed back; a destination that cannot be reached is a 502,
//! one that does not answer in time a 504. A protocol upgrade the destination accepts (101,
//! such as WebSocket) turns the client's connection into a tunnel to it. One access-log line
//! per request, written when its response body is done (for an upgrade, when the tunnel
//! closes).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::metrics::Counters;
use crate::origin::{upgrade_of, Body, BoxError, Dialed, Failure, Origin};
use crate::proxy::{access_log_on, log_access, Identity};
use crate::EndpointSpec;

type Tunnel = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves one client connection until it closes or the endpoint is deleted and drained.
pub(crate) async fn serve(
    client: TcpStream,
    spec: &EndpointSpec,
    origin: Arc<Origin>,
    identity: Arc<Identity>,
    mut kill: watch::Receiver<bool>,
    counters: Arc<Counters>,
) {
    let _ = client.set_nodelay(true);
    let port = spec.destination_port;
    // An upgraded request leaves its tunnel here; it runs once hyper has handed over the
    // connection, still inside this function so the connection stays counted and drained.
    let (tunnels, mut tunnel) = mpsc::unbounded_channel::<Tunnel>();
    let svc = service_fn(move |req: Request<Incoming>| {
        let origin = origin.clone();
        let exchange = Exchange::new(identity.clone(), &req, counters.clone());
        let tunnels = tunnels.clone();
        async move {
            let req = req.map(|b| exchange.count_up(b));
            Ok::<_, Infallible>(forward(req, &origin, port, exchange, &tunnels).await)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(spec.idle_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(client), svc);
    tokio::pin!(conn);
    if *kill.borrow() {
        return;
    }
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(resource_configuration = %spec.resource_configuration_id, "HTTP connection: {e}");
            }
        }
        () = killed(&mut kill) => return,
    }
    if let Ok(tunnel) = tunnel.try_recv() {
        tokio::select! {
            () = tunnel => {}
            () = killed(&mut kill) => {}
        }
    }
}

/// Resolves once the endpoint is deleted (and drained) or its manager is gone.
async fn killed(kill: &mut watch::Receiver<bool>) {
    while !*kill.borrow() {
        if kill.changed().await.is_err() {
            return;
        }
    }
}

async fn forward(
    mut req: Request<Body>,
    origin: &Origin,
    port: u16,
    exchange: Exchange,
    tunnels: &mpsc::UnboundedSender<Tunnel>,
) -> Response<Body> {
    if req.method() == Method::CONNECT {
        exchange.log(405, None, 0, "denied: CONNECT is not proxied");
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed: a resource endpoint does not tunnel\n",
        );
    }
    // Taken before the request goes on: the client's side of a possible upgrade.
    let upgrade = upgrade_of(req.headers()).filter(|_| origin.upgrades());
    let client_side = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    match origin.send(port, req, upgrade).await {
        Err(f) => {
            exchange.failed(&f);
            let body = if f.timeout {
                "504 Gateway Timeout: the resource did not answer in time\n"
            } else {
                "502 Bad Gateway: the resource could not be reached\n"
            };
            text(f.status(), body)
        }
        Ok(mut resp) => {
            let dialed = resp.extensions().get::<Dialed>().map(|d| d.0);
            let status = resp.status().as_u16();
            if let (Some(client_side), StatusCode::SWITCHING_PROTOCOLS) =
                (client_side, resp.status())
            {
                let origin_side = hyper::upgrade::on(&mut resp);
                let _ = tunnels.send(Box::pin(tunnel(client_side, origin_side, exchange, dialed)));
                return resp.map(|_| Full::new(Bytes::new()).map_err(|n| match n {}).boxed());
            }
            resp.map(|inner| {
                Logged {
                    inner,
                    exchange,
                    status,
                    dialed,
                    down: 0,
                    ended: false,
                    error: None,
                }
                .map_err(BoxError::from)
                .boxed()
            })
        }
    }
}

/// Carries bytes both ways between the two upgraded connections until either side closes,
/// then logs the exchange (status 101) with the bytes each way.
async fn tunnel(
    client: OnUpgrade,
    origin: OnUpgrade,
    exchange: Exchange,
    dialed: Option<SocketAddr>,
) {
    let down = Arc::new(AtomicU64::new(0));
    let mut log = TunnelLog {
        up_before: exchange.up.load(Relaxed),
        exchange,
        dialed,
        down: down.clone(),
        reason: "client_closed".into(),
    };
    let (client, origin) = match tokio::try_join!(client, origin) {
        Ok(both) => both,
        Err(e) => {
            log.reason = format!("error: upgrade: {e}");
            return;
        }
    };
    let mut client = Counted {
        io: TokioIo::new(client),
        read: log.exchange.up.clone(),
    };
    let mut origin = Counted {
        io: TokioIo::new(origin),
        read: down,
    };
    log.reason = match tokio::io::copy_bidirectional(&mut client, &mut origin).await {
        Ok(_) => "completed".into(),
        Err(e) => format!("error: {e}"),
    };
}

/// The access-log line of an upgraded exchange, written when the tunnel ends however it ends
/// (closed, failed, or dropped when the endpoint is deleted).
struct TunnelLog {
    exchange: Exchange,
    /// Request body bytes, already counted in the metrics.
    up_before: u64,
    dialed: Option<SocketAddr>,
    down: Arc<AtomicU64>,
    reason: String,
}

impl Drop for TunnelLog {
    fn drop(&mut self) {
        let up = self.exchange.up.load(Relaxed) - self.up_before;
        self.exchange
            .counters
            .bytes_to_destination
            .fetch_add(up, Relaxed);
        let reason = if std::thread::panicking() {
            "error: panic"
        } else {
            self.reason.as_str()
        };
        self.exchange
            .log(101, self.dialed, self.down.load(Relaxed), reason);
    }
}

/// A stream that counts the bytes read from it.
struct Counted<T> {
    io: T,
    read: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        this.read
            .fetch_add((buf.filled().len() - before) as u64, Relaxed);
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// One request's access-log fields and byte counts.
pub(crate) struct Exchange {
    identity: Arc<Identity>,
    method: String,
    path: String,
    start: Instant,
    up: Arc<AtomicU64>,
    counters: Arc<Counters>,
}

impl Exchange {
    pub fn new<B>(identity: Arc<Identity>, req: &Request<B>, counters: Arc<Counters>) -> Self {
        Self {
            identity,
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            start: Instant::now(),
            up: Arc::new(AtomicU64::new(0)),
            counters,
        }
    }

    /// The request body, counting the bytes sent to the destination.
    pub fn count_up<B>(&self, body: B) -> Body
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let (up, counters) = (self.up.clone(), self.counters.clone());
        body.map_frame(move |f| {
            if let Some(d) = f.data_ref() {
                up.fetch_add(d.len() as u64, Relaxed);
                counters
                    .bytes_to_destination
                    .fetch_add(d.len() as u64, Relaxed);
            }
            f
        })
        .map_err(Into::into)
        .boxed()
    }

    /// Counts (a connect error when no connection was made) and logs a request that got no
    /// answer.
    pub fn failed(&self, f: &Failure) {
        if f.connect {
            self.counters.connect_errors.fetch_add(1, Relaxed);
        }
        tracing::warn!(
            resource_configuration = self.identity.resource_configuration_id.as_str(),
            "{} {}: {} ({})",
            self.method,
            self.path,
            f.status().as_u16(),
            f.reason
        );
        self.log(f.status().as_u16(), None, 0, &f.reason);
    }

    pub fn log(&self, status: u16, dialed: Option<SocketAddr>, down: u64, reason: &str) {
        self.counters
            .bytes_from_destination
            .fetch_add(down, Relaxed);
        if !access_log_on() {
            return;
        }
        log_access(&self.identity, |line| {
            line.str("method", &self.method)
                .str("path", &self.path)
                .num("status", u64::from(status));
            match dialed {
                Some(d) => line.display("destinationAddress", d),
                None => line.raw("destinationAddress", "null"),
            }
            .num("bytesToDestination", self.up.load(Relaxed))
            .num("bytesFromDestination", down)
            .num("durationMs", self.start.elapsed().as_millis() as u64)
            .str("closeReason", reason);
        });
    }
}

/// A response body on its way to the client; logs the exchange when dropped (done, failed, or
/// abandoned by the client).
struct Logged {
    inner: Incoming,
    exchange: Exchange,
    status: u16,
    dialed: Option<SocketAddr>,
    down: u64,
    ended: bool,
    error: Option<String>,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(f))) => {
                this.down += f.data_ref().map_or(0, |d| d.len() as u64);
            }
            Poll::Ready(Some(Err(e))) => this.error = Some(format!("error: {e}")),
            Poll::Ready(None) => this.ended = true,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let reason = match &self.error {
            Some(e) => e.as_str(),
            None if self.ended || self.inner.is_end_stream() => "completed",
            None => "client_closed",
        };
        self.exchange
            .log(self.status, self.dialed, self.down, reason);
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::testing::{https_server, pki};
    use crate::{EndpointSpec, HttpSettings, Manager, TlsSettings};

    fn spec(assoc: &str, port: u16, ca: &Path) -> EndpointSpec {
        EndpointSpec {
            association_id: assoc.into(),
            service_network_id: "sn-1".into(),
            resource_configuration_id: "rcfg-web".into(),
            resource_configuration_arn:
                "arn:aws:vpc-lattice:us-east-1:000000000000:resourceconfiguration/rcfg-web".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            destination_host: "localhost".into(),
            destination_port: port,
            allowed_cidrs: None,
            max_connections: None,
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_millis(300),
            http: Some(HttpSettings {
                host: "localhost".into(),
                tls: Some(TlsSettings {
                    server_name: "localhost".into(),
                    ca_file: Some(ca.to_path_buf()),
                    client_identity: None,
                }),
                response_timeout: Duration::from_millis(500),
                http2: false,
            }),
        }
    }

    /// `pki`'s CA certificate as a PEM file in `dir`.
    fn ca_file(dir: &tempfile::TempDir, pki: &crate::testing::Pki) -> std::path::PathBuf {
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pki.ca_pem).unwrap();
        ca
    }

    /// Where association `assoc`'s endpoint listens.
    fn endpoint(m: &Manager, assoc: &str) -> std::net::SocketAddr {
        m.bound()
            .iter()
            .find(|b| b.association_id == assoc)
            .unwrap()
            .addr
    }

    /// Sends `request` as it is and reads the answer until the endpoint closes.
    async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("an answer in time")
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn originates_tls_to_the_configured_destination_only() {
        let good = pki(&["localhost"]);
        let other = pki(&["localhost"]);
        let server = https_server(good.server.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let (ca, wrong_ca) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
        std::fs::write(&ca, &good.ca_pem).unwrap();
        std::fs::write(&wrong_ca, &other.ca_pem).unwrap();
        let m = Manager::new();
        m.apply(vec![
            spec("snra-good", server.port(), &ca),
            spec("snra-wrong", server.port(), &wrong_ca),
        ]);
        let bound = m.bound();
        let ep = |assoc: &str| {
            let b = bound.iter().find(|b| b.association_id == assoc).unwrap();
            assert_eq!(b.url, format!("http://{}", b.addr));
            b.addr
        };
        let want_host = format!("\"host\":\"localhost:{}\"", server.port());

        // A spoofed Host header and an absolute-form URI naming another address both reach
        // the configured destination, with the resource's name as Host.
        let r = raw(
            ep("snra-good"),
            "GET /hello HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(
            r.contains(&want_host) && r.contains("\"path\":\"/hello\""),
            "{r}"
        );
        let r = raw(
            ep("snra-good"),
            "POST http://169.254.169.254/x HTTP/1.1\r\nHost: 169.254.169.254\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(
            r.contains(&want_host)
                && r.contains("\"path\":\"/x\"")
                && r.contains("\"body\":\"hi\""),
            "{r}"
        );
        // Redirects come back to the client; they are not followed.
        let r = raw(
            ep("snra-good"),
            "GET /redirect HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 302"), "{r}");
        assert!(
            r.to_ascii_lowercase()
                .contains("location: http://169.254.169.254/"),
            "{r}"
        );
        // No tunnels.
        let r = raw(
            ep("snra-good"),
            "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        // Slower than the response timeout: 504.
        let r = raw(
            ep("snra-good"),
            "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 504"), "{r}");
        // A certificate the configured CA did not sign: 502.
        let r = raw(
            ep("snra-wrong"),
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 502"), "{r}");
        let text = m.render_metrics();
        assert!(
            text.contains(
                "trellis_resource_connect_errors_total{resource_configuration=\"rcfg-web\"} 1"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_refused_or_forbidden_destination_is_a_502() {
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let good = pki(&["localhost"]);
        let ca = ca_file(&dir, &good);
        let server = https_server(good.server.clone()).await;
        // localhost resolves into a forbidden range: never dialed.
        let m = Manager::with_forbidden_cidrs(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1".parse().unwrap(),
        ]);
        m.apply(vec![spec("snra-forbidden", server.port(), &ca)]);
        let r = raw(
            m.bound()[0].addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 502"), "{r}");
        let m = Manager::new();
        m.apply(vec![spec("snra-refused", free.port(), &ca)]);
        let r = raw(
            m.bound()[0].addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    }

    /// Reads from `s` until the end of a response head; returns the head.
    async fn read_head(s: &mut tokio::net::TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
                .await
                .expect("a head in time")
                .unwrap();
            assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&head));
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    #[tokio::test]
    async fn an_accepted_upgrade_becomes_a_tunnel_to_the_destination() {
        let good = pki(&["localhost"]);
        let server = https_server(good.server.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_file(&dir, &good);
        let m = Manager::new();
        m.apply(vec![spec("snra-ws", server.port(), &ca)]);
        let addr = m.bound()[0].addr;

        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: echo\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut s).await.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(
            head.contains("upgrade: echo") && head.contains("connection: upgrade"),
            "{head}"
        );
        // Past the 101 the connection carries bytes both ways, several times.
        for word in [&b"ping"[..], b"a longer message\r\n\r\nwith blank lines"] {
            s.write_all(word).await.unwrap();
            let mut back = vec![0u8; word.len()];
            tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
                .await
                .expect("the echo in time")
                .unwrap();
            assert_eq!(back, word);
        }
        drop(s);
        // Once closed, the tunnel's bytes are counted each way (the echo returns them all).
        let total = 4 + "a longer message\r\n\r\nwith blank lines".len();
        let want = |direction: &str| {
            format!("trellis_resource_bytes_total{{resource_configuration=\"rcfg-web\",direction=\"{direction}\"}} {total}\n")
        };
        let mut text = String::new();
        for _ in 0..100 {
            text = m.render_metrics();
            if text.contains(&want("from_destination")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(text.contains(&want("to_destination")), "{text}");
        assert!(text.contains(&want("from_destination")), "{text}");

        // h2c is never passed on: the request goes to the destination as a plain request.
        let r = raw(
            addr,
            "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        // A refused upgrade is an ordinary answer.
        let r = raw(
            addr,
            "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("\"path\":\"/hello\""), "{r}");
    }

    #[tokio::test]
    async fn mutual_tls_presents_the_configured_client_certificate() {
        let good = pki(&["localhost"]);
        let server = https_server(good.server_mtls.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca = file("ca.pem", &good.ca_pem);
        let cert = file("client.pem", &good.client_cert_pem);
        let key = file("client.key", &good.client_key_pem);
        let both = file(
            "client-and-key.pem",
            &format!("{}{}", good.client_cert_pem, good.client_key_pem),
        );
        let with = |assoc: &str, identity: Option<(&Path, &Path)>| {
            let mut s = spec(assoc, server.port(), &ca);
            s.http
                .as_mut()
                .unwrap()
                .tls
                .as_mut()
                .unwrap()
                .client_identity = identity.map(|(c, k)| crate::ClientIdentity {
                certificate_file: c.to_path_buf(),
                key_file: k.to_path_buf(),
            });
            s
        };
        let m = Manager::new();
        m.apply(vec![
            with("snra-none", None),
            with("snra-pair", Some((&cert, &key))),
            with("snra-combined", Some((&both, &both))),
            with("snra-missing", Some((&cert, &dir.path().join("nope.key")))),
        ]);
        let ep = |assoc: &str| endpoint(&m, assoc);
        let get = "GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        for assoc in ["snra-pair", "snra-combined"] {
            let r = raw(ep(assoc), get).await;
            assert!(r.starts_with("HTTP/1.1 200"), "{assoc}: {r}");
            assert!(r.contains("\"path\":\"/who\""), "{assoc}: {r}");
        }
        // No certificate, or one whose key cannot be read: the handshake fails, 502.
        for assoc in ["snra-none", "snra-missing"] {
            let r = raw(ep(assoc), get).await;
            assert!(r.starts_with("HTTP/1.1 502"), "{assoc}: {r}");
        }
    }

    #[tokio::test]
    async fn http2_to_the_destination_for_either_client_version() {
        let good = pki(&["localhost"]);
        let server = https_server(good.server.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_file(&dir, &good);
        let mut h2 = spec("snra-h2", server.port(), &ca);
        h2.http.as_mut().unwrap().http2 = true;
        let m = Manager::new();
        m.apply(vec![h2, spec("snra-h1", server.port(), &ca)]);
        let ep = |assoc: &str| endpoint(&m, assoc);

        // An HTTP/1.1 client; the destination is spoken to in HTTP/2.
        let r = raw(
            ep("snra-h2"),
            "GET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("\"version\":\"HTTP/2.0\""), "{r}");
        let r = raw(
            ep("snra-h1"),
            "GET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.contains("\"version\":\"HTTP/1.1\""), "{r}");

        // An HTTP/2 client (prior knowledge, as gRPC clients speak to plain endpoints): the
        // `te: trailers` a gRPC client sends goes on, and response trailers come back.
        let tcp = tokio::net::TcpStream::connect(ep("snra-h2")).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = |path: &str| {
            http::Request::builder()
                .uri(format!("http://x{path}"))
                .header("te", "trailers")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap()
        };
        use http_body_util::BodyExt;
        let resp = send.send_request(req("/two")).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("\"version\":\"HTTP/2.0\""), "{body}");
        assert!(body.contains("\"te\":\"trailers\""), "{body}");
        let resp = send.send_request(req("/trailers")).await.unwrap();
        let collected = resp.into_body().collect().await.unwrap();
        assert_eq!(
            collected
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .map(|v| v.as_bytes()),
            Some(&b"0"[..])
        );
        assert_eq!(&collected.to_bytes()[..], b"data");
    }
}
