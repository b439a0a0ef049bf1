//! Cohere Rerank 3.5 on Bedrock (`InvokeModel`, `{"api_version": 2, "query", "documents",
//! "top_n"}` → `results[].index / relevance_score`). Candidates go in batches inside the
//! model's limits; scores are the model's relevance, comparable across batches, with the
//! first-stage score breaking ties.

use serde_json::json;

use super::{Bedrock, COHERE_RERANK};
use crate::{RerankCandidate, RerankScore, Reranker};
use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;

/// Documents per request (the model takes up to 1,000; smaller batches keep each request
/// well inside its token limits).
pub const BATCH: usize = 100;
/// Characters of one document sent (the model reads about 4,000 tokens of query and
/// document together).
const MAX_DOC_CHARS: usize = 8_000;

pub struct CohereReranker {
    bedrock: Bedrock,
    name: String,
}

impl CohereReranker {
    pub fn new(bedrock: Bedrock) -> Self {
        CohereReranker {
            bedrock,
            name: format!("bedrock:{COHERE_RERANK}"),
        }
    }

    async fn batch(&self, query: &str, docs: &[&RerankCandidate]) -> Result<Vec<f32>> {
        let documents: Vec<&str> = docs
            .iter()
            .map(|c| match c.text.char_indices().nth(MAX_DOC_CHARS) {
                Some((cut, _)) => &c.text[..cut],
                None => c.text.as_str(),
            })
            .collect();
        let body = json!({
            "api_version": 2,
            "query": query,
            "documents": documents,
            "top_n": documents.len(),
        });
        let answer = self
            .bedrock
            .invoke_json(COHERE_RERANK, &body, super::Sends::Text)
            .await?;
        let mut scores = vec![None; docs.len()];
        for r in answer["results"].as_array().into_iter().flatten() {
            let (Some(i), Some(s)) = (r["index"].as_u64(), r["relevance_score"].as_f64()) else {
                continue;
            };
            if let Some(slot) = scores.get_mut(i as usize) {
                *slot = Some(s as f32);
            }
        }
        scores
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.ok_or_else(|| {
                    Error::Unavailable(format!("{COHERE_RERANK} left document {i} unscored"))
                })
            })
            .collect()
    }
}

impl Reranker for CohereReranker {
    fn name(&self) -> &str {
        &self.name
    }

    fn rerank<'a>(
        &'a self,
        query: &'a str,
        candidates: &'a [RerankCandidate],
    ) -> BoxFuture<'a, Result<Vec<RerankScore>>> {
        Box::pin(async move {
            if query.trim().is_empty() {
                return Err(Error::InvalidInput("the query is empty".into()));
            }
            let mut relevance = Vec::with_capacity(candidates.len());
            let all: Vec<&RerankCandidate> = candidates.iter().collect();
            for chunk in all.chunks(BATCH) {
                relevance.extend(self.batch(query, chunk).await?);
            }
            let mut order: Vec<usize> = (0..candidates.len()).collect();
            order.sort_by(|&a, &b| {
                relevance[b]
                    .total_cmp(&relevance[a])
                    .then(
                        candidates[b]
                            .first_stage_score
                            .total_cmp(&candidates[a].first_stage_score),
                    )
                    .then(a.cmp(&b))
            });
            Ok(order
                .into_iter()
                .map(|index| RerankScore {
                    index,
                    score: relevance[index],
                })
                .collect())
        })
    }
}
