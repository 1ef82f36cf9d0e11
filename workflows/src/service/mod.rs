//! The Step Functions API (`X-Amz-Target: AWSStepFunctions.*`, JSON 1.0) and the executor
//! behind it.
//!
//! [`StepFunctions`] keeps state machines and executions in memory and in the [`Store`]:
//! STANDARD executions persist every transition (the execution's state and the history
//! events the step recorded, in one commit), EXPRESS executions live in memory only. After a
//! restart, [`start`] loads every state machine and resumes every running STANDARD
//! execution from its last committed step, so no state that exited runs again. Wait states,
//! retry back-off and task timeouts hold no thread: a blocked execution leaves a wake-up time
//! with one timer loop (the time itself is part of the persisted execution state).
//!
//! Store layout (document kinds):
//! - `sfn.machine` / state machine ARN: the machine's description.
//! - `sfn.definition` / SHA-256 of the text: a definition some execution ran, so executions
//!   keep the definition they started with (`DescribeStateMachineForExecution`, resuming).
//! - `sfn.execution` / execution ARN: the summary, plus the interpreter state while running.
//! - `sfn.history:<execution ARN>` / zero-padded event id: one history event.
//! - `sfn.activity` / activity ARN: an activity.
//! - `sfn.version` / `sfn.alias` by ARN: published versions and aliases (see `versions`).

mod api;
mod executor;
mod http_task;
mod redrive;
mod tasks;
mod test_state;
mod versions;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock, Weak};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;
use trellis_core::api::JsonService;
use trellis_core::model::ServiceModel;
use trellis_core::target::{BoxFuture, TargetRegistry};
use trellis_core::{ApiError, ArnContext};
use trellis_store::{Store, StoreError};

use crate::asl::StateMachine;
use crate::validate::{validate_for, MachineType};

pub use executor::ExecutionTarget;
pub(crate) use http_task::METHODS as HTTP_METHODS;

const KIND_MACHINE: &str = "sfn.machine";
const KIND_DEFINITION: &str = "sfn.definition";
const KIND_EXECUTION: &str = "sfn.execution";
/// Execution documents read per store page at start.
const EXECUTION_PAGE: usize = 500;
const KIND_ACTIVITY: &str = "sfn.activity";

fn history_kind(execution_arn: &str) -> String {
    format!("sfn.history:{execution_arn}")
}

/// The Step Functions model, parsed once.
pub fn model() -> Arc<ServiceModel> {
    static MODEL: std::sync::OnceLock<Arc<ServiceModel>> = std::sync::OnceLock::new();
    trellis_core::model::embedded(
        &MODEL,
        include_str!("../../../core/models/stepfunctions-2016-11-23.json"),
    )
}

/// The Step Functions service: API, executor and task integrations.
pub struct StepFunctions {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    me: Weak<Inner>,
    store: Arc<dyn Store>,
    arn: ArnContext,
    targets: Arc<TargetRegistry>,
    machines: RwLock<HashMap<String, Arc<Machine>>>,
    executions: RwLock<HashMap<String, Arc<executor::ExecHandle>>>,
    /// Definitions by id, shared by the executions that run them.
    versions: Mutex<HashMap<String, Weak<Version>>>,
    /// Task tokens handed to workers (`.waitForTaskToken`, activities).
    tokens: Mutex<HashMap<String, TokenRef>>,
    /// (wake-up time in ms, execution ARN); stale entries are harmless.
    timers: Mutex<BTreeSet<(i64, String)>>,
    timer_wake: Notify,
    /// Serialises writes to state machines and activities.
    admin: tokio::sync::Mutex<()>,
    activities: RwLock<HashMap<String, Arc<Activity>>>,
    /// Published state machine versions, by version ARN.
    published: RwLock<HashMap<String, Arc<versions::Published>>>,
    /// State machine aliases, by alias ARN.
    aliases: RwLock<HashMap<String, versions::AliasDoc>>,
    /// Group commit: execution steps queue here and are committed together.
    commits: trellis_store::GroupCommit,
}

/// Where a task token leads.
#[derive(Debug, Clone)]
pub(crate) struct TokenRef {
    execution: String,
    /// The interpreter's task id for activity tasks (their tokens are ours, not the
    /// interpreter's); `None` for `.waitForTaskToken` tokens.
    task_id: Option<u64>,
}

/// A state machine as `DescribeStateMachine` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MachineDoc {
    state_machine_arn: String,
    name: String,
    definition: String,
    role_arn: String,
    #[serde(rename = "type")]
    machine_type: String,
    creation_date: i64,
    #[serde(default)]
    update_date: Option<i64>,
    #[serde(default)]
    logging_configuration: Option<Value>,
    #[serde(default)]
    tracing_configuration: Option<Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    revision_id: Option<String>,
    /// How many versions were ever published (the number of the latest).
    #[serde(default)]
    versions_published: u64,
}

pub(crate) struct Machine {
    doc: MachineDoc,
    version: Arc<Version>,
}

/// One definition text and its parsed model.
pub(crate) struct Version {
    id: String,
    definition: String,
    machine: StateMachine,
}

pub(crate) struct Activity {
    arn: String,
    name: String,
    creation_date: i64,
    queue: Mutex<std::collections::VecDeque<(String, String)>>,
    ready: Notify,
}

/// Builds the service over `store`, loads its state machines and activities, resumes every
/// running STANDARD execution and starts the timer loop. Registers every state machine in
/// `targets` (invoking one starts an execution).
pub async fn start(
    store: Arc<dyn Store>,
    arn: ArnContext,
    targets: Arc<TargetRegistry>,
) -> Result<Arc<StepFunctions>, StoreError> {
    let commits = trellis_store::GroupCommit::start(store.clone(), "workflows");
    let inner = Arc::new_cyclic(|me| Inner {
        me: me.clone(),
        commits,
        store,
        arn,
        targets,
        machines: RwLock::new(HashMap::new()),
        executions: RwLock::new(HashMap::new()),
        versions: Mutex::new(HashMap::new()),
        tokens: Mutex::new(HashMap::new()),
        timers: Mutex::new(BTreeSet::new()),
        timer_wake: Notify::new(),
        admin: tokio::sync::Mutex::new(()),
        activities: RwLock::new(HashMap::new()),
        published: RwLock::new(HashMap::new()),
        aliases: RwLock::new(HashMap::new()),
    });
    inner.load().await?;
    tokio::spawn(executor::timer_loop(Arc::downgrade(&inner)));
    Ok(Arc::new(StepFunctions { inner }))
}

impl StepFunctions {
    /// Calls an operation directly (what the API listener does after validating the input).
    pub async fn call_op(&self, op: &str, input: Value) -> Result<Value, ApiError> {
        run_to_end(self.inner.clone(), op.to_string(), input).await
    }
}

/// Runs an operation in its own task, so that it completes even when the caller stops
/// waiting (a client that disconnects mid-request): an operation that committed a change
/// (an execution started, a task result, a redrive) must also start driving it.
async fn run_to_end(inner: Arc<Inner>, op: String, input: Value) -> Result<Value, ApiError> {
    tokio::spawn(async move { inner.call(&op, input).await })
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(e)))
}

impl JsonService for StepFunctions {
    fn target_prefix(&self) -> &str {
        "AWSStepFunctions"
    }

    fn json_version(&self) -> &str {
        "1.0"
    }

    fn model(&self) -> Option<Arc<ServiceModel>> {
        Some(model())
    }

    fn call(&self, op: &str, input: Value) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(run_to_end(self.inner.clone(), op.to_string(), input))
    }
}

// === impl Inner ===

impl Inner {
    fn this(&self) -> Arc<Inner> {
        self.me.upgrade().expect("the service outlives its calls")
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn machine(&self, arn: &str) -> Option<Arc<Machine>> {
        self.machines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(arn)
            .cloned()
    }

    fn execution(&self, arn: &str) -> Option<Arc<executor::ExecHandle>> {
        self.executions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(arn)
            .cloned()
    }

    /// The shared [`Version`] of a definition text, parsed for `kind`.
    fn version(&self, definition: &str, kind: MachineType) -> Result<Arc<Version>, ApiError> {
        let id = definition_id(definition);
        let mut versions = Self::lock(&self.versions);
        if let Some(v) = versions.get(&id).and_then(Weak::upgrade) {
            return Ok(v);
        }
        let machine = validate_for(definition, kind).map_err(|e| invalid_definition(&e))?;
        let v = Arc::new(Version {
            id: id.clone(),
            definition: definition.to_string(),
            machine,
        });
        versions.retain(|_, w| w.strong_count() > 0);
        versions.insert(id, Arc::downgrade(&v));
        Ok(v)
    }

    async fn load(&self) -> Result<(), StoreError> {
        for (arn, doc) in self.store.list(KIND_MACHINE).await? {
            let Ok(doc) = serde_json::from_value::<MachineDoc>(doc) else {
                tracing::error!(%arn, "unreadable state machine document; skipped");
                continue;
            };
            let kind = machine_type(&doc.machine_type);
            match self.version(&doc.definition, kind) {
                Ok(version) => {
                    self.register_target(&doc.state_machine_arn);
                    self.machines
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(arn, Arc::new(Machine { doc, version }));
                }
                Err(e) => tracing::error!(%arn, "stored definition no longer valid: {e}"),
            }
        }
        self.load_versions().await?;
        for (arn, doc) in self.store.list(KIND_ACTIVITY).await? {
            let name = doc["name"].as_str().unwrap_or_default().to_string();
            let creation_date = doc["creationDate"].as_i64().unwrap_or_default();
            self.activities
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    arn.clone(),
                    Arc::new(Activity::new(arn, name, creation_date)),
                );
        }
        let mut definitions: HashMap<String, Option<String>> = HashMap::new();
        let mut running = Vec::new();
        // A page at a time: with 100,000 parked executions, holding every document as JSON
        // at once (on top of the executions built from them) doubled the memory at start.
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_page(KIND_EXECUTION, after.as_deref(), EXECUTION_PAGE)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (arn, doc) in page {
                let doc: executor::ExecDoc = match serde_json::from_value(doc) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!(%arn, "unreadable execution document ({e}); skipped");
                        continue;
                    }
                };
                if !definitions.contains_key(&doc.version_id) {
                    let text = self
                        .store
                        .get(KIND_DEFINITION, &doc.version_id)
                        .await?
                        .and_then(|d| d["definition"].as_str().map(str::to_string));
                    definitions.insert(doc.version_id.clone(), text);
                }
                let Some(Some(text)) = definitions.get(&doc.version_id) else {
                    tracing::error!(%arn, "the definition of this execution is missing; skipped");
                    continue;
                };
                let version = match self.version(text, MachineType::Standard) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!(%arn, "definition no longer valid: {e}");
                        continue;
                    }
                };
                let is_running = doc.execution.is_some();
                let handle = executor::ExecHandle::new(doc, version, true);
                if is_running {
                    running.push(handle.clone());
                }
                self.executions
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(arn, handle);
            }
        }
        let me = self.this();
        for h in running {
            me.resume(h).await;
        }
        Ok(())
    }

    fn register_target(&self, arn: &str) {
        self.targets.register(Arc::new(ExecutionTarget {
            arn: arn.to_string(),
            service: self.me.clone(),
        }));
    }
}

impl Activity {
    fn new(arn: String, name: String, creation_date: i64) -> Self {
        Activity {
            arn,
            name,
            creation_date,
            queue: Mutex::new(Default::default()),
            ready: Notify::new(),
        }
    }
}

fn machine_type(s: &str) -> MachineType {
    if s == "EXPRESS" {
        MachineType::Express
    } else {
        MachineType::Standard
    }
}

/// The id of a definition text: its SHA-256 in hex.
fn definition_id(definition: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(definition.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// AWS's `InvalidDefinition` error.
fn invalid_definition(e: &crate::validate::InvalidDefinition) -> ApiError {
    ApiError::new("InvalidDefinition", 400, e.to_string())
}

#[cfg(test)]
mod tests;
