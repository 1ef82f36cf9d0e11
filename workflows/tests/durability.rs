//! The interpreter as a durable executor drives it: step by step, persisting the
//! serialized execution between steps, dispatching tasks and sleeping outside the engine.

use std::cell::Cell;

use serde_json::{json, Value};
use trellis_workflows::validate::validate;
use trellis_workflows::{
    run_to_completion, Execution, ExecutionInfo, Failure, FakeClock, StateMachine, Status, Step,
    TaskOutcome, TaskRequest, Timestamp,
};

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn machine(def: Value) -> StateMachine {
    validate(&def.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn start(m: &StateMachine, input: Value) -> Execution {
    Execution::start(
        m,
        ExecutionInfo::new("us-east-1", "123456789012", "sm", "exec", input, T0),
    )
}

/// Round-trips the execution through JSON, as a store would between steps.
fn persist(exec: &Execution) -> Execution {
    let text = serde_json::to_string(exec).expect("execution serializes");
    serde_json::from_str(&text).expect("execution deserializes")
}

fn types(exec: &Execution) -> Vec<&str> {
    exec.history()
        .iter()
        .map(|e| e.event_type.as_str())
        .collect()
}

#[test]
fn wait_returns_a_wake_time_and_resumes_after_a_restart() {
    let m = machine(json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 3600, "Next": "P"},
        "P": {"Type": "Pass", "Result": "done", "End": true}}}));
    let mut exec = start(&m, json!({}));
    let until = loop {
        match exec.step(&m, T0) {
            Step::Progressed => exec = persist(&exec),
            Step::Blocked { until, tasks } => {
                assert!(tasks.is_empty());
                break until.expect("a wake time");
            }
            Step::Finished => panic!("finished early"),
        }
    };
    assert_eq!(until, T0.plus_millis(3_600_000));
    // Woken too early: nothing moves.
    let mut exec = persist(&exec);
    assert!(matches!(
        exec.step(&m, T0.plus_millis(1000)),
        Step::Blocked { .. }
    ));
    let before = exec.history().len();
    while exec.step(&m, until) != Step::Finished {}
    assert_eq!(exec.status(), Status::Succeeded);
    assert_eq!(exec.output(), Some(&json!("done")));
    assert_eq!(
        exec.history()[..before].len(),
        before,
        "history is append-only"
    );
    assert_eq!(
        types(&exec),
        [
            "ExecutionStarted",
            "WaitStateEntered",
            "WaitStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
}

#[test]
fn tasks_are_dispatched_outside_the_engine_and_completed_once() {
    let m = machine(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
              "Parameters": {"Payload.$": "$"}, "ResultSelector": {"v.$": "$.Payload"},
              "ResultPath": "$.r", "End": true}}}));
    let mut exec = start(&m, json!({"x": 1}));
    let task = loop {
        match exec.step(&m, T0) {
            Step::Progressed => {}
            Step::Blocked { mut tasks, .. } => break tasks.pop().expect("one task"),
            Step::Finished => panic!("finished early"),
        }
    };
    assert_eq!(task.resource, "arn:aws:states:::lambda:invoke");
    assert_eq!(task.input, json!({"Payload": {"x": 1}}));
    // A crash here loses nothing: the reloaded execution still waits for the same task.
    let mut exec = persist(&exec);
    assert_eq!(exec.pending_tasks(), vec![task.clone()]);
    assert!(matches!(exec.step(&m, T0), Step::Blocked { ref tasks, .. } if tasks[0].id == task.id));
    assert!(exec.complete_task(task.id, TaskOutcome::Succeeded(json!({"Payload": 7}))));
    assert!(
        !exec.complete_task(task.id, TaskOutcome::Succeeded(json!({"Payload": 8}))),
        "duplicates are ignored"
    );
    while exec.step(&m, T0) != Step::Finished {}
    assert_eq!(exec.output(), Some(&json!({"x": 1, "r": {"v": 7}})));
    assert_eq!(
        types(&exec),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
}

#[test]
fn retry_backs_off_then_catch_routes_the_error() {
    let m = machine(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
              "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 2, "BackoffRate": 3}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Handled"}],
              "End": true},
        "Handled": {"Type": "Pass", "End": true}}}));
    let calls = Cell::new(0);
    let invoker = |_: &TaskRequest| {
        calls.set(calls.get() + 1);
        TaskOutcome::Failed(Failure::new("Boom", "it broke"))
    };
    let mut exec = start(&m, json!({"a": 1}));
    let mut clock = FakeClock(T0);
    assert_eq!(
        run_to_completion(&m, &mut exec, &invoker, &mut clock),
        Status::Succeeded
    );
    assert_eq!(calls.get(), 3, "first attempt and two retries");
    assert_eq!(clock.0, T0.plus_millis(2_000 + 6_000), "2s then 2s*3");
    assert_eq!(
        exec.output(),
        Some(&json!({"a": 1, "err": {"Error": "Boom", "Cause": "it broke"}}))
    );
    assert_eq!(
        types(&exec)
            .iter()
            .filter(|t| **t == "LambdaFunctionFailed")
            .count(),
        3
    );
}

#[test]
fn task_timeout_and_execution_timeout() {
    let m = machine(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::slow", "TimeoutSeconds": 5, "End": true}}}));
    let mut exec = start(&m, json!({}));
    let until = loop {
        match exec.step(&m, T0) {
            Step::Blocked { until, .. } => break until.expect("deadline"),
            Step::Progressed => {}
            Step::Finished => panic!("finished early"),
        }
    };
    assert_eq!(until, T0.plus_millis(5000));
    while exec.step(&m, until) != Step::Finished {}
    assert_eq!(exec.status(), Status::Failed);
    assert_eq!(
        exec.failure().and_then(|f| f.error.as_deref()),
        Some("States.Timeout")
    );
    assert!(types(&exec).contains(&"TaskTimedOut"));

    let m = machine(json!({"TimeoutSeconds": 10, "StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 60, "End": true}}}));
    let mut exec = start(&m, json!({}));
    let status = run_to_completion(
        &m,
        &mut exec,
        &trellis_workflows::NoTasks,
        &mut FakeClock(T0),
    );
    assert_eq!(status, Status::TimedOut);
    assert_eq!(types(&exec).last(), Some(&"ExecutionTimedOut"));
}

#[test]
fn parallel_branches_and_map_iterations_wait_concurrently() {
    let m = machine(json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::a", "End": true}}},
            {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "arn:aws:states:::b", "End": true}}}]}}}));
    let mut exec = start(&m, json!(1));
    let tasks = loop {
        match exec.step(&m, T0) {
            Step::Blocked { tasks, .. } => break tasks,
            Step::Progressed => {}
            Step::Finished => panic!("finished early"),
        }
    };
    assert_eq!(tasks.len(), 2, "both branches have a task in flight");
    for t in tasks.iter().rev() {
        exec.complete_task(t.id, TaskOutcome::Succeeded(json!(t.resource.clone())));
    }
    while exec.step(&m, T0) != Step::Finished {}
    assert_eq!(
        exec.output(),
        Some(&json!(["arn:aws:states:::a", "arn:aws:states:::b"]))
    );

    let m = machine(json!({"StartAt": "M", "States": {
        "M": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 30, "End": true}}}}}}));
    let mut exec = start(&m, json!([1, 2, 3]));
    let mut clock = FakeClock(T0);
    run_to_completion(&m, &mut exec, &trellis_workflows::NoTasks, &mut clock);
    assert_eq!(exec.output(), Some(&json!([1, 2, 3])));
    assert_eq!(clock.0, T0.plus_millis(30_000), "three 30s waits overlap");
}

#[test]
fn assign_variables_flow_between_states_and_into_map_iterations() {
    let m = machine(json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"base": 10}, "Next": "M"},
        "M": {"Type": "Map", "ItemsPath": "$.xs", "Next": "Sum",
              "ItemSelector": {"x.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
              "ItemProcessor": {"StartAt": "I", "States": {
                  "I": {"Type": "Pass", "Parameters": {"v.$": "States.MathAdd($.x, $base)", "i.$": "$.i"}, "End": true}}}},
        "Sum": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($)", "base.$": "$base"}, "End": true}}}));
    let mut exec = start(&m, json!({"xs": [1, 2]}));
    run_to_completion(
        &m,
        &mut exec,
        &trellis_workflows::NoTasks,
        &mut FakeClock(T0),
    );
    assert_eq!(exec.status(), Status::Succeeded, "{:?}", exec.failure());
    assert_eq!(exec.output(), Some(&json!({"n": 2, "base": 10})));
    let exited = exec
        .history()
        .iter()
        .find(|e| e.event_type == "PassStateExited")
        .expect("exit event");
    assert_eq!(
        exited.details["stateExitedEventDetails"]["assignedVariables"],
        json!({"base": "10"})
    );
}

#[test]
fn wait_for_task_token_passes_the_token_and_completes_by_it() {
    let m = machine(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
              "Parameters": {"MessageBody": {"token.$": "$$.Task.Token"}}, "End": true}}}));
    let mut exec = start(&m, json!({}));
    let task = loop {
        match exec.step(&m, T0) {
            Step::Blocked { mut tasks, .. } => break tasks.pop().expect("one task"),
            Step::Progressed => {}
            Step::Finished => panic!("finished early"),
        }
    };
    let token = task.task_token.clone().expect("a token");
    assert_eq!(task.input["MessageBody"]["token"], json!(token));
    assert!(
        exec.complete_task_by_token(&token, TaskOutcome::Failed(Failure::new("Rejected", "no")))
    );
    while exec.step(&m, T0) != Step::Finished {}
    assert_eq!(
        exec.failure().and_then(|f| f.error.as_deref()),
        Some("Rejected")
    );
}

#[test]
fn heartbeats_keep_a_task_alive_until_they_stop() {
    let m = machine(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
              "HeartbeatSeconds": 10, "TimeoutSeconds": 100,
              "Parameters": {"token.$": "$$.Task.Token"}, "End": true}}}));
    let mut exec = start(&m, json!({}));
    let token = loop {
        match exec.step(&m, T0) {
            Step::Blocked { tasks, until } => {
                assert_eq!(until, Some(T0.plus_millis(10_000)));
                break tasks[0].task_token.clone().expect("token");
            }
            Step::Progressed => {}
            Step::Finished => panic!("finished early"),
        }
    };
    assert!(exec.record_heartbeat(&token, T0.plus_millis(8_000)));
    assert!(
        matches!(exec.step(&m, T0.plus_millis(12_000)), Step::Blocked { .. }),
        "the heartbeat moved the deadline"
    );
    while exec.step(&m, T0.plus_millis(18_000)) != Step::Finished {}
    assert_eq!(
        exec.failure().and_then(|f| f.error.as_deref()),
        Some("States.HeartbeatTimeout")
    );
}

#[test]
fn item_reader_items_come_from_a_task() {
    let m = machine(json!({"StartAt": "M", "States": {
        "M": {"Type": "Map", "End": true,
              "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                             "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItems": 2},
                             "Parameters": {"Bucket.$": "$.bucket", "Key": "data.csv"}},
              "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                                "StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"n.$": "$.name"}, "End": true}}}}}}));
    let invoker = |r: &TaskRequest| {
        assert_eq!(r.resource, "arn:aws:states:::s3:getObject");
        assert_eq!(r.input["Bucket"], json!("b"));
        TaskOutcome::Succeeded(json!({"Body": "name,age\nada,36\n\"grace, h\",45\nlinus,28\n"}))
    };
    let mut exec = start(&m, json!({"bucket": "b"}));
    assert_eq!(
        run_to_completion(&m, &mut exec, &invoker, &mut FakeClock(T0)),
        Status::Succeeded,
        "{:?}",
        exec.failure()
    );
    assert_eq!(
        exec.output(),
        Some(&json!([{"n": "ada"}, {"n": "grace, h"}]))
    );
}

#[test]
fn a_durable_loop_that_takes_events_sees_the_same_history() {
    let m = machine(json!({"StartAt": "M", "States": {
        "M": {"Type": "Map", "Next": "W", "ItemProcessor": {"StartAt": "P", "States": {
            "P": {"Type": "Pass", "End": true}}}},
        "W": {"Type": "Wait", "Seconds": 5, "End": true}}}));
    let mut reference = start(&m, json!([1, 2]));
    run_to_completion(
        &m,
        &mut reference,
        &trellis_workflows::NoTasks,
        &mut FakeClock(T0),
    );

    // Store = the events appended so far plus the last persisted execution.
    let mut stored_events = Vec::new();
    let mut stored = persist(&start(&m, json!([1, 2])));
    let mut now = T0;
    loop {
        let mut exec = persist(&stored);
        let step = exec.step(&m, now);
        stored_events.extend(exec.take_events());
        stored = persist(&exec);
        match step {
            Step::Progressed => {}
            Step::Blocked { until, .. } => now = until.expect("a timer"),
            Step::Finished => break,
        }
    }
    assert_eq!(stored_events, reference.history());
    assert!(
        stored.history().is_empty(),
        "the persisted execution carries no history"
    );
    assert_eq!(stored.status(), Status::Succeeded);
}
