//! `reelforge-bench load`: searches over real gRPC against a real `reelforge-server`
//! (the release binary beside this one), as calling services see them. The server holds
//! the judged corpus (imported as Bedrock Data Automation results, one video per 100
//! documents, embedded by the offline model) and two real videos. Then, each bounded in
//! time: one caller; N concurrent callers; N callers while two ingests and a rendered
//! highlight run. Per phase: searches/s, the callers' p50/p99, errors (any is a failure),
//! the server's own per-stage times (queue, embed, BM25, vectors, fuse, rerank) and its
//! memory; the other RPCs' times in the last phase. Queries are distinct word
//! combinations, so the query cache rarely helps (its hit rate is printed).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reelforge_bench::judged::{corpus, Rng, TOPICS};
use reelforge_proto::v1 as pb;
use reelforge_proto::v1::highlight_client::HighlightClient;
use reelforge_proto::v1::ingest_client::IngestClient;
use reelforge_proto::v1::search_client::SearchClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::transport::Channel;

/// Documents per imported result (one "video" each).
const DOCS_PER_VIDEO: usize = 100;
/// Distinct queries each phase may use.
const PHASE_QUERIES: usize = 50_000;

pub struct LoadOptions {
    pub docs: usize,
    pub callers: usize,
    pub seconds: f64,
    pub samples: PathBuf,
}

struct Server {
    child: tokio::process::Child,
    addr: String,
    _data: tempfile::TempDir,
}

impl Server {
    async fn start(models: &Path, samples: &Path) -> anyhow::Result<Server> {
        let exe = std::env::current_exe()?;
        let binary = exe.with_file_name("reelforge-server");
        if !binary.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release -p reelforge-server`",
                binary.display()
            );
        }
        let data = tempfile::tempdir()?;
        let mut child = tokio::process::Command::new(&binary)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .arg("--allow-root")
            .arg(samples)
            .env("REELFORGE_MODELS_DIR", models)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let line = lines
            .next_line()
            .await?
            .context("the server printed nothing")?;
        let addr = line
            .strip_prefix("reelforge-server listening on ")
            .with_context(|| format!("unexpected first line: {line}"))?
            .to_string();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            child,
            addr: format!("http://{addr}"),
            _data: data,
        })
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(self.addr.clone())?.connect().await?)
    }

    /// Resident and peak memory of the server process, MiB.
    fn memory_mib(&self) -> (f64, f64) {
        let pid = self.child.id().unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// One search as the caller saw it and the server reported it.
#[derive(Clone, Default)]
struct Sample {
    caller_ms: f64,
    stats: pb::SearchStats,
}

/// Distinct queries from the corpus's words: two or three topic words, sometimes across
/// topics, as people type them.
fn queries(n: usize) -> Vec<String> {
    let mut rng = Rng(0x5EED_0F5E_A4C4);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let words = TOPICS[rng.below(TOPICS.len())].1;
        let mut q: Vec<&str> = (0..2 + rng.below(2))
            .map(|_| words[rng.below(words.len())])
            .collect();
        if rng.chance(0.2) {
            let other = TOPICS[rng.below(TOPICS.len())].1;
            q.push(other[rng.below(other.len())]);
        }
        let q = q.join(" ");
        if seen.insert(q.clone()) {
            out.push(q);
        }
    }
    out
}

async fn search_once(client: &mut SearchClient<Channel>, query: &str) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let mut stream = client
        .search(pb::SearchRequest {
            query: query.to_string(),
            top_k: 10,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut stats = None;
    while let Some(m) = stream.message().await? {
        if let Some(pb::search_response::Item::Stats(s)) = m.item {
            stats = Some(s);
        }
    }
    Ok(Sample {
        caller_ms: started.elapsed().as_secs_f64() * 1000.0,
        stats: stats.context("no stats message")?,
    })
}

/// `callers` clients (each on its own connection) searching until `stop` or `seconds`.
async fn searching(
    server: &Server,
    callers: usize,
    seconds: f64,
    stop: Arc<AtomicBool>,
    queries: Arc<Vec<String>>,
    phase: usize,
) -> anyhow::Result<(Vec<Sample>, usize, f64)> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let mut client = SearchClient::new(server.channel().await?);
        let (samples, errors, stop, queries) = (
            samples.clone(),
            errors.clone(),
            stop.clone(),
            queries.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Each phase and caller reads its own stretch of the list: no query repeats.
            let mut i = phase * PHASE_QUERIES + c * (PHASE_QUERIES / callers);
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let q = &queries[i % queries.len()];
                i += 1;
                match search_once(&mut client, q).await {
                    Ok(s) => samples.lock().expect("not poisoned").push(s),
                    Err(e) => {
                        eprintln!("search failed: {e}");
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let wall = started.elapsed().as_secs_f64();
    let samples = std::mem::take(&mut *samples.lock().expect("not poisoned"));
    Ok((samples, errors.load(Ordering::Relaxed), wall))
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A server-reported stage: its name and where the stats hold it.
type Stage = (&'static str, fn(&pb::SearchStats) -> f64);

fn report(name: &str, samples: &[Sample], errors: usize, wall: f64, server: &Server) {
    let caller: Vec<f64> = samples.iter().map(|s| s.caller_ms).collect();
    let stage = |f: fn(&pb::SearchStats) -> f64| -> (f64, f64) {
        let v: Vec<f64> = samples.iter().map(|s| f(&s.stats)).collect();
        (pct(v.clone(), 0.5), pct(v, 0.99))
    };
    let cached = samples.iter().filter(|s| s.stats.query_cached).count();
    let batches: Vec<f64> = samples
        .iter()
        .filter(|s| s.stats.embed_batch > 0)
        .map(|s| s.stats.embed_batch as f64)
        .collect();
    let (rss, peak) = server.memory_mib();
    println!(
        "{name:<30} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>6.1} % {:>6.1} {:>8.0} {:>8.0}",
        samples.len(),
        samples.len() as f64 / wall,
        pct(caller.clone(), 0.5),
        pct(caller, 0.99),
        errors,
        100.0 * cached as f64 / samples.len().max(1) as f64,
        batches.iter().sum::<f64>() / batches.len().max(1) as f64,
        rss,
        peak
    );
    let stages: [Stage; 7] = [
        ("queue", |s| s.queue_ms),
        ("embed", |s| s.embed_ms),
        ("bm25", |s| s.bm25_ms),
        ("vectors", |s| s.vector_ms),
        ("fuse", |s| s.fuse_ms),
        ("rerank", |s| s.rerank_ms),
        ("server total", |s| s.total_ms),
    ];
    let parts: Vec<String> = stages
        .iter()
        .map(|(n, f)| {
            let (p50, p99) = stage(*f);
            format!("{n} {p50:.2}/{p99:.2}")
        })
        .collect();
    println!("    server ms p50/p99: {}", parts.join(", "));
}

async fn ingest_path_done(
    client: &mut IngestClient<Channel>,
    path: &Path,
    force: bool,
) -> anyhow::Result<String> {
    let mut stream = client
        .ingest_path(pb::IngestPathRequest {
            path: path.display().to_string(),
            options: Some(pb::IngestOptions {
                force,
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    let mut video = String::new();
    while let Some(e) = stream.message().await? {
        if let Some(pb::ingest_event::Event::Done(d)) = e.event {
            video = d.video_id;
        }
    }
    Ok(video)
}

/// A Data Automation result holding `texts` as chapters of a video of its own.
fn bda_result(index: usize, texts: &[String]) -> Vec<u8> {
    let chapters: Vec<serde_json::Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({
                "start_timestamp_millis": i * 10_000,
                "end_timestamp_millis": (i + 1) * 10_000,
                "summary": t,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "metadata": {
            "semantic_modality": "VIDEO",
            "s3_bucket": "bench",
            "s3_key": format!("judged-{index:04}.mp4"),
            "duration_millis": texts.len() * 10_000,
        },
        "chapters": chapters,
    }))
    .expect("JSON")
}

pub async fn load(models: &Path, o: &LoadOptions) -> anyhow::Result<()> {
    let samples_dir = std::fs::canonicalize(&o.samples)
        .with_context(|| format!("{} (run scripts/setup.sh)", o.samples.display()))?;
    let demo = samples_dir.join("demo.mp4");
    let speech = samples_dir.join("speech.mp4");
    let models = std::fs::canonicalize(models)
        .with_context(|| format!("{} (run scripts/setup.sh)", models.display()))?;
    let server = Server::start(&models, &samples_dir).await?;
    let mut ingest = IngestClient::new(server.channel().await?);
    let c = corpus(o.docs, 0);
    let started = Instant::now();
    for (i, texts) in c.texts.chunks(DOCS_PER_VIDEO).enumerate() {
        ingest
            .import_bda(pb::ImportBdaRequest {
                result_json: bda_result(i, texts),
                video_id: String::new(),
            })
            .await?;
    }
    let demo_id = ingest_path_done(&mut ingest, &demo, false).await?;
    ingest_path_done(&mut ingest, &speech, false).await?;
    println!(
        "server: {} judged documents imported and two videos ingested in {:.1} s",
        c.texts.len(),
        started.elapsed().as_secs_f64()
    );
    let queries = Arc::new(queries(4 * PHASE_QUERIES));
    println!(
        "{:<30} {:>7} {:>8} {:>8} {:>8} {:>6} {:>8} {:>6} {:>8} {:>8}",
        "phase",
        "searches",
        "per s",
        "p50 ms",
        "p99 ms",
        "errors",
        "cached",
        "batch",
        "RSS MiB",
        "peak MiB"
    );
    let never = Arc::new(AtomicBool::new(false));
    // Warm the connection and the model once.
    searching(&server, 1, 1.0, never.clone(), queries.clone(), 0).await?;
    let (s, e, w) = searching(&server, 1, o.seconds, never.clone(), queries.clone(), 1).await?;
    report("1 caller", &s, e, w, &server);
    let mut failed = e;
    let name = format!("{} callers", o.callers);
    let (s, e, w) = searching(
        &server,
        o.callers,
        o.seconds,
        never.clone(),
        queries.clone(),
        2,
    )
    .await?;
    report(&name, &s, e, w, &server);
    failed += e;

    // The same while two ingests and a rendered highlight run.
    let stop = Arc::new(AtomicBool::new(false));
    let work_started = Instant::now();
    let mut work = Vec::new();
    for video in [demo.clone(), speech.clone()] {
        let mut client = IngestClient::new(server.channel().await?);
        work.push(tokio::spawn(async move {
            let t = Instant::now();
            ingest_path_done(&mut client, &video, true).await?;
            anyhow::Ok(("IngestPath (re-analysis)", t.elapsed().as_secs_f64()))
        }));
    }
    let mut highlight = HighlightClient::new(server.channel().await?);
    let demo_video = demo_id.clone();
    work.push(tokio::spawn(async move {
        let t = Instant::now();
        let mut stream = highlight
            .highlight(pb::HighlightRequest {
                video_id: demo_video,
                strategy: pb::HighlightStrategy::Sliced as i32,
                slice_seconds: 10.0,
                ..Default::default()
            })
            .await?
            .into_inner();
        while stream.message().await?.is_some() {}
        anyhow::Ok(("Highlight (sliced + render)", t.elapsed().as_secs_f64()))
    }));
    let waiter = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut done = Vec::new();
            for w in work {
                done.push(w.await?);
            }
            stop.store(true, Ordering::Relaxed);
            anyhow::Ok(done)
        })
    };
    let name = format!("{} callers + 2 ingests + render", o.callers);
    let (s, e, w) = searching(
        &server,
        o.callers,
        o.seconds * 6.0,
        stop,
        queries.clone(),
        3,
    )
    .await?;
    report(&name, &s, e, w, &server);
    failed += e;
    for outcome in waiter.await?? {
        let (rpc, seconds) = outcome?;
        println!("    {rpc:<30} {seconds:>6.1} s under the search load");
    }
    println!(
        "    background work took {:.1} s",
        work_started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} searches failed");
    }
    Ok(())
}
