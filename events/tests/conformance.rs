//! Fixture-driven conformance: AWS-validated cases (LocalStack), event-ruler edge cases
//! (pattern-conformance.json) and event-ruler's own fixtures. Each runner prints its pass rate
//! and every failure with its id and a diff, then asserts 100% (minus the documented
//! `KNOWN_FAILURES`, which is empty today).

use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use trellis_events::{MachineBuilder, Pattern};

/// Cases that cannot pass, with the reason. Each id listed here is still run and reported.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

fn fixture(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn json(path: &str) -> Value {
    serde_json::from_str(&fixture(path)).expect("fixture is JSON")
}

/// What a pattern and event produced: `Ok(matched)` or the pattern error message.
fn outcome(pattern: &str, event: &str) -> Result<Option<bool>, String> {
    let pattern = Pattern::parse(pattern).map_err(|e| e.to_string())?;
    let mut b = MachineBuilder::new();
    b.add_rule((), &pattern);
    Ok(b.build().matches(event).ok().map(|m| !m.is_empty()))
}

struct Report {
    name: &'static str,
    total: usize,
    failures: Vec<String>,
}

impl Report {
    fn new(name: &'static str) -> Self {
        Report {
            name,
            total: 0,
            failures: Vec::new(),
        }
    }

    fn check(&mut self, id: &str, expected: String, got: String) {
        self.total += 1;
        if expected != got {
            self.failures.push(format!(
                "{id}\n    expected: {expected}\n    got:      {got}"
            ));
        }
    }

    fn finish(self) {
        let passed = self.total - self.failures.len();
        println!(
            "{}: {passed}/{} passed ({:.1}%)",
            self.name,
            self.total,
            100.0 * passed as f64 / self.total.max(1) as f64
        );
        let mut unexpected = Vec::new();
        for f in &self.failures {
            let id = f.lines().next().unwrap_or_default();
            match KNOWN_FAILURES.iter().find(|(k, _)| id.starts_with(k)) {
                Some((_, why)) => println!("  known failure {f}\n    reason: {why}"),
                None => {
                    println!("  FAIL {f}");
                    unexpected.push(id.to_owned());
                }
            }
        }
        assert!(
            unexpected.is_empty(),
            "{}: unexpected failures: {unexpected:?}",
            self.name
        );
    }
}

fn show(r: &Result<Option<bool>, String>) -> String {
    match r {
        Ok(Some(true)) => "match".into(),
        Ok(Some(false)) => "no_match".into(),
        Ok(None) => "event error".into(),
        Err(e) => format!("exception: {e}"),
    }
}

#[test]
fn localstack_aws_validated() {
    let data = json("localstack/cases.json");
    let mut report = Report::new("localstack-aws-validated (AWS truth)");
    for case in data["cases"].as_array().expect("cases") {
        let id = case["id"].as_str().expect("id");
        let pattern = case["pattern"].as_str().expect("pattern");
        let event = case["event"].as_str().expect("event");
        let expected = match case["expected_aws"].as_str().expect("expected_aws") {
            "exception" => format!(
                "exception: {}",
                case["aws_error_message"].as_str().expect("message")
            ),
            other => other.to_owned(),
        };
        report.check(id, expected, show(&outcome(pattern, event)));
    }
    report.finish();
}

#[test]
fn pattern_conformance() {
    let data = json("pattern-conformance.json");
    let mut report = Report::new("pattern-conformance (event-ruler 2.0.1)");
    let mut cases = 0;
    for case in data["cases"].as_array().expect("cases") {
        cases += 1;
        let id = case["id"].as_str().expect("id");
        let pattern = case["pattern"].as_str().expect("pattern");
        if case["valid"] == Value::Bool(false) {
            let expected = format!(
                "exception: {}",
                case["aws_style_error"].as_str().expect("error")
            );
            let got = match Pattern::parse(pattern) {
                Ok(_) => "accepted".to_owned(),
                Err(e) => format!("exception: {e}"),
            };
            // One check per listed event, as the corpus counts them: each must be refused.
            let events = case["events"].as_array().map_or(1, Vec::len).max(1);
            for i in 0..events {
                report.check(&format!("{id}[{i}]"), expected.clone(), got.clone());
            }
            continue;
        }
        for (i, ev) in case["events"]
            .as_array()
            .expect("events")
            .iter()
            .enumerate()
        {
            let event = ev["event"].as_str().expect("event");
            let expected = match &ev["match"] {
                Value::Bool(true) => "match",
                Value::Bool(false) => "no_match",
                _ => "event error",
            };
            report.check(
                &format!("{id}[{i}] {event}"),
                expected.to_owned(),
                show(&outcome(pattern, event)),
            );
        }
    }
    println!("pattern-conformance: {cases} cases");
    report.finish();
}

#[test]
fn event_ruler_fixtures() {
    let expected = json("event-ruler/expected-results.json");
    let correctness = json("event-ruler/correctness-cases.json");
    let mut report = Report::new("event-ruler fixtures (expected-results.json)");
    for r in expected["results"].as_array().expect("results") {
        let fixture_name = r["fixture"].as_str().expect("fixture");
        if fixture_name == "correctness-cases.json" {
            let name = r["name"].as_str().expect("name");
            let case = correctness
                .as_array()
                .expect("cases")
                .iter()
                .find(|c| c["name"] == name)
                .expect("case by name");
            let got = outcome(&case["rule"].to_string(), &case["event"].to_string());
            let want = if r["match"] == Value::Bool(true) {
                "match"
            } else {
                "no_match"
            };
            report.check(&format!("correctness: {name}"), want.into(), show(&got));
        } else if let Some(event_file) = r["event_fixture"].as_str() {
            let got = outcome(
                &fixture(&format!("event-ruler/{fixture_name}")),
                &fixture(&format!("event-ruler/{event_file}")),
            );
            let want = if r["match"] == Value::Bool(true) {
                "match"
            } else {
                "no_match"
            };
            report.check(
                &format!("{fixture_name} x {event_file}"),
                want.into(),
                show(&got),
            );
        } else {
            // "file.json[i]": one rule of an array of rules; only validity is recorded.
            let (file, index) = fixture_name.split_once('[').expect("indexed fixture");
            let index: usize = index.trim_end_matches(']').parse().expect("index");
            let rules = json(&format!("event-ruler/{file}"));
            let rule = rules[index].to_string();
            let want = match r["valid"].as_bool() {
                Some(true) => "valid".to_owned(),
                _ => {
                    let msg = r["json_rule_compiler_error"].as_str().expect("error");
                    let reason = msg.split(" at [Source").next().unwrap_or(msg);
                    format!("Event pattern is not valid. Reason: {reason}")
                }
            };
            let got = match Pattern::parse(&rule) {
                Ok(_) => "valid".to_owned(),
                Err(e) => e.to_string(),
            };
            report.check(fixture_name, want, got);
        }
    }
    report.finish();
}
