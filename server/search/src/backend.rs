//! The search backend seam: what the engine's search service needs of an index, whatever
//! keeps it. The embedded index (`SearchIndex`, sled on disk, memory for queries)
//! implements it; a distributed store (Milvus) implements the same calls over the
//! network, which is why every call is async and filters are declarative.

use reelforge_core::error::Result;
use reelforge_core::BoxFuture;

use crate::doc::{Bm25Hit, DocFilter, SearchDoc, Space};
use crate::text::Analyzer;

/// Whose a video is and what its file is called: kept with its documents by a backend
/// several servers share (`SearchBackend::keeps_owners`), so a hit from another server's
/// video can be filtered by tenant and shown without that server's catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VideoOwner {
    pub tenant: String,
    pub filename: String,
}

/// A stored document fetched by id, with its vector when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub doc: SearchDoc,
    pub vector: Option<Vec<f32>>,
    /// Its video's owner, from backends that keep owners (`None` from the others).
    pub owner: Option<VideoOwner>,
}

/// What an index holds, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendStats {
    pub documents: u64,
    /// Documents with a vector held for nearest-neighbour search.
    pub vectors: u64,
}

pub trait SearchBackend: Send + Sync {
    /// e.g. "embedded".
    fn name(&self) -> &'static str;
    /// The text analysis its lexical path uses (snippets mark the same terms).
    fn analyzer(&self) -> &Analyzer;
    /// Called once before the server serves: checks what the backend needs (a server it
    /// reaches, collections of the right shape) and creates what is missing. An error
    /// names the setting to fix.
    fn connect(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Whether it keeps each video's owner with its documents and honours
    /// `DocFilter::tenant` (a store several servers share); when not, the caller
    /// restricts `DocFilter::video_ids` to the tenant's videos itself.
    fn keeps_owners(&self) -> bool {
        false
    }
    /// Replaces a video's documents (each with its vector) and records the store
    /// generation they came from; an interrupted replace leaves the video unmarked, so
    /// it is redone.
    fn replace_video<'a>(
        &'a self,
        video_id: &'a str,
        generation: u32,
        owner: &'a VideoOwner,
        docs: Vec<(SearchDoc, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Removes a video's documents; returns how many.
    fn remove_video<'a>(&'a self, video_id: &'a str) -> BoxFuture<'a, Result<u64>>;
    /// The store generation of a video whose documents are indexed.
    fn indexed_generation<'a>(&'a self, video_id: &'a str) -> BoxFuture<'a, Result<Option<u32>>>;
    fn indexed_videos(&self) -> BoxFuture<'_, Result<Vec<String>>>;
    /// The best `limit` documents by BM25 among those `filter` accepts.
    fn lexical<'a>(
        &'a self,
        query: &'a str,
        filter: &'a DocFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Bm25Hit>>>;
    /// The `limit` nearest documents of `space` to a unit `vector` by cosine.
    fn nearest<'a>(
        &'a self,
        space: Space,
        vector: &'a [f32],
        filter: &'a DocFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(u64, f32)>>>;
    /// Called once at shutdown, after the last write: persists what it keeps in memory
    /// only (the embedded index saves its graphs).
    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// How many documents (and vectors) it holds.
    fn stats(&self) -> BoxFuture<'_, Result<BackendStats>>;
    /// Documents by id, in order (`None` for one that is gone).
    fn fetch<'a>(
        &'a self,
        ids: &'a [u64],
        with_vectors: bool,
    ) -> BoxFuture<'a, Result<Vec<Option<Fetched>>>>;
}
