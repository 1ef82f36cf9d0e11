//! Amazon States Language engine: the ASL model and its create-time validation, AWS's
//! JSONPath dialect, the intrinsic functions, JSONata, and a resumable interpreter that
//! advances an execution one transition at a time and records AWS-shaped history events.
//!
//! [`service`] puts the engine behind the Step Functions API: state machines and executions in
//! the store, a durable executor (STANDARD) and an in-memory one (EXPRESS), and the Task
//! integrations through the target registry. The engine modules themselves own no I/O and no
//! clock: Task states leave the engine as
//! [`TaskRequest`]s (run them through a [`TaskInvoker`], or complete them later on the
//! [`Execution`]), waits come back as a wake-up time, and every step takes `now`. An
//! [`Execution`] is plain serde data, so a durable executor persists it after each
//! [`Execution::step`] and resumes it after a crash without re-running a state that
//! already exited.
//!
//! ```
//! use serde_json::json;
//! use trellis_workflows::{validate::validate, NoTasks};
//! use trellis_workflows::{run_to_completion, Execution, ExecutionInfo, FakeClock, Status, Timestamp};
//!
//! let machine = validate(r#"{"StartAt": "Hi", "States": {"Hi": {
//!     "Type": "Pass", "Parameters": {"greeting.$": "States.Format('hello {}', $.name)"}, "End": true}}}"#)
//!     .expect("valid definition");
//! let now = Timestamp::now();
//! let info = ExecutionInfo::new("us-east-1", "123456789012", "greeter", "run-1", json!({"name": "ada"}), now);
//! let mut exec = Execution::start(&machine, info);
//! assert_eq!(run_to_completion(&machine, &mut exec, &NoTasks, &mut FakeClock(now)), Status::Succeeded);
//! assert_eq!(exec.output(), Some(&json!({"greeting": "hello ada"})));
//! ```

pub mod asl;
pub mod choice;
pub mod history;
pub mod interpreter;
pub mod intrinsics;
pub mod json_syntax;
pub mod jsonata;
pub mod jsonpath;
pub mod payload;
pub mod runner;
pub mod service;
pub mod time;
pub mod validate;

pub use asl::StateMachine;
pub use interpreter::{
    Execution, ExecutionInfo, Failure, Status, Step, TaskInvoker, TaskOutcome, TaskRequest,
};
pub use runner::{run_to_completion, FakeClock, NoTasks, SystemClock};
pub use time::Timestamp;
