//! Bedrock Data Automation results as ingest: a `result.json` imported for a stored video
//! (or as a video record of its own), and the configured project run on a stored video as
//! a job (`start_bda`: progress events, watchable, cancellable).

use std::path::PathBuf;
use std::sync::Arc;

use reelforge_core::error::{Error, Result};
use reelforge_core::ids::validate_video_id;
use reelforge_models::bedrock::data_automation::BdaProgress;
use reelforge_search::{bda, DocKind};
use sha2::{Digest, Sha256};

use super::Ingest;
use crate::jobs::{IngestSink, JobHandle};
use crate::store::{
    now_unix_ms, tenant_video_id, IngestEvent, JobKind, JobRecord, JobState, VideoRecord,
};
use crate::util::blocking;

/// The record of a video known only from a BDA result: no media on this server.
fn bda_video_record(
    tenant: &str,
    video_id: &str,
    sha256: &str,
    asset: &bda::BdaAsset,
) -> VideoRecord {
    VideoRecord {
        video_id: video_id.to_string(),
        tenant: tenant.to_string(),
        filename: asset.filename.clone(),
        source_path: asset.source.clone(),
        size_bytes: 0,
        sha256: sha256.to_string(),
        probe: reelforge_media::ProbeRecord {
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
            .find(|d| d.kind == DocKind::VideoSummary)
            .map(|d| d.text.clone())
            .unwrap_or_default(),
    }
}

impl Ingest {
    /// Starts the configured Bedrock Data Automation project on a stored video as a job
    /// (progress events as it runs; its documents imported for the video at the end). A
    /// run already going for the video is joined, not paid for twice.
    pub async fn start_bda(
        self: &Arc<Self>,
        tenant: &str,
        key_id: Option<String>,
        video_id: &str,
    ) -> Result<Arc<JobHandle>> {
        self.check_accepting()?;
        validate_video_id(video_id)?;
        let bda = self.providers.data_automation.clone().ok_or_else(|| {
            Error::FailedPrecondition(
                "no Bedrock Data Automation project is configured: set \
                 models.bedrock.data_automation_project_arn, data_automation_profile_arn and s3_uri"
                    .into(),
            )
        })?;
        if let Some(running) = self.jobs.running_for(JobKind::Bda, video_id) {
            return Ok(running);
        }
        let store = self.store.clone();
        let id = video_id.to_string();
        let owner = tenant.to_string();
        let video = blocking(move || store.video_of(&owner, &id))
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "no video with id {video_id} (see `reelforge videos list`)"
                ))
            })?;
        let source = PathBuf::from(&video.source_path);
        if !source.is_file() {
            return Err(Error::FailedPrecondition(format!(
                "video {video_id} has no source file on the server ({}); ingest it again",
                video.source_path
            )));
        }
        let handle = JobHandle::new(JobRecord {
            job_id: uuid::Uuid::new_v4().to_string(),
            tenant: video.tenant.clone(),
            key_id,
            kind: JobKind::Bda,
            video_id: video.video_id.clone(),
            filename: video.filename.clone(),
            state: JobState::Queued,
            error: None,
            slices_done: 0,
            slices_total: 0,
            created_unix_ms: now_unix_ms(),
            finished_unix_ms: None,
            events: Vec::new(),
            resume: None,
        });
        if let Some(other) = self.jobs.register(&handle) {
            return Ok(other);
        }
        handle.emit(IngestEvent::Accepted {
            video_id: video.video_id.clone(),
            filename: video.filename.clone(),
            slices: Vec::new(),
            already_ingested: false,
        });
        if let Err(e) = self.jobs.persist(&handle).await {
            self.jobs.unregister(&handle.id());
            return Err(e);
        }
        let (engine, job) = (self.clone(), handle.clone());
        let tenant = video.tenant.clone();
        self.tasks.spawn(reelforge_models::bedrock::telemetry::for_tenant(tenant, async move {
            job.update(|r| r.state = JobState::Running);
            let progress = |p: BdaProgress| {
                let (stage, detail, elapsed_ms) = match p {
                    BdaProgress::Uploaded { uri } => ("uploaded", uri, 0),
                    BdaProgress::Submitted { invocation_arn } => ("submitted", invocation_arn, 0),
                    BdaProgress::Waiting { status, elapsed_ms } => {
                        ("running", status, elapsed_ms)
                    }
                    BdaProgress::Reading { uri } => ("reading", uri, 0),
                };
                job.emit(IngestEvent::Bda {
                    stage: stage.to_string(),
                    detail,
                    elapsed_ms,
                });
            };
            let work = async {
                let json = bda.run(&source, &progress).await?;
                engine
                    .import_bda(&video.tenant, json, Some(video.video_id.clone()))
                    .await
            };
            let outcome = tokio::select! {
                r = work => r,
                _ = job.cancel.cancelled() => Err(Error::Cancelled(
                    "cancelled by request (what was staged in S3 may be left for its lifecycle rule)".into(),
                )),
            };
            match outcome {
                Ok((video_id, documents, created)) => {
                    job.emit(IngestEvent::BdaImported {
                        video_id,
                        documents: documents as u32,
                        created,
                    });
                    job.finish(JobState::Succeeded, None);
                }
                Err(e) => super::fail(&job, e),
            }
            engine.close(&job).await;
        }));
        Ok(handle)
    }

    /// Imports a Bedrock Data Automation result (`result.json`) for `video_id`, or as a
    /// video record of its own (id from the JSON's sha256). Validates everything first;
    /// re-importing replaces the documents imported before. Returns the video id, the
    /// number of imported documents and whether a new record was made.
    pub async fn import_bda(
        &self,
        tenant: &str,
        json: Vec<u8>,
        video_id: Option<String>,
    ) -> Result<(String, usize, bool)> {
        self.check_accepting()?;
        let sha256 = hex::encode(Sha256::digest(&json));
        let asset = blocking(move || bda::parse(&json)).await?;
        if let Some(id) = &video_id {
            validate_video_id(id)?;
            if let Some(h) = self.jobs.running_for(JobKind::Ingest, id) {
                return Err(Error::FailedPrecondition(format!(
                    "job {} is ingesting this video; import when it is done",
                    h.id()
                )));
            }
        }
        let store = self.store.clone();
        let docs = asset.docs.clone();
        let documents = docs.len();
        let tenant = tenant.to_string();
        let (id, created) = blocking(move || {
            let (id, created) = match video_id {
                Some(id) => {
                    if store.video_of(&tenant, &id)?.is_none() {
                        return Err(Error::not_found(format!(
                            "no video with id {id} (see `reelforge videos list`); leave \
                             video_id empty to import the result as a video of its own"
                        )));
                    }
                    (id, false)
                }
                None => {
                    let id = tenant_video_id(&tenant, &sha256);
                    if store.video(&id)?.is_some() {
                        (id, false)
                    } else {
                        let writer = store.begin_video(&id)?;
                        writer.commit(bda_video_record(&tenant, &id, &sha256, &asset))?;
                        (id, true)
                    }
                }
            };
            store.put_imported(&id, &docs)?;
            store.flush()?;
            Ok((id, created))
        })
        .await?;
        self.search.index_video(&id).await?;
        Ok((id, documents, created))
    }
}
