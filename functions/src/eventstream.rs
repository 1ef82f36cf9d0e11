//! AWS event stream messages (`application/vnd.amazon.eventstream`), the framing of
//! `InvokeWithResponseStream`'s answer. A message is a prelude (its total length and its
//! headers' length, big-endian u32s, and the CRC32 of those eight bytes), its headers, its
//! payload, and the CRC32 of everything before. Events carry three string headers:
//! `:message-type` (`event`), `:event-type` and `:content-type`.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

use crate::pool::{Finished, Piece};

/// The header value type of a string.
const STRING: u8 = 7;

/// One event message.
pub fn event(event_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    let headers = [
        (":message-type", "event"),
        (":event-type", event_type),
        (":content-type", content_type),
    ];
    let headers_len: usize = headers.iter().map(|(n, v)| 4 + n.len() + v.len()).sum();
    let total = 12 + headers_len + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers_len as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    for (name, value) in headers {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(STRING);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

/// A `PayloadChunk` event: bytes of the function's response.
pub fn payload_chunk(bytes: &[u8]) -> Bytes {
    event("PayloadChunk", "application/octet-stream", bytes)
}

/// How the end of a streamed invocation is written: its `InvokeComplete` event.
pub type Complete = Box<dyn FnOnce(Finished) -> Bytes + Send + Sync>;

/// The body of `InvokeWithResponseStream`'s answer while the function streams: each piece
/// becomes a `PayloadChunk` event as it arrives, the end an `InvokeComplete` event.
pub struct EventBody {
    pieces: mpsc::Receiver<Piece>,
    complete: Option<Complete>,
}

impl EventBody {
    pub fn new(pieces: mpsc::Receiver<Piece>, complete: Complete) -> Self {
        Self {
            pieces,
            complete: Some(complete),
        }
    }
}

impl Body for EventBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.complete.is_none() {
            return Poll::Ready(None);
        }
        match self.pieces.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Piece::Chunk(bytes))) => {
                Poll::Ready(Some(Ok(Frame::data(payload_chunk(&bytes)))))
            }
            Poll::Ready(Some(Piece::End(finished))) => {
                let complete = self.complete.take().expect("checked above");
                Poll::Ready(Some(Ok(Frame::data(complete(finished)))))
            }
            // The invocation's task always sends its end; without it there is nothing to say.
            Poll::Ready(None) => {
                self.complete = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.complete.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one message back, checking both CRCs: (headers, payload, bytes used).
    fn read(msg: &[u8]) -> (Vec<(String, String)>, Vec<u8>, usize) {
        let total = u32::from_be_bytes(msg[0..4].try_into().unwrap()) as usize;
        let headers_len = u32::from_be_bytes(msg[4..8].try_into().unwrap()) as usize;
        assert_eq!(
            u32::from_be_bytes(msg[8..12].try_into().unwrap()),
            crc32fast::hash(&msg[..8])
        );
        assert_eq!(
            u32::from_be_bytes(msg[total - 4..total].try_into().unwrap()),
            crc32fast::hash(&msg[..total - 4])
        );
        let mut headers = Vec::new();
        let mut at = 12;
        while at < 12 + headers_len {
            let n = msg[at] as usize;
            let name = String::from_utf8(msg[at + 1..at + 1 + n].to_vec()).unwrap();
            at += 1 + n;
            assert_eq!(msg[at], STRING);
            let len = u16::from_be_bytes(msg[at + 1..at + 3].try_into().unwrap()) as usize;
            let value = String::from_utf8(msg[at + 3..at + 3 + len].to_vec()).unwrap();
            at += 3 + len;
            headers.push((name, value));
        }
        (headers, msg[at..total - 4].to_vec(), total)
    }

    #[test]
    fn messages_carry_their_lengths_headers_and_crcs() {
        let msg = payload_chunk(b"hello");
        let (headers, payload, used) = read(&msg);
        assert_eq!(used, msg.len());
        assert_eq!(payload, b"hello");
        let get = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get(":message-type"), Some("event"));
        assert_eq!(get(":event-type"), Some("PayloadChunk"));
        assert_eq!(get(":content-type"), Some("application/octet-stream"));
        // An event with no payload (InvokeComplete always has one; the framing allows none).
        let empty = event("InvokeComplete", "application/json", b"");
        let (_, payload, used) = read(&empty);
        assert!(payload.is_empty());
        assert_eq!(used, empty.len());
    }

    #[tokio::test]
    async fn the_body_writes_chunks_as_they_come_then_the_end_once() {
        use http_body_util::BodyExt;
        let (tx, rx) = mpsc::channel(4);
        let mut body = EventBody::new(
            rx,
            Box::new(|f: Finished| event("InvokeComplete", "application/json", &f.logs)),
        );
        tx.send(Piece::Chunk(Bytes::from_static(b"a")))
            .await
            .unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(read(&first).1, b"a");
        tx.send(Piece::End(Finished {
            outcome: crate::worker::Outcome::Response(Bytes::new()),
            logs: b"log".to_vec(),
            duration: std::time::Duration::ZERO,
            last_lines: Vec::new(),
        }))
        .await
        .unwrap();
        let end = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let (headers, payload, _) = read(&end);
        assert!(headers.contains(&(":event-type".into(), "InvokeComplete".into())));
        assert_eq!(payload, b"log");
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }
}
