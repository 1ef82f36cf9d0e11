//! event-ruler's citylots2 benchmarks (`Benchmarks.java`): the 14 rule sets of
//! `fixtures/benchmark-rulesets.json`, PARTIAL_COMBO and COMBO, on citylots2-shaped events
//! (`citylots/mod.rs`), Trellis beside the `quamina` crate in the same run; and 5 rules against
//! 10,000.
//!
//! Before measuring, every event of every set is matched by both engines and the matched rules
//! must be the same (a differential check: the expected counts of the file refer to the real
//! data set, which is not here). `cargo test -p trellis-events --bench rulesets` runs the checks
//! and each benchmark once. Sets using an operator quamina lacks (prefix/suffix with
//! equals-ignore-case, anything-but with an operator) are measured for Trellis only; the combos
//! are also measured on the rules quamina accepts (`…/quamina-subset`). `trellis` is
//! `Machine::matches` (checks the whole event's syntax); `trellis-plain` is
//! `Machine::matches_plain`, what the service runs after `PutEvents` has checked the event once
//! (`is_plain`): like quamina, it neither re-checks skipped parts nor reads an object past the
//! last key the rules use.

mod citylots;

use std::hint::black_box;

use citylots::{Generator, Rng, Rulesets, STREETS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quamina::{Quamina, QuaminaBuilder};
use trellis_events::{Machine, MachineBuilder, Pattern};

/// Events per iteration (a sample of the 213,068 records, about 1.8 MB).
const EVENTS: usize = 2_000;
const SEED: u64 = 0xD1B5_4A32_D192_ED03;

fn trellis(rules: &[String]) -> Machine<usize> {
    let mut b = MachineBuilder::new();
    for (i, r) in rules.iter().enumerate() {
        let p = Pattern::parse(r).unwrap_or_else(|e| panic!("{r}: {e}"));
        b.add_rule(i, &p);
    }
    b.build()
}

/// quamina with `rules`, or the first rule it refuses. Its automaton budget (10 MB by default,
/// which 10,000 exact rules exceed) is raised to 1 GB.
fn quamina(rules: &[String]) -> Result<Quamina<usize>, String> {
    let mut q = QuaminaBuilder::new()
        .with_arena_byte_budget(1 << 30)
        .build()
        .expect("quamina options");
    for (i, r) in rules.iter().enumerate() {
        q.add_pattern(i, r).map_err(|e| format!("{r}: {e}"))?;
    }
    Ok(q)
}

fn trellis_matches(m: &Machine<usize>, event: &str) -> Vec<usize> {
    let mut got: Vec<usize> = m
        .matches(event)
        .expect("valid event")
        .into_iter()
        .copied()
        .collect();
    got.sort_unstable();
    got
}

fn quamina_matches(q: &Quamina<usize>, event: &str) -> Vec<usize> {
    let mut got = q.matches_for_event(event.as_bytes()).expect("valid event");
    got.sort_unstable();
    got.dedup();
    got
}

/// One pass of an engine over `events`: the number of matches (kept, so nothing is optimised
/// away), each event passed through `black_box`.
fn total(events: &[String], matches: impl Fn(&str) -> usize) -> usize {
    events.iter().map(|e| matches(black_box(e))).sum()
}

/// Matches every event with both engines and panics at the first difference; returns the
/// events each rule matched.
fn agree(
    name: &str,
    rules: &[String],
    m: &Machine<usize>,
    q: Option<&Quamina<usize>>,
    events: &[String],
) -> Vec<u64> {
    let mut counts = vec![0u64; rules.len()];
    for e in events {
        let t = trellis_matches(m, e);
        // The generated events are plain, so the service's path applies and must agree.
        assert_eq!(
            trellis_events::machine::is_plain(e),
            Ok(true),
            "{name}: not plain: {e}"
        );
        let mut plain: Vec<usize> = m.matches_plain(e).unwrap().into_iter().copied().collect();
        plain.sort_unstable();
        assert_eq!(t, plain, "{name}: matches and matches_plain differ on {e}");
        if let Some(q) = q {
            let qm = quamina_matches(q, e);
            assert_eq!(t, qm, "{name}: Trellis and quamina differ on {e}");
        }
        for r in t {
            counts[r] += 1;
        }
    }
    counts
}

/// Rules of the kinds the rule sets use, on generated values: `i % 6` picks the kind.
fn mixed_rule(rng: &mut Rng, i: usize) -> String {
    let block = 1 + rng.below(7600);
    let lot = 1 + rng.below(300);
    match i % 6 {
        0 => format!(r#"{{"properties":{{"MAPBLKLOT":["{block:04}{lot:03}"]}}}}"#),
        1 => format!(r#"{{"properties":{{"MAPBLKLOT":[{{"prefix":"{block:04}"}}]}}}}"#),
        2 => format!(
            r#"{{"properties":{{"STREET":["{}"],"LOT_NUM":[{{"suffix":"{:02}"}}]}}}}"#,
            rng.pick(STREETS),
            lot % 100
        ),
        3 => format!(
            r#"{{"properties":{{"BLOCK_NUM":[{{"equals-ignore-case":"{block:04}"}}],"ODD_EVEN":["E"]}}}}"#
        ),
        4 => format!(
            r#"{{"properties":{{"MAPBLKLOT":[{{"wildcard":"{block:04}*{}"}}]}}}}"#,
            lot % 10
        ),
        _ => {
            let x = -122.514 + rng.unit() * 0.157;
            format!(
                r#"{{"geometry":{{"type":["Polygon"],"firstCoordinates":{{"x":[{{"numeric":[">=",{x},"<",{}]}}]}}}}}}"#,
                x + 0.0002
            )
        }
    }
}

/// Benchmarks `rules` on `events` in group `name`: Trellis, and quamina unless it refuses a
/// rule.
fn bench_set(c: &mut Criterion, name: &str, rules: &[String], events: &[String]) {
    let m = trellis(rules);
    let q = quamina(rules);
    let counts = agree(name, rules, &m, q.as_ref().ok(), events);
    match &q {
        Ok(_) => eprintln!("{name}: agree; matches per rule {counts:?}"),
        Err(e) => eprintln!("{name}: Trellis only (quamina refuses {e}); matches {counts:?}"),
    }
    let mut group = c.benchmark_group(format!("rulesets/{name}"));
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("trellis", |b| {
        b.iter(|| total(events, |e| m.matches(e).expect("valid event").len()))
    });
    // What the service runs once PutEvents has checked the event (`is_plain`).
    group.bench_function("trellis-plain", |b| {
        b.iter(|| total(events, |e| m.matches_plain(e).expect("valid event").len()))
    });
    if let Ok(q) = &q {
        group.bench_function("quamina", |b| {
            b.iter(|| {
                total(events, |e| {
                    q.matches_for_event(e.as_bytes())
                        .expect("valid event")
                        .len()
                })
            })
        });
    }
    group.finish();
}

fn rule_sets(c: &mut Criterion) {
    let sets = Rulesets::load();
    let events = Generator::new(&sets, SEED).events(EVENTS);
    let bytes: usize = events.iter().map(String::len).sum();
    eprintln!("{EVENTS} events, {} bytes on average", bytes / EVENTS);
    for set in &sets.sets {
        bench_set(c, &set.name, &set.rules, &events);
    }
    for (name, members) in &sets.combos {
        let rules = sets.combo_rules(members);
        bench_set(c, name, &rules, &events);
        let subset: Vec<String> = rules
            .iter()
            .filter(|r| quamina(std::slice::from_ref(r)).is_ok())
            .cloned()
            .collect();
        bench_set(c, &format!("{name}/quamina-subset"), &subset, &events);
    }
}

/// 5 rules against 10,000: the EXACT set alone and with 9,995 more lot ids; the first 5 against
/// 10,000 mixed rules; and 5 mixed rules reading the same fields as those 10,000.
fn scaling(c: &mut Criterion) {
    let sets = Rulesets::load();
    let events = Generator::new(&sets, SEED).events(EVENTS);
    let exact = sets.set("EXACT").rules.clone();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut exact_10k = exact.clone();
    while exact_10k.len() < 10_000 {
        let id = Generator::lot_id(&mut rng);
        exact_10k.push(format!(r#"{{"properties":{{"MAPBLKLOT":["{id}"]}}}}"#));
    }
    let mixed_10k: Vec<String> = (0..10_000).map(|i| mixed_rule(&mut rng, i)).collect();
    // The first 5 mixed rules read only `properties`, so beside the rule count the 10,000 also
    // read `geometry` (past its coordinates); these 5 read every field the 10,000 read
    // (exact, suffix with exact, equals-ignore-case with exact, wildcard, geometry with a
    // numeric range), so that only the number of rules differs.
    let same_fields: Vec<String> = [0, 2, 3, 4, 5]
        .iter()
        .map(|&i| mixed_10k[i].clone())
        .collect();
    let families = [
        ("exact", exact, exact_10k),
        ("mixed", mixed_10k[..5].to_vec(), mixed_10k.clone()),
        ("mixed-same-fields", same_fields, mixed_10k),
    ];
    for (name, five, ten_k) in families {
        let mut group = c.benchmark_group(format!("scaling/{name}"));
        group.throughput(Throughput::Elements(events.len() as u64));
        for rules in [five, ten_k] {
            let n = rules.len();
            let m = trellis(&rules);
            let q = quamina(&rules).expect("quamina takes these rules");
            let counts = agree(&format!("{name}/{n}"), &rules, &m, Some(&q), &events);
            eprintln!(
                "scaling/{name}/{n}: agree; {} matches in {EVENTS} events",
                counts.iter().sum::<u64>()
            );
            group.bench_with_input(BenchmarkId::new("trellis", n), &m, |b, m| {
                b.iter(|| total(&events, |e| m.matches(e).expect("valid event").len()))
            });
            group.bench_with_input(BenchmarkId::new("trellis-plain", n), &m, |b, m| {
                b.iter(|| total(&events, |e| m.matches_plain(e).expect("valid event").len()))
            });
            group.bench_with_input(BenchmarkId::new("quamina", n), &q, |b, q| {
                b.iter(|| {
                    total(&events, |e| {
                        q.matches_for_event(e.as_bytes())
                            .expect("valid event")
                            .len()
                    })
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = rule_sets, scaling
}
criterion_main!(benches);
