//! Hostile input never panics: random JSON-ish text through the pattern compiler, the
//! matcher and the transformer.

use trellis_events::{test_event_pattern, InputTransformer, Pattern, RuleContext, Schedule};

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\\u00e9",
    "\\ud800",
    "a",
    "$or",
    "*",
    "é",
    "ß",
    "𐐀",
    "0",
    "-",
    "1e5",
    ".",
    "true",
    "null",
    " ",
    "\"prefix\"",
    "\"anything-but\"",
    "\"numeric\"",
    "\"cidr\"",
    "\"wildcard\"",
    "\"exists\"",
    "\"equals-ignore-case\"",
    "<",
    ">",
    "/",
    "10.0.0.1",
    "::1",
    "\"a\":",
    "[\"",
    "\"]",
    "{\"a\":[",
    "]}",
    "cron(",
    "rate(",
    ")",
    "?",
];

fn random_text(rng: &mut Rng) -> String {
    let n = (rng.next() % 24) as usize;
    (0..n)
        .map(|_| PIECES[(rng.next() % PIECES.len() as u64) as usize])
        .collect()
}

#[test]
fn random_text_never_panics() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let ctx = RuleContext {
        rule_arn: "arn",
        rule_name: "r",
        ingestion_time: "t",
    };
    for _ in 0..30_000 {
        let a = random_text(&mut rng);
        let b = random_text(&mut rng);
        let _ = Pattern::parse(&a);
        let _ = test_event_pattern(&a, &b);
        let _ = test_event_pattern(r#"{"a":[{"exists":true}]}"#, &b);
        let _ = Schedule::parse(&a);
        if let Ok(t) = InputTransformer::new([("a", "$.a")], &a) {
            let _ = t.apply(&b, &ctx);
        }
    }
}
