//! Matching cost against 1, 100 and 10,000 rules, to show it barely grows with the rule count.
//!
//! Events and rules are synthetic, in the shape of event-ruler's citylots2 benchmark: GeoJSON
//! lot records of about 900 bytes from the generator `citylots/mod.rs` shares with
//! `rulesets.rs`, and rules of the kinds used there (exact, prefix, suffix, equals-ignore-case,
//! wildcard, numeric). Nothing is read from disk.

mod citylots;

use std::hint::black_box;

use citylots::{Generator, Rng, Rulesets, STREETS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use trellis_events::{Machine, MachineBuilder, Pattern};

fn rule(rng: &mut Rng, i: usize) -> String {
    let block = 1 + rng.below(7600);
    let lot = 1 + rng.below(300);
    match i % 10 {
        0..=3 => format!(r#"{{"properties":{{"MAPBLKLOT":["{block:04}{lot:03}"]}}}}"#),
        4 => format!(r#"{{"properties":{{"MAPBLKLOT":[{{"prefix":"{block:04}"}}]}}}}"#),
        5 => format!(
            r#"{{"properties":{{"STREET":["{}"],"LOT_NUM":[{{"suffix":"{:02}"}}]}}}}"#,
            rng.pick(STREETS),
            lot % 100
        ),
        6 => format!(
            r#"{{"properties":{{"BLOCK_NUM":[{{"equals-ignore-case":"{block:04}"}}],"ODD_EVEN":["E"]}}}}"#
        ),
        7 => format!(
            r#"{{"properties":{{"MAPBLKLOT":[{{"wildcard":"{block:04}*{}"}}]}}}}"#,
            lot % 10
        ),
        _ => {
            let x = -122.5 + rng.below(1_000_000) as f64 / 10_000_000.0;
            format!(
                r#"{{"geometry":{{"type":["Polygon"],"firstCoordinates":{{"x":[{{"numeric":[">=",{x:.7},"<",{:.7}]}}]}}}}}}"#,
                x + 0.00002
            )
        }
    }
}

fn machine(n: usize, kinds: usize) -> Machine<usize> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut b = MachineBuilder::new();
    for i in 0..n {
        // `kinds == 1` keeps every rule an exact match on one field, so that only the
        // rule count varies; otherwise the mix cycles through all kinds.
        let p = Pattern::parse(&rule(&mut rng, i % kinds)).expect("valid rule");
        b.add_rule(i, &p);
    }
    b.build()
}

fn bench(c: &mut Criterion) {
    let events = Generator::new(&Rulesets::load(), 0xD1B5_4A32_D192_ED03).events(1_000);
    for (name, kinds) in [("mixed", 10), ("exact", 1)] {
        let mut group = c.benchmark_group(format!("matches/{name}"));
        group.throughput(Throughput::Elements(events.len() as u64));
        for n in [1usize, 100, 10_000] {
            let m = machine(n, kinds);
            group.bench_with_input(BenchmarkId::new("rules", n), &m, |b, m| {
                b.iter(|| {
                    let mut total = 0;
                    for e in &events {
                        total += m.matches(black_box(e)).expect("valid event").len();
                    }
                    total
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
