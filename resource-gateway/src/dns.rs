//! Destination resolution at connect time, so a moved database is followed. Answers are cached
//! for [`Resolver::ttl`], failed lookups for the shorter [`Resolver::negative_ttl`], and a
//! destination that refuses every resolved address drops its cached answer.
//!
//! Addresses in the operator's forbidden ranges are never dialed, whatever a name resolves to
//! (DNS rebinding to internal addresses).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::Cidr;

type Answer = Result<Vec<IpAddr>, String>;

pub struct Resolver {
    pub ttl: Duration,
    pub negative_ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Answer)>>,
}

impl Default for Resolver {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(5),
            negative_ttl: Duration::from_secs(1),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl Resolver {
    /// The addresses of `host` (an IP address is its own answer).
    pub async fn resolve(&self, host: &str) -> Answer {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if let Some((at, answer)) = self.lock().get(host) {
            let ttl = if answer.is_ok() {
                self.ttl
            } else {
                self.negative_ttl
            };
            if at.elapsed() < ttl {
                return answer.clone();
            }
        }
        let answer = match tokio::net::lookup_host((host, 0)).await {
            Ok(addrs) => {
                let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                if ips.is_empty() {
                    Err(format!("{host} has no addresses"))
                } else {
                    Ok(ips)
                }
            }
            Err(e) => Err(format!("cannot resolve {host}: {e}")),
        };
        self.lock()
            .insert(host.to_string(), (Instant::now(), answer.clone()));
        answer
    }

    /// Forgets `host`'s cached answer.
    pub fn invalidate(&self, host: &str) {
        self.lock().remove(host);
    }

    /// Connects to `host:port`, trying each resolved address in turn, skipping those in a
    /// `forbidden` block; when all are forbidden the error starts with `forbidden address`.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        forbidden: &[Cidr],
    ) -> Result<(TcpStream, SocketAddr), String> {
        let ips = self.resolve(host).await?;
        let (allowed, denied): (Vec<IpAddr>, Vec<IpAddr>) = ips
            .into_iter()
            .partition(|ip| !forbidden.iter().any(|c| c.contains(*ip)));
        if allowed.is_empty() {
            let list: Vec<String> = denied.iter().map(IpAddr::to_string).collect();
            return Err(format!(
                "forbidden address: {host} is {} (a forbidden range)",
                list.join(", ")
            ));
        }
        let mut last = String::new();
        for ip in allowed {
            let addr = SocketAddr::new(ip, port);
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok((s, addr)),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        self.invalidate(host);
        Err(last)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Answer)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_literals_and_names_and_caches_failures_briefly() {
        let r = Resolver {
            negative_ttl: Duration::from_millis(100),
            ..Default::default()
        };
        assert_eq!(
            r.resolve("127.0.0.1").await.unwrap(),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert!(r.resolve("localhost").await.is_ok());
        let bad = "no-such-host.invalid";
        assert!(r.resolve(bad).await.is_err());
        assert!(r.lock().contains_key(bad));
        // The failure is answered from the cache until its short TTL passes.
        let (at, _) = r.lock().get(bad).cloned().unwrap();
        assert!(at.elapsed() < r.negative_ttl);
    }

    #[tokio::test]
    async fn a_refused_destination_drops_its_cached_answer() {
        let r = Resolver::default();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        r.lock().insert(
            "db.test".into(),
            (Instant::now(), Ok(vec!["127.0.0.1".parse().unwrap()])),
        );
        assert!(r.connect("db.test", port, &[]).await.is_err());
        assert!(!r.lock().contains_key("db.test"));
    }

    #[tokio::test]
    async fn forbidden_addresses_are_never_dialed() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let r = Resolver::default();
        let forbidden = ["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
        // A name that resolves into the range (as a rebinding answer would) and a literal.
        for host in ["localhost", "127.0.0.1"] {
            let e = r.connect(host, port, &forbidden).await.unwrap_err();
            assert!(e.starts_with("forbidden address"), "{e}");
        }
        assert!(r.connect("127.0.0.1", port, &forbidden[1..]).await.is_ok());
    }
}
