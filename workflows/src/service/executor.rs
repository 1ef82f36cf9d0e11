//! The executor: drives executions step by step, persists STANDARD ones after every
//! transition, dispatches tasks and parks blocked executions on the timer loop.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;
use trellis_core::target::{BoxFuture, Target, TargetError};
use trellis_core::ApiError;
use trellis_store::Write;

use super::{history_kind, Inner, Version, KIND_DEFINITION, KIND_EXECUTION};
use crate::history::HistoryEvent;
use crate::interpreter::{Execution, ExecutionInfo, Status, Step, TaskOutcome, TaskRequest};
use crate::time::Timestamp;

/// The most steps committed together. Steps between two commits have no effect outside the
/// execution (Pass, Choice, Map and Parallel bookkeeping): a task is dispatched, a timer armed
/// or the end reported only after the step that led to it is committed, so a crash makes the
/// execution redo at most such steps, never a task. 1 commits every single step.
const MAX_STEPS_PER_COMMIT: usize = 128;

/// An execution as stored: its summary, plus the interpreter state while it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExecDoc {
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub name: String,
    pub status: String,
    pub start_date: i64,
    #[serde(default)]
    pub stop_date: Option<i64>,
    pub input: String,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
    /// The id of the definition this execution runs (`sfn.definition`).
    pub version_id: String,
    pub role_arn: String,
    #[serde(default)]
    pub state_machine_name: String,
    /// The version the execution runs, when started by a version or an alias ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_machine_version_arn: Option<String>,
    /// The alias it was started by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_machine_alias_arn: Option<String>,
    /// The interpreter state; `None` once the execution has ended.
    #[serde(default)]
    pub execution: Option<Execution>,
    /// The interpreter state a failed, timed-out or aborted execution ended in, kept for
    /// RedriveExecution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_from: Option<Execution>,
    #[serde(default)]
    pub redrive_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_date: Option<i64>,
    /// The `clientToken` of the last RedriveExecution, which a retry of it repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_token: Option<String>,
}

/// One execution in memory.
pub(crate) struct ExecHandle {
    pub arn: String,
    pub durable: bool,
    pub version: Arc<Version>,
    pub state: tokio::sync::Mutex<ExecState>,
    /// Becomes true when the execution ends.
    pub done: watch::Sender<bool>,
    /// What ListExecutions shows, readable without waiting for a running step.
    pub summary: std::sync::Mutex<Summary>,
}

/// An execution's list entry.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub state_machine_arn: String,
    pub name: String,
    pub status: String,
    pub start_date: i64,
    pub stop_date: Option<i64>,
    pub version_arn: Option<String>,
    pub alias_arn: Option<String>,
    pub redrive_count: u32,
    pub redrive_date: Option<i64>,
}

impl Summary {
    pub(crate) fn of(doc: &ExecDoc) -> Summary {
        Summary {
            state_machine_arn: doc.state_machine_arn.clone(),
            name: doc.name.clone(),
            status: doc.status.clone(),
            start_date: doc.start_date,
            stop_date: doc.stop_date,
            version_arn: doc.state_machine_version_arn.clone(),
            alias_arn: doc.state_machine_alias_arn.clone(),
            redrive_count: doc.redrive_count,
            redrive_date: doc.redrive_date,
        }
    }
}

pub(crate) struct ExecState {
    pub doc: ExecDoc,
    /// Task ids handed to an invoker and not yet completed.
    dispatched: HashSet<u64>,
    /// Whether a drive loop owns the execution; checked and cleared under the lock, so a
    /// change made under the lock is always seen by a step.
    driving: bool,
    /// Events recorded but not yet committed (a failed commit keeps them for the next).
    pub unsaved: Vec<HistoryEvent>,
    /// Tokens handed to workers, forgotten when the execution ends.
    tokens: Vec<String>,
    /// Steps taken since the last commit.
    uncommitted_steps: usize,
}

impl ExecHandle {
    pub fn new(doc: ExecDoc, version: Arc<Version>, durable: bool) -> Arc<ExecHandle> {
        let ended = doc.execution.is_none();
        let (done, _) = watch::channel(ended);
        let summary = std::sync::Mutex::new(Summary::of(&doc));
        Arc::new(ExecHandle {
            summary,
            arn: doc.execution_arn.clone(),
            durable,
            version,
            state: tokio::sync::Mutex::new(ExecState {
                doc,
                dispatched: HashSet::new(),
                driving: false,
                unsaved: Vec::new(),
                tokens: Vec::new(),
                uncommitted_steps: 0,
            }),
            done,
        })
    }

    /// Waits for the execution to end and returns its summary.
    pub async fn wait(&self) -> ExecDoc {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|d| *d).await;
        self.state.lock().await.doc.clone()
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Running => "RUNNING",
        Status::Succeeded => "SUCCEEDED",
        Status::Failed => "FAILED",
        Status::TimedOut => "TIMED_OUT",
        Status::Aborted => "ABORTED",
    }
}

/// A request to start an execution.
pub(crate) struct StartRequest<'a> {
    pub state_machine_arn: &'a str,
    pub name: Option<String>,
    pub input: Option<String>,
    /// Started by a parent's Task: an existing execution of the same name is the answer,
    /// whatever its state (the parent's task is re-dispatched after a crash).
    pub reuse_existing: bool,
}

// === impl Inner (executor) ===

impl Inner {
    /// StartExecution: validates, records `ExecutionStarted` (durably for STANDARD) and
    /// starts driving. Returns the handle and whether it was newly started.
    pub(crate) async fn start_execution(
        &self,
        req: StartRequest<'_>,
    ) -> Result<(Arc<ExecHandle>, bool), ApiError> {
        let launch = self.launch(req.state_machine_arn)?;
        let machine = launch.machine.clone();
        let name = match req.name {
            Some(n) => {
                super::api::check_name(&n)?;
                n
            }
            None => crate::intrinsics::uuid_v4(),
        };
        let input_text = req.input.unwrap_or_else(|| "{}".to_string());
        let input: Value = serde_json::from_str(&input_text).map_err(|e| {
            ApiError::new(
                "InvalidExecutionInput",
                400,
                format!(
                    "Invalid State Machine Execution Input: '{}'",
                    crate::json_syntax::error_message(&input_text, &e)
                ),
            )
        })?;
        let express = machine.doc.machine_type == "EXPRESS";
        let sm_name = machine.doc.name.clone();
        let arn = if express {
            self.arn.arn(
                "states",
                &format!("express:{sm_name}:{name}:{}", crate::intrinsics::uuid_v4()),
            )
        } else {
            self.arn
                .arn("states", &format!("execution:{sm_name}:{name}"))
        };
        let now = Timestamp::now();
        let mut info = ExecutionInfo::new(
            &self.arn.region,
            &self.arn.account,
            &sm_name,
            &name,
            input,
            now,
        );
        info.execution_arn = arn.clone();
        info.state_machine_arn = machine.doc.state_machine_arn.clone();
        info.role_arn = launch.role_arn.clone();
        info.state_machine_version_arn = launch.version_arn.clone();
        info.state_machine_alias_arn = launch.alias_arn.clone();
        let exec = Execution::start(&launch.version.machine, info);
        let doc = ExecDoc {
            execution_arn: arn.clone(),
            state_machine_arn: machine.doc.state_machine_arn.clone(),
            name,
            status: "RUNNING".into(),
            start_date: now.millis(),
            stop_date: None,
            input: input_text.clone(),
            output: None,
            error: None,
            cause: None,
            version_id: launch.version.id.clone(),
            role_arn: launch.role_arn,
            state_machine_name: sm_name,
            state_machine_version_arn: launch.version_arn,
            state_machine_alias_arn: launch.alias_arn,
            execution: Some(exec),
            redrive_from: None,
            redrive_count: 0,
            redrive_date: None,
            redrive_token: None,
        };
        let handle = ExecHandle::new(doc, launch.version.clone(), !express);
        // Reserve the ARN (name idempotency), holding the fresh execution's lock so nobody
        // sees it before its first commit.
        let mut st = handle
            .state
            .try_lock()
            .map_err(|_| ApiError::internal("fresh execution is locked"))?;
        let existing = {
            let mut all = self.executions.write().unwrap_or_else(|e| e.into_inner());
            match all.get(&arn) {
                Some(existing) => Some(existing.clone()),
                None => {
                    all.insert(arn.clone(), handle.clone());
                    None
                }
            }
        };
        if let Some(existing) = existing {
            drop(st);
            return self
                .existing_execution(existing, &input_text, req.reuse_existing)
                .await
                .map(|h| (h, false));
        }
        if handle.durable {
            let mut writes = vec![Write::put(
                KIND_DEFINITION,
                &launch.version.id,
                json!({"definition": launch.version.definition}),
            )];
            let exec = st.doc.execution.as_mut().expect("just started");
            let events = exec.take_events();
            writes.extend(events.iter().map(|e| event_write(&arn, e)));
            writes.push(doc_write(&st.doc));
            if let Err(e) = self.commit(writes).await {
                self.executions
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&arn);
                // Anyone who found it meanwhile must not take it for a running execution.
                st.doc.execution = None;
                st.doc.status = "FAILED".into();
                handle.done.send_replace(true);
                return Err(ApiError::internal(e));
            }
        } else if let Some(exec) = st.doc.execution.as_mut() {
            exec.take_events();
        }
        st.driving = true;
        drop(st);
        tokio::spawn(self.this().drive(handle.clone()));
        Ok((handle, true))
    }

    /// StartExecution with the name of an existing execution: the same execution when it
    /// runs with the same input, `ExecutionAlreadyExists` otherwise (as AWS).
    async fn existing_execution(
        &self,
        existing: Arc<ExecHandle>,
        input: &str,
        reuse: bool,
    ) -> Result<Arc<ExecHandle>, ApiError> {
        if reuse {
            return Ok(existing);
        }
        let st = existing.state.lock().await;
        let same = st.doc.status == "RUNNING"
            && serde_json::from_str::<Value>(&st.doc.input).ok()
                == serde_json::from_str::<Value>(input).ok();
        if same {
            drop(st);
            Ok(existing)
        } else {
            Err(ApiError::new(
                "ExecutionAlreadyExists",
                400,
                format!("Execution Already Exists: '{}'", existing.arn),
            ))
        }
    }

    /// Starts driving a loaded execution (after a restart).
    pub(crate) async fn resume(&self, h: Arc<ExecHandle>) {
        let mut st = h.state.lock().await;
        if let Some(exec) = &st.doc.execution {
            // Tokens of tasks that wait for a worker stay valid across the restart.
            let waiting: Vec<String> = exec
                .pending_tasks()
                .into_iter()
                .filter_map(|t| t.task_token)
                .collect();
            for t in waiting {
                self.remember_token(&mut st, &h.arn, t, None);
            }
        }
        self.kick_locked(&h, &mut st);
    }

    pub(crate) fn remember_token(
        &self,
        st: &mut ExecState,
        execution: &str,
        token: String,
        task_id: Option<u64>,
    ) {
        Self::lock(&self.tokens).insert(
            token.clone(),
            super::TokenRef {
                execution: execution.to_string(),
                task_id,
            },
        );
        st.tokens.push(token);
    }

    /// Makes sure a drive loop will look at the execution (the caller holds its lock).
    pub(crate) fn kick_locked(&self, h: &Arc<ExecHandle>, st: &mut ExecState) {
        if st.driving || st.doc.execution.is_none() {
            return;
        }
        st.driving = true;
        tokio::spawn(self.this().drive(h.clone()));
    }

    /// Records a task's result and wakes the execution.
    pub(crate) async fn complete_task(&self, h: &Arc<ExecHandle>, id: u64, outcome: TaskOutcome) {
        let mut st = h.state.lock().await;
        st.dispatched.remove(&id);
        let Some(exec) = st.doc.execution.as_mut() else {
            return;
        };
        if exec.complete_task(id, outcome) {
            self.kick_locked(h, &mut st);
        }
    }

    /// The drive loop: steps until the execution blocks or ends, committing every
    /// transition of a STANDARD execution before the next.
    pub(crate) fn drive(self: Arc<Self>, h: Arc<ExecHandle>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                let mut st = h.state.lock().await;
                let Some(exec) = st.doc.execution.as_mut() else {
                    st.driving = false;
                    return;
                };
                let step = exec.step(&h.version.machine, Timestamp::now());
                let events = exec.take_events();
                match step {
                    Step::Progressed => {
                        // A run of steps without external effects is committed as one
                        // batch; anything that leaves the execution (a task dispatch, a
                        // timer, the end) comes only after its commit.
                        st.unsaved.extend(events);
                        st.uncommitted_steps += 1;
                        if st.uncommitted_steps >= MAX_STEPS_PER_COMMIT
                            && !self.save(&h, &mut st, Vec::new()).await
                        {
                            return;
                        }
                    }
                    Step::Finished => {
                        self.settle(&h, &mut st, events).await;
                        return;
                    }
                    Step::Blocked { until, tasks } => {
                        let dirty = !events.is_empty() || st.uncommitted_steps > 0;
                        if dirty && !self.save(&h, &mut st, events).await {
                            return;
                        }
                        if until.is_none() && tasks.is_empty() {
                            let exec = st.doc.execution.as_mut().expect("running");
                            exec.abort(
                                Timestamp::now(),
                                Some("States.Runtime".into()),
                                Some("execution is stuck".into()),
                            );
                            continue;
                        }
                        if let Some(t) = until {
                            self.add_timer(t.millis(), &h.arn);
                        }
                        for t in tasks {
                            if st.dispatched.insert(t.id) {
                                self.dispatch(&h, &mut st, t);
                            }
                        }
                        st.driving = false;
                        return;
                    }
                }
            }
        })
    }

    /// Commits the execution state with its new events (STANDARD); false when the commit
    /// failed, in which case the drive stops and retries from a timer.
    pub(crate) async fn save(
        &self,
        h: &ExecHandle,
        st: &mut ExecState,
        events: Vec<HistoryEvent>,
    ) -> bool {
        if !h.durable {
            st.unsaved.clear();
            st.uncommitted_steps = 0;
            return true;
        }
        st.unsaved.extend(events);
        let mut writes: Vec<Write> = st.unsaved.iter().map(|e| event_write(&h.arn, e)).collect();
        writes.push(doc_write(&st.doc));
        match self.commit(writes).await {
            Ok(()) => {
                // Dropped rather than cleared: a parked execution keeps no event buffer.
                st.unsaved = Vec::new();
                st.uncommitted_steps = 0;
                true
            }
            Err(e) => {
                tracing::error!(execution = %h.arn, "cannot persist a transition: {e}; retrying");
                st.driving = false;
                self.add_timer(Timestamp::now().millis() + 1000, &h.arn);
                false
            }
        }
    }

    /// Ends an execution whose interpreter state reports an end: fills the summary,
    /// commits it with the last events and wakes whoever waits for it.
    pub(crate) async fn settle(
        &self,
        h: &ExecHandle,
        st: &mut ExecState,
        mut events: Vec<HistoryEvent>,
    ) {
        let Some(mut exec) = st.doc.execution.take() else {
            return;
        };
        events.extend(exec.take_events());
        let stop = events
            .last()
            .map(|e| e.timestamp.millis())
            .unwrap_or_else(|| Timestamp::now().millis());
        st.doc.status = status_name(exec.status()).into();
        st.doc.stop_date = Some(stop);
        st.doc.output = exec.output().map(|o| o.to_string());
        if let Some(f) = exec.failure() {
            st.doc.error = f.error.clone();
            st.doc.cause = f.cause.clone();
        }
        if h.durable && exec.status() != Status::Succeeded {
            st.doc.redrive_from = Some(exec.clone());
        }
        if !self.save(h, st, events).await {
            // Keep running from the last committed state: put the execution back; the
            // retry re-derives the end.
            st.doc.execution = Some(exec);
            st.doc.status = "RUNNING".into();
            st.doc.stop_date = None;
            st.doc.output = None;
            st.doc.error = None;
            st.doc.cause = None;
            st.doc.redrive_from = None;
            return;
        }
        *Self::lock(&h.summary) = Summary::of(&st.doc);
        st.driving = false;
        st.dispatched.clear();
        {
            let mut tokens = Self::lock(&self.tokens);
            for t in st.tokens.drain(..) {
                tokens.remove(&t);
            }
        }
        h.done.send_replace(true);
        if !h.durable {
            self.executions
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&h.arn);
        }
    }

    pub(crate) fn add_timer(&self, at: i64, arn: &str) {
        Self::lock(&self.timers).insert((at, arn.to_string()));
        self.timer_wake.notify_one();
    }

    /// Hands a task to its integration; its result comes back through `complete_task`.
    fn dispatch(&self, h: &Arc<ExecHandle>, st: &mut ExecState, t: TaskRequest) {
        if let Some(token) = &t.task_token {
            self.remember_token(st, &h.arn, token.clone(), None);
        }
        let me = self.this();
        let h = h.clone();
        let activity = self.activity(&t.resource);
        if let Some(activity) = activity {
            // Activities: the worker polls GetActivityTask and answers with the token.
            let token = crate::intrinsics::uuid_v4();
            self.remember_token(st, &h.arn, token.clone(), Some(t.id));
            Self::lock(&activity.queue).push_back((token, t.input.to_string()));
            activity.ready.notify_one();
            return;
        }
        tokio::spawn(async move {
            if let Some(outcome) = me.clone().run_task(&h.arn, &t).await {
                me.complete_task(&h, t.id, outcome).await;
            }
        });
    }
}

impl Inner {
    /// Commits `writes` atomically and durably, together with whatever other executions
    /// queued meanwhile (group commit: one fsync for many steps). An execution queues its next
    /// step only after this one is answered, so batches never reorder an execution's steps.
    async fn commit(&self, writes: Vec<Write>) -> Result<(), String> {
        self.commits.commit(writes).await
    }
}

fn event_write(arn: &str, e: &HistoryEvent) -> Write {
    Write::put(
        &history_kind(arn),
        &format!("{:012}", e.id),
        serde_json::to_value(e).unwrap_or(Value::Null),
    )
}

fn doc_write(doc: &ExecDoc) -> Write {
    Write::put(
        KIND_EXECUTION,
        &doc.execution_arn,
        serde_json::to_value(doc).unwrap_or(Value::Null),
    )
}

/// Wakes executions whose wake-up time has come.
pub(crate) async fn timer_loop(service: Weak<Inner>) {
    loop {
        let Some(inner) = service.upgrade() else {
            return;
        };
        let now = Timestamp::now().millis();
        let (due, next) = {
            let mut timers = Inner::lock(&inner.timers);
            let mut due = Vec::new();
            while let Some((t, _)) = timers.first() {
                if *t > now {
                    break;
                }
                let (_, arn) = timers.pop_first().expect("first exists");
                due.push(arn);
            }
            (due, timers.first().map(|(t, _)| *t))
        };
        for arn in due {
            if let Some(h) = inner.execution(&arn) {
                let mut st = h.state.lock().await;
                inner.kick_locked(&h, &mut st);
            }
        }
        let wait = next
            .map(|t| Duration::from_millis((t - now).clamp(1, 60_000) as u64))
            .unwrap_or(Duration::from_secs(60));
        let wake = async {
            inner.timer_wake.notified().await;
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake => {}
        }
    }
}

/// A state machine as a [`Target`]: invoking it starts an execution with the payload as
/// input and answers `{"executionArn", "startDate"}`.
pub struct ExecutionTarget {
    pub(crate) arn: String,
    pub(crate) service: Weak<Inner>,
}

impl Target for ExecutionTarget {
    fn arn(&self) -> &str {
        &self.arn
    }

    fn invoke(&self, payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
        let service = self.service.clone();
        let arn = self.arn.clone();
        Box::pin(async move {
            let inner = service
                .upgrade()
                .ok_or_else(|| TargetError::Unavailable("step functions stopped".into()))?;
            let input = if payload.is_empty() {
                "{}".to_string()
            } else {
                String::from_utf8_lossy(&payload).into_owned()
            };
            let (h, _) = inner
                .start_execution(StartRequest {
                    state_machine_arn: &arn,
                    name: None,
                    input: Some(input),
                    reuse_existing: false,
                })
                .await
                .map_err(|e| match e.code.as_str() {
                    "StateMachineDoesNotExist" => TargetError::NotFound(arn.clone()),
                    _ => TargetError::Failed {
                        error: e.code.clone(),
                        cause: e.message.clone(),
                    },
                })?;
            let start = h.state.lock().await.doc.start_date;
            Ok(Bytes::from(
                json!({"executionArn": h.arn, "startDate": start as f64 / 1000.0}).to_string(),
            ))
        })
    }
}
