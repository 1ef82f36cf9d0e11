//! Prometheus metrics for the data plane, as atomics the hot path bumps without locks. The maps
//! that hold them are touched only when the route table is compiled and when `/metrics` renders.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    services: Mutex<BTreeMap<String, Arc<ServiceMetrics>>>,
    target_groups: Mutex<BTreeMap<String, Arc<TargetGroupMetrics>>>,
    pub active_connections: AtomicI64,
    pub unrouted_requests: AtomicU64,
}

#[derive(Default)]
pub struct ServiceMetrics {
    /// Requests by status class: 1xx … 5xx.
    classes: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

#[derive(Default)]
pub struct TargetGroupMetrics {
    pub requests: AtomicU64,
    pub connect_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub retries: AtomicU64,
    pub overflows: AtomicU64,
    pub healthy_targets: AtomicI64,
    pub targets: AtomicI64,
}

// === impl Metrics ===

impl Metrics {
    pub fn service(&self, arn: &str) -> Arc<ServiceMetrics> {
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(arn.to_string())
            .or_default()
            .clone()
    }

    pub fn target_group(&self, arn: &str) -> Arc<TargetGroupMetrics> {
        self.target_groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(arn.to_string())
            .or_default()
            .clone()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE trellis_active_connections gauge");
        let _ = writeln!(
            out,
            "trellis_active_connections {}",
            self.active_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE trellis_unrouted_requests_total counter");
        let _ = writeln!(
            out,
            "trellis_unrouted_requests_total {}",
            self.unrouted_requests.load(Ordering::Relaxed)
        );
        let services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# TYPE trellis_service_requests_total counter");
        for (arn, m) in services.iter() {
            for (i, c) in m.classes.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "trellis_service_requests_total{{service=\"{arn}\",code=\"{}xx\"}} {}",
                    i + 1,
                    c.load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# TYPE trellis_service_request_duration_seconds histogram"
        );
        for (arn, m) in services.iter() {
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(&m.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "trellis_service_request_duration_seconds_bucket{{service=\"{arn}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let count = m.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "trellis_service_request_duration_seconds_bucket{{service=\"{arn}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "trellis_service_request_duration_seconds_sum{{service=\"{arn}\"}} {}",
                m.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "trellis_service_request_duration_seconds_count{{service=\"{arn}\"}} {count}"
            );
        }
        drop(services);
        let groups = self.target_groups.lock().unwrap_or_else(|e| e.into_inner());
        for (name, kind, get) in [
            ("trellis_target_group_requests_total", "counter", 0),
            ("trellis_target_group_connect_errors_total", "counter", 1),
            ("trellis_target_group_timeouts_total", "counter", 2),
            ("trellis_target_group_retries_total", "counter", 3),
            ("trellis_target_group_overflows_total", "counter", 4),
            ("trellis_target_group_healthy_targets", "gauge", 5),
            ("trellis_target_group_targets", "gauge", 6),
        ] {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (arn, m) in groups.iter() {
                let v = match get {
                    0 => m.requests.load(Ordering::Relaxed) as i64,
                    1 => m.connect_errors.load(Ordering::Relaxed) as i64,
                    2 => m.timeouts.load(Ordering::Relaxed) as i64,
                    3 => m.retries.load(Ordering::Relaxed) as i64,
                    4 => m.overflows.load(Ordering::Relaxed) as i64,
                    5 => m.healthy_targets.load(Ordering::Relaxed),
                    _ => m.targets.load(Ordering::Relaxed),
                };
                let _ = writeln!(out, "{name}{{target_group=\"{arn}\"}} {v}");
            }
        }
        out
    }
}

// === impl ServiceMetrics ===

impl ServiceMetrics {
    pub fn record(&self, status: u16, micros: u64) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
        let secs = micros as f64 / 1e6;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        let s = m.service("arn:svc");
        s.record(200, 1500);
        s.record(503, 20_000);
        let text = m.render();
        assert!(text.contains("trellis_service_requests_total{service=\"arn:svc\",code=\"2xx\"} 1"));
        assert!(text.contains("trellis_service_requests_total{service=\"arn:svc\",code=\"5xx\"} 1"));
        assert!(text.contains(
            "trellis_service_request_duration_seconds_bucket{service=\"arn:svc\",le=\"0.0025\"} 1"
        ));
        assert!(
            text.contains("trellis_service_request_duration_seconds_count{service=\"arn:svc\"} 2")
        );
    }
}
