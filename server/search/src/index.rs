//! The embedded search index: documents, a BM25 inverted index and document vectors,
//! durable in an `IndexStorage` (sled trees beside the store's by default) and served
//! from memory (`slots`): filters and BM25 read no disk, BM25 adds scores into a flat
//! array (`bm25::top_k`), and vector search scans one contiguous matrix per embedding
//! space or walks its HNSW graph once the space is large (see `vectors`). Memory is
//! rebuilt from storage at open; the graphs are saved beside the store when the index
//! has a directory for them, and loaded from there at the next open.
//!
//! Two embedding spaces: `text` (every document with text, the text embedder's vectors)
//! and `visual` (`frame` documents: thumbnails embedded by the image-text model, searched
//! with the same model's text tower). Frames have no words and stay out of BM25 and its
//! statistics.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;

use crate::backend::{BackendStats, Fetched, SearchBackend, VideoOwner};
use crate::bm25::{self, Bm25, QueryTerm, Scorer};
use crate::doc::{Bm25Hit, DocFilter, DocMeta, SearchDoc, Space};
use crate::slots::Slots;
use crate::storage::{Change, IndexStorage, LoadSink, SledStorage, StoredDoc};
use crate::text::Analyzer;
use crate::vectors::{self, AnnConfig, Snapshot, VectorSpace};

/// The embedded index; clones share it.
#[derive(Clone)]
pub struct SearchIndex {
    storage: Arc<dyn IndexStorage>,
    analyzer: Arc<Analyzer>,
    memory: Arc<RwLock<Slots>>,
    scorer: Bm25,
    ann: AnnConfig,
    /// Candidates a graph search explores, at least (starts at `ann.ef_search`).
    ef_search: Arc<AtomicUsize>,
    /// Where graphs are saved (`None`: they are built at every open).
    graph_dir: Option<Arc<Path>>,
}

/// Rebuilds the slots from what storage replays.
struct Loader<'a>(&'a mut Slots);

impl LoadSink for Loader<'_> {
    fn doc(&mut self, id: u64, stored: StoredDoc, vector: Vec<f32>) -> Result<()> {
        self.0
            .insert(id, &stored, &vector)
            .map_err(|e| Error::internal(format!("stored search document {id} does not fit: {e}")))
    }
}

/// The name a space's graph is saved under.
fn graph_name(space: Space) -> &'static str {
    match space {
        Space::Text => "hnsw-text",
        Space::Visual => "hnsw-visual",
    }
}

impl SearchIndex {
    /// Opens the index in `db`'s trees and loads it into memory; graphs are saved in
    /// and loaded from `graph_dir` when given.
    pub fn open(db: &sled::Db, graph_dir: Option<&Path>) -> Result<SearchIndex> {
        Self::open_with(db, graph_dir, AnnConfig::default())
    }

    /// As `open`, with HNSW settings of its own (tests and benchmarks).
    pub fn open_with(
        db: &sled::Db,
        graph_dir: Option<&Path>,
        ann: AnnConfig,
    ) -> Result<SearchIndex> {
        Self::open_storage(Arc::new(SledStorage::open(db)?), graph_dir, ann)
    }

    /// Loads the index from any storage.
    pub fn open_storage(
        storage: Arc<dyn IndexStorage>,
        graph_dir: Option<&Path>,
        ann: AnnConfig,
    ) -> Result<SearchIndex> {
        let mut slots = Slots::default();
        storage.load(&mut Loader(&mut slots))?;
        // Saved graphs load after the records, on this thread. (Loading them on threads of
        // their own beside the records saved ~4 s of ~36 s at 1M documents, but hybrid
        // searches through the graph then ran 4x slower in the same benchmark.)
        if let Some(dir) = graph_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
            for space in [Space::Text, Space::Visual] {
                let vectors = slots.space_mut(space);
                if vectors.is_empty() {
                    continue;
                }
                let Some(graph) = vectors::load(dir, graph_name(space)) else {
                    continue;
                };
                match vectors.adopt(graph) {
                    Ok(inserted) => tracing::info!(
                        ?space,
                        vectors = vectors.len(),
                        inserted,
                        "saved HNSW graph loaded"
                    ),
                    Err(e) => tracing::warn!(?space, "saved HNSW graph not used: {e}"),
                }
            }
        }
        let index = SearchIndex {
            storage,
            analyzer: Arc::new(Analyzer::new(true)),
            memory: Arc::new(RwLock::new(slots)),
            scorer: Bm25::default(),
            ann,
            ef_search: Arc::new(ann.ef_search.into()),
            graph_dir: graph_dir.map(Arc::from),
        };
        index.build_graphs_if_due();
        Ok(index)
    }

    /// Drops the whole index from `db` and its saved graphs from `graph_dir` (before it
    /// is opened): for re-embedding every video with another text embedder, whose
    /// vectors cannot join the old ones.
    pub fn drop_all(db: &sled::Db, graph_dir: Option<&Path>) -> Result<()> {
        if let Some(dir) = graph_dir {
            match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::internal(format!(
                        "cannot remove {}: {e}",
                        dir.display()
                    )))
                }
                _ => {}
            }
        }
        SledStorage::drop_all(db)
    }

    fn memory(&self) -> std::sync::RwLockReadGuard<'_, Slots> {
        self.memory.read().expect("search memory poisoned")
    }

    /// Starts a graph build on its own thread for each space that has grown past the
    /// threshold (or whose graph has too many removed points).
    fn build_graphs_if_due(&self) {
        self.start_builds(self.ann);
    }

    /// Starts building graphs now, whatever the threshold (benchmarks: load, then build
    /// once); `wait_for_graphs` waits for them.
    pub fn build_graphs_now(&self) {
        self.start_builds(AnnConfig {
            threshold: 1,
            ..self.ann
        });
    }

    fn start_builds(&self, ann: AnnConfig) {
        for space in [Space::Text, Space::Visual] {
            let snapshot = self
                .memory
                .write()
                .expect("search memory poisoned")
                .space_mut(space)
                .wants_build(ann);
            if let Some(snapshot) = snapshot {
                let memory = self.memory.clone();
                let dir = self.graph_dir.clone();
                std::thread::Builder::new()
                    .name("hnsw-build".into())
                    .spawn(move || build_graph(memory, space, snapshot, dir.as_deref()))
                    .expect("spawn the HNSW build thread");
            }
        }
    }

    /// Saves each graph that has points inserted since it was saved (at shutdown, so the
    /// next start inserts nothing).
    pub fn save_graphs(&self) -> Result<()> {
        let Some(dir) = &self.graph_dir else {
            return Ok(());
        };
        let mut memory = self.memory.write().expect("search memory poisoned");
        for space in [Space::Text, Space::Visual] {
            if let Some(graph) = memory.space_mut(space).unsaved_graph() {
                vectors::save(graph, dir, graph_name(space))?;
                graph.saved();
            }
        }
        Ok(())
    }

    /// Sets how many candidates a graph search explores at least (recall against speed).
    pub fn set_ef_search(&self, ef: usize) {
        self.ef_search.store(ef.max(1), Ordering::Relaxed);
    }

    /// Whether `space` is searched through an HNSW graph now.
    pub fn has_graph(&self, space: Space) -> bool {
        self.memory().space(space).has_graph()
    }

    /// Waits until no graph build is running (benchmarks and tests).
    pub fn wait_for_graphs(&self) {
        loop {
            let building = {
                let m = self.memory();
                m.space(Space::Text).building || m.space(Space::Visual).building
            };
            if !building {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// The store generation of `video_id` whose documents are indexed, if any.
    pub fn indexed_generation(&self, video_id: &str) -> Result<Option<u32>> {
        self.storage.generation(video_id)
    }

    /// Video ids with indexed documents.
    pub fn indexed_videos(&self) -> Result<Vec<String>> {
        self.storage.indexed_videos()
    }

    /// Replaces `video_id`'s documents with `docs` (each with its vector) and records
    /// `generation` as indexed. The old documents go and the new ones come in one atomic
    /// write, and searches see the video before or after, never half of it; the
    /// generation mark goes last, so a replace interrupted before it is redone at the
    /// next start.
    pub fn replace_video(
        &self,
        video_id: &str,
        generation: u32,
        docs: &[(SearchDoc, Vec<f32>)],
    ) -> Result<()> {
        self.storage.set_generation(video_id, None)?;
        self.change(video_id, docs, true)?;
        self.storage.set_generation(video_id, Some(generation))
    }

    /// Removes every document of `video_id`; returns how many.
    pub fn remove_video(&self, video_id: &str) -> Result<u64> {
        self.storage.set_generation(video_id, None)?;
        Ok(self.change(video_id, &[], true)?.0 as u64)
    }

    /// Adds one document with its vector (in the space its kind belongs to); returns its
    /// id.
    pub fn add(&self, doc: &SearchDoc, vector: &[f32]) -> Result<u64> {
        Ok(self.add_batch(&[(doc.clone(), vector.to_vec())])?[0])
    }

    /// Adds documents, each with its vector, in one storage write (all or none); returns
    /// their ids in order.
    pub fn add_batch(&self, batch: &[(SearchDoc, Vec<f32>)]) -> Result<Vec<u64>> {
        Ok(self.change("", batch, false)?.1)
    }

    /// As `add_batch`, into memory only: nothing reaches storage, and the documents are
    /// gone at the next open (the benchmark's memory-only comparison).
    #[doc(hidden)]
    pub fn add_batch_unpersisted(&self, batch: &[(SearchDoc, Vec<f32>)]) -> Result<Vec<u64>> {
        let prepared = self.prepare(batch)?;
        self.apply(&[], &prepared, batch)?;
        Ok(prepared.iter().map(|p| p.0).collect())
    }

    /// Adds `batch` and, when `replace`, removes `video_id`'s documents, in one storage
    /// write and one memory update; returns (documents removed, ids added).
    fn change(
        &self,
        video_id: &str,
        batch: &[(SearchDoc, Vec<f32>)],
        replace: bool,
    ) -> Result<(usize, Vec<u64>)> {
        let prepared = self.prepare(batch)?;
        let gone: Vec<u64> = if replace {
            self.memory().docs_of_video(video_id).to_vec()
        } else {
            Vec::new()
        };
        // The removed documents' terms, to take them out of the posting lists.
        let mut removed = Vec::with_capacity(gone.len());
        for &id in &gone {
            if let Some(stored) = self.storage.doc(id)? {
                removed.push((id, stored.terms));
            }
        }
        let mut changes: Vec<Change<'_>> = gone.iter().map(|&id| Change::Delete(id)).collect();
        changes.extend(
            prepared
                .iter()
                .zip(batch)
                .map(|((id, stored), (_, vector))| Change::Put(*id, stored, vector.as_slice())),
        );
        if !changes.is_empty() {
            self.storage.write(&changes)?;
        }
        self.apply(&removed, &prepared, batch)?;
        Ok((removed.len(), prepared.iter().map(|p| p.0).collect()))
    }

    /// Updates memory (under one lock, so searches see all of it or none), then starts
    /// any graph build now due.
    fn apply(
        &self,
        removed: &[(u64, Vec<(String, u32)>)],
        prepared: &[(u64, StoredDoc)],
        batch: &[(SearchDoc, Vec<f32>)],
    ) -> Result<()> {
        {
            let mut memory = self.memory.write().expect("search memory poisoned");
            for (id, terms) in removed {
                memory.remove(*id, terms);
            }
            for ((id, stored), (_, vector)) in prepared.iter().zip(batch) {
                memory.insert(*id, stored, vector).map_err(Error::invalid)?;
            }
        }
        self.build_graphs_if_due();
        Ok(())
    }

    /// Checks the vectors' sizes, analyses the texts and hands out ids.
    fn prepare(&self, batch: &[(SearchDoc, Vec<f32>)]) -> Result<Vec<(u64, StoredDoc)>> {
        // Every vector must fit its space: the space's size, or the batch's first.
        {
            let memory = self.memory();
            let mut dims = [
                memory.space(Space::Text).dims,
                memory.space(Space::Visual).dims,
            ];
            for (doc, vector) in batch {
                let space = doc.kind.space() as usize;
                if dims[space] == 0 {
                    dims[space] = vector.len();
                }
                if vector.len() != dims[space] || vector.is_empty() {
                    return Err(Error::invalid(format!(
                        "a {}-dimensional vector cannot join an index of {} dimensions",
                        vector.len(),
                        dims[space]
                    )));
                }
            }
        }
        let mut prepared = Vec::with_capacity(batch.len());
        for (doc, _) in batch {
            let tokens = if doc.kind.space() == Space::Text {
                self.analyzer.terms(&doc.text)
            } else {
                Vec::new()
            };
            let mut counts: HashMap<String, u32> = HashMap::new();
            for t in &tokens {
                *counts.entry(t.clone()).or_insert(0) += 1;
            }
            let mut terms: Vec<(String, u32)> = counts.into_iter().collect();
            terms.sort();
            let stored = StoredDoc {
                doc: doc.clone(),
                length: tokens.len() as u32,
                terms,
            };
            prepared.push((self.storage.next_id()?, stored));
        }
        Ok(prepared)
    }

    /// (documents with text, their total length in terms): the BM25 statistics.
    pub fn stats(&self) -> Result<(u64, u64)> {
        let memory = self.memory();
        Ok((memory.documents, memory.total_length))
    }

    /// Distinct terms in the inverted index.
    pub fn term_count(&self) -> usize {
        self.memory().postings.len()
    }

    pub fn doc(&self, id: u64) -> Result<Option<SearchDoc>> {
        Ok(self.storage.doc(id)?.map(|s| s.doc))
    }

    /// A document's vector, from memory.
    pub fn vector(&self, id: u64) -> Option<Vec<f32>> {
        let memory = self.memory();
        let space = memory.meta_of(id)?.kind.space();
        memory.space(space).vector(id).map(<[f32]>::to_vec)
    }

    pub fn meta(&self, id: u64) -> Option<DocMeta> {
        self.memory().meta_of(id).cloned()
    }

    /// BM25 over the documents `keep` accepts: the best `limit`, each with the query
    /// terms' contributions. Repeated query terms count once.
    pub fn bm25(
        &self,
        query: &str,
        keep: &dyn Fn(&DocMeta) -> bool,
        limit: usize,
    ) -> Result<Vec<Bm25Hit>> {
        let mut terms = self.analyzer.terms(query);
        terms.sort();
        terms.dedup();
        let memory = self.memory();
        if memory.documents == 0 || terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let query_terms: Vec<QueryTerm<'_, _>> = terms
            .iter()
            .filter_map(|term| {
                let postings = memory.postings.get(term)?;
                Some(QueryTerm {
                    term,
                    scorer: self.scorer.term(&*memory, postings.doc_freq()),
                    postings: &postings.list,
                    corners: &postings.corners,
                })
            })
            .collect();
        let id_of = |slot: u32| memory.doc(slot).map(|s| s.0);
        let accepts = |slot: u32| memory.doc(slot).is_some_and(|s| keep(&s.1));
        let docs = bm25::Docs {
            lengths: &memory.lengths,
            id_of: &id_of,
            accepts: &accepts,
        };
        Ok(bm25::top_k(query_terms, &docs, limit))
    }

    /// Nearest text-space documents to `query` by cosine, among those `keep` accepts.
    pub fn nearest(
        &self,
        query: &[f32],
        keep: &dyn Fn(&DocMeta) -> bool,
        limit: usize,
    ) -> Vec<(u64, f32)> {
        self.nearest_in(Space::Text, query, keep, limit)
    }

    /// Nearest documents of `space` to `query` by cosine (vectors are unit length, so a
    /// dot product), among those `keep` accepts: exact below the graph threshold,
    /// through the HNSW graph above it.
    pub fn nearest_in(
        &self,
        space: Space,
        query: &[f32],
        keep: &dyn Fn(&DocMeta) -> bool,
        limit: usize,
    ) -> Vec<(u64, f32)> {
        self.in_space(space, keep, |vectors, keep_slot| {
            let ef = self.ef_search.load(Ordering::Relaxed);
            vectors.nearest(query, keep_slot, limit, ef)
        })
    }

    /// Exact nearest documents, whatever the space's size (to measure the graph's recall).
    pub fn nearest_exact(
        &self,
        space: Space,
        query: &[f32],
        keep: &dyn Fn(&DocMeta) -> bool,
        limit: usize,
    ) -> Vec<(u64, f32)> {
        self.in_space(space, keep, |vectors, keep_slot| {
            vectors.exact(query, keep_slot, limit)
        })
    }

    /// Runs a search of `space` with `keep` turned into a filter on document ids.
    fn in_space(
        &self,
        space: Space,
        keep: &dyn Fn(&DocMeta) -> bool,
        search: impl FnOnce(&VectorSpace, &dyn Fn(u64) -> bool) -> Vec<(u64, f32)>,
    ) -> Vec<(u64, f32)> {
        let memory = self.memory();
        let keep_id = |id: u64| memory.meta_of(id).is_some_and(keep);
        search(memory.space(space), &keep_id)
    }

    /// Runs `f` on a clone of the index off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(SearchIndex) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let index = self.clone();
        tokio::task::spawn_blocking(move || f(index))
            .await
            .map_err(|e| Error::internal(format!("search index task failed: {e}")))?
    }
}

impl SearchBackend for SearchIndex {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.blocking(|ix| ix.save_graphs()))
    }

    fn stats(&self) -> BoxFuture<'_, Result<BackendStats>> {
        Box::pin(self.blocking(|ix| {
            let (with_text, _) = ix.stats()?;
            let memory = ix.memory();
            // Frames (the visual space) have no text.
            let frames = memory.space(Space::Visual).len() as u64;
            Ok(BackendStats {
                documents: with_text + frames,
                vectors: (memory.space(Space::Text).len() as u64) + frames,
            })
        }))
    }

    fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    fn replace_video<'a>(
        &'a self,
        video_id: &'a str,
        generation: u32,
        _owner: &'a VideoOwner,
        docs: Vec<(SearchDoc, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<()>> {
        let id = video_id.to_string();
        Box::pin(self.blocking(move |ix| ix.replace_video(&id, generation, &docs)))
    }

    fn remove_video<'a>(&'a self, video_id: &'a str) -> BoxFuture<'a, Result<u64>> {
        let id = video_id.to_string();
        Box::pin(self.blocking(move |ix| ix.remove_video(&id)))
    }

    fn indexed_generation<'a>(&'a self, video_id: &'a str) -> BoxFuture<'a, Result<Option<u32>>> {
        let id = video_id.to_string();
        Box::pin(self.blocking(move |ix| ix.indexed_generation(&id)))
    }

    fn indexed_videos(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(self.blocking(|ix| ix.indexed_videos()))
    }

    fn lexical<'a>(
        &'a self,
        query: &'a str,
        filter: &'a DocFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Bm25Hit>>> {
        Box::pin(async move { self.bm25(query, &|m| filter.accepts(m), limit) })
    }

    fn nearest<'a>(
        &'a self,
        space: Space,
        vector: &'a [f32],
        filter: &'a DocFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(u64, f32)>>> {
        Box::pin(async move { Ok(self.nearest_in(space, vector, &|m| filter.accepts(m), limit)) })
    }

    fn fetch<'a>(
        &'a self,
        ids: &'a [u64],
        with_vectors: bool,
    ) -> BoxFuture<'a, Result<Vec<Option<Fetched>>>> {
        let ids = ids.to_vec();
        Box::pin(self.blocking(move |ix| {
            ids.iter()
                .map(|&id| {
                    Ok(ix.doc(id)?.map(|doc| Fetched {
                        vector: with_vectors.then(|| ix.vector(id)).flatten(),
                        doc,
                        owner: None,
                    }))
                })
                .collect()
        }))
    }
}

/// Builds a graph from `snapshot`, saves it in `dir` when given, and installs it into
/// `memory`'s `space` (a failed save is logged; the graph serves anyway and is built
/// again at the next open).
fn build_graph(memory: Arc<RwLock<Slots>>, space: Space, snapshot: Snapshot, dir: Option<&Path>) {
    let started = std::time::Instant::now();
    let mut graph = snapshot.build();
    if let Some(dir) = dir {
        match vectors::save(&graph, dir, graph_name(space)) {
            Ok(()) => graph.saved(),
            Err(e) => tracing::warn!(?space, "the HNSW graph was not saved: {e}"),
        }
    }
    let mut m = memory.write().expect("search memory poisoned");
    m.space_mut(space).install(graph, snapshot.newest());
    tracing::info!(
        ?space,
        vectors = m.space(space).len(),
        seconds = started.elapsed().as_secs_f64(),
        "HNSW graph ready"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::DocKind;

    fn index() -> SearchIndex {
        let db = sled::Config::new().temporary(true).open().unwrap();
        SearchIndex::open(&db, None).unwrap()
    }

    fn doc(video: &str, text: &str) -> SearchDoc {
        SearchDoc {
            video_id: video.into(),
            kind: DocKind::TranscriptChunk,
            text: text.into(),
            start_ms: 0,
            end_ms: 1000,
        }
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[tokio::test]
    async fn passes_the_backend_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let ix = SearchIndex::open(&db, Some(&dir.path().join("graphs"))).unwrap();
        // The same maths as the suite's formula: only float rounding differs.
        crate::conformance::backend(&ix, 32, 1e-4, crate::conformance::Statistics::Exact).await;
    }

    #[test]
    fn bm25_matches_hand_computed_scores() {
        let ix = index();
        // Stop words removed, stemmed: d1 = [goal, goal, crowd] (3), d2 = [crowd, cheer] (2),
        // d3 = [rain] (1). avgdl = 2, N = 3.
        let d1 = ix
            .add(&doc("a", "goal goal crowd"), &unit(&[1.0, 0.0]))
            .unwrap();
        let d2 = ix
            .add(&doc("a", "the crowd cheers"), &unit(&[0.0, 1.0]))
            .unwrap();
        ix.add(&doc("b", "rain"), &unit(&[1.0, 1.0])).unwrap();
        let hits = ix.bm25("goal", &|_| true, 10).unwrap();
        assert_eq!(hits.len(), 1);
        // idf = ln(1 + (3 - 1 + 0.5) / (1 + 0.5)); tf = 2, dl = 3.
        let idf = (1.0f32 + 2.5 / 1.5).ln();
        let expected = idf * 2.0 * 2.2 / (2.0 + 1.2 * (1.0 - 0.75 + 0.75 * 3.0 / 2.0));
        assert!(
            (hits[0].score - expected).abs() < 1e-5,
            "{hits:?} vs {expected}"
        );
        assert_eq!(hits[0].doc_id, d1);

        let hits = ix.bm25("crowd goals", &|_| true, 10).unwrap();
        let idf_crowd = (1.0f32 + 1.5 / 2.5).ln();
        let crowd_d2 = idf_crowd * 2.2 / (1.0 + 1.2 * (1.0 - 0.75 + 0.75 * 2.0 / 2.0));
        let crowd_d1 = idf_crowd * 2.2 / (1.0 + 1.2 * (1.0 - 0.75 + 0.75 * 3.0 / 2.0));
        assert_eq!(hits[0].doc_id, d1);
        assert!(
            (hits[0].score - (expected + crowd_d1)).abs() < 1e-5,
            "{hits:?}"
        );
        assert_eq!(hits[0].terms.len(), 2, "explain lists both terms");
        let h2 = hits.iter().find(|h| h.doc_id == d2).unwrap();
        assert!((h2.score - crowd_d2).abs() < 1e-5);
        // Filters apply.
        assert!(ix
            .bm25("goal", &|m| m.video_id == "b", 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn statistics_stay_exact_under_insert_and_delete_and_survive_reopen() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let ix = SearchIndex::open(&db, None).unwrap();
        let v = unit(&[1.0, 2.0, 3.0]);
        ix.replace_video(
            "a",
            1,
            &[
                (doc("a", "one two three"), v.clone()),
                (doc("a", "four"), v.clone()),
            ],
        )
        .unwrap();
        ix.replace_video("b", 1, &[(doc("b", "five six"), v.clone())])
            .unwrap();
        assert_eq!(ix.stats().unwrap(), (3, 6));
        // Re-indexing a video replaces its documents.
        ix.replace_video("a", 2, &[(doc("a", "seven"), v.clone())])
            .unwrap();
        assert_eq!(ix.stats().unwrap(), (2, 3));
        assert_eq!(ix.indexed_generation("a").unwrap(), Some(2));
        assert!(ix.bm25("four", &|_| true, 10).unwrap().is_empty());
        assert_eq!(ix.remove_video("b").unwrap(), 1);
        assert_eq!(ix.stats().unwrap(), (1, 1));
        assert!(ix.bm25("five", &|_| true, 10).unwrap().is_empty());
        assert_eq!(ix.nearest(&v, &|_| true, 10).len(), 1);
        assert_eq!(ix.term_count(), 1);
        let reopened = SearchIndex::open(&db, None).unwrap();
        assert_eq!(reopened.stats().unwrap(), (1, 1));
        assert_eq!(reopened.nearest(&v, &|_| true, 10).len(), 1);
        assert_eq!(reopened.bm25("seven", &|_| true, 10).unwrap().len(), 1);
    }

    #[test]
    fn nearest_is_exact_top_k_by_cosine() {
        let ix = index();
        let a = ix.add(&doc("a", "x"), &unit(&[1.0, 0.0, 0.0])).unwrap();
        let b = ix.add(&doc("a", "y"), &unit(&[0.8, 0.6, 0.0])).unwrap();
        let c = ix.add(&doc("b", "z"), &unit(&[0.0, 0.0, 1.0])).unwrap();
        let hits = ix.nearest(&unit(&[1.0, 0.1, 0.0]), &|_| true, 2);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![a, b]);
        let hits = ix.nearest(&unit(&[0.0, 0.0, 1.0]), &|m| m.video_id == "b", 5);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].0, c);
        assert!((hits[0].1 - 1.0).abs() < 1e-6);
        let err = ix.add(&doc("a", "w"), &[1.0, 0.0]).unwrap_err();
        assert!(err.to_string().contains("dimensions"), "{err}");
    }

    /// Unit vectors around 20 centres (embeddings cluster by topic; uniform random
    /// vectors in many dimensions have no near neighbours to find).
    fn clustered(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = seed;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let centres: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..dims).map(|_| next()).collect())
            .collect();
        (0..n)
            .map(|i| {
                let c = &centres[i % centres.len()];
                unit(&c.iter().map(|x| x + 0.6 * next()).collect::<Vec<_>>())
            })
            .collect()
    }

    #[test]
    fn the_graph_finds_what_the_exact_scan_finds_and_forgets_removed_documents() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let ann = AnnConfig {
            threshold: 400,
            ..AnnConfig::default()
        };
        let ix = SearchIndex::open_with(&db, None, ann).unwrap();
        let vectors = clustered(1_200, 32, 7);
        for (i, v) in vectors.iter().enumerate() {
            ix.add(&doc(&format!("v{}", i % 12), "words"), v).unwrap();
        }
        ix.wait_for_graphs();
        assert!(ix.has_graph(Space::Text));
        assert!(!ix.has_graph(Space::Visual));
        let queries = clustered(40, 32, 99);
        let mut found = 0;
        for q in &queries {
            let approx: Vec<u64> = ix.nearest(q, &|_| true, 10).iter().map(|h| h.0).collect();
            let exact = ix.nearest_exact(Space::Text, q, &|_| true, 10);
            found += exact.iter().filter(|e| approx.contains(&e.0)).count();
        }
        let recall = found as f64 / (queries.len() * 10) as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");

        // A selective filter still gets its full list (the exact scan takes over).
        let only = ix.nearest(&queries[0], &|m| m.video_id == "v3", 10);
        let exact = ix.nearest_exact(Space::Text, &queries[0], &|m| m.video_id == "v3", 10);
        assert_eq!(only, exact);

        // Removed documents never come back, and a graph that is mostly dead is rebuilt.
        for v in 0..6 {
            ix.remove_video(&format!("v{v}")).unwrap();
        }
        ix.wait_for_graphs();
        for q in &queries {
            for (id, _) in ix.nearest(q, &|_| true, 10) {
                let meta = ix.meta(id).expect("a live document");
                let n: usize = meta.video_id[1..].parse().unwrap();
                assert!(n >= 6, "{} was removed", meta.video_id);
            }
        }
        // Documents added after the graph are found through it.
        let id = ix.add(&doc("late", "words"), &queries[0]).unwrap();
        assert_eq!(ix.nearest(&queries[0], &|_| true, 1)[0].0, id);
    }

    #[test]
    fn a_saved_graph_serves_at_reopen_and_agrees_with_the_stored_documents() {
        let dir = tempfile::tempdir().unwrap();
        let graphs = dir.path().join("search");
        let ann = AnnConfig {
            threshold: 400,
            ..AnnConfig::default()
        };
        let vectors = clustered(1_000, 16, 3);
        let queries = clustered(20, 16, 5);
        let answers = {
            let db = sled::Config::new()
                .path(dir.path().join("db"))
                .open()
                .unwrap();
            let ix = SearchIndex::open_with(&db, Some(&graphs), ann).unwrap();
            for (i, v) in vectors.iter().enumerate() {
                ix.add(&doc(&format!("v{}", i % 10), "words"), v).unwrap();
            }
            ix.wait_for_graphs();
            assert!(graphs.join("hnsw-text/graph.hnsw.graph").exists());
            // After the save: one video goes, one document comes.
            ix.remove_video("v0").unwrap();
            ix.wait_for_graphs();
            ix.add(&doc("late", "words"), &queries[0]).unwrap();
            let answers: Vec<_> = queries
                .iter()
                .map(|q| ix.nearest(q, &|_| true, 10))
                .collect();
            // The graph was saved at 400 points; shutdown saves what came after.
            ix.save_graphs().unwrap();
            db.flush().unwrap();
            answers
        };
        // A save torn by a crash (never renamed into place) is ignored.
        std::fs::create_dir_all(graphs.join("hnsw-text.new")).unwrap();
        std::fs::write(graphs.join("hnsw-text.new/graph.hnsw.graph"), b"torn").unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        let no_builds = AnnConfig {
            threshold: 0,
            ..ann
        };
        let ix = SearchIndex::open_with(&db, Some(&graphs), no_builds).unwrap();
        assert!(ix.has_graph(Space::Text), "the saved graph serves at once");
        for (q, before) in queries.iter().zip(&answers) {
            let now = ix.nearest(q, &|_| true, 10);
            for (id, _) in &now {
                assert_ne!(
                    ix.meta(*id).unwrap().video_id,
                    "v0",
                    "a removed video came back"
                );
            }
            let same = now.iter().filter(|h| before.contains(h)).count();
            assert!(
                same >= 9,
                "reopened graph answers differ: {now:?} vs {before:?}"
            );
        }
        assert!((ix.nearest(&queries[0], &|_| true, 1)[0].1 - 1.0).abs() < 1e-5);
        drop(ix);
        // A save that cannot be read is built again, not fatal.
        std::fs::write(graphs.join("hnsw-text/graph.hnsw.graph"), b"garbage").unwrap();
        let ix = SearchIndex::open_with(&db, Some(&graphs), ann).unwrap();
        ix.wait_for_graphs();
        assert!(ix.has_graph(Space::Text));
        assert_eq!(ix.stats().unwrap().0, 901);
    }

    #[test]
    fn replacing_a_video_keeps_document_frequencies_exact() {
        let ix = index();
        let v = unit(&[1.0, 0.0]);
        for i in 0..40 {
            let id = format!("v{i}");
            ix.replace_video(&id, 1, &[(doc(&id, "common rare"), v.clone())])
                .unwrap();
        }
        for i in 0..30 {
            ix.remove_video(&format!("v{i}")).unwrap();
        }
        ix.replace_video("v35", 2, &[(doc("v35", "common"), v.clone())])
            .unwrap();
        let memory = ix.memory();
        assert_eq!(memory.postings["common"].doc_freq(), 10);
        assert_eq!(memory.postings["rare"].doc_freq(), 9);
        assert_eq!(memory.docs_of_video("v35").len(), 1);
    }

    #[test]
    fn frames_live_in_the_visual_space_and_stay_out_of_bm25() {
        let ix = index();
        ix.add(&doc("a", "goal"), &unit(&[1.0, 0.0, 0.0])).unwrap();
        let frame = SearchDoc {
            kind: DocKind::Frame,
            ..doc("a", "")
        };
        let f = ix.add(&frame, &unit(&[0.0, 1.0])).unwrap();
        assert_eq!(ix.stats().unwrap(), (1, 1), "frames do not count for BM25");
        let hits = ix.nearest_in(Space::Visual, &unit(&[0.1, 1.0]), &|_| true, 5);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].0, f);
        assert!(ix.nearest(&unit(&[0.0, 1.0, 0.0]), &|_| true, 5).len() == 1);
        let err = ix.add(&frame, &unit(&[0.0, 1.0, 0.0])).unwrap_err();
        assert!(err.to_string().contains("dimensions"), "{err}");
    }

    #[test]
    fn pruned_bm25_returns_exactly_the_exhaustive_ranking() {
        let ix = index();
        let mut rng = 17u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        // Zipf-like words: "w1" is in most documents, "w40" in few.
        for i in 0..600 {
            let words: Vec<String> = (0..12)
                .map(|_| format!("w{}", 1 + (next() % 40).pow(2) / 40))
                .collect();
            ix.add(&doc(&format!("v{}", i % 7), &words.join(" ")), &[1.0])
                .unwrap();
        }
        let filters: [&dyn Fn(&DocMeta) -> bool; 2] = [&|_| true, &|m| m.video_id == "v2"];
        for q in ["w1 w39", "w1 w2 w3", "w38 w1 w2 w5", "w20", "w1"] {
            for keep in filters {
                let all = ix.bm25(q, keep, 10_000).unwrap();
                for k in [1, 3, 10] {
                    let pruned = ix.bm25(q, keep, k).unwrap();
                    let ids =
                        |h: &[Bm25Hit]| h.iter().map(|h| (h.doc_id, h.score)).collect::<Vec<_>>();
                    assert_eq!(ids(&pruned), ids(&all[..k.min(all.len())]), "{q} top {k}");
                }
            }
        }
    }
}
