//! reelforge-server: the gRPC layer (`api`, one file per service) over the engine's
//! services, its Prometheus metrics (`metrics`), logs with request ids (`logging`), TLS
//! (`tls`), API keys, roles, rate limits and the audit log (`auth`), and the server's
//! configuration (`config`). Only this crate (and the CLI)
//! knows tonic and the generated proto types; the binary composes the engine once at
//! start-up and hands its services to `api::serve`.

pub mod api;
pub mod auth;
pub mod codes;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod tls;

pub use config::Config;
