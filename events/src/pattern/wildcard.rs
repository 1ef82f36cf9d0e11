//! Wildcard (`*`) patterns: validation with event-ruler's error texts, matching, and the
//! complexity estimate behind AWS's "Rule is too complex" rejection.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// The largest complexity accepted for one pattern's wildcard machine.
///
/// AWS evaluates event-ruler's `MachineComplexityEvaluator` on a machine built from the rule's
/// wildcard branches and rejects rules above a limit it does not publish. AWS-validated data
/// bound it: `/Users/*/dir/dir/dir/dir/dir/doc.txt` (complexity 7) is accepted and
/// `*:*:*:*:*:event-bus/*` (11) rejected; 10 is the per-rule limit event-ruler's README gives
/// as its example of this strategy.
pub(crate) const MAX_COMPLEXITY: usize = 10;

/// A validated wildcard pattern over UTF-8 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Glob {
    /// Literal runs between stars; `segments.len() == stars + 1`.
    segments: Vec<Vec<u8>>,
}

/// One state of the estimate's automaton for a quoted pattern (see `complexity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum State {
    /// `n` tokens consumed.
    At(usize),
    /// Inside the star at token `n` (the self-looping state).
    Loop(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Byte(u8),
    Star,
}

// === impl Glob ===

impl Glob {
    /// Parses `value` (the pattern text without quotes). Positions in errors count bytes of
    /// the quoted form, as event-ruler reports them.
    pub(crate) fn parse(value: &str) -> Result<Glob, String> {
        let quoted = format!("\"{value}\"");
        let bytes = quoted.as_bytes();
        let mut segments = vec![Vec::new()];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'*' => {
                    if bytes.get(i + 1) == Some(&b'*') {
                        return Err(format!("Consecutive wildcard characters at pos {i}"));
                    }
                    segments.push(Vec::new());
                }
                b'\\' => match bytes.get(i + 1) {
                    Some(&next @ (b'*' | b'\\')) => {
                        segments.last_mut().expect("non-empty").push(next);
                        i += 1;
                    }
                    _ => return Err(format!("Invalid escape character at pos {i}")),
                },
                b => segments.last_mut().expect("non-empty").push(b),
            }
            i += 1;
        }
        // Drop the quotes again: both ends are anchored, so they only restate that.
        segments.first_mut().expect("non-empty").remove(0);
        segments.last_mut().expect("non-empty").pop();
        Ok(Glob { segments })
    }

    pub(crate) fn matches(&self, value: &str) -> bool {
        let v = value.as_bytes();
        let (first, rest) = self.segments.split_first().expect("non-empty");
        if rest.is_empty() {
            return v == first.as_slice();
        }
        if !v.starts_with(first) {
            return false;
        }
        let last = rest.last().expect("non-empty");
        if v.len() < first.len() + last.len() || !v.ends_with(last) {
            return false;
        }
        // Greedy leftmost placement of the middle segments is optimal for `*` globs.
        let mut pos = first.len();
        let end = v.len() - last.len();
        for seg in &rest[..rest.len() - 1] {
            match find(&v[pos..end], seg) {
                Some(at) => pos += at + seg.len(),
                None => return false,
            }
        }
        true
    }

    /// The literal text before the first star, when there is a star.
    pub(crate) fn literal_prefix(&self) -> Option<&[u8]> {
        (self.segments.len() > 1).then(|| self.segments[0].as_slice())
    }

    /// The literal text after the last star, when there is a star.
    pub(crate) fn literal_suffix(&self) -> Option<&[u8]> {
        (self.segments.len() > 1).then(|| self.segments.last().expect("non-empty").as_slice())
    }

    /// The whole text, when there is no star.
    pub(crate) fn literal(&self) -> Option<&[u8]> {
        (self.segments.len() == 1).then(|| self.segments[0].as_slice())
    }

    fn tokens(&self) -> Vec<Tok> {
        let mut out = vec![Tok::Byte(b'"')];
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push(Tok::Star);
            }
            out.extend(seg.iter().map(|b| Tok::Byte(*b)));
        }
        out.push(Tok::Byte(b'"'));
        out
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// event-ruler's machine complexity for wildcard patterns sharing one field: the largest
/// number of pattern prefixes a worst-case input keeps alive at once. Checked against
/// event-ruler's own evaluator on 1,014 pattern sets (`tests/fixtures/event-ruler/
/// wildcard-complexity.tsv`).
///
/// The automaton mirrors event-ruler's: for a star at token `i`, the state before it (`At(i)`)
/// moves on any byte into a self-looping state (`Loop(i)`), and both move on token `i + 1` to
/// `At(i + 2)`. Each live state counts once, and a live `At(i)` before a star counts once more
/// while its loop state is not live, as event-ruler counts the pending all-bytes transition.
pub(crate) fn complexity(globs: &[&Glob]) -> usize {
    let patterns: Vec<Vec<Tok>> = globs.iter().map(|g| g.tokens()).collect();
    let mut alphabet: BTreeSet<u8> = BTreeSet::new();
    for toks in &patterns {
        for t in toks {
            if let Tok::Byte(b) = t {
                alphabet.insert(*b);
            }
        }
    }
    // One byte that appears in no pattern stands for all the others.
    let other = (0u8..=255).find(|b| !alphabet.contains(b));
    let inputs: Vec<Option<u8>> = alphabet
        .iter()
        .map(|b| Some(*b))
        .chain(other.map(|_| None))
        .collect();

    type Set = BTreeSet<(usize, State)>;
    let start: Set = (0..patterns.len()).map(|p| (p, State::At(0))).collect();
    let mut seen: HashSet<Set> = HashSet::new();
    let mut queue = VecDeque::from([start]);
    let mut best = 0;
    let mut memo: HashMap<(usize, State, Option<u8>), Vec<State>> = HashMap::new();
    while let Some(set) = queue.pop_front() {
        if seen.len() > 20_000 {
            break;
        }
        for input in &inputs {
            let mut next: Set = BTreeSet::new();
            for &(p, s) in &set {
                let targets = memo
                    .entry((p, s, *input))
                    .or_insert_with(|| step(&patterns[p], s, *input));
                next.extend(targets.iter().map(|t| (p, *t)));
            }
            if next.is_empty() || !seen.insert(next.clone()) {
                continue;
            }
            let size = next
                .iter()
                .map(|&(p, s)| match s {
                    State::At(i) if patterns[p].get(i) == Some(&Tok::Star) => {
                        if next.contains(&(p, State::Loop(i))) {
                            1
                        } else {
                            2
                        }
                    }
                    _ => 1,
                })
                .sum();
            best = best.max(size);
            queue.push_back(next);
        }
    }
    best
}

fn step(toks: &[Tok], s: State, input: Option<u8>) -> Vec<State> {
    let byte_is = |i: usize| -> bool {
        matches!((toks.get(i), input), (Some(Tok::Byte(b)), Some(x)) if *b == x)
    };
    let mut out = Vec::new();
    match s {
        State::At(i) => match toks.get(i) {
            Some(Tok::Byte(_)) if byte_is(i) => out.push(State::At(i + 1)),
            Some(Tok::Star) => {
                out.push(State::Loop(i));
                if byte_is(i + 1) {
                    out.push(State::At(i + 2));
                }
            }
            _ => {}
        },
        State::Loop(i) => {
            out.push(State::Loop(i));
            if byte_is(i + 1) {
                out.push(State::At(i + 2));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors() {
        assert_eq!(
            Glob::parse("a**b").unwrap_err(),
            "Consecutive wildcard characters at pos 2"
        );
        assert_eq!(
            Glob::parse("a\\b").unwrap_err(),
            "Invalid escape character at pos 2"
        );
        assert_eq!(
            Glob::parse("arn:aws:events:us-east-1:**:event-bus/*").unwrap_err(),
            "Consecutive wildcard characters at pos 26"
        );
    }

    #[test]
    fn matching() {
        let g = Glob::parse("*/bin/*.jar").unwrap();
        assert!(g.matches("/usr/bin/x.jar"));
        assert!(g.matches("/bin/.jar"));
        assert!(!g.matches("/usr/lib/x.jar"));
        assert!(Glob::parse("a\\*b").unwrap().matches("a*b"));
        assert!(!Glob::parse("a\\*b").unwrap().matches("axb"));
        assert!(Glob::parse("*").unwrap().matches(""));
        assert!(Glob::parse("*mid*").unwrap().matches("mid"));
        assert!(!Glob::parse("ab*ba").unwrap().matches("aba"));
    }

    #[test]
    fn complexity_of_aws_cases() {
        let c = |p: &str| complexity(&[&Glob::parse(p).unwrap()]);
        assert_eq!(c("/Users/*/dir/dir/dir/dir/dir/doc.txt"), 7);
        assert_eq!(c("*:*:*:*:*:event-bus/*"), 11);
        assert!(c("*:*:*:*:*:event-bus/*") > MAX_COMPLEXITY);
        assert!(c("arn:aws:events:us-east-1:*:event-bus/*") <= MAX_COMPLEXITY);
    }

    /// Each line: event-ruler's complexity, a tab, then quoted patterns joined by `||`.
    #[test]
    fn complexity_agrees_with_event_ruler() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/event-ruler/wildcard-complexity.tsv"
        );
        let text = std::fs::read_to_string(path).expect("fixture");
        let mut failures = Vec::new();
        let mut total = 0;
        for line in text.lines() {
            total += 1;
            let (want, patterns) = line.split_once('\t').expect("tab");
            let globs: Vec<Glob> = patterns
                .split("||")
                .map(|p| Glob::parse(&p[1..p.len() - 1]).expect("valid"))
                .collect();
            let got = complexity(&globs.iter().collect::<Vec<_>>());
            if got.to_string() != want {
                failures.push(format!("{patterns}: event-ruler {want}, ours {got}"));
            }
        }
        println!(
            "wildcard complexity: {}/{total} agree",
            total - failures.len()
        );
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
