//! Citylots2-shaped events and event-ruler's citylots2 rule sets, shared by the benches.
//!
//! event-ruler benchmarks its matcher on `citylots2.json.gz`: 213,068 GeoJSON lot records of
//! about 900 bytes (`fixtures/benchmark-rulesets.json`, `dataset`). That file is not available,
//! so [`Generator`] makes records of the same shape, deterministically. The values the rules
//! name are planted at the rates the rules matched on the real data: a rule that matched `n`
//! records gets its value (or, for a prefix, suffix or wildcard, a value it accepts) into
//! `n / 213,068` of the records, and an anything-but rule gets its excluded value into the
//! records it did not match; rates under [`FLOOR`] are raised to it, so that every rule matches
//! a few events of a sample of thousands. Rules on several fields are planted whole. Numeric
//! ranges are left to the coordinates, spread over San Francisco as the real lots are.

#![allow(dead_code)] // each bench uses part of it

use std::collections::HashMap;

use serde_json::Value;

/// The rule sets, from aws/event-ruler@337e8d99 `Benchmarks.java` (Apache-2.0; see
/// `fixtures/README.md`).
pub const RULESETS_JSON: &str = include_str!("../fixtures/benchmark-rulesets.json");

/// The lowest planting rate.
pub const FLOOR: f64 = 0.001;

/// One rule set of the file.
pub struct RuleSet {
    pub name: String,
    pub rules: Vec<String>,
    /// Matches of each rule on the real citylots2 data.
    pub expected: Vec<u64>,
}

/// The contents of `benchmark-rulesets.json` the benches use.
pub struct Rulesets {
    /// In file order.
    pub sets: Vec<RuleSet>,
    /// `PARTIAL_COMBO` and `COMBO`: names of the sets whose rules they join.
    pub combos: Vec<(String, Vec<String>)>,
    /// Records of the real data set.
    pub records: u64,
}

impl Rulesets {
    pub fn load() -> Rulesets {
        let v: Value = serde_json::from_str(RULESETS_JSON).expect("valid rule set file");
        let sets = v["rule_sets"]
            .as_object()
            .expect("rule_sets")
            .iter()
            .map(|(name, s)| RuleSet {
                name: name.clone(),
                rules: strings(&s["rules"]),
                expected: s["expected_matches"]
                    .as_array()
                    .expect("expected_matches")
                    .iter()
                    .map(|n| n.as_u64().expect("count"))
                    .collect(),
            })
            .collect();
        let combos = v["combo_sets"]
            .as_object()
            .expect("combo_sets")
            .iter()
            .map(|(name, s)| (name.clone(), strings(s)))
            .collect();
        Rulesets {
            sets,
            combos,
            records: v["dataset"]["records"].as_u64().expect("records"),
        }
    }

    pub fn set(&self, name: &str) -> &RuleSet {
        self.sets
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no rule set {name}"))
    }

    /// The rules of a combo: those of its sets, in the combo's order.
    pub fn combo_rules(&self, sets: &[String]) -> Vec<String> {
        sets.iter()
            .flat_map(|s| self.set(s).rules.iter().cloned())
            .collect()
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

/// A small deterministic generator (xorshift), so runs are comparable.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[0, 1)`, full double precision.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// Streets for the lots no rule value was planted in (real San Francisco streets).
pub const STREETS: &[&str] = &[
    "OCTAVIA",
    "HAYES",
    "GROVE",
    "MARKET",
    "VALENCIA",
    "GEARY",
    "POLK",
    "LARKIN",
    "TARAVAL",
    "NORIEGA",
    "IRVING",
    "JUDAH",
    "LINCOLN",
    "CLEMENT",
    "CALIFORNIA",
    "SACRAMENTO",
    "CLAY",
    "BUSH",
    "PINE",
    "FELL",
    "OAK",
    "PAGE",
    "HAIGHT",
    "WALLER",
    "DIVISADERO",
    "GUERRERO",
    "DOLORES",
    "CHURCH",
    "SANCHEZ",
    "NOE",
    "CASTRO",
    "24TH",
    "18TH",
    "3RD",
    "19TH",
    "VAN NESS",
    "POTRERO",
    "BRYANT",
    "STEINER",
    "HOWARD",
];
pub const ST_TYPES: &[&str] = &["AVE", "BLVD", "WAY", "TER", "CT", "PL", "DR", "LN"];

/// The city's extent, for coordinates.
const X_RANGE: (f64, f64) = (-122.514, -122.357);
const Y_RANGE: (f64, f64) = (37.708, 37.832);

/// A value to plant: a string (`*` stands for filler, as in a wildcard) or a number.
#[derive(Debug, Clone, PartialEq)]
enum Plant {
    Str(String),
    Num(f64),
}

/// A value and how often to plant it.
#[derive(Debug, Clone)]
struct Choice {
    rate: f64,
    value: String,
}

/// Makes citylots2-shaped events with the values of the given rules planted.
pub struct Generator {
    rng: Rng,
    /// Single-field plantings: per field path, mutually exclusive values.
    fields: HashMap<String, Vec<Choice>>,
    /// Rules on several fields, planted whole.
    joint: Vec<(f64, Vec<(String, Plant)>)>,
}

impl Generator {
    /// A generator planting the values of every rule of `sets`.
    pub fn new(sets: &Rulesets, seed: u64) -> Generator {
        let mut concrete: HashMap<String, Vec<Choice>> = HashMap::new();
        let mut templates: HashMap<String, Vec<Choice>> = HashMap::new();
        let mut joint = Vec::new();
        for set in &sets.sets {
            for (rule, &n) in set.rules.iter().zip(&set.expected) {
                let rate = n as f64 / sets.records as f64;
                let conds = conditions(rule);
                if conds.len() > 1 {
                    let plants: Vec<(String, Plant)> = conds
                        .into_iter()
                        .filter_map(|(path, c)| c.plant().map(|(p, _)| (path, p)))
                        .collect();
                    joint.push((rate.max(FLOOR), plants));
                    continue;
                }
                let Some((path, cond)) = conds.into_iter().next() else {
                    continue;
                };
                let Some((Plant::Str(value), negated)) = cond.plant() else {
                    continue; // numbers on one field: left to the coordinates
                };
                let rate = if negated { 1.0 - rate } else { rate }.max(FLOOR);
                let to = if value.contains('*') {
                    &mut templates
                } else {
                    &mut concrete
                };
                add_choice(to.entry(path).or_default(), value, rate);
            }
        }
        // A value of the wrong case for its field (from equals-ignore-case) takes the spelling
        // a case-sensitive rule gives it, if any.
        let mut fields: HashMap<String, Vec<Choice>> = HashMap::new();
        for (path, mut values) in concrete {
            merge_case(&mut values);
            fields.insert(path, values);
        }
        for (path, ts) in templates {
            let values = fields.entry(path).or_default();
            // The concrete values a template accepts already count towards its rate.
            let planted: Vec<Choice> = ts
                .into_iter()
                .filter_map(|mut t| {
                    let covered: f64 = values
                        .iter()
                        .filter(|c| glob(&t.value, &c.value))
                        .map(|c| c.rate)
                        .sum();
                    t.rate -= covered;
                    (t.rate > 0.0).then_some(t)
                })
                .collect();
            values.extend(planted);
        }
        for values in fields.values_mut() {
            values.sort_by(|a, b| a.value.cmp(&b.value));
            let total: f64 = values.iter().map(|c| c.rate).sum();
            if total > 1.0 {
                for c in values.iter_mut() {
                    c.rate /= total;
                }
            }
        }
        Generator {
            rng: Rng(seed),
            fields,
            joint,
        }
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// A lot id as the data set spells them: 4-digit block, sometimes a letter, 3-digit lot.
    pub fn lot_id(rng: &mut Rng) -> String {
        let block = 1 + rng.below(7600);
        let lot = 1 + rng.below(300);
        if rng.below(20) == 0 {
            let letter = (b'A' + rng.below(4) as u8) as char;
            format!("{block:04}{letter}{lot:03}")
        } else {
            format!("{block:04}{lot:03}")
        }
    }

    /// One event (one line of the data set).
    pub fn event(&mut self) -> String {
        let mut set: HashMap<&str, Plant> = HashMap::new();
        for (rate, plants) in &self.joint {
            if self.rng.unit() < *rate && plants.iter().all(|(p, _)| !set.contains_key(p.as_str()))
            {
                for (p, v) in plants {
                    set.insert(p.as_str(), v.clone());
                }
            }
        }
        let rng = &mut self.rng;
        let fields = &self.fields;
        let string = |path: &'static str, set: &HashMap<&str, Plant>, rng: &mut Rng| {
            if let Some(Plant::Str(s)) = set.get(path) {
                return fill(s, path, rng);
            }
            if let Some(values) = fields.get(path) {
                let mut u = rng.unit();
                for c in values {
                    if u < c.rate {
                        return fill(&c.value, path, rng);
                    }
                    u -= c.rate;
                }
            }
            background(path, rng)
        };
        let mapblklot = string("properties.MAPBLKLOT", &set, rng);
        let street = string("properties.STREET", &set, rng);
        let st_type = string("properties.ST_TYPE", &set, rng);
        let from_st = string("properties.FROM_ST", &set, rng);
        let to_st = string("properties.TO_ST", &set, rng);
        let gtype = string("geometry.type", &set, rng);
        let (block, lot) = if mapblklot.len() >= 7 && mapblklot.is_ascii() {
            (
                &mapblklot[..mapblklot.len() - 3],
                &mapblklot[mapblklot.len() - 3..],
            )
        } else {
            (mapblklot.as_str(), "")
        };
        let odd_even = match from_st.bytes().last() {
            Some(d) if d.is_ascii_digit() && (d - b'0').is_multiple_of(2) => "E",
            _ => "O",
        };
        let number = |path: &str, range: (f64, f64), rng: &mut Rng| match set.get(path) {
            Some(Plant::Num(n)) => *n,
            _ => range.0 + rng.unit() * (range.1 - range.0),
        };
        let fx = number("geometry.firstCoordinates.x", X_RANGE, rng);
        let fy = number("geometry.firstCoordinates.y", Y_RANGE, rng);
        let fz = number("geometry.firstCoordinates.z", (0.0, 0.0), rng);
        // A ring of 8 to 14 vertices starting at the first coordinates, about 900 bytes in all.
        let vertices = 8 + rng.below(7) as usize;
        let mut points: Vec<(f64, f64, f64)> = (0..vertices)
            .map(|i| {
                if i == 0 {
                    return (fx, fy, fz);
                }
                let dx = (rng.unit() - 0.5) * 4e-4;
                let dy = (rng.unit() - 0.5) * 4e-4;
                (fx + dx, fy + dy, 0.0)
            })
            .collect();
        for (axis, path) in ["geometry.coordinates.x", "geometry.coordinates.y"]
            .iter()
            .enumerate()
        {
            if let Some(Plant::Num(n)) = set.get(path) {
                let p = &mut points[rng.below(vertices as u64) as usize];
                if axis == 0 {
                    p.0 = *n;
                } else {
                    p.1 = *n;
                }
            }
        }
        let ring = points
            .iter()
            .map(|(x, y, z)| format!(r#"{{"x":{x},"y":{y},"z":{z}}}"#))
            .collect::<Vec<_>>()
            .join(",");
        let coordinates = if gtype == "Polygon" {
            format!("[[{ring}]]")
        } else {
            format!("[[[{ring}]]]")
        };
        format!(
            r#"{{"type":"Feature","properties":{{"MAPBLKLOT":"{mapblklot}","BLKLOT":"{mapblklot}","BLOCK_NUM":"{block}","LOT_NUM":"{lot}","FROM_ST":"{from_st}","TO_ST":"{to_st}","STREET":"{street}","ST_TYPE":"{st_type}","ODD_EVEN":"{odd_even}"}},"geometry":{{"type":"{gtype}","coordinates":{coordinates},"firstCoordinates":{{"x":{fx},"y":{fy},"z":{fz}}}}}}}"#
        )
    }

    /// `n` events.
    pub fn events(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.event()).collect()
    }
}

fn add_choice(to: &mut Vec<Choice>, value: String, rate: f64) {
    match to.iter_mut().find(|c| c.value == value) {
        Some(c) => c.rate = c.rate.max(rate),
        None => to.push(Choice { rate, value }),
    }
}

/// Folds values that differ only in case into one, spelled as the first case-sensitive rule
/// (recorded as is) spells it; values only ignore-case rules name were upper-cased already.
fn merge_case(values: &mut Vec<Choice>) {
    let mut out: Vec<Choice> = Vec::new();
    // Mixed-case spellings first: they come from case-sensitive rules.
    values.sort_by_key(|c| c.value.chars().all(|ch| !ch.is_ascii_lowercase()));
    for c in values.drain(..) {
        match out
            .iter_mut()
            .find(|o| o.value.eq_ignore_ascii_case(&c.value))
        {
            Some(o) => o.rate = o.rate.max(c.rate),
            None => out.push(c),
        }
    }
    *values = out;
}

/// The value of a field no planting chose.
fn background(path: &str, rng: &mut Rng) -> String {
    match path {
        "properties.MAPBLKLOT" => Generator::lot_id(rng),
        "properties.STREET" => rng.pick(STREETS).to_owned(),
        "properties.ST_TYPE" => rng.pick(ST_TYPES).to_owned(),
        "properties.FROM_ST" | "properties.TO_ST" => (1 + rng.below(3000)).to_string(),
        "geometry.type" => "Polygon".to_owned(),
        _ => String::new(),
    }
}

/// Fills the `*` of `template` with characters of the field's kind, to about the field's length.
fn fill(template: &str, path: &str, rng: &mut Rng) -> String {
    let stars = template.matches('*').count();
    if stars == 0 {
        return template.to_owned();
    }
    let literal = template.len() - stars;
    let (target, digits) = match path {
        "properties.MAPBLKLOT" => (7, template.bytes().all(|b| b == b'*' || b.is_ascii_digit())),
        "properties.FROM_ST" | "properties.TO_ST" => (1 + rng.below(4) as usize, true),
        "properties.STREET" => (4 + rng.below(7) as usize, false),
        "properties.ST_TYPE" => (2 + rng.below(3) as usize, false),
        _ => (literal + 2, false),
    };
    let mut filler = target.saturating_sub(literal).max(stars);
    let mut out = String::with_capacity(literal + filler);
    let mut left = stars;
    for ch in template.chars() {
        if ch != '*' {
            out.push(ch);
            continue;
        }
        // At least one character per star, the rest spread at random.
        left -= 1;
        let take = if left == 0 {
            filler
        } else {
            1 + rng.below((filler - left) as u64) as usize
        };
        filler -= take;
        for _ in 0..take {
            out.push(if digits {
                (b'0' + rng.below(10) as u8) as char
            } else {
                (b'A' + rng.below(26) as u8) as char
            });
        }
    }
    out
}

/// Whether `value` matches `template` (`*`: any run of characters).
fn glob(template: &str, value: &str) -> bool {
    let parts: Vec<&str> = template.split('*').collect();
    let (first, rest) = parts.split_first().expect("split gives one part");
    let Some(mut v) = value.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return v.is_empty();
    };
    for m in middle {
        match v.find(m) {
            Some(i) => v = &v[i + m.len()..],
            None => return false,
        }
    }
    v.len() >= last.len() && v.ends_with(last)
}

/// One condition of a rule, as far as planting goes.
#[derive(Debug)]
enum Cond {
    /// A value that the condition accepts (or, negated, that it refuses).
    Plant(Plant, bool),
    /// Nothing to plant (numeric ranges, exists …).
    None,
}

impl Cond {
    fn plant(self) -> Option<(Plant, bool)> {
        match self {
            Cond::Plant(p, negated) => Some((p, negated)),
            Cond::None => None,
        }
    }
}

/// The `(path, condition)` pairs of a rule (the first value of each field's list).
fn conditions(rule: &str) -> Vec<(String, Cond)> {
    fn walk(v: &Value, path: &str, out: &mut Vec<(String, Cond)>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(v, &p, out);
                }
            }
            Value::Array(a) => {
                if let Some(first) = a.first() {
                    out.push((path.to_owned(), condition(first)));
                }
            }
            _ => {}
        }
    }
    let v: Value = serde_json::from_str(rule).expect("valid rule");
    let mut out = Vec::new();
    walk(&v, "", &mut out);
    // serde_json (without `float_roundtrip`) may read a long decimal one unit in the last place
    // off: take the correctly rounded reading of the literal in the text.
    let literals = number_literals(rule);
    for (_, c) in &mut out {
        if let Cond::Plant(Plant::Num(n), _) = c {
            if let Some(exact) = literals
                .iter()
                .copied()
                .find(|l| (l - *n).abs() <= n.abs() * 1e-12)
            {
                *n = exact;
            }
        }
    }
    out
}

/// The numbers written in JSON `text` (outside strings), correctly rounded.
fn number_literals(text: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            {
                i += 1;
            }
            if let Ok(n) = text[start..i].parse() {
                out.push(n);
            }
            continue;
        }
        i += 1;
    }
    out
}

fn condition(v: &Value) -> Cond {
    let upper = |s: &str| s.to_ascii_uppercase();
    match v {
        Value::String(s) => Cond::Plant(Plant::Str(s.clone()), false),
        Value::Number(n) => Cond::Plant(Plant::Num(n.as_f64().expect("number")), false),
        Value::Object(o) => {
            let Some((op, arg)) = o.iter().next() else {
                return Cond::None;
            };
            match (op.as_str(), arg) {
                ("prefix", Value::String(s)) => Cond::Plant(Plant::Str(format!("{s}*")), false),
                ("suffix", Value::String(s)) => Cond::Plant(Plant::Str(format!("*{s}")), false),
                ("prefix", Value::Object(o)) => match o.get("equals-ignore-case") {
                    Some(Value::String(s)) => {
                        Cond::Plant(Plant::Str(format!("{}*", upper(s))), false)
                    }
                    _ => Cond::None,
                },
                ("suffix", Value::Object(o)) => match o.get("equals-ignore-case") {
                    Some(Value::String(s)) => {
                        Cond::Plant(Plant::Str(format!("*{}", upper(s))), false)
                    }
                    _ => Cond::None,
                },
                ("equals-ignore-case", Value::String(s)) => {
                    Cond::Plant(Plant::Str(upper(s)), false)
                }
                ("wildcard", Value::String(s)) => Cond::Plant(Plant::Str(s.clone()), false),
                ("numeric", Value::Array(a)) if a.len() == 2 && a[0] == "=" => {
                    Cond::Plant(Plant::Num(a[1].as_f64().expect("number")), false)
                }
                ("anything-but", arg) => match condition_of_anything_but(arg) {
                    Some(p) => Cond::Plant(p, true),
                    None => Cond::None,
                },
                _ => Cond::None,
            }
        }
        _ => Cond::None,
    }
}

fn condition_of_anything_but(arg: &Value) -> Option<Plant> {
    let first = |v: &Value| match v {
        Value::Array(a) => a.first().cloned(),
        v => Some(v.clone()),
    };
    match arg {
        Value::Object(o) => {
            let (op, v) = o.iter().next()?;
            let s = first(v)?.as_str()?.to_owned();
            Some(Plant::Str(match op.as_str() {
                "prefix" => format!("{s}*"),
                "suffix" => format!("*{s}"),
                "wildcard" => s,
                "equals-ignore-case" => s.to_ascii_uppercase(),
                _ => return None,
            }))
        }
        v => match first(v)? {
            Value::String(s) => Some(Plant::Str(s)),
            Value::Number(n) => n.as_f64().map(Plant::Num),
            _ => None,
        },
    }
}
