//! reelforge-core: what every layer shares and nothing heavy: the one error type, time
//! parsing, highlight segments with their post-processing and evaluation, reading a
//! model's answer, video ids and vector maths. No I/O; the CLI depends on this alone
//! (with the protos).

pub mod answer;
pub mod error;
pub mod eval;
pub mod ids;
pub mod page;
pub mod script;
pub mod segments;
pub mod time;
pub mod vector;

use std::future::Future;
use std::pin::Pin;

pub use error::{Error, ErrorKind, Result};

/// The future a provider trait method returns (object-safe async).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
