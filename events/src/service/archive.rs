//! Archives and replays: an archive keeps every event of its bus that matches its pattern (all
//! events without one), written in the same commit as the event's deliveries; a replay puts
//! the archived events of a time range back on the bus, with `replay-name` added, for the
//! bus's rules (or only those in `FilterArns`). Replayed events are not archived again.

use std::sync::Arc;

use serde_json::{json, Value};
use trellis_core::clock::now_millis;
use trellis_core::ApiError;
use trellis_store::Write;

use super::delivery::deliveries_for;
use super::{epoch_seconds, Inner};
use crate::{MachineBuilder, Pattern};

pub(crate) const KIND_ARCHIVE: &str = "events.archive";
pub(crate) const KIND_REPLAY: &str = "events.replay";

fn archived_kind(archive: &str) -> String {
    format!("events.archived:{archive}")
}

fn error(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(code, 400, message)
}

fn str_field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// A timestamp input (epoch seconds, possibly fractional) in milliseconds.
fn millis(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_f64().map(|f| (f * 1000.0) as u64),
        Value::String(s) => s.parse::<f64>().ok().map(|f| (f * 1000.0) as u64),
        _ => None,
    }
}

/// An archive of a bus, compiled for the snapshot.
pub(crate) struct ArchiveSnap {
    pub(crate) name: String,
    pub(crate) pattern: Option<crate::Machine<()>>,
}

pub(crate) fn archive_snap(doc: &Value) -> Option<(String, ArchiveSnap)> {
    let bus = str_field(doc, "bus")?.to_string();
    let pattern = match str_field(doc, "EventPattern") {
        Some(p) => {
            let p = Pattern::parse(p).ok()?;
            let mut b = MachineBuilder::new();
            b.add_rule((), &p);
            Some(b.build())
        }
        None => None,
    };
    Some((
        bus,
        ArchiveSnap {
            name: str_field(doc, "ArchiveName")?.to_string(),
            pattern,
        },
    ))
}

/// `event` with `"replay-name": NAME` after `region`, as AWS places it.
fn with_replay_name(event: &str, name: &str) -> String {
    let field = format!(",\"replay-name\":{}", Value::from(name));
    if let Some(i) = event.find(",\"resources\":") {
        format!("{}{field}{}", &event[..i], &event[i..])
    } else if let Some(i) = event.rfind('}') {
        format!("{}{field}{}", &event[..i], &event[i..])
    } else {
        event.to_string()
    }
}

impl Inner {
    /// The archive writes for an event put on `bus`.
    pub(crate) fn archive_writes(&self, bus: &str, event: &str, ingested_ms: u64) -> Vec<Write> {
        let snap = self.snapshot.load();
        let Some(bus) = snap.buses.get(bus) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for a in &bus.archives {
            let keep = match &a.pattern {
                None => true,
                Some(m) => m.matches(event).is_ok_and(|r| !r.is_empty()),
            };
            if keep {
                out.push(Write::put(
                    &archived_kind(&a.name),
                    &format!("{ingested_ms:013}-{}", super::uuid()),
                    json!({"t": ingested_ms, "event": event}),
                ));
            }
        }
        out
    }

    fn archive_arn(&self, name: &str) -> String {
        self.arn.arn("events", &format!("archive/{name}"))
    }

    pub(crate) async fn create_archive(&self, input: Value) -> Result<Value, ApiError> {
        let name = str_field(&input, "ArchiveName")
            .unwrap_or_default()
            .to_string();
        let source = str_field(&input, "EventSourceArn").unwrap_or_default();
        let bus = source.rsplit('/').next().unwrap_or(source).to_string();
        if let Some(p) = str_field(&input, "EventPattern") {
            Pattern::parse(p).map_err(|e| error("InvalidEventPatternException", e.to_string()))?;
        }
        let _admin = self.admin.lock().await;
        {
            let st = self.lock();
            if !st.buses.contains_key(&bus) {
                return Err(error(
                    "ResourceNotFoundException",
                    format!("Event bus {bus} does not exist."),
                ));
            }
            if st.archives.contains_key(&name) {
                return Err(error(
                    "ResourceAlreadyExistsException",
                    format!("Archive {name} already exists."),
                ));
            }
        }
        let now = now_millis();
        let mut doc = json!({
            "ArchiveName": name,
            "ArchiveArn": self.archive_arn(&name),
            "EventSourceArn": self.bus_arn(&bus),
            "bus": bus,
            "State": "ENABLED",
            "created_ms": now,
            "RetentionDays": input.get("RetentionDays").cloned().unwrap_or(json!(0)),
        });
        for k in ["EventPattern", "Description"] {
            if let Some(v) = input.get(k) {
                doc[k] = v.clone();
            }
        }
        self.store
            .commit(vec![Write::put(KIND_ARCHIVE, &name, doc.clone())])
            .await
            .map_err(ApiError::internal)?;
        self.lock().archives.insert(name.clone(), doc);
        self.rebuild();
        Ok(json!({
            "ArchiveArn": self.archive_arn(&name),
            "State": "ENABLED",
            "CreationTime": epoch_seconds(now),
        }))
    }

    fn archive_json(doc: &Value, count: Option<(u64, u64)>) -> Value {
        let mut out = doc.clone();
        if let Some(o) = out.as_object_mut() {
            o.remove("bus");
            if let Some(ms) = o.remove("created_ms").and_then(|v| v.as_u64()) {
                o.insert("CreationTime".into(), epoch_seconds(ms));
            }
            if let Some((n, size)) = count {
                o.insert("EventCount".into(), json!(n));
                o.insert("SizeBytes".into(), json!(size));
            }
        }
        out
    }

    fn get_archive(&self, name: &str) -> Result<Value, ApiError> {
        self.lock().archives.get(name).cloned().ok_or_else(|| {
            error(
                "ResourceNotFoundException",
                format!("Archive {name} does not exist."),
            )
        })
    }

    pub(crate) async fn describe_archive(&self, input: Value) -> Result<Value, ApiError> {
        let name = str_field(&input, "ArchiveName").unwrap_or_default();
        let doc = self.get_archive(name)?;
        let events = self
            .store
            .list(&archived_kind(name))
            .await
            .map_err(ApiError::internal)?;
        let size = events
            .iter()
            .map(|(_, v)| str_field(v, "event").map_or(0, str::len) as u64)
            .sum();
        Ok(Self::archive_json(&doc, Some((events.len() as u64, size))))
    }

    pub(crate) fn list_archives(&self, input: Value) -> Result<Value, ApiError> {
        let prefix = str_field(&input, "NamePrefix").unwrap_or_default();
        let source = str_field(&input, "EventSourceArn");
        if let Some(s) = source {
            let bus = s.rsplit('/').next().unwrap_or(s);
            if !self.lock().buses.contains_key(bus) {
                return Err(error(
                    "ResourceNotFoundException",
                    format!("Event bus {bus} does not exist."),
                ));
            }
        }
        let items: Vec<Value> = self
            .lock()
            .archives
            .values()
            .filter(|a| str_field(a, "ArchiveName").is_some_and(|n| n.starts_with(prefix)))
            .filter(|a| source.is_none() || str_field(a, "EventSourceArn") == source)
            .map(|a| Self::archive_json(a, None))
            .collect();
        let (items, next) = super::api::page(&items, &input)?;
        Ok(json!({"Archives": items, "NextToken": next}))
    }

    pub(crate) async fn delete_archive(&self, input: Value) -> Result<Value, ApiError> {
        let name = str_field(&input, "ArchiveName")
            .unwrap_or_default()
            .to_string();
        let _admin = self.admin.lock().await;
        self.get_archive(&name)?;
        let kind = archived_kind(&name);
        let mut writes = vec![Write::delete(KIND_ARCHIVE, &name)];
        for (id, _) in self.store.list(&kind).await.map_err(ApiError::internal)? {
            writes.push(Write::delete(&kind, &id));
        }
        self.store
            .commit(writes)
            .await
            .map_err(ApiError::internal)?;
        self.lock().archives.remove(&name);
        self.rebuild();
        Ok(json!({}))
    }

    pub(crate) async fn start_replay(self: &Arc<Self>, input: Value) -> Result<Value, ApiError> {
        let name = str_field(&input, "ReplayName")
            .unwrap_or_default()
            .to_string();
        let source = str_field(&input, "EventSourceArn").unwrap_or_default();
        let archive_name = source.rsplit('/').next().unwrap_or(source).to_string();
        let start = millis(input.get("EventStartTime")).unwrap_or(0);
        let end = millis(input.get("EventEndTime")).unwrap_or(0);
        let dest = input["Destination"]["Arn"].as_str().unwrap_or_default();
        let dest_bus = dest.rsplit('/').next().unwrap_or(dest).to_string();
        let filters: Vec<String> = input["Destination"]["FilterArns"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let archive = self.lock().archives.get(&archive_name).cloned();
        let Some(archive) = archive else {
            return Err(error(
                "ValidationException",
                format!(
                    "Parameter EventSourceArn is not valid. Reason: Archive {archive_name} does not exist."
                ),
            ));
        };
        if !self.lock().buses.contains_key(&dest_bus) {
            return Err(error(
                "ResourceNotFoundException",
                format!("Event bus {dest_bus} does not exist."),
            ));
        }
        if str_field(&archive, "bus") != Some(dest_bus.as_str()) {
            return Err(error(
                "ValidationException",
                "Parameter Destination.Arn is not valid. Reason: Cross event bus replay is not permitted.",
            ));
        }
        if start >= end {
            return Err(error(
                "ValidationException",
                "Parameter EventEndTime is not valid. Reason: EventStartTime must be before EventEndTime.",
            ));
        }
        let _admin = self.admin.lock().await;
        if self.lock().replays.contains_key(&name) {
            return Err(error(
                "ResourceAlreadyExistsException",
                format!("Replay {name} already exists."),
            ));
        }
        let now = now_millis();
        let arn = self.arn.arn("events", &format!("replay/{name}"));
        let mut doc = json!({
            "ReplayName": name,
            "ReplayArn": arn,
            "EventSourceArn": self.archive_arn(&archive_name),
            "Destination": input["Destination"].clone(),
            "EventStartTime": epoch_seconds(start),
            "EventEndTime": epoch_seconds(end),
            "ReplayStartTime": epoch_seconds(now),
            "State": "STARTING",
        });
        if let Some(d) = input.get("Description") {
            doc["Description"] = d.clone();
        }
        self.save_replay(&doc).await?;
        let me = self.clone();
        let replay = doc.clone();
        tokio::spawn(async move {
            me.run_replay(replay, archive_name, dest_bus, filters, start, end)
                .await
        });
        Ok(json!({"ReplayArn": arn, "State": "STARTING", "ReplayStartTime": epoch_seconds(now)}))
    }

    async fn save_replay(&self, doc: &Value) -> Result<(), ApiError> {
        let name = str_field(doc, "ReplayName").unwrap_or_default().to_string();
        self.store
            .commit(vec![Write::put(KIND_REPLAY, &name, doc.clone())])
            .await
            .map_err(ApiError::internal)?;
        self.lock().replays.insert(name, doc.clone());
        Ok(())
    }

    async fn run_replay(
        self: Arc<Self>,
        mut doc: Value,
        archive: String,
        bus: String,
        filters: Vec<String>,
        start: u64,
        end: u64,
    ) {
        let name = str_field(&doc, "ReplayName")
            .unwrap_or_default()
            .to_string();
        let result: Result<Option<u64>, String> = async {
            let events = self
                .store
                .list(&archived_kind(&archive))
                .await
                .map_err(|e| e.to_string())?;
            let snap = self.snapshot.load();
            let Some(bus) = snap.buses.get(&bus) else {
                return Ok(None);
            };
            let mut last = None;
            for (_, v) in events {
                let t = v.get("t").and_then(Value::as_u64).unwrap_or(0);
                let Some(event) = str_field(&v, "event") else {
                    continue;
                };
                if t < start || t >= end {
                    continue;
                }
                let event = with_replay_name(event, &name);
                let matched = bus.machine.matches(&event).unwrap_or_default();
                let mut deliveries = Vec::new();
                for &i in matched {
                    let rule = &bus.rules[i];
                    if filters.is_empty() || filters.contains(&rule.arn) {
                        deliveries.extend(deliveries_for(rule, &event, now_millis()));
                    }
                }
                self.accept(deliveries, Vec::new()).await?;
                last = Some(t);
            }
            Ok(last)
        }
        .await;
        match result {
            Ok(last) => {
                doc["State"] = json!("COMPLETED");
                if let Some(t) = last {
                    doc["EventLastReplayedTime"] = epoch_seconds(t);
                }
            }
            Err(e) => {
                doc["State"] = json!("FAILED");
                doc["StateReason"] = json!(e);
            }
        }
        doc["ReplayEndTime"] = epoch_seconds(now_millis());
        if let Err(e) = self.save_replay(&doc).await {
            tracing::error!(replay = %name, "replay state not saved: {e}");
        }
    }

    pub(crate) fn describe_replay(&self, input: Value) -> Result<Value, ApiError> {
        let name = str_field(&input, "ReplayName").unwrap_or_default();
        self.lock().replays.get(name).cloned().ok_or_else(|| {
            error(
                "ResourceNotFoundException",
                format!("Replay {name} does not exist."),
            )
        })
    }

    pub(crate) fn list_replays(&self, input: Value) -> Result<Value, ApiError> {
        let prefix = str_field(&input, "NamePrefix").unwrap_or_default();
        let source = str_field(&input, "EventSourceArn");
        let state = str_field(&input, "State");
        let items: Vec<Value> = self
            .lock()
            .replays
            .values()
            .filter(|r| str_field(r, "ReplayName").is_some_and(|n| n.starts_with(prefix)))
            .filter(|r| source.is_none() || str_field(r, "EventSourceArn") == source)
            .filter(|r| state.is_none() || str_field(r, "State") == state)
            .map(|r| {
                let mut r = r.clone();
                if let Some(o) = r.as_object_mut() {
                    o.remove("Destination");
                    o.remove("Description");
                    o.remove("ReplayArn");
                }
                r
            })
            .collect();
        let (items, next) = super::api::page(&items, &input)?;
        Ok(json!({"Replays": items, "NextToken": next}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_name_goes_after_region() {
        let e = r#"{"version":"0","region":"r","resources":[],"detail":{}}"#;
        assert_eq!(
            with_replay_name(e, "rp"),
            r#"{"version":"0","region":"r","replay-name":"rp","resources":[],"detail":{}}"#
        );
        assert_eq!(
            with_replay_name(r#"{"a":1}"#, "rp"),
            r#"{"a":1,"replay-name":"rp"}"#
        );
    }
}
