//! Interpreter transitions per second, in process, without a store or the API: a 5-state
//! Pass chain (one execution from start to end per iteration), and one Map state over 1,000
//! items whose iterations are a Pass state each.
//!
//! A transition is one [`Execution::step`] that moved (entering a state, running it, a Map
//! iteration starting or ending); criterion's throughput is set to the transitions one
//! iteration takes, counted before measuring, so it reports transitions per second.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use trellis_workflows::validate::validate;
use trellis_workflows::{Execution, ExecutionInfo, StateMachine, Status, Step, Timestamp};

/// Steps an execution to its end; returns the transitions it took.
fn run(machine: &StateMachine, input: &Value, now: Timestamp) -> u64 {
    let info = ExecutionInfo::new(
        "us-east-1",
        "000000000000",
        "bench",
        "run",
        input.clone(),
        now,
    );
    let mut exec = Execution::start(machine, info);
    let mut transitions = 0;
    loop {
        match exec.step(machine, now) {
            Step::Progressed => transitions += 1,
            Step::Finished => break,
            Step::Blocked { .. } => panic!("a Pass-only machine never blocks"),
        }
        // A durable executor hands the events over after every step; so does this.
        black_box(exec.take_events());
    }
    assert_eq!(exec.status(), Status::Succeeded);
    transitions
}

fn bench(c: &mut Criterion, name: &str, definition: Value, input: Value) {
    let machine = validate(&definition.to_string()).expect("valid definition");
    let now = Timestamp::now();
    let per_run = run(&machine, &input, now);
    let mut group = c.benchmark_group("interpreter");
    group.throughput(Throughput::Elements(per_run));
    group.bench_function(format!("{name} ({per_run} transitions)"), |b| {
        b.iter(|| run(&machine, &input, now))
    });
    group.finish();
}

fn pass_chain(c: &mut Criterion) {
    let chain = json!({"StartAt": "S1", "States": {
        "S1": {"Type": "Pass", "Next": "S2"},
        "S2": {"Type": "Pass", "Result": {"step": 2}, "ResultPath": "$.two", "Next": "S3"},
        "S3": {"Type": "Pass", "Parameters": {"order.$": "$.order", "n.$": "$.two.step"}, "Next": "S4"},
        "S4": {"Type": "Pass", "Next": "S5"},
        "S5": {"Type": "Pass", "End": true}}});
    bench(
        c,
        "5-state Pass chain",
        chain,
        json!({"order": "o-1", "amount": 42}),
    );
}

fn map_over_1000_items(c: &mut Criterion) {
    let map = json!({"StartAt": "Each", "States": {
        "Each": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": {
            "StartAt": "Double", "States": {
                "Double": {"Type": "Pass", "Parameters": {"id.$": "$.id", "seen": true}, "End": true}}},
        "End": true}}});
    let items: Vec<Value> = (0..1000).map(|i| json!({"id": i})).collect();
    bench(c, "Map over 1,000 items", map, json!({"items": items}));
}

criterion_group!(benches, pass_chain, map_over_1000_items);
criterion_main!(benches);
