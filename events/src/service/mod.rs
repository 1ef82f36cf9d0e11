//! The EventBridge API (`X-Amz-Target: AWSEvents.*`, JSON 1.1) over the pattern engine, with
//! durable at-least-once delivery to targets and schedules.
//!
//! [`EventBridge`] keeps buses, rules (with their targets), connections and API destinations
//! in memory and in the [`Store`]. All enabled pattern rules of all buses are compiled into one
//! snapshot (one [`Machine`] per bus) that is rebuilt on every rule change and swapped
//! atomically; `PutEvents` reads it without a lock.
//!
//! Delivery: `PutEvents` matches each entry, renders every matching target's input and commits
//! one delivery record per (event, target) before it answers (group commit: concurrent calls
//! share one fsync). A delivery task then invokes the target by ARN through the
//! [`TargetRegistry`], retries with exponential backoff under the target's `RetryPolicy`,
//! sends the event to the `DeadLetterConfig` target when retries run out, and deletes the
//! record. After a restart every record still in the store is delivered again (at least once).
//!
//! Store layout (document kinds):
//! - `events.bus` / name: an event bus (`default` is created on first start).
//! - `events.rule` / `BUS/NAME`: a rule, its targets and, for schedules, the next fire time.
//! - `events.connection`, `events.destination` / name: connections and API destinations
//!   (both registered as targets: connections take HTTP requests, module `connection`).
//! - `events.archive`, `events.replay` / name; `events.archived:ARCHIVE` / `MILLIS-RANDOM`: an
//!   archived event (module `archive`).
//! - `events.delivery` / `MILLIS-RANDOM`: one pending delivery.

mod api;
mod archive;
mod connection;
mod delivery;
mod http_client;
mod http_target;
mod metrics;
mod schedules;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use trellis_core::api::JsonService;
use trellis_core::model::ServiceModel;
use trellis_core::target::{BoxFuture, TargetRegistry};
use trellis_core::{ApiError, ArnContext};
use trellis_store::{Store, StoreError};

use crate::{InputTransformer, Machine, MachineBuilder, Pattern};

pub(crate) const KIND_BUS: &str = "events.bus";
pub(crate) const KIND_RULE: &str = "events.rule";
pub(crate) const KIND_CONNECTION: &str = "events.connection";
pub(crate) const KIND_DESTINATION: &str = "events.destination";
pub(crate) const KIND_DELIVERY: &str = "events.delivery";

/// AWS's defaults for a target without a `RetryPolicy`.
pub(crate) const DEFAULT_MAX_ATTEMPTS: u32 = 185;
pub(crate) const DEFAULT_MAX_AGE_SECS: u64 = 86_400;

/// The EventBridge model, parsed once.
pub fn model() -> Arc<ServiceModel> {
    static MODEL: std::sync::OnceLock<Arc<ServiceModel>> = std::sync::OnceLock::new();
    trellis_core::model::embedded(
        &MODEL,
        include_str!("../../../core/models/events-2015-10-07.json"),
    )
}

/// The EventBridge service: API, delivery workers and the scheduler.
pub struct EventBridge {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    me: Weak<Inner>,
    store: Arc<dyn Store>,
    arn: ArnContext,
    targets: Arc<TargetRegistry>,
    state: Mutex<State>,
    /// Serialises configuration writes (store commit, then state and snapshot).
    admin: tokio::sync::Mutex<()>,
    snapshot: ArcSwap<Snapshot>,
    /// Group commit of delivery records and their acknowledgements.
    commits: trellis_store::GroupCommit,
    /// Bounds concurrent target invocations.
    permits: Arc<tokio::sync::Semaphore>,
    http: http_client::HttpClient,
    schedule_wake: Arc<tokio::sync::Notify>,
    metrics: metrics::Metrics,
}

#[derive(Default)]
pub(crate) struct State {
    buses: BTreeMap<String, BusDoc>,
    /// By (bus, rule name).
    rules: BTreeMap<(String, String), RuleDoc>,
    connections: BTreeMap<String, Value>,
    destinations: BTreeMap<String, Value>,
    archives: BTreeMap<String, Value>,
    replays: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BusDoc {
    name: String,
    arn: String,
    #[serde(default)]
    description: Option<String>,
    created_ms: u64,
    modified_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RuleDoc {
    name: String,
    bus: String,
    arn: String,
    #[serde(default)]
    event_pattern: Option<String>,
    #[serde(default)]
    schedule: Option<String>,
    state: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    role_arn: Option<String>,
    /// The targets as `PutTargets` got them (AWS's `Target` shape).
    #[serde(default)]
    targets: Vec<Value>,
    created_ms: u64,
    /// Schedules: the next fire time (Unix seconds) not yet fired.
    #[serde(default)]
    next_fire: Option<i64>,
}

/// Everything `PutEvents` needs, immutable and swapped whole.
#[derive(Default)]
pub(crate) struct Snapshot {
    buses: HashMap<String, Arc<BusSnap>>,
}

pub(crate) struct BusSnap {
    machine: Machine<usize>,
    rules: Vec<Arc<RuleSnap>>,
    archives: Vec<archive::ArchiveSnap>,
}

pub(crate) struct RuleSnap {
    pub(crate) arn: String,
    pub(crate) name: String,
    pub(crate) targets: Vec<TargetSpec>,
}

/// A rule target, compiled.
pub(crate) struct TargetSpec {
    pub(crate) id: String,
    pub(crate) arn: String,
    pub(crate) input: InputSpec,
    pub(crate) max_attempts: u32,
    pub(crate) max_age_secs: u64,
    pub(crate) dead_letter: Option<String>,
}

pub(crate) enum InputSpec {
    Event,
    Constant(String),
    Path(String),
    Transformer(InputTransformer),
}

// === impl EventBridge ===

/// Builds the service over `store`: loads buses, rules, connections and API destinations,
/// registers every bus and API destination in `targets`, restarts every pending delivery and
/// starts the scheduler.
pub async fn start(
    store: Arc<dyn Store>,
    arn: ArnContext,
    targets: Arc<TargetRegistry>,
) -> Result<Arc<EventBridge>, StoreError> {
    let commits = trellis_store::GroupCommit::start(store.clone(), "events");
    let inner = Arc::new_cyclic(|me| Inner {
        me: me.clone(),
        store,
        arn,
        targets,
        state: Mutex::new(State::default()),
        admin: tokio::sync::Mutex::new(()),
        snapshot: ArcSwap::from_pointee(Snapshot::default()),
        commits,
        permits: Arc::new(tokio::sync::Semaphore::new(256)),
        http: http_client::client(),
        schedule_wake: Arc::new(tokio::sync::Notify::new()),
        metrics: metrics::Metrics::default(),
    });
    inner.load().await?;
    tokio::spawn(schedules::schedule_loop(Arc::downgrade(&inner)));
    Ok(Arc::new(EventBridge { inner }))
}

impl EventBridge {
    /// Calls an operation directly (what the API listener does after validating the input).
    pub async fn call_op(&self, op: &str, input: Value) -> Result<Value, ApiError> {
        self.inner.clone().call(op, input).await
    }
}

impl JsonService for EventBridge {
    fn target_prefix(&self) -> &str {
        "AWSEvents"
    }

    fn json_version(&self) -> &str {
        "1.1"
    }

    fn model(&self) -> Option<Arc<ServiceModel>> {
        Some(model())
    }

    fn call(&self, op: &str, input: Value) -> BoxFuture<'_, Result<Value, ApiError>> {
        let op = op.to_string();
        let inner = self.inner.clone();
        Box::pin(async move { inner.call(&op, input).await })
    }

    fn render_metrics(&self, out: &mut String) {
        self.inner.metrics.render(out);
    }
}

// === impl Inner ===

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn bus_arn(&self, name: &str) -> String {
        self.arn.arn("events", &format!("event-bus/{name}"))
    }

    pub(crate) fn rule_arn(&self, bus: &str, name: &str) -> String {
        if bus == "default" {
            self.arn.arn("events", &format!("rule/{name}"))
        } else {
            self.arn.arn("events", &format!("rule/{bus}/{name}"))
        }
    }

    async fn load(self: &Arc<Self>) -> Result<(), StoreError> {
        let buses = self.store.list(KIND_BUS).await?;
        let rules = self.store.list(KIND_RULE).await?;
        let connections = self.store.list(KIND_CONNECTION).await?;
        let destinations = self.store.list(KIND_DESTINATION).await?;
        let archives = self.store.list(archive::KIND_ARCHIVE).await?;
        let replays = self.store.list(archive::KIND_REPLAY).await?;
        {
            let mut st = self.lock();
            for (name, doc) in buses {
                match serde_json::from_value::<BusDoc>(doc) {
                    Ok(b) => {
                        st.buses.insert(name, b);
                    }
                    Err(e) => tracing::error!(bus = %name, "unreadable event bus record: {e}"),
                }
            }
            for (id, doc) in rules {
                match serde_json::from_value::<RuleDoc>(doc) {
                    Ok(r) => {
                        st.rules.insert((r.bus.clone(), r.name.clone()), r);
                    }
                    Err(e) => tracing::error!(rule = %id, "unreadable rule record: {e}"),
                }
            }
            st.connections.extend(connections);
            st.destinations.extend(destinations);
            st.archives.extend(archives);
            st.replays.extend(replays);
        }
        if !self.lock().buses.contains_key("default") {
            let now = trellis_core::clock::now_millis();
            let bus = BusDoc {
                name: "default".into(),
                arn: self.bus_arn("default"),
                description: None,
                created_ms: now,
                modified_ms: now,
            };
            self.store
                .commit(vec![trellis_store::Write::put(
                    KIND_BUS,
                    "default",
                    serde_json::to_value(&bus).unwrap_or_default(),
                )])
                .await?;
            self.lock().buses.insert("default".into(), bus);
        }
        let (bus_names, conns, dests): (Vec<String>, Vec<Value>, Vec<Value>) = {
            let st = self.lock();
            (
                st.buses.keys().cloned().collect(),
                st.connections.values().cloned().collect(),
                st.destinations.values().cloned().collect(),
            )
        };
        for name in bus_names {
            self.register_bus(&name);
        }
        for c in conns {
            self.register_connection(&c);
        }
        for d in dests {
            self.register_destination(&d);
        }
        self.rebuild();
        delivery::resume(self).await?;
        Ok(())
    }

    /// Recompiles every bus's enabled pattern rules and swaps the snapshot.
    pub(crate) fn rebuild(&self) {
        let st = self.lock();
        let mut per_bus: HashMap<String, (MachineBuilder<usize>, Vec<Arc<RuleSnap>>)> =
            HashMap::new();
        for bus in st.buses.keys() {
            per_bus.insert(bus.clone(), (MachineBuilder::new(), Vec::new()));
        }
        for rule in st.rules.values() {
            if rule.state == "DISABLED" {
                continue;
            }
            let Some(text) = &rule.event_pattern else {
                continue;
            };
            let Ok(pattern) = Pattern::parse(text) else {
                tracing::error!(rule = %rule.arn, "stored event pattern no longer compiles");
                continue;
            };
            let Some((builder, snaps)) = per_bus.get_mut(&rule.bus) else {
                continue;
            };
            builder.add_rule(snaps.len(), &pattern);
            snaps.push(Arc::new(rule_snap(rule)));
        }
        let mut archives: HashMap<String, Vec<archive::ArchiveSnap>> = HashMap::new();
        for doc in st.archives.values() {
            if let Some((bus, snap)) = archive::archive_snap(doc) {
                archives.entry(bus).or_default().push(snap);
            }
        }
        let buses = per_bus
            .into_iter()
            .map(|(name, (builder, rules))| {
                let archives = archives.remove(&name).unwrap_or_default();
                (
                    name,
                    Arc::new(BusSnap {
                        machine: builder.build(),
                        rules,
                        archives,
                    }),
                )
            })
            .collect();
        self.snapshot.store(Arc::new(Snapshot { buses }));
    }
}

/// Compiles a rule's targets.
pub(crate) fn rule_snap(rule: &RuleDoc) -> RuleSnap {
    RuleSnap {
        arn: rule.arn.clone(),
        name: rule.name.clone(),
        targets: rule.targets.iter().filter_map(target_spec).collect(),
    }
}

fn target_spec(t: &Value) -> Option<TargetSpec> {
    let input = if let Some(i) = t.get("Input").and_then(Value::as_str) {
        InputSpec::Constant(i.to_string())
    } else if let Some(p) = t.get("InputPath").and_then(Value::as_str) {
        InputSpec::Path(p.to_string())
    } else if let Some(tr) = t.get("InputTransformer") {
        let template = tr.get("InputTemplate").and_then(Value::as_str)?;
        let paths: Vec<(&str, &str)> = tr
            .get("InputPathsMap")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                    .collect()
            })
            .unwrap_or_default();
        InputSpec::Transformer(InputTransformer::new(paths, template).ok()?)
    } else {
        InputSpec::Event
    };
    let retry = t.get("RetryPolicy");
    Some(TargetSpec {
        id: t.get("Id")?.as_str()?.to_string(),
        arn: t.get("Arn")?.as_str()?.to_string(),
        input,
        max_attempts: retry
            .and_then(|r| r.get("MaximumRetryAttempts"))
            .and_then(Value::as_u64)
            .map_or(DEFAULT_MAX_ATTEMPTS, |n| n as u32),
        max_age_secs: retry
            .and_then(|r| r.get("MaximumEventAgeInSeconds"))
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_MAX_AGE_SECS),
        dead_letter: t
            .get("DeadLetterConfig")
            .and_then(|d| d.get("Arn"))
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// A random version-4 UUID, the form of AWS event ids.
pub(crate) fn uuid() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Epoch seconds (with milliseconds) as JSON 1.1 timestamps are written.
pub(crate) fn epoch_seconds(ms: u64) -> Value {
    serde_json::json!(ms as f64 / 1000.0)
}
