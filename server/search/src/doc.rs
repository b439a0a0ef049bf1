//! What the index holds and answers: documents on a video's timeline, their kinds and
//! embedding spaces, the metadata filters read, the filter itself, and lexical hits.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    VideoSummary,
    SliceDescription,
    ChapterSummary,
    TranscriptChunk,
    Shot,
    /// A thumbnail, found by what it shows (visual space only).
    Frame,
    /// A sound heard over a stretch (the sound tagger's class: applause, music, ...).
    SoundEvent,
    /// A line of text written on the pictures (the text reader's).
    OcrText,
}

impl DocKind {
    pub const ALL: [DocKind; 8] = [
        DocKind::VideoSummary,
        DocKind::SliceDescription,
        DocKind::ChapterSummary,
        DocKind::TranscriptChunk,
        DocKind::Shot,
        DocKind::Frame,
        DocKind::SoundEvent,
        DocKind::OcrText,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DocKind::VideoSummary => "video_summary",
            DocKind::SliceDescription => "slice_description",
            DocKind::ChapterSummary => "chapter_summary",
            DocKind::TranscriptChunk => "transcript_chunk",
            DocKind::Shot => "shot",
            DocKind::Frame => "frame",
            DocKind::SoundEvent => "sound_event",
            DocKind::OcrText => "ocr_text",
        }
    }

    /// Which embedding space the document's vector lives in.
    pub fn space(self) -> Space {
        match self {
            DocKind::Frame => Space::Visual,
            _ => Space::Text,
        }
    }

    pub fn parse(name: &str) -> Option<DocKind> {
        DocKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// An embedding space of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Text = 0,
    Visual = 1,
}

/// A searchable unit on a video's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchDoc {
    pub video_id: String,
    pub kind: DocKind,
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// What filters and scoring need of a document, kept in memory.
#[derive(Debug, Clone)]
pub struct DocMeta {
    pub video_id: String,
    pub kind: DocKind,
    pub start_ms: i64,
    pub end_ms: i64,
    pub length: u32,
}

/// Which documents a search may return. Declarative rather than a closure, so a backend
/// that filters on its own side (a database expression) can translate it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocFilter {
    /// Only these kinds (empty: any).
    pub kinds: HashSet<DocKind>,
    /// Only these videos (empty: any).
    pub video_ids: HashSet<String>,
    /// Only documents overlapping `[start, end)` ms.
    pub time_range: Option<(i64, i64)>,
    /// Only this tenant's videos: honoured by backends that keep owners
    /// (`SearchBackend::keeps_owners`); for the others the caller narrows `video_ids`.
    pub tenant: Option<String>,
}

impl DocFilter {
    /// Every document.
    pub fn any() -> DocFilter {
        DocFilter::default()
    }

    /// Only the documents of these videos.
    pub fn videos<'a>(ids: impl IntoIterator<Item = &'a str>) -> DocFilter {
        DocFilter {
            video_ids: ids.into_iter().map(str::to_string).collect(),
            ..DocFilter::default()
        }
    }

    pub fn accepts(&self, m: &DocMeta) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&m.kind))
            && (self.video_ids.is_empty() || self.video_ids.contains(&m.video_id))
            && self
                .time_range
                .is_none_or(|(s, e)| m.end_ms > s && m.start_ms < e)
    }
}

/// A lexical hit with each query term's contribution (the explain view).
#[derive(Debug, Clone, PartialEq)]
pub struct Bm25Hit {
    pub doc_id: u64,
    pub score: f32,
    pub terms: Vec<(String, f32)>,
}
