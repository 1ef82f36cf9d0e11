//! The service over a real SQLite store, with recording targets and a fake clock for
//! schedules.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use trellis_core::target::{BoxFuture, Target, TargetError, TargetRegistry};
use trellis_core::ArnContext;
use trellis_store::sqlite::SqliteStore;
use trellis_store::Store;

use super::schedules::{due_fires, first_fire};
use super::*;
use crate::Schedule;

const SINK: &str = "arn:aws:lambda:us-east-1:000000000000:function:sink";

/// Records payloads; fails the first `fail` invocations.
struct Sink {
    got: Mutex<Vec<String>>,
    fail: Mutex<u32>,
}

impl Target for Sink {
    fn arn(&self) -> &str {
        SINK
    }
    fn invoke(&self, payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
        let failing = {
            let mut f = self.fail.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                true
            } else {
                self.got
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&payload).into_owned());
                false
            }
        };
        Box::pin(async move {
            if failing {
                Err(TargetError::Failed {
                    error: "Boom".into(),
                    cause: "nope".into(),
                })
            } else {
                Ok(Bytes::new())
            }
        })
    }
}

struct Env {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    sink: Arc<Sink>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Env {
            _dir: dir,
            path,
            sink: Arc::new(Sink {
                got: Mutex::new(Vec::new()),
                fail: Mutex::new(0),
            }),
        }
    }

    async fn start(&self) -> Arc<EventBridge> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&self.path).unwrap());
        let targets = Arc::new(TargetRegistry::default());
        targets.register(self.sink.clone());
        start(store, ArnContext::default(), targets).await.unwrap()
    }

    fn got(&self) -> Vec<Value> {
        self.sink
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            if self.got().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.got()
    }
}

#[test]
fn due_fires_catches_up_without_repeating() {
    let s = Schedule::parse("rate(1 minute)").unwrap();
    let anchor = 1_000;
    let first = first_fire(&s, anchor).unwrap();
    assert_eq!(first, 1_060);
    // Not due yet.
    assert_eq!(
        due_fires(&s, first, 1_059, anchor, 10),
        (vec![], Some(1_060))
    );
    // Exactly due.
    assert_eq!(
        due_fires(&s, first, 1_060, anchor, 10),
        (vec![1_060], Some(1_120))
    );
    // Three missed while down: all fired, next is in the future.
    assert_eq!(
        due_fires(&s, first, 1_250, anchor, 10),
        (vec![1_060, 1_120, 1_180, 1_240], Some(1_300))
    );
    // Beyond the cap: skip to the first occurrence after now.
    assert_eq!(
        due_fires(&s, first, 10_000, anchor, 2),
        (vec![1_060, 1_120], Some(10_060))
    );
    let cron = Schedule::parse("cron(0 12 * * ? *)").unwrap();
    let noon = 1_704_110_400; // 2024-01-01T12:00:00Z
    assert_eq!(
        due_fires(&cron, noon, noon + 86_399, 0, 10),
        (vec![noon], Some(noon + 86_400))
    );
}

#[tokio::test]
async fn schedules_fire_once_per_occurrence_across_restarts() {
    let env = Env::new();
    let eb = env.start().await;
    eb.call_op(
        "PutRule",
        json!({"Name": "tick", "ScheduleExpression": "rate(5 minutes)"}),
    )
    .await
    .unwrap();
    eb.call_op(
        "PutTargets",
        json!({"Rule": "tick", "Targets": [{"Id": "s", "Arn": SINK}]}),
    )
    .await
    .unwrap();
    let next = eb
        .call_op("DescribeRule", json!({"Name": "tick"}))
        .await
        .unwrap()["NextFireTime"]
        .as_i64()
        .unwrap();

    // A fake clock: just before, then at, the first occurrence.
    assert_eq!(eb.inner.tick_schedules(next - 1).await, Some(next));
    assert!(env.got().is_empty());
    assert_eq!(eb.inner.tick_schedules(next).await, Some(next + 300));
    let got = env.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["source"], "aws.events");
    assert_eq!(got[0]["detail-type"], "Scheduled Event");
    assert_eq!(got[0]["detail"], json!({}));
    assert_eq!(
        got[0]["resources"],
        json!(["arn:aws:events:us-east-1:000000000000:rule/tick"])
    );
    assert_eq!(got[0]["time"], crate::schedule::format_utc(next));
    // The same instant again fires nothing.
    eb.inner.tick_schedules(next).await;

    // Restart: the advanced fire time was persisted, so nothing fires twice; occurrences
    // missed while down are fired.
    drop(eb);
    let eb = env.start().await;
    assert_eq!(eb.inner.tick_schedules(next + 299).await, Some(next + 300));
    assert_eq!(env.wait_for(2).await.len(), 1);
    assert_eq!(eb.inner.tick_schedules(next + 900).await, Some(next + 1200));
    let got = env.wait_for(4).await;
    let times: Vec<&str> = got.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert_eq!(
        times,
        [
            crate::schedule::format_utc(next),
            crate::schedule::format_utc(next + 300),
            crate::schedule::format_utc(next + 600),
            crate::schedule::format_utc(next + 900),
        ]
    );
}

#[tokio::test]
async fn put_events_delivers_transformed_input_and_retries() {
    let env = Env::new();
    *env.sink.fail.lock().unwrap() = 1;
    let eb = env.start().await;
    eb.call_op(
        "PutRule",
        json!({"Name": "r", "EventPattern": r#"{"detail":{"n":[{"numeric":[">",1]}]}}"#}),
    )
    .await
    .unwrap();
    eb.call_op(
        "PutTargets",
        json!({"Rule": "r", "Targets": [{"Id": "s", "Arn": SINK,
            "InputTransformer": {"InputPathsMap": {"n": "$.detail.n"},
                                 "InputTemplate": "{\"n\": <n>, \"rule\": <aws.events.rule-arn>}"}}]}),
    )
    .await
    .unwrap();
    let out = eb
        .call_op(
            "PutEvents",
            json!({"Entries": [
                {"Source": "a", "DetailType": "t", "Detail": "{\"n\": 5}"},
                {"Source": "a", "DetailType": "t", "Detail": "{\"n\": 1}"},
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(out["FailedEntryCount"], 0);
    // The first attempt fails; the retry (after about a second) succeeds.
    for _ in 0..100 {
        if !env.got().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        env.got(),
        [json!({"n": 5, "rule": "arn:aws:events:us-east-1:000000000000:rule/r"})]
    );
    // Delivered records are removed from the store.
    for _ in 0..50 {
        if eb.inner.store.list(KIND_DELIVERY).await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("delivery record left behind");
}

#[tokio::test]
async fn errors_have_aws_codes() {
    let env = Env::new();
    let eb = env.start().await;
    let e = eb
        .call_op(
            "PutRule",
            json!({"Name": "r", "EventPattern": "{\"source\":\"x\"}"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidEventPatternException");
    assert!(e
        .message
        .starts_with("Event pattern is not valid. Reason: "));
    let e = eb
        .call_op("DescribeRule", json!({"Name": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "ResourceNotFoundException");
    assert_eq!(e.message, "Rule nope does not exist on EventBus default.");
    let e = eb
        .call_op(
            "PutTargets",
            json!({"Rule": "nope", "Targets": [{"Id": "s", "Arn": SINK}]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "ResourceNotFoundException");
    eb.call_op(
        "PutRule",
        json!({"Name": "r", "EventPattern": "{\"source\":[\"x\"]}"}),
    )
    .await
    .unwrap();
    let e = eb
        .call_op(
            "PutTargets",
            json!({"Rule": "r", "Targets": [{"Id": "s", "Arn": SINK,
                "InputTransformer": {"InputTemplate": "<missing>"}}]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "ValidationException");
    assert_eq!(
        e.message,
        "InputTemplate for target s contains invalid placeholder missing."
    );
}

#[tokio::test]
async fn archived_events_are_replayed_with_their_replay_name() {
    let env = Env::new();
    let eb = env.start().await;
    eb.call_op(
        "PutRule",
        json!({"Name": "r", "EventPattern": r#"{"source":["a"]}"#}),
    )
    .await
    .unwrap();
    eb.call_op(
        "PutTargets",
        json!({"Rule": "r", "Targets": [{"Id": "s", "Arn": SINK}]}),
    )
    .await
    .unwrap();
    let bus = "arn:aws:events:us-east-1:000000000000:event-bus/default";
    let out = eb
        .call_op(
            "CreateArchive",
            json!({"ArchiveName": "all", "EventSourceArn": bus}),
        )
        .await
        .unwrap();
    assert_eq!(out["State"], "ENABLED");
    let e = eb
        .call_op(
            "CreateArchive",
            json!({"ArchiveName": "all", "EventSourceArn": bus}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "ResourceAlreadyExistsException",
            "Archive all already exists."
        )
    );
    eb.call_op(
        "PutEvents",
        json!({"Entries": [
            {"Source": "a", "DetailType": "t", "Detail": "{\"n\": 1}"},
            {"Source": "b", "DetailType": "t", "Detail": "{\"n\": 2}"},
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(env.wait_for(1).await.len(), 1);
    let d = eb
        .call_op("DescribeArchive", json!({"ArchiveName": "all"}))
        .await
        .unwrap();
    assert_eq!(d["EventCount"], 2);

    let now = trellis_core::clock::now_millis() as f64 / 1000.0;
    let e = eb
        .call_op(
            "StartReplay",
            json!({"ReplayName": "rp", "EventSourceArn": out["ArchiveArn"],
                   "EventStartTime": now, "EventEndTime": now - 10.0,
                   "Destination": {"Arn": bus}}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        "Parameter EventEndTime is not valid. Reason: EventStartTime must be before EventEndTime."
    );
    let r = eb
        .call_op(
            "StartReplay",
            json!({"ReplayName": "rp", "EventSourceArn": out["ArchiveArn"],
                   "EventStartTime": now - 60.0, "EventEndTime": now + 60.0,
                   "Destination": {"Arn": bus}}),
        )
        .await
        .unwrap();
    assert_eq!(r["State"], "STARTING");
    let got = env.wait_for(2).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["replay-name"], "rp");
    assert_eq!(got[1]["id"], got[0]["id"]);
    for _ in 0..100 {
        let d = eb
            .call_op("DescribeReplay", json!({"ReplayName": "rp"}))
            .await
            .unwrap();
        if d["State"] == "COMPLETED" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("replay did not complete");
}
