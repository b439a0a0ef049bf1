//! `reelforge-bench quality`: search quality through the engine's real search service
//! (vectors, BM25, fusion, the local reranker), for each installed offline text embedder:
//! nDCG@10 on the judged English corpus, each recall path alone, RRF and weighted fusion,
//! each with and without the reranker; and on the judged bilingual moments
//! (`assets/judged/bilingual.tsv`): Chinese, English, cross-lingual and mixed libraries,
//! nDCG@10 and how often the query's own moment comes first. What decides the defaults.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use reelforge_bench::judged::{corpus, ndcg10};
use reelforge_engine::search::{FusionRequest, Search, SearchRequest};
use reelforge_engine::store::{Store, VideoRecord};
use reelforge_engine::EngineConfig;
use reelforge_media::ProbeRecord;
use reelforge_models::{
    default_reranker, load_text_embedder, EmbedPurpose, TextEmbedder, LOCAL_TEXT_EMBEDDERS,
};
use reelforge_search::{DocKind, SearchDoc, SearchIndex};

/// The search service over a library of `texts`, one document each.
struct Library {
    search: Search,
    /// Document id → position in `texts`.
    position: HashMap<u64, usize>,
    _dir: tempfile::TempDir,
}

impl Library {
    async fn build(embedder: &Arc<dyn TextEmbedder>, texts: &[String]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("db"), 256 << 20)?;
        let index = SearchIndex::open(store.db(), None)?;
        let mut position = HashMap::new();
        for (b, chunk) in texts.chunks(256).enumerate() {
            let vectors = embedder.embed(chunk, EmbedPurpose::Index).await?;
            let batch: Vec<(SearchDoc, Vec<f32>)> = chunk
                .iter()
                .zip(vectors)
                .map(|(text, v)| {
                    let doc = SearchDoc {
                        video_id: video_id(b),
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
            // Searches return only videos the store has, of the caller's tenant.
            store.begin_video(&video_id(b))?.commit(video_record(b))?;
        }
        let reranker = Arc::new(default_reranker(embedder.clone()));
        let search = Search::new(Arc::new(index), store, embedder.clone(), reranker, None);
        Ok(Library {
            search,
            position,
            _dir: dir,
        })
    }

    /// Each query's top 10, as positions in the library's texts, and the mean ms a search.
    async fn rank(
        &self,
        queries: &[String],
        fusion: FusionRequest,
        rerank: Option<bool>,
    ) -> anyhow::Result<(Vec<Vec<usize>>, f64)> {
        let started = Instant::now();
        let mut ranked = Vec::with_capacity(queries.len());
        for q in queries {
            let req = SearchRequest {
                fusion,
                rerank,
                ..SearchRequest::new(q.clone(), 10)
            };
            let (hits, _) = self
                .search
                .search(reelforge_engine::DEFAULT_TENANT, &req)
                .await?;
            ranked.push(hits.iter().map(|h| self.position[&h.doc_id]).collect());
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0 / queries.len().max(1) as f64;
        Ok((ranked, ms))
    }
}

/// The video the documents of batch `b` belong to.
fn video_id(b: usize) -> String {
    format!("{b:016x}")
}

fn video_record(b: usize) -> VideoRecord {
    VideoRecord {
        video_id: video_id(b),
        tenant: reelforge_engine::DEFAULT_TENANT.into(),
        filename: format!("judged-{b}.mp4"),
        source_path: String::new(),
        size_bytes: 0,
        sha256: video_id(b),
        probe: ProbeRecord {
            duration_ms: 1,
            format_name: String::new(),
            size_bytes: 0,
            bit_rate: 0,
            streams: vec![],
            keyframes_ms: vec![0],
            video_data_end_ms: 1,
        },
        slice_ms: 1,
        clip_ms: 1,
        slice_count: 0,
        analyzer: String::new(),
        ingested_at_unix_ms: 0,
        thumbnails_dir: String::new(),
        generation: 0,
        text_embedder: String::new(),
        text_dimensions: 0,
        transcriber: String::new(),
        summary: String::new(),
    }
}

pub async fn quality(config: &EngineConfig, docs: usize, queries: usize) -> anyhow::Result<()> {
    let moments = read_moments(Path::new("assets/judged/bilingual.tsv"))?;
    for name in LOCAL_TEXT_EMBEDDERS {
        let embedder = match load_text_embedder(&config.models.dir, name, config.models.threads) {
            Ok(e) => e,
            Err(e) => {
                println!("{name}: not measured ({e})");
                continue;
            }
        };
        println!("\n== {name} ({} dims)", embedder.dimensions());
        judged_english(&embedder, docs, queries).await?;
        bilingual(&embedder, &moments).await?;
    }
    Ok(())
}

/// The judged English corpus: every recall path, fusion and rerank.
async fn judged_english(
    embedder: &Arc<dyn TextEmbedder>,
    docs: usize,
    queries: usize,
) -> anyhow::Result<()> {
    let c = corpus(docs, queries);
    let started = Instant::now();
    let library = Library::build(embedder, &c.texts).await?;
    println!(
        "judged corpus: {} documents embedded and indexed in {:.1} s, {} queries",
        c.texts.len(),
        started.elapsed().as_secs_f64(),
        c.queries.len()
    );
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
    let texts: Vec<String> = c.queries.iter().map(|(q, _)| q.clone()).collect();
    for (name, fusion, rerank) in runs {
        let (ranked, ms) = library.rank(&texts, fusion, Some(rerank)).await?;
        println!("{name:<34} {:>9.4} {ms:>12.2}", c.mean_ndcg10(&ranked));
    }
    Ok(())
}

/// One judged moment, in both languages, with a query for it in each.
struct Moment {
    topic: usize,
    zh: String,
    en: String,
    zh_query: String,
    en_query: String,
}

fn read_moments(path: &Path) -> anyhow::Result<Vec<Moment>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut topics: Vec<String> = Vec::new();
    let mut moments = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        anyhow::ensure!(
            f.len() == 5,
            "{}:{}: five tab-separated fields",
            path.display(),
            n + 1
        );
        let topic = match topics.iter().position(|t| t == f[0]) {
            Some(t) => t,
            None => {
                topics.push(f[0].to_string());
                topics.len() - 1
            }
        };
        moments.push(Moment {
            topic,
            zh: f[1].into(),
            en: f[2].into(),
            zh_query: f[3].into(),
            en_query: f[4].into(),
        });
    }
    Ok(moments)
}

/// Chinese, English, cross-lingual and mixed libraries of the judged moments: nDCG@10
/// (2 = the query's moment, 1 = its topic) and the share of queries whose own moment (in
/// either language) comes first, by vectors alone and by the default search.
async fn bilingual(embedder: &Arc<dyn TextEmbedder>, moments: &[Moment]) -> anyhow::Result<()> {
    let zh: Vec<String> = moments.iter().map(|m| m.zh.clone()).collect();
    let en: Vec<String> = moments.iter().map(|m| m.en.clone()).collect();
    let zh_queries: Vec<String> = moments.iter().map(|m| m.zh_query.clone()).collect();
    let en_queries: Vec<String> = moments.iter().map(|m| m.en_query.clone()).collect();
    let mixed: Vec<String> = zh.iter().chain(&en).cloned().collect();
    let libraries = [
        ("zh", Library::build(embedder, &zh).await?, 1),
        ("en", Library::build(embedder, &en).await?, 1),
        ("zh+en", Library::build(embedder, &mixed).await?, 2),
    ];
    let runs = [
        ("zh → zh", 0, &zh_queries),
        ("en → en", 1, &en_queries),
        ("zh → en (cross-lingual)", 1, &zh_queries),
        ("en → zh (cross-lingual)", 0, &en_queries),
        ("zh → zh+en", 2, &zh_queries),
        ("en → zh+en", 2, &en_queries),
    ];
    println!(
        "bilingual moments ({} moments, {} queries per language)",
        moments.len(),
        moments.len()
    );
    println!(
        "{:<26} {:>14} {:>12} {:>14} {:>12}",
        "queries → library", "vectors nDCG", "rank-1", "default nDCG", "rank-1"
    );
    let per_topic = moments
        .iter()
        .filter(|m| m.topic == moments[0].topic)
        .count();
    for (name, library, queries) in runs {
        let (_, library, copies) = &libraries[library];
        // Position p in a library of `copies` languages is moment p % moments.len().
        let labels: Vec<(usize, usize)> = (0..moments.len() * copies)
            .map(|p| (moments[p % moments.len()].topic, p % moments.len()))
            .collect();
        let mut row = format!("{name:<26}");
        let vectors = FusionRequest::Weighted {
            weights: Some((0.0, 1.0)),
        };
        for (fusion, rerank) in [(vectors, Some(false)), (FusionRequest::default(), None)] {
            let (ranked, _) = library.rank(queries, fusion, rerank).await?;
            let mut ndcg = 0.0;
            let mut first = 0;
            for (q, r) in ranked.iter().enumerate() {
                let query = (moments[q].topic, q);
                ndcg += ndcg10(r, &labels, query, (*copies, copies * (per_topic - 1)));
                first += usize::from(r.first().is_some_and(|&p| p % moments.len() == q));
            }
            row += &format!(
                " {:>14.4} {:>11.0}%",
                ndcg / ranked.len() as f64,
                100.0 * first as f64 / ranked.len() as f64
            );
        }
        println!("{row}");
    }
    Ok(())
}
