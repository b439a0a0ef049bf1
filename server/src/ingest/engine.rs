//! The engine facade: validates requests, deduplicates by content, starts jobs under a
//! concurrency limit, and serves stored videos. It knows nothing of gRPC.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::events::{IngestEvent, IngestSink};
use super::jobs::{JobEvents, JobHandle};
use super::paths;
use super::pipeline::{Pipeline, PreparedIngest};
use super::plan;
use super::upload::Upload;
use crate::analysis::{SignalWindow, SliceAnalysis, VideoAnalyzer};
use crate::config::{Config, CLIP_SECONDS_RANGE, SLICE_SECONDS_RANGE};
use crate::error::{Error, ErrorKind, Result};
use crate::media;
use crate::models::{ImageTextEmbedder, Reranker, TextEmbedder, Transcriber, TranscriptSegment};
use crate::search::{self, index::SearchIndex};
use crate::store::{
    keys, now_unix_ms, FrameRecord, JobRecord, JobState, Store, SubtitleRecord, VideoRecord,
};

/// Per-request ingest options; zero means "the server's default".
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    pub force: bool,
    pub slice_seconds: f64,
    pub clip_seconds: f64,
}

/// A stored video with its derived records.
#[derive(Debug, Clone)]
pub struct VideoDetail {
    pub video: VideoRecord,
    pub slices: Vec<SliceAnalysis>,
    pub signals: Vec<SignalWindow>,
    pub frames: Vec<FrameRecord>,
    pub transcript: Vec<TranscriptSegment>,
    pub subtitles: Vec<SubtitleRecord>,
    pub embedding_counts: BTreeMap<String, u32>,
}

/// The model providers an engine works with, chosen by config.
#[derive(Clone)]
pub struct Providers {
    pub analyzer: Arc<dyn VideoAnalyzer>,
    pub text_embedder: Arc<dyn TextEmbedder>,
    /// `None`: speech is not transcribed.
    pub transcriber: Option<Arc<dyn Transcriber>>,
    pub reranker: Arc<dyn Reranker>,
    /// `None`: thumbnails are not embedded (no CLIP weights configured).
    pub image_embedder: Option<Arc<dyn ImageTextEmbedder>>,
    /// `None`: Points + clips matches clips by their captions.
    pub video_embedder: Option<Arc<dyn crate::models::VideoEmbedder>>,
    /// `None`: no Bedrock Data Automation project is configured.
    pub data_automation: Option<crate::models::bedrock::DataAutomation>,
}

pub struct Engine {
    config: Config,
    store: Store,
    search: Arc<SearchIndex>,
    providers: Providers,
    /// Jobs not yet final, by job id.
    running: Mutex<HashMap<String, Arc<JobHandle>>>,
    /// Running job id by video id: one ingest per video at a time.
    by_video: Mutex<HashMap<String, String>>,
    slots: Arc<Semaphore>,
    shutting_down: AtomicBool,
    tasks: TaskTracker,
}

/// The record of a video known only from a BDA result: no media on this server.
fn bda_video_record(video_id: &str, sha256: &str, asset: &search::bda::BdaAsset) -> VideoRecord {
    VideoRecord {
        video_id: video_id.to_string(),
        filename: asset.filename.clone(),
        source_path: asset.source.clone(),
        size_bytes: 0,
        sha256: sha256.to_string(),
        probe: media::ProbeRecord {
            duration_ms: asset.duration_ms,
            format_name: "bedrock-data-automation".into(),
            size_bytes: 0,
            bit_rate: 0,
            streams: Vec::new(),
            keyframes_ms: Vec::new(),
            video_data_end_ms: asset.duration_ms,
        },
        slice_ms: 0,
        clip_ms: 0,
        slice_count: 0,
        analyzer: "bedrock-data-automation".into(),
        ingested_at_unix_ms: now_unix_ms(),
        thumbnails_dir: String::new(),
        generation: 0,
        text_embedder: String::new(),
        text_dimensions: 0,
        transcriber: String::new(),
        summary: asset
            .docs
            .iter()
            .find(|d| d.kind == search::index::DocKind::VideoSummary)
            .map(|d| d.text.clone())
            .unwrap_or_default(),
    }
}

/// A file about to be ingested.
struct SourceFile {
    path: PathBuf,
    filename: String,
    sha256: Option<String>,
    size: u64,
    /// An upload's temporary file: moved under the data dir on success, removed otherwise.
    uploaded: bool,
}

impl Engine {
    /// Opens the store under `config.data_dir`, marks jobs a previous process left
    /// unfinished as interrupted, and clears its temporary files.
    /// Opens the engine with an empty search index, for `reindex`: every video is then
    /// ingested again with the configured models and indexed afresh.
    pub fn open_to_reindex(config: Config, providers: Providers) -> Result<Arc<Engine>> {
        Self::open_with(config, providers, true)
    }

    pub fn open(config: Config, providers: Providers) -> Result<Arc<Engine>> {
        Self::open_with(config, providers, false)
    }

    fn open_with(config: Config, providers: Providers, reset_search: bool) -> Result<Arc<Engine>> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)?;
        let store = Store::open(&config.data_dir.join("db"), config.store_cache_mb << 20)?;
        for dir in ["staging", "uploads"] {
            let _ = std::fs::remove_dir_all(config.data_dir.join(dir));
        }
        for mut job in store.jobs()? {
            if !job.state.is_final() {
                job.state = JobState::Interrupted;
                job.error = Some("the server stopped while this job ran; ingest again".into());
                job.events.push(IngestEvent::Failed {
                    kind: ErrorKind::Unavailable,
                    message: job.error.clone().unwrap_or_default(),
                });
                job.finished_unix_ms = Some(now_unix_ms());
                store.put_job(&job)?;
            }
        }
        let collected = store.collect_garbage()?;
        if collected > 0 {
            tracing::info!("removed {collected} records that interrupted ingests left behind");
        }
        let slots = Arc::new(Semaphore::new(config.ingest.max_concurrent_jobs));
        if reset_search {
            SearchIndex::drop_all(store.db())?;
        }
        let search = Arc::new(SearchIndex::open(store.db())?);
        Ok(Arc::new(Engine {
            config,
            search,
            store,
            providers,
            running: Mutex::default(),
            by_video: Mutex::default(),
            slots,
            shutting_down: AtomicBool::new(false),
            tasks: TaskTracker::new(),
        }))
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Ingests a file on the server's disk, inside the configured roots.
    /// Stored videos whose text vectors another embedder (or size) made than the
    /// configured one.
    pub async fn stale_text_vectors(&self) -> Result<Vec<VideoRecord>> {
        let name = self.providers.text_embedder.name().to_string();
        let dims = self.providers.text_embedder.dimensions() as u32;
        Ok(self
            .videos()
            .await?
            .into_iter()
            .filter(|v| {
                !v.text_embedder.is_empty()
                    && (v.text_embedder != name || v.text_dimensions != dims)
            })
            .collect())
    }

    /// Refuses an index whose vectors another text embedder made: they cannot be compared
    /// with the configured one's, and searching them would return garbage.
    pub async fn check_text_embedder(&self) -> Result<()> {
        let stale = self.stale_text_vectors().await?;
        if let Some(v) = stale.first() {
            return Err(Error::FailedPrecondition(format!(
                "{} stored video(s) were embedded by {} ({} dims) but models.text_embedder is {} ({} dims), and their vectors cannot be compared: run `reelforge-server reindex` with this configuration to embed them again, or go back to {}",
                stale.len(),
                v.text_embedder,
                v.text_dimensions,
                self.providers.text_embedder.name(),
                self.providers.text_embedder.dimensions(),
                v.text_embedder
            )));
        }
        Ok(())
    }

    /// Ingests a stored video again from its source with the configured models (same
    /// slice and clip lengths).
    pub async fn reingest(self: &Arc<Self>, video: &VideoRecord) -> Result<Arc<JobHandle>> {
        let (path, shown) = (PathBuf::from(&video.source_path), video.source_path.clone());
        let checked = path.clone();
        let size = blocking(move || paths::check_media_file(&checked, &shown)).await?;
        let source = SourceFile {
            path,
            filename: video.filename.clone(),
            sha256: None,
            size,
            uploaded: false,
        };
        let options = IngestOptions {
            force: true,
            slice_seconds: video.slice_ms as f64 / 1000.0,
            clip_seconds: video.clip_ms as f64 / 1000.0,
        };
        self.start(source, options).await
    }

    pub async fn ingest_path(
        self: &Arc<Self>,
        path: &str,
        options: IngestOptions,
    ) -> Result<Arc<JobHandle>> {
        resolve_lengths(&self.config, &options)?;
        let roots = self.config.allowed_roots.clone();
        let requested = path.to_string();
        let (path, size) = blocking(move || {
            let path = paths::resolve_server_path(&roots, &requested)?;
            let size = paths::check_media_file(&path, &requested)?;
            Ok((path, size))
        })
        .await?;
        let filename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let source = SourceFile {
            path,
            filename,
            sha256: None,
            size,
            uploaded: false,
        };
        self.start(source, options).await
    }

    /// Starts receiving an upload; `Upload::finish` starts its ingest.
    pub async fn begin_upload(
        self: &Arc<Self>,
        filename: &str,
        expected_size: Option<u64>,
        options: IngestOptions,
    ) -> Result<Upload> {
        self.check_accepting()?;
        resolve_lengths(&self.config, &options)?;
        Upload::begin(self.clone(), filename, expected_size, options).await
    }

    pub(super) async fn ingest_uploaded(
        self: &Arc<Self>,
        path: PathBuf,
        filename: String,
        sha256: String,
        size: u64,
        options: IngestOptions,
    ) -> Result<Arc<JobHandle>> {
        let source = SourceFile {
            path,
            filename,
            sha256: Some(sha256),
            size,
            uploaded: true,
        };
        self.start(source, options).await
    }

    fn check_accepting(&self) -> Result<()> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("the server is shutting down".into()));
        }
        Ok(())
    }

    async fn start(
        self: &Arc<Self>,
        source: SourceFile,
        options: IngestOptions,
    ) -> Result<Arc<JobHandle>> {
        let uploaded = source.uploaded.then(|| source.path.clone());
        let result = self.start_inner(source, options).await;
        // On success the job owns the upload; otherwise nothing may be left behind.
        let job_owns_upload = matches!(&result, Ok(h) if !h.state().is_final());
        if let (Some(path), false) = (uploaded, job_owns_upload) {
            let _ = tokio::fs::remove_file(path).await;
        }
        result
    }

    async fn start_inner(
        self: &Arc<Self>,
        source: SourceFile,
        options: IngestOptions,
    ) -> Result<Arc<JobHandle>> {
        self.check_accepting()?;
        let (slice_ms, clip_ms) = resolve_lengths(&self.config, &options)?;
        let sha256 = match source.sha256.clone() {
            Some(sha) => sha,
            None => {
                let path = source.path.clone();
                blocking(move || sha256_file(&path)).await?
            }
        };
        let video_id = keys::video_id_from_sha256(&sha256);
        if let Some(handle) = self.running_job_for(&video_id) {
            return Ok(handle);
        }
        let store = self.store.clone();
        let id = video_id.clone();
        let existing = blocking(move || store.video(&id)).await?;
        if let (Some(video), false) = (&existing, options.force) {
            return self.already_ingested(video, &source.filename).await;
        }

        let probe = media::probe(&self.config.ffprobe, &source.path).await?;
        let slices = plan::plan_slices(probe.duration_ms, slice_ms, &probe.keyframes_ms)?;
        // Subtitles: sidecar files next to a server-side file, and text subtitle streams.
        // A broken file fails the request here, before a job exists.
        let mut cues = if source.uploaded {
            Vec::new()
        } else {
            media::subtitles::read_sidecars(&media::subtitles::sidecars(&source.path)).await?
        };
        cues.extend(
            media::subtitles::read_stream(&self.config.ffmpeg, &source.path, &probe).await?,
        );
        let subtitles: Vec<SubtitleRecord> = cues
            .into_iter()
            .map(|c| SubtitleRecord {
                start_ms: c.start_ms,
                end_ms: c.end_ms,
                text: c.text,
            })
            .collect();
        let keep_source_at = source.uploaded.then(|| {
            self.config
                .data_dir
                .join("media")
                .join(&video_id)
                .join(format!("source.{}", extension_of(&source.filename)))
        });
        let job_id = uuid::Uuid::new_v4().to_string();
        let prepared = PreparedIngest {
            job_id: job_id.clone(),
            video_id: video_id.clone(),
            sha256,
            filename: source.filename.clone(),
            size_bytes: source.size,
            source: source.path,
            keep_source_at,
            probe,
            slice_ms,
            clip_ms,
            slices,
            subtitles,
        };
        let handle = JobHandle::new(JobRecord {
            job_id: job_id.clone(),
            video_id: video_id.clone(),
            filename: source.filename,
            state: JobState::Queued,
            error: None,
            slices_done: 0,
            slices_total: prepared.slices.len() as u32,
            created_unix_ms: now_unix_ms(),
            finished_unix_ms: None,
            events: Vec::new(),
        });
        {
            let mut by_video = self.by_video.lock().expect("job registry poisoned");
            if let Some(other) = by_video.get(&video_id) {
                // Another request for the same bytes won the race: follow its job.
                if let Some(h) = self.running_job(other) {
                    return Ok(h);
                }
            }
            by_video.insert(video_id, job_id.clone());
            self.running
                .lock()
                .expect("job registry poisoned")
                .insert(job_id, handle.clone());
        }
        handle.emit(IngestEvent::Accepted {
            video_id: prepared.video_id.clone(),
            filename: prepared.filename.clone(),
            slices: prepared
                .slices
                .iter()
                .map(|s| (s.start_ms, s.end_ms))
                .collect(),
            already_ingested: false,
        });
        self.persist(&handle).await?;
        let engine = self.clone();
        let job = handle.clone();
        self.tasks
            .spawn(async move { engine.run_job(job, prepared).await });
        Ok(handle)
    }

    async fn run_job(self: Arc<Self>, handle: Arc<JobHandle>, prepared: PreparedIngest) {
        let permit = tokio::select! {
            permit = self.slots.clone().acquire_owned() => permit.ok(),
            _ = handle.cancel.cancelled() => None,
        };
        let result = match permit {
            None => Err(Error::Cancelled("cancelled while queued".into())),
            Some(_permit) => {
                handle.update(|r| r.state = JobState::Running);
                let _ = self.persist(&handle).await;
                let staging = self.config.data_dir.join("staging").join(&prepared.job_id);
                let result = self.analyse(&handle, &prepared, &staging).await;
                let _ = tokio::fs::remove_dir_all(&staging).await;
                result
            }
        };
        match result {
            Ok(()) => handle.finish(JobState::Succeeded, None),
            Err(e) => {
                let interrupted =
                    matches!(e, Error::Cancelled(_)) && self.shutting_down.load(Ordering::SeqCst);
                let (state, kind, message) = match e {
                    _ if interrupted => (
                        JobState::Interrupted,
                        ErrorKind::Unavailable,
                        "the server shut down while this job ran; ingest again".to_string(),
                    ),
                    Error::Cancelled(m) => (JobState::Cancelled, ErrorKind::Cancelled, m),
                    other => (JobState::Failed, other.kind(), other.to_string()),
                };
                tracing::warn!(job = %prepared.job_id, video = %prepared.video_id, ?state, "{message}");
                handle.emit(IngestEvent::Failed {
                    kind,
                    message: message.clone(),
                });
                handle.finish(state, Some(message));
                if prepared.keep_source_at.is_some() {
                    let _ = tokio::fs::remove_file(&prepared.source).await;
                }
            }
        }
        // Persist before leaving the registry, so a watcher always finds the job somewhere.
        if let Err(e) = self.persist(&handle).await {
            tracing::error!(job = %prepared.job_id, "could not record the job's end: {e}");
        }
        self.running
            .lock()
            .expect("job registry poisoned")
            .remove(&prepared.job_id);
        self.by_video
            .lock()
            .expect("job registry poisoned")
            .remove(&prepared.video_id);
    }

    /// Runs the pipeline into a new store generation, discarding it unless it commits.
    async fn analyse(
        &self,
        handle: &Arc<JobHandle>,
        prepared: &PreparedIngest,
        staging: &Path,
    ) -> Result<()> {
        let (store, video_id) = (self.store.clone(), prepared.video_id.clone());
        let writer = blocking(move || store.begin_video(&video_id)).await?;
        let pipeline = Pipeline {
            config: &self.config,
            analyzer: self.providers.analyzer.as_ref(),
            text_embedder: self.providers.text_embedder.as_ref(),
            transcriber: self.providers.transcriber.as_deref(),
            image_embedder: self.providers.image_embedder.as_deref(),
            search: Some((&self.store, &self.search)),
        };
        let result = tokio::select! {
            r = pipeline.run(prepared, staging, &writer, handle.as_ref()) => r,
            _ = handle.cancel.cancelled() => Err(Error::Cancelled("cancelled by request".into())),
        };
        if result.is_err() {
            let w = writer.clone();
            if let Err(e) = blocking(move || w.abort()).await {
                tracing::warn!(
                    "could not discard a failed ingest's records (removed at next start): {e}"
                );
            }
        }
        result
    }

    /// The job with this id if it is not final yet.
    fn running_job(&self, job_id: &str) -> Option<Arc<JobHandle>> {
        self.running
            .lock()
            .expect("job registry poisoned")
            .get(job_id)
            .cloned()
    }

    fn running_job_for(&self, video_id: &str) -> Option<Arc<JobHandle>> {
        let by_video = self.by_video.lock().expect("job registry poisoned");
        let job_id = by_video.get(video_id)?;
        self.running_job(job_id)
    }

    /// A job that ends at once, pointing at what is already stored.
    async fn already_ingested(
        &self,
        video: &VideoRecord,
        filename: &str,
    ) -> Result<Arc<JobHandle>> {
        let store = self.store.clone();
        let id = video.video_id.clone();
        let slices = blocking(move || store.slices(&id)).await?;
        let events = vec![
            IngestEvent::Accepted {
                video_id: video.video_id.clone(),
                filename: filename.to_string(),
                slices: slices.iter().map(|s| (s.start_ms, s.end_ms)).collect(),
                already_ingested: true,
            },
            IngestEvent::Probe {
                probe: video.probe.clone(),
            },
            IngestEvent::Done {
                video_id: video.video_id.clone(),
                already_ingested: true,
                slice_count: slices.len() as u32,
                analysis_seconds: 0.0,
                realtime_factor: 0.0,
            },
        ];
        let now = now_unix_ms();
        let handle = JobHandle::new(JobRecord {
            job_id: uuid::Uuid::new_v4().to_string(),
            video_id: video.video_id.clone(),
            filename: filename.to_string(),
            state: JobState::Succeeded,
            error: None,
            slices_done: slices.len() as u32,
            slices_total: slices.len() as u32,
            created_unix_ms: now,
            finished_unix_ms: Some(now),
            events,
        });
        self.persist(&handle).await?;
        Ok(handle)
    }

    async fn persist(&self, handle: &JobHandle) -> Result<()> {
        let store = self.store.clone();
        let record = handle.snapshot();
        blocking(move || store.put_job(&record)).await
    }

    /// A job's events from the start, following it if it still runs.
    pub async fn watch(&self, job_id: &str) -> Result<JobEvents> {
        if let Some(h) = self.running_job(job_id) {
            return Ok(JobEvents::live(h));
        }
        Ok(JobEvents::stored(self.job(job_id).await?))
    }

    pub async fn job(&self, job_id: &str) -> Result<JobRecord> {
        if let Some(h) = self.running_job(job_id) {
            return Ok(h.snapshot());
        }
        let store = self.store.clone();
        let id = job_id.to_string();
        blocking(move || store.job(&id))
            .await?
            .ok_or_else(|| Error::not_found(format!("no job with id {job_id}")))
    }

    /// Jobs, newest first, without their event logs.
    pub async fn jobs(&self) -> Result<Vec<JobRecord>> {
        let store = self.store.clone();
        let mut jobs = blocking(move || store.jobs()).await?;
        let live: Vec<JobRecord> = self
            .running
            .lock()
            .expect("job registry poisoned")
            .values()
            .map(|h| h.snapshot())
            .collect();
        for job in live {
            if let Some(stored) = jobs.iter_mut().find(|j| j.job_id == job.job_id) {
                *stored = job;
            }
        }
        jobs.iter_mut().for_each(|j| j.events.clear());
        jobs.sort_by_key(|j| std::cmp::Reverse(j.created_unix_ms));
        Ok(jobs)
    }

    /// Cancels a queued or running job and waits for it to stop; a finished job is
    /// returned as it is.
    pub async fn cancel(&self, job_id: &str) -> Result<JobRecord> {
        match self.running_job(job_id) {
            Some(h) => {
                h.cancel.cancel();
                h.wait().await;
                Ok(h.snapshot())
            }
            None => self.job(job_id).await,
        }
    }

    pub async fn videos(&self) -> Result<Vec<VideoRecord>> {
        let store = self.store.clone();
        blocking(move || store.videos()).await
    }

    pub async fn video(&self, video_id: &str, include_signals: bool) -> Result<VideoDetail> {
        keys::validate_video_id(video_id)?;
        let store = self.store.clone();
        let id = video_id.to_string();
        blocking(move || {
            let video = store
                .video(&id)?
                .ok_or_else(|| Error::not_found(format!("no video with id {id}")))?;
            Ok(VideoDetail {
                slices: store.slices(&id)?,
                signals: if include_signals {
                    store.signals(&id)?
                } else {
                    Vec::new()
                },
                frames: store.frames(&id)?,
                transcript: store.transcript(&id)?,
                subtitles: store.subtitles(&id)?,
                embedding_counts: store.embedding_counts(&id)?,
                video,
            })
        })
        .await
    }

    /// Deletes a video, its records and the files the server made for it (never a
    /// server-side source file, which belongs to its owner).
    pub async fn delete_video(&self, video_id: &str) -> Result<u64> {
        keys::validate_video_id(video_id)?;
        if let Some(h) = self.running_job_for(video_id) {
            return Err(Error::FailedPrecondition(format!(
                "job {} is ingesting this video; cancel it first (reelforge jobs cancel {})",
                h.id(),
                h.id()
            )));
        }
        let store = self.store.clone();
        let id = video_id.to_string();
        let removed = blocking(move || store.delete_video(&id)).await?;
        let (search, id) = (self.search.clone(), video_id.to_string());
        blocking(move || search.remove_video(&id)).await?;
        let media_dir = self.config.data_dir.join("media").join(video_id);
        match tokio::fs::remove_dir_all(&media_dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("could not remove {}: {e}", media_dir.display()),
        }
        Ok(removed)
    }

    /// Brings the search index in line with the store: indexes videos whose live
    /// generation is not indexed (an interrupted index, an older version) and drops
    /// documents of videos that are gone. Returns (videos indexed, videos dropped).
    pub async fn reconcile_search(&self) -> Result<(usize, usize)> {
        let (store, search) = (self.store.clone(), self.search.clone());
        let (stale, gone) = blocking(move || {
            let videos = store.videos()?;
            let mut stale = Vec::new();
            for v in &videos {
                if search.indexed_generation(&v.video_id)? != Some(v.generation) {
                    stale.push(v.video_id.clone());
                }
            }
            let live: std::collections::HashSet<&str> =
                videos.iter().map(|v| v.video_id.as_str()).collect();
            let gone: Vec<String> = search
                .indexed_videos()?
                .into_iter()
                .filter(|id| !live.contains(id.as_str()))
                .collect();
            Ok((stale, gone))
        })
        .await?;
        for id in &stale {
            search::indexer::index_video(
                &self.store,
                &self.search,
                self.providers.text_embedder.as_ref(),
                id,
            )
            .await?;
        }
        let (search, dropped) = (self.search.clone(), gone.clone());
        blocking(move || {
            for id in &dropped {
                search.remove_video(id)?;
            }
            Ok(())
        })
        .await?;
        Ok((stale.len(), gone.len()))
    }

    /// Runs the configured Bedrock Data Automation project on a stored video and imports
    /// its standard output for it (see `import_bda`).
    pub async fn run_bda(&self, video_id: &str) -> Result<(String, usize, bool)> {
        self.check_accepting()?;
        keys::validate_video_id(video_id)?;
        let bda = self.providers.data_automation.clone().ok_or_else(|| {
            Error::FailedPrecondition(
                "no Bedrock Data Automation project is configured: set \
                 models.bedrock.data_automation_project_arn, data_automation_profile_arn and s3_uri"
                    .into(),
            )
        })?;
        let store = self.store.clone();
        let id = video_id.to_string();
        let video = blocking(move || store.video(&id)).await?.ok_or_else(|| {
            Error::not_found(format!(
                "no video with id {video_id} (see `reelforge videos list`)"
            ))
        })?;
        let source = std::path::PathBuf::from(&video.source_path);
        if !source.is_file() {
            return Err(Error::FailedPrecondition(format!(
                "video {video_id} has no source file on the server ({}); ingest it again",
                video.source_path
            )));
        }
        let json = bda.run(&source).await?;
        self.import_bda(json, Some(video_id.to_string())).await
    }

    /// Imports a Bedrock Data Automation result (`result.json`) for `video_id`, or as a
    /// video record of its own (id from the JSON's sha256). Validates everything first;
    /// re-importing replaces the documents imported before. Returns the video id, the
    /// number of imported documents and whether a new record was made.
    pub async fn import_bda(
        &self,
        json: Vec<u8>,
        video_id: Option<String>,
    ) -> Result<(String, usize, bool)> {
        self.check_accepting()?;
        let sha256 = hex::encode(Sha256::digest(&json));
        let asset = blocking(move || search::bda::parse(&json)).await?;
        if let Some(id) = &video_id {
            keys::validate_video_id(id)?;
            if let Some(h) = self.running_job_for(id) {
                return Err(Error::FailedPrecondition(format!(
                    "job {} is ingesting this video; import when it is done",
                    h.id()
                )));
            }
        }
        let store = self.store.clone();
        let docs = asset.docs.clone();
        let documents = docs.len();
        let (id, created) = blocking(move || {
            let (id, created) = match video_id {
                Some(id) => {
                    if store.video(&id)?.is_none() {
                        return Err(Error::not_found(format!(
                            "no video with id {id} (see `reelforge videos list`); leave \
                             video_id empty to import the result as a video of its own"
                        )));
                    }
                    (id, false)
                }
                None => {
                    let id = keys::video_id_from_sha256(&sha256);
                    if store.video(&id)?.is_some() {
                        (id, false)
                    } else {
                        let writer = store.begin_video(&id)?;
                        writer.commit(bda_video_record(&id, &sha256, &asset))?;
                        (id, true)
                    }
                }
            };
            store.put_imported(&id, &docs)?;
            store.flush()?;
            Ok((id, created))
        })
        .await?;
        search::indexer::index_video(
            &self.store,
            &self.search,
            self.providers.text_embedder.as_ref(),
            &id,
        )
        .await?;
        Ok((id, documents, created))
    }

    /// File names of the given videos (those that exist).
    pub async fn filenames(&self, ids: Vec<String>) -> Result<HashMap<String, String>> {
        let store = self.store.clone();
        blocking(move || {
            let mut names = HashMap::new();
            for id in ids {
                if let Some(v) = store.video(&id)? {
                    names.insert(id, v.filename);
                }
            }
            Ok(names)
        })
        .await
    }

    /// Runs a search (see `search::query`); video ids in the filter must exist.
    pub async fn search(
        &self,
        req: &search::query::SearchRequest,
    ) -> Result<(Vec<search::query::SearchHit>, search::query::SearchTimings)> {
        search::query::validate(req)?;
        for id in &req.video_ids {
            keys::validate_video_id(id)
                .map_err(|_| Error::invalid(format!("video_ids: {id:?} is not a video id")))?;
        }
        let (store, ids) = (self.store.clone(), req.video_ids.clone());
        blocking(move || {
            for id in &ids {
                if store.video(id)?.is_none() {
                    return Err(Error::invalid(format!(
                        "video_ids: no video with id {id} (see `reelforge videos list`)"
                    )));
                }
            }
            Ok(())
        })
        .await?;
        let models = search::query::SearchModels {
            text_embedder: self.providers.text_embedder.as_ref(),
            reranker: self.providers.reranker.as_ref(),
            image_embedder: self.providers.image_embedder.as_deref(),
        };
        search::query::search(&self.search, &models, req).await
    }

    /// Stops accepting work, interrupts running jobs (recording them as interrupted) and
    /// flushes the store.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let running: Vec<Arc<JobHandle>> = self
            .running
            .lock()
            .expect("job registry poisoned")
            .values()
            .cloned()
            .collect();
        for h in &running {
            h.cancel.cancel();
        }
        self.tasks.close();
        self.tasks.wait().await;
        if let Err(e) = self.store.flush() {
            tracing::error!("flushing the store at shutdown failed: {e}");
        }
    }
}

/// Slice and clip lengths in ms for these options, checked against the allowed ranges.
fn resolve_lengths(config: &Config, options: &IngestOptions) -> Result<(i64, i64)> {
    let pick = |name: &str, requested: f64, default: f64, (lo, hi): (f64, f64)| -> Result<i64> {
        if !requested.is_finite()
            || requested < 0.0
            || (requested != 0.0 && !(lo..=hi).contains(&requested))
        {
            return Err(Error::invalid(format!(
                "{name} must be between {lo} and {hi} seconds (or 0 for the server default of {default}); got {requested}"
            )));
        }
        let seconds = if requested == 0.0 { default } else { requested };
        Ok((seconds * 1000.0).round() as i64)
    };
    let slice_ms = pick(
        "slice_seconds",
        options.slice_seconds,
        config.ingest.slice_seconds,
        SLICE_SECONDS_RANGE,
    )?;
    let clip_ms = pick(
        "clip_seconds",
        options.clip_seconds,
        config.ingest.clip_seconds,
        CLIP_SECONDS_RANGE,
    )?;
    Ok((slice_ms, clip_ms))
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A short, safe extension for a stored copy of an upload.
fn extension_of(filename: &str) -> String {
    Path::new(filename)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_else(|| "bin".into())
}

/// Runs sled and other blocking work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("blocking task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_default_and_validate() {
        let config = Config::default();
        assert_eq!(
            resolve_lengths(&config, &IngestOptions::default()).unwrap(),
            (30_000, 2_000)
        );
        let opts = |s: f64| IngestOptions {
            slice_seconds: s,
            ..Default::default()
        };
        assert_eq!(resolve_lengths(&config, &opts(4.0)).unwrap().0, 4_000);
        for bad in [-1.0, 0.2, 601.0, f64::NAN, f64::INFINITY, 1e300] {
            let err = resolve_lengths(&config, &opts(bad))
                .unwrap_err()
                .to_string();
            assert!(err.contains("slice_seconds"), "{err}");
        }
    }

    #[test]
    fn extensions_are_kept_only_when_safe() {
        assert_eq!(extension_of("a.MP4"), "mp4");
        assert_eq!(extension_of("a"), "bin");
        assert_eq!(extension_of("a.m p4"), "bin");
    }
}
