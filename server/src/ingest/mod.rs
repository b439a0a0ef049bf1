//! Ingest: turning a video file into stored, analysed material. `Engine` is the entry
//! point the gRPC layer calls; `pipeline` does one ingest; `jobs` tracks running ones.

mod engine;
mod events;
mod jobs;
pub mod paths;
mod pipeline;
pub mod plan;
mod upload;

pub(crate) use engine::blocking;
pub use engine::{Engine, IngestOptions, Providers, VideoDetail};
pub use events::{CollectSink, IngestEvent, IngestSink};
pub use jobs::{JobEvents, JobHandle};
pub use pipeline::{Pipeline, PreparedIngest};
pub use upload::Upload;
