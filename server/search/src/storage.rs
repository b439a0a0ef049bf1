//! The embedded index's durable copy, behind `IndexStorage`: one record per document (the
//! document, its length, its distinct terms with their frequencies, and its vector) and the
//! store generation indexed per video. Nothing derived is stored: the posting lists, the
//! per-video document lists and the BM25 statistics are rebuilt in memory (`slots`) from
//! the records at open, so they are exact by construction, whatever a crash interrupted.
//!
//! Why this layout rather than posting keys or posting blocks: the inverted index is a
//! pure function of the forward one, and in sled every key costs (a posting per key was
//! ~40 keys per document: 1M documents never finished building). One key per document
//! makes a video's replacement one `apply_batch` on one tree, atomic (a video is never
//! half visible), and opening inverts the records in one pass (`bench search` prints the
//! time). The HNSW graphs are cached beside the store (`vectors::saved`), checked against
//! these records at open.
//!
//! Records are a compact binary encoding (`encode`/`decode`), versioned by their first
//! byte. Stores written by the earlier layout (JSON documents, a key per posting) are
//! converted at open (`migrate`).

use reelforge_core::error::{Error, Result};
use reelforge_core::vector::decode as decode_vector;
use serde::{Deserialize, Serialize};
use sled::Tree;

use crate::doc::{DocKind, SearchDoc, Space};

/// A document as stored: the document, its length in terms and its distinct terms with
/// their frequencies (sorted by term).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// What `IndexStorage::load` replays: every document with its vector, in id order.
pub trait LoadSink {
    fn doc(&mut self, id: u64, stored: StoredDoc, vector: Vec<f32>) -> Result<()>;
}

/// One change of a `IndexStorage::write`.
pub enum Change<'a> {
    Put(u64, &'a StoredDoc, &'a [f32]),
    Delete(u64),
}

/// Where the embedded index persists. Every method is blocking.
pub trait IndexStorage: Send + Sync {
    /// Replays every stored document into `sink`.
    fn load(&self, sink: &mut dyn LoadSink) -> Result<()>;
    /// Fresh document ids, increasing.
    fn next_id(&self) -> Result<u64>;
    /// Applies the changes, all or none.
    fn write(&self, changes: &[Change<'_>]) -> Result<()>;
    fn doc(&self, id: u64) -> Result<Option<StoredDoc>>;
    /// The store generation of a video whose documents are indexed (`None`: not indexed).
    fn generation(&self, video_id: &str) -> Result<Option<u32>>;
    fn set_generation(&self, video_id: &str, generation: Option<u32>) -> Result<()>;
    fn indexed_videos(&self) -> Result<Vec<String>>;
}

/// The index in sled trees (see the module comment).
pub struct SledStorage {
    db: sled::Db,
    docs: Tree,
    videos: Tree,
}

/// The earlier layout's trees (before one record per document).
const OLD_TREES: [&str; 5] = [
    "search_docs",
    "search_postings",
    "search_vectors",
    "search_video_docs",
    "search_stats",
];

impl SledStorage {
    /// The trees the index keeps in the store.
    pub const TREES: [&'static str; 2] = ["search_documents", "search_videos"];

    pub fn open(db: &sled::Db) -> Result<SledStorage> {
        let storage = SledStorage {
            db: db.clone(),
            docs: db.open_tree("search_documents")?,
            videos: db.open_tree("search_videos")?,
        };
        storage.migrate()?;
        Ok(storage)
    }

    /// Drops the whole index from `db` (before it is opened): for re-embedding every
    /// video with another text embedder, whose vectors cannot join the old ones.
    pub fn drop_all(db: &sled::Db) -> Result<()> {
        for tree in Self::TREES.iter().chain(&OLD_TREES) {
            db.drop_tree(tree)?;
        }
        Ok(())
    }

    /// Converts an index written in the earlier layout (JSON documents, vectors apart, a
    /// key per posting) into records, then drops the old trees. A crash part way leaves
    /// the old trees whole, and the conversion starts again at the next open.
    fn migrate(&self) -> Result<()> {
        let names = self.db.tree_names();
        if !names.iter().any(|n| n.as_ref() == b"search_docs") {
            return Ok(());
        }
        let old_docs = self.db.open_tree("search_docs")?;
        if !old_docs.is_empty() {
            let vectors = self.db.open_tree("search_vectors")?;
            self.docs.clear()?;
            let mut batch = sled::Batch::default();
            let mut converted = 0usize;
            for kv in old_docs.iter() {
                let (k, v) = kv?;
                let stored: StoredDoc = serde_json::from_slice(&v)?;
                let vector = match vectors.get(&k)? {
                    Some(bytes) => decode_vector(&bytes)?,
                    None => continue,
                };
                batch.insert(k, encode(&stored, &vector));
                converted += 1;
                if converted.is_multiple_of(1024) {
                    self.docs.apply_batch(std::mem::take(&mut batch))?;
                }
            }
            self.docs.apply_batch(batch)?;
            self.docs.flush()?;
            tracing::info!(
                "search index converted to one record per document ({converted} documents)"
            );
        }
        for tree in OLD_TREES {
            self.db.drop_tree(tree)?;
        }
        Ok(())
    }
}

fn id_of(key: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(key.try_into().map_err(|_| {
        Error::internal("a search document key has the wrong size")
    })?))
}

impl IndexStorage for SledStorage {
    fn load(&self, sink: &mut dyn LoadSink) -> Result<()> {
        // sled iterates keys in order: documents arrive in id order.
        for kv in self.docs.iter() {
            let (k, v) = kv?;
            let (stored, vector) = decode(&v, true)?;
            sink.doc(id_of(&k)?, stored, vector)?;
        }
        Ok(())
    }

    fn next_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }

    fn write(&self, changes: &[Change<'_>]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for change in changes {
            match change {
                Change::Put(id, stored, vector) => {
                    batch.insert(&id.to_be_bytes(), encode(stored, vector))
                }
                Change::Delete(id) => batch.remove(&id.to_be_bytes()),
            }
        }
        self.docs.apply_batch(batch)?;
        Ok(())
    }

    fn doc(&self, id: u64) -> Result<Option<StoredDoc>> {
        match self.docs.get(id.to_be_bytes())? {
            Some(v) => Ok(Some(decode(&v, false)?.0)),
            None => Ok(None),
        }
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
}

/// The record format's version (its first byte).
const VERSION: u8 = 2;

/// A document and its vector as one record: version, kind, start and end ms, length,
/// video id, text, terms (each with its frequency), vector (little-endian f32s). Counts,
/// lengths and frequencies are LEB128 varints (a term costs its bytes plus two).
pub fn encode(stored: &StoredDoc, vector: &[f32]) -> Vec<u8> {
    let d = &stored.doc;
    let terms: usize = stored.terms.iter().map(|(t, _)| t.len() + 8).sum();
    let mut out =
        Vec::with_capacity(32 + d.video_id.len() + d.text.len() + terms + 4 * vector.len() + 8);
    out.push(VERSION);
    out.push(DocKind::ALL.iter().position(|k| *k == d.kind).unwrap_or(0) as u8);
    out.extend_from_slice(&d.start_ms.to_le_bytes());
    out.extend_from_slice(&d.end_ms.to_le_bytes());
    put_varint(&mut out, stored.length as u64);
    put_bytes(&mut out, d.video_id.as_bytes());
    put_bytes(&mut out, d.text.as_bytes());
    put_varint(&mut out, stored.terms.len() as u64);
    for (term, tf) in &stored.terms {
        put_bytes(&mut out, term.as_bytes());
        put_varint(&mut out, *tf as u64);
    }
    put_varint(&mut out, vector.len() as u64);
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a record (the vector too when `with_vector`).
pub fn decode(bytes: &[u8], with_vector: bool) -> Result<(StoredDoc, Vec<f32>)> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.take(1)?[0];
    if version != VERSION {
        return Err(Error::internal(format!(
            "a search document record has version {version}; this build reads {VERSION}"
        )));
    }
    let kind = *DocKind::ALL
        .get(r.take(1)?[0] as usize)
        .ok_or_else(|| Error::internal("a search document record has an unknown kind"))?;
    let start_ms = i64::from_le_bytes(r.array()?);
    let end_ms = i64::from_le_bytes(r.array()?);
    let length = r.u32()?;
    let video_id = r.string()?;
    let text = r.string()?;
    let n = r.varint()? as usize;
    let mut terms = Vec::with_capacity(n.min(bytes.len()));
    for _ in 0..n {
        let term = r.string()?;
        terms.push((term, r.u32()?));
    }
    let mut vector = Vec::new();
    if with_vector {
        let dims = r.varint()? as usize;
        let raw = r.take(dims.checked_mul(4).ok_or_else(truncated)?)?;
        vector = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
    }
    let doc = SearchDoc {
        video_id,
        kind,
        text,
        start_ms,
        end_ms,
    };
    Ok((StoredDoc { doc, length, terms }, vector))
}

fn truncated() -> Error {
    Error::internal("a search document record is cut short")
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or_else(truncated)?;
        let out = self.bytes.get(self.at..end).ok_or_else(truncated)?;
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            n |= ((byte & 0x7f) as u64) << shift;
            if byte < 0x80 {
                return Ok(n);
            }
        }
        Err(Error::internal(
            "a search document record holds an overlong number",
        ))
    }

    fn u32(&mut self) -> Result<u32> {
        u32::try_from(self.varint()?)
            .map_err(|_| Error::internal("a search document record holds an overlong number"))
    }

    fn string(&mut self) -> Result<String> {
        let n = self.varint()? as usize;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| Error::internal("a search document record holds invalid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> StoredDoc {
        StoredDoc {
            doc: SearchDoc {
                video_id: "v1".into(),
                kind: DocKind::OcrText,
                text: "第三赛段 finish".into(),
                start_ms: -5,
                end_ms: 9_000_000_000,
            },
            length: 300,
            terms: vec![("finish".into(), 1), ("第三".into(), 200_000)],
        }
    }

    #[test]
    fn records_round_trip_and_cut_ones_are_refused() {
        let v = vec![0.5f32, -0.25, 1.0];
        let bytes = encode(&stored(), &v);
        assert_eq!(decode(&bytes, true).unwrap(), (stored(), v));
        assert_eq!(decode(&bytes, false).unwrap().0, stored());
        for cut in [0, 1, 10, bytes.len() - 1] {
            assert!(decode(&bytes[..cut], true).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn the_earlier_layout_is_converted_at_open() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let old = db.open_tree("search_docs").unwrap();
        old.insert(7u64.to_be_bytes(), serde_json::to_vec(&stored()).unwrap())
            .unwrap();
        let vectors = db.open_tree("search_vectors").unwrap();
        vectors
            .insert(
                7u64.to_be_bytes(),
                reelforge_core::vector::encode(&[1.0, 0.0]),
            )
            .unwrap();
        db.open_tree("search_postings")
            .unwrap()
            .insert(b"finish\0xxxxxxxx", &[1, 0, 0, 0])
            .unwrap();
        let storage = SledStorage::open(&db).unwrap();
        assert_eq!(storage.doc(7).unwrap(), Some(stored()));
        assert!(!db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == b"search_postings"));
        struct Count(Vec<(u64, Vec<f32>)>);
        impl LoadSink for Count {
            fn doc(&mut self, id: u64, _: StoredDoc, vector: Vec<f32>) -> Result<()> {
                self.0.push((id, vector));
                Ok(())
            }
        }
        let mut seen = Count(Vec::new());
        storage.load(&mut seen).unwrap();
        assert_eq!(seen.0, vec![(7, vec![1.0, 0.0])]);
    }
}
