//! Test helpers: a CA with a server and a client certificate, and an HTTPS server (HTTP/1.1
//! and HTTP/2) that says what it got.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::net::TcpListener;

/// A CA (its PEM), a TLS server config whose certificate it signed for `names`, one that also
/// requires a client certificate the CA signed, and such a client certificate (PEM files'
/// contents).
pub struct Pki {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
    pub server_mtls: Arc<rustls::ServerConfig>,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

pub fn pki(names: &[&str]) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Trellis test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "trellis-gateway");
    let client = client.signed_by(&client_key, &ca).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = |verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>| {
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let mut server = builder
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(server)
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: server_config(None),
        server_mtls: server_config(Some(verifier)),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// An HTTPS server on 127.0.0.1 (HTTP/1.1 or HTTP/2 by ALPN) answering JSON with the Host
/// header, method, path, HTTP version, `te` header and body it got; `/slow` answers after two
/// seconds, `/redirect` with a 302 elsewhere, `/trailers` with a `grpc-status: 0` trailer, and
/// `/echo` with `Upgrade: echo` switches protocols (101) and then sends back every byte.
pub async fn https_server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), service_fn(answer))
                    .await;
            });
        }
    });
    addr
}

type Reply = Response<BoxBody<Bytes, Infallible>>;

fn reply(body: impl Into<Bytes>) -> Reply {
    Response::new(Full::new(body.into()).boxed())
}

async fn answer(mut req: Request<Incoming>) -> Result<Reply, Infallible> {
    if req.uri().path() == "/echo" && req.headers().get(header::UPGRADE).is_some() {
        let upgraded = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(io) = upgraded.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(io));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let mut r = reply(Bytes::new());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert(header::CONNECTION, "upgrade".parse().unwrap());
        r.headers_mut()
            .insert(header::UPGRADE, "echo".parse().unwrap());
        return Ok(r);
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match parts.uri.path() {
        "/slow" => tokio::time::sleep(Duration::from_secs(2)).await,
        "/trailers" => {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let body = Full::new(Bytes::from_static(b"data"))
                .with_trailers(async move { Some(Ok(trailers)) })
                .boxed();
            return Ok(Response::new(body));
        }
        "/redirect" => {
            let mut r = reply(Bytes::new());
            *r.status_mut() = StatusCode::FOUND;
            r.headers_mut().insert(
                header::LOCATION,
                "http://169.254.169.254/latest/meta-data".parse().unwrap(),
            );
            return Ok(r);
        }
        _ => {}
    }
    let text = json!({
        "host": parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()),
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "version": format!("{:?}", parts.version),
        "te": parts.headers.get(header::TE).and_then(|h| h.to_str().ok()),
        "body": String::from_utf8_lossy(&body),
    });
    Ok(reply(text.to_string()))
}
