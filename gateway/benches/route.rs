//! Route resolution on the hot path: host lookup, listener by port, rules in priority order.
//! Run with `cargo bench -p trellis-gateway --bench route`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use trellis_gateway::dataplane::metrics::Metrics;
use trellis_gateway::dataplane::route::RouteTable;
use trellis_gateway::dataplane::target_group::Runtimes;
use trellis_gateway::lattice::{kind, State};

/// `services` services, each with one listener and `rules` header/path rules.
fn state(services: usize, rules: usize) -> State {
    let mut st = State::default();
    st.put(
        kind::TARGET_GROUP,
        "tg-1",
        json!({"id": "tg-1", "arn": "arn:tg-1", "type": "IP",
               "config": {"port": 80, "healthCheck": {"enabled": false}},
               "targets": [{"id": "127.0.0.1", "port": 80}]}),
    );
    let fwd =
        json!({"forward": {"targetGroups": [{"targetGroupIdentifier": "tg-1", "weight": 1}]}});
    for s in 0..services {
        let sid = format!("svc-{s}");
        st.put(
            kind::SERVICE,
            &sid,
            json!({"id": sid, "arn": format!("arn:{sid}"), "name": sid,
                   "dnsEntry": {"domainName": format!("{sid}.example")}}),
        );
        let lid = format!("l-{s}");
        st.put(
            kind::LISTENER,
            &lid,
            json!({"id": lid, "arn": format!("arn:{lid}"), "serviceId": sid, "protocol": "HTTP",
                   "port": 80, "defaultAction": fwd}),
        );
        for r in 0..rules {
            let rid = format!("r-{s}-{r}");
            st.put(
                kind::RULE,
                &rid,
                json!({"id": rid, "arn": format!("arn:{rid}"), "listenerId": lid, "priority": r + 1,
                       "match": {"httpMatch": {"pathMatch": {"match": {"prefix": format!("/api/v{r}/")}},
                                               "headerMatches": [{"name": "x-tenant", "match": {"exact": format!("t{r}")}}]}},
                       "action": fwd}),
            );
        }
    }
    st
}

fn resolve(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_resolve");
    group.throughput(Throughput::Elements(1));
    for (services, rules) in [(1, 1), (100, 10), (1000, 50)] {
        let table = RouteTable::compile(
            &state(services, rules),
            &Runtimes::default(),
            &Metrics::default(),
            std::path::Path::new("."),
        );
        let mut headers = http::HeaderMap::new();
        headers.insert("x-tenant", format!("t{}", rules - 1).parse().unwrap());
        let host = format!("svc-{}.example", services / 2);
        let path = format!("/api/v{}/orders", rules - 1);
        group.bench_function(format!("{services}svc_{rules}rules_last_rule"), |b| {
            b.iter(|| {
                let r = table.resolve(
                    black_box(&host),
                    80,
                    false,
                    &http::Method::GET,
                    black_box(&path),
                    &headers,
                );
                black_box(r.is_some())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, resolve);
criterion_main!(benches);
