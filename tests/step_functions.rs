//! End-to-end: the Step Functions API through `aws-sdk-sfn` against the built binary —
//! state machines, STANDARD executions and their history, Wait states, AWS errors, EXPRESS
//! `StartSyncExecution`, RedriveExecution, and a STANDARD execution surviving `kill -9`
//! mid-wait.

mod common;

use std::time::Duration;

use aws_sdk_sfn::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_sfn::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sfn::error::BoxError;
use aws_sdk_sfn::types::{
    ExecutionRedriveFilter, ExecutionRedriveStatus, ExecutionStatus, HistoryEventType,
    StateMachineType,
};
use common::Trellis;
use serde_json::{json, Value};

const ROLE: &str = "arn:aws:iam::000000000000:role/trellis-test";

/// Undoes the `sync-` host prefix the SDK puts on StartSyncExecution (and TestState).
///
/// The AWS SDK for Rust has no switch like boto3's `inject_host_prefix=False`: for those two
/// operations it sends to `sync-<endpoint host>`, which does not resolve for `127.0.0.1`.
/// This interceptor strips the prefix again before the request is signed; Trellis accepts the
/// request whatever its `Host`.
#[derive(Debug)]
struct NoHostPrefix;

impl Intercept for NoHostPrefix {
    fn name(&self) -> &'static str {
        "NoHostPrefix"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request_mut();
        let uri = req.uri().to_string();
        if let Some(rest) = uri.strip_prefix("http://sync-") {
            req.set_uri(format!("http://{rest}"))?;
        }
        Ok(())
    }
}

/// An AWS SDK for Rust client of Step Functions pointed at `t`.
fn sfn(t: &Trellis) -> aws_sdk_sfn::Client {
    let config = aws_sdk_sfn::Config::builder()
        .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
        .region(aws_sdk_sfn::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sfn::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .endpoint_url(t.endpoint())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .interceptor(NoHostPrefix)
        .build();
    aws_sdk_sfn::Client::from_conf(config)
}

async fn create(c: &aws_sdk_sfn::Client, name: &str, def: Value, ty: StateMachineType) -> String {
    c.create_state_machine()
        .name(name)
        .definition(def.to_string())
        .role_arn(ROLE)
        .r#type(ty)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e:?}"))
        .state_machine_arn()
        .to_string()
}

/// Polls DescribeExecution until the execution leaves RUNNING.
async fn finished(
    c: &aws_sdk_sfn::Client,
    arn: &str,
    limit: Duration,
) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let d = c
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .expect("describe execution");
        if *d.status() != ExecutionStatus::Running {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{arn} still running after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn history(c: &aws_sdk_sfn::Client, arn: &str) -> Vec<aws_sdk_sfn::types::HistoryEvent> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .get_execution_history()
            .execution_arn(arn)
            .max_results(4)
            .set_next_token(token)
            .send()
            .await
            .expect("history");
        all.extend(page.events().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return all;
        }
    }
}

fn entered_names(events: &[aws_sdk_sfn::types::HistoryEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .map(|d| d.name().to_string())
        .collect()
}

#[tokio::test]
async fn standard_execution_output_history_and_wait() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    let sm = create(
        &c,
        "greeter",
        json!({"StartAt": "Greet", "States": {
            "Greet": {"Type": "Pass",
                      "Parameters": {"greeting.$": "States.Format('hello {}', $.name)"},
                      "Next": "Pause"},
            "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
            "Done": {"Type": "Succeed"}}}),
        StateMachineType::Standard,
    )
    .await;
    assert_eq!(
        sm,
        "arn:aws:states:us-east-1:000000000000:stateMachine:greeter"
    );
    let d = c
        .describe_state_machine()
        .state_machine_arn(&sm)
        .send()
        .await
        .unwrap();
    assert_eq!(d.name(), "greeter");
    assert_eq!(*d.r#type(), StateMachineType::Standard);

    let started = std::time::Instant::now();
    let run = c
        .start_execution()
        .state_machine_arn(&sm)
        .name("first")
        .input(r#"{"name": "ada"}"#)
        .send()
        .await
        .unwrap();
    let arn = run.execution_arn().to_string();
    assert_eq!(
        arn,
        "arn:aws:states:us-east-1:000000000000:execution:greeter:first"
    );
    let d = finished(&c, &arn, Duration::from_secs(10)).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the Wait state waited"
    );
    let out: Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(out, json!({"greeting": "hello ada"}));

    let events = history(&c, &arn).await;
    let types: Vec<HistoryEventType> = events.iter().map(|e| e.r#type().clone()).collect();
    use HistoryEventType as T;
    assert_eq!(
        types,
        [
            T::ExecutionStarted,
            T::PassStateEntered,
            T::PassStateExited,
            T::WaitStateEntered,
            T::WaitStateExited,
            T::SucceedStateEntered,
            T::SucceedStateExited,
            T::ExecutionSucceeded,
        ]
    );
    let ids: Vec<i64> = events.iter().map(|e| e.id()).collect();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
    let reversed = c
        .get_execution_history()
        .execution_arn(&arn)
        .reverse_order(true)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        *reversed.events()[0].r#type(),
        HistoryEventType::ExecutionSucceeded
    );
    assert!(reversed.next_token().is_some());

    let list = c
        .list_executions()
        .state_machine_arn(&sm)
        .send()
        .await
        .unwrap();
    assert_eq!(list.executions().len(), 1);
    assert_eq!(list.executions()[0].name(), "first");
    let for_exec = c
        .describe_state_machine_for_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(for_exec.name(), "greeter");

    // The same name again after it finished: ExecutionAlreadyExists.
    let err = c
        .start_execution()
        .state_machine_arn(&sm)
        .name("first")
        .input(r#"{"name": "ada"}"#)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_execution_already_exists(), "{err:?}");
}

#[tokio::test]
async fn aws_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    let err = c
        .create_state_machine()
        .name("broken")
        .definition(r#"{"StartAt": "Nowhere", "States": {"A": {"Type": "Pass", "End": true}}}"#)
        .role_arn(ROLE)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_definition(), "{err:?}");
    assert!(
        err.meta()
            .message()
            .unwrap()
            .starts_with("Invalid State Machine Definition: "),
        "{err:?}"
    );
    let v = c
        .validate_state_machine_definition()
        .definition(r#"{"StartAt": "Nowhere", "States": {"A": {"Type": "Pass", "End": true}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(v.result().as_str(), "FAIL");
    assert!(!v.diagnostics().is_empty());

    let err = c
        .describe_state_machine()
        .state_machine_arn("arn:aws:states:us-east-1:000000000000:stateMachine:missing")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_state_machine_does_not_exist(), "{err:?}");
    let err = c
        .describe_execution()
        .execution_arn("not-an-arn")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_arn(), "{err:?}");
    let err = c
        .send_task_success()
        .task_token("no-such-token")
        .output("{}")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_task_does_not_exist(), "{err:?}");

    // A Task on a function nobody registered fails with Lambda's error.
    let sm = create(
        &c,
        "calls-nothing",
        json!({"StartAt": "Call", "States": {"Call": {"Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "absent", "Payload.$": "$"}, "End": true}}}),
        StateMachineType::Standard,
    )
    .await;
    let run = c
        .start_execution()
        .state_machine_arn(&sm)
        .send()
        .await
        .unwrap();
    let d = finished(&c, run.execution_arn(), Duration::from_secs(10)).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("Lambda.ResourceNotFoundException"));
}

#[tokio::test]
async fn express_start_sync_execution() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    let sm = create(
        &c,
        "adder",
        json!({"StartAt": "Add", "States": {"Add": {"Type": "Pass",
            "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"}, "End": true}}}),
        StateMachineType::Express,
    )
    .await;
    let out = c
        .start_sync_execution()
        .state_machine_arn(&sm)
        .input(r#"{"a": 40, "b": 2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        *out.status(),
        aws_sdk_sfn::types::SyncExecutionStatus::Succeeded
    );
    assert_eq!(
        serde_json::from_str::<Value>(out.output().unwrap()).unwrap(),
        json!({"sum": 42})
    );
    assert!(out.execution_arn().contains(":express:adder:"));

    let failing = create(
        &c,
        "fails",
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "on purpose"}}}),
        StateMachineType::Express,
    )
    .await;
    let out = c
        .start_sync_execution()
        .state_machine_arn(&failing)
        .send()
        .await
        .unwrap();
    assert_eq!(
        *out.status(),
        aws_sdk_sfn::types::SyncExecutionStatus::Failed
    );
    assert_eq!(out.error(), Some("Boom"));
    assert_eq!(out.cause(), Some("on purpose"));

    // STANDARD machines do not run synchronously.
    let standard = create(
        &c,
        "standard",
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
        StateMachineType::Standard,
    )
    .await;
    let err = c
        .start_sync_execution()
        .state_machine_arn(&standard)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_state_machine_type_not_supported(), "{err:?}");
}

#[tokio::test]
async fn standard_execution_survives_kill9_mid_wait() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    let sm = create(
        &c,
        "durable",
        json!({"StartAt": "Before", "States": {
            "Before": {"Type": "Pass", "Result": "done", "ResultPath": "$.before", "Next": "Sleep"},
            "Sleep": {"Type": "Wait", "Seconds": 3, "Next": "After"},
            "After": {"Type": "Pass", "Result": "done", "ResultPath": "$.after", "End": true}}}),
        StateMachineType::Standard,
    )
    .await;
    let run = c
        .start_execution()
        .state_machine_arn(&sm)
        .name("crash-me")
        .input(r#"{"id": 1}"#)
        .send()
        .await
        .unwrap();
    let arn = run.execution_arn().to_string();
    // Wait until the execution sits in the Wait state, then kill -9.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let events = history(&c, &arn).await;
        if events
            .iter()
            .any(|e| *e.r#type() == HistoryEventType::WaitStateEntered)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reached Wait");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.kill9();

    let t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    let d = finished(&c, &arn, Duration::from_secs(15)).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded);
    assert_eq!(
        serde_json::from_str::<Value>(d.output().unwrap()).unwrap(),
        json!({"id": 1, "before": "done", "after": "done"})
    );
    let events = history(&c, &arn).await;
    assert_eq!(entered_names(&events), ["Before", "Sleep", "After"]);
    let started = events
        .iter()
        .filter(|e| *e.r#type() == HistoryEventType::ExecutionStarted)
        .count();
    assert_eq!(started, 1);
    let ids: Vec<i64> = events.iter().map(|e| e.id()).collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    // The state machine itself survived too.
    let list = c.list_state_machines().send().await.unwrap();
    assert_eq!(list.state_machines().len(), 1);
}

#[tokio::test]
async fn task_integrations_targets_activities_and_child_executions() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    let child = create(
        &c,
        "doubler",
        json!({"StartAt": "Double", "States": {"Double": {"Type": "Pass",
            "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"}, "End": true}}}),
        StateMachineType::Standard,
    )
    .await;
    let activity = c
        .create_activity()
        .name("worker")
        .send()
        .await
        .unwrap()
        .activity_arn()
        .to_string();
    let parent = create(
        &c,
        "parent",
        json!({"StartAt": "ByTarget", "States": {
            // A state machine ARN as a Task resource: invoked through the target registry.
            "ByTarget": {"Type": "Task", "Resource": child, "ResultPath": "$.started", "Next": "Sync"},
            "Sync": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                     "Parameters": {"StateMachineArn": child, "Input": {"n.$": "$.n"}},
                     "ResultSelector": {"doubled.$": "$.Output.doubled", "status.$": "$.Status"},
                     "ResultPath": "$.sync", "Next": "Activity"},
            "Activity": {"Type": "Task", "Resource": activity, "TimeoutSeconds": 30,
                         "ResultPath": "$.activity", "End": true}}}),
        StateMachineType::Standard,
    )
    .await;
    let run = c
        .start_execution()
        .state_machine_arn(&parent)
        .input(r#"{"n": 21}"#)
        .send()
        .await
        .unwrap();
    // The activity worker: long-polls, then answers with the token.
    let task = c
        .get_activity_task()
        .activity_arn(&activity)
        .worker_name("test")
        .send()
        .await
        .unwrap();
    let token = task
        .task_token()
        .expect("a task for the worker")
        .to_string();
    let input: Value = serde_json::from_str(task.input().unwrap()).unwrap();
    assert_eq!(input["sync"]["doubled"], 42);
    c.send_task_heartbeat()
        .task_token(&token)
        .send()
        .await
        .unwrap();
    c.send_task_success()
        .task_token(&token)
        .output(r#"{"worked": true}"#)
        .send()
        .await
        .unwrap();
    let d = finished(&c, run.execution_arn(), Duration::from_secs(15)).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{d:?}");
    let out: Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(out["sync"], json!({"doubled": 42, "status": "SUCCEEDED"}));
    assert_eq!(out["activity"], json!({"worked": true}));
    let started = out["started"]["executionArn"].as_str().unwrap();
    assert!(started.starts_with("arn:aws:states:us-east-1:000000000000:execution:doubler:"));
    // A token is good once.
    let err = c
        .send_task_success()
        .task_token(&token)
        .output("{}")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_task_does_not_exist(), "{err:?}");
    let children = c
        .list_executions()
        .state_machine_arn(&child)
        .send()
        .await
        .unwrap();
    assert_eq!(children.executions().len(), 2);

    // TestState through the SDK (also sent to the `sync-` host prefix).
    let out = c
        .test_state()
        .definition(
            json!({"Type": "Pass", "Result": {"ok": true}, "Next": "Elsewhere"}).to_string(),
        )
        .input("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(out.next_state(), Some("Elsewhere"));
    assert_eq!(out.output(), Some(r#"{"ok":true}"#));
}

#[tokio::test]
async fn many_executions_survive_kill9_and_no_task_runs_twice() {
    const N: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    let child = create(
        &c,
        "leaf",
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
        StateMachineType::Standard,
    )
    .await;
    let sm = create(
        &c,
        "waits-then-calls",
        json!({"StartAt": "First", "States": {
            "First": {"Type": "Pass", "Next": "Sleep"},
            "Sleep": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Call"},
            "Call": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                     "Parameters": {"StateMachineArn": child, "Input.$": "$"},
                     "ResultPath": null, "Next": "Again"},
            "Again": {"Type": "Wait", "Seconds": 1, "Next": "Last"},
            "Last": {"Type": "Pass", "End": true}}}),
        StateMachineType::Standard,
    )
    .await;
    let mut arns = Vec::new();
    for i in 0..N {
        let run = c
            .start_execution()
            .state_machine_arn(&sm)
            .name(format!("run-{i}"))
            .input(json!({"i": i, "wait": 1 + i % 3}).to_string())
            .send()
            .await
            .unwrap();
        arns.push(run.execution_arn().to_string());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.kill9();

    let t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    for arn in &arns {
        let d = finished(&c, arn, Duration::from_secs(30)).await;
        assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{arn}");
        let events = history(&c, arn).await;
        assert_eq!(
            entered_names(&events),
            ["First", "Sleep", "Call", "Again", "Last"],
            "{arn}"
        );
        let ids: Vec<i64> = events.iter().map(|e| e.id()).collect();
        assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>(), "{arn}");
    }
    // One child per parent, even for tasks in flight at the kill.
    let mut children = 0;
    let mut token = None;
    loop {
        let page = c
            .list_executions()
            .state_machine_arn(&child)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        children += page.executions().len();
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(children, N);
}

/// A function whose `bootstrap` is a shell script speaking the Lambda Runtime API with curl:
/// it answers `{"echo": <event>}`, or reports `{"errorType": "Refused", …}` for events with
/// `"fail": true`.
const SHELL_BOOTSTRAP: &str = r#"#!/bin/sh
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
while true; do
  headers=$(mktemp)
  event=$(curl -sS -D "$headers" "$api/next")
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d: -f2 | tr -d '[:space:]')
  rm -f "$headers"
  case "$event" in
    *'"fail":true'*)
      curl -sS -X POST "$api/$id/error" -H 'Lambda-Runtime-Function-Error-Type: Refused' \
        -d '{"errorType":"Refused","errorMessage":"asked to fail"}' >/dev/null ;;
    *)
      curl -sS -X POST "$api/$id/response" -d "{\"echo\":$event}" >/dev/null ;;
  esac
done
"#;

/// A zip of one executable file, stored, with Unix modes (as `cargo lambda` packs).
fn zip_one(name: &str, data: &[u8]) -> Vec<u8> {
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
    let crc = !crc;
    let header = |central: bool| {
        let mut h = Vec::new();
        let sig: u32 = if central { 0x0201_4b50 } else { 0x0403_4b50 };
        h.extend_from_slice(&sig.to_le_bytes());
        if central {
            h.extend_from_slice(&0x0314u16.to_le_bytes()); // made by: Unix
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
            h.extend_from_slice(&(0o100755u32 << 16).to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes()); // the local header's offset
        }
        h.extend_from_slice(name.as_bytes());
        h
    };
    let mut out = header(false);
    out.extend_from_slice(data);
    let central = header(true);
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[tokio::test]
async fn tasks_invoke_a_real_function() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let lambda = {
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .endpoint_url(t.endpoint())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_lambda::Client::from_conf(config)
    };
    lambda
        .create_function()
        .function_name("echo")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .role("arn:aws:iam::000000000000:role/lambda-role")
        .handler("bootstrap")
        .timeout(10)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip_one(
                    "bootstrap",
                    SHELL_BOOTSTRAP.as_bytes(),
                )))
                .build(),
        )
        .send()
        .await
        .expect("create function");

    let c = sfn(&t);
    let sm = create(
        &c,
        "calls-echo",
        json!({"StartAt": "ByArn", "States": {
            "ByArn": {"Type": "Task",
                      "Resource": "arn:aws:lambda:us-east-1:000000000000:function:echo",
                      "Parameters": {"x.$": "$.x"}, "ResultPath": "$.direct", "Next": "ByInvoke"},
            "ByInvoke": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                         "Parameters": {"FunctionName": "echo", "Payload": {"y.$": "$.x"}},
                         "ResultSelector": {"payload.$": "$.Payload", "status.$": "$.StatusCode"},
                         "ResultPath": "$.invoked", "Next": "Fails"},
            "Fails": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Parameters": {"FunctionName": "echo", "Payload": {"fail": true}},
                      "Catch": [{"ErrorEquals": ["Refused"], "ResultPath": "$.caught", "Next": "Done"}],
                      "End": true},
            "Done": {"Type": "Succeed"}}}),
        StateMachineType::Standard,
    )
    .await;
    let run = c
        .start_execution()
        .state_machine_arn(&sm)
        .input(r#"{"x": 7}"#)
        .send()
        .await
        .unwrap();
    let d = finished(&c, run.execution_arn(), Duration::from_secs(30)).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{d:?}");
    let out: Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(out["direct"], json!({"echo": {"x": 7}}));
    assert_eq!(
        out["invoked"],
        json!({"payload": {"echo": {"y": 7}}, "status": 200})
    );
    assert_eq!(out["caught"]["Error"], "Refused", "{out}");
    let cause: Value = serde_json::from_str(out["caught"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(cause["errorMessage"], "asked to fail", "{out}");

    let types: Vec<HistoryEventType> = history(&c, run.execution_arn())
        .await
        .iter()
        .map(|e| e.r#type().clone())
        .collect();
    use HistoryEventType as T;
    assert!(types.contains(&T::LambdaFunctionSucceeded), "{types:?}");
    assert!(types.contains(&T::TaskSucceeded), "{types:?}");
    assert!(types.contains(&T::TaskFailed), "{types:?}");
}

#[tokio::test]
async fn events_and_workflows_drive_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    let events = {
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
            .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .endpoint_url(t.endpoint())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_eventbridge::Client::from_conf(config)
    };
    // A rule on the default bus starts `on-order` for every OrderPlaced event.
    let on_order = create(
        &c,
        "on-order",
        json!({"StartAt": "Take", "States": {"Take": {"Type": "Pass",
            "Parameters": {"order.$": "$.detail.order", "source.$": "$.source"}, "End": true}}}),
        StateMachineType::Standard,
    )
    .await;
    events
        .put_rule()
        .name("orders")
        .event_pattern(json!({"source": ["shop"], "detail-type": ["OrderPlaced"]}).to_string())
        .send()
        .await
        .expect("put rule");
    let put = events
        .put_targets()
        .rule("orders")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("workflow")
                .arn(&on_order)
                .role_arn(ROLE)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("put targets");
    assert_eq!(put.failed_entry_count(), 0);

    // A workflow emits the event with the putEvents integration.
    let emitter = create(
        &c,
        "emitter",
        json!({"StartAt": "Emit", "States": {"Emit": {"Type": "Task",
            "Resource": "arn:aws:states:::events:putEvents",
            "Parameters": {"Entries": [{"Source": "shop", "DetailType": "OrderPlaced",
                                        "Detail": {"order.$": "$.order"}}]},
            "End": true}}}),
        StateMachineType::Standard,
    )
    .await;
    let run = c
        .start_execution()
        .state_machine_arn(&emitter)
        .input(r#"{"order": 42}"#)
        .send()
        .await
        .unwrap();
    let d = finished(&c, run.execution_arn(), Duration::from_secs(10)).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{d:?}");
    let out: Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(out["FailedEntryCount"], 0, "{out}");
    assert!(out["Entries"][0]["EventId"].is_string(), "{out}");

    let started = common::eventually(Duration::from_secs(10), || async {
        let list = c
            .list_executions()
            .state_machine_arn(&on_order)
            .send()
            .await
            .unwrap();
        list.executions().len() == 1
    })
    .await;
    assert!(started, "the rule started the workflow");
    let list = c
        .list_executions()
        .state_machine_arn(&on_order)
        .send()
        .await
        .unwrap();
    let d = finished(
        &c,
        list.executions()[0].execution_arn(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(d.output().unwrap()).unwrap(),
        json!({"order": 42, "source": "shop"})
    );
}

#[tokio::test]
async fn http_task_calls_an_api_through_an_eventbridge_connection() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    let events = aws_client!(aws_sdk_eventbridge, &t);
    let upstream = common::Echo::start("orders-api").await;
    let conn = events
        .create_connection()
        .name("orders")
        .authorization_type(aws_sdk_eventbridge::types::ConnectionAuthorizationType::ApiKey)
        .auth_parameters(
            aws_sdk_eventbridge::types::CreateConnectionAuthRequestParameters::builder()
                .api_key_auth_parameters(
                    aws_sdk_eventbridge::types::CreateConnectionApiKeyAuthRequestParameters::builder()
                        .api_key_name("x-api-key")
                        .api_key_value("s3cret")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .expect("create connection");
    let conn_arn = conn.connection_arn().unwrap().to_string();

    // JSONPath parameters; the non-2xx answer and the unreachable API are caught.
    let sm = create(
        &c,
        "call-orders",
        json!({"StartAt": "Call", "States": {
            "Call": {"Type": "Task", "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {
                    "ApiEndpoint.$": "$.url",
                    "Method": "POST",
                    "Authentication": {"ConnectionArn": conn_arn},
                    "Headers": {"x-order-source": "sfn"},
                    "QueryParameters.$": "$.query",
                    "RequestBody": {"order.$": "$.order"}},
                "Catch": [{"ErrorEquals": ["States.Http.StatusCode.503", "States.Http.Socket"],
                           "ResultPath": "$.failure", "Next": "Failed"}],
                "End": true},
            "Failed": {"Type": "Pass", "End": true}}}),
        StateMachineType::Standard,
    )
    .await;
    let url = format!("http://{}/v1/orders", upstream.addr);
    let run = |input: Value| {
        let c = c.clone();
        let sm = sm.clone();
        async move {
            let started = c
                .start_execution()
                .state_machine_arn(&sm)
                .input(input.to_string())
                .send()
                .await
                .unwrap();
            finished(&c, started.execution_arn(), Duration::from_secs(20)).await
        }
    };

    let d = run(json!({"url": url, "query": {"ref": "a b"}, "order": 42})).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{d:?}");
    let out: Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(out["StatusCode"], 200, "{out}");
    assert_eq!(out["StatusText"], "OK");
    assert!(out["Headers"]["content-length"].is_array(), "{out}");
    // The echo upstream answers what it got (as text: it sends no content type).
    let echoed: Value = serde_json::from_str(out["ResponseBody"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/v1/orders");
    assert_eq!(echoed["headers"]["x-api-key"], "s3cret", "{echoed}");
    assert_eq!(echoed["headers"]["x-order-source"], "sfn");

    let d = run(json!({"url": url, "query": {"status": "503"}, "order": 1})).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{d:?}");
    let out: Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(
        out["failure"]["Error"], "States.Http.StatusCode.503",
        "{out}"
    );
    let cause: Value = serde_json::from_str(out["failure"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(cause["StatusCode"], 503);
    assert_eq!(cause["StatusText"], "Service Unavailable");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let d =
        run(json!({"url": format!("http://{closed}/v1/orders"), "query": {}, "order": 1})).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{d:?}");
    let out: Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(out["failure"]["Error"], "States.Http.Socket", "{out}");

    // JSONata arguments, and a connection that does not exist.
    let missing = conn_arn.replace("connection/orders/", "connection/gone/");
    let sm = create(
        &c,
        "call-missing",
        json!({"QueryLanguage": "JSONata", "StartAt": "Call", "States": {
            "Call": {"Type": "Task", "Resource": "arn:aws:states:::http:invoke",
                "Arguments": {"ApiEndpoint": "{% $states.input.url %}", "Method": "GET",
                              "Authentication": {"ConnectionArn": missing}},
                "End": true}}}),
        StateMachineType::Standard,
    )
    .await;
    let started = c
        .start_execution()
        .state_machine_arn(&sm)
        .input(json!({"url": url}).to_string())
        .send()
        .await
        .unwrap();
    let d = finished(&c, started.execution_arn(), Duration::from_secs(20)).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(
        d.error(),
        Some("Events.ConnectionResource.ResourceNotFound")
    );
    assert!(d.cause().unwrap().contains(&missing), "{d:?}");

    // AWS requires the connection at create time.
    let err = c
        .create_state_machine()
        .name("no-connection")
        .role_arn(ROLE)
        .definition(
            json!({"StartAt": "Call", "States": {"Call": {"Type": "Task",
                "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {"ApiEndpoint": "https://api.example.com", "Method": "GET"},
                "End": true}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_invalid_definition(), "{err:?}");
    assert!(
        err.to_string()
            .contains("The field 'Authentication' is required but was missing"),
        "{err}"
    );
}

#[tokio::test]
async fn versions_and_weighted_aliases() {
    use aws_sdk_sfn::types::RoutingConfigurationListItem as Route;
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    let pass = |result: &str| {
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": result, "End": true}}})
            .to_string()
    };
    let created = c
        .create_state_machine()
        .name("checkout")
        .role_arn(ROLE)
        .definition(pass("v1"))
        .publish(true)
        .version_description("first")
        .send()
        .await
        .unwrap();
    let sm = created.state_machine_arn().to_string();
    let v1 = created.state_machine_version_arn().unwrap().to_string();
    assert_eq!(v1, format!("{sm}:1"));
    let updated = c
        .update_state_machine()
        .state_machine_arn(&sm)
        .definition(pass("v2"))
        .send()
        .await
        .unwrap();
    let v2 = c
        .publish_state_machine_version()
        .state_machine_arn(&sm)
        .revision_id(updated.revision_id().unwrap())
        .description("second")
        .send()
        .await
        .unwrap()
        .state_machine_version_arn()
        .to_string();
    assert_eq!(v2, format!("{sm}:2"));
    let listed = c
        .list_state_machine_versions()
        .state_machine_arn(&sm)
        .send()
        .await
        .unwrap();
    let arns: Vec<&str> = listed
        .state_machine_versions()
        .iter()
        .map(|v| v.state_machine_version_arn())
        .collect();
    assert_eq!(arns, [v2.as_str(), v1.as_str()]);
    let d = c
        .describe_state_machine()
        .state_machine_arn(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(d.definition(), pass("v1"));
    assert_eq!(d.description(), Some("first"));

    let route = |arn: &str, weight: i32| {
        Route::builder()
            .state_machine_version_arn(arn)
            .weight(weight)
            .build()
            .unwrap()
    };
    // Weights must add up to 100.
    let err = c
        .create_state_machine_alias()
        .name("live")
        .routing_configuration(route(&v1, 50))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    let alias = c
        .create_state_machine_alias()
        .name("live")
        .description("half and half")
        .routing_configuration(route(&v1, 50))
        .routing_configuration(route(&v2, 50))
        .send()
        .await
        .unwrap()
        .state_machine_alias_arn()
        .to_string();
    assert_eq!(alias, format!("{sm}:live"));

    // An alias routes by weight; an execution reports the version and the alias.
    let mut outputs = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let run = c
            .start_execution()
            .state_machine_arn(&alias)
            .send()
            .await
            .unwrap();
        let d = finished(&c, run.execution_arn(), Duration::from_secs(10)).await;
        assert_eq!(d.state_machine_arn(), sm);
        assert_eq!(d.state_machine_alias_arn(), Some(alias.as_str()));
        let version = d.state_machine_version_arn().unwrap();
        let expected = if version == v1 { "\"v1\"" } else { "\"v2\"" };
        assert_eq!(d.output(), Some(expected), "{d:?}");
        // ExecutionStarted names the alias and the version it picked, as on AWS.
        let events = history(&c, run.execution_arn()).await;
        let started = events[0].execution_started_event_details().unwrap();
        assert_eq!(started.state_machine_alias_arn(), Some(alias.as_str()));
        assert_eq!(started.state_machine_version_arn(), Some(version));
        outputs.insert(version.to_string());
    }
    assert_eq!(outputs.len(), 2, "both versions serve the alias");

    // All traffic to version 1; then by the version ARN directly.
    c.update_state_machine_alias()
        .state_machine_alias_arn(&alias)
        .routing_configuration(route(&v1, 100))
        .send()
        .await
        .unwrap();
    let described = c
        .describe_state_machine_alias()
        .state_machine_alias_arn(&alias)
        .send()
        .await
        .unwrap();
    assert_eq!(described.routing_configuration().len(), 1);
    assert_eq!(described.description(), Some("half and half"));
    let run = c
        .start_execution()
        .state_machine_arn(&v2)
        .send()
        .await
        .unwrap();
    let d = finished(&c, run.execution_arn(), Duration::from_secs(10)).await;
    assert_eq!(d.output(), Some("\"v2\""));
    assert_eq!(d.state_machine_version_arn(), Some(v2.as_str()));
    assert_eq!(d.state_machine_alias_arn(), None);
    let events = history(&c, run.execution_arn()).await;
    let started = events[0].execution_started_event_details().unwrap();
    assert_eq!(started.state_machine_version_arn(), Some(v2.as_str()));
    assert_eq!(started.state_machine_alias_arn(), None);
    let through_v2 = c
        .list_executions()
        .state_machine_arn(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(through_v2.executions().len(), 1);

    // A version an alias routes to cannot be deleted; once unreferenced it can.
    let err = c
        .delete_state_machine_version()
        .state_machine_version_arn(&v1)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_conflict_exception(), "{err:?}");
    c.delete_state_machine_version()
        .state_machine_version_arn(&v2)
        .send()
        .await
        .unwrap();
    let aliases = c
        .list_state_machine_aliases()
        .state_machine_arn(&sm)
        .send()
        .await
        .unwrap();
    assert_eq!(aliases.state_machine_aliases().len(), 1);
    c.delete_state_machine_alias()
        .state_machine_alias_arn(&alias)
        .send()
        .await
        .unwrap();
    let err = c
        .describe_state_machine_alias()
        .state_machine_alias_arn(&alias)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found(), "{err:?}");
    c.delete_state_machine_version()
        .state_machine_version_arn(&v1)
        .send()
        .await
        .unwrap();

    // StartSyncExecution by version (EXPRESS).
    let express = c
        .create_state_machine()
        .name("quick")
        .role_arn(ROLE)
        .definition(pass("fast"))
        .r#type(StateMachineType::Express)
        .publish(true)
        .send()
        .await
        .unwrap();
    let out = c
        .start_sync_execution()
        .state_machine_arn(express.state_machine_version_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.output(), Some("\"fast\""));
}

/// A JSONata Pass state that fails (`States.QueryEvaluationError`) while the execution has
/// been redriven fewer than `n` times, and answers `ok` after.
fn fails_until_redriven(n: u32, next: Option<&str>) -> Value {
    let mut state = json!({
        "Type": "Pass",
        "QueryLanguage": "JSONata",
        "Output": format!("{{% $states.context.Execution.RedriveCount < {n} ? $error('not yet') : 'ok' %}}"),
    });
    match next {
        Some(n) => state["Next"] = json!(n),
        None => state["End"] = json!(true),
    }
    state
}

#[tokio::test]
async fn redrive_restarts_failed_executions_from_the_failed_states() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = sfn(&t);
    // Prep succeeds; the Parallel's branch B fails on the first attempt; the Map's second
    // item fails on the first redrive.
    let sm = create(
        &c,
        "redriven",
        json!({"StartAt": "Prep", "States": {
            "Prep": {"Type": "Pass", "Result": [1, 2, 3], "ResultPath": "$.items", "Next": "Fan"},
            "Fan": {"Type": "Parallel", "ResultPath": "$.fan", "Next": "Items", "Branches": [
                {"StartAt": "A1", "States": {"A1": {"Type": "Pass", "Result": "a", "End": true}}},
                {"StartAt": "B1", "States": {"B1": fails_until_redriven(1, None)}}
            ]},
            "Items": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": {
                "StartAt": "Item", "States": {"Item": {"Type": "Choice", "Choices": [
                    {"Variable": "$", "NumericEquals": 2, "Next": "Two"}], "Default": "Other"},
                    "Two": fails_until_redriven(2, None),
                    "Other": {"Type": "Pass", "End": true}}},
                "ResultPath": "$.results", "End": true}
        }}),
        StateMachineType::Standard,
    )
    .await;
    let run = c
        .start_execution()
        .state_machine_arn(&sm)
        .name("r1")
        .send()
        .await
        .unwrap();
    let arn = run.execution_arn().to_string();
    let d = finished(&c, &arn, Duration::from_secs(10)).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("States.QueryEvaluationError"));
    assert_eq!(d.redrive_count(), Some(0));
    assert_eq!(
        d.redrive_status(),
        Some(&ExecutionRedriveStatus::Redrivable)
    );
    assert_eq!(d.redrive_date(), None);

    // First redrive: the Parallel's failed branch runs again, then the Map fails on item 2.
    let first = c
        .redrive_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    let d = finished(&c, &arn, Duration::from_secs(10)).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.redrive_count(), Some(1));
    assert_eq!(d.redrive_date(), Some(first.redrive_date()));

    // Second redrive: only item 2 runs again; the execution succeeds with every result.
    c.redrive_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    let d = finished(&c, &arn, Duration::from_secs(10)).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{d:?}");
    assert_eq!(d.redrive_count(), Some(2));
    let output: Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(
        output,
        json!({"items": [1, 2, 3], "fan": ["a", "ok"], "results": [1, "ok", 3]})
    );
    assert_eq!(
        d.redrive_status(),
        Some(&ExecutionRedriveStatus::NotRedrivable)
    );
    assert_eq!(
        d.redrive_status_reason(),
        Some("Execution is SUCCEEDED and cannot be redriven")
    );

    // The history: two ExecutionRedriven events, and no state that succeeded ran again.
    let events = history(&c, &arn).await;
    let redriven: Vec<i32> = events
        .iter()
        .filter_map(|e| e.execution_redriven_event_details())
        .map(|d| d.redrive_count().unwrap_or_default())
        .collect();
    assert_eq!(redriven, vec![1, 2]);
    let names = entered_names(&events);
    let count = |n: &str| names.iter().filter(|x| *x == n).count();
    assert_eq!(count("Prep"), 1, "{names:?}");
    assert_eq!(count("Fan"), 1, "{names:?}");
    assert_eq!(count("A1"), 1, "{names:?}");
    assert_eq!(count("B1"), 2, "{names:?}");
    assert_eq!(count("Items"), 1, "{names:?}");
    assert_eq!(count("Two"), 2, "{names:?}");
    assert_eq!(count("Other"), 2, "items 1 and 3 ran once each: {names:?}");
    // Event ids stay one sequence across the attempts.
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.id(), i as i64 + 1);
    }
    let redriven_event = events
        .iter()
        .position(|e| *e.r#type() == HistoryEventType::ExecutionRedriven)
        .unwrap();
    assert_eq!(
        *events[redriven_event - 1].r#type(),
        HistoryEventType::ExecutionFailed
    );

    // A succeeded execution cannot be redriven, with AWS's reason as the message.
    let err = c
        .redrive_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_execution_not_redrivable(), "{err:?}");
    assert_eq!(
        err.meta().message(),
        Some("Execution is SUCCEEDED and cannot be redriven")
    );

    // ListExecutions: redriveCount on every item, and the redrive filter.
    let ok = c
        .start_execution()
        .state_machine_arn(&create(
            &c,
            "plain",
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": true}}}),
            StateMachineType::Standard,
        )
        .await)
        .send()
        .await
        .unwrap();
    let listed = c
        .list_executions()
        .state_machine_arn(&sm)
        .redrive_filter(ExecutionRedriveFilter::Redriven)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.executions().len(), 1);
    assert_eq!(listed.executions()[0].redrive_count(), Some(2));
    assert!(listed.executions()[0].redrive_date().is_some());
    let not_redriven = c
        .list_executions()
        .state_machine_arn(&sm)
        .redrive_filter(ExecutionRedriveFilter::NotRedriven)
        .send()
        .await
        .unwrap();
    assert!(not_redriven.executions().is_empty());

    // A running execution cannot be redriven; once stopped (ABORTED) it can, and it waits
    // again from its Wait state.
    let err = c
        .redrive_execution()
        .execution_arn(ok.execution_arn())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_execution_not_redrivable(), "{err:?}");
    assert_eq!(
        err.meta().message(),
        Some("Execution is RUNNING and cannot be redriven")
    );
    c.stop_execution()
        .execution_arn(ok.execution_arn())
        .send()
        .await
        .unwrap();
    c.redrive_execution()
        .execution_arn(ok.execution_arn())
        .send()
        .await
        .unwrap();
    let d = c
        .describe_execution()
        .execution_arn(ok.execution_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(*d.status(), ExecutionStatus::Running);
    assert_eq!(d.redrive_count(), Some(1));
    let names = entered_names(&history(&c, ok.execution_arn()).await);
    assert_eq!(names, vec!["W", "W"]);

    // Unknown executions and state machine ARNs, as AWS answers them.
    let err = c
        .redrive_execution()
        .execution_arn(format!(
            "{}:nope",
            sm.replace(":stateMachine:", ":execution:")
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_execution_does_not_exist(), "{err:?}");
    let err = c
        .redrive_execution()
        .execution_arn(&sm)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_arn(), "{err:?}");
}
