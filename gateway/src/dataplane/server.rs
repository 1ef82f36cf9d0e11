//! The accept phase: the plain listener (HTTP/1.1 and h2c), the TLS listener (HTTPS terminated
//! with the service's certificate, or TLS_PASSTHROUGH by SNI), and graceful drain on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::proxy::ConnInfo;
use super::route::{Action, Protocol};
use super::DataPlane;

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(30);

/// Binds `addr` `n` times with `SO_REUSEPORT` (the first bind picks the port when it is 0), so
/// the kernel spreads connections over one listener per data-plane thread.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        // Listening registers with the calling runtime; `into_std` hands the socket back so
        // each data-plane thread can register it with its own.
        let std = socket.listen(1024)?.into_std()?;
        addr = std.local_addr()?;
        out.push(std);
    }
    Ok(out)
}

/// Runs the plain listener on one thread per listener, each with its own single-threaded
/// runtime and upstream pool: a request never crosses threads. Returns when all have drained.
pub async fn serve_plain_per_core(
    dp: Arc<DataPlane>,
    listeners: Vec<std::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
) {
    let mut done = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let dp = dp.clone();
        let shutdown = shutdown.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name(format!("data-plane-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("data-plane thread {i}: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let _ = l.set_nonblocking(true);
                    match TcpListener::from_std(l) {
                        Ok(listener) => serve_plain(dp, listener, shutdown).await,
                        Err(e) => tracing::error!("data-plane thread {i}: {e}"),
                    }
                });
                let _ = tx.send(());
            });
        match spawned {
            Ok(_) => done.push(rx),
            Err(e) => tracing::error!("cannot start data-plane thread {i}: {e}"),
        }
    }
    for rx in done {
        let _ = rx.await;
    }
}

/// Serves HTTP listeners on `listener` until `shutdown` fires, then drains.
pub async fn serve_plain(
    dp: Arc<DataPlane>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let conn = serve_http(&builder, &dp, TokioIo::new(stream), ConnInfo::new(peer, false));
                let conn = graceful.watch(conn);
                let dp = dp.clone();
                tokio::spawn(async move {
                    dp.metrics.active_connections.fetch_add(1, Ordering::Relaxed);
                    let _ = conn.await;
                    dp.metrics.active_connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
}

fn serve_http<I>(
    builder: &auto::Builder<TokioExecutor>,
    dp: &Arc<DataPlane>,
    io: I,
    info: ConnInfo,
) -> impl hyper_util::server::graceful::GracefulConnection
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let dp = dp.clone();
    let info = Arc::new(info);
    let svc = service_fn(move |req| {
        let dp = dp.clone();
        let info = info.clone();
        async move { Ok::<_, Infallible>(dp.handle(req, &info).await) }
    });
    builder.serve_connection_with_upgrades(io, svc).into_owned()
}

/// Serves HTTPS and TLS_PASSTHROUGH listeners on `listener` until `shutdown` fires.
pub async fn serve_tls(
    dp: Arc<DataPlane>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let dp = dp.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    dp.metrics.active_connections.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = accept_tls(&dp, stream, peer, watcher).await {
                        tracing::debug!(%peer, error = %e, "tls connection ended");
                    }
                    dp.metrics.active_connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
}

async fn accept_tls(
    dp: &Arc<DataPlane>,
    mut stream: TcpStream,
    peer: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) -> std::io::Result<()> {
    let (sni, hello) =
        tokio::time::timeout(Duration::from_secs(10), super::tls::peek_sni(&mut stream))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let Some(sni) = sni else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no SNI in client hello",
        ));
    };
    let table = dp.routes.load_full();
    let Some(service) = table.service(&sni.to_ascii_lowercase()).cloned() else {
        dp.metrics.unrouted_requests.fetch_add(1, Ordering::Relaxed);
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no service for SNI {sni}"),
        ));
    };
    // The TLS listener of the service: 443 when it has one, else its lowest TLS port.
    let listener = service
        .listeners
        .iter()
        .filter(|l| l.protocol != Protocol::Http)
        .min_by_key(|l| (l.port != 443, l.port));
    let Some(listener) = listener else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("service {} has no TLS listener", service.name),
        ));
    };
    match listener.protocol {
        Protocol::TlsPassthrough => {
            let Action::Forward(groups) = &listener.default_action else {
                return Ok(());
            };
            let tg = groups.pick().runtime.clone();
            let Some(ep) = tg.pick() else {
                return Err(std::io::Error::other("no healthy target for passthrough"));
            };
            let mut upstream = match TcpStream::connect(ep.addr).await {
                Ok(u) => u,
                Err(e) => {
                    tg.observe(ep, super::target_group::Outcome::ConnectError);
                    return Err(e);
                }
            };
            upstream.set_nodelay(true)?;
            upstream.write_all(&hello).await?;
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
            Ok(())
        }
        _ => {
            let Some(config) = service.tls.clone() else {
                return Err(std::io::Error::other(format!(
                    "service {} has no certificate",
                    service.name
                )));
            };
            let tls = tokio_rustls::TlsAcceptor::from(config)
                .accept(super::tls::Rewind::new(hello, stream))
                .await?;
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = serve_http(&builder, dp, TokioIo::new(tls), ConnInfo::new(peer, true));
            let _ = watcher.watch(conn).await;
            Ok(())
        }
    }
}
