//! Conformance of the input transformer and schedule expressions against AWS behaviour recorded
//! by LocalStack (see `fixtures/README.md`). Prints pass rates and failures, asserts 100%.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use trellis_events::transform::input_path;
use trellis_events::{InputTransformer, RuleContext, Schedule, ScheduleError};

fn json(path: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn finish(name: &str, total: usize, failures: &[String]) {
    println!("{name}: {}/{total} passed", total - failures.len());
    for f in failures {
        println!("  FAIL {f}");
    }
    assert!(failures.is_empty(), "{name}: {} failures", failures.len());
}

#[test]
fn input_transformer_matches_aws() {
    let data = json("localstack/transform-cases.json");
    let ctx = RuleContext {
        rule_arn: data["rule_arn"].as_str().expect("rule_arn"),
        rule_name: data["rule_name"].as_str().expect("rule_name"),
        ingestion_time: data["ingestion_time"].as_str().expect("ingestion_time"),
    };
    let cases = data["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let paths: Vec<(&str, &str)> = case["input_paths_map"]
            .as_object()
            .expect("map")
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().expect("path")))
            .collect();
        let transformer = InputTransformer::new(paths, case["input_template"].as_str().expect("t"))
            .expect("valid transformer");
        let got = transformer.apply(case["event"].as_str().expect("event"), &ctx);
        let ok = match (&got, case.get("expected_text"), case.get("expected_json")) {
            (Ok(text), Some(Value::String(want)), _) => text == want,
            (Ok(text), _, Some(want)) => {
                serde_json::from_str::<Value>(text).ok().as_ref() == Some(want)
            }
            (Err(_), None, None) => case["not_delivered"] == Value::Bool(true),
            _ => false,
        };
        if !ok {
            let want = case
                .get("expected_text")
                .or(case.get("expected_json"))
                .map_or("not delivered".to_owned(), Value::to_string);
            failures.push(format!("{id}\n    expected: {want}\n    got:      {got:?}"));
        }
    }
    finish(
        "input transformer (AWS via LocalStack)",
        cases.len(),
        &failures,
    );
}

#[test]
fn input_path_matches_aws() {
    let data = json("localstack/transform-cases.json");
    let cases = data["input_path_cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let got = input_path(
            case["event"].as_str().expect("event"),
            case["input_path"].as_str().expect("path"),
        )
        .expect("valid path")
        .unwrap_or_default();
        let ok = match (case.get("expected_text"), case.get("expected_json")) {
            (Some(Value::String(want)), _) => &got == want,
            (_, Some(want)) => serde_json::from_str::<Value>(&got).ok().as_ref() == Some(want),
            _ => false,
        };
        if !ok {
            failures.push(format!("{id}: got {got}"));
        }
    }
    finish("input path (AWS via LocalStack)", cases.len(), &failures);
}

#[test]
fn schedule_expressions_match_aws_validation() {
    let data = json("localstack/schedule-cases.json");
    let mut failures = Vec::new();
    let mut total = 0;
    for e in data["valid"].as_array().expect("valid") {
        total += 1;
        let e = e.as_str().expect("expr");
        if let Err(err) = Schedule::parse(e) {
            failures.push(format!("{e}: expected accepted, got {err}"));
        }
    }
    for e in data["invalid"].as_array().expect("invalid") {
        total += 1;
        let e = e.as_str().expect("expr");
        if Schedule::parse(e).is_ok() {
            failures.push(format!("{e}: expected rejected, was accepted"));
        }
    }
    assert_eq!(data["aws_message"], ScheduleError::AWS_MESSAGE);
    finish(
        "schedule expressions (AWS via LocalStack)",
        total,
        &failures,
    );
}
