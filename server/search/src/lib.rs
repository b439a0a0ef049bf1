//! reelforge-search: the search index on its own, with no model in it: documents on a
//! video's timeline (`doc`), text analysis (`text`), the backend seam (`backend`) and the
//! embedded backend (`index`: `storage` for the durable copy, `slots` for memory, `bm25`
//! for scoring, `vectors` for embedding spaces), fusion of ranked lists, transcript
//! chunking and Bedrock Data Automation results as documents. Query embedding and
//! reranking happen above, in the engine's search service.

pub mod backend;
pub mod bda;
pub mod bm25;
pub mod chunk;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod doc;
pub mod fusion;
pub mod index;
mod slots;
pub mod storage;
pub mod text;
pub mod vectors;

pub use backend::{Fetched, SearchBackend, VideoOwner};
pub use doc::{Bm25Hit, DocFilter, DocKind, DocMeta, SearchDoc, Space};
pub use index::SearchIndex;
