//! One JSON object written field by field straight into a string: access-log lines are built
//! on every request, and going through a `serde_json::Value` tree costs an allocation per key
//! and per value plus a second pass to print it.

use std::fmt::{self, Display, Write as _};

/// A JSON object being written. Keys are written as given (they are literals in our code);
/// string values are escaped as JSON requires.
pub struct JsonLine {
    out: String,
    empty: bool,
}

impl Default for JsonLine {
    fn default() -> Self {
        Self::with_capacity(256)
    }
}

impl JsonLine {
    pub fn with_capacity(n: usize) -> Self {
        let mut out = String::with_capacity(n);
        out.push('{');
        Self { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        escape_into(&mut self.out, value);
        self
    }

    /// A string field, or `null`.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A string field holding `value` as `Display` prints it.
    pub fn display(&mut self, key: &str, value: impl Display) -> &mut Self {
        self.key(key);
        let mut w = Escaper(&mut self.out);
        w.0.push('"');
        let _ = write!(w, "{value}");
        self.out.push('"');
        self
    }

    pub fn num(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    /// A number field, or `null`.
    pub fn opt_num(&mut self, key: &str, value: Option<u64>) -> &mut Self {
        match value {
            Some(v) => self.num(key, v),
            None => self.raw(key, "null"),
        }
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// A field whose value is already JSON.
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.out.push_str(json);
        self
    }

    /// Fields already written as JSON (`"a":1,"b":"x"`, no braces), as [`JsonLine::fields`]
    /// gives them.
    pub fn fields(&mut self, fields: &str) -> &mut Self {
        if fields.is_empty() {
            return self;
        }
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push_str(fields);
        self
    }

    /// The object's fields without the braces, for [`JsonLine::fields`] of another line.
    pub fn into_fields(self) -> String {
        let mut out = self.out;
        out.remove(0);
        out
    }

    /// The finished object.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Writes `s` as a JSON string, quotes included.
pub fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    let _ = Escaper(out).write_str(s);
    out.push('"');
}

/// Escapes what is written through it (no quotes).
struct Escaper<'a>(&'a mut String);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escaped = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.push_str(&s[start..i]);
            if escaped.is_empty() {
                let _ = write!(self.0, "\\u{b:04x}");
            } else {
                self.0.push_str(escaped);
            }
            start = i + 1;
        }
        self.0.push_str(&s[start..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_back_to_what_was_written() {
        let mut line = JsonLine::default();
        line.str("s", "a\"b\\c\nd\u{1}é")
            .opt_str("none", None)
            .num("n", 42)
            .opt_num("m", None)
            .bool("t", true)
            .display(
                "addr",
                "127.0.0.1:80".parse::<std::net::SocketAddr>().unwrap(),
            )
            .raw("arr", "[1,2]");
        let mut inner = JsonLine::default();
        inner.str("x", "y").num("z", 1);
        line.fields(&inner.into_fields());
        let text = line.finish();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "s": "a\"b\\c\nd\u{1}é", "none": null, "n": 42, "m": null, "t": true,
                "addr": "127.0.0.1:80", "arr": [1, 2], "x": "y", "z": 1,
            })
        );
        assert_eq!(JsonLine::default().finish(), "{}");
    }
}
