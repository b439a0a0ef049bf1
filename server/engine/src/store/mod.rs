//! The sled store: one tree per keyspace, key codecs in `keys`, records in `records`.
//! Every method is blocking; async callers go through `spawn_blocking`.
//!
//! Video-owned records (slices, frames, signals, docs, transcripts, embeddings) carry a generation in
//! their keys. An ingest writes a new generation slice by slice through a `VideoWriter`
//! (so memory stays flat however long the video is), then `commit` flips the video record
//! to it in one small transaction and removes the previous generation. Until that flip no
//! reader sees the new records; a failed ingest `abort`s its generation, and
//! `collect_garbage` at start-up removes what a crash left.

pub mod keys;
pub mod records;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use sled::transaction::{ConflictableTransactionError, Transactional};
use sled::{Db, Tree};

pub use keys::EmbeddingKind;
pub use records::{
    content_key, default_tenant, now_unix_ms, tenant_video_id, DocRecord, FrameRecord, IngestEvent,
    JobKind, JobRecord, JobState, PlannedSlice, PreparedIngest, ResumeRecord, SubtitleRecord,
    TenantUsage, VideoRecord,
};

use reelforge_core::error::{Error, Result};
use reelforge_core::vector;
use reelforge_models::analysis::{SignalWindow, SliceAnalysis};
use reelforge_models::sound::SoundEvent;
use reelforge_models::vision::Sight;
use reelforge_models::TranscriptSegment;
use reelforge_search::bda::ImportedDoc;

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
    transcripts: Tree,
    /// What the sound tagger heard, per slice (`SoundEvent`s).
    sounds: Tree,
    /// What the scene tagger and text reader saw, per slice (`Sight`s).
    sights: Tree,
    subtitles: Tree,
    /// Documents imported from outside (BDA results), by video id; they outlive
    /// re-ingests and go with the video.
    imported: Tree,
    jobs: Tree,
    /// How far an uncommitted generation's speech worker got (`SpeechMark`), so an
    /// interrupted ingest resumes where it stopped.
    marks: Tree,
}

impl Store {
    /// Opens (or creates) the store at `path`, caching at most `cache_bytes` of pages.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| match e {
                // sled reports a held lock as an `Other` error naming the OS's WouldBlock.
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock") =>
                {
                    Error::FailedPrecondition(format!(
                        "the store at {} is in use by another reelforge-server",
                        path.display()
                    ))
                }
                other => other.into(),
            })?;
        Self::from_db(db)
    }

    /// An in-memory store that vanishes when dropped, for tests.
    pub fn temporary() -> Result<Store> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    /// The sled database, for the indexes and the library that keep their own trees
    /// beside the store's (opened once, at composition).
    pub fn db(&self) -> &Db {
        &self.db
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
            transcripts: db.open_tree("transcripts")?,
            sounds: db.open_tree("sounds")?,
            sights: db.open_tree("sights")?,
            subtitles: db.open_tree("subtitles")?,
            imported: db.open_tree("imported_docs")?,
            jobs: db.open_tree("jobs")?,
            marks: db.open_tree("ingest_marks")?,
            db,
        })
    }

    /// Trees whose keys start with a video id and generation.
    fn video_owned(&self) -> [&Tree; 10] {
        [
            &self.marks,
            &self.subtitles,
            &self.slices,
            &self.frames,
            &self.signals,
            &self.docs,
            &self.transcripts,
            &self.sounds,
            &self.sights,
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

    /// `tenant`'s video `video_id`: another tenant's video is not there for it (the one
    /// check every service makes before it reads or changes a video for a caller).
    pub fn video_of(&self, tenant: &str, video_id: &str) -> Result<Option<VideoRecord>> {
        Ok(self.video(video_id)?.filter(|v| v.tenant == tenant))
    }

    /// The video of `content_key(tenant, sha256)`.
    pub fn video_id_by_content(&self, content_key: &str) -> Result<Option<String>> {
        Ok(self
            .content_hashes
            .get(content_key.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn videos(&self) -> Result<Vec<VideoRecord>> {
        self.videos
            .iter()
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    /// The key prefix of the video's committed generation, if the video exists.
    fn live_prefix(&self, video_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .video(video_id)?
            .map(|v| keys::generation_prefix(video_id, v.generation)))
    }

    fn scan_live<T: serde::de::DeserializeOwned>(
        &self,
        tree: &Tree,
        video_id: &str,
    ) -> Result<Vec<T>> {
        match self.live_prefix(video_id)? {
            Some(prefix) => tree
                .scan_prefix(prefix)
                .values()
                .map(|v| Ok(serde_json::from_slice(&v?)?))
                .collect(),
            None => Ok(Vec::new()),
        }
    }

    pub fn slices(&self, video_id: &str) -> Result<Vec<SliceAnalysis>> {
        self.scan_live(&self.slices, video_id)
    }

    /// All signal windows of a video, in time order (stored as one record per slice).
    pub fn signals(&self, video_id: &str) -> Result<Vec<SignalWindow>> {
        Ok(self
            .scan_live::<Vec<SignalWindow>>(&self.signals, video_id)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// All thumbnails of a video, in time order (stored as one record per slice).
    pub fn frames(&self, video_id: &str) -> Result<Vec<FrameRecord>> {
        Ok(self
            .scan_live::<Vec<FrameRecord>>(&self.frames, video_id)?
            .into_iter()
            .flatten()
            .collect())
    }

    pub fn docs(&self, video_id: &str) -> Result<Vec<DocRecord>> {
        self.scan_live(&self.docs, video_id)
    }

    /// The video's subtitles (sidecar files and subtitle streams), in time order.
    pub fn subtitles(&self, video_id: &str) -> Result<Vec<SubtitleRecord>> {
        Ok(self
            .scan_live::<Vec<SubtitleRecord>>(&self.subtitles, video_id)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Documents imported for a video (e.g. from a BDA result).
    pub fn imported(&self, video_id: &str) -> Result<Vec<ImportedDoc>> {
        Ok(get_json(&self.imported, video_id.as_bytes())?.unwrap_or_default())
    }

    /// Replaces the documents imported for a video.
    pub fn put_imported(&self, video_id: &str, docs: &[ImportedDoc]) -> Result<()> {
        self.imported
            .insert(video_id.as_bytes(), serde_json::to_vec(docs)?)?;
        Ok(())
    }

    /// The video's transcript, in time order.
    pub fn transcript(&self, video_id: &str) -> Result<Vec<TranscriptSegment>> {
        Ok(self
            .scan_live::<Vec<TranscriptSegment>>(&self.transcripts, video_id)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// What the sound tagger heard in the video, in time order.
    pub fn sounds(&self, video_id: &str) -> Result<Vec<SoundEvent>> {
        Ok(self
            .scan_live::<Vec<SoundEvent>>(&self.sounds, video_id)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// What the picture models saw in the video, picture by picture in time order.
    pub fn sights(&self, video_id: &str) -> Result<Vec<Sight>> {
        Ok(self
            .scan_live::<Vec<Sight>>(&self.sights, video_id)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Vectors of one kind for a video, by owner index.
    pub fn embeddings(&self, video_id: &str, kind: EmbeddingKind) -> Result<Vec<(u32, Vec<f32>)>> {
        let Some(mut prefix) = self.live_prefix(video_id)? else {
            return Ok(Vec::new());
        };
        prefix.push(kind as u8);
        self.embeddings
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, v) = kv?;
                let owner = keys::item_index(&k);
                Ok((owner, vector::decode(&v)?))
            })
            .collect()
    }

    /// Adds vectors to a committed video's live generation (derived later, e.g. clip
    /// video embeddings made by a highlight request); a re-ingest or delete drops them
    /// with the rest. Nothing is written when the video is gone.
    pub fn put_live_embeddings(
        &self,
        video_id: &str,
        kind: EmbeddingKind,
        vectors: &[(u32, Vec<f32>)],
    ) -> Result<()> {
        let Some(video) = self.video(video_id)? else {
            return Ok(());
        };
        for (owner, vector) in vectors {
            let key = keys::embedding(video_id, video.generation, kind, *owner);
            self.embeddings.insert(key, vector::encode(vector))?;
        }
        Ok(())
    }

    /// Stored embedding counts by kind name.
    pub fn embedding_counts(&self, video_id: &str) -> Result<BTreeMap<String, u32>> {
        let mut counts = BTreeMap::new();
        let Some(prefix) = self.live_prefix(video_id)? else {
            return Ok(counts);
        };
        for key in self.embeddings.scan_prefix(prefix).keys() {
            if let Some(kind) = keys::embedding_kind(&key?) {
                *counts.entry(kind.name().to_string()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    /// Starts writing a new generation of `video_id`'s records. One writer per video at a
    /// time (the ingest engine runs one job per video).
    pub fn begin_video(&self, video_id: &str) -> Result<VideoWriter> {
        reelforge_core::ids::validate_video_id(video_id)?;
        let current = self.video(video_id)?.map_or(0, |v| v.generation);
        let writer = VideoWriter {
            store: self.clone(),
            video_id: video_id.to_string(),
            generation: current.wrapping_add(1),
        };
        // A crashed earlier attempt may have left records in this generation.
        writer.abort()?;
        Ok(writer)
    }

    /// Continues writing `generation` of `video_id`, which an interrupted job began: what
    /// it wrote is kept. Refused when the video was committed at or past it since.
    pub fn resume_video(&self, video_id: &str, generation: u32) -> Result<VideoWriter> {
        reelforge_core::ids::validate_video_id(video_id)?;
        let current = self.video(video_id)?.map_or(0, |v| v.generation);
        if current.wrapping_add(1) != generation {
            return Err(Error::FailedPrecondition(format!(
                "video {video_id} changed since the job started (generation {current} is \
                 stored, the job wrote {generation})"
            )));
        }
        Ok(VideoWriter {
            store: self.clone(),
            video_id: video_id.to_string(),
            generation,
        })
    }

    /// Replaces one slice's analysis in the stored (live) generation of `video_id`: its
    /// record, description document and description vector, then flushes. Refused when
    /// the video is gone or was re-ingested since `generation` was read.
    pub fn amend_slice(
        &self,
        video_id: &str,
        generation: u32,
        slice: &SliceAnalysis,
        doc: &DocRecord,
        vector: &[f32],
    ) -> Result<()> {
        let live = self.video(video_id)?.map(|v| v.generation);
        if live != Some(generation) {
            return Err(Error::FailedPrecondition(format!(
                "video {video_id} changed while its slices were analysed again; run it again"
            )));
        }
        let key = keys::video_item(video_id, generation, slice.index);
        self.slices
            .insert(key.clone(), serde_json::to_vec(slice)?)?;
        self.docs.insert(key, serde_json::to_vec(doc)?)?;
        self.embeddings.insert(
            keys::embedding(video_id, generation, EmbeddingKind::Text, slice.index),
            vector::encode(vector),
        )?;
        self.flush()
    }

    fn remove_prefix(&self, prefix: &[u8]) -> Result<u64> {
        let mut removed = 0;
        for tree in self.video_owned() {
            for key in tree.scan_prefix(prefix).keys() {
                tree.remove(key?)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes a video and every record derived from it; returns how many were removed.
    pub fn delete_video(&self, video_id: &str) -> Result<u64> {
        let Some(video) = self.video(video_id)? else {
            return Err(Error::not_found(format!("no video with id {video_id}")));
        };
        // Unpublish atomically first; the derived records are then unreachable.
        (&self.videos, &self.content_hashes).transaction(|(videos, hashes)| {
            videos.remove(video_id.as_bytes())?;
            hashes.remove(content_key(&video.tenant, &video.sha256).as_bytes())?;
            Ok::<_, ConflictableTransactionError<Error>>(())
        })?;
        let imported = u64::from(self.imported.remove(video_id.as_bytes())?.is_some());
        let removed = self.remove_prefix(video_id.as_bytes())? + 2 + imported;
        self.flush()?;
        Ok(removed)
    }

    /// Removes video-owned records that belong to no committed generation (left by a crash
    /// mid-ingest or mid-delete), except the generations in `keep` (jobs about to resume).
    /// Call before any ingest starts.
    pub fn collect_garbage(&self, keep: &HashSet<(String, u32)>) -> Result<u64> {
        let mut live: HashMap<String, Option<u32>> = HashMap::new();
        let mut removed = 0;
        for tree in self.video_owned() {
            for key in tree.iter().keys() {
                let key = key?;
                let Some((id, generation)) = keys::owner_of(&key) else {
                    tree.remove(&key)?;
                    removed += 1;
                    continue;
                };
                let committed = match live.get(id) {
                    Some(g) => *g,
                    None => {
                        let g = self.video(id)?.map(|v| v.generation);
                        live.insert(id.to_string(), g);
                        g
                    }
                };
                if committed != Some(generation) && !keep.contains(&(id.to_string(), generation)) {
                    tree.remove(&key)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Keys stored for a video across all video-owned trees and generations.
    pub fn owned_record_count(&self, video_id: &str) -> Result<usize> {
        let mut n = 0;
        for tree in self.video_owned() {
            n += tree.scan_prefix(video_id.as_bytes()).count();
        }
        Ok(n)
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

/// Writes one new generation of a video's records; nothing is visible until `commit`.
#[derive(Clone)]
pub struct VideoWriter {
    store: Store,
    video_id: String,
    generation: u32,
}

impl VideoWriter {
    pub fn generation(&self) -> u32 {
        self.generation
    }

    fn put(&self, tree: &Tree, key: Vec<u8>, value: &impl serde::Serialize) -> Result<()> {
        tree.insert(key, serde_json::to_vec(value)?)?;
        Ok(())
    }

    /// A slice's analysis, signal windows and description document.
    pub fn put_slice(
        &self,
        slice: &SliceAnalysis,
        windows: &[SignalWindow],
        doc: &DocRecord,
    ) -> Result<()> {
        let (id, g, i) = (self.video_id.as_str(), self.generation, slice.index);
        self.put(&self.store.slices, keys::video_item(id, g, i), slice)?;
        self.put(&self.store.signals, keys::video_item(id, g, i), &windows)?;
        self.put(&self.store.docs, keys::video_item(id, g, i), doc)
    }

    /// What the sound tagger heard in one slice.
    pub fn put_sounds(&self, slice_index: u32, events: &[SoundEvent]) -> Result<()> {
        let key = keys::video_item(&self.video_id, self.generation, slice_index);
        self.put(&self.store.sounds, key, &events)
    }

    /// What the picture models saw in one slice's pictures.
    pub fn put_sights(&self, slice_index: u32, sights: &[Sight]) -> Result<()> {
        let key = keys::video_item(&self.video_id, self.generation, slice_index);
        self.put(&self.store.sights, key, &sights)
    }

    /// Speech transcribed with one slice (it may start a little before the slice when
    /// a sentence ran across the previous border).
    pub fn put_transcript(&self, slice_index: u32, segments: &[TranscriptSegment]) -> Result<()> {
        let key = keys::video_item(&self.video_id, self.generation, slice_index);
        self.put(&self.store.transcripts, key, &segments)
    }

    /// The video's subtitles.
    pub fn put_subtitles(&self, cues: &[SubtitleRecord]) -> Result<()> {
        let key = keys::video_item(&self.video_id, self.generation, 0);
        self.put(&self.store.subtitles, key, &cues)
    }

    /// Thumbnails of one slice.
    pub fn put_frames(&self, slice_index: u32, frames: &[FrameRecord]) -> Result<()> {
        let key = keys::video_item(&self.video_id, self.generation, slice_index);
        self.put(&self.store.frames, key, &frames)
    }

    pub fn put_embedding(&self, kind: EmbeddingKind, owner: u32, vector: &[f32]) -> Result<()> {
        let key = keys::embedding(&self.video_id, self.generation, kind, owner);
        self.store.embeddings.insert(key, vector::encode(vector))?;
        Ok(())
    }

    /// Makes everything written so far durable (a finished slice survives a crash, so a
    /// resumed job never analyses, or pays for, it again).
    pub fn flush(&self) -> Result<()> {
        self.store.flush()
    }

    /// Records that the speech worker is done up to `mark` (after writing its records).
    pub fn put_speech_mark(&self, mark: &SpeechMark) -> Result<()> {
        let key = keys::video_item(&self.video_id, self.generation, 0);
        self.put(&self.store.marks, key, mark)
    }

    /// What this generation holds so far, for a job resuming it: the finished slices
    /// (each with its signal windows and description vector, contiguous from 0), where
    /// speech stopped, the transcripts, and the clips described.
    pub fn written(&self) -> Result<Written> {
        let prefix = keys::generation_prefix(&self.video_id, self.generation);
        let scan = |tree: &Tree| -> Result<BTreeMap<u32, sled::IVec>> {
            tree.scan_prefix(&prefix)
                .map(|kv| {
                    let (k, v) = kv?;
                    Ok((keys::item_index(&k), v))
                })
                .collect()
        };
        let embedded = |kind: EmbeddingKind| -> Result<HashSet<u32>> {
            let mut p = prefix.clone();
            p.push(kind as u8);
            self.store
                .embeddings
                .scan_prefix(p)
                .keys()
                .map(|k| Ok(keys::item_index(&k?)))
                .collect()
        };
        let slices = scan(&self.store.slices)?;
        let signals = scan(&self.store.signals)?;
        let docs = scan(&self.store.docs)?;
        let text = embedded(EmbeddingKind::Text)?;
        let mut written = Written {
            clips: embedded(EmbeddingKind::VisualDescriptor)?,
            ..Written::default()
        };
        for i in 0u32.. {
            let (Some(slice), Some(windows), true, true) = (
                slices.get(&i),
                signals.get(&i),
                docs.contains_key(&i),
                text.contains(&i),
            ) else {
                break;
            };
            written.slices.push((
                serde_json::from_slice(slice)?,
                serde_json::from_slice(windows)?,
            ));
        }
        let transcribed = embedded(EmbeddingKind::Transcript)?;
        for (index, segments) in scan(&self.store.transcripts)? {
            if transcribed.contains(&index) {
                written
                    .transcripts
                    .push((index, serde_json::from_slice(&segments)?));
            }
        }
        if let Some(mark) = scan(&self.store.marks)?.get(&0) {
            written.speech = Some(serde_json::from_slice(mark)?);
        }
        Ok(written)
    }

    /// Publishes this generation with `video` (whose generation is set here) in one
    /// transaction, then removes the previous generation.
    pub fn commit(&self, mut video: VideoRecord) -> Result<()> {
        if video.video_id != self.video_id {
            return Err(Error::internal("committing a writer for another video"));
        }
        video.generation = self.generation;
        let record = serde_json::to_vec(&video)?;
        let id = self.video_id.as_bytes();
        let content = content_key(&video.tenant, &video.sha256);
        let previous =
            (&self.store.videos, &self.store.content_hashes).transaction(|(videos, hashes)| {
                let previous = videos.insert(id, record.as_slice())?;
                hashes.insert(content.as_bytes(), id)?;
                Ok::<_, ConflictableTransactionError<Error>>(previous)
            })?;
        if let Some(previous) = previous {
            let previous: VideoRecord = serde_json::from_slice(&previous)?;
            if previous.generation != self.generation {
                self.store.remove_prefix(&keys::generation_prefix(
                    &self.video_id,
                    previous.generation,
                ))?;
            }
        }
        let mark = keys::video_item(&self.video_id, self.generation, 0);
        self.store.marks.remove(mark)?;
        self.store.flush()
    }

    /// Removes whatever this writer wrote.
    pub fn abort(&self) -> Result<()> {
        self.store
            .remove_prefix(&keys::generation_prefix(&self.video_id, self.generation))?;
        Ok(())
    }
}

/// Where an uncommitted generation's speech worker stopped: the next slice index it
/// takes, and the media time its audio starts from (a sentence the last slice cut is
/// carried into the next one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpeechMark {
    pub next_index: u32,
    pub from_ms: i64,
}

/// What an uncommitted generation holds (`VideoWriter::written`).
#[derive(Debug, Default)]
pub struct Written {
    /// Finished slices from 0 with their signal windows.
    pub slices: Vec<(SliceAnalysis, Vec<SignalWindow>)>,
    /// Stored transcripts by slice index (only slices with speech have one).
    pub transcripts: Vec<(u32, Vec<TranscriptSegment>)>,
    pub speech: Option<SpeechMark>,
    /// Clip indexes with a visual descriptor.
    pub clips: HashSet<u32>,
}

/// A slice analysis for tests: slice `index` over `[start_ms, end_ms)`, described as
/// "slice N".
#[cfg(test)]
pub(crate) fn test_slice(index: u32, start_ms: i64, end_ms: i64) -> SliceAnalysis {
    SliceAnalysis {
        index,
        start_ms,
        end_ms,
        highlight_score: 0.5,
        motion_mean: 0.0,
        loudness_mean_db: -30.0,
        cut_points_ms: vec![],
        segments: vec![],
        description: format!("slice {index}"),
        analyzer: "test".into(),
        version: String::new(),
        language: Default::default(),
        keyframe_aligned: true,
        usage: None,
        error: None,
    }
}

fn get_json<T: serde::de::DeserializeOwned>(tree: &Tree, key: &[u8]) -> Result<Option<T>> {
    match tree.get(key)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelforge_media::ProbeRecord;

    fn video(id: &str, sha: &str, slices: u32) -> VideoRecord {
        VideoRecord {
            video_id: id.into(),
            tenant: crate::DEFAULT_TENANT.into(),
            filename: "a.mp4".into(),
            source_path: "/x/a.mp4".into(),
            size_bytes: 10,
            sha256: sha.into(),
            probe: ProbeRecord {
                duration_ms: slices as i64 * 2_000,
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
            generation: 0,
            text_embedder: String::new(),
            text_dimensions: 0,
            transcriber: String::new(),
            summary: String::new(),
        }
    }

    /// Writes `slices` slices (4 windows, 2 frames, 1 embedding each) without committing.
    fn write(store: &Store, id: &str, slices: u32) -> VideoWriter {
        let w = store.begin_video(id).unwrap();
        for i in 0..slices {
            let start = i as i64 * 2000;
            let slice = test_slice(i, start, start + 2000);
            let windows: Vec<SignalWindow> = (0..4)
                .map(|k| SignalWindow {
                    start_ms: start + k * 500,
                    loudness_db: -20.0,
                    motion: 0.1,
                    scene_cut: false,
                })
                .collect();
            let doc = DocRecord {
                source: "slice_description".into(),
                start_ms: start,
                end_ms: start + 2000,
                text: slice.description.clone(),
            };
            w.put_slice(&slice, &windows, &doc).unwrap();
            let frames: Vec<FrameRecord> = (0..2)
                .map(|k| FrameRecord {
                    t_ms: start + k * 1000,
                    path: format!("/x/{i}-{k}.jpg"),
                })
                .collect();
            w.put_frames(i, &frames).unwrap();
            w.put_embedding(EmbeddingKind::VisualDescriptor, i, &[1.0, 0.0])
                .unwrap();
        }
        w
    }

    #[test]
    fn nothing_is_visible_before_commit_and_an_abort_leaves_nothing() {
        let store = Store::temporary().unwrap();
        let a = "aaaaaaaaaaaaaaaa";
        let w = write(&store, a, 3);
        assert!(store.video(a).unwrap().is_none());
        assert!(store.slices(a).unwrap().is_empty());
        w.abort().unwrap();
        assert_eq!(store.owned_record_count(a).unwrap(), 0);
    }

    #[test]
    fn commit_replaces_the_previous_generation_and_delete_removes_everything() {
        let store = Store::temporary().unwrap();
        let (a, b) = ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb");
        write(&store, a, 3).commit(video(a, "sha-a", 3)).unwrap();
        write(&store, b, 2).commit(video(b, "sha-b", 2)).unwrap();
        assert_eq!(store.slices(a).unwrap().len(), 3);
        let windows = store.signals(a).unwrap();
        assert_eq!(windows.len(), 12);
        assert!(windows.windows(2).all(|w| w[0].start_ms < w[1].start_ms));
        assert_eq!(store.frames(a).unwrap().len(), 6);
        assert_eq!(store.docs(a).unwrap()[2].text, "slice 2");
        // One record per slice in slices, signals, docs and frames, one per clip embedding.
        assert_eq!(store.owned_record_count(a).unwrap(), 3 * 5);

        // Vectors derived after the commit join the live generation.
        store
            .put_live_embeddings(
                a,
                EmbeddingKind::ClipVideo,
                &[(0, vec![0.5]), (2, vec![0.25])],
            )
            .unwrap();
        assert_eq!(
            store.embeddings(a, EmbeddingKind::ClipVideo).unwrap(),
            vec![(0, vec![0.5]), (2, vec![0.25])]
        );

        // Re-analysis with fewer slices: the old generation is gone, nothing stale is left
        // (the derived vectors included).
        let w = write(&store, a, 1);
        assert_eq!(
            store.slices(a).unwrap().len(),
            3,
            "readers still see the old generation"
        );
        w.commit(video(a, "sha-a", 1)).unwrap();
        assert_eq!(store.slices(a).unwrap().len(), 1);
        assert_eq!(
            store
                .embeddings(a, EmbeddingKind::VisualDescriptor)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.owned_record_count(a).unwrap(), 5);
        assert!(store
            .embeddings(a, EmbeddingKind::ClipVideo)
            .unwrap()
            .is_empty());
        assert_eq!(store.video(a).unwrap().unwrap().generation, 2);
        assert_eq!(
            store.video_id_by_content("sha-a").unwrap().as_deref(),
            Some(a)
        );

        store.delete_video(a).unwrap();
        assert!(store.video(a).unwrap().is_none());
        assert_eq!(store.owned_record_count(a).unwrap(), 0);
        assert!(store.video_id_by_content("sha-a").unwrap().is_none());
        // The other video is untouched.
        assert_eq!(store.slices(b).unwrap().len(), 2);
        assert_eq!(store.embedding_counts(b).unwrap()["visual_descriptor"], 2);
        assert!(matches!(store.delete_video(a), Err(Error::NotFound(_))));
    }

    #[test]
    fn garbage_from_a_crashed_ingest_is_collected() {
        let store = Store::temporary().unwrap();
        let (a, b) = ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb");
        write(&store, a, 2).commit(video(a, "sha-a", 2)).unwrap();
        drop(write(&store, a, 3)); // a re-ingest that never committed
        drop(write(&store, b, 1)); // a first ingest that never committed
        assert_eq!(store.collect_garbage(&HashSet::new()).unwrap(), 3 * 5 + 5);
        assert_eq!(store.owned_record_count(a).unwrap(), 2 * 5);
        assert_eq!(store.owned_record_count(b).unwrap(), 0);
        assert_eq!(store.slices(a).unwrap().len(), 2);
    }
}

#[cfg(test)]
mod resume_tests {
    use super::*;

    #[test]
    fn written_counts_slices_stored_whole_from_the_start_and_keeps_the_generation() {
        let store = Store::temporary().unwrap();
        let a = "aaaaaaaaaaaaaaaa";
        let w = store.begin_video(a).unwrap();
        for i in 0..4u32 {
            let slice = test_slice(i, i as i64 * 1000, (i as i64 + 1) * 1000);
            let doc = DocRecord {
                source: "slice_description".into(),
                start_ms: slice.start_ms,
                end_ms: slice.end_ms,
                text: slice.description.clone(),
            };
            w.put_slice(&slice, &[], &doc).unwrap();
            // Slice 2's vector never made it: slices 2 and 3 are not whole.
            if i != 2 {
                w.put_embedding(EmbeddingKind::Text, i, &[1.0]).unwrap();
            }
        }
        w.put_speech_mark(&SpeechMark {
            next_index: 1,
            from_ms: 900,
        })
        .unwrap();
        let written = w.written().unwrap();
        assert_eq!(written.slices.len(), 2);
        assert_eq!(written.speech.unwrap().from_ms, 900);

        // The start-up collection keeps a generation a job will resume, and a resumed
        // writer sees what was written.
        let keep: HashSet<(String, u32)> = [(a.to_string(), w.generation())].into();
        assert_eq!(store.collect_garbage(&keep).unwrap(), 0);
        let again = store.resume_video(a, w.generation()).unwrap();
        assert_eq!(again.written().unwrap().slices.len(), 2);
        assert!(store.resume_video(a, w.generation() + 1).is_err());
        assert!(store.collect_garbage(&HashSet::new()).unwrap() > 0);
    }
}
