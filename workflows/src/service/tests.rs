//! The service over a real SQLite store, without the HTTP layer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use trellis_core::target::TargetRegistry;
use trellis_core::ArnContext;

use super::{start, StepFunctions};

async fn service(dir: &std::path::Path) -> Arc<StepFunctions> {
    let store = trellis_store::open(None, dir).unwrap();
    start(
        store,
        ArnContext::default(),
        Arc::new(TargetRegistry::default()),
    )
    .await
    .unwrap()
}

async fn create(sf: &StepFunctions, name: &str, def: Value, ty: &str) -> String {
    let out = sf
        .call_op(
            "CreateStateMachine",
            json!({"name": name, "definition": def.to_string(), "roleArn": "arn:aws:iam::000000000000:role/r", "type": ty}),
        )
        .await
        .unwrap();
    out["stateMachineArn"].as_str().unwrap().to_string()
}

async fn wait_done(sf: &StepFunctions, arn: &str) -> Value {
    for _ in 0..1200 {
        let d = sf
            .call_op("DescribeExecution", json!({"executionArn": arn}))
            .await
            .unwrap();
        if d["status"] != "RUNNING" {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("execution {arn} did not finish");
}

#[tokio::test]
async fn runs_a_standard_execution_and_records_history() {
    let dir = tempfile::tempdir().unwrap();
    let sf = service(dir.path()).await;
    let sm = create(
        &sf,
        "hello",
        json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.a", "Next": "W"},
            "W": {"Type": "Wait", "Seconds": 1, "Next": "B"},
            "B": {"Type": "Pass", "End": true}}}),
        "STANDARD",
    )
    .await;
    let out = sf
        .call_op(
            "StartExecution",
            json!({"stateMachineArn": sm, "name": "run-1", "input": "{\"n\":2}"}),
        )
        .await
        .unwrap();
    let arn = out["executionArn"].as_str().unwrap().to_string();
    assert_eq!(
        arn,
        "arn:aws:states:us-east-1:000000000000:execution:hello:run-1"
    );
    // Same name and input while running: the same execution.
    let again = sf
        .call_op(
            "StartExecution",
            json!({"stateMachineArn": sm, "name": "run-1", "input": "{\"n\":2}"}),
        )
        .await
        .unwrap();
    assert_eq!(again["executionArn"], arn.as_str());
    let d = wait_done(&sf, &arn).await;
    assert_eq!(d["status"], "SUCCEEDED");
    assert_eq!(
        serde_json::from_str::<Value>(d["output"].as_str().unwrap()).unwrap(),
        json!({"n": 2, "a": {"x": 1}})
    );
    let err = sf
        .call_op(
            "StartExecution",
            json!({"stateMachineArn": sm, "name": "run-1", "input": "{\"n\":2}"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "ExecutionAlreadyExists");
    let h = sf
        .call_op("GetExecutionHistory", json!({"executionArn": arn}))
        .await
        .unwrap();
    let types: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "WaitStateEntered",
            "WaitStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    let page = sf
        .call_op(
            "GetExecutionHistory",
            json!({"executionArn": arn, "reverseOrder": true, "maxResults": 3}),
        )
        .await
        .unwrap();
    assert_eq!(page["events"][0]["type"], "ExecutionSucceeded");
    let token = page["nextToken"].as_str().unwrap();
    let page2 = sf
        .call_op(
            "GetExecutionHistory",
            json!({"executionArn": arn, "reverseOrder": true, "maxResults": 3, "nextToken": token}),
        )
        .await
        .unwrap();
    assert_eq!(page2["events"][0]["type"], "WaitStateExited");
    let list = sf
        .call_op("ListExecutions", json!({"stateMachineArn": sm}))
        .await
        .unwrap();
    assert_eq!(list["executions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn errors_have_aws_codes() {
    let dir = tempfile::tempdir().unwrap();
    let sf = service(dir.path()).await;
    let e = sf
        .call_op(
            "CreateStateMachine",
            json!({"name": "bad", "definition": "{\"StartAt\": \"X\", \"States\": {}}", "roleArn": "arn:aws:iam::000000000000:role/r"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidDefinition");
    let e = sf
        .call_op("DescribeStateMachine", json!({"stateMachineArn": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidArn");
    let e = sf
        .call_op(
            "DescribeStateMachine",
            json!({"stateMachineArn": "arn:aws:states:us-east-1:000000000000:stateMachine:none"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "StateMachineDoesNotExist");
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
    create(&sf, "dup", def.clone(), "STANDARD").await;
    let e = sf
        .call_op(
            "CreateStateMachine",
            json!({"name": "dup", "definition": json!({"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}).to_string(), "roleArn": "arn:aws:iam::000000000000:role/r"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "StateMachineAlreadyExists");
    let e = sf
        .call_op(
            "SendTaskSuccess",
            json!({"taskToken": "nope", "output": "{}"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "TaskDoesNotExist");
}

/// Malformed execution input is rejected with the texts AWS returned (recorded by
/// LocalStack's `test_sfn_api::test_invalid_start_execution_input`).
#[tokio::test]
async fn invalid_execution_input_uses_aws_parser_messages() {
    let dir = tempfile::tempdir().unwrap();
    let sf = service(dir.path()).await;
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
    let sm = create(&sf, "inputs", def, "STANDARD").await;
    for (input, want) in [
        (
            "not a json",
            "Invalid State Machine Execution Input: 'Unrecognized token 'not': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')'",
        ),
        (
            "{'not': 'json'}",
            "Invalid State Machine Execution Input: 'Unexpected character (''' (code 39)): was expecting double-quote to start field name'",
        ),
    ] {
        let e = sf
            .call_op("StartExecution", json!({"stateMachineArn": sm, "input": input}))
            .await
            .unwrap_err();
        assert_eq!(e.code, "InvalidExecutionInput");
        assert_eq!(e.message, want);
    }
}

#[tokio::test]
async fn express_sync_and_task_tokens_and_child_executions() {
    let dir = tempfile::tempdir().unwrap();
    let sf = service(dir.path()).await;
    let child = create(
        &sf,
        "child",
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"got.$": "$.v"}, "End": true}}}),
        "STANDARD",
    )
    .await;
    let express = create(
        &sf,
        "fast",
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"}, "End": true}}}),
        "EXPRESS",
    )
    .await;
    let out = sf
        .call_op(
            "StartSyncExecution",
            json!({"stateMachineArn": express, "input": "{\"a\":1,\"b\":2}"}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "SUCCEEDED");
    assert_eq!(out["output"], "{\"sum\":3}");
    let parent = create(
        &sf,
        "parent",
        json!({"StartAt": "Child", "States": {
            "Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                      "Parameters": {"StateMachineArn": child, "Input": {"v": 7}},
                      "OutputPath": "$.Output", "Next": "Wait"},
            "Wait": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.waitForTaskToken",
                     "Parameters": {"StateMachineArn": child, "Input": {"v.$": "$$.Task.Token"}},
                     "ResultPath": "$.token", "End": true}}}),
        "STANDARD",
    )
    .await;
    let run = sf
        .call_op("StartExecution", json!({"stateMachineArn": parent}))
        .await
        .unwrap();
    let arn = run["executionArn"].as_str().unwrap().to_string();
    // The waitForTaskToken child echoes the token; find it and answer.
    let mut token = None;
    for _ in 0..100 {
        let list = sf
            .call_op(
                "ListExecutions",
                json!({"stateMachineArn": child, "statusFilter": "SUCCEEDED"}),
            )
            .await
            .unwrap();
        for e in list["executions"].as_array().unwrap() {
            let d = sf
                .call_op(
                    "DescribeExecution",
                    json!({"executionArn": e["executionArn"]}),
                )
                .await
                .unwrap();
            let o: Value = serde_json::from_str(d["output"].as_str().unwrap()).unwrap();
            if let Some(t) = o["got"].as_str() {
                token = Some(t.to_string());
            }
        }
        if token.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = token.expect("the child saw the task token");
    sf.call_op(
        "SendTaskSuccess",
        json!({"taskToken": token, "output": "{\"ok\":true}"}),
    )
    .await
    .unwrap();
    let d = wait_done(&sf, &arn).await;
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    let out: Value = serde_json::from_str(d["output"].as_str().unwrap()).unwrap();
    assert_eq!(out, json!({"got": 7, "token": {"ok": true}}));
}

#[tokio::test]
async fn resumes_after_restart_without_rerunning_states() {
    let dir = tempfile::tempdir().unwrap();
    let arn;
    {
        let sf = service(dir.path()).await;
        let sm = create(
            &sf,
            "slow",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Next": "W"},
                "W": {"Type": "Wait", "Seconds": 1, "Next": "B"},
                "B": {"Type": "Pass", "End": true}}}),
            "STANDARD",
        )
        .await;
        let out = sf
            .call_op(
                "StartExecution",
                json!({"stateMachineArn": sm, "name": "r"}),
            )
            .await
            .unwrap();
        arn = out["executionArn"].as_str().unwrap().to_string();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The service is abandoned mid-wait (its timer loop keeps it alive in this
        // runtime, but a second instance over the same store must take over).
    }
    let sf = service(dir.path()).await;
    let d = wait_done(&sf, &arn).await;
    assert_eq!(d["status"], "SUCCEEDED");
    let h = sf
        .call_op("GetExecutionHistory", json!({"executionArn": arn}))
        .await
        .unwrap();
    let entered: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().ends_with("Entered"))
        .map(|e| e["stateEnteredEventDetails"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(entered, ["A", "W", "B"]);
}

#[tokio::test]
async fn redrive_survives_a_restart_and_repeats_for_the_same_client_token() {
    let dir = tempfile::tempdir().unwrap();
    let arn;
    {
        let sf = service(dir.path()).await;
        // Times out in its Wait state; a redrive gives it its full 1 s again.
        let sm = create(
            &sf,
            "late",
            json!({"TimeoutSeconds": 1, "StartAt": "A", "States": {
                "A": {"Type": "Pass", "Next": "W"},
                "W": {"Type": "Wait", "SecondsPath": "$$.Execution.RedriveCount", "Next": "Z"},
                "Z": {"Type": "Wait", "Seconds": 5, "Next": "B"},
                "B": {"Type": "Pass", "End": true}}}),
            "STANDARD",
        )
        .await;
        let out = sf
            .call_op(
                "StartExecution",
                json!({"stateMachineArn": sm, "name": "t"}),
            )
            .await
            .unwrap();
        arn = out["executionArn"].as_str().unwrap().to_string();
        let d = wait_done(&sf, &arn).await;
        assert_eq!(d["status"], "TIMED_OUT");
        assert_eq!(d["redriveStatus"], "REDRIVABLE");
    }
    // After a restart the stored execution is still redrivable.
    let sf = service(dir.path()).await;
    let redrive = json!({"executionArn": arn, "clientToken": "token-1"});
    let first = sf
        .call_op("RedriveExecution", redrive.clone())
        .await
        .unwrap();
    let again = sf.call_op("RedriveExecution", redrive).await.unwrap();
    assert_eq!(
        first, again,
        "the same client token answers the same redrive"
    );
    let err = sf
        .call_op(
            "RedriveExecution",
            json!({"executionArn": arn, "clientToken": "token-2"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "ExecutionNotRedrivable");
    assert_eq!(err.message, "Execution is RUNNING and cannot be redriven");
    let d = wait_done(&sf, &arn).await;
    assert_eq!(d["status"], "TIMED_OUT");
    assert_eq!(d["redriveCount"], 1);
    assert_eq!(d["redriveDate"], first["redriveDate"]);
    let h = sf
        .call_op("GetExecutionHistory", json!({"executionArn": arn}))
        .await
        .unwrap();
    let types: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "WaitStateEntered",
            "WaitStateExited",
            "WaitStateEntered",
            "ExecutionTimedOut",
            "ExecutionRedriven",
            "WaitStateEntered",
            "ExecutionTimedOut"
        ]
    );
    let redriven = &h["events"][7];
    assert_eq!(redriven["executionRedrivenEventDetails"]["redriveCount"], 1);
    assert_eq!(redriven["previousEventId"], 7);
    assert_eq!(h["events"][8]["previousEventId"], 8);
    assert_eq!(h["events"][8]["stateEnteredEventDetails"]["name"], "Z");
}

#[tokio::test]
async fn test_state_reports_output_next_state_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sf = service(dir.path()).await;
    let out = sf
        .call_op(
            "TestState",
            json!({"definition": json!({"Type": "Pass", "Parameters": {"v.$": "$.x"}, "Next": "Later"}).to_string(),
                   "input": "{\"x\": 5}"}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "SUCCEEDED", "{out}");
    assert_eq!(out["nextState"], "Later");
    assert_eq!(out["output"], "{\"v\":5}");

    let choice = json!({"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Big"}], "Default": "Small"});
    let out = sf
        .call_op(
            "TestState",
            json!({"definition": choice.to_string(), "input": "{\"n\": 3}"}),
        )
        .await
        .unwrap();
    assert_eq!(out["nextState"], "Big", "{out}");

    // A mocked task error: caught, or retriable, or failed.
    let task = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "f"}, "Next": "Ok",
        "Catch": [{"ErrorEquals": ["Boom"], "Next": "Recover"}]});
    let out = sf
        .call_op(
            "TestState",
            json!({"definition": task.to_string(), "mock": {"errorOutput": {"error": "Boom", "cause": "c"}}}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "CAUGHT_ERROR", "{out}");
    assert_eq!(out["nextState"], "Recover");
    assert_eq!(out["error"], "Boom");
    let out = sf
        .call_op(
            "TestState",
            json!({"definition": task.to_string(), "mock": {"result": "{\"Payload\": 1}"}}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "SUCCEEDED", "{out}");
    assert_eq!(out["output"], "{\"Payload\":1}");
    let failing = json!({"Type": "Fail", "Error": "E", "Cause": "C"});
    let out = sf
        .call_op("TestState", json!({"definition": failing.to_string()}))
        .await
        .unwrap();
    assert_eq!(out["status"], "FAILED", "{out}");
    assert_eq!(out["error"], "E");
    // A Wait state does not wait.
    let started = std::time::Instant::now();
    let out = sf
        .call_op(
            "TestState",
            json!({"definition": json!({"Type": "Wait", "Seconds": 3600, "End": true}).to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "SUCCEEDED", "{out}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Variables reach the state.
    let out = sf
        .call_op(
            "TestState",
            json!({"definition": json!({"Type": "Pass", "Parameters": {"v.$": "$greeting"}, "End": true}).to_string(),
                   "variables": "{\"greeting\": \"hi\"}"}),
        )
        .await
        .unwrap();
    assert_eq!(out["output"], "{\"v\":\"hi\"}", "{out}");
}

/// Rough throughput numbers (`cargo test --release -p trellis-workflows --lib throughput --
/// --ignored --nocapture`): STANDARD durable transitions per second and EXPRESS sync
/// executions per second, for a 5-state Pass chain.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let sf = service(dir.path()).await;
    let chain = json!({"StartAt": "S1", "States": {
        "S1": {"Type": "Pass", "Next": "S2"}, "S2": {"Type": "Pass", "Next": "S3"},
        "S3": {"Type": "Pass", "Next": "S4"}, "S4": {"Type": "Pass", "Next": "S5"},
        "S5": {"Type": "Pass", "End": true}}});
    let standard = create(&sf, "std", chain.clone(), "STANDARD").await;
    let express = create(&sf, "exp", chain, "EXPRESS").await;

    const N: usize = 1000;
    let t0 = std::time::Instant::now();
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..N {
        let sf = sf.clone();
        let standard = standard.clone();
        starts.spawn(async move {
            let out = sf
                .call_op("StartExecution", json!({"stateMachineArn": standard}))
                .await
                .unwrap();
            out["executionArn"].as_str().unwrap().to_string()
        });
    }
    let mut arns = Vec::new();
    while let Some(a) = starts.join_next().await {
        arns.push(a.unwrap());
    }
    for a in &arns {
        wait_done(&sf, a).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    // 7 interpreter steps: the start, 5 states, the end.
    println!(
        "STANDARD: {N} executions in {secs:.2}s: {:.0} durable transitions/s",
        (N * 7) as f64 / secs
    );

    const M: usize = 2000;
    let t0 = std::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..M {
        let sf = sf.clone();
        let express = express.clone();
        set.spawn(async move {
            sf.call_op(
                "StartSyncExecution",
                json!({"stateMachineArn": express, "input": "{}"}),
            )
            .await
            .unwrap()
        });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap()["status"], "SUCCEEDED");
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "EXPRESS sync: {M} in {secs:.2}s: {:.0}/s (in process, no HTTP)",
        M as f64 / secs
    );

    // One STANDARD execution mapping over 1,000 items: a commit per step of a growing state.
    let map = create(
        &sf,
        "map",
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
            "End": true}}}),
        "STANDARD",
    )
    .await;
    let items: Vec<u32> = (0..1000).collect();
    let t0 = std::time::Instant::now();
    let out = sf
        .call_op(
            "StartExecution",
            json!({"stateMachineArn": map, "input": json!({"items": items}).to_string()}),
        )
        .await
        .unwrap();
    let d = wait_done(&sf, out["executionArn"].as_str().unwrap()).await;
    assert_eq!(d["status"], "SUCCEEDED");
    println!(
        "STANDARD Map over 1,000 items: {:.2}s",
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn stop_heartbeat_timeout_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let sf = service(dir.path()).await;
    let activity = sf
        .call_op("CreateActivity", json!({"name": "slow-worker"}))
        .await
        .unwrap()["activityArn"]
        .as_str()
        .unwrap()
        .to_string();
    // A task nobody answers: its heartbeat deadline fails it, Retry runs it again after a
    // back-off (a timer), Catch ends it.
    let sm = create(
        &sf,
        "beats",
        json!({"StartAt": "Work", "States": {
            "Work": {"Type": "Task", "Resource": activity, "HeartbeatSeconds": 1,
                     "Retry": [{"ErrorEquals": ["States.HeartbeatTimeout"], "IntervalSeconds": 1, "MaxAttempts": 1}],
                     "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Gave up"}], "End": true},
            "Gave up": {"Type": "Pass", "End": true}}}),
        "STANDARD",
    )
    .await;
    let arn = sf
        .call_op("StartExecution", json!({"stateMachineArn": sm}))
        .await
        .unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    let d = wait_done(&sf, &arn).await;
    assert_eq!(d["status"], "SUCCEEDED");
    let out: Value = serde_json::from_str(d["output"].as_str().unwrap()).unwrap();
    assert_eq!(out["Error"], "States.HeartbeatTimeout");
    let h = sf
        .call_op("GetExecutionHistory", json!({"executionArn": arn}))
        .await
        .unwrap();
    let timed_out = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "TaskTimedOut")
        .count();
    assert_eq!(timed_out, 2, "the first attempt and its retry");

    // StopExecution ends a waiting execution with ExecutionAborted.
    let waits = create(
        &sf,
        "waits",
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": true}}}),
        "STANDARD",
    )
    .await;
    let arn = sf
        .call_op("StartExecution", json!({"stateMachineArn": waits}))
        .await
        .unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    sf.call_op(
        "StopExecution",
        json!({"executionArn": arn, "error": "Mine", "cause": "enough"}),
    )
    .await
    .unwrap();
    let d = sf
        .call_op("DescribeExecution", json!({"executionArn": arn}))
        .await
        .unwrap();
    assert_eq!(d["status"], "ABORTED");
    assert_eq!(d["error"], "Mine");
    let h = sf
        .call_op(
            "GetExecutionHistory",
            json!({"executionArn": arn, "reverseOrder": true}),
        )
        .await
        .unwrap();
    assert_eq!(h["events"][0]["type"], "ExecutionAborted");
    let list = sf
        .call_op(
            "ListExecutions",
            json!({"stateMachineArn": waits, "statusFilter": "ABORTED"}),
        )
        .await
        .unwrap();
    assert_eq!(list["executions"][0]["executionArn"], arn.as_str());
    let e = sf
        .call_op(
            "GetExecutionHistory",
            json!({"executionArn": arn, "nextToken": "bogus"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidToken");
}

/// Memory of executions parked in Wait states (`cargo test --release -p trellis-workflows
/// --lib parked -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn parked_waits_memory() {
    fn rss_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }
    let n_env = std::env::var("PARKED_N").ok().and_then(|v| v.parse().ok());
    let n: usize = n_env.unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let sf = service(dir.path()).await;
    let sm = create(
        &sf,
        "parked",
        json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Next": "W"},
            "W": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
        "STANDARD",
    )
    .await;
    let before = rss_kb();
    let t0 = std::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let sf = sf.clone();
        let sm = sm.clone();
        set.spawn(async move {
            sf.call_op(
                "StartExecution",
                json!({"stateMachineArn": sm, "input": json!({"i": i}).to_string()}),
            )
            .await
            .unwrap();
        });
        if set.len() >= 512 {
            set.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    // Let every execution reach its Wait.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kb();
    println!(
        "{n} executions parked in {:.1}s; RSS +{} MB ({} bytes each)",
        t0.elapsed().as_secs_f64(),
        (after - before) / 1024,
        (after - before) * 1024 / n as u64
    );
}
