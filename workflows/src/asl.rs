//! The Amazon States Language model: a state machine definition parsed into typed states.
//!
//! Parsing here is lenient about what the interpreter does not need; [`crate::validate`]
//! is where a definition is checked against AWS's rules before it is accepted. Payload
//! templates (Parameters, ResultSelector, Assign, Arguments, Output …) stay JSON values
//! and are evaluated at run time.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::jsonpath::{JsonPath, PathError};

/// Why a definition could not be turned into the model.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum AslError {
    #[error("definition is not valid json: {0}")]
    Json(String),
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
}

fn invalid(at: &str, reason: impl Into<String>) -> AslError {
    AslError::Invalid {
        at: at.to_string(),
        reason: reason.into(),
    }
}

/// JSONPath (the default) or JSONata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum QueryLanguage {
    #[default]
    JSONPath,
    JSONata,
}

/// A state graph: the whole machine, a Parallel branch or a Map item processor.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub comment: Option<String>,
    pub start_at: String,
    pub states: HashMap<String, State>,
    pub timeout_seconds: Option<u64>,
    pub query_language: QueryLanguage,
}

/// An optional path field where JSON `null` means "nothing" (InputPath, OutputPath).
#[derive(Debug, Clone, PartialEq)]
pub enum PathField {
    /// Absent: behaves as `$`.
    Default,
    /// Explicit `null`.
    Null,
    Path(JsonPath),
}

/// One state, with the fields every state type may carry.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub name: String,
    pub kind: StateKind,
    /// How much of the context object the state's expressions can reach; building it
    /// (with the execution input) for every state would make large Maps quadratic.
    pub context_use: ContextUse,
    pub next: Option<String>,
    pub end: bool,
    pub query_language: QueryLanguage,
    pub input_path: PathField,
    pub output_path: PathField,
    /// `Parameters` (or a Map's `ItemSelector`).
    pub parameters: Option<Value>,
    pub result_selector: Option<Value>,
    /// Absent is `$`; `Null` discards the result.
    pub result_path: PathField,
    pub assign: Option<Value>,
    /// JSONata `Output`.
    pub output: Option<Value>,
    /// JSONata `Arguments`.
    pub arguments: Option<Value>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StateKind {
    Pass { result: Option<Value> },
    Task(Task),
    Choice(Choice),
    Wait(Wait),
    Succeed,
    Fail(Fail),
    Parallel { branches: Vec<StateMachine> },
    Map(Box<MapState>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub resource: String,
    pub timeout_seconds: Option<NumberField>,
    pub heartbeat_seconds: Option<NumberField>,
    pub credentials: Option<Value>,
}

/// A number given literally, by a JSONPath (`…Path` fields), or by JSONata.
#[derive(Debug, Clone, PartialEq)]
pub enum NumberField {
    Literal(Value),
    Path(JsonPath),
    Jsonata(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub choices: Vec<ChoiceRule>,
    pub default: Option<String>,
}

/// One top-level rule of a Choice state.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceRule {
    pub condition: Condition,
    pub next: String,
    pub assign: Option<Value>,
    pub output: Option<Value>,
}

/// A boolean expression of a Choice rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Compare {
        variable: JsonPath,
        operator: String,
        operand: Operand,
    },
    /// JSONata `Condition`.
    Jsonata(Value),
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    Path(JsonPath),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    Seconds(Value),
    Timestamp(Value),
    SecondsPath(JsonPath),
    TimestampPath(JsonPath),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fail {
    pub error: Option<Value>,
    pub cause: Option<Value>,
    /// A path or an intrinsic call.
    pub error_path: Option<String>,
    pub cause_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapState {
    pub processor: StateMachine,
    pub distributed: bool,
    pub items_path: PathField,
    /// JSONata `Items`.
    pub items: Option<Value>,
    pub max_concurrency: Option<NumberField>,
    pub tolerated_failure_count: Option<NumberField>,
    pub tolerated_failure_percentage: Option<NumberField>,
    pub item_batcher: Option<ItemBatcher>,
    pub label: Option<String>,
    /// Distributed Map `ItemReader`: items come from a resource (S3 …) instead of input.
    pub item_reader: Option<ItemReader>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemReader {
    pub resource: String,
    /// `Parameters` (JSONPath) or `Arguments` (JSONata) for the reader resource.
    pub parameters: Option<Value>,
    /// `InputType` (JSON, JSONL, CSV, MANIFEST), `CSVHeaderLocation`, `CSVHeaders`,
    /// `CSVDelimiter`, `MaxItems`.
    pub reader_config: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemBatcher {
    pub max_items_per_batch: Option<NumberField>,
    pub max_input_bytes_per_batch: Option<NumberField>,
    pub batch_input: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u64,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter_full: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: PathField,
    pub assign: Option<Value>,
    pub output: Option<Value>,
}

// === impl StateMachine ===

impl StateMachine {
    /// Parses definition text (JSON).
    pub fn parse(text: &str) -> Result<StateMachine, AslError> {
        let v: Value = serde_json::from_str(text).map_err(|e| AslError::Json(e.to_string()))?;
        StateMachine::from_value(&v)
    }

    /// Builds the model from a parsed definition.
    pub fn from_value(v: &Value) -> Result<StateMachine, AslError> {
        graph(v, "", QueryLanguage::JSONPath)
    }

    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.get(name)
    }
}

fn obj<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, AslError> {
    v.as_object()
        .ok_or_else(|| invalid(at, "expected an object"))
}

fn string(m: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, AslError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(&format!("{at}/{key}"), "expected a string")),
    }
}

fn path(text: &str, at: &str) -> Result<JsonPath, AslError> {
    JsonPath::parse(text).map_err(|e: PathError| invalid(at, e.to_string()))
}

fn path_field(m: &Map<String, Value>, key: &str, at: &str) -> Result<PathField, AslError> {
    match m.get(key) {
        None => Ok(PathField::Default),
        Some(Value::Null) => Ok(PathField::Null),
        Some(Value::String(s)) => Ok(PathField::Path(path(s, &format!("{at}/{key}"))?)),
        Some(_) => Err(invalid(
            &format!("{at}/{key}"),
            "expected a path string or null",
        )),
    }
}

fn number_field(
    m: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<NumberField>, AslError> {
    if let Some(v) = m.get(key) {
        return Ok(Some(match v {
            Value::String(s) if is_jsonata(s) => NumberField::Jsonata(s.clone()),
            other => NumberField::Literal(other.clone()),
        }));
    }
    let pkey = format!("{key}Path");
    match m.get(&pkey) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(NumberField::Path(path(s, &format!("{at}/{pkey}"))?))),
        Some(_) => Err(invalid(&format!("{at}/{pkey}"), "expected a path string")),
    }
}

/// True for a JSONata template string `{% … %}`.
pub fn is_jsonata(s: &str) -> bool {
    // No surrounding whitespace: " {% x %} " is a plain string on AWS.
    s.starts_with("{%") && s.ends_with("%}") && s.len() >= 4
}

fn query_language(m: &Map<String, Value>, inherited: QueryLanguage) -> QueryLanguage {
    match m.get("QueryLanguage").and_then(Value::as_str) {
        Some("JSONata") => QueryLanguage::JSONata,
        Some("JSONPath") => QueryLanguage::JSONPath,
        _ => inherited,
    }
}

fn graph(v: &Value, at: &str, inherited: QueryLanguage) -> Result<StateMachine, AslError> {
    let m = obj(v, at)?;
    let ql = query_language(m, inherited);
    let start_at =
        string(m, "StartAt", at)?.ok_or_else(|| invalid(at, "missing required field StartAt"))?;
    let states_v = m
        .get("States")
        .ok_or_else(|| invalid(at, "missing required field States"))?;
    let mut states = HashMap::new();
    for (name, sv) in obj(states_v, &format!("{at}/States"))? {
        let s = state(name, sv, &format!("{at}/States/{name}"), ql)?;
        states.insert(name.clone(), s);
    }
    let timeout_seconds = m.get("TimeoutSeconds").and_then(Value::as_u64);
    Ok(StateMachine {
        comment: string(m, "Comment", at)?,
        start_at,
        states,
        timeout_seconds,
        query_language: ql,
    })
}

fn error_equals(m: &Map<String, Value>, at: &str) -> Result<Vec<String>, AslError> {
    m.get("ErrorEquals")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(at, "missing required field ErrorEquals"))?
        .iter()
        .map(|e| {
            e.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(at, "ErrorEquals holds strings"))
        })
        .collect()
}

fn state(name: &str, v: &Value, at: &str, inherited: QueryLanguage) -> Result<State, AslError> {
    let m = obj(v, at)?;
    let ql = query_language(m, inherited);
    let ty = string(m, "Type", at)?.ok_or_else(|| invalid(at, "missing required field Type"))?;
    let kind = match ty.as_str() {
        "Pass" => StateKind::Pass {
            result: m.get("Result").cloned(),
        },
        "Task" => StateKind::Task(Task {
            // A non-string Resource is a CloudFormation intrinsic left unresolved.
            resource: match m.get("Resource") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => return Err(invalid(at, "missing required field Resource")),
            },
            timeout_seconds: number_field(m, "TimeoutSeconds", at)?,
            heartbeat_seconds: number_field(m, "HeartbeatSeconds", at)?,
            credentials: m.get("Credentials").cloned(),
        }),
        "Choice" => {
            let mut choices = Vec::new();
            for (i, c) in m
                .get("Choices")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(at, "missing required field Choices"))?
                .iter()
                .enumerate()
            {
                let cat = format!("{at}/Choices/{i}");
                let cm = obj(c, &cat)?;
                choices.push(ChoiceRule {
                    condition: condition(c, &cat, ql)?,
                    next: string(cm, "Next", &cat)?
                        .ok_or_else(|| invalid(&cat, "missing required field Next"))?,
                    assign: cm.get("Assign").cloned(),
                    output: cm.get("Output").cloned(),
                });
            }
            StateKind::Choice(Choice {
                choices,
                default: string(m, "Default", at)?,
            })
        }
        "Wait" => StateKind::Wait(if let Some(s) = m.get("Seconds") {
            Wait::Seconds(s.clone())
        } else if let Some(t) = m.get("Timestamp") {
            Wait::Timestamp(t.clone())
        } else if let Some(p) = string(m, "SecondsPath", at)? {
            Wait::SecondsPath(path(&p, &format!("{at}/SecondsPath"))?)
        } else if let Some(p) = string(m, "TimestampPath", at)? {
            Wait::TimestampPath(path(&p, &format!("{at}/TimestampPath"))?)
        } else {
            return Err(invalid(
                at,
                "a Wait state needs one of Seconds, Timestamp, SecondsPath, TimestampPath",
            ));
        }),
        "Succeed" => StateKind::Succeed,
        "Fail" => StateKind::Fail(Fail {
            error: m.get("Error").cloned(),
            cause: m.get("Cause").cloned(),
            error_path: string(m, "ErrorPath", at)?,
            cause_path: string(m, "CausePath", at)?,
        }),
        "Parallel" => {
            let mut branches = Vec::new();
            for (i, b) in m
                .get("Branches")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(at, "missing required field Branches"))?
                .iter()
                .enumerate()
            {
                branches.push(graph(b, &format!("{at}/Branches/{i}"), ql)?);
            }
            StateKind::Parallel { branches }
        }
        "Map" => {
            let (pv, pat) = match (m.get("ItemProcessor"), m.get("Iterator")) {
                (Some(p), _) => (p, format!("{at}/ItemProcessor")),
                (None, Some(p)) => (p, format!("{at}/Iterator")),
                _ => return Err(invalid(at, "missing required field ItemProcessor")),
            };
            let distributed =
                pv.pointer("/ProcessorConfig/Mode").and_then(Value::as_str) == Some("DISTRIBUTED");
            let item_batcher = match m.get("ItemBatcher") {
                None => None,
                Some(b) => {
                    let bat = format!("{at}/ItemBatcher");
                    let bm = obj(b, &bat)?;
                    Some(ItemBatcher {
                        max_items_per_batch: number_field(bm, "MaxItemsPerBatch", &bat)?,
                        max_input_bytes_per_batch: number_field(bm, "MaxInputBytesPerBatch", &bat)?,
                        batch_input: bm.get("BatchInput").cloned(),
                    })
                }
            };
            StateKind::Map(Box::new(MapState {
                processor: graph(pv, &pat, ql)?,
                distributed,
                items_path: path_field(m, "ItemsPath", at)?,
                items: m.get("Items").cloned(),
                max_concurrency: number_field(m, "MaxConcurrency", at)?,
                tolerated_failure_count: number_field(m, "ToleratedFailureCount", at)?,
                tolerated_failure_percentage: number_field(m, "ToleratedFailurePercentage", at)?,
                item_batcher,
                label: string(m, "Label", at)?,
                item_reader: match m.get("ItemReader") {
                    None => None,
                    Some(r) => {
                        let rat = format!("{at}/ItemReader");
                        let rm = obj(r, &rat)?;
                        Some(ItemReader {
                            resource: string(rm, "Resource", &rat)?
                                .ok_or_else(|| invalid(&rat, "missing required field Resource"))?,
                            parameters: rm
                                .get("Parameters")
                                .or_else(|| rm.get("Arguments"))
                                .cloned(),
                            reader_config: rm
                                .get("ReaderConfig")
                                .and_then(Value::as_object)
                                .cloned()
                                .unwrap_or_default(),
                        })
                    }
                },
            }))
        }
        other => return Err(invalid(at, format!("unknown state type {other:?}"))),
    };
    let mut retry = Vec::new();
    if let Some(rs) = m.get("Retry").and_then(Value::as_array) {
        for (i, r) in rs.iter().enumerate() {
            let rat = format!("{at}/Retry/{i}");
            let rm = obj(r, &rat)?;
            retry.push(Retrier {
                error_equals: error_equals(rm, &rat)?,
                interval_seconds: rm
                    .get("IntervalSeconds")
                    .and_then(Value::as_f64)
                    .unwrap_or(1.0),
                max_attempts: rm.get("MaxAttempts").and_then(Value::as_u64).unwrap_or(3),
                backoff_rate: rm.get("BackoffRate").and_then(Value::as_f64).unwrap_or(2.0),
                max_delay_seconds: rm.get("MaxDelaySeconds").and_then(Value::as_f64),
                jitter_full: rm.get("JitterStrategy").and_then(Value::as_str) == Some("FULL"),
            });
        }
    }
    let mut catch = Vec::new();
    if let Some(cs) = m.get("Catch").and_then(Value::as_array) {
        for (i, c) in cs.iter().enumerate() {
            let cat = format!("{at}/Catch/{i}");
            let cm = obj(c, &cat)?;
            catch.push(Catcher {
                error_equals: error_equals(cm, &cat)?,
                next: string(cm, "Next", &cat)?
                    .ok_or_else(|| invalid(&cat, "missing required field Next"))?,
                result_path: path_field(cm, "ResultPath", &cat)?,
                assign: cm.get("Assign").cloned(),
                output: cm.get("Output").cloned(),
            });
        }
    }
    let parameters = m
        .get("Parameters")
        .or_else(|| m.get("ItemSelector"))
        .cloned();
    Ok(State {
        name: name.to_string(),
        context_use: context_use(v),
        kind,
        next: string(m, "Next", at)?,
        end: m.get("End").and_then(Value::as_bool).unwrap_or(false),
        query_language: ql,
        input_path: path_field(m, "InputPath", at)?,
        output_path: path_field(m, "OutputPath", at)?,
        parameters,
        result_selector: m.get("ResultSelector").cloned(),
        result_path: path_field(m, "ResultPath", at)?,
        assign: m.get("Assign").cloned(),
        output: m.get("Output").cloned(),
        arguments: m.get("Arguments").cloned(),
        retry,
        catch,
    })
}

/// Which parts of the context object (`$$`, `$states.context`) a state refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContextUse {
    None,
    /// Everything but `$$.Execution.Input`.
    WithoutInput,
    Full,
}

/// Scans a state's own fields (not its branches or item processor) for context references.
fn context_use(state: &Value) -> ContextUse {
    fn scan(v: &Value, top: bool) -> ContextUse {
        match v {
            Value::String(s) => {
                let mut found = ContextUse::None;
                if s.contains("$states.context") || s.contains("$states") && !s.contains("$states.")
                {
                    return ContextUse::Full;
                }
                for (i, _) in s.match_indices("$$") {
                    let rest = &s[i + 2..];
                    let names_input = rest.starts_with(".Execution.Input")
                        || !rest.starts_with('.')
                        || (rest.starts_with(".Execution")
                            && !rest[".Execution".len()..].starts_with('.'));
                    found = found.max(if names_input {
                        ContextUse::Full
                    } else {
                        ContextUse::WithoutInput
                    });
                }
                found
            }
            Value::Array(items) => items
                .iter()
                .map(|x| scan(x, false))
                .max()
                .unwrap_or(ContextUse::None),
            Value::Object(m) => m
                .iter()
                .filter(|(k, _)| {
                    !(top && matches!(k.as_str(), "Branches" | "ItemProcessor" | "Iterator"))
                })
                .map(|(_, x)| scan(x, false))
                .max()
                .unwrap_or(ContextUse::None),
            _ => ContextUse::None,
        }
    }
    scan(state, true)
}

/// Every comparison operator a Choice rule may use (each `*Path` variant compares to
/// another path's value).
pub const COMPARISON_OPERATORS: &[&str] = &[
    "StringEquals",
    "StringEqualsPath",
    "StringLessThan",
    "StringLessThanPath",
    "StringGreaterThan",
    "StringGreaterThanPath",
    "StringLessThanEquals",
    "StringLessThanEqualsPath",
    "StringGreaterThanEquals",
    "StringGreaterThanEqualsPath",
    "StringMatches",
    "NumericEquals",
    "NumericEqualsPath",
    "NumericLessThan",
    "NumericLessThanPath",
    "NumericGreaterThan",
    "NumericGreaterThanPath",
    "NumericLessThanEquals",
    "NumericLessThanEqualsPath",
    "NumericGreaterThanEquals",
    "NumericGreaterThanEqualsPath",
    "BooleanEquals",
    "BooleanEqualsPath",
    "TimestampEquals",
    "TimestampEqualsPath",
    "TimestampLessThan",
    "TimestampLessThanPath",
    "TimestampGreaterThan",
    "TimestampGreaterThanPath",
    "TimestampLessThanEquals",
    "TimestampLessThanEqualsPath",
    "TimestampGreaterThanEquals",
    "TimestampGreaterThanEqualsPath",
    "IsNull",
    "IsPresent",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
];

fn condition(v: &Value, at: &str, ql: QueryLanguage) -> Result<Condition, AslError> {
    let m = obj(v, at)?;
    if ql == QueryLanguage::JSONata || m.contains_key("Condition") {
        if let Some(c) = m.get("Condition") {
            return Ok(Condition::Jsonata(c.clone()));
        }
    }
    if let Some(list) = m.get("And").or_else(|| m.get("Or")) {
        let key = if m.contains_key("And") { "And" } else { "Or" };
        let items = list
            .as_array()
            .ok_or_else(|| invalid(at, format!("{key} must be an array")))?
            .iter()
            .enumerate()
            .map(|(i, c)| condition(c, &format!("{at}/{key}/{i}"), ql))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if key == "And" {
            Condition::And(items)
        } else {
            Condition::Or(items)
        });
    }
    if let Some(inner) = m.get("Not") {
        return Ok(Condition::Not(Box::new(condition(
            inner,
            &format!("{at}/Not"),
            ql,
        )?)));
    }
    let variable =
        string(m, "Variable", at)?.ok_or_else(|| invalid(at, "a comparison needs a Variable"))?;
    let variable = path(&variable, &format!("{at}/Variable"))?;
    let (operator, value) = m
        .iter()
        .find(|(k, _)| COMPARISON_OPERATORS.contains(&k.as_str()))
        .ok_or_else(|| invalid(at, "a comparison needs an operator"))?;
    let operand = if operator.ends_with("Path") {
        let s = value
            .as_str()
            .ok_or_else(|| invalid(&format!("{at}/{operator}"), "expected a path string"))?;
        Operand::Path(path(s, &format!("{at}/{operator}"))?)
    } else {
        Operand::Literal(value.clone())
    };
    Ok(Condition::Compare {
        variable,
        operator: operator.clone(),
        operand,
    })
}
