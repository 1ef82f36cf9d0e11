//! JSON access log lines with the VPC Lattice access-log field names, written by a background
//! task so the request path only formats a line and queues it.

use std::io::Write;
use std::time::Instant;

use tokio::sync::mpsc;
use trellis_core::json_line::JsonLine;

use super::proxy::{ConnInfo, RequestSummary, Served};

pub struct AccessLog {
    tx: mpsc::UnboundedSender<String>,
}

pub struct Entry<'a> {
    pub summary: RequestSummary,
    pub conn: &'a ConnInfo,
    pub start: Instant,
    pub served: &'a Served<'a>,
}

impl AccessLog {
    /// `stdout` or a file path (appended to).
    pub fn open(dest: &str) -> std::io::Result<Self> {
        let mut out: Box<dyn Write + Send> = if dest == "stdout" || dest == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dest)?,
            )
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                while let Some(line) = rx.blocking_recv() {
                    let _ = out.write_all(line.as_bytes());
                    // Drain what else is queued before flushing once.
                    while let Ok(more) = rx.try_recv() {
                        let _ = out.write_all(more.as_bytes());
                    }
                    let _ = out.flush();
                }
            })?;
        Ok(Self { tx })
    }

    pub fn write(&self, e: &Entry<'_>) {
        let s = &e.summary;
        let elapsed = e.start.elapsed();
        let mut line = JsonLine::with_capacity(640);
        line.str(
            "startTime",
            &trellis_core::clock::iso8601(
                trellis_core::clock::now_millis().saturating_sub(elapsed.as_millis() as u64),
            ),
        )
        .display("sourceIpPort", e.conn.peer)
        .opt_str("serviceNetworkArn", e.served.network_arn)
        .opt_str("serviceArn", e.served.service_arn)
        .opt_str(
            "targetGroupArn",
            e.served.target_group.as_ref().map(|t| t.arn.as_str()),
        )
        .opt_str(
            "targetIpPort",
            e.served.target.as_ref().map(|t| t.authority.as_str()),
        )
        .str("requestMethod", s.method.as_str())
        .str("requestPath", &s.path)
        .str("protocol", protocol(s.version))
        .str("hostHeader", &s.host)
        .bool("tlsInbound", e.conn.tls)
        .opt_str("userAgent", s.user_agent.as_deref())
        .num("responseCode", u64::from(e.served.status))
        .opt_num("bytesReceived", s.bytes_in)
        .num("duration", elapsed.as_millis() as u64)
        .opt_num(
            "responseFromTargetDuration",
            e.served.upstream_time.map(|d| d.as_millis() as u64),
        )
        .opt_str("authDeniedReason", e.served.auth_denied.as_deref());
        let mut text = line.finish();
        text.push('\n');
        let _ = self.tx.send(text);
    }
}

/// The request's protocol as Lattice's access log names it.
fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}
