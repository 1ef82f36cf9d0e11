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

// --- connections as HTTP targets ---

const RCFG: &str =
    "arn:aws:vpc-lattice:us-east-1:000000000000:resourceconfiguration/rcfg-0123456789abcdef0";

/// An HTTP target (a resource configuration or a service) that records the requests it gets
/// and answers `status`.
struct HttpSink {
    key: String,
    status: u16,
    got: Mutex<Vec<http::Request<Bytes>>>,
}

impl HttpSink {
    fn new(key: &str, status: u16) -> Arc<HttpSink> {
        Arc::new(HttpSink {
            key: key.to_string(),
            status,
            got: Mutex::new(Vec::new()),
        })
    }
}

impl Target for HttpSink {
    fn arn(&self) -> &str {
        &self.key
    }
    fn invoke(&self, _payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
        Box::pin(async { Err(TargetError::Unavailable("HTTP only".into())) })
    }
    fn invoke_http(
        &self,
        req: http::Request<Bytes>,
    ) -> BoxFuture<'static, Result<http::Response<Bytes>, TargetError>> {
        self.got.lock().unwrap().push(req);
        let resp = http::Response::builder()
            .status(self.status)
            .body(Bytes::from_static(b"{\"ok\":true}"))
            .unwrap();
        Box::pin(async move { Ok(resp) })
    }
}

async fn start_with(targets: &Arc<TargetRegistry>) -> (tempfile::TempDir, Arc<EventBridge>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
    let eb = start(store, ArnContext::default(), targets.clone())
        .await
        .unwrap();
    (dir, eb)
}

fn api_key_connection(name: &str, extra: Value) -> Value {
    let mut input = json!({
        "Name": name,
        "AuthorizationType": "API_KEY",
        "AuthParameters": {
            "ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "k1"},
            "InvocationHttpParameters": {
                "QueryStringParameters": [{"Key": "team", "Value": "a b"}],
                "BodyParameters": [{"Key": "tenant", "Value": "t1", "IsValueSecret": true}],
            },
        },
    });
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    input
}

#[tokio::test]
async fn private_connection_round_trips_and_invokes_its_resource_configuration() {
    let targets = Arc::new(TargetRegistry::default());
    let rcfg = HttpSink::new(RCFG, 200);
    targets.register(rcfg.clone());
    let (_dir, eb) = start_with(&targets).await;

    let input = api_key_connection(
        "private",
        json!({"InvocationConnectivityParameters": {
            "ResourceParameters": {"ResourceConfigurationArn": RCFG}}}),
    );
    let created = eb.call_op("CreateConnection", input).await.unwrap();
    assert_eq!(created["ConnectionState"], "ACTIVE");
    let conn_arn = created["ConnectionArn"].as_str().unwrap().to_string();

    let d = eb
        .call_op("DescribeConnection", json!({"Name": "private"}))
        .await
        .unwrap();
    let rp = &d["InvocationConnectivityParameters"]["ResourceParameters"];
    assert_eq!(rp["ResourceConfigurationArn"], RCFG);
    let assoc = rp["ResourceAssociationArn"].as_str().unwrap();
    assert!(
        assoc.starts_with(
            "arn:aws:vpc-lattice:us-east-1:000000000000:servicenetworkresourceassociation/snra-"
        ) && assoc.len()
            == "arn:aws:vpc-lattice:us-east-1:000000000000:servicenetworkresourceassociation/snra-"
                .len()
                + 17,
        "{assoc}"
    );
    assert_eq!(d["ConnectionState"], "ACTIVE");
    // Secrets are not returned: the key value, and a parameter marked secret.
    assert!(d["AuthParameters"]["ApiKeyAuthParameters"]
        .get("ApiKeyValue")
        .is_none());
    let body_param = &d["AuthParameters"]["InvocationHttpParameters"]["BodyParameters"][0];
    assert_eq!(body_param["Key"], "tenant");
    assert!(body_param.get("Value").is_none());

    let dest = eb
        .call_op(
            "CreateApiDestination",
            json!({"Name": "orders", "ConnectionArn": conn_arn, "HttpMethod": "PUT",
                   "InvocationEndpoint": "https://orders.internal:8443/v1/orders?src=eb"}),
        )
        .await
        .unwrap();
    let dest_arn = dest["ApiDestinationArn"].as_str().unwrap();
    targets
        .invoke(dest_arn, Bytes::from_static(b"{\"id\":7}"))
        .await
        .unwrap();
    {
        let got = rcfg.got.lock().unwrap();
        assert_eq!(got.len(), 1);
        let req = &got[0];
        assert_eq!(req.method(), http::Method::PUT);
        // The URI stays absolute: the resource configuration dials its own destination.
        assert_eq!(
            req.uri().to_string(),
            "https://orders.internal:8443/v1/orders?src=eb&team=a%20b"
        );
        assert_eq!(req.headers()["x-api-key"], "k1");
        assert_eq!(
            req.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        let body: Value = serde_json::from_slice(req.body()).unwrap();
        assert_eq!(body, json!({"id": 7, "tenant": "t1"}));
    }

    // UpdateConnection: a new key is used from the next invocation on; the association stays.
    let updated = eb
        .call_op(
            "UpdateConnection",
            json!({"Name": "private", "AuthParameters": {
                "ApiKeyAuthParameters": {"ApiKeyValue": "k2"}}}),
        )
        .await
        .unwrap();
    assert_eq!(updated["ConnectionState"], "ACTIVE");
    targets
        .invoke(dest_arn, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(rcfg.got.lock().unwrap()[1].headers()["x-api-key"], "k2");
    let d2 = eb
        .call_op("DescribeConnection", json!({"Name": "private"}))
        .await
        .unwrap();
    assert_eq!(
        d2["InvocationConnectivityParameters"]["ResourceParameters"]["ResourceAssociationArn"],
        assoc
    );
    assert_eq!(
        d2["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyName"],
        "x-api-key"
    );

    // The list shape has no connectivity parameters.
    let list = eb.call_op("ListConnections", json!({})).await.unwrap();
    assert!(list["Connections"][0]
        .get("InvocationConnectivityParameters")
        .is_none());

    // An empty ARN passes the model's pattern but is not a resource configuration.
    let err = eb
        .call_op(
            "CreateConnection",
            api_key_connection(
                "empty",
                json!({"InvocationConnectivityParameters": {
                    "ResourceParameters": {"ResourceConfigurationArn": ""}}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "ValidationException");

    // Deleting the connection unregisters it: the destination then finds nothing.
    eb.call_op("DeleteConnection", json!({"Name": "private"}))
        .await
        .unwrap();
    assert!(matches!(
        targets.invoke(dest_arn, Bytes::from_static(b"{}")).await,
        Err(TargetError::NotFound(_))
    ));
}

#[tokio::test]
async fn public_connection_reaches_the_service_that_owns_the_host_and_maps_statuses() {
    let targets = Arc::new(TargetRegistry::default());
    let service = HttpSink::new(&trellis_core::target::host_key("Orders.Internal"), 429);
    targets.register(service.clone());
    let (_dir, eb) = start_with(&targets).await;
    let created = eb
        .call_op("CreateConnection", api_key_connection("public", json!({})))
        .await
        .unwrap();
    assert_eq!(created["ConnectionState"], "AUTHORIZED");
    let dest = eb
        .call_op(
            "CreateApiDestination",
            json!({"Name": "svc", "ConnectionArn": created["ConnectionArn"],
                   "HttpMethod": "POST", "InvocationEndpoint": "http://orders.internal/hook"}),
        )
        .await
        .unwrap();
    let err = targets
        .invoke(
            dest["ApiDestinationArn"].as_str().unwrap(),
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap_err();
    assert_eq!(service.got.lock().unwrap().len(), 1);
    assert_eq!(super::http_target::http_status(&err), Some(429));
}

#[test]
fn api_destination_answers_are_retried_as_aws_retries_them() {
    use super::delivery::retryable;
    use super::http_target::http_failure;
    let status = |s: u16| http_failure(http::StatusCode::from_u16(s).unwrap(), b"");
    for s in [401, 407, 409, 429, 500, 502, 503] {
        assert!(retryable(&status(s)), "{s} is retried");
    }
    for s in [400, 403, 404, 413, 301] {
        assert!(!retryable(&status(s)), "{s} is not retried");
    }
    assert!(retryable(&TargetError::Timeout("x".into())));
    assert!(retryable(&TargetError::Failed {
        error: "Unhandled".into(),
        cause: "function error".into()
    }));
}
