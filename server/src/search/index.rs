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
//! memory: filters and BM25 read no disk, and vector search is an exact scan over one
//! contiguous matrix. sled stays the durable copy; memory is rebuilt from it at open.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::Tree;

use super::text::Analyzer;
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
}

impl DocKind {
    pub const ALL: [DocKind; 5] = [
        DocKind::VideoSummary,
        DocKind::SliceDescription,
        DocKind::ChapterSummary,
        DocKind::TranscriptChunk,
        DocKind::Shot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DocKind::VideoSummary => "video_summary",
            DocKind::SliceDescription => "slice_description",
            DocKind::ChapterSummary => "chapter_summary",
            DocKind::TranscriptChunk => "transcript_chunk",
            DocKind::Shot => "shot",
        }
    }

    pub fn parse(name: &str) -> Option<DocKind> {
        DocKind::ALL.into_iter().find(|k| k.name() == name)
    }
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
    metas: HashMap<u64, DocMeta>,
    /// Term → (doc id, term frequency), sorted by doc id (ids only grow). A copy of the
    /// sled postings, so a query reads no disk and decodes no keys.
    postings: HashMap<String, Vec<Posting>>,
    /// Row i of `matrix` is the vector of `ids[i]`.
    ids: Vec<u64>,
    rows: HashMap<u64, usize>,
    matrix: Vec<f32>,
    dims: usize,
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
    memory: RwLock<Memory>,
}

/// (doc id, term frequency).
type Posting = (u64, u32);

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
    pub fn open(db: &sled::Db) -> Result<SearchIndex> {
        let index = SearchIndex {
            db: db.clone(),
            docs: db.open_tree("search_docs")?,
            postings: db.open_tree("search_postings")?,
            vectors: db.open_tree("search_vectors")?,
            video_docs: db.open_tree("search_video_docs")?,
            videos: db.open_tree("search_videos")?,
            stats: db.open_tree("search_stats")?,
            analyzer: Analyzer::new(true),
            memory: RwLock::default(),
        };
        let mut memory = Memory {
            docs: read_u64(index.stats.get(STAT_DOCS)?),
            total_length: read_u64(index.stats.get(STAT_LENGTH)?),
            ..Memory::default()
        };
        for kv in index.docs.iter() {
            let (k, v) = kv?;
            let id = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| bad_key())?);
            let stored: StoredDoc = serde_json::from_slice(&v)?;
            memory.metas.insert(id, meta(&stored));
        }
        for kv in index.postings.iter() {
            let (k, v) = kv?;
            let split = k.len().checked_sub(9).ok_or_else(bad_key)?;
            let term = String::from_utf8_lossy(&k[..split]).into_owned();
            let id = u64::from_be_bytes(k[split + 1..].try_into().map_err(|_| bad_key())?);
            let tf = u32::from_le_bytes(v.as_ref().try_into().map_err(|_| bad_key())?);
            memory.postings.entry(term).or_default().push((id, tf));
        }
        // sled iterates keys in order, so each list is sorted by id already.
        for kv in index.vectors.iter() {
            let (k, v) = kv?;
            let id = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| bad_key())?);
            let vector = crate::store::keys::decode_vector(&v)?;
            memory.push_vector(id, &vector)?;
        }
        *index.memory.write().expect("search memory poisoned") = memory;
        Ok(index)
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
        for (doc, vector) in docs {
            self.add(doc, vector)?;
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

    /// Adds one document; returns its id.
    pub fn add(&self, doc: &SearchDoc, vector: &[f32]) -> Result<u64> {
        {
            let memory = self.memory.read().expect("search memory poisoned");
            if memory.dims != 0 && vector.len() != memory.dims {
                return Err(Error::invalid(format!(
                    "a {}-dimensional vector cannot join an index of {} dimensions",
                    vector.len(),
                    memory.dims
                )));
            }
        }
        let tokens = self.analyzer.terms(&doc.text);
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
        let id = self.db.generate_id()?;
        let value = serde_json::to_vec(&stored)?;
        let vector_bytes = crate::store::keys::encode_vector(vector);
        (
            &self.docs,
            &self.postings,
            &self.vectors,
            &self.video_docs,
            &self.stats,
        )
            .transaction(|(docs, postings, vectors, video_docs, stats)| {
                docs.insert(&id.to_be_bytes(), value.as_slice())?;
                for (term, tf) in &stored.terms {
                    postings.insert(posting_key(term, id), &tf.to_le_bytes())?;
                }
                vectors.insert(&id.to_be_bytes(), vector_bytes.as_slice())?;
                video_docs.insert(video_doc_key(&doc.video_id, id), &[])?;
                let n = read_u64(stats.get(STAT_DOCS)?) + 1;
                let len = read_u64(stats.get(STAT_LENGTH)?) + stored.length as u64;
                stats.insert(STAT_DOCS, &n.to_be_bytes())?;
                stats.insert(STAT_LENGTH, &len.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<Error>>(())
            })
            .map_err(tx_error)?;
        let mut memory = self.memory.write().expect("search memory poisoned");
        memory.metas.insert(id, meta(&stored));
        for (term, tf) in &stored.terms {
            memory
                .postings
                .entry(term.clone())
                .or_default()
                .push((id, *tf));
        }
        memory.push_vector(id, vector)?;
        memory.docs += 1;
        memory.total_length += stored.length as u64;
        Ok(id)
    }

    fn remove(&self, id: u64) -> Result<()> {
        let Some(value) = self.docs.get(id.to_be_bytes())? else {
            return Ok(());
        };
        let stored: StoredDoc = serde_json::from_slice(&value)?;
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
                let n = read_u64(stats.get(STAT_DOCS)?).saturating_sub(1);
                let len = read_u64(stats.get(STAT_LENGTH)?).saturating_sub(stored.length as u64);
                stats.insert(STAT_DOCS, &n.to_be_bytes())?;
                stats.insert(STAT_LENGTH, &len.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<Error>>(())
            })
            .map_err(tx_error)?;
        let mut memory = self.memory.write().expect("search memory poisoned");
        memory.metas.remove(&id);
        for (term, _) in &stored.terms {
            if let Some(list) = memory.postings.get_mut(term) {
                if let Ok(at) = list.binary_search_by_key(&id, |p| p.0) {
                    list.remove(at);
                }
                if list.is_empty() {
                    memory.postings.remove(term);
                }
            }
        }
        memory.remove_vector(id);
        memory.docs = memory.docs.saturating_sub(1);
        memory.total_length = memory.total_length.saturating_sub(stored.length as u64);
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
        let row = *memory.rows.get(&id)?;
        Some(memory.matrix[row * memory.dims..(row + 1) * memory.dims].to_vec())
    }

    pub fn meta(&self, id: u64) -> Option<DocMeta> {
        self.memory
            .read()
            .expect("search memory poisoned")
            .metas
            .get(&id)
            .cloned()
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
        if n == 0.0 || terms.is_empty() {
            return Ok(Vec::new());
        }
        let avg_len = (memory.total_length as f32 / n).max(1e-6);
        let weight = |idf: f32, tf: u32, length: u32| {
            let tf = tf as f32;
            idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length as f32 / avg_len))
        };
        // Scores first; the explain view is worked out for the winners only.
        let mut per_term: Vec<(&String, f32, &[Posting])> = Vec::new();
        let mut scores: HashMap<u64, f32> = HashMap::new();
        for term in &terms {
            let Some(postings) = memory.postings.get(term) else {
                continue;
            };
            let df = postings.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            per_term.push((term, idf, postings));
            for &(id, tf) in postings {
                let Some(meta) = memory.metas.get(&id) else {
                    continue;
                };
                if keep(meta) {
                    *scores.entry(id).or_insert(0.0) += weight(idf, tf, meta.length);
                }
            }
        }
        let mut ranked: Vec<(u64, f32)> = scores.into_iter().collect();
        let by_score = |a: &(u64, f32), b: &(u64, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if ranked.len() > limit && limit > 0 {
            ranked.select_nth_unstable_by(limit - 1, by_score);
            ranked.truncate(limit);
        }
        ranked.sort_by(by_score);
        ranked.truncate(limit);
        Ok(ranked
            .into_iter()
            .map(|(id, score)| {
                let length = memory.metas.get(&id).map_or(0, |m| m.length);
                let terms = per_term
                    .iter()
                    .filter_map(|(term, idf, list)| {
                        let at = list.binary_search_by_key(&id, |p| p.0).ok()?;
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

    /// Exact nearest documents to `query` by cosine (vectors are unit length, so a dot
    /// product), among those `keep` accepts.
    pub fn nearest(
        &self,
        query: &[f32],
        keep: &dyn Fn(&DocMeta) -> bool,
        limit: usize,
    ) -> Vec<(u64, f32)> {
        let memory = self.memory.read().expect("search memory poisoned");
        if memory.dims == 0 || query.len() != memory.dims || limit == 0 {
            return Vec::new();
        }
        let mut best: Vec<(u64, f32)> = Vec::with_capacity(limit + 1);
        for (row, &id) in memory.ids.iter().enumerate() {
            let Some(meta) = memory.metas.get(&id) else {
                continue;
            };
            if !keep(meta) {
                continue;
            }
            let v = &memory.matrix[row * memory.dims..(row + 1) * memory.dims];
            let score = dot(query, v);
            if best.len() == limit && best.last().is_some_and(|l| score <= l.1) {
                continue;
            }
            let at = best.partition_point(|b| b.1 >= score);
            best.insert(at, (id, score));
            best.truncate(limit);
        }
        best
    }
}

/// Dot product in 8 independent lanes, which the compiler turns into SIMD.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        for l in 0..8 {
            lanes[l] += a[i * 8 + l] * b[i * 8 + l];
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for i in chunks * 8..a.len() {
        sum += a[i] * b[i];
    }
    sum
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
    fn push_vector(&mut self, id: u64, vector: &[f32]) -> Result<()> {
        if self.dims == 0 {
            self.dims = vector.len();
        }
        if vector.len() != self.dims {
            return Err(Error::internal("stored search vectors differ in size"));
        }
        self.rows.insert(id, self.ids.len());
        self.ids.push(id);
        self.matrix.extend_from_slice(vector);
        Ok(())
    }

    fn remove_vector(&mut self, id: u64) {
        let Some(row) = self.rows.remove(&id) else {
            return;
        };
        let last = self.ids.len() - 1;
        let d = self.dims;
        if row != last {
            let moved = self.ids[last];
            self.ids[row] = moved;
            self.matrix.copy_within(last * d..(last + 1) * d, row * d);
            self.rows.insert(moved, row);
        }
        self.ids.pop();
        self.matrix.truncate(last * d);
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

    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f32> = (0..385).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..385).map(|i| (i as f32 * 0.11).cos()).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
    }
}
