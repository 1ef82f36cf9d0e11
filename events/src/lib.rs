//! EventBridge's rule language as a pure library: the event-pattern compiler (AWS semantics
//! and AWS error texts, following aws/event-ruler, which AWS runs), the compiled matcher for
//! all rules of a bus, target input transformation, and schedule expressions.
//!
//! - [`pattern`]: [`Pattern::parse`] compiles raw pattern text or fails with AWS's
//!   `Event pattern is not valid. Reason: …` message.
//! - [`machine`]: [`MachineBuilder::add_rule`] then [`MachineBuilder::build`] give an
//!   immutable [`Machine`]; [`Machine::matches`] returns the matching rule ids for raw event text.
//! - [`test_event_pattern`]: the `TestEventPattern` API.
//! - [`transform`]: `InputPath` and `InputTransformer` (`InputPathsMap` + `InputTemplate`).
//! - [`schedule`]: `rate(…)` / `cron(…)` parsing and next fire times in UTC.
//! - [`service`]: the EventBridge API, durable delivery to targets and schedules.
//!
//! ```
//! use trellis_events::{test_event_pattern, MachineBuilder, Pattern};
//!
//! let pattern = Pattern::parse(r#"{"source":["aws.ec2"],"detail":{"state":[{"anything-but":"pending"}]}}"#)?;
//! let mut builder = MachineBuilder::new();
//! builder.add_rule("rule-1", &pattern);
//! let machine = builder.build(); // immutable, Send + Sync: share it and swap it whole
//! let event = r#"{"source":"aws.ec2","detail":{"state":"running"}}"#;
//! assert_eq!(machine.matches(event)?, vec![&"rule-1"]);
//! assert!(test_event_pattern(r#"{"source":["aws.ec2"]}"#, event)?);
//! assert_eq!(
//!     Pattern::parse(r#"{"source":"aws.ec2"}"#).unwrap_err().to_string(),
//!     r#"Event pattern is not valid. Reason: "source" must be an object or an array"#,
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Patterns and events are read from raw JSON text, because duplicate keys and number
//! spellings matter. Known departures from event-ruler are listed in `tests/fixtures/README.md`.

mod event;
mod json;
pub mod machine;
pub mod pattern;
pub mod schedule;
pub mod service;
pub mod transform;

pub use event::EventError;
pub use machine::{Machine, MachineBuilder};
pub use pattern::{Pattern, PatternError};
pub use schedule::{Schedule, ScheduleError};
pub use transform::{InputTransformer, RuleContext, TransformError};

/// Why `test_event_pattern` could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestPatternError {
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error(transparent)]
    Event(#[from] EventError),
}

/// The `TestEventPattern` API: whether `event` matches `pattern`, both raw JSON text.
pub fn test_event_pattern(pattern: &str, event: &str) -> Result<bool, TestPatternError> {
    let pattern = Pattern::parse(pattern)?;
    let mut builder = MachineBuilder::new();
    builder.add_rule((), &pattern);
    Ok(!builder.build().matches(event)?.is_empty())
}
