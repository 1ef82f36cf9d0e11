//! EventBridge driven by the AWS SDK for Rust against the built binary: buses, rules, targets,
//! `PutEvents` limits as AWS records them, input transformers, retries and dead letters,
//! schedules, and delivery of accepted events across `kill -9`.
//!
//! The observable target is an API destination (`CreateConnection` + `CreateApiDestination`)
//! pointing at a recording HTTP (or HTTPS, with a test CA) server in the test, or a Lattice
//! service whose target group is that server.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_eventbridge::error::ProvideErrorMetadata;
use aws_sdk_eventbridge::types::*;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

fn events(t: &Trellis) -> aws_sdk_eventbridge::Client {
    aws_client!(aws_sdk_eventbridge, t)
}

/// One request a [`Recorder`] got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    api_key: Option<String>,
    headers: http::HeaderMap,
    body: String,
}

/// An HTTP server that records every request; `?status=N` in the path sets the answer.
struct Recorder {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_on(addr: SocketAddr) -> Recorder {
        Self::serve(TcpListener::bind(addr).await.unwrap(), None)
    }

    /// A recorder speaking HTTPS with `acceptor`'s certificate.
    async fn start_tls(acceptor: tokio_rustls::TlsAcceptor) -> Recorder {
        Self::serve(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            Some(acceptor),
        )
    }

    fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Recorder {
        let addr = listener.local_addr().unwrap();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let h = h.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let h = h.clone();
                        async move {
                            let path = req.uri().to_string();
                            let headers = req.headers().clone();
                            let api_key = headers
                                .get("x-api-key")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            h.lock().unwrap().push(Hit {
                                path: path.clone(),
                                api_key,
                                headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                            });
                            let status = path
                                .split("status=")
                                .nth(1)
                                .and_then(|s| s.parse::<u16>().ok())
                                .unwrap_or(200);
                            let mut resp =
                                http::Response::new(Full::new(Bytes::from_static(b"{}")));
                            *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let http1 = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http1.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http1.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                    }
                });
            }
        });
        Recorder { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn bodies(&self, path_prefix: &str) -> Vec<Value> {
        self.hits()
            .into_iter()
            .filter(|h| h.path.starts_with(path_prefix))
            .map(|h| serde_json::from_str(&h.body).unwrap_or(Value::String(h.body)))
            .collect()
    }
}

/// A connection (API key) and an API destination posting to `url`; returns its ARN.
async fn destination(c: &aws_sdk_eventbridge::Client, name: &str, url: &str) -> String {
    let conn = c
        .create_connection()
        .name(format!("{name}-conn"))
        .authorization_type(ConnectionAuthorizationType::ApiKey)
        .auth_parameters(
            CreateConnectionAuthRequestParameters::builder()
                .api_key_auth_parameters(
                    CreateConnectionApiKeyAuthRequestParameters::builder()
                        .api_key_name("x-api-key")
                        .api_key_value("sekret")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.create_api_destination()
        .name(name)
        .connection_arn(conn.connection_arn().unwrap())
        .invocation_endpoint(url)
        .http_method(ApiDestinationHttpMethod::Post)
        .send()
        .await
        .unwrap()
        .api_destination_arn()
        .unwrap()
        .to_string()
}

fn entry(bus: &str, source: &str, detail: &str) -> PutEventsRequestEntry {
    PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(source)
        .detail_type("test")
        .detail(detail)
        .build()
}

/// An AWSEvents call over plain HTTP, for fields the SDK does not surface.
async fn raw_call(t: &Trellis, op: &str, body: Value) -> (u16, Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = http::Request::post(format!("{}/", t.endpoint()))
        .header("x-amz-target", format!("AWSEvents.{op}"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn buses_rules_targets_and_aws_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = events(&t);

    let buses = c.list_event_buses().send().await.unwrap();
    assert_eq!(buses.event_buses()[0].name(), Some("default"));
    let arn = c.create_event_bus().name("orders").send().await.unwrap();
    assert_eq!(
        arn.event_bus_arn(),
        Some("arn:aws:events:us-east-1:000000000000:event-bus/orders")
    );
    let e = c
        .create_event_bus()
        .name("orders")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceAlreadyExistsException"));
    assert_eq!(e.message(), Some("Event bus orders already exists."));
    let e = c
        .describe_event_bus()
        .name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
    assert_eq!(e.message(), Some("Event bus nope does not exist."));
    let e = c
        .delete_event_bus()
        .name("default")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert_eq!(e.message(), Some("Cannot delete event bus default."));

    // Rules: invalid patterns carry the engine's AWS text.
    let e = c
        .put_rule()
        .name("bad")
        .event_pattern(r#"{"source":"aws.ec2"}"#)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidEventPatternException"));
    assert_eq!(
        e.message(),
        Some(r#"Event pattern is not valid. Reason: "source" must be an object or an array"#)
    );
    let rule = c
        .put_rule()
        .name("r1")
        .event_bus_name("orders")
        .event_pattern(r#"{"source":["shop"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        rule.rule_arn(),
        Some("arn:aws:events:us-east-1:000000000000:rule/orders/r1")
    );
    let got = c
        .describe_rule()
        .name("r1")
        .event_bus_name("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(got.state(), Some(&RuleState::Enabled));
    assert_eq!(got.event_pattern(), Some(r#"{"source":["shop"]}"#));
    let e = c.describe_rule().name("r1").send().await.unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
    assert_eq!(
        e.message(),
        Some("Rule r1 does not exist on EventBus default.")
    );
    c.disable_rule()
        .name("r1")
        .event_bus_name("orders")
        .send()
        .await
        .unwrap();
    let listed = c
        .list_rules()
        .event_bus_name("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.rules()[0].state(), Some(&RuleState::Disabled));

    // Targets: at most five, and a rule with targets is not deleted without Force.
    let targets: Vec<Target> = (0..6)
        .map(|i| {
            Target::builder()
                .id(format!("t{i}"))
                .arn("arn:aws:events:us-east-1:000000000000:event-bus/default")
                .build()
                .unwrap()
        })
        .collect();
    let e = c
        .put_targets()
        .rule("r1")
        .event_bus_name("orders")
        .set_targets(Some(targets.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("LimitExceededException"));
    assert_eq!(
        e.message(),
        Some("The requested resource exceeds the maximum number allowed.")
    );
    let put = c
        .put_targets()
        .rule("r1")
        .event_bus_name("orders")
        .set_targets(Some(targets[..2].to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.failed_entry_count(), 0);
    let e = c
        .put_targets()
        .rule("r1")
        .event_bus_name("orders")
        .targets(
            Target::builder()
                .id("!@#$@!#$")
                .arn("arn:aws:sqs:us-east-1:000000000000:q")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let listed = c
        .list_targets_by_rule()
        .rule("r1")
        .event_bus_name("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.targets().len(), 2);
    let e = c
        .delete_rule()
        .name("r1")
        .event_bus_name("orders")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert_eq!(
        e.message(),
        Some("Rule can't be deleted since it has targets.")
    );
    c.remove_targets()
        .rule("r1")
        .event_bus_name("orders")
        .ids("t0")
        .ids("t1")
        .send()
        .await
        .unwrap();
    c.delete_rule()
        .name("r1")
        .event_bus_name("orders")
        .send()
        .await
        .unwrap();
    let listed = c
        .list_rules()
        .event_bus_name("orders")
        .send()
        .await
        .unwrap();
    assert!(listed.rules().is_empty());

    // TestEventPattern.
    let event = r#"{"id":"1","source":"aws.ec2","detail-type":"x","account":"1","region":"us-east-1","time":"2024-01-01T00:00:00Z","resources":[],"detail":{"state":"running"}}"#;
    let r = c
        .test_event_pattern()
        .event_pattern(r#"{"detail":{"state":[{"anything-but":"pending"}]}}"#)
        .event(event)
        .send()
        .await
        .unwrap();
    assert!(r.result());
    let r = c
        .test_event_pattern()
        .event_pattern(r#"{"source":["aws.s3"]}"#)
        .event(event)
        .send()
        .await
        .unwrap();
    assert!(!r.result());
    let e = c
        .test_event_pattern()
        .event_pattern(r#"{"source":[{"prefix":1}]}"#)
        .event(event)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidEventPatternException"));
    assert!(e
        .message()
        .unwrap()
        .starts_with("Event pattern is not valid. Reason: "));
}

#[tokio::test]
async fn put_events_errors_and_limits_as_aws_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = events(&t);

    let r = c
        .put_events()
        .entries(
            PutEventsRequestEntry::builder()
                .detail_type("t")
                .detail("{}")
                .build(),
        )
        .entries(
            PutEventsRequestEntry::builder()
                .source("s")
                .detail("{}")
                .build(),
        )
        .entries(
            PutEventsRequestEntry::builder()
                .source("s")
                .detail_type("t")
                .build(),
        )
        .entries(entry("default", "s", "\"a string\""))
        .entries(entry("default", "s", "[1,2]"))
        .entries(entry("default", "s", "{not json"))
        .entries(entry("default", "s", r#"{"ok":true}"#))
        .entries(entry("no-such-bus", "s", r#"{"ok":true}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.failed_entry_count(), 6);
    let got: Vec<(Option<&str>, Option<&str>)> = r
        .entries()
        .iter()
        .map(|e| (e.error_code(), e.error_message()))
        .collect();
    assert_eq!(
        got[..6],
        [
            (
                Some("InvalidArgument"),
                Some("Parameter Source is not valid. Reason: Source is a required argument.")
            ),
            (
                Some("InvalidArgument"),
                Some(
                    "Parameter DetailType is not valid. Reason: DetailType is a required argument."
                )
            ),
            (
                Some("InvalidArgument"),
                Some("Parameter Detail is not valid. Reason: Detail is a required argument.")
            ),
            (Some("MalformedDetail"), Some("Detail is malformed.")),
            (Some("MalformedDetail"), Some("Detail is malformed.")),
            (Some("MalformedDetail"), Some("Detail is malformed.")),
        ]
    );
    // Accepted, including for a bus that does not exist (AWS drops those silently).
    assert_eq!(r.entries()[6].event_id().map(str::len), Some(36));
    assert!(r.entries()[7].event_id().is_some());

    let mut too_many = c.put_events();
    for _ in 0..11 {
        too_many = too_many.entries(entry("default", "s", "{}"));
    }
    let e = too_many.send().await.unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert!(
        e.message()
            .unwrap()
            .contains("Member must have length less than or equal to 10"),
        "{e:?}"
    );

    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(256 * 1024));
    let e = c
        .put_events()
        .entries(entry("default", "s", &big))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert_eq!(
        e.message(),
        Some("Total size of the entries in the request is over the limit.")
    );
}

#[tokio::test]
async fn rules_deliver_with_input_transformers_and_between_buses() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = events(&t);
    let rec = Recorder::start().await;
    let plain = destination(&c, "plain", &rec.url("/plain")).await;
    let shaped = destination(&c, "shaped", &rec.url("/shaped")).await;
    let forwarded = destination(&c, "forwarded", &rec.url("/forwarded")).await;

    c.create_event_bus().name("orders").send().await.unwrap();
    c.create_event_bus().name("audit").send().await.unwrap();
    c.put_rule()
        .name("placed")
        .event_bus_name("orders")
        .event_pattern(r#"{"source":["shop"],"detail":{"total":[{"numeric":[">",100]}]}}"#)
        .send()
        .await
        .unwrap();
    c.put_targets()
        .rule("placed")
        .event_bus_name("orders")
        .targets(Target::builder().id("plain").arn(&plain).build().unwrap())
        .targets(
            Target::builder()
                .id("shaped")
                .arn(&shaped)
                .input_transformer(
                    InputTransformer::builder()
                        .input_paths_map("id", "$.detail.id")
                        .input_paths_map("total", "$.detail.total")
                        .input_template(
                            r#"{"order": <id>, "amount": <total>, "rule": "<aws.events.rule-name>"}"#,
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .targets(
            Target::builder()
                .id("to-audit")
                .arn("arn:aws:events:us-east-1:000000000000:event-bus/audit")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    c.put_rule()
        .name("everything")
        .event_bus_name("audit")
        .event_pattern(r#"{"source":["shop"]}"#)
        .send()
        .await
        .unwrap();
    c.put_targets()
        .rule("everything")
        .event_bus_name("audit")
        .targets(
            Target::builder()
                .id("fwd")
                .arn(&forwarded)
                .input_path("$.detail")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let r = c
        .put_events()
        .entries(entry("orders", "shop", r#"{"id":"o-1","total":250}"#))
        .entries(entry("orders", "shop", r#"{"id":"o-2","total":50}"#))
        .entries(entry("orders", "other", r#"{"id":"o-3","total":500}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.failed_entry_count(), 0);
    let id = r.entries()[0].event_id().unwrap().to_string();

    assert!(
        eventually(Duration::from_secs(10), || async {
            rec.bodies("/plain").len() == 1
                && rec.bodies("/shaped").len() == 1
                && rec.bodies("/forwarded").len() == 1
        })
        .await,
        "hits: {:?}",
        rec.hits()
    );
    let event = &rec.bodies("/plain")[0];
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["source"], "shop");
    assert_eq!(event["detail-type"], "test");
    assert_eq!(event["account"], "000000000000");
    assert_eq!(event["region"], "us-east-1");
    assert_eq!(event["detail"], json!({"id":"o-1","total":250}));
    assert_eq!(
        rec.bodies("/shaped")[0],
        json!({"order": "o-1", "amount": 250, "rule": "placed"})
    );
    assert_eq!(rec.bodies("/forwarded")[0], json!({"id":"o-1","total":250}));
    assert!(rec
        .hits()
        .iter()
        .all(|h| h.api_key.as_deref() == Some("sekret")));
    // Nothing else arrives (o-2 is too small, o-3 has another source).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rec.hits().len(), 3);
}

#[tokio::test]
async fn failing_target_is_retried_then_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = events(&t);
    let rec = Recorder::start().await;
    let failing = destination(&c, "failing", &rec.url("/fail?status=500")).await;
    let dlq_sink = destination(&c, "dlq-sink", &rec.url("/dlq")).await;

    c.create_event_bus().name("dlq").send().await.unwrap();
    c.put_rule()
        .name("dead-letters")
        .event_bus_name("dlq")
        .event_pattern(r#"{"source":["trellis.events"]}"#)
        .send()
        .await
        .unwrap();
    c.put_targets()
        .rule("dead-letters")
        .event_bus_name("dlq")
        .targets(Target::builder().id("sink").arn(&dlq_sink).build().unwrap())
        .send()
        .await
        .unwrap();
    c.put_rule()
        .name("r")
        .event_pattern(r#"{"source":["app"]}"#)
        .send()
        .await
        .unwrap();
    c.put_targets()
        .rule("r")
        .targets(
            Target::builder()
                .id("flaky")
                .arn(&failing)
                .retry_policy(RetryPolicy::builder().maximum_retry_attempts(2).build())
                .dead_letter_config(
                    DeadLetterConfig::builder()
                        .arn("arn:aws:events:us-east-1:000000000000:event-bus/dlq")
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let r = c
        .put_events()
        .entries(entry("default", "app", r#"{"n":1}"#))
        .send()
        .await
        .unwrap();
    let id = r.entries()[0].event_id().unwrap().to_string();

    assert!(
        eventually(Duration::from_secs(20), || async {
            !rec.bodies("/dlq").is_empty()
        })
        .await,
        "hits: {:?}",
        rec.hits()
    );
    assert_eq!(rec.bodies("/fail").len(), 3, "one attempt and two retries");
    let dl = &rec.bodies("/dlq")[0];
    assert_eq!(dl["source"], "trellis.events");
    let msg = &dl["detail"];
    let body: Value = serde_json::from_str(msg["MessageBody"].as_str().unwrap()).unwrap();
    assert_eq!(body["id"], id.as_str());
    let attr = |k: &str| msg["MessageAttributes"][k]["StringValue"].clone();
    assert_eq!(attr("EXHAUSTED_RETRY_CONDITION"), "MaximumRetryAttempts");
    assert_eq!(attr("RETRY_ATTEMPTS"), "2");
    assert_eq!(attr("ERROR_CODE"), "CLIENT_ERROR");
    assert_eq!(
        attr("RULE_ARN"),
        "arn:aws:events:us-east-1:000000000000:rule/r"
    );
    assert_eq!(attr("TARGET_ARN"), failing.as_str());
}

#[tokio::test]
async fn schedule_rules_are_accepted_with_a_persisted_next_fire_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trellis::start(dir.path(), &[]);
    let c = events(&t);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    c.put_rule()
        .name("tick")
        .schedule_expression("rate(1 minute)")
        .send()
        .await
        .unwrap();
    let got = c.describe_rule().name("tick").send().await.unwrap();
    assert_eq!(got.schedule_expression(), Some("rate(1 minute)"));
    let (status, raw) = raw_call(&t, "DescribeRule", json!({"Name": "tick"})).await;
    assert_eq!(status, 200);
    let next = raw["NextFireTime"].as_i64().expect("NextFireTime");
    assert!(next > before && next <= before + 61, "{next} vs {before}");

    let e = c
        .put_rule()
        .name("bad")
        .schedule_expression("rate(1 minutes)")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert_eq!(
        e.message(),
        Some("Parameter ScheduleExpression is not valid.")
    );
    c.create_event_bus().name("custom").send().await.unwrap();
    let e = c
        .put_rule()
        .name("bad")
        .event_bus_name("custom")
        .schedule_expression("cron(0 12 * * ? *)")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let e = c.put_rule().name("neither").send().await.unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));

    // The next fire time survives a restart unchanged.
    t.kill9();
    let t = Trellis::start(dir.path(), &[]);
    let (_, raw) = raw_call(&t, "DescribeRule", json!({"Name": "tick"})).await;
    assert_eq!(raw["NextFireTime"].as_i64(), Some(next));
}

#[tokio::test]
async fn accepted_events_are_delivered_after_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trellis::start(dir.path(), &[]);
    let c = events(&t);
    // A port with nothing listening yet: the target is unreachable.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dest = destination(&c, "later", &format!("http://{port}/in")).await;
    c.put_rule()
        .name("all")
        .event_pattern(r#"{"source":["load"]}"#)
        .send()
        .await
        .unwrap();
    c.put_targets()
        .rule("all")
        .targets(Target::builder().id("later").arn(&dest).build().unwrap())
        .send()
        .await
        .unwrap();

    // Four concurrent senders stream batches of 10; Trellis is killed while they run. Every
    // entry that was answered with an EventId must be delivered after the restart.
    let accepted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut senders = Vec::new();
    for s in 0..4 {
        let c = c.clone();
        let accepted = accepted.clone();
        senders.push(tokio::spawn(async move {
            for batch in 0.. {
                let mut req = c.put_events();
                for i in 0..10 {
                    req = req.entries(entry(
                        "default",
                        "load",
                        &format!(r#"{{"s":{s},"b":{batch},"i":{i}}}"#),
                    ));
                }
                match req.send().await {
                    Ok(r) => {
                        assert_eq!(r.failed_entry_count(), 0);
                        accepted.lock().unwrap().extend(
                            r.entries()
                                .iter()
                                .map(|e| e.event_id().unwrap().to_string()),
                        );
                    }
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    assert!(
        eventually(Duration::from_secs(60), || async {
            accepted.lock().unwrap().len() >= 1000
        })
        .await
    );
    t.kill9();
    for s in senders {
        s.await.unwrap();
    }
    let ids = accepted.lock().unwrap().clone();
    assert!(ids.len() >= 1000);

    let rec = Recorder::start_on(port).await;
    let _t = Trellis::start(dir.path(), &[]);
    let delivered = || {
        rec.bodies("/in")
            .iter()
            .filter_map(|b| b["id"].as_str().map(str::to_string))
            .collect::<HashSet<_>>()
    };
    assert!(
        eventually(Duration::from_secs(60), || async {
            ids.is_subset(&delivered())
        })
        .await,
        "delivered {} of {} accepted",
        ids.intersection(&delivered()).count(),
        ids.len()
    );
}

#[tokio::test]
async fn archived_events_are_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = events(&t);
    let rec = Recorder::start().await;
    let dest = destination(&c, "sink", &rec.url("/sink")).await;
    let bus = "arn:aws:events:us-east-1:000000000000:event-bus/default";
    let archive = c
        .create_archive()
        .archive_name("everything")
        .event_source_arn(bus)
        .send()
        .await
        .unwrap();
    assert_eq!(archive.state(), Some(&ArchiveState::Enabled));
    let e = c
        .create_archive()
        .archive_name("x")
        .event_source_arn("arn:aws:events:us-east-1:000000000000:event-bus/nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.message(), Some("Event bus nope does not exist."));
    let r = c
        .put_events()
        .entries(entry("default", "app", r#"{"n":1}"#))
        .send()
        .await
        .unwrap();
    let id = r.entries()[0].event_id().unwrap().to_string();
    // The rule comes after the event: only the replay reaches the target.
    c.put_rule()
        .name("r")
        .event_pattern(r#"{"source":["app"]}"#)
        .send()
        .await
        .unwrap();
    c.put_targets()
        .rule("r")
        .targets(Target::builder().id("sink").arn(&dest).build().unwrap())
        .send()
        .await
        .unwrap();
    let now = aws_sdk_eventbridge::primitives::DateTime::from(std::time::SystemTime::now());
    let start = aws_sdk_eventbridge::primitives::DateTime::from_secs(now.secs() - 60);
    let end = aws_sdk_eventbridge::primitives::DateTime::from_secs(now.secs() + 60);
    let replay = c
        .start_replay()
        .replay_name("again")
        .event_source_arn(archive.archive_arn().unwrap())
        .event_start_time(start)
        .event_end_time(end)
        .destination(ReplayDestination::builder().arn(bus).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.state(), Some(&ReplayState::Starting));
    assert!(
        eventually(Duration::from_secs(10), || async {
            rec.bodies("/sink").len() == 1
        })
        .await
    );
    let got = &rec.bodies("/sink")[0];
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["replay-name"], "again");
    assert!(
        eventually(Duration::from_secs(10), || async {
            let d = c
                .describe_replay()
                .replay_name("again")
                .send()
                .await
                .unwrap();
            d.state() == Some(&ReplayState::Completed)
        })
        .await
    );
}

/// An event starts a workflow (a state machine as rule target); the workflow's
/// `events:putEvents` task puts an event back on the bus (the bus as target), which a second
/// rule delivers to an API destination.
#[tokio::test]
async fn events_and_workflows_reach_each_other_through_the_target_registry() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = events(&t);
    let sfn = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::Config::builder()
            .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
            .region(aws_sdk_sfn::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sfn::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .endpoint_url(t.endpoint())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build(),
    );
    let definition = json!({
        "StartAt": "Emit",
        "States": {"Emit": {
            "Type": "Task",
            "Resource": "arn:aws:states:::events:putEvents",
            "Parameters": {"Entries": [{
                "Source": "workflow", "DetailType": "done", "Detail": {"x.$": "$.x"}
            }]},
            "End": true
        }}
    });
    let machine = sfn
        .create_state_machine()
        .name("emit")
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::000000000000:role/any")
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string();
    let rec = Recorder::start().await;
    let dest = destination(&c, "sink", &rec.url("/sink")).await;

    c.put_rule()
        .name("to-workflow")
        .event_pattern(r#"{"source":["app"]}"#)
        .send()
        .await
        .unwrap();
    c.put_targets()
        .rule("to-workflow")
        .targets(
            Target::builder()
                .id("wf")
                .arn(&machine)
                .input_transformer(
                    InputTransformer::builder()
                        .input_paths_map("n", "$.detail.n")
                        .input_template(r#"{"x": <n>}"#)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    c.put_rule()
        .name("from-workflow")
        .event_pattern(r#"{"source":["workflow"]}"#)
        .send()
        .await
        .unwrap();
    c.put_targets()
        .rule("from-workflow")
        .targets(Target::builder().id("sink").arn(&dest).build().unwrap())
        .send()
        .await
        .unwrap();

    c.put_events()
        .entries(entry("default", "app", r#"{"n":7}"#))
        .send()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(15), || async {
            !rec.bodies("/sink").is_empty()
        })
        .await,
        "hits: {:?}",
        rec.hits()
    );
    let got = &rec.bodies("/sink")[0];
    assert_eq!(got["source"], "workflow");
    assert_eq!(got["detail-type"], "done");
    assert_eq!(got["detail"], json!({"x": 7}));
}

/// A rule on the default bus sending `source` events to `targets`.
async fn rule_to(c: &aws_sdk_eventbridge::Client, name: &str, source: &str, targets: Vec<Target>) {
    c.put_rule()
        .name(name)
        .event_pattern(json!({ "source": [source] }).to_string())
        .send()
        .await
        .unwrap();
    c.put_targets()
        .rule(name)
        .set_targets(Some(targets))
        .send()
        .await
        .unwrap();
}

/// A bus `name` whose dead letters (as `trellis.events` events) go to `sink`.
async fn dead_letter_bus(c: &aws_sdk_eventbridge::Client, name: &str, sink: &str) -> String {
    let arn = c
        .create_event_bus()
        .name(name)
        .send()
        .await
        .unwrap()
        .event_bus_arn()
        .unwrap()
        .to_string();
    c.put_rule()
        .name("dead-letters")
        .event_bus_name(name)
        .event_pattern(r#"{"source":["trellis.events"]}"#)
        .send()
        .await
        .unwrap();
    c.put_targets()
        .rule("dead-letters")
        .event_bus_name(name)
        .targets(Target::builder().id("sink").arn(sink).build().unwrap())
        .send()
        .await
        .unwrap();
    arn
}

/// A target with `MaximumRetryAttempts` and a dead-letter bus.
fn target_with_dead_letters(id: &str, arn: &str, retries: i32, dlq: &str) -> Target {
    Target::builder()
        .id(id)
        .arn(arn)
        .retry_policy(
            RetryPolicy::builder()
                .maximum_retry_attempts(retries)
                .build(),
        )
        .dead_letter_config(DeadLetterConfig::builder().arn(dlq).build())
        .build()
        .unwrap()
}

/// A TLS acceptor serving `cert` (DER) with `key`.
fn tls_acceptor(cert: &rcgen::Certificate, key: &rcgen::KeyPair) -> tokio_rustls::TlsAcceptor {
    let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn https_api_destinations_verify_servers_against_the_extra_ca_file() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    // A private CA and a server certificate for `localhost` it signed.
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Trellis test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let trusted = Recorder::start_tls(tls_acceptor(&leaf, &leaf_key)).await;
    // The same name, self-signed: no root the events client trusts vouches for it.
    let impostor_cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let impostor = Recorder::start_tls(tls_acceptor(
        &impostor_cert.cert,
        &impostor_cert.signing_key,
    ))
    .await;
    let plain = Recorder::start().await;

    let t = Trellis::start_with_env(
        &dir.path().join("data"),
        &[],
        &[("TRELLIS_EXTRA_CA_FILE", ca_file.to_str().unwrap())],
    );
    let c = events(&t);
    let secure = destination(
        &c,
        "secure",
        &format!("https://localhost:{}/hook", trusted.addr.port()),
    )
    .await;
    let forged = destination(
        &c,
        "forged",
        &format!("https://localhost:{}/hook", impostor.addr.port()),
    )
    .await;
    let sink = destination(&c, "sink", &plain.url("/dlq")).await;
    let dlq = dead_letter_bus(&c, "dlq", &sink).await;
    rule_to(
        &c,
        "tls",
        "app",
        vec![
            Target::builder().id("secure").arn(&secure).build().unwrap(),
            target_with_dead_letters("forged", &forged, 0, &dlq),
        ],
    )
    .await;
    let put = c
        .put_events()
        .entries(entry("default", "app", r#"{"n":1}"#))
        .send()
        .await
        .unwrap();
    let id = put.entries()[0].event_id().unwrap().to_string();

    assert!(
        eventually(Duration::from_secs(10), || async {
            !trusted.hits().is_empty() && !plain.bodies("/dlq").is_empty()
        })
        .await,
        "trusted: {:?}, dead letters: {:?}",
        trusted.hits(),
        plain.hits()
    );
    let hit = &trusted.hits()[0];
    assert_eq!(hit.path, "/hook");
    assert_eq!(hit.api_key.as_deref(), Some("sekret"));
    let event: Value = serde_json::from_str(&hit.body).unwrap();
    assert_eq!(event["id"], id.as_str());
    // The impostor's handshake failed before any request: the event went to the dead letters.
    assert!(impostor.hits().is_empty());
    let msg = &plain.bodies("/dlq")[0]["detail"];
    let attr = |k: &str| msg["MessageAttributes"][k]["StringValue"].clone();
    assert_eq!(attr("TARGET_ARN"), forged.as_str());
    assert_eq!(attr("ERROR_CODE"), "SDK_CLIENT_ERROR");
    let error = attr("ERROR_MESSAGE").as_str().unwrap().to_ascii_lowercase();
    assert!(error.contains("certificate"), "{error}");
}

#[tokio::test]
async fn client_errors_of_api_destinations_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = events(&t);
    let rec = Recorder::start().await;
    let missing = destination(&c, "missing", &rec.url("/missing?status=404")).await;
    let throttled = destination(&c, "throttled", &rec.url("/throttled?status=429")).await;
    let sink = destination(&c, "sink", &rec.url("/dlq")).await;
    let dlq = dead_letter_bus(&c, "dlq", &sink).await;
    rule_to(
        &c,
        "r",
        "app",
        vec![
            target_with_dead_letters("missing", &missing, 5, &dlq),
            target_with_dead_letters("throttled", &throttled, 1, &dlq),
        ],
    )
    .await;
    c.put_events()
        .entries(entry("default", "app", r#"{"n":1}"#))
        .send()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(15), || async {
            rec.bodies("/dlq").len() == 2
        })
        .await,
        "hits: {:?}",
        rec.hits()
    );
    // 404: one attempt, straight to the dead letters, no retry condition exhausted.
    assert_eq!(rec.bodies("/missing").len(), 1);
    // 429: retried.
    assert_eq!(rec.bodies("/throttled").len(), 2);
    let letters = rec.bodies("/dlq");
    let of = |arn: &str| {
        letters
            .iter()
            .map(|l| l["detail"]["MessageAttributes"].clone())
            .find(|a| a["TARGET_ARN"]["StringValue"] == arn)
            .unwrap()
    };
    let missing_attrs = of(&missing);
    assert_eq!(missing_attrs["RETRY_ATTEMPTS"]["StringValue"], "0");
    assert!(missing_attrs.get("EXHAUSTED_RETRY_CONDITION").is_none());
    let throttled_attrs = of(&throttled);
    assert_eq!(throttled_attrs["RETRY_ATTEMPTS"]["StringValue"], "1");
    assert_eq!(
        throttled_attrs["EXHAUSTED_RETRY_CONDITION"]["StringValue"],
        "MaximumRetryAttempts"
    );

    // The same story in the counters on /metrics, named after EventBridge's CloudWatch metrics.
    // One entry put; it matched rule `r` (two targets); both deliveries failed for good and went
    // to the dead-letter bus, whose rule matched each dead letter and delivered it to `sink`.
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric(&t, "trellis_events_pending_deliveries").await == 0
                && metric(&t, "trellis_events_delivered_total").await == 2
        })
        .await
    );
    for (name, want) in [
        ("trellis_events_put_entries_total", 1),
        ("trellis_events_matched_events_total", 3),
        ("trellis_events_triggered_rules_total", 3),
        ("trellis_events_invocations_total", 4),
        ("trellis_events_retry_invocation_attempts_total", 1),
        ("trellis_events_failed_invocations_total", 2),
        ("trellis_events_dead_letter_invocations_total", 2),
    ] {
        assert_eq!(metric(&t, name).await, want, "{name}");
    }
}

/// One unlabelled sample of `GET /metrics`.
async fn metric(t: &Trellis, name: &str) -> u64 {
    let reply = get(t.api, "localhost", "/metrics").await;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[tokio::test]
async fn service_network_services_are_rule_targets_and_answer_for_their_host() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let lattice = t.lattice();
    let c = events(&t);
    let upstream = Recorder::start().await;
    let tg = target_group(&lattice, "orders-tg", &[upstream.addr]).await;
    let (svc_id, dns, _) = service(&lattice, "orders", forward(&[(&tg, 1)])).await;
    let svc_arn = lattice
        .get_service()
        .service_identifier(&svc_id)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    // An API destination naming the service's host reaches it through the data plane.
    let by_host = destination(&c, "by-host", &format!("http://{dns}/api/hook?x=1")).await;
    rule_to(
        &c,
        "to-service",
        "shop",
        vec![
            Target::builder().id("svc").arn(&svc_arn).build().unwrap(),
            Target::builder().id("host").arn(&by_host).build().unwrap(),
        ],
    )
    .await;
    let put = c
        .put_events()
        .entries(entry("default", "shop", r#"{"order":42}"#))
        .send()
        .await
        .unwrap();
    let id = put.entries()[0].event_id().unwrap().to_string();

    let delivered = |path: &'static str| {
        upstream
            .hits()
            .into_iter()
            .filter(move |h| h.path == path)
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            !delivered("/").is_empty() && !delivered("/api/hook?x=1").is_empty()
        })
        .await,
        "upstream got: {:?}",
        upstream.hits()
    );
    // The service ARN as rule target: the event POSTed to `/` of its HTTP listener, through
    // the data plane (which adds the Lattice headers).
    let by_arn = &delivered("/")[0];
    let event: Value = serde_json::from_str(&by_arn.body).unwrap();
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["detail"]["order"], 42);
    assert_eq!(by_arn.headers["content-type"], "application/json");
    let lattice_target = by_arn.headers["x-amzn-lattice-target"].to_str().unwrap();
    assert!(lattice_target.contains(&svc_arn), "{lattice_target}");
    // The destination's request: its method, path and query, the connection's key.
    let via_host = &delivered("/api/hook?x=1")[0];
    assert_eq!(via_host.api_key.as_deref(), Some("sekret"));
    let event: Value = serde_json::from_str(&via_host.body).unwrap();
    assert_eq!(event["id"], id.as_str());
    assert!(via_host.headers.contains_key("x-amzn-lattice-target"));
}
