//! Reading a distributed Map's items from an ItemReader result: an array, or the text
//! of an object (JSON, JSON Lines or CSV, as `ReaderConfig` says).

use serde_json::{Map, Value};

use super::Failure;
use crate::asl::MapState;

/// Turns an ItemReader result into items: an array as is, or text (an S3 object's
/// `Body`) read as JSON, JSON Lines or CSV per `ReaderConfig`.
pub(super) fn read_items(m: &MapState, result: Value) -> Result<Vec<Value>, Failure> {
    let reader = m.item_reader.as_ref().expect("a reader");
    let config = &reader.reader_config;
    let fail = |cause: &str| Failure::new("States.ItemReaderFailed", cause);
    let text = match result {
        Value::Array(items) => return Ok(limit(items, config)),
        Value::String(s) => s,
        Value::Object(o) => match o.get("Body") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => return Ok(limit(items.clone(), config)),
            _ => return Err(fail("Attempting to map over non-iterable node.")),
        },
        _ => return Err(fail("Attempting to map over non-iterable node.")),
    };
    let input_type = config
        .get("InputType")
        .and_then(Value::as_str)
        .unwrap_or("JSON");
    let items = match input_type {
        "CSV" => read_csv(&text, config).map_err(|e| fail(&e))?,
        "JSONL" => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<Vec<Value>, _>>()
            .map_err(|_| fail("The JSONL input is not valid."))?,
        _ => match serde_json::from_str(&text) {
            Ok(Value::Array(items)) => items,
            _ => return Err(fail("Attempting to map over non-iterable node.")),
        },
    };
    Ok(limit(items, config))
}

fn limit(mut items: Vec<Value>, config: &Map<String, Value>) -> Vec<Value> {
    if let Some(n) = config.get("MaxItems").and_then(Value::as_u64) {
        items.truncate(n as usize);
    }
    items
}

/// CSV rows as objects keyed by header, values as strings (what AWS produces).
fn read_csv(text: &str, config: &Map<String, Value>) -> Result<Vec<Value>, String> {
    let delimiter = match config.get("CSVDelimiter").and_then(Value::as_str) {
        Some("SEMICOLON") => ';',
        Some("PIPE") => '|',
        Some("TAB") => '\t',
        Some("SPACE") => ' ',
        _ => ',',
    };
    let mut rows = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| split_csv_line(l, delimiter));
    let headers: Vec<String> = match config.get("CSVHeaderLocation").and_then(Value::as_str) {
        Some("GIVEN") => config
            .get("CSVHeaders")
            .and_then(Value::as_array)
            .map(|h| {
                h.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        _ => rows.next().unwrap_or_default(),
    };
    let mut seen = std::collections::HashSet::new();
    if !headers.iter().all(|h| seen.insert(h)) {
        return Err("CSV headers cannot contain duplicates.".into());
    }
    Ok(rows
        .map(|cells| {
            Value::Object(
                headers
                    .iter()
                    .cloned()
                    .zip(cells.into_iter().map(Value::String))
                    .collect(),
            )
        })
        .collect())
}

fn split_csv_line(line: &str, delimiter: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == delimiter && !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_quotes_and_given_headers() {
        let mut config = Map::new();
        config.insert("CSVHeaderLocation".into(), "GIVEN".into());
        config.insert("CSVHeaders".into(), serde_json::json!(["a", "b"]));
        let rows = read_csv("1,\"x, \"\"y\"\"\"\n2,z\n", &config).unwrap();
        assert_eq!(
            rows,
            vec![
                serde_json::json!({"a": "1", "b": "x, \"y\""}),
                serde_json::json!({"a": "2", "b": "z"})
            ]
        );
        let mut dup = Map::new();
        dup.insert("CSVHeaderLocation".into(), "FIRST_ROW".into());
        assert_eq!(
            read_csv("a,a\n1,2", &dup).unwrap_err(),
            "CSV headers cannot contain duplicates."
        );
    }
}
