//! The `States.*` intrinsic functions of JSONPath payload templates: a parser for the
//! call syntax (`States.Format('{}', $.a, States.Array(1))`) and their evaluation.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::jsonpath::{JsonPath, PathError, Scope};

/// A parsed intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub args: Vec<Arg>,
}

/// One argument of an intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Literal(Value),
    Path(JsonPath),
    Call(Call),
}

/// Why an intrinsic could not be parsed or evaluated.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum IntrinsicError {
    #[error("invalid intrinsic function {text:?}: {reason}")]
    Syntax { text: String, reason: String },
    #[error("unknown intrinsic function {0:?}")]
    Unknown(String),
    /// Evaluation failed; the text becomes the `States.IntrinsicFailure` cause.
    #[error("{0}")]
    Failure(String),
    #[error(transparent)]
    Path(#[from] PathError),
}

const FUNCTIONS: &[&str] = &[
    "States.Format",
    "States.StringToJson",
    "States.JsonToString",
    "States.Array",
    "States.ArrayPartition",
    "States.ArrayContains",
    "States.ArrayRange",
    "States.ArrayGetItem",
    "States.ArrayLength",
    "States.ArrayUnique",
    "States.Base64Encode",
    "States.Base64Decode",
    "States.Hash",
    "States.JsonMerge",
    "States.MathRandom",
    "States.MathAdd",
    "States.StringSplit",
    "States.UUID",
];

/// Stand-ins for `\{` and `\}` inside string literals (private-use code points).
const OPEN_BRACE: char = '\u{E000}';
const CLOSE_BRACE: char = '\u{E001}';

fn unmark(s: &str) -> String {
    s.replace(OPEN_BRACE, "{").replace(CLOSE_BRACE, "}")
}

/// True when a `.$` value is an intrinsic call rather than a path.
pub fn is_intrinsic(text: &str) -> bool {
    text.starts_with("States.")
}

// === impl Call ===

impl Call {
    /// Parses `States.Name(args…)`; rejects unknown names.
    pub fn parse(text: &str) -> Result<Call, IntrinsicError> {
        let mut p = Parser {
            text,
            chars: text.chars().collect(),
            pos: 0,
        };
        p.ws();
        let call = p.call()?;
        p.ws();
        if p.pos != p.chars.len() {
            return Err(p.err("unexpected text after the call"));
        }
        Ok(call)
    }

    /// Evaluates the call, resolving path arguments in `scope`.
    pub fn eval(&self, scope: &Scope<'_>) -> Result<Value, IntrinsicError> {
        let mut args = Vec::with_capacity(self.args.len());
        for (i, a) in self.args.iter().enumerate() {
            args.push(match a {
                // Format's template keeps its escape marks until placeholders are filled.
                Arg::Literal(Value::String(s)) if !(self.name == "States.Format" && i == 0) => {
                    Value::String(unmark(s))
                }
                Arg::Literal(v) => v.clone(),
                Arg::Path(p) => p.eval(scope)?,
                Arg::Call(c) => c.eval(scope)?,
            });
        }
        apply(&self.name, args)
    }
}

fn fail(msg: impl Into<String>) -> IntrinsicError {
    IntrinsicError::Failure(msg.into())
}

fn arity(
    name: &str,
    args: &[Value],
    n: std::ops::RangeInclusive<usize>,
) -> Result<(), IntrinsicError> {
    if n.contains(&args.len()) {
        Ok(())
    } else {
        Err(fail(format!(
            "The function '{name}' expects {} argument(s) but received {}.",
            if n.start() == n.end() {
                n.start().to_string()
            } else {
                format!("{} to {}", n.start(), n.end())
            },
            args.len()
        )))
    }
}

fn as_str<'a>(name: &str, v: &'a Value) -> Result<&'a str, IntrinsicError> {
    v.as_str().ok_or_else(|| {
        fail(format!(
            "The function '{name}' expects a string argument but received {v}."
        ))
    })
}

fn as_array<'a>(name: &str, v: &'a Value) -> Result<&'a Vec<Value>, IntrinsicError> {
    v.as_array().ok_or_else(|| {
        fail(format!(
            "The function '{name}' expects an array argument but received {v}."
        ))
    })
}

fn as_int(name: &str, v: &Value) -> Result<i64, IntrinsicError> {
    match v {
        Value::Number(n) if n.is_i64() => Ok(n.as_i64().expect("checked")),
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            Ok(n.as_f64().expect("checked") as i64)
        }
        _ => Err(fail(format!(
            "The function '{name}' expects an integer argument but received {v}."
        ))),
    }
}

/// Applies the intrinsic `name` (`States.ArrayPartition` …) to evaluated arguments; the
/// JSONata functions Step Functions adds share these implementations.
pub fn apply_by_name(name: &str, args: Vec<Value>) -> Result<Value, IntrinsicError> {
    apply(name, args)
}

fn apply(name: &str, args: Vec<Value>) -> Result<Value, IntrinsicError> {
    match name {
        "States.Format" => {
            if args.is_empty() {
                return Err(fail(
                    "The function 'States.Format' expects at least 1 argument.",
                ));
            }
            let template = as_str(name, &args[0])?;
            let mut out = String::new();
            let mut rest = args[1..].iter();
            let mut chars = template.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '{' && chars.peek() == Some(&'}') {
                    chars.next();
                    let v = rest.next().ok_or_else(|| {
                        fail("The number of arguments does not match the number of placeholders in the template.")
                    })?;
                    java_text(v, &mut out);
                } else {
                    out.push(c);
                }
            }
            if rest.next().is_some() {
                return Err(fail(
                    "The number of arguments does not match the number of placeholders in the template.",
                ));
            }
            Ok(Value::String(unmark(&out)))
        }
        "States.StringToJson" => {
            arity(name, &args, 1..=1)?;
            let s = as_str(name, &args[0])?;
            if s.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str(s).map_err(|e| fail(format!("Invalid JSON string {s:?}: {e}")))
        }
        "States.JsonToString" => {
            arity(name, &args, 1..=1)?;
            Ok(Value::String(args[0].to_string()))
        }
        "States.Array" => Ok(Value::Array(args)),
        "States.ArrayPartition" => {
            arity(name, &args, 2..=2)?;
            let items = as_array(name, &args[0])?;
            let size = as_int(name, &args[1])?;
            if size <= 0 {
                return Err(fail(format!(
                    "The function '{name}' expects a positive chunk size but received {size}."
                )));
            }
            Ok(Value::Array(
                items
                    .chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        "States.ArrayContains" => {
            arity(name, &args, 2..=2)?;
            let items = as_array(name, &args[0])?;
            Ok(Value::Bool(items.iter().any(|v| json_eq(v, &args[1]))))
        }
        "States.ArrayRange" => {
            arity(name, &args, 3..=3)?;
            let (start, end, step) = (
                as_int(name, &args[0])?,
                as_int(name, &args[1])?,
                as_int(name, &args[2])?,
            );
            if step == 0 {
                return Err(fail("The step of 'States.ArrayRange' cannot be 0."));
            }
            let mut out = Vec::new();
            let mut i = start;
            while (step > 0 && i <= end) || (step < 0 && i >= end) {
                out.push(Value::from(i));
                if out.len() > 1000 {
                    return Err(fail(
                        "The function 'States.ArrayRange' cannot produce more than 1000 items.",
                    ));
                }
                i += step;
            }
            Ok(Value::Array(out))
        }
        "States.ArrayGetItem" => {
            arity(name, &args, 2..=2)?;
            let items = as_array(name, &args[0])?;
            let i = as_int(name, &args[1])?;
            usize::try_from(i)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| {
                    fail(format!(
                        "The index {i} is out of bounds for an array of length {}.",
                        items.len()
                    ))
                })
        }
        "States.ArrayLength" => {
            arity(name, &args, 1..=1)?;
            Ok(Value::from(as_array(name, &args[0])?.len()))
        }
        "States.ArrayUnique" => {
            arity(name, &args, 1..=1)?;
            let mut out: Vec<Value> = Vec::new();
            for v in as_array(name, &args[0])? {
                if !out.iter().any(|o| json_eq(o, v)) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        "States.Base64Encode" => {
            arity(name, &args, 1..=1)?;
            let s = as_str(name, &args[0])?;
            if s.len() > 10_000 {
                return Err(fail(
                    "The input to 'States.Base64Encode' is longer than 10000 characters.",
                ));
            }
            Ok(Value::String(base64_encode(s.as_bytes())))
        }
        "States.Base64Decode" => {
            arity(name, &args, 1..=1)?;
            let s = as_str(name, &args[0])?;
            let bytes =
                base64_decode(s).ok_or_else(|| fail(format!("Invalid base64 string {s:?}.")))?;
            String::from_utf8(bytes).map(Value::String).map_err(|_| {
                fail(format!(
                    "The decoded base64 string {s:?} is not valid UTF-8."
                ))
            })
        }
        "States.Hash" => {
            arity(name, &args, 2..=2)?;
            let data = match &args[0] {
                Value::String(s) => s.clone(),
                Value::Null => return Err(fail("The input data of 'States.Hash' cannot be null.")),
                other => other.to_string(),
            };
            let algo = as_str(name, &args[1])?;
            hash(data.as_bytes(), algo).map(Value::String)
        }
        "States.JsonMerge" => {
            arity(name, &args, 3..=3)?;
            if args[2] != Value::Bool(false) {
                return Err(fail("States.JsonMerge only supports a shallow merge: its third argument must be false."));
            }
            let (Value::Object(a), Value::Object(b)) = (&args[0], &args[1]) else {
                return Err(fail(
                    "The function 'States.JsonMerge' expects two JSON objects.",
                ));
            };
            let mut out: Map<String, Value> = a.clone();
            for (k, v) in b {
                out.insert(k.clone(), v.clone());
            }
            Ok(Value::Object(out))
        }
        "States.MathRandom" => {
            arity(name, &args, 2..=3)?;
            let start = rounded_int(name, &args[0])?;
            let end = rounded_int(name, &args[1])?;
            if end <= start {
                return Err(fail(format!(
                    "The end {end} of 'States.MathRandom' must be greater than its start {start}."
                )));
            }
            let mut rng = match args.get(2) {
                Some(seed) => fastrand::Rng::with_seed(as_int(name, seed)? as u64),
                None => fastrand::Rng::new(),
            };
            Ok(Value::from(rng.i64(start..end)))
        }
        "States.MathAdd" => {
            arity(name, &args, 2..=2)?;
            // AWS rounds fractional operands (1.5 -> 2, -1.5 -> -1) instead of failing.
            let a = rounded_int(name, &args[0])?;
            let b = rounded_int(name, &args[1])?;
            a.checked_add(b)
                .map(Value::from)
                .ok_or_else(|| fail("Integer overflow in 'States.MathAdd'."))
        }
        "States.StringSplit" => {
            arity(name, &args, 2..=2)?;
            let s = as_str(name, &args[0])?;
            let delims: Vec<char> = as_str(name, &args[1])?.chars().collect();
            // Every character of the second argument is a delimiter, and empty pieces are
            // dropped, as AWS does.
            Ok(Value::Array(
                s.split(|c| delims.contains(&c))
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            ))
        }
        "States.UUID" => {
            arity(name, &args, 0..=0)?;
            Ok(Value::String(uuid_v4()))
        }
        other => Err(IntrinsicError::Unknown(other.to_string())),
    }
}

/// Renders a Format argument as AWS does: strings bare, objects and arrays the way
/// Java's `Map.toString`/`List.toString` print them (`{a=1, b=[x]}`).
fn java_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                java_text(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                java_text(x, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Java's `Math.round`: halves round towards positive infinity.
fn rounded_int(name: &str, v: &Value) -> Result<i64, IntrinsicError> {
    match v.as_f64() {
        Some(f) if v.is_number() => Ok((f + 0.5).floor() as i64),
        _ => Err(fail(format!(
            "The function '{name}' expects a number argument but received {v}."
        ))),
    }
}

/// JSON equality where `1` equals `1.0`.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A random version 4 UUID.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn hash(data: &[u8], algo: &str) -> Result<String, IntrinsicError> {
    use sha2::Digest;
    let bytes: Vec<u8> = match algo {
        "MD5" => md5::Md5::digest(data).to_vec(),
        "SHA-1" => sha1::Sha1::digest(data).to_vec(),
        "SHA-256" => sha2::Sha256::digest(data).to_vec(),
        "SHA-384" => sha2::Sha384::digest(data).to_vec(),
        "SHA-512" => sha2::Sha512::digest(data).to_vec(),
        other => {
            return Err(fail(format!(
                "The hash algorithm {other:?} is not supported; use MD5, SHA-1, SHA-256, SHA-384 or SHA-512."
            )))
        }
    };
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Encoding is the standard alphabet with padding, as core's; decoding stays here because
// States.Base64Decode must reject what core's lenient decoder accepts (whitespace).
use trellis_core::model::base64_encode;

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

// === impl Parser ===

struct Parser<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, reason: impl Into<String>) -> IntrinsicError {
        IntrinsicError::Syntax {
            text: self.text.to_string(),
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn call(&mut self) -> Result<Call, IntrinsicError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.')
        {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        if !FUNCTIONS.contains(&name.as_str()) {
            return Err(IntrinsicError::Unknown(name));
        }
        self.ws();
        if self.peek() != Some('(') {
            return Err(self.err("expected '(' after the function name"));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.ws();
        if self.peek() == Some(')') {
            self.pos += 1;
            return Ok(Call { name, args });
        }
        loop {
            self.ws();
            args.push(self.arg()?);
            self.ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(Call { name, args });
                }
                _ => return Err(self.err("expected ',' or ')'")),
            }
        }
    }

    fn arg(&mut self) -> Result<Arg, IntrinsicError> {
        match self.peek() {
            Some('\'') => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    match self.peek() {
                        None => return Err(self.err("unterminated string literal")),
                        // Only \' \{ \} and \\ are escapes in intrinsic strings; AWS
                        // rejects any other (e.g. \").
                        Some('\\') => {
                            self.pos += 1;
                            match self.peek() {
                                Some(c @ ('\'' | '\\')) => {
                                    s.push(c);
                                    self.pos += 1;
                                }
                                // Escaped braces are literal text, never a Format
                                // placeholder; mark them until Format has run.
                                Some('{') => {
                                    s.push(OPEN_BRACE);
                                    self.pos += 1;
                                }
                                Some('}') => {
                                    s.push(CLOSE_BRACE);
                                    self.pos += 1;
                                }
                                other => {
                                    return Err(self.err(format!(
                                        "invalid escape sequence \\{}",
                                        other.map(String::from).unwrap_or_default()
                                    )))
                                }
                            }
                        }
                        Some('\'') => {
                            self.pos += 1;
                            return Ok(Arg::Literal(Value::String(s)));
                        }
                        Some(c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some('$') => {
                // A path runs until the ',' or ')' that ends the argument, outside brackets
                // and quotes.
                let start = self.pos;
                let mut depth = 0i32;
                let mut quote: Option<char> = None;
                while let Some(c) = self.peek() {
                    match (quote, c) {
                        (Some(q), c) if c == q => quote = None,
                        (Some(_), _) => {}
                        (None, '\'' | '"') => quote = Some(c),
                        (None, '[' | '(') => depth += 1,
                        (None, ']') => depth -= 1,
                        (None, ')') if depth > 0 => depth -= 1,
                        (None, ',' | ')') if depth == 0 => break,
                        _ => {}
                    }
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                Ok(Arg::Path(JsonPath::parse(text.trim())?))
            }
            Some(c) if c.is_ascii_digit() || c == '-' => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
                {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                let n: Number = serde_json::from_str(&text)
                    .map_err(|_| self.err(format!("bad number {text:?}")))?;
                Ok(Arg::Literal(Value::Number(n)))
            }
            Some('S') => Ok(Arg::Call(self.call()?)),
            _ => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.as_str() {
                    "true" => Ok(Arg::Literal(Value::Bool(true))),
                    "false" => Ok(Arg::Literal(Value::Bool(false))),
                    "null" => Ok(Arg::Literal(Value::Null)),
                    _ => Err(self.err(format!("unexpected argument {word:?}"))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(text: &str, input: Value) -> Result<Value, IntrinsicError> {
        let ctx = json!({});
        let vars = Map::new();
        Call::parse(text)?.eval(&Scope {
            input: &input,
            context: &ctx,
            vars: &vars,
        })
    }

    #[test]
    fn format_and_json() {
        assert_eq!(
            run(
                "States.Format('Hi {} \\{x\\} {}', $.a, $.b)",
                json!({"a": "x", "b": [1]})
            )
            .unwrap(),
            json!("Hi x {x} [1]")
        );
        assert_eq!(
            run("States.Format('\\{\\}{}', 'v')", json!({})).unwrap(),
            json!("{}v")
        );
        assert_eq!(
            run("States.StringToJson($.s)", json!({"s": "{\"a\":1}"})).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(
            run("States.JsonToString($)", json!({"a": [1, 2]})).unwrap(),
            json!("{\"a\":[1,2]}")
        );
    }

    #[test]
    fn arrays() {
        assert_eq!(
            run("States.Array(1, 'a', true, null)", json!({})).unwrap(),
            json!([1, "a", true, null])
        );
        assert_eq!(
            run("States.ArrayPartition($, 2)", json!([1, 2, 3])).unwrap(),
            json!([[1, 2], [3]])
        );
        assert_eq!(
            run("States.ArrayContains($, 2)", json!([1, 2])).unwrap(),
            json!(true)
        );
        assert_eq!(
            run("States.ArrayRange(1, 9, 2)", json!({})).unwrap(),
            json!([1, 3, 5, 7, 9])
        );
        assert_eq!(
            run("States.ArrayGetItem($, 1)", json!([1, 2])).unwrap(),
            json!(2)
        );
        assert_eq!(
            run("States.ArrayLength($)", json!([1, 2])).unwrap(),
            json!(2)
        );
        assert_eq!(
            run("States.ArrayUnique($)", json!([1, 1, "a", "a"])).unwrap(),
            json!([1, "a"])
        );
        assert!(run("States.ArrayRange(0, 2000, 1)", json!({})).is_err());
    }

    #[test]
    fn encodings_and_hashes() {
        assert_eq!(
            run("States.Base64Encode('Data to encode')", json!({})).unwrap(),
            json!("RGF0YSB0byBlbmNvZGU=")
        );
        assert_eq!(
            run("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", json!({})).unwrap(),
            json!("Data to encode")
        );
        assert_eq!(
            run("States.Hash('input data', 'SHA-1')", json!({})).unwrap(),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
        );
        assert_eq!(
            run("States.Hash('', 'MD5')", json!({})).unwrap(),
            json!("d41d8cd98f00b204e9800998ecf8427e")
        );
    }

    #[test]
    fn math_strings_uuid() {
        assert_eq!(
            run("States.MathAdd(111, -1)", json!({})).unwrap(),
            json!(110)
        );
        assert_eq!(
            run("States.MathAdd(1.49, 1.5)", json!({})).unwrap(),
            json!(3)
        );
        assert_eq!(
            run("States.MathAdd(-1.5, -1.51)", json!({})).unwrap(),
            json!(-3)
        );
        assert_eq!(
            run("States.Format('{}', $)", json!({"a": 1, "b": [], "c": "x"})).unwrap(),
            json!("{a=1, b=[], c=x}")
        );
        let r = run("States.MathRandom(1, 10)", json!({}))
            .unwrap()
            .as_i64()
            .unwrap();
        assert!((1..10).contains(&r));
        assert_eq!(
            run("States.MathRandom(1, 999, 7)", json!({})).unwrap(),
            run("States.MathRandom(1, 999, 7)", json!({})).unwrap()
        );
        assert_eq!(
            run("States.StringSplit('1,2;3', ',;')", json!({})).unwrap(),
            json!(["1", "2", "3"])
        );
        assert_eq!(
            run("States.UUID()", json!({}))
                .unwrap()
                .as_str()
                .unwrap()
                .len(),
            36
        );
        assert_eq!(
            run(
                "States.JsonMerge($.a, $.b, false)",
                json!({"a": {"x": 1, "y": 1}, "b": {"y": 2}})
            )
            .unwrap(),
            json!({"x": 1, "y": 2})
        );
    }

    #[test]
    fn nested_and_errors() {
        assert_eq!(
            run(
                "States.ArrayLength(States.Array($.a, States.Array()))",
                json!({"a": 1})
            )
            .unwrap(),
            json!(2)
        );
        assert!(matches!(
            Call::parse("States.Nope()"),
            Err(IntrinsicError::Unknown(_))
        ));
        assert!(matches!(
            run("States.ArrayLength('x')", json!({})),
            Err(IntrinsicError::Failure(_))
        ));
    }
}
