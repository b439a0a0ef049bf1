//! One search, stage by stage: recall by BM25 and by vector (the query embedded once),
//! fuse, rerank, merge touching transcript chunks, mark the matched words; every stage
//! timed.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use reelforge_core::error::{Error, Result};
use reelforge_models::{ImageTextEmbedder, RerankCandidate, Reranker};
use reelforge_search::fusion::fuse;
use reelforge_search::text::Analyzer;
use reelforge_search::{DocKind, SearchBackend, Space};

use super::embed::QueryEmbedder;
use super::request::Query;

/// Candidates each recall path contributes, at least.
const MIN_CANDIDATES: usize = 50;
/// Candidates the reranker reads at most.
const RERANK_DEPTH: usize = 50;
/// Characters of context around the first matched term in a snippet.
const SNIPPET_CHARS: usize = 220;

/// The models a search may use.
pub struct SearchModels<'a> {
    /// The text embedder, for queries.
    pub query_embedder: &'a QueryEmbedder,
    pub reranker: &'a dyn Reranker,
    /// For visual search; `None` when no image-text model is configured.
    pub image_embedder: Option<&'a dyn ImageTextEmbedder>,
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
    /// The video's file name ("" when the video is gone).
    pub filename: String,
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
    /// Getting the query's vector: waiting for the model and running it.
    pub embed_ms: f64,
    /// Of `embed_ms`, the wait for the model (queries ahead in the batch, a batch running).
    pub queue_ms: f64,
    /// The query's vector came from the cache.
    pub query_cached: bool,
    /// Queries in the model call that embedded this one (0 when cached).
    pub embed_batch: u32,
    pub vector_ms: f64,
    pub fuse_ms: f64,
    pub rerank_ms: f64,
    pub total_ms: f64,
    pub bm25_candidates: u32,
    pub vector_candidates: u32,
}

/// Runs a validated query.
pub async fn run(
    index: &dyn SearchBackend,
    models: &SearchModels<'_>,
    q: &Query,
) -> Result<(Vec<SearchHit>, SearchTimings)> {
    let started = Instant::now();
    if q.visual {
        return visual(index, models.image_embedder, q, started).await;
    }
    let reranker = models.reranker;
    let mut t = SearchTimings::default();
    let depth = (q.top_k * 4).max(MIN_CANDIDATES);

    let stage = Instant::now();
    let lexical = index.lexical(&q.query, &q.filter, depth).await?;
    t.bm25_ms = ms(stage);
    t.bm25_candidates = lexical.len() as u32;

    // The query is embedded once; recall and the reranker share the vector.
    let query_vector = models.query_embedder.embed(&q.query).await?;
    t.embed_ms = query_vector.embed_ms;
    t.queue_ms = query_vector.queue_ms;
    t.query_cached = query_vector.cached;
    t.embed_batch = query_vector.batch as u32;
    let query_vector = query_vector.vector;
    let stage = Instant::now();
    let nearest = index
        .nearest(Space::Text, &query_vector, &q.filter, depth)
        .await?;
    t.vector_ms = ms(stage);
    t.vector_candidates = nearest.len() as u32;

    let stage = Instant::now();
    let lexical_list: Vec<(u64, f32)> = lexical.iter().map(|h| (h.doc_id, h.score)).collect();
    let fused = fuse(q.fusion, &[&lexical_list, &nearest]);
    let lexical_by_id: HashMap<u64, (usize, &reelforge_search::Bm25Hit)> = lexical
        .iter()
        .enumerate()
        .map(|(i, h)| (h.doc_id, (i, h)))
        .collect();
    let vector_by_id: HashMap<u64, (usize, f32)> = nearest
        .iter()
        .enumerate()
        .map(|(i, &(id, s))| (id, (i, s)))
        .collect();
    let analyzer = index.analyzer();
    let query_terms: HashSet<String> = analyzer.terms(&q.query).into_iter().collect();
    let keep_n = if q.rerank {
        RERANK_DEPTH.max(q.top_k)
    } else {
        q.top_k
    };
    let kept: Vec<(u64, f32)> = fused.into_iter().take(keep_n).collect();
    let ids: Vec<u64> = kept.iter().map(|k| k.0).collect();
    let fetched = index.fetch(&ids, q.rerank).await?;
    let mut hits = Vec::new();
    let mut vectors = Vec::new();
    for (&(id, fused_score), fetched) in kept.iter().zip(fetched) {
        let Some(fetched) = fetched else { continue };
        let doc = fetched.doc;
        let lexical = lexical_by_id.get(&id);
        let scores = StageScores {
            bm25: lexical.map(|(rank, h)| (*rank as u32 + 1, h.score)),
            vector: vector_by_id.get(&id).map(|&(rank, s)| (rank as u32 + 1, s)),
            fused: fused_score,
            rerank: None,
            final_score: fused_score,
        };
        vectors.push(fetched.vector);
        hits.push(SearchHit {
            doc_id: id,
            filename: fetched.owner.map(|o| o.filename).unwrap_or_default(),
            snippet: snippet(analyzer, &doc.text, &query_terms),
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

    if q.rerank && !hits.is_empty() {
        let stage = Instant::now();
        let candidates: Vec<RerankCandidate> = hits
            .iter()
            .zip(vectors)
            .map(|(h, vector)| RerankCandidate {
                text: h.text.clone(),
                first_stage_score: h.scores.bm25.map_or(0.0, |b| b.1),
                vector,
            })
            .collect();
        let scores = reranker
            .rerank_with_vector(&q.query, Some(&query_vector), &candidates)
            .await?;
        let mut reordered = Vec::with_capacity(hits.len());
        for s in scores {
            if q.rerank_threshold.is_some_and(|t| s.score < t) {
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
    if q.merge_adjacent {
        hits = merge_adjacent(hits);
    }
    hits.truncate(q.top_k);
    t.total_ms = ms(started);
    Ok((hits, t))
}

/// Visual search: the query through the image-text model's text tower, the nearest
/// thumbnails by cosine. One recall path, so no fusion; the text reranker does not read
/// pictures, so no rerank either (the cosine is the final score).
async fn visual(
    index: &dyn SearchBackend,
    embedder: Option<&dyn ImageTextEmbedder>,
    q: &Query,
    started: Instant,
) -> Result<(Vec<SearchHit>, SearchTimings)> {
    let embedder = embedder.ok_or_else(|| {
        Error::FailedPrecondition(
            "visual search needs an image-text model: set models.image_embedder = \"clip:<dir>\" \
             (or REELFORGE_IMAGE_EMBEDDER) and ingest the videos again to embed their thumbnails"
                .into(),
        )
    })?;
    let mut t = SearchTimings::default();
    let stage = Instant::now();
    let query = embedder
        .embed_texts(std::slice::from_ref(&q.query))
        .await?
        .remove(0)
        .vector;
    t.embed_ms = ms(stage);
    let stage = Instant::now();
    let nearest = index
        .nearest(Space::Visual, &query, &q.filter, q.top_k)
        .await?;
    t.vector_ms = ms(stage);
    t.vector_candidates = nearest.len() as u32;
    let ids: Vec<u64> = nearest.iter().map(|n| n.0).collect();
    let fetched = index.fetch(&ids, false).await?;
    let mut hits = Vec::with_capacity(nearest.len());
    for (rank, ((id, cosine), fetched)) in nearest.into_iter().zip(fetched).enumerate() {
        let Some(fetched) = fetched else { continue };
        let doc = fetched.doc;
        hits.push(SearchHit {
            doc_id: id,
            video_id: doc.video_id,
            filename: fetched.owner.map(|o| o.filename).unwrap_or_default(),
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
fn snippet(analyzer: &Analyzer, text: &str, query_terms: &HashSet<String>) -> String {
    let matches: Vec<(usize, usize, String)> = analyzer
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
    // Matches may nest or overlap (jieba's search mode yields "足球", "比赛" and "足球比赛"
    // over the same characters): each stretch of them is marked once.
    let mut spans: Vec<(usize, usize)> = matches
        .iter()
        .filter(|m| m.0 >= start && m.1 <= end)
        .map(|m| (m.0, m.1))
        .collect();
    spans.sort_unstable();
    let mut marked: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match marked.last_mut() {
            Some(last) if a < last.1 => last.1 = last.1.max(b),
            _ => marked.push((a, b)),
        }
    }
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut pos = start;
    for (a, b) in marked {
        out.push_str(&text[pos..a]);
        out.push_str("**");
        out.push_str(&text[a..b]);
        out.push_str("**");
        pos = b;
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

    #[test]
    fn snippets_mark_matched_words() {
        let analyzer = Analyzer::new(true);
        let terms: HashSet<String> = analyzer.terms("goals").into_iter().collect();
        let s = snippet(&analyzer, "What a goal! Two goals now.", &terms);
        assert_eq!(s, "What a **goal**! Two **goals** now.");
        let long = format!("{} the goal {}", "word ".repeat(100), "more ".repeat(100));
        let s = snippet(&analyzer, &long, &terms);
        assert!(
            s.starts_with('…') && s.ends_with('…') && s.contains("**goal**"),
            "{s}"
        );
    }

    #[test]
    fn chinese_snippets_mark_nested_words_once() {
        // jieba's search mode yields "足球", "比赛" and "足球比赛" over the same characters.
        let analyzer = Analyzer::new(true);
        let terms: HashSet<String> = analyzer.terms("足球比赛").into_iter().collect();
        let s = snippet(&analyzer, "今天的足球比赛很精彩，足球迷都来了。", &terms);
        assert_eq!(s, "今天的**足球比赛**很精彩，**足球**迷都来了。");
    }

    #[test]
    fn touching_transcript_chunks_merge_into_one_moment() {
        let hit = |start_ms, end_ms, text: &str| SearchHit {
            doc_id: 0,
            video_id: "v".into(),
            filename: String::new(),
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
