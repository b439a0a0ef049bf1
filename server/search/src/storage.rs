//! The embedded index's durable copy, behind `IndexStorage`: documents with their term
//! counts, postings, vectors, per-video document lists, the store generation indexed per
//! video, and exact statistics. The in-memory index (`slots`) is rebuilt from it at open,
//! so a storage only has to persist and replay; `SledStorage` keeps it in sled trees
//! beside the store's, one transaction per batch so statistics stay exact under insert
//! and delete. Another layout (immutable posting segments merged in the background)
//! plugs in here without the scorer or the queries changing.

use reelforge_core::error::{Error, Result};
use reelforge_core::vector::{decode as decode_vector, encode as encode_vector};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::Tree;

use crate::doc::{SearchDoc, Space};

/// A document as stored: the document, its length in terms and its distinct terms with
/// their frequencies (to remove its postings again).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredDoc {
    pub doc: SearchDoc,
    pub length: u32,
    pub terms: Vec<(String, u32)>,
}

impl StoredDoc {
    /// Whether it counts for BM25 (frames have no words).
    pub fn lexical(&self) -> bool {
        self.doc.kind.space() == Space::Text
    }
}

/// What `IndexStorage::load` replays, in this order: every document (in id order), then
/// every posting, then every vector.
pub trait LoadSink {
    fn doc(&mut self, id: u64, stored: StoredDoc) -> Result<()>;
    fn posting(&mut self, term: String, id: u64, tf: u32) -> Result<()>;
    fn vector(&mut self, id: u64, vector: Vec<f32>) -> Result<()>;
}

/// Where the embedded index persists. Every method is blocking.
pub trait IndexStorage: Send + Sync {
    /// Replays everything stored into `sink`; returns (documents, total length) of the
    /// BM25 statistics.
    fn load(&self, sink: &mut dyn LoadSink) -> Result<(u64, u64)>;
    /// Fresh document ids, increasing.
    fn next_id(&self) -> Result<u64>;
    /// Writes documents (with their vectors) and the statistics' change, all or none.
    fn write(&self, docs: &[(u64, &StoredDoc, &[f32])]) -> Result<()>;
    /// Removes a document with its postings, vector and statistics; returns it.
    fn remove(&self, id: u64) -> Result<Option<StoredDoc>>;
    fn doc(&self, id: u64) -> Result<Option<StoredDoc>>;
    /// Ids of a video's documents.
    fn docs_of_video(&self, video_id: &str) -> Result<Vec<u64>>;
    /// (documents, total length in terms) as stored.
    fn stats(&self) -> Result<(u64, u64)>;
    /// The store generation of a video whose documents are indexed (`None`: not indexed).
    fn generation(&self, video_id: &str) -> Result<Option<u32>>;
    fn set_generation(&self, video_id: &str, generation: Option<u32>) -> Result<()>;
    fn indexed_videos(&self) -> Result<Vec<String>>;
    /// Stored postings (one per term and document).
    fn posting_count(&self) -> usize;
}

const STAT_DOCS: &[u8] = b"docs";
const STAT_LENGTH: &[u8] = b"total_length";

/// The index in sled trees (see the module comment).
pub struct SledStorage {
    db: sled::Db,
    docs: Tree,
    postings: Tree,
    vectors: Tree,
    video_docs: Tree,
    videos: Tree,
    stats: Tree,
}

impl SledStorage {
    /// The trees the index keeps in the store.
    pub const TREES: [&'static str; 6] = [
        "search_docs",
        "search_postings",
        "search_vectors",
        "search_video_docs",
        "search_videos",
        "search_stats",
    ];

    pub fn open(db: &sled::Db) -> Result<SledStorage> {
        Ok(SledStorage {
            db: db.clone(),
            docs: db.open_tree("search_docs")?,
            postings: db.open_tree("search_postings")?,
            vectors: db.open_tree("search_vectors")?,
            video_docs: db.open_tree("search_video_docs")?,
            videos: db.open_tree("search_videos")?,
            stats: db.open_tree("search_stats")?,
        })
    }

    /// Drops the whole index from `db` (before it is opened): for re-embedding every
    /// video with another text embedder, whose vectors cannot join the old ones.
    pub fn drop_all(db: &sled::Db) -> Result<()> {
        for tree in Self::TREES {
            db.drop_tree(tree)?;
        }
        Ok(())
    }
}

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

fn bad_key() -> Error {
    Error::internal("a search index key or value has the wrong size")
}

fn id_of(key: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(key.try_into().map_err(|_| bad_key())?))
}

impl IndexStorage for SledStorage {
    fn load(&self, sink: &mut dyn LoadSink) -> Result<(u64, u64)> {
        // sled iterates keys in order: documents arrive in id order.
        for kv in self.docs.iter() {
            let (k, v) = kv?;
            sink.doc(id_of(&k)?, serde_json::from_slice(&v)?)?;
        }
        for kv in self.postings.iter() {
            let (k, v) = kv?;
            let split = k.len().checked_sub(9).ok_or_else(bad_key)?;
            let term = String::from_utf8_lossy(&k[..split]).into_owned();
            let id = id_of(&k[split + 1..])?;
            let tf = u32::from_le_bytes(v.as_ref().try_into().map_err(|_| bad_key())?);
            sink.posting(term, id, tf)?;
        }
        for kv in self.vectors.iter() {
            let (k, v) = kv?;
            sink.vector(id_of(&k)?, decode_vector(&v)?)?;
        }
        self.stats()
    }

    fn next_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }

    fn write(&self, batch: &[(u64, &StoredDoc, &[f32])]) -> Result<()> {
        let (mut added_docs, mut added_length) = (0u64, 0u64);
        let mut prepared = Vec::with_capacity(batch.len());
        for (id, stored, vector) in batch {
            if stored.lexical() {
                added_docs += 1;
                added_length += stored.length as u64;
            }
            prepared.push((
                *id,
                *stored,
                serde_json::to_vec(stored)?,
                encode_vector(vector),
            ));
        }
        (
            &self.docs,
            &self.postings,
            &self.vectors,
            &self.video_docs,
            &self.stats,
        )
            .transaction(|(docs, postings, vectors, video_docs, stats)| {
                for (id, stored, value, vector_bytes) in &prepared {
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
            .map_err(tx_error)
    }

    fn remove(&self, id: u64) -> Result<Option<StoredDoc>> {
        let Some(stored) = self.doc(id)? else {
            return Ok(None);
        };
        let lexical = stored.lexical();
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
        Ok(Some(stored))
    }

    fn doc(&self, id: u64) -> Result<Option<StoredDoc>> {
        Ok(match self.docs.get(id.to_be_bytes())? {
            Some(v) => Some(serde_json::from_slice(&v)?),
            None => None,
        })
    }

    fn docs_of_video(&self, video_id: &str) -> Result<Vec<u64>> {
        self.video_docs
            .scan_prefix(video_id.as_bytes())
            .keys()
            .map(|k| {
                let k = k?;
                id_of(&k[k.len() - 8..])
            })
            .collect()
    }

    fn stats(&self) -> Result<(u64, u64)> {
        Ok((
            read_u64(self.stats.get(STAT_DOCS)?),
            read_u64(self.stats.get(STAT_LENGTH)?),
        ))
    }

    fn generation(&self, video_id: &str) -> Result<Option<u32>> {
        Ok(self
            .videos
            .get(video_id.as_bytes())?
            .and_then(|v| v.as_ref().try_into().ok())
            .map(u32::from_be_bytes))
    }

    fn set_generation(&self, video_id: &str, generation: Option<u32>) -> Result<()> {
        match generation {
            Some(g) => self.videos.insert(video_id.as_bytes(), &g.to_be_bytes())?,
            None => self.videos.remove(video_id.as_bytes())?,
        };
        Ok(())
    }

    fn indexed_videos(&self) -> Result<Vec<String>> {
        self.videos
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    fn posting_count(&self) -> usize {
        self.postings.len()
    }
}
