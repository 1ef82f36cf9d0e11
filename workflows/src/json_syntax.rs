//! AWS words malformed JSON (a definition, an execution input, a task output) with the
//! messages of its JSON parser, Jackson: `Unrecognized token 'not': was expecting (JSON
//! String, Number, Array, Object or token 'null', 'true' or 'false')`, `Unexpected character
//! (''' (code 39)): was expecting double-quote to start field name` … and, for
//! `ValidateStateMachineDefinition`, the position as `[Source: (String)"…"; line: 1,
//! column: 4]`.
//!
//! [`syntax_error`] scans text the way Jackson's streaming parser does (the default
//! features: no comments, no single quotes, no trailing commas, no `NaN`) and describes the
//! first error it meets in those words. It only describes: whether text is JSON is still
//! decided by `serde_json`, and where the two disagree (content after the root value,
//! which Jackson's `readTree` ignores) the caller keeps `serde_json`'s message.

use std::fmt;

/// The first syntax error in a text, as Jackson reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The message without the location (Jackson's `getOriginalMessage()`).
    pub message: String,
    /// `[Source: (String)"…"; line: L, column: C]`.
    pub location: String,
}

impl fmt::Display for SyntaxError {
    /// Jackson's `getMessage()`: the message, a newline, ` at ` and the location.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n at {}", self.message, self.location)
    }
}

/// The first syntax error Jackson would report for `text`, or `None` when it reads a
/// complete root value.
pub fn syntax_error(text: &str) -> Option<SyntaxError> {
    let mut s = Scanner {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        row_start: 0,
        source: source_description(text),
    };
    s.root().err()
}

/// The message (without location) for malformed `text` that `serde_json` rejected with
/// `err`: Jackson's when the scanner finds the error, else `serde_json`'s.
pub fn error_message(text: &str, err: &serde_json::Error) -> String {
    syntax_error(text).map_or_else(|| err.to_string(), |e| e.message)
}

/// What Jackson expects where a value is missing.
const VALUE_LIST: &str = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')";
/// Jackson cuts the source text it quotes at this many characters.
const MAX_SNIPPET: usize = 500;
/// And an unrecognized token at this many.
const MAX_TOKEN: usize = 256;

/// `(String)"…"`, cut at [`MAX_SNIPPET`] characters, control characters other than CR and
/// LF written as `\uXXXX`.
fn source_description(text: &str) -> String {
    let total = text.chars().count();
    let mut out = String::from("(String)\"");
    for c in text.chars().take(MAX_SNIPPET) {
        if is_iso_control(c) && c != '\r' && c != '\n' {
            out.push_str(&format!("\\u{:04X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('"');
    if total > MAX_SNIPPET {
        out.push_str(&format!("[truncated {} chars]", total - MAX_SNIPPET));
    }
    out
}

fn is_iso_control(c: char) -> bool {
    matches!(c as u32, 0..=0x1f | 0x7f..=0x9f)
}

/// Java's `Character.isJavaIdentifierStart`, for the characters JSON text holds.
fn is_identifier_start(c: char) -> bool {
    c.is_alphabetic() || c == '$' || c == '_' || matches!(c, '\u{a2}'..='\u{a5}')
}

/// Java's `Character.isJavaIdentifierPart`: also digits and the ignorable controls.
fn is_identifier_part(c: char) -> bool {
    is_identifier_start(c)
        || c.is_alphanumeric()
        || matches!(c as u32, 0..=8 | 0x0e..=0x1b | 0x7f..=0x9f)
}

/// Jackson's description of a character in a message.
fn char_desc(c: char) -> String {
    let code = c as u32;
    if is_iso_control(c) {
        format!("(CTRL-CHAR, code {code})")
    } else if code > 255 {
        format!("'{c}' (code {code} / 0x{code:x})")
    } else {
        format!("'{c}' (code {code})")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Array,
    Object,
}

impl Container {
    fn desc(self) -> &'static str {
        match self {
            Container::Array => "Array",
            Container::Object => "Object",
        }
    }

    fn close(self) -> char {
        match self {
            Container::Array => ']',
            Container::Object => '}',
        }
    }
}

struct Scanner {
    chars: Vec<char>,
    /// The next character to read (Jackson's input pointer).
    pos: usize,
    line: usize,
    row_start: usize,
    source: String,
}

type Scan<T> = Result<T, SyntaxError>;

impl Scanner {
    fn location_at(&self, line: usize, column: usize) -> String {
        format!("[Source: {}; line: {line}, column: {column}]", self.source)
    }

    /// The column Jackson counts (UTF-16 units since the line start, from 1).
    fn column(&self, at: usize) -> usize {
        self.chars[self.row_start..at]
            .iter()
            .map(|c| c.len_utf16())
            .sum::<usize>()
            + 1
    }

    fn error(&self, message: String) -> SyntaxError {
        SyntaxError {
            message,
            location: self.location_at(self.line, self.column(self.pos)),
        }
    }

    fn unexpected(&self, c: char, comment: &str) -> SyntaxError {
        self.error(format!(
            "Unexpected character ({}): {comment}",
            char_desc(c)
        ))
    }

    fn eof(&self, what: &str) -> SyntaxError {
        self.error(format!("Unexpected end-of-input{what}"))
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Skips white space and returns the next token's first character, consumed;
    /// `None` at the end of the input.
    fn skip_ws(&mut self) -> Scan<Option<char>> {
        while let Some(c) = self.next() {
            match c {
                ' ' | '\t' => {}
                '\n' => {
                    self.line += 1;
                    self.row_start = self.pos;
                }
                '\r' => {
                    if self.chars.get(self.pos) == Some(&'\n') {
                        self.pos += 1;
                    }
                    self.line += 1;
                    self.row_start = self.pos;
                }
                '/' => {
                    return Err(self.unexpected(
                        c,
                        "maybe a (non-standard) comment? (not recognized as one since Feature 'ALLOW_COMMENTS' not enabled for parser)",
                    ))
                }
                c if (c as u32) < 0x20 => {
                    return Err(self.error(format!(
                        "Illegal character ({}): only regular white space (\\r, \\n, \\t) is allowed between tokens",
                        char_desc(c)
                    )))
                }
                c => return Ok(Some(c)),
            }
        }
        Ok(None)
    }

    fn root(&mut self) -> Scan<()> {
        match self.skip_ws()? {
            // Jackson reads no token at all; the caller decides what empty text means.
            None => Ok(()),
            Some(c) => self.value(c, None),
        }
    }

    /// A value whose first character `c` was just read, inside `parent` (`None`: the root).
    fn value(&mut self, c: char, parent: Option<Container>) -> Scan<()> {
        match c {
            '{' => self.container(Container::Object),
            '[' => self.container(Container::Array),
            '"' => self.string("string value"),
            't' => self.keyword("true"),
            'f' => self.keyword("false"),
            'n' => self.keyword("null"),
            '-' | '0'..='9' => self.number(c, parent.is_none()),
            'N' if self.follows("aN") => Err(self.non_numeric("NaN")),
            'I' if self.follows("nfinity") => Err(self.non_numeric("Infinity")),
            c if is_identifier_start(c) => Err(self.invalid_token(c.to_string())),
            c => Err(self.unexpected(c, &format!("expected a valid value {VALUE_LIST}"))),
        }
    }

    fn follows(&self, rest: &str) -> bool {
        let rest: Vec<char> = rest.chars().collect();
        self.chars[self.pos..].starts_with(&rest)
    }

    /// `NaN` or `Infinity` (first character read, the rest known to follow): Jackson
    /// names them unless more identifier characters follow.
    fn non_numeric(&mut self, token: &str) -> SyntaxError {
        self.pos += token.chars().count() - 1;
        if self
            .chars
            .get(self.pos)
            .is_some_and(|&c| c >= '0' && is_identifier_part(c))
        {
            return self.invalid_token(token.to_string());
        }
        self.error(format!(
            "Non-standard token '{token}': enable JsonParser.Feature.ALLOW_NON_NUMERIC_NUMBERS to allow"
        ))
    }

    /// `Unrecognized token`: what was read, plus the identifier characters that follow.
    fn invalid_token(&mut self, mut token: String) -> SyntaxError {
        while let Some(&c) = self.chars.get(self.pos) {
            if !is_identifier_part(c) {
                break;
            }
            self.pos += 1;
            token.push(c);
            if token.chars().count() >= MAX_TOKEN {
                token.push_str("...");
                break;
            }
        }
        self.error(format!(
            "Unrecognized token '{token}': was expecting {VALUE_LIST}"
        ))
    }

    /// `true`, `false` or `null`, whose first character was read.
    fn keyword(&mut self, word: &str) -> Scan<()> {
        for (i, want) in word.chars().enumerate().skip(1) {
            match self.chars.get(self.pos) {
                Some(&c) if c == want => self.pos += 1,
                _ => return Err(self.invalid_token(word.chars().take(i).collect())),
            }
        }
        match self.chars.get(self.pos) {
            Some(&c) if c >= '0' && c != ']' && c != '}' && is_identifier_part(c) => {
                Err(self.invalid_token(word.to_string()))
            }
            _ => Ok(()),
        }
    }

    fn string(&mut self, what: &str) -> Scan<()> {
        loop {
            let Some(c) = self.next() else {
                return Err(match what {
                    "name" => self.eof(" in field name"),
                    _ => self.eof(": was expecting closing quote for a String value"),
                });
            };
            match c {
                '"' => return Ok(()),
                '\\' => self.escape()?,
                c if (c as u32) < 0x20 => {
                    return Err(self.error(format!(
                        "Illegal unquoted character ({}): has to be escaped using backslash to be included in {what}",
                        char_desc(c)
                    )))
                }
                _ => {}
            }
        }
    }

    fn escape(&mut self) -> Scan<()> {
        let Some(c) = self.next() else {
            return Err(self.eof(" in character escape sequence"));
        };
        match c {
            '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' => Ok(()),
            'u' => {
                for _ in 0..4 {
                    match self.next() {
                        None => return Err(self.eof(" in character escape sequence")),
                        Some(h) if h.is_ascii_hexdigit() => {}
                        Some(h) => {
                            return Err(self.unexpected(
                                h,
                                "expected a hex-digit for character escape sequence",
                            ))
                        }
                    }
                }
                Ok(())
            }
            c => Err(self.error(format!("Unrecognized character escape {}", char_desc(c)))),
        }
    }

    fn number_char(&self, c: char, comment: &str) -> SyntaxError {
        self.error(format!(
            "Unexpected character ({}) in numeric value: {comment}",
            char_desc(c)
        ))
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.chars.get(self.pos).is_some_and(char::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number whose first character `first` was read.
    fn number(&mut self, first: char, root: bool) -> Scan<()> {
        let first_digit = if first == '-' {
            match self.next() {
                None => return Err(self.eof(" in a Number value")),
                Some(c @ '0'..='9') => c,
                Some(c) => {
                    return Err(self.number_char(
                        c,
                        "expected digit (0-9) to follow minus sign, for valid numeric value",
                    ))
                }
            }
        } else {
            first
        };
        if first_digit == '0' {
            if self.chars.get(self.pos).is_some_and(char::is_ascii_digit) {
                return Err(self.error("Invalid numeric value: Leading zeroes not allowed".into()));
            }
        } else {
            self.digits();
        }
        if self.chars.get(self.pos) == Some(&'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(match self.next() {
                    Some(c) => self.number_char(c, "Decimal point not followed by a digit"),
                    None => self.eof(" in a Number value"),
                });
            }
        }
        if matches!(self.chars.get(self.pos), Some('e' | 'E')) {
            self.pos += 1;
            if matches!(self.chars.get(self.pos), Some('+' | '-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(match self.next() {
                    Some(c) => self.number_char(c, "Exponent indicator not followed by a digit"),
                    None => self.eof(" in a Number value"),
                });
            }
        }
        // At the root a number must be followed by white space (or the end).
        if root {
            if let Some(&c) = self.chars.get(self.pos) {
                if !matches!(c, ' ' | '\t' | '\n' | '\r') {
                    self.pos += 1;
                    return Err(self.unexpected(c, "Expected space separating root-level values"));
                }
            }
        }
        Ok(())
    }

    /// An object or array whose opening character was read.
    fn container(&mut self, kind: Container) -> Scan<()> {
        let start_line = self.line;
        let start_column = self.column(self.pos - 1);
        let mut first = true;
        loop {
            // The next token: the close marker, or (after the first entry) a comma.
            let Some(mut c) = self.skip_ws()? else {
                return Err(self.eof(&format!(
                    ": expected close marker for {} (start marker at {})",
                    kind.desc(),
                    self.location_at(start_line, start_column)
                )));
            };
            if c == ']' || c == '}' {
                if c == kind.close() {
                    return Ok(());
                }
                return Err(self.error(format!(
                    "Unexpected close marker '{c}': expected '{}' (for {} starting at {})",
                    kind.close(),
                    kind.desc(),
                    self.location_at(start_line, start_column)
                )));
            }
            if !first {
                if c != ',' {
                    return Err(self.unexpected(
                        c,
                        &format!("was expecting comma to separate {} entries", kind.desc()),
                    ));
                }
                c = match self.skip_ws()? {
                    Some(c) => c,
                    None => return Err(self.between(kind)),
                };
            }
            first = false;
            if kind == Container::Object {
                if c != '"' {
                    return Err(
                        self.unexpected(c, "was expecting double-quote to start field name")
                    );
                }
                self.string("name")?;
                match self.skip_ws()? {
                    Some(':') => {}
                    Some(c) => {
                        return Err(self.unexpected(
                            c,
                            "was expecting a colon to separate field name and value",
                        ))
                    }
                    None => return Err(self.between(kind)),
                }
                c = match self.skip_ws()? {
                    Some(c) => c,
                    None => return Err(self.between(kind)),
                };
            }
            self.value(c, Some(kind))?;
        }
    }

    fn between(&self, kind: Container) -> SyntaxError {
        self.eof(&format!(" within/between {} entries", kind.desc()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> String {
        syntax_error(text).expect("a syntax error").message
    }

    /// The texts AWS returned, as recorded by LocalStack's parity suite
    /// (`test_sfn_api_validation`, `test_sfn_api::test_invalid_start_execution_input`).
    #[test]
    fn recorded_aws_messages() {
        assert_eq!(
            syntax_error("not a definition").unwrap().to_string(),
            "Unrecognized token 'not': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n at [Source: (String)\"not a definition\"; line: 1, column: 4]"
        );
        assert_eq!(
            message("{'not': 'json'}"),
            "Unexpected character (''' (code 39)): was expecting double-quote to start field name"
        );
    }

    #[test]
    fn valid_text_has_no_error() {
        for ok in [
            "{}",
            "[]",
            " {\"a\": [1, -2.5e+3, true, false, null, \"x\\u00e9\\n\"]}\n",
            "0",
            "-0.1",
            "\"s\"",
            "",
        ] {
            assert_eq!(syntax_error(ok), None, "{ok}");
        }
    }

    #[test]
    fn structural_errors() {
        assert_eq!(
            message("{\"a\": 1,}"),
            "Unexpected character ('}' (code 125)): was expecting double-quote to start field name"
        );
        assert_eq!(
            message("[1,]"),
            format!("Unexpected character (']' (code 93)): expected a valid value {VALUE_LIST}")
        );
        assert_eq!(
            message("{\"a\" 1}"),
            "Unexpected character ('1' (code 49)): was expecting a colon to separate field name and value"
        );
        assert_eq!(
            message("{\"a\": 1 \"b\": 2}"),
            "Unexpected character ('\"' (code 34)): was expecting comma to separate Object entries"
        );
        assert_eq!(
            message("[1 2]"),
            "Unexpected character ('2' (code 50)): was expecting comma to separate Array entries"
        );
        let e = syntax_error("{\n  \"a\": [1}").unwrap();
        assert_eq!(
            e.message,
            "Unexpected close marker '}': expected ']' (for Array starting at [Source: (String)\"{\n  \"a\": [1}\"; line: 2, column: 8])"
        );
        assert_eq!(
            e.location,
            "[Source: (String)\"{\n  \"a\": [1}\"; line: 2, column: 11]"
        );
        assert_eq!(
            message("{\"a\": 1"),
            "Unexpected end-of-input: expected close marker for Object (start marker at [Source: (String)\"{\"a\": 1\"; line: 1, column: 1])"
        );
        assert_eq!(
            message("{\"a\":"),
            "Unexpected end-of-input within/between Object entries"
        );
    }

    #[test]
    fn token_string_and_number_errors() {
        assert_eq!(
            message("{\"a\": tru}"),
            format!("Unrecognized token 'tru': was expecting {VALUE_LIST}")
        );
        assert_eq!(
            message("[trueish]"),
            format!("Unrecognized token 'trueish': was expecting {VALUE_LIST}")
        );
        assert_eq!(
            message("{\"a\": \"b"),
            "Unexpected end-of-input: was expecting closing quote for a String value"
        );
        assert_eq!(
            message("[\"a\nb\"]"),
            "Illegal unquoted character ((CTRL-CHAR, code 10)): has to be escaped using backslash to be included in string value"
        );
        assert_eq!(
            message("[\"\\x\"]"),
            "Unrecognized character escape 'x' (code 120)"
        );
        assert_eq!(
            message("[01]"),
            "Invalid numeric value: Leading zeroes not allowed"
        );
        assert_eq!(
            message("[-x]"),
            "Unexpected character ('x' (code 120)) in numeric value: expected digit (0-9) to follow minus sign, for valid numeric value"
        );
        assert_eq!(
            message("12a"),
            "Unexpected character ('a' (code 97)): Expected space separating root-level values"
        );
        assert_eq!(
            message("[NaN]"),
            "Non-standard token 'NaN': enable JsonParser.Feature.ALLOW_NON_NUMERIC_NUMBERS to allow"
        );
        assert_eq!(
            message("[NaNa]"),
            format!("Unrecognized token 'NaNa': was expecting {VALUE_LIST}")
        );
        assert!(message("// c\n{}")
            .starts_with("Unexpected character ('/' (code 47)): maybe a (non-standard) comment?"));
    }

    #[test]
    fn long_sources_are_cut() {
        let text = format!("[{}x]", "1,".repeat(300));
        let e = syntax_error(&text).unwrap();
        assert!(
            e.location
                .contains("\"[truncated 103 chars]; line: 1, column: 603]"),
            "{}",
            e.location
        );
    }
}
