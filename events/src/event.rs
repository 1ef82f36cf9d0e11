//! Flattening an event into `(path, value, array membership)` leaves, as event-ruler does.
//!
//! Paths join keys with `.`; array elements add no key. An object or array inside an array
//! records which element it came from (`array id → index`), so that the matcher can refuse to
//! combine fields from different elements of one array. Scalars directly inside an array do
//! not record their element, as in event-ruler. Duplicate keys each contribute their leaves.

use crate::json::{SyntaxError, Token, Tokenizer};
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

/// One flattened value, borrowing the event text where it had no escapes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf<'a> {
    /// The field id the step function gave the path.
    pub(crate) field: u32,
    pub(crate) value: Scalar<'a>,
    /// `(array id, element index)` pairs of the enclosing array elements.
    pub(crate) membership: Vec<(u32, u32)>,
}

struct Flattener<'a, F> {
    tokens: Tokenizer<'a>,
    /// The step for a path, and how many distinct keys under it lead to a rule's path.
    step: F,
    leaves: Vec<Leaf<'a>>,
    arrays: u32,
    membership: Vec<(u32, u32)>,
    /// The text is known to be valid JSON without repeated or dotted keys ([`check_plain`]):
    /// skipped values are not checked, and an object is left once every key under it that
    /// leads to a rule's path has been read.
    plain: bool,
}

/// Flattens `text` into the leaves of the paths `step` calls fields, descending only into
/// paths it does not skip (event-ruler skips steps no rule uses, which is where most of the
/// speed on big events comes from). Skipped values are still checked to be valid JSON.
pub(crate) fn flatten<F: Fn(&str) -> Step>(
    text: &str,
    step: F,
) -> Result<Vec<Leaf<'_>>, EventError> {
    run(text, |p| (step(p), 0), 0, false)
}

/// [`flatten`] for text that [`check_plain`] found plain: skipped values are stepped over
/// without checking them, and an object is left as soon as all `children` of its path (the
/// distinct keys under it that lead to a rule's path; `root_children` for the event itself)
/// have been read, since a plain object cannot have them twice. The leaves are the same as
/// `flatten`'s for such text.
pub(crate) fn flatten_plain<F: Fn(&str) -> (Step, u32)>(
    text: &str,
    root_children: u32,
    step: F,
) -> Result<Vec<Leaf<'_>>, EventError> {
    run(text, step, root_children, true)
}

fn run<F: Fn(&str) -> (Step, u32)>(
    text: &str,
    step: F,
    root_children: u32,
    plain: bool,
) -> Result<Vec<Leaf<'_>>, EventError> {
    let mut f = Flattener {
        tokens: Tokenizer::new(text),
        step,
        leaves: Vec::new(),
        arrays: 0,
        membership: Vec::new(),
        plain,
    };
    if f.next()? != Token::StartObject {
        return Err(EventError::NotAnObject);
    }
    f.object(&mut String::new(), root_children)?;
    Ok(f.leaves)
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

impl<'a, F: Fn(&str) -> (Step, u32)> Flattener<'a, F> {
    fn next(&mut self) -> Result<Token<'a>, EventError> {
        match self.tokens.next_token() {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(EventError::NotAnObject),
            Err(e) => Err(syntax(e)),
        }
    }

    /// Reads an object whose `{` was just read; `children` counts (for plain text) the keys
    /// under its path that lead somewhere.
    fn object(&mut self, path: &mut String, children: u32) -> Result<(), EventError> {
        let mut wanted = children;
        loop {
            if self.plain && wanted == 0 {
                // Every key that matters has been read (or none does): the rest is not needed.
                // The event's own object is simply abandoned.
                if self.tokens.depth() > 1 {
                    self.tokens.leave_object_unchecked();
                }
                return Ok(());
            }
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
                (Step::Skip, _) if self.plain => self.tokens.skip_value_unchecked(),
                (Step::Skip, _) => self.tokens.skip_value().map_err(syntax)?,
                (step, below) => {
                    let token = self.next()?;
                    self.value(token, path, step, below)?;
                    wanted = wanted.saturating_sub(1);
                }
            }
            path.truncate(len);
        }
    }

    fn array(&mut self, path: &mut String, step: Step, children: u32) -> Result<(), EventError> {
        let id = self.arrays;
        self.arrays += 1;
        let mut index = 0u32;
        loop {
            let token = self.next()?;
            match token {
                Token::EndArray => return Ok(()),
                Token::StartObject | Token::StartArray => {
                    self.membership.push((id, index));
                    self.value(token, path, step, children)?;
                    self.membership.pop();
                }
                scalar => self.value(scalar, path, step, children)?,
            }
            index += 1;
        }
    }

    fn value(
        &mut self,
        token: Token<'a>,
        path: &mut String,
        step: Step,
        children: u32,
    ) -> Result<(), EventError> {
        let value = match token {
            Token::StartObject => return self.object(path, children),
            Token::StartArray => return self.array(path, step, children),
            Token::String(s) => Scalar::Str(s),
            Token::Number(t) => Scalar::number(t),
            Token::True => Scalar::True,
            Token::False => Scalar::False,
            Token::Null => Scalar::Null,
            _ => return Err(EventError::Syntax("unexpected token".into())),
        };
        if let Step::Field(field) = step {
            self.leaves.push(Leaf {
                field,
                value,
                membership: self.membership.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// Every path is a field, numbered by the first letter.
    fn all(p: &str) -> Step {
        Step::Field(p.as_bytes()[0] as u32)
    }

    #[test]
    fn arrays_of_objects_record_membership() {
        let leaves = flatten(
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
        assert_eq!(flatten(r#"["x"]"#, all), Err(EventError::NotAnObject));
    }

    #[test]
    fn unwanted_subtrees_are_skipped() {
        let leaves = flatten(r#"{"a":{"b":[1,{"c":2}]},"d":1}"#, |p| {
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
        let leaves = flatten(text, |p| match p {
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
            flatten(r#"{"a":[1,2,}],"d":1}"#, skip),
            Err(EventError::Syntax(_))
        ));
        assert!(matches!(
            flatten(r#"{"a":"x"#, skip),
            Err(EventError::Syntax(_))
        ));
    }
}
