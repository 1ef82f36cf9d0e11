//! The HTTP Task, `arn:aws:states:::http:invoke`: one HTTP request built from the task's
//! parameters (`ApiEndpoint`, `Method`, `Headers`, `QueryParameters`, `RequestBody`,
//! `Transform`), sent through the EventBridge connection named by
//! `Authentication.ConnectionArn`.
//!
//! The request goes to the target registered under the connection's ARN
//! ([`TargetRegistry::invoke_http`](trellis_core::target::TargetRegistry::invoke_http)) with
//! the absolute URL of the endpoint; the connection adds its authorization and reaches the
//! endpoint (a resource configuration, a service-network service or the public URL). The
//! answer becomes `{"Headers", "ResponseBody", "StatusCode", "StatusText"}`, as AWS gives it:
//! a 2xx succeeds the task, any other status fails it with `States.Http.StatusCode.<code>`
//! and that object as the cause; no answer within 60 s (or none at all) is
//! `States.Http.Socket`.

use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};
use trellis_core::target::{HttpResponse, TargetError};

use super::Inner;
use crate::interpreter::{Failure, TaskOutcome, TaskRequest};

/// AWS stops waiting for an HTTP Task's answer after 60 seconds, whatever `TimeoutSeconds`.
const HTTP_TASK_TIMEOUT: Duration = Duration::from_secs(60);

/// The methods an HTTP Task may use.
pub(crate) const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"];

/// Headers an HTTP Task may not set (Step Functions or the connection own them).
const RESERVED_HEADERS: [&str; 32] = [
    "a-im",
    "accept-charset",
    "accept-datetime",
    "accept-encoding",
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-md5",
    "date",
    "expect",
    "forwarded",
    "from",
    "host",
    "http2-settings",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "max-forwards",
    "origin",
    "pragma",
    "proxy-authorization",
    "referer",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "via",
    "warning",
];

/// What stays unescaped in query strings and form bodies: RFC 3986's unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Values also keep `,` (the separator of `ArrayFormat` COMMAS, a sub-delimiter RFC 3986
/// allows in a query).
const VALUE: &AsciiSet = &COMPONENT.remove(b',');

/// How arrays are written in a URL-encoded body (`Transform.RequestEncodingOptions.ArrayFormat`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum ArrayFormat {
    /// `a[0]=x&a[1]=y` (the default)
    Indices,
    /// `a=x&a=y`
    Repeat,
    /// `a=x,y`
    Commas,
    /// `a[]=x&a[]=y`
    Brackets,
}

impl Inner {
    /// Runs one HTTP Task with its evaluated parameters (`Parameters` or `Arguments`).
    pub(crate) async fn http_invoke(&self, t: &TaskRequest) -> TaskOutcome {
        let (connection, request) = match build_request(&t.input, &self.arn.region) {
            Ok(built) => built,
            Err(why) => {
                return TaskOutcome::Failed(Failure::new(
                    "States.Runtime",
                    format!(
                        "An error occurred while executing the state '{}'. The Parameters '{}' could not be used to start the Task: [{why}]",
                        t.state_name, t.input
                    ),
                ))
            }
        };
        let call = self.targets.invoke_http(&connection, request);
        match tokio::time::timeout(HTTP_TASK_TIMEOUT, call).await {
            Ok(Ok(response)) => response_outcome(&response),
            Ok(Err(e)) => TaskOutcome::Failed(connection_failure(&connection, e)),
            Err(_) => TaskOutcome::Failed(Failure::new(
                "States.Http.Socket",
                "The HTTP Task timed out: no response within 60 seconds",
            )),
        }
    }
}

/// The connection ARN and the request an HTTP Task's parameters describe.
fn build_request(p: &Value, region: &str) -> Result<(String, http::Request<Bytes>), String> {
    let endpoint = p["ApiEndpoint"]
        .as_str()
        .ok_or("The field 'ApiEndpoint' is required and must be a string")?;
    let method = p["Method"]
        .as_str()
        .ok_or("The field 'Method' is required and must be a string")?;
    if !METHODS.contains(&method) {
        return Err(format!(
            "The value of the field 'Method' must be one of {}",
            METHODS.join(", ")
        ));
    }
    let connection = p["Authentication"]["ConnectionArn"]
        .as_str()
        .ok_or("The field 'Authentication.ConnectionArn' is required and must be a string")?
        .to_string();

    let mut url = endpoint.to_string();
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("The ApiEndpoint '{endpoint}' is not a valid URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "The ApiEndpoint '{endpoint}' is not an absolute http or https URL"
        ));
    }
    match &p["QueryParameters"] {
        Value::Null => {}
        Value::Object(q) => {
            let mut pairs = Vec::new();
            for (k, v) in q {
                match v {
                    Value::Array(items) => {
                        pairs.extend(items.iter().map(|i| (k.clone(), scalar_text(i))))
                    }
                    v => pairs.push((k.clone(), scalar_text(v))),
                }
            }
            if !pairs.is_empty() {
                url.push(if uri.query().is_some() { '&' } else { '?' });
                url.push_str(&join_pairs(&pairs));
            }
        }
        _ => return Err("The field 'QueryParameters' must be an object".into()),
    }

    let mut builder = http::Request::builder().method(method).uri(&url);
    let mut has_content_type = false;
    match &p["Headers"] {
        Value::Null => {}
        Value::Object(h) => {
            for (name, v) in h {
                let lower = name.to_ascii_lowercase();
                if RESERVED_HEADERS.contains(&lower.as_str())
                    || ["x-forwarded", "x-amz", "x-amzn"]
                        .iter()
                        .any(|prefix| lower.starts_with(prefix))
                {
                    return Err(format!(
                        "The header '{name}' is not allowed in an HTTP Task"
                    ));
                }
                has_content_type |= lower == "content-type";
                let value = match v {
                    Value::Array(items) => {
                        items.iter().map(scalar_text).collect::<Vec<_>>().join(",")
                    }
                    v => scalar_text(v),
                };
                builder = builder.header(name.as_str(), value);
            }
        }
        _ => return Err("The field 'Headers' must be an object".into()),
    }

    let transform = &p["Transform"];
    let url_encoded = match transform["RequestBodyEncoding"].as_str() {
        None | Some("NONE") => false,
        Some("URL_ENCODED") => true,
        Some(other) => {
            return Err(format!(
                "The value '{other}' of 'Transform.RequestBodyEncoding' is not one of NONE, URL_ENCODED"
            ))
        }
    };
    let arrays = match transform["RequestEncodingOptions"]["ArrayFormat"].as_str() {
        None | Some("INDICES") => ArrayFormat::Indices,
        Some("REPEAT") => ArrayFormat::Repeat,
        Some("COMMAS") => ArrayFormat::Commas,
        Some("BRACKETS") => ArrayFormat::Brackets,
        Some(other) => {
            return Err(format!(
                "The value '{other}' of 'Transform.RequestEncodingOptions.ArrayFormat' is not one of INDICES, REPEAT, COMMAS, BRACKETS"
            ))
        }
    };
    let (body, content_type) = match &p["RequestBody"] {
        Value::Null => (Bytes::new(), None),
        Value::String(s) => (Bytes::from(s.clone()), None),
        Value::Object(o) if url_encoded => (
            Bytes::from(url_encode_body(o, arrays)),
            Some("application/x-www-form-urlencoded"),
        ),
        v => (
            Bytes::from(v.to_string()),
            Some("application/json; charset=UTF-8"),
        ),
    };
    if let (Some(ct), false) = (content_type, has_content_type) {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    let request = builder
        .header(
            http::header::USER_AGENT,
            format!("Amazon|StepFunctions|HttpInvoke|{region}"),
        )
        .header(http::header::RANGE, "bytes=0-262144")
        .body(body)
        .map_err(|e| format!("The request cannot be built: {e}"))?;
    Ok((connection, request))
}

/// A query or header value as text: strings as they are, other JSON as JSON.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `k=v&…`, percent-encoded (keys keep `[` and `]` readable: `a[0]`, `a[]`, `n[k]`).
fn join_pairs(pairs: &[(String, String)]) -> String {
    const KEY: &AsciiSet = &COMPONENT.remove(b'[').remove(b']');
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, KEY),
                utf8_percent_encode(v, VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A JSON object as an `application/x-www-form-urlencoded` body: nested objects as
/// `a[b]=…`, arrays as `ArrayFormat` says.
fn url_encode_body(body: &Map<String, Value>, arrays: ArrayFormat) -> String {
    fn walk(key: String, v: &Value, arrays: ArrayFormat, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    walk(format!("{key}[{k}]"), v, arrays, out);
                }
            }
            Value::Array(items) => match arrays {
                ArrayFormat::Commas => out.push((
                    key,
                    items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
                )),
                ArrayFormat::Repeat => {
                    for i in items {
                        walk(key.clone(), i, arrays, out);
                    }
                }
                ArrayFormat::Brackets => {
                    for i in items {
                        walk(format!("{key}[]"), i, arrays, out);
                    }
                }
                ArrayFormat::Indices => {
                    for (n, i) in items.iter().enumerate() {
                        walk(format!("{key}[{n}]"), i, arrays, out);
                    }
                }
            },
            v => out.push((key, scalar_text(v))),
        }
    }
    let mut pairs = Vec::new();
    for (k, v) in body {
        walk(k.clone(), v, arrays, &mut pairs);
    }
    join_pairs(&pairs)
}

/// The task's result for an answer: AWS's `{"Headers", "ResponseBody", "StatusCode",
/// "StatusText"}`; anything but a 2xx fails the task with that object as the cause.
fn response_outcome(r: &HttpResponse) -> TaskOutcome {
    let mut headers = Map::new();
    for name in r.headers().keys() {
        let values: Vec<Value> = r
            .headers()
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        headers.insert(name.as_str().to_string(), Value::Array(values));
    }
    let text = String::from_utf8_lossy(r.body()).into_owned();
    let is_json = r
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|media| media == "application/json" || media.ends_with("+json"));
    let body = if is_json {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    } else {
        Value::String(text)
    };
    let status = r.status();
    let out = json!({
        "Headers": headers,
        "ResponseBody": body,
        "StatusCode": status.as_u16(),
        "StatusText": status.canonical_reason().unwrap_or(""),
    });
    if status.is_success() {
        TaskOutcome::Succeeded(out)
    } else {
        TaskOutcome::Failed(Failure::new(
            format!("States.Http.StatusCode.{}", status.as_u16()),
            out.to_string(),
        ))
    }
}

/// A request that got no answer: no such connection, or nothing reached.
fn connection_failure(connection: &str, e: TargetError) -> Failure {
    match e {
        TargetError::NotFound(_) => Failure::new(
            "Events.ConnectionResource.ResourceNotFound",
            format!("Connection '{connection}' does not exist."),
        ),
        TargetError::Timeout(what) => Failure::new(
            "States.Http.Socket",
            format!("The HTTP request timed out: {what}"),
        ),
        TargetError::Unavailable(why) => Failure::new("States.Http.Socket", why),
        // The connection reports its own errors (`Events.ConnectionResource.*`).
        TargetError::Failed { error, cause } => Failure::new(error, cause),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use trellis_core::target::{BoxFuture, HttpRequest, Target, TargetRegistry};
    use trellis_core::ArnContext;

    use super::*;
    use crate::service::{start, StepFunctions};

    const CONN: &str =
        "arn:aws:events:us-east-1:000000000000:connection/api/6b0e4d5c-1a2b-4c3d-8e9f-001122334455";

    type Answer = Box<dyn Fn(&HttpRequest) -> Result<HttpResponse, TargetError> + Send + Sync>;

    /// A connection that records what it was sent and answers as `answer` says.
    struct FakeConnection {
        seen: Mutex<Vec<HttpRequest>>,
        answer: Answer,
    }

    impl Target for FakeConnection {
        fn arn(&self) -> &str {
            CONN
        }
        fn invoke(&self, _: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
            Box::pin(async { Err(TargetError::Unavailable("HTTP only".into())) })
        }
        fn invoke_http(
            &self,
            req: HttpRequest,
        ) -> BoxFuture<'static, Result<HttpResponse, TargetError>> {
            let answer = (self.answer)(&req);
            self.seen.lock().unwrap().push(req);
            Box::pin(async move { answer })
        }
    }

    fn respond(status: u16, content_type: &str, body: &str) -> Result<HttpResponse, TargetError> {
        Ok(http::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("x-trace", "a")
            .header("x-trace", "b")
            .body(Bytes::from(body.to_string()))
            .unwrap())
    }

    async fn service_with(
        dir: &std::path::Path,
        conn: Option<Arc<FakeConnection>>,
    ) -> Arc<StepFunctions> {
        let registry = Arc::new(TargetRegistry::default());
        if let Some(c) = conn {
            registry.register(c);
        }
        let store = trellis_store::open(None, dir).unwrap();
        start(store, ArnContext::default(), registry).await.unwrap()
    }

    /// Runs a one-state machine synchronously (EXPRESS) and returns StartSyncExecution's answer.
    async fn run(sf: &StepFunctions, state: Value, input: Value) -> Value {
        let def = json!({"StartAt": "Call", "States": {"Call": state}});
        let name = format!("m{}", fastrand::u32(..));
        let created = sf
            .call_op(
                "CreateStateMachine",
                json!({"name": name, "definition": def.to_string(),
                       "roleArn": "arn:aws:iam::000000000000:role/r", "type": "EXPRESS"}),
            )
            .await
            .unwrap();
        sf.call_op(
            "StartSyncExecution",
            json!({"stateMachineArn": created["stateMachineArn"], "input": input.to_string()}),
        )
        .await
        .unwrap()
    }

    fn connection(
        answer: impl Fn(&HttpRequest) -> Result<HttpResponse, TargetError> + Send + Sync + 'static,
    ) -> Arc<FakeConnection> {
        Arc::new(FakeConnection {
            seen: Mutex::new(Vec::new()),
            answer: Box::new(answer),
        })
    }

    #[tokio::test]
    async fn jsonpath_request_reaches_the_connection_and_json_answers_are_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let conn = connection(|_| respond(200, "application/json", r#"{"id": 7}"#));
        let sf = service_with(dir.path(), Some(conn.clone())).await;
        let out = run(
            &sf,
            json!({"Type": "Task", "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {
                    "ApiEndpoint.$": "$.url",
                    "Method": "POST",
                    "Authentication": {"ConnectionArn": CONN},
                    "Headers": {"x-order": "42"},
                    "QueryParameters": {"q": "a b", "tag": ["x", "y"]},
                    "RequestBody": {"order.$": "$.order"}},
                "End": true}),
            json!({"url": "https://orders.example.com/v1/orders?src=sfn", "order": {"n": 1}}),
        )
        .await;
        assert_eq!(out["status"], "SUCCEEDED", "{out}");
        let output: Value = serde_json::from_str(out["output"].as_str().unwrap()).unwrap();
        assert_eq!(output["StatusCode"], 200);
        assert_eq!(output["StatusText"], "OK");
        assert_eq!(output["ResponseBody"], json!({"id": 7}));
        assert_eq!(output["Headers"]["x-trace"], json!(["a", "b"]));

        let seen = conn.seen.lock().unwrap();
        let req = &seen[0];
        assert_eq!(req.method(), "POST");
        assert_eq!(
            req.uri().to_string(),
            "https://orders.example.com/v1/orders?src=sfn&q=a%20b&tag=x&tag=y"
        );
        assert_eq!(req.headers()["x-order"], "42");
        assert_eq!(
            req.headers()["content-type"],
            "application/json; charset=UTF-8"
        );
        assert_eq!(
            req.headers()["user-agent"],
            "Amazon|StepFunctions|HttpInvoke|us-east-1"
        );
        assert_eq!(
            serde_json::from_slice::<Value>(req.body()).unwrap(),
            json!({"order": {"n": 1}})
        );
    }

    #[tokio::test]
    async fn jsonata_arguments_and_url_encoded_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let conn = connection(|_| respond(201, "text/plain", "created"));
        let sf = service_with(dir.path(), Some(conn.clone())).await;
        for (format, body) in [
            ("INDICES", "a[0]=x&a[1]=y%20z&n[k]=1"),
            ("REPEAT", "a=x&a=y%20z&n[k]=1"),
            ("COMMAS", "a=x,y%20z&n[k]=1"),
            ("BRACKETS", "a[]=x&a[]=y%20z&n[k]=1"),
        ] {
            let out = run(
                &sf,
                json!({"Type": "Task", "QueryLanguage": "JSONata",
                    "Resource": "arn:aws:states:::http:invoke",
                    "Arguments": {
                        "ApiEndpoint": "{% 'https://forms.example.com/' & $states.input.path %}",
                        "Method": "PUT",
                        "Authentication": {"ConnectionArn": CONN},
                        "RequestBody": {"a": "{% $states.input.items %}", "n": {"k": 1}},
                        "Transform": {"RequestBodyEncoding": "URL_ENCODED",
                                      "RequestEncodingOptions": {"ArrayFormat": format}}},
                    "End": true}),
                json!({"path": "submit", "items": ["x", "y z"]}),
            )
            .await;
            assert_eq!(out["status"], "SUCCEEDED", "{out}");
            let output: Value = serde_json::from_str(out["output"].as_str().unwrap()).unwrap();
            assert_eq!(output["StatusCode"], 201);
            assert_eq!(output["StatusText"], "Created");
            assert_eq!(output["ResponseBody"], "created");
            let seen = conn.seen.lock().unwrap();
            let req = seen.last().unwrap();
            assert_eq!(req.uri().to_string(), "https://forms.example.com/submit");
            assert_eq!(req.method(), "PUT");
            assert_eq!(
                req.headers()["content-type"],
                "application/x-www-form-urlencoded"
            );
            assert_eq!(std::str::from_utf8(req.body()).unwrap(), body, "{format}");
        }
    }

    #[tokio::test]
    async fn failures_have_aws_error_names() {
        let dir = tempfile::tempdir().unwrap();
        let conn = connection(|req| {
            if req.uri().path() == "/down" {
                Err(TargetError::Unavailable("connection refused".into()))
            } else {
                respond(404, "application/json", r#"{"message": "no such order"}"#)
            }
        });
        let sf = service_with(dir.path(), Some(conn)).await;
        let task = |endpoint: &str, connection: &str| {
            json!({"Type": "Task", "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {"ApiEndpoint": endpoint, "Method": "GET",
                               "Authentication": {"ConnectionArn": connection}},
                "End": true})
        };

        let out = run(
            &sf,
            task("https://api.example.com/orders/9", CONN),
            json!({}),
        )
        .await;
        assert_eq!(out["status"], "FAILED");
        assert_eq!(out["error"], "States.Http.StatusCode.404");
        let cause: Value = serde_json::from_str(out["cause"].as_str().unwrap()).unwrap();
        assert_eq!(cause["StatusCode"], 404);
        assert_eq!(cause["StatusText"], "Not Found");
        assert_eq!(cause["ResponseBody"], json!({"message": "no such order"}));

        let out = run(&sf, task("https://api.example.com/down", CONN), json!({})).await;
        assert_eq!(out["error"], "States.Http.Socket", "{out}");

        let missing = CONN.replace("connection/api/", "connection/gone/");
        let out = run(&sf, task("https://api.example.com/x", &missing), json!({})).await;
        assert_eq!(out["error"], "Events.ConnectionResource.ResourceNotFound");
        assert!(out["cause"].as_str().unwrap().contains(&missing), "{out}");

        // A header the task may not set is a runtime error of its parameters.
        let mut state = task("https://api.example.com/x", CONN);
        state["Parameters"]["Headers"] = json!({"Authorization": "Bearer x"});
        let out = run(&sf, state, json!({})).await;
        assert_eq!(out["error"], "States.Runtime");
        assert!(
            out["cause"].as_str().unwrap().contains("Authorization"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn wait_for_task_token_sends_the_token_and_waits_for_send_task() {
        let dir = tempfile::tempdir().unwrap();
        let conn = connection(|req| match req.uri().path() {
            "/broken" => respond(500, "text/plain", "down"),
            _ => respond(202, "application/json", r#"{"queued": true}"#),
        });
        let sf = service_with(dir.path(), Some(conn.clone())).await;
        let def = |path: &str| {
            json!({"StartAt": "Call", "States": {"Call": {"Type": "Task",
                "Resource": "arn:aws:states:::http:invoke.waitForTaskToken",
                "Parameters": {"ApiEndpoint": format!("https://jobs.example.com{path}"),
                    "Method": "POST", "Authentication": {"ConnectionArn": CONN},
                    "RequestBody": {"token.$": "$$.Task.Token"}},
                "End": true}}})
        };
        let start = |name: &str, def: Value| {
            let sf = sf.clone();
            let name = name.to_string();
            async move {
                let sm = sf
                    .call_op(
                        "CreateStateMachine",
                        json!({"name": name, "definition": def.to_string(),
                        "roleArn": "arn:aws:iam::000000000000:role/r"}),
                    )
                    .await
                    .unwrap();
                let run = sf
                    .call_op(
                        "StartExecution",
                        json!({"stateMachineArn": sm["stateMachineArn"]}),
                    )
                    .await
                    .unwrap();
                run["executionArn"].as_str().unwrap().to_string()
            }
        };
        let describe = |arn: String| {
            let sf = sf.clone();
            async move {
                sf.call_op("DescribeExecution", json!({"executionArn": arn}))
                    .await
                    .unwrap()
            }
        };

        let arn = start("jobs", def("/jobs")).await;
        let mut token = None;
        for _ in 0..100 {
            token = conn.seen.lock().unwrap().first().map(|req| {
                let body: Value = serde_json::from_slice(req.body()).unwrap();
                body["token"].as_str().unwrap().to_string()
            });
            if token.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let token = token.expect("the request reached the connection with the token");
        // The answer to the request does not end the task: the token does.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(describe(arn.clone()).await["status"], "RUNNING");
        sf.call_op(
            "SendTaskSuccess",
            json!({"taskToken": token, "output": "{\"done\": 1}"}),
        )
        .await
        .unwrap();
        let mut d = describe(arn.clone()).await;
        for _ in 0..100 {
            if d["status"] != "RUNNING" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            d = describe(arn.clone()).await;
        }
        assert_eq!(d["status"], "SUCCEEDED", "{d}");
        assert_eq!(d["output"], "{\"done\":1}");

        // A request the API refuses fails the task at once.
        let arn = start("broken", def("/broken")).await;
        let mut d = describe(arn.clone()).await;
        for _ in 0..100 {
            if d["status"] != "RUNNING" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            d = describe(arn.clone()).await;
        }
        assert_eq!(d["status"], "FAILED", "{d}");
        assert_eq!(d["error"], "States.Http.StatusCode.500");
    }

    #[test]
    fn definitions_need_endpoint_method_and_connection() {
        let check = |params: Value| {
            let def = json!({"StartAt": "Call", "States": {"Call": {"Type": "Task",
                "Resource": "arn:aws:states:::http:invoke", "Parameters": params, "End": true}}});
            crate::validate::validate_for(&def.to_string(), crate::validate::MachineType::Standard)
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            check(
                json!({"ApiEndpoint": "https://x.example.com", "Method": "GET",
                         "Authentication": {"ConnectionArn": CONN}})
            ),
            None
        );
        let e = check(json!({"ApiEndpoint": "https://x.example.com", "Method": "GET"})).unwrap();
        assert!(
            e.contains(
                "The field 'Authentication' is required but was missing at /States/Call/Parameters"
            ),
            "{e}"
        );
        let e = check(json!({"ApiEndpoint.$": "$.u", "Method": "FETCH",
                             "Authentication": {"ConnectionArn.$": "$.c"}}))
        .unwrap();
        assert!(e.contains("/States/Call/Parameters/Method"), "{e}");
        let e = check(json!({"Method": "GET", "Authentication": {"ConnectionArn": "arn:aws:events:us-east-1:000000000000:rule/x"}})).unwrap();
        assert!(
            e.contains("The field 'ApiEndpoint' is required but was missing"),
            "{e}"
        );
        assert!(
            e.contains("/States/Call/Parameters/Authentication/ConnectionArn"),
            "{e}"
        );
    }
}
