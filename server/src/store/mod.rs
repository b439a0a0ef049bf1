//! The sled store: one tree per keyspace, key codecs in `keys`, records in `records`.
//! Every method is blocking; async callers go through `spawn_blocking`. A video and all
//! its derived records are written and deleted in one multi-tree transaction, so a failed
//! ingest or delete leaves the store as it was.

pub mod keys;
pub mod records;

use std::collections::BTreeMap;
use std::path::Path;

use sled::transaction::{ConflictableTransactionError, Transactional};
use sled::{Db, Tree};

pub use keys::EmbeddingKind;
pub use records::{now_unix_ms, DocRecord, FrameRecord, JobRecord, JobState, VideoRecord};

use crate::analysis::{SignalWindow, SliceAnalysis};
use crate::error::{Error, Result};

/// Everything one ingest produces for a video, committed at once.
#[derive(Debug, Clone)]
pub struct VideoBundle {
    pub video: VideoRecord,
    pub slices: Vec<SliceAnalysis>,
    pub signals: Vec<SignalWindow>,
    pub frames: Vec<FrameRecord>,
    pub docs: Vec<DocRecord>,
    /// (kind, owner index, vector)
    pub embeddings: Vec<(EmbeddingKind, u32, Vec<f32>)>,
}

#[derive(Clone)]
pub struct Store {
    db: Db,
    videos: Tree,
    content_hashes: Tree,
    slices: Tree,
    frames: Tree,
    signals: Tree,
    docs: Tree,
    embeddings: Tree,
    jobs: Tree,
}

impl Store {
    /// Opens (or creates) the store at `path`, caching at most `cache_bytes` of pages.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    Error::FailedPrecondition(format!(
                        "the store at {} is in use by another reelforge-server",
                        path.display()
                    ))
                }
                other => Error::Storage(other),
            })?;
        Self::from_db(db)
    }

    /// An in-memory store that vanishes when dropped, for tests.
    pub fn temporary() -> Result<Store> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: Db) -> Result<Store> {
        Ok(Store {
            videos: db.open_tree("videos")?,
            content_hashes: db.open_tree("content_hashes")?,
            slices: db.open_tree("slices")?,
            frames: db.open_tree("frames")?,
            signals: db.open_tree("signals")?,
            docs: db.open_tree("docs")?,
            embeddings: db.open_tree("embeddings")?,
            jobs: db.open_tree("jobs")?,
            db,
        })
    }

    /// Trees whose keys start with a video id, in a fixed order.
    fn video_owned(&self) -> [&Tree; 5] {
        [
            &self.slices,
            &self.frames,
            &self.signals,
            &self.docs,
            &self.embeddings,
        ]
    }

    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    pub fn video(&self, video_id: &str) -> Result<Option<VideoRecord>> {
        get_json(&self.videos, video_id.as_bytes())
    }

    pub fn video_id_by_sha256(&self, sha256: &str) -> Result<Option<String>> {
        Ok(self
            .content_hashes
            .get(sha256.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn videos(&self) -> Result<Vec<VideoRecord>> {
        self.videos
            .iter()
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    pub fn slices(&self, video_id: &str) -> Result<Vec<SliceAnalysis>> {
        scan_json(&self.slices, video_id)
    }

    /// All signal windows of a video, in time order (stored as one record per slice).
    pub fn signals(&self, video_id: &str) -> Result<Vec<SignalWindow>> {
        Ok(scan_json::<Vec<SignalWindow>>(&self.signals, video_id)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// All thumbnails of a video, in time order (stored as one record per slice).
    pub fn frames(&self, video_id: &str) -> Result<Vec<FrameRecord>> {
        Ok(scan_json::<Vec<FrameRecord>>(&self.frames, video_id)?
            .into_iter()
            .flatten()
            .collect())
    }

    pub fn docs(&self, video_id: &str) -> Result<Vec<DocRecord>> {
        scan_json(&self.docs, video_id)
    }

    /// Vectors of one kind for a video, by owner index.
    pub fn embeddings(&self, video_id: &str, kind: EmbeddingKind) -> Result<Vec<(u32, Vec<f32>)>> {
        let prefix = keys::embedding(video_id, kind, 0);
        let prefix = &prefix[..keys::VIDEO_ID_LEN + 1];
        self.embeddings
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, v) = kv?;
                let owner = u32::from_be_bytes(k[k.len() - 4..].try_into().expect("4-byte suffix"));
                Ok((owner, keys::decode_vector(&v)?))
            })
            .collect()
    }

    /// Stored embedding counts by kind name.
    pub fn embedding_counts(&self, video_id: &str) -> Result<BTreeMap<String, u32>> {
        let mut counts = BTreeMap::new();
        for key in self.embeddings.scan_prefix(video_id.as_bytes()).keys() {
            if let Some(kind) = keys::embedding_kind(&key?) {
                *counts.entry(kind.name().to_string()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    fn owned_keys(&self, video_id: &str) -> Result<Vec<Vec<sled::IVec>>> {
        self.video_owned()
            .iter()
            .map(|tree| {
                tree.scan_prefix(video_id.as_bytes())
                    .keys()
                    .collect::<sled::Result<Vec<_>>>()
                    .map_err(Error::from)
            })
            .collect()
    }

    /// Replaces everything stored for the bundle's video in one transaction.
    pub fn commit_video(&self, bundle: &VideoBundle) -> Result<()> {
        let id = bundle.video.video_id.as_str();
        keys::validate_video_id(id)?;
        let stale = self.owned_keys(id)?;
        let mut writes: [Vec<(Vec<u8>, Vec<u8>)>; 5] = Default::default();
        for s in &bundle.slices {
            writes[0].push((keys::video_item(id, s.index), to_json(s)?));
        }
        // Windows and thumbnails are many and small: one record per slice keeps sled's
        // per-key cost (and the commit's memory) proportional to slices, not seconds.
        let slice_of = |t_ms: i64| slice_index(&bundle.slices, t_ms);
        for (slice, frames) in group_by_slice(&bundle.frames, |f| slice_of(f.t_ms)) {
            writes[1].push((keys::video_item(id, slice), to_json(&frames)?));
        }
        for (slice, windows) in group_by_slice(&bundle.signals, |w| slice_of(w.start_ms)) {
            writes[2].push((keys::video_item(id, slice), to_json(&windows)?));
        }
        for (i, d) in bundle.docs.iter().enumerate() {
            writes[3].push((keys::video_item(id, i as u32), to_json(d)?));
        }
        for (kind, owner, v) in &bundle.embeddings {
            writes[4].push((keys::embedding(id, *kind, *owner), keys::encode_vector(v)));
        }
        let video = serde_json::to_vec(&bundle.video)?;
        let owned = self.video_owned();
        let trees: Vec<&Tree> = owned
            .iter()
            .copied()
            .chain([&self.videos, &self.content_hashes])
            .collect();
        trees.as_slice().transaction(|t| {
            for (i, tree_keys) in stale.iter().enumerate() {
                for k in tree_keys {
                    t[i].remove(k)?;
                }
            }
            for (i, tree_writes) in writes.iter().enumerate() {
                for (k, v) in tree_writes {
                    t[i].insert(k.as_slice(), v.as_slice())?;
                }
            }
            t[5].insert(id.as_bytes(), video.as_slice())?;
            t[6].insert(bundle.video.sha256.as_bytes(), id.as_bytes())?;
            Ok::<_, ConflictableTransactionError<Error>>(())
        })?;
        self.flush()
    }

    /// Removes a video and every record derived from it; returns how many were removed.
    pub fn delete_video(&self, video_id: &str) -> Result<u64> {
        let Some(video) = self.video(video_id)? else {
            return Err(Error::not_found(format!("no video with id {video_id}")));
        };
        let stale = self.owned_keys(video_id)?;
        let owned = self.video_owned();
        let trees: Vec<&Tree> = owned
            .iter()
            .copied()
            .chain([&self.videos, &self.content_hashes])
            .collect();
        trees.as_slice().transaction(|t| {
            for (i, tree_keys) in stale.iter().enumerate() {
                for k in tree_keys {
                    t[i].remove(k)?;
                }
            }
            t[5].remove(video_id.as_bytes())?;
            t[6].remove(video.sha256.as_bytes())?;
            Ok::<_, ConflictableTransactionError<Error>>(())
        })?;
        self.flush()?;
        Ok(stale.iter().map(|k| k.len() as u64).sum::<u64>() + 2)
    }

    /// Keys stored for a video across all video-owned trees (for tests and stats).
    pub fn owned_record_count(&self, video_id: &str) -> Result<usize> {
        Ok(self.owned_keys(video_id)?.iter().map(Vec::len).sum())
    }

    pub fn put_job(&self, job: &JobRecord) -> Result<()> {
        self.jobs
            .insert(job.job_id.as_bytes(), serde_json::to_vec(job)?)?;
        Ok(())
    }

    pub fn job(&self, job_id: &str) -> Result<Option<JobRecord>> {
        get_json(&self.jobs, job_id.as_bytes())
    }

    pub fn jobs(&self) -> Result<Vec<JobRecord>> {
        self.jobs
            .iter()
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }
}

/// Index of the slice containing `t_ms` (the last slice for times past the end).
fn slice_index(slices: &[SliceAnalysis], t_ms: i64) -> u32 {
    let after = slices.partition_point(|s| s.start_ms <= t_ms);
    slices.get(after.saturating_sub(1)).map_or(0, |s| s.index)
}

/// Consecutive items grouped by slice index (items are in time order).
fn group_by_slice<T: Clone>(items: &[T], slice_of: impl Fn(&T) -> u32) -> Vec<(u32, Vec<T>)> {
    let mut groups: Vec<(u32, Vec<T>)> = Vec::new();
    for item in items {
        let slice = slice_of(item);
        match groups.last_mut() {
            Some((s, group)) if *s == slice => group.push(item.clone()),
            _ => groups.push((slice, vec![item.clone()])),
        }
    }
    groups
}

fn get_json<T: serde::de::DeserializeOwned>(tree: &Tree, key: &[u8]) -> Result<Option<T>> {
    match tree.get(key)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

fn scan_json<T: serde::de::DeserializeOwned>(tree: &Tree, video_id: &str) -> Result<Vec<T>> {
    tree.scan_prefix(video_id.as_bytes())
        .values()
        .map(|v| Ok(serde_json::from_slice(&v?)?))
        .collect()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::ProbeRecord;

    pub(crate) fn bundle(id: &str, sha: &str, slices: u32) -> VideoBundle {
        let video = VideoRecord {
            video_id: id.into(),
            filename: "a.mp4".into(),
            source_path: "/x/a.mp4".into(),
            size_bytes: 10,
            sha256: sha.into(),
            probe: ProbeRecord {
                duration_ms: 4_000,
                format_name: "mov".into(),
                size_bytes: 10,
                bit_rate: 1,
                streams: vec![],
                keyframes_ms: vec![0],
                video_data_end_ms: 4_000,
            },
            slice_ms: 2_000,
            clip_ms: 2_000,
            slice_count: slices,
            analyzer: "test".into(),
            ingested_at_unix_ms: 1,
            thumbnails_dir: "/x".into(),
        };
        let slice = |i: u32| SliceAnalysis {
            index: i,
            start_ms: i as i64 * 2000,
            end_ms: (i as i64 + 1) * 2000,
            highlight_score: 0.5,
            motion_mean: 0.0,
            loudness_mean_db: -30.0,
            cut_points_ms: vec![],
            segments: vec![],
            description: format!("slice {i}"),
            analyzer: "test".into(),
            keyframe_aligned: true,
        };
        VideoBundle {
            video,
            slices: (0..slices).map(slice).collect(),
            signals: (0..slices * 4)
                .map(|i| SignalWindow {
                    start_ms: i as i64 * 500,
                    loudness_db: -20.0,
                    motion: 0.1,
                    scene_cut: false,
                })
                .collect(),
            frames: (0..slices * 2)
                .map(|i| FrameRecord {
                    t_ms: i as i64 * 1000,
                    path: format!("/x/{i}.jpg"),
                })
                .collect(),
            docs: vec![],
            embeddings: (0..slices)
                .map(|i| (EmbeddingKind::VisualDescriptor, i, vec![1.0, 0.0]))
                .collect(),
        }
    }

    #[test]
    fn commit_replaces_and_delete_removes_everything() {
        let store = Store::temporary().unwrap();
        let a = "aaaaaaaaaaaaaaaa";
        assert_eq!(slice_index(&bundle(a, "x", 3).slices, 4_100), 2);
        assert_eq!(slice_index(&bundle(a, "x", 3).slices, 99_000), 2);
        let b = "bbbbbbbbbbbbbbbb";
        store.commit_video(&bundle(a, "sha-a", 3)).unwrap();
        store.commit_video(&bundle(b, "sha-b", 2)).unwrap();
        assert_eq!(store.slices(a).unwrap().len(), 3);
        // Windows and frames come back flat and in order, stored one record per slice.
        let windows = store.signals(a).unwrap();
        assert_eq!(windows.len(), 12);
        assert!(windows.windows(2).all(|w| w[0].start_ms < w[1].start_ms));
        assert_eq!(store.frames(a).unwrap().len(), 6);
        assert_eq!(store.owned_record_count(a).unwrap(), 3 + 3 + 3 + 3);
        // Re-analysis with fewer slices leaves no stale slice behind.
        store.commit_video(&bundle(a, "sha-a", 1)).unwrap();
        assert_eq!(store.slices(a).unwrap().len(), 1);
        assert_eq!(
            store
                .embeddings(a, EmbeddingKind::VisualDescriptor)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store.video_id_by_sha256("sha-a").unwrap().as_deref(),
            Some(a)
        );

        store.delete_video(a).unwrap();
        assert!(store.video(a).unwrap().is_none());
        assert_eq!(store.owned_record_count(a).unwrap(), 0);
        assert!(store.video_id_by_sha256("sha-a").unwrap().is_none());
        // The other video is untouched.
        assert_eq!(store.slices(b).unwrap().len(), 2);
        assert_eq!(store.embedding_counts(b).unwrap()["visual_descriptor"], 2);
        assert!(matches!(store.delete_video(a), Err(Error::NotFound(_))));
    }
}
