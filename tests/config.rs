//! The declarative config's resource gateways and engine sections end to end: a config applied
//! with `--config` and `trellis apply` creates, updates and connects functions, state machines,
//! event rules and resource configurations, checked with the AWS SDKs; a config with errors in
//! every section reports each with its pointer and changes nothing.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_sfn::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_sfn::config::{ConfigBag, Intercept, RuntimeComponents};
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Undoes the `sync-` host prefix the SDK puts on `StartSyncExecution` (see step_functions.rs).
#[derive(Debug)]
struct NoHostPrefix;

impl Intercept for NoHostPrefix {
    fn name(&self) -> &'static str {
        "NoHostPrefix"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_sfn::error::BoxError> {
        let req = context.request_mut();
        if let Some(rest) = req.uri().to_string().strip_prefix("http://sync-") {
            let uri = format!("http://{rest}");
            req.set_uri(uri)?;
        }
        Ok(())
    }
}

fn sfn(t: &Trellis) -> aws_sdk_sfn::Client {
    let config = aws_sdk_sfn::Config::builder()
        .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
        .region(aws_sdk_sfn::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sfn::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .endpoint_url(t.endpoint())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .interceptor(NoHostPrefix)
        .build();
    aws_sdk_sfn::Client::from_conf(config)
}

/// A TCP server on 127.0.0.1 that echoes what it reads.
async fn tcp_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A folder with the WebAssembly function that answers with its environment variables, and
/// an EXPRESS state machine definition in a file.
fn project(dir: &Path) {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("functions/tests/fixtures/wasm/env.wasm");
    std::fs::create_dir_all(dir.join("fn")).unwrap();
    std::fs::copy(wasm, dir.join("fn/function.wasm")).unwrap();
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(
        dir.join("flows/adder.asl.json"),
        json!({"StartAt": "Add", "States": {"Add": {"Type": "Pass",
            "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"}, "End": true}}})
        .to_string(),
    )
    .unwrap();
}

fn config(echo_port: u16, greeting: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "serviceNetworks": [{"name": "data"}],
        "resourceGateways": [{"name": "local", "resourceConfigurations": [
            {"name": "echo", "type": "SINGLE", "portRanges": [echo_port.to_string()],
             "resourceConfigurationDefinition": {"ipResource": {"ipAddress": "127.0.0.1"}},
             "serviceNetworks": ["data"], "tags": {"team": "storage"}},
            {"name": "replicas", "type": "GROUP", "portRanges": ["7000-7001"], "children": [
                {"name": "replica-a", "resourceConfigurationDefinition": {"dnsResource": {"domainName": "a.replicas.internal"}}},
                {"name": "replica-b", "resourceConfigurationDefinition": {"ipResource": {"ipAddress": "10.0.0.2"}}}]}
        ]}],
        "functions": [{"FunctionName": "greeter", "Runtime": "provided.al2023", "Handler": "function.wasm",
            "Code": {"Path": "fn"}, "Timeout": 5, "MemorySize": 256,
            "Environment": {"Variables": {"GREETING": greeting}}}],
        "stateMachines": [
            {"name": "adder", "type": "EXPRESS", "definitionFile": "flows/adder.asl.json"},
            {"name": "record", "definition": {"StartAt": "Greet", "States": {"Greet": {"Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:000000000000:function:greeter", "End": true}}}}
        ],
        "eventBuses": [{"Name": "orders", "Rules": [
            {"Name": "placed", "EventPattern": {"source": ["shop"], "detail-type": ["OrderPlaced"]},
             "Targets": [{"Id": "record", "StateMachine": "record"}]}]}]
    }))
    .unwrap()
}

fn trellis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .output()
        .unwrap()
}

async fn apply(t: &Trellis, path: &Path) -> Output {
    let args = [
        "apply".to_string(),
        path.display().to_string(),
        "--endpoint".into(),
        t.endpoint(),
    ];
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        trellis(&args)
    })
    .await
    .unwrap()
}

async fn invoke(c: &aws_sdk_lambda::Client, name: &str) -> Value {
    let out = c
        .invoke()
        .function_name(name)
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), None);
    serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap()
}

#[tokio::test]
async fn a_config_creates_updates_and_connects_engines_and_resource_gateways() {
    let dir = tempfile::tempdir().unwrap();
    let project_dir = dir.path().join("project");
    project(&project_dir);
    let port = tcp_echo().await;
    let file = project_dir.join("trellis.json");
    std::fs::write(&file, config(port, "hello")).unwrap();
    let t = Trellis::start(
        &dir.path().join("data"),
        &["--config", file.to_str().unwrap()],
    );

    // The function runs from the folder, with the config's settings.
    let lambda = aws_client!(aws_sdk_lambda, &t);
    assert_eq!(invoke(&lambda, "greeter").await, json!(["GREETING=hello"]));
    let conf = lambda
        .get_function_configuration()
        .function_name("greeter")
        .send()
        .await
        .unwrap();
    assert_eq!((conf.timeout(), conf.memory_size()), (Some(5), Some(256)));

    // The EXPRESS state machine from a definition file runs synchronously.
    let sfn = sfn(&t);
    let adder = "arn:aws:states:us-east-1:000000000000:stateMachine:adder";
    let out = sfn
        .start_sync_execution()
        .state_machine_arn(adder)
        .input(r#"{"a": 40, "b": 2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(out.output().unwrap()).unwrap(),
        json!({"sum": 42})
    );

    // An event on the config's bus reaches the config's rule, its state machine, and through
    // it the config's function.
    let events = aws_client!(aws_sdk_eventbridge, &t);
    let put = events
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name("orders")
                .source("shop")
                .detail_type("OrderPlaced")
                .detail(r#"{"order": 7}"#)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.failed_entry_count(), 0);
    let record = "arn:aws:states:us-east-1:000000000000:stateMachine:record";
    let mut output = None;
    for _ in 0..75 {
        let list = sfn
            .list_executions()
            .state_machine_arn(record)
            .send()
            .await
            .unwrap();
        if let Some(e) = list.executions().first() {
            let d = sfn
                .describe_execution()
                .execution_arn(e.execution_arn())
                .send()
                .await
                .unwrap();
            if d.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
                output = d.output().map(str::to_string);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let output = output.expect("the rule started the state machine, which succeeded");
    assert_eq!(
        serde_json::from_str::<Value>(&output).unwrap(),
        json!(["GREETING=hello"])
    );

    // The resource configuration is reachable by TCP at its association's endpoint.
    let lattice = t.lattice();
    let mut names: Vec<String> = lattice
        .list_resource_configurations()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .map(|r| r.name().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["echo", "replica-a", "replica-b", "replicas"]);
    let r = get(
        t.api,
        &t.api.to_string(),
        "/servicenetworkresourceassociations",
    )
    .await;
    let items = r.json()["items"].as_array().cloned().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["serviceNetworkName"], "data");
    let ep = &items[0]["endpoints"][0];
    let addr = format!("{}:{}", ep["host"].as_str().unwrap(), ep["port"]);
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");

    // `trellis apply` of a changed file updates the function in place.
    std::fs::write(&file, config(port, "hi")).unwrap();
    let out = apply(&t, &file).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(invoke(&lambda, "greeter").await, json!(["GREETING=hi"]));
    // Applying the same file again has nothing left to do.
    let out = apply(&t, &file).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary, json!({"applied": true, "operations": 0}));
}

/// What the engines and Lattice hold, to compare before and after a failed apply.
async fn inventory(t: &Trellis) -> Value {
    let lambda = aws_client!(aws_sdk_lambda, t);
    let functions: Vec<String> = lambda
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
        .iter()
        .map(|f| format!("{}:{:?}", f.function_name().unwrap(), f.environment()))
        .collect();
    let machines: Vec<String> = sfn(t)
        .list_state_machines()
        .send()
        .await
        .unwrap()
        .state_machines()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let events = aws_client!(aws_sdk_eventbridge, t);
    let buses: Vec<String> = events
        .list_event_buses()
        .send()
        .await
        .unwrap()
        .event_buses()
        .iter()
        .map(|b| b.name().unwrap().to_string())
        .collect();
    let rules: Vec<String> = events
        .list_rules()
        .event_bus_name("orders")
        .send()
        .await
        .unwrap()
        .rules()
        .iter()
        .map(|r| format!("{}:{:?}", r.name().unwrap(), r.event_pattern()))
        .collect();
    let configurations: Vec<String> = t
        .lattice()
        .list_resource_configurations()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .map(|r| r.name().unwrap().to_string())
        .collect();
    json!({"functions": functions, "machines": machines, "buses": buses, "rules": rules,
           "configurations": configurations})
}

#[tokio::test]
async fn errors_in_every_section_are_reported_with_pointers_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let good = dir.path().join("good.json");
    std::fs::write(&good, config(5432, "hello")).unwrap();
    let t = Trellis::start(&dir.path().join("data"), &[]);
    let out = apply(&t, &good).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = inventory(&t).await;

    let bad = dir.path().join("bad.json");
    let text = serde_json::to_string_pretty(&json!({
        "serviceNetworks": [{"name": "more"}],
        "resourceGateways": [{"name": "local", "resourceConfigurations": [
            {"name": "echo", "type": "SINGLE", "portRanges": ["99999"],
             "resourceConfigurationDefinition": {"ipResource": {"ipAddress": "127.0.0.1"}}},
            {"name": "other", "type": "SINGLE", "portRanges": ["8000"],
             "resourceConfigurationDefinition": {"ipResource": {"ipAddress": "127.0.0.1"}},
             "serviceNetworks": ["nowhere"]}]}],
        "functions": [
            {"FunctionName": "fresh", "Handler": "function.wasm", "Code": {"Path": "fn"}},
            {"FunctionName": "greeter", "Handler": "function.wasm", "Code": {"Path": "fn"},
             "Environment": {"Variables": {"GREETING": "changed"}}},
            {"FunctionName": "lost", "Code": {"Path": "no-such-folder"}},
            {"FunctionName": "slow", "Handler": "function.wasm", "Code": {"Path": "fn"}, "Timeout": 0}],
        "stateMachines": [
            {"name": "broken", "definition": {"StartAt": "Missing", "States": {"A": {"Type": "Pass", "End": true}}}},
            {"name": "adder", "type": "STANDARD", "definitionFile": "flows/adder.asl.json"}],
        "eventBuses": [
            {"Name": "audit"},
            {"Name": "orders", "Rules": [
                {"Name": "placed", "EventPattern": {"source": "shop"}},
                {"Name": "ticks", "ScheduleExpression": "rate(5 minutes)"},
                {"Name": "ghostly", "EventPattern": {"source": ["x"]},
                 "Targets": [{"Id": "g", "Function": "ghost"}]},
                {"Name": "twice", "EventPattern": {"source": ["x"]},
                 "Targets": [{"Id": "t", "Arn": "arn:aws:sqs:us-east-1:000000000000:q", "Input": "{", "InputPath": "$.detail"}]}]},
            {"Name": "default", "Rules": [{"Name": "never", "ScheduleExpression": "every tuesday"}]}]
    }))
    .unwrap();
    std::fs::write(&bad, &text).unwrap();
    let expected = [
        "/resourceGateways/0/resourceConfigurations/0/portRanges/0",
        "/resourceGateways/0/resourceConfigurations/1/serviceNetworks/0",
        "/functions/2/Code/Path",
        "/functions/3/Timeout",
        "/stateMachines/0/definition",
        "/stateMachines/1/type",
        "/eventBuses/1/Rules/0/EventPattern",
        "/eventBuses/1/Rules/1/ScheduleExpression",
        "/eventBuses/1/Rules/2/Targets/0/Function",
        "/eventBuses/1/Rules/3/Targets",
        "/eventBuses/2/Rules/0/ScheduleExpression",
    ];
    let check = |out: &Output, text: &str| {
        assert!(!out.status.success());
        for pointer in expected {
            assert!(
                text.lines()
                    .any(|l| l.trim_start().starts_with(pointer) && l.contains("(line ")),
                "{pointer} with its line missing from:\n{text}"
            );
        }
    };
    let out = apply(&t, &bad).await;
    check(&out, &String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        inventory(&t).await,
        before,
        "the invalid file changed nothing"
    );
    let lattice = t.lattice();
    let networks = lattice.list_service_networks().send().await.unwrap();
    assert_eq!(networks.items().len(), 1, "no service network `more`");

    // `trellis validate` finds the same errors without a server (against empty engines, so
    // the STANDARD/EXPRESS clash of `adder` is not one there).
    let path = bad.display().to_string();
    let out = tokio::task::spawn_blocking(move || trellis(&["validate", &path]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    for pointer in expected
        .iter()
        .filter(|p| !p.starts_with("/stateMachines/1"))
    {
        assert!(text.contains(pointer), "{pointer} missing from:\n{text}");
    }
}

#[test]
fn the_schema_describes_the_new_sections() {
    let out = trellis(&["schema"]);
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    let props = &schema["properties"];
    let rc = &props["resourceGateways"]["items"]["properties"]["resourceConfigurations"]["items"];
    assert!(rc["properties"]["children"].is_object());
    assert!(rc["properties"]["portRanges"].is_object());
    let f = &props["functions"]["items"]["properties"];
    assert_eq!(f["Code"]["required"], json!(["Path"]));
    assert!(f["MemorySize"]["$ref"]
        .as_str()
        .unwrap()
        .starts_with("#/$defs/lambda."));
    let rule = &props["eventBuses"]["items"]["properties"]["Rules"]["items"]["properties"];
    assert!(rule["ScheduleExpression"].is_object());
    assert!(rule["Targets"].is_object());
    let dest = &props["apiDestinations"]["items"];
    assert!(dest["properties"]["Connection"].is_object());
    assert!(!dest["required"]
        .as_array()
        .unwrap()
        .contains(&json!("ConnectionArn")));
    assert!(props["connections"]["items"]["properties"]["AuthParameters"].is_object());
    let sm = &props["stateMachines"]["items"]["properties"];
    assert!(sm["definitionFile"].is_object());
    assert_eq!(
        schema["$defs"]["states.StateMachineType"]["enum"],
        json!(["STANDARD", "EXPRESS"])
    );
}

/// An HTTP server on 127.0.0.1 that answers 200 to every request and sends each request's
/// raw text (head and body) on the channel.
async fn http_recorder() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() < head_end + 4 + length {
                        continue;
                    }
                    let _ = tx.send(text);
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    buf.clear();
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn connections_and_api_destinations_are_declared_and_named_by_targets() {
    let dir = tempfile::tempdir().unwrap();
    let (port, mut hits) = http_recorder().await;
    let file = dir.path().join("trellis.json");
    let doc = |key: &str| {
        serde_json::to_string_pretty(&json!({
            "connections": [{"Name": "hooks", "AuthorizationType": "API_KEY",
                "AuthParameters": {"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": key}}}],
            "apiDestinations": [{"Name": "orders-hook", "Connection": "hooks",
                "InvocationEndpoint": format!("http://127.0.0.1:{port}/hook"), "HttpMethod": "POST"}],
            "eventBuses": [{"Name": "orders", "Rules": [
                {"Name": "placed", "EventPattern": {"source": ["shop"]},
                 "Targets": [{"Id": "hook", "ApiDestination": "orders-hook"}]}]}]
        }))
        .unwrap()
    };
    std::fs::write(&file, doc("first")).unwrap();
    let t = Trellis::start(
        &dir.path().join("data"),
        &["--config", file.to_str().unwrap()],
    );
    let events = aws_client!(aws_sdk_eventbridge, &t);

    // The API destination points at the connection the config created, by its generated ARN.
    let conn = events
        .describe_connection()
        .name("hooks")
        .send()
        .await
        .unwrap();
    let dest = events
        .describe_api_destination()
        .name("orders-hook")
        .send()
        .await
        .unwrap();
    assert_eq!(dest.connection_arn(), conn.connection_arn());
    let targets = events
        .list_targets_by_rule()
        .rule("placed")
        .event_bus_name("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(
        targets.targets()[0].arn(),
        dest.api_destination_arn().unwrap()
    );

    // An event reaches the endpoint with the connection's key.
    let send = || async {
        let put = events
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name("orders")
                    .source("shop")
                    .detail_type("OrderPlaced")
                    .detail(r#"{"order": 7}"#)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(put.failed_entry_count(), 0);
    };
    send().await;
    let hit = tokio::time::timeout(Duration::from_secs(20), hits.recv())
        .await
        .expect("the event reached the API destination")
        .unwrap();
    assert!(hit.starts_with("POST /hook "), "{hit}");
    assert!(
        hit.to_ascii_lowercase().contains("x-api-key: first"),
        "{hit}"
    );
    assert!(
        hit.contains(r#""source":"shop""#) && hit.contains(r#""order""#),
        "{hit}"
    );

    // A new key is applied (secrets cannot be read back, so connections are always updated);
    // nothing else changes.
    std::fs::write(&file, doc("second")).unwrap();
    let out = apply(&t, &file).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary, json!({"applied": true, "operations": 1}));
    send().await;
    let hit = tokio::time::timeout(Duration::from_secs(20), hits.recv())
        .await
        .expect("the event reached the API destination")
        .unwrap();
    assert!(
        hit.to_ascii_lowercase().contains("x-api-key: second"),
        "{hit}"
    );

    // A target naming an API destination that exists nowhere is an error at its pointer.
    let bad = json!({"eventBuses": [{"Name": "orders", "Rules": [
        {"Name": "placed", "EventPattern": {"source": ["shop"]},
         "Targets": [{"Id": "hook", "ApiDestination": "nowhere"}]}]}]});
    std::fs::write(&file, bad.to_string()).unwrap();
    let out = apply(&t, &file).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/eventBuses/0/Rules/0/Targets/0/ApiDestination"),
        "{err}"
    );
}
