//! Functions end to end: a real `lambda_runtime` function (`functions/tests/fixtures/echo-fn`,
//! built once per run and zipped as `bootstrap`) deployed and invoked through the Lambda API with
//! the AWS SDK for Rust, plus the STS and IAM calls that deploy tools make.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, DestinationConfig, Environment, InvocationType, LogType, OnFailure,
    Runtime, State,
};
use common::*;
use serde_json::{json, Value};

const ROLE: &str = "arn:aws:iam::000000000000:role/lambda-role";

/// The echo function's `bootstrap`, built once per test run.
fn bootstrap() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // <target>/debug/trellis → <target>/echo-fn: beside the main build, never locking it.
        let target = Path::new(env!("CARGO_BIN_EXE_trellis"))
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .join("echo-fn");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("functions/tests/fixtures/echo-fn/Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .env_remove("RUSTFLAGS")
            .status()
            .expect("run cargo for the echo function");
        assert!(status.success(), "building the echo function failed");
        target.join("debug/bootstrap")
    })
}

/// The echo function as `cargo lambda build --output-format zip` packs it.
fn echo_zip() -> Vec<u8> {
    let bin = std::fs::read(bootstrap()).unwrap();
    zip(&[("bootstrap", 0o100755, &bin)])
}

/// A stored (uncompressed) zip made "on Unix", so entries carry their modes.
fn zip(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, mode, data) in files {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let header = |central: bool| {
            let mut h = Vec::new();
            let sig: u32 = if central { 0x0201_4b50 } else { 0x0403_4b50 };
            h.extend_from_slice(&sig.to_le_bytes());
            if central {
                h.extend_from_slice(&0x0314u16.to_le_bytes());
            }
            h.extend_from_slice(&20u16.to_le_bytes());
            h.extend_from_slice(&[0; 8]); // flags, method (stored), time, date
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            if central {
                h.extend_from_slice(&[0; 6]); // comment, disk, internal attributes
                h.extend_from_slice(&(mode << 16).to_le_bytes());
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(header(false));
        out.extend_from_slice(data);
        central.extend(header(true));
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn lambda(t: &Trellis) -> aws_sdk_lambda::Client {
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
        .region(aws_sdk_lambda::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .endpoint_url(t.endpoint())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .timeout_config(
            aws_sdk_lambda::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

/// Creates the echo function `name` with `timeout` seconds and `vars`.
async fn create(c: &aws_sdk_lambda::Client, name: &str, timeout: i32, vars: &[(&str, &str)]) {
    let mut env = Environment::builder();
    for (k, v) in vars {
        env = env.variables(*k, *v);
    }
    let out = c
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .role(ROLE)
        .handler("bootstrap")
        .timeout(timeout)
        .memory_size(256)
        .environment(env.build())
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(echo_zip()))
                .build(),
        )
        .send()
        .await
        .expect("create function");
    assert_eq!(out.state(), Some(&State::Active));
    assert_eq!(
        out.last_update_status(),
        Some(&aws_sdk_lambda::types::LastUpdateStatus::Successful)
    );
}

/// A synchronous invoke: (payload as JSON, function error, log tail, executed version).
async fn invoke(
    c: &aws_sdk_lambda::Client,
    name: &str,
    payload: Value,
) -> (Value, Option<String>, String, String) {
    let out = c
        .invoke()
        .function_name(name)
        .payload(Blob::new(payload.to_string()))
        .log_type(LogType::Tail)
        .send()
        .await
        .expect("invoke");
    assert_eq!(out.status_code(), 200);
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    let logs = out
        .log_result()
        .map(|l| {
            String::from_utf8(trellis_core_base64_decode(l)).expect("log tail is UTF-8 base64")
        })
        .unwrap_or_default();
    (
        body,
        out.function_error().map(str::to_string),
        logs,
        out.executed_version().unwrap_or_default().to_string(),
    )
}

fn trellis_core_base64_decode(s: &str) -> Vec<u8> {
    let table = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            _ => 63,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&b| b != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= table(c) << (18 - 6 * i);
        }
        let take = chunk.len() - 1;
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8][..take]);
    }
    out
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                T[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[tokio::test]
async fn create_invoke_and_the_runtime_contract() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    create(&c, "echo", 10, &[("GREETING", "hello")]).await;

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let context = base64(br#"{"custom":{"tenant":"t-1"},"environment":{}}"#);
    let out = c
        .invoke()
        .function_name("echo")
        .client_context(context)
        .log_type(aws_sdk_lambda::types::LogType::Tail)
        .payload(Blob::new(r#"{"echo":"hi","n":[1,2,3]}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.function_error(), None);
    assert_eq!(out.executed_version(), Some("$LATEST"));
    // A cold start: the REPORT line gives the init (spawn to the first `/next`) apart.
    let cold = String::from_utf8(trellis_core_base64_decode(out.log_result().unwrap())).unwrap();
    let init: f64 = cold
        .split("Init Duration: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no Init Duration in {cold}"));
    assert!(init > 0.0 && init < 10_000.0, "{cold}");
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["event"], json!({"echo": "hi", "n": [1, 2, 3]}));
    let env = &body["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "echo");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["_HANDLER"], "bootstrap");
    assert_eq!(env["GREETING"], "hello");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/echo");
    assert!(env["AWS_LAMBDA_LOG_STREAM_NAME"]
        .as_str()
        .unwrap()
        .contains("[$LATEST]"));
    assert!(env["LAMBDA_TASK_ROOT"].as_str().unwrap().starts_with('/'));
    let runtime_api = env["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap();
    assert!(runtime_api.starts_with("127.0.0.1:"), "{runtime_api}");
    let ctx = &body["context"];
    assert_eq!(
        ctx["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:echo"
    );
    let deadline = ctx["deadline"].as_u64().unwrap();
    assert!(
        deadline > before + 9_000 && deadline < before + 11_000,
        "deadline {deadline} is not about 10 s after {before}"
    );
    assert!(ctx["xray_trace_id"]
        .as_str()
        .unwrap()
        .starts_with("Root=1-"));
    assert_eq!(ctx["client_context"]["tenant"], "t-1");
    assert_eq!(ctx["memory"], 256);

    // A warm start reuses the worker.
    let (again, _, _, _) = invoke(&c, "echo", json!({"echo": 2})).await;
    assert_eq!(again["pid"], body["pid"], "the idle worker is reused");

    // Tail logs: the function's stdout and stderr, between START and REPORT.
    let (_, error, logs, _) = invoke(&c, "echo", json!({"print": "a log line"})).await;
    assert_eq!(error, None);
    assert!(logs.contains("START RequestId:"), "{logs}");
    assert!(logs.contains("a log line"), "{logs}");
    assert!(logs.contains("stderr: a log line"), "{logs}");
    assert!(logs.contains("REPORT RequestId:"), "{logs}");
    assert!(
        !logs.contains("Init Duration"),
        "a warm start has no init: {logs}"
    );

    // A function error.
    let (err, error, _, _) = invoke(&c, "echo", json!({"fail": "boom"})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(err["errorMessage"], "boom", "{err}");

    // Reads.
    let got = c.get_function().function_name("echo").send().await.unwrap();
    let config = got.configuration().unwrap();
    assert_eq!(config.timeout(), Some(10));
    assert_eq!(config.runtime(), Some(&Runtime::Providedal2023));
    assert!(config.code_sha256().is_some());
    let list = c.list_functions().send().await.unwrap();
    assert_eq!(list.functions().len(), 1);

    // A configuration change reaches fresh workers.
    c.update_function_configuration()
        .function_name("echo")
        .environment(Environment::builder().variables("GREETING", "bye").build())
        .send()
        .await
        .unwrap();
    let (body, _, _, _) = invoke(&c, "echo", json!({})).await;
    assert_eq!(body["env"]["GREETING"], "bye");

    // Versions and a weighted alias.
    let v1 = c
        .publish_version()
        .function_name("echo")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.version(), Some("1"));
    c.update_function_configuration()
        .function_name("echo")
        .environment(Environment::builder().variables("GREETING", "v2").build())
        .send()
        .await
        .unwrap();
    let v2 = c
        .publish_version()
        .function_name("echo")
        .send()
        .await
        .unwrap();
    assert_eq!(v2.version(), Some("2"));
    let alias = c
        .create_alias()
        .function_name("echo")
        .name("live")
        .function_version("1")
        .routing_config(
            AliasRoutingConfiguration::builder()
                .additional_version_weights("2", 0.5)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        alias.alias_arn(),
        Some("arn:aws:lambda:us-east-1:000000000000:function:echo:live")
    );
    let mut seen = std::collections::HashMap::new();
    for _ in 0..40 {
        let (body, _, _, version) = invoke(&c, "echo:live", json!({})).await;
        let greeting = body["env"]["GREETING"].as_str().unwrap().to_string();
        assert_eq!(greeting, if version == "1" { "bye" } else { "v2" });
        *seen.entry(version).or_insert(0) += 1;
    }
    assert!(seen.len() == 2, "both versions serve the alias: {seen:?}");
    c.update_alias()
        .function_name("echo")
        .name("live")
        .function_version("2")
        .routing_config(AliasRoutingConfiguration::builder().build())
        .send()
        .await
        .unwrap();
    let (_, _, _, version) = invoke(&c, "echo:live", json!({})).await;
    assert_eq!(version, "2");

    // DryRun checks without running; unknown functions are 404.
    let dry = c
        .invoke()
        .function_name("echo")
        .invocation_type(InvocationType::DryRun)
        .send()
        .await
        .unwrap();
    assert_eq!(dry.status_code(), 204);
    let err = c.invoke().function_name("nope").send().await.unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    c.delete_function()
        .function_name("echo")
        .send()
        .await
        .unwrap();
    let err = c
        .get_function()
        .function_name("echo")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn timeouts_and_crashes_get_a_fresh_worker() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    create(&c, "flaky", 1, &[]).await;

    let (first, _, _, _) = invoke(&c, "flaky", json!({})).await;
    let started = std::time::Instant::now();
    let (err, error, logs, _) = invoke(&c, "flaky", json!({"sleep_ms": 5000})).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "killed at the timeout"
    );
    assert_eq!(error.as_deref(), Some("Unhandled"));
    let message = err["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("Task timed out after 1.00 seconds"),
        "{message}"
    );
    assert!(logs.contains("Task timed out after 1.00 seconds"), "{logs}");
    let (after, error, _, _) = invoke(&c, "flaky", json!({})).await;
    assert_eq!(error, None);
    assert_ne!(
        after["pid"], first["pid"],
        "the timed-out worker was replaced"
    );

    let (err, error, _, _) = invoke(&c, "flaky", json!({"crash": 3})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(err["errorType"], "Runtime.ExitError", "{err}");
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap()
            .contains("exit status: 3"),
        "{err}"
    );
    let (fresh, error, _, _) = invoke(&c, "flaky", json!({})).await;
    assert_eq!(error, None);
    assert_ne!(
        fresh["pid"], after["pid"],
        "the crashed worker was replaced"
    );

    // A function that dies during init: the error carries what it said last.
    create(&c, "no-init", 3, &[("CRASH_AT_INIT", "1")]).await;
    let (err, error, _, _) = invoke(&c, "no-init", json!({})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(err["errorType"], "Runtime.ExitError", "{err}");
    assert!(
        err["trace"]
            .to_string()
            .contains("init failed: no database"),
        "{err}"
    );
}

#[tokio::test]
async fn parallel_invokes_scale_to_reserved_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    create(&c, "busy", 30, &[]).await;
    c.put_function_concurrency()
        .function_name("busy")
        .reserved_concurrent_executions(5)
        .send()
        .await
        .unwrap();

    let calls = (0..50).map(|i| {
        let c = c.clone();
        async move { invoke(&c, "busy", json!({"sleep_ms": 100, "i": i})).await }
    });
    let results = futures_util::future::join_all(calls).await;
    let mut pids = std::collections::HashSet::new();
    for (i, (body, error, _, _)) in results.into_iter().enumerate() {
        assert_eq!(error, None, "{body}");
        assert_eq!(body["event"]["i"], i);
        pids.insert(body["pid"].as_u64().unwrap());
    }
    assert!(
        pids.len() > 1 && pids.len() <= 5,
        "{} workers for concurrency 5",
        pids.len()
    );
    let got = c
        .get_function_concurrency()
        .function_name("busy")
        .send()
        .await
        .unwrap();
    assert_eq!(got.reserved_concurrent_executions(), Some(5));
}

#[tokio::test]
async fn functions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    create(&c, "durable", 5, &[("GREETING", "still here")]).await;
    c.publish_version()
        .function_name("durable")
        .send()
        .await
        .unwrap();
    let (_, error, _, _) = invoke(&c, "durable", json!({})).await;
    assert_eq!(error, None);
    t.terminate();

    let t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    let (body, error, _, _) = invoke(&c, "durable", json!({"echo": 1})).await;
    assert_eq!(error, None);
    assert_eq!(body["env"]["GREETING"], "still here");
    let (_, _, _, version) = invoke(&c, "durable:1", json!({})).await;
    assert_eq!(version, "1");
}

/// An `Event` invocation answered 202 is in the store: killed with `kill -9` while it runs, it
/// runs again after the restart and reaches its on-success destination.
#[tokio::test]
async fn accepted_async_invocations_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    create(&c, "slow", 10, &[]).await;
    create(&c, "done", 5, &[]).await;
    c.put_function_event_invoke_config()
        .function_name("slow")
        .destination_config(
            DestinationConfig::builder()
                .on_success(
                    aws_sdk_lambda::types::OnSuccess::builder()
                        .destination("arn:aws:lambda:us-east-1:000000000000:function:done")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let trace = dir.path().join("trace");
    let out = c
        .invoke()
        .function_name("slow")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(
            json!({"write": trace.display().to_string(), "sleep_ms": 3000}).to_string(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);
    // The function has started (it writes before it sleeps): kill Trellis mid-invocation.
    let lines = || std::fs::read_to_string(&trace).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(15), || async {
            lines().contains("slow")
        })
        .await,
        "never started: {:?}",
        lines()
    );
    t.kill9();
    assert!(
        !lines().contains("done"),
        "finished before the kill: {:?}",
        lines()
    );

    let _t = Trellis::start(dir.path(), &[]);
    assert!(
        eventually(Duration::from_secs(30), || async {
            lines().contains("done")
        })
        .await,
        "not run again after the restart: {:?}",
        lines()
    );
    // Run again from the start (at least once), then its destination.
    assert_eq!(
        lines().lines().filter(|l| *l == "slow").count(),
        2,
        "{:?}",
        lines()
    );
}

#[tokio::test]
async fn workers_do_not_outlive_trellis() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    create(&c, "sleeper", 60, &[]).await;
    let (body, _, _, _) = invoke(&c, "sleeper", json!({})).await;
    let pid = body["pid"].as_u64().unwrap();
    // Busy in a long invocation, the worker is not polling the Runtime API: only the
    // parent-death signal stops it.
    let busy = tokio::spawn({
        let c = c.clone();
        async move {
            c.invoke()
                .function_name("sleeper")
                .payload(Blob::new(r#"{"sleep_ms":30000}"#))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    t.kill9();
    let gone = eventually(Duration::from_secs(5), || async {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    })
    .await;
    assert!(gone, "worker {pid} outlived a SIGKILLed Trellis");
    busy.abort();
}

#[tokio::test]
async fn bad_packages_and_async_invocation() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    let attempt = |zip: Vec<u8>| {
        c.create_function()
            .function_name("bad")
            .runtime(Runtime::Providedal2023)
            .role(ROLE)
            .handler("bootstrap")
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(Blob::new(zip))
                    .build(),
            )
            .send()
    };
    for (zip, says) in [
        (zip(&[("main", 0o100755, b"x")]), "no bootstrap"),
        (zip(&[("bootstrap", 0o100644, b"x")]), "not executable"),
        (b"this is not a zip file at all".to_vec(), "unzip"),
    ] {
        let err = attempt(zip).await.unwrap_err();
        assert_eq!(err.code(), Some("InvalidParameterValueException"));
        assert!(err.message().unwrap().contains(says), "{:?}", err.message());
    }

    // Payload limits: 256 KB for asynchronous invocations.
    create(&c, "worker", 5, &[]).await;
    let big = json!({"pad": "x".repeat(300 * 1024)}).to_string();
    let err = c
        .invoke()
        .function_name("worker")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(big))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("RequestTooLargeException"));

    // Event: accepted at once, retried once after failing, then sent to the on-failure
    // destination (another function), each leaving a line in `trace`.
    create(&c, "dead-letters", 5, &[]).await;
    c.put_function_event_invoke_config()
        .function_name("worker")
        .maximum_retry_attempts(1)
        .destination_config(
            DestinationConfig::builder()
                .on_failure(
                    OnFailure::builder()
                        .destination("arn:aws:lambda:us-east-1:000000000000:function:dead-letters")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let trace = dir.path().join("trace");
    let out = c
        .invoke()
        .function_name("worker")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(
            json!({"write": trace.display().to_string(), "fail": "always"}).to_string(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);
    let done = eventually(Duration::from_secs(15), || async {
        std::fs::read_to_string(&trace)
            .map(|s| s.lines().count() >= 3)
            .unwrap_or(false)
    })
    .await;
    let lines = std::fs::read_to_string(&trace).unwrap_or_default();
    assert!(done, "trace: {lines:?}");
    assert_eq!(
        lines.lines().collect::<Vec<_>>(),
        ["worker", "worker", "dead-letters"]
    );
}

/// A query-protocol call (STS, IAM) as the SDKs send it; returns the status and the XML.
async fn query(t: &Trellis, form: &str) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    let req = http::Request::post(format!("{}/", t.endpoint()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(bytes::Bytes::from(form.to_string())))
        .unwrap();
    let resp = http_client().request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn sts_and_iam_answer_what_deploy_tools_ask() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let (status, xml) = query(&t, "Action=GetCallerIdentity&Version=2011-06-15").await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<Account>000000000000</Account>"), "{xml}");

    let (status, xml) = query(
        &t,
        "Action=GetRole&RoleName=cargo-lambda-role&Version=2010-05-08",
    )
    .await;
    assert_eq!(status, 404, "{xml}");
    assert!(xml.contains("<Code>NoSuchEntity</Code>"), "{xml}");

    let policy = "%7B%22Version%22%3A%222012-10-17%22%7D";
    let (status, xml) = query(
        &t,
        &format!("Action=CreateRole&RoleName=cargo-lambda-role&AssumeRolePolicyDocument={policy}&Version=2010-05-08"),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<Arn>arn:aws:iam::000000000000:role/cargo-lambda-role</Arn>"),
        "{xml}"
    );
    let (status, xml) = query(
        &t,
        "Action=AttachRolePolicy&RoleName=cargo-lambda-role&PolicyArn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2Fservice-role%2FAWSLambdaBasicExecutionRole&Version=2010-05-08",
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    let (status, xml) = query(
        &t,
        "Action=GetRole&RoleName=cargo-lambda-role&Version=2010-05-08",
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<GetRoleResult><Role>"), "{xml}");
}

#[tokio::test]
async fn lambda_target_groups_receive_the_lattice_event() {
    use aws_sdk_vpclattice::types::{
        ListenerProtocol, RuleAction, Target, TargetGroupConfig, TargetGroupType,
        WeightedTargetGroup,
    };
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    create(&c, "lattice-echo", 10, &[]).await;
    let arn = c
        .get_function()
        .function_name("lattice-echo")
        .send()
        .await
        .unwrap()
        .configuration()
        .unwrap()
        .function_arn()
        .unwrap()
        .to_string();
    let lattice = t.lattice();
    for (version, svc_name) in [("V2", "fn-v2"), ("V1", "fn-v1")] {
        let tg = lattice
            .create_target_group()
            .name(format!("{svc_name}-tg"))
            .r#type(TargetGroupType::Lambda)
            .config(
                TargetGroupConfig::builder()
                    .lambda_event_structure_version(version.into())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        lattice
            .register_targets()
            .target_group_identifier(tg.id().unwrap())
            .targets(Target::builder().id(&arn).build().unwrap())
            .send()
            .await
            .unwrap();
        let svc = lattice
            .create_service()
            .name(svc_name)
            .send()
            .await
            .unwrap();
        let dns = svc.dns_entry().unwrap().domain_name().unwrap().to_string();
        lattice
            .create_listener()
            .service_identifier(svc.id().unwrap())
            .name("http-80")
            .protocol(ListenerProtocol::Http)
            .port(80)
            .default_action(RuleAction::Forward(
                aws_sdk_vpclattice::types::ForwardAction::builder()
                    .target_groups(
                        WeightedTargetGroup::builder()
                            .target_group_identifier(tg.id().unwrap())
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            ))
            .send()
            .await
            .unwrap();

        let client = http_client();
        let r = send(
            &client,
            t.listen,
            "GET",
            &dns,
            "/orders/7?x=1&y=2",
            &[("x-tenant", "acme")],
        )
        .await;
        assert_eq!(
            r.status,
            201,
            "{version}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.headers["x-from"], "echo-fn");
        let event = r.json();
        assert_eq!(event["method"], "GET");
        if version == "V2" {
            assert_eq!(event["version"], "2.0");
            assert_eq!(event["path"], "/orders/7");
            assert_eq!(event["queryStringParameters"]["x"], "1");
            assert_eq!(event["headers"]["x-tenant"], serde_json::json!(["acme"]));
            assert_eq!(event["requestContext"]["targetGroupArn"], tg.arn().unwrap());
            assert_eq!(event["requestContext"]["serviceArn"], svc.arn().unwrap());
        } else {
            assert_eq!(event["raw_path"], "/orders/7?x=1&y=2");
            assert_eq!(event["query_string_parameters"]["y"], "2");
            assert_eq!(event["headers"]["x-tenant"], "acme");
            assert_eq!(event["is_base64_encoded"], false);
        }
    }
}

// === WebAssembly functions ===

/// A WASI command module from `functions/tests/fixtures/wasm` (built from its `.wat`).
fn wasm_fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("functions/tests/fixtures/wasm")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Creates a WebAssembly function: a zip holding `function.wasm`, named by the handler.
async fn create_wasm(
    c: &aws_sdk_lambda::Client,
    name: &str,
    module: &[u8],
    timeout: i32,
    memory: i32,
    vars: &[(&str, &str)],
) -> Result<
    aws_sdk_lambda::operation::create_function::CreateFunctionOutput,
    aws_sdk_lambda::error::SdkError<
        aws_sdk_lambda::operation::create_function::CreateFunctionError,
    >,
> {
    let mut env = Environment::builder();
    for (k, v) in vars {
        env = env.variables(*k, *v);
    }
    c.create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .role(ROLE)
        .handler("function.wasm")
        .timeout(timeout)
        .memory_size(memory)
        .environment(env.build())
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(zip(&[("function.wasm", 0o100644, module)])))
                .build(),
        )
        .send()
        .await
}

#[tokio::test]
async fn wasm_functions_run_wasi_commands() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);

    // Round trip: the event on stdin, the answer on stdout, stderr in the log tail.
    let out = create_wasm(&c, "wecho", &wasm_fixture("echo"), 3, 128, &[])
        .await
        .expect("create the wasm function");
    assert_eq!(out.state(), Some(&State::Active));
    assert_eq!(out.handler(), Some("function.wasm"));
    let (body, error, logs, version) = invoke(&c, "wecho", json!({"name": "x", "n": [1, 2]})).await;
    assert_eq!(error, None, "{body}");
    assert_eq!(body, json!({"wasm": true, "name": "x", "n": [1, 2]}));
    assert_eq!(version, "$LATEST");
    assert!(logs.contains("wasm echo\n"), "{logs}");
    assert!(logs.contains("REPORT RequestId:"), "{logs}");

    // Cold start: every invoke instantiates afresh; the REPORT line says how long that took.
    let mut inits = Vec::new();
    for _ in 0..20 {
        let (_, _, logs, _) = invoke(&c, "wecho", json!({})).await;
        let init = logs
            .split("Init Duration: ")
            .nth(1)
            .and_then(|s| s.split(" ms").next())
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no Init Duration in {logs}"));
        inits.push(init);
    }
    inits.sort_by(f64::total_cmp);
    eprintln!(
        "wasm cold invoke, instantiate time through Trellis: p50 {:.3} ms, max {:.3} ms",
        inits[inits.len() / 2],
        inits[inits.len() - 1]
    );

    // Versions, aliases and qualifiers work as for any function.
    let v1 = c
        .publish_version()
        .function_name("wecho")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.version(), Some("1"));
    let (body, _, _, version) = invoke(&c, "wecho:1", json!({"v": 1})).await;
    assert_eq!(body, json!({"wasm": true, "v": 1}));
    assert_eq!(version, "1");

    // The function's variables, and nothing else of the host's environment.
    create_wasm(
        &c,
        "wenv",
        &wasm_fixture("env"),
        3,
        128,
        &[("GREETING", "hello")],
    )
    .await
    .unwrap();
    let (body, error, _, _) = invoke(&c, "wenv", json!({})).await;
    assert_eq!(error, None);
    assert_eq!(body, json!(["GREETING=hello"]));

    // An endless loop is stopped at the timeout.
    create_wasm(&c, "wloop", &wasm_fixture("loop"), 1, 128, &[])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (err, error, logs, _) = invoke(&c, "wloop", json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped at the timeout"
    );
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(err["errorType"], "Sandbox.Timedout", "{err}");
    let message = err["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("Task timed out after 1.00 seconds"),
        "{message}"
    );
    assert!(logs.contains("Task timed out after 1.00 seconds"), "{logs}");

    // A memory bomb is capped at MemorySize and fails cleanly; the next invoke is fine.
    create_wasm(&c, "wbomb", &wasm_fixture("bomb"), 5, 128, &[])
        .await
        .unwrap();
    let (err, error, logs, _) = invoke(&c, "wbomb", json!({})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(err["errorType"], "Runtime.OutOfMemory", "{err}");
    assert!(
        err["errorMessage"].as_str().unwrap().contains("128 MB"),
        "{err}"
    );
    assert!(logs.contains("Max Memory Used: 128 MB"), "{logs}");
    let (_, error, _, _) = invoke(&c, "wecho", json!({})).await;
    assert_eq!(error, None);

    // A trap and a non-zero exit are function errors carrying what the module said.
    create_wasm(&c, "wtrap", &wasm_fixture("trap"), 3, 128, &[])
        .await
        .unwrap();
    let (err, error, logs, _) = invoke(&c, "wtrap", json!({})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(err["errorType"], "Runtime.WasmTrap", "{err}");
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{err}"
    );
    assert!(logs.contains("about to trap"), "{logs}");
    create_wasm(&c, "wexit", &wasm_fixture("exit"), 3, 128, &[])
        .await
        .unwrap();
    let (err, error, _, _) = invoke(&c, "wexit", json!({})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(err["errorType"], "Runtime.ExitError", "{err}");
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap()
            .contains("exit status 3"),
        "{err}"
    );
    assert!(err["trace"].to_string().contains("bad input"), "{err}");

    // Invalid modules are refused at create, naming the problem.
    for (module, says) in [
        (
            b"this is not wasm".to_vec(),
            "not a valid WebAssembly module",
        ),
        (wasm_fixture("foreign"), "host_magic"),
    ] {
        let err = create_wasm(&c, "wbad", &module, 3, 128, &[])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidParameterValueException"));
        assert!(err.message().unwrap().contains(says), "{:?}", err.message());
    }
    let err = c
        .create_function()
        .function_name("wbad")
        .role(ROLE)
        .handler("function.wasm")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(zip(&[("other.wasm", 0o100644, b"x")])))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValueException"));
    assert!(
        err.message().unwrap().contains("function.wasm"),
        "{:?}",
        err.message()
    );

    // Invalid code in an update is refused, and the previous code keeps serving.
    let err = c
        .update_function_code()
        .function_name("wecho")
        .zip_file(Blob::new(zip(&[(
            "function.wasm",
            0o100644,
            b"\0asm junk",
        )])))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValueException"));
    let (body, error, _, _) = invoke(&c, "wecho", json!({"still": "here"})).await;
    assert_eq!(error, None);
    assert_eq!(body, json!({"wasm": true, "still": "here"}));

    // A new module takes over at once.
    c.update_function_code()
        .function_name("wecho")
        .zip_file(Blob::new(zip(&[(
            "function.wasm",
            0o100644,
            &wasm_fixture("env"),
        )])))
        .send()
        .await
        .unwrap();
    let (body, _, _, _) = invoke(&c, "wecho", json!({})).await;
    assert_eq!(body, json!([]));
}

/// `functions/tests/fixtures/wasm/handler.c` built with clang and Debian's wasi-libc, or `None`
/// (and the test is skipped) where they are not installed: CI needs no wasm toolchain.
fn c_module() -> Option<Vec<u8>> {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("functions/tests/fixtures/wasm/handler.c");
    let out = Path::new(env!("CARGO_BIN_EXE_trellis"))
        .parent()?
        .join("handler-c.wasm");
    // Debian's clang finds wasi-libc itself; other installs name a sysroot.
    let build = |sysroot: Option<&str>| {
        let mut cmd = std::process::Command::new("clang");
        cmd.args(["--target=wasm32-wasi", "-O2", "-o"])
            .arg(&out)
            .arg(&source);
        if let Some(s) = sysroot {
            cmd.arg("--sysroot").arg(s);
        }
        cmd.stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !build(None) && !build(Some("/usr/share/wasi-sysroot")) {
        return None;
    }
    std::fs::read(out).ok()
}

#[tokio::test]
async fn a_wasm_function_built_from_c() {
    let Some(module) = c_module() else {
        eprintln!("skipped: no clang with wasi-libc (apt-get install clang lld wasi-libc libclang-rt-dev-wasm32)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    create_wasm(&c, "cfn", &module, 1, 128, &[]).await.unwrap();

    let (body, error, logs, _) = invoke(&c, "cfn", json!({"name": "x"})).await;
    assert_eq!(error, None, "{body}");
    assert_eq!(body, json!({"c": true, "name": "x"}));
    assert!(logs.contains("c echo"), "{logs}");

    let started = std::time::Instant::now();
    let (err, error, _, _) = invoke(&c, "cfn", json!({"loop": true})).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 1.00 seconds"),
        "{err}"
    );

    let (err, error, logs, _) = invoke(&c, "cfn", json!({"bomb": true})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(err["errorType"], "Runtime.OutOfMemory", "{err}");
    assert!(logs.contains("malloc failed after"), "{logs}");

    let (body, error, _, _) = invoke(&c, "cfn", json!({})).await;
    assert_eq!(error, None);
    assert_eq!(body, json!({"c": true}));
}

/// Every file under `dir` as zip entries (path relative to `dir`, Unix mode kept).
fn zip_dir(dir: &Path) -> Vec<u8> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u32, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let mode =
                    0o100000 | (std::fs::metadata(&path).unwrap().permissions().mode() & 0o777);
                out.push((name, mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    let refs: Vec<(&str, u32, &[u8])> = files
        .iter()
        .map(|(n, m, d)| (n.as_str(), *m, d.as_slice()))
        .collect();
    zip(&refs)
}

/// When `tool` is missing: fail under `.ci/run` (which installs it and sets
/// `TRELLIS_REQUIRE_TOOLS=1`), otherwise say so and skip.
fn tool_missing(tool: &str, why: &str) -> bool {
    assert!(
        std::env::var_os("TRELLIS_REQUIRE_TOOLS").is_none(),
        "{tool} is required here (TRELLIS_REQUIRE_TOOLS is set): {why}"
    );
    eprintln!("SKIPPED: {tool} is not available ({why}); .ci/run installs it");
    true
}

/// A Python function on AWS's own runtime interface client, `awslambdaric`, started by a
/// `bootstrap` script the way custom Python runtimes are packaged for `provided.al2023`.
#[tokio::test]
async fn a_python_function_on_awslambdaric() {
    let pkg = tempfile::tempdir().unwrap();
    let pip = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--root-user-action=ignore")
        .args(["--target"])
        .arg(pkg.path().join("python"))
        .arg("awslambdaric")
        .status();
    if !matches!(pip, Ok(s) if s.success())
        && tool_missing("pip + awslambdaric", "pip install failed")
    {
        return;
    }
    std::fs::write(
        pkg.path().join("handler.py"),
        "import os\n\
         def handler(event, context):\n\
         \x20   print('python handler got', event)\n\
         \x20   if event.get('fail'):\n\
         \x20       raise ValueError('asked to fail')\n\
         \x20   return {'echo': event, 'function': context.function_name,\n\
         \x20           'memory': context.memory_limit_in_mb, 'request': context.aws_request_id,\n\
         \x20           'remaining_ms': context.get_remaining_time_in_millis()}\n",
    )
    .unwrap();
    let bootstrap = pkg.path().join("bootstrap");
    std::fs::write(
        &bootstrap,
        "#!/bin/sh\nexport PYTHONPATH=\"$LAMBDA_TASK_ROOT/python\"\n\
         exec python3 -m awslambdaric \"$_HANDLER\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &bootstrap,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    c.create_function()
        .function_name("py")
        .runtime(Runtime::Providedal2023)
        .role(ROLE)
        .handler("handler.handler")
        .timeout(10)
        .memory_size(256)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(zip_dir(pkg.path())))
                .build(),
        )
        .send()
        .await
        .expect("create the Python function");

    let (body, error, logs, _) = invoke(&c, "py", json!({"hello": "python"})).await;
    assert_eq!(error, None, "{body}\n{logs}");
    assert_eq!(body["echo"], json!({"hello": "python"}));
    assert_eq!(body["function"], "py");
    // awslambdaric reads it from AWS_LAMBDA_FUNCTION_MEMORY_SIZE, as a string.
    assert_eq!(body["memory"], "256");
    assert_eq!(body["request"].as_str().unwrap().len(), 36, "{body}");
    let remaining = body["remaining_ms"].as_u64().unwrap();
    assert!(
        remaining > 8_000 && remaining <= 10_000,
        "deadline: {remaining} ms left"
    );
    assert!(logs.contains("python handler got"), "{logs}");

    // An exception comes back the way awslambdaric reports it.
    let (body, error, _, _) = invoke(&c, "py", json!({"fail": true})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "ValueError", "{body}");
    assert_eq!(body["errorMessage"], "asked to fail");
}

/// `MemorySize` caps what a worker can allocate: a Python runtime that allocates past it
/// fails, the same allocation under a larger `MemorySize` succeeds.
#[tokio::test]
async fn memory_size_caps_a_worker() {
    let pkg = tempfile::tempdir().unwrap();
    let bootstrap = pkg.path().join("bootstrap");
    // A Runtime API client in plain Python: allocates `mb` megabytes per event.
    std::fs::write(
        &bootstrap,
        r#"#!/usr/bin/env python3
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation"
def post(url, doc):
    urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST")).read()
while True:
    with urllib.request.urlopen(api + "/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    try:
        block = bytearray(event["mb"] * 1024 * 1024)
        post(f"{api}/{rid}/response", {"allocated_mb": len(block) // (1024 * 1024)})
        del block
    except MemoryError:
        post(f"{api}/{rid}/error", {"errorType": "MemoryError", "errorMessage": "allocation failed"})
"#,
    )
    .unwrap();
    std::fs::set_permissions(
        &bootstrap,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let code = zip_dir(pkg.path());

    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    for (name, memory) in [("small", 128), ("large", 1024)] {
        c.create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .role(ROLE)
            .handler("bootstrap")
            .memory_size(memory)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(Blob::new(code.clone()))
                    .build(),
            )
            .send()
            .await
            .expect("create function");
    }
    let (body, error, _, _) = invoke(&c, "small", json!({"mb": 16})).await;
    assert_eq!((error, body["allocated_mb"].as_u64()), (None, Some(16)));
    let (body, error, _, _) = invoke(&c, "small", json!({"mb": 400})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"), "{body}");
    assert_eq!(body["errorType"], "MemoryError", "{body}");
    let (body, error, _, _) = invoke(&c, "large", json!({"mb": 400})).await;
    assert_eq!(
        (error, body["allocated_mb"].as_u64()),
        (None, Some(400)),
        "{body}"
    );
}

/// `cargo lambda deploy` against Trellis, as users run it: no `--iam-role` (it asks STS and
/// IAM for one), then the deployed function answers through the Lambda API.
#[tokio::test]
async fn cargo_lambda_deploy_deploys_a_function() {
    // A cargo subcommand: `cargo-lambda --version` alone is an error.
    let version = std::process::Command::new("cargo-lambda")
        .args(["lambda", "--version"])
        .output();
    if !matches!(&version, Ok(o) if o.status.success())
        && tool_missing("cargo-lambda", "pip install cargo-lambda")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let out = std::process::Command::new("cargo-lambda")
        .args(["lambda", "deploy", "--endpoint-url"])
        .arg(t.endpoint())
        .args(["--region", "us-east-1", "--timeout", "7", "--memory", "256"])
        .args(["--env-var", "GREETING=from-cargo-lambda", "--binary-path"])
        .arg(bootstrap())
        .arg("deployed-echo")
        // It reads the package's metadata even when given the binary: run it in the package.
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("functions/tests/fixtures/echo-fn"))
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run cargo lambda deploy");
    assert!(
        out.status.success(),
        "cargo lambda deploy failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let c = lambda(&t);
    let config = c
        .get_function_configuration()
        .function_name("deployed-echo")
        .send()
        .await
        .expect("the deployed function exists");
    assert_eq!(config.timeout(), Some(7));
    assert_eq!(config.memory_size(), Some(256));
    let (body, error, _, _) = invoke(&c, "deployed-echo", json!({"echo": "deployed"})).await;
    assert_eq!(error, None, "{body}");
    assert_eq!(body["event"], json!({"echo": "deployed"}));
    assert_eq!(body["env"]["GREETING"], "from-cargo-lambda");
}

// === WebAssembly components (wasi:http) ===

/// `tests/fixtures/wasi-http-py/app.py` built into a `wasi:http/proxy` component with
/// componentize-py, or `None` when componentize-py is not installed.
fn python_component() -> Option<Vec<u8>> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wasi-http-py");
    let out = tempfile::tempdir().unwrap();
    let wasm = out.path().join("app.wasm");
    // Built from a copy: componentize-py leaves `__pycache__` beside the source.
    std::fs::copy(fixture.join("app.py"), out.path().join("app.py")).unwrap();
    let built = std::process::Command::new("componentize-py")
        .arg("-d")
        .arg(fixture.join("wit"))
        .args(["-w", "wasi:http/proxy@0.2.12", "componentize", "-p"])
        .arg(out.path())
        .args(["app", "-o"])
        .arg(&wasm)
        .stdout(std::process::Stdio::null())
        .status();
    if !matches!(built, Ok(s) if s.success()) {
        return None;
    }
    std::fs::read(&wasm).ok()
}

/// `tests/fixtures/wasi-http-js/app.js` built into a `wasi:http/proxy` component with jco
/// (componentize-js, StarlingMonkey), or `None` when jco is not installed. The jco pinned by the
/// fixture's `package.json` and installed under `target/jco` (as `.ci/run` does) comes first,
/// then a `jco` on the PATH. A jco that is there but fails to build the component is a failure.
fn js_component() -> Option<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("tests/fixtures/wasi-http-js");
    let pinned = root.join("target/jco/node_modules/.bin/jco");
    let jco = if pinned.exists() {
        pinned.into_os_string()
    } else {
        "jco".into()
    };
    let out = tempfile::tempdir().unwrap();
    let wasm = out.path().join("app.wasm");
    let built = std::process::Command::new(&jco)
        .arg("componentize")
        .arg(fixture.join("app.js"))
        .arg("--wit")
        .arg(fixture.join("wit"))
        .args(["--world-name", "app", "-o"])
        .arg(&wasm)
        .output();
    match built {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("running {jco:?}: {e}"),
        Ok(o) if !o.status.success() => panic!(
            "jco componentize failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => Some(std::fs::read(&wasm).expect("jco wrote the component")),
    }
}

/// Starts Trellis in `dir` and deploys `component` as the function `name` (2 s timeout,
/// 256 MB, `GREETING=hello`), reporting (not asserting) how long its build took and
/// CreateFunction's compile.
async fn deploy_component(
    dir: &Path,
    name: &str,
    component: &[u8],
    built: Duration,
) -> (Trellis, aws_sdk_lambda::Client) {
    let t = Trellis::start(dir, &[]);
    let c = lambda(&t);
    let started = std::time::Instant::now();
    let out = create_wasm(&c, name, component, 2, 256, &[("GREETING", "hello")])
        .await
        .expect("create the component function");
    assert_eq!(out.state(), Some(&State::Active));
    eprintln!(
        "{name}: build {built:?}; CreateFunction ({:.1} MB component) {:?}",
        component.len() as f64 / (1 << 20) as f64,
        started.elapsed()
    );
    (t, c)
}

/// One echo request through the data plane: method, path and query, headers and body in;
/// status, headers and body out, with no event translation; the function's GREETING variable;
/// then a status the handler chooses.
async fn assert_echoes(t: &Trellis, dns: &str, path: &str) {
    let r = send_body(
        t,
        "PUT",
        dns,
        path,
        &[("x-tenant", "acme"), ("content-type", "text/plain")],
        "hello, component",
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers["x-echo"], "wasi-http");
    assert_eq!(r.headers["content-type"], "application/json");
    let echo = r.json();
    assert_eq!(echo["method"], "PUT", "{echo}");
    assert_eq!(echo["path"], path);
    assert_eq!(echo["headers"]["x-tenant"], json!(["acme"]));
    assert_eq!(echo["body"], "hello, component");
    assert_eq!(echo["greeting"], "hello");
    let r = send_body(t, "GET", dns, "/status/418", &[], "").await;
    assert_eq!(r.status, 418);
    assert_eq!(&r.body[..], b"status 418");
}

/// What the echo components of `tests/fixtures/wasi-http-*` do beyond echoing, for function
/// `name` (timeout 2 s, GREETING=hello) served at `dns`: an endless loop is stopped at the
/// timeout through the data plane; through the Lambda Invoke API the payload is POSTed to `/`
/// as JSON and a 2xx body is the result, another status a function error carrying it, and a
/// loop a timeout with Lambda's shape.
async fn assert_stops_and_invokes(t: &Trellis, c: &aws_sdk_lambda::Client, name: &str, dns: &str) {
    // An endless loop is stopped at the function's timeout.
    let started = std::time::Instant::now();
    let r = send_body(t, "GET", dns, "/loop", &[], "").await;
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(started.elapsed() < Duration::from_secs(5));

    // The Lambda Invoke API: the payload POSTed to / as JSON, a 2xx body is the result.
    let (body, error, logs, _) = invoke(c, name, json!({"order": 7})).await;
    assert_eq!(error, None, "{body}");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/");
    assert_eq!(body["headers"]["content-type"], json!(["application/json"]));
    assert_eq!(
        serde_json::from_str::<Value>(body["body"].as_str().unwrap()).unwrap(),
        json!({"order": 7})
    );
    assert_eq!(body["greeting"], "hello");
    assert!(logs.contains("echo POST /"), "{logs}");
    assert!(logs.contains("REPORT RequestId:"), "{logs}");
    // Another status is a function error carrying it.
    let (err, error, _, _) = invoke(c, name, json!({"status": 503})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(err["errorType"], "HttpError", "{err}");
    assert_eq!(err["statusCode"], 503, "{err}");
    assert_eq!(err["body"], "status 503", "{err}");
    // A timeout has the Lambda timeout shape.
    let started = std::time::Instant::now();
    let (err, error, logs, _) = invoke(c, name, json!({"loop": true})).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(err["errorType"], "Sandbox.Timedout", "{err}");
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 2.00 seconds"),
        "{err}"
    );
    assert!(logs.contains("Task timed out after 2.00 seconds"), "{logs}");
}

/// One request with a body through the data plane.
async fn send_body(
    t: &Trellis,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let body = bytes::Bytes::from(body.to_string());
    send_with_body(&http_client(), t.listen, method, host, path, headers, body).await
}

/// A Lattice service whose listener forwards to a new target group of type `WASM` holding
/// `target`; returns the service's host name and the target group's id.
async fn wasm_service(t: &Trellis, name: &str, target: &str) -> (String, String) {
    use aws_sdk_vpclattice::types::{
        ForwardAction, ListenerProtocol, RuleAction, Target, TargetGroupType, WeightedTargetGroup,
    };
    let lattice = t.lattice();
    let tg = lattice
        .create_target_group()
        .name(format!("{name}-tg"))
        .r#type(TargetGroupType::from("WASM"))
        .send()
        .await
        .expect("create a WASM target group");
    assert_eq!(tg.r#type().map(|t| t.as_str()), Some("WASM"));
    let tg_id = tg.id().unwrap().to_string();
    let reg = lattice
        .register_targets()
        .target_group_identifier(&tg_id)
        .targets(Target::builder().id(target).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(reg.successful().len(), 1, "{reg:?}");
    let svc = lattice.create_service().name(name).send().await.unwrap();
    let dns = svc.dns_entry().unwrap().domain_name().unwrap().to_string();
    lattice
        .create_listener()
        .service_identifier(svc.id().unwrap())
        .name("http-80")
        .protocol(ListenerProtocol::Http)
        .port(80)
        .default_action(RuleAction::Forward(
            ForwardAction::builder()
                .target_groups(
                    WeightedTargetGroup::builder()
                        .target_group_identifier(&tg_id)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap();
    (dns, tg_id)
}

/// A Python `wasi:http` component (componentize-py) deployed with the Lambda API, served
/// through a `WASM` target group as plain HTTP, invoked through `Invoke`, stopped at its
/// timeout, refused outgoing HTTP; bad components are refused and the old code keeps serving.
#[tokio::test]
async fn wasm_http_components_serve_a_wasm_target_group() {
    let started = std::time::Instant::now();
    let Some(component) = python_component() else {
        tool_missing("componentize-py", "pip install componentize-py");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (t, c) = deploy_component(dir.path(), "pyhttp", &component, started.elapsed()).await;

    // Through the data plane: method, path and query, headers and body in; status, headers and
    // body out, with no event translation.
    let (dns, tg_id) = wasm_service(&t, "pyhttp", "pyhttp").await;
    assert_echoes(&t, &dns, "/orders/7?x=1&y=two").await;
    let targets = t
        .lattice()
        .list_targets()
        .target_group_identifier(&tg_id)
        .send()
        .await
        .unwrap();
    assert_eq!(targets.items().len(), 1);
    assert_eq!(targets.items()[0].id(), Some("pyhttp"));
    assert_eq!(
        targets.items()[0].status().map(|s| s.as_str()),
        Some("UNAVAILABLE")
    );

    // Outgoing HTTP is not granted: the guest's request is refused by the host.
    let r = send_body(&t, "GET", &dns, "/outgoing", &[], "").await;
    let said = String::from_utf8_lossy(&r.body);
    assert!(said.contains("HttpRequestDenied"), "{said}");

    // The body is streamed: its first part arrives while the handler still runs (it pauses
    // 1.5 s before the second), and a body beyond Lambda's 6 MB passes whole, either way.
    use http_body_util::BodyExt;
    let started = std::time::Instant::now();
    let req = http::Request::builder()
        .uri(format!("http://{}/stream", t.listen))
        .header(http::header::HOST, &dns)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = http_client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"first\n");
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"second\n");
    let all_at = started.elapsed();
    assert!(
        first_at < Duration::from_millis(1200) && all_at >= Duration::from_millis(1500),
        "first part after {first_at:?}, all after {all_at:?}"
    );
    let size = 8 << 20;
    let r = send_body(&t, "GET", &dns, &format!("/big/{size}"), &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), size);
    assert!(r.body.chunks(16).all(|c| c == b"0123456789abcdef"));
    // The request body streams into the guest too: more than Lambda's 6 MB goes in whole.
    let upload = "x".repeat(7 << 20);
    let r = send_body(&t, "POST", &dns, "/upload", &[], &upload).await;
    assert_eq!(r.status, 200);
    let echo: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(echo["body"].as_str().map(str::len), Some(upload.len()));

    assert_stops_and_invokes(&t, &c, "pyhttp", &dns).await;

    // Bad components are refused with the reason; the previous code keeps serving.
    let empty_component = b"\0asm\x0d\0\x01\0";
    let e = create_wasm(&c, "nohandler", empty_component, 2, 128, &[])
        .await
        .expect_err("a component without the handler is refused");
    assert_eq!(e.code(), Some("InvalidParameterValueException"));
    assert!(
        e.message()
            .unwrap()
            .contains("does not export wasi:http/incoming-handler"),
        "{e:?}"
    );
    let e = c
        .update_function_code()
        .function_name("pyhttp")
        .zip_file(Blob::new(zip(&[(
            "function.wasm",
            0o100644,
            b"\0asm\x0d\0\x01\0\x99\x99",
        )])))
        .send()
        .await
        .expect_err("an invalid component is refused");
    assert_eq!(e.code(), Some("InvalidParameterValueException"));
    assert!(
        e.message()
            .unwrap()
            .contains("not a valid WebAssembly component"),
        "{e:?}"
    );
    let r = send_body(&t, "POST", &dns, "/again", &[], "still here").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body"], "still here");

    // A preview-1 module in a WASM group gets the Lattice event, as in a LAMBDA group: the
    // echo module answers with the event's fields, so its `body` is the response body.
    let module = create_wasm(&c, "wmodule", &wasm_fixture("echo"), 3, 128, &[])
        .await
        .unwrap();
    let (dns, _) = wasm_service(&t, "wmodule", module.function_arn().unwrap()).await;
    let r = send_body(&t, "POST", &dns, "/m?k=v", &[], "event body").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"event body");
}

/// A JavaScript `wasi:http` component (jco, componentize-js: StarlingMonkey's fetch event,
/// `wasi:http@0.2.10` on a 0.2.12 host) deployed with the Lambda API, served through a `WASM`
/// target group, invoked through `Invoke`, stopped at its timeout, refused outgoing HTTP.
#[tokio::test]
async fn wasm_http_components_built_with_jco() {
    let started = std::time::Instant::now();
    let Some(component) = js_component() else {
        tool_missing(
            "jco",
            "npm install --prefix target/jco (with tests/fixtures/wasi-http-js/package.json there)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (t, c) = deploy_component(dir.path(), "jshttp", &component, started.elapsed()).await;

    // Through the data plane, twice: every request gets a fresh instance, so the fetch event
    // (which answers once per instance) answers each.
    let (dns, _) = wasm_service(&t, "jshttp", "jshttp").await;
    for n in 0..2 {
        assert_echoes(&t, &dns, &format!("/orders/{n}?x=1&y=two")).await;
    }

    // Outgoing HTTP is not granted: the host refuses the guest's request, which StarlingMonkey's
    // fetch reports as a rejected promise (a TypeError, without the wasi:http error code).
    let r = send_body(&t, "GET", &dns, "/outgoing", &[], "").await;
    let said = String::from_utf8_lossy(&r.body);
    assert!(said.starts_with("refused: TypeError"), "{said}");

    assert_stops_and_invokes(&t, &c, "jshttp", &dns).await;

    // The stopped guest left nothing behind: the next request is answered.
    let r = send_body(&t, "POST", &dns, "/again", &[], "still here").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["body"], "still here");
}

/// `InvokeWithResponseStream` through the SDK: the events it received (payload bytes in order,
/// and the `InvokeComplete` event), with when each payload chunk arrived.
async fn invoke_streaming(
    c: &aws_sdk_lambda::Client,
    name: &str,
    payload: Value,
) -> (
    Vec<(std::time::Instant, Vec<u8>)>,
    aws_sdk_lambda::types::InvokeWithResponseStreamCompleteEvent,
    Option<String>,
) {
    use aws_sdk_lambda::types::InvokeWithResponseStreamResponseEvent as Event;
    let mut out = c
        .invoke_with_response_stream()
        .function_name(name)
        .payload(Blob::new(payload.to_string()))
        .log_type(LogType::Tail)
        .send()
        .await
        .expect("invoke with response stream");
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.executed_version(), Some("$LATEST"));
    let content_type = out.response_stream_content_type().map(str::to_string);
    let mut chunks = Vec::new();
    loop {
        match out.event_stream.recv().await.expect("a well-formed event") {
            Some(Event::PayloadChunk(c)) => chunks.push((
                std::time::Instant::now(),
                c.payload().expect("chunk payload").as_ref().to_vec(),
            )),
            Some(Event::InvokeComplete(done)) => {
                assert!(
                    out.event_stream.recv().await.unwrap().is_none(),
                    "InvokeComplete is the last event"
                );
                return (chunks, done, content_type);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}

#[tokio::test]
async fn invoke_with_response_stream() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = lambda(&t);
    create(&c, "streamer", 10, &[]).await;

    // A function that streams: its pieces arrive as it writes them, then the end.
    let (chunks, done, content_type) = invoke_streaming(
        &c,
        "streamer",
        json!({"stream": ["first ", "second ", "third"], "gap_ms": 1500}),
    )
    .await;
    let first_at = chunks
        .iter()
        .find(|(_, c)| c.ends_with(b"first "))
        .map(|(at, _)| *at)
        .expect("the first piece");
    let last_at = chunks.last().unwrap().0;
    assert!(
        last_at.duration_since(first_at) >= Duration::from_secs(2),
        "the first piece came as soon as it was written, not with the last"
    );
    let bytes: Vec<u8> = chunks.into_iter().flat_map(|(_, c)| c).collect();
    // lambda_runtime writes an HTTP metadata prelude and eight NULs before the body, and
    // posts it as `application/vnd.awslambda.http-integration-response`: Lambda passes both on.
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.ends_with("\0\0\0\0\0\0\0\0first second third"),
        "{text:?}"
    );
    assert!(text.starts_with(r#"{"statusCode":200"#), "{text:?}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/vnd.awslambda.http-integration-response")
    );
    assert_eq!(done.error_code(), None);
    let logs = String::from_utf8(trellis_core_base64_decode(done.log_result().unwrap())).unwrap();
    assert!(logs.contains("REPORT RequestId:"), "{logs}");

    // The same function answering whole: its response in one chunk.
    let (chunks, done, _) = invoke_streaming(&c, "streamer", json!({"hello": 1})).await;
    assert_eq!(chunks.len(), 1);
    let body: Value = serde_json::from_slice(&chunks[0].1).unwrap();
    assert_eq!(body["event"]["hello"], 1);
    assert_eq!(done.error_code(), None);

    // A function error ends the stream with the error's type and message.
    let (chunks, done, _) = invoke_streaming(&c, "streamer", json!({"fail": "boom"})).await;
    assert!(chunks.is_empty());
    assert!(done.error_code().is_some_and(|e| !e.is_empty()));
    assert_eq!(done.error_details(), Some("boom"));

    // A plain Invoke of a streaming function gets the streamed bytes whole.
    let out = c
        .invoke()
        .function_name("streamer")
        .payload(Blob::new(json!({"stream": ["a", "b"]}).to_string()))
        .send()
        .await
        .expect("invoke");
    assert!(out.payload().unwrap().as_ref().ends_with(b"\0ab"));
    assert_eq!(out.function_error(), None);

    // Errors before the function runs are the API's errors.
    let e = c
        .invoke_with_response_stream()
        .function_name("no-such-function")
        .send()
        .await
        .expect_err("an unknown function");
    assert_eq!(
        e.as_service_error().and_then(|e| e.code()),
        Some("ResourceNotFoundException")
    );
    let dry = c
        .invoke_with_response_stream()
        .function_name("streamer")
        .invocation_type(aws_sdk_lambda::types::ResponseStreamingInvocationType::DryRun)
        .send()
        .await
        .expect("dry run");
    assert_eq!(dry.status_code(), 204);
    // Only RequestResponse and DryRun stream; the model's other values are refused.
    let e = c
        .invoke_with_response_stream()
        .function_name("streamer")
        .invocation_type(aws_sdk_lambda::types::ResponseStreamingInvocationType::from("Event"))
        .send()
        .await
        .expect_err("Event is not a streaming invocation type");
    assert_eq!(
        e.as_service_error().and_then(|e| e.code()),
        Some("ValidationException")
    );
}
