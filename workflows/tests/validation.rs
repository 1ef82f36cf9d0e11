//! Definition validation against the asl-validator and awslabs/statelint fixtures
//! (`tests/fixtures/{asl-validator,statelint}`, see the README there).
//!
//! Run with `--nocapture` to see the pass rates and each failure.

use serde_json::Value;
use trellis_workflows::validate::validate;

/// Fixtures whose verdict must match; raise as validation improves, never lower.
const ASL_VALIDATOR_BASELINE: usize = 110;
const STATELINT_BASELINE: usize = 69;
const LOCALSTACK_VALIDATION_BASELINE: usize = 21;

/// Fixtures where we follow AWS rather than the linter, with the reason.
const KNOWN: &[(&str, &str)] = &[
    ("valid-map-with-item-batcher-jsonata.json", "AWS rejects a JSONPath state inside a machine whose top-level QueryLanguage is JSONata (\"'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine\", recorded by LocalStack's ValidateStateMachineDefinition test); the linter accepts it"),
    ("valid-task-credentials.json", "AWS rejects Credentials without RoleArn (\"The field 'RoleArn' is required but was missing\", recorded in LocalStack's credentials snapshot); the linter accepts any object"),
    ("task-with-credentials.json", "AWS rejects Credentials without RoleArn (\"The field 'RoleArn' is required but was missing\", recorded in LocalStack's credentials snapshot); the linter accepts any object"),
];

fn tag(name: &str) -> String {
    match KNOWN.iter().find(|(n, _)| *n == name) {
        Some((_, why)) => format!("KNOWN ({why})"),
        None => "FAIL".into(),
    }
}

fn fixtures(dir: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
}

#[test]
fn asl_validator_definitions() {
    let dir = fixtures("asl-validator/definitions");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut pass = 0;
    let mut report = String::new();
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).expect("read fixture");
        let want_valid = name.starts_with("valid-");
        let got = validate(&text);
        if got.is_ok() == want_valid {
            pass += 1;
        } else {
            match got {
                Ok(_) => {
                    report.push_str(&format!("{} {name}: accepted, want rejected\n", tag(name)))
                }
                Err(e) => report.push_str(&format!(
                    "{} {name}: rejected, want accepted\n  {e}\n",
                    tag(name)
                )),
            }
        }
    }
    println!("{report}");
    println!(
        "asl-validator definitions: {pass}/{} ({:.1}%)",
        names.len(),
        100.0 * pass as f64 / names.len() as f64
    );
    assert!(
        pass >= ASL_VALIDATOR_BASELINE,
        "asl-validator pass count {pass} fell below the baseline {ASL_VALIDATOR_BASELINE}"
    );
}

#[test]
fn statelint_definitions() {
    let dir = fixtures("statelint");
    let expectations: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expectations.json")).expect("read expectations"),
    )
    .expect("expectations are json");
    let mut pass = 0;
    let mut total = 0;
    let mut report = String::new();
    for (name, exp) in expectations.as_object().expect("object") {
        let text = std::fs::read_to_string(dir.join("test").join(name)).expect("read fixture");
        let got = validate(&text);
        // has-dupes.json must be rejected; two files have no recorded expectation.
        let want_count = match exp["expected_problem_count"].as_u64() {
            Some(n) => n as usize,
            None if name == "has-dupes.json" => 1,
            None => continue,
        };
        total += 1;
        let problems: Vec<String> = match &got {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|d| d.detailed()).collect(),
        };
        let substrings_ok = exp["message_substrings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .all(|s| problems.iter().any(|p| p.contains(s)));
        let verdict_ok = (want_count == 0) == problems.is_empty();
        if verdict_ok && substrings_ok {
            pass += 1;
        } else {
            report.push_str(&format!(
                "{} {name}: want {want_count} problem(s) with {}, got {problems:#?}\n",
                tag(name),
                exp["message_substrings"]
            ));
        }
    }
    println!("{report}");
    println!(
        "statelint definitions: {pass}/{total} ({:.1}%)",
        100.0 * pass as f64 / total as f64
    );
    assert!(
        pass >= STATELINT_BASELINE,
        "statelint pass count {pass} fell below the baseline {STATELINT_BASELINE}"
    );
}

/// Validation errors AWS returned (CreateStateMachine / ValidateStateMachineDefinition),
/// recorded by LocalStack's parity suite.
#[test]
fn localstack_recorded_definition_errors() {
    use trellis_workflows::validate::{validate_for, MachineType};
    let text =
        std::fs::read_to_string(fixtures("localstack/validation_cases.jsonl")).expect("read cases");
    let mut pass = 0;
    let mut total = 0;
    let mut report = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("case is json");
        total += 1;
        let id = case["id"].as_str().unwrap_or("?");
        let kind = if case["type"] == "EXPRESS" {
            MachineType::Express
        } else {
            MachineType::Standard
        };
        let got = validate_for(case["definition_text"].as_str().unwrap_or(""), kind);
        let got_diags: Vec<Value> = match &got {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|d| {
                        let mut o = serde_json::json!({"code": d.code, "message": d.message});
                        if !d.location.is_empty() {
                            o["location"] = Value::String(d.location.clone());
                        }
                        o
                    })
                    .collect()
            }
        };
        let expected = &case["expected"];
        let ok = match expected.get("message").and_then(Value::as_str) {
            // CreateStateMachine: the InvalidDefinition message text.
            Some(msg) => {
                let want = msg.replace("arn:<partition>:", "arn:aws:");
                got.as_ref().err().map(|e| {
                    e.0.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }) == Some(want)
            }
            // ValidateStateMachineDefinition: result and diagnostics.
            None => {
                let want = expected["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                (expected["result"] == "OK") == got.is_ok() && want == got_diags
            }
        };
        if ok {
            pass += 1;
        } else {
            report.push_str(&format!(
                "FAIL {id}\n    want {expected}\n    got  {got_diags:?}\n"
            ));
        }
    }
    println!("{report}");
    println!(
        "localstack definition errors: {pass}/{total} ({:.1}%)",
        100.0 * pass as f64 / total as f64
    );
    assert!(
        pass >= LOCALSTACK_VALIDATION_BASELINE,
        "pass count {pass} fell below the baseline {LOCALSTACK_VALIDATION_BASELINE}"
    );
}
