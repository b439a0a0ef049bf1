//! reelforge-server: the engine (media, analysis, store, ingest) and its gRPC layer
//! (`api`). Engine modules never import tonic or the generated proto types; only `api`
//! and the binary do.

pub mod analysis;
pub mod api;
pub mod bench;
pub mod config;
pub mod error;
pub mod highlight;
pub mod ingest;
pub mod media;
pub mod models;
pub mod search;
pub mod store;

pub use config::Config;
pub use error::{Error, Result};
