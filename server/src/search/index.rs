//! The search index in sled: documents, a BM25 inverted index and document vectors.
//!
//! Trees: `search_docs` (doc id → document and its term counts), `search_postings`
//! (term ++ 0x00 ++ doc id → term frequency), `search_vectors` (doc id → f32 LE),
//! `search_video_docs` (video id ++ doc id → ∅, to delete a video's documents),
//! `search_videos` (video id → the store generation indexed) and `search_stats` (document
//! count and total length). One sled transaction adds or removes a document with its
//! postings, vector and statistics, so the statistics stay exact under insert and delete.
//!
//! Document metadata (video, kind, times, length), postings and vectors are also held in
//! memory, keyed by a dense slot number per document: filters and BM25 read no disk, BM25
//! adds scores into a flat array, and vector search scans one contiguous matrix per
//! embedding space or walks its HNSW graph once the space is large (see `vectors`). sled
//! stays the durable copy; memory is rebuilt from it at open.
//!
//! Two embedding spaces: `text` (every document with text, the text embedder's vectors)
//! and `visual` (`frame` documents: thumbnails embedded by the image-text model, searched
//! with the same model's text tower). Frames have no words and stay out of BM25 and its
//! statistics.

use std::cell::RefCell;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::Tree;

use super::text::Analyzer;
pub use super::vectors::{dot, AnnConfig};
use super::vectors::{Snapshot, VectorSpace};
use crate::error::{Error, Result};

/// BM25 parameters (as tantivy and Lucene use them).
pub const K1: f32 = 1.2;
pub const B: f32 = 0.75;

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    VideoSummary,
    SliceDescription,
    ChapterSummary,
    TranscriptChunk,
    Shot,
    /// A thumbnail, found by what it shows (visual space only).
    Frame,
}

impl DocKind {
    pub const ALL: [DocKind; 6] = [
        DocKind::VideoSummary,
        DocKind::SliceDescription,
        DocKind::ChapterSummary,
        DocKind::TranscriptChunk,
        DocKind::Shot,
        DocKind::Frame,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DocKind::VideoSummary => "video_summary",
            DocKind::SliceDescription => "slice_description",
            DocKind::ChapterSummary => "chapter_summary",
            DocKind::TranscriptChunk => "transcript_chunk",
            DocKind::Shot => "shot",
            DocKind::Frame => "frame",
        }
    }

    /// Which embedding space the document's vector lives in.
    pub fn space(self) -> Space {
        match self {
            DocKind::Frame => Space::Visual,
            _ => Space::Text,
        }
    }

    pub fn parse(name: &str) -> Option<DocKind> {
        DocKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// An embedding space of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Text = 0,
    Visual = 1,
}

/// A searchable unit on a video's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchDoc {
    pub video_id: String,
    pub kind: DocKind,
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredDoc {
    doc: SearchDoc,
    length: u32,
    /// Distinct terms and their frequencies (to remove the postings again).
    terms: Vec<(String, u32)>,
}

/// What filters and scoring need of a document, kept in memory.
#[derive(Debug, Clone)]
pub struct DocMeta {
    pub video_id: String,
    pub kind: DocKind,
    pub start_ms: i64,
    pub end_ms: i64,
    pub length: u32,
}

/// A BM25 hit with each query term's contribution (the explain view).
#[derive(Debug, Clone, PartialEq)]
pub struct Bm25Hit {
    pub doc_id: u64,
    pub score: f32,
    pub terms: Vec<(String, f32)>,
}

#[derive(Default)]
struct Memory {
    /// Slot → document id and metadata; `None` once removed. Slots are handed out in id
    /// order and not reused until the next open, so posting lists sorted by id are
    /// sorted by slot too.
    slots: Vec<Option<(u64, DocMeta)>>,
    /// Slot → document length in terms, dense (the BM25 loop reads it per posting).
    lengths: Vec<u32>,
    slot_of: HashMap<u64, u32>,
    /// Term → (slot, term frequency), sorted by slot. A copy of the sled postings, so a
    /// query reads no disk and decodes no keys.
    postings: HashMap<String, Vec<Posting>>,
    text: VectorSpace,
    visual: VectorSpace,
    /// BM25 statistics: documents with text, and their total length.
    docs: u64,
    total_length: u64,
}

pub struct SearchIndex {
    db: sled::Db,
    docs: Tree,
    postings: Tree,
    vectors: Tree,
    video_docs: Tree,
    videos: Tree,
    stats: Tree,
    analyzer: Analyzer,
    memory: Arc<RwLock<Memory>>,
    ann: AnnConfig,
    /// Candidates a graph search explores, at least (starts at `ann.ef_search`).
    ef_search: std::sync::atomic::AtomicUsize,
}

thread_local! {
    /// BM25 score per slot, reused across queries (zeroed again after each).
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// (slot, term frequency).
type Posting = (u32, u32);

/// A document ready to write: id, record, its JSON, its vector's bytes.
type Prepared = (u64, StoredDoc, Vec<u8>, Vec<u8>);

const STAT_DOCS: &[u8] = b"docs";
const STAT_LENGTH: &[u8] = b"total_length";

fn posting_key(term: &str, doc_id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(term.len() + 9);
    key.extend_from_slice(term.as_bytes());
    key.push(0);
    key.extend_from_slice(&doc_id.to_be_bytes());
    key
}

fn video_doc_key(video_id: &str, doc_id: u64) -> Vec<u8> {
    let mut key = video_id.as_bytes().to_vec();
    key.extend_from_slice(&doc_id.to_be_bytes());
    key
}

fn read_u64(v: Option<sled::IVec>) -> u64 {
    v.and_then(|b| b.as_ref().try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

fn tx_error(e: TransactionError<Error>) -> Error {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => Error::from(e),
    }
}

impl SearchIndex {
    /// Opens the index trees in `db` and loads document metadata and vectors.
    /// The trees the index keeps in the store.
    pub const TREES: [&'static str; 6] = [
        "search_docs",
        "search_postings",
        "search_vectors",
        "search_video_docs",
        "search_videos",
        "search_stats",
    ];

    /// Drops the whole index from `db` (before it is opened): for re-embedding every
    /// video with another text embedder, whose vectors cannot join the old ones.
    pub fn drop_all(db: &sled::Db) -> Result<()> {
        for tree in Self::TREES {
            db.drop_tree(tree)?;
        }
        Ok(())
    }

    pub fn open(db: &sled::Db) -> Result<SearchIndex> {
        Self::open_with(db, AnnConfig::default())
    }

    /// As `open`, with HNSW settings of its own (tests and benchmarks).
    pub fn open_with(db: &sled::Db, ann: AnnConfig) -> Result<SearchIndex> {
        let index = SearchIndex {
            db: db.clone(),
            docs: db.open_tree("search_docs")?,
            postings: db.open_tree("search_postings")?,
            vectors: db.open_tree("search_vectors")?,
            video_docs: db.open_tree("search_video_docs")?,
            videos: db.open_tree("search_videos")?,
            stats: db.open_tree("search_stats")?,
            analyzer: Analyzer::new(true),
            memory: Arc::default(),
            ann,
            ef_search: ann.ef_search.into(),
        };
        let mut memory = Memory {
            docs: read_u64(index.stats.get(STAT_DOCS)?),
            total_length: read_u64(index.stats.get(STAT_LENGTH)?),
            ..Memory::default()
        };
        // sled iterates keys in order: slots follow ids.
        for kv in index.docs.iter() {
            let (k, v) = kv?;
            let id = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| bad_key())?);
            let stored: StoredDoc = serde_json::from_slice(&v)?;
            memory.new_slot(id, meta(&stored));
        }
        for kv in index.postings.iter() {
            let (k, v) = kv?;
            let split = k.len().checked_sub(9).ok_or_else(bad_key)?;
            let term = String::from_utf8_lossy(&k[..split]).into_owned();
            let id = u64::from_be_bytes(k[split + 1..].try_into().map_err(|_| bad_key())?);
            let tf = u32::from_le_bytes(v.as_ref().try_into().map_err(|_| bad_key())?);
            let slot = *memory.slot_of.get(&id).ok_or_else(bad_key)?;
            memory.postings.entry(term).or_default().push((slot, tf));
        }
        for kv in index.vectors.iter() {
            let (k, v) = kv?;
            let id = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| bad_key())?);
            let vector = crate::store::keys::decode_vector(&v)?;
            let slot = *memory.slot_of.get(&id).ok_or_else(bad_key)?;
            let space = memory.slot_space(slot);
            memory
                .space_mut(space)
                .push(slot, &vector)
                .map_err(|_| Error::internal("stored search vectors differ in size"))?;
        }
        *index.memory.write().expect("search memory poisoned") = memory;
        index.build_graphs_if_due();
        Ok(index)
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
                std::thread::Builder::new()
                    .name("hnsw-build".into())
                    .spawn(move || build_graph(memory, space, snapshot))
                    .expect("spawn the HNSW build thread");
            }
        }
    }

    /// Sets how many candidates a graph search explores at least (recall against speed).
    pub fn set_ef_search(&self, ef: usize) {
        self.ef_search
            .store(ef.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether `space` is searched through an HNSW graph now.
    pub fn has_graph(&self, space: Space) -> bool {
        self.memory
            .read()
            .expect("search memory poisoned")
            .space(space)
            .has_graph()
    }

    /// Waits until no graph build is running (benchmarks and tests).
    pub fn wait_for_graphs(&self) {
        loop {
            let building = {
                let m = self.memory.read().expect("search memory poisoned");
                m.text.building || m.visual.building
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
        Ok(self
            .videos
            .get(video_id.as_bytes())?
            .and_then(|v| v.as_ref().try_into().ok())
            .map(u32::from_be_bytes))
    }

    /// Video ids with indexed documents.
    pub fn indexed_videos(&self) -> Result<Vec<String>> {
        self.videos
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// Replaces `video_id`'s documents with `docs` (each with its vector) and records
    /// `generation` as indexed. Each document goes in with one transaction; the generation
    /// mark goes last, so an interrupted replace is redone at the next start.
    pub fn replace_video(
        &self,
        video_id: &str,
        generation: u32,
        docs: &[(SearchDoc, Vec<f32>)],
    ) -> Result<()> {
        self.videos.remove(video_id.as_bytes())?;
        self.remove_docs_of(video_id)?;
        // A batch at a time: one transaction each, bounded in size.
        for batch in docs.chunks(256) {
            self.add_batch(batch)?;
        }
        self.videos
            .insert(video_id.as_bytes(), &generation.to_be_bytes())?;
        Ok(())
    }

    /// Removes every document of `video_id`; returns how many.
    pub fn remove_video(&self, video_id: &str) -> Result<u64> {
        self.videos.remove(video_id.as_bytes())?;
        self.remove_docs_of(video_id)
    }

    fn remove_docs_of(&self, video_id: &str) -> Result<u64> {
        let ids: Vec<u64> = self
            .video_docs
            .scan_prefix(video_id.as_bytes())
            .keys()
            .map(|k| {
                let k = k?;
                Ok(u64::from_be_bytes(
                    k[k.len() - 8..].try_into().map_err(|_| bad_key())?,
                ))
            })
            .collect::<Result<_>>()?;
        for &id in &ids {
            self.remove(id)?;
        }
        Ok(ids.len() as u64)
    }

    /// Adds one document with its vector (in the space its kind belongs to); returns its
    /// id.
    pub fn add(&self, doc: &SearchDoc, vector: &[f32]) -> Result<u64> {
        Ok(self.add_batch(&[(doc.clone(), vector.to_vec())])?[0])
    }

    /// Adds documents, each with its vector, in one sled transaction (all or none);
    /// returns their ids in order.
    pub fn add_batch(&self, batch: &[(SearchDoc, Vec<f32>)]) -> Result<Vec<u64>> {
        self.add_batch_inner(batch, true)
    }

    /// As `add_batch`, into memory only: nothing reaches sled, and the documents are gone
    /// at the next open. For the scale benchmark at sizes where building through sled
    /// takes too long; queries read memory only, so they measure the same.
    #[doc(hidden)]
    pub fn add_batch_unpersisted(&self, batch: &[(SearchDoc, Vec<f32>)]) -> Result<Vec<u64>> {
        self.add_batch_inner(batch, false)
    }

    fn add_batch_inner(&self, batch: &[(SearchDoc, Vec<f32>)], persist: bool) -> Result<Vec<u64>> {
        // Every vector must fit its space: the space's size, or the batch's first.
        {
            let memory = self.memory.read().expect("search memory poisoned");
            let mut dims = [memory.text.dims, memory.visual.dims];
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
        let (mut added_docs, mut added_length) = (0u64, 0u64);
        for (doc, vector) in batch {
            let lexical = doc.kind.space() == Space::Text;
            let tokens = if lexical {
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
            if lexical {
                added_docs += 1;
                added_length += stored.length as u64;
            }
            let id = self.db.generate_id()?;
            // The stored forms are made only when they are stored.
            let (value, vector_bytes) = if persist {
                (
                    serde_json::to_vec(&stored)?,
                    crate::store::keys::encode_vector(vector),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            prepared.push((id, stored, value, vector_bytes));
        }
        if persist {
            self.persist(&prepared, added_docs, added_length)?;
        }
        {
            let mut memory = self.memory.write().expect("search memory poisoned");
            for ((id, stored, _, _), (_, vector)) in prepared.iter().zip(batch) {
                let slot = memory.new_slot(*id, meta(stored));
                for (term, tf) in &stored.terms {
                    memory
                        .postings
                        .entry(term.clone())
                        .or_default()
                        .push((slot, *tf));
                }
                memory
                    .space_mut(stored.doc.kind.space())
                    .push(slot, vector)
                    .map_err(Error::invalid)?;
            }
            memory.docs += added_docs;
            memory.total_length += added_length;
        }
        self.build_graphs_if_due();
        Ok(prepared.iter().map(|p| p.0).collect())
    }

    /// Writes prepared documents and the statistics' change in one transaction.
    fn persist(&self, prepared: &[Prepared], added_docs: u64, added_length: u64) -> Result<()> {
        (
            &self.docs,
            &self.postings,
            &self.vectors,
            &self.video_docs,
            &self.stats,
        )
            .transaction(|(docs, postings, vectors, video_docs, stats)| {
                for (id, stored, value, vector_bytes) in prepared {
                    docs.insert(&id.to_be_bytes(), value.as_slice())?;
                    for (term, tf) in &stored.terms {
                        postings.insert(posting_key(term, *id), &tf.to_le_bytes())?;
                    }
                    vectors.insert(&id.to_be_bytes(), vector_bytes.as_slice())?;
                    video_docs.insert(video_doc_key(&stored.doc.video_id, *id), &[])?;
                }
                if added_docs > 0 {
                    let n = read_u64(stats.get(STAT_DOCS)?) + added_docs;
                    let len = read_u64(stats.get(STAT_LENGTH)?) + added_length;
                    stats.insert(STAT_DOCS, &n.to_be_bytes())?;
                    stats.insert(STAT_LENGTH, &len.to_be_bytes())?;
                }
                Ok::<_, ConflictableTransactionError<Error>>(())
            })
            .map_err(tx_error)?;
        Ok(())
    }

    fn remove(&self, id: u64) -> Result<()> {
        let Some(value) = self.docs.get(id.to_be_bytes())? else {
            return Ok(());
        };
        let stored: StoredDoc = serde_json::from_slice(&value)?;
        let lexical = stored.doc.kind.space() == Space::Text;
        (
            &self.docs,
            &self.postings,
            &self.vectors,
            &self.video_docs,
            &self.stats,
        )
            .transaction(|(docs, postings, vectors, video_docs, stats)| {
                docs.remove(&id.to_be_bytes())?;
                for (term, _) in &stored.terms {
                    postings.remove(posting_key(term, id))?;
                }
                vectors.remove(&id.to_be_bytes())?;
                video_docs.remove(video_doc_key(&stored.doc.video_id, id))?;
                if lexical {
                    let n = read_u64(stats.get(STAT_DOCS)?).saturating_sub(1);
                    let len =
                        read_u64(stats.get(STAT_LENGTH)?).saturating_sub(stored.length as u64);
                    stats.insert(STAT_DOCS, &n.to_be_bytes())?;
                    stats.insert(STAT_LENGTH, &len.to_be_bytes())?;
                }
                Ok::<_, ConflictableTransactionError<Error>>(())
            })
            .map_err(tx_error)?;
        {
            let mut memory = self.memory.write().expect("search memory poisoned");
            let Some(slot) = memory.slot_of.remove(&id) else {
                return Ok(());
            };
            memory.slots[slot as usize] = None;
            for (term, _) in &stored.terms {
                if let Some(list) = memory.postings.get_mut(term) {
                    if let Ok(at) = list.binary_search_by_key(&slot, |p| p.0) {
                        list.remove(at);
                    }
                    if list.is_empty() {
                        memory.postings.remove(term);
                    }
                }
            }
            memory.space_mut(stored.doc.kind.space()).remove(slot);
            if lexical {
                memory.docs = memory.docs.saturating_sub(1);
                memory.total_length = memory.total_length.saturating_sub(stored.length as u64);
            }
        }
        self.build_graphs_if_due();
        Ok(())
    }

    /// (document count, total length in terms) as stored.
    pub fn stats(&self) -> Result<(u64, u64)> {
        Ok((
            read_u64(self.stats.get(STAT_DOCS)?),
            read_u64(self.stats.get(STAT_LENGTH)?),
        ))
    }

    pub fn doc(&self, id: u64) -> Result<Option<SearchDoc>> {
        Ok(match self.docs.get(id.to_be_bytes())? {
            Some(v) => Some(serde_json::from_slice::<StoredDoc>(&v)?.doc),
            None => None,
        })
    }

    /// A document's vector, from memory.
    pub fn vector(&self, id: u64) -> Option<Vec<f32>> {
        let memory = self.memory.read().expect("search memory poisoned");
        let slot = *memory.slot_of.get(&id)?;
        let space = memory.slot_space(slot);
        memory.space(space).vector(slot).map(<[f32]>::to_vec)
    }

    pub fn meta(&self, id: u64) -> Option<DocMeta> {
        let memory = self.memory.read().expect("search memory poisoned");
        let slot = *memory.slot_of.get(&id)?;
        memory.slots[slot as usize].as_ref().map(|s| s.1.clone())
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
        let memory = self.memory.read().expect("search memory poisoned");
        let n = memory.docs as f32;
        if n == 0.0 || terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let avg_len = (memory.total_length as f32 / n).max(1e-6);
        let weight = |idf: f32, tf: u32, length: u32| {
            let tf = tf as f32;
            idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length as f32 / avg_len))
        };
        let slots = &memory.slots;
        let lengths = &memory.lengths;
        let length_of = |slot: u32| lengths[slot as usize];
        let mut per_term: Vec<(&String, f32, &[Posting])> = Vec::new();
        for term in &terms {
            let Some(postings) = memory.postings.get(term) else {
                continue;
            };
            let df = postings.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            per_term.push((term, idf, postings));
        }
        // Rarest terms first, term at a time into a flat score array. Once the `limit`-th
        // best partial score of an accepted document exceeds what the remaining terms
        // could add at most (idf × (k1 + 1) each), no untouched document can still
        // make the list: the remaining (commoner, longer) lists then only update the
        // candidates that can, found by galloping through the list. Exact, like
        // MaxScore; it spares most of a frequent term's postings.
        per_term.sort_by_key(|t| t.2.len());
        let mut rest = vec![0f32; per_term.len() + 1];
        for i in (0..per_term.len()).rev() {
            rest[i] = rest[i + 1] + per_term[i].1 * (K1 + 1.0);
        }
        let kept_meta = |slot: u32| slots[slot as usize].as_ref().is_some_and(|s| keep(&s.1));
        let mut top = TopK::new(limit);
        SCORES.with(|cell| {
            let mut scores = cell.borrow_mut();
            if scores.len() < slots.len() {
                scores.resize(slots.len(), 0.0);
            }
            let mut touched: Vec<u32> = Vec::new();
            let mut next = 0;
            let mut threshold = 0.0;
            while next < per_term.len() {
                // The threshold is at most the processed terms' bounds; only when that
                // exceeds what is left can it prune, so only then is it worked out.
                if next > 0 && touched.len() >= limit && rest[0] - rest[next] > rest[next] {
                    threshold = kth_accepted(&scores, &touched, limit, &kept_meta);
                    if rest[next] < threshold {
                        break;
                    }
                }
                let (_, idf, postings) = per_term[next];
                for &(slot, tf) in postings.iter() {
                    let s = &mut scores[slot as usize];
                    if *s == 0.0 {
                        touched.push(slot);
                    }
                    *s += weight(idf, tf, length_of(slot));
                }
                next += 1;
            }
            if next < per_term.len() {
                touched.retain(|&slot| {
                    let alive = scores[slot as usize] + rest[next] >= threshold;
                    if !alive {
                        scores[slot as usize] = 0.0;
                    }
                    alive
                });
                touched.sort_unstable();
                for &(_, idf, postings) in &per_term[next..] {
                    let mut at = 0;
                    for &slot in &touched {
                        at = gallop(postings, at, slot);
                        match postings.get(at) {
                            Some(&(s, tf)) if s == slot => {
                                scores[slot as usize] += weight(idf, tf, length_of(slot));
                            }
                            Some(_) => {}
                            None => break,
                        }
                    }
                }
            }
            for &slot in &touched {
                let score = std::mem::take(&mut scores[slot as usize]);
                if top.below_worst(score) {
                    continue;
                }
                let Some((id, meta)) = slots[slot as usize].as_ref() else {
                    continue;
                };
                if top.would_take(score, *id) && keep(meta) {
                    top.push(score, *id, slot);
                }
            }
        });
        // The explain view, for the winners only.
        Ok(top
            .into_sorted()
            .into_iter()
            .map(|(score, id, slot)| {
                let length = length_of(slot);
                let terms = per_term
                    .iter()
                    .filter_map(|(term, idf, list)| {
                        let at = list.binary_search_by_key(&slot, |p| p.0).ok()?;
                        Some(((*term).clone(), weight(*idf, list[at].1, length)))
                    })
                    .collect();
                Bm25Hit {
                    doc_id: id,
                    score,
                    terms,
                }
            })
            .collect())
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
            let ef = self.ef_search.load(std::sync::atomic::Ordering::Relaxed);
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

    /// Runs a slot-level search of `space` with `keep` turned into a slot filter, and
    /// maps the slots found back to document ids.
    fn in_space(
        &self,
        space: Space,
        keep: &dyn Fn(&DocMeta) -> bool,
        search: impl FnOnce(&VectorSpace, &dyn Fn(u32) -> bool) -> Vec<(u32, f32)>,
    ) -> Vec<(u64, f32)> {
        let memory = self.memory.read().expect("search memory poisoned");
        let slots = &memory.slots;
        let keep_slot = |slot: u32| {
            slots
                .get(slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| keep(&s.1))
        };
        search(memory.space(space), &keep_slot)
            .into_iter()
            .filter_map(|(slot, score)| Some((slots[slot as usize].as_ref()?.0, score)))
            .collect()
    }
}

/// The `k`-th best score among touched slots whose document `kept` accepts (0 when fewer
/// than `k` of the best `4k` are accepted: no pruning then).
fn kth_accepted(scores: &[f32], touched: &[u32], k: usize, kept: &dyn Fn(u32) -> bool) -> f32 {
    thread_local! {
        static BEST: RefCell<Vec<(f32, u32)>> = const { RefCell::new(Vec::new()) };
    }
    BEST.with(|cell| {
        let mut best = cell.borrow_mut();
        best.clear();
        best.extend(touched.iter().map(|&s| (scores[s as usize], s)));
        let m = (k * 4).min(best.len());
        if m == 0 {
            return 0.0;
        }
        best.select_nth_unstable_by(m - 1, |a, b| b.0.total_cmp(&a.0));
        best.truncate(m);
        best.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut accepted = 0;
        for &(score, slot) in best.iter() {
            if kept(slot) {
                accepted += 1;
                if accepted == k {
                    return score;
                }
            }
        }
        0.0
    })
}

/// The first index at or after `from` whose slot is >= `slot` (exponential then binary
/// search).
fn gallop(list: &[Posting], from: usize, slot: u32) -> usize {
    let mut step = 1;
    let mut hi = from;
    while hi < list.len() && list[hi].0 < slot {
        hi = from + step;
        step *= 2;
    }
    let lo = from + step / 4;
    let hi = hi.min(list.len());
    let lo = lo.min(hi);
    lo + list[lo..hi].partition_point(|p| p.0 < slot)
}

/// Builds a graph from `snapshot` and installs it into `memory`'s `space`.
fn build_graph(memory: Arc<RwLock<Memory>>, space: Space, snapshot: Snapshot) {
    let started = std::time::Instant::now();
    let graph = snapshot.build();
    let mut m = memory.write().expect("search memory poisoned");
    m.space_mut(space).install(graph, snapshot.newest());
    tracing::info!(
        ?space,
        vectors = m.space(space).len(),
        seconds = started.elapsed().as_secs_f64(),
        "HNSW graph ready"
    );
}

/// The best `k` (score, id, slot) by score, then lowest id; the heap's top is the worst.
struct TopK {
    k: usize,
    heap: BinaryHeap<Ranked>,
}

struct Ranked(f32, u64, u32);

impl PartialEq for Ranked {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ranked {
    /// Greater = worse: lower score, or equal score and higher id.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
    }
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Strictly worse than the worst of a full list (whatever the id).
    fn below_worst(&self, score: f32) -> bool {
        self.heap.len() == self.k && self.heap.peek().is_some_and(|worst| score < worst.0)
    }

    fn would_take(&self, score: f32, id: u64) -> bool {
        self.heap.len() < self.k
            || self
                .heap
                .peek()
                .is_some_and(|worst| Ranked(score, id, 0) < *worst)
    }

    fn push(&mut self, score: f32, id: u64, slot: u32) {
        self.heap.push(Ranked(score, id, slot));
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }

    fn into_sorted(self) -> Vec<(f32, u64, u32)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| (r.0, r.1, r.2))
            .collect()
    }
}

fn meta(stored: &StoredDoc) -> DocMeta {
    DocMeta {
        video_id: stored.doc.video_id.clone(),
        kind: stored.doc.kind,
        start_ms: stored.doc.start_ms,
        end_ms: stored.doc.end_ms,
        length: stored.length,
    }
}

fn bad_key() -> Error {
    Error::internal("a search index key or value has the wrong size")
}

impl Memory {
    fn new_slot(&mut self, id: u64, meta: DocMeta) -> u32 {
        let slot = self.slots.len() as u32;
        self.lengths.push(meta.length);
        self.slots.push(Some((id, meta)));
        self.slot_of.insert(id, slot);
        slot
    }

    fn slot_space(&self, slot: u32) -> Space {
        self.slots[slot as usize]
            .as_ref()
            .map_or(Space::Text, |s| s.1.kind.space())
    }

    fn space(&self, space: Space) -> &VectorSpace {
        match space {
            Space::Text => &self.text,
            Space::Visual => &self.visual,
        }
    }

    fn space_mut(&mut self, space: Space) -> &mut VectorSpace {
        match space {
            Space::Text => &mut self.text,
            Space::Visual => &mut self.visual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> SearchIndex {
        let db = sled::Config::new().temporary(true).open().unwrap();
        SearchIndex::open(&db).unwrap()
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
        let ix = SearchIndex::open(&db).unwrap();
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
        assert_eq!(ix.postings.len(), 1);
        let reopened = SearchIndex::open(&db).unwrap();
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
        let ix = SearchIndex::open_with(&db, ann).unwrap();
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

    #[test]
    fn gallop_finds_the_first_posting_at_or_after_a_slot() {
        let list: Vec<Posting> = (0..100).map(|i| (i * 3, 1)).collect();
        for from in [0, 1, 5, 50, 99] {
            for slot in [0u32, 1, 3, 4, 150, 296, 297, 298, 400] {
                let expected = from + list[from..].partition_point(|p| p.0 < slot);
                assert_eq!(
                    gallop(&list, from, slot),
                    expected,
                    "from {from} slot {slot}"
                );
            }
        }
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f32> = (0..385).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..385).map(|i| (i as f32 * 0.11).cos()).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
    }
}
