//! `reelforge.v1.Ingest`.

use std::pin::Pin;
use std::sync::Arc;

use reelforge_proto::v1 as pb;
use reelforge_proto::v1::upload_chunk::Part;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use reelforge_engine::catalog::VideoFilter;
use reelforge_engine::ingest::Upload;
use reelforge_engine::jobs::JobEvents;
use reelforge_engine::store::{IngestEvent, JobState};
use reelforge_engine::{Catalog, Ingest, Limits};

use super::convert;
use super::status::{bounded, code_for, to_status};
use crate::auth::{audit_target, Caller};

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::IngestEvent, Status>> + Send>>;

/// Events buffered per watcher before the job's log is read more slowly.
const WATCH_BUFFER: usize = 32;

/// `Ingest` serves ingest and BDA imports; videos and jobs come from the catalog.
/// An upload's start, over gRPC or the web page's HTTP body alike: audited, admitted
/// against the caller's job and storage limits, then received by the engine.
pub(super) async fn begin_upload(
    ingest: &Arc<Ingest>,
    limits: &Limits,
    caller: &Caller,
    filename: &str,
    expected: Option<u64>,
    options: Option<pb::IngestOptions>,
) -> reelforge_core::Result<Upload> {
    audit_target(format!("upload {filename}"));
    limits
        .admit_job(&caller.admission(), expected.unwrap_or(0))
        .await?;
    ingest
        .begin_upload(filename, expected, convert::options(caller, options))
        .await
}

pub struct IngestApi {
    ingest: Arc<Ingest>,
    catalog: Arc<Catalog>,
    limits: Arc<Limits>,
}

impl IngestApi {
    pub fn new(ingest: Arc<Ingest>, catalog: Arc<Catalog>, limits: Arc<Limits>) -> Self {
        IngestApi {
            ingest,
            catalog,
            limits,
        }
    }
}

/// Streams a job's events to one client. The job does not depend on the client: when the
/// client goes away, only this forwarding stops.
fn stream_job(mut events: JobEvents) -> EventStream {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    tokio::spawn(async move {
        let job_id = events.job_id().to_string();
        while let Some((seq, event)) = events.next().await {
            let failure = match &event {
                IngestEvent::Failed { kind, message } => {
                    Some(Status::new(code_for(*kind), bounded(message)))
                }
                _ => None,
            };
            if tx
                .send(Ok(convert::event(&job_id, seq, &event)))
                .await
                .is_err()
            {
                return;
            }
            if let Some(status) = failure {
                let _ = tx.send(Err(status)).await;
                return;
            }
        }
        // A job interrupted by a shutdown has no `Failed` event (its log goes on when it
        // resumes): say so, so the stream does not look finished.
        if let (JobState::Interrupted, error) = events.outcome() {
            let message = error.unwrap_or_else(|| "the job was interrupted".into());
            let _ = tx
                .send(Err(Status::unavailable(bounded(&format!(
                    "{message}; watch job {job_id} again then"
                )))))
                .await;
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

fn required<'a>(value: &'a str, field: &str) -> Result<&'a str, Status> {
    if value.trim().is_empty() {
        Err(Status::invalid_argument(format!("{field} is required")))
    } else {
        Ok(value)
    }
}

#[tonic::async_trait]
impl pb::ingest_server::Ingest for IngestApi {
    type IngestPathStream = EventStream;
    type IngestUploadStream = EventStream;
    type WatchJobStream = EventStream;
    type RunBdaStream = EventStream;

    async fn ingest_path(
        &self,
        request: Request<pb::IngestPathRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = Caller::of(&request);
        let pb::IngestPathRequest { path, options } = request.into_inner();
        audit_target(format!("path {path}"));
        self.limits
            .admit_job(&caller.admission(), 0)
            .await
            .map_err(to_status)?;
        let handle = self
            .ingest
            .ingest_path(&path, convert::options(&caller, options))
            .await
            .map_err(to_status)?;
        Ok(Response::new(stream_job(JobEvents::live(handle))))
    }

    async fn ingest_upload(
        &self,
        request: Request<Streaming<pb::UploadChunk>>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = Caller::of(&request);
        let mut chunks = request.into_inner();
        let header =
            match chunks.message().await?.and_then(|c| c.part) {
                Some(Part::Header(h)) => h,
                _ => return Err(Status::invalid_argument(
                    "the first upload message must be an UploadHeader (filename, size, options)",
                )),
            };
        let pb::UploadHeader {
            filename,
            size_bytes,
            options,
        } = header;
        if size_bytes < 0 {
            audit_target(format!("upload {filename}"));
            return Err(Status::invalid_argument(
                "UploadHeader.size_bytes must not be negative",
            ));
        }
        let expected = (size_bytes > 0).then_some(size_bytes as u64);
        let mut upload = begin_upload(
            &self.ingest,
            &self.limits,
            &caller,
            &filename,
            expected,
            options,
        )
        .await
        .map_err(to_status)?;
        while let Some(chunk) = chunks.message().await? {
            match chunk.part {
                Some(Part::Data(data)) => upload.write(&data).await.map_err(to_status)?,
                Some(Part::Header(_)) => {
                    return Err(Status::invalid_argument(
                        "only the first upload message may be an UploadHeader",
                    ))
                }
                None => {}
            }
        }
        let handle = upload.finish().await.map_err(to_status)?;
        Ok(Response::new(stream_job(JobEvents::live(handle))))
    }

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let tenant = Caller::of(&request).tenant;
        let pb::WatchJobRequest { job_id } = request.into_inner();
        let events = self
            .catalog
            .watch(&tenant, required(&job_id, "job_id")?)
            .await
            .map_err(to_status)?;
        Ok(Response::new(stream_job(events)))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let tenant = Caller::of(&request).tenant;
        let pb::GetJobRequest { job_id } = request.into_inner();
        let job = self
            .catalog
            .job(&tenant, required(&job_id, "job_id")?)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::job(&job)))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let caller = Caller::of(&request);
        let pb::ListJobsRequest {
            page_size,
            page_token,
            states,
            tenant,
        } = request.into_inner();
        let view = caller.view(&tenant).map_err(to_status)?;
        let states = convert::job_states(&states).map_err(to_status)?;
        let page = self
            .catalog
            .list_jobs(&view, &states, page_size, &page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: page.items.iter().map(convert::job).collect(),
            next_page_token: page.next_token,
        }))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let tenant = Caller::of(&request).tenant;
        let pb::CancelJobRequest { job_id } = request.into_inner();
        audit_target(format!("job {job_id}"));
        let job = self
            .catalog
            .cancel_job(&tenant, required(&job_id, "job_id")?)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::job(&job)))
    }

    async fn list_videos(
        &self,
        request: Request<pb::ListVideosRequest>,
    ) -> Result<Response<pb::ListVideosResponse>, Status> {
        let caller = Caller::of(&request);
        let pb::ListVideosRequest {
            page_size,
            page_token,
            name_contains,
            ingested_after_unix_ms,
            ingested_before_unix_ms,
            tenant,
        } = request.into_inner();
        let view = caller.view(&tenant).map_err(to_status)?;
        let filter = VideoFilter {
            name_contains: Some(name_contains),
            ingested_after_unix_ms: convert::time_bound(ingested_after_unix_ms),
            ingested_before_unix_ms: convert::time_bound(ingested_before_unix_ms),
        };
        let page = self
            .catalog
            .list_videos(&view, &filter, page_size, &page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListVideosResponse {
            videos: page.items.iter().map(convert::video_summary).collect(),
            next_page_token: page.next_token,
        }))
    }

    async fn get_video(
        &self,
        request: Request<pb::GetVideoRequest>,
    ) -> Result<Response<pb::Video>, Status> {
        let tenant = Caller::of(&request).tenant;
        let pb::GetVideoRequest {
            video_id,
            include_signals,
        } = request.into_inner();
        let detail = self
            .catalog
            .video(&tenant, required(&video_id, "video_id")?, include_signals)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::video(&detail)))
    }

    async fn delete_video(
        &self,
        request: Request<pb::DeleteVideoRequest>,
    ) -> Result<Response<pb::DeleteVideoResponse>, Status> {
        let tenant = Caller::of(&request).tenant;
        let pb::DeleteVideoRequest { video_id } = request.into_inner();
        audit_target(format!("video {video_id}"));
        let removed = self
            .catalog
            .delete_video(&tenant, required(&video_id, "video_id")?)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteVideoResponse {
            video_id,
            records_removed: removed,
        }))
    }

    async fn reanalyse_video(
        &self,
        request: Request<pb::ReanalyseVideoRequest>,
    ) -> Result<Response<pb::ReanalyseVideoResponse>, Status> {
        let tenant = Caller::of(&request).tenant;
        let pb::ReanalyseVideoRequest {
            video_id,
            failed_only,
        } = request.into_inner();
        audit_target(format!("video {video_id}"));
        let r = self
            .ingest
            .reanalyse(&tenant, required(&video_id, "video_id")?, failed_only)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ReanalyseVideoResponse {
            video_id: r.video_id,
            slices_given: r.given,
            slices_replaced: r.replaced,
            failed: r
                .failed
                .into_iter()
                .map(|(index, error)| pb::SliceFailure { index, error })
                .collect(),
        }))
    }

    async fn run_bda(
        &self,
        request: Request<pb::RunBdaRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = Caller::of(&request);
        let pb::RunBdaRequest { video_id } = request.into_inner();
        audit_target(format!("video {video_id}"));
        self.limits
            .admit_job(&caller.admission(), 0)
            .await
            .map_err(to_status)?;
        let handle = self
            .ingest
            .start_bda(
                &caller.tenant,
                caller.key_id.clone(),
                required(&video_id, "video_id")?,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(stream_job(JobEvents::live(handle))))
    }

    async fn import_bda(
        &self,
        request: Request<pb::ImportBdaRequest>,
    ) -> Result<Response<pb::ImportBdaResponse>, Status> {
        let tenant = Caller::of(&request).tenant;
        let pb::ImportBdaRequest {
            result_json,
            video_id,
        } = request.into_inner();
        audit_target(format!("video {video_id}"));
        let video_id = (!video_id.is_empty()).then_some(video_id);
        let (video_id, documents, created) = self
            .ingest
            .import_bda(&tenant, result_json, video_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ImportBdaResponse {
            video_id,
            documents: documents as u32,
            created,
        }))
    }
}
