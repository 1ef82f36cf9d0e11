//! Where each value of a JSON document starts, by JSON pointer, so config errors can name a line
//! and column as well as a pointer. A small scanner over already-valid JSON: it tracks the path
//! and records the position of every value.

use std::collections::HashMap;

/// Line and column (1-based) of the value at each JSON pointer of `text`.
pub fn positions(text: &str) -> HashMap<String, (usize, usize)> {
    let mut out = HashMap::new();
    let mut s = Scanner {
        bytes: text.as_bytes(),
        i: 0,
        line: 1,
        col: 1,
    };
    s.value(&mut String::new(), &mut out);
    out
}

/// The position of `pointer`, or of its nearest ancestor that exists.
pub fn find(positions: &HashMap<String, (usize, usize)>, pointer: &str) -> Option<(usize, usize)> {
    let mut p = pointer.to_string();
    loop {
        if let Some(pos) = positions.get(&p) {
            return Some(*pos);
        }
        let cut = p.rfind('/')?;
        p.truncate(cut);
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    i: usize,
    line: usize,
    col: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        if b == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if b & 0xC0 != 0x80 {
            // Columns count characters, not UTF-8 continuation bytes.
            self.col += 1;
        }
        Some(b)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.bump();
        }
    }

    fn value(&mut self, path: &mut String, out: &mut HashMap<String, (usize, usize)>) {
        self.skip_ws();
        out.insert(path.clone(), (self.line, self.col));
        match self.peek() {
            Some(b'{') => {
                self.bump();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(b'}') | None => {
                            self.bump();
                            return;
                        }
                        Some(b',') => {
                            self.bump();
                        }
                        Some(b'"') => {
                            let key = self.string();
                            self.skip_ws();
                            if self.peek() == Some(b':') {
                                self.bump();
                            }
                            let len = path.len();
                            path.push('/');
                            path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                            self.value(path, out);
                            path.truncate(len);
                        }
                        Some(_) => {
                            self.bump();
                        }
                    }
                }
            }
            Some(b'[') => {
                self.bump();
                let mut index = 0;
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(b']') | None => {
                            self.bump();
                            return;
                        }
                        Some(b',') => {
                            self.bump();
                        }
                        Some(_) => {
                            let len = path.len();
                            path.push('/');
                            path.push_str(&index.to_string());
                            self.value(path, out);
                            path.truncate(len);
                            index += 1;
                        }
                    }
                }
            }
            Some(b'"') => {
                self.string();
            }
            _ => {
                while matches!(self.peek(), Some(b) if !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                {
                    self.bump();
                }
            }
        }
    }

    /// A string token (the opening quote is next); returns its raw content, escapes kept
    /// except `\"` and `\\`, which is enough for object keys.
    fn string(&mut self) -> String {
        self.bump();
        let mut raw = Vec::new();
        while let Some(b) = self.bump() {
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(e) = self.bump() {
                        raw.push(e);
                    }
                }
                _ => raw.push(b),
            }
        }
        String::from_utf8_lossy(&raw).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_and_ancestors() {
        let text = "{\n  \"services\": [\n    {\"name\": \"a\"},\n    {\"name\": \"-bad\", \"listeners\": []}\n  ]\n}";
        let p = positions(text);
        assert_eq!(p["/services/1/name"], (4, 14));
        assert_eq!(p["/services/0"], (3, 5));
        assert_eq!(find(&p, "/services/1/listeners/0/port"), Some((4, 35)));
        assert_eq!(find(&p, "/nope"), Some((1, 1)), "the root at worst");
    }
}
