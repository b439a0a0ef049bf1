//! reelforge's BM25 against tantivy's, in one run on one corpus: index build time, query
//! latency p50/p99 (top-10 and top-50) and nDCG@10 on a judged query set, with the same
//! BM25 parameters (k1 = 1.2, b = 0.75, tantivy's fixed values) and the same analysis
//! (lowercase, the same English stop words, Snowball English stemming).
//!
//! The judged set is `reelforge_bench::judged` (the one `reelforge-bench quality` uses).
//!
//! Run: `cargo run --release -- [--docs N] [--queries N]` (from this directory).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result};
use reelforge_bench::judged::{corpus, Corpus};
use reelforge_search::bm25::{B, K1};
use reelforge_search::text::STOP_WORDS;
use reelforge_search::vectors::AnnConfig;
use reelforge_search::{DocKind, SearchDoc, SearchIndex};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED};
use tantivy::tokenizer::{
    Language, LowerCaser, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{doc, Index};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

struct Measured {
    build_s: f64,
    top10: Vec<f64>,
    top50: Vec<f64>,
    ranked: Vec<Vec<usize>>,
    /// Top-10 scores per query.
    scores: Vec<Vec<f32>>,
}

fn run_reelforge(c: &Corpus) -> Result<Measured> {
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(256 << 20)
        .open()?;
    // BM25 alone is compared: no vector graph building in the background.
    let no_graph = AnnConfig {
        threshold: 0,
        ..AnnConfig::default()
    };
    let index = SearchIndex::open_with(&db, no_graph)?;
    let mut doc_of: HashMap<u64, usize> = HashMap::new();
    let started = Instant::now();
    // BM25 alone is compared: every document gets the same one-dimensional vector.
    // A video's worth of documents per transaction, as ingest indexes them.
    for (b, batch) in c.texts.chunks(100).enumerate() {
        let docs: Vec<(SearchDoc, Vec<f32>)> = batch
            .iter()
            .map(|text| {
                let doc = SearchDoc {
                    video_id: format!("v{b}"),
                    kind: DocKind::TranscriptChunk,
                    text: text.clone(),
                    start_ms: 0,
                    end_ms: 1,
                };
                (doc, vec![1.0])
            })
            .collect();
        for (k, id) in index.add_batch(&docs)?.into_iter().enumerate() {
            doc_of.insert(id, b * 100 + k);
        }
    }
    db.flush()?;
    let build_s = started.elapsed().as_secs_f64();
    let (mut top10, mut top50, mut ranked, mut scores) = (vec![], vec![], vec![], vec![]);
    for _round in 0..rounds() {
        top10.clear();
        top50.clear();
        ranked.clear();
        scores.clear();
        for (q, _) in &c.queries {
            let t = Instant::now();
            let hits = index.bm25(q, &|_| true, 10)?;
            top10.push(t.elapsed().as_secs_f64() * 1000.0);
            ranked.push(hits.iter().map(|h| doc_of[&h.doc_id]).collect());
            scores.push(hits.iter().map(|h| h.score).collect());
        }
        for (q, _) in &c.queries {
            let t = Instant::now();
            std::hint::black_box(index.bm25(q, &|_| true, 50)?);
            top50.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(Measured {
        build_s,
        top10,
        top50,
        ranked,
        scores,
    })
}

fn run_tantivy(c: &Corpus) -> Result<Measured> {
    let dir = tempfile::tempdir()?;
    let mut schema = Schema::builder();
    let options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("reelforge")
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let body = schema.add_text_field("body", options);
    let id = schema.add_u64_field("id", INDEXED | FAST);
    let index = Index::create_in_dir(dir.path(), schema.build())?;
    index.tokenizers().register(
        "reelforge",
        TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .filter(StopWordFilter::remove(
                STOP_WORDS.iter().map(|w| w.to_string()),
            ))
            .filter(Stemmer::new(Language::English))
            .build(),
    );
    let started = Instant::now();
    let mut writer = index.writer_with_num_threads(2, 200_000_000)?;
    for (i, text) in c.texts.iter().enumerate() {
        writer.add_document(doc!(body => text.as_str(), id => i as u64))?;
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    let build_s = started.elapsed().as_secs_f64();
    let reader = index.reader()?;
    let searcher = reader.searcher();
    let parser = QueryParser::for_index(&index, vec![body]);
    let ids: Vec<_> = searcher
        .segment_readers()
        .iter()
        .map(|s| s.fast_fields().u64("id"))
        .collect::<tantivy::Result<_>>()?;
    let (mut top10, mut top50, mut ranked, mut scores) = (vec![], vec![], vec![], vec![]);
    for _round in 0..rounds() {
        top10.clear();
        top50.clear();
        ranked.clear();
        scores.clear();
        for (q, _) in &c.queries {
            let t = Instant::now();
            let query = parser.parse_query(q)?;
            std::hint::black_box(
                searcher.search(&query, &TopDocs::with_limit(50).order_by_score())?,
            );
            top50.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        for (q, _) in &c.queries {
            let t = Instant::now();
            let query = parser.parse_query(q)?;
            let hits = searcher.search(&query, &TopDocs::with_limit(10).order_by_score())?;
            top10.push(t.elapsed().as_secs_f64() * 1000.0);
            scores.push(hits.iter().map(|h| h.0).collect());
            ranked.push(
                hits.iter()
                    .map(|(_, a)| {
                        ids[a.segment_ord as usize]
                            .first(a.doc_id)
                            .map(|v| v as usize)
                            .context("a document without its id")
                    })
                    .collect::<Result<_>>()?,
            );
        }
    }
    Ok(Measured {
        build_s,
        top10,
        top50,
        ranked,
        scores,
    })
}

/// Query passes; only the last is measured (the first warms caches).
fn rounds() -> usize {
    std::env::var("COMPARE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn main() -> Result<()> {
    let mut docs = 100_000;
    let mut queries = 144;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--docs", Some(v)) => docs = v.parse()?,
            ("--queries", Some(v)) => queries = v.parse()?,
            _ => anyhow::bail!("usage: search-compare [--docs N] [--queries N]"),
        }
    }
    let c = corpus(docs, queries);
    println!(
        "corpus: {docs} documents, {} judged queries, BM25 k1 {K1} b {B} in both",
        c.queries.len()
    );
    let ours = run_reelforge(&c)?;
    let theirs = run_tantivy(&c)?;
    let mut agree = 0usize;
    let report = |name: &str, m: &mut Measured| {
        let ndcg = c.mean_ndcg10(&m.ranked);
        println!(
            "{name:<10} build {:>6.2} s   top-10 p50 {:>6.3} ms p99 {:>6.3} ms   top-50 p50 {:>6.3} ms p99 {:>6.3} ms   nDCG@10 {ndcg:.4}",
            m.build_s,
            pct(&mut m.top10, 0.5),
            pct(&mut m.top10, 0.99),
            pct(&mut m.top50, 0.5),
            pct(&mut m.top50, 0.99),
        );
    };
    let (mut ours, mut theirs) = (ours, theirs);
    report("reelforge", &mut ours);
    report("tantivy", &mut theirs);
    for (a, b) in ours.ranked.iter().zip(&theirs.ranked) {
        agree += a.iter().filter(|d| b.contains(d)).count();
    }
    // Where the lists differ, is it only the order among equal scores?
    let differing = ours
        .ranked
        .iter()
        .zip(&theirs.ranked)
        .filter(|(a, b)| a != b)
        .count();
    let score_differs = ours
        .scores
        .iter()
        .zip(&theirs.scores)
        .filter(|(a, b)| {
            a.len() != b.len()
                || a.iter()
                    .zip(b.iter())
                    .any(|(x, y)| (x - y).abs() > 1e-3 * x.abs().max(1e-3))
        })
        .count();
    println!(
        "top-10 overlap {:.1} %; {differing} of {} lists differ in members or order; {score_differs} have a score off by > 0.1 % (tantivy keeps document lengths in one byte, exact up to 40 terms; reelforge's are exact)",
        100.0 * agree as f64 / (c.queries.len() * 10) as f64,
        c.queries.len()
    );
    Ok(())
}
