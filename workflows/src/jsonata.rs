//! JSONata for `QueryLanguage: "JSONata"` states: `{% … %}` templates evaluated against
//! `$states` and workflow variables.
//!
//! A compact implementation of the language core: paths with predicates and indexes,
//! arithmetic, comparison, boolean and string operators, conditionals, blocks with
//! `:=` bindings, lambdas, array/object constructors, ranges, the `~>` operator, the
//! common function library and Step Functions' own `$partition`, `$range`, `$hash`,
//! `$random`, `$uuid` and `$parse`. Regular expressions, `**`, `%`/`#` path operators
//! and `$eval` are not supported.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Number, Value};

use crate::asl::is_jsonata;
use crate::payload::EvalError;

/// Evaluates a JSONata template: strings `{% expr %}` are expressions, objects and arrays
/// are walked, other values are literal. `field` names the field for error messages
/// (`Output`, `Arguments/FunctionName` …).
pub fn evaluate_template(
    template: &Value,
    vars: &Map<String, Value>,
    field: &str,
) -> Result<Value, EvalError> {
    match template {
        Value::String(s) if is_jsonata(s) => {
            let t = s.trim();
            let expr = t[2..t.len() - 2].trim();
            evaluate(expr, vars, field)
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(
                    k.clone(),
                    evaluate_template(v, vars, &format!("{field}/{k}"))?,
                );
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|v| evaluate_template(v, vars, field))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

fn query_error(message: String) -> EvalError {
    EvalError {
        error: "States.QueryEvaluationError",
        message,
    }
}

/// Evaluates one expression; undefined is an error, as in Step Functions.
pub fn evaluate(expr: &str, vars: &Map<String, Value>, field: &str) -> Result<Value, EvalError> {
    let ast = parse(expr).map_err(|e| {
        query_error(format!(
            "The JSONata expression '{expr}' specified for the field '{field}' threw an error during evaluation. {e}"
        ))
    })?;
    let env = Env::root(vars);
    match eval(&ast, &Value::Null, &env) {
        Ok(Some(Val::J(v))) => Ok(v),
        Ok(Some(Val::F(_))) => Err(query_error(format!(
            "The JSONata expression '{expr}' specified for the field '{field}' returned an unsupported result type."
        ))),
        Ok(None) => Err(query_error(format!(
            "The JSONata expression '{expr}' specified for the field '{field}' returned nothing (undefined)."
        ))),
        Err(e) => Err(query_error(format!(
            "The JSONata expression '{expr}' specified for the field '{field}' threw an error during evaluation. {e}"
        ))),
    }
}

// === syntax ===

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Name(String),
    Var(String),
    Op(&'static str),
    /// `/pattern/flags`
    Regex(String, String),
    End,
}

const OPS: &[&str] = &[
    ":=", "~>", "!=", "<=", ">=", "..", "?:", "??", "(", ")", "[", "]", "{", "}", ",", ";", ":",
    "?", ".", "+", "-", "*", "/", "%", "&", "=", "<", ">", "^", "|", "@", "#",
];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        // A `/` where a value is expected starts a regular expression literal.
        let value_expected = !matches!(
            out.last(),
            Some(
                Tok::Num(_)
                    | Tok::Str(_)
                    | Tok::Name(_)
                    | Tok::Var(_)
                    | Tok::Regex(..)
                    | Tok::Op(")" | "]" | "}")
            )
        );
        if c == '/' && value_expected && chars.get(i + 1) != Some(&'*') {
            let mut j = i + 1;
            let mut pattern = String::new();
            loop {
                match chars.get(j) {
                    None => return Err("S0302: No terminating / in regular expression".into()),
                    Some('\\') => {
                        pattern.push('\\');
                        if let Some(n) = chars.get(j + 1) {
                            pattern.push(*n);
                        }
                        j += 2;
                    }
                    Some('/') => break,
                    Some(ch) => {
                        pattern.push(*ch);
                        j += 1;
                    }
                }
            }
            j += 1;
            let mut flags = String::new();
            while let Some(f) = chars.get(j).filter(|f| f.is_ascii_alphabetic()) {
                flags.push(*f);
                j += 1;
            }
            if pattern.is_empty() {
                return Err("S0301: Empty regular expressions are not allowed".into());
            }
            out.push(Tok::Regex(pattern, flags));
            i = j;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            match (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
            {
                Some(j) => i = j + 2,
                None => return Err("S0106: Comment has no closing tag".into()),
            }
            continue;
        }
        if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(
                            "S0101: String literal must be terminated by a matching quote".into(),
                        )
                    }
                    Some('\\') => {
                        let e = chars.get(i + 1).copied().unwrap_or('\\');
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if matches!(chars.get(i), Some('e') | Some('E')) {
                let mut j = i + 1;
                if matches!(chars.get(j), Some('+') | Some('-')) {
                    j += 1;
                }
                if chars.get(j).is_some_and(|d| d.is_ascii_digit()) {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            // `420.` is a syntax error in JSONata.
            if chars.get(i) == Some(&'.') && chars.get(i + 1) != Some(&'.') {
                return Err(format!("S0102: Number out of range or malformed: {text}."));
            }
            out.push(Tok::Num(
                text.parse()
                    .map_err(|_| format!("S0102: malformed number {text}"))?,
            ));
            continue;
        }
        if c == '`' {
            let end = (i + 1..chars.len())
                .find(|&j| chars[j] == '`')
                .ok_or("S0105: Quoted property name must be terminated with a backquote (`)")?;
            out.push(Tok::Name(chars[i + 1..end].iter().collect()));
            i = end + 1;
            continue;
        }
        if c == '$' {
            let mut j = i + 1;
            if chars.get(j) == Some(&'$') {
                out.push(Tok::Var("$".into()));
                i = j + 1;
                continue;
            }
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            out.push(Tok::Var(chars[i + 1..j].iter().collect()));
            i = j;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                out.push(Tok::Op(op));
                i += op.chars().count();
            }
            None => return Err(format!("S0204: Unknown operator: \"{c}\"")),
        }
    }
    out.push(Tok::End);
    Ok(out)
}

/// The syntax tree of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Num(f64),
    Str(String),
    Bool(bool),
    Null,
    Var(String),
    Name(String),
    Wildcard,
    Path(Box<Node>, Box<Node>),
    Filter(Box<Node>, Box<Node>),
    Neg(Box<Node>),
    Bin(&'static str, Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Option<Box<Node>>),
    Block(Vec<Node>),
    Array(Vec<Node>),
    Range(Box<Node>, Box<Node>),
    Object(Vec<(Node, Node)>),
    Call(Box<Node>, Vec<Node>),
    Lambda(Vec<String>, Rc<Node>),
    Bind(String, Box<Node>),
    Regex(String, String),
    /// `expr{key: value}`: group the items of `expr` by key.
    GroupBy(Box<Node>, Vec<(Node, Node)>),
}

/// Parses an expression, reporting JSONata's error codes.
pub fn parse(expr: &str) -> Result<Node, String> {
    let toks = lex(expr)?;
    let mut p = Parser { toks, pos: 0 };
    let n = p.expr(0)?;
    if p.peek() != &Tok::End {
        return Err(format!("S0201: Syntax error: {:?}", p.peek()));
    }
    Ok(n)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn infix_power(op: &str) -> Option<u8> {
    Some(match op {
        ":=" => 10,
        "?" | "?:" | "??" => 20,
        "or" => 25,
        "and" => 30,
        "=" | "!=" | "<" | "<=" | ">" | ">=" | "in" => 40,
        "&" | "+" | "-" => 50,
        "*" | "/" | "%" => 60,
        "~>" => 70,
        "." => 75,
        "[" | "(" | "{" => 80,
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos]
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.pos].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn expect(&mut self, op: &str) -> Result<(), String> {
        match self.next() {
            Tok::Op(o) if o == op => Ok(()),
            other => Err(format!("S0202: Expected \"{op}\", got {other:?}")),
        }
    }

    fn op_name(t: &Tok) -> Option<&str> {
        match t {
            Tok::Op(o) => Some(o),
            Tok::Name(n) if n == "and" || n == "or" || n == "in" => Some(n.as_str()),
            _ => None,
        }
    }

    fn expr(&mut self, rbp: u8) -> Result<Node, String> {
        let mut left = self.prefix()?;
        while let Some(op) = Self::op_name(self.peek()).map(str::to_string) {
            let Some(lbp) = infix_power(&op) else { break };
            if lbp <= rbp {
                break;
            }
            self.next();
            left = match op.as_str() {
                "." => Node::Path(Box::new(left), Box::new(self.expr(75)?)),
                "[" => {
                    if matches!(self.peek(), Tok::Op("]")) {
                        self.next();
                        left
                    } else {
                        let pred = self.expr(0)?;
                        self.expect("]")?;
                        Node::Filter(Box::new(left), Box::new(pred))
                    }
                }
                "(" => {
                    let mut args = Vec::new();
                    if !matches!(self.peek(), Tok::Op(")")) {
                        loop {
                            args.push(self.expr(0)?);
                            if matches!(self.peek(), Tok::Op(",")) {
                                self.next();
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect(")")?;
                    Node::Call(Box::new(left), args)
                }
                "{" => {
                    let pairs = self.object_body()?;
                    Node::GroupBy(Box::new(left), pairs)
                }
                "?" => {
                    let then = self.expr(0)?;
                    let otherwise = if matches!(self.peek(), Tok::Op(":")) {
                        self.next();
                        Some(Box::new(self.expr(0)?))
                    } else {
                        None
                    };
                    Node::Cond(Box::new(left), Box::new(then), otherwise)
                }
                ":=" => {
                    let Node::Var(name) = left else {
                        return Err("S0212: The left side of := must be a variable name".into());
                    };
                    Node::Bind(name, Box::new(self.expr(9)?))
                }
                _ => {
                    let op: &'static str = OPS
                        .iter()
                        .copied()
                        .chain(["and", "or", "in"])
                        .find(|o| *o == op)
                        .expect("known operator");
                    Node::Bin(op, Box::new(left), Box::new(self.expr(lbp)?))
                }
            };
        }
        Ok(left)
    }

    /// `k: v, …}` after an opening brace.
    fn object_body(&mut self) -> Result<Vec<(Node, Node)>, String> {
        let mut pairs = Vec::new();
        while !matches!(self.peek(), Tok::Op("}")) {
            let k = self.expr(0)?;
            self.expect(":")?;
            let v = self.expr(0)?;
            pairs.push((k, v));
            if matches!(self.peek(), Tok::Op(",")) {
                self.next();
            } else {
                break;
            }
        }
        self.expect("}")?;
        Ok(pairs)
    }

    fn prefix(&mut self) -> Result<Node, String> {
        match self.next() {
            Tok::Num(n) => Ok(Node::Num(n)),
            Tok::Str(s) => Ok(Node::Str(s)),
            Tok::Var(v) => Ok(Node::Var(v)),
            Tok::Name(n) => Ok(match n.as_str() {
                "true" => Node::Bool(true),
                "false" => Node::Bool(false),
                "null" => Node::Null,
                "function" if matches!(self.peek(), Tok::Op("(")) => {
                    self.next();
                    let mut params = Vec::new();
                    while let Tok::Var(v) = self.peek().clone() {
                        self.next();
                        params.push(v);
                        if matches!(self.peek(), Tok::Op(",")) {
                            self.next();
                        }
                    }
                    self.expect(")")?;
                    self.expect("{")?;
                    let body = self.expr(0)?;
                    self.expect("}")?;
                    Node::Lambda(params, Rc::new(body))
                }
                _ => Node::Name(n),
            }),
            Tok::Op("-") => Ok(Node::Neg(Box::new(self.expr(70)?))),
            Tok::Op("*") => Ok(Node::Wildcard),
            Tok::Op("(") => {
                let mut items = Vec::new();
                while !matches!(self.peek(), Tok::Op(")")) {
                    items.push(self.expr(0)?);
                    if matches!(self.peek(), Tok::Op(";")) {
                        self.next();
                    } else {
                        break;
                    }
                }
                self.expect(")")?;
                Ok(Node::Block(items))
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !matches!(self.peek(), Tok::Op("]")) {
                    let item = self.expr(0)?;
                    if matches!(self.peek(), Tok::Op("..")) {
                        self.next();
                        let hi = self.expr(0)?;
                        items.push(Node::Range(Box::new(item), Box::new(hi)));
                    } else {
                        items.push(item);
                    }
                    if matches!(self.peek(), Tok::Op(",")) {
                        self.next();
                    } else {
                        break;
                    }
                }
                self.expect("]")?;
                Ok(Node::Array(items))
            }
            Tok::Op("{") => Ok(Node::Object(self.object_body()?)),
            Tok::Regex(p, f) => Ok(Node::Regex(p, f)),
            Tok::End => Err("S0207: Unexpected end of expression".into()),
            other => Err(format!(
                "S0211: The symbol {other:?} cannot be used as a unary operator"
            )),
        }
    }
}

// === evaluation ===

#[derive(Clone)]
enum Val {
    J(Value),
    F(Rc<Func>),
}

enum Func {
    Lambda {
        params: Vec<String>,
        body: Rc<Node>,
        env: Env,
    },
    Builtin(String),
    Regex(regex::Regex),
}

#[derive(Clone)]
struct Env(Rc<Scope>);

struct Scope {
    vars: RefCell<HashMap<String, Val>>,
    parent: Option<Env>,
}

impl Env {
    fn root(vars: &Map<String, Value>) -> Env {
        let map = vars
            .iter()
            .map(|(k, v)| (k.clone(), Val::J(v.clone())))
            .collect();
        Env(Rc::new(Scope {
            vars: RefCell::new(map),
            parent: None,
        }))
    }

    fn child(&self) -> Env {
        Env(Rc::new(Scope {
            vars: RefCell::new(HashMap::new()),
            parent: Some(self.clone()),
        }))
    }

    fn get(&self, name: &str) -> Option<Val> {
        if let Some(v) = self.0.vars.borrow().get(name) {
            return Some(v.clone());
        }
        self.0.parent.as_ref().and_then(|p| p.get(name))
    }

    fn set(&self, name: &str, v: Val) {
        self.0.vars.borrow_mut().insert(name.to_string(), v);
    }
}

type R = Result<Option<Val>, String>;

fn j(v: Value) -> R {
    Ok(Some(Val::J(v)))
}

fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn json(v: Option<Val>) -> Option<Value> {
    match v {
        Some(Val::J(v)) => Some(v),
        _ => None,
    }
}

/// A sequence collapses to nothing, its single item, or an array.
fn collapse(mut items: Vec<Value>) -> Option<Value> {
    match items.len() {
        0 => None,
        1 => items.pop(),
        _ => Some(Value::Array(items)),
    }
}

fn truthy(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => a.iter().any(|x| truthy(&Some(x.clone()))),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

fn eval(node: &Node, ctx: &Value, env: &Env) -> R {
    match node {
        Node::Num(n) => j(num(*n)),
        Node::Str(s) => j(Value::String(s.clone())),
        Node::Bool(b) => j(Value::Bool(*b)),
        Node::Null => j(Value::Null),
        Node::Var(name) if name.is_empty() => j(ctx.clone()),
        Node::Var(name) => Ok(env.get(name).or_else(|| {
            BUILTINS
                .contains(&name.as_str())
                .then(|| Val::F(Rc::new(Func::Builtin(name.clone()))))
        })),
        Node::Name(n) => Ok(field(ctx, n).map(Val::J)),
        Node::Wildcard => Ok(match ctx {
            Value::Object(m) => collapse(m.values().cloned().collect()).map(Val::J),
            other => Some(Val::J(other.clone())),
        }),
        Node::Path(lhs, rhs) => {
            let Some(base) = json(eval(lhs, ctx, env)?) else {
                return Ok(None);
            };
            let items = match &base {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            let mut out = Vec::new();
            for item in &items {
                if let Some(v) = json(eval(rhs, item, env)?) {
                    match v {
                        Value::Array(a) if items.len() > 1 => out.extend(a),
                        other => out.push(other),
                    }
                }
            }
            if !matches!(base, Value::Array(_)) && out.len() == 1 {
                return j(out.pop().expect("one"));
            }
            Ok(collapse(out).map(Val::J))
        }
        Node::Filter(lhs, pred) => {
            let Some(base) = json(eval(lhs, ctx, env)?) else {
                return Ok(None);
            };
            let items = match base {
                Value::Array(a) => a,
                other => vec![other],
            };
            let len = items.len() as i64;
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let p = json(eval(pred, item, env)?);
                let keep = match &p {
                    Some(Value::Number(n)) => {
                        let k = n.as_f64().unwrap_or(0.0).floor() as i64;
                        let k = if k < 0 { len + k } else { k };
                        k == i as i64
                    }
                    Some(Value::Array(a)) if a.iter().all(Value::is_number) => a.iter().any(|n| {
                        let k = n.as_f64().unwrap_or(0.0).floor() as i64;
                        (if k < 0 { len + k } else { k }) == i as i64
                    }),
                    other => truthy(other),
                };
                if keep {
                    out.push(item.clone());
                }
            }
            Ok(collapse(out).map(Val::J))
        }
        Node::Neg(x) => match json(eval(x, ctx, env)?) {
            None => Ok(None),
            Some(Value::Number(n)) => j(num(-n.as_f64().unwrap_or(0.0))),
            Some(_) => {
                Err("T1002: The expression following the - operator must be a number".into())
            }
        },
        Node::Bin(op, a, b) => binary(op, a, b, ctx, env),
        Node::Cond(c, t, e) => {
            if truthy(&json(eval(c, ctx, env)?)) {
                eval(t, ctx, env)
            } else {
                match e {
                    Some(e) => eval(e, ctx, env),
                    None => Ok(None),
                }
            }
        }
        Node::Block(items) => {
            let scope = env.child();
            let mut last = None;
            for i in items {
                last = eval(i, ctx, &scope)?;
            }
            Ok(last)
        }
        Node::Array(items) => {
            let mut out = Vec::new();
            for i in items {
                match i {
                    Node::Range(lo, hi) => {
                        let lo = json(eval(lo, ctx, env)?).and_then(|v| v.as_i64());
                        let hi = json(eval(hi, ctx, env)?).and_then(|v| v.as_i64());
                        if let (Some(lo), Some(hi)) = (lo, hi) {
                            if hi - lo > 10_000_000 {
                                return Err("D2014: The size of the sequence allocated by the range operator (..) must not exceed 1e7".into());
                            }
                            out.extend((lo..=hi).map(Value::from));
                        }
                    }
                    other => match json(eval(other, ctx, env)?) {
                        Some(Value::Array(a)) if !matches!(other, Node::Array(_)) => out.extend(a),
                        Some(v) => out.push(v),
                        None => {}
                    },
                }
            }
            j(Value::Array(out))
        }
        Node::Range(..) => Err("S0201: a range is only allowed inside an array constructor".into()),
        Node::Regex(pattern, flags) => {
            let mut b = regex::RegexBuilder::new(pattern);
            b.case_insensitive(flags.contains('i'))
                .multi_line(flags.contains('m'));
            let re = b
                .build()
                .map_err(|e| format!("S0302: invalid regular expression: {e}"))?;
            Ok(Some(Val::F(Rc::new(Func::Regex(re)))))
        }
        Node::GroupBy(lhs, pairs) => {
            let items = as_list(json(eval(lhs, ctx, env)?));
            let mut groups: Vec<(String, usize, Vec<Value>)> = Vec::new();
            for item in &items {
                for (pi, (k, _)) in pairs.iter().enumerate() {
                    let key = match json(eval(k, item, env)?) {
                        Some(Value::String(s)) => s,
                        None => continue,
                        Some(other) => {
                            return Err(format!("T1003: Key in object structure must evaluate to a string; got: {other}"))
                        }
                    };
                    match groups.iter_mut().find(|(gk, _, _)| *gk == key) {
                        Some((_, _, members)) => members.push(item.clone()),
                        None => groups.push((key, pi, vec![item.clone()])),
                    }
                }
            }
            let mut out = Map::new();
            for (key, pi, members) in groups {
                let group = collapse(members).unwrap_or(Value::Null);
                if let Some(v) = json(eval(&pairs[pi].1, &group, env)?) {
                    out.insert(key, v);
                }
            }
            j(Value::Object(out))
        }
        Node::Object(pairs) => {
            let mut out = Map::new();
            for (k, v) in pairs {
                let key = match json(eval(k, ctx, env)?) {
                    Some(Value::String(s)) => s,
                    other => {
                        return Err(format!(
                        "T1003: Key in object structure must evaluate to a string; got: {other:?}"
                    ))
                    }
                };
                if let Some(v) = json(eval(v, ctx, env)?) {
                    out.insert(key, v);
                }
            }
            j(Value::Object(out))
        }
        Node::Lambda(params, body) => Ok(Some(Val::F(Rc::new(Func::Lambda {
            params: params.clone(),
            body: body.clone(),
            env: env.clone(),
        })))),
        Node::Bind(name, value) => {
            let v = eval(value, ctx, env)?;
            if let Some(v) = &v {
                env.set(name, v.clone());
            }
            Ok(v)
        }
        Node::Call(callee, args) => {
            let f = match eval(callee, ctx, env)? {
                Some(Val::F(f)) => f,
                _ => return Err("T1006: Attempted to invoke a non-function".into()),
            };
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(eval(a, ctx, env)?);
            }
            call(&f, vals, ctx)
        }
    }
}

fn field(ctx: &Value, name: &str) -> Option<Value> {
    match ctx {
        Value::Object(m) => m.get(name).cloned(),
        Value::Array(a) => {
            let mut out = Vec::new();
            for item in a {
                match field(item, name) {
                    Some(Value::Array(inner)) => out.extend(inner),
                    Some(v) => out.push(v),
                    None => {}
                }
            }
            collapse(out)
        }
        _ => None,
    }
}

fn deep_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| deep_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_eq(v, w)))
        }
        _ => a == b,
    }
}

fn binary(op: &str, a: &Node, b: &Node, ctx: &Value, env: &Env) -> R {
    match op {
        "and" => {
            let l = truthy(&json(eval(a, ctx, env)?));
            return j(Value::Bool(l && truthy(&json(eval(b, ctx, env)?))));
        }
        "or" => {
            let l = truthy(&json(eval(a, ctx, env)?));
            return j(Value::Bool(l || truthy(&json(eval(b, ctx, env)?))));
        }
        "~>" => {
            let arg = eval(a, ctx, env)?;
            return match b {
                Node::Call(callee, args) => {
                    let Some(Val::F(f)) = eval(callee, ctx, env)? else {
                        return Err("T1006: Attempted to invoke a non-function".into());
                    };
                    let mut vals = vec![arg];
                    for x in args {
                        vals.push(eval(x, ctx, env)?);
                    }
                    call(&f, vals, ctx)
                }
                other => match eval(other, ctx, env)? {
                    Some(Val::F(f)) => call(&f, vec![arg], ctx),
                    _ => Err("T2006: The right side of the function application operator ~> must be a function".into()),
                },
            };
        }
        "?:" => {
            let l = json(eval(a, ctx, env)?);
            return if truthy(&l) {
                Ok(l.map(Val::J))
            } else {
                eval(b, ctx, env)
            };
        }
        "??" => {
            let l = eval(a, ctx, env)?;
            return if l.is_some() {
                Ok(l)
            } else {
                eval(b, ctx, env)
            };
        }
        _ => {}
    }
    let l = json(eval(a, ctx, env)?);
    let r = json(eval(b, ctx, env)?);
    match op {
        "&" => j(Value::String(format!(
            "{}{}",
            l.as_ref().map(stringify).unwrap_or_default(),
            r.as_ref().map(stringify).unwrap_or_default()
        ))),
        "+" | "-" | "*" | "/" | "%" => {
            let (Some(l), Some(r)) = (l, r) else {
                return Ok(None);
            };
            let (Some(x), Some(y)) = (
                l.as_f64().filter(|_| l.is_number()),
                r.as_f64().filter(|_| r.is_number()),
            ) else {
                return Err(format!(
                    "T2001: The left side of the {op} operator must evaluate to a number"
                ));
            };
            j(num(match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" => x / y,
                _ => x % y,
            }))
        }
        "=" | "!=" => {
            let eq = match (&l, &r) {
                (Some(x), Some(y)) => deep_eq(x, y),
                _ => false,
            };
            j(Value::Bool(if op == "=" {
                eq
            } else {
                !eq && l.is_some() && r.is_some()
            }))
        }
        "<" | "<=" | ">" | ">=" => {
            let (Some(l), Some(r)) = (l, r) else {
                return j(Value::Bool(false));
            };
            let ord = match (&l, &r) {
                (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
                (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                _ => return Err("T2010: The expressions either side of operator must be both numbers or both strings".into()),
            };
            use std::cmp::Ordering::*;
            j(Value::Bool(match (op, ord) {
                (_, None) => false,
                ("<", Some(o)) => o == Less,
                ("<=", Some(o)) => o != Greater,
                (">", Some(o)) => o == Greater,
                (_, Some(o)) => o != Less,
            }))
        }
        "in" => {
            let (Some(l), Some(r)) = (l, r) else {
                return j(Value::Bool(false));
            };
            let items = match r {
                Value::Array(a) => a,
                other => vec![other],
            };
            j(Value::Bool(items.iter().any(|x| deep_eq(x, &l))))
        }
        other => Err(format!("S0201: unsupported operator {other}")),
    }
}

/// JSONata numbers are doubles printed without a fraction when whole (`-0.0` is `0`).
fn normalize_numbers(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => num(n.as_f64().unwrap_or(0.0)),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize_numbers).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, normalize_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// `$string` semantics: strings as is, other values as compact JSON.
fn stringify(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const BUILTINS: &[&str] = &[
    "string",
    "number",
    "boolean",
    "not",
    "exists",
    "count",
    "length",
    "sum",
    "max",
    "min",
    "average",
    "substring",
    "substringBefore",
    "substringAfter",
    "uppercase",
    "lowercase",
    "trim",
    "contains",
    "split",
    "join",
    "keys",
    "lookup",
    "merge",
    "append",
    "reverse",
    "sort",
    "distinct",
    "map",
    "filter",
    "each",
    "reduce",
    "floor",
    "ceil",
    "round",
    "abs",
    "power",
    "sqrt",
    "type",
    "now",
    "millis",
    "uuid",
    "parse",
    "partition",
    "range",
    "hash",
    "random",
    "single",
    "zip",
    "spread",
    "error",
    "assert",
    "pad",
    "toMillis",
    "fromMillis",
    "match",
    "replace",
];

fn arg(args: &[Option<Val>], i: usize) -> Option<Value> {
    match args.get(i) {
        Some(Some(Val::J(v))) => Some(v.clone()),
        _ => None,
    }
}

fn as_list(v: Option<Value>) -> Vec<Value> {
    match v {
        None => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(other) => vec![other],
    }
}

fn numbers(v: Option<Value>, name: &str) -> Result<Vec<f64>, String> {
    as_list(v)
        .iter()
        .map(|x| {
            x.as_f64().filter(|_| x.is_number()).ok_or_else(|| {
                format!("T0412: Argument 1 of function ${name} must be an array of numbers")
            })
        })
        .collect()
}

fn call(f: &Func, args: Vec<Option<Val>>, ctx: &Value) -> R {
    match f {
        Func::Lambda { params, body, env } => {
            let scope = env.child();
            for (i, p) in params.iter().enumerate() {
                if let Some(Some(v)) = args.get(i) {
                    scope.set(p, v.clone());
                }
            }
            eval(body, ctx, &scope)
        }
        Func::Builtin(name) => builtin(name, &args, ctx),
        // Calling a regex on a string yields its first match object.
        Func::Regex(re) => Ok(arg(&args, 0)
            .and_then(|v| v.as_str().map(str::to_string))
            .and_then(|s| regex_matches(re, &s).into_iter().next())
            .map(Val::J)),
    }
}

/// JSONata match objects: `{match, index, groups}`.
fn regex_matches(re: &regex::Regex, s: &str) -> Vec<Value> {
    re.captures_iter(s)
        .map(|c| {
            let m = c.get(0).expect("group 0");
            let groups: Vec<Value> = c
                .iter()
                .skip(1)
                .map(|g| Value::String(g.map(|g| g.as_str().to_string()).unwrap_or_default()))
                .collect();
            serde_json::json!({"match": m.as_str(), "index": s[..m.start()].chars().count(), "groups": groups})
        })
        .collect()
}

fn builtin(name: &str, args: &[Option<Val>], ctx: &Value) -> R {
    let a0 = || arg(args, 0);
    let str0 = || a0().map(|v| stringify(&v));
    let regex_arg = |i: usize| match args.get(i) {
        Some(Some(Val::F(f))) => match &**f {
            Func::Regex(re) => Some(re.clone()),
            _ => None,
        },
        _ => None,
    };
    let func = |i: usize| match args.get(i) {
        Some(Some(Val::F(f))) => Ok(f.clone()),
        _ => Err(format!(
            "T0410: Argument {} of function ${name} must be a function",
            i + 1
        )),
    };
    match name {
        "string" => Ok(a0().map(|v| Val::J(Value::String(stringify(&v))))),
        "number" => match a0() {
            None => Ok(None),
            Some(Value::Number(n)) => j(Value::Number(n)),
            Some(Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .map(|f| Some(Val::J(num(f))))
                .map_err(|_| format!("D3030: Unable to cast value to a number: \"{s}\"")),
            Some(Value::Bool(b)) => j(Value::from(b as i64)),
            Some(other) => Err(format!("D3030: Unable to cast value to a number: {other}")),
        },
        "boolean" => Ok(a0().map(|v| Val::J(Value::Bool(truthy(&Some(v)))))),
        "not" => Ok(a0().map(|v| Val::J(Value::Bool(!truthy(&Some(v)))))),
        "exists" => j(Value::Bool(args.first().is_some_and(Option::is_some))),
        "count" => j(Value::from(as_list(a0()).len())),
        "length" => match a0() {
            None => Ok(None),
            Some(Value::String(s)) => j(Value::from(s.chars().count())),
            Some(_) => Err("T0410: Argument 1 of function $length must be a string".into()),
        },
        "sum" => j(num(numbers(a0(), name)?.iter().sum())),
        "max" | "min" | "average" => {
            let xs = numbers(a0(), name)?;
            if xs.is_empty() {
                return Ok(None);
            }
            j(num(match name {
                "max" => xs.iter().cloned().fold(f64::MIN, f64::max),
                "min" => xs.iter().cloned().fold(f64::MAX, f64::min),
                _ => xs.iter().sum::<f64>() / xs.len() as f64,
            }))
        }
        "substring" => {
            let Some(s) = str0() else { return Ok(None) };
            let chars: Vec<char> = s.chars().collect();
            let len = chars.len() as i64;
            let start = arg(args, 1).and_then(|v| v.as_f64()).unwrap_or(0.0) as i64;
            let start = if start < 0 {
                (len + start).max(0)
            } else {
                start.min(len)
            };
            let end = match arg(args, 2).and_then(|v| v.as_f64()) {
                Some(n) => (start + n.max(0.0) as i64).min(len),
                None => len,
            };
            j(Value::String(
                chars[start as usize..end as usize].iter().collect(),
            ))
        }
        "substringBefore" | "substringAfter" => {
            let Some(s) = str0() else { return Ok(None) };
            let pat = arg(args, 1).map(|v| stringify(&v)).unwrap_or_default();
            j(Value::String(match s.find(&pat) {
                Some(i) if name == "substringBefore" => s[..i].to_string(),
                Some(i) => s[i + pat.len()..].to_string(),
                None => s,
            }))
        }
        "uppercase" => Ok(str0().map(|s| Val::J(Value::String(s.to_uppercase())))),
        "lowercase" => Ok(str0().map(|s| Val::J(Value::String(s.to_lowercase())))),
        "trim" => Ok(str0().map(|s| {
            Val::J(Value::String(
                s.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })),
        "pad" => {
            let Some(s) = str0() else { return Ok(None) };
            let width = arg(args, 1).and_then(|v| v.as_i64()).unwrap_or(0);
            let ch = arg(args, 2)
                .map(|v| stringify(&v))
                .unwrap_or_else(|| " ".into());
            let n = (width.unsigned_abs() as usize).saturating_sub(s.chars().count());
            let padding: String = ch.chars().cycle().take(n).collect();
            j(Value::String(if width >= 0 {
                s + &padding
            } else {
                padding + &s
            }))
        }
        "match" => {
            let Some(s) = str0() else { return Ok(None) };
            let re = regex_arg(1)
                .ok_or("T0410: Argument 2 of function $match must be a regular expression")?;
            let mut all = regex_matches(&re, &s);
            if let Some(limit) = arg(args, 2).and_then(|v| v.as_u64()) {
                all.truncate(limit as usize);
            }
            Ok(collapse(all).map(Val::J))
        }
        "replace" => {
            let Some(s) = str0() else { return Ok(None) };
            let with = arg(args, 2).map(|v| stringify(&v)).unwrap_or_default();
            let out = match regex_arg(1) {
                Some(re) => re
                    .replace_all(&s, with.replace("$0", "${0}").as_str())
                    .into_owned(),
                None => s.replace(
                    &arg(args, 1).map(|v| stringify(&v)).unwrap_or_default(),
                    &with,
                ),
            };
            j(Value::String(out))
        }
        "contains" if regex_arg(1).is_some() => {
            let Some(s) = str0() else { return Ok(None) };
            j(Value::Bool(regex_arg(1).is_some_and(|re| re.is_match(&s))))
        }
        "contains" => {
            let Some(s) = str0() else { return Ok(None) };
            let pat = arg(args, 1).map(|v| stringify(&v)).unwrap_or_default();
            j(Value::Bool(s.contains(&pat)))
        }
        "split" => {
            let Some(s) = str0() else { return Ok(None) };
            let sep = arg(args, 1).map(|v| stringify(&v)).unwrap_or_default();
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(&sep)
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            j(Value::Array(parts))
        }
        "join" => {
            let sep = arg(args, 1).map(|v| stringify(&v)).unwrap_or_default();
            let items: Vec<String> = as_list(a0()).iter().map(stringify).collect();
            j(Value::String(items.join(&sep)))
        }
        "keys" => {
            let mut keys = Vec::new();
            for v in as_list(a0()) {
                if let Value::Object(m) = v {
                    for k in m.keys() {
                        if !keys.contains(k) {
                            keys.push(k.clone());
                        }
                    }
                }
            }
            Ok(collapse(keys.into_iter().map(Value::String).collect()).map(Val::J))
        }
        "lookup" => {
            let key = arg(args, 1).map(|v| stringify(&v)).unwrap_or_default();
            Ok(a0().and_then(|v| field(&v, &key)).map(Val::J))
        }
        "merge" => {
            let mut out = Map::new();
            for v in as_list(a0()) {
                if let Value::Object(m) = v {
                    out.extend(m);
                }
            }
            j(Value::Object(out))
        }
        "append" => {
            let (a, b) = (a0(), arg(args, 1));
            if a.is_none() {
                return Ok(b.map(Val::J));
            }
            if b.is_none() {
                return Ok(a.map(Val::J));
            }
            let mut out = as_list(a);
            out.extend(as_list(b));
            j(Value::Array(out))
        }
        "reverse" => Ok(a0().map(|v| {
            let mut l = as_list(Some(v));
            l.reverse();
            Val::J(Value::Array(l))
        })),
        "sort" => {
            let Some(v) = a0() else { return Ok(None) };
            let mut l = as_list(Some(v));
            if let Ok(f) = func(1) {
                // Insertion sort driven by the comparator ("should a come after b?").
                let mut sorted: Vec<Value> = Vec::new();
                for item in l {
                    let mut pos = sorted.len();
                    for (i, s) in sorted.iter().enumerate() {
                        let after = call(
                            &f,
                            vec![Some(Val::J(s.clone())), Some(Val::J(item.clone()))],
                            ctx,
                        )?;
                        if truthy(&json(after)) {
                            pos = i;
                            break;
                        }
                    }
                    sorted.insert(pos, item);
                }
                return j(Value::Array(sorted));
            }
            l.sort_by(|a, b| match (a, b) {
                (Value::Number(x), Value::Number(y)) => x
                    .as_f64()
                    .partial_cmp(&y.as_f64())
                    .unwrap_or(std::cmp::Ordering::Equal),
                _ => stringify(a).cmp(&stringify(b)),
            });
            j(Value::Array(l))
        }
        "distinct" => {
            let Some(v) = a0() else { return Ok(None) };
            let mut out: Vec<Value> = Vec::new();
            for x in as_list(Some(v)) {
                if !out.iter().any(|o| deep_eq(o, &x)) {
                    out.push(x);
                }
            }
            j(Value::Array(out))
        }
        "map" | "filter" | "each" => {
            let f = func(1)?;
            let arity = match &*f {
                Func::Lambda { params, .. } => params.len(),
                Func::Builtin(_) | Func::Regex(_) => 1,
            };
            let mut out = Vec::new();
            if name == "each" {
                let Some(Value::Object(m)) = a0() else {
                    return Ok(None);
                };
                for (k, v) in m {
                    let mut a = vec![Some(Val::J(v)), Some(Val::J(Value::String(k)))];
                    a.truncate(arity.max(1));
                    if let Some(r) = json(call(&f, a, ctx)?) {
                        out.push(r);
                    }
                }
                return Ok(collapse(out).map(Val::J));
            }
            let list = as_list(a0());
            let whole = Value::Array(list.clone());
            for (i, item) in list.into_iter().enumerate() {
                let mut a = vec![
                    Some(Val::J(item.clone())),
                    Some(Val::J(Value::from(i))),
                    Some(Val::J(whole.clone())),
                ];
                a.truncate(arity.max(1));
                let r = json(call(&f, a, ctx)?);
                if name == "map" {
                    if let Some(r) = r {
                        out.push(r);
                    }
                } else if truthy(&r) {
                    out.push(item);
                }
            }
            Ok(collapse(out).map(Val::J))
        }
        "reduce" => {
            let f = func(1)?;
            let mut list = as_list(a0()).into_iter();
            let mut acc = match arg(args, 2) {
                Some(init) => Some(init),
                None => list.next(),
            };
            for item in list {
                acc = json(call(&f, vec![acc.map(Val::J), Some(Val::J(item))], ctx)?);
            }
            Ok(acc.map(Val::J))
        }
        "floor" | "ceil" | "round" | "abs" | "sqrt" => {
            let Some(x) = a0().and_then(|v| v.as_f64()) else {
                return Ok(None);
            };
            j(num(match name {
                "floor" => x.floor(),
                "ceil" => x.ceil(),
                "abs" => x.abs(),
                "sqrt" => x.sqrt(),
                _ => {
                    let digits = arg(args, 1).and_then(|v| v.as_i64()).unwrap_or(0) as i32;
                    let scale = 10f64.powi(digits);
                    let v = x * scale;
                    // Round half to even, as JSONata does.
                    let r = v.round();
                    let r = if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
                        r - v.signum()
                    } else {
                        r
                    };
                    r / scale
                }
            }))
        }
        "power" => {
            let (Some(x), Some(y)) = (
                a0().and_then(|v| v.as_f64()),
                arg(args, 1).and_then(|v| v.as_f64()),
            ) else {
                return Ok(None);
            };
            j(num(x.powf(y)))
        }
        "type" => Ok(args.first().cloned().flatten().map(|v| {
            Val::J(Value::String(
                match v {
                    Val::F(_) => "function",
                    Val::J(Value::Null) => "null",
                    Val::J(Value::Bool(_)) => "boolean",
                    Val::J(Value::Number(_)) => "number",
                    Val::J(Value::String(_)) => "string",
                    Val::J(Value::Array(_)) => "array",
                    Val::J(Value::Object(_)) => "object",
                }
                .into(),
            ))
        })),
        "now" => j(Value::String(crate::time::Timestamp::now().to_rfc3339())),
        "millis" => j(Value::from(crate::time::Timestamp::now().millis())),
        "toMillis" => Ok(str0()
            .and_then(|s| crate::time::parse_rfc3339(&s))
            .map(|n| Val::J(Value::from((n / 1_000_000) as i64)))),
        "fromMillis" => Ok(a0()
            .and_then(|v| v.as_i64())
            .map(|ms| Val::J(Value::String(crate::time::Timestamp(ms).to_rfc3339())))),
        "uuid" => j(Value::String(crate::intrinsics::uuid_v4())),
        "parse" => {
            let Some(s) = str0() else { return Ok(None) };
            serde_json::from_str(&s)
                .map(|v| Some(Val::J(normalize_numbers(v))))
                .map_err(|_| format!("D3141: Unable to parse the string as JSON: {s}"))
        }
        "partition" | "range" | "hash" | "random" => {
            // Step Functions' functions share the intrinsics' implementations.
            let intrinsic = match name {
                "partition" => "States.ArrayPartition",
                "range" => "States.ArrayRange",
                "hash" => "States.Hash",
                _ => "States.MathRandom",
            };
            let vals: Vec<Value> = (0..args.len())
                .map(|i| arg(args, i).unwrap_or(Value::Null))
                .collect();
            if name == "random" {
                let mut rng = match vals.first().and_then(Value::as_u64) {
                    Some(seed) => fastrand::Rng::with_seed(seed),
                    None => fastrand::Rng::new(),
                };
                return j(num(rng.f64()));
            }
            let v = crate::intrinsics::apply_by_name(intrinsic, vals).map_err(|e| e.to_string())?;
            // $range yields a JSONata sequence, so a single number is not wrapped.
            match v {
                Value::Array(mut a) if name == "range" && a.len() == 1 => j(a.pop().expect("one")),
                other => j(other),
            }
        }
        "single" => {
            let l = as_list(a0());
            if l.len() == 1 {
                j(l[0].clone())
            } else {
                Err("D3138: The $single() function expected exactly 1 matching result".into())
            }
        }
        "zip" => {
            let lists: Vec<Vec<Value>> = (0..args.len()).map(|i| as_list(arg(args, i))).collect();
            let n = lists.iter().map(Vec::len).min().unwrap_or(0);
            j(Value::Array(
                (0..n)
                    .map(|i| Value::Array(lists.iter().map(|l| l[i].clone()).collect()))
                    .collect(),
            ))
        }
        "spread" => {
            let mut out = Vec::new();
            for v in as_list(a0()) {
                if let Value::Object(m) = v {
                    for (k, x) in m {
                        out.push(Value::Object(Map::from_iter([(k, x)])));
                    }
                }
            }
            Ok(collapse(out).map(Val::J))
        }
        "error" => Err(format!(
            "D3137: {}",
            str0().unwrap_or_else(|| "$error() function evaluated".into())
        )),
        "assert" => {
            if truthy(&a0()) {
                Ok(None)
            } else {
                Err(format!(
                    "D3141: {}",
                    arg(args, 1)
                        .map(|v| stringify(&v))
                        .unwrap_or_else(|| "$assert() statement failed".into())
                ))
            }
        }
        other => Err(format!(
            "T1006: Attempted to invoke a non-function: ${other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(expr: &str) -> Result<Value, EvalError> {
        let mut vars = Map::new();
        vars.insert(
            "states".into(),
            json!({"input": {"a": 1, "items": [{"n": "x", "v": 2}, {"n": "y", "v": 3}], "s": " hi  there "}}),
        );
        vars.insert("x".into(), json!(10));
        evaluate(expr, &vars, "Output")
    }

    #[test]
    fn paths_and_operators() {
        assert_eq!(ev("$states.input.a + $x * 2").unwrap(), json!(21));
        assert_eq!(ev("$states.input.items.n").unwrap(), json!(["x", "y"]));
        assert_eq!(ev("$states.input.items[v > 2].n").unwrap(), json!("y"));
        assert_eq!(ev("$states.input.items[0].v").unwrap(), json!(2));
        assert_eq!(ev("$states.input.a = 1 and $x >= 10").unwrap(), json!(true));
        assert_eq!(ev("'a' & 1 & true").unwrap(), json!("a1true"));
        assert_eq!(ev("$x > 5 ? 'big' : 'small'").unwrap(), json!("big"));
        assert_eq!(ev("[1..3]").unwrap(), json!([1, 2, 3]));
        assert_eq!(
            ev("{'k': $x, 'l': [1, 2]}").unwrap(),
            json!({"k": 10, "l": [1, 2]})
        );
        assert_eq!(ev("($y := 2; $y * $x)").unwrap(), json!(20));
        assert_eq!(ev("2 in [1, 2]").unwrap(), json!(true));
    }

    #[test]
    fn functions() {
        assert_eq!(ev("$sum($states.input.items.v)").unwrap(), json!(5));
        assert_eq!(ev("$trim($states.input.s)").unwrap(), json!("hi there"));
        assert_eq!(
            ev("$map([1, 2], function($v) { $v * 2 })").unwrap(),
            json!([2, 4])
        );
        assert_eq!(
            ev("$join($each({'a': 1, 'b': 2}, function($v, $k) { $k }), ',')").unwrap(),
            json!("a,b")
        );
        assert_eq!(
            ev("$partition([1, 2, 3], 2)").unwrap(),
            json!([[1, 2], [3]])
        );
        assert_eq!(ev("$range(0, 4, 2)").unwrap(), json!([0, 2, 4]));
        assert_eq!(ev("$parse('{\"a\": 1}')").unwrap(), json!({"a": 1}));
        assert_eq!(ev("[3, 1, 2] ~> $sort()").unwrap(), json!([1, 2, 3]));
        assert_eq!(ev("$not(false)").unwrap(), json!(true));
        assert_eq!(ev("$round(2.5)").unwrap(), json!(2));
    }

    #[test]
    fn errors_use_aws_texts() {
        assert_eq!(
            ev("$doesNotExist").unwrap_err().message,
            "The JSONata expression '$doesNotExist' specified for the field 'Output' returned nothing (undefined)."
        );
        assert!(ev("$nope(1)")
            .unwrap_err()
            .message
            .ends_with("T1006: Attempted to invoke a non-function"));
        assert!(parse("10 + * 2").is_err());
        assert!(parse("(1 + 2").is_err());
        assert!(parse("$.store.book[?(@.price < 10)].title").is_err());
        assert!(parse("420.").is_err());
    }
}
