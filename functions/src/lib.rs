//! Lambda-style functions: the Lambda Runtime API host and worker supervisor that run
//! `bootstrap` packages (what `cargo lambda build` makes) exactly as the Lambda service does, the
//! Lambda API (rest-json) over them, WebAssembly functions (WASI command modules and
//! `wasi:http` components) run in-process by wasmtime, each function registered as a [`Target`] by ARN, and the
//! slice of IAM and STS that deploy tools call first.
//!
//! [`Target`]: trellis_core::target::Target

pub mod component;
pub mod eventstream;
pub mod iam;
pub mod lambda;
pub mod package;
pub mod pool;
pub mod sts;
pub mod wasm;
pub mod worker;

pub use iam::Iam;
pub use lambda::Lambda;
pub use sts::Sts;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
