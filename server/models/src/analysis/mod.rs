//! Slice analysis: the `VideoAnalyzer` trait (Nova implements it on Bedrock, see
//! `bedrock::nova`) and the offline default, `SignalAnalyzer`, which scores slices from
//! measured signals alone.

mod signal;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use signal::{caption_clip, SignalAnalyzer};

use reelforge_core::error::Result;
pub use reelforge_core::BoxFuture;

/// Measured signals of one fixed window of a video.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct SignalWindow {
    pub start_ms: i64,
    /// RMS loudness in dBFS; `media::signals::SILENCE_DB` for silence or no audio.
    pub loudness_db: f32,
    /// Mean motion energy of the window's analysis frames, 0..1.
    pub motion: f32,
    pub scene_cut: bool,
}

/// Running levels of the video before a slice, so an analyser can score change over time.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    pub loudness_db: f32,
    pub motion: f32,
    /// Number of windows the baseline has seen; 0 means none yet.
    pub windows: u32,
}

impl Baseline {
    /// No level seen yet.
    pub fn start() -> Self {
        Baseline {
            loudness_db: reelforge_media::signals::SILENCE_DB,
            motion: 0.0,
            windows: 0,
        }
    }

    /// Moves the running levels towards `windows` (an exponential average with a time
    /// constant of about 20 s of 0.5 s windows), after a slice has been analysed.
    pub fn absorb(&mut self, windows: &[SignalWindow]) {
        const ALPHA: f32 = reelforge_media::decode::AUDIO_WINDOW_MS as f32 / 20_000.0;
        for w in windows {
            if self.windows == 0 {
                self.loudness_db = w.loudness_db;
                self.motion = w.motion;
            } else {
                self.loudness_db += ALPHA * (w.loudness_db - self.loudness_db);
                self.motion += ALPHA * (w.motion - self.motion);
            }
            self.windows += 1;
        }
    }
}

/// The language an analyser writes its descriptions, reasons and captions in
/// (`highlights.language`, `ingest.description_language`, a highlight request's
/// `language`). Analyses stored before it was recorded are English.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Language {
    #[default]
    #[serde(rename = "en")]
    English,
    /// Simplified Chinese.
    #[serde(rename = "zh")]
    Chinese,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::English, Language::Chinese];

    pub fn code(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::Chinese => "zh",
        }
    }

    /// A language code as a caller writes it ("en", "zh", "zh-CN", "zh-Hans"); `field`
    /// names the setting or request field in the error.
    pub fn parse(code: &str, field: &str) -> reelforge_core::error::Result<Language> {
        let lower = code.trim().to_ascii_lowercase();
        match lower.split(['-', '_']).next().unwrap_or("") {
            "en" => Ok(Language::English),
            "zh" => Ok(Language::Chinese),
            _ => Err(reelforge_core::error::Error::invalid(format!(
                "{field} {code:?} is not a language descriptions are written in: use \"en\" \
                 (English) or \"zh\" (Chinese)"
            ))),
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// What an analyser gets for one slice.
pub struct SliceInput<'a> {
    pub source: &'a Path,
    pub video_duration_ms: i64,
    pub index: u32,
    pub start_ms: i64,
    pub end_ms: i64,
    pub windows: &'a [SignalWindow],
    pub cut_points_ms: &'a [i64],
    pub baseline: Baseline,
    /// The language to describe it in.
    pub language: Language,
    /// What the sound tagger heard in the slice (empty without one, or without sound).
    pub sounds: &'a [crate::sound::SoundEvent],
    /// What the scene tagger and the text reader saw in the video's pictures (the
    /// slice's, or the whole video's: readers keep those in the slice; empty without
    /// them).
    pub sights: &'a [crate::vision::Sight],
}

/// A highlight candidate inside a slice, on the video's absolute timeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentCandidate {
    pub start_ms: i64,
    pub end_ms: i64,
    pub score: f32,
    /// 1 (must have) .. 3 (nice to have), as the analyser ranks it (a VLM says it; the
    /// offline analyser derives it from the score). 0 in analyses stored before analysers
    /// gave one: read as the score's priority.
    #[serde(default)]
    pub priority: u8,
    pub description: String,
    /// Why the analyser chose it (a VLM's highlight dimensions, the signals that rose).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl SegmentCandidate {
    /// Its priority, for analyses stored without one: the score's.
    pub fn priority(&self) -> u8 {
        match self.priority {
            1..=3 => self.priority,
            _ => reelforge_core::segments::priority_of_score(self.score),
        }
    }
}

/// An analyser's result for one slice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SliceAnalysis {
    pub index: u32,
    pub start_ms: i64,
    pub end_ms: i64,
    pub highlight_score: f32,
    pub motion_mean: f32,
    pub loudness_mean_db: f32,
    pub cut_points_ms: Vec<i64>,
    pub segments: Vec<SegmentCandidate>,
    pub description: String,
    pub analyzer: String,
    /// The analyser's version of its instructions (`VideoAnalyzer::version`): an
    /// analysis is reused only by the same analyser at the same version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The language its descriptions are written in: an analysis is reused only for the
    /// same language.
    #[serde(default)]
    pub language: Language,
    pub keyframe_aligned: bool,
    /// What a remote model's call cost; `None` for the offline analyser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ModelUsage>,
    /// Set when the configured analyser failed on this slice: the analysis is then the
    /// offline analyser's reading of the slice's signals, kept so the video is whole, and
    /// the error says what to retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One model call's cost.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Video bytes sent (the analysis proxy), and the source's bytes for the same range.
    pub bytes_sent: u64,
    pub source_bytes: u64,
}

/// Reads one slice of a video and says what is in it and where its highlights are.
pub trait VideoAnalyzer: Send + Sync {
    /// Stable name recorded with every result, e.g. "signal-analyzer-v1".
    fn name(&self) -> &str;
    fn analyze_slice<'a>(&'a self, input: SliceInput<'a>) -> BoxFuture<'a, Result<SliceAnalysis>>;
    /// The longest span the analyser reads well in one call (`None`: no limit). Direct
    /// reads a longer video in equal slices within it instead.
    fn max_span_ms(&self) -> Option<i64> {
        None
    }
    /// What besides the name decides its answers (a prompt's version), recorded with each
    /// result; "" when the name says it all.
    fn version(&self) -> &str {
        ""
    }
}
