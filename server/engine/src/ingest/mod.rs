//! The ingest service: turning a video file into stored, analysed material. It checks a
//! request (`request`), receives uploads (`upload`), confines server-side paths
//! (`paths`), deduplicates by content, plans slices (`plan`), and runs each job under a
//! concurrency limit through the one decode pass (`pipeline`) into a new store
//! generation, indexed for search before it reports `Done`. Bedrock Data Automation
//! results come in through `bda`; `reanalyse` reads a stored video's slices again (those
//! the analyser failed on).

mod bda;
pub mod paths;
mod pipeline;
pub mod plan;
mod reanalyse;
mod request;
mod seeing;
mod upload;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use reelforge_core::error::{Error, ErrorKind, Result};
use reelforge_media as media;
use reelforge_models::Providers;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

pub use pipeline::{Pipeline, PreparedIngest};
pub use reanalyse::Reanalysis;
pub use request::IngestOptions;
pub use upload::Upload;

use crate::config::EngineConfig;
use crate::jobs::{IngestSink, JobHandle, Jobs};
use crate::search::Search;
use crate::store::{
    now_unix_ms, tenant_video_id, IngestEvent, JobKind, JobRecord, JobState, ResumeRecord, Store,
    SubtitleRecord, VideoRecord,
};
use crate::util::blocking;

pub struct Ingest {
    config: EngineConfig,
    store: Store,
    jobs: Arc<Jobs>,
    search: Arc<Search>,
    providers: Providers,
    slots: Arc<Semaphore>,
    shutting_down: AtomicBool,
    tasks: TaskTracker,
    totals: std::sync::Mutex<IngestTotals>,
}

/// What this process has ingested since it started (for metrics: the ratio of the two
/// seconds is the ingest speed).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IngestTotals {
    pub jobs_succeeded: u64,
    /// Media seconds of the videos analysed.
    pub video_seconds: f64,
    /// Wall seconds their analysis took.
    pub analysis_seconds: f64,
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

impl Ingest {
    pub fn new(
        config: EngineConfig,
        store: Store,
        jobs: Arc<Jobs>,
        search: Arc<Search>,
        providers: Providers,
    ) -> Arc<Ingest> {
        Arc::new(Ingest {
            slots: Arc::new(Semaphore::new(config.ingest.max_concurrent_jobs)),
            config,
            store,
            jobs,
            search,
            providers,
            shutting_down: AtomicBool::new(false),
            tasks: TaskTracker::new(),
            totals: std::sync::Mutex::default(),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// What this process has ingested so far.
    pub fn totals(&self) -> IngestTotals {
        *self.totals.lock().expect("totals poisoned")
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
            tenant: video.tenant.clone(),
            key_id: None,
            force: true,
            slice_seconds: video.slice_ms as f64 / 1000.0,
            clip_seconds: video.clip_ms as f64 / 1000.0,
            language: String::new(),
        };
        self.start(source, options).await
    }

    /// Ingests a file on the server's disk, inside the configured roots.
    pub async fn ingest_path(
        self: &Arc<Self>,
        path: &str,
        options: IngestOptions,
    ) -> Result<Arc<JobHandle>> {
        options.resolve(&self.config.ingest, self.providers.transcriber.as_deref())?;
        let tenant = options.tenant().to_string();
        let roots = self.config.roots_for(&tenant).to_vec();
        if roots.is_empty() && tenant != crate::DEFAULT_TENANT {
            return Err(Error::PermissionDenied(format!(
                "tenant {tenant} has no server-side folders: upload the file, or give it some \
                 with [tenants.{tenant}] allowed_roots in the server's config"
            )));
        }
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
        options.resolve(&self.config.ingest, self.providers.transcriber.as_deref())?;
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

    /// Ingests a file this server downloaded into `data_dir/uploads` (a watched S3
    /// object): it is kept like an upload, under its own `filename`.
    pub(crate) async fn ingest_downloaded(
        self: &Arc<Self>,
        path: PathBuf,
        filename: String,
        sha256: String,
        size: u64,
    ) -> Result<Arc<JobHandle>> {
        self.ingest_uploaded(path, filename, sha256, size, IngestOptions::default())
            .await
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
        let resolved =
            options.resolve(&self.config.ingest, self.providers.transcriber.as_deref())?;
        let (slice_ms, clip_ms) = (resolved.slice_ms, resolved.clip_ms);
        let sha256 = match source.sha256.clone() {
            Some(sha) => sha,
            None => {
                let path = source.path.clone();
                blocking(move || sha256_file(&path)).await?
            }
        };
        let tenant = options.tenant().to_string();
        let video_id = tenant_video_id(&tenant, &sha256);
        if let Some(handle) = self.jobs.running_for(JobKind::Ingest, &video_id) {
            return Ok(handle);
        }
        let store = self.store.clone();
        let id = video_id.clone();
        let existing = blocking(move || store.video(&id)).await?;
        if let (Some(video), false) = (&existing, options.force) {
            return self.already_ingested(video, &source.filename).await;
        }

        // An upload's problems are told under the name the caller sent, not the
        // temporary file's.
        let callers_name = |e: Error| match source.uploaded {
            true => {
                let temp = source.path.display().to_string();
                let temp_name = source
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                e.renaming(&temp, &source.filename)
                    .renaming(&temp_name, &source.filename)
            }
            false => e,
        };
        let probe = media::probe(&self.config.ffprobe, &source.path)
            .await
            .map_err(callers_name)?;
        let slices = plan::plan_slices(probe.duration_ms, slice_ms, &probe.keyframes_ms)?;
        // Subtitles: sidecar files next to a server-side file, and text subtitle streams.
        // A broken file fails the request here, before a job exists.
        let mut cues = if source.uploaded {
            Vec::new()
        } else {
            media::subtitles::read_sidecars(&media::subtitles::sidecars(&source.path)).await?
        };
        cues.extend(
            media::subtitles::read_stream(&self.config.ffmpeg, &source.path, &probe)
                .await
                .map_err(callers_name)?,
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
        let mut prepared = PreparedIngest {
            job_id: job_id.clone(),
            tenant: tenant.clone(),
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
            language: resolved.language,
            descriptions: self.config.ingest.description_language,
        };
        let handle = JobHandle::new(JobRecord {
            kind: JobKind::Ingest,
            tenant,
            key_id: options.key_id.clone(),
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
            resume: None,
        });
        if let Some(other) = self.jobs.register(&handle) {
            // Another request for the same bytes won the race: follow its job.
            if source.uploaded {
                let _ = tokio::fs::remove_file(&prepared.source).await;
            }
            return Ok(other);
        }
        if source.uploaded {
            // The job keeps its upload until it ends, in its staging directory (kept
            // across a restart so the job can resume).
            let dir = self.staging_dir(&job_id);
            let moved = dir.join(format!("upload.{}", extension_of(&prepared.filename)));
            let from = prepared.source.clone();
            let to = moved.clone();
            let result = blocking(move || {
                std::fs::create_dir_all(&dir)?;
                std::fs::rename(&from, &to)?;
                Ok(())
            })
            .await;
            if let Err(e) = result {
                self.jobs.unregister(&job_id);
                return Err(e);
            }
            prepared.source = moved;
        }
        handle.update(|r| {
            r.resume = Some(ResumeRecord {
                prepared: prepared.clone(),
                generation: None,
            })
        });
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
        self.jobs.persist(&handle).await?;
        let engine = self.clone();
        let job = handle.clone();
        let tenant = prepared.tenant.clone();
        // Bedrock calls the job makes are charged to its tenant.
        self.tasks
            .spawn(reelforge_models::bedrock::telemetry::for_tenant(
                tenant,
                async move { engine.run_job(job, prepared, None).await },
            ));
        Ok(handle)
    }

    fn staging_dir(&self, job_id: &str) -> PathBuf {
        self.config.data_dir.join("staging").join(job_id)
    }

    /// Runs a registered job to its end. `resuming`: an earlier run of it was
    /// interrupted, and what it stored is kept.
    async fn run_job(
        self: Arc<Self>,
        handle: Arc<JobHandle>,
        prepared: PreparedIngest,
        resuming: Option<String>,
    ) {
        let permit = tokio::select! {
            permit = self.slots.clone().acquire_owned() => permit.ok(),
            _ = handle.cancel.cancelled() => None,
        };
        let staging = self.staging_dir(&prepared.job_id);
        let result = match permit {
            None => Err(Error::Cancelled("cancelled while queued".into())),
            Some(_permit) => {
                handle.update(|r| r.state = JobState::Running);
                self.analyse(&handle, &prepared, &staging, resuming).await
            }
        };
        let interrupted =
            matches!(result, Err(Error::Cancelled(_))) && self.shutting_down.load(Ordering::SeqCst);
        match result {
            Ok(()) => {
                self.count_analysed(&handle, &prepared);
                handle.update(|r| r.resume = None);
                handle.finish(JobState::Succeeded, None);
                let _ = tokio::fs::remove_dir_all(&staging).await;
            }
            Err(_) if interrupted => {
                // What the job stored, its staging directory and its upload stay for the
                // next start, which resumes it.
                let message = "the server shut down while this job ran; it resumes when the \
                               server starts again"
                    .to_string();
                // Not a `Failed` event: the log goes on when the job resumes.
                tracing::info!(job = %prepared.job_id, video = %prepared.video_id, "{message}");
                handle.finish(JobState::Interrupted, Some(message));
            }
            Err(e) => {
                self.discard(&handle, &prepared).await;
                fail(&handle, e);
            }
        }
        self.close(&handle).await;
    }

    /// Adds a succeeded job's analysis to the totals: from its `Done` event, over what
    /// followed its last resume point.
    fn count_analysed(&self, handle: &JobHandle, prepared: &PreparedIngest) {
        let events = handle.snapshot().events;
        let Some(seconds) = events.iter().rev().find_map(|e| match e {
            IngestEvent::Done {
                analysis_seconds, ..
            } => Some(*analysis_seconds),
            _ => None,
        }) else {
            return;
        };
        let from_ms = events
            .iter()
            .rev()
            .find_map(|e| match e {
                IngestEvent::Resumed { from_slice, .. } => {
                    prepared.slices.get(*from_slice as usize)
                }
                _ => None,
            })
            .map_or(0, |s| s.start_ms);
        let mut t = self.totals.lock().expect("totals poisoned");
        t.jobs_succeeded += 1;
        t.video_seconds += (prepared.probe.duration_ms - from_ms) as f64 / 1000.0;
        t.analysis_seconds += seconds;
    }

    /// Records a job's end and takes it out of the registry (persisted first, so a
    /// watcher always finds the job somewhere).
    async fn close(&self, handle: &JobHandle) {
        let job_id = handle.id();
        if let Err(e) = self.jobs.persist(handle).await {
            tracing::error!(job = %job_id, "could not record the job's end: {e}");
        }
        self.jobs.unregister(&job_id);
    }

    /// Removes what a job that ends without success wrote: its store generation, its
    /// staging directory (thumbnails, an upload) and an upload already moved into place.
    async fn discard(&self, handle: &JobHandle, prepared: &PreparedIngest) {
        let generation = handle.snapshot().resume.and_then(|r| r.generation);
        handle.update(|r| r.resume = None);
        if let Some(generation) = generation {
            let (store, id) = (self.store.clone(), prepared.video_id.clone());
            let aborted = blocking(move || match store.resume_video(&id, generation) {
                Ok(writer) => writer.abort(),
                // Committed meanwhile (or never begun): nothing of ours is left to remove.
                Err(_) => Ok(()),
            })
            .await;
            if let Err(e) = aborted {
                tracing::warn!(
                    "could not discard a failed ingest's records (removed at next start): {e}"
                );
            }
        }
        let _ = tokio::fs::remove_dir_all(self.staging_dir(&prepared.job_id)).await;
        if prepared.keep_source_at.is_some() {
            let _ = tokio::fs::remove_file(&prepared.source).await;
        }
    }

    /// Runs the pipeline into the job's store generation (a new one, or the one an
    /// interrupted run began), recording the generation so a restart can resume it.
    async fn analyse(
        &self,
        handle: &Arc<JobHandle>,
        prepared: &PreparedIngest,
        staging: &Path,
        resuming: Option<String>,
    ) -> Result<()> {
        let earlier = handle.snapshot().resume.and_then(|r| r.generation);
        let (store, video_id) = (self.store.clone(), prepared.video_id.clone());
        let writer = blocking(move || match earlier {
            Some(generation) => store.resume_video(&video_id, generation),
            None => store.begin_video(&video_id),
        })
        .await?;
        let generation = writer.generation();
        handle.update(|r| {
            if let Some(resume) = &mut r.resume {
                resume.generation = Some(generation);
            }
        });
        self.jobs.persist(handle).await?;
        let transcribes = self.providers.transcriber.is_some() && prepared.probe.has_audio();
        let resume = match resuming {
            None => None,
            Some(reason) => {
                let w = writer.clone();
                let written = blocking(move || w.written()).await?;
                let thumbnails_kept = tokio::fs::try_exists(staging.join("thumbs"))
                    .await
                    .unwrap_or(false);
                let resume = pipeline::Resume::plan(
                    prepared,
                    written,
                    transcribes,
                    &self.config.ingest,
                    thumbnails_kept,
                );
                let kept = resume.written.slices.len() as u32;
                tracing::info!(
                    job = %prepared.job_id,
                    video = %prepared.video_id,
                    "resuming at slice {kept} of {} (decoding from {:.1} s): {reason}",
                    prepared.slices.len(),
                    resume.decode_from_ms as f64 / 1000.0
                );
                handle.emit(IngestEvent::Resumed {
                    from_slice: kept,
                    slices_kept: kept,
                    reason,
                });
                self.jobs.persist(handle).await?;
                Some(resume)
            }
        };
        let pipeline = Pipeline {
            config: &self.config,
            analyzer: self.providers.analyzer.as_ref(),
            text_embedder: self.providers.text_embedder.as_ref(),
            transcriber: self.providers.transcriber.as_deref(),
            image_embedder: self.providers.image_embedder.as_deref(),
            sound_tagger: self.providers.sound_tagger.clone(),
            scene_tagger: self.providers.scene_tagger.clone(),
            text_reader: self.providers.text_reader.clone(),
            search: Some(&self.search),
        };
        tokio::select! {
            r = pipeline.run(prepared, staging, &writer, handle.as_ref(), resume) => r,
            _ = handle.cancel.cancelled() => Err(Error::Cancelled("cancelled by request".into())),
        }
    }

    /// A job stopped after its commit but before its end was recorded: its video is
    /// stored at the job's generation. It ends as succeeded (the start-up reconcile has
    /// indexed the video); returns whether that was the case.
    async fn committed_before_the_stop(
        &self,
        handle: &Arc<JobHandle>,
        generation: Option<u32>,
    ) -> bool {
        let record = handle.snapshot();
        let (store, id) = (self.store.clone(), record.video_id.clone());
        let Ok(Some(video)) = blocking(move || store.video(&id)).await else {
            return false;
        };
        if generation != Some(video.generation) {
            return false;
        }
        handle.emit(IngestEvent::Done {
            video_id: video.video_id.clone(),
            already_ingested: false,
            slice_count: video.slice_count,
            analysis_seconds: 0.0,
            realtime_factor: 0.0,
        });
        handle.update(|r| {
            r.resume = None;
            r.slices_done = video.slice_count;
        });
        handle.finish(JobState::Succeeded, None);
        self.close(handle).await;
        let _ = tokio::fs::remove_dir_all(self.staging_dir(&record.job_id)).await;
        true
    }

    /// Continues every job a previous process left unfinished, oldest first, from what it
    /// stored; a job whose source is gone (or whose video changed since) fails with the
    /// reason.
    pub async fn resume_interrupted(self: &Arc<Self>) {
        for mut record in self.jobs.take_resumable() {
            let Some(mut resume) = record.resume.clone() else {
                continue;
            };
            let reason = match record.state {
                JobState::Interrupted => "the server was shut down while the job ran",
                _ => "the server stopped unexpectedly while the job ran",
            }
            .to_string();
            let job_id = record.job_id.clone();
            let prepared = &mut resume.prepared;
            // A crash between moving an upload into place and committing leaves it there.
            if let Some(dest) = prepared.keep_source_at.clone() {
                let moved = !tokio::fs::try_exists(&prepared.source)
                    .await
                    .unwrap_or(false)
                    && tokio::fs::try_exists(&dest).await.unwrap_or(false);
                if moved {
                    prepared.source = dest;
                    prepared.keep_source_at = None;
                }
            }
            let source_there = tokio::fs::try_exists(&prepared.source)
                .await
                .unwrap_or(false);
            let prepared = resume.prepared.clone();
            let generation = resume.generation;
            record.resume = Some(resume);
            record.state = JobState::Queued;
            record.error = None;
            record.finished_unix_ms = None;
            let handle = JobHandle::new(record);
            let refused = if !source_there {
                Some(format!(
                    "cannot resume: the source {} is gone; ingest it again",
                    prepared.source.display()
                ))
            } else if self.jobs.register(&handle).is_some() {
                // The generation may be the other job's now: not ours to discard.
                handle.update(|r| {
                    if let Some(resume) = &mut r.resume {
                        resume.generation = None;
                    }
                });
                Some("cannot resume: another job ingests this video".to_string())
            } else {
                None
            };
            if refused.is_none() && self.committed_before_the_stop(&handle, generation).await {
                continue;
            }
            if let Some(message) = refused {
                self.discard(&handle, &prepared).await;
                fail(&handle, Error::FailedPrecondition(message));
                self.close(&handle).await;
                continue;
            }
            if let Err(e) = self.jobs.persist(&handle).await {
                tracing::error!(job = %job_id, "could not record the resumed job: {e}");
            }
            let engine = self.clone();
            let tenant = prepared.tenant.clone();
            self.tasks
                .spawn(reelforge_models::bedrock::telemetry::for_tenant(
                    tenant,
                    async move { engine.run_job(handle, prepared, Some(reason)).await },
                ));
        }
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
            kind: JobKind::Ingest,
            tenant: video.tenant.clone(),
            key_id: None,
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
            resume: None,
        });
        self.jobs.persist(&handle).await?;
        Ok(handle)
    }

    /// Stops accepting work, interrupts running jobs (recording them as interrupted) and
    /// flushes the store.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.jobs.cancel_all();
        self.tasks.close();
        self.tasks.wait().await;
        if let Err(e) = self.store.flush() {
            tracing::error!("flushing the store at shutdown failed: {e}");
        }
    }
}

/// Ends a job with `e`: cancelled when it was cancelled, failed otherwise, with a
/// `Failed` event that carries its kind (a replay fails with the same status).
fn fail(handle: &JobHandle, e: Error) {
    let (state, kind, message) = match e {
        Error::Cancelled(m) => (JobState::Cancelled, ErrorKind::Cancelled, m),
        other => (JobState::Failed, other.kind(), other.to_string()),
    };
    let record = handle.snapshot();
    tracing::warn!(job = %record.job_id, video = %record.video_id, ?state, "{message}");
    handle.emit(IngestEvent::Failed {
        kind,
        message: message.clone(),
    });
    handle.finish(state, Some(message));
}

/// The SHA-256 of a file's bytes, hex.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_kept_only_when_safe() {
        assert_eq!(extension_of("a.MP4"), "mp4");
        assert_eq!(extension_of("a"), "bin");
        assert_eq!(extension_of("a.m p4"), "bin");
    }
}
