//! The fraud-detection example end to end, run as a user runs it (`cargo run --example
//! fraud-detection`): its config applied, the monitoring service reaching PostgreSQL only
//! through the `transactions-db` resource endpoint, and the Python scoring function behind the
//! `score` service. Needs PostgreSQL at 127.0.0.1:5432 (trust auth, user `postgres`), which
//! `.ci/run` starts, and `python3`. The example binds the default ports (4566, 8080, 9101).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn post(path: &str, body: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-H",
            "Host: monitor.payments.internal",
        ])
        .arg(format!("http://127.0.0.1:8080{path}"))
        .args(if body.is_empty() {
            vec![]
        } else {
            vec!["-d", body]
        })
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text:?}"))
}

#[test]
fn the_fraud_detection_example_scores_transactions() {
    for port in [4566, 8080, 9101] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is taken: the example binds the default ports"
        );
    }
    // <target>/debug/trellis → <target>/debug/examples/fraud-detection (built by `cargo test`).
    let example = Path::new(env!("CARGO_BIN_EXE_trellis"))
        .parent()
        .unwrap()
        .join("examples/fraud-detection");
    let mut child = Command::new(&example)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", example.display()));
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let mut ready = String::new();
    BufReader::new(stdout).read_line(&mut ready).unwrap();
    assert!(
        ready.contains("\"ready\":true"),
        "readiness line: {ready:?}"
    );

    let card = format!("test-{}", std::process::id());
    let first = post(
        "/transactions",
        &format!(r#"{{"card":"{card}","amount":20.0,"merchant":"bakery","country":"FR"}}"#),
    );
    assert_eq!(first["verdict"]["decision"], "approve", "{first}");
    assert_eq!(first["recent"]["count"], 0, "{first}");

    let second = post(
        "/transactions",
        &format!(r#"{{"card":"{card}","amount":950.0,"merchant":"jeweller","country":"BR"}}"#),
    );
    assert_eq!(
        second["recent"]["count"], 1,
        "the first one was stored: {second}"
    );
    assert_eq!(second["verdict"]["decision"], "decline", "{second}");
    assert_eq!(
        second["verdict"]["reasons"].as_array().unwrap().len(),
        2,
        "{second}"
    );

    let history = post(&format!("/transactions/{card}"), "");
    let rows = history["transactions"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{history}");
    assert_eq!(rows[0]["decision"], "decline");

    // Bad input gets a clear 400 from the service, through the data plane.
    let bad = post("/transactions", r#"{"amount":"lots"}"#);
    assert!(
        bad["message"].as_str().unwrap().contains("required"),
        "{bad}"
    );
}
