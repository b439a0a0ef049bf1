//! `reelforge.v1.Search`.

use std::pin::Pin;
use std::sync::Arc;

use reelforge_proto::v1 as pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use reelforge_core::error::Error;
use reelforge_engine::search::{FusionRequest, Mode, SearchHit, SearchRequest, SearchTimings};
use reelforge_engine::Search;
use reelforge_search::DocKind;

use super::status::to_status;
use crate::auth::Caller;
use crate::metrics::Metrics;

type ResultStream = Pin<Box<dyn Stream<Item = Result<pb::SearchResponse, Status>> + Send>>;

pub struct SearchApi {
    search: Arc<Search>,
    metrics: Arc<Metrics>,
}

impl SearchApi {
    pub fn new(search: Arc<Search>, metrics: Arc<Metrics>) -> Self {
        SearchApi { search, metrics }
    }
}

/// Converts; zero and unset fields become "the default", which the engine applies.
fn request(r: pb::SearchRequest) -> Result<SearchRequest, Error> {
    let mode = match pb::SearchMode::try_from(r.mode) {
        Ok(pb::SearchMode::All) => Mode::All,
        Ok(pb::SearchMode::Scene) => Mode::Scene,
        Ok(pb::SearchMode::Transcript) => Mode::Transcript,
        Ok(pb::SearchMode::Visual) => Mode::Visual,
        Err(_) => {
            return Err(Error::invalid(format!(
                "mode {} is not a search mode",
                r.mode
            )))
        }
    };
    let kinds = r
        .kinds
        .iter()
        .map(|k| {
            DocKind::parse(k).ok_or_else(|| {
                let known: Vec<&str> = DocKind::ALL.iter().map(|k| k.name()).collect();
                Error::invalid(format!("kinds: {k:?} is not one of {}", known.join(", ")))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let f = r.fusion.unwrap_or_default();
    let fusion = match pb::FusionMethod::try_from(f.method) {
        Ok(pb::FusionMethod::Rrf) => FusionRequest::Rrf {
            k: (f.rrf_k != 0.0).then_some(f.rrf_k),
        },
        Ok(pb::FusionMethod::Weighted) => FusionRequest::Weighted {
            weights: (f.lexical_weight != 0.0 || f.vector_weight != 0.0)
                .then_some((f.lexical_weight, f.vector_weight)),
        },
        Err(_) => {
            return Err(Error::invalid(format!(
                "fusion.method {} is not a fusion method",
                f.method
            )))
        }
    };
    Ok(SearchRequest {
        query: r.query,
        mode,
        top_k: r.top_k as usize,
        video_ids: r.video_ids,
        time_range: r.time_range.map(|t| (t.start_ms, t.end_ms)),
        kinds,
        fusion,
        rerank: r.rerank,
        rerank_threshold: r.rerank_threshold,
        merge_adjacent: r.merge_adjacent,
    })
}

fn result(rank: usize, h: &SearchHit) -> pb::SearchResponse {
    let s = &h.scores;
    pb::SearchResponse {
        item: Some(pb::search_response::Item::Result(pb::SearchResult {
            rank: rank as u32,
            video_id: h.video_id.clone(),
            source: h.kind.name().to_string(),
            text: h.text.clone(),
            snippet: h.snippet.clone(),
            start_ms: h.start_ms,
            end_ms: h.end_ms,
            scores: Some(pb::StageScores {
                bm25_rank: s.bm25.map_or(0, |b| b.0),
                bm25_score: s.bm25.map_or(0.0, |b| b.1),
                vector_rank: s.vector.map_or(0, |v| v.0),
                vector_cosine: s.vector.map_or(0.0, |v| v.1),
                fused: s.fused,
                reranked: s.rerank.is_some(),
                rerank: s.rerank.unwrap_or(0.0),
                final_score: s.final_score,
            }),
            matched_terms: h
                .matched_terms
                .iter()
                .map(|(term, bm25)| pb::TermScore {
                    term: term.clone(),
                    bm25: *bm25,
                })
                .collect(),
            merged: h.merged,
            filename: h.filename.clone(),
            thumbnail_jpeg: Vec::new(),
            thumbnail_ms: 0,
        })),
    }
}

fn stats(results: usize, t: &SearchTimings) -> pb::SearchResponse {
    pb::SearchResponse {
        item: Some(pb::search_response::Item::Stats(pb::SearchStats {
            results: results as u32,
            bm25_candidates: t.bm25_candidates,
            vector_candidates: t.vector_candidates,
            bm25_ms: t.bm25_ms,
            embed_ms: t.embed_ms,
            vector_ms: t.vector_ms,
            fuse_ms: t.fuse_ms,
            rerank_ms: t.rerank_ms,
            total_ms: t.total_ms,
            queue_ms: t.queue_ms,
            query_cached: t.query_cached,
            embed_batch: t.embed_batch,
        })),
    }
}

#[tonic::async_trait]
impl pb::search_server::Search for SearchApi {
    type SearchStream = ResultStream;

    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<Self::SearchStream>, Status> {
        let tenant = Caller::of(&req).tenant;
        let req = req.into_inner();
        let include_thumbnails = req.include_thumbnails;
        let req = request(req).map_err(to_status)?;
        let (hits, timings) = self.search.search(&tenant, &req).await.map_err(to_status)?;
        self.metrics.search(&timings);
        let mut stills = match include_thumbnails {
            true => self.search.thumbnails(&hits).await.map_err(to_status)?,
            false => Vec::new(),
        }
        .into_iter();
        let mut out: Vec<Result<pb::SearchResponse, Status>> = hits
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut r = result(i + 1, h);
                if let (Some(Some((t_ms, jpeg))), Some(pb::search_response::Item::Result(r))) =
                    (stills.next(), r.item.as_mut())
                {
                    r.thumbnail_ms = t_ms;
                    r.thumbnail_jpeg = jpeg;
                }
                Ok(r)
            })
            .collect();
        out.push(Ok(stats(hits.len(), &timings)));
        Ok(Response::new(Box::pin(tokio_stream::iter(out))))
    }
}
