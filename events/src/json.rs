//! A small pull tokenizer for JSON text.
//!
//! Patterns and events are read token by token from the raw text rather than through
//! `serde_json::Value`, because EventBridge semantics depend on things a value tree loses:
//! duplicate keys (the last one wins in a pattern, both count in an event), the exact spelling
//! of numbers (`3.0e2` versus `300`), and the order in which a streaming reader meets errors
//! (AWS reports the first problem in document order, even before a later syntax error).
//! Syntax errors carry Jackson's wording, which is what AWS puts after `Reason: `.

use std::borrow::Cow;
use std::fmt;

/// Jackson's default `StreamReadConstraints` nesting limit; it also keeps the recursive
/// walkers of patterns and events far from the stack's end on hostile input.
pub(crate) const MAX_DEPTH: usize = 1000;

// === Token ===

/// One token of the JSON stream, in the same granularity as Jackson's `JsonToken`. Text
/// borrows from the input unless it had escapes (matching allocates little per event).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token<'a> {
    StartObject,
    EndObject,
    StartArray,
    EndArray,
    FieldName(Cow<'a, str>),
    String(Cow<'a, str>),
    /// A number, kept as its source text.
    Number(&'a str),
    True,
    False,
    Null,
}

/// A JSON syntax error, worded as Jackson words it (without its location suffix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError(pub(crate) String);

/// What the tokenizer expects next inside a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// At the start of an object: a field name or `}`.
    FirstField,
    /// After a value inside an object: `,` or `}`.
    ObjectComma,
    /// After a field name: the value.
    FieldValue,
    /// At the start of an array: a value or `]`.
    FirstElement,
    /// After a value inside an array: `,` or `]`.
    ArrayComma,
}

/// A pull tokenizer over borrowed text. Trailing content after the root value is never
/// read, as with Jackson's `nextToken()` loop that stops at the root's end.
pub(crate) struct Tokenizer<'a> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
    stack: Vec<(bool, Expect)>,
    started: bool,
}

// === impl SyntaxError ===

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl Tokenizer ===

impl<'a> Tokenizer<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Tokenizer {
            src: text.as_bytes(),
            text,
            pos: 0,
            stack: Vec::new(),
            started: false,
        }
    }

    /// The next token, `Ok(None)` once the root value is complete (or the input is empty).
    pub(crate) fn next_token(&mut self) -> Result<Option<Token<'a>>, SyntaxError> {
        self.skip_ws();
        let Some(&(is_object, expect)) = self.stack.last() else {
            if self.started {
                return Ok(None);
            }
            if self.pos >= self.src.len() {
                return Ok(None);
            }
            self.started = true;
            return self.value().map(Some);
        };
        let Some(&c) = self.src.get(self.pos) else {
            let kind = if is_object { "Object" } else { "Array" };
            return Err(SyntaxError(format!(
                "Unexpected end-of-input: expected close marker for {kind} (start marker"
            )));
        };
        match expect {
            Expect::FirstField | Expect::ObjectComma => {
                if c == b'}' {
                    self.pos += 1;
                    self.stack.pop();
                    self.after_value();
                    return Ok(Some(Token::EndObject));
                }
                if expect == Expect::ObjectComma {
                    if c != b',' {
                        return Err(
                            self.unexpected("was expecting comma to separate Object entries")
                        );
                    }
                    self.pos += 1;
                    self.skip_ws();
                }
                self.field_name()
            }
            Expect::FieldValue => {
                let token = self.value()?;
                Ok(Some(token))
            }
            Expect::FirstElement | Expect::ArrayComma => {
                if c == b']' {
                    self.pos += 1;
                    self.stack.pop();
                    self.after_value();
                    return Ok(Some(Token::EndArray));
                }
                if expect == Expect::ArrayComma {
                    if c != b',' {
                        return Err(
                            self.unexpected("was expecting comma to separate Array entries")
                        );
                    }
                    self.pos += 1;
                    self.skip_ws();
                }
                let token = self.value()?;
                Ok(Some(token))
            }
        }
    }

    /// Skips the value whose first token was just returned (a no-op for scalars).
    pub(crate) fn skip_children(&mut self, first: &Token<'_>) -> Result<(), SyntaxError> {
        if !matches!(first, Token::StartObject | Token::StartArray) {
            return Ok(());
        }
        let mut depth = 1usize;
        while depth > 0 {
            match self.next_token()? {
                Some(Token::StartObject | Token::StartArray) => depth += 1,
                Some(Token::EndObject | Token::EndArray) => depth -= 1,
                Some(_) => {}
                None => break,
            }
        }
        Ok(())
    }

    /// Skips the next value without building its tokens: the tokenizer must expect a value
    /// (just after a field name). A byte scanner checks the value's syntax (brackets, commas and
    /// colons, strings and their escapes, the shape of numbers and keywords, the nesting limit)
    /// without allocating; on any error the value is re-read by the tokenizer, so the error is
    /// the one, worded as Jackson words it, that reading every token would have given.
    pub(crate) fn skip_value(&mut self) -> Result<(), SyntaxError> {
        self.skip_ws();
        match scan_value(self.src, self.pos, MAX_DEPTH - self.stack.len()) {
            Some(end) => {
                self.pos = end;
                self.after_value();
                Ok(())
            }
            None => {
                let first = self.value()?;
                self.skip_children(&first)
            }
        }
    }

    fn field_name(&mut self) -> Result<Option<Token<'a>>, SyntaxError> {
        match self.src.get(self.pos) {
            Some(b'"') => {
                let name = self.string()?;
                self.skip_ws();
                match self.src.get(self.pos) {
                    Some(b':') => self.pos += 1,
                    Some(_) => {
                        return Err(self
                            .unexpected("was expecting a colon to separate field name and value"))
                    }
                    None => return Err(SyntaxError(
                        "Unexpected end-of-input: expected close marker for Object (start marker"
                            .to_owned(),
                    )),
                }
                if let Some(top) = self.stack.last_mut() {
                    top.1 = Expect::FieldValue;
                }
                Ok(Some(Token::FieldName(name)))
            }
            Some(_) => Err(self.unexpected("was expecting double-quote to start field name")),
            None => Err(SyntaxError(
                "Unexpected end-of-input: expected close marker for Object (start marker"
                    .to_owned(),
            )),
        }
    }

    fn value(&mut self) -> Result<Token<'a>, SyntaxError> {
        self.skip_ws();
        let Some(&c) = self.src.get(self.pos) else {
            return Err(SyntaxError(
                "Unexpected end-of-input: expected a value".to_owned(),
            ));
        };
        let token = match c {
            b'{' | b'[' => {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError(format!(
                        "Document nesting depth ({}) exceeds the maximum allowed ({MAX_DEPTH}, from `StreamReadConstraints.getMaxNestingDepth()`)",
                        self.stack.len() + 1
                    )));
                }
                self.pos += 1;
                return Ok(if c == b'{' {
                    self.stack.push((true, Expect::FirstField));
                    Token::StartObject
                } else {
                    self.stack.push((false, Expect::FirstElement));
                    Token::StartArray
                });
            }
            b'"' => Token::String(self.string()?),
            b'-' | b'0'..=b'9' => Token::Number(self.number()?),
            b't' | b'f' | b'n' => self.keyword()?,
            b']' | b'}' | b',' => return Err(self.unexpected("expected a value")),
            _ => return Err(self.unrecognized_token()),
        };
        self.after_value();
        Ok(token)
    }

    fn after_value(&mut self) {
        if let Some(top) = self.stack.last_mut() {
            top.1 = if top.0 {
                Expect::ObjectComma
            } else {
                Expect::ArrayComma
            };
        }
    }

    fn keyword(&mut self) -> Result<Token<'a>, SyntaxError> {
        let rest = &self.src[self.pos..];
        for (word, token) in [
            (&b"true"[..], Token::True),
            (&b"false"[..], Token::False),
            (&b"null"[..], Token::Null),
        ] {
            if rest.starts_with(word)
                && !rest
                    .get(word.len())
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
            {
                self.pos += word.len();
                return Ok(token);
            }
        }
        Err(self.unrecognized_token())
    }

    fn unrecognized_token(&self) -> SyntaxError {
        let rest = &self.text[self.pos..];
        let word: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}' | ':' | '"'))
            .take(256)
            .collect();
        SyntaxError(format!(
            "Unrecognized token '{word}': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
        ))
    }

    fn unexpected(&self, what: &str) -> SyntaxError {
        let c = self.text[self.pos..].chars().next().unwrap_or('\u{0}');
        SyntaxError(format!(
            "Unexpected character ('{c}' (code {})): {what}",
            c as u32
        ))
    }

    fn number(&mut self) -> Result<&'a str, SyntaxError> {
        let start = self.pos;
        let src = self.src;
        let mut i = self.pos;
        if src.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        while src.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == int_start {
            self.pos = i;
            let c = self.text[i..].chars().next();
            return Err(SyntaxError(match c {
                Some(c) => format!(
                    "Unexpected character ('{c}' (code {})) in numeric value: expected digit (0-9) to follow minus sign, for valid numeric value",
                    c as u32
                ),
                None => "Unexpected end-of-input in a Number value".to_owned(),
            }));
        }
        if src[int_start] == b'0' && i - int_start > 1 {
            return Err(SyntaxError(
                "Invalid numeric value: Leading zeroes not allowed".to_owned(),
            ));
        }
        if src.get(i) == Some(&b'.') {
            i += 1;
            let frac_start = i;
            while src.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == frac_start {
                return Err(SyntaxError(
                    "Unexpected character in numeric value: Decimal point not followed by a digit"
                        .to_owned(),
                ));
            }
        }
        if matches!(src.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(src.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let exp_start = i;
            while src.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == exp_start {
                return Err(SyntaxError(
                    "Unexpected character in numeric value: Exponent indicator not followed by a digit"
                        .to_owned(),
                ));
            }
        }
        self.pos = i;
        Ok(&self.text[start..i])
    }

    fn string(&mut self) -> Result<Cow<'a, str>, SyntaxError> {
        // Opening quote.
        self.pos += 1;
        let text = self.text;
        let mut out: Option<String> = None;
        loop {
            let start = self.pos;
            while let Some(&b) = self.src.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            let run = &text[start..self.pos];
            if self.src.get(self.pos) == Some(&b'"') && out.is_none() {
                // The common case: no escapes, so the token borrows the input.
                self.pos += 1;
                return Ok(Cow::Borrowed(run));
            }
            let buf = out.get_or_insert_with(String::new);
            buf.push_str(run);
            match self.src.get(self.pos) {
                None => {
                    return Err(SyntaxError(
                        "Unexpected end-of-input: was expecting closing quote for a string value"
                            .to_owned(),
                    ))
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out.unwrap_or_default()));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(buf)?;
                }
                Some(&b) => {
                    return Err(SyntaxError(format!(
                        "Illegal unquoted character ((CTRL-CHAR, code {b})): has to be escaped using backslash to be included in string value"
                    )))
                }
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), SyntaxError> {
        let Some(&c) = self.src.get(self.pos) else {
            return Err(SyntaxError(
                "Unexpected end-of-input in character escape sequence".to_owned(),
            ));
        };
        self.pos += 1;
        match c {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let first = self.hex4()?;
                if (0xD800..0xDC00).contains(&first)
                    && self.src.get(self.pos) == Some(&b'\\')
                    && self.src.get(self.pos + 1) == Some(&b'u')
                {
                    let save = self.pos;
                    self.pos += 2;
                    let second = self.hex4()?;
                    if (0xDC00..0xE000).contains(&second) {
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                        return Ok(());
                    }
                    self.pos = save;
                }
                // A lone surrogate cannot live in a Rust string; Java would keep it.
                out.push(char::from_u32(first).unwrap_or('\u{FFFD}'));
            }
            _ => {
                let ch = self.text[self.pos - 1..].chars().next().unwrap_or('?');
                return Err(SyntaxError(format!(
                    "Unrecognized character escape '{ch}' (code {})",
                    ch as u32
                )));
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let Some(&b) = self.src.get(self.pos) else {
                return Err(SyntaxError(
                    "Unexpected end-of-input in character escape sequence".to_owned(),
                ));
            };
            let d = (b as char).to_digit(16).ok_or_else(|| {
                SyntaxError(format!(
                    "Unexpected character ('{}' (code {b})): expected a hex-digit for character escape sequence",
                    b as char
                ))
            })?;
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.get(self.pos) {
            self.pos += 1;
        }
    }
}

/// The string whose opening quote is at `pos` in `text`, unescaped (borrowed when it has no
/// escapes), and the position just past its closing quote.
pub(crate) fn read_string(text: &str, pos: usize) -> Result<(Cow<'_, str>, usize), SyntaxError> {
    let mut tokens = Tokenizer::new(text);
    tokens.pos = pos;
    let s = tokens.string()?;
    Ok((s, tokens.pos))
}

/// Just past the bracket that closes the container `i` is inside of, in valid JSON.
pub(crate) fn skip_past_close(src: &[u8], i: usize) -> usize {
    skip_past_closes(src, i, 1)
}

/// Just past the bracket that closes the `levels`-th container `i` is inside of (1: the
/// innermost), in valid JSON, `i` not being inside a string. Other text gives some position
/// up to `src.len()`.
pub(crate) fn skip_past_closes(src: &[u8], mut i: usize, levels: usize) -> usize {
    // Open containers: the `levels` being left, plus those opened since.
    let mut depth = levels;
    // `ONES` inside a string, else 0.
    let mut in_string = 0;
    // Words of eight bytes, read without branching on what they hold (in the numbers and
    // keys of a skipped array that branch would go either way): brackets outside strings
    // only change `depth`, unless the word may close the last level. Four words are taken
    // at once while none may (one test and branch per 32 bytes, and the processor overlaps
    // the words' work); then one at a time. Words with a backslash (or that last close) go
    // byte by byte.
    loop {
        while let Some(block) = src.get(i..i + 32) {
            let (mut opens, mut closes, mut escapes, mut state) = (0, 0, 0, in_string);
            for word in block.chunks_exact(8) {
                let w = Word::read(word_at(word), state);
                opens += w.opens;
                closes += w.closes;
                escapes |= w.escapes;
                state = w.in_string;
            }
            if escapes != 0 || closes >= depth {
                break;
            }
            depth = depth + opens - closes;
            in_string = state;
            i += 32;
        }
        let Some(word) = src.get(i..i + 8) else {
            let mut open = in_string != 0;
            return skip_bytes(src, i, src.len(), &mut depth, &mut open).unwrap_or(src.len());
        };
        let w = Word::read(word_at(word), in_string);
        if w.escapes == 0 && w.closes < depth {
            depth = depth + w.opens - w.closes;
            in_string = w.in_string;
            i += 8;
            continue;
        }
        let mut open = in_string != 0;
        match skip_bytes(src, i, i + 8, &mut depth, &mut open) {
            Ok(end) => return end,
            Err(next) => i = next,
        }
        in_string = if open { ONES } else { 0 };
    }
}

/// What [`skip_past_closes`] needs of a word of JSON text.
struct Word {
    /// Opening and closing brackets outside strings.
    opens: usize,
    closes: usize,
    /// Whether a string is open after the word: `ONES` or 0.
    in_string: u64,
    /// Non-zero if the word holds a backslash (then the rest is not to be trusted).
    escapes: u64,
}

impl Word {
    /// Reads `w`, with a string open at its start if `in_string` is `ONES`.
    #[inline(always)]
    fn read(w: u64, in_string: u64) -> Word {
        let quotes = exact_zero_bytes(w ^ (b'"' as u64 * ONES)) >> 7;
        // Byte by byte, how many quotes are at or before it: its low bit (flipped if a
        // string was open) tells whether the byte is inside a string.
        let seen = quotes.wrapping_mul(ONES) ^ in_string;
        let inside = seen << 7;
        // The bytes `b` with `(b | 0x20) & 0xf9 == 0x79` are the four brackets and `y`,
        // `Y`, `_` and DEL, which valid JSON only has inside strings: one test finds the
        // brackets outside strings, and bit 1 (moved to the high bit) tells the opening
        // ones (`[`, `{`) from the closing ones.
        let brackets =
            exact_zero_bytes(((w | (0x20 * ONES)) & (0xf9 * ONES)) ^ (0x79 * ONES)) & !inside;
        let opens = brackets & (w << 6);
        let closes = brackets ^ opens;
        // Both counts in one multiplication: each opening bracket adds 1, each closing one
        // 16 (at most 8 brackets a word, so the low four bits hold the openings).
        let counts = count_units((opens >> 7) + (closes >> 3));
        Word {
            opens: counts & 15,
            closes: counts >> 4,
            in_string: (seen >> 56 & 1).wrapping_mul(ONES),
            // `zero_bytes` may flag bytes above a true hit, but is exact on whether there
            // is one.
            escapes: zero_bytes(w ^ (b'\\' as u64 * ONES)),
        }
    }
}

/// [`skip_past_closes`] one byte at a time over `src[i..end]` (an escape at its end may take
/// one more byte): `Ok` just past the last close, or `Err` where to continue.
fn skip_bytes(
    src: &[u8],
    mut i: usize,
    end: usize,
    depth: &mut usize,
    in_string: &mut bool,
) -> Result<usize, usize> {
    while let Some(&b) = src.get(i).filter(|_| i < end) {
        if *in_string {
            match b {
                b'\\' => i += 1,
                b'"' => *in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => *in_string = true,
                b'{' | b'[' => *depth += 1,
                b'}' | b']' => {
                    *depth -= 1;
                    if *depth == 0 {
                        return Ok(i + 1);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    Err(i)
}

/// The end of the value starting at `i` in valid JSON.
pub(crate) fn skip_unchecked(src: &[u8], i: usize) -> usize {
    match src.get(i) {
        Some(b'"') => skip_string_unchecked(src, i + 1),
        Some(b'{' | b'[') => skip_past_close(src, i + 1),
        _ => {
            let mut i = i;
            while i < src.len()
                && !matches!(src[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                i += 1;
            }
            i
        }
    }
}

/// Just past the closing quote of the string whose content starts at `i`, in valid JSON.
fn skip_string_unchecked(src: &[u8], mut i: usize) -> usize {
    loop {
        i = find_quote_or_backslash(src, i);
        match src.get(i) {
            Some(b'"') => return i + 1,
            Some(_) => i += 2,
            None => return src.len(),
        }
    }
}

// Skipping scans eight bytes at a time for the bytes that matter (SWAR): a byte of `w` equal
// to `b` is a zero byte of `w ^ b × ONES`, and `zero_bytes` flags the lowest zero byte exactly
// (a borrow can only flag bytes above it), so `trailing_zeros` finds the first match.

const ONES: u64 = 0x0101_0101_0101_0101;

fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & (ONES << 7)
}

fn word_at(chunk: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    u64::from_le_bytes(word)
}

/// The sum of the bytes of `x`, if it is below 256 (with bytes of 0 and 1: how many are 1),
/// without relying on a popcount instruction, which the default x86-64 target lacks.
fn count_units(x: u64) -> usize {
    (x.wrapping_mul(ONES) >> 56) as usize
}

/// The high bit of every zero byte of `x` (no false hits: nothing carries between bytes).
fn exact_zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// The first position from `i` holding a quote or a backslash (or the end).
pub(crate) fn find_quote_or_backslash(src: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = src.get(i..i + 8) {
        let w = word_at(chunk);
        let hits = zero_bytes(w ^ (b'"' as u64 * ONES)) | zero_bytes(w ^ (b'\\' as u64 * ONES));
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(b) = src.get(i) {
        if matches!(b, b'"' | b'\\') {
            break;
        }
        i += 1;
    }
    i
}

/// Checks that `text` is one valid JSON value (as the tokenizer reads it, with its nesting
/// limit) and tells whether it is *plain*: no object in it repeats a key, and no key has a
/// `.` or an escape. Plain events can be matched without re-checking their syntax and without
/// reading past the last field the rules use ([`crate::Machine::matches_plain`]).
pub(crate) fn check_plain(text: &str) -> Result<bool, SyntaxError> {
    let mut tokens = Tokenizer::new(text);
    let mut plain = true;
    // The keys of each open object (arrays push an empty list that stays empty).
    let mut keys: Vec<Vec<&str>> = Vec::new();
    while let Some(token) = tokens.next_token()? {
        match token {
            Token::StartObject | Token::StartArray => keys.push(Vec::new()),
            Token::EndArray => {
                keys.pop();
            }
            Token::EndObject => {
                if let Some(mut k) = keys.pop() {
                    if plain && k.len() > 1 {
                        k.sort_unstable();
                        plain = k.windows(2).all(|w| w[0] != w[1]);
                    }
                }
            }
            Token::FieldName(name) => match name {
                Cow::Borrowed(n) if plain && !n.contains('.') => {
                    if let Some(k) = keys.last_mut() {
                        k.push(n);
                    }
                }
                _ => plain = false,
            },
            _ => {}
        }
    }
    if !tokens.stack.is_empty() || !tokens.started {
        return Err(SyntaxError("Unexpected end-of-input".to_owned()));
    }
    // Unlike a streaming read, the whole text must be that one value.
    tokens.skip_ws();
    if tokens.pos < tokens.src.len() {
        return Err(tokens.unexpected("expected end of input"));
    }
    Ok(plain)
}

// === the skipping scanner ===

/// The end of the JSON value starting at `i` (whitespace allowed before it), or `None` if the
/// text there is not one valid value nested at most `max_depth` deep. It accepts nothing the
/// tokenizer would refuse (it may refuse more: the caller then re-reads with the tokenizer).
fn scan_value(src: &[u8], mut i: usize, max_depth: usize) -> Option<usize> {
    // Bit `d` is set when the container at depth `d` is an object.
    let mut objects = [0u64; MAX_DEPTH / 64 + 1];
    let mut depth = 0usize;
    'value: loop {
        i = scan_ws(src, i);
        match *src.get(i)? {
            c @ (b'{' | b'[') => {
                if depth >= max_depth {
                    return None;
                }
                let object = c == b'{';
                if object {
                    objects[depth / 64] |= 1 << (depth % 64);
                } else {
                    objects[depth / 64] &= !(1 << (depth % 64));
                }
                depth += 1;
                i = scan_ws(src, i + 1);
                let close = if object { b'}' } else { b']' };
                if src.get(i) == Some(&close) {
                    i += 1;
                    depth -= 1;
                } else if object {
                    i = scan_key(src, i)?;
                    continue 'value;
                } else {
                    continue 'value;
                }
            }
            b'"' => i = scan_string(src, i + 1)?,
            b'-' | b'0'..=b'9' => i = scan_number(src, i)?,
            b't' => i = scan_word(src, i, b"true")?,
            b'f' => i = scan_word(src, i, b"false")?,
            b'n' => i = scan_word(src, i, b"null")?,
            _ => return None,
        }
        // After a complete value: close containers until one continues with a comma.
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = scan_ws(src, i);
            let object = objects[(depth - 1) / 64] & (1 << ((depth - 1) % 64)) != 0;
            match *src.get(i)? {
                b',' => {
                    i += 1;
                    if object {
                        i = scan_key(src, scan_ws(src, i))?;
                    }
                    continue 'value;
                }
                b'}' if object => {
                    i += 1;
                    depth -= 1;
                }
                b']' if !object => {
                    i += 1;
                    depth -= 1;
                }
                _ => return None,
            }
        }
    }
}

fn scan_ws(src: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = src.get(i) {
        i += 1;
    }
    i
}

/// A field name and its colon, from the opening quote.
fn scan_key(src: &[u8], i: usize) -> Option<usize> {
    if src.get(i) != Some(&b'"') {
        return None;
    }
    let i = scan_ws(src, scan_string(src, i + 1)?);
    (src.get(i) == Some(&b':')).then_some(i + 1)
}

/// A string's end, from just after its opening quote.
fn scan_string(src: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match *src.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => match *src.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    let hex = src.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            },
            b if b < 0x20 => return None,
            _ => i += 1,
        }
    }
}

/// A number's end, with the tokenizer's grammar.
pub(crate) fn scan_number(src: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: usize| scan_digits(src, i);
    if src.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    i = digits(i);
    if i == int_start || (src[int_start] == b'0' && i - int_start > 1) {
        return None;
    }
    if src.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(src.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(src.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

/// The end of the run of ASCII digits at `i`, eight bytes at a time: a byte is flagged when
/// subtracting `'0'` borrows or adding `0x7f - '9'` reaches the high bit. Lanes below the first
/// flagged one are digits, which neither borrow nor carry, so that lane is exact.
fn scan_digits(src: &[u8], mut i: usize) -> usize {
    const LOW: u64 = 0x3030_3030_3030_3030;
    const HIGH: u64 = 0x4646_4646_4646_4646;
    const TOP: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = src.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let flags = (w.wrapping_sub(LOW) | w.wrapping_add(HIGH)) & TOP;
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while src.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// `true`, `false` or `null`, not followed by a letter, digit or underscore.
fn scan_word(src: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    let ok = src.get(i..end) == Some(word)
        && !src
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    ok.then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<Token<'_>>, SyntaxError> {
        let mut t = Tokenizer::new(text);
        let mut out = Vec::new();
        while let Some(tok) = t.next_token()? {
            out.push(tok);
        }
        Ok(out)
    }

    #[test]
    fn keeps_duplicates_and_number_text() {
        let toks = all(r#"{"a":3.0e2,"a":[true,null,"x\u00e9"]}"#).unwrap();
        assert_eq!(
            toks,
            vec![
                Token::StartObject,
                Token::FieldName("a".into()),
                Token::Number("3.0e2"),
                Token::FieldName("a".into()),
                Token::StartArray,
                Token::True,
                Token::Null,
                Token::String("xé".into()),
                Token::EndArray,
                Token::EndObject,
            ]
        );
    }

    #[test]
    fn jackson_wording_for_truncated_object() {
        let err = all(r#"{"a":["x"]"#).unwrap_err();
        assert_eq!(
            err.0,
            "Unexpected end-of-input: expected close marker for Object (start marker"
        );
    }

    #[test]
    fn trailing_content_is_not_read() {
        assert!(all(r#"{"a":1} garbage"#).is_ok());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
        assert!(all(&deep)
            .unwrap_err()
            .0
            .starts_with("Document nesting depth (1001)"));
    }

    /// Skips the value of `"k"` in `{"k":<value>}` and reads on to the end.
    fn skip_then_rest(value: &str) -> Result<(), SyntaxError> {
        let text = format!(r#"{{"k":{value}}}"#);
        let mut t = Tokenizer::new(&text);
        t.next_token()?;
        t.next_token()?;
        t.skip_value()?;
        while t.next_token()?.is_some() {}
        Ok(())
    }

    #[test]
    fn skipping_checks_syntax_as_the_tokenizer_does() {
        for value in [
            r#"{"a":[1,-2.5e+3,true,false,null,"x\"\\\u00e9",{}],"b":{"c":[]}}"#,
            "0",
            "-0.0E-0",
            r#"" \ud83d\ude00 ""#,
            r#"[ { "a" : 1 } , [ ] ]"#,
            r#"{"a":1,}"#,
            "[1,]",
            "[1 2]",
            r#"{"a" 1}"#,
            r#"{"a":1]"#,
            "[1}",
            "01",
            "-",
            "1.",
            "1e",
            "truex",
            "nul",
            r#""\x""#,
            r#""\u12g4""#,
            "\"a\u{1}b\"",
            r#"["#,
            r#"{"a":"#,
            r#"[1,2"#,
            r#""abc"#,
            "@",
        ] {
            let text = format!(r#"{{"k":{value}}}"#);
            assert_eq!(skip_then_rest(value), all(&text).map(drop), "{value}");
        }
        let deep = format!("{}1{}", "[".repeat(999), "]".repeat(999));
        assert!(skip_then_rest(&deep).is_ok());
        let too_deep = format!("{}1{}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(
            skip_then_rest(&too_deep),
            all(&format!(r#"{{"k":{too_deep}}}"#)).map(drop)
        );
        assert!(skip_then_rest(&too_deep).is_err());
    }

    #[test]
    fn digit_runs() {
        for text in [
            "",
            "1",
            "12345678",
            "123456789",
            "1234567x9",
            "/0123456789:",
            "12\u{e9}34",
            "-122.4102916000000012345x",
        ] {
            for start in 0..text.len() {
                let want = start
                    + text.as_bytes()[start..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                assert_eq!(
                    scan_digits(text.as_bytes(), start),
                    want,
                    "{text} at {start}"
                );
            }
        }
    }

    #[test]
    fn unchecked_skip_finds_the_end_of_every_container() {
        let values = [
            r#"[[{"x":-122.41029160000001,"y":37.80,"z":0},{"x":1e-7,"y":2E+30,"z":-0.5}]]"#,
            r#"{"a":"]}","b":["[{",{"c":"\"]"}],"d":"\\","e":"\\\"}"}"#,
            r#"[ "a\"b]" , "x\\" , [ [ ] ] , { } , "é}ü" , "\u005d" ]"#,
            "[\n\t{ \"k\" :\r\n [1, 2.5e10 ,true,null] } ]",
            r#"{"s":"\\\\\\\\\\\\\\\\\"]]]]]]]]]]]]","t":[[[[[[[[[[1]]]]]]]]]]}"#,
            r#"["aaaaaaa\"","bbbbbbbb\\","ccccccccccccccc\"]]]]]]]]]]]]]]]"]"#,
            // Bytes that the bracket test confuses with brackets, inside strings.
            "{\"y\":[\"Y_y\",\"[y]\",\"_{}_\",\"y]]]]]]]]\"],\"Yy\":{\"_\":\"\u{7f}}}\u{7f}\"}}",
            r#"[{"x":-122.41029160000001,"y":37.80,"z":0},{"yyyyyyyy":"YYYYYYYY","________":1}]"#,
        ];
        for value in values {
            for pad in 0..17 {
                // Each alignment to the eight-byte words, inside a container left after it.
                let text = format!(r#"{{"p":"{}","v":{value},"q":[1]}}"#, " ".repeat(pad));
                let src = text.as_bytes();
                for i in 0..src.len() {
                    if !matches!(src[i], b'[' | b'{') {
                        continue;
                    }
                    if let Some(end) = scan_value(src, i, MAX_DEPTH) {
                        assert_eq!(skip_unchecked(src, i), end, "{text} at {i}");
                    }
                }
                // Leaving two levels at once from just after `"v":` and its value.
                let after = text.find(r#","q""#).unwrap();
                assert_eq!(skip_past_closes(src, after, 1), src.len(), "{text}");
                let inner = format!("[{text},0]");
                assert_eq!(
                    skip_past_closes(inner.as_bytes(), after + 1, 2),
                    inner.len(),
                    "{inner}"
                );
            }
        }
    }

    /// A random string, mostly made of the bytes the unchecked skip treats specially.
    fn random_string(next: &mut impl FnMut(u64) -> u64, out: &mut String) {
        const PIECES: &[&str] = &[
            "a", "y", "Y", "_", "\u{7f}", "[", "]", "{", "}", "\\\\", "\\\"", " ", "\u{e9}", "0",
        ];
        out.push('"');
        for _ in 0..next(12) {
            out.push_str(PIECES[next(PIECES.len() as u64) as usize]);
        }
        out.push('"');
    }

    /// A random JSON value (an array or object when `container`).
    fn random_value(
        next: &mut impl FnMut(u64) -> u64,
        out: &mut String,
        depth: usize,
        container: bool,
    ) {
        let kind = if container {
            3 + next(2)
        } else {
            next(if depth > 4 { 3 } else { 5 })
        };
        match kind {
            0 => random_string(next, out),
            1 => out.push_str(["-122.41029160000001", "0", "1e-7", "37"][next(4) as usize]),
            2 => out.push_str(["true", "false", "null"][next(3) as usize]),
            _ => {
                let object = kind == 4;
                out.push(if object { '{' } else { '[' });
                for n in 0..next(5) {
                    if n > 0 {
                        out.push(',');
                    }
                    if object {
                        random_string(next, out);
                        out.push(':');
                    }
                    random_value(next, out, depth + 1, false);
                }
                out.push(if object { '}' } else { ']' });
            }
        }
    }

    #[test]
    fn unchecked_skip_agrees_with_the_checked_scan_on_random_json() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..3000 {
            let mut text = String::new();
            random_value(&mut next, &mut text, 0, true);
            let src = text.as_bytes();
            assert_eq!(scan_value(src, 0, MAX_DEPTH), Some(src.len()), "{text}");
            for i in 0..src.len() {
                if matches!(src[i], b'[' | b'{') {
                    if let Some(end) = scan_value(src, i, MAX_DEPTH) {
                        assert_eq!(skip_unchecked(src, i), end, "{text} at {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn unchecked_skip_stays_in_bounds_on_other_text() {
        for text in [
            "[",
            "[\"]",
            "[\"\\",
            "[[[[[[[[[[",
            "]]]]]]]]]]]",
            "[\"\\\"]]]]]]]",
        ] {
            for i in 0..=text.len() {
                assert!(skip_unchecked(text.as_bytes(), i) <= text.len(), "{text}");
                assert!(
                    skip_past_closes(text.as_bytes(), i, 3) <= text.len(),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn exact_zero_bytes_has_no_false_hits_and_counts() {
        let w = u64::from_le_bytes(*b"\"#\"\x01\x00\x01\x22\xa2");
        let hits = exact_zero_bytes(w ^ (b'"' as u64 * ONES));
        assert_eq!(hits, (1 << 7) | (1 << 23) | (1 << 55));
        assert_eq!(count_units(hits >> 7), 3);
        assert_eq!(count_units(ONES), 8);
        assert_eq!(count_units(0), 0);
        assert_eq!(count_units(ONES * 17), 136);
    }

    #[test]
    fn rejects_leading_zero() {
        assert!(all(r#"{"a":01}"#).is_err());
    }
}
