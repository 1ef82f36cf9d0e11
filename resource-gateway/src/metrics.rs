//! Counters per resource configuration, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// One resource configuration's counters.
#[derive(Default)]
pub struct Counters {
    pub active: AtomicU64,
    pub connections: AtomicU64,
    pub bytes_to_destination: AtomicU64,
    pub bytes_from_destination: AtomicU64,
    pub connect_errors: AtomicU64,
    pub denied_cidr: AtomicU64,
    pub denied_limit: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    by_resource: Mutex<BTreeMap<String, Arc<Counters>>>,
}

impl Metrics {
    /// The counters of a resource configuration (by id), created on first use.
    pub fn of(&self, resource_configuration: &str) -> Arc<Counters> {
        self.by_resource
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(resource_configuration.to_string())
            .or_default()
            .clone()
    }

    /// Every counter in the Prometheus text format, to append to `/metrics`.
    pub fn render(&self) -> String {
        let map = self.by_resource.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        // Each family: name, type, help, and the extra labels and value of each row per
        // resource configuration.
        type Rows = fn(&Counters) -> Vec<(&'static str, &AtomicU64)>;
        let families: [(&str, &str, &str, Rows); 5] = [
            (
                "trellis_resource_active_connections",
                "gauge",
                "Open connections through resource endpoints.",
                |c| vec![("", &c.active)],
            ),
            (
                "trellis_resource_connections_total",
                "counter",
                "Connections accepted by resource endpoints.",
                |c| vec![("", &c.connections)],
            ),
            (
                "trellis_resource_bytes_total",
                "counter",
                "Bytes proxied, by direction.",
                |c| {
                    vec![
                        (",direction=\"to_destination\"", &c.bytes_to_destination),
                        (",direction=\"from_destination\"", &c.bytes_from_destination),
                    ]
                },
            ),
            (
                "trellis_resource_connect_errors_total",
                "counter",
                "Connections whose destination refused, timed out or did not resolve.",
                |c| vec![("", &c.connect_errors)],
            ),
            (
                "trellis_resource_denied_connections_total",
                "counter",
                "Connections closed by the client allow-list or the connection limit.",
                |c| {
                    vec![
                        (",reason=\"cidr\"", &c.denied_cidr),
                        (",reason=\"limit\"", &c.denied_limit),
                    ]
                },
            ),
        ];
        for (name, kind, help, rows) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (id, c) in map.iter() {
                for (labels, value) in rows(c) {
                    let _ = writeln!(
                        out,
                        "{name}{{resource_configuration=\"{id}\"{labels}}} {}",
                        value.load(Relaxed)
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_per_resource() {
        let m = Metrics::default();
        let c = m.of("rcfg-1");
        c.connections.fetch_add(2, Relaxed);
        c.bytes_to_destination.fetch_add(10, Relaxed);
        let text = m.render();
        assert!(text
            .contains("trellis_resource_connections_total{resource_configuration=\"rcfg-1\"} 2"));
        assert!(text.contains(
            "trellis_resource_bytes_total{resource_configuration=\"rcfg-1\",direction=\"to_destination\"} 10"
        ));
        assert!(text.contains("# TYPE trellis_resource_active_connections gauge"));
    }
}
