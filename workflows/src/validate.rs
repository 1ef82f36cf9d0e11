//! Definition validation at create time, reporting every problem at once in AWS's
//! `InvalidDefinition` form: `SCHEMA_VALIDATION_FAILED: <message> at /States/X/Field`,
//! `MISSING_TRANSITION_TARGET`, `UNREACHABLE_STATE` …
//!
//! The rules follow AWS's J2119 rule set (`StateMachine.j2119`) and the recorded
//! CreateStateMachine errors.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::asl::{is_jsonata, StateMachine, COMPARISON_OPERATORS};
use crate::intrinsics::{is_intrinsic, Arg, Call};
use crate::jsonata;
use crate::jsonpath::{JsonPath, Root};
use crate::time::parse_rfc3339;

/// One problem in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// AWS's problem code: `SCHEMA_VALIDATION_FAILED`, `MISSING_TRANSITION_TARGET` …
    pub code: &'static str,
    pub message: String,
    /// A JSON pointer into the definition.
    pub location: String,
    /// More precise detail than AWS gives (the offending key and why), for people
    /// reading `trellis validate` output; not part of the AWS message.
    pub detail: Option<String>,
}

impl Diagnostic {
    /// The AWS text followed by the detail, if any.
    pub fn detailed(&self) -> String {
        match &self.detail {
            Some(d) => format!("{self} ({d})"),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A JSON syntax error's message already ends with its `[Source: …]` location.
        if self.location.is_empty() || self.message.ends_with(&self.location) {
            write!(f, "{}: {}", self.code, self.message)
        } else {
            write!(f, "{}: {} at {}", self.code, self.message, self.location)
        }
    }
}

/// A rejected definition: AWS's `InvalidDefinition` error.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub struct InvalidDefinition(pub Vec<Diagnostic>);

impl fmt::Display for InvalidDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "Invalid State Machine Definition: '{}'", all.join(", "))
    }
}

/// The two kinds of state machine; EXPRESS ones accept fewer integrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MachineType {
    #[default]
    Standard,
    Express,
}

/// Validates definition text for a STANDARD machine and builds the model.
pub fn validate(text: &str) -> Result<StateMachine, InvalidDefinition> {
    validate_for(text, MachineType::Standard)
}

/// Validates definition text for a machine of type `kind` and builds the model.
pub fn validate_for(text: &str, kind: MachineType) -> Result<StateMachine, InvalidDefinition> {
    if !text.trim_start().starts_with('{')
        && serde_json::from_str::<Value>(text).is_ok_and(|v| !v.is_object())
        || text.trim().is_empty()
    {
        return Err(InvalidDefinition(vec![Diagnostic {
            code: "SCHEMA_VALIDATION_FAILED",
            message: "Definition must be a valid JSON object".into(),
            location: String::new(),
            detail: None,
        }]));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        // AWS gives its JSON parser's message and position (see `json_syntax`).
        let (message, location) = match crate::json_syntax::syntax_error(text) {
            Some(s) => (s.to_string(), s.location),
            None => (e.to_string(), "/".into()),
        };
        InvalidDefinition(vec![Diagnostic {
            code: "INVALID_JSON_DESCRIPTION",
            message,
            location,
            detail: None,
        }])
    })?;
    let mut diags = Vec::new();
    if let Err(e) = serde_json::from_str::<DupCheck>(text) {
        diags.push(Diagnostic {
            code: "SCHEMA_VALIDATION_FAILED",
            message: e.to_string(),
            location: "/".into(),
            detail: None,
        });
    }
    diags.extend(validate_value_for(&value, kind));
    if !diags.is_empty() {
        return Err(InvalidDefinition(diags));
    }
    StateMachine::from_value(&value).map_err(|e| {
        InvalidDefinition(vec![Diagnostic {
            code: "SCHEMA_VALIDATION_FAILED",
            message: e.to_string(),
            location: "/".into(),
            detail: None,
        }])
    })
}

/// Checks a parsed definition (duplicate keys are invisible here; see [`validate`]).
pub fn validate_value(v: &Value) -> Vec<Diagnostic> {
    validate_value_for(v, MachineType::Standard)
}

/// As [`validate_value`], for a machine of type `kind`.
pub fn validate_value_for(v: &Value, kind: MachineType) -> Vec<Diagnostic> {
    let top_jsonata = v.get("QueryLanguage").and_then(Value::as_str) == Some("JSONata");
    let mut c = Checker {
        diags: Vec::new(),
        names: HashSet::new(),
        express: kind == MachineType::Express,
        top_jsonata,
    };
    c.graph(v, "", false, true);
    c.diags
}

/// Rejects duplicate object keys, which `serde_json` would silently collapse.
struct DupCheck;

impl<'de> Deserialize<'de> for DupCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DupVisitor)
    }
}

struct DupVisitor;

impl<'de> Visitor<'de> for DupVisitor {
    type Value = DupCheck;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("json")
    }
    fn visit_bool<E>(self, _: bool) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_i64<E>(self, _: i64) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_u64<E>(self, _: u64) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_f64<E>(self, _: f64) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_str<E>(self, _: &str) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_unit<E>(self) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DupCheck, A::Error> {
        while seq.next_element::<DupCheck>()?.is_some() {}
        Ok(DupCheck)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DupCheck, A::Error> {
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(de::Error::custom(format!("Duplicate field '{k}'")));
            }
            map.next_value::<DupCheck>()?;
        }
        Ok(DupCheck)
    }
}

const STATE_TYPES: &[&str] = &[
    "Task", "Wait", "Pass", "Succeed", "Fail", "Choice", "Parallel", "Map",
];

/// Fields each state type accepts, beyond `Type`, `Comment` and `QueryLanguage`.
fn allowed_fields(ty: &str) -> &'static [&'static str] {
    match ty {
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "Result",
            "ResultPath",
            "Assign",
            "Output",
        ],
        "Task" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
            "Assign",
            "Output",
            "Arguments",
        ],
        "Choice" => &[
            "InputPath",
            "OutputPath",
            "Choices",
            "Default",
            "Assign",
            "Output",
        ],
        "Wait" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "Timestamp",
            "SecondsPath",
            "TimestampPath",
            "Assign",
            "Output",
        ],
        "Succeed" => &["InputPath", "OutputPath", "Output"],
        "Fail" => &["Error", "ErrorPath", "Cause", "CausePath"],
        "Parallel" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Branches",
            "Assign",
            "Output",
            "Arguments",
        ],
        "Map" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ItemSelector",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Iterator",
            "ItemProcessor",
            "ItemsPath",
            "Items",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "Label",
            "Assign",
            "Output",
            "Arguments",
        ],
        _ => &[],
    }
}

const JSONPATH_ONLY: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultPath",
    "ResultSelector",
    "ItemsPath",
    "SecondsPath",
    "TimestampPath",
    "ErrorPath",
    "CausePath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "MaxConcurrencyPath",
    "ToleratedFailureCountPath",
    "ToleratedFailurePercentagePath",
    "Iterator",
];
const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items"];

struct Checker {
    diags: Vec<Diagnostic>,
    /// State names must be unique across the whole machine, branches included.
    names: HashSet<String>,
    express: bool,
    /// A machine-wide JSONata QueryLanguage cannot be downgraded by a state.
    top_jsonata: bool,
}

// === impl Checker ===

impl Checker {
    fn err(&mut self, at: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            code: "SCHEMA_VALIDATION_FAILED",
            message: message.into(),
            location: if at.is_empty() { "/".into() } else { at.into() },
            detail: None,
        });
    }

    fn err_detail(&mut self, at: &str, message: impl Into<String>, detail: String) {
        self.err(at, message);
        if let Some(d) = self.diags.last_mut() {
            d.detail = Some(detail);
        }
    }

    fn code(&mut self, code: &'static str, at: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            code,
            message: message.into(),
            location: if at.is_empty() { "/".into() } else { at.into() },
            detail: None,
        });
    }

    fn graph(&mut self, v: &Value, at: &str, inherited_jsonata: bool, top: bool) {
        let Some(m) = v.as_object() else {
            self.err(at, "Expected an object");
            return;
        };
        let mut missing = Vec::new();
        for k in ["States", "StartAt"] {
            if !m.contains_key(k) {
                missing.push(k);
            }
        }
        if !missing.is_empty() {
            self.err(
                at,
                format!("These fields are required: [{}]", missing.join(", ")),
            );
            return;
        }
        let allowed: &[&str] = if top {
            &[
                "Comment",
                "StartAt",
                "States",
                "TimeoutSeconds",
                "Version",
                "QueryLanguage",
            ]
        } else {
            &[
                "Comment",
                "StartAt",
                "States",
                "ProcessorConfig",
                "QueryLanguage",
            ]
        };
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                self.err(
                    &format!("{at}/{k}"),
                    format!("Field \"{k}\" is not supported"),
                );
            }
        }
        let jsonata = match m.get("QueryLanguage") {
            None => inherited_jsonata,
            Some(Value::String(s)) if s == "JSONata" => true,
            Some(Value::String(s)) if s == "JSONPath" => false,
            Some(_) => {
                self.err(&format!("{at}/QueryLanguage"), "The field 'QueryLanguage' should have one of these values: [JSONPath, JSONata]");
                inherited_jsonata
            }
        };
        if let Some(t) = m.get("TimeoutSeconds") {
            if !matches!(t.as_u64(), Some(n) if n > 0) {
                self.err(
                    &format!("{at}/TimeoutSeconds"),
                    "TimeoutSeconds must be a positive integer",
                );
            }
        }
        let Some(states) = m.get("States").and_then(Value::as_object) else {
            self.err(&format!("{at}/States"), "States must be an object");
            return;
        };
        if states.is_empty() {
            self.err(&format!("{at}/States"), "Value cannot be empty");
            return;
        }
        let start = m.get("StartAt").and_then(Value::as_str);
        match start {
            None => self.err(&format!("{at}/StartAt"), "StartAt must be a string"),
            Some(s) if !states.contains_key(s) => self.code(
                "MISSING_TRANSITION_TARGET",
                &format!("{at}/StartAt"),
                format!("Missing 'Next' target: {s}"),
            ),
            _ => {}
        }
        let mut edges: HashMap<&str, Vec<String>> = HashMap::new();
        for (name, sv) in states {
            let sat = format!("{at}/States/{}", pointer_escape(name));
            if !self.names.insert(name.clone()) {
                self.err(&sat, format!("Duplicate state name \"{name}\" (state names must be unique within the state machine)"));
            }
            if name.chars().count() > 80 {
                self.err(
                    &sat,
                    format!("State name \"{name}\" is longer than 80 characters"),
                );
            }
            let targets = self.state(name, sv, &sat, jsonata);
            for (t, tat) in &targets {
                if !states.contains_key(t.as_str()) {
                    self.code(
                        "MISSING_TRANSITION_TARGET",
                        tat,
                        format!("Missing 'Next' target: {t}"),
                    );
                }
            }
            edges.insert(name.as_str(), targets.into_iter().map(|(t, _)| t).collect());
        }
        // Reachability from StartAt.
        if let Some(s) = start.filter(|s| states.contains_key(*s)) {
            let mut seen: HashSet<&str> = HashSet::new();
            let mut stack = vec![s];
            while let Some(n) = stack.pop() {
                if seen.insert(n) {
                    for t in edges.get(n).into_iter().flatten() {
                        if let Some((k, _)) = states.get_key_value(t.as_str()) {
                            stack.push(k.as_str());
                        }
                    }
                }
            }
            for name in states.keys() {
                if !seen.contains(name.as_str()) {
                    self.code(
                        "UNREACHABLE_STATE",
                        &format!("{at}/States/{}", pointer_escape(name)),
                        format!("State \"{name}\" is not reachable"),
                    );
                }
            }
        }
        let terminal = states.values().any(|s| {
            let ty = s.get("Type").and_then(Value::as_str).unwrap_or("");
            ty == "Succeed" || ty == "Fail" || s.get("End") == Some(&Value::Bool(true))
        });
        if !terminal {
            self.code("NO_TERMINAL_STATE", at, "No terminal state");
        }
    }

    /// Checks one state; returns its transitions with their locations.
    fn state(
        &mut self,
        _name: &str,
        v: &Value,
        at: &str,
        inherited_jsonata: bool,
    ) -> Vec<(String, String)> {
        let mut targets = Vec::new();
        let Some(m) = v.as_object() else {
            self.err(at, "A state must be an object");
            return targets;
        };
        let Some(ty) = m.get("Type").and_then(Value::as_str) else {
            self.err(at, "These fields are required: [Type]");
            return targets;
        };
        if !STATE_TYPES.contains(&ty) {
            self.err(
                &format!("{at}/Type"),
                "The field 'Type' should have one of these values: [Task, Wait, Pass, Succeed, Fail, Choice, Parallel, Map]",
            );
            return targets;
        }
        let jsonata = match m.get("QueryLanguage").and_then(Value::as_str) {
            Some("JSONata") => true,
            Some("JSONPath") if self.top_jsonata => {
                self.err(
                    at,
                    "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
                );
                false
            }
            Some("JSONPath") => false,
            Some(_) => {
                self.err(&format!("{at}/QueryLanguage"), "The field 'QueryLanguage' should have one of these values: [JSONPath, JSONata]");
                inherited_jsonata
            }
            None => inherited_jsonata,
        };
        let allowed = allowed_fields(ty);
        for k in m.keys() {
            let k = k.as_str();
            if k == "Type" || k == "Comment" || k == "QueryLanguage" {
                continue;
            }
            if !allowed.contains(&k) {
                self.err(
                    &format!("{at}/{k}"),
                    format!("Field \"{k}\" is not supported by state type {ty}"),
                );
            } else if jsonata && JSONPATH_ONLY.contains(&k) {
                self.err(
                    &format!("{at}/{k}"),
                    format!("Field \"{k}\" is not supported with the JSONata query language"),
                );
            } else if !jsonata && JSONATA_ONLY.contains(&k) {
                self.err(
                    &format!("{at}/{k}"),
                    format!("Field \"{k}\" is not supported with the JSONPath query language"),
                );
            }
        }
        // Transitions.
        let terminal_type = matches!(ty, "Choice" | "Succeed" | "Fail");
        if !terminal_type {
            let next = m.get("Next");
            let end = m.get("End");
            match (next, end) {
                (Some(_), Some(Value::Bool(true))) => {
                    self.err(at, "The fields 'Next' and 'End' are mutually exclusive")
                }
                (None, None) | (None, Some(Value::Bool(false))) => {
                    self.err(at, "These fields are required: [Next or End]")
                }
                _ => {}
            }
            if let Some(e) = end {
                if !e.is_boolean() {
                    self.err(&format!("{at}/End"), "End must be a boolean");
                }
            }
            match next {
                Some(Value::String(n)) => targets.push((n.clone(), format!("{at}/Next"))),
                Some(_) => self.err(&format!("{at}/Next"), "Next must be a string"),
                None => {}
            }
        }
        // Common fields.
        for k in ["InputPath", "OutputPath"] {
            if let Some(p) = m.get(k) {
                self.path_or_null(p, &format!("{at}/{k}"), k);
            }
        }
        if let Some(p) = m.get("ResultPath") {
            self.reference_path(p, &format!("{at}/ResultPath"));
        }
        for k in ["Parameters", "ResultSelector"] {
            if let Some(t) = m.get(k) {
                if !jsonata {
                    self.template(t, &format!("{at}/{k}"));
                }
            }
        }
        if let Some(a) = m.get("Assign") {
            self.assign(a, &format!("{at}/Assign"), jsonata);
        }
        for k in ["Output", "Arguments"] {
            if let Some(t) = m.get(k) {
                if jsonata {
                    self.jsonata_template(t, &format!("{at}/{k}"));
                }
            }
        }
        for (i, r) in m
            .get("Retry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            self.retrier(r, &format!("{at}/Retry/{i}"));
        }
        if let Some(r) = m.get("Retry") {
            if !r.is_array() {
                self.err(&format!("{at}/Retry"), "Retry must be an array");
            }
        }
        for (i, c) in m
            .get("Catch")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let cat = format!("{at}/Catch/{i}");
            if let Some(t) = self.catcher(c, &cat, jsonata) {
                targets.push((t, format!("{cat}/Next")));
            }
        }
        match ty {
            "Task" => self.task(m, at, jsonata),
            "Wait" => self.wait(m, at, jsonata),
            "Fail" => self.fail(m, at, jsonata),
            "Choice" => {
                let mut t = self.choice(m, at, jsonata);
                targets.append(&mut t);
            }
            "Parallel" => match m.get("Branches").and_then(Value::as_array) {
                Some(bs) if !bs.is_empty() => {
                    for (i, b) in bs.iter().enumerate() {
                        self.graph(b, &format!("{at}/Branches/{i}"), jsonata, false);
                    }
                }
                Some(_) => self.err(&format!("{at}/Branches"), "Value cannot be empty"),
                None => self.err(at, "These fields are required: [Branches]"),
            },
            "Map" => self.map(m, at, jsonata),
            _ => {}
        }
        targets
    }

    fn path_or_null(&mut self, v: &Value, at: &str, field: &str) {
        match v {
            Value::Null => {}
            Value::String(s) => {
                if is_intrinsic(s) || JsonPath::parse(s).is_err() {
                    self.err(
                        at,
                        format!("The value for the field \"{field}\" must be a valid JSONPath"),
                    );
                }
            }
            _ => self.err(
                at,
                format!("The value for the field \"{field}\" must be a valid JSONPath"),
            ),
        }
    }

    fn reference_path(&mut self, v: &Value, at: &str) {
        match v {
            Value::Null => {}
            Value::String(s) => match JsonPath::parse(s) {
                Ok(p) if *p.root() == Root::Input && p.is_definite() => {}
                _ => self.err(
                    at,
                    "The value for the field \"ResultPath\" must be a valid ReferencePath",
                ),
            },
            _ => self.err(
                at,
                "The value for the field \"ResultPath\" must be a valid ReferencePath",
            ),
        }
    }

    /// A JSONPath payload template; AWS reports problems at the template's field
    /// (`/States/X/Parameters`), the nested key goes in the detail.
    fn template(&mut self, t: &Value, at: &str) {
        self.template_at(t, at, "")
    }

    fn template_at(&mut self, t: &Value, at: &str, inner: &str) {
        match t {
            Value::Object(m) => {
                let mut seen = HashSet::new();
                for k in m.keys() {
                    let bare = k.strip_suffix(".$").unwrap_or(k);
                    if !seen.insert(bare) {
                        self.err_detail(
                            at,
                            format!("The field '{bare}' is duplicated"),
                            format!("at {inner}/{}", pointer_escape(k)),
                        );
                    }
                }
                for (k, v) in m {
                    let kinner = format!("{inner}/{}", pointer_escape(k));
                    if k.ends_with(".$") {
                        match v.as_str() {
                            Some(s) => self.expression_at(s, at, k, &kinner),
                            None => self.err_detail(
                                at,
                                format!(
                                    "The value for the field '{k}' must be a STRING that contains a JSONPath but was an {}",
                                    type_name(v)
                                ),
                                format!("at {kinner}"),
                            ),
                        }
                    } else {
                        self.template_at(v, at, &kinner);
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.template_at(v, at, &format!("{inner}/{i}"));
                }
            }
            _ => {}
        }
    }

    /// A `.$` value: a path or an intrinsic call.
    fn expression(&mut self, s: &str, at: &str, field: &str) {
        self.expression_at(s, at, field, "")
    }

    fn expression_at(&mut self, s: &str, at: &str, field: &str, inner: &str) {
        let message = format!(
            "The value for the field '{field}' must be a valid JSONPath or a valid intrinsic function call"
        );
        let reason = if is_intrinsic(s) {
            match Call::parse(s) {
                Ok(call) => check_call(&call).err(),
                Err(e) => Some(e.to_string()),
            }
        } else {
            JsonPath::parse(s).err().map(|e| e.to_string())
        };
        if let Some(reason) = reason {
            let place = if inner.is_empty() {
                String::new()
            } else {
                format!(" at {inner}")
            };
            self.err_detail(
                at,
                message,
                format!(
                    "{s:?}{place} is not a JSONPath or intrinsic function expression: {reason}"
                ),
            );
        }
    }

    fn assign(&mut self, a: &Value, at: &str, jsonata: bool) {
        let Some(m) = a.as_object() else {
            self.err(at, "Assign must be an object");
            return;
        };
        if jsonata {
            self.jsonata_template(a, at);
        } else {
            self.template(a, at);
        }
        for k in m.keys() {
            let name = k.strip_suffix(".$").unwrap_or(k);
            let ok = !name.is_empty()
                && name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            if !ok || name == "states" {
                self.err(
                    &format!("{at}/{}", pointer_escape(k)),
                    format!("The variable name \"{name}\" is not valid"),
                );
            }
        }
    }

    fn jsonata_template(&mut self, t: &Value, at: &str) {
        match t {
            Value::String(s) => {
                let trimmed = s.trim_start();
                if trimmed.starts_with("{%") || s.trim_end().ends_with("%}") {
                    // Exactly one space after the opening `{%`; trailing spaces are tolerated.
                    if !is_jsonata(s)
                        || !s.starts_with("{% ")
                        || !s.ends_with(" %}")
                        || s[3..].starts_with(char::is_whitespace)
                    {
                        self.err(
                            at,
                            "JSONata expressions must be written as \"{% <JSONata expression> %}\"",
                        );
                        return;
                    }
                    let expr = s[3..s.len() - 3].trim_end();
                    if let Err(e) = jsonata::parse(expr) {
                        self.err(
                            at,
                            format!("The JSONata expression '{expr}' is not valid: {e}"),
                        );
                    }
                }
            }
            Value::Object(m) => {
                for (k, v) in m {
                    self.jsonata_template(v, &format!("{at}/{}", pointer_escape(k)));
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.jsonata_template(v, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }

    fn error_equals(&mut self, m: &Map<String, Value>, at: &str) {
        match m.get("ErrorEquals") {
            None => self.err(at, "These fields are required: [ErrorEquals]"),
            Some(Value::Array(list)) if list.is_empty() => self.err(
                &format!("{at}/ErrorEquals"),
                "ErrorEquals: non-empty required",
            ),
            Some(Value::Array(list)) => {
                if list.iter().any(|e| !e.is_string()) {
                    self.err(
                        &format!("{at}/ErrorEquals"),
                        "ErrorEquals must contain strings",
                    );
                }
                let all = list.iter().position(|e| e.as_str() == Some("States.ALL"));
                if all.is_some_and(|i| list.len() > 1 || i != 0) {
                    self.err(
                        &format!("{at}/ErrorEquals"),
                        "States.ALL must appear alone in ErrorEquals",
                    );
                }
            }
            Some(_) => self.err(&format!("{at}/ErrorEquals"), "ErrorEquals must be an array"),
        }
    }

    fn retrier(&mut self, r: &Value, at: &str) {
        let Some(m) = r.as_object() else {
            self.err(at, "A retrier must be an object");
            return;
        };
        for k in m.keys() {
            if ![
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ]
            .contains(&k.as_str())
            {
                self.err(
                    &format!("{at}/{k}"),
                    format!("Field \"{k}\" is not supported in a retrier"),
                );
            }
        }
        self.error_equals(m, at);
        if let Some(v) = m.get("IntervalSeconds") {
            if !matches!(v.as_u64(), Some(n) if n >= 1) {
                self.err(
                    &format!("{at}/IntervalSeconds"),
                    "IntervalSeconds: allowed minimum is 1",
                );
            }
        }
        if let Some(v) = m.get("MaxAttempts") {
            if v.as_u64().is_none() {
                self.err(
                    &format!("{at}/MaxAttempts"),
                    "MaxAttempts: allowed floor is 0",
                );
            }
        }
        if let Some(v) = m.get("BackoffRate") {
            if !v.as_f64().is_some_and(|n| n >= 1.0) {
                self.err(
                    &format!("{at}/BackoffRate"),
                    "BackoffRate: allowed minimum is 1.0",
                );
            }
        }
        if let Some(v) = m.get("MaxDelaySeconds") {
            if !matches!(v.as_u64(), Some(n) if n >= 1) {
                self.err(
                    &format!("{at}/MaxDelaySeconds"),
                    "MaxDelaySeconds: allowed floor is 0, allowed minimum is 1",
                );
            }
        }
        if let Some(v) = m.get("JitterStrategy") {
            if !matches!(v.as_str(), Some("FULL") | Some("NONE")) {
                self.err(
                    &format!("{at}/JitterStrategy"),
                    "JitterStrategy is not one of the allowed values [\"FULL\", \"NONE\"]",
                );
            }
        }
    }

    fn catcher(&mut self, c: &Value, at: &str, jsonata: bool) -> Option<String> {
        let Some(m) = c.as_object() else {
            self.err(at, "A catcher must be an object");
            return None;
        };
        for k in m.keys() {
            if ![
                "ErrorEquals",
                "Next",
                "ResultPath",
                "Comment",
                "Assign",
                "Output",
            ]
            .contains(&k.as_str())
            {
                self.err(
                    &format!("{at}/{k}"),
                    format!("Field \"{k}\" is not supported in a catcher"),
                );
            }
        }
        self.error_equals(m, at);
        if let Some(p) = m.get("ResultPath") {
            self.reference_path(p, &format!("{at}/ResultPath"));
        }
        if let Some(a) = m.get("Assign") {
            self.assign(a, &format!("{at}/Assign"), jsonata);
        }
        match m.get("Next") {
            Some(Value::String(n)) => Some(n.clone()),
            _ => {
                self.err(at, "These fields are required: [Next]");
                None
            }
        }
    }

    fn exclusive(&mut self, m: &Map<String, Value>, at: &str, a: &str, b: &str) {
        if m.contains_key(a) && m.contains_key(b) {
            self.err(
                at,
                format!("A state may have only one of [\"{a}\", \"{b}\"]"),
            );
        }
    }

    fn positive_int_or_path(
        &mut self,
        m: &Map<String, Value>,
        at: &str,
        field: &str,
        jsonata: bool,
    ) {
        self.exclusive(m, at, field, &format!("{field}Path"));
        if let Some(v) = m.get(field) {
            let ok = v.as_u64().is_some_and(|n| n > 0)
                || (jsonata && v.as_str().is_some_and(is_jsonata));
            if !ok {
                self.err(
                    &format!("{at}/{field}"),
                    format!("{field} must be a positive integer"),
                );
            }
        }
        if let Some(p) = m.get(&format!("{field}Path")) {
            self.path_or_null(p, &format!("{at}/{field}Path"), &format!("{field}Path"));
        }
    }

    fn task(&mut self, m: &Map<String, Value>, at: &str, jsonata: bool) {
        match m.get("Resource") {
            Some(Value::String(r)) => {
                if r == "arn:aws:states:::http:invoke"
                    || r == "arn:aws:states:::http:invoke.waitForTaskToken"
                {
                    self.http_task(m, at, jsonata);
                }
                if let Err(msg) = check_resource(r) {
                    self.err(&format!("{at}/Resource"), msg);
                } else if self.express {
                    // AWS's text has a trailing space before " at …" for this one.
                    if r.ends_with(".waitForTaskToken") {
                        self.err(
                            &format!("{at}/Resource"),
                            "Express state machine does not support '.waitForTaskToken' service integration ",
                        );
                    } else if r.ends_with(".sync") || r.contains(".sync:") {
                        self.err(
                            &format!("{at}/Resource"),
                            "Express state machine does not support '.sync' service integration",
                        );
                    } else if r.contains(":activity:") {
                        self.err(
                            &format!("{at}/Resource"),
                            "Express state machine does not support Activity ARN",
                        );
                    }
                }
            }
            // A CloudFormation intrinsic (`{"Fn::GetAtt": …}`) that the template engine resolves.
            Some(Value::Object(o)) if o.keys().any(|k| k.starts_with("Fn::") || k == "Ref") => {}
            Some(_) => self.err(&format!("{at}/Resource"), "Resource must be a string"),
            None => self.err(at, "These fields are required: [Resource]"),
        }
        self.positive_int_or_path(m, at, "TimeoutSeconds", jsonata);
        self.positive_int_or_path(m, at, "HeartbeatSeconds", jsonata);
        if let (Some(h), Some(t)) = (
            m.get("HeartbeatSeconds").and_then(Value::as_u64),
            m.get("TimeoutSeconds").and_then(Value::as_u64),
        ) {
            if h >= t {
                self.err(
                    &format!("{at}/HeartbeatSeconds"),
                    "HeartbeatSeconds must be smaller than TimeoutSeconds",
                );
            }
        }
        if let Some(c) = m.get("Credentials") {
            match c.as_object() {
                Some(cm) => {
                    if !cm.contains_key("RoleArn") && !cm.contains_key("RoleArn.$") {
                        self.err(
                            &format!("{at}/Credentials"),
                            "The field 'RoleArn' is required but was missing",
                        );
                    }
                    if let Some(Value::String(p)) = cm.get("RoleArn.$") {
                        self.expression(p, &format!("{at}/Credentials/RoleArn.$"), "RoleArn.$");
                    }
                }
                None => self.err(
                    &format!("{at}/Credentials"),
                    "Credentials must be an object",
                ),
            }
        }
    }

    /// An HTTP Task's literal parameters: `ApiEndpoint`, `Method` and
    /// `Authentication.ConnectionArn` are required (as fields or `.$` paths), a literal method
    /// must be one AWS allows and a literal connection an EventBridge connection ARN.
    fn http_task(&mut self, m: &Map<String, Value>, at: &str, jsonata: bool) {
        let key = if jsonata { "Arguments" } else { "Parameters" };
        let Some(Value::Object(p)) = m.get(key) else {
            if !m.contains_key(key) {
                self.err(at, format!("These fields are required: [{key}]"));
            }
            return;
        };
        let at = format!("{at}/{key}");
        // A literal value; `None` when missing, or given by a path or a JSONata expression.
        let literal = |o: &Map<String, Value>, f: &str| -> Result<Option<Value>, ()> {
            match o.get(f) {
                Some(Value::String(s)) if jsonata && s.starts_with("{%") => Ok(None),
                Some(v) => Ok(Some(v.clone())),
                None if o.contains_key(&format!("{f}.$")) => Ok(None),
                None => Err(()),
            }
        };
        let missing = |f: &str| format!("The field '{f}' is required but was missing");
        if literal(p, "ApiEndpoint").is_err() {
            self.err(&at, missing("ApiEndpoint"));
        }
        match literal(p, "Method") {
            Err(()) => self.err(&at, missing("Method")),
            Ok(Some(v))
                if !v
                    .as_str()
                    .is_some_and(|s| crate::service::HTTP_METHODS.contains(&s)) =>
            {
                self.err(
                    &format!("{at}/Method"),
                    format!(
                        "The value for the field 'Method' must be one of [{}]",
                        crate::service::HTTP_METHODS.join(", ")
                    ),
                );
            }
            Ok(_) => {}
        }
        match p.get("Authentication") {
            None if !p.contains_key("Authentication.$") => self.err(&at, missing("Authentication")),
            Some(Value::Object(a)) => match literal(a, "ConnectionArn") {
                Err(()) => self.err(&format!("{at}/Authentication"), missing("ConnectionArn")),
                Ok(Some(v)) => {
                    let ok = v
                        .as_str()
                        .and_then(trellis_core::Arn::parse)
                        .is_some_and(|a| {
                            a.service == "events" && a.resource.starts_with("connection/")
                        });
                    if !ok {
                        self.err(
                            &format!("{at}/Authentication/ConnectionArn"),
                            "The value for the field 'ConnectionArn' must be a valid EventBridge connection ARN",
                        );
                    }
                }
                Ok(None) => {}
            },
            _ => {}
        }
    }

    fn wait(&mut self, m: &Map<String, Value>, at: &str, jsonata: bool) {
        let present: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
            .into_iter()
            .filter(|k| m.contains_key(*k))
            .collect();
        if present.len() != 1 {
            self.err(at, "A Wait state must have exactly one of [\"Seconds\", \"Timestamp\", \"SecondsPath\", \"TimestampPath\"]");
        }
        if let Some(v) = m.get("Seconds") {
            let ok = v.as_u64().is_some_and(|n| n <= 99_999_999)
                || (jsonata && v.as_str().is_some_and(is_jsonata));
            if !ok {
                self.err(
                    &format!("{at}/Seconds"),
                    "Seconds must be a non-negative integer",
                );
            }
        }
        if let Some(v) = m.get("Timestamp") {
            let ok = v
                .as_str()
                .is_some_and(|s| parse_rfc3339(s).is_some() || (jsonata && is_jsonata(s)));
            if !ok {
                self.err(
                    &format!("{at}/Timestamp"),
                    "String does not match RFC3339 timestamp",
                );
            } else if jsonata {
                self.jsonata_template(v, &format!("{at}/Timestamp"));
            }
        }
        for k in ["SecondsPath", "TimestampPath"] {
            if let Some(p) = m.get(k) {
                self.path_or_null(p, &format!("{at}/{k}"), k);
            }
        }
    }

    fn fail(&mut self, m: &Map<String, Value>, at: &str, jsonata: bool) {
        self.exclusive(m, at, "Error", "ErrorPath");
        self.exclusive(m, at, "Cause", "CausePath");
        for k in ["ErrorPath", "CausePath"] {
            match m.get(k) {
                Some(Value::String(s)) => self.expression(s, &format!("{at}/{k}"), k),
                Some(_) => self.err(&format!("{at}/{k}"), format!("{k} must be a string")),
                None => {}
            }
        }
        for k in ["Error", "Cause"] {
            match m.get(k) {
                Some(v @ Value::String(_)) if jsonata => {
                    self.jsonata_template(v, &format!("{at}/{k}"))
                }
                Some(Value::String(_)) => {}
                Some(_) => self.err(&format!("{at}/{k}"), format!("{k} must be a string")),
                None => {}
            }
        }
    }

    fn choice(&mut self, m: &Map<String, Value>, at: &str, jsonata: bool) -> Vec<(String, String)> {
        let mut targets = Vec::new();
        match m.get("Choices").and_then(Value::as_array) {
            Some(rules) if !rules.is_empty() => {
                for (i, r) in rules.iter().enumerate() {
                    let rat = format!("{at}/Choices/{i}");
                    match r.get("Next") {
                        Some(Value::String(n)) => targets.push((n.clone(), format!("{rat}/Next"))),
                        _ => self.err(&rat, "These fields are required: [Next]"),
                    }
                    if let Some(a) = r.get("Assign") {
                        self.assign(a, &format!("{rat}/Assign"), jsonata);
                    }
                    if jsonata {
                        match r.get("Condition") {
                            Some(c) => self.jsonata_template(c, &format!("{rat}/Condition")),
                            None => self.err(&rat, "These fields are required: [Condition]"),
                        }
                        if let Some(o) = r.get("Output") {
                            self.jsonata_template(o, &format!("{rat}/Output"));
                        }
                    } else {
                        self.rule(r, &rat, true);
                    }
                }
            }
            Some(_) => self.err(&format!("{at}/Choices"), "Value cannot be empty"),
            None => self.err(at, "These fields are required: [Choices]"),
        }
        match m.get("Default") {
            Some(Value::String(d)) => targets.push((d.clone(), format!("{at}/Default"))),
            Some(_) => self.err(&format!("{at}/Default"), "Default must be a string"),
            None => {}
        }
        targets
    }

    fn rule(&mut self, r: &Value, at: &str, top: bool) {
        let Some(m) = r.as_object() else {
            self.err(at, "A choice rule must be an object");
            return;
        };
        for k in m.keys() {
            let ok = ["Variable", "And", "Or", "Not", "Comment"].contains(&k.as_str())
                || COMPARISON_OPERATORS.contains(&k.as_str())
                || (top && (k == "Next" || k == "Assign"));
            if !ok {
                self.err(
                    &format!("{at}/{k}"),
                    format!("Field \"{k}\" is not supported in a choice rule"),
                );
            }
        }
        if !top && m.contains_key("Next") {
            self.err(
                &format!("{at}/Next"),
                "Nested choice rules cannot have Next",
            );
        }
        for k in ["And", "Or"] {
            if let Some(v) = m.get(k) {
                match v.as_array() {
                    Some(items) if !items.is_empty() => {
                        for (i, c) in items.iter().enumerate() {
                            self.rule(c, &format!("{at}/{k}/{i}"), false);
                        }
                    }
                    _ => self.err(
                        &format!("{at}/{k}"),
                        format!("{k} must be a non-empty array"),
                    ),
                }
                return;
            }
        }
        if let Some(v) = m.get("Not") {
            self.rule(v, &format!("{at}/Not"), false);
            return;
        }
        match m.get("Variable") {
            Some(Value::String(s)) if JsonPath::parse(s).is_ok() => {}
            Some(_) => self.err(
                &format!("{at}/Variable"),
                "The value for the field \"Variable\" must be a valid JSONPath",
            ),
            None => self.err(at, "These fields are required: [Variable]"),
        }
        let ops: Vec<(&String, &Value)> = m
            .iter()
            .filter(|(k, _)| COMPARISON_OPERATORS.contains(&k.as_str()))
            .collect();
        if ops.len() != 1 {
            self.err(
                at,
                "A choice rule must have exactly one comparison operator",
            );
            return;
        }
        let (op, v) = ops[0];
        let oat = format!("{at}/{op}");
        let ok = if op.ends_with("Path") {
            v.as_str().is_some_and(|s| JsonPath::parse(s).is_ok())
        } else if op.starts_with("Is") {
            v.is_boolean()
        } else if op.starts_with("String") {
            v.is_string()
        } else if op.starts_with("Numeric") {
            v.is_number()
        } else if op.starts_with("Boolean") {
            v.is_boolean()
        } else if op.starts_with("Timestamp") {
            v.as_str().is_some_and(|s| parse_rfc3339(s).is_some())
        } else {
            true
        };
        if !ok {
            self.err(&oat, format!("The value of {op} has the wrong type: {v}"));
        }
    }

    fn map(&mut self, m: &Map<String, Value>, at: &str, jsonata: bool) {
        self.exclusive(m, at, "ItemProcessor", "Iterator");
        self.exclusive(m, at, "Parameters", "ItemSelector");
        self.exclusive(m, at, "Items", "ItemsPath");
        self.exclusive(m, at, "MaxConcurrency", "MaxConcurrencyPath");
        self.exclusive(m, at, "ToleratedFailureCount", "ToleratedFailureCountPath");
        self.exclusive(
            m,
            at,
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
        );
        match (m.get("ItemProcessor"), m.get("Iterator")) {
            (Some(p), _) => self.graph(p, &format!("{at}/ItemProcessor"), jsonata, false),
            (None, Some(p)) => self.graph(p, &format!("{at}/Iterator"), jsonata, false),
            (None, None) => self.err(at, "These fields are required: [ItemProcessor]"),
        }
        if let Some(p) = m.get("ItemsPath") {
            match p {
                Value::String(_) => self.path_or_null(p, &format!("{at}/ItemsPath"), "ItemsPath"),
                _ => self.err(
                    &format!("{at}/ItemsPath"),
                    "The value for the field \"ItemsPath\" must be a valid JSONPath",
                ),
            }
        }
        if let Some(t) = m.get("ItemSelector") {
            if jsonata {
                self.jsonata_template(t, &format!("{at}/ItemSelector"));
            } else {
                self.template(t, &format!("{at}/ItemSelector"));
            }
        }
        if let Some(i) = m.get("Items") {
            self.jsonata_template(i, &format!("{at}/Items"));
        }
        let non_neg =
            |v: &Value| v.as_u64().is_some() || (jsonata && v.as_str().is_some_and(is_jsonata));
        for k in ["MaxConcurrency", "ToleratedFailureCount"] {
            if let Some(v) = m.get(k) {
                if !non_neg(v) {
                    self.err(
                        &format!("{at}/{k}"),
                        format!("{k} must be a non-negative integer"),
                    );
                }
            }
        }
        if let Some(v) = m.get("ToleratedFailurePercentage") {
            let ok = v.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p))
                || (jsonata && v.as_str().is_some_and(is_jsonata));
            if !ok {
                self.err(
                    &format!("{at}/ToleratedFailurePercentage"),
                    "ToleratedFailurePercentage must be between 0 and 100",
                );
            }
        }
        for k in [
            "MaxConcurrencyPath",
            "ToleratedFailureCountPath",
            "ToleratedFailurePercentagePath",
        ] {
            if let Some(p) = m.get(k) {
                self.path_or_null(p, &format!("{at}/{k}"), k);
            }
        }
        if let Some(b) = m.get("ItemBatcher") {
            match b.as_object() {
                Some(bm) => {
                    self.exclusive(
                        bm,
                        &format!("{at}/ItemBatcher"),
                        "MaxItemsPerBatch",
                        "MaxItemsPerBatchPath",
                    );
                    self.exclusive(
                        bm,
                        &format!("{at}/ItemBatcher"),
                        "MaxInputBytesPerBatch",
                        "MaxInputBytesPerBatchPath",
                    );
                }
                None => self.err(
                    &format!("{at}/ItemBatcher"),
                    "ItemBatcher must be an object",
                ),
            }
        }
        if let Some(r) = m.get("ItemReader") {
            if let Some(rc) = r.get("ReaderConfig").and_then(Value::as_object) {
                self.exclusive(
                    rc,
                    &format!("{at}/ItemReader/ReaderConfig"),
                    "MaxItems",
                    "MaxItemsPath",
                );
            }
            if r.get("Resource").and_then(Value::as_str).is_none() {
                self.err(
                    &format!("{at}/ItemReader"),
                    "These fields are required: [Resource]",
                );
            }
        }
    }
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Bool(_) => "BOOLEAN",
        Value::Number(_) => "NUMBER",
        Value::String(_) => "STRING",
        Value::Array(_) => "ARRAY",
        Value::Object(_) => "OBJECT",
    }
}

/// A Task `Resource`: a URI (an ARN, or `${…}` substitutions a template engine fills in);
/// Lambda function ARNs must have a valid qualifier.
fn check_resource(r: &str) -> Result<(), String> {
    if r.contains("${") {
        let mut rest = r;
        while let Some(i) = rest.find("${") {
            match rest[i..].find('}') {
                Some(j) => rest = &rest[i + j + 1..],
                None => {
                    return Err(format!(
                        "The resource provided {r} is not a valid substitution"
                    ))
                }
            }
        }
        return Ok(());
    }
    let scheme_ok = r.split_once(':').is_some_and(|(s, rest)| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            && !rest.is_empty()
    });
    if !scheme_ok {
        return Err(format!("The resource provided {r} is not recognized"));
    }
    // Optimized integrations whose actions are a closed set.
    if let Some(action) = r.strip_prefix("arn:aws:states:::dynamodb:") {
        if !["getItem", "putItem", "updateItem", "deleteItem"].contains(&action) {
            return Err(format!(
                "The resource provided {r} is not recognized. The value is not a valid resource ARN, or the resource is not available in this region."
            ));
        }
    }
    let parts: Vec<&str> = r.split(':').collect();
    if parts.len() >= 7 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "function" {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        let ok = match parts.len() {
            7 => name_ok(parts[6]),
            8 => name_ok(parts[6]) && (parts[7] == "$LATEST" || name_ok(parts[7])),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "The resource provided {r} is not a valid Lambda function ARN"
            ));
        }
    }
    Ok(())
}

/// Static checks of an intrinsic call: arity and the types of literal arguments.
fn check_call(call: &Call) -> Result<(), String> {
    let n = call.args.len();
    let arity = |lo: usize, hi: usize| {
        if n < lo || n > hi {
            Err(format!(
                "{} takes {lo}..={hi} arguments, got {n}",
                call.name
            ))
        } else {
            Ok(())
        }
    };
    let literal = |i: usize| match call.args.get(i) {
        Some(Arg::Literal(v)) => Some(v.clone()),
        _ => None,
    };
    let want = |i: usize, ok: fn(&Value) -> bool, what: &str| match literal(i) {
        Some(v) if !ok(&v) => Err(format!(
            "argument {} of {} must be {what}, got {v}",
            i + 1,
            call.name
        )),
        _ => Ok(()),
    };
    match call.name.as_str() {
        "States.Format" => {
            arity(1, usize::MAX)?;
            want(0, Value::is_string, "a string")
        }
        "States.StringToJson" | "States.Base64Encode" | "States.Base64Decode" => {
            arity(1, 1)?;
            want(0, Value::is_string, "a string")
        }
        "States.JsonToString" | "States.ArrayLength" | "States.ArrayUnique" => arity(1, 1),
        "States.Array" => Ok(()),
        "States.ArrayPartition" | "States.ArrayGetItem" => {
            arity(2, 2)?;
            want(1, Value::is_number, "a number")
        }
        "States.ArrayContains" => arity(2, 2),
        "States.ArrayRange" => {
            arity(3, 3)?;
            (0..3).try_for_each(|i| want(i, Value::is_number, "a number"))
        }
        "States.Hash" => {
            arity(2, 2)?;
            want(
                1,
                |v| {
                    matches!(
                        v.as_str(),
                        Some("MD5" | "SHA-1" | "SHA-256" | "SHA-384" | "SHA-512")
                    )
                },
                "a hash algorithm",
            )
        }
        "States.JsonMerge" => {
            arity(3, 3)?;
            want(2, Value::is_boolean, "a boolean")
        }
        "States.MathRandom" => {
            arity(2, 3)?;
            (0..n).try_for_each(|i| want(i, Value::is_number, "a number"))
        }
        "States.MathAdd" => {
            arity(2, 2)?;
            (0..2).try_for_each(|i| want(i, Value::is_number, "a number"))
        }
        "States.StringSplit" => {
            arity(2, 2)?;
            (0..2).try_for_each(|i| want(i, Value::is_string, "a string"))
        }
        "States.UUID" => arity(0, 0),
        _ => Ok(()),
    }?;
    for a in &call.args {
        if let Arg::Call(inner) = a {
            check_call(inner)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<String> {
        match validate(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn accepts_a_minimal_machine() {
        assert!(codes(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}"#).is_empty());
    }

    #[test]
    fn reports_aws_shaped_messages() {
        let e = codes(r#"{"StartAt":"A"}"#);
        assert_eq!(
            e,
            vec!["SCHEMA_VALIDATION_FAILED: These fields are required: [States] at /"]
        );
        let e = codes(r#"{"StartAt":"A","States":{"A":{"Type":"Nope"}}}"#);
        assert!(e[0].ends_with("at /States/A/Type"), "{e:?}");
        let e = codes(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"}}}"#);
        assert!(
            e.iter().any(|d| d.starts_with("MISSING_TRANSITION_TARGET")),
            "{e:?}"
        );
        let e = codes(
            r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true},"B":{"Type":"Pass","End":true}}}"#,
        );
        assert!(
            e.iter().any(|d| d.starts_with("UNREACHABLE_STATE")),
            "{e:?}"
        );
        let e = codes(
            r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true},"A":{"Type":"Pass","End":true}}}"#,
        );
        assert!(e.iter().any(|d| d.contains("Duplicate field 'A'")), "{e:?}");
    }

    #[test]
    fn checks_payload_templates() {
        let e = codes(
            r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"x.$":"nope"},"End":true}}}"#,
        );
        assert!(
            e[0].contains("must be a valid JSONPath or a valid intrinsic function call"),
            "{e:?}"
        );
        let e = codes(
            r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"x.$":"States.MathAdd(1,'-1')"},"End":true}}}"#,
        );
        assert_eq!(e.len(), 1, "{e:?}");
    }
}
