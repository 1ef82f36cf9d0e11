//! The resumable interpreter: an [`Execution`] is plain serializable data advanced by
//! [`Execution::step`], which appends history events and returns what it waits for (a
//! time, task results) instead of blocking.
//!
//! A durable executor persists the execution after every step; a step only ever moves
//! forward (a state is entered in one step and does its work in the next), so a resumed
//! execution never re-runs a state that already exited. Tasks leave the engine as the
//! [`TaskRequest`]s a blocked step lists (also [`Execution::pending_tasks`]) and come back
//! through [`Execution::complete_task`] or, for `.waitForTaskToken`,
//! [`Execution::complete_task_by_token`]; a task whose result was not persisted before a
//! crash is dispatched again, so delivery to workers is at-least-once. Wait states,
//! retry back-off and timeouts hold no thread: the step reports the instant to wake at.
//!
//! Parallel branches and Map iterations are child frames of the state that runs them.
//! Branches advance round-robin, one transition each per step, so their events interleave
//! as on AWS; a Map starts its next iteration (up to MaxConcurrency) only when the running
//! ones are all blocked, which reproduces AWS's history order when nothing waits and
//! lets waiting iterations overlap.
//!
//! Not modelled: ResultWriter (results stay inline), MaxInputBytesPerBatch, and
//! distributed Map child executions as separately listable executions.

mod item_reader;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::asl::{
    Catcher, Condition, ContextUse, Fail, MapState, NumberField, PathField, QueryLanguage, State,
    StateKind, StateMachine, Wait,
};
use crate::history::{details, HistoryEvent};
use crate::jsonata;
use crate::jsonpath::{JsonPath, PathError, Scope};
use crate::payload::{self, EvalError};
use crate::time::{parse_rfc3339, Timestamp};

/// Who and what an execution is: the values the context object (`$$`) exposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionInfo {
    pub execution_arn: String,
    pub name: String,
    pub state_machine_arn: String,
    pub state_machine_name: String,
    pub role_arn: String,
    pub start_time: Timestamp,
    pub input: Value,
    /// The version the execution runs when started by a version or an alias ARN, and the
    /// alias (both recorded in `ExecutionStarted`, as AWS does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_machine_version_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_machine_alias_arn: Option<String>,
    /// How many times the execution was redriven (`$$.Execution.RedriveCount`) and when
    /// last (`$$.Execution.RedriveTime`).
    #[serde(default)]
    pub redrive_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_time: Option<Timestamp>,
}

impl ExecutionInfo {
    /// Fills ARNs from a region/account and the two names.
    pub fn new(
        region: &str,
        account: &str,
        state_machine_name: &str,
        name: &str,
        input: Value,
        start_time: Timestamp,
    ) -> Self {
        ExecutionInfo {
            execution_arn: format!(
                "arn:aws:states:{region}:{account}:execution:{state_machine_name}:{name}"
            ),
            name: name.to_string(),
            state_machine_arn: format!(
                "arn:aws:states:{region}:{account}:stateMachine:{state_machine_name}"
            ),
            state_machine_name: state_machine_name.to_string(),
            role_arn: format!("arn:aws:iam::{account}:role/trellis-workflows"),
            start_time,
            input,
            state_machine_version_arn: None,
            state_machine_alias_arn: None,
            redrive_count: 0,
            redrive_time: None,
        }
    }
}

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

/// An error name and cause, as a Fail state or a task reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Failure {
            error: Some(error.into()),
            cause: Some(cause.into()),
        }
    }

    /// `{"Error": …, "Cause": …}`, the value Catch hands to its ResultPath.
    pub fn to_error_output(&self) -> Value {
        let mut m = Map::new();
        if let Some(e) = &self.error {
            m.insert("Error".into(), json!(e));
        }
        if let Some(c) = &self.cause {
            m.insert("Cause".into(), json!(c));
        }
        Value::Object(m)
    }
}

/// A task a step wants run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    /// Unique within the execution; pass it back to [`Execution::complete_task`].
    pub id: u64,
    pub resource: String,
    pub input: Value,
    pub state_name: String,
    pub timeout_seconds: Option<u64>,
    pub heartbeat_seconds: Option<u64>,
    /// 0 for the first attempt, then one more per retry.
    pub attempt: u64,
    /// For `.waitForTaskToken` resources: the token the worker reports back with.
    pub task_token: Option<String>,
    /// The evaluated `Credentials` (`{"RoleArn": …}`) the task should run as.
    #[serde(default)]
    pub credentials: Option<Value>,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskOutcome {
    Succeeded(Value),
    Failed(Failure),
}

/// Runs Task states: the binary wires this to functions, HTTP and service integrations;
/// tests fake it.
pub trait TaskInvoker {
    fn invoke(&self, request: &TaskRequest) -> TaskOutcome;
}

/// A closure is an invoker, which keeps test fakes short.
impl<F: Fn(&TaskRequest) -> TaskOutcome> TaskInvoker for F {
    fn invoke(&self, request: &TaskRequest) -> TaskOutcome {
        self(request)
    }
}

/// What [`Execution::step`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A transition happened; persist and call again.
    Progressed,
    /// Nothing can move until `until` (if any) or until one of `tasks` completes.
    /// `tasks` lists every outstanding task, dispatched or not.
    Blocked {
        until: Option<Timestamp>,
        tasks: Vec<TaskRequest>,
    },
    /// The execution ended; see [`Execution::status`].
    Finished,
}

/// A running (or finished) execution; serialize it to persist it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub info: ExecutionInfo,
    status: Status,
    output: Option<Value>,
    failure: Option<Failure>,
    root: Frame,
    /// Events not yet handed over with [`Execution::take_events`].
    events: Vec<HistoryEvent>,
    /// How many events were taken before `events[0]`, so ids continue across takes.
    #[serde(default)]
    events_taken: u64,
    next_task_id: u64,
    deadline: Option<Timestamp>,
}

/// A path from the root graph to a Parallel branch or a Map processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GraphStep {
    state: String,
    branch: usize,
}

/// One running state graph: the root, a Parallel branch or a Map iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Frame {
    graph: Vec<GraphStep>,
    vars: Map<String, Value>,
    /// Distributed Map iterations are child executions whose events AWS keeps out of
    /// the parent's history.
    silent: bool,
    current: String,
    input: Value,
    phase: Phase,
    entered_event: u64,
    /// The event the state's entry followed; AWS chains EvaluationFailed to it.
    #[serde(default)]
    entered_prev: u64,
    entered_time: Timestamp,
    last_event: u64,
    retries: Vec<u64>,
    done: Option<FrameResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum FrameResult {
    Succeeded(Value),
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Phase {
    Enter,
    /// Entered (the event is recorded); the state's work comes next.
    Run,
    Sleeping {
        until: Timestamp,
        then: AfterSleep,
    },
    Task {
        request: Box<TaskRequest>,
        deadline: Option<Timestamp>,
        /// Moved forward by every heartbeat; passing it is States.HeartbeatTimeout.
        heartbeat_deadline: Option<Timestamp>,
        outcome: Option<TaskOutcome>,
        lambda: bool,
        /// Set when the task is a Map's ItemReader: the Map's effective input, kept to
        /// start the iterations once the items arrive.
        #[serde(default)]
        reader_input: Option<Value>,
    },
    Parallel {
        children: Vec<Frame>,
    },
    Map(Box<MapRun>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum AfterSleep {
    WaitDone { effective: Value },
    Retry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MapRun {
    items: Vec<Value>,
    running: Vec<(usize, Frame)>,
    next: usize,
    results: Vec<Value>,
    failures: usize,
    max_concurrency: usize,
    tolerated_count: Option<u64>,
    tolerated_percentage: Option<f64>,
    distributed: bool,
    map_run_arn: String,
    /// Event ids AWS chains the Map's closing events to (see `step_map`).
    run_started_event: u64,
    last_iteration_event: u64,
    /// Distributed Map: the items whose iteration failed (a redrive runs them again).
    #[serde(default)]
    failed: Vec<usize>,
    /// Items to run again before `next` (after a redrive).
    #[serde(default)]
    redo: Vec<usize>,
}

/// A state-level error before it is matched against Retry/Catch.
enum StateError {
    /// An error raised while evaluating the state; the cause gets AWS's
    /// "An error occurred while executing the state …" prefix.
    Eval(EvalError),
    /// An error that already has its final name and cause.
    Plain(Failure),
}

impl From<EvalError> for StateError {
    fn from(e: EvalError) -> Self {
        StateError::Eval(e)
    }
}

struct Env<'a> {
    events: &'a mut Vec<HistoryEvent>,
    events_taken: u64,
    now: Timestamp,
    info: &'a ExecutionInfo,
    next_task_id: &'a mut u64,
}

enum Progress {
    Moved,
    Blocked(Blocker),
}

#[derive(Default)]
struct Blocker {
    until: Option<Timestamp>,
    tasks: Vec<TaskRequest>,
}

impl Blocker {
    fn merge(&mut self, other: Blocker) {
        self.until = match (self.until, other.until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.tasks.extend(other.tasks);
    }
}

// === impl Execution ===

impl Execution {
    /// Starts an execution: records `ExecutionStarted` and positions on `StartAt`.
    pub fn start(machine: &StateMachine, info: ExecutionInfo) -> Execution {
        let mut events = Vec::new();
        let (k, v) = details::execution_started(
            &info.input,
            &info.role_arn,
            info.state_machine_version_arn.as_deref(),
            info.state_machine_alias_arn.as_deref(),
        );
        events.push(HistoryEvent {
            id: 1,
            previous_event_id: 0,
            timestamp: info.start_time,
            event_type: "ExecutionStarted".into(),
            details: Map::from_iter([(k, v)]),
        });
        let deadline = machine
            .timeout_seconds
            .map(|s| info.start_time.plus_millis(s as i64 * 1000));
        let root = Frame::new(
            Vec::new(),
            &machine.start_at,
            info.input.clone(),
            Map::new(),
            false,
            0,
        );
        Execution {
            info,
            status: Status::Running,
            output: None,
            failure: None,
            root,
            events,
            events_taken: 0,
            next_task_id: 1,
            deadline,
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// The output of a succeeded execution.
    pub fn output(&self) -> Option<&Value> {
        self.output.as_ref()
    }

    /// The error and cause of a failed, timed-out or aborted execution.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// The history events recorded since the last [`Execution::take_events`] (all of
    /// them when events are never taken, as with the in-memory runner).
    pub fn history(&self) -> &[HistoryEvent] {
        &self.events
    }

    /// Hands over the events recorded so far, so a durable executor appends them to its
    /// store and persists a small execution instead of a growing history.
    pub fn take_events(&mut self) -> Vec<HistoryEvent> {
        self.events_taken += self.events.len() as u64;
        std::mem::take(&mut self.events)
    }

    fn last_event_id(&self) -> u64 {
        self.events_taken + self.events.len() as u64
    }

    /// Records a task's result; a stale or unknown id is ignored (returns false), so a
    /// result delivered twice after a crash does no harm.
    pub fn complete_task(&mut self, id: u64, outcome: TaskOutcome) -> bool {
        self.complete_where(|r| r.id == id, outcome)
    }

    /// Every task waiting for a result, e.g. to re-dispatch after a restart.
    pub fn pending_tasks(&self) -> Vec<TaskRequest> {
        fn visit(f: &Frame, out: &mut Vec<TaskRequest>) {
            match &f.phase {
                Phase::Task {
                    request,
                    outcome: None,
                    ..
                } => out.push((**request).clone()),
                Phase::Parallel { children } => children.iter().for_each(|c| visit(c, out)),
                Phase::Map(run) => run.running.iter().for_each(|(_, c)| visit(c, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        visit(&self.root, &mut out);
        out
    }

    /// Records a heartbeat (SendTaskHeartbeat) for the task holding `token`, moving its
    /// heartbeat deadline to `now + HeartbeatSeconds`.
    pub fn record_heartbeat(&mut self, token: &str, now: Timestamp) -> bool {
        fn visit(f: &mut Frame, token: &str, now: Timestamp) -> bool {
            match &mut f.phase {
                Phase::Task {
                    request,
                    heartbeat_deadline,
                    outcome: None,
                    ..
                } if request.task_token.as_deref() == Some(token) => {
                    if let Some(h) = request.heartbeat_seconds {
                        *heartbeat_deadline = Some(now.plus_millis(h as i64 * 1000));
                    }
                    true
                }
                Phase::Parallel { children } => children.iter_mut().any(|c| visit(c, token, now)),
                Phase::Map(run) => run.running.iter_mut().any(|(_, c)| visit(c, token, now)),
                _ => false,
            }
        }
        visit(&mut self.root, token, now)
    }

    /// Records the result of a `.waitForTaskToken` task (SendTaskSuccess/Failure).
    pub fn complete_task_by_token(&mut self, token: &str, outcome: TaskOutcome) -> bool {
        self.complete_where(|r| r.task_token.as_deref() == Some(token), outcome)
    }

    fn complete_where(
        &mut self,
        pick: impl Fn(&TaskRequest) -> bool,
        outcome: TaskOutcome,
    ) -> bool {
        fn visit(
            f: &mut Frame,
            pick: &dyn Fn(&TaskRequest) -> bool,
            outcome: &mut Option<TaskOutcome>,
        ) -> bool {
            match &mut f.phase {
                Phase::Task {
                    request,
                    outcome: slot,
                    ..
                } if pick(request) && slot.is_none() => {
                    *slot = outcome.take();
                    true
                }
                Phase::Parallel { children } => {
                    children.iter_mut().any(|c| visit(c, pick, outcome))
                }
                Phase::Map(run) => run.running.iter_mut().any(|(_, c)| visit(c, pick, outcome)),
                _ => false,
            }
        }
        let mut slot = Some(outcome);
        visit(&mut self.root, &pick, &mut slot)
    }

    /// The number of history events recorded so far.
    pub fn event_count(&self) -> u64 {
        self.last_event_id()
    }

    /// Restarts a failed, timed-out or aborted execution (RedriveExecution) from its
    /// unsuccessful states: records `ExecutionRedriven`, and re-enters every state that
    /// failed or was interrupted, in the root graph and inside Parallel branches and Map
    /// iterations, keeping the branches and iterations that succeeded with their results.
    /// The execution timeout starts again from `now`. False (and nothing changes) when the
    /// execution is running or succeeded.
    pub fn redrive(&mut self, now: Timestamp) -> bool {
        if matches!(self.status, Status::Running | Status::Succeeded) {
            return false;
        }
        if let Some(d) = self.deadline {
            self.deadline = Some(now.plus_millis(d.millis() - self.info.start_time.millis()));
        }
        self.status = Status::Running;
        self.output = None;
        self.failure = None;
        self.info.redrive_count += 1;
        self.info.redrive_time = Some(now);
        let d = details::execution_redriven(self.info.redrive_count);
        self.push_event(now, "ExecutionRedriven", Some(d));
        let redriven = self.last_event_id();
        redrive_frame(&mut self.root, redriven);
        true
    }

    /// Stops a running execution (StopExecution).
    pub fn abort(&mut self, now: Timestamp, error: Option<String>, cause: Option<String>) {
        if self.status != Status::Running {
            return;
        }
        let (k, v) = details::failure(
            "executionAbortedEventDetails",
            error.as_deref(),
            cause.as_deref(),
        );
        self.push_event(now, "ExecutionAborted", Some((k, v)));
        self.status = Status::Aborted;
        self.failure = Some(Failure { error, cause });
    }

    fn push_event(&mut self, now: Timestamp, ty: &str, d: Option<(String, Value)>) {
        let prev = self.last_event_id();
        let id = prev + 1;
        self.events.push(HistoryEvent {
            id,
            previous_event_id: prev,
            timestamp: now,
            event_type: ty.into(),
            details: d.into_iter().collect(),
        });
    }

    /// Advances by one transition at time `now`.
    pub fn step(&mut self, machine: &StateMachine, now: Timestamp) -> Step {
        if self.status != Status::Running {
            return Step::Finished;
        }
        if let Some(d) = self.deadline {
            if now >= d {
                let (k, v) = details::failure(
                    "executionTimedOutEventDetails",
                    Some("States.Timeout"),
                    None,
                );
                self.push_event(now, "ExecutionTimedOut", Some((k, v)));
                self.status = Status::TimedOut;
                self.failure = Some(Failure {
                    error: Some("States.Timeout".into()),
                    cause: None,
                });
                return Step::Finished;
            }
        }
        if let Some(done) = self.root.done.clone() {
            match done {
                FrameResult::Succeeded(out) => {
                    let d = details::execution_succeeded(&out);
                    self.push_event(now, "ExecutionSucceeded", Some(d));
                    self.status = Status::Succeeded;
                    self.output = Some(out);
                }
                FrameResult::Failed(f) => {
                    let d = details::failure(
                        "executionFailedEventDetails",
                        f.error.as_deref(),
                        f.cause.as_deref(),
                    );
                    self.push_event(now, "ExecutionFailed", Some(d));
                    self.status = Status::Failed;
                    self.failure = Some(f);
                }
            }
            return Step::Finished;
        }
        let mut env = Env {
            events: &mut self.events,
            events_taken: self.events_taken,
            now,
            info: &self.info,
            next_task_id: &mut self.next_task_id,
        };
        match step_frame(&mut self.root, machine, &mut env) {
            Progress::Moved => Step::Progressed,
            Progress::Blocked(mut b) => {
                if let Some(d) = self.deadline {
                    b.merge(Blocker {
                        until: Some(d),
                        tasks: Vec::new(),
                    });
                }
                Step::Blocked {
                    until: b.until,
                    tasks: b.tasks,
                }
            }
        }
    }
}

// === impl Env ===

impl Env<'_> {
    fn emit(&mut self, f: &mut Frame, ty: &str, d: Option<(String, Value)>) -> u64 {
        if f.silent {
            return f.last_event;
        }
        let id = self.events_taken + self.events.len() as u64 + 1;
        self.events.push(HistoryEvent {
            id,
            previous_event_id: f.last_event,
            timestamp: self.now,
            event_type: ty.into(),
            details: d.into_iter().collect(),
        });
        f.last_event = id;
        id
    }
}

// === impl Frame ===

impl Frame {
    fn new(
        graph: Vec<GraphStep>,
        start: &str,
        input: Value,
        vars: Map<String, Value>,
        silent: bool,
        last_event: u64,
    ) -> Frame {
        Frame {
            graph,
            vars,
            silent,
            current: start.to_string(),
            input,
            phase: Phase::Enter,
            entered_event: 0,
            entered_prev: 0,
            entered_time: Timestamp(0),
            last_event,
            retries: Vec::new(),
            done: None,
        }
    }

    fn context(&self, env: &Env<'_>, state: &State) -> Value {
        if state.context_use == ContextUse::None {
            return Value::Null;
        }
        let mut ctx = json!({
            "Execution": {
                "Id": env.info.execution_arn,
                "Name": env.info.name,
                "RoleArn": env.info.role_arn,
                "StartTime": env.info.start_time.to_rfc3339(),
                "RedriveCount": env.info.redrive_count,
            },
            "State": {
                "EnteredTime": self.entered_time.to_rfc3339(),
                "Name": self.current,
            },
            "StateMachine": {
                "Id": env.info.state_machine_arn,
                "Name": env.info.state_machine_name,
            },
        });
        if let Some(t) = env.info.redrive_time {
            ctx["Execution"]["RedriveTime"] = json!(t.to_rfc3339());
        }
        if state.context_use == ContextUse::Full {
            ctx["Execution"]["Input"] = env.info.input.clone();
        }
        // Only states that can retry expose a retry count.
        if !self.retries.is_empty() {
            ctx["State"]["RetryCount"] = json!(self.retries.iter().sum::<u64>());
        }
        ctx
    }
}

/// AWS's limit on a state's input, output and task results.
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The graph a frame runs in; `None` when the definition no longer has it (an
/// execution resumed against a different definition).
fn resolve<'m>(root: &'m StateMachine, graph: &[GraphStep]) -> Option<&'m StateMachine> {
    let mut g = root;
    for s in graph {
        g = match &g.states.get(&s.state)?.kind {
            StateKind::Parallel { branches } => branches.get(s.branch)?,
            StateKind::Map(m) => &m.processor,
            _ => return None,
        };
    }
    Some(g)
}

fn state_type(s: &State) -> &'static str {
    match s.kind {
        StateKind::Pass { .. } => "Pass",
        StateKind::Task(_) => "Task",
        StateKind::Choice(_) => "Choice",
        StateKind::Wait(_) => "Wait",
        StateKind::Succeed => "Succeed",
        StateKind::Fail(_) => "Fail",
        StateKind::Parallel { .. } => "Parallel",
        StateKind::Map(_) => "Map",
    }
}

fn step_frame(f: &mut Frame, root: &StateMachine, env: &mut Env<'_>) -> Progress {
    let Some(state) = resolve(root, &f.graph).and_then(|g| g.states.get(&f.current)) else {
        // Executions must be resumed with the definition they started with.
        f.done = Some(FrameResult::Failed(Failure::new(
            "States.Runtime",
            format!("state {:?} does not exist", f.current),
        )));
        return Progress::Moved;
    };
    let phase = std::mem::replace(&mut f.phase, Phase::Enter);
    match phase {
        Phase::Enter => {
            f.entered_time = env.now;
            f.retries = vec![0; state.retry.len()];
            let d = details::state_entered(&state.name, &f.input);
            f.entered_prev = f.last_event;
            f.entered_event = env.emit(f, &format!("{}StateEntered", state_type(state)), Some(d));
            // The state's work is a separate step, so Parallel branches enter together
            // (as AWS records them) and a crash after entering does not lose the event.
            f.phase = Phase::Run;
            Progress::Moved
        }
        Phase::Run => {
            run_state(f, state, env);
            Progress::Moved
        }
        Phase::Sleeping { until, then } => {
            if env.now < until {
                f.phase = Phase::Sleeping { until, then };
                return Progress::Blocked(Blocker {
                    until: Some(until),
                    tasks: Vec::new(),
                });
            }
            match then {
                AfterSleep::WaitDone { effective } => {
                    let r = finish_state(f, state, effective.clone(), effective, None, env);
                    if let Err(e) = r {
                        handle_error(f, state, e, env);
                    }
                }
                AfterSleep::Retry => run_state(f, state, env),
            }
            Progress::Moved
        }
        Phase::Task {
            outcome: Some(outcome),
            reader_input: Some(effective),
            ..
        } => {
            // An ItemReader finished: parse its result into items and start the Map.
            let StateKind::Map(m) = &state.kind else {
                unreachable!("only Map states read items")
            };
            let r = match outcome {
                TaskOutcome::Succeeded(v) => item_reader::read_items(m, v),
                TaskOutcome::Failed(fail) => Err(fail),
            };
            match r {
                Ok(items) => {
                    let ctx = f.context(env, state);
                    match start_map(f, state, m, items, &effective, &ctx, None, env) {
                        Ok(run) => f.phase = Phase::Map(Box::new(run)),
                        Err(e) => handle_error(f, state, e, env),
                    }
                }
                Err(fail) => handle_error(f, state, StateError::Plain(fail), env),
            }
            Progress::Moved
        }
        Phase::Task {
            request,
            deadline,
            heartbeat_deadline,
            outcome,
            lambda,
            reader_input,
        } => {
            let prefix = if lambda { "LambdaFunction" } else { "Task" };
            // Results over AWS's 256 KiB payload limit fail the task.
            let outcome = match outcome {
                Some(TaskOutcome::Succeeded(out)) if out.to_string().len() > MAX_PAYLOAD_BYTES => {
                    let who = if lambda {
                        &request.resource
                    } else {
                        &state.name
                    };
                    Some(TaskOutcome::Failed(Failure::new(
                        "States.DataLimitExceeded",
                        format!("The state/task '{who}' returned a result with a size exceeding the maximum number of bytes service limit."),
                    )))
                }
                other => other,
            };
            match outcome {
                Some(TaskOutcome::Succeeded(out)) => {
                    let d = if lambda {
                        details::lambda_succeeded(&out)
                    } else {
                        details::task_succeeded(&request.resource, &out)
                    };
                    env.emit(f, &format!("{prefix}Succeeded"), Some(d));
                    let effective = request.input.clone();
                    if let Err(e) = finish_state(f, state, out, effective, None, env) {
                        handle_error(f, state, e, env);
                    }
                    Progress::Moved
                }
                Some(TaskOutcome::Failed(fail)) => {
                    let key = if lambda {
                        "lambdaFunctionFailedEventDetails"
                    } else {
                        "taskFailedEventDetails"
                    };
                    let d = if lambda {
                        details::failure(key, fail.error.as_deref(), fail.cause.as_deref())
                    } else {
                        details::task_failed(
                            key,
                            &request.resource,
                            fail.error.as_deref(),
                            fail.cause.as_deref(),
                        )
                    };
                    env.emit(f, &format!("{prefix}Failed"), Some(d));
                    handle_error(f, state, StateError::Plain(fail), env);
                    Progress::Moved
                }
                None if deadline.is_some_and(|d| env.now >= d)
                    || heartbeat_deadline.is_some_and(|d| env.now >= d) =>
                {
                    let key = if lambda {
                        "lambdaFunctionTimedOutEventDetails"
                    } else {
                        "taskTimedOutEventDetails"
                    };
                    let error = if deadline.is_some_and(|d| env.now >= d) {
                        "States.Timeout"
                    } else {
                        "States.HeartbeatTimeout"
                    };
                    let fail = Failure {
                        error: Some(error.into()),
                        cause: None,
                    };
                    let d = details::failure(key, fail.error.as_deref(), None);
                    env.emit(f, &format!("{prefix}TimedOut"), Some(d));
                    handle_error(f, state, StateError::Plain(fail), env);
                    Progress::Moved
                }
                None => {
                    let until = match (deadline, heartbeat_deadline) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    let b = Blocker {
                        until,
                        tasks: vec![(*request).clone()],
                    };
                    f.phase = Phase::Task {
                        request,
                        deadline,
                        heartbeat_deadline,
                        outcome: None,
                        lambda,
                        reader_input,
                    };
                    Progress::Blocked(b)
                }
            }
        }
        Phase::Parallel { mut children } => {
            match step_parallel(f, state, &mut children, root, env) {
                Some(progress) => {
                    f.phase = Phase::Parallel { children };
                    progress
                }
                None => {
                    keep_for_redrive(f, Phase::Parallel { children });
                    Progress::Moved
                }
            }
        }
        Phase::Map(mut run) => match step_map(f, state, &mut run, root, env) {
            Some(progress) => {
                f.phase = Phase::Map(run);
                progress
            }
            None => {
                keep_for_redrive(f, Phase::Map(run));
                Progress::Moved
            }
        },
    }
}

/// Advances a Parallel state; `None` means the state finished (phase already replaced).
fn step_parallel(
    f: &mut Frame,
    state: &State,
    children: &mut [Frame],
    root: &StateMachine,
    env: &mut Env<'_>,
) -> Option<Progress> {
    if let Some(fail) = children.iter().find_map(|c| match &c.done {
        Some(FrameResult::Failed(fail)) => Some(fail.clone()),
        _ => None,
    }) {
        handle_error_with(
            f,
            state,
            StateError::Plain(fail),
            env,
            Some("ParallelStateFailed"),
        );
        return None;
    }
    if children.iter().all(|c| c.done.is_some()) {
        let results: Vec<Value> = children
            .iter()
            .map(|c| match &c.done {
                Some(FrameResult::Succeeded(v)) => v.clone(),
                _ => Value::Null,
            })
            .collect();
        // AWS records ParallelStateSucceeded, then chains ParallelStateExited to the
        // event before it (the last branch event), as it does for MapStateSucceeded.
        let exit_prev = f.last_event;
        env.emit(f, "ParallelStateSucceeded", None);
        if !f.silent {
            f.last_event = exit_prev;
        }
        let effective = f.input.clone();
        if let Err(e) = finish_state(f, state, Value::Array(results), effective, None, env) {
            handle_error(f, state, e, env);
        }
        return None;
    }
    // Branches advance round-robin, one transition each per step, so their events
    // interleave as they do on AWS.
    let mut blocked = Blocker::default();
    let mut moved = false;
    for c in children.iter_mut().filter(|c| c.done.is_none()) {
        match step_frame(c, root, env) {
            Progress::Moved => {
                moved = true;
                if !c.silent {
                    f.last_event = f.last_event.max(c.last_event);
                }
            }
            Progress::Blocked(b) => blocked.merge(b),
        }
    }
    Some(if moved {
        Progress::Moved
    } else {
        Progress::Blocked(blocked)
    })
}

/// Advances a Map state; `None` means the state finished (phase already replaced).
fn step_map(
    f: &mut Frame,
    state: &State,
    run: &mut MapRun,
    root: &StateMachine,
    env: &mut Env<'_>,
) -> Option<Progress> {
    // Settle iterations that ended.
    let mut i = 0;
    while i < run.running.len() {
        let Some(done) = run.running[i].1.done.clone() else {
            i += 1;
            continue;
        };
        let (index, child) = run.running.remove(i);
        if !child.silent {
            f.last_event = f.last_event.max(child.last_event);
        }
        match done {
            FrameResult::Succeeded(out) => {
                run.results[index] = out;
                if !run.distributed {
                    // AWS chains the next iteration to the finished one's last event,
                    // not to this one.
                    let d = details::map_iteration("MapIterationSucceeded", &state.name, index);
                    run.last_iteration_event = env.emit(f, "MapIterationSucceeded", Some(d));
                    f.last_event = child.last_event;
                }
            }
            FrameResult::Failed(fail) => {
                if run.distributed {
                    run.failures += 1;
                    run.results[index] = fail.to_error_output();
                    run.failed.push(index);
                    if exceeds_tolerance(run) {
                        env.emit(f, "MapRunFailed", None);
                        let fail = Failure::new(
                            "States.ExceedToleratedFailureThreshold",
                            "The specified tolerated failure threshold was exceeded",
                        );
                        handle_error_with(
                            f,
                            state,
                            StateError::Plain(fail),
                            env,
                            Some("MapStateFailed"),
                        );
                        return None;
                    }
                } else {
                    let d = details::map_iteration("MapIterationFailed", &state.name, index);
                    env.emit(f, "MapIterationFailed", Some(d));
                    f.last_event = child.last_event;
                    let others: Vec<usize> = run.running.iter().map(|(o, _)| *o).collect();
                    for other in others {
                        let d = details::map_iteration("MapIterationAborted", &state.name, other);
                        env.emit(f, "MapIterationAborted", Some(d));
                    }
                    // The failed and aborted iterations stay, for a redrive.
                    run.running.push((index, child));
                    handle_error_with(
                        f,
                        state,
                        StateError::Plain(fail),
                        env,
                        Some("MapStateFailed"),
                    );
                    return None;
                }
            }
        }
    }
    // Let running iterations move.
    let mut blocked = Blocker::default();
    for (_, c) in run.running.iter_mut() {
        match step_frame(c, root, env) {
            Progress::Moved => {
                if !c.silent {
                    f.last_event = f.last_event.max(c.last_event);
                }
                return Some(Progress::Moved);
            }
            Progress::Blocked(b) => blocked.merge(b),
        }
    }
    // Start the next iteration when there is room.
    if (!run.redo.is_empty() || run.next < run.items.len())
        && (run.max_concurrency == 0 || run.running.len() < run.max_concurrency)
    {
        let index = run.redo.pop().unwrap_or_else(|| {
            run.next += 1;
            run.next - 1
        });
        let StateKind::Map(m) = &state.kind else {
            unreachable!("map phase on a map state")
        };
        let mut graph = f.graph.clone();
        graph.push(GraphStep {
            state: state.name.clone(),
            branch: 0,
        });
        let mut child = Frame::new(
            graph,
            &m.processor.start_at,
            run.items[index].clone(),
            f.vars.clone(),
            f.silent || run.distributed,
            0,
        );
        if !run.distributed {
            let d = details::map_iteration("MapIterationStarted", &state.name, index);
            child.last_event = env.emit(f, "MapIterationStarted", Some(d));
        }
        run.running.push((index, child));
        return Some(Progress::Moved);
    }
    if run.running.is_empty() && run.redo.is_empty() && run.next >= run.items.len() {
        // The recorded histories chain MapStateExited to the event before
        // MapStateSucceeded (the last iteration's, or MapRunSucceeded), not to it.
        let exit_prev = if run.distributed {
            env.emit(f, "MapRunSucceeded", None)
        } else {
            if run.last_iteration_event != 0 {
                f.last_event = run.last_iteration_event;
            }
            f.last_event
        };
        env.emit(f, "MapStateSucceeded", None);
        if !f.silent {
            f.last_event = exit_prev;
        }
        let results = std::mem::take(&mut run.results);
        let effective = f.input.clone();
        if let Err(e) = finish_state(f, state, Value::Array(results), effective, None, env) {
            handle_error(f, state, e, env);
        }
        return None;
    }
    Some(Progress::Blocked(blocked))
}

fn exceeds_tolerance(run: &MapRun) -> bool {
    let count_ok = run
        .tolerated_count
        .is_some_and(|c| run.failures as u64 <= c);
    let pct_ok = run.tolerated_percentage.is_some_and(|p| {
        let total = run.items.len().max(1) as f64;
        (run.failures as f64 / total) * 100.0 <= p
    });
    !(count_ok || pct_ok)
}

fn scope<'a>(input: &'a Value, ctx: &'a Value, vars: &'a Map<String, Value>) -> Scope<'a> {
    Scope {
        input,
        context: ctx,
        vars,
    }
}

fn invalid_path(path: &JsonPath, e: &PathError) -> EvalError {
    EvalError::runtime(format!("Invalid path '{path}' : {e}"))
}

fn apply_path_field(
    field: &PathField,
    value: &Value,
    ctx: &Value,
    vars: &Map<String, Value>,
) -> Result<Value, EvalError> {
    match field {
        PathField::Default => Ok(value.clone()),
        PathField::Null => Ok(json!({})),
        PathField::Path(p) => p
            .eval(&scope(value, ctx, vars))
            .map_err(|e| invalid_path(p, &e)),
    }
}

/// Runs a state's body after it was entered (or on a retry).
fn run_state(f: &mut Frame, state: &State, env: &mut Env<'_>) {
    if let Err(e) = try_run_state(f, state, env) {
        handle_error(f, state, e, env);
    }
}

fn try_run_state(f: &mut Frame, state: &State, env: &mut Env<'_>) -> Result<(), StateError> {
    if state.query_language == QueryLanguage::JSONata {
        return jsonata_state(f, state, env);
    }
    let ctx = f.context(env, state);
    let effective = apply_path_field(&state.input_path, &f.input, &ctx, &f.vars)?;
    let with_params =
        |effective: &Value, ctx: &Value, vars: &Map<String, Value>| match &state.parameters {
            Some(t) if !matches!(state.kind, StateKind::Map(_)) => {
                payload::evaluate(t, &scope(effective, ctx, vars))
            }
            _ => Ok(effective.clone()),
        };
    match &state.kind {
        StateKind::Pass { result } => {
            let params = with_params(&effective, &ctx, &f.vars)?;
            let r = result.clone().unwrap_or(params);
            finish_state(f, state, r, effective, None, env)
        }
        StateKind::Succeed => {
            let out = apply_path_field(&state.output_path, &effective, &ctx, &f.vars)?;
            env.emit(
                f,
                "SucceedStateExited",
                Some(details::state_exited(&state.name, &out, None)),
            );
            f.done = Some(FrameResult::Succeeded(out));
            Ok(())
        }
        StateKind::Fail(fail) => Err(StateError::Plain(fail_failure(
            fail, &f.input, &ctx, &f.vars,
        )?)),
        StateKind::Choice(choice) => {
            let sc = scope(&effective, &ctx, &f.vars);
            let mut chosen = None;
            for rule in &choice.choices {
                let hit = crate::choice::evaluate(&rule.condition, &sc).map_err(|e| {
                    match (&rule.condition, &e) {
                        (
                            Condition::Compare { variable, .. },
                            PathError::NoResults(_) | PathError::MissingProperty(_),
                        ) => invalid_path(variable, &e),
                        _ => EvalError::runtime(e.to_string()),
                    }
                })?;
                if hit {
                    chosen = Some(rule);
                    break;
                }
            }
            let (next, assign) = match chosen {
                Some(r) => (r.next.clone(), r.assign.as_ref()),
                None => match &choice.default {
                    Some(d) => (d.clone(), None),
                    None => {
                        return Err(StateError::Eval(EvalError {
                            error: "States.NoChoiceMatched",
                            message: "No Matches!".into(),
                        }))
                    }
                },
            };
            let out = apply_path_field(&state.output_path, &effective, &ctx, &f.vars)?;
            let assigned = match assign.or(state.assign.as_ref()) {
                Some(t) => Some(eval_assign(t, &effective, &ctx, &f.vars)?),
                None => None,
            };
            env.emit(
                f,
                "ChoiceStateExited",
                Some(details::state_exited(&state.name, &out, assigned.as_ref())),
            );
            if let Some(a) = assigned {
                f.vars.extend(a);
            }
            f.current = next;
            f.input = out;
            f.phase = Phase::Enter;
            Ok(())
        }
        StateKind::Wait(wait) => {
            let until = wait_until(wait, &effective, &ctx, &f.vars, env.now, false)?;
            f.phase = Phase::Sleeping {
                until,
                then: AfterSleep::WaitDone { effective },
            };
            Ok(())
        }
        StateKind::Task(task) => {
            // `.waitForTaskToken` integrations pass `$$.Task.Token` to the worker, which
            // later reports back through SendTaskSuccess/Failure.
            let token = task_token(&task.resource);
            let mut ctx = ctx;
            if let Some(t) = &token {
                ctx["Task"] = json!({ "Token": t });
            }
            let params = with_params(&effective, &ctx, &f.vars)?;
            let sc = scope(&effective, &ctx, &f.vars);
            let timeout = number(task.timeout_seconds.as_ref(), &sc, "TimeoutSeconds")?;
            let heartbeat = number(task.heartbeat_seconds.as_ref(), &sc, "HeartbeatSeconds")?;
            let timeout = timeout.map(|t| t.max(0.0) as u64);
            let heartbeat = heartbeat.map(|t| t.max(0.0) as u64);
            let credentials = match &task.credentials {
                Some(t) => Some(payload::evaluate(t, &sc)?),
                None => None,
            };
            schedule_task(
                f,
                state,
                &task.resource,
                params,
                timeout,
                heartbeat,
                token,
                env,
            );
            set_credentials(f, credentials);
            Ok(())
        }
        StateKind::Parallel { branches } => {
            let input = with_params(&effective, &ctx, &f.vars)?;
            start_parallel(f, state, branches, input, env);
            Ok(())
        }
        StateKind::Map(m) if m.item_reader.is_some() => {
            let reader = m.item_reader.as_ref().expect("checked");
            let input = match &reader.parameters {
                Some(t) => payload::evaluate(t, &scope(&effective, &ctx, &f.vars))?,
                None => json!({}),
            };
            read_items_with(f, state, reader, input, effective, env);
            Ok(())
        }
        StateKind::Map(m) => {
            let sc = scope(&effective, &ctx, &f.vars);
            let items = match &m.items_path {
                PathField::Path(p) => p.eval(&sc).map_err(|e| invalid_path(p, &e))?,
                _ => effective.clone(),
            };
            let Value::Array(items) = items else {
                return Err(EvalError::runtime(format!(
                    "Map state input must be an array but was: {items}"
                ))
                .into());
            };
            let run = start_map(f, state, m, items, &effective, &ctx, None, env)?;
            f.phase = Phase::Map(Box::new(run));
            Ok(())
        }
    }
}

/// Dispatches a Map's ItemReader as a task; its result becomes the items.
fn read_items_with(
    f: &mut Frame,
    state: &State,
    reader: &crate::asl::ItemReader,
    mut input: Value,
    effective: Value,
    env: &mut Env<'_>,
) {
    if let Value::Object(o) = &mut input {
        o.insert(
            "ReaderConfig".into(),
            Value::Object(reader.reader_config.clone()),
        );
    }
    let id = *env.next_task_id;
    *env.next_task_id += 1;
    f.phase = Phase::Task {
        request: Box::new(TaskRequest {
            id,
            resource: reader.resource.clone(),
            input,
            state_name: state.name.clone(),
            timeout_seconds: None,
            heartbeat_seconds: None,
            attempt: f.retries.iter().sum(),
            task_token: None,
            credentials: None,
        }),
        deadline: None,
        heartbeat_deadline: None,
        outcome: None,
        lambda: false,
        reader_input: Some(effective),
    };
}

fn start_parallel(
    f: &mut Frame,
    state: &State,
    branches: &[StateMachine],
    input: Value,
    env: &mut Env<'_>,
) {
    env.emit(f, "ParallelStateStarted", None);
    let children = (0..branches.len())
        .map(|i| {
            let mut graph = f.graph.clone();
            graph.push(GraphStep {
                state: state.name.clone(),
                branch: i,
            });
            Frame::new(
                graph,
                &branches[i].start_at,
                input.clone(),
                f.vars.clone(),
                f.silent,
                f.last_event,
            )
        })
        .collect();
    f.phase = Phase::Parallel { children };
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[allow(clippy::too_many_arguments)]
fn start_map(
    f: &mut Frame,
    state: &State,
    m: &MapState,
    items: Vec<Value>,
    effective: &Value,
    ctx: &Value,
    jsonata_selector: Option<&Value>,
    env: &mut Env<'_>,
) -> Result<MapRun, StateError> {
    let sc = scope(effective, ctx, &f.vars);
    let max_concurrency =
        int_field(m.max_concurrency.as_ref(), &sc, "MaxConcurrency")?.unwrap_or(0);
    let batch_size = match &m.item_batcher {
        Some(b) => {
            int_field(b.max_items_per_batch.as_ref(), &sc, "MaxItemsPerBatch")?.filter(|n| *n > 0)
        }
        None => None,
    };
    let length = match (&m.item_batcher, batch_size) {
        (Some(_), Some(n)) => items.len().div_ceil(n as usize),
        (Some(_), None) => usize::from(!items.is_empty()),
        _ => items.len(),
    };
    env.emit(
        f,
        "MapStateStarted",
        Some(details::map_state_started(length)),
    );
    let sc = scope(effective, ctx, &f.vars);
    let tolerated_count = int_field(
        m.tolerated_failure_count.as_ref(),
        &sc,
        "ToleratedFailureCount",
    )?;
    if tolerated_count.is_some_and(|c| c < 0) {
        return Err(EvalError::runtime("ToleratedFailureCount cannot be negative.").into());
    }
    let tolerated_percentage = float_field(
        m.tolerated_failure_percentage.as_ref(),
        &sc,
        "ToleratedFailurePercentage",
    )?;
    if tolerated_percentage.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
        return Err(
            EvalError::runtime("ToleratedFailurePercentage must be between 0 and 100.").into(),
        );
    }
    // Select each item (ItemSelector / Parameters see `$$.Map.Item`).
    let mut selected = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let mut c = ctx.clone();
        c["Map"] = json!({"Item": {"Index": i, "Value": item}});
        let v = match (jsonata_selector, &state.parameters) {
            (Some(t), _) => {
                let mut env_vars = f.vars.clone();
                env_vars.insert("states".into(), json!({"input": effective, "context": c}));
                jsonata::evaluate_template(t, &env_vars, "ItemSelector")?
            }
            (None, Some(t)) => payload::evaluate(t, &scope(effective, &c, &f.vars))?,
            (None, None) => item,
        };
        selected.push(v);
    }
    if let Some(b) = &m.item_batcher {
        let per = batch_size.unwrap_or(selected.len().max(1) as i64) as usize;
        let batch_input = match &b.batch_input {
            Some(t) => payload::evaluate(t, &sc)?,
            None => Value::Null,
        };
        selected = selected
            .chunks(per.max(1))
            .map(|chunk| {
                let mut o = Map::new();
                if !batch_input.is_null() {
                    o.insert("BatchInput".into(), batch_input.clone());
                }
                o.insert("Items".into(), Value::Array(chunk.to_vec()));
                Value::Object(o)
            })
            .collect();
    }
    let map_run_arn = format!(
        "{}/{}:{}",
        env.info
            .state_machine_arn
            .replace(":stateMachine:", ":mapRun:"),
        m.label.clone().unwrap_or_else(|| state.name.clone()),
        env.info.name
    );
    let run_started_event = if m.distributed {
        env.emit(
            f,
            "MapRunStarted",
            Some(details::map_run_started(&map_run_arn)),
        )
    } else {
        0
    };
    let n = selected.len();
    Ok(MapRun {
        items: selected,
        running: Vec::new(),
        next: 0,
        results: vec![Value::Null; n],
        failures: 0,
        max_concurrency: max_concurrency.max(0) as usize,
        tolerated_count: tolerated_count.map(|c| c as u64),
        tolerated_percentage,
        distributed: m.distributed,
        map_run_arn,
        run_started_event,
        last_iteration_event: 0,
        failed: Vec::new(),
        redo: Vec::new(),
    })
}

fn field_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn resolve_number(
    field: &NumberField,
    sc: &Scope<'_>,
    name: &str,
) -> Result<Option<Value>, EvalError> {
    match field {
        NumberField::Literal(v) => Ok(Some(v.clone())),
        NumberField::Path(p) => p.eval(sc).map(Some).map_err(|e| invalid_path(p, &e)),
        NumberField::Jsonata(expr) => {
            let mut vars = sc.vars.clone();
            vars.insert(
                "states".into(),
                json!({"input": sc.input, "context": sc.context}),
            );
            jsonata::evaluate_template(&Value::String(expr.clone()), &vars, name).map(Some)
        }
    }
}

fn int_field(
    field: Option<&NumberField>,
    sc: &Scope<'_>,
    name: &str,
) -> Result<Option<i64>, EvalError> {
    typed_field(field, sc, name, "integer", |v| match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    })
}

fn float_field(
    field: Option<&NumberField>,
    sc: &Scope<'_>,
    name: &str,
) -> Result<Option<f64>, EvalError> {
    typed_field(field, sc, name, "float", |v| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    })
}

/// A numeric field (literal, path or expression) parsed by `parse`, with AWS's error when the
/// value is not a valid `kind`.
fn typed_field<T>(
    field: Option<&NumberField>,
    sc: &Scope<'_>,
    name: &str,
    kind: &str,
    parse: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, EvalError> {
    let Some(field) = field else { return Ok(None) };
    let Some(v) = resolve_number(field, sc, name)? else {
        return Ok(None);
    };
    match (parse(&v), field) {
        (Some(n), _) => Ok(Some(n)),
        (None, NumberField::Path(p)) => Err(EvalError::runtime(format!(
            "The {name}Path field refers to value \"{}\" which is not a valid {kind}: {p}",
            field_text(&v)
        ))),
        (None, _) => Err(EvalError::runtime(format!(
            "The {name} field refers to value \"{}\" which is not a valid {kind}",
            field_text(&v)
        ))),
    }
}

fn number(
    field: Option<&NumberField>,
    sc: &Scope<'_>,
    name: &str,
) -> Result<Option<f64>, EvalError> {
    let Some(field) = field else { return Ok(None) };
    Ok(resolve_number(field, sc, name)?.and_then(|v| v.as_f64()))
}

fn set_credentials(f: &mut Frame, credentials: Option<Value>) {
    if let Phase::Task { request, .. } = &mut f.phase {
        request.credentials = credentials;
    }
}

fn task_token(resource: &str) -> Option<String> {
    resource
        .ends_with(".waitForTaskToken")
        .then(crate::intrinsics::uuid_v4)
}

#[allow(clippy::too_many_arguments)]
fn schedule_task(
    f: &mut Frame,
    state: &State,
    resource: &str,
    input: Value,
    timeout: Option<u64>,
    heartbeat: Option<u64>,
    task_token: Option<String>,
    env: &mut Env<'_>,
) {
    let lambda = resource.starts_with("arn:aws:lambda:")
        || resource.contains(":lambda:") && resource.contains(":function:");
    let id = *env.next_task_id;
    *env.next_task_id += 1;
    let attempt = f.retries.iter().sum();
    if lambda {
        env.emit(
            f,
            "LambdaFunctionScheduled",
            Some(details::lambda_scheduled(resource, &input, timeout)),
        );
        env.emit(f, "LambdaFunctionStarted", None);
    } else {
        env.emit(
            f,
            "TaskScheduled",
            Some(details::task_scheduled(resource, &input, timeout)),
        );
        env.emit(f, "TaskStarted", Some(details::task_started(resource)));
    }
    let deadline = Some(
        env.now
            .plus_millis(timeout.unwrap_or(99_999_999) as i64 * 1000),
    );
    f.phase = Phase::Task {
        request: Box::new(TaskRequest {
            id,
            resource: resource.to_string(),
            input,
            state_name: state.name.clone(),
            timeout_seconds: timeout,
            heartbeat_seconds: heartbeat,
            attempt,
            task_token,
            credentials: None,
        }),
        deadline,
        heartbeat_deadline: heartbeat.map(|h| env.now.plus_millis(h as i64 * 1000)),
        outcome: None,
        lambda,
        reader_input: None,
    };
}

fn fail_failure(
    fail: &Fail,
    input: &Value,
    ctx: &Value,
    vars: &Map<String, Value>,
) -> Result<Failure, EvalError> {
    let sc = scope(input, ctx, vars);
    let text = |literal: &Option<Value>,
                path: &Option<String>,
                field: &str|
     -> Result<Option<String>, EvalError> {
        if let Some(p) = path {
            return payload::expression(p, field, &sc).map(|v| Some(field_text(&v)));
        }
        Ok(literal.as_ref().map(field_text))
    };
    Ok(Failure {
        error: text(&fail.error, &fail.error_path, "ErrorPath")?,
        cause: text(&fail.cause, &fail.cause_path, "CausePath")?,
    })
}

const MAX_WAIT_SECONDS: i64 = i32::MAX as i64;

fn wait_until(
    wait: &Wait,
    effective: &Value,
    ctx: &Value,
    vars: &Map<String, Value>,
    now: Timestamp,
    jsonata: bool,
) -> Result<Timestamp, EvalError> {
    let err = |msg: String| {
        if jsonata {
            EvalError {
                error: "States.QueryEvaluationError",
                message: msg,
            }
        } else {
            EvalError::runtime(msg)
        }
    };
    let seconds_until = |secs: i64| -> Result<Timestamp, EvalError> {
        if secs > MAX_WAIT_SECONDS {
            return Err(err("Wait state delay is too long.".into()));
        }
        Ok(now.plus_millis(secs * 1000))
    };
    let at = |nanos: i128| -> Result<Timestamp, EvalError> {
        let ms = (nanos / 1_000_000) as i64;
        if ms - now.millis() > MAX_WAIT_SECONDS * 1000 {
            return Err(err("Wait state delay is too long.".into()));
        }
        Ok(Timestamp(ms.max(now.millis())))
    };
    match wait {
        Wait::Seconds(v) => {
            let v = if jsonata {
                jsonata_value(v, effective, ctx, vars, "Seconds")?
            } else {
                v.clone()
            };
            match v.as_i64() {
                Some(s) if s >= 0 => seconds_until(s),
                _ => Err(err(format!(
                    "The Seconds field must be a non-negative integer but was: {v}"
                ))),
            }
        }
        Wait::Timestamp(v) => {
            let v = if jsonata {
                jsonata_value(v, effective, ctx, vars, "Timestamp")?
            } else {
                v.clone()
            };
            let text = field_text(&v);
            match parse_rfc3339(&text) {
                Some(n) => at(n),
                None => Err(err(format!(
                    "The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {text}"
                ))),
            }
        }
        Wait::SecondsPath(p) => {
            let v = p.eval(&scope(effective, ctx, vars)).map_err(|_| {
                err(format!(
                    "The SecondsPath parameter does not reference an input value: {p}"
                ))
            })?;
            match &v {
                Value::Number(n) if n.is_i64() || n.is_u64() => {
                    let s = n.as_i64().unwrap_or(i64::MAX);
                    if s < 0 {
                        Err(err(format!(
                            "The SecondsPath parameter references a negative value: {p} == {v}"
                        )))
                    } else {
                        seconds_until(s)
                    }
                }
                _ => Err(err(format!(
                    "The SecondsPath parameter cannot be parsed as a long value: {p} == {}",
                    field_text(&v)
                ))),
            }
        }
        Wait::TimestampPath(p) => {
            let v = p.eval(&scope(effective, ctx, vars)).map_err(|_| {
                err(format!(
                    "The TimestampPath parameter does not reference an input value: {p}"
                ))
            })?;
            match v.as_str().and_then(parse_rfc3339) {
                Some(n) => at(n),
                None => Err(err(format!(
                    "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {p} == {}",
                    field_text(&v)
                ))),
            }
        }
    }
}

fn eval_assign(
    template: &Value,
    input: &Value,
    ctx: &Value,
    vars: &Map<String, Value>,
) -> Result<Map<String, Value>, EvalError> {
    match payload::evaluate(template, &scope(input, ctx, vars))? {
        Value::Object(m) => Ok(m),
        other => Err(EvalError::runtime(format!(
            "Assign must be an object but was {other}"
        ))),
    }
}

/// Applies ResultSelector, Assign, ResultPath and OutputPath to a state's result, emits
/// the exit event and moves on.
fn finish_state(
    f: &mut Frame,
    state: &State,
    result: Value,
    effective: Value,
    jsonata_output: Option<(Value, Option<Map<String, Value>>)>,
    env: &mut Env<'_>,
) -> Result<(), StateError> {
    let (out, assigned) = match jsonata_output {
        Some(o) => o,
        None if state.query_language == QueryLanguage::JSONata => {
            let result = match state.kind {
                StateKind::Task(_) | StateKind::Map(_) | StateKind::Parallel { .. } => Some(result),
                _ => None,
            };
            self::jsonata_output(f, state, result, env)?
        }
        None => {
            let ctx = f.context(env, state);
            let result = match (&state.result_selector, &state.kind) {
                (Some(t), StateKind::Task(_) | StateKind::Map(_) | StateKind::Parallel { .. }) => {
                    payload::evaluate(t, &scope(&result, &ctx, &f.vars))?
                }
                _ => result,
            };
            let assign_input = match &state.kind {
                StateKind::Wait(_) => &effective,
                _ => &result,
            };
            let assigned = match &state.assign {
                Some(t) => Some(eval_assign(t, assign_input, &ctx, &f.vars)?),
                None => None,
            };
            let combined = match &state.result_path {
                PathField::Default => result,
                PathField::Null => f.input.clone(),
                PathField::Path(p) if p.is_root() => result,
                PathField::Path(p) => {
                    let mut base = f.input.clone();
                    p.set(&mut base, result)
                        .map_err(|e| EvalError::runtime(format!("Invalid path '{p}' : {e}")))?;
                    base
                }
            };
            let out = apply_path_field(&state.output_path, &combined, &ctx, &f.vars)?;
            (out, assigned)
        }
    };
    let ty = format!("{}StateExited", state_type(state));
    env.emit(
        f,
        &ty,
        Some(details::state_exited(&state.name, &out, assigned.as_ref())),
    );
    if let Some(a) = assigned {
        f.vars.extend(a);
    }
    advance(f, state, out, state.next.clone());
    Ok(())
}

fn advance(f: &mut Frame, state: &State, out: Value, next: Option<String>) {
    match next {
        Some(n) if !state.end => {
            f.current = n;
            f.input = out;
            f.phase = Phase::Enter;
        }
        _ => {
            f.phase = Phase::Enter;
            f.done = Some(FrameResult::Succeeded(out));
        }
    }
}

/// Puts a frame that failed or was interrupted back to work (see [`Execution::redrive`]):
/// a Parallel or Map it ended in resumes with its unsuccessful branches and iterations
/// redriven; any other state is entered again with the input it had.
fn redrive_frame(f: &mut Frame, redriven_event: u64) {
    if matches!(f.done, Some(FrameResult::Succeeded(_))) {
        return;
    }
    f.done = None;
    if !f.silent {
        f.last_event = redriven_event;
    }
    match &mut f.phase {
        Phase::Parallel { children } => {
            for c in children.iter_mut() {
                redrive_frame(c, redriven_event);
            }
        }
        Phase::Map(run) => {
            for (_, c) in run.running.iter_mut() {
                redrive_frame(c, redriven_event);
            }
            // Failed iterations of a distributed Map start again from their item.
            run.failures -= run.failed.len();
            run.redo.append(&mut run.failed);
        }
        _ => f.phase = Phase::Enter,
    }
}

/// Keeps the Parallel or Map phase of a frame that failed with it, for a redrive.
fn keep_for_redrive(f: &mut Frame, phase: Phase) {
    if matches!(f.done, Some(FrameResult::Failed(_))) {
        f.phase = phase;
    }
}

fn error_matches(list: &[String], error: &str) -> bool {
    // States.ALL matches everything except the terminal runtime errors, as on AWS.
    list.iter().any(|e| {
        e == error
            || (e == "States.ALL"
                && error != "States.Runtime"
                && error != "States.DataLimitExceeded")
    })
}

/// Matches an error against Retry then Catch; otherwise fails the frame.
fn handle_error(f: &mut Frame, state: &State, e: StateError, env: &mut Env<'_>) {
    handle_error_with(f, state, e, env, None)
}

/// As [`handle_error`]; `failed_event` (MapStateFailed, ParallelStateFailed) is recorded
/// only when the error is not retried, as AWS does.
fn handle_error_with(
    f: &mut Frame,
    state: &State,
    e: StateError,
    env: &mut Env<'_>,
    failed_event: Option<&str>,
) {
    let failure = match e {
        StateError::Plain(fail) => fail,
        StateError::Eval(e) => Failure::new(
            e.error,
            format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {}",
                state.name, f.entered_event, e.message
            ),
        ),
    };
    let name = failure.error.clone().unwrap_or_default();
    // JSONata evaluation errors get their own event (and a failed Map says so) before
    // the state's error handling runs.
    let mut failed_event = failed_event;
    if name == "States.QueryEvaluationError" {
        let mut d = Map::new();
        if let Some(c) = &failure.cause {
            d.insert("cause".into(), json!(c));
        }
        d.insert("error".into(), json!(name));
        let location = failure
            .cause
            .as_deref()
            .and_then(|c| {
                let start =
                    c.find("specified for the field '")? + "specified for the field '".len();
                let len = c[start..].find('\'')?;
                Some(c[start..start + len].to_string())
            })
            // A Wait's time that evaluated to an unusable value is reported at its field.
            .or_else(|| match &state.kind {
                StateKind::Wait(Wait::Timestamp(_)) => Some("Timestamp".into()),
                StateKind::Wait(Wait::Seconds(_)) => Some("Seconds".into()),
                _ => None,
            });
        if let Some(loc) = location {
            d.insert("location".into(), json!(loc));
        }
        d.insert("state".into(), json!(state.name));
        // AWS chains the event to the event the state's entry followed, except for a
        // Wait, which evaluates its time after it entered.
        if !f.silent {
            f.last_event = match state.kind {
                StateKind::Wait(_) => f.entered_event,
                _ => f.entered_prev,
            };
        }
        env.emit(
            f,
            "EvaluationFailed",
            Some(("evaluationFailedEventDetails".into(), Value::Object(d))),
        );
        if failed_event.is_none() && matches!(state.kind, StateKind::Map(_)) {
            failed_event = Some("MapStateFailed");
        }
    }
    if let StateKind::Fail(_) = state.kind {
        f.phase = Phase::Enter;
        f.done = Some(FrameResult::Failed(failure));
        return;
    }
    if let Some(i) = state
        .retry
        .iter()
        .position(|r| error_matches(&r.error_equals, &name))
    {
        let r = &state.retry[i];
        let attempts = f.retries.get(i).copied().unwrap_or(0);
        if attempts < r.max_attempts {
            if let Some(slot) = f.retries.get_mut(i) {
                *slot += 1;
            }
            let mut delay = r.interval_seconds * r.backoff_rate.powi(attempts as i32);
            if let Some(max) = r.max_delay_seconds {
                delay = delay.min(max);
            }
            if r.jitter_full {
                delay *= fastrand::f64();
            }
            f.phase = Phase::Sleeping {
                until: env.now.plus_millis((delay * 1000.0) as i64),
                then: AfterSleep::Retry,
            };
            return;
        }
    }
    if let Some(ty) = failed_event {
        env.emit(f, ty, None);
    }
    if let Some(c) = state
        .catch
        .iter()
        .find(|c| error_matches(&c.error_equals, &name))
    {
        if let Err(e) = catch(f, state, c, &failure, env) {
            let fail = Failure::new(
                e.error,
                format!(
                    "An error occurred while executing the state '{}' (entered at the event id #{}). {}",
                    state.name, f.entered_event, e.message
                ),
            );
            f.phase = Phase::Enter;
            f.done = Some(FrameResult::Failed(fail));
        }
        return;
    }
    f.phase = Phase::Enter;
    f.done = Some(FrameResult::Failed(failure));
}

fn catch(
    f: &mut Frame,
    state: &State,
    c: &Catcher,
    failure: &Failure,
    env: &mut Env<'_>,
) -> Result<(), EvalError> {
    let error_output = failure.to_error_output();
    let ctx = f.context(env, state);
    let (out, assigned) = if state.query_language == QueryLanguage::JSONata {
        let mut vars = f.vars.clone();
        vars.insert(
            "states".into(),
            json!({"input": f.input, "context": ctx, "errorOutput": error_output}),
        );
        let assigned = match &c.assign {
            Some(t) => Some(object(
                jsonata::evaluate_template(t, &vars, "Assign")?,
                "Assign",
            )?),
            None => None,
        };
        let out = match &c.output {
            Some(t) => jsonata::evaluate_template(t, &vars, "Output")?,
            None => error_output,
        };
        (out, assigned)
    } else {
        let assigned = match &c.assign {
            Some(t) => Some(eval_assign(t, &error_output, &ctx, &f.vars)?),
            None => None,
        };
        let out = match &c.result_path {
            PathField::Default => error_output,
            PathField::Null => f.input.clone(),
            PathField::Path(p) if p.is_root() => error_output,
            PathField::Path(p) => {
                let mut base = f.input.clone();
                p.set(&mut base, error_output)
                    .map_err(|e| EvalError::runtime(format!("Invalid path '{p}' : {e}")))?;
                base
            }
        };
        (out, assigned)
    };
    let ty = format!("{}StateExited", state_type(state));
    env.emit(
        f,
        &ty,
        Some(details::state_exited(&state.name, &out, assigned.as_ref())),
    );
    if let Some(a) = assigned {
        f.vars.extend(a);
    }
    f.current = c.next.clone();
    f.input = out;
    f.phase = Phase::Enter;
    Ok(())
}

fn object(v: Value, field: &str) -> Result<Map<String, Value>, EvalError> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(EvalError {
            error: "States.QueryEvaluationError",
            message: format!("The field '{field}' must be an object but was {other}"),
        }),
    }
}

fn jsonata_value(
    v: &Value,
    input: &Value,
    ctx: &Value,
    vars: &Map<String, Value>,
    field: &str,
) -> Result<Value, EvalError> {
    let mut vars = vars.clone();
    vars.insert("states".into(), json!({"input": input, "context": ctx}));
    jsonata::evaluate_template(v, &vars, field)
}

/// A state in JSONata mode: Arguments/Output/Assign templates with `{% %}` expressions,
/// `$states.input`, `$states.result`, `$states.context`.
/// A JSONata state's Output and Assign, with `$states.result` when the state has one.
fn jsonata_output(
    f: &Frame,
    state: &State,
    result: Option<Value>,
    env: &Env<'_>,
) -> Result<(Value, Option<Map<String, Value>>), EvalError> {
    let mut vars = f.vars.clone();
    let mut states = json!({"input": f.input, "context": f.context(env, state)});
    if let Some(r) = &result {
        states["result"] = r.clone();
    }
    vars.insert("states".into(), states);
    let assigned = match &state.assign {
        Some(t) => Some(object(
            jsonata::evaluate_template(t, &vars, "Assign")?,
            "Assign",
        )?),
        None => None,
    };
    let out = match &state.output {
        Some(t) => jsonata::evaluate_template(t, &vars, "Output")?,
        None => result.unwrap_or_else(|| f.input.clone()),
    };
    Ok((out, assigned))
}

fn jsonata_state(f: &mut Frame, state: &State, env: &mut Env<'_>) -> Result<(), StateError> {
    let ctx = f.context(env, state);
    let input = f.input.clone();
    let mut vars = f.vars.clone();
    vars.insert("states".into(), json!({"input": input, "context": ctx}));
    match &state.kind {
        StateKind::Pass { .. } => {
            let effective = f.input.clone();
            let o = jsonata_output(f, state, None, env)?;
            finish_state(f, state, Value::Null, effective, Some(o), env)
        }
        StateKind::Succeed => {
            let out = match &state.output {
                Some(t) => jsonata::evaluate_template(t, &vars, "Output")?,
                None => f.input.clone(),
            };
            env.emit(
                f,
                "SucceedStateExited",
                Some(details::state_exited(&state.name, &out, None)),
            );
            f.done = Some(FrameResult::Succeeded(out));
            Ok(())
        }
        StateKind::Fail(fail) => {
            let text = |v: &Option<Value>, field: &str| -> Result<Option<String>, EvalError> {
                match v {
                    Some(v) => {
                        jsonata::evaluate_template(v, &vars, field).map(|v| Some(field_text(&v)))
                    }
                    None => Ok(None),
                }
            };
            Err(StateError::Plain(Failure {
                error: text(&fail.error, "Error")?,
                cause: text(&fail.cause, "Cause")?,
            }))
        }
        StateKind::Choice(choice) => {
            let mut chosen = None;
            for rule in &choice.choices {
                let Condition::Jsonata(c) = &rule.condition else {
                    continue;
                };
                let v = jsonata::evaluate_template(c, &vars, "Condition")?;
                match v {
                    Value::Bool(true) => {
                        chosen = Some(rule);
                        break;
                    }
                    Value::Bool(false) => {}
                    other => {
                        return Err(EvalError {
                            error: "States.QueryEvaluationError",
                            message: format!(
                                "The Condition must evaluate to a boolean but was {other}"
                            ),
                        }
                        .into())
                    }
                }
            }
            let (next, assign, output) = match chosen {
                Some(r) => (r.next.clone(), r.assign.as_ref(), r.output.as_ref()),
                None => match &choice.default {
                    Some(d) => (d.clone(), state.assign.as_ref(), state.output.as_ref()),
                    None => {
                        return Err(StateError::Eval(EvalError {
                            error: "States.NoChoiceMatched",
                            message: "No Matches!".into(),
                        }))
                    }
                },
            };
            let assigned = match assign {
                Some(t) => Some(object(
                    jsonata::evaluate_template(t, &vars, "Assign")?,
                    "Assign",
                )?),
                None => None,
            };
            let out = match output {
                Some(t) => jsonata::evaluate_template(t, &vars, "Output")?,
                None => f.input.clone(),
            };
            env.emit(
                f,
                "ChoiceStateExited",
                Some(details::state_exited(&state.name, &out, assigned.as_ref())),
            );
            if let Some(a) = assigned {
                f.vars.extend(a);
            }
            f.current = next;
            f.input = out;
            f.phase = Phase::Enter;
            Ok(())
        }
        StateKind::Wait(wait) => {
            let until = wait_until(wait, &input, &ctx, &f.vars, env.now, true)?;
            // JSONata waits finish through the same path as JSONPath ones; Output and
            // Assign are applied when the wait ends.
            f.phase = Phase::Sleeping {
                until,
                then: AfterSleep::WaitDone { effective: input },
            };
            Ok(())
        }
        StateKind::Task(task) => {
            let token = task_token(&task.resource);
            let mut vars = vars;
            if let Some(t) = &token {
                vars["states"]["context"]["Task"] = json!({ "Token": t });
            }
            let args = match &state.arguments {
                Some(t) => jsonata::evaluate_template(t, &vars, "Arguments")?,
                None => input.clone(),
            };
            let credentials = match &task.credentials {
                Some(t) => Some(jsonata::evaluate_template(t, &vars, "Credentials")?),
                None => None,
            };
            let sc = scope(&input, &ctx, &f.vars);
            let timeout = number(task.timeout_seconds.as_ref(), &sc, "TimeoutSeconds")?
                .map(|t| t.max(0.0) as u64);
            let heartbeat = number(task.heartbeat_seconds.as_ref(), &sc, "HeartbeatSeconds")?
                .map(|t| t.max(0.0) as u64);
            schedule_task(
                f,
                state,
                &task.resource,
                args,
                timeout,
                heartbeat,
                token,
                env,
            );
            set_credentials(f, credentials);
            Ok(())
        }
        StateKind::Parallel { branches } => {
            let args = match &state.arguments {
                Some(t) => jsonata::evaluate_template(t, &vars, "Arguments")?,
                None => input.clone(),
            };
            start_parallel(f, state, branches, args, env);
            Ok(())
        }
        StateKind::Map(m) => {
            let query = |message: String| EvalError {
                error: "States.QueryEvaluationError",
                message,
            };
            let items = match &m.items {
                Some(t) => {
                    let v = jsonata::evaluate_template(t, &vars, "Items")?;
                    if !v.is_array() {
                        let expr = t
                            .as_str()
                            .map(|s| {
                                s.trim()
                                    .trim_start_matches("{%")
                                    .trim_end_matches("%}")
                                    .trim()
                            })
                            .unwrap_or("");
                        return Err(query(format!(
                            "The JSONata expression '{expr}' specified for the field 'Items' returned an unexpected result type. Expected 'array', but was '{}' for value: {v}",
                            json_type(&v)
                        ))
                        .into());
                    }
                    v
                }
                None => input.clone(),
            };
            let Value::Array(items) = items else {
                return Err(
                    query(format!("Map state input must be an array but was: {items}")).into(),
                );
            };
            let run = start_map(
                f,
                state,
                m,
                items,
                &input,
                &ctx,
                state.parameters.as_ref(),
                env,
            )?;
            f.phase = Phase::Map(Box::new(run));
            Ok(())
        }
    }
}
