//! HTTP endpoints: every request on a client's connection is sent to the resource through the
//! endpoint's [`Origin`] (TLS origination, or plain HTTP), and its answer streamed back; a
//! destination that cannot be reached is a 502, one that does not answer in time a 504. One
//! access-log line per request, written when its response body is done.

use std::convert::Infallible;
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
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::metrics::Counters;
use crate::origin::{Body, BoxError, Dialed, Failure, Origin};
use crate::proxy::{access_log_on, log_access, Identity};
use crate::EndpointSpec;

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
    let svc = service_fn(move |req: Request<Incoming>| {
        let origin = origin.clone();
        let exchange = Exchange::new(identity.clone(), &req, counters.clone());
        async move {
            let req = req.map(|b| exchange.count_up(b));
            Ok::<_, Infallible>(forward(req, &origin, port, exchange).await)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(spec.idle_timeout)
        .serve_connection(TokioIo::new(client), svc);
    tokio::pin!(conn);
    if *kill.borrow() {
        return;
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(resource_configuration = %spec.resource_configuration_id, "HTTP connection: {e}");
                }
                return;
            }
            changed = kill.changed() => {
                if changed.is_err() || *kill.borrow() {
                    return;
                }
            }
        }
    }
}

async fn forward(
    req: Request<Body>,
    origin: &Origin,
    port: u16,
    exchange: Exchange,
) -> Response<Body> {
    if req.method() == Method::CONNECT {
        exchange.log(405, None, 0, "denied: CONNECT is not proxied");
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed: a resource endpoint does not tunnel\n",
        );
    }
    match origin.send(port, req).await {
        Err(f) => {
            exchange.failed(&f);
            let body = if f.timeout {
                "504 Gateway Timeout: the resource did not answer in time\n"
            } else {
                "502 Bad Gateway: the resource could not be reached\n"
            };
            text(f.status(), body)
        }
        Ok(resp) => {
            let dialed = resp.extensions().get::<Dialed>().map(|d| d.0);
            let status = resp.status().as_u16();
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
                }),
                response_timeout: Duration::from_millis(500),
            }),
        }
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
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &good.ca_pem).unwrap();
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
}
