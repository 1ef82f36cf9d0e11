//! Resource gateway endpoints: the data plane of VPC Lattice resource configurations.
//!
//! The control plane (the gateway's Lattice module) compiles every service-network resource
//! association into a plain list of [`EndpointSpec`]s, one per (association, resource
//! configuration, port), and hands the whole list to [`Manager::apply`] whenever the Lattice
//! state changes. The manager keeps one TCP listener per spec on a loopback address of its own
//! (keeping the resource's port) and proxies each accepted connection to the destination:
//!
//! accept → client CIDR allow-list → connection limit → resolve (DNS cached briefly, failures
//! cached more briefly) → connect (timeout) → copy both ways (idle timeout) → close, with one
//! JSON access-log line and per-resource-configuration counters ([`Manager::render_metrics`]).
//!
//! Accepted connections are served on the manager's worker threads, each with its own
//! single-threaded runtime (one per core by default): a connection stays on one thread.
//!
//! An endpoint with [`HttpSettings`] is an HTTP endpoint instead: it serves HTTP/1.1 and sends
//! each request to the destination over TLS (or plain HTTP), always to the configured
//! destination whatever the request names, answering 502 when the destination cannot be
//! reached and 504 when it does not answer in time.
//!
//! A changed spec is swapped in for new connections while existing ones finish on the old
//! target (graceful drain); a removed spec stops accepting at once and closes the connections
//! still open after its drain timeout.
//!
//! [`Manager::apply_targets`] registers resource configurations in the Target registry
//! ([`ResourceTarget`]), so event rules and workflows call a private HTTPS service by the
//! configuration's ARN through the same origination code.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use trellis_core::hash::fnv1a;

pub mod cidr;
pub mod dns;
mod http;
mod manager;
pub mod metrics;
mod origin;
mod proxy;
mod target;
#[cfg(test)]
mod testing;
mod workers;

pub use cidr::Cidr;
pub use manager::{Bound, Manager};
pub use target::{ResourceTarget, TargetSpec};

/// AWS VPC Lattice closes idle TCP resource connections after 350 seconds.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(350);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connections of a deleted endpoint may finish before they are closed.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Ports of one resource configuration that get endpoints (a range `1-65535` is valid input,
/// but 65535 listeners per association are not useful).
pub const MAX_PORTS_PER_RESOURCE: usize = 256;
/// How long an HTTP endpoint waits for the response head of a request it forwarded.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// One listening endpoint: where it listens, where it forwards, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub association_id: String,
    pub service_network_id: String,
    pub resource_configuration_id: String,
    pub resource_configuration_arn: String,
    /// Requested listening address (the resource's port on a loopback address of its own).
    /// If it cannot be bound, the manager falls back to port 0 on the same address, then to
    /// `127.0.0.1:0`; [`Manager::bound`] reports what was actually bound.
    pub listen: SocketAddr,
    /// An IP address or a DNS name, resolved at connect time.
    pub destination_host: String,
    pub destination_port: u16,
    /// Client networks allowed to connect; `None` lets every client in.
    pub allowed_cidrs: Option<Vec<Cidr>>,
    /// Concurrent connections on this endpoint; more are closed at once.
    pub max_connections: Option<usize>,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub drain_timeout: Duration,
    /// `None`: a TCP endpoint (bytes both ways; TLS clients speak TLS end to end, passthrough).
    /// `Some`: an HTTP endpoint that forwards each request as these settings say.
    pub http: Option<HttpSettings>,
}

/// How requests reach an HTTP destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// The resource's name: the Host header sent upstream (with the port when it is not the
    /// scheme's default). Never taken from the client's request.
    pub host: String,
    /// TLS to the destination; `None` sends plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Time from sending a request to its response head (then 504).
    pub response_timeout: Duration,
    /// Speak HTTP/2 to the destination (ALPN `h2` over TLS, prior knowledge over plain HTTP)
    /// instead of HTTP/1.1: for gRPC services. Clients may use either version on the endpoint.
    pub http2: bool,
}

/// TLS origination: whom to trust and which name to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The SNI and the name the server's certificate must carry: a DNS name, or an IP address
    /// (then an IP SAN is verified and no SNI is sent).
    pub server_name: String,
    /// A PEM file of the CA certificates to trust; `None` trusts the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate to present (mutual TLS): PEM files of the certificate chain and
    /// of its private key.
    pub client_identity: Option<ClientIdentity>,
}

/// The certificate Trellis presents to a destination that asks for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// PEM: the client certificate first, then any intermediates.
    pub certificate_file: PathBuf,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// What identifies an endpoint across config changes (association, resource configuration,
/// resource port): a spec with the same key and the same `listen` keeps its listener (and its open connections) when anything else changes.
pub type Key = (String, String, u16);

impl EndpointSpec {
    pub fn key(&self) -> Key {
        (
            self.association_id.clone(),
            self.resource_configuration_id.clone(),
            self.destination_port,
        )
    }

    /// The endpoint's URL for an address it is bound to: `tcp://` or `http://`.
    pub fn url(&self, addr: SocketAddr) -> String {
        let scheme = if self.http.is_some() { "http" } else { "tcp" };
        format!("{scheme}://{addr}")
    }
}

/// Parses one AWS port range (`"5432"` or `"8000-8010"`) into inclusive bounds.
pub fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| -> Result<u16, String> {
        match p.trim().parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            _ => Err(format!("{p:?} is not a port between 1 and 65535")),
        }
    };
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(text)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!(
            "the range {text:?} starts after it ends ({lo} > {hi})"
        ));
    }
    Ok((lo, hi))
}

/// Whether two inclusive ranges share a port.
pub fn ranges_overlap(a: (u16, u16), b: (u16, u16)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// The loopback address `key` prefers: one of 127.0.0.0/16 minus `.0`, `.1` and `.255` in the
/// last octet, chosen by a stable hash so an association keeps its address across restarts.
pub fn preferred_host(key: &str) -> Ipv4Addr {
    host_at(fnv1a(key.as_bytes()) % SLOTS)
}

/// The first address from `key`'s preferred one on that `taken` does not refuse.
pub fn pick_host(key: &str, taken: impl Fn(Ipv4Addr) -> bool) -> Ipv4Addr {
    let start = fnv1a(key.as_bytes()) % SLOTS;
    (0..SLOTS)
        .map(|i| host_at((start + i) % SLOTS))
        .find(|h| !taken(*h))
        .unwrap_or_else(|| host_at(start))
}

const SLOTS: u64 = 256 * 253;

fn host_at(slot: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, (slot / 253) as u8, (slot % 253 + 2) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_and_reject() {
        assert_eq!(parse_port_range("5432"), Ok((5432, 5432)));
        assert_eq!(parse_port_range("8000-8010"), Ok((8000, 8010)));
        assert!(parse_port_range("0").is_err());
        assert!(parse_port_range("65536").is_err());
        assert!(parse_port_range("10-5").is_err());
        assert!(parse_port_range("a-5").is_err());
        assert!(ranges_overlap((1, 10), (10, 20)));
        assert!(!ranges_overlap((1, 9), (10, 20)));
    }

    #[test]
    fn hosts_are_stable_loopback_and_avoid_taken_ones() {
        let a = preferred_host("snra-1/rcfg-1");
        assert_eq!(a, preferred_host("snra-1/rcfg-1"));
        assert_eq!(a.octets()[0], 127);
        assert!(a.octets()[3] >= 2 && a.octets()[3] <= 254);
        let b = pick_host("snra-1/rcfg-1", |h| h == a);
        assert_ne!(a, b);
        assert_eq!(pick_host("snra-1/rcfg-1", |_| false), a);
    }
}
