//! What an ingest job reports, in order, and the sink it reports to. The job manager's
//! sink keeps a replayable log; tests collect events in a Vec.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::analysis::SliceAnalysis;
use crate::error::ErrorKind;
use crate::media::ProbeRecord;
use crate::models::TranscriptSegment;

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
}

/// Receives a job's events as they happen (push-style, like ripgrep's `Sink`).
pub trait IngestSink: Send + Sync {
    fn emit(&self, event: IngestEvent);
}

/// Collects events in memory, for tests and benchmarks.
#[derive(Default)]
pub struct CollectSink(pub Mutex<Vec<IngestEvent>>);

impl IngestSink for CollectSink {
    fn emit(&self, event: IngestEvent) {
        self.0.lock().expect("sink poisoned").push(event);
    }
}

impl CollectSink {
    pub fn events(&self) -> Vec<IngestEvent> {
        self.0.lock().expect("sink poisoned").clone()
    }
}
