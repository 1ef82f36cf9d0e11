//! JSON access log lines with the VPC Lattice access-log field names, written by a background
//! task so the request path only formats a line and queues it.

use std::io::Write;
use std::time::Instant;

use serde_json::json;
use tokio::sync::mpsc;

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
        let line = json!({
            "startTime": trellis_core::clock::iso8601(
                trellis_core::clock::now_millis().saturating_sub(e.start.elapsed().as_millis() as u64)
            ),
            "sourceIpPort": e.conn.peer.to_string(),
            "serviceNetworkArn": e.served.network_arn,
            "serviceArn": e.served.service_arn,
            "targetGroupArn": e.served.target_group.as_ref().map(|t| t.arn.as_str()),
            "targetIpPort": e.served.target.as_ref().map(|t| t.authority.as_str()),
            "requestMethod": s.method.as_str(),
            "requestPath": s.path,
            "protocol": format!("{:?}", s.version),
            "hostHeader": s.host,
            "tlsInbound": e.conn.tls,
            "userAgent": s.user_agent,
            "responseCode": e.served.status,
            "bytesReceived": s.bytes_in,
            "duration": e.start.elapsed().as_millis() as u64,
            "responseFromTargetDuration": e.served.upstream_time.map(|d| d.as_millis() as u64),
            "authDeniedReason": e.served.auth_denied,
        });
        let mut text = line.to_string();
        text.push('\n');
        let _ = self.tx.send(text);
    }
}
