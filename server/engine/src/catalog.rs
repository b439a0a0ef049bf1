//! The catalog service: what is stored (videos with their derived records, ingest jobs),
//! deleting a video with everything made from it, and the start-up checks that the
//! stored material agrees with the configured models and the search index.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use reelforge_core::error::{Error, Result};
use reelforge_core::ids::validate_video_id;
use reelforge_core::page::{newest_first, Page, PageRequest};
use reelforge_models::analysis::{SignalWindow, SliceAnalysis};
use reelforge_models::sound::SoundEvent;
use reelforge_models::vision::Sight;
use reelforge_models::{TextEmbedder, TranscriptSegment, VideoEmbedder};

use crate::jobs::{JobEvents, Jobs};
use crate::search::Search;
use crate::store::{
    EmbeddingKind, FrameRecord, JobKind, JobRecord, JobState, Store, SubtitleRecord, TenantUsage,
    VideoRecord,
};
use crate::util::blocking;
use crate::TenantView;

/// A stored video with its derived records.
#[derive(Debug, Clone)]
pub struct VideoDetail {
    pub video: VideoRecord,
    pub slices: Vec<SliceAnalysis>,
    pub signals: Vec<SignalWindow>,
    pub frames: Vec<FrameRecord>,
    pub transcript: Vec<TranscriptSegment>,
    /// What the sound tagger heard, in time order.
    pub sounds: Vec<SoundEvent>,
    /// What the picture models saw, picture by picture in time order.
    pub sights: Vec<Sight>,
    pub subtitles: Vec<SubtitleRecord>,
    pub embedding_counts: BTreeMap<String, u32>,
}

/// Which stored videos a listing selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VideoFilter {
    /// Text the file name contains, compared case-insensitively.
    pub name_contains: Option<String>,
    /// Ingested at or after this time (Unix ms).
    pub ingested_after_unix_ms: Option<i64>,
    /// Ingested before this time (Unix ms).
    pub ingested_before_unix_ms: Option<i64>,
}

impl VideoFilter {
    /// The filter with its text trimmed and lower-cased, or what is wrong with it.
    fn checked(&self) -> Result<VideoFilter> {
        let name = self
            .name_contains
            .as_deref()
            .map(|n| n.trim().to_lowercase())
            .filter(|n| !n.is_empty());
        if name.as_ref().is_some_and(|n| n.chars().count() > 256) {
            return Err(Error::invalid(
                "name_contains is longer than 256 characters; send part of the file name",
            ));
        }
        for (field, value) in [
            ("ingested_after_unix_ms", self.ingested_after_unix_ms),
            ("ingested_before_unix_ms", self.ingested_before_unix_ms),
        ] {
            if value.is_some_and(|v| v < 0) {
                return Err(Error::invalid(format!(
                    "{field} must be a Unix time in milliseconds (0 or unset: no bound); got {}",
                    value.unwrap_or_default()
                )));
            }
        }
        if let (Some(after), Some(before)) =
            (self.ingested_after_unix_ms, self.ingested_before_unix_ms)
        {
            if after >= before {
                return Err(Error::invalid(format!(
                    "ingested_after_unix_ms ({after}) must be earlier than ingested_before_unix_ms ({before})"
                )));
            }
        }
        Ok(VideoFilter {
            name_contains: name,
            ..self.clone()
        })
    }

    fn canonical(&self) -> String {
        format!(
            "name={:?};after={:?};before={:?}",
            self.name_contains, self.ingested_after_unix_ms, self.ingested_before_unix_ms
        )
    }

    fn selects(&self, v: &VideoRecord) -> bool {
        self.name_contains
            .as_ref()
            .is_none_or(|n| v.filename.to_lowercase().contains(n.as_str()))
            && self
                .ingested_after_unix_ms
                .is_none_or(|t| v.ingested_at_unix_ms >= t)
            && self
                .ingested_before_unix_ms
                .is_none_or(|t| v.ingested_at_unix_ms < t)
    }
}

/// What the matching strategies read of one stored video.
#[derive(Debug, Clone)]
pub struct VideoMaterial {
    pub video: VideoRecord,
    /// Signal windows of the whole video, in time order.
    pub windows: Vec<SignalWindow>,
    pub cut_points_ms: Vec<i64>,
    pub transcript: Vec<TranscriptSegment>,
    /// The analyses ingest stored, slice by slice (a highlight reuses one made by the
    /// same analyser on the same slice instead of paying for it again).
    pub analyses: Vec<SliceAnalysis>,
    /// What the sound tagger heard, in time order.
    pub sounds: Vec<SoundEvent>,
    /// What the picture models saw, picture by picture in time order.
    pub sights: Vec<Sight>,
}

pub struct Catalog {
    store: Store,
    jobs: Arc<Jobs>,
    search: Arc<Search>,
    text_embedder: Arc<dyn TextEmbedder>,
    /// `data_dir/media`: what the server made for each video.
    media_dir: PathBuf,
}

impl Catalog {
    pub fn new(
        store: Store,
        jobs: Arc<Jobs>,
        search: Arc<Search>,
        text_embedder: Arc<dyn TextEmbedder>,
        media_dir: PathBuf,
    ) -> Catalog {
        Catalog {
            store,
            jobs,
            search,
            text_embedder,
            media_dir,
        }
    }

    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// Runs `f` on the store for one video, off the async runtime.
    async fn on_store<T: Send + 'static>(
        &self,
        video_id: &str,
        f: impl FnOnce(&Store, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (store, id) = (self.store.clone(), video_id.to_string());
        blocking(move || f(&store, &id)).await
    }

    /// Bytes the store takes on disk (the embedded search index shares its sled file).
    pub async fn store_bytes(&self) -> Result<u64> {
        let store = self.store.clone();
        blocking(move || Ok(store.db().size_on_disk()?)).await
    }

    pub async fn videos(&self) -> Result<Vec<VideoRecord>> {
        let store = self.store.clone();
        blocking(move || store.videos()).await
    }

    /// A stored video's record, or `None`.
    pub async fn find(&self, video_id: &str) -> Result<Option<VideoRecord>> {
        validate_video_id(video_id)?;
        self.on_store(video_id, |s, id| s.video(id)).await
    }

    /// `tenant`'s video `video_id`; another tenant's is NOT_FOUND like one that does not
    /// exist (ids say nothing about other tenants).
    pub async fn owned(&self, tenant: &str, video_id: &str) -> Result<VideoRecord> {
        validate_video_id(video_id)?;
        let tenant = tenant.to_string();
        self.on_store(video_id, move |s, id| s.video_of(&tenant, id))
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "no video with id {video_id} (see `reelforge videos list`)"
                ))
            })
    }

    /// Checks that every id is one of `tenant`'s videos.
    pub async fn owned_all(&self, tenant: &str, video_ids: &[String]) -> Result<()> {
        for id in video_ids {
            self.owned(tenant, id).await?;
        }
        Ok(())
    }

    pub async fn video(
        &self,
        tenant: &str,
        video_id: &str,
        include_signals: bool,
    ) -> Result<VideoDetail> {
        validate_video_id(video_id)?;
        let store = self.store.clone();
        let id = video_id.to_string();
        let tenant = tenant.to_string();
        blocking(move || {
            let video = store
                .video_of(&tenant, &id)?
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
                sounds: store.sounds(&id)?,
                sights: store.sights(&id)?,
                subtitles: store.subtitles(&id)?,
                embedding_counts: store.embedding_counts(&id)?,
                video,
            })
        })
        .await
    }

    /// The signals, cuts and transcript of a stored video, or `None` when it is gone.
    pub async fn material(&self, video_id: &str) -> Result<Option<VideoMaterial>> {
        let (store, id) = (self.store.clone(), video_id.to_string());
        blocking(move || {
            let Some(video) = store.video(&id)? else {
                return Ok(None);
            };
            let analyses = store.slices(&id)?;
            let cut_points_ms = analyses
                .iter()
                .flat_map(|s| s.cut_points_ms.iter().copied())
                .collect();
            Ok(Some(VideoMaterial {
                windows: store.signals(&id)?,
                transcript: store.transcript(&id)?,
                sounds: store.sounds(&id)?,
                sights: store.sights(&id)?,
                cut_points_ms,
                analyses,
                video,
            }))
        })
        .await
    }

    /// A video's slice analyses (its live generation).
    pub async fn slices(&self, video_id: &str) -> Result<Vec<SliceAnalysis>> {
        self.on_store(video_id, |s, id| s.slices(id)).await
    }

    /// A video's transcript, in time order.
    pub async fn transcript(&self, video_id: &str) -> Result<Vec<TranscriptSegment>> {
        self.on_store(video_id, |s, id| s.transcript(id)).await
    }

    /// A video's thumbnails, in time order.
    pub async fn frames(&self, video_id: &str) -> Result<Vec<FrameRecord>> {
        self.on_store(video_id, |s, id| s.frames(id)).await
    }

    /// A video's vectors of one kind, by owner index.
    pub async fn embeddings(
        &self,
        video_id: &str,
        kind: EmbeddingKind,
    ) -> Result<Vec<(u32, Vec<f32>)>> {
        self.on_store(video_id, move |s, id| s.embeddings(id, kind))
            .await
    }

    /// Keeps vectors derived after ingest (clip video embeddings) with the video's live
    /// generation: a re-ingest or delete drops them with the rest.
    /// The video embeddings of a stored video's clips (`(clip index, start ms, end ms)`):
    /// those kept by an earlier request, the rest made now in one call (so a whole grid
    /// can go as one job) and kept with the video. A clip the model could not embed (a
    /// failed segment) has an empty vector: it matches nothing and is asked for again
    /// next time.
    pub async fn clip_video_vectors(
        &self,
        video: &VideoRecord,
        embedder: &dyn VideoEmbedder,
        clips: &[(u32, i64, i64)],
    ) -> Result<Vec<Vec<f32>>> {
        let id = &video.video_id;
        let dims = embedder.dimensions();
        let mut known: std::collections::HashMap<u32, Vec<f32>> = self
            .embeddings(id, EmbeddingKind::ClipVideo)
            .await?
            .into_iter()
            .filter(|(_, vector)| vector.len() == dims)
            .collect();
        let missing: Vec<&(u32, i64, i64)> =
            clips.iter().filter(|c| !known.contains_key(&c.0)).collect();
        if !missing.is_empty() {
            let spans: Vec<(i64, i64)> = missing.iter().map(|c| (c.1, c.2)).collect();
            let made = embedder
                .embed_spans(
                    std::path::Path::new(&video.source_path),
                    video.probe.duration_ms,
                    &spans,
                )
                .await?;
            let new: Vec<(u32, Vec<f32>)> = missing
                .iter()
                .map(|c| c.0)
                .zip(made)
                .filter(|(_, v)| !v.is_empty())
                .collect();
            known.extend(new.iter().cloned());
            self.keep_embeddings(id, EmbeddingKind::ClipVideo, new)
                .await?;
        }
        Ok(clips
            .iter()
            .map(|c| known.get(&c.0).cloned().unwrap_or_default())
            .collect())
    }

    /// Every clip of a stored video's clip grid: (index, start ms, end ms).
    pub fn clip_grid(video: &VideoRecord) -> Vec<(u32, i64, i64)> {
        let (clip_ms, duration) = (video.clip_ms.max(1), video.probe.duration_ms);
        (0..(duration + clip_ms - 1) / clip_ms)
            .map(|i| (i as u32, i * clip_ms, ((i + 1) * clip_ms).min(duration)))
            .collect()
    }

    pub async fn keep_embeddings(
        &self,
        video_id: &str,
        kind: EmbeddingKind,
        vectors: Vec<(u32, Vec<f32>)>,
    ) -> Result<()> {
        self.on_store(video_id, move |s, id| {
            s.put_live_embeddings(id, kind, &vectors)
        })
        .await
    }

    /// A job's events from the start, following it if it still runs.
    pub async fn watch(&self, tenant: &str, job_id: &str) -> Result<JobEvents> {
        self.job(tenant, job_id).await?;
        self.jobs.watch(job_id).await
    }

    /// Adds each tenant's videos, the bytes of the sources uploaded to this server its
    /// videos keep, and its jobs that have not ended, to `usage`.
    pub async fn usage(&self, usage: &mut BTreeMap<String, TenantUsage>) -> Result<()> {
        for job in self.jobs.list().await? {
            if !job.state.is_final() {
                let u = usage.entry(job.tenant.clone()).or_default();
                u.count_running(job.key_id.as_deref());
            }
        }
        for video in self.videos().await? {
            let u = usage.entry(video.tenant.clone()).or_default();
            u.videos += 1;
            if std::path::Path::new(&video.source_path).starts_with(&self.media_dir) {
                u.uploaded_bytes += video.size_bytes.max(0) as u64;
            }
        }
        Ok(())
    }

    /// `tenant`'s job `job_id` (another tenant's is NOT_FOUND).
    pub async fn job(&self, tenant: &str, job_id: &str) -> Result<JobRecord> {
        let job = self.jobs.job(job_id).await?;
        if job.tenant != tenant {
            return Err(Error::not_found(format!(
                "no job with id {job_id} (see `reelforge jobs list`)"
            )));
        }
        Ok(job)
    }

    /// One page of the jobs in `states` (every state when empty), newest first, without
    /// their event logs.
    pub async fn list_jobs(
        &self,
        view: &TenantView,
        states: &[JobState],
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<JobRecord>> {
        let mut states = states.to_vec();
        states.sort();
        states.dedup();
        let page = PageRequest::parse(
            page_size,
            page_token,
            &format!("tenant={view} states={states:?}"),
        )?;
        let mut jobs = self.jobs.list().await?;
        jobs.retain(|j| view.sees(&j.tenant) && (states.is_empty() || states.contains(&j.state)));
        Ok(page.cut(jobs, |j| {
            format!("{}\n{}", newest_first(j.created_unix_ms), j.job_id)
        }))
    }

    /// One page of the stored videos that `filter` selects, newest first.
    pub async fn list_videos(
        &self,
        view: &TenantView,
        filter: &VideoFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<VideoRecord>> {
        let filter = filter.checked()?;
        let page = PageRequest::parse(
            page_size,
            page_token,
            &format!("tenant={view} {}", filter.canonical()),
        )?;
        let mut videos = self.videos().await?;
        videos.retain(|v| view.sees(&v.tenant) && filter.selects(v));
        Ok(page.cut(videos, |v| {
            format!("{}\n{}", newest_first(v.ingested_at_unix_ms), v.video_id)
        }))
    }

    /// Cancels a queued or running job and waits for it to stop.
    pub async fn cancel_job(&self, tenant: &str, job_id: &str) -> Result<JobRecord> {
        self.job(tenant, job_id).await?;
        self.jobs.cancel(job_id).await
    }

    /// Deletes a video, its records, its search documents and the files the server made
    /// for it (never a server-side source file, which belongs to its owner).
    pub async fn delete_video(&self, tenant: &str, video_id: &str) -> Result<u64> {
        self.owned(tenant, video_id).await?;
        if let Some(h) = self.jobs.running_for(JobKind::Ingest, video_id) {
            return Err(Error::FailedPrecondition(format!(
                "job {} is ingesting this video; cancel it first (reelforge jobs cancel {})",
                h.id(),
                h.id()
            )));
        }
        let store = self.store.clone();
        let id = video_id.to_string();
        let removed = blocking(move || store.delete_video(&id)).await?;
        self.search.remove_video(video_id).await?;
        let media_dir = self.media_dir.join(video_id);
        match tokio::fs::remove_dir_all(&media_dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("could not remove {}: {e}", media_dir.display()),
        }
        Ok(removed)
    }

    /// Stored videos whose text vectors another embedder (or size) made than the
    /// configured one.
    pub async fn stale_text_vectors(&self) -> Result<Vec<VideoRecord>> {
        let name = self.text_embedder.name().to_string();
        let dims = self.text_embedder.dimensions() as u32;
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
                self.text_embedder.name(),
                self.text_embedder.dimensions(),
                v.text_embedder
            )));
        }
        Ok(())
    }

    /// Brings the search index in line with the store (see `Search::reconcile`).
    pub async fn reconcile_search(&self) -> Result<(usize, usize)> {
        self.search.reconcile().await
    }
}
