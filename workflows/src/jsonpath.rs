//! AWS's JSONPath dialect: `$` (state input), `$$` (context object) and `$name`
//! (workflow variables) roots, dot and bracket children, indexes, wildcards, slices,
//! unions, deep scan, `length()` and `[?(@.x op literal)]` filters.
//!
//! A *definite* path (only names and single indexes) yields one value or fails with the
//! Jayway-style texts AWS reports ("No results for path: $['a']", "Missing property in
//! path $['a']"); an indefinite one yields an array of every match, possibly empty.

use serde_json::{Map, Value};
use thiserror::Error;

/// Where a path starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    /// `$`: the value being queried (state input, or the effective input).
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: a workflow variable.
    Variable(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Child(String),
    Index(i64),
    Wildcard,
    Union(Vec<Segment>),
    Slice(Option<i64>, Option<i64>, i64),
    Descendant(Box<Segment>),
    Filter(Filter),
    Length,
    /// `[(@.length-N)]`: an index counted from the end.
    FromEnd(i64),
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Exists(Vec<Segment>),
    Compare(Operand, CmpOp, Operand),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Current(Vec<Segment>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed JSONPath expression.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    text: String,
    root: Root,
    segments: Vec<Segment>,
}

/// Why a path could not be parsed or evaluated.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum PathError {
    #[error("invalid jsonpath {path:?}: {reason}")]
    Syntax { path: String, reason: String },
    /// The last step of a definite path matched nothing.
    #[error("No results for path: {0}")]
    NoResults(String),
    /// An intermediate step of a definite path matched nothing.
    #[error("Missing property in path {0}")]
    MissingProperty(String),
    #[error("undefined variable {0:?}")]
    UndefinedVariable(String),
    #[error("cannot set {path:?}: {reason}")]
    NotSettable { path: String, reason: String },
}

/// The three roots a path can read from.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub input: &'a Value,
    pub context: &'a Value,
    pub vars: &'a Map<String, Value>,
}

// === impl JsonPath ===

impl JsonPath {
    /// Parses `text`, which must start with `$`.
    pub fn parse(text: &str) -> Result<JsonPath, PathError> {
        let mut p = Parser {
            src: text,
            chars: text.char_indices().collect(),
            pos: 0,
        };
        p.path()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// True when the path selects at most one node (names and indexes only).
    pub fn is_definite(&self) -> bool {
        self.segments.iter().all(|s| {
            matches!(
                s,
                Segment::Child(_) | Segment::Index(_) | Segment::Length | Segment::FromEnd(_)
            )
        })
    }

    /// True when the path has no segments, e.g. `$` or `$$`.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// Evaluates against a scope: a definite path yields its value, an indefinite one an array.
    pub fn eval(&self, scope: &Scope<'_>) -> Result<Value, PathError> {
        let root = match &self.root {
            Root::Input => scope.input,
            Root::Context => scope.context,
            Root::Variable(name) => scope
                .vars
                .get(name)
                .ok_or_else(|| PathError::UndefinedVariable(name.clone()))?,
        };
        self.eval_on(root)
    }

    /// Evaluates with `value` as the root regardless of the path's root kind.
    pub fn eval_on(&self, value: &Value) -> Result<Value, PathError> {
        if self.is_definite() {
            definite(value, &self.segments)
        } else {
            let mut out = Vec::new();
            select(value, &self.segments, &mut out);
            Ok(Value::Array(out))
        }
    }

    /// Writes `value` at this (definite, name/index only) path inside `target`, creating
    /// objects on the way, as ResultPath does.
    pub fn set(&self, target: &mut Value, value: Value) -> Result<(), PathError> {
        let mut cur = target;
        let mut shown = String::from("$");
        for seg in &self.segments {
            match seg {
                Segment::Child(name) => {
                    if cur.is_null() {
                        *cur = Value::Object(Map::new());
                    }
                    let Value::Object(map) = cur else {
                        return Err(PathError::NotSettable {
                            path: self.text.clone(),
                            reason: format!("{shown} is not an object"),
                        });
                    };
                    shown.push_str(&format!("['{name}']"));
                    cur = map.entry(name.clone()).or_insert(Value::Null);
                }
                Segment::Index(i) => {
                    let Value::Array(items) = cur else {
                        return Err(PathError::NotSettable {
                            path: self.text.clone(),
                            reason: format!("{shown} is not an array"),
                        });
                    };
                    let len = items.len() as i64;
                    let idx = if *i < 0 { len + i } else { *i };
                    if idx < 0 || idx >= len {
                        return Err(PathError::NotSettable {
                            path: self.text.clone(),
                            reason: format!("index {i} out of bounds"),
                        });
                    }
                    cur = &mut items[idx as usize];
                }
                _ => {
                    return Err(PathError::NotSettable {
                        path: self.text.clone(),
                        reason: "only names and indexes can be assigned".into(),
                    })
                }
            }
        }
        *cur = value;
        Ok(())
    }
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn definite(root: &Value, segments: &[Segment]) -> Result<Value, PathError> {
    let mut cur = root;
    let mut shown = String::from("$");
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        let next = match seg {
            Segment::Child(name) => {
                shown.push_str(&format!("['{name}']"));
                cur.as_object().and_then(|m| m.get(name))
            }
            Segment::Index(idx) => {
                shown.push_str(&format!("[{idx}]"));
                cur.as_array().and_then(|a| index(a, *idx))
            }
            Segment::FromEnd(n) => {
                shown.push_str(&format!("[(@.length-{n})]"));
                cur.as_array().and_then(|a| index(a, -n).filter(|_| *n > 0))
            }
            Segment::Length => {
                return match cur {
                    Value::Array(a) => Ok(Value::from(a.len())),
                    Value::Object(m) => Ok(Value::from(m.len())),
                    Value::String(s) => Ok(Value::from(s.chars().count())),
                    _ => Err(PathError::NoResults(format!("{shown}.length()"))),
                }
            }
            _ => unreachable!("definite paths hold only names and indexes"),
        };
        match next {
            Some(v) => cur = v,
            None if i == last => return Err(PathError::NoResults(shown)),
            None => return Err(PathError::MissingProperty(shown)),
        }
    }
    Ok(cur.clone())
}

fn index(items: &[Value], idx: i64) -> Option<&Value> {
    let len = items.len() as i64;
    let i = if idx < 0 { len + idx } else { idx };
    if i < 0 || i >= len {
        None
    } else {
        items.get(i as usize)
    }
}

fn select(cur: &Value, segments: &[Segment], out: &mut Vec<Value>) {
    let Some((seg, rest)) = segments.split_first() else {
        out.push(cur.clone());
        return;
    };
    match seg {
        Segment::Descendant(inner) => {
            let mut here = Vec::new();
            step(cur, inner, &mut here);
            for v in here {
                select(v, rest, out);
            }
            match cur {
                Value::Object(m) => m.values().for_each(|v| select(v, segments, out)),
                Value::Array(a) => a.iter().for_each(|v| select(v, segments, out)),
                _ => {}
            }
        }
        Segment::Length => {
            let len = match cur {
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(s) => s.chars().count(),
                _ => return,
            };
            select(&Value::from(len), rest, out);
        }
        _ => {
            let mut here = Vec::new();
            step(cur, seg, &mut here);
            for v in here {
                select(v, rest, out);
            }
        }
    }
}

fn step<'a>(cur: &'a Value, seg: &Segment, out: &mut Vec<&'a Value>) {
    match seg {
        Segment::Child(name) => {
            if let Some(v) = cur.as_object().and_then(|m| m.get(name)) {
                out.push(v);
            }
        }
        Segment::Index(i) => {
            if let Some(v) = cur.as_array().and_then(|a| index(a, *i)) {
                out.push(v);
            }
        }
        Segment::Wildcard => match cur {
            Value::Object(m) => out.extend(m.values()),
            Value::Array(a) => out.extend(a.iter()),
            _ => {}
        },
        Segment::Union(items) => {
            for s in items {
                step(cur, s, out);
            }
        }
        Segment::Slice(start, end, stepn) => {
            if let Value::Array(a) = cur {
                let len = a.len() as i64;
                let norm = |v: i64| if v < 0 { (len + v).max(0) } else { v.min(len) };
                if *stepn > 0 {
                    let s = start.map(norm).unwrap_or(0);
                    let e = end.map(norm).unwrap_or(len);
                    let mut i = s;
                    while i < e {
                        out.push(&a[i as usize]);
                        i += stepn;
                    }
                } else if *stepn < 0 {
                    let s = start.map(norm).unwrap_or(len - 1).min(len - 1);
                    let e = end.map(norm).unwrap_or(-1);
                    let mut i = s;
                    while i > e && i >= 0 {
                        out.push(&a[i as usize]);
                        i += stepn;
                    }
                }
            }
        }
        Segment::Filter(f) => {
            let candidates: Vec<&Value> = match cur {
                Value::Array(a) => a.iter().collect(),
                Value::Object(m) => m.values().collect(),
                _ => Vec::new(),
            };
            out.extend(candidates.into_iter().filter(|v| filter_matches(f, v)));
        }
        Segment::FromEnd(n) => {
            if let Some(v) = cur.as_array().and_then(|a| index(a, -n).filter(|_| *n > 0)) {
                out.push(v);
            }
        }
        Segment::Descendant(_) | Segment::Length => {}
    }
}

fn filter_matches(f: &Filter, item: &Value) -> bool {
    match f {
        Filter::Exists(segs) => {
            let mut out = Vec::new();
            select(item, segs, &mut out);
            !out.is_empty()
        }
        Filter::And(a, b) => filter_matches(a, item) && filter_matches(b, item),
        Filter::Or(a, b) => filter_matches(a, item) || filter_matches(b, item),
        Filter::Not(a) => !filter_matches(a, item),
        Filter::Compare(l, op, r) => {
            let (Some(l), Some(r)) = (operand(l, item), operand(r, item)) else {
                return false;
            };
            compare(&l, *op, &r)
        }
    }
}

fn operand(o: &Operand, item: &Value) -> Option<Value> {
    match o {
        Operand::Literal(v) => Some(v.clone()),
        Operand::Current(segs) => {
            let mut out = Vec::new();
            select(item, segs, &mut out);
            out.into_iter().next()
        }
    }
}

fn compare(l: &Value, op: CmpOp, r: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (l, r) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => {
            return match op {
                CmpOp::Eq => l == r,
                CmpOp::Ne => l != r,
                _ => false,
            }
        }
    };
    let Some(ord) = ord else { return false };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

// === impl Parser ===

struct Parser<'a> {
    src: &'a str,
    chars: Vec<(usize, char)>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, reason: impl Into<String>) -> PathError {
        PathError::Syntax {
            path: self.src.to_string(),
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|c| c.1)
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).map(|c| c.1)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn path(&mut self) -> Result<JsonPath, PathError> {
        let text = self.src.trim().to_string();
        self.skip_ws();
        if !self.eat('$') {
            return Err(self.err("a path must start with '$'"));
        }
        let root = if self.eat('$') {
            Root::Context
        } else if self.peek().is_some_and(is_name_char) {
            Root::Variable(self.name())
        } else {
            Root::Input
        };
        let segments = self.segments(false)?;
        self.skip_ws();
        if self.pos != self.chars.len() {
            return Err(self.err(format!("unexpected character at {}", self.pos)));
        }
        Ok(JsonPath {
            text,
            root,
            segments,
        })
    }

    fn name(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek().filter(|c| is_name_char(*c)) {
            s.push(c);
            self.pos += 1;
        }
        s
    }

    /// Segments until the end, or (inside a filter) until an operator or `)`.
    fn segments(&mut self, in_filter: bool) -> Result<Vec<Segment>, PathError> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some('.') if self.peek_at(1) == Some('.') => {
                    self.pos += 2;
                    let inner = if self.eat('*') {
                        Segment::Wildcard
                    } else if self.peek() == Some('[') {
                        self.bracket()?
                    } else {
                        let n = self.name();
                        if n.is_empty() {
                            return Err(self.err("empty name after '..'"));
                        }
                        Segment::Child(n)
                    };
                    out.push(Segment::Descendant(Box::new(inner)));
                }
                Some('.') => {
                    self.pos += 1;
                    if self.eat('*') {
                        out.push(Segment::Wildcard);
                        continue;
                    }
                    let n = self.name();
                    if n.is_empty() {
                        return Err(self.err("empty name after '.'"));
                    }
                    if n == "length" && self.peek() == Some('(') && self.peek_at(1) == Some(')') {
                        self.pos += 2;
                        out.push(Segment::Length);
                    } else {
                        out.push(Segment::Child(n));
                    }
                }
                Some('[') => out.push(self.bracket()?),
                None => return Ok(out),
                Some(_) if in_filter => return Ok(out),
                Some(c) => return Err(self.err(format!("unexpected character {c:?}"))),
            }
        }
    }

    fn bracket(&mut self) -> Result<Segment, PathError> {
        self.eat('[');
        self.skip_ws();
        if self.peek() == Some('(') {
            // Jayway script index: only `(@.length-N)` is meaningful on JSON data.
            self.pos += 1;
            self.skip_ws();
            let word: String = self.chars[self.pos..].iter().take(8).map(|c| c.1).collect();
            if word != "@.length" {
                return Err(self.err("only (@.length-N) script indexes are supported"));
            }
            self.pos += 8;
            self.skip_ws();
            let n = if self.eat('-') {
                self.int()
                    .ok_or_else(|| self.err("expected a number after '-'"))?
            } else {
                0
            };
            self.skip_ws();
            if !self.eat(')')
                || !{
                    self.skip_ws();
                    self.eat(']')
                }
            {
                return Err(self.err("expected ')]' closing the script index"));
            }
            return Ok(Segment::FromEnd(n));
        }
        if self.eat('?') {
            self.skip_ws();
            let paren = self.eat('(');
            let f = self.filter_or()?;
            self.skip_ws();
            if paren && !self.eat(')') {
                return Err(self.err("expected ')' closing the filter"));
            }
            self.skip_ws();
            if !self.eat(']') {
                return Err(self.err("expected ']' closing the filter"));
            }
            return Ok(Segment::Filter(f));
        }
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            let item = match self.peek() {
                Some('*') => {
                    self.pos += 1;
                    Segment::Wildcard
                }
                Some('\'') | Some('"') => Segment::Child(self.quoted()?),
                _ => self.index_or_slice()?,
            };
            items.push(item);
            self.skip_ws();
            if self.eat(',') {
                continue;
            }
            if self.eat(']') {
                break;
            }
            return Err(self.err("expected ']'"));
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Segment::Union(items)
        })
    }

    fn quoted(&mut self) -> Result<String, PathError> {
        let q = self.peek().expect("quote");
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated quoted name")),
                // Jayway treats a backslash as an escape only before the quote
                // character or another backslash; elsewhere it is literal.
                Some('\\') if self.peek_at(1) == Some(q) || self.peek_at(1) == Some('\\') => {
                    s.push(self.peek_at(1).expect("checked"));
                    self.pos += 2;
                }
                Some(c) if c == q => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn int(&mut self) -> Option<i64> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let s: String = self.chars[start..self.pos].iter().map(|c| c.1).collect();
        if s.is_empty() || s == "-" {
            self.pos = start;
            return None;
        }
        s.parse().ok()
    }

    fn index_or_slice(&mut self) -> Result<Segment, PathError> {
        let start = self.int();
        self.skip_ws();
        if self.eat(':') {
            let end = self.int();
            self.skip_ws();
            let stepn = if self.eat(':') {
                self.int().unwrap_or(1)
            } else {
                1
            };
            if stepn == 0 {
                return Err(self.err("slice step cannot be 0"));
            }
            return Ok(Segment::Slice(start, end, stepn));
        }
        start
            .map(Segment::Index)
            .ok_or_else(|| self.err("expected an index, a quoted name or '*'"))
    }

    fn filter_or(&mut self) -> Result<Filter, PathError> {
        let mut left = self.filter_and()?;
        loop {
            self.skip_ws();
            if self.peek() == Some('|') && self.peek_at(1) == Some('|') {
                self.pos += 2;
                let right = self.filter_and()?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_and(&mut self) -> Result<Filter, PathError> {
        let mut left = self.filter_atom()?;
        loop {
            self.skip_ws();
            if self.peek() == Some('&') && self.peek_at(1) == Some('&') {
                self.pos += 2;
                let right = self.filter_atom()?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_atom(&mut self) -> Result<Filter, PathError> {
        self.skip_ws();
        if self.eat('!') {
            return Ok(Filter::Not(Box::new(self.filter_atom()?)));
        }
        if self.eat('(') {
            let f = self.filter_or()?;
            self.skip_ws();
            if !self.eat(')') {
                return Err(self.err("expected ')'"));
            }
            return Ok(f);
        }
        let left = self.operand()?;
        self.skip_ws();
        let op = match (self.peek(), self.peek_at(1)) {
            (Some('='), Some('=')) => Some((CmpOp::Eq, 2)),
            (Some('!'), Some('=')) => Some((CmpOp::Ne, 2)),
            (Some('<'), Some('=')) => Some((CmpOp::Le, 2)),
            (Some('>'), Some('=')) => Some((CmpOp::Ge, 2)),
            (Some('<'), _) => Some((CmpOp::Lt, 1)),
            (Some('>'), _) => Some((CmpOp::Gt, 1)),
            _ => None,
        };
        match op {
            Some((op, n)) => {
                self.pos += n;
                let right = self.operand()?;
                Ok(Filter::Compare(left, op, right))
            }
            None => match left {
                Operand::Current(segs) => Ok(Filter::Exists(segs)),
                Operand::Literal(_) => Err(self.err("a filter needs a comparison")),
            },
        }
    }

    fn operand(&mut self) -> Result<Operand, PathError> {
        self.skip_ws();
        match self.peek() {
            Some('@') => {
                self.pos += 1;
                Ok(Operand::Current(self.segments(true)?))
            }
            Some('\'') | Some('"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let start = self.pos;
                while self.peek().is_some_and(|c| {
                    c == '-' || c == '.' || c == 'e' || c == 'E' || c == '+' || c.is_ascii_digit()
                }) {
                    self.pos += 1;
                }
                let s: String = self.chars[start..self.pos].iter().map(|c| c.1).collect();
                serde_json::from_str::<Value>(&s)
                    .map(Operand::Literal)
                    .map_err(|_| self.err(format!("bad number {s:?}")))
            }
            _ => {
                let word = self.name();
                match word.as_str() {
                    "true" => Ok(Operand::Literal(Value::Bool(true))),
                    "false" => Ok(Operand::Literal(Value::Bool(false))),
                    "null" => Ok(Operand::Literal(Value::Null)),
                    "" => Err(self.err("expected a filter operand")),
                    // Jayway reads a bare word as a string.
                    _ => Ok(Operand::Literal(Value::String(word))),
                }
            }
        }
    }
}

fn is_name_char(c: char) -> bool {
    !matches!(
        c,
        '.' | '['
            | ']'
            | '('
            | ')'
            | ' '
            | '\t'
            | '='
            | '!'
            | '<'
            | '>'
            | '&'
            | '|'
            | ','
            | '\''
            | '"'
            | '@'
            | '$'
            | '*'
            | '?'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(path: &str, v: &Value) -> Result<Value, PathError> {
        JsonPath::parse(path).unwrap().eval_on(v)
    }

    #[test]
    fn definite_paths() {
        let v = json!({"a": {"b": [1, 2, {"c": "x"}]}, "k e y": 3});
        assert_eq!(q("$", &v).unwrap(), v);
        assert_eq!(q("$.a.b[2].c", &v).unwrap(), json!("x"));
        assert_eq!(q("$['a']['b'][0]", &v).unwrap(), json!(1));
        assert_eq!(q("$.a.b[-1].c", &v).unwrap(), json!("x"));
        assert_eq!(q("$['k e y']", &v).unwrap(), json!(3));
        assert_eq!(q("$.a.b.length()", &v).unwrap(), json!(3));
    }

    #[test]
    fn missing_paths_use_jayway_texts() {
        let v = json!({"a": 1});
        assert_eq!(
            q("$.nope", &v).unwrap_err().to_string(),
            "No results for path: $['nope']"
        );
        assert_eq!(
            q("$.no.such", &v).unwrap_err().to_string(),
            "Missing property in path $['no']"
        );
    }

    #[test]
    fn indefinite_paths() {
        let v = json!({"users": [{"n": "a", "s": 0}, {"n": "b", "s": 1}, {"n": "c", "s": 0}]});
        assert_eq!(q("$.users[*].n", &v).unwrap(), json!(["a", "b", "c"]));
        assert_eq!(q("$.users[?(@.s == 0)].n", &v).unwrap(), json!(["a", "c"]));
        assert_eq!(q("$.users[0,2].n", &v).unwrap(), json!(["a", "c"]));
        assert_eq!(q("$.users[1:].n", &v).unwrap(), json!(["b", "c"]));
        assert_eq!(q("$..n", &v).unwrap(), json!(["a", "b", "c"]));
        assert_eq!(
            q("$.users[?(@.s > 0 && @.n != 'x')].n", &v).unwrap(),
            json!(["b"])
        );
        assert_eq!(q("$.missing[*]", &v).unwrap(), json!([]));
    }

    #[test]
    fn roots() {
        let input = json!({"a": 1});
        let ctx = json!({"Execution": {"Id": "arn"}});
        let mut vars = Map::new();
        vars.insert("x".into(), json!({"y": [5]}));
        let s = Scope {
            input: &input,
            context: &ctx,
            vars: &vars,
        };
        let ev = |p: &str| JsonPath::parse(p).unwrap().eval(&s);
        assert_eq!(ev("$$.Execution.Id").unwrap(), json!("arn"));
        assert_eq!(ev("$x.y[0]").unwrap(), json!(5));
        assert!(matches!(ev("$nope"), Err(PathError::UndefinedVariable(_))));
    }

    #[test]
    fn set_creates_objects() {
        let mut v = json!({"a": 1});
        JsonPath::parse("$.b.c")
            .unwrap()
            .set(&mut v, json!(2))
            .unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": 2}}));
        let mut s = json!("str");
        assert!(JsonPath::parse("$.b")
            .unwrap()
            .set(&mut s, json!(2))
            .is_err());
    }

    #[test]
    fn syntax_errors() {
        assert!(JsonPath::parse("a.b").is_err());
        assert!(JsonPath::parse("$.a[").is_err());
        assert!(JsonPath::parse("$.").is_err());
    }
}
