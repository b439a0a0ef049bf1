//! Engine records to proto messages and back.

use reelforge_proto::v1 as pb;

use reelforge_engine::catalog::VideoDetail;
use reelforge_engine::ingest::IngestOptions;
use reelforge_engine::store::{FrameRecord, IngestEvent, JobRecord, JobState, VideoRecord};
use reelforge_media::{ProbeRecord, StreamRecord};
use reelforge_models::analysis::{ModelUsage, SegmentCandidate, SignalWindow, SliceAnalysis};
use reelforge_models::vision;
use reelforge_models::TranscriptSegment;

use reelforge_core::Error;

use super::status::code_for;
use crate::auth::Caller;
use crate::codes::code_name;

pub fn options(caller: &Caller, o: Option<pb::IngestOptions>) -> IngestOptions {
    let pb::IngestOptions {
        force,
        slice_seconds,
        clip_seconds,
        language,
    } = o.unwrap_or_default();
    IngestOptions {
        tenant: caller.tenant.clone(),
        key_id: caller.key_id.clone(),
        force,
        slice_seconds,
        clip_seconds,
        language,
    }
}

pub fn probe(p: &ProbeRecord) -> pb::ProbeInfo {
    pb::ProbeInfo {
        duration_ms: p.duration_ms,
        format_name: p.format_name.clone(),
        size_bytes: p.size_bytes,
        bit_rate: p.bit_rate,
        streams: p.streams.iter().map(stream).collect(),
        keyframe_count: p.keyframes_ms.len() as i32,
    }
}

fn stream(s: &StreamRecord) -> pb::StreamInfo {
    pb::StreamInfo {
        index: s.index,
        kind: s.kind.clone(),
        codec: s.codec.clone(),
        width: s.width,
        height: s.height,
        fps: s.fps,
        sample_rate: s.sample_rate,
        channels: s.channels,
        language: s.language.clone(),
    }
}

pub fn slice(s: &SliceAnalysis) -> pb::SliceAnalysis {
    pb::SliceAnalysis {
        index: s.index,
        start_ms: s.start_ms,
        end_ms: s.end_ms,
        highlight_score: s.highlight_score,
        motion_mean: s.motion_mean,
        loudness_mean_db: s.loudness_mean_db,
        cut_points_ms: s.cut_points_ms.clone(),
        segments: s.segments.iter().map(segment).collect(),
        description: s.description.clone(),
        analyzer: s.analyzer.clone(),
        keyframe_aligned: s.keyframe_aligned,
        usage: s.usage.map(usage),
        error: s.error.clone().unwrap_or_default(),
    }
}

pub fn usage(u: ModelUsage) -> pb::ModelUsage {
    pb::ModelUsage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        bytes_sent: u.bytes_sent,
        source_bytes: u.source_bytes,
    }
}

fn segment(s: &SegmentCandidate) -> pb::SegmentCandidate {
    pb::SegmentCandidate {
        start_ms: s.start_ms,
        end_ms: s.end_ms,
        score: s.score,
        description: s.description.clone(),
        priority: u32::from(s.priority()),
        reason: s.reason.clone(),
    }
}

fn signal(w: &SignalWindow) -> pb::SignalWindow {
    pb::SignalWindow {
        start_ms: w.start_ms,
        loudness_db: w.loudness_db,
        motion: w.motion,
        scene_cut: w.scene_cut,
    }
}

fn frame(f: &FrameRecord) -> pb::Frame {
    pb::Frame {
        t_ms: f.t_ms,
        path: f.path.clone(),
    }
}

pub fn video_summary(v: &VideoRecord) -> pb::VideoSummary {
    pb::VideoSummary {
        video_id: v.video_id.clone(),
        filename: v.filename.clone(),
        duration_ms: v.probe.duration_ms,
        size_bytes: v.size_bytes,
        content_sha256: v.sha256.clone(),
        slice_count: v.slice_count as i32,
        ingested_at_unix_ms: v.ingested_at_unix_ms,
        source_path: v.source_path.clone(),
        analyzer: v.analyzer.clone(),
        summary: v.summary.clone(),
        transcriber: v.transcriber.clone(),
        text_embedder: v.text_embedder.clone(),
        tenant: v.tenant.clone(),
    }
}

pub fn transcript_segment(s: &TranscriptSegment) -> pb::TranscriptSegment {
    pb::TranscriptSegment {
        start_ms: s.start_ms,
        end_ms: s.end_ms,
        text: s.text.clone(),
        avg_logprob: s.avg_logprob,
        no_speech_prob: s.no_speech_prob,
        language: s.language.clone(),
    }
}

pub fn video(d: &VideoDetail) -> pb::Video {
    pb::Video {
        summary: Some(video_summary(&d.video)),
        probe: Some(probe(&d.video.probe)),
        slices: d.slices.iter().map(slice).collect(),
        signals: d.signals.iter().map(signal).collect(),
        frames: d.frames.iter().map(frame).collect(),
        embedding_counts: d
            .embedding_counts
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        transcript: d.transcript.iter().map(transcript_segment).collect(),
        subtitles: d
            .subtitles
            .iter()
            .map(|s| pb::TranscriptSegment {
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                text: s.text.clone(),
                ..Default::default()
            })
            .collect(),
        sounds: d
            .sounds
            .iter()
            .map(|e| pb::SoundEvent {
                start_ms: e.start_ms,
                end_ms: e.end_ms,
                label: e.label.clone(),
                score: e.score,
            })
            .collect(),
        texts: vision::text_spans(&d.sights)
            .into_iter()
            .map(|(text, start_ms, end_ms)| pb::SeenText {
                start_ms,
                end_ms,
                text,
            })
            .collect(),
        scenes: vision::scene_spans(&d.sights)
            .into_iter()
            .map(|s| pb::SceneTag {
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                label: s.label,
                score: s.score,
            })
            .collect(),
    }
}

/// The job states a listing asks for, or which entry of `states` is not one.
pub fn job_states(states: &[i32]) -> Result<Vec<JobState>, Error> {
    states
        .iter()
        .enumerate()
        .map(|(i, &s)| match pb::JobState::try_from(s) {
            Ok(pb::JobState::Queued) => Ok(JobState::Queued),
            Ok(pb::JobState::Running) => Ok(JobState::Running),
            Ok(pb::JobState::Succeeded) => Ok(JobState::Succeeded),
            Ok(pb::JobState::Failed) => Ok(JobState::Failed),
            Ok(pb::JobState::Cancelled) => Ok(JobState::Cancelled),
            Ok(pb::JobState::Interrupted) => Ok(JobState::Interrupted),
            _ => Err(Error::invalid(format!(
                "states[{i}] = {s} is not a job state; use QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED or INTERRUPTED"
            ))),
        })
        .collect()
}

/// A listing's filter on ingest time: 0 means no bound.
pub fn time_bound(unix_ms: i64) -> Option<i64> {
    (unix_ms != 0).then_some(unix_ms)
}

pub fn job(j: &JobRecord) -> pb::Job {
    let state = match j.state {
        JobState::Queued => pb::JobState::Queued,
        JobState::Running => pb::JobState::Running,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
        JobState::Interrupted => pb::JobState::Interrupted,
    };
    pb::Job {
        job_id: j.job_id.clone(),
        video_id: j.video_id.clone(),
        filename: j.filename.clone(),
        state: state as i32,
        error: j.error.clone().unwrap_or_default(),
        slices_done: j.slices_done,
        slices_total: j.slices_total,
        created_unix_ms: j.created_unix_ms,
        finished_unix_ms: j.finished_unix_ms.unwrap_or(0),
        kind: j.kind.name().to_string(),
        tenant: j.tenant.clone(),
    }
}

pub fn event(job_id: &str, seq: u64, e: &IngestEvent) -> pb::IngestEvent {
    use pb::ingest_event::Event;
    let event = match e {
        IngestEvent::Accepted {
            video_id,
            filename,
            slices,
            already_ingested,
        } => Event::Accepted(pb::JobAccepted {
            video_id: video_id.clone(),
            filename: filename.clone(),
            slice_count: slices.len() as u32,
            already_ingested: *already_ingested,
            slices: slices
                .iter()
                .map(|&(start_ms, end_ms)| pb::TimeRange { start_ms, end_ms })
                .collect(),
        }),
        IngestEvent::Probe { probe: p } => Event::Probe(probe(p)),
        IngestEvent::SliceStarted {
            index,
            start_ms,
            end_ms,
        } => Event::SliceStarted(pb::SliceStarted {
            index: *index,
            start_ms: *start_ms,
            end_ms: *end_ms,
        }),
        IngestEvent::Progress {
            position_ms,
            duration_ms,
        } => Event::Progress(pb::DecodeProgress {
            position_ms: *position_ms,
            duration_ms: *duration_ms,
        }),
        IngestEvent::SliceFinished { analysis } => Event::SliceFinished(pb::SliceFinished {
            analysis: Some(slice(analysis)),
        }),
        IngestEvent::SliceTranscript {
            index,
            segments,
            skipped_silent_ms,
            decoded_ms,
        } => Event::SliceTranscript(pb::SliceTranscript {
            index: *index,
            segments: segments.iter().map(transcript_segment).collect(),
            skipped_silent_ms: *skipped_silent_ms,
            decoded_ms: *decoded_ms,
        }),
        IngestEvent::EmbeddingsStored {
            kind,
            count,
            dimensions,
        } => Event::EmbeddingsStored(pb::EmbeddingsStored {
            kind: kind.clone(),
            count: *count,
            dimensions: *dimensions,
        }),
        IngestEvent::Done {
            video_id,
            already_ingested,
            slice_count,
            analysis_seconds,
            realtime_factor,
        } => Event::Done(pb::IngestDone {
            video_id: video_id.clone(),
            already_ingested: *already_ingested,
            slice_count: *slice_count,
            analysis_seconds: *analysis_seconds,
            realtime_factor: *realtime_factor,
        }),
        IngestEvent::Failed { kind, message } => Event::Error(pb::IngestError {
            code: code_name(code_for(*kind)).to_string(),
            message: message.clone(),
        }),
        IngestEvent::Bda {
            stage,
            detail,
            elapsed_ms,
        } => Event::Bda(pb::BdaProgress {
            stage: stage.clone(),
            detail: detail.clone(),
            elapsed_ms: *elapsed_ms,
        }),
        IngestEvent::BdaImported {
            video_id,
            documents,
            created,
        } => Event::BdaImported(pb::BdaImported {
            video_id: video_id.clone(),
            documents: *documents,
            created: *created,
        }),
        IngestEvent::Resumed {
            from_slice,
            slices_kept,
            reason,
        } => Event::Resumed(pb::JobResumed {
            from_slice: *from_slice,
            slices_kept: *slices_kept,
            reason: reason.clone(),
        }),
    };
    pb::IngestEvent {
        job_id: job_id.to_string(),
        seq,
        event: Some(event),
    }
}
