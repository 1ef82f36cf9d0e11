//! Flattening an event into `(path, value, array membership)` leaves, as event-ruler does.
//!
//! Paths join keys with `.`; array elements add no key. An object or array inside an array
//! records which element it came from (`array id → index`), so that the matcher can refuse to
//! combine fields from different elements of one array. Scalars directly inside an array do
//! not record their element, as in event-ruler. Duplicate keys each contribute their leaves.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::json::{
    find_quote_or_backslash, read_string, scan_number, skip_past_closes, skip_unchecked,
    SyntaxError, Token, Tokenizer,
};
use crate::pattern::Scalar;

/// Why an event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The text is not valid JSON.
    #[error("event is not valid json: {0}")]
    Syntax(String),
    /// The JSON is valid but its root is not an object.
    #[error("event must be a json object")]
    NotAnObject,
}

/// What a flattened path is to the rules: how the flattener treats the value under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// No rule names this path or anything under it: the value is skipped unread.
    Skip,
    /// A proper prefix of some rule's path, but not one itself: objects and arrays under it
    /// are walked, scalars dropped.
    Descend,
    /// A rule's path (and maybe also a prefix of another): its scalars become leaves.
    Field(u32),
}

/// Where the flattener hands each value of a rule's path: its field id, the value (borrowing
/// the event text where it had no escapes), and the `(array id, element index)` pairs of the
/// enclosing array elements. Values are handed over as they are read, so flattening keeps
/// no list of them.
pub(crate) trait Sink<'a> {
    fn leaf(&mut self, field: u32, value: Scalar<'a>, membership: &[(u32, u32)]);
}

impl<'a, F: FnMut(u32, Scalar<'a>, &[(u32, u32)])> Sink<'a> for F {
    fn leaf(&mut self, field: u32, value: Scalar<'a>, membership: &[(u32, u32)]) {
        self(field, value, membership)
    }
}

struct Flattener<'a, 's, F, S> {
    tokens: Tokenizer<'a>,
    /// The step for a path.
    step: F,
    sink: &'s mut S,
    arrays: u32,
    membership: Vec<(u32, u32)>,
}

/// Flattens `text` into `sink`, giving it the values of the paths `step` calls fields and
/// descending only into paths it does not skip (event-ruler skips steps no rule uses, which
/// is where most of the speed on big events comes from). Skipped values are still checked to
/// be valid JSON.
pub(crate) fn flatten<'a, F: Fn(&str) -> Step, S: Sink<'a>>(
    text: &'a str,
    step: F,
    sink: &mut S,
) -> Result<(), EventError> {
    let mut f = Flattener {
        tokens: Tokenizer::new(text),
        step,
        sink,
        arrays: 0,
        membership: Vec::new(),
    };
    if f.next()? != Token::StartObject {
        return Err(EventError::NotAnObject);
    }
    f.object(&mut String::new())
}

/// Whether `text` is a JSON object that [`flatten_plain`] may read: valid, and plain (no
/// object repeats a key, no key has a `.` or an escape). `Err` when it is not valid JSON or
/// not an object.
pub(crate) fn check_plain_object(text: &str) -> Result<bool, EventError> {
    let plain = crate::json::check_plain(text).map_err(syntax)?;
    if !text.trim_start().starts_with('{') {
        return Err(EventError::NotAnObject);
    }
    Ok(plain)
}

fn syntax(SyntaxError(m): SyntaxError) -> EventError {
    EventError::Syntax(m)
}

impl<'a, F: Fn(&str) -> Step, S: Sink<'a>> Flattener<'a, '_, F, S> {
    fn next(&mut self) -> Result<Token<'a>, EventError> {
        match self.tokens.next_token() {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(EventError::NotAnObject),
            Err(e) => Err(syntax(e)),
        }
    }

    /// Reads an object whose `{` was just read.
    fn object(&mut self, path: &mut String) -> Result<(), EventError> {
        loop {
            let name = match self.next()? {
                Token::EndObject => return Ok(()),
                Token::FieldName(n) => n,
                _ => return Err(EventError::Syntax("unexpected token".into())),
            };
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&name);
            match (self.step)(path) {
                Step::Skip => self.tokens.skip_value().map_err(syntax)?,
                step => {
                    let token = self.next()?;
                    self.value(token, path, step)?;
                }
            }
            path.truncate(len);
        }
    }

    fn array(&mut self, path: &mut String, step: Step) -> Result<(), EventError> {
        let id = self.arrays;
        self.arrays += 1;
        let mut index = 0u32;
        loop {
            let token = self.next()?;
            match token {
                Token::EndArray => return Ok(()),
                Token::StartObject | Token::StartArray => {
                    self.membership.push((id, index));
                    self.value(token, path, step)?;
                    self.membership.pop();
                }
                scalar => self.value(scalar, path, step)?,
            }
            index += 1;
        }
    }

    fn value(&mut self, token: Token<'a>, path: &mut String, step: Step) -> Result<(), EventError> {
        let value = match token {
            Token::StartObject => return self.object(path),
            Token::StartArray => return self.array(path, step),
            Token::String(s) => Scalar::Str(s),
            Token::Number(t) => Scalar::number(t),
            Token::True => Scalar::True,
            Token::False => Scalar::False,
            Token::Null => Scalar::Null,
            _ => return Err(EventError::Syntax("unexpected token".into())),
        };
        if let Step::Field(field) = step {
            self.sink.leaf(field, value, &self.membership);
        }
        Ok(())
    }
}

// === plain events ===

/// The paths the rules use, as a trie of keys, for [`flatten_plain`]: each node is a path (the
/// root is the event itself) and maps the keys that extend it to a rule's path, or to a prefix
/// of one, to their nodes. Following a key is one small lookup of the key's bytes, where
/// looking paths up whole would mean building and hashing the joined path at every key.
#[derive(Debug)]
pub(crate) struct PathTrie {
    nodes: Vec<PathNode>,
}

#[derive(Debug, Clone)]
struct PathNode {
    step: Step,
    keys: Keys,
}

/// A node's keys. Nodes have few keys as a rule, and comparing a short key with a handful of
/// others is cheaper than hashing it. Many keys are hashed with the standard (keyed) hasher,
/// since the keys come from rules.
#[derive(Debug, Clone)]
enum Keys {
    Few(Vec<FewKey>),
    Many(HashMap<Box<[u8]>, u32>),
}

/// A key of a node with few keys, with what tells most other keys apart without comparing
/// bytes: its length and its last byte.
#[derive(Debug, Clone)]
struct FewKey {
    len: usize,
    last: u8,
    key: Box<[u8]>,
    node: u32,
}

/// Up to this many keys, a node compares keys one by one.
const FEW_KEYS: usize = 8;

/// The trie's root: the event object.
const ROOT: u32 = 0;

/// Past this nesting the plain reader gives up (plain text was checked to be nested at most
/// [`crate::json::MAX_DEPTH`] deep; this bounds the recursion on other text).
const MAX_NESTING: usize = crate::json::MAX_DEPTH + 1;

impl PathTrie {
    /// The trie of `paths` (each with its step), where every proper dotted prefix of a path is
    /// itself one of `paths` (with at least [`Step::Descend`]).
    pub(crate) fn new<'p>(paths: impl IntoIterator<Item = (&'p str, Step)>) -> PathTrie {
        let mut paths: Vec<(&str, Step)> = paths.into_iter().collect();
        paths.sort_unstable_by_key(|p| p.0);
        let ids: HashMap<&str, u32> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.0, i as u32 + 1))
            .collect();
        let mut keys: Vec<Vec<(Box<[u8]>, u32)>> = vec![Vec::new(); paths.len() + 1];
        for (path, id) in &ids {
            // A plain event has no dotted keys: a path's parent is the path up to its last dot.
            let (parent, key) = match path.rfind('.') {
                Some(i) => match ids.get(&path[..i]) {
                    Some(&parent) => (parent, &path[i + 1..]),
                    None => continue,
                },
                None => (ROOT, *path),
            };
            keys[parent as usize].push((key.as_bytes().into(), *id));
        }
        // Joining adds no `.` to the empty path, so under the key `""` of the event object
        // (path `""`) the keys are those of the event object itself.
        if let Some(&empty) = ids.get("") {
            keys[empty as usize] = keys[ROOT as usize].clone();
        }
        let steps = std::iter::once(Step::Descend).chain(paths.iter().map(|p| p.1));
        let nodes = steps
            .zip(keys)
            .map(|(step, mut keys)| {
                keys.sort_unstable();
                let keys = if keys.len() <= FEW_KEYS {
                    let few = keys.into_iter().map(|(key, node)| FewKey {
                        len: key.len(),
                        last: key.last().copied().unwrap_or(0),
                        key,
                        node,
                    });
                    Keys::Few(few.collect())
                } else {
                    Keys::Many(keys.into_iter().collect())
                };
                PathNode { step, keys }
            })
            .collect();
        PathTrie { nodes }
    }

    /// The node under `node` at `key`, if that path leads to a rule's path.
    #[inline]
    fn child(&self, node: u32, key: &[u8]) -> Option<u32> {
        match &self.nodes[node as usize].keys {
            Keys::Few(keys) => {
                let last = key.last().copied().unwrap_or(0);
                keys.iter()
                    .find(|k| k.len == key.len() && k.last == last && *k.key == *key)
                    .map(|k| k.node)
            }
            Keys::Many(keys) => keys.get(key).copied(),
        }
    }

    /// How many distinct keys under `node` lead to a rule's path: once a plain object has
    /// given that many, the rest of it cannot matter.
    #[inline]
    fn wanted(&self, node: u32) -> usize {
        match &self.nodes[node as usize].keys {
            Keys::Few(keys) => keys.len(),
            Keys::Many(keys) => keys.len(),
        }
    }
}

/// [`flatten`] for text that [`check_plain`](crate::json::check_plain) found plain: values no
/// rule reads are stepped over without checking them, keys are followed in `trie` without
/// building paths, and an object is left as soon as every key under it that leads to a rule's
/// path has been read, since a plain object cannot have them twice. `sink` gets the same
/// values as from `flatten` for such text. Other text gives unspecified values or an error,
/// never a panic. `membership` is working space (left empty).
pub(crate) fn flatten_plain<'a, S: Sink<'a>>(
    text: &'a str,
    trie: &PathTrie,
    membership: &mut Vec<(u32, u32)>,
    sink: &mut S,
) -> Result<(), EventError> {
    membership.clear();
    let mut r = PlainReader {
        src: text.as_bytes(),
        text,
        pos: 0,
        trie,
        arrays: 0,
        depth: 0,
        unclosed: 0,
        membership,
        sink,
    };
    r.ws();
    if r.src.get(r.pos) != Some(&b'{') {
        return Err(EventError::NotAnObject);
    }
    r.pos += 1;
    r.object(ROOT)
}

/// A reader of plain JSON text straight from its bytes: no token stream and no stack of open
/// containers to keep, since the text is known to be valid.
struct PlainReader<'a, 't, S> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
    trie: &'t PathTrie,
    arrays: u32,
    depth: usize,
    /// How many objects the reader has left before their end, the position being inside all
    /// of them: skipping their rest waits until something after them is read.
    unclosed: usize,
    membership: &'t mut Vec<(u32, u32)>,
    sink: &'t mut S,
}

impl<'a, S: Sink<'a>> PlainReader<'a, '_, S> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Steps past the objects left unfinished (innermost first) before reading on.
    fn close_left(&mut self) {
        if self.unclosed > 0 {
            self.pos = skip_past_closes(self.src, self.pos, self.unclosed);
            self.unclosed = 0;
        }
    }

    fn malformed() -> EventError {
        EventError::Syntax("malformed plain event".into())
    }

    /// Reads the object of path `node`, just after its `{`.
    fn object(&mut self, node: u32) -> Result<(), EventError> {
        let mut wanted = self.trie.wanted(node);
        let mut first = true;
        loop {
            if wanted == 0 {
                // Every key that matters has been read (or none does): the rest is not needed.
                // It is stepped over only if more is read after it; the event's own object
                // is simply abandoned.
                self.unclosed += 1;
                return Ok(());
            }
            self.close_left();
            self.ws();
            match self.src.get(self.pos) {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b',') if !first => {
                    self.pos += 1;
                    self.ws();
                }
                _ if first => {}
                _ => return Err(Self::malformed()),
            }
            first = false;
            if self.src.get(self.pos) != Some(&b'"') {
                return Err(Self::malformed());
            }
            // A plain key has no escapes: the next quote ends it.
            let start = self.pos + 1;
            let end = find_quote_or_backslash(self.src, start);
            if self.src.get(end) != Some(&b'"') {
                return Err(Self::malformed());
            }
            self.pos = end + 1;
            self.ws();
            if self.src.get(self.pos) != Some(&b':') {
                return Err(Self::malformed());
            }
            self.pos += 1;
            self.ws();
            match self.trie.child(node, &self.src[start..end]) {
                Some(child) => {
                    self.value(child)?;
                    wanted -= 1;
                }
                None => self.pos = skip_unchecked(self.src, self.pos),
            }
        }
    }

    /// Reads the array of path `node`, just after its `[`.
    fn array(&mut self, node: u32) -> Result<(), EventError> {
        let id = self.arrays;
        self.arrays += 1;
        let mut index = 0u32;
        loop {
            self.close_left();
            self.ws();
            match self.src.get(self.pos) {
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b',') if index > 0 => {
                    self.pos += 1;
                    self.ws();
                }
                _ if index == 0 => {}
                _ => return Err(Self::malformed()),
            }
            if let Some(b'{' | b'[') = self.src.get(self.pos) {
                self.membership.push((id, index));
                self.value(node)?;
                self.membership.pop();
            } else {
                self.value(node)?;
            }
            index += 1;
        }
    }

    /// Reads the value of path `node` starting at the current position.
    fn value(&mut self, node: u32) -> Result<(), EventError> {
        let step = self.trie.nodes[node as usize].step;
        let c = *self.src.get(self.pos).ok_or_else(Self::malformed)?;
        if c == b'{' || c == b'[' {
            if self.depth >= MAX_NESTING {
                return Err(Self::malformed());
            }
            self.pos += 1;
            self.depth += 1;
            let read = if c == b'{' {
                self.object(node)
            } else {
                self.array(node)
            };
            self.depth -= 1;
            return read;
        }
        let Step::Field(field) = step else {
            // A prefix of a rule's path: its scalars are not leaves.
            self.pos = skip_unchecked(self.src, self.pos);
            return Ok(());
        };
        let value = match c {
            b'"' => {
                let start = self.pos + 1;
                let end = find_quote_or_backslash(self.src, start);
                if self.src.get(end) == Some(&b'"') {
                    self.pos = end + 1;
                    let s = self.text.get(start..end).ok_or_else(Self::malformed)?;
                    Scalar::Str(Cow::Borrowed(s))
                } else {
                    // Escapes: unescaped by the tokenizer.
                    let (s, end) = read_string(self.text, self.pos).map_err(syntax)?;
                    self.pos = end;
                    Scalar::Str(s)
                }
            }
            b'-' | b'0'..=b'9' => {
                let end = scan_number(self.src, self.pos).ok_or_else(Self::malformed)?;
                let text = self.text.get(self.pos..end).ok_or_else(Self::malformed)?;
                self.pos = end;
                Scalar::number(text)
            }
            b't' => self.word(4, Scalar::True),
            b'f' => self.word(5, Scalar::False),
            b'n' => self.word(4, Scalar::Null),
            _ => return Err(Self::malformed()),
        };
        self.sink.leaf(field, value, self.membership);
        Ok(())
    }

    fn word(&mut self, len: usize, value: Scalar<'a>) -> Scalar<'a> {
        self.pos += len;
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One flattened value, as the sink got it.
    #[derive(Debug, Clone, PartialEq)]
    struct Leaf<'a> {
        field: u32,
        value: Scalar<'a>,
        membership: Vec<(u32, u32)>,
    }

    fn collect<'a, 'o>(out: &'o mut Vec<Leaf<'a>>) -> impl Sink<'a> + 'o {
        |field: u32, value: Scalar<'a>, membership: &[(u32, u32)]| {
            out.push(Leaf {
                field,
                value,
                membership: membership.to_vec(),
            })
        }
    }

    fn leaves(text: &str, step: impl Fn(&str) -> Step) -> Result<Vec<Leaf<'_>>, EventError> {
        let mut out = Vec::new();
        flatten(text, step, &mut collect(&mut out))?;
        Ok(out)
    }

    /// The plain reader's leaves for `text`, with a trie of `paths`.
    fn plain_leaves<'a>(text: &'a str, paths: &[(&str, Step)]) -> Vec<Leaf<'a>> {
        let trie = PathTrie::new(paths.iter().copied());
        let mut out = Vec::new();
        flatten_plain(text, &trie, &mut Vec::new(), &mut collect(&mut out)).unwrap();
        out
    }

    /// Every path is a field, numbered by the first letter.
    fn all(p: &str) -> Step {
        Step::Field(p.as_bytes()[0] as u32)
    }

    #[test]
    fn arrays_of_objects_record_membership() {
        let leaves = leaves(
            r#"{"e":[{"f":"A","l":"S"},{"f":"P"}],"r":["x","y"]}"#,
            |p| match p {
                "e" => Step::Descend,
                "e.f" => Step::Field(1),
                "e.l" => Step::Field(2),
                _ => all(p),
            },
        )
        .unwrap();
        let got: Vec<(u32, Vec<(u32, u32)>)> = leaves
            .iter()
            .map(|l| (l.field, l.membership.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, vec![(0, 0)]),
                (2, vec![(0, 0)]),
                (1, vec![(0, 1)]),
                (b'r' as u32, vec![]),
                (b'r' as u32, vec![]),
            ]
        );
    }

    #[test]
    fn root_must_be_an_object() {
        assert_eq!(leaves(r#"["x"]"#, all), Err(EventError::NotAnObject));
    }

    #[test]
    fn unwanted_subtrees_are_skipped() {
        let leaves = leaves(r#"{"a":{"b":[1,{"c":2}]},"d":1}"#, |p| {
            if p == "d" {
                Step::Field(0)
            } else {
                Step::Skip
            }
        })
        .unwrap();
        assert_eq!(leaves.len(), 1);
    }

    #[test]
    fn prefixes_give_no_leaves_and_strings_borrow() {
        let text = r#"{"a":"x","a":{"b":"y\u0041","c":"z"}}"#;
        let leaves = leaves(text, |p| match p {
            "a" => Step::Descend,
            "a.b" => Step::Field(7),
            "a.c" => Step::Field(8),
            _ => Step::Skip,
        })
        .unwrap();
        assert_eq!(leaves.len(), 2);
        assert_eq!(leaves[0].value, Scalar::Str("yA".into()));
        assert!(matches!(&leaves[1].value, Scalar::Str(Cow::Borrowed("z"))));
    }

    #[test]
    fn skipped_values_must_still_be_json() {
        let skip = |p: &str| if p == "d" { Step::Field(0) } else { Step::Skip };
        assert!(matches!(
            leaves(r#"{"a":[1,2,}],"d":1}"#, skip),
            Err(EventError::Syntax(_))
        ));
        assert!(matches!(
            leaves(r#"{"a":"x"#, skip),
            Err(EventError::Syntax(_))
        ));
    }

    #[test]
    fn plain_reader_gives_the_checked_flatteners_leaves() {
        let paths = [
            ("a", Step::Descend),
            ("a.b", Step::Field(1)),
            ("a.c", Step::Field(2)),
            ("d", Step::Field(3)),
            ("", Step::Descend),
            ("x", Step::Field(4)),
        ];
        let step = |p: &str| paths.iter().find(|q| q.0 == p).map_or(Step::Skip, |q| q.1);
        for text in [
            r#"{"a":{"b":"y\u0041","c":[1,{"c":true},[null]]},"d":-1.5e3,"z":{"a":1}}"#,
            r#" { "z" : [ "}" , { } ] , "a" : [ { "c" : "x" } , { "b" : false } ] } "#,
            r#"{"":{"x":"under the empty key","d":1},"x":2}"#,
            r#"{"a":"scalar at a prefix","d":[[1,[2]],{"e":3}]}"#,
        ] {
            assert_eq!(
                plain_leaves(text, &paths),
                leaves(text, step).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn plain_reader_leaves_objects_once_their_keys_are_read() {
        // After `b`, the rest of `a` is not read: the broken text there is never seen.
        let paths = [("a", Step::Descend), ("a.b", Step::Field(1))];
        let got = plain_leaves(r#"{"a":{"b":1,"c":[}}"#, &paths);
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn plain_reader_survives_other_text() {
        let paths = [("a", Step::Field(1)), ("b", Step::Field(2))];
        let trie = PathTrie::new(paths.iter().copied());
        for text in [
            "",
            "{",
            r#"{"a""#,
            r#"{"a":"#,
            r#"{"a":[1,"#,
            "{\"a\":tru",
            r#"{"b":[{"#,
        ] {
            let mut n = 0;
            let mut sink = |_: u32, _: Scalar<'_>, _: &[(u32, u32)]| n += 1;
            let _ = flatten_plain(text, &trie, &mut Vec::new(), &mut sink);
        }
        let deep = format!("{{\"a\":{}", "[".repeat(5000));
        assert!(flatten_plain(
            &deep,
            &trie,
            &mut Vec::new(),
            &mut |_: u32, _: Scalar<'_>, _: &[(u32, u32)]| {}
        )
        .is_err());
    }
}
