//! Matching cost against 1, 100 and 10,000 rules, to show it barely grows with the rule count.
//!
//! Events and rules are synthetic, in the shape of event-ruler's citylots2 benchmark (see
//! `shared/data/eventbridge/benchmark-rulesets.json`): GeoJSON lot records of about 900 bytes,
//! and rules of the kinds used there (exact, prefix, suffix, equals-ignore-case, wildcard,
//! numeric). Nothing is read from disk.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use trellis_events::{Machine, MachineBuilder, Pattern};

const STREETS: &[&str] = &[
    "OCTAVIA",
    "FULTON",
    "MASON",
    "FOLSOM",
    "17TH",
    "JEFFERSON",
    "BEACH",
    "ACTON",
    "BLAKE",
    "DRUMM",
    "RHODE ISLAND",
    "FOERSTER",
    "HAYES",
    "GROVE",
    "MARKET",
    "VALENCIA",
];
const ST_TYPES: &[&str] = &["ST", "AVE", "BLVD", "WAY", "TER"];

/// A small deterministic generator, so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

fn event(rng: &mut Rng) -> String {
    let block = rng.below(10_000);
    let lot = rng.below(1_000);
    let street = rng.pick(STREETS);
    let x = -122.5 + rng.below(1_000_000) as f64 / 10_000_000.0;
    let y = 37.7 + rng.below(1_000_000) as f64 / 10_000_000.0;
    let coords: Vec<String> = (0..12)
        .map(|i| {
            format!(
                r#"{{"x":{:.12},"y":{:.12},"z":0}}"#,
                x + i as f64 * 1e-5,
                y - i as f64 * 1e-5
            )
        })
        .collect();
    format!(
        r#"{{"type":"Feature","properties":{{"MAPBLKLOT":"{block:04}{lot:03}","BLKLOT":"{block:04}{lot:03}","BLOCK_NUM":"{block:04}","LOT_NUM":"{lot:03}","FROM_ST":"{}","TO_ST":"{}","STREET":"{street}","ST_TYPE":"{}","ODD_EVEN":"{}"}},"geometry":{{"type":"Polygon","coordinates":[[{}]],"firstCoordinates":{{"x":{x:.12},"y":{y:.12},"z":0}}}}}}"#,
        rng.below(3000),
        rng.below(3000),
        rng.pick(ST_TYPES),
        if lot.is_multiple_of(2) { "E" } else { "O" },
        coords.join(","),
    )
}

fn rule(rng: &mut Rng, i: usize) -> String {
    let block = rng.below(10_000);
    let lot = rng.below(1_000);
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
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let events: Vec<String> = (0..1_000).map(|_| event(&mut rng)).collect();
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
