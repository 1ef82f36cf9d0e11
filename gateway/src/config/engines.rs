//! The engines' sections of the declarative config: `functions` (Lambda), `stateMachines`
//! (Step Functions), and for EventBridge `connections`, `apiDestinations` and `eventBuses` with
//! their `Rules` and `Targets`. Items use the field names of the engine's own API
//! (`CreateFunction`, `CreateStateMachine`, `CreateConnection`, `CreateApiDestination`,
//! `CreateEventBus`, `PutRule`, `PutTargets`), plus a few conveniences: code and definitions
//! from files relative to the config, patterns and inputs as JSON objects, API destinations
//! naming their `Connection` by name, and targets naming a function, state machine or API
//! destination by name.
//!
//! [`plan`] checks every item through the engines' own validation (their models, and the
//! calls that check without changing: `GetFunction`, `ValidateStateMachineDefinition`,
//! `TestEventPattern`, …) and returns the calls that bring the engines to the config; [`run`]
//! makes them. Nothing changes when [`plan`] found an error.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use trellis_core::api::{JsonService, RestService};
use trellis_core::error::FieldError;
use trellis_core::{ApiError, ArnContext};
use trellis_functions::lambda::HOT_RELOAD_BUCKET;

use super::{items, pick, pointer};

/// The engines a config is applied to, as the API serves them; `None` for an engine this
/// process does not run.
#[derive(Clone, Default)]
pub struct Engines {
    pub lambda: Option<Arc<dyn RestService>>,
    pub events: Option<Arc<dyn JsonService>>,
    pub step_functions: Option<Arc<dyn JsonService>>,
}

impl Engines {
    /// Picks the engines out of the API's services: Lambda by its model, the JSON services by
    /// their `X-Amz-Target` prefix.
    pub fn from_services(rest: &[Arc<dyn RestService>], json: &[Arc<dyn JsonService>]) -> Self {
        let by_prefix = |p: &str| json.iter().find(|s| s.target_prefix() == p).cloned();
        Self {
            lambda: rest
                .iter()
                .find(|s| s.model().operation("CreateFunction").is_some())
                .cloned(),
            events: by_prefix("AWSEvents"),
            step_functions: by_prefix("AWSStepFunctions"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Engine {
    Lambda,
    Events,
    StepFunctions,
}

/// One call of the apply phase, and the config item it comes from.
struct Step {
    at: String,
    engine: Engine,
    op: &'static str,
    input: Value,
    /// Members only known once earlier steps have run (the ARN of a connection or API
    /// destination this config creates: AWS puts a generated id in it).
    late: Vec<Late>,
}

/// An EventBridge resource a config item may name instead of giving its ARN. Its ARN carries
/// an id EventBridge generates, so one this apply creates is known only once it exists.
#[derive(Clone, Copy, PartialEq)]
enum Named {
    Connection,
    ApiDestination,
}

impl Named {
    /// The read that finds one by name, and the member of its answer holding the ARN.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Named::Connection => ("DescribeConnection", "ConnectionArn"),
            Named::ApiDestination => ("DescribeApiDestination", "ApiDestinationArn"),
        }
    }

    /// The resource part of its ARN, before the name; and what error messages call it.
    fn kind(self) -> (&'static str, &'static str) {
        match self {
            Named::Connection => ("connection", "connection"),
            Named::ApiDestination => ("api-destination", "API destination"),
        }
    }
}

/// A member of a step's input filled in just before the step runs, from an EventBridge read.
struct Late {
    /// Where in the input (a JSON pointer).
    at: String,
    /// The read (`DescribeConnection` or `DescribeApiDestination`), its input, and the member
    /// of its answer to use.
    op: &'static str,
    key: Value,
    member: &'static str,
}

impl Late {
    /// The same read, for the member at `pointer`.
    fn at(self, pointer: &str) -> Late {
        Late {
            at: pointer.to_string(),
            ..self
        }
    }
}

/// The engine calls that bring the running engines to a config, in order: functions, state
/// machines, event buses, rules, targets.
pub struct Plan {
    steps: Vec<Step>,
}

/// A function item's reserved concurrency (the member of `PutFunctionConcurrency`).
const CONCURRENCY: &str = "ReservedConcurrentExecutions";

/// Default roles, for items that name none (Trellis does not check roles).
const FUNCTION_ROLE: &str = "role/trellis-function";
const STATE_MACHINE_ROLE: &str = "role/trellis-state-machine";

/// A well-formed event, for checking a pattern with `TestEventPattern`.
const SAMPLE_EVENT: &str = r#"{"id": "0", "detail-type": "config check", "source": "trellis.config", "account": "000000000000", "time": "2024-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}"#;

/// A bus name no bus can have (names have no `/`): `PutTargets` checks its targets before it
/// looks for the rule, so a call naming this bus checks targets and changes nothing.
const NO_SUCH_BUS: &str = "trellis-config/dry-run";

/// Checks the engines' sections of `doc`, recording every error in `errors`; relative paths
/// are resolved against `base`.
pub async fn plan(
    engines: &Engines,
    arn: &ArnContext,
    doc: &Value,
    base: &Path,
    errors: &mut Vec<FieldError>,
) -> Plan {
    let mut p = Planner {
        engines,
        arn,
        base,
        errors,
        steps: Vec::new(),
        functions: Vec::new(),
        machines: Vec::new(),
        created: Vec::new(),
    };
    p.functions(doc).await;
    p.state_machines(doc).await;
    p.connections(doc).await;
    p.api_destinations(doc).await;
    p.event_buses(doc).await;
    Plan { steps: p.steps }
}

/// Makes the planned calls; answers how many. A call that fails now (the engine changed since
/// the plan, or refused what its checks let through) stops the run with its error.
pub async fn run(engines: &Engines, plan: Plan) -> Result<usize, FieldError> {
    let total = plan.steps.len();
    for (done, mut step) in plan.steps.into_iter().enumerate() {
        let mut resolved = Ok(());
        for late in &step.late {
            match call(engines, Engine::Events, late.op, late.key.clone()).await {
                Ok(answer) => {
                    if let Some(slot) = step.input.pointer_mut(&late.at) {
                        *slot = answer[late.member].clone();
                    }
                }
                Err(e) => {
                    resolved = Err(e);
                    break;
                }
            }
        }
        let result = match resolved {
            Ok(()) => call(engines, step.engine, step.op, step.input).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            return Err(FieldError {
                name: step.at,
                message: format!(
                    "{}: {} (the Lattice part and {done} of {total} engine operations were applied before this one failed)",
                    e.code, e.message
                ),
            });
        }
    }
    Ok(total)
}

/// Calls `op` as the API would: validated against the engine's model first.
async fn call(
    engines: &Engines,
    engine: Engine,
    op: &str,
    input: Value,
) -> Result<Value, ApiError> {
    let missing = || {
        ApiError::new(
            "ServiceUnavailableException",
            503,
            format!("this Trellis runs no {engine:?} engine"),
        )
    };
    match engine {
        Engine::Lambda => {
            let lambda = engines.lambda.as_ref().ok_or_else(missing)?;
            lambda.call(op, input).await
        }
        Engine::Events | Engine::StepFunctions => {
            let service = if engine == Engine::Events {
                engines.events.as_ref()
            } else {
                engines.step_functions.as_ref()
            }
            .ok_or_else(missing)?;
            if let Some(model) = service.model() {
                let operation = model
                    .operation(op)
                    .ok_or_else(|| ApiError::unknown_operation(op))?;
                model.validate_input(operation, &input)?;
            }
            service.call(op, input).await
        }
    }
}

struct Planner<'a> {
    engines: &'a Engines,
    arn: &'a ArnContext,
    base: &'a Path,
    errors: &'a mut Vec<FieldError>,
    steps: Vec<Step>,
    /// Names of the config's functions and state machines, which targets may name.
    functions: Vec<String>,
    machines: Vec<String>,
    /// Connections and API destinations this apply creates (see [`Named`]).
    created: Vec<(Named, String)>,
}

// === impl Planner ===

impl Planner<'_> {
    fn error(&mut self, at: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            name: at.to_string(),
            message: message.into(),
        });
    }

    /// An engine's error against the item at `at`: each field at its own pointer.
    fn api_error(&mut self, at: &str, e: &ApiError) {
        match e.extra.get("fieldList").and_then(Value::as_array) {
            Some(fields) => {
                for f in fields {
                    let name = f["name"].as_str().unwrap_or_default();
                    let message = f["message"].as_str().unwrap_or_default().to_string();
                    self.error(&pointer(at, name), message);
                }
            }
            None => self.error(at, format!("{}: {}", e.code, e.message)),
        }
    }

    /// Whether the section's engine runs here; records an error when it does not.
    fn runs(&mut self, section: &str, running: bool) -> bool {
        if !running {
            self.error(
                &format!("/{section}"),
                format!("this Trellis runs no engine for {section}"),
            );
        }
        running
    }

    /// Checks `input` against `op`'s model; records the errors at `at`.
    fn valid(&mut self, at: &str, engine: Engine, op: &str, input: &Value) -> bool {
        let model = match engine {
            Engine::Lambda => self.engines.lambda.as_ref().map(|l| l.model()),
            Engine::Events => self.engines.events.as_ref().and_then(|s| s.model()),
            Engine::StepFunctions => self.engines.step_functions.as_ref().and_then(|s| s.model()),
        };
        let Some(operation) = model.as_ref().and_then(|m| m.operation(op)) else {
            return true;
        };
        match model.as_ref().map(|m| m.validate_input(operation, input)) {
            Some(Err(e)) => {
                self.api_error(at, &e);
                false
            }
            _ => true,
        }
    }

    /// A call that changes nothing (a read or a check).
    async fn ask(&self, engine: Engine, op: &str, input: Value) -> Result<Value, ApiError> {
        call(self.engines, engine, op, input).await
    }

    fn step(&mut self, at: &str, engine: Engine, op: &'static str, input: Value) {
        self.late_step(at, engine, op, input, Vec::new());
    }

    fn late_step(
        &mut self,
        at: &str,
        engine: Engine,
        op: &'static str,
        input: Value,
        late: Vec<Late>,
    ) {
        self.steps.push(Step {
            at: at.to_string(),
            engine,
            op,
            input,
            late,
        });
    }

    fn name<'v>(&mut self, at: &str, item: &'v Value, key: &str) -> Option<&'v str> {
        let name = item[key].as_str();
        if name.is_none() {
            self.error(
                &format!("{at}/{key}"),
                format!("{key} is required (a string)"),
            );
        }
        name
    }

    // --- functions ---

    async fn functions(&mut self, doc: &Value) {
        if doc.get("functions").is_none() || !self.runs("functions", self.engines.lambda.is_some())
        {
            return;
        }
        for (i, f) in items(doc, "functions") {
            let at = format!("/functions/{i}");
            if let Some(name) = f["FunctionName"].as_str() {
                self.functions.push(name.to_string());
            }
            self.function(&at, f).await;
        }
    }

    async fn function(&mut self, at: &str, f: &Value) {
        let Some(name) = self.name(at, f, "FunctionName") else {
            return;
        };
        let handler = f["Handler"].as_str().unwrap_or("bootstrap");
        let code = self.code(&format!("{at}/Code"), &f["Code"], handler);
        let current = match self
            .ask(Engine::Lambda, "GetFunction", json!({"FunctionName": name}))
            .await
        {
            Ok(v) => Some(v),
            Err(e) if e.code == "ResourceNotFoundException" => None,
            Err(e) => return self.api_error(at, &e),
        };
        const CONFIGURATION: &[&str] = &[
            "Role",
            "Handler",
            "Description",
            "Timeout",
            "MemorySize",
            "Runtime",
            "Environment",
            "EphemeralStorage",
            "TracingConfig",
        ];
        let Some(got) = current else {
            let mut input = f.clone();
            if let Some(m) = input.as_object_mut() {
                m.remove(CONCURRENCY);
            }
            input["Code"] = code.as_ref().map_or(json!({}), |(c, _)| c.clone());
            if input.get("Role").is_none() {
                input["Role"] = role_arn(self.arn, FUNCTION_ROLE).into();
            }
            if self.valid(at, Engine::Lambda, "CreateFunction", &input) && code.is_some() {
                self.step(at, Engine::Lambda, "CreateFunction", input);
                self.concurrency(at, name, f, &Value::Null);
            }
            return;
        };
        let current = &got["Configuration"];
        let mut update = Map::new();
        for k in CONFIGURATION {
            if let Some(v) = f.get(*k).filter(|v| current.get(*k) != Some(*v)) {
                update.insert(k.to_string(), v.clone());
            }
        }
        if !update.is_empty() {
            update.insert("FunctionName".into(), name.into());
            let input = Value::Object(update);
            if self.valid(at, Engine::Lambda, "UpdateFunctionConfiguration", &input) {
                self.step(at, Engine::Lambda, "UpdateFunctionConfiguration", input);
            }
        }
        if let Some((mut input, sha)) = code {
            if current["CodeSha256"] != sha.as_str() {
                input["FunctionName"] = name.into();
                self.step(at, Engine::Lambda, "UpdateFunctionCode", input);
            }
        }
        self.concurrency(at, name, f, &got["Concurrency"][CONCURRENCY]);
    }

    /// `ReservedConcurrentExecutions`, which `CreateFunction` does not take: a
    /// `PutFunctionConcurrency` when the item gives one that differs from the function's
    /// (`current`, from `GetFunction`). Like the other members, leaving it out changes nothing.
    fn concurrency(&mut self, at: &str, name: &str, f: &Value, current: &Value) {
        let Some(wanted) = f.get(CONCURRENCY).filter(|w| *w != current) else {
            return;
        };
        let input = json!({"FunctionName": name, CONCURRENCY: wanted});
        if self.valid(at, Engine::Lambda, "PutFunctionConcurrency", &input) {
            self.step(at, Engine::Lambda, "PutFunctionConcurrency", input);
        }
    }

    /// The `Code` of a request for `Code.Path` (a folder run in place, or a zip), checked as
    /// the Lambda engine checks packages, and the `CodeSha256` it will have.
    fn code(&mut self, at: &str, code: &Value, handler: &str) -> Option<(Value, String)> {
        use trellis_functions::package;
        let Some(rel) = code["Path"].as_str() else {
            self.error(
                &format!("{at}/Path"),
                "Code.Path is required: a folder holding the function's bootstrap (or its Handler's .wasm module), or a .zip package, relative to the config file",
            );
            return None;
        };
        let path = self.base.join(rel);
        let at = format!("{at}/Path");
        if path.is_dir() {
            return match package::folder_for(&path, handler) {
                Ok(pkg) => Some((
                    json!({"S3Bucket": HOT_RELOAD_BUCKET, "S3Key": path.display().to_string()}),
                    pkg.sha256,
                )),
                Err(e) => {
                    self.error(&at, e.to_string());
                    None
                }
            };
        }
        let zip = match std::fs::read(&path) {
            Ok(z) => z,
            Err(e) => {
                self.error(&at, format!("{}: {e}", path.display()));
                return None;
            }
        };
        // Unpacked once into a scratch folder, for the engine's own checks of the package.
        let scratch =
            std::env::temp_dir().join(format!("trellis-config-{:016x}", fastrand::u64(..)));
        let checked = package::unpack_for(&zip, &scratch, handler);
        let _ = std::fs::remove_dir_all(&scratch);
        match checked {
            Ok(pkg) => Some((
                json!({"ZipFile": trellis_core::model::base64_encode(&zip)}),
                pkg.sha256,
            )),
            Err(e) => {
                self.error(&at, e.to_string());
                None
            }
        }
    }

    // --- state machines ---

    async fn state_machines(&mut self, doc: &Value) {
        if doc.get("stateMachines").is_none()
            || !self.runs("stateMachines", self.engines.step_functions.is_some())
        {
            return;
        }
        for (i, m) in items(doc, "stateMachines") {
            if let Some(name) = m["name"].as_str() {
                self.machines.push(name.to_string());
            }
            self.state_machine(&format!("/stateMachines/{i}"), m).await;
        }
    }

    async fn state_machine(&mut self, at: &str, m: &Value) {
        let Some(name) = self.name(at, m, "name") else {
            return;
        };
        let ty = m["type"].as_str().unwrap_or("STANDARD");
        let Some(definition) = self.definition(at, m).await else {
            return;
        };
        let role = m["roleArn"]
            .as_str()
            .map_or_else(|| role_arn(self.arn, STATE_MACHINE_ROLE), str::to_string);
        let arn = self.arn.arn("states", &format!("stateMachine:{name}"));
        let current = match self
            .ask(
                Engine::StepFunctions,
                "DescribeStateMachine",
                json!({"stateMachineArn": arn}),
            )
            .await
        {
            Ok(v) => Some(v),
            Err(e) if e.code == "StateMachineDoesNotExist" => None,
            Err(e) => return self.api_error(at, &e),
        };
        match current {
            None => {
                let mut input = pick(
                    m,
                    &[
                        "name",
                        "type",
                        "loggingConfiguration",
                        "tracingConfiguration",
                        "tags",
                    ],
                );
                input["definition"] = definition.into();
                input["roleArn"] = role.into();
                if self.valid(at, Engine::StepFunctions, "CreateStateMachine", &input) {
                    self.step(at, Engine::StepFunctions, "CreateStateMachine", input);
                }
            }
            Some(c) if c["type"] != ty => self.error(
                &format!("{at}/type"),
                format!(
                    "state machine {name} is {}; its type cannot change (delete it first)",
                    c["type"].as_str().unwrap_or_default()
                ),
            ),
            Some(c) if c["definition"] != definition.as_str() || c["roleArn"] != role.as_str() => {
                let input =
                    json!({"stateMachineArn": arn, "definition": definition, "roleArn": role});
                self.step(at, Engine::StepFunctions, "UpdateStateMachine", input);
            }
            Some(_) => {}
        }
    }

    /// The item's definition text (`definition` as an object or a string, or `definitionFile`),
    /// checked by the engine's `ValidateStateMachineDefinition`; diagnostics of an inline
    /// object point into it.
    async fn definition(&mut self, at: &str, m: &Value) -> Option<String> {
        let (text, def_at, inline) = match (m.get("definition"), m.get("definitionFile")) {
            (Some(Value::String(s)), None) => (s.clone(), format!("{at}/definition"), false),
            (Some(d @ Value::Object(_)), None) => (d.to_string(), format!("{at}/definition"), true),
            (None, Some(Value::String(f))) => {
                let path = self.base.join(f);
                match std::fs::read_to_string(&path) {
                    Ok(t) => (t, format!("{at}/definitionFile"), false),
                    Err(e) => {
                        self.error(
                            &format!("{at}/definitionFile"),
                            format!("{}: {e}", path.display()),
                        );
                        return None;
                    }
                }
            }
            (Some(_), Some(_)) => {
                self.error(at, "give definition or definitionFile, not both");
                return None;
            }
            _ => {
                self.error(
                    &format!("{at}/definition"),
                    "definition (an Amazon States Language object) or definitionFile (a path relative to the config) is required",
                );
                return None;
            }
        };
        let ty = m["type"].as_str().unwrap_or("STANDARD");
        let check = json!({"definition": text, "type": ty});
        match self
            .ask(
                Engine::StepFunctions,
                "ValidateStateMachineDefinition",
                check,
            )
            .await
        {
            Ok(r) if r["result"] == "OK" => Some(text),
            Ok(r) => {
                for d in r["diagnostics"].as_array().into_iter().flatten() {
                    let location = d["location"].as_str().unwrap_or("/");
                    let message = format!(
                        "{}: {}",
                        d["code"].as_str().unwrap_or_default(),
                        d["message"].as_str().unwrap_or_default()
                    );
                    if inline {
                        let path = format!("{def_at}{}", location.trim_end_matches('/'));
                        self.error(&path, message);
                    } else {
                        self.error(&def_at, format!("{message} at {location}"));
                    }
                }
                None
            }
            Err(e) => {
                self.api_error(at, &e);
                None
            }
        }
    }

    // --- connections and API destinations ---

    /// Connections are created, or updated on every apply: their secrets cannot be read back,
    /// so an unchanged item cannot be told from one with a new secret.
    async fn connections(&mut self, doc: &Value) {
        if doc.get("connections").is_none()
            || !self.runs("connections", self.engines.events.is_some())
        {
            return;
        }
        for (i, c) in items(doc, "connections") {
            let at = format!("/connections/{i}");
            let Some(name) = self.name(&at, c, "Name") else {
                continue;
            };
            let exists = match self
                .ask(Engine::Events, "DescribeConnection", json!({"Name": name}))
                .await
            {
                Ok(_) => true,
                Err(e) if e.code == "ResourceNotFoundException" => false,
                Err(e) => {
                    self.api_error(&at, &e);
                    continue;
                }
            };
            let members = [
                "Name",
                "Description",
                "AuthorizationType",
                "AuthParameters",
                "InvocationConnectivityParameters",
            ];
            let input = pick(c, &members);
            let op = if exists {
                "UpdateConnection"
            } else {
                self.created.push((Named::Connection, name.to_string()));
                "CreateConnection"
            };
            if self.valid(&at, Engine::Events, op, &input) {
                self.step(&at, Engine::Events, op, input);
            }
        }
    }

    /// API destinations name their connection by `Connection` (a name) or `ConnectionArn`.
    async fn api_destinations(&mut self, doc: &Value) {
        if doc.get("apiDestinations").is_none()
            || !self.runs("apiDestinations", self.engines.events.is_some())
        {
            return;
        }
        for (i, d) in items(doc, "apiDestinations") {
            let at = format!("/apiDestinations/{i}");
            let Some(name) = self.name(&at, d, "Name") else {
                continue;
            };
            let mut input = pick(
                d,
                &[
                    "Name",
                    "Description",
                    "ConnectionArn",
                    "InvocationEndpoint",
                    "HttpMethod",
                    "InvocationRateLimitPerSecond",
                ],
            );
            let mut late = Vec::new();
            match (d.get("Connection"), d.get("ConnectionArn")) {
                (Some(_), Some(_)) => {
                    self.error(&at, "name one of Connection and ConnectionArn, not both");
                    continue;
                }
                (Some(c), None) => {
                    let Some(conn) = c.as_str() else {
                        self.error(&format!("{at}/Connection"), "a connection name (a string)");
                        continue;
                    };
                    let at = format!("{at}/Connection");
                    let Some((arn, l)) = self.named_arn(&at, Named::Connection, conn).await else {
                        continue;
                    };
                    input["ConnectionArn"] = arn.into();
                    late.extend(l.map(|l| l.at("/ConnectionArn")));
                }
                _ => {}
            }
            let current = match self
                .ask(
                    Engine::Events,
                    "DescribeApiDestination",
                    json!({"Name": name}),
                )
                .await
            {
                Ok(c) => Some(c),
                Err(e) if e.code == "ResourceNotFoundException" => None,
                Err(e) => {
                    self.api_error(&at, &e);
                    continue;
                }
            };
            let op = if current.is_some() {
                "UpdateApiDestination"
            } else {
                "CreateApiDestination"
            };
            if !self.valid(&at, Engine::Events, op, &input) {
                continue;
            }
            let changed = current.as_ref().is_none_or(|c| {
                input
                    .as_object()
                    .into_iter()
                    .flatten()
                    .any(|(k, v)| c.get(k) != Some(v))
                    || !late.is_empty()
            });
            if current.is_none() {
                self.created.push((Named::ApiDestination, name.to_string()));
            }
            if changed {
                self.late_step(&at, Engine::Events, op, input, late);
            }
        }
    }

    /// The ARN of the `what` called `name`: read from EventBridge when it exists; for one this
    /// apply creates, a placeholder (for the checks) and the [`Late`] read that replaces it
    /// before the step runs. `None`, with an error at `at`, when it is neither in the config nor
    /// in Trellis.
    async fn named_arn(
        &mut self,
        at: &str,
        what: Named,
        name: &str,
    ) -> Option<(String, Option<Late>)> {
        let (op, member) = what.describe();
        let (kind, label) = what.kind();
        let key = json!({"Name": name});
        if self.created.iter().any(|(w, n)| *w == what && n == name) {
            let placeholder = self.arn.arn("events", &format!("{kind}/{name}/pending"));
            let late = Late {
                at: String::new(),
                op,
                key,
                member,
            };
            return Some((placeholder, Some(late)));
        }
        match self.ask(Engine::Events, op, key).await {
            Ok(found) => Some((found[member].as_str().unwrap_or_default().to_string(), None)),
            Err(_) => {
                self.error(
                    at,
                    format!("{label} {name} is neither in this config nor in Trellis"),
                );
                None
            }
        }
    }

    // --- event buses, rules and targets ---

    async fn event_buses(&mut self, doc: &Value) {
        if doc.get("eventBuses").is_none()
            || !self.runs("eventBuses", self.engines.events.is_some())
        {
            return;
        }
        for (i, b) in items(doc, "eventBuses") {
            let at = format!("/eventBuses/{i}");
            let Some(bus) = self.name(&at, b, "Name") else {
                continue;
            };
            let exists = bus == "default"
                || match self
                    .ask(Engine::Events, "DescribeEventBus", json!({"Name": bus}))
                    .await
                {
                    Ok(_) => true,
                    Err(e) if e.code == "ResourceNotFoundException" => {
                        let input = pick(b, &["Name", "Description", "DeadLetterConfig", "Tags"]);
                        if self.valid(&at, Engine::Events, "CreateEventBus", &input) {
                            self.step(&at, Engine::Events, "CreateEventBus", input);
                        }
                        false
                    }
                    Err(e) => {
                        self.api_error(&at, &e);
                        continue;
                    }
                };
            for (j, r) in items(b, "Rules") {
                self.rule(&format!("{at}/Rules/{j}"), bus, exists, r).await;
            }
        }
    }

    async fn rule(&mut self, at: &str, bus: &str, bus_exists: bool, r: &Value) {
        let Some(name) = self.name(at, r, "Name") else {
            return;
        };
        let mut input = pick(
            r,
            &[
                "Name",
                "Description",
                "RoleArn",
                "State",
                "ScheduleExpression",
                "Tags",
            ],
        );
        input["EventBusName"] = bus.into();
        match r.get("EventPattern") {
            None => {}
            Some(p @ (Value::String(_) | Value::Object(_))) => {
                let text = p.as_str().map_or_else(|| p.to_string(), str::to_string);
                let check = json!({"EventPattern": text, "Event": SAMPLE_EVENT});
                if let Err(e) = self.ask(Engine::Events, "TestEventPattern", check).await {
                    self.error(
                        &format!("{at}/EventPattern"),
                        format!("{}: {}", e.code, e.message),
                    );
                }
                input["EventPattern"] = text.into();
            }
            Some(_) => self.error(
                &format!("{at}/EventPattern"),
                "EventPattern is a JSON object, or a string holding one",
            ),
        }
        if let Some(s) = r.get("ScheduleExpression") {
            let at = format!("{at}/ScheduleExpression");
            match s.as_str().map(trellis_events::Schedule::parse) {
                Some(Err(e)) => self.error(
                    &at,
                    format!("{} ({e})", trellis_events::ScheduleError::AWS_MESSAGE),
                ),
                _ if bus != "default" => self.error(
                    &at,
                    "ScheduleExpression is supported only on the default event bus.",
                ),
                _ => {}
            }
        }
        if r.get("EventPattern").is_none() && r.get("ScheduleExpression").is_none() {
            self.error(
                at,
                "Parameter(s) EventPattern or ScheduleExpression must be specified.",
            );
        }
        let valid = self.valid(at, Engine::Events, "PutRule", &input);
        let current = if bus_exists {
            let key = json!({"Name": name, "EventBusName": bus});
            match self.ask(Engine::Events, "DescribeRule", key).await {
                Ok(c) => Some(c),
                Err(e) if e.code == "ResourceNotFoundException" => None,
                Err(e) => return self.api_error(at, &e),
            }
        } else {
            None
        };
        let changed = current.as_ref().is_none_or(|c| {
            [
                "EventPattern",
                "ScheduleExpression",
                "Description",
                "RoleArn",
            ]
            .iter()
            .any(|k| c.get(*k) != input.get(*k))
                || c["State"] != input["State"].as_str().unwrap_or("ENABLED")
        });
        if valid && changed {
            self.step(at, Engine::Events, "PutRule", input);
        }
        if let Some(targets) = r.get("Targets") {
            let registered = match &current {
                Some(_) => {
                    let key = json!({"Rule": name, "EventBusName": bus});
                    match self.ask(Engine::Events, "ListTargetsByRule", key).await {
                        Ok(v) => v["Targets"].as_array().cloned().unwrap_or_default(),
                        Err(e) => return self.api_error(at, &e),
                    }
                }
                None => Vec::new(),
            };
            self.targets(at, bus, name, targets, registered).await;
        }
    }

    /// The rule's targets become exactly `targets`: others are removed.
    async fn targets(
        &mut self,
        at: &str,
        bus: &str,
        rule: &str,
        targets: &Value,
        registered: Vec<Value>,
    ) {
        let mut wanted = Vec::new();
        // Targets naming an API destination this apply creates get its ARN once it exists.
        let mut late = Vec::new();
        for (k, t) in targets.as_array().into_iter().flatten().enumerate() {
            if let Some((t, l)) = self.target(&format!("{at}/Targets/{k}"), t).await {
                late.extend(l.map(|l| l.at(&format!("/Targets/{}/Arn", wanted.len()))));
                wanted.push(t);
            }
        }
        let put = json!({"Rule": rule, "EventBusName": bus, "Targets": wanted});
        if !wanted.is_empty() && self.valid(at, Engine::Events, "PutTargets", &put) {
            let mut dry = put.clone();
            dry["EventBusName"] = NO_SUCH_BUS.into();
            if let Some(events) = &self.engines.events {
                match events.call("PutTargets", dry).await {
                    Err(e) if e.code != "ResourceNotFoundException" => {
                        self.error(
                            &format!("{at}/Targets"),
                            format!("{}: {}", e.code, e.message),
                        );
                    }
                    _ => {}
                }
            }
        }
        let stale: Vec<&Value> = registered
            .iter()
            .filter(|r| !wanted.iter().any(|w| w["Id"] == r["Id"]))
            .map(|r| &r["Id"])
            .collect();
        if !stale.is_empty() {
            let input = json!({"Rule": rule, "EventBusName": bus, "Ids": stale});
            self.step(at, Engine::Events, "RemoveTargets", input);
        }
        if !late.is_empty() || wanted.iter().any(|w| !registered.contains(w)) {
            self.late_step(at, Engine::Events, "PutTargets", put, late);
        }
    }

    /// A `PutTargets` target from a config target: `Function`, `StateMachine` or
    /// `ApiDestination` (a name in this config or in the running engines) instead of `Arn`,
    /// `Input` as JSON rather than text; with the read that fills in `Arn` when it names an API
    /// destination this apply creates.
    async fn target(&mut self, at: &str, t: &Value) -> Option<(Value, Option<Late>)> {
        let Some(obj) = t.as_object() else {
            self.error(at, "a target is a JSON object");
            return None;
        };
        let mut t = obj.clone();
        let named: Vec<&str> = ["Arn", "Function", "StateMachine", "ApiDestination"]
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        if named.len() > 1 {
            self.error(
                at,
                format!(
                    "name one of Arn, Function, StateMachine and ApiDestination, not {}",
                    named.join(" and ")
                ),
            );
            return None;
        }
        if let Some(f) = t.remove("Function") {
            let name = f.as_str().unwrap_or_default();
            let known = self.functions.iter().any(|n| n == name)
                || self
                    .ask(Engine::Lambda, "GetFunction", json!({"FunctionName": name}))
                    .await
                    .is_ok();
            if !known {
                self.error(
                    &format!("{at}/Function"),
                    format!("function {name} is neither in this config nor in Trellis"),
                );
                return None;
            }
            t.insert(
                "Arn".into(),
                self.arn.arn("lambda", &format!("function:{name}")).into(),
            );
        }
        if let Some(m) = t.remove("StateMachine") {
            let name = m.as_str().unwrap_or_default();
            let arn = self.arn.arn("states", &format!("stateMachine:{name}"));
            let known = self.machines.iter().any(|n| n == name)
                || self
                    .ask(
                        Engine::StepFunctions,
                        "DescribeStateMachine",
                        json!({"stateMachineArn": arn}),
                    )
                    .await
                    .is_ok();
            if !known {
                self.error(
                    &format!("{at}/StateMachine"),
                    format!("state machine {name} is neither in this config nor in Trellis"),
                );
                return None;
            }
            t.insert("Arn".into(), arn.into());
        }
        let mut late = None;
        if let Some(d) = t.remove("ApiDestination") {
            let name = d.as_str().unwrap_or_default();
            let at = format!("{at}/ApiDestination");
            let (arn, l) = self.named_arn(&at, Named::ApiDestination, name).await?;
            t.insert("Arn".into(), arn.into());
            late = l;
        }
        if let Some(input) = t.get_mut("Input").filter(|i| i.is_object() || i.is_array()) {
            *input = input.to_string().into();
        }
        Some((Value::Object(t), late))
    }
}

/// An IAM role ARN of the account (IAM ARNs have no region).
fn role_arn(arn: &ArnContext, role: &str) -> String {
    format!("arn:{}:iam::{}:{role}", arn.partition, arn.account)
}
