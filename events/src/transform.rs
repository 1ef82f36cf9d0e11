//! Target input: `InputPath` and the input transformer (`InputPathsMap` + `InputTemplate`),
//! with the substitution rules AWS applies (recorded against AWS by LocalStack).
//!
//! A placeholder's rendering depends on where it sits in the template:
//! - outside a JSON string, the value's JSON text (a missing value becomes `""`);
//! - inside a JSON string, strings are inserted without quotes (escaped so the string stays
//!   valid), numbers and booleans as text, a missing value as nothing; objects and arrays are
//!   inserted as JSON text with every `"` removed (`{acc_id:1,sf_id:baz}`) when the template is
//!   a plain string template, while in a JSON template they make the output invalid and the
//!   event is not delivered to that target.

use serde_json::Value;

/// Predefined variables, usable without an `InputPathsMap` entry.
const RULE_ARN: &str = "aws.events.rule-arn";
const RULE_NAME: &str = "aws.events.rule-name";
const INGESTION_TIME: &str = "aws.events.event.ingestion-time";
const EVENT: &str = "aws.events.event";
const EVENT_JSON: &str = "aws.events.event.json";

/// A validated input transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTransformer {
    paths: Vec<(String, JsonPath)>,
    template: Vec<Piece>,
    /// The template is a JSON object or array (output must be valid JSON).
    json_template: bool,
}

/// What the transformer needs to know about the rule and the delivery.
#[derive(Debug, Clone, Copy)]
pub struct RuleContext<'a> {
    pub rule_arn: &'a str,
    pub rule_name: &'a str,
    /// When EventBridge received the event, as `YYYY-MM-DDTHH:MM:SSZ` (or with milliseconds).
    pub ingestion_time: &'a str,
}

/// A JSONPath of the simple form AWS accepts here: `$`, `.name`, `['name']`, `[index]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath(Vec<Step>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A placeholder and whether it sits inside a JSON string of the template.
    Var {
        name: String,
        in_string: bool,
    },
}

/// Why a transformer is invalid or could not produce input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The template uses a name that is neither in `InputPathsMap` nor predefined.
    #[error("input template uses undefined placeholder {0:?}")]
    UndefinedPlaceholder(String),
    /// An `InputPathsMap` value or `InputPath` is not a supported JSONPath.
    #[error("invalid json path {0:?}")]
    InvalidPath(String),
    /// The event is not JSON.
    #[error("event is not valid json: {0}")]
    InvalidEvent(String),
    /// A JSON template produced invalid JSON; AWS silently skips the target.
    #[error("input template produced invalid json: {0}")]
    InvalidOutput(String),
}

// === impl TransformError ===

impl TransformError {
    /// The AWS `ValidationException` message for a `PutTargets` call, if this error has one.
    pub fn aws_message(&self, target_id: &str) -> Option<String> {
        match self {
            TransformError::UndefinedPlaceholder(name) => Some(format!(
                "InputTemplate for target {target_id} contains invalid placeholder {name}."
            )),
            _ => None,
        }
    }
}

// === impl InputTransformer ===

impl InputTransformer {
    /// Validates a transformer (what `PutTargets` does).
    pub fn new<'a>(
        input_paths_map: impl IntoIterator<Item = (&'a str, &'a str)>,
        input_template: &str,
    ) -> Result<InputTransformer, TransformError> {
        let paths = input_paths_map
            .into_iter()
            .map(|(k, v)| Ok((k.to_owned(), JsonPath::parse(v)?)))
            .collect::<Result<Vec<_>, TransformError>>()?;
        let template = split_template(input_template);
        for piece in &template {
            if let Piece::Var { name, .. } = piece {
                let predefined = [RULE_ARN, RULE_NAME, INGESTION_TIME, EVENT, EVENT_JSON];
                if !predefined.contains(&name.as_str()) && !paths.iter().any(|(k, _)| k == name) {
                    return Err(TransformError::UndefinedPlaceholder(name.clone()));
                }
            }
        }
        let json_template = matches!(input_template.trim_start().chars().next(), Some('{' | '['));
        Ok(InputTransformer {
            paths,
            template,
            json_template,
        })
    }

    /// The target input for `event` (raw JSON text).
    pub fn apply(&self, event: &str, ctx: &RuleContext<'_>) -> Result<String, TransformError> {
        let root: Value =
            serde_json::from_str(event).map_err(|e| TransformError::InvalidEvent(e.to_string()))?;
        let mut out = String::new();
        for piece in &self.template {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var { name, in_string } => {
                    let value = self.lookup(name, &root, event, ctx);
                    out.push_str(&self.render(value.as_ref(), *in_string));
                }
            }
        }
        if self.json_template {
            serde_json::from_str::<Value>(&out)
                .map_err(|e| TransformError::InvalidOutput(e.to_string()))?;
        }
        Ok(out)
    }

    fn lookup(&self, name: &str, root: &Value, raw: &str, ctx: &RuleContext<'_>) -> Option<Value> {
        match name {
            RULE_ARN => Some(Value::String(ctx.rule_arn.to_owned())),
            RULE_NAME => Some(Value::String(ctx.rule_name.to_owned())),
            INGESTION_TIME => Some(Value::String(ctx.ingestion_time.to_owned())),
            EVENT => Some(envelope(root, ctx)),
            EVENT_JSON => serde_json::from_str(raw).ok(),
            _ => {
                let (_, path) = self.paths.iter().find(|(k, _)| k == name)?;
                path.select(root).cloned()
            }
        }
    }

    fn render(&self, value: Option<&Value>, in_string: bool) -> String {
        match (value, in_string) {
            (None | Some(Value::Null), true) => String::new(),
            (None, false) => "\"\"".to_owned(),
            (Some(v), false) => v.to_string(),
            (Some(Value::String(s)), true) => {
                let quoted = Value::String(s.clone()).to_string();
                quoted[1..quoted.len() - 1].to_owned()
            }
            (Some(v @ (Value::Object(_) | Value::Array(_))), true) => {
                if self.json_template {
                    // Invalid on purpose: AWS does not deliver such an input.
                    v.to_string()
                } else {
                    v.to_string().replace('"', "")
                }
            }
            (Some(v), true) => v.to_string(),
        }
    }
}

/// `<aws.events.event>`: the event without `detail`, in the shape AWS sends (camel-case
/// `detailType`, `time` set to the ingestion time).
fn envelope(root: &Value, ctx: &RuleContext<'_>) -> Value {
    let get = |k: &str| root.get(k).cloned().unwrap_or(Value::Null);
    let mut m = serde_json::Map::new();
    m.insert("id".into(), get("id"));
    m.insert("account".into(), get("account"));
    m.insert("detailType".into(), get("detail-type"));
    m.insert("time".into(), Value::String(ctx.ingestion_time.to_owned()));
    m.insert("source".into(), get("source"));
    m.insert("region".into(), get("region"));
    m.insert("resources".into(), get("resources"));
    m.insert("version".into(), get("version"));
    Value::Object(m)
}

/// Splits a template into text and `<name>` placeholders, noting which sit inside JSON
/// strings. Names are what `InputPathsMap` keys allow (letters, digits, `_`, `-`, `.`).
fn split_template(template: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let name_len = rest[1..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.')))
                .unwrap_or(rest.len() - 1);
            if name_len > 0 && rest[1 + name_len..].starts_with('>') {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Var {
                    name: rest[1..1 + name_len].to_owned(),
                    in_string,
                });
                rest = &rest[name_len + 2..];
                escaped = false;
                continue;
            }
        }
        if in_string && c == '\\' && !escaped {
            escaped = true;
        } else {
            if c == '"' && !escaped {
                in_string = !in_string;
            }
            escaped = false;
        }
        text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

// === impl JsonPath ===

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, TransformError> {
        let bad = || TransformError::InvalidPath(text.to_owned());
        let mut rest = text.strip_prefix('$').ok_or_else(bad)?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(bad());
                }
                steps.push(Step::Key(r[..end].to_owned()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix("['") {
                let end = r.find("']").ok_or_else(bad)?;
                steps.push(Step::Key(r[..end].to_owned()));
                rest = &r[end + 2..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(bad)?;
                steps.push(Step::Index(r[..end].parse().map_err(|_| bad())?));
                rest = &r[end + 1..];
            } else {
                return Err(bad());
            }
        }
        Ok(JsonPath(steps))
    }

    pub fn select<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.0.iter().try_fold(root, |v, step| match step {
            Step::Key(k) => v.get(k.as_str()),
            Step::Index(i) => v.get(*i),
        })
    }
}

/// `InputPath`: the selected part of the event as JSON text, or `None` if the path selects
/// nothing.
pub fn input_path(event: &str, path: &str) -> Result<Option<String>, TransformError> {
    let path = JsonPath::parse(path)?;
    let root: Value =
        serde_json::from_str(event).map_err(|e| TransformError::InvalidEvent(e.to_string()))?;
    Ok(path.select(&root).map(Value::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: RuleContext<'static> = RuleContext {
        rule_arn: "arn:aws:events:us-east-1:111111111111:rule/r",
        rule_name: "r",
        ingestion_time: "2024-01-01T00:00:00Z",
    };

    #[test]
    fn placeholders_inside_and_outside_strings() {
        let t = InputTransformer::new(
            [
                ("id", "$.detail.id"),
                ("p", "$.detail.p"),
                ("none", "$.detail.none"),
            ],
            r#"{"a": <id>, "b": "x/<id>", "c": <p>, "d": <none>}"#,
        )
        .unwrap();
        let out = t
            .apply(r#"{"detail":{"id":"7","p":{"k":1}}}"#, &CTX)
            .unwrap();
        assert_eq!(out, r#"{"a": "7", "b": "x/7", "c": {"k":1}, "d": ""}"#);
    }

    #[test]
    fn undefined_placeholder_is_rejected_with_aws_text() {
        let err = InputTransformer::new([("a", "$.a")], r#""<a> <b>""#).unwrap_err();
        assert_eq!(
            err.aws_message("t1").unwrap(),
            "InputTemplate for target t1 contains invalid placeholder b."
        );
    }
}
