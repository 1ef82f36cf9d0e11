//! Choice rule evaluation for JSONPath states: every comparison operator and its `*Path`
//! variant, `Is*` type tests, and `And`/`Or`/`Not`.
//!
//! A comparison whose operands have the wrong type is false, never an error, as in AWS;
//! only a `Variable` (or `*Path` operand) that resolves to nothing is an error.

use serde_json::Value;

use crate::asl::{Condition, Operand};
use crate::jsonpath::{PathError, Scope};
use crate::time::parse_rfc3339;

/// Evaluates a (non-JSONata) condition.
pub fn evaluate(cond: &Condition, scope: &Scope<'_>) -> Result<bool, PathError> {
    match cond {
        Condition::And(items) => {
            for c in items {
                if !evaluate(c, scope)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Condition::Or(items) => {
            for c in items {
                if evaluate(c, scope)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Condition::Not(inner) => Ok(!evaluate(inner, scope)?),
        Condition::Jsonata(_) => Err(PathError::Syntax {
            path: "Condition".into(),
            reason: "jsonata conditions are evaluated by the jsonata engine".into(),
        }),
        Condition::Compare {
            variable,
            operator,
            operand,
        } => {
            if operator == "IsPresent" {
                let present = variable.eval(scope).is_ok();
                return Ok(Some(present) == literal_bool(operand));
            }
            let value = variable.eval(scope)?;
            let rhs = match operand {
                Operand::Literal(v) => v.clone(),
                Operand::Path(p) => p.eval(scope)?,
            };
            Ok(compare(operator, &value, &rhs))
        }
    }
}

fn literal_bool(o: &Operand) -> Option<bool> {
    match o {
        Operand::Literal(Value::Bool(b)) => Some(*b),
        _ => None,
    }
}

/// Applies `operator` (with or without its `Path` suffix) to `value` and `rhs`.
pub fn compare(operator: &str, value: &Value, rhs: &Value) -> bool {
    use std::cmp::Ordering::*;
    let op = operator.strip_suffix("Path").unwrap_or(operator);
    let ord_ok = |o: std::cmp::Ordering, suffix: &str| match suffix {
        "Equals" => o == Equal,
        "LessThan" => o == Less,
        "GreaterThan" => o == Greater,
        "LessThanEquals" => o != Greater,
        "GreaterThanEquals" => o != Less,
        _ => false,
    };
    if let Some(test) = op.strip_prefix("Is") {
        let Some(want) = rhs.as_bool() else {
            return false;
        };
        let actual = match test {
            "Null" => value.is_null(),
            "Numeric" => value.is_number(),
            "String" => value.is_string(),
            "Boolean" => value.is_boolean(),
            "Timestamp" => value.as_str().and_then(parse_rfc3339).is_some(),
            _ => return false,
        };
        return actual == want;
    }
    if op == "StringMatches" {
        return match (value.as_str(), rhs.as_str()) {
            (Some(s), Some(pattern)) => string_matches(s, pattern),
            _ => false,
        };
    }
    if let Some(suffix) = op.strip_prefix("String") {
        return match (value.as_str(), rhs.as_str()) {
            (Some(a), Some(b)) => ord_ok(a.cmp(b), suffix),
            _ => false,
        };
    }
    if let Some(suffix) = op.strip_prefix("Numeric") {
        return match (value.as_f64(), rhs.as_f64()) {
            (Some(a), Some(b)) if value.is_number() && rhs.is_number() => {
                a.partial_cmp(&b).is_some_and(|o| ord_ok(o, suffix))
            }
            _ => false,
        };
    }
    if op == "BooleanEquals" {
        return match (value.as_bool(), rhs.as_bool()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
    }
    if let Some(suffix) = op.strip_prefix("Timestamp") {
        let a = value.as_str().and_then(parse_rfc3339);
        let b = rhs.as_str().and_then(parse_rfc3339);
        return match (a, b) {
            (Some(a), Some(b)) => ord_ok(a.cmp(&b), suffix),
            _ => false,
        };
    }
    false
}

/// `*` matches any run of characters; `\*` and `\\` are literal.
pub fn string_matches(s: &str, pattern: &str) -> bool {
    // Tokens: Some(c) is a literal char, None is a wildcard.
    let mut toks: Vec<Option<char>> = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => toks.push(Some(it.next().unwrap_or('\\'))),
            '*' => toks.push(None),
            c => toks.push(Some(c)),
        }
    }
    let chars: Vec<char> = s.chars().collect();
    // Classic glob matching with backtracking to the last star.
    let (mut si, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < chars.len() {
        match toks.get(ti) {
            Some(Some(c)) if *c == chars[si] => {
                si += 1;
                ti += 1;
            }
            Some(None) => {
                star = Some((ti, si));
                ti += 1;
            }
            _ => match star {
                Some((st, ss)) => {
                    ti = st + 1;
                    si = ss + 1;
                    star = Some((st, ss + 1));
                }
                None => return false,
            },
        }
    }
    toks[ti..].iter().all(Option::is_none)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::Condition;
    use crate::jsonpath::JsonPath;
    use serde_json::{json, Map};

    fn cmp(variable: &str, operator: &str, operand: Operand) -> Condition {
        Condition::Compare {
            variable: JsonPath::parse(variable).unwrap(),
            operator: operator.into(),
            operand,
        }
    }

    fn eval(c: &Condition, input: Value) -> Result<bool, PathError> {
        let ctx = json!({});
        let vars = Map::new();
        evaluate(
            c,
            &Scope {
                input: &input,
                context: &ctx,
                vars: &vars,
            },
        )
    }

    #[test]
    fn operators() {
        assert!(compare("NumericEquals", &json!(1), &json!(1.0)));
        assert!(!compare("NumericEquals", &json!("1"), &json!(1)));
        assert!(compare("NumericLessThanEquals", &json!(1), &json!(2)));
        assert!(compare("StringGreaterThan", &json!("b"), &json!("a")));
        assert!(compare("BooleanEquals", &json!(false), &json!(false)));
        assert!(!compare("BooleanEquals", &json!(0), &json!(false)));
        assert!(compare(
            "TimestampLessThan",
            &json!("2016-03-14T01:59:00Z"),
            &json!("2016-03-14T02:00:00+00:00")
        ));
        assert!(compare("IsNull", &json!(null), &json!(true)));
        assert!(compare(
            "IsTimestamp",
            &json!("2016-03-14T01:59:00Z"),
            &json!(true)
        ));
        assert!(compare("IsNumeric", &json!("x"), &json!(false)));
    }

    #[test]
    fn string_matches_globs() {
        assert!(string_matches("log-2024.txt", "log-*.txt"));
        assert!(string_matches("a*b", "a\\*b"));
        assert!(!string_matches("axb", "a\\*b"));
        assert!(string_matches("anything", "*"));
        assert!(!string_matches("abc", "a*d"));
    }

    #[test]
    fn combinators_and_presence() {
        let c = Condition::And(vec![
            cmp("$.a", "IsPresent", Operand::Literal(json!(true))),
            Condition::Not(Box::new(cmp(
                "$.a",
                "NumericGreaterThanPath",
                Operand::Path(JsonPath::parse("$.b").unwrap()),
            ))),
        ]);
        assert!(eval(&c, json!({"a": 1, "b": 2})).unwrap());
        assert!(!eval(&c, json!({"b": 2})).unwrap());
        let missing = cmp("$.z", "StringEquals", Operand::Literal(json!("x")));
        assert!(eval(&missing, json!({})).is_err());
    }
}
