//! `reelforge-bench search`: the embedded search index at scale on synthetic documents.

use std::time::Instant;

use reelforge_search::fusion::{fuse, Fusion};
use reelforge_search::vectors::AnnConfig;
use reelforge_search::{DocKind, DocMeta, SearchDoc, SearchIndex, Space};

use reelforge_bench::lowrank::LowRank;

use crate::measure::current_rss_mib;

/// `bench search`: builds a search index of `docs` synthetic documents in a temporary
/// sled store and times BM25, the exact vector scan, the HNSW graph (with its recall@10
/// against the exact scan) and the hybrid path (BM25 + graph + RRF) over `queries`
/// queries, printing build times, p50/p99 latencies and memory.
///
/// Words are drawn Zipf-like (rank r with probability ∝ 1/r over 20,000 words, so the
/// commonest word is ~7 % of all words, as in English text); vectors are `LowRank`'s.
/// Synthetic: this measures speed and scaling, not relevance (the `search-compare` bench
/// judges relevance, and measures the persistent path at scale beside tantivy).
pub fn search_scale(
    docs: usize,
    dims: usize,
    queries: usize,
    unpersisted: bool,
    ef_values: &[usize],
) -> anyhow::Result<()> {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    const VOCABULARY: f64 = 20_000.0;
    let uniform = |next: &mut dyn FnMut() -> u64| (next() >> 11) as f64 / (1u64 << 53) as f64;
    let word = |next: &mut dyn FnMut() -> u64| {
        let rank = (VOCABULARY + 1.0).powf(uniform(next)) as usize;
        format!("w{}x", rank.max(1))
    };
    let mut vectors = LowRank::new(dims, 0x9E37_79B9_7F4A_7C15);
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(256 << 20)
        .open()?;
    // The graph is built once, after loading, so its build time is measured apart.
    let ann = AnnConfig {
        threshold: 0,
        ..AnnConfig::default()
    };
    let index = SearchIndex::open_with(&db, None, ann)?;
    let started = Instant::now();
    // 100 documents per video, one transaction per video (as indexing a video does).
    let mut batch = Vec::with_capacity(100);
    for i in 0..docs {
        let text: Vec<String> = (0..40).map(|_| word(&mut next)).collect();
        let doc = SearchDoc {
            video_id: format!("{:016x}", i / 100),
            kind: DocKind::TranscriptChunk,
            text: text.join(" "),
            start_ms: (i % 100) as i64 * 30_000,
            end_ms: (i % 100) as i64 * 30_000 + 30_000,
        };
        batch.push((doc, vectors.vector()));
        if batch.len() == 100 || i + 1 == docs {
            if unpersisted {
                index.add_batch_unpersisted(&batch)?;
            } else {
                index.add_batch(&batch)?;
            }
            batch.clear();
        }
    }
    let build_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let index = if unpersisted {
        index
    } else {
        db.flush()?;
        drop(index);
        SearchIndex::open_with(&db, None, ann)?
    };
    let reopen_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    index.build_graphs_now();
    index.wait_for_graphs();
    let graph_s = started.elapsed().as_secs_f64();
    let qs: Vec<(String, Vec<f32>)> = (0..queries)
        .map(|_| {
            let words: Vec<String> = (0..3).map(|_| word(&mut next)).collect();
            (words.join(" "), vectors.vector())
        })
        .collect();
    let all = |_: &DocMeta| true;
    let exact_top: Vec<Vec<u64>> = qs
        .iter()
        .map(|(_, v)| {
            index
                .nearest_exact(Space::Text, v, &all, 10)
                .into_iter()
                .map(|h| h.0)
                .collect()
        })
        .collect();
    // Graph latency and recall@10 at each ef_search; the hybrid runs at the first.
    let mut per_ef = Vec::new();
    for &ef in ef_values.iter().rev() {
        index.set_ef_search(ef);
        let mut times = Vec::new();
        let mut found = 0usize;
        for ((_, v), exact) in qs.iter().zip(&exact_top) {
            let t = Instant::now();
            let approx = index.nearest(v, &all, 50);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            let top10: Vec<u64> = approx.iter().take(10).map(|h| h.0).collect();
            found += exact.iter().filter(|e| top10.contains(e)).count();
        }
        per_ef.push((ef, times, found as f64 / (queries * 10) as f64));
    }
    per_ef.reverse();
    index.set_ef_search(ef_values[0]);
    let (mut bm25, mut exact_ms, mut ann_ms, mut hybrid) = (vec![], vec![], vec![], vec![]);
    let mut found = 0usize;
    for (text, v) in &qs {
        let t = Instant::now();
        let lexical = index.bm25(text, &all, 50)?;
        bm25.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let exact = index.nearest_exact(Space::Text, v, &all, 50);
        exact_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let approx = index.nearest(v, &all, 50);
        ann_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let top10: Vec<u64> = approx.iter().take(10).map(|h| h.0).collect();
        found += exact
            .iter()
            .take(10)
            .filter(|e| top10.contains(&e.0))
            .count();
        let t = Instant::now();
        let lexical2 = index.bm25(text, &all, 50)?;
        let nearest2 = index.nearest(v, &all, 50);
        let list: Vec<(u64, f32)> = lexical2.iter().map(|h| (h.doc_id, h.score)).collect();
        let fused = fuse(Fusion::default(), &[&list, &nearest2]);
        hybrid.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box((lexical, exact, approx, fused));
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    let line = |name: &str, v: &mut Vec<f64>| {
        println!(
            "{name:<27}p50 {:>7.2} ms  p99 {:>7.2} ms",
            pct(v, 0.5),
            pct(v, 0.99)
        );
    };
    println!("documents                  {docs} ({dims}-d vectors, 40 words each)");
    if unpersisted {
        println!(
            "index build (memory only)  {build_s:.1} s ({:.0} docs/s; nothing written to sled)",
            docs as f64 / build_s
        );
    } else {
        println!(
            "index build (sled)         {build_s:.1} s ({:.0} docs/s, one transaction per 100 docs)",
            docs as f64 / build_s
        );
        println!("reopen (load from sled)    {reopen_s:.1} s");
    }
    println!(
        "HNSW build                 {graph_s:.1} s (M {}, ef_construction {}, rayon threads)",
        ann.links, ann.ef_construction
    );
    line("BM25 top-50", &mut bm25);
    line("vector exact top-50", &mut exact_ms);
    line("vector HNSW top-50", &mut ann_ms);
    println!(
        "HNSW recall@10             {:.3} (vs exact, {queries} queries, ef_search {})",
        found as f64 / (queries * 10) as f64,
        ef_values[0].max(100)
    );
    for (ef, times, recall) in &mut per_ef {
        line(&format!("  HNSW at ef_search {ef}"), times);
        println!("  HNSW at ef_search {ef:<7}recall@10 {recall:.3}");
    }
    line("hybrid (BM25+HNSW+RRF)", &mut hybrid);
    println!("  (query embedding not included; {queries} queries of 3 words)");
    println!("RSS                        {:.0} MiB", current_rss_mib());
    Ok(())
}
