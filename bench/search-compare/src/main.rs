//! reelforge's BM25 against tantivy's, in one run on one corpus: index build time, query
//! latency p50/p99 (top-10 and top-50) and nDCG@10 on a judged query set, with the same
//! BM25 parameters (k1 = 1.2, b = 0.75, tantivy's fixed values) and the same analysis
//! (lowercase, the same English stop words, Snowball English stemming).
//!
//! The judged set is `reelforge-bench`'s `judged` module (the one `reelforge-bench quality`
//! uses), compiled in from its source so this bench builds only the search crate and
//! tantivy, not the whole server.
//!
//! Run: `cargo run --release -- [--docs N] [--queries N]` (from this directory).

#[path = "../../src/lib.rs"]
mod shared;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use reelforge_search::bm25::{B, K1};
use reelforge_search::fusion::{fuse, Fusion};
use reelforge_search::text::STOP_WORDS;
use reelforge_search::vectors::AnnConfig;
use reelforge_search::{DocKind, DocMeta, SearchDoc, SearchIndex, Space};
use shared::judged::{corpus, Corpus};
use shared::lowrank::LowRank;
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
    /// Bytes on disk after the build.
    disk: u64,
}

/// What only reelforge's run measures: the graph, the reopen, the hybrid path.
#[derive(Default)]
struct Extra {
    graph_s: f64,
    open_s: f64,
    rss_mib: f64,
    raw_bytes: u64,
    hybrid: Vec<f64>,
    recall10: f64,
    graph_used: bool,
    /// Loading the saved text graph alone.
    graph_load_s: f64,
    /// Bytes of the saved graphs (in `disk`).
    graph_disk: u64,
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn open_db(dir: &Path) -> Result<sled::Db> {
    Ok(sled::Config::new()
        .path(dir.join("db"))
        .cache_capacity(256 << 20)
        .open()?)
}

/// Builds reelforge's index through its persistent path (sled records, then the HNSW
/// graph built and saved when `dims` > 0), reopens it from disk, and queries it.
fn run_reelforge(c: &Corpus, dims: usize) -> Result<(Measured, Extra)> {
    let dir = tempfile::tempdir_in(std::env::var("COMPARE_DIR").unwrap_or_else(|_| ".".into()))?;
    let graphs = dir.path().join("search");
    // The graph is built once, after loading, so its build time is measured apart.
    let ann = AnnConfig {
        threshold: 0,
        ..AnnConfig::default()
    };
    let db = open_db(dir.path())?;
    let index = SearchIndex::open_with(&db, Some(&graphs), ann)?;
    let mut doc_of: HashMap<u64, usize> = HashMap::new();
    let mut vectors = LowRank::new(dims.max(1), 7);
    let mut extra = Extra::default();
    let started = Instant::now();
    // A video's worth of documents per write, as ingest indexes them.
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
                extra.raw_bytes += (text.len() + 4 * dims) as u64;
                // BM25 alone (dims 0): every document gets the same one-dimensional vector.
                let v = if dims == 0 {
                    vec![1.0]
                } else {
                    vectors.vector()
                };
                (doc, v)
            })
            .collect();
        for (k, id) in index.add_batch(&docs)?.into_iter().enumerate() {
            doc_of.insert(id, b * 100 + k);
        }
    }
    db.flush()?;
    let build_s = started.elapsed().as_secs_f64();
    if dims > 0 {
        let started = Instant::now();
        index.build_graphs_now();
        index.wait_for_graphs();
        extra.graph_s = started.elapsed().as_secs_f64();
    }
    let disk = dir_bytes(dir.path());
    extra.graph_disk = dir_bytes(&graphs);
    drop(index);
    drop(db);
    if dims > 0 {
        let started = Instant::now();
        std::hint::black_box(reelforge_search::vectors::load(&graphs, "hnsw-text"));
        extra.graph_load_s = started.elapsed().as_secs_f64();
    }
    let started = Instant::now();
    let db = open_db(dir.path())?;
    let index = SearchIndex::open_with(&db, Some(&graphs), ann)?;
    extra.open_s = started.elapsed().as_secs_f64();
    // Hand the first build's freed memory back before reading RSS, so it is the open
    // index's (with the corpus's texts, held for the tantivy run).
    // SAFETY: malloc_trim only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
    extra.rss_mib = shared::current_rss_mib();
    extra.graph_used = index.has_graph(Space::Text);
    let (mut top10, mut top50, mut ranked, mut scores) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds() {
        if round == 1 {
            top10.clear();
            top50.clear();
        }
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
    if dims > 0 {
        // Query vectors from the documents' generator (relevance of the vectors is not
        // judged: this measures the hybrid path's speed and the graph's recall).
        let queries = &mut vectors;
        let all = |_: &DocMeta| true;
        let mut found = 0usize;
        for round in 0..rounds() {
            if round == 1 {
                extra.hybrid.clear();
            }
            found = 0;
            for (q, _) in &c.queries {
                let v = queries.vector();
                let t = Instant::now();
                let lexical = index.bm25(q, &all, 50)?;
                let nearest = index.nearest(&v, &all, 50);
                let list: Vec<(u64, f32)> = lexical.iter().map(|h| (h.doc_id, h.score)).collect();
                let fused = fuse(Fusion::default(), &[&list, &nearest]);
                extra.hybrid.push(t.elapsed().as_secs_f64() * 1000.0);
                std::hint::black_box(fused);
                let exact = index.nearest_exact(Space::Text, &v, &all, 10);
                found += exact
                    .iter()
                    .filter(|e| nearest.iter().take(10).any(|n| n.0 == e.0))
                    .count();
            }
        }
        extra.recall10 = found as f64 / (c.queries.len() * 10) as f64;
    }
    Ok((
        Measured {
            build_s,
            top10,
            top50,
            ranked,
            scores,
            disk,
        },
        extra,
    ))
}

fn run_tantivy(c: &Corpus) -> Result<Measured> {
    let dir = tempfile::tempdir_in(std::env::var("COMPARE_DIR").unwrap_or_else(|_| ".".into()))?;
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
    let disk = dir_bytes(dir.path());
    let reader = index.reader()?;
    let searcher = reader.searcher();
    let parser = QueryParser::for_index(&index, vec![body]);
    let ids: Vec<_> = searcher
        .segment_readers()
        .iter()
        .map(|s| s.fast_fields().u64("id"))
        .collect::<tantivy::Result<_>>()?;
    let (mut top10, mut top50, mut ranked, mut scores) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds() {
        if round == 1 {
            top10.clear();
            top50.clear();
        }
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
        disk,
    })
}

/// Query passes: the first warms caches, the latencies of the others are pooled (one pass
/// of 144 queries puts its p99 on the second-worst query, which this VM's noise moves by
/// tens of percent from run to run).
fn rounds() -> usize {
    std::env::var("COMPARE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

fn main() -> Result<()> {
    let mut docs = 100_000;
    let mut queries = 144;
    let mut dims = 0;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--docs", Some(v)) => docs = v.parse()?,
            ("--queries", Some(v)) => queries = v.parse()?,
            ("--dims", Some(v)) => dims = v.parse()?,
            _ => anyhow::bail!("usage: search-compare [--docs N] [--queries N] [--dims D]"),
        }
    }
    let c = corpus(docs, queries);
    println!(
        "corpus: {docs} documents, {} judged queries, BM25 k1 {K1} b {B} in both",
        c.queries.len()
    );
    let (ours, extra) = run_reelforge(&c, dims)?;
    let theirs = run_tantivy(&c)?;
    let mut agree = 0usize;
    let report = |name: &str, m: &mut Measured| {
        let ndcg = c.mean_ndcg10(&m.ranked);
        println!(
            "{name:<10} build {:>6.2} s   disk {:>7.1} MiB   top-10 p50 {:>6.3} ms p99 {:>6.3} ms   top-50 p50 {:>6.3} ms p99 {:>6.3} ms   nDCG@10 {ndcg:.4}",
            m.build_s,
            m.disk as f64 / (1 << 20) as f64,
            pct(&mut m.top10, 0.5),
            pct(&mut m.top10, 0.99),
            pct(&mut m.top50, 0.5),
            pct(&mut m.top50, 0.99),
        );
    };
    let (mut ours, mut theirs) = (ours, theirs);
    report("reelforge", &mut ours);
    report("tantivy", &mut theirs);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "reelforge  {} texts{}: raw {:.1} MiB, on disk {:.1} MiB (sled {:.1}, saved graph {:.1}; {:.2}x raw)",
        docs,
        if dims > 0 { format!(" + {dims}-d vectors") } else { String::new() },
        mib(extra.raw_bytes),
        mib(ours.disk),
        mib(ours.disk - extra.graph_disk),
        mib(extra.graph_disk),
        ours.disk as f64 / extra.raw_bytes.max(1) as f64
    );
    if dims > 0 {
        let mut hybrid = extra.hybrid.clone();
        println!(
            "reelforge  HNSW build + save {:.1} s; reopen (records, then the saved graph) {:.1} s (the graph alone loads in {:.1} s), graph search {}; RSS after reopen {:.0} MiB",
            extra.graph_s,
            extra.open_s,
            extra.graph_load_s,
            if extra.graph_used { "ready" } else { "NOT ready" },
            extra.rss_mib
        );
        println!(
            "reelforge  hybrid (BM25 top-50 + HNSW top-50 + RRF) p50 {:.3} ms p99 {:.3} ms; HNSW recall@10 {:.3} vs the exact scan",
            pct(&mut hybrid, 0.5),
            pct(&mut hybrid, 0.99),
            extra.recall10
        );
    } else {
        println!(
            "reelforge  reopen {:.1} s; RSS after reopen {:.0} MiB",
            extra.open_s, extra.rss_mib
        );
    }
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
