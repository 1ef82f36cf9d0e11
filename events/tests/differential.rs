//! Differential check against event-ruler 2.0.1 itself: random patterns and events (generated
//! for this project, see `fixtures/README.md`), each with event-ruler's verdict. Prints the
//! agreement rate and every disagreement, asserts 100%.

use std::fs;

use trellis_events::{MachineBuilder, Pattern, PatternError};

/// Reasons AWS adds on top of event-ruler; such rejections are not disagreements.
const AWS_ONLY: &str = "Rule is too complex";

/// Cases where event-ruler is wrong and we deliberately differ: (pattern prefix, reason).
/// They are still run and reported.
const KNOWN_DIVERGENCES: &[(&str, &str)] = &[(
    r#"{"$or":[{"b":{"a.b":[{"suffix":"FILE.PNG"}]}"#,
    "event-ruler bug: with $or branches {b:[false]} and {b:[false, <anything-but>]}, an event \
     b=true matches no branch, although the second accepts it; swapping the branches makes \
     event-ruler match (minimal: {\"$or\":[{\"b\":[\"x\"]},{\"b\":[\"x\",{\"prefix\":\"y\"}]}]} \
     vs {\"b\":\"y\"}). We match, as the pattern's meaning requires.",
)];

#[test]
fn agrees_with_event_ruler() {
    let path = std::env::var("TRELLIS_DIFFERENTIAL").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/event-ruler/differential.tsv"
        )
        .to_owned()
    });
    let text = fs::read_to_string(&path).expect("fixture");
    let mut failures = Vec::new();
    let mut total = 0;
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        let (pattern, event, want) = (cols[0], cols[1], cols[2]);
        total += 1;
        let got = match Pattern::parse(pattern) {
            Err(PatternError::Invalid { reason }) if reason.starts_with(AWS_ONLY) => continue,
            Err(e) => format!("error\t{}", e.reason()),
            Ok(p) => {
                let mut b = MachineBuilder::new();
                b.add_rule((), &p);
                match b.build().matches(event) {
                    Ok(m) if m.is_empty() => "no_match".to_owned(),
                    Ok(_) => "match".to_owned(),
                    Err(_) => "event_error".to_owned(),
                }
            }
        };
        let want = if want == "error" {
            format!("error\t{}", cols.get(3).copied().unwrap_or_default())
        } else {
            want.to_owned()
        };
        if got != want {
            failures.push(format!(
                "line {}: {pattern}  |  {event}\n    event-ruler: {want}\n    ours:        {got}",
                n + 1
            ));
        }
    }
    println!(
        "differential vs event-ruler: {}/{total} agree",
        total - failures.len()
    );
    let mut unexpected = 0;
    for f in &failures {
        let pattern = f.split_once(": ").map_or("", |(_, rest)| rest);
        match KNOWN_DIVERGENCES
            .iter()
            .find(|(p, _)| pattern.starts_with(p))
        {
            Some((_, why)) => println!("  known divergence {f}\n    reason: {why}"),
            None => {
                unexpected += 1;
                if unexpected <= 40 {
                    println!("  FAIL {f}");
                }
            }
        }
    }
    assert_eq!(unexpected, 0, "{unexpected} unexpected disagreements");
}

/// The same cases through one machine holding every valid pattern: a rule must be reported for
/// an event exactly when it matches alone, so shared indexes and triggers change nothing.
#[test]
fn one_machine_for_all_rules_agrees_with_rules_alone() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/event-ruler/differential.tsv"
    );
    let text = fs::read_to_string(path).expect("fixture");
    let mut builder = MachineBuilder::new();
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        let Ok(pattern) = Pattern::parse(cols[0]) else {
            continue;
        };
        builder.add_rule(n, &pattern);
        let mut alone = MachineBuilder::new();
        alone.add_rule(n, &pattern);
        let expected = alone.build().matches(cols[1]).map(|m| !m.is_empty());
        cases.push((n, cols[1], expected));
    }
    let machine = builder.build();
    let mut failures = Vec::new();
    for (n, event, expected) in &cases {
        let got = machine.matches(event).map(|m| m.contains(&n));
        if &got != expected {
            failures.push(format!(
                "line {}: alone {expected:?}, shared {got:?}",
                n + 1
            ));
        }
    }
    // And nothing extra: for a sample of events, the full answer equals every rule's own.
    let alone: Vec<(usize, trellis_events::Machine<usize>)> = text
        .lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let p = Pattern::parse(line.split('\t').next()?).ok()?;
            let mut b = MachineBuilder::new();
            b.add_rule(n, &p);
            Some((n, b.build()))
        })
        .collect();
    for (_, event, _) in cases.iter().step_by(cases.len() / 40) {
        let Ok(shared) = machine.matches(event) else {
            continue;
        };
        let mut want: Vec<usize> = Vec::new();
        for (n, m) in &alone {
            if m.matches(event).is_ok_and(|r| !r.is_empty()) {
                want.push(*n);
            }
        }
        let got: Vec<usize> = shared.into_iter().copied().collect();
        if got != want {
            failures.push(format!("event {event}: alone {want:?}, shared {got:?}"));
        }
    }
    println!(
        "one machine of {} rules: {}/{} events agree",
        machine.len(),
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `matches_plain` (what the service uses once `PutEvents` has checked an event) must give
/// `matches`'s answer for every event `is_plain` accepts, both for each rule alone and for one
/// machine holding every rule (where objects are left early only once every key any rule uses
/// has been read).
#[test]
fn plain_matching_agrees_with_full_matching() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/event-ruler/differential.tsv"
    );
    let text = fs::read_to_string(path).expect("fixture");
    let mut builder = MachineBuilder::new();
    let mut plain_events = Vec::new();
    let mut failures = Vec::new();
    let (mut checked, mut not_plain) = (0, 0);
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        let Ok(pattern) = Pattern::parse(cols[0]) else {
            continue;
        };
        builder.add_rule(n, &pattern);
        match trellis_events::machine::is_plain(cols[1]) {
            Ok(true) => {}
            Ok(false) => {
                not_plain += 1;
                continue;
            }
            Err(_) => continue,
        }
        let mut alone = MachineBuilder::new();
        alone.add_rule(n, &pattern);
        let alone = alone.build();
        let full = alone.matches(cols[1]).map(|m| m.len());
        let plain = alone.matches_plain(cols[1]).map(|m| m.len());
        checked += 1;
        if full != plain {
            failures.push(format!(
                "line {}: {}  |  {}\n    matches: {full:?}, matches_plain: {plain:?}",
                n + 1,
                cols[0],
                cols[1]
            ));
        }
        plain_events.push(cols[1]);
    }
    let machine = builder.build();
    for event in &plain_events {
        let full: Vec<usize> = machine
            .matches(event)
            .unwrap()
            .into_iter()
            .copied()
            .collect();
        let plain: Vec<usize> = machine
            .matches_plain(event)
            .unwrap()
            .into_iter()
            .copied()
            .collect();
        if full != plain {
            failures.push(format!(
                "shared machine, {event}: matches {full:?}, matches_plain {plain:?}"
            ));
        }
    }
    println!(
        "plain matching: {checked} plain events checked alone and in one machine of {} rules \
         ({not_plain} events not plain), {} disagreements",
        machine.len(),
        failures.len()
    );
    assert!(
        checked > 1000,
        "too few plain events to mean anything: {checked}"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
