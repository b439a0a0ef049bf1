//! Records stored in sled (JSON values): what a video, a frame, a text document, a job and
//! its events look like on disk.

use std::path::PathBuf;

use reelforge_core::error::ErrorKind;
use reelforge_media::ProbeRecord;
use reelforge_models::analysis::{Language, SliceAnalysis};
use reelforge_models::TranscriptSegment;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The tenant of records written before tenants existed.
pub fn default_tenant() -> String {
    crate::DEFAULT_TENANT.to_string()
}

/// What a tenant's copy of content is known by: the file's SHA-256 for the default tenant
/// (ids stay what they were before tenants), else the SHA-256 of tenant and file hash, so
/// the same bytes uploaded by two tenants are two videos and one tenant's ids say nothing
/// about another's.
pub fn content_key(tenant: &str, sha256: &str) -> String {
    if tenant == crate::DEFAULT_TENANT {
        sha256.to_string()
    } else {
        hex::encode(Sha256::digest(format!("{tenant}\n{sha256}").as_bytes()))
    }
}

/// The id of `tenant`'s video of the content with this SHA-256.
pub fn tenant_video_id(tenant: &str, sha256: &str) -> String {
    reelforge_core::ids::video_id_from_sha256(&content_key(tenant, sha256))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VideoRecord {
    pub video_id: String,
    /// Whose video it is: only keys of this tenant see it.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    pub filename: String,
    /// The file the server reads for cuts and renders: an uploaded copy under the data dir,
    /// or the original server-side path.
    pub source_path: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub probe: ProbeRecord,
    pub slice_ms: i64,
    /// Clip grid for matching: clip `i` covers `[i * clip_ms, min((i + 1) * clip_ms, duration))`.
    pub clip_ms: i64,
    pub slice_count: u32,
    pub analyzer: String,
    pub ingested_at_unix_ms: i64,
    /// Thumbnails directory of this ingest, under the data dir.
    pub thumbnails_dir: String,
    /// Which generation of video-owned records is this video's (see `store::VideoWriter`).
    pub generation: u32,
    /// The text embedder that made this video's `text` embeddings, and their size.
    #[serde(default)]
    pub text_embedder: String,
    #[serde(default)]
    pub text_dimensions: u32,
    /// The speech model that transcribed this video ("" when speech was not transcribed).
    #[serde(default)]
    pub transcriber: String,
    /// A few sentences on the whole video: its strongest moments and what is said.
    #[serde(default)]
    pub summary: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrameRecord {
    pub t_ms: i64,
    /// Absolute path of the JPEG.
    pub path: String,
}

/// A searchable text unit (e.g. a slice description) on a video's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DocRecord {
    /// e.g. "slice_description".
    pub source: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

/// A subtitle cue (from a sidecar file or a subtitle stream) on a video's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubtitleRecord {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The server stopped while the job was queued or running.
    Interrupted,
}

impl JobState {
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Analyse a video into the store.
    #[default]
    Ingest,
    /// Run Bedrock Data Automation on a stored video and import what it finds.
    Bda,
}

impl JobKind {
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Ingest => "ingest",
            JobKind::Bda => "bda",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobRecord {
    pub job_id: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The API key that started it (none: a server without keys, a watched source, a
    /// re-ingest); a key's `max_concurrent_jobs` counts its running ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default)]
    pub kind: JobKind,
    pub video_id: String,
    pub filename: String,
    pub state: JobState,
    pub error: Option<String>,
    pub slices_done: u32,
    pub slices_total: u32,
    pub created_unix_ms: i64,
    pub finished_unix_ms: Option<i64>,
    /// The job's full event log, so it can be replayed after a restart.
    pub events: Vec<IngestEvent>,
    /// What a job that has not ended needs to resume after a restart: its checked plan
    /// and the store generation it writes. Dropped once the job ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeRecord>,
}

/// What one tenant keeps and runs: the catalog counts videos and ingest jobs, the
/// highlights theirs (`Limits` checks it against the tenant's and each key's limits).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantUsage {
    pub videos: u64,
    /// Bytes of the sources uploaded to this server (files named on the server's disk
    /// are their owners').
    pub uploaded_bytes: u64,
    pub highlights: u64,
    /// Bytes of highlight outputs kept.
    pub output_bytes: u64,
    /// Ingest, BDA and highlight jobs that have not ended.
    pub jobs_running: usize,
    /// The running ones per API key that started them.
    pub running_by_key: std::collections::BTreeMap<String, usize>,
}

impl TenantUsage {
    /// Counts a job that has not ended, started by `key_id`.
    pub fn count_running(&mut self, key_id: Option<&str>) {
        self.jobs_running += 1;
        if let Some(key) = key_id {
            *self.running_by_key.entry(key.to_string()).or_default() += 1;
        }
    }
}

/// A job's plan as it was accepted, kept with the job until it ends so a restarted server
/// continues it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResumeRecord {
    pub prepared: PreparedIngest,
    /// The generation the job writes (`None` until it starts running).
    pub generation: Option<u32>,
}

/// A planned slice of a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedSlice {
    pub index: u32,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The slice starts on a keyframe (or at 0), so a stream-copy cut is exact.
    pub keyframe_aligned: bool,
}

/// A video that passed every check and is ready to analyse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedIngest {
    pub job_id: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    pub video_id: String,
    pub sha256: String,
    pub filename: String,
    pub size_bytes: u64,
    /// The file to read now.
    pub source: PathBuf,
    /// Where the source must live once committed (uploads move under the data dir);
    /// `None` keeps it where it is.
    pub keep_source_at: Option<PathBuf>,
    pub probe: ProbeRecord,
    pub slice_ms: i64,
    pub clip_ms: i64,
    pub slices: Vec<PlannedSlice>,
    /// Subtitles from sidecar files and subtitle streams, read before the job started.
    pub subtitles: Vec<SubtitleRecord>,
    /// The language spoken, when the request or `ingest.language` named one; `None`: the
    /// speech model tells per window.
    #[serde(default)]
    pub language: Option<String>,
    /// The language slices are described in (`ingest.description_language` when the job
    /// began).
    #[serde(default)]
    pub descriptions: Language,
}

/// What an ingest job reports, in order; kept with the job so it can be replayed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IngestEvent {
    Accepted {
        video_id: String,
        filename: String,
        /// Planned slices as (start_ms, end_ms).
        slices: Vec<(i64, i64)>,
        already_ingested: bool,
    },
    Probe {
        probe: ProbeRecord,
    },
    SliceStarted {
        index: u32,
        start_ms: i64,
        end_ms: i64,
    },
    Progress {
        position_ms: i64,
        duration_ms: i64,
    },
    SliceFinished {
        analysis: SliceAnalysis,
    },
    /// Speech transcribed with a slice (segments may start a little before the slice
    /// when a sentence ran across its start). Empty when the slice had no speech.
    SliceTranscript {
        index: u32,
        segments: Vec<TranscriptSegment>,
        skipped_silent_ms: i64,
        decoded_ms: i64,
    },
    EmbeddingsStored {
        kind: String,
        count: u32,
        dimensions: u32,
    },
    Done {
        video_id: String,
        already_ingested: bool,
        slice_count: u32,
        analysis_seconds: f64,
        realtime_factor: f64,
    },
    Failed {
        kind: ErrorKind,
        message: String,
    },
    /// A step of a Data Automation job (`uploaded`, `submitted`, `running`, `reading`),
    /// with what it concerns (an S3 address, the invocation ARN, the job's status).
    Bda {
        stage: String,
        detail: String,
        elapsed_ms: i64,
    },
    /// A Data Automation job's documents were imported (last before it succeeds).
    BdaImported {
        video_id: String,
        documents: u32,
        created: bool,
    },
    /// The server restarted while the job ran and continues it: slices before
    /// `from_slice` were analysed and stored before and are kept (not analysed again).
    Resumed {
        from_slice: u32,
        slices_kept: u32,
        reason: String,
    },
}

impl IngestEvent {
    /// The event that ends a job's log: it is reported before the job's final state is
    /// recorded.
    pub fn ends_job(&self) -> bool {
        matches!(
            self,
            IngestEvent::Done { .. } | IngestEvent::Failed { .. } | IngestEvent::BdaImported { .. }
        )
    }
}

pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
