//! Active health checks: one task per target group runtime, probing each endpoint every
//! interval and flipping it after the healthy/unhealthy threshold. The task holds only a weak
//! reference, so it ends when a config change drops the runtime.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Weak;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

use super::target_group::{TargetGroupRuntime, Version, HEALTHY, UNHEALTHY};

pub fn spawn(rt: Weak<TargetGroupRuntime>) {
    tokio::spawn(async move {
        // (consecutive successes, consecutive failures) per endpoint.
        let mut streaks: HashMap<SocketAddr, (u32, u32)> = HashMap::new();
        // The first round runs at once, so new targets leave INITIAL quickly.
        let mut first = true;
        loop {
            if !first {
                let Some(interval) = rt.upgrade().map(|rt| rt.health_check.interval) else {
                    return;
                };
                tokio::time::sleep(interval).await;
            }
            first = false;
            let Some(rt) = rt.upgrade() else { return };
            let hc = rt.health_check.clone();
            let probes = rt.endpoints.iter().map(|ep| {
                let ep = ep.clone();
                let hc = hc.clone();
                async move {
                    let addr = SocketAddr::new(ep.addr.ip(), hc.port.unwrap_or(ep.addr.port()));
                    let ok = tokio::time::timeout(hc.timeout, probe(addr, &hc.path, hc.version))
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|code| {
                            hc.codes.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code))
                        });
                    (ep, ok)
                }
            });
            let results = futures_util::future::join_all(probes).await;
            for (ep, ok) in results {
                let streak = streaks.entry(ep.addr).or_default();
                if ok {
                    *streak = (streak.0 + 1, 0);
                } else {
                    *streak = (0, streak.1 + 1);
                }
                let current = ep.health.load(Ordering::Relaxed);
                if ok
                    && current != HEALTHY
                    && (streak.0 >= hc.healthy_threshold || current == super::target_group::INITIAL)
                {
                    ep.health.store(HEALTHY, Ordering::Relaxed);
                    tracing::info!(target_group = %rt.id, target = %ep.authority, "target healthy");
                } else if !ok && current != UNHEALTHY && streak.1 >= hc.unhealthy_threshold {
                    ep.health.store(UNHEALTHY, Ordering::Relaxed);
                    tracing::warn!(target_group = %rt.id, target = %ep.authority, "target unhealthy");
                }
            }
            let healthy = rt.healthy_count() as i64;
            rt.metrics.healthy_targets.store(healthy, Ordering::Relaxed);
            rt.metrics
                .targets
                .store(rt.endpoints.len() as i64, Ordering::Relaxed);
        }
    });
}

/// One GET; the status code, or `None` when the target could not be reached.
async fn probe(addr: SocketAddr, path: &str, version: Version) -> Option<u16> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let req = http::Request::builder()
        .uri(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::USER_AGENT, "trellis-health-check")
        .body(Empty::<Bytes>::new())
        .ok()?;
    let resp = if version == Version::Http2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .ok()?;
        tokio::spawn(conn);
        send.send_request(req).await.ok()?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
        tokio::spawn(conn);
        send.send_request(req).await.ok()?
    };
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Some(status)
}
