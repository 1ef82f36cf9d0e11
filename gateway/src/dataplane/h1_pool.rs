//! The upstream path for plain HTTP/1.1 target groups: a small HTTP/1.1 client with no task per
//! connection, and a pool of idle connections per data-plane thread.
//!
//! The task that serves the client writes the request and reads the answer itself: the request
//! head (and a body that is already at hand) goes out in one write, the response head is parsed
//! from the connection's read buffer, and the response body reads the rest of the message on
//! demand, putting the connection back in this thread's pool when the message ends. A
//! connection that is idle in the pool is checked, without a system call, for having been closed
//! by the target before it is used again. Compared with hyper's client connection (a task and a
//! channel per connection, a wake-up each way per request) this takes about a third of the
//! proxy's instructions per request away.
//!
//! Upgrades (WebSocket) go over hyper's client connection, which hands over the upgraded stream.
//! HTTP/2 and TLS target groups use hyper-util's pooled client (see [`super::Upstreams`]).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::route::FastHash;
use super::{Body, BoxError};

/// How long a connection may stay idle in the pool.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per target; more are closed when they come back.
const MAX_IDLE_PER_TARGET: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most header lines a response may have (hyper's limit too).
const MAX_HEADERS: usize = 100;
/// The longest response head, or chunk-size line with extensions, accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How much the read buffer grows by before a read.
const READ_CHUNK: usize = 8 * 1024;
/// Request body bytes gathered before a write.
const WRITE_CHUNK: usize = 64 * 1024;

/// One connection to a target, with the bytes read past the message being handled.
struct Conn {
    io: TcpStream,
    read: BytesMut,
    /// The request buffer, kept with the connection so a pooled one allocates nothing.
    write: Vec<u8>,
}

/// Idle connections by target, for this thread.
#[derive(Default)]
struct Idle {
    by_target: HashMap<SocketAddr, VecDeque<(Conn, Instant)>, FastHash>,
    last_sweep: Option<Instant>,
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

/// Sends `req` (origin-form URI, `Host` set) to `target` on a pooled connection or a new one.
/// The response's body reads the rest of the message from the connection.
/// `added` are written after the request's own headers (the upgrade path, on hyper's client,
/// puts them in the request's map).
pub async fn send(
    target: SocketAddr,
    mut req: Request<Body>,
    added: &[(HeaderName, HeaderValue)],
) -> Result<Response<Body>, BoxError> {
    if req.headers().contains_key(header::UPGRADE) {
        for (name, value) in added {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        return send_upgrade(target, req).await;
    }
    let (parts, mut body) = req.into_parts();
    let (mut conn, mut reused) = match take(target) {
        Some(conn) => (conn, true),
        None => (connect(target).await?, false),
    };
    let mut out = std::mem::take(&mut conn.write);
    out.clear();
    let chunked = encode_head(&parts, added, &body, &mut out);
    // What of the body is at hand goes out with the head; a body that is all here can be
    // written again to a new connection if a pooled one turns out to have been closed.
    let whole = gather_ready(&mut body, chunked, &mut out)?;
    let head_only = parts.method == Method::HEAD;
    let head = loop {
        match exchange(&mut conn, &out, &mut body, whole, chunked).await {
            Ok(head) => break head,
            Err(Failure { err, untouched }) if reused && whole && untouched => {
                tracing::trace!(%target, error = %err, "pooled connection was closed; reconnecting");
                conn = connect(target).await?;
                reused = false;
            }
            Err(Failure { err, .. }) => return Err(err.into()),
        }
    };
    conn.write = out;
    let Head { resp, meta } = head;
    let framing = meta.framing(head_only, resp.status())?;
    let mut body = UpstreamBody {
        reusable: framing.delimited() && meta.keep_alive,
        conn: Some(conn),
        target,
        framing,
    };
    // An empty message has ended already: the connection can serve another request now (a
    // server does not poll a body that says it has ended).
    if matches!(body.framing, Framing::Length(0)) {
        body.finish();
    }
    Ok(resp.map(|()| body.boxed()))
}

/// Why an exchange failed, and whether nothing at all had come back (so a whole request can be
/// sent again on a fresh connection).
struct Failure {
    err: io::Error,
    untouched: bool,
}

/// Writes the request and reads the response head (skipping informational answers).
async fn exchange(
    conn: &mut Conn,
    out: &[u8],
    body: &mut Body,
    whole: bool,
    chunked: bool,
) -> Result<Head, Failure> {
    let fail = |err: io::Error| Failure {
        untouched: closed_early(&err),
        err,
    };
    conn.io.write_all(out).await.map_err(fail)?;
    if !whole {
        write_rest(&mut conn.io, body, chunked)
            .await
            .map_err(|err| Failure {
                err,
                untouched: false,
            })?;
    }
    conn.read.clear();
    loop {
        let head = read_head(conn).await.map_err(|err| Failure {
            untouched: conn.read.is_empty() && closed_early(&err),
            err,
        })?;
        match head.resp.status().as_u16() {
            101 => {
                return Err(Failure {
                    err: io::Error::other("the target switched protocols without being asked"),
                    untouched: false,
                })
            }
            100..=199 => continue,
            _ => return Ok(head),
        }
    }
}

/// Errors that mean the target closed the connection (a pooled one may have been closed while
/// it was idle).
fn closed_early(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// Writes the request line and headers into `out`, adding the body's framing; says whether the
/// body goes chunked.
fn encode_head(
    parts: &http::request::Parts,
    added: &[(HeaderName, HeaderValue)],
    body: &Body,
    out: &mut Vec<u8>,
) -> bool {
    let (method, headers) = (&parts.method, &parts.headers);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers.iter().chain(added.iter().map(|(n, v)| (n, v))) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let mut chunked = false;
    if !headers.contains_key(header::CONTENT_LENGTH) {
        if body.is_end_stream() {
            // Methods that carry a body say it is empty, as clients do.
            if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        } else if let Some(n) = body.size_hint().exact() {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            chunked = true;
        }
    }
    out.extend_from_slice(b"\r\n");
    chunked
}

/// Appends the body frames that are ready now (up to [`WRITE_CHUNK`] bytes) to `out`; says
/// whether the body ended among them.
fn gather_ready(body: &mut Body, chunked: bool, out: &mut Vec<u8>) -> Result<bool, BoxError> {
    if body.is_end_stream() {
        return Ok(true);
    }
    // A no-op waker only peeks: a body that is not ready is polled again, with the real waker,
    // by `write_rest`.
    let mut cx = Context::from_waker(Waker::noop());
    while out.len() < WRITE_CHUNK {
        let ended = match Pin::new(&mut *body).poll_frame(&mut cx) {
            Poll::Ready(Some(frame)) => {
                encode_frame(frame?, chunked, out);
                body.is_end_stream()
            }
            Poll::Ready(None) => true,
            Poll::Pending => return Ok(false),
        };
        if ended {
            if chunked {
                out.extend_from_slice(LAST_CHUNK);
            }
            return Ok(true);
        }
    }
    Ok(false)
}

/// The rest of a request body that was not at hand when the head went out.
async fn write_rest(io: &mut TcpStream, body: &mut Body, chunked: bool) -> io::Result<()> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        out.clear();
        encode_frame(frame.map_err(io::Error::other)?, chunked, &mut out);
        let ended = body.is_end_stream();
        if ended && chunked {
            out.extend_from_slice(LAST_CHUNK);
        }
        io.write_all(&out).await?;
        if ended {
            return Ok(());
        }
    }
    if chunked {
        io.write_all(LAST_CHUNK).await?;
    }
    Ok(())
}

/// The zero-size chunk and the empty trailer section that end a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

fn encode_frame(frame: Frame<Bytes>, chunked: bool, out: &mut Vec<u8>) {
    // Request trailers are dropped: HTTP/1.1 targets rarely read them, and a length-framed
    // body cannot carry them.
    let Ok(data) = frame.into_data() else { return };
    if data.is_empty() {
        return;
    }
    if chunked {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(&data);
    }
}

/// Reads until a whole response head is in the buffer, and parses it; the buffer keeps what
/// follows the head.
async fn read_head(conn: &mut Conn) -> io::Result<Head> {
    loop {
        if !conn.read.is_empty() {
            if let Some(head) = parse_head(&mut conn.read)? {
                return Ok(head);
            }
            if conn.read.len() > MAX_HEAD_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the response head is too large",
                ));
            }
        }
        conn.read.reserve(READ_CHUNK);
        if conn.io.read_buf(&mut conn.read).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// A parsed response head: the response (without hop-by-hop headers) and what its
/// hop-by-hop and framing headers said.
struct Head {
    resp: Response<()>,
    meta: Meta,
}

/// The headers that frame the message and manage the connection, read while parsing: they
/// are not forwarded, and looking them up again in the header map would cost as much as
/// parsing them.
#[derive(Default)]
struct Meta {
    /// `Content-Length`, when given (all values agreeing), or the error it makes.
    length: Option<Result<u64, &'static str>>,
    /// `Transfer-Encoding` was given; whether its last coding is `chunked`.
    transfer_encoding: Option<bool>,
    keep_alive: bool,
}

impl Meta {
    /// How the body ends (RFC 9112 §6.3).
    fn framing(&self, head_only: bool, status: StatusCode) -> io::Result<Framing> {
        if head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return Ok(Framing::Length(0));
        }
        Ok(match (self.transfer_encoding, self.length) {
            (Some(true), _) => Framing::Chunked(Chunk::Size),
            (Some(false), _) => Framing::Close,
            (None, Some(Ok(n))) => Framing::Length(n),
            (None, Some(Err(e))) => return Err(invalid(e.into())),
            (None, None) => Framing::Close,
        })
    }
}

/// Hop-by-hop response headers: used here, never forwarded.
enum Hop {
    ContentLength,
    TransferEncoding,
    Connection,
    /// `keep-alive`, `proxy-connection`, `trailer`, `upgrade`: dropped.
    Other,
}

fn hop(name: &[u8]) -> Option<Hop> {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    // Names are compared only when their length matches one of ours.
    match name.len() {
        14 if is("content-length") => Some(Hop::ContentLength),
        17 if is("transfer-encoding") => Some(Hop::TransferEncoding),
        10 if is("connection") => Some(Hop::Connection),
        10 if is("keep-alive") => Some(Hop::Other),
        16 if is("proxy-connection") => Some(Hop::Other),
        7 if is("trailer") || is("upgrade") => Some(Hop::Other),
        _ => None,
    }
}

/// Parses a response head from the front of `buf` and removes it; `None` while incomplete.
fn parse_head(buf: &mut BytesMut) -> io::Result<Option<Head>> {
    // Where each forwarded name and value lies in the head, so the head can be split off the
    // buffer and shared by the values instead of each being copied.
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let mut meta = Meta::default();
    let mut named = false;
    let (len, code, minor, count) = {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        let len = match parsed.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(invalid(format!("invalid response head: {e}"))),
        };
        let (mut close, mut keep_alive) = (false, false);
        let base = buf.as_ptr() as usize;
        let mut count = 0;
        for h in parsed.headers.iter() {
            match hop(h.name.as_bytes()) {
                None => {
                    spans[count] = (
                        (h.name.as_ptr() as usize - base) as u32,
                        h.name.len() as u32,
                        (h.value.as_ptr() as usize - base) as u32,
                        h.value.len() as u32,
                    );
                    count += 1;
                }
                Some(Hop::ContentLength) => {
                    meta.length = Some(content_length(meta.length, h.value))
                }
                Some(Hop::TransferEncoding) => {
                    let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(b"");
                    meta.transfer_encoding =
                        Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                }
                Some(Hop::Connection) => {
                    for token in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                        if token.eq_ignore_ascii_case(b"close") {
                            close = true;
                        } else if token.eq_ignore_ascii_case(b"keep-alive") {
                            keep_alive = true;
                        } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"upgrade") {
                            named = true;
                        }
                    }
                }
                Some(Hop::Other) => {}
            }
        }
        // HTTP/1.1 keeps the connection unless told to close it; HTTP/1.0 only when asked to.
        meta.keep_alive = !close && (parsed.version != Some(0) || keep_alive);
        (len, parsed.code, parsed.version, count)
    };
    let status = code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| invalid("invalid status code".into()))?;
    let raw = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for &(n, n_len, v, v_len) in &spans[..count] {
        let (n, v) = (n as usize, v as usize);
        let name = HeaderName::from_bytes(&raw[n..n + n_len as usize])
            .map_err(|_| invalid("invalid header name".into()))?;
        let value = HeaderValue::from_maybe_shared(raw.slice(v..v + v_len as usize))
            .map_err(|_| invalid(format!("invalid value for header {name}")))?;
        headers.append(name, value);
    }
    if named {
        // Headers that `Connection` names are hop-by-hop too (rare: read the head again).
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        let _ = parsed.parse(&raw);
        for h in parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        {
            for token in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if let Ok(name) = HeaderName::from_bytes(token) {
                    headers.remove(name);
                }
            }
        }
    }
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    *resp.version_mut() = if minor == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *resp.headers_mut() = headers;
    Ok(Some(Head { resp, meta }))
}

/// Folds one `Content-Length` field into what earlier ones said: every value must be digits
/// and all must agree.
fn content_length(
    before: Option<Result<u64, &'static str>>,
    value: &[u8],
) -> Result<u64, &'static str> {
    let mut length = match before {
        Some(Err(e)) => return Err(e),
        Some(Ok(n)) => Some(n),
        None => None,
    };
    for part in value.split(|b| *b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err("invalid content-length");
        }
        let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if length.is_some_and(|l| l != n) {
            return Err("conflicting content-length values");
        }
        length = Some(n);
    }
    length.ok_or("invalid content-length")
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// How a response body ends (RFC 9112 §6.3).
enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// The body runs until the target closes the connection.
    Close,
}

impl Framing {
    /// Whether the message ends before the connection does, so it can serve another.
    fn delimited(&self) -> bool {
        !matches!(self, Framing::Close)
    }
}

/// Where the chunked decoder is.
#[derive(Clone, Copy)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
    Done,
}

/// A response body read from its connection, which goes back to the pool at the message's end
/// (or is closed, when the body is dropped before it or the target asked for that).
struct UpstreamBody {
    conn: Option<Conn>,
    target: SocketAddr,
    framing: Framing,
    reusable: bool,
}

impl UpstreamBody {
    /// The message ended: the connection serves the next request, if it can.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Bytes past the end of the message mean the target and Trellis disagree about it.
            if self.reusable && conn.read.is_empty() {
                put(self.target, conn);
            }
        }
    }

    /// Reads more of the message into the buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        conn.read.reserve(READ_CHUNK);
        // `read_buf` keeps no state between polls, so a fresh future per poll is the same read.
        pin!(conn.io.read_buf(&mut conn.read)).poll(cx)
    }

    fn buffered(&mut self) -> &mut BytesMut {
        &mut self
            .conn
            .as_mut()
            .expect("a body being read has its connection")
            .read
    }

    /// The chunked decoder: the next frame, or `None` while more bytes are needed.
    fn next_chunked(&mut self, state: &mut Chunk) -> io::Result<Option<Option<Frame<Bytes>>>> {
        loop {
            let buf = self.buffered();
            match *state {
                Chunk::Size => {
                    let Some(end) = line_end(buf)? else {
                        return Ok(None);
                    };
                    let line = &buf[..end];
                    let digits = line
                        .split(|b| *b == b';')
                        .next()
                        .unwrap_or(b"")
                        .trim_ascii();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .filter(|s| !s.is_empty() && s.len() <= 15)
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or_else(|| invalid("invalid chunk size".into()))?;
                    buf.advance(end + 2);
                    *state = if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    let data = buf.split_to(n).freeze();
                    *state = match left - n as u64 {
                        0 => Chunk::DataEnd,
                        rest => Chunk::Data(rest),
                    };
                    return Ok(Some(Some(Frame::data(data))));
                }
                Chunk::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(invalid("missing CRLF after chunk data".into()));
                    }
                    buf.advance(2);
                    *state = Chunk::Size;
                }
                Chunk::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        *state = Chunk::Done;
                        return Ok(Some(None));
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if buf.len() > MAX_HEAD_BYTES {
                            return Err(invalid("the trailers are too large".into()));
                        }
                        return Ok(None);
                    };
                    let trailers = parse_trailers(&buf[..end + 4])?;
                    buf.advance(end + 4);
                    *state = Chunk::Done;
                    return Ok(Some(Some(Frame::trailers(trailers))));
                }
                Chunk::Done => return Ok(Some(None)),
            }
        }
    }
}

/// The position of the CRLF ending the line at the front of `buf`, once it is there.
fn line_end(buf: &[u8]) -> io::Result<Option<usize>> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(i)),
        None if buf.len() > MAX_HEAD_BYTES => Err(invalid("chunk-size line too long".into())),
        None => Ok(None),
    }
}

fn parse_trailers(block: &[u8]) -> io::Result<HeaderMap> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let fields = match httparse::parse_headers(block, &mut slots) {
        Ok(httparse::Status::Complete((_, fields))) => fields,
        _ => return Err(invalid("invalid trailer fields".into())),
    };
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| invalid("invalid trailer name".into()))?;
        let value = HeaderValue::from_bytes(f.value)
            .map_err(|_| invalid("invalid trailer value".into()))?;
        map.append(name, value);
    }
    Ok(map)
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.conn.is_none() {
                return Poll::Ready(None);
            }
            match this.framing {
                Framing::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    let buf = this.buffered();
                    if !buf.is_empty() {
                        let n = (buf.len() as u64).min(left) as usize;
                        let data = buf.split_to(n).freeze();
                        this.framing = Framing::Length(left - n as u64);
                        if left == n as u64 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Close => {
                    let buf = this.buffered();
                    if !buf.is_empty() {
                        let data = buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Chunked(mut state) => {
                    let next = this.next_chunked(&mut state);
                    this.framing = Framing::Chunked(state);
                    match next {
                        Err(e) => {
                            this.conn = None;
                            return Poll::Ready(Some(Err(e.into())));
                        }
                        Ok(Some(frame)) => {
                            if matches!(state, Chunk::Done) {
                                this.finish();
                            }
                            return Poll::Ready(frame.map(Ok));
                        }
                        Ok(None) => {}
                    }
                }
            }
            match ready!(this.poll_fill(cx)) {
                Ok(0) if matches!(this.framing, Framing::Close) => {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(
                        "the target closed the connection before the end of the body".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
            || matches!(
                self.framing,
                Framing::Length(0) | Framing::Chunked(Chunk::Done)
            )
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// An upgrade request (WebSocket) on a connection of its own, over hyper's client, which hands
/// the upgraded stream to [`hyper::upgrade::on`]. The connection is never pooled.
async fn send_upgrade(target: SocketAddr, req: Request<Body>) -> Result<Response<Body>, BoxError> {
    let stream = connect_tcp(target).await?;
    let (mut conn, task) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = task.with_upgrades().await {
            tracing::debug!(%target, error = %e, "upstream connection ended");
        }
    });
    let mut resp = conn.send_request(req).await?;
    // A refused upgrade is an ordinary answer: its hop-by-hop headers go, as on the other
    // path (the caller handles a 101's).
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        super::proxy::strip_hop_by_hop(resp.headers_mut(), false);
    }
    Ok(resp.map(|b| b.map_err(Into::into).boxed()))
}

async fn connect_tcp(target: SocketAddr) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn connect(target: SocketAddr) -> io::Result<Conn> {
    Ok(Conn {
        io: connect_tcp(target).await?,
        read: BytesMut::with_capacity(READ_CHUNK),
        write: Vec::with_capacity(1024),
    })
}

// === impl Conn ===

impl Conn {
    /// Whether the target has left an idle connection alone. Readiness comes from the runtime's
    /// last look at the socket, so the common answer costs no system call; a connection that
    /// looks readable is read to tell a close (or stray bytes) from stale readiness.
    fn still_open(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

/// The most recently used open connection to `target`, if any.
fn take(target: SocketAddr) -> Option<Conn> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.by_target.get_mut(&target)?;
        while let Some((conn, since)) = list.pop_back() {
            if since.elapsed() < IDLE_TIMEOUT && conn.still_open() {
                return Some(conn);
            }
        }
        None
    })
}

fn put(target: SocketAddr, conn: Conn) {
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
            list.retain(|(_, since)| now.duration_since(*since) < IDLE_TIMEOUT);
            !list.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::{Full, StreamBody};
    use tokio::net::TcpListener;

    use super::*;

    /// A target that answers each request it reads with the next of `answers` (raw bytes), and
    /// closes a connection after the answers marked to close it. Returns its address, the
    /// number of connections accepted, and the requests it read (raw).
    async fn target(
        answers: Vec<(&'static [u8], bool)>,
    ) -> (
        SocketAddr,
        Arc<AtomicUsize>,
        Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (a, s) = (accepted.clone(), seen.clone());
        tokio::spawn(async move {
            let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
            loop {
                let (mut io, _) = listener.accept().await.unwrap();
                a.fetch_add(1, Ordering::SeqCst);
                let (answers, seen) = (answers.clone(), s.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // One request: its head, and a body by content-length or chunked.
                        let mut chunk = [0u8; 4096];
                        let req = loop {
                            if let Some(end) = request_end(&buf) {
                                break buf.drain(..end).collect::<Vec<u8>>();
                            }
                            match io.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        seen.lock().unwrap().push(req);
                        let Some((answer, close)) = answers.lock().unwrap().next() else {
                            return;
                        };
                        if io.write_all(answer).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted, seen)
    }

    /// Where the first whole request in `buf` ends, if it is all there.
    fn request_end(buf: &[u8]) -> Option<usize> {
        let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
        if let Some(line) = text.lines().find(|l| l.starts_with("content-length:")) {
            let n: usize = line["content-length:".len()..].trim().parse().unwrap();
            return (buf.len() >= head + n).then_some(head + n);
        }
        if text.contains("transfer-encoding: chunked") {
            let end = buf[head..].windows(5).position(|w| w == b"0\r\n\r\n")?;
            return Some(head + end + 5);
        }
        Some(head)
    }

    fn get(path: &str) -> Request<Body> {
        let mut req = Request::new(Full::new(Bytes::new()).map_err(Into::into).boxed());
        *req.uri_mut() = path.parse().unwrap();
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("t"));
        req
    }

    async fn read(resp: Response<Body>) -> (StatusCode, HeaderMap, Bytes, Option<HeaderMap>) {
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        (parts.status, parts.headers, collected.to_bytes(), trailers)
    }

    #[tokio::test]
    async fn bodies_by_length_chunks_and_close() {
        let (addr, accepted, _) = target(vec![
            (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\nx-a: 2\r\n\r\nhello", false),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nx-sum: 9\r\n\r\n",
                false,
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", false),
            (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok", false),
            (b"HTTP/1.0 200 OK\r\n\r\nuntil close", true),
        ])
        .await;
        let (status, headers, body, _) = read(send(addr, get("/a"), &[]).await.unwrap()).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
        assert_eq!(headers.get_all("x-a").iter().count(), 2);
        let (_, _, body, trailers) = read(send(addr, get("/b"), &[]).await.unwrap()).await;
        assert_eq!(&body[..], b"abcde");
        assert_eq!(trailers.unwrap()["x-sum"], "9");
        let (status, _, body, _) = read(send(addr, get("/c"), &[]).await.unwrap()).await;
        assert_eq!((status, body.len()), (StatusCode::NO_CONTENT, 0));
        let (status, _, body, _) = read(send(addr, get("/d"), &[]).await.unwrap()).await;
        assert_eq!((status, &body[..]), (StatusCode::CREATED, &b"ok"[..]));
        let (_, _, body, _) = read(send(addr, get("/e"), &[]).await.unwrap()).await;
        assert_eq!(&body[..], b"until close");
        // All five on one connection: each message ended where its framing said.
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn hop_by_hop_headers_are_read_not_forwarded() {
        let (addr, accepted, _) = target(vec![
            (
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\ncontent-length: 2\r\nx-kept: 1\r\n\r\nok",
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nConnection: x-secret, close\r\nx-secret: 1\r\nTransfer-Encoding: gzip, chunked\r\nUpgrade: h2c\r\nx-kept: 2\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nz", false),
        ])
        .await;
        // HTTP/1.0 that asked to keep the connection: kept.
        let (_, headers, body, _) = read(send(addr, get("/"), &[]).await.unwrap()).await;
        assert_eq!(&body[..], b"ok");
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-kept"], "1");
        // `close`, and a header `Connection` names: dropped, and the connection not reused.
        let (_, headers, body, _) = read(send(addr, get("/"), &[]).await.unwrap()).await;
        assert_eq!(&body[..], b"hi");
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-kept"], "2");
        let (_, _, body, _) = read(send(addr, get("/"), &[]).await.unwrap()).await;
        assert_eq!(&body[..], b"z");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_pooled_connection_the_target_closed_is_replaced() {
        let (addr, accepted, _) = target(vec![
            (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na", true),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb", false),
            (
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\nc",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nd", false),
        ])
        .await;
        for want in ["a", "b", "c", "d"] {
            let (_, _, body, _) = read(send(addr, get("/"), &[]).await.unwrap()).await;
            assert_eq!(&body[..], want.as_bytes());
            // Let the target's close reach this side before the next request.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // a closed by the target; c asked to close: d on a third connection.
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_close_racing_a_reused_connection_is_retried_when_the_request_is_whole() {
        let (addr, accepted, _) = target(vec![
            (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na", false),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb", false),
        ])
        .await;
        let (_, _, body, _) = read(send(addr, get("/"), &[]).await.unwrap()).await;
        assert_eq!(&body[..], b"a");
        // The pooled connection looks open, but the target hangs up on the next request
        // without answering (its script for that connection is used up below).
        let conn = take(addr).expect("pooled");
        let mut conn = conn;
        conn.io.shutdown().await.ok();
        put(addr, conn);
        let (_, _, body, _) = read(send(addr, get("/"), &[]).await.unwrap()).await;
        assert_eq!(&body[..], b"b");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn request_bodies_are_framed() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let (addr, _, seen) = target(vec![(ok, false), (ok, false), (ok, false)]).await;
        // Known length.
        let mut req = Request::new(
            Full::new(Bytes::from_static(b"abc"))
                .map_err(Into::into)
                .boxed(),
        );
        *req.method_mut() = Method::POST;
        *req.uri_mut() = "/p?q=1".parse().unwrap();
        let added = [(
            HeaderName::from_static("x-added"),
            HeaderValue::from_static("1"),
        )];
        read(send(addr, req, &added).await.unwrap()).await;
        // Unknown length, arriving later: chunked.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(2);
        let stream = StreamBody::new(tokio_stream_from(rx));
        let mut req = Request::new(BodyExt::boxed(stream));
        *req.method_mut() = Method::PUT;
        *req.uri_mut() = "/s".parse().unwrap();
        let sent = tokio::spawn(send(addr, req, &[]));
        tx.send(Ok(Frame::data(Bytes::from_static(b"xy"))))
            .await
            .unwrap();
        tx.send(Ok(Frame::data(Bytes::from_static(b"z"))))
            .await
            .unwrap();
        drop(tx);
        read(sent.await.unwrap().unwrap()).await;
        // No body on a POST: an explicit zero length.
        let mut req = get("/e");
        *req.method_mut() = Method::POST;
        read(send(addr, req, &[]).await.unwrap()).await;

        let seen = seen.lock().unwrap();
        let text: Vec<String> = seen
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        assert!(
            text[0].starts_with("POST /p?q=1 HTTP/1.1\r\n"),
            "{}",
            text[0]
        );
        assert!(text[0].contains("content-length: 3\r\n") && text[0].ends_with("\r\n\r\nabc"));
        assert!(text[0].contains("\r\nx-added: 1\r\n"), "{}", text[0]);
        assert!(
            text[1].contains("transfer-encoding: chunked\r\n"),
            "{}",
            text[1]
        );
        assert!(
            text[1].ends_with("\r\n\r\n2\r\nxy\r\n1\r\nz\r\n0\r\n\r\n"),
            "{}",
            text[1]
        );
        assert!(text[2].contains("content-length: 0\r\n"), "{}", text[2]);
    }

    /// An mpsc receiver as a stream of frames (no extra crate for it).
    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    ) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + Sync + 'static
    {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[tokio::test]
    async fn bad_answers_are_errors() {
        let (addr, _, _) = target(vec![
            (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", true),
            (b"NOT HTTP\r\n\r\n", true),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
                true,
            ),
        ])
        .await;
        let resp = send(addr, get("/"), &[]).await.unwrap();
        assert!(resp.into_body().collect().await.is_err());
        assert!(send(addr, get("/"), &[]).await.is_err());
        assert!(send(addr, get("/"), &[]).await.is_err());
    }
}
