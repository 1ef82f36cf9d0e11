//! The upstream path for plain HTTP/1.1 target groups: connections made with hyper's low-level
//! `client::conn::http1` and kept idle in a pool per data-plane thread. A request takes a ready
//! connection from a thread-local list (no lock, no pool key to build, no task per request), and
//! its response body puts the connection back when it ends. HTTP/2 and TLS target groups use
//! hyper-util's pooled client (see [`super::Upstreams`]).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::route::FastHash;
use super::{Body, BoxError};

/// How long a connection may stay idle in the pool.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per target; more are closed when they come back.
const MAX_IDLE_PER_TARGET: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections by target, for this thread.
#[derive(Default)]
struct Idle {
    by_target: HashMap<SocketAddr, VecDeque<(SendRequest<Body>, Instant)>, FastHash>,
    last_sweep: Option<Instant>,
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

/// A response body that returns its connection to the pool once it has been read to the end.
/// Dropped before its end, it drops the connection, and hyper closes it.
pub struct PooledBody {
    inner: Incoming,
    conn: Option<(SendRequest<Body>, SocketAddr)>,
}

/// Sends `req` (origin-form URI, `Host` set) to `target` on a pooled connection or a new one.
pub async fn send(
    target: SocketAddr,
    mut req: Request<Body>,
) -> Result<Response<PooledBody>, BoxError> {
    if let Some(mut conn) = take(target) {
        match conn.try_send_request(req).await {
            Ok(resp) => return Ok(pooled(resp, conn, target)),
            // Not written: the connection closed while it was idle; a new one takes the request.
            Err(mut e) => match e.take_message() {
                Some(r) => req = r,
                None => return Err(e.into_error().into()),
            },
        }
    }
    let mut conn = connect(target).await?;
    let resp = conn.send_request(req).await?;
    Ok(pooled(resp, conn, target))
}

async fn connect(target: SocketAddr) -> Result<SendRequest<Body>, BoxError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| "connect timed out")??;
    stream.set_nodelay(true)?;
    let (conn, task) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = task.with_upgrades().await {
            tracing::debug!(%target, error = %e, "upstream connection ended");
        }
    });
    Ok(conn)
}

fn pooled(
    resp: Response<Incoming>,
    conn: SendRequest<Body>,
    target: SocketAddr,
) -> Response<PooledBody> {
    // After a 101 the connection belongs to the upgraded stream.
    let conn = (resp.status() != StatusCode::SWITCHING_PROTOCOLS).then_some((conn, target));
    resp.map(|inner| PooledBody { inner, conn })
}

/// The most recently used ready connection to `target`, if any.
fn take(target: SocketAddr) -> Option<SendRequest<Body>> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.by_target.get_mut(&target)?;
        for _ in 0..list.len() {
            let (conn, since) = list.pop_back()?;
            if conn.is_ready() {
                return Some(conn);
            }
            // Still finishing its last exchange: keep it behind the others.
            if !conn.is_closed() && since.elapsed() < IDLE_TIMEOUT {
                list.push_front((conn, since));
            }
        }
        None
    })
}

fn put(target: SocketAddr, conn: SendRequest<Body>) {
    if conn.is_closed() {
        return;
    }
    let now = Instant::now();
    // At thread exit the pool may be gone; the connection then just closes.
    let _ = IDLE.try_with(|idle| {
        let Ok(mut idle) = idle.try_borrow_mut() else {
            return;
        };
        idle.sweep(now);
        let list = idle.by_target.entry(target).or_default();
        if list.len() >= MAX_IDLE_PER_TARGET {
            list.pop_front();
        }
        list.push_back((conn, now));
    });
}

// === impl Idle ===

impl Idle {
    /// At most once per idle timeout: closes connections idle longer than it, and forgets
    /// targets with none left.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < IDLE_TIMEOUT)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.by_target.retain(|_, list| {
            list.retain(|(conn, since)| {
                !conn.is_closed() && now.duration_since(*since) < IDLE_TIMEOUT
            });
            !list.is_empty()
        });
    }
}

// === impl PooledBody ===

impl PooledBody {
    fn release(&mut self) {
        if let Some((conn, target)) = self.conn.take() {
            put(target, conn);
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            None => self.release(),
            Some(Ok(_)) if self.inner.is_end_stream() => self.release(),
            Some(Ok(_)) => {}
            Some(Err(_)) => self.conn = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body nobody read because it was empty (HEAD, 204, `content-length: 0`) still ended.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}
