//! The examples end to end, run as a user runs them (`cargo run --example …`).
//!
//! - travel: the front-end and checkout upstreams, and the booking function (a `lambda_runtime`
//!   crate the example builds with cargo before Trellis starts) behind the front-end's
//!   `/api/bookings`, booked through the data plane. The function is built into
//!   `<target>/echo-fn`, beside the echo function `tests/functions.rs` builds: both have the
//!   same dependencies, so `lambda_runtime` is compiled once. Binds 4566, 8080, 8443 and
//!   9001-9003.
//! - fraud-detection: its config applied, the monitoring service reaching PostgreSQL only
//!   through the `transactions-db` resource endpoint, and the Python scoring function behind the
//!   `score` service. Needs PostgreSQL at 127.0.0.1:5432 (trust auth, user `postgres`), which
//!   `.ci/run` starts, and `python3`. Binds 4566, 8080, 8443 and 9101.
//!
//! Both bind the default ports, so they run one at a time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// Held by a test while its example runs: the examples bind the same ports.
static PORTS: Mutex<()> = Mutex::new(());

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
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
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

/// `<target>/debug/trellis` → `<target>/debug/examples/NAME` (built by `cargo test`).
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_trellis"))
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

/// One request to the travel data plane with curl: the status and the JSON body.
fn travel(method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--max-time", "20", "-X", method])
        .args(["-H", "Host: frontend.travel.internal"])
        .args(["-w", "\n%{http_code}"]);
    if let Some(body) = body {
        curl.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let out = curl
        .arg(format!("http://127.0.0.1:8080{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("{method} {path}: no status from curl: {text:?}"));
    let status = status
        .parse()
        .unwrap_or_else(|_| panic!("{method} {path}: {text:?}"));
    let json = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{method} {path} ({status}): {e}: {body:?}"));
    (status, json)
}

#[test]
fn the_travel_example_books_through_its_function() {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    for port in [4566, 8080, 8443, 9001, 9002, 9003] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is taken: the example binds the default ports"
        );
    }
    // Beside the echo function of tests/functions.rs, as that test builds it (no RUSTFLAGS), so
    // the two share their compiled dependencies.
    let function_target = Path::new(env!("CARGO_BIN_EXE_trellis"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("echo-fn");
    let log = tempfile::NamedTempFile::new().unwrap();
    let example = example("travel");
    let mut child = Command::new(&example)
        .env("BOOKING_FN_TARGET_DIR", &function_target)
        .env_remove("RUSTFLAGS")
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", example.display()));
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let mut ready = String::new();
    BufReader::new(stdout).read_line(&mut ready).unwrap();
    let stderr = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        ready.contains("\"ready\":true"),
        "readiness line: {ready:?}; stderr:\n{stderr}"
    );
    // It says what it builds, and with what.
    assert!(
        stderr.contains("building the booking function:")
            && stderr.contains(&format!("--target-dir {}", function_target.display())),
        "{stderr}"
    );
    let bootstrap = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/travel/booking-fn/target/lambda/booking-fn/bootstrap");
    assert!(
        stderr.contains(&format!("packaged it as {}", bootstrap.display())),
        "{stderr}"
    );

    // The upstream routes still answer beside the function.
    let (status, front) = travel("GET", "/", None);
    assert_eq!((status, &front["service"]), (200, &"frontend".into()));

    // A booking, through the data plane to the function and back.
    let ada = r#"{"flight":"TR142","date":"2026-12-24","seats":2,
                  "passenger":{"name":"Ada Lovelace","email":"ada@example.com"}}"#;
    let (status, made) = travel("POST", "/api/bookings", Some(ada));
    assert_eq!(status, 201, "{made}");
    let booking = &made["booking"];
    assert_eq!(booking["flight"], "TR142", "{made}");
    assert_eq!(booking["date"], "2026-12-24", "{made}");
    assert_eq!(booking["seats"], 2, "{made}");
    assert_eq!(booking["passenger"]["name"], "Ada Lovelace", "{made}");
    assert_eq!(booking["passenger"]["email"], "ada@example.com", "{made}");
    // Priced with the function's Environment from trellis.json: CURRENCY and FARE_PER_SEAT.
    assert_eq!(
        booking["fare"],
        serde_json::json!({"currency": "EUR", "perSeat": "129.00", "total": "258.00"}),
        "{made}"
    );
    let id = booking["id"].as_str().unwrap();
    assert!(id.len() > "bk-".len() && id.starts_with("bk-"), "{made}");
    // One seat when seats is left out, and every booking its own id.
    let (status, again) = travel(
        "POST",
        "/api/bookings",
        Some(
            r#"{"flight":"QX7","date":"2028-02-29","passenger":{"name":"Grace","email":"grace@example.org"}}"#,
        ),
    );
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["booking"]["seats"], 1, "{again}");
    assert_eq!(again["booking"]["fare"]["total"], "129.00", "{again}");
    assert_ne!(again["booking"]["id"], id, "{again}");

    // Bad bookings: 400 naming the field at fault.
    for (body, field) in [
        (
            r#"{"flight":"TR142","date":"2026-02-30","passenger":{"name":"Ada","email":"ada@example.com"}}"#,
            "date",
        ),
        (
            r#"{"flight":"tr-142","date":"2026-12-24","passenger":{"name":"Ada","email":"ada@example.com"}}"#,
            "flight",
        ),
        (
            r#"{"flight":"TR142","date":"2026-12-24","seats":12,"passenger":{"name":"Ada","email":"ada@example.com"}}"#,
            "seats",
        ),
        (
            r#"{"flight":"TR142","date":"2026-12-24","passenger":{"name":"Ada"}}"#,
            "passenger.email",
        ),
        (r#"{"flight":"TR142","date":"2026-12-24"}"#, "passenger"),
        (
            r#"{"flight":"TR142","date":"2026-12-24","seat":1,"passenger":{"name":"Ada","email":"ada@example.com"}}"#,
            "seat",
        ),
    ] {
        let (status, bad) = travel("POST", "/api/bookings", Some(body));
        assert_eq!(status, 400, "{body}: {bad}");
        assert_eq!(bad["error"], "ValidationError", "{body}: {bad}");
        assert_eq!(bad["field"], field, "{body}: {bad}");
        assert!(!bad["message"].as_str().unwrap().is_empty(), "{bad}");
    }
    let (status, bad) = travel("POST", "/api/bookings", Some("{\"flight\": "));
    assert_eq!(
        (status, &bad["error"]),
        (400, &"InvalidBody".into()),
        "{bad}"
    );
    assert!(
        bad["message"].as_str().unwrap().contains("not JSON"),
        "{bad}"
    );

    // The function owns /api/bookings: other methods and paths are refused as JSON; it keeps
    // no bookings to read back.
    let (status, refused) = travel("GET", "/api/bookings", None);
    assert_eq!(
        (status, &refused["error"]),
        (405, &"MethodNotAllowed".into()),
        "{refused}"
    );
    let (status, missing) = travel("GET", &format!("/api/bookings/{id}"), None);
    assert_eq!(
        (status, &missing["error"]),
        (404, &"NotFound".into()),
        "{missing}"
    );
    assert!(
        missing["message"].as_str().unwrap().contains("not stored"),
        "{missing}"
    );

    // What trellis.json declares is what the Lambda API reports.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let function = rt.block_on(async {
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .endpoint_url("http://127.0.0.1:4566")
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_lambda::Client::from_conf(config)
            .get_function()
            .function_name("booking")
            .send()
            .await
            .expect("GetFunction booking")
    });
    let config = function.configuration().unwrap();
    assert_eq!(
        config.runtime().map(|r| r.as_str()),
        Some("provided.al2023")
    );
    assert_eq!(config.memory_size(), Some(128));
    assert_eq!(config.timeout(), Some(10));
    let vars = config.environment().and_then(|e| e.variables()).unwrap();
    assert_eq!(vars.get("CURRENCY").map(String::as_str), Some("EUR"));
    assert_eq!(
        function
            .concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        Some(4)
    );
}
