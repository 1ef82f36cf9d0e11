//! Large inputs stay linear: a Map over many items and a long Pass chain.

use serde_json::{json, Value};
use trellis_workflows::validate::validate;
use trellis_workflows::NoTasks;
use trellis_workflows::{
    run_to_completion, Execution, ExecutionInfo, FakeClock, Status, Timestamp,
};

#[test]
fn a_map_over_five_thousand_items() {
    let m = validate(
        &json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemSelector": {"v.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"StartAt": "P", "States": {
                "P": {"Type": "Pass", "Parameters": {"d.$": "States.MathAdd($.v, $.v)"}, "End": true}}}}}})
        .to_string(),
    )
    .expect("valid");
    let items: Vec<Value> = (0..5000).map(Value::from).collect();
    let now = Timestamp(0);
    let mut exec = Execution::start(
        &m,
        ExecutionInfo::new("us-east-1", "1", "sm", "e", Value::Array(items), now),
    );
    let started = std::time::Instant::now();
    assert_eq!(
        run_to_completion(&m, &mut exec, &NoTasks, &mut FakeClock(now)),
        Status::Succeeded
    );
    assert_eq!(
        exec.output().and_then(|o| o.get(4999)),
        Some(&json!({"d": 9998}))
    );
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
}
