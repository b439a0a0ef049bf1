//! A search request as a caller states it, and the one place it is checked and given
//! its defaults (`SearchRequest::validate`).

use std::collections::HashSet;

use reelforge_core::error::{Error, Result};
use reelforge_core::ids::validate_video_id;
use reelforge_search::fusion::Fusion;
use reelforge_search::{DocFilter, DocKind};

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 2_000;
/// Most results one search returns.
pub const MAX_TOP_K: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every kind of document.
    All,
    /// Summaries and descriptions of what is seen.
    Scene,
    Transcript,
    /// Thumbnails, by what they show (the image-text model's vectors; no BM25).
    Visual,
}

impl Mode {
    pub fn kinds(self) -> &'static [DocKind] {
        match self {
            Mode::All => &[
                DocKind::VideoSummary,
                DocKind::SliceDescription,
                DocKind::ChapterSummary,
                DocKind::TranscriptChunk,
                DocKind::Shot,
                DocKind::SoundEvent,
                DocKind::OcrText,
            ],
            Mode::Scene => &[
                DocKind::VideoSummary,
                DocKind::SliceDescription,
                DocKind::ChapterSummary,
                DocKind::Shot,
                DocKind::SoundEvent,
                DocKind::OcrText,
            ],
            Mode::Transcript => &[DocKind::TranscriptChunk],
            Mode::Visual => &[DocKind::Frame],
        }
    }
}

/// How the caller asked to fuse; `None` parameters take the method's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusionRequest {
    Rrf { k: Option<f32> },
    Weighted { weights: Option<(f32, f32)> },
}

impl Default for FusionRequest {
    fn default() -> Self {
        FusionRequest::Rrf { k: None }
    }
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    pub mode: Mode,
    pub top_k: usize,
    /// Only these videos (empty: all).
    pub video_ids: Vec<String>,
    /// Only documents overlapping `[start, end)` ms.
    pub time_range: Option<(i64, i64)>,
    /// Only these kinds (empty: the mode's).
    pub kinds: Vec<DocKind>,
    pub fusion: FusionRequest,
    /// `None`: the configured reranker's default (Cohere: on; the local one: off).
    pub rerank: Option<bool>,
    /// Drop results whose rerank score is below this.
    pub rerank_threshold: Option<f32>,
    /// Merge transcript chunks of one video that touch in time into one moment.
    pub merge_adjacent: bool,
}

impl SearchRequest {
    /// A request for `query` with every default.
    pub fn new(query: impl Into<String>, top_k: usize) -> SearchRequest {
        SearchRequest {
            query: query.into(),
            mode: Mode::All,
            top_k,
            video_ids: Vec::new(),
            time_range: None,
            kinds: Vec::new(),
            fusion: FusionRequest::default(),
            rerank: None,
            rerank_threshold: None,
            merge_adjacent: false,
        }
    }

    /// Checks everything about the request that needs no store, and applies defaults;
    /// `rerank_by_default`: the configured reranker's own default.
    pub fn validate(&self, rerank_by_default: bool) -> Result<Query> {
        let chars = self.query.chars().count();
        if self.query.trim().is_empty() {
            return Err(Error::invalid("query is empty: say what to look for"));
        }
        if chars > MAX_QUERY_CHARS {
            return Err(Error::invalid(format!(
                "query is {chars} characters long; at most {MAX_QUERY_CHARS} are accepted"
            )));
        }
        if self.top_k == 0 || self.top_k > MAX_TOP_K {
            return Err(Error::invalid(format!(
                "top_k must be between 1 and {MAX_TOP_K}, got {}",
                self.top_k
            )));
        }
        if let Some((start, end)) = self.time_range {
            if start < 0 || end <= start {
                return Err(Error::invalid(format!(
                    "time_range must have 0 <= start_ms < end_ms, got {start}..{end}"
                )));
            }
        }
        for id in &self.video_ids {
            validate_video_id(id)
                .map_err(|_| Error::invalid(format!("video_ids: {id:?} is not a video id")))?;
        }
        if self.mode == Mode::Visual && self.kinds.iter().any(|k| *k != DocKind::Frame) {
            return Err(Error::invalid(
                "kinds: visual search finds frames only; leave kinds empty or use \"frame\"",
            ));
        }
        let fusion = match self.fusion {
            FusionRequest::Rrf { k } => {
                let k = k.unwrap_or(Fusion::RRF_K);
                if !(k.is_finite() && k > 0.0) {
                    return Err(Error::invalid("fusion.rrf_k must be a positive number"));
                }
                Fusion::Rrf { k }
            }
            FusionRequest::Weighted { weights: None } => Fusion::WEIGHTED,
            FusionRequest::Weighted {
                weights: Some((lexical, vector)),
            } => {
                if !(lexical.is_finite() && vector.is_finite())
                    || lexical < 0.0
                    || vector < 0.0
                    || lexical + vector <= 0.0
                {
                    return Err(Error::invalid(
                        "fusion weights must be non-negative and not both zero",
                    ));
                }
                Fusion::Weighted { lexical, vector }
            }
        };
        if self.rerank_threshold.is_some_and(|t| !t.is_finite()) {
            return Err(Error::invalid("rerank_threshold must be a number"));
        }
        let kinds: HashSet<DocKind> = if self.kinds.is_empty() {
            self.mode.kinds().iter().copied().collect()
        } else {
            self.kinds.iter().copied().collect()
        };
        Ok(Query {
            query: self.query.clone(),
            visual: self.mode == Mode::Visual,
            top_k: self.top_k,
            filter: DocFilter {
                kinds,
                video_ids: self.video_ids.iter().cloned().collect(),
                time_range: self.time_range,
                // Set by the service, which knows the caller.
                tenant: None,
            },
            fusion,
            rerank: self.rerank.unwrap_or(rerank_by_default),
            rerank_threshold: self.rerank_threshold,
            merge_adjacent: self.merge_adjacent,
        })
    }
}

/// A checked request with its defaults applied: what the search runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub query: String,
    /// Thumbnails through the image-text model instead of text documents.
    pub visual: bool,
    pub top_k: usize,
    pub filter: DocFilter,
    pub fusion: Fusion,
    pub rerank: bool,
    pub rerank_threshold: Option<f32>,
    pub merge_adjacent: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> SearchRequest {
        SearchRequest {
            top_k: 5,
            ..SearchRequest::new(query, 5)
        }
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases: Vec<(SearchRequest, &str)> = vec![
            (request("  "), "query is empty"),
            (request(&"x".repeat(MAX_QUERY_CHARS + 1)), "characters long"),
            (
                SearchRequest {
                    top_k: 0,
                    ..request("a")
                },
                "top_k",
            ),
            (
                SearchRequest {
                    top_k: 1_000_000,
                    ..request("a")
                },
                "top_k",
            ),
            (
                SearchRequest {
                    time_range: Some((5, 5)),
                    ..request("a")
                },
                "time_range",
            ),
            (
                SearchRequest {
                    time_range: Some((-1, 5)),
                    ..request("a")
                },
                "time_range",
            ),
            (
                SearchRequest {
                    fusion: FusionRequest::Weighted {
                        weights: Some((0.0, 0.0)),
                    },
                    ..request("a")
                },
                "weights",
            ),
            (
                SearchRequest {
                    fusion: FusionRequest::Rrf { k: Some(f32::NAN) },
                    ..request("a")
                },
                "rrf_k",
            ),
            (
                SearchRequest {
                    video_ids: vec!["../x".into()],
                    ..request("a")
                },
                "video_ids",
            ),
        ];
        for (req, field) in cases {
            let err = req.validate(true).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
        let ok = request("a goal").validate(true).unwrap();
        assert_eq!(ok.fusion, Fusion::Rrf { k: 60.0 });
        assert!(ok.rerank);
        assert!(!request("a goal").validate(false).unwrap().rerank);
        assert_eq!(
            SearchRequest {
                fusion: FusionRequest::Weighted { weights: None },
                ..request("a")
            }
            .validate(true)
            .unwrap()
            .fusion,
            Fusion::WEIGHTED
        );
    }
}
