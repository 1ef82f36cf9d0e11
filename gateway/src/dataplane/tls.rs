//! TLS for the data plane: server certificates for HTTPS listeners, reading the SNI of a
//! ClientHello without consuming it (so TLS_PASSTHROUGH can replay it to the target), and the
//! [`Rewind`] stream that replays those bytes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate {0:?} is not an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/NAME)")]
    NotACertificateArn(String),
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    #[error("bad certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server config for a service's `certificateArn`. Trellis's stand-in for ACM is a folder:
/// `arn:aws:acm:REGION:ACCOUNT:certificate/NAME` is `CERT_DIR/NAME.pem`, holding the certificate
/// chain and the private key. The config offers h2 and http/1.1 by ALPN.
pub fn load_server_config(
    cert_dir: &std::path::Path,
    certificate_arn: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let name = certificate_arn
        .split_once(":certificate/")
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty() && !n.contains('/') && !n.contains(".."))
        .ok_or_else(|| TlsError::NotACertificateArn(certificate_arn.to_string()))?;
    let path_buf = cert_dir.join(format!("{name}.pem"));
    let path = path_buf.to_string_lossy().into_owned();
    let path = path.as_str();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|source| TlsError::Read {
            path: path.into(),
            source,
        })?
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            path: path.into(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.into()));
    }
    let key = PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads from `stream` until a whole ClientHello is buffered; returns its SNI (if any) and the
/// bytes read, which the caller replays with [`Rewind`].
pub async fn peek_sni<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<(Option<String>, Bytes)> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut acceptor = rustls::server::Acceptor::default();
        let mut cursor = io::Cursor::new(&buf[..]);
        // Feed everything read so far; the acceptor tells whether the hello is complete.
        while (cursor.position() as usize) < buf.len() {
            if acceptor.read_tls(&mut cursor).is_err() {
                break;
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let sni = accepted.client_hello().server_name().map(str::to_string);
                return Ok((sni, Bytes::from(buf)));
            }
            Ok(None) => {}
            Err((e, _)) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
        if buf.len() > 64 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "client hello too large",
            ));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

pin_project_lite::pin_project! {
    /// A stream that first yields `prefix`, then reads from `inner`.
    pub struct Rewind<S> {
        prefix: Bytes,
        #[pin]
        inner: S,
    }
}

impl<S> Rewind<S> {
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl<S: AsyncWrite> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
