//! `reelforge-bench search`: the embedded search index at scale on synthetic documents.

use std::time::Instant;

use reelforge_search::fusion::{fuse, Fusion};
use reelforge_search::vectors::AnnConfig;
use reelforge_search::{DocKind, DocMeta, SearchDoc, SearchIndex, Space};

use reelforge_bench::lowrank::LowRank;

use crate::measure::current_rss_mib;

/// Words drawn Zipf-like: rank r with probability ∝ 1/r over 20,000 words, so the
/// commonest word is ~7 % of all words, as in English text.
struct Words {
    rng: u64,
}

impl Words {
    const VOCABULARY: f64 = 20_000.0;

    fn new() -> Words {
        Words {
            rng: 0x2545_F491_4F6C_DD1D,
        }
    }

    fn word(&mut self) -> String {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let uniform = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        let rank = (Self::VOCABULARY + 1.0).powf(uniform) as usize;
        format!("w{}x", rank.max(1))
    }

    fn text(&mut self, n: usize) -> String {
        (0..n).map(|_| self.word()).collect::<Vec<_>>().join(" ")
    }

    /// Document `i`: 40 words, the `i % 100`-th 30 s chunk of video `i / 100`.
    fn document(&mut self, i: usize) -> SearchDoc {
        SearchDoc {
            video_id: format!("{:016x}", i / 100),
            kind: DocKind::TranscriptChunk,
            text: self.text(40),
            start_ms: (i % 100) as i64 * 30_000,
            end_ms: (i % 100) as i64 * 30_000 + 30_000,
        }
    }
}

/// The value at quantile `p` of `v` (sorted here).
fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn line(name: &str, v: &mut [f64]) {
    println!(
        "{name:<27}p50 {:>7.2} ms  p99 {:>7.2} ms",
        pct(v, 0.5),
        pct(v, 0.99)
    );
}

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
    let mut words = Words::new();
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
        batch.push((words.document(i), vectors.vector()));
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
        .map(|_| (words.text(3), vectors.vector()))
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

/// `bench search-backends`: the same synthetic corpus through the search seam
/// (`SearchBackend`, as the search service calls it) into the embedded index and into a
/// Milvus server at `milvus_uri`, side by side: build time (a video of 100 documents per
/// `replace_video`), then BM25 top-50, vector top-50 and hybrid (both + RRF) latency
/// p50/p99 over `queries` queries, the Milvus vector recall@10 against the embedded exact
/// scan and the BM25 top-10 overlap between the two.
pub async fn backends(
    docs: usize,
    dims: usize,
    queries: usize,
    milvus_uri: &str,
) -> anyhow::Result<()> {
    use reelforge_milvus::{MilvusBackend, MilvusConfig};
    use reelforge_search::{DocFilter, SearchBackend, VideoOwner};

    let mut words = Words::new();
    let mut vectors = LowRank::new(dims, 0x9E37_79B9_7F4A_7C15);
    let corpus: Vec<(SearchDoc, Vec<f32>)> = (0..docs)
        .map(|i| (words.document(i), vectors.vector()))
        .collect();
    let qs: Vec<(String, Vec<f32>)> = (0..queries)
        .map(|_| (words.text(3), vectors.vector()))
        .collect();
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path().join("db"))
        .cache_capacity(256 << 20)
        .open()?;
    let embedded = SearchIndex::open(&db, Some(&dir.path().join("graphs")))?;
    let config = MilvusConfig {
        uri: milvus_uri.to_string(),
        collection: format!("bench_{}", std::process::id()),
        timeout_seconds: 600,
        ..MilvusConfig::default()
    };
    let milvus = MilvusBackend::new(&config, &db, dims, None, true)?;
    milvus.connect().await?;
    let owner = VideoOwner {
        tenant: "default".into(),
        filename: "bench.mp4".into(),
    };
    let backends: [(&str, &dyn SearchBackend); 2] = [("embedded", &embedded), ("milvus", &milvus)];
    println!("documents                  {docs} ({dims}-d vectors, 40 words each), {queries} queries of 3 words");
    for (name, backend) in backends {
        let started = Instant::now();
        for (v, video) in corpus.chunks(100).enumerate() {
            backend
                .replace_video(&video[0].0.video_id, 1, &owner, video.to_vec())
                .await?;
            if v % 100 == 99 {
                eprintln!("{name}: {} documents", (v + 1) * 100);
            }
        }
        let build_s = started.elapsed().as_secs_f64();
        if name == "embedded" {
            embedded.build_graphs_now();
            embedded.wait_for_graphs();
        }
        println!(
            "{name:<10} build          {build_s:.1} s ({:.0} docs/s through replace_video){}",
            docs as f64 / build_s,
            if name == "embedded" {
                format!(
                    ", then HNSW {:.1} s",
                    started.elapsed().as_secs_f64() - build_s
                )
            } else {
                String::new()
            }
        );
    }
    let any = DocFilter::any();
    let all = |_: &DocMeta| true;
    let mut tops: Vec<Vec<Vec<u64>>> = Vec::new();
    let mut nearest_tops: Vec<Vec<Vec<u64>>> = Vec::new();
    for (name, backend) in backends {
        let (mut lexical, mut nearest, mut hybrid) = (vec![], vec![], vec![]);
        let (mut top, mut near) = (vec![], vec![]);
        for (text, v) in &qs {
            let t = Instant::now();
            let l = backend.lexical(text, &any, 50).await?;
            lexical.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            let n = backend.nearest(Space::Text, v, &any, 50).await?;
            nearest.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            let (l2, n2) = tokio::join!(
                backend.lexical(text, &any, 50),
                backend.nearest(Space::Text, v, &any, 50)
            );
            let list: Vec<(u64, f32)> = l2?.iter().map(|h| (h.doc_id, h.score)).collect();
            std::hint::black_box(fuse(Fusion::default(), &[&list, &n2?]));
            hybrid.push(t.elapsed().as_secs_f64() * 1000.0);
            // Ids differ between backends: compare by (video, start).
            let ids: Vec<u64> = l.iter().take(10).map(|h| h.doc_id).collect();
            top.push(doc_keys(backend, &ids).await?);
            let ids: Vec<u64> = n.iter().take(10).map(|h| h.0).collect();
            near.push(doc_keys(backend, &ids).await?);
        }
        tops.push(top);
        nearest_tops.push(near);
        line(&format!("{name:<10} BM25 top-50"), &mut lexical);
        line(&format!("{name:<10} vector top-50"), &mut nearest);
        line(&format!("{name:<10} hybrid"), &mut hybrid);
    }
    // Recall against the exact scan, by document key.
    let mut exact_keys = Vec::new();
    for (_, v) in &qs {
        let ids: Vec<u64> = embedded
            .nearest_exact(Space::Text, v, &all, 10)
            .into_iter()
            .map(|h| h.0)
            .collect();
        exact_keys.push(doc_keys(&embedded, &ids).await?);
    }
    let overlap = |a: &[Vec<u64>], b: &[Vec<u64>]| {
        let (mut hit, mut total) = (0, 0);
        for (x, y) in a.iter().zip(b) {
            total += y.len();
            hit += y.iter().filter(|k| x.contains(k)).count();
        }
        hit as f64 / total.max(1) as f64
    };
    for (i, (name, _)) in backends.iter().enumerate() {
        println!(
            "{name:<10} vector recall@10 {:.3} (vs the exact scan)",
            overlap(&nearest_tops[i], &exact_keys)
        );
    }
    println!(
        "BM25 top-10 overlap, milvus vs embedded: {:.3}",
        overlap(&tops[1], &tops[0])
    );
    println!(
        "RSS (this process; Milvus's own not included) {:.0} MiB",
        current_rss_mib()
    );
    milvus.close().await?;
    Ok(())
}

/// Documents' keys across backends (their ids differ): video number and start second.
async fn doc_keys(
    backend: &dyn reelforge_search::SearchBackend,
    ids: &[u64],
) -> anyhow::Result<Vec<u64>> {
    let fetched = backend.fetch(ids, false).await?;
    Ok(fetched
        .into_iter()
        .flatten()
        .map(|f| {
            u64::from_str_radix(&f.doc.video_id, 16).unwrap_or(0) * 1_000_000
                + f.doc.start_ms as u64 / 1000
        })
        .collect())
}
