//! Payload templates (Parameters, ItemSelector, ResultSelector, Assign, Fail paths): a
//! JSON value whose keys ending in `.$` take their value from a path or an intrinsic call.

use serde_json::{Map, Value};

use crate::intrinsics::{is_intrinsic, Call, IntrinsicError};
use crate::jsonpath::{JsonPath, PathError, Scope};

/// A template evaluation failure, with AWS's error name and message (without the
/// "An error occurred while executing the state …" prefix the interpreter adds).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    pub error: &'static str,
    pub message: String,
}

impl EvalError {
    pub fn runtime(message: impl Into<String>) -> Self {
        EvalError {
            error: "States.Runtime",
            message: message.into(),
        }
    }
}

/// Evaluates a payload template.
pub fn evaluate(template: &Value, scope: &Scope<'_>) -> Result<Value, EvalError> {
    match template {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match k.strip_suffix(".$") {
                    Some(key) => {
                        let Some(expr) = v.as_str() else {
                            return Err(EvalError::runtime(format!(
                                "The value for the field '{k}' must be a STRING that contains a JSONPath but was {v}"
                            )));
                        };
                        out.insert(key.to_string(), expression(expr, k, scope)?);
                    }
                    None => {
                        out.insert(k.clone(), evaluate(v, scope)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|v| evaluate(v, scope))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// Evaluates one `.$` value (a path or an intrinsic call) for the field `field`.
pub fn expression(expr: &str, field: &str, scope: &Scope<'_>) -> Result<Value, EvalError> {
    if is_intrinsic(expr) {
        return Call::parse(expr)
            .and_then(|c| c.eval(scope))
            .map_err(|e| intrinsic_error(e, field, expr, scope));
    }
    let path = JsonPath::parse(expr).map_err(|e| EvalError::runtime(e.to_string()))?;
    path.eval(scope)
        .map_err(|e| path_error(&path, field, &e, scope))
}

fn path_error(path: &JsonPath, field: &str, e: &PathError, scope: &Scope<'_>) -> EvalError {
    match e {
        PathError::NoResults(_) | PathError::MissingProperty(_) => {
            let input = match path.root() {
                crate::jsonpath::Root::Context => scope.context,
                _ => scope.input,
            };
            EvalError::runtime(format!(
                "The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{input}'"
            ))
        }
        PathError::UndefinedVariable(name) => EvalError::runtime(format!(
            "The variable '{name}' referenced by the JSONPath '{path}' specified for the field '{field}' is not defined"
        )),
        other => EvalError::runtime(other.to_string()),
    }
}

fn intrinsic_error(e: IntrinsicError, field: &str, expr: &str, scope: &Scope<'_>) -> EvalError {
    match e {
        IntrinsicError::Path(PathError::NoResults(p)) | IntrinsicError::Path(PathError::MissingProperty(p)) => {
            EvalError::runtime(format!(
                "The JSONPath '{p}' specified for the field '{field}' could not be found in the input '{}'",
                scope.input
            ))
        }
        IntrinsicError::Failure(msg) => EvalError {
            error: "States.IntrinsicFailure",
            message: msg,
        },
        other => EvalError {
            error: "States.IntrinsicFailure",
            message: format!("The intrinsic function '{expr}' failed: {other}"),
        },
    }
}

/// Checks that every `.$` value of a template parses; returns the offending messages.
pub fn check(template: &Value, out: &mut Vec<String>) {
    match template {
        Value::Object(m) => {
            for (k, v) in m {
                if k.ends_with(".$") {
                    match v.as_str() {
                        Some(s) if is_intrinsic(s) => {
                            if let Err(e) = Call::parse(s) {
                                out.push(format!("The value for the field '{k}' must be a valid JSONPath or a valid intrinsic function call ({e})"));
                            }
                        }
                        Some(s) => {
                            if JsonPath::parse(s).is_err() {
                                out.push(format!(
                                    "The value for the field '{k}' must be a valid JSONPath or a valid intrinsic function call"
                                ));
                            }
                        }
                        None => out.push(format!(
                            "The value for the field '{k}' must be a STRING that contains a JSONPath but was an {}",
                            type_name(v)
                        )),
                    }
                } else {
                    check(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| check(v, out)),
        _ => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_nested_templates() {
        let input = json!({"a": 1, "s": "x"});
        let ctx = json!({"State": {"Name": "S"}});
        let vars = Map::new();
        let scope = Scope {
            input: &input,
            context: &ctx,
            vars: &vars,
        };
        let t = json!({"x.$": "$.a", "n": {"y.$": "$$.State.Name", "l": [{"z.$": "States.Format('{}!', $.s)"}]}, "k": 2});
        assert_eq!(
            evaluate(&t, &scope).unwrap(),
            json!({"x": 1, "n": {"y": "S", "l": [{"z": "x!"}]}, "k": 2})
        );
        let e = evaluate(&json!({"v.$": "$.nope"}), &scope).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert!(e.message.contains("'$.nope' specified for the field 'v.$'"));
    }
}
