//! Search: text analysis, a BM25 inverted index and document vectors in sled, fusion and
//! reranking.

pub mod bda;
pub mod chunk;
pub mod fusion;
pub mod index;
pub mod indexer;
pub mod query;
pub mod text;
pub mod vectors;
