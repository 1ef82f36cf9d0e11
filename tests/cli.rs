//! The `trellis` command line: validate and apply declarative config files.

mod common;
#[path = "../examples/travel/package.rs"]
mod package;

use std::process::Command;

use common::*;

#[test]
fn the_travel_example_validates() {
    // Its config names the booking function's package, which a build makes: into
    // <target>/echo-fn, beside the echo function of tests/functions.rs, sharing its dependencies.
    let target = std::path::Path::new(env!("CARGO_BIN_EXE_trellis"))
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("echo-fn");
    package::build(Some(&target)).expect("build the booking function");
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args([
            "validate",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/travel/trellis.json"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn validate_reports_every_error_with_its_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"targetGroups": [{"name": "x", "type": "IP", "config": {"port": 0}}],
            "services": [{"name": "Bad_Name"}], "extra": 1}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for pointer in [
        "/extra",
        "/targetGroups/0/name",
        "/targetGroups/0/config/port",
        "/services/0/name",
    ] {
        assert!(
            text.contains(&format!("{pointer}:")),
            "{pointer} missing from:\n{text}"
        );
    }
}

#[tokio::test]
async fn apply_is_all_or_nothing_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"{"services": [{"name": "applied", "customDomainName": "applied.internal",
            "listeners": [{"name": "http-80", "protocol": "HTTP", "port": 80,
                "defaultAction": {"fixedResponse": {"statusCode": 204}}}]}]}"#,
    )
    .unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"services": [{"name": "second-one"}, {"name": "-x-"}]}"#,
    )
    .unwrap();
    let endpoint = t.endpoint();
    let run = |path: std::path::PathBuf| {
        let endpoint = endpoint.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_trellis"))
                .arg("apply")
                .arg(path)
                .args(["--endpoint", &endpoint])
                .output()
                .unwrap()
        }
    };
    let out = tokio::task::spawn_blocking(run(good)).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(t.listen, "applied.internal", "/").await.status, 204);
    let out = tokio::task::spawn_blocking(run(bad)).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/services/1/name"));
    let names: Vec<String> = t
        .lattice()
        .list_services()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .map(|s| s.name().unwrap().to_string())
        .collect();
    assert_eq!(names, ["applied"], "the invalid file changed nothing");
}
