//! The AWS service-model runtime. A botocore `service-2.json` names every operation's HTTP
//! binding and every shape's type and constraints; this module loads one and uses it to route a
//! request to its operation, gather the operation's input from the path, query string, headers
//! and body into one JSON object, validate it (required members, lengths, ranges, patterns,
//! enums, unions) reporting every bad field at once, and split an output object back into
//! status, headers and body. Handlers then deal only in JSON objects shaped like the model.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// A loaded service model.
#[derive(Debug)]
pub struct ServiceModel {
    pub protocol: String,
    pub target_prefix: Option<String>,
    operations: Vec<Operation>,
    by_name: HashMap<String, usize>,
    shapes: HashMap<String, Shape>,
    patterns: Mutex<HashMap<String, Option<std::sync::Arc<fancy_regex::Regex>>>>,
}

/// One operation and its HTTP binding.
#[derive(Debug, Clone)]
pub struct Operation {
    pub name: String,
    pub method: String,
    pub success_status: u16,
    pub input: Option<String>,
    pub output: Option<String>,
    segments: Vec<Segment>,
    query_literals: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Label(String),
    Greedy(String),
}

/// Where a member lives in the HTTP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Body,
    Uri,
    Query,
    Header,
    Headers,
    StatusCode,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub shape: String,
    pub location: Location,
    pub location_name: String,
    pub idempotency_token: bool,
}

#[derive(Debug, Clone)]
pub enum Shape {
    Structure {
        members: Vec<Member>,
        required: Vec<String>,
        union: bool,
        payload: Option<String>,
    },
    List {
        member: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    Map {
        key: String,
        value: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    String {
        min: Option<f64>,
        max: Option<f64>,
        pattern: Option<String>,
        enumeration: Option<Vec<String>>,
    },
    Integer {
        min: Option<f64>,
        max: Option<f64>,
    },
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    Boolean,
    Timestamp,
    Blob {
        min: Option<f64>,
        max: Option<f64>,
    },
}

/// A request as the API listener received it.
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The raw (still percent-encoded) path.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// An operation's answer split into its HTTP parts.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

// === impl ServiceModel ===

impl ServiceModel {
    /// Loads a botocore model from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let raw: Value = serde_json::from_str(text)?;
        let meta = &raw["metadata"];
        let mut shapes = HashMap::new();
        if let Some(map) = raw["shapes"].as_object() {
            for (name, s) in map {
                shapes.insert(name.clone(), parse_shape(s));
            }
        }
        let mut operations = Vec::new();
        let mut by_name = HashMap::new();
        if let Some(map) = raw["operations"].as_object() {
            for (name, op) in map {
                let http = &op["http"];
                let uri = http["requestUri"].as_str().unwrap_or("/");
                let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
                let segments = path
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        if let Some(l) = s.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                            Segment::Greedy(l.to_string())
                        } else if let Some(l) =
                            s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
                        {
                            Segment::Label(l.to_string())
                        } else {
                            Segment::Literal(s.to_string())
                        }
                    })
                    .collect();
                let query_literals = query
                    .split('&')
                    .filter(|s| !s.is_empty())
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (kv.to_string(), None),
                    })
                    .collect();
                by_name.insert(name.clone(), operations.len());
                operations.push(Operation {
                    name: name.clone(),
                    method: http["method"].as_str().unwrap_or("POST").to_string(),
                    success_status: http["responseCode"].as_u64().unwrap_or(200) as u16,
                    input: op["input"]["shape"].as_str().map(str::to_string),
                    output: op["output"]["shape"].as_str().map(str::to_string),
                    segments,
                    query_literals,
                });
            }
        }
        Ok(Self {
            protocol: meta["protocol"].as_str().unwrap_or("rest-json").to_string(),
            target_prefix: meta["targetPrefix"].as_str().map(str::to_string),
            operations,
            by_name,
            shapes,
            patterns: Mutex::new(HashMap::new()),
        })
    }

    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.by_name.get(name).map(|&i| &self.operations[i])
    }

    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    /// Finds the rest-json operation for a method and raw path, with the decoded path labels.
    /// Among several matches the one with the most literal segments wins.
    pub fn route(
        &self,
        method: &str,
        raw_path: &str,
        query: Option<&str>,
    ) -> Option<(&Operation, HashMap<String, String>)> {
        let parts: Vec<&str> = raw_path.split('/').filter(|s| !s.is_empty()).collect();
        let query_pairs = parse_query(query);
        let mut best: Option<(usize, &Operation, HashMap<String, String>)> = None;
        for op in &self.operations {
            if !op.method.eq_ignore_ascii_case(method) {
                continue;
            }
            let Some(labels) = match_segments(&op.segments, &parts) else {
                continue;
            };
            let literals_ok = op.query_literals.iter().all(|(k, v)| {
                query_pairs
                    .iter()
                    .any(|(qk, qv)| qk == k && v.as_ref().is_none_or(|v| v == qv))
            });
            if !literals_ok {
                continue;
            }
            let score = op
                .segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count()
                * 4
                + op.query_literals.len();
            if best.as_ref().is_none_or(|(b, _, _)| score > *b) {
                best = Some((score, op, labels));
            }
        }
        best.map(|(_, op, labels)| (op, labels))
    }

    /// Gathers a rest-json operation's input from every part of the request.
    pub fn rest_input(
        &self,
        op: &Operation,
        labels: &HashMap<String, String>,
        req: &HttpRequest<'_>,
    ) -> Result<Value, ApiError> {
        let Some(input_name) = &op.input else {
            return Ok(Value::Object(Map::new()));
        };
        let Some(Shape::Structure {
            members, payload, ..
        }) = self.shapes.get(input_name)
        else {
            return Ok(Value::Object(Map::new()));
        };
        let mut input = Map::new();
        let query_pairs = parse_query(req.query);
        let mut has_body_members = false;
        for m in members {
            match m.location {
                Location::Uri => {
                    if let Some(v) = labels.get(&m.location_name) {
                        input.insert(m.name.clone(), self.coerce(&m.shape, v, &m.name)?);
                    }
                }
                Location::Query => {
                    let values: Vec<&String> = query_pairs
                        .iter()
                        .filter(|(k, _)| *k == m.location_name)
                        .map(|(_, v)| v)
                        .collect();
                    if values.is_empty() {
                        continue;
                    }
                    if let Some(Shape::List { member, .. }) = self.shapes.get(&m.shape) {
                        let mut items = Vec::new();
                        for v in values {
                            items.push(self.coerce(member, v, &m.name)?);
                        }
                        input.insert(m.name.clone(), Value::Array(items));
                    } else {
                        input.insert(m.name.clone(), self.coerce(&m.shape, values[0], &m.name)?);
                    }
                }
                Location::Header => {
                    if let Some(v) = req
                        .headers
                        .get(m.location_name.as_str())
                        .and_then(|v| v.to_str().ok())
                    {
                        input.insert(m.name.clone(), self.coerce(&m.shape, v, &m.name)?);
                    }
                }
                Location::Headers => {
                    let prefix = m.location_name.to_ascii_lowercase();
                    let mut map = Map::new();
                    for (k, v) in req.headers {
                        if let (Some(rest), Ok(v)) = (k.as_str().strip_prefix(&prefix), v.to_str())
                        {
                            map.insert(rest.to_string(), Value::String(v.to_string()));
                        }
                    }
                    if !map.is_empty() {
                        input.insert(m.name.clone(), Value::Object(map));
                    }
                }
                Location::Body | Location::StatusCode => has_body_members = true,
            }
        }
        if let Some(p) = payload {
            if !req.body.is_empty() {
                let shape = members
                    .iter()
                    .find(|m| &m.name == p)
                    .map(|m| m.shape.as_str());
                let value = match shape.and_then(|s| self.shapes.get(s)) {
                    Some(Shape::Structure { .. }) => parse_body(req.body)?,
                    Some(Shape::String { .. }) => {
                        Value::String(String::from_utf8_lossy(req.body).into_owned())
                    }
                    // Blobs are handed on as base64, the way the JSON protocols carry them.
                    _ => Value::String(base64_encode(req.body)),
                };
                input.insert(p.clone(), value);
            }
        } else if has_body_members && !req.body.is_empty() {
            let body = parse_body(req.body)?;
            let Value::Object(body) = body else {
                return Err(ApiError::cannot_parse("request body must be a JSON object"));
            };
            for m in members.iter().filter(|m| m.location == Location::Body) {
                if let Some(v) = body.get(&m.location_name) {
                    input.insert(m.name.clone(), v.clone());
                }
            }
        }
        Ok(Value::Object(input))
    }

    fn coerce(&self, shape: &str, raw: &str, field: &str) -> Result<Value, ApiError> {
        let bad = || {
            ApiError::invalid_field(
                field,
                format!("Value '{raw}' could not be parsed as the member's type"),
            )
        };
        Ok(match self.shapes.get(shape) {
            Some(Shape::Integer { .. }) => Value::from(raw.parse::<i64>().map_err(|_| bad())?),
            Some(Shape::Float { .. }) => Value::from(raw.parse::<f64>().map_err(|_| bad())?),
            Some(Shape::Boolean) => Value::Bool(match raw {
                "true" => true,
                "false" => false,
                _ => return Err(bad()),
            }),
            _ => Value::String(raw.to_string()),
        })
    }

    /// Checks `value` against the operation's input shape and reports every violation.
    pub fn validate_input(&self, op: &Operation, value: &Value) -> Result<(), ApiError> {
        let Some(shape) = &op.input else {
            return Ok(());
        };
        self.validate(shape, value)
    }

    /// Checks `value` against shape `shape` and reports every violation.
    pub fn validate(&self, shape: &str, value: &Value) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        self.check(shape, value, "", &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(errors))
        }
    }

    fn check(&self, shape_name: &str, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        let Some(shape) = self.shapes.get(shape_name) else {
            return;
        };
        let mut err = |message: String| {
            errors.push(FieldError {
                name: if path.is_empty() {
                    "body".into()
                } else {
                    path.to_string()
                },
                message,
            })
        };
        if value.is_null() {
            return;
        }
        match shape {
            Shape::Structure {
                members,
                required,
                union,
                ..
            } => {
                let Value::Object(obj) = value else {
                    return err("Member must be a structure".into());
                };
                for r in required {
                    if obj.get(r).is_none_or(Value::is_null) {
                        errors.push(FieldError {
                            name: join(path, r),
                            message: "Member must not be null".into(),
                        });
                    }
                }
                if *union {
                    let set = obj.values().filter(|v| !v.is_null()).count();
                    if set != 1 {
                        errors.push(FieldError {
                            name: if path.is_empty() {
                                "body".into()
                            } else {
                                path.to_string()
                            },
                            message: format!(
                                "Member must have exactly one member set, found {set}"
                            ),
                        });
                    }
                }
                for m in members {
                    if let Some(v) = obj.get(&m.name) {
                        self.check(&m.shape, v, &join(path, &m.name), errors);
                    }
                }
            }
            Shape::List { member, min, max } => {
                let Value::Array(items) = value else {
                    return err("Member must be a list".into());
                };
                check_len(items.len() as f64, *min, *max, &mut err);
                for (i, item) in items.iter().enumerate() {
                    self.check(member, item, &format!("{path}.{}", i + 1), errors);
                }
            }
            Shape::Map {
                key,
                value: vshape,
                min,
                max,
            } => {
                let Value::Object(obj) = value else {
                    return err("Member must be a map".into());
                };
                check_len(obj.len() as f64, *min, *max, &mut err);
                for (k, v) in obj {
                    self.check(
                        key,
                        &Value::String(k.clone()),
                        &format!("{path}.key"),
                        errors,
                    );
                    self.check(vshape, v, &format!("{path}.{k}"), errors);
                }
            }
            Shape::String {
                min,
                max,
                pattern,
                enumeration,
            } => {
                let Value::String(s) = value else {
                    return err("Member must be a string".into());
                };
                check_len(s.chars().count() as f64, *min, *max, &mut err);
                if let Some(values) = enumeration {
                    if !values.iter().any(|v| v == s) {
                        err(format!(
                            "Member must satisfy enum value set: [{}]",
                            values.join(", ")
                        ));
                    }
                }
                if let Some(p) = pattern {
                    if let Some(re) = self.pattern(p) {
                        if !re.is_match(s).unwrap_or(true) {
                            err(format!(
                                "Member must satisfy regular expression pattern: {p}"
                            ));
                        }
                    }
                }
            }
            Shape::Integer { min, max } | Shape::Float { min, max } => {
                let Some(n) = value.as_f64() else {
                    return err("Member must be a number".into());
                };
                if let Some(min) = min {
                    if n < *min {
                        err(format!(
                            "Member must have value greater than or equal to {min}"
                        ));
                    }
                }
                if let Some(max) = max {
                    if n > *max {
                        err(format!(
                            "Member must have value less than or equal to {max}"
                        ));
                    }
                }
            }
            Shape::Boolean => {
                if !value.is_boolean() {
                    err("Member must be a boolean".into());
                }
            }
            Shape::Timestamp => {
                if !(value.is_string() || value.is_number()) {
                    err("Member must be a timestamp".into());
                }
            }
            Shape::Blob { min, max } => {
                let Value::String(s) = value else {
                    return err("Member must be a blob".into());
                };
                check_len(s.len() as f64, *min, *max, &mut err);
            }
        }
    }

    // The model's patterns are whole-value patterns in Java syntax (lookaheads included);
    // anchor them and compile each once.
    fn pattern(&self, p: &str) -> Option<std::sync::Arc<fancy_regex::Regex>> {
        let mut cache = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(p.to_string())
            .or_insert_with(|| {
                let anchored = if p.starts_with('^') {
                    p.to_string()
                } else {
                    format!("^(?:{p})$")
                };
                fancy_regex::Regex::new(&anchored)
                    .ok()
                    .map(std::sync::Arc::new)
            })
            .clone()
    }

    /// Splits an operation's output object into status, headers and body (rest-json).
    pub fn rest_output(&self, op: &Operation, output: Value) -> HttpResponse {
        let mut status = op.success_status;
        let mut headers = Vec::new();
        let Some(Shape::Structure {
            members, payload, ..
        }) = op.output.as_ref().and_then(|o| self.shapes.get(o))
        else {
            return HttpResponse {
                status,
                headers,
                body: if status == 204 {
                    Vec::new()
                } else {
                    b"{}".to_vec()
                },
            };
        };
        let Value::Object(mut obj) = output else {
            return HttpResponse {
                status,
                headers,
                body: b"{}".to_vec(),
            };
        };
        for m in members {
            match m.location {
                Location::Header => {
                    if let Some(v) = obj.remove(&m.name) {
                        headers.push((m.location_name.clone(), scalar_text(&v)));
                    }
                }
                Location::Headers => {
                    if let Some(Value::Object(map)) = obj.remove(&m.name) {
                        for (k, v) in map {
                            headers.push((format!("{}{k}", m.location_name), scalar_text(&v)));
                        }
                    }
                }
                Location::StatusCode => {
                    if let Some(v) = obj.remove(&m.name).and_then(|v| v.as_u64()) {
                        status = v as u16;
                    }
                }
                _ => {}
            }
        }
        let body = if let Some(p) = payload {
            match obj.remove(p) {
                Some(Value::String(s)) => {
                    let shape = members.iter().find(|m| &m.name == p).map(|m| &m.shape);
                    match shape.and_then(|s| self.shapes.get(s)) {
                        Some(Shape::Blob { .. }) => {
                            base64_decode(&s).unwrap_or_else(|| s.into_bytes())
                        }
                        _ => s.into_bytes(),
                    }
                }
                Some(v) => serde_json::to_vec(&v).unwrap_or_default(),
                None => Vec::new(),
            }
        } else {
            strip_nulls(&mut obj);
            serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
        };
        HttpResponse {
            status,
            headers,
            body,
        }
    }
}

/// A model embedded in the binary, parsed on first use and shared after:
/// `embedded(&MODEL, include_str!("…/core/models/x.json"))` with a `static MODEL: OnceLock<…>`.
pub fn embedded(
    cell: &'static OnceLock<std::sync::Arc<ServiceModel>>,
    text: &'static str,
) -> std::sync::Arc<ServiceModel> {
    cell.get_or_init(|| {
        std::sync::Arc::new(
            ServiceModel::from_json(text).expect("an embedded service model is valid JSON"),
        )
    })
    .clone()
}

// === impl Operation ===

impl Operation {
    /// The path template with labels filled in: used by clients such as `trellis apply`.
    pub fn path_for(&self, labels: &HashMap<&str, &str>) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Label(l) | Segment::Greedy(l) => {
                    let v = labels.get(l.as_str()).copied().unwrap_or("");
                    out.extend(percent_encoding::utf8_percent_encode(
                        v,
                        percent_encoding::NON_ALPHANUMERIC,
                    ));
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

fn match_segments(segments: &[Segment], parts: &[&str]) -> Option<HashMap<String, String>> {
    let mut labels = HashMap::new();
    let mut i = 0;
    for (si, seg) in segments.iter().enumerate() {
        match seg {
            Segment::Literal(l) => {
                if parts.get(i)? != l {
                    return None;
                }
                i += 1;
            }
            Segment::Label(l) => {
                let raw = parts.get(i)?;
                labels.insert(l.clone(), decode(raw));
                i += 1;
            }
            Segment::Greedy(l) => {
                // A greedy label takes everything up to what the remaining literals need.
                let rest = segments.len() - si - 1;
                if parts.len() < i + 1 + rest {
                    return None;
                }
                let end = parts.len() - rest;
                let joined: Vec<String> = parts[i..end].iter().map(|p| decode(p)).collect();
                labels.insert(l.clone(), joined.join("/"));
                i = end;
            }
        }
    }
    (i == parts.len()).then_some(labels)
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Decoded `key=value` pairs of a query string, in order.
pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(&k.replace('+', " ")), decode(&v.replace('+', " ")))
        })
        .collect()
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            "SerializationException",
            400,
            format!("request body is not valid JSON: {e}"),
        )
    })
}

fn parse_shape(s: &Value) -> Shape {
    let num = |k: &str| s[k].as_f64();
    match s["type"].as_str().unwrap_or("") {
        "structure" => {
            let members = s["members"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(name, m)| {
                            let location = match m["location"].as_str() {
                                Some("uri") => Location::Uri,
                                Some("querystring") => Location::Query,
                                Some("header") => Location::Header,
                                Some("headers") => Location::Headers,
                                Some("statusCode") => Location::StatusCode,
                                _ => Location::Body,
                            };
                            Member {
                                name: name.clone(),
                                shape: m["shape"].as_str().unwrap_or("").to_string(),
                                location,
                                location_name: m["locationName"]
                                    .as_str()
                                    .unwrap_or(name)
                                    .to_string(),
                                idempotency_token: m["idempotencyToken"].as_bool() == Some(true),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            Shape::Structure {
                members,
                required: s["required"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                union: s["union"].as_bool() == Some(true),
                payload: s["payload"].as_str().map(str::to_string),
            }
        }
        "list" => Shape::List {
            member: s["member"]["shape"].as_str().unwrap_or("").to_string(),
            min: num("min"),
            max: num("max"),
        },
        "map" => Shape::Map {
            key: s["key"]["shape"].as_str().unwrap_or("").to_string(),
            value: s["value"]["shape"].as_str().unwrap_or("").to_string(),
            min: num("min"),
            max: num("max"),
        },
        "string" => Shape::String {
            min: num("min"),
            max: num("max"),
            pattern: s["pattern"].as_str().map(str::to_string),
            enumeration: s["enum"].as_array().map(|e| {
                e.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            }),
        },
        "integer" | "long" => Shape::Integer {
            min: num("min"),
            max: num("max"),
        },
        "float" | "double" => Shape::Float {
            min: num("min"),
            max: num("max"),
        },
        "boolean" => Shape::Boolean,
        "timestamp" => Shape::Timestamp,
        _ => Shape::Blob {
            min: num("min"),
            max: num("max"),
        },
    }
}

fn check_len(n: f64, min: Option<f64>, max: Option<f64>, err: &mut impl FnMut(String)) {
    if let Some(min) = min {
        if n < min {
            err(format!(
                "Member must have length greater than or equal to {min}"
            ));
        }
    }
    if let Some(max) = max {
        if n > max {
            err(format!(
                "Member must have length less than or equal to {max}"
            ));
        }
    }
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_string()
    } else {
        format!("{path}.{member}")
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Removes `null` members recursively: AWS omits absent members rather than sending null.
pub fn strip_nulls(obj: &mut Map<String, Value>) {
    obj.retain(|_, v| !v.is_null());
    for v in obj.values_mut() {
        match v {
            Value::Object(o) => strip_nulls(o),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(o) = item {
                        strip_nulls(o);
                    }
                }
            }
            _ => {}
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padding optional; `None` on any other character.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    static TABLE: OnceLock<[u8; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [255u8; 256];
        for (i, &c) in B64.iter().enumerate() {
            t[c as usize] = i as u8;
        }
        t
    });
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = table[c as usize];
            if v == 255 {
                return None;
            }
            n |= u32::from(v) << (18 - 6 * i);
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]),
            3 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8]),
            2 => out.push((n >> 16) as u8),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lattice() -> ServiceModel {
        ServiceModel::from_json(include_str!("../models/vpc-lattice-2022-11-30.json")).unwrap()
    }

    #[test]
    fn routes_by_method_and_path() {
        let m = lattice();
        let (op, labels) = m
            .route("GET", "/services/svc-0123456789abcdef0", None)
            .unwrap();
        assert_eq!(op.name, "GetService");
        assert_eq!(labels["serviceIdentifier"], "svc-0123456789abcdef0");
        let (op, _) = m.route("POST", "/services", None).unwrap();
        assert_eq!(op.name, "CreateService");
        let (op, labels) = m
            .route(
                "GET",
                "/tags/arn%3Aaws%3Avpc-lattice%3Aus-east-1%3A000000000000%3Aservice%2Fsvc-1",
                None,
            )
            .unwrap();
        assert_eq!(op.name, "ListTagsForResource");
        assert!(labels["resourceArn"].ends_with("service/svc-1"));
        assert!(m.route("GET", "/nothing", None).is_none());
    }

    #[test]
    fn validates_every_field_at_once() {
        let m = lattice();
        let op = m.operation("CreateTargetGroup").unwrap();
        let input = json!({"name": "-bad", "type": "NOPE", "config": {"port": 70000}});
        let err = m.validate_input(op, &input).unwrap_err();
        let fields: Vec<String> = err.extra["fieldList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
        assert!(fields.contains(&"name".to_string()), "{fields:?}");
        assert!(fields.contains(&"type".to_string()), "{fields:?}");
        assert!(fields.contains(&"config.port".to_string()), "{fields:?}");
        let ok = json!({"name": "good-name", "type": "IP", "config": {"port": 80}});
        assert!(m.validate_input(op, &ok).is_ok());
    }

    #[test]
    fn unions_need_exactly_one_member() {
        let m = lattice();
        let err = m
            .validate(
                "RuleAction",
                &json!({"forward": {"targetGroups": []}, "fixedResponse": {"statusCode": 404}}),
            )
            .unwrap_err();
        assert!(
            err.message.contains("exactly one member"),
            "{}",
            err.message
        );
    }

    #[test]
    fn base64_round_trips() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(
                base64_decode(&base64_encode(s.as_bytes())).unwrap(),
                s.as_bytes()
            );
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
    }
}
