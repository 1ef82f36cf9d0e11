//! The event-pattern compiler: raw pattern text in, AND/OR branches of per-field matchers out,
//! with AWS's validation order and error texts.
//!
//! Compilation follows event-ruler's `JsonRuleCompiler` (what AWS runs): a streaming walk
//! that reports the first problem in document order, lets a later duplicate key replace an
//! earlier one, and expands `$or` into separate branches. When that fails, event-ruler's
//! `Machine.addRule` retries with its legacy compiler, for which `$or` is an ordinary field
//! name; AWS accepts what the retry accepts, but reports the first compiler's error.

mod cidr;
mod ignore_case;
mod number;
mod wildcard;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use crate::json::{SyntaxError, Token, Tokenizer};

pub(crate) use cidr::{parse_ip, IpRange};
pub(crate) use ignore_case::{key_into as fold_key_into, Folded};
pub(crate) use number::comparable;
pub(crate) use wildcard::Glob;

/// Field names that cannot be used inside `$or`: operator names, including ones AWS reserves
/// for future use.
const RESERVED_IN_OR: &[&str] = &[
    "exactly",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    "regex",
    "not-wildcard",
    "not-equals-ignore-case",
    "date-after",
    "date-on-or-after",
    "date-before",
    "date-on-or-before",
    "in-date-range",
    "ip-address-in-range",
    "ip-address-not-in-range",
];

const TOO_COMPLEX: &str = "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character";

// === types ===

/// A compiled event pattern: one or more branches (more than one only through `$or`), any of
/// which matching means the pattern matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub(crate) branches: Vec<Branch>,
}

/// Why a pattern was rejected. Displays as AWS's exact `InvalidEventPatternException`
/// message, which is a wire contract (hence not lowercase).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is not a valid event pattern.
    #[error("Event pattern is not valid. Reason: {reason}")]
    Invalid {
        /// event-ruler's reason text.
        reason: String,
    },
}

/// One AND-combination of field conditions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Branch {
    /// Sorted by path, the order in which event-ruler's automaton visits fields.
    pub(crate) fields: Vec<FieldCondition>,
}

/// The condition on one flattened field path: any matcher, or (if `absent`) no value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldCondition {
    pub(crate) path: String,
    pub(crate) matchers: Vec<Matcher>,
    pub(crate) absent: bool,
}

/// A test of one flattened event value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Matcher {
    /// A string, compared byte for byte.
    Exact(String),
    /// A number, `true`, `false` or `null`, compared by its text (numbers only when they are
    /// not exactly comparable as doubles).
    Literal(String),
    NumericEquals(f64),
    Range(NumericRange),
    /// An address range. The flag is set when the field condition has no numeric matcher: then
    /// event-ruler also walks every number's text through the range (see `cidr`), otherwise
    /// only the text of numbers too precise to compare.
    Ip(IpRange, bool),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(Folded),
    PrefixIgnoreCase(Folded),
    SuffixIgnoreCase(Folded),
    Wildcard(Glob),
    Exists,
    AnythingBut(AnythingBut),
}

/// A numeric range; `None` bounds are open-ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NumericRange {
    pub(crate) low: Option<(f64, bool)>,
    pub(crate) high: Option<(f64, bool)>,
}

/// The excluded set of an `anything-but`. Values of another type than the set always pass.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnythingBut {
    Strings(HashSet<String>),
    Numbers(Vec<f64>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    IgnoreCase(Vec<Folded>),
    Wildcards(Vec<Glob>),
}

/// One flattened event value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    /// Borrowed from the event text unless it had escapes.
    Str(Cow<'a, str>),
    /// Number text, and its double when exactly comparable.
    Num(&'a str, Option<f64>),
    True,
    False,
    Null,
}

/// A pattern token with owned text (compiling is not the hot path; matching is).
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    StartObject,
    EndObject,
    StartArray,
    EndArray,
    FieldName(String),
    String(String),
    Number(String),
    True,
    False,
    Null,
}

/// The per-branch field map while compiling: insertion-ordered, last write wins.
type RuleMap = Vec<(String, FieldCondition)>;

struct Compiler<'a> {
    tokens: Tokenizer<'a>,
    or_enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnythingButKind {
    Plain,
    IgnoreCase,
    Prefix,
    Suffix,
    Wildcard,
}

// === impl Pattern ===

impl Pattern {
    /// Compiles raw pattern text.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let mut branches = match compile(text, true) {
            Ok(b) => b,
            // Machine.addRule's retry: `$or` as an ordinary field name. Its own error is never
            // shown; AWS reports the first compiler's.
            Err(reason) => compile(text, false).map_err(|_| PatternError::Invalid { reason })?,
        };
        check_complexity(&branches)?;
        mark_number_text_fields(&mut branches);
        Ok(Pattern { branches })
    }

    /// The number of AND-branches (more than one only through `$or`).
    pub fn branch_count(&self) -> usize {
        self.branches.len()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.branches.iter().enumerate() {
            if i > 0 {
                f.write_str(" OR ")?;
            }
            let names: Vec<&str> = b.fields.iter().map(|c| c.path.as_str()).collect();
            write!(f, "({})", names.join(" AND "))?;
        }
        Ok(())
    }
}

// === impl PatternError ===

impl PatternError {
    /// event-ruler's reason, without AWS's `Event pattern is not valid. Reason: ` prefix.
    pub fn reason(&self) -> &str {
        match self {
            PatternError::Invalid { reason } => reason,
        }
    }
}

fn invalid(reason: &str) -> PatternError {
    PatternError::Invalid {
        reason: reason.to_owned(),
    }
}

/// event-ruler reads a number as text, not as a number, when the value matcher of its field
/// holds no numeric pattern; only then do address ranges see every number's digits. Branches
/// (from `$or`) whose conditions on the fields sorted before this one are identical walk the
/// same automaton states, so they share that value matcher: the question is asked per field
/// across the branches sharing the prefix.
fn mark_number_text_fields(branches: &mut [Branch]) {
    let is_numeric = |c: &FieldCondition| {
        c.matchers.iter().any(|m| {
            matches!(
                m,
                Matcher::NumericEquals(_)
                    | Matcher::Range(_)
                    | Matcher::AnythingBut(AnythingBut::Numbers(_))
            )
        })
    };
    // Key: the conditions before the field, and the field's path.
    let key = |b: &Branch, i: usize| format!("{:?}|{}", &b.fields[..i], b.fields[i].path);
    let mut numeric: HashSet<String> = HashSet::new();
    for b in branches.iter() {
        for (i, c) in b.fields.iter().enumerate() {
            if is_numeric(c) {
                numeric.insert(key(b, i));
            }
        }
    }
    // Decide everything before changing anything: the keys include the matchers.
    let flags: Vec<Vec<bool>> = branches
        .iter()
        .map(|b| {
            (0..b.fields.len())
                .map(|i| !numeric.contains(&key(b, i)))
                .collect()
        })
        .collect();
    for (b, flags) in branches.iter_mut().zip(flags) {
        for (cond, all_numbers) in b.fields.iter_mut().zip(flags) {
            for m in &mut cond.matchers {
                if let Matcher::Ip(_, flag) = m {
                    *flag = all_numbers;
                }
            }
        }
    }
}

/// AWS's extra limit on top of event-ruler: the wildcard machine of the rule must stay small.
fn check_complexity(branches: &[Branch]) -> Result<(), PatternError> {
    let mut by_path: Vec<(&str, Vec<&Glob>)> = Vec::new();
    for branch in branches {
        for cond in &branch.fields {
            for m in &cond.matchers {
                let globs: Vec<&Glob> = match m {
                    Matcher::Wildcard(g) => vec![g],
                    Matcher::AnythingBut(AnythingBut::Wildcards(gs)) => gs.iter().collect(),
                    _ => continue,
                };
                let entry = match by_path.iter_mut().find(|(p, _)| *p == cond.path) {
                    Some(e) => e,
                    None => {
                        by_path.push((&cond.path, Vec::new()));
                        by_path.last_mut().expect("just pushed")
                    }
                };
                for g in globs {
                    if !entry.1.contains(&g) {
                        entry.1.push(g);
                    }
                }
            }
        }
    }
    for (_, globs) in &by_path {
        if wildcard::complexity(globs) > wildcard::MAX_COMPLEXITY {
            return Err(invalid(TOO_COMPLEX));
        }
    }
    Ok(())
}

// === impl Matcher ===

impl Matcher {
    /// Whether this matcher accepts one flattened event value.
    pub(crate) fn matches(&self, value: &Scalar) -> bool {
        match (self, value) {
            (Matcher::Exists, _) => true,
            (Matcher::Exact(s), Scalar::Str(v)) => s == v.as_ref(),
            (Matcher::Literal(s), Scalar::Num(t, None)) => s == t,
            (Matcher::Literal(s), Scalar::True) => s == "true",
            (Matcher::Literal(s), Scalar::False) => s == "false",
            (Matcher::Literal(s), Scalar::Null) => s == "null",
            (Matcher::NumericEquals(n), Scalar::Num(_, Some(v))) => n == v,
            (Matcher::Range(r), Scalar::Num(_, Some(v))) => r.contains(*v),
            (Matcher::Ip(r, _), Scalar::Str(v)) => parse_ip(v).is_some_and(|ip| r.contains(ip)),
            (Matcher::Ip(r, all_numbers), Scalar::Num(t, n)) => {
                (*all_numbers || n.is_none()) && r.accepts(t.as_bytes())
            }
            (Matcher::Prefix(p), Scalar::Str(v)) => v.starts_with(p.as_str()),
            (Matcher::Suffix(p), Scalar::Str(v)) => v.ends_with(p.as_str()),
            (Matcher::EqualsIgnoreCase(f), Scalar::Str(v)) => f.equals(v),
            (Matcher::PrefixIgnoreCase(f), Scalar::Str(v)) => f.is_prefix_of(v),
            (Matcher::SuffixIgnoreCase(f), Scalar::Str(v)) => f.is_suffix_of(v),
            (Matcher::Wildcard(g), Scalar::Str(v)) => g.matches(v),
            (Matcher::AnythingBut(a), v) => a.accepts(v),
            _ => false,
        }
    }
}

// === impl NumericRange ===

impl NumericRange {
    pub(crate) fn contains(&self, v: f64) -> bool {
        let above = match self.low {
            None => true,
            Some((low, open)) => v > low || (!open && v == low),
        };
        let below = match self.high {
            None => true,
            Some((high, open)) => v < high || (!open && v == high),
        };
        above && below
    }
}

// === impl AnythingBut ===

impl AnythingBut {
    fn accepts(&self, value: &Scalar) -> bool {
        // `{"anything-but": {"prefix": []}}` passes validation, but event-ruler's machine
        // never matches it (alone, adding it even fails): an empty set accepts nothing.
        let empty = match self {
            AnythingBut::Prefixes(v) | AnythingBut::Suffixes(v) => v.is_empty(),
            AnythingBut::IgnoreCase(v) => v.is_empty(),
            AnythingBut::Wildcards(v) => v.is_empty(),
            AnythingBut::Strings(_) | AnythingBut::Numbers(_) => false,
        };
        if empty {
            return false;
        }
        match (self, value) {
            (AnythingBut::Strings(set), Scalar::Str(v)) => !set.contains(v.as_ref()),
            (AnythingBut::Numbers(set), Scalar::Num(_, Some(v))) => !set.contains(v),
            (AnythingBut::Prefixes(set), Scalar::Str(v)) => {
                !set.iter().any(|p| v.starts_with(p.as_str()))
            }
            (AnythingBut::Suffixes(set), Scalar::Str(v)) => {
                !set.iter().any(|p| v.ends_with(p.as_str()))
            }
            (AnythingBut::IgnoreCase(set), Scalar::Str(v)) => !set.iter().any(|f| f.equals(v)),
            (AnythingBut::Wildcards(set), Scalar::Str(v)) => !set.iter().any(|g| g.matches(v)),
            _ => true,
        }
    }
}

// === impl Scalar ===

impl<'a> Scalar<'a> {
    pub(crate) fn number(text: &'a str) -> Scalar<'a> {
        let n = comparable(text);
        Scalar::Num(text, n)
    }
}

// === the compiler ===

fn compile(text: &str, or_enabled: bool) -> Result<Vec<Branch>, String> {
    let mut c = Compiler {
        tokens: Tokenizer::new(text),
        or_enabled,
    };
    if c.next_opt()? != Some(Tok::StartObject) {
        return Err("Filter is not an object".to_owned());
    }
    let mut rules: Vec<RuleMap> = Vec::new();
    c.parse_object(&mut rules, &mut Vec::new(), false)?;
    Ok(rules
        .into_iter()
        .map(|rule| {
            let mut fields: Vec<FieldCondition> = rule.into_iter().map(|(_, c)| c).collect();
            fields.sort_by(|a, b| java_order(&a.path, &b.path));
            Branch { fields }
        })
        .collect())
}

/// Java's `String.compareTo` (UTF-16 code units), which orders event-ruler's field keys.
fn java_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

impl Compiler<'_> {
    fn next_opt(&mut self) -> Result<Option<Tok>, String> {
        let token = self.tokens.next_token().map_err(|SyntaxError(m)| m)?;
        Ok(token.map(|t| match t {
            Token::StartObject => Tok::StartObject,
            Token::EndObject => Tok::EndObject,
            Token::StartArray => Tok::StartArray,
            Token::EndArray => Tok::EndArray,
            Token::FieldName(n) => Tok::FieldName(n.into_owned()),
            Token::String(s) => Tok::String(s.into_owned()),
            Token::Number(n) => Tok::Number(n.to_owned()),
            Token::True => Tok::True,
            Token::False => Tok::False,
            Token::Null => Tok::Null,
        }))
    }

    fn next(&mut self) -> Result<Tok, String> {
        // Running out of tokens mid-pattern can only follow a completed root: report it as
        // Jackson reports a truncated object.
        self.next_opt()?.ok_or_else(|| {
            "Unexpected end-of-input: expected close marker for Object (start marker".to_owned()
        })
    }

    fn parse_object(
        &mut self,
        rules: &mut Vec<RuleMap>,
        path: &mut Vec<String>,
        inside_or: bool,
    ) -> Result<(), String> {
        let mut any = false;
        loop {
            let name = match self.next()? {
                Tok::EndObject => break,
                Tok::FieldName(name) => name,
                other => return Err(format!("Unexpected token {}", text_of(&other))),
            };
            any = true;
            if self.or_enabled && name == "$or" {
                self.parse_or(rules, path)?;
                continue;
            }
            if inside_or && RESERVED_IN_OR.contains(&name.as_str()) {
                return Err(format!(
                    "{name} is Ruler reserved fieldName which cannot be used inside $or."
                ));
            }
            match self.next()? {
                Tok::StartObject => {
                    path.push(name);
                    self.parse_object(rules, path, inside_or)?;
                    path.pop();
                }
                Tok::StartArray => {
                    let mut full = path.join(".");
                    if !full.is_empty() {
                        full.push('.');
                    }
                    full.push_str(&name);
                    self.write_rules(rules, full)?;
                }
                _ => return Err(format!("\"{name}\" must be an object or an array")),
            }
        }
        if !any {
            return Err("Empty objects are not allowed".to_owned());
        }
        Ok(())
    }

    fn parse_or(&mut self, rules: &mut Vec<RuleMap>, path: &mut Vec<String>) -> Result<(), String> {
        let current = std::mem::take(rules);
        if self.next()? != Tok::StartArray {
            return Err("It must be an Array followed with $or.".to_owned());
        }
        let mut count = 0;
        loop {
            match self.next()? {
                Tok::EndArray => break,
                Tok::StartObject => {
                    count += 1;
                    let mut forked = current.clone();
                    if forked.is_empty() {
                        forked.push(Vec::new());
                    }
                    self.parse_object(&mut forked, path, true)?;
                    rules.extend(forked);
                }
                _ => {
                    return Err(
                        "Only JSON object is allowed in array of $or relationship.".to_owned()
                    )
                }
            }
        }
        if count < 2 {
            return Err("There must have at least 2 Objects in $or relationship.".to_owned());
        }
        Ok(())
    }

    fn write_rules(&mut self, rules: &mut Vec<RuleMap>, path: String) -> Result<(), String> {
        let mut cond = FieldCondition {
            path: path.clone(),
            matchers: Vec::new(),
            absent: false,
        };
        let mut count = 0;
        loop {
            let token = self.next()?;
            match token {
                Tok::EndArray => break,
                Tok::StartObject => match self.match_expression()? {
                    Some(m) => cond.matchers.push(m),
                    None => cond.absent = true,
                },
                Tok::String(s) => cond.matchers.push(match IpRange::single(&s) {
                    Some(r) => Matcher::Ip(r, false),
                    None => Matcher::Exact(s),
                }),
                Tok::Number(t) => cond.matchers.push(match comparable(&t) {
                    Some(n) => Matcher::NumericEquals(n),
                    None => Matcher::Literal(t),
                }),
                Tok::True => cond.matchers.push(Matcher::Literal("true".into())),
                Tok::False => cond.matchers.push(Matcher::Literal("false".into())),
                Tok::Null => cond.matchers.push(Matcher::Literal("null".into())),
                _ => {
                    return Err(
                        "Match value must be String, number, true, false, or null".to_owned()
                    )
                }
            }
            count += 1;
        }
        if count == 0 {
            return Err("Empty arrays are not allowed".to_owned());
        }
        if rules.is_empty() {
            rules.push(Vec::new());
        }
        for rule in rules.iter_mut() {
            match rule.iter_mut().find(|(p, _)| *p == path) {
                Some(slot) => slot.1 = cond.clone(),
                None => rule.push((path.clone(), cond.clone())),
            }
        }
        Ok(())
    }

    /// One `{ "op": … }` object inside a value array, after its `{`. `None` is
    /// `{"exists": false}`.
    fn match_expression(&mut self) -> Result<Option<Matcher>, String> {
        let name = match self.next()? {
            Tok::FieldName(n) => n,
            _ => return Err("Match expression name not found".to_owned()),
        };
        let matcher = match name.as_str() {
            "exactly" => {
                let Tok::String(s) = self.next()? else {
                    return Err("exact match pattern must be a string".to_owned());
                };
                self.end_object()?;
                Matcher::Exact(s)
            }
            "prefix" | "suffix" => {
                let is_prefix = name == "prefix";
                match self.next()? {
                    Tok::StartObject => return self.ignore_case_affix(is_prefix).map(Some),
                    Tok::String(s) => {
                        self.end_object()?;
                        if is_prefix {
                            Matcher::Prefix(s)
                        } else {
                            Matcher::Suffix(s)
                        }
                    }
                    _ => return Err(format!("{name} match pattern must be a string")),
                }
            }
            "numeric" => {
                if self.next()? != Tok::StartArray {
                    return Err("Value of numeric must be an array.".to_owned());
                }
                let m = self.numeric()?;
                if self.next()? != Tok::EndObject {
                    return Err("Too many elements in numeric expression".to_owned());
                }
                m
            }
            "anything-but" => self.anything_but()?,
            "exists" => {
                let present = match self.next()? {
                    Tok::True => true,
                    Tok::False => false,
                    _ => {
                        return Err("exists match pattern must be either true or false.".to_owned())
                    }
                };
                self.end_object()?;
                return Ok(present.then_some(Matcher::Exists));
            }
            "cidr" => {
                let Tok::String(s) = self.next()? else {
                    return Err("prefix match pattern must be a string".to_owned());
                };
                let range = IpRange::cidr(&s)?;
                self.end_object()?;
                Matcher::Ip(range, false)
            }
            "equals-ignore-case" => {
                let Tok::String(s) = self.next()? else {
                    return Err("equals-ignore-case match pattern must be a string".to_owned());
                };
                self.end_object()?;
                Matcher::EqualsIgnoreCase(Folded::new(&s))
            }
            "wildcard" => {
                let Tok::String(s) = self.next()? else {
                    return Err("wildcard match pattern must be a string".to_owned());
                };
                let glob = Glob::parse(&s)?;
                self.end_object()?;
                Matcher::Wildcard(glob)
            }
            _ => return Err(format!("Unrecognized match type {name}")),
        };
        Ok(Some(matcher))
    }

    fn end_object(&mut self) -> Result<(), String> {
        if self.next()? != Tok::EndObject {
            return Err("Only one key allowed in match expression".to_owned());
        }
        Ok(())
    }

    /// `{"prefix": {"equals-ignore-case": "…"}}` and the suffix twin, after the inner `{`.
    fn ignore_case_affix(&mut self, is_prefix: bool) -> Result<Matcher, String> {
        let (label, upper) = if is_prefix {
            ("prefix", "Prefix")
        } else {
            ("suffix", "Suffix")
        };
        let op = match self.next()? {
            Tok::FieldName(n) => n,
            _ => return Err(format!("{upper} expression name not found")),
        };
        if op != "equals-ignore-case" {
            return Err(format!("Unsupported {label} pattern: {op}"));
        }
        let Tok::String(s) = self.next()? else {
            return Err("equals-ignore-case match pattern must be a string".to_owned());
        };
        self.end_object()?;
        self.end_object()?;
        let folded = Folded::new(&s);
        Ok(if is_prefix {
            Matcher::PrefixIgnoreCase(folded)
        } else {
            Matcher::SuffixIgnoreCase(folded)
        })
    }

    /// The body of `"numeric": [ … ]`, after the `[`, up to and including the `]`.
    fn numeric(&mut self) -> Result<Matcher, String> {
        let op = match self.next()? {
            Tok::String(s) => s,
            other => {
                return Err(format!(
                    "Invalid member in numeric match: {}",
                    text_of(&other)
                ))
            }
        };
        let value = self.next()?;
        match op.as_str() {
            "=" => {
                let v = numeric_text(value, "Value of equals must be numeric")?;
                if self.next()? != Tok::EndArray {
                    return Err("Too many elements in numeric expression".to_owned());
                }
                Ok(Matcher::NumericEquals(compare_number(&v)?))
            }
            ">=" | ">" => {
                let v = numeric_text(value, &format!("Value of {op} must be numeric"))?;
                let open = op == ">";
                match self.next()? {
                    Tok::EndArray => Ok(Matcher::Range(NumericRange {
                        low: Some((compare_number(&v)?, open)),
                        high: None,
                    })),
                    next => self.complete_range(next, &v, open),
                }
            }
            "<=" | "<" => {
                let v = numeric_text(value, &format!("Value of {op} must be numeric"))?;
                if self.next()? != Tok::EndArray {
                    return Err("Too many elements in numeric expression".to_owned());
                }
                Ok(Matcher::Range(NumericRange {
                    low: None,
                    high: Some((compare_number(&v)?, op == "<")),
                }))
            }
            _ => Err(format!("Unrecognized numeric range operator: {op}")),
        }
    }

    fn complete_range(
        &mut self,
        token: Tok,
        bottom: &str,
        open_bottom: bool,
    ) -> Result<Matcher, String> {
        let op = match token {
            Tok::String(s) => s,
            other => return Err(format!("Bad value in numeric range: {}", text_of(&other))),
        };
        let open_top = match op.as_str() {
            "<" => true,
            "<=" => false,
            _ => return Err(format!("Bad numeric range operator: {op}")),
        };
        let top = numeric_text(self.next()?, &format!("Value of {op} must be numeric"))?;
        if self.next()? != Tok::EndArray {
            return Err("Too many terms in numeric range expression".to_owned());
        }
        let low = compare_number(bottom)?;
        let high = compare_number(&top)?;
        if low >= high {
            return Err("Bottom must be less than top".to_owned());
        }
        Ok(Matcher::Range(NumericRange {
            low: Some((low, open_bottom)),
            high: Some((high, open_top)),
        }))
    }

    fn anything_but(&mut self) -> Result<Matcher, String> {
        let mut kind = AnythingButKind::Plain;
        let mut token = self.next()?;
        if token == Tok::StartObject {
            let op = match self.next()? {
                Tok::FieldName(n) => n,
                _ => return Err("Anything-But expression name not found".to_owned()),
            };
            kind = match op.as_str() {
                "equals-ignore-case" => AnythingButKind::IgnoreCase,
                "prefix" => AnythingButKind::Prefix,
                "suffix" => AnythingButKind::Suffix,
                "wildcard" => AnythingButKind::Wildcard,
                _ => return Err(format!("Unsupported anything-but pattern: {op}")),
            };
            token = self.next()?;
        }
        if !matches!(token, Tok::StartArray | Tok::String(_) | Tok::Number(_)) {
            return Err(
                "Value of anything-but must be an array or single string/number value.".to_owned(),
            );
        }
        let set = if kind == AnythingButKind::Plain {
            self.plain_anything_but(token)?
        } else {
            self.anything_but_set(token, kind)?
        };
        if self.next()? != Tok::EndObject {
            return Err("Too many elements in numeric expression".to_owned());
        }
        if kind != AnythingButKind::Plain && self.next()? != Tok::EndObject {
            return Err("Too many elements in numeric expression".to_owned());
        }
        Ok(Matcher::AnythingBut(set))
    }

    fn plain_anything_but(&mut self, first: Tok) -> Result<AnythingBut, String> {
        match first {
            Tok::String(s) => return Ok(AnythingBut::Strings(HashSet::from([s]))),
            Tok::Number(t) => return Ok(AnythingBut::Numbers(vec![compare_number(&t)?])),
            _ => {}
        }
        let mut strings = HashSet::new();
        let mut numbers = Vec::new();
        loop {
            match self.next()? {
                Tok::EndArray => break,
                Tok::String(s) => {
                    strings.insert(s);
                }
                Tok::Number(t) => numbers.push(compare_number(&t)?),
                _ => {
                    return Err(
                        "Inside anything but list, start|null|boolean is not supported.".to_owned(),
                    )
                }
            }
        }
        match (strings.is_empty(), numbers.is_empty()) {
            (false, true) => Ok(AnythingBut::Strings(strings)),
            (true, false) => Ok(AnythingBut::Numbers(numbers)),
            _ => Err("Inside anything but list, either all values are number or string, mixed type is not supported".to_owned()),
        }
    }

    fn anything_but_set(
        &mut self,
        first: Tok,
        kind: AnythingButKind,
    ) -> Result<AnythingBut, String> {
        let not_string = match kind {
            AnythingButKind::IgnoreCase => {
                "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported."
            }
            AnythingButKind::Wildcard => "wildcard match pattern must be a string",
            _ => "prefix/suffix match pattern must be a string",
        };
        let affix = matches!(kind, AnythingButKind::Prefix | AnythingButKind::Suffix);
        let mut values: Vec<String> = Vec::new();
        let mut take = |s: String| -> Result<(), String> {
            if affix && s.is_empty() {
                return Err("Null prefix/suffix not allowed".to_owned());
            }
            if !values.contains(&s) {
                values.push(s);
            }
            Ok(())
        };
        match first {
            Tok::String(s) => take(s)?,
            Tok::StartArray => loop {
                match self.next()? {
                    Tok::EndArray => break,
                    Tok::String(s) => take(s)?,
                    _ => return Err(not_string.to_owned()),
                }
            },
            _ => return Err(not_string.to_owned()),
        }
        Ok(match kind {
            AnythingButKind::IgnoreCase => {
                AnythingBut::IgnoreCase(values.iter().map(|v| Folded::new(v)).collect())
            }
            AnythingButKind::Prefix => AnythingBut::Prefixes(values),
            AnythingButKind::Suffix => AnythingBut::Suffixes(values),
            AnythingButKind::Wildcard => AnythingBut::Wildcards(
                values
                    .iter()
                    .map(|v| Glob::parse(v))
                    .collect::<Result<_, _>>()?,
            ),
            AnythingButKind::Plain => unreachable!("plain anything-but is handled separately"),
        })
    }
}

fn numeric_text(token: Tok, error: &str) -> Result<String, String> {
    match token {
        Tok::Number(t) => Ok(t),
        _ => Err(error.to_owned()),
    }
}

fn compare_number(text: &str) -> Result<f64, String> {
    comparable(text).ok_or_else(|| format!("Cannot compare number : {text}"))
}

/// Jackson's `getText()` for a token, used in a few error texts.
fn text_of(token: &Tok) -> String {
    match token {
        Tok::StartObject => "{".into(),
        Tok::EndObject => "}".into(),
        Tok::StartArray => "[".into(),
        Tok::EndArray => "]".into(),
        Tok::FieldName(s) | Tok::String(s) | Tok::Number(s) => s.clone(),
        Tok::True => "true".into(),
        Tok::False => "false".into(),
        Tok::Null => "null".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(p: &str) -> String {
        Pattern::parse(p).unwrap_err().reason().to_owned()
    }

    #[test]
    fn errors_come_in_document_order() {
        assert_eq!(
            reason(r#"{"a": 5, "b": "#),
            r#""a" must be an object or an array"#
        );
        assert_eq!(reason(r#"{}"#), "Empty objects are not allowed");
        assert_eq!(reason(r#"["a"]"#), "Filter is not an object");
        assert_eq!(
            reason(r#"{"x":[{"numeric":[">",0,">",0]}]}"#),
            "Bad numeric range operator: >"
        );
    }

    #[test]
    fn duplicate_key_last_wins() {
        let p = Pattern::parse(r#"{"a":["x"],"a":["y"]}"#).unwrap();
        assert_eq!(p.branches[0].fields.len(), 1);
        assert_eq!(
            p.branches[0].fields[0].matchers,
            vec![Matcher::Exact("y".into())]
        );
    }

    #[test]
    fn or_expands_into_branches() {
        let p = Pattern::parse(
            r#"{"s":["1"],"$or":[{"a":["1"]},{"b":["1"],"$or":[{"c":[1]},{"d":[2]}]}]}"#,
        )
        .unwrap();
        assert_eq!(p.branch_count(), 3);
        assert_eq!(
            p.to_string(),
            "(a AND s) OR (b AND c AND s) OR (b AND d AND s)"
        );
    }

    #[test]
    fn legacy_fallback_treats_or_as_a_field() {
        let p = Pattern::parse(r#"{"$or":{"a":["1"]}}"#).unwrap();
        assert_eq!(p.branches[0].fields[0].path, "$or.a");
        assert_eq!(
            reason(r#"{"$or":[{"a":["1"]}]}"#),
            "There must have at least 2 Objects in $or relationship."
        );
    }
}
