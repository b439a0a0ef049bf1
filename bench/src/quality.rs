//! `reelforge-bench quality`: search quality on the judged corpus through the engine's
//! real search service (MiniLM vectors, BM25, fusion, the local reranker): nDCG@10 of
//! each recall path alone, of RRF and weighted fusion, each with and without the
//! reranker — what decides the defaults.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use reelforge_bench::judged::corpus;
use reelforge_engine::search::{FusionRequest, Search, SearchRequest};
use reelforge_engine::store::Store;
use reelforge_engine::EngineConfig;
use reelforge_models::{default_reranker, load_default_text_embedder, EmbedPurpose, TextEmbedder};
use reelforge_search::{DocKind, SearchDoc, SearchIndex};

pub async fn quality(config: &EngineConfig, docs: usize, queries: usize) -> anyhow::Result<()> {
    let c = corpus(docs, queries);
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("db"), 256 << 20)?;
    let index = SearchIndex::open(store.db())?;
    let embedder: Arc<dyn TextEmbedder> = Arc::new(load_default_text_embedder(
        &config.models.dir,
        config.models.threads,
    )?);
    let started = Instant::now();
    let mut position: HashMap<u64, usize> = HashMap::new();
    for (b, chunk) in c.texts.chunks(256).enumerate() {
        let vectors = embedder.embed(chunk, EmbedPurpose::Index).await?;
        let batch: Vec<(SearchDoc, Vec<f32>)> = chunk
            .iter()
            .zip(vectors)
            .map(|(text, v)| {
                let doc = SearchDoc {
                    video_id: format!("v{b}"),
                    kind: DocKind::TranscriptChunk,
                    text: text.clone(),
                    start_ms: 0,
                    end_ms: 1,
                };
                (doc, v.vector)
            })
            .collect();
        for (k, id) in index.add_batch(&batch)?.into_iter().enumerate() {
            position.insert(id, b * 256 + k);
        }
    }
    println!(
        "judged corpus: {} documents embedded ({}) and indexed in {:.1} s, {} queries",
        c.texts.len(),
        embedder.name(),
        started.elapsed().as_secs_f64(),
        c.queries.len()
    );
    let reranker = Arc::new(default_reranker(embedder.clone()));
    let search = Search::new(Arc::new(index), store, embedder, reranker, None);
    let weighted = |lexical, vector| FusionRequest::Weighted {
        weights: Some((lexical, vector)),
    };
    let runs: [(&str, FusionRequest, bool); 8] = [
        ("BM25 alone", weighted(1.0, 0.0), false),
        ("vectors alone", weighted(0.0, 1.0), false),
        ("RRF (k 60)", FusionRequest::Rrf { k: None }, false),
        ("RRF + local rerank", FusionRequest::Rrf { k: None }, true),
        (
            "weighted 0.3/0.7",
            FusionRequest::Weighted { weights: None },
            false,
        ),
        (
            "weighted 0.3/0.7 + local rerank",
            FusionRequest::Weighted { weights: None },
            true,
        ),
        ("weighted 0.5/0.5", weighted(0.5, 0.5), false),
        ("weighted 0.5/0.5 + local rerank", weighted(0.5, 0.5), true),
    ];
    println!("{:<34} {:>9} {:>12}", "ranking", "nDCG@10", "mean ms");
    for (name, fusion, rerank) in runs {
        let mut ranked = Vec::with_capacity(c.queries.len());
        let started = Instant::now();
        for (q, _) in &c.queries {
            let req = SearchRequest {
                fusion,
                rerank: Some(rerank),
                ..SearchRequest::new(q.clone(), 10)
            };
            let (hits, _) = search
                .search(reelforge_engine::DEFAULT_TENANT, &req)
                .await?;
            ranked.push(hits.iter().map(|h| position[&h.doc_id]).collect());
        }
        println!(
            "{name:<34} {:>9.4} {:>12.2}",
            c.mean_ndcg10(&ranked),
            started.elapsed().as_secs_f64() * 1000.0 / c.queries.len() as f64
        );
    }
    Ok(())
}
