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

/// One flattened value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    pub(crate) path: String,
    pub(crate) value: Scalar,
    /// `(array id, element index)` pairs of the enclosing array elements.
    pub(crate) membership: Vec<(u32, u32)>,
}

struct Flattener<'a, F> {
    tokens: Tokenizer<'a>,
    wanted: F,
    leaves: Vec<Leaf>,
    arrays: u32,
    membership: Vec<(u32, u32)>,
}

/// Flattens `text`, descending only into paths for which `wanted` is true (event-ruler skips
/// steps no rule uses, which is where most of the speed on big events comes from).
pub(crate) fn flatten<F: Fn(&str) -> bool>(text: &str, wanted: F) -> Result<Vec<Leaf>, EventError> {
    let mut f = Flattener {
        tokens: Tokenizer::new(text),
        wanted,
        leaves: Vec::new(),
        arrays: 0,
        membership: Vec::new(),
    };
    if f.next()? != Token::StartObject {
        return Err(EventError::NotAnObject);
    }
    f.object(&mut String::new())?;
    Ok(f.leaves)
}

impl<'a, F: Fn(&str) -> bool> Flattener<'a, F> {
    fn next(&mut self) -> Result<Token<'a>, EventError> {
        match self.tokens.next_token() {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(EventError::NotAnObject),
            Err(SyntaxError(m)) => Err(EventError::Syntax(m)),
        }
    }

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
            let token = self.next()?;
            if (self.wanted)(path) {
                self.value(token, path)?;
            } else {
                self.tokens
                    .skip_children(&token)
                    .map_err(|SyntaxError(m)| EventError::Syntax(m))?;
            }
            path.truncate(len);
        }
    }

    fn array(&mut self, path: &mut String) -> Result<(), EventError> {
        let id = self.arrays;
        self.arrays += 1;
        let mut index = 0u32;
        loop {
            let token = self.next()?;
            match token {
                Token::EndArray => return Ok(()),
                Token::StartObject | Token::StartArray => {
                    self.membership.push((id, index));
                    self.value(token, path)?;
                    self.membership.pop();
                }
                scalar => self.value(scalar, path)?,
            }
            index += 1;
        }
    }

    fn value(&mut self, token: Token<'a>, path: &mut String) -> Result<(), EventError> {
        let value = match token {
            Token::StartObject => return self.object(path),
            Token::StartArray => return self.array(path),
            Token::String(s) => Scalar::Str(s.into_owned()),
            Token::Number(t) => Scalar::number(t.to_owned()),
            Token::True => Scalar::True,
            Token::False => Scalar::False,
            Token::Null => Scalar::Null,
            _ => return Err(EventError::Syntax("unexpected token".into())),
        };
        self.leaves.push(Leaf {
            path: path.clone(),
            value,
            membership: self.membership.clone(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_of_objects_record_membership() {
        let leaves = flatten(
            r#"{"e":[{"f":"A","l":"S"},{"f":"P"}],"r":["x","y"]}"#,
            |_| true,
        )
        .unwrap();
        let got: Vec<(&str, Vec<(u32, u32)>)> = leaves
            .iter()
            .map(|l| (l.path.as_str(), l.membership.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("e.f", vec![(0, 0)]),
                ("e.l", vec![(0, 0)]),
                ("e.f", vec![(0, 1)]),
                ("r", vec![]),
                ("r", vec![]),
            ]
        );
    }

    #[test]
    fn root_must_be_an_object() {
        assert_eq!(flatten(r#"["x"]"#, |_| true), Err(EventError::NotAnObject));
    }

    #[test]
    fn unwanted_subtrees_are_skipped() {
        let leaves = flatten(r#"{"a":{"b":[1,{"c":2}]},"d":1}"#, |p| p == "d").unwrap();
        assert_eq!(leaves.len(), 1);
    }
}
