//! Search: text analysis, a BM25 inverted index and document vectors in sled, fusion and
//! reranking.

pub mod text;
pub mod index;
pub mod chunk;
pub mod fusion;
