//! HTTP origination to one resource: a pooled HTTP/1.1 client whose connector never looks at
//! the host a request names. It dials only the configured destination (resolved at connect
//! time, addresses in forbidden ranges skipped), then speaks TLS verified against the configured
//! CA and server name, or plain HTTP.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::RootCertStore;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::dns::Resolver;
use crate::{Cidr, ClientIdentity, HttpSettings, TlsSettings};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// Why a request got no answer.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// 504 rather than 502.
    pub timeout: bool,
    /// No connection was made (counted as a connect error).
    pub connect: bool,
    /// For the access log: `connect_error: …`, `tls_error: …`, `connect_timeout: …`,
    /// `response_timeout: …`, `error: …`.
    pub reason: String,
}

impl Failure {
    pub fn status(&self) -> StatusCode {
        if self.timeout {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::BAD_GATEWAY
        }
    }
}

/// The address a response's connection dialed (in the response's extensions).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialed(pub SocketAddr);

/// Sends requests to one destination; connections are pooled.
pub(crate) struct Origin {
    client: Client<Dialer, Body>,
    host: String,
    https: bool,
    http2: bool,
    pub response_timeout: Duration,
}

impl Origin {
    pub fn new(
        destination: &str,
        settings: &HttpSettings,
        connect_timeout: Duration,
        resolver: Arc<Resolver>,
        forbidden: Arc<Vec<Cidr>>,
    ) -> Self {
        let dialer = Dialer(Arc::new(DialerInner {
            host: destination.to_string(),
            connect_timeout,
            tls: settings.tls.clone(),
            http2: settings.http2,
            tls_ready: Mutex::new(None),
            resolver,
            forbidden,
        }));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .set_host(false)
            .http2_only(settings.http2)
            .build(dialer);
        Self {
            client,
            host: settings.host.clone(),
            https: settings.tls.is_some(),
            http2: settings.http2,
            response_timeout: settings.response_timeout,
        }
    }

    /// Sends `req` to the destination's `port`. Of the request's URI only the path and query
    /// are used; the Host header is the resource's name; hop-by-hop headers are dropped both
    /// ways, but for `upgrade`: the protocol of an upgrade the caller can carry out (see
    /// [`upgrade_of`] and [`Origin::upgrades`]), passed on in `Upgrade` (and a 101's answered).
    /// Redirects come back to the caller as they are, never followed.
    pub async fn send(
        &self,
        port: u16,
        req: Request<Body>,
        upgrade: Option<HeaderValue>,
    ) -> Result<Response<Incoming>, Failure> {
        let upgrade = upgrade.filter(|_| self.upgrades());
        let req = self.upstream_request(port, req, upgrade.as_ref())?;
        match tokio::time::timeout(self.response_timeout, self.client.request(req)).await {
            Err(_) => Err(Failure {
                timeout: true,
                connect: false,
                reason: format!(
                    "response_timeout: no response within {} ms",
                    self.response_timeout.as_millis()
                ),
            }),
            Ok(Err(e)) => Err(failure(&e)),
            Ok(Ok(mut resp)) => {
                let switched = resp.headers().get(header::UPGRADE).cloned();
                strip_hop_by_hop(resp.headers_mut());
                if let (Some(_), true, Some(protocol)) = (
                    upgrade,
                    resp.status() == StatusCode::SWITCHING_PROTOCOLS,
                    switched,
                ) {
                    mark_upgrade(resp.headers_mut(), protocol);
                }
                Ok(resp)
            }
        }
    }

    /// Whether a protocol upgrade can pass: only over HTTP/1.1 to the destination.
    pub fn upgrades(&self) -> bool {
        !self.http2
    }

    fn upstream_request(
        &self,
        port: u16,
        req: Request<Body>,
        upgrade: Option<&HeaderValue>,
    ) -> Result<Request<Body>, Failure> {
        let (mut parts, body) = req.into_parts();
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.https { 443 } else { 80 };
        let authority = if port == default_port {
            host
        } else {
            format!("{host}:{port}")
        };
        let scheme = if self.https { "https" } else { "http" };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let bad = |what: String| Failure {
            timeout: false,
            connect: false,
            reason: format!("error: {what}"),
        };
        parts.uri = format!("{scheme}://{authority}{path}")
            .parse()
            .map_err(|e| bad(format!("cannot address {authority}{path}: {e}")))?;
        // `TE: trailers` is the one TE value HTTP/2 allows; gRPC servers want it.
        let te_trailers = self.http2
            && parts
                .headers
                .get(header::TE)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        strip_hop_by_hop(&mut parts.headers);
        if self.http2 {
            parts.version = http::Version::HTTP_2;
            if te_trailers {
                parts
                    .headers
                    .insert(header::TE, HeaderValue::from_static("trailers"));
            }
        } else {
            parts.version = http::Version::HTTP_11;
        }
        if let Some(protocol) = upgrade {
            mark_upgrade(&mut parts.headers, protocol.clone());
        }
        let host = HeaderValue::from_str(&authority)
            .map_err(|e| bad(format!("resource name {authority:?}: {e}")))?;
        parts.headers.insert(header::HOST, host);
        Ok(Request::from_parts(parts, body))
    }
}

/// A client error as a [`Failure`]: the dialer's own error when it is in the chain.
fn failure(e: &hyper_util::client::legacy::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut text = Vec::new();
    while let Some(s) = source {
        if let Some(d) = s.downcast_ref::<DialError>() {
            return Failure {
                timeout: d.timeout,
                connect: true,
                reason: d.reason.clone(),
            };
        }
        text.push(s.to_string());
        source = s.source();
    }
    Failure {
        timeout: false,
        connect: e.is_connect(),
        reason: format!("error: {}", text.join(": ")),
    }
}

/// The protocol a request asks to switch to (`Connection: upgrade` with `Upgrade: X`, RFC 9110
/// 7.8), such as `websocket`. `h2c` is not passed on: the endpoint's client speaks HTTP/2 to
/// the endpoint itself, and the destination leg's version is the resource's setting.
pub(crate) fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = headers.get(header::UPGRADE)?;
    let h2c = protocol
        .to_str()
        .map_or(true, |p| p.trim().eq_ignore_ascii_case("h2c"));
    (asked && !h2c).then(|| protocol.clone())
}

fn mark_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Drops the headers that belong to one connection (RFC 9110 7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(n);
    }
}

/// The connector: always the destination, whatever the URI's host; the port is the URI's
/// (which [`Origin::send`] wrote).
#[derive(Clone)]
struct Dialer(Arc<DialerInner>);

struct DialerInner {
    host: String,
    connect_timeout: Duration,
    tls: Option<TlsSettings>,
    http2: bool,
    /// Built on first use and kept; a failed build (a CA file not there yet) is retried on the
    /// next connection.
    tls_ready: Mutex<Option<(TlsConnector, ServerName<'static>)>>,
    resolver: Arc<Resolver>,
    forbidden: Arc<Vec<Cidr>>,
}

#[derive(Debug)]
struct DialError {
    timeout: bool,
    reason: String,
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for DialError {}

impl DialerInner {
    fn tls(&self, settings: &TlsSettings) -> Result<(TlsConnector, ServerName<'static>), String> {
        let mut ready = self.tls_ready.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = ready.as_ref() {
            return Ok(t.clone());
        }
        let built = tls_connector(settings, self.http2)?;
        *ready = Some(built.clone());
        Ok(built)
    }

    async fn dial(&self, port: u16) -> Result<Conn, DialError> {
        let err = |reason: String| DialError {
            timeout: false,
            reason,
        };
        let (tcp, addr) = self
            .resolver
            .connect(&self.host, port, &self.forbidden)
            .await
            .map_err(|e| err(format!("connect_error: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(settings) => {
                let (connector, name) = self
                    .tls(settings)
                    .map_err(|e| err(format!("tls_error: {e}")))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| err(format!("tls_error: {addr}: {e}")))?;
                Stream::Tls(Box::new(tls))
            }
        };
        Ok(Conn { stream, addr })
    }
}

impl tower_service::Service<http::Uri> for Dialer {
    type Response = TokioIo<Conn>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DialError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let d = self.0.clone();
        let default_port = if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        let port = uri.port_u16().unwrap_or(default_port);
        Box::pin(async move {
            match tokio::time::timeout(d.connect_timeout, d.dial(port)).await {
                Ok(conn) => conn.map(TokioIo::new),
                Err(_) => Err(DialError {
                    timeout: true,
                    reason: format!(
                        "connect_timeout: {}:{port} not connected within {} ms",
                        d.host,
                        d.connect_timeout.as_millis()
                    ),
                }),
            }
        })
    }
}

fn tls_connector(
    t: &TlsSettings,
    http2: bool,
) -> Result<(TlsConnector, ServerName<'static>), String> {
    let roots = match &t.ca_file {
        Some(path) => load_roots(path)?,
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match &t.client_identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let (chain, key) = load_identity(id)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate {}: {e}", id.certificate_file.display()))?
        }
    };
    // Only the version the destination is set to speak: a server that picks the other one
    // fails the handshake rather than a request later.
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let name = ServerName::try_from(t.server_name.clone()).map_err(|e| {
        format!(
            "server name {:?} is not a DNS name or IP address: {e}",
            t.server_name
        )
    })?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

/// The client certificate chain and private key of a [`ClientIdentity`].
fn load_identity(
    id: &ClientIdentity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let cannot = |path: &Path, e: &dyn std::fmt::Display| {
        format!("cannot read client certificate {}: {e}", path.display())
    };
    let chain = CertificateDer::pem_file_iter(&id.certificate_file)
        .map_err(|e| cannot(&id.certificate_file, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cannot(&id.certificate_file, &e))?;
    if chain.is_empty() {
        return Err(cannot(&id.certificate_file, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&id.key_file).map_err(|e| {
        format!(
            "cannot read client certificate key {}: {e}",
            id.key_file.display()
        )
    })?;
    Ok((chain, key))
}

/// The CA certificates of a PEM file.
fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let cannot =
        |e: &dyn std::fmt::Display| format!("cannot read CA certificate {}: {e}", path.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| cannot(&e))? {
        let cert = cert.map_err(|e| cannot(&e))?;
        roots.add(cert).map_err(|e| cannot(&e))?;
    }
    if roots.is_empty() {
        return Err(cannot(&"no certificate in the file"));
    }
    Ok(Arc::new(roots))
}

/// The system's trusted roots, read once.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "no system CA certificates found ({} errors); set trellis:ca-certificate",
                    found.errors.len()
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// A connection to the destination, plain or TLS.
pub(crate) struct Conn {
    stream: Stream,
    addr: SocketAddr,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let connected = Connected::new().extra(Dialed(self.addr));
        match &self.stream {
            Stream::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                connected.negotiated_h2()
            }
            _ => connected,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
