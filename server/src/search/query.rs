//! One search: validate, recall by BM25 and by vector, fuse, rerank, merge, explain.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::fusion::{fuse, Fusion};
use super::index::{DocKind, DocMeta, SearchIndex, Space};
use crate::error::{Error, Result};
use crate::models::{EmbedPurpose, ImageTextEmbedder, RerankCandidate, Reranker, TextEmbedder};

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 2_000;
/// Most results one search returns.
pub const MAX_TOP_K: usize = 200;
/// Candidates each recall path contributes, at least.
const MIN_CANDIDATES: usize = 50;
/// Candidates the reranker reads at most.
const RERANK_DEPTH: usize = 50;
/// Characters of context around the first matched term in a snippet.
const SNIPPET_CHARS: usize = 220;

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
    fn kinds(self) -> &'static [DocKind] {
        match self {
            Mode::All => &[
                DocKind::VideoSummary,
                DocKind::SliceDescription,
                DocKind::ChapterSummary,
                DocKind::TranscriptChunk,
                DocKind::Shot,
            ],
            Mode::Scene => &[
                DocKind::VideoSummary,
                DocKind::SliceDescription,
                DocKind::ChapterSummary,
                DocKind::Shot,
            ],
            Mode::Transcript => &[DocKind::TranscriptChunk],
            Mode::Visual => &[DocKind::Frame],
        }
    }
}

/// The models a search may use.
pub struct SearchModels<'a> {
    pub text_embedder: &'a dyn TextEmbedder,
    pub reranker: &'a dyn Reranker,
    /// For `Mode::Visual`; `None` when no image-text model is configured.
    pub image_embedder: Option<&'a dyn ImageTextEmbedder>,
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
    pub fusion: Fusion,
    pub rerank: bool,
    /// Drop results whose rerank score is below this.
    pub rerank_threshold: Option<f32>,
    /// Merge transcript chunks of one video that touch in time into one moment.
    pub merge_adjacent: bool,
}

/// Why a result matched, stage by stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageScores {
    /// 1-based rank and score in the BM25 list; `None`: not found lexically.
    pub bm25: Option<(u32, f32)>,
    /// 1-based rank and cosine in the vector list; `None`: not among the nearest.
    pub vector: Option<(u32, f32)>,
    pub fused: f32,
    pub rerank: Option<f32>,
    /// What the order is by: the rerank score when reranked, else the fused score.
    pub final_score: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub doc_id: u64,
    pub video_id: String,
    pub kind: DocKind,
    pub text: String,
    /// Text around the first match, matched words marked `**like this**`.
    pub snippet: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub scores: StageScores,
    /// Each matched query term's BM25 contribution.
    pub matched_terms: Vec<(String, f32)>,
    /// Documents merged into this moment (1 unless `merge_adjacent`).
    pub merged: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchTimings {
    pub bm25_ms: f64,
    pub embed_ms: f64,
    pub vector_ms: f64,
    pub fuse_ms: f64,
    pub rerank_ms: f64,
    pub total_ms: f64,
    pub bm25_candidates: u32,
    pub vector_candidates: u32,
}

/// Checks everything about a request that does not need the store.
pub fn validate(req: &SearchRequest) -> Result<()> {
    let chars = req.query.chars().count();
    if req.query.trim().is_empty() {
        return Err(Error::invalid("query is empty: say what to look for"));
    }
    if chars > MAX_QUERY_CHARS {
        return Err(Error::invalid(format!(
            "query is {chars} characters long; at most {MAX_QUERY_CHARS} are accepted"
        )));
    }
    if req.top_k == 0 || req.top_k > MAX_TOP_K {
        return Err(Error::invalid(format!(
            "top_k must be between 1 and {MAX_TOP_K}, got {}",
            req.top_k
        )));
    }
    if let Some((start, end)) = req.time_range {
        if start < 0 || end <= start {
            return Err(Error::invalid(format!(
                "time_range must have 0 <= start_ms < end_ms, got {start}..{end}"
            )));
        }
    }
    match req.fusion {
        Fusion::Rrf { k } if !(k.is_finite() && k > 0.0) => {
            return Err(Error::invalid("fusion.rrf_k must be a positive number"));
        }
        Fusion::Weighted { lexical, vector }
            if !(lexical.is_finite() && vector.is_finite())
                || lexical < 0.0
                || vector < 0.0
                || lexical + vector <= 0.0 =>
        {
            return Err(Error::invalid(
                "fusion weights must be non-negative and not both zero",
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Runs a validated request.
pub async fn search(
    index: &SearchIndex,
    models: &SearchModels<'_>,
    req: &SearchRequest,
) -> Result<(Vec<SearchHit>, SearchTimings)> {
    let started = Instant::now();
    if req.mode == Mode::Visual {
        return visual(index, models.image_embedder, req, started).await;
    }
    let (embedder, reranker) = (models.text_embedder, models.reranker);
    let mut t = SearchTimings::default();
    let kinds: HashSet<DocKind> = if req.kinds.is_empty() {
        req.mode.kinds().iter().copied().collect()
    } else {
        req.kinds.iter().copied().collect()
    };
    let videos: HashSet<&str> = req.video_ids.iter().map(String::as_str).collect();
    let keep = |m: &DocMeta| {
        kinds.contains(&m.kind)
            && (videos.is_empty() || videos.contains(m.video_id.as_str()))
            && req
                .time_range
                .is_none_or(|(s, e)| m.end_ms > s && m.start_ms < e)
    };
    let depth = (req.top_k * 4).max(MIN_CANDIDATES);

    let stage = Instant::now();
    let lexical = index.bm25(&req.query, &keep, depth)?;
    t.bm25_ms = ms(stage);
    t.bm25_candidates = lexical.len() as u32;

    let stage = Instant::now();
    let query_vector = embedder
        .embed(std::slice::from_ref(&req.query), EmbedPurpose::Query)
        .await?
        .remove(0)
        .vector;
    t.embed_ms = ms(stage);
    let stage = Instant::now();
    let nearest = index.nearest(&query_vector, &keep, depth);
    t.vector_ms = ms(stage);
    t.vector_candidates = nearest.len() as u32;

    let stage = Instant::now();
    let lexical_list: Vec<(u64, f32)> = lexical.iter().map(|h| (h.doc_id, h.score)).collect();
    let fused = fuse(req.fusion, &[&lexical_list, &nearest]);
    let lexical_by_id: HashMap<u64, (usize, &super::index::Bm25Hit)> = lexical
        .iter()
        .enumerate()
        .map(|(i, h)| (h.doc_id, (i, h)))
        .collect();
    let vector_by_id: HashMap<u64, (usize, f32)> = nearest
        .iter()
        .enumerate()
        .map(|(i, &(id, s))| (id, (i, s)))
        .collect();
    let query_terms: HashSet<String> = index.analyzer().terms(&req.query).into_iter().collect();
    let keep_n = if req.rerank {
        RERANK_DEPTH.max(req.top_k)
    } else {
        req.top_k
    };
    let mut hits = Vec::new();
    for &(id, fused_score) in fused.iter().take(keep_n) {
        let Some(doc) = index.doc(id)? else { continue };
        let lexical = lexical_by_id.get(&id);
        let scores = StageScores {
            bm25: lexical.map(|(rank, h)| (*rank as u32 + 1, h.score)),
            vector: vector_by_id.get(&id).map(|&(rank, s)| (rank as u32 + 1, s)),
            fused: fused_score,
            rerank: None,
            final_score: fused_score,
        };
        hits.push(SearchHit {
            doc_id: id,
            snippet: snippet(index, &doc.text, &query_terms),
            matched_terms: lexical.map(|(_, h)| h.terms.clone()).unwrap_or_default(),
            video_id: doc.video_id,
            kind: doc.kind,
            text: doc.text,
            start_ms: doc.start_ms,
            end_ms: doc.end_ms,
            scores,
            merged: 1,
        });
    }
    t.fuse_ms = ms(stage);

    if req.rerank && !hits.is_empty() {
        let stage = Instant::now();
        let candidates: Vec<RerankCandidate> = hits
            .iter()
            .map(|h| RerankCandidate {
                text: h.text.clone(),
                first_stage_score: h.scores.bm25.map_or(0.0, |b| b.1),
                vector: index.vector(h.doc_id),
            })
            .collect();
        let scores = reranker.rerank(&req.query, &candidates).await?;
        let mut reordered = Vec::with_capacity(hits.len());
        for s in scores {
            if req.rerank_threshold.is_some_and(|t| s.score < t) {
                continue;
            }
            let mut hit = hits[s.index].clone();
            hit.scores.rerank = Some(s.score);
            hit.scores.final_score = s.score;
            reordered.push(hit);
        }
        hits = reordered;
        t.rerank_ms = ms(stage);
    }
    if req.merge_adjacent {
        hits = merge_adjacent(hits);
    }
    hits.truncate(req.top_k);
    t.total_ms = ms(started);
    Ok((hits, t))
}

/// `Mode::Visual`: the query through the image-text model's text tower, the nearest
/// thumbnails by cosine. One recall path, so no fusion; the text reranker does not read
/// pictures, so no rerank either (the cosine is the final score).
async fn visual(
    index: &SearchIndex,
    embedder: Option<&dyn ImageTextEmbedder>,
    req: &SearchRequest,
    started: Instant,
) -> Result<(Vec<SearchHit>, SearchTimings)> {
    let embedder = embedder.ok_or_else(|| {
        Error::FailedPrecondition(
            "visual search needs an image-text model: set models.image_embedder = \"clip:<dir>\" \
             (or REELFORGE_IMAGE_EMBEDDER) and ingest the videos again to embed their thumbnails"
                .into(),
        )
    })?;
    if req.kinds.iter().any(|k| *k != DocKind::Frame) {
        return Err(Error::invalid(
            "kinds: visual search finds frames only; leave kinds empty or use \"frame\"",
        ));
    }
    let mut t = SearchTimings::default();
    let videos: HashSet<&str> = req.video_ids.iter().map(String::as_str).collect();
    let keep = |m: &DocMeta| {
        m.kind == DocKind::Frame
            && (videos.is_empty() || videos.contains(m.video_id.as_str()))
            && req
                .time_range
                .is_none_or(|(s, e)| m.end_ms > s && m.start_ms < e)
    };
    let stage = Instant::now();
    let query = embedder
        .embed_texts(std::slice::from_ref(&req.query))
        .await?
        .remove(0)
        .vector;
    t.embed_ms = ms(stage);
    let stage = Instant::now();
    let nearest = index.nearest_in(Space::Visual, &query, &keep, req.top_k);
    t.vector_ms = ms(stage);
    t.vector_candidates = nearest.len() as u32;
    let mut hits = Vec::with_capacity(nearest.len());
    for (rank, (id, cosine)) in nearest.into_iter().enumerate() {
        let Some(doc) = index.doc(id)? else { continue };
        hits.push(SearchHit {
            doc_id: id,
            video_id: doc.video_id,
            kind: doc.kind,
            snippet: doc.text.clone(),
            text: doc.text,
            start_ms: doc.start_ms,
            end_ms: doc.end_ms,
            scores: StageScores {
                bm25: None,
                vector: Some((rank as u32 + 1, cosine)),
                fused: cosine,
                rerank: None,
                final_score: cosine,
            },
            matched_terms: Vec::new(),
            merged: 1,
        });
    }
    t.total_ms = ms(started);
    Ok((hits, t))
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Transcript chunks of one video that overlap or touch (within 1 s) become one moment:
/// the best-placed hit absorbs the others, its time range grows to cover them.
fn merge_adjacent(hits: Vec<SearchHit>) -> Vec<SearchHit> {
    let mut out: Vec<SearchHit> = Vec::new();
    for hit in hits {
        let target = out.iter_mut().find(|h| {
            h.video_id == hit.video_id
                && h.kind == DocKind::TranscriptChunk
                && hit.kind == DocKind::TranscriptChunk
                && hit.start_ms <= h.end_ms + 1_000
                && h.start_ms <= hit.end_ms + 1_000
        });
        match target {
            Some(h) => {
                if hit.start_ms < h.start_ms {
                    h.text = format!("{} {}", hit.text, h.text);
                } else {
                    h.text = format!("{} {}", h.text, hit.text);
                }
                h.start_ms = h.start_ms.min(hit.start_ms);
                h.end_ms = h.end_ms.max(hit.end_ms);
                h.merged += hit.merged;
            }
            None => out.push(hit),
        }
    }
    out
}

/// Up to `SNIPPET_CHARS` characters around the stretch with the most distinct matched
/// query terms, with every matched word marked.
fn snippet(index: &SearchIndex, text: &str, query_terms: &HashSet<String>) -> String {
    let matches: Vec<(usize, usize, String)> = index
        .analyzer()
        .tokens(text)
        .into_iter()
        .filter(|t| query_terms.contains(&t.term))
        .map(|t| (t.start, t.end, t.term))
        .collect();
    // Each window starts a little before one of the matches; the richest wins.
    let window = |first: usize| {
        let start = text[..first]
            .char_indices()
            .rev()
            .nth(40)
            .map_or(0, |(i, _)| i);
        let end = text[start..]
            .char_indices()
            .nth(SNIPPET_CHARS)
            .map_or(text.len(), |(i, _)| start + i);
        (start, end)
    };
    let (start, end) = matches
        .iter()
        .map(|m| {
            let (start, end) = window(m.0);
            let distinct: HashSet<&str> = matches
                .iter()
                .filter(|o| o.0 >= start && o.1 <= end)
                .map(|o| o.2.as_str())
                .collect();
            (distinct.len(), std::cmp::Reverse(start), start, end)
        })
        .max()
        .map_or_else(|| window(0), |(_, _, start, end)| (start, end));
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut pos = start;
    for (a, b, _) in matches.iter().filter(|m| m.0 >= start && m.1 <= end) {
        out.push_str(&text[pos..*a]);
        out.push_str("**");
        out.push_str(&text[*a..*b]);
        out.push_str("**");
        pos = *b;
    }
    out.push_str(&text[pos..end]);
    if end < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> SearchRequest {
        SearchRequest {
            query: query.into(),
            mode: Mode::All,
            top_k: 5,
            video_ids: vec![],
            time_range: None,
            kinds: vec![],
            fusion: Fusion::default(),
            rerank: false,
            rerank_threshold: None,
            merge_adjacent: false,
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
                    fusion: Fusion::Weighted {
                        lexical: 0.0,
                        vector: 0.0,
                    },
                    ..request("a")
                },
                "weights",
            ),
            (
                SearchRequest {
                    fusion: Fusion::Rrf { k: f32::NAN },
                    ..request("a")
                },
                "rrf_k",
            ),
        ];
        for (req, field) in cases {
            let err = validate(&req).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
        validate(&request("a goal")).unwrap();
    }

    #[test]
    fn snippets_mark_matched_words() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let index = SearchIndex::open(&db).unwrap();
        let terms: HashSet<String> = index.analyzer().terms("goals").into_iter().collect();
        let s = snippet(&index, "What a goal! Two goals now.", &terms);
        assert_eq!(s, "What a **goal**! Two **goals** now.");
        let long = format!("{} the goal {}", "word ".repeat(100), "more ".repeat(100));
        let s = snippet(&index, &long, &terms);
        assert!(
            s.starts_with('…') && s.ends_with('…') && s.contains("**goal**"),
            "{s}"
        );
    }

    #[test]
    fn touching_transcript_chunks_merge_into_one_moment() {
        let hit = |start_ms, end_ms, text: &str| SearchHit {
            doc_id: 0,
            video_id: "v".into(),
            kind: DocKind::TranscriptChunk,
            text: text.into(),
            snippet: String::new(),
            start_ms,
            end_ms,
            scores: StageScores::default(),
            matched_terms: vec![],
            merged: 1,
        };
        let merged = merge_adjacent(vec![
            hit(10_000, 20_000, "b"),
            hit(0, 9_500, "a"),
            hit(40_000, 45_000, "c"),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(
            (merged[0].start_ms, merged[0].end_ms, merged[0].merged),
            (0, 20_000, 2)
        );
        assert_eq!(merged[0].text, "a b");
    }
}
