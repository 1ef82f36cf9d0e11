//! The vocabulary every Trellis crate shares: ARNs and resource ids, the AWS error model, the
//! clock, the AWS service-model runtime that routes, parses and validates API requests, and the
//! [`target::Target`] port through which listeners, event rules and workflow tasks invoke
//! anything addressable by ARN.

pub mod api;
pub mod arn;
pub mod clock;
pub mod error;
pub mod hash;
pub mod id;
pub mod json_line;
pub mod model;
pub mod target;

pub use arn::{Arn, ArnContext};
pub use error::ApiError;
