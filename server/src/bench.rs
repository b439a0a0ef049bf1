//! `reelforge-server bench ingest [--runs N] FILE...`: for each file, in one run, a bare
//! ffmpeg decode of the same streams against reelforge's analysis pass (decode, signals,
//! thumbnails, slice analysis, descriptors, sled commit), with CPU time and peak memory.
//!
//! Each pass runs in a fresh child process (`bench ingest-pass`), so peak RSS and child
//! rusage belong to that pass alone; passes are interleaved `runs` times and the median
//! wall time is reported, because this 2-core machine's timings drift run to run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::analysis::SignalAnalyzer;
use crate::config::Config;
use crate::ingest::{CollectSink, Pipeline, PreparedIngest};
use crate::media;
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Pass {
    /// `ffmpeg -i FILE -map 0:v:0 -f null -`
    DecodeVideo,
    /// `ffmpeg -i FILE -map 0:v:0 -map 0:a:0 -f null -`
    DecodeAll,
    /// reelforge's analysis pass (after probing, which is timed apart).
    Reelforge,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PassResult {
    pub wall_s: f64,
    /// CPU of this process and its children (ffmpeg/ffprobe).
    pub cpu_s: f64,
    /// CPU of this process alone (reelforge's own work).
    pub own_cpu_s: f64,
    pub ffmpeg_peak_rss_mib: f64,
    pub own_peak_rss_mib: f64,
    pub probe_s: f64,
}

pub async fn ingest(config: &Config, files: &[PathBuf], runs: usize) -> anyhow::Result<()> {
    if files.is_empty() {
        bail!("give at least one video file: reelforge-server bench ingest FILE...");
    }
    let runs = runs.max(1);
    println!("runs per pass: {runs} (interleaved; wall and cpu are medians, memory is the max)");
    println!(
        "{:<22} {:>7} {:<10} {:>7} {:>7} {:>7} {:>9} {:>6} {:>9} {:>10} {:>8}",
        "file",
        "media s",
        "pass",
        "wall s",
        "cpu s",
        "own cpu",
        "realtime",
        "speed",
        "probe s",
        "ffmpeg MiB",
        "own MiB"
    );
    for file in files {
        let probe = media::probe(&config.ffprobe, file)
            .await
            .with_context(|| format!("probing {}", file.display()))?;
        let mut passes = vec![Pass::DecodeVideo];
        if probe.has_audio() {
            passes.push(Pass::DecodeAll);
        }
        passes.push(Pass::Reelforge);
        let mut results: Vec<Vec<PassResult>> = vec![Vec::new(); passes.len()];
        for _ in 0..runs {
            for (i, pass) in passes.iter().enumerate() {
                results[i].push(run_pass_in_child(file, *pass)?);
            }
        }
        let media_s = probe.duration_ms as f64 / 1000.0;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let summaries: Vec<PassResult> = results.iter().map(|r| summarise(r)).collect();
        let reference = summaries[passes.len() - 2].wall_s;
        for (pass, s) in passes.iter().zip(&summaries) {
            let is_reelforge = *pass == Pass::Reelforge;
            println!(
                "{:<22} {:>7.1} {:<10} {:>7.2} {:>7.2} {:>7.2} {:>8.1}x {:>6} {:>9} {:>10.1} {:>8}",
                truncate(&name, 22),
                media_s,
                match pass {
                    Pass::DecodeVideo => "decode v",
                    Pass::DecodeAll => "decode v+a",
                    Pass::Reelforge => "reelforge",
                },
                s.wall_s,
                s.cpu_s,
                s.own_cpu_s,
                media_s / s.wall_s,
                if is_reelforge {
                    format!("{:.2}", reference / s.wall_s)
                } else {
                    "-".into()
                },
                if is_reelforge {
                    format!("{:.2}", s.probe_s)
                } else {
                    "-".into()
                },
                s.ffmpeg_peak_rss_mib,
                if is_reelforge {
                    format!("{:.1}", s.own_peak_rss_mib)
                } else {
                    "-".into()
                },
            );
        }
    }
    println!("speed = bare decode (all streams) wall / reelforge analysis wall; 1.00 = as fast as a bare decode");
    Ok(())
}

fn summarise(results: &[PassResult]) -> PassResult {
    let median = |f: fn(&PassResult) -> f64| {
        let mut v: Vec<f64> = results.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let max = |f: fn(&PassResult) -> f64| results.iter().map(f).fold(0.0, f64::max);
    PassResult {
        wall_s: median(|r| r.wall_s),
        cpu_s: median(|r| r.cpu_s),
        own_cpu_s: median(|r| r.own_cpu_s),
        ffmpeg_peak_rss_mib: max(|r| r.ffmpeg_peak_rss_mib),
        own_peak_rss_mib: max(|r| r.own_peak_rss_mib),
        probe_s: median(|r| r.probe_s),
    }
}

fn run_pass_in_child(file: &Path, pass: Pass) -> anyhow::Result<PassResult> {
    let exe = std::env::current_exe()?;
    let pass_name = clap::ValueEnum::to_possible_value(&pass).expect("every pass has a name");
    let out = std::process::Command::new(exe)
        .args(["bench", "ingest-pass", "--pass"])
        .arg(pass_name.get_name())
        .arg(file)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("{pass:?} pass failed on {}", file.display());
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).with_context(|| format!("unreadable pass result: {line}"))
}

/// Runs one pass in this process and prints its `PassResult` as JSON.
pub async fn ingest_pass(config: &Config, file: &Path, pass: Pass) -> anyhow::Result<()> {
    let result = match pass {
        Pass::DecodeVideo => bare_decode(config, file, &["-map", "0:v:0"]).await?,
        Pass::DecodeAll => bare_decode(config, file, &["-map", "0:v:0", "-map", "0:a:0"]).await?,
        Pass::Reelforge => analysis_pass(config, file).await?,
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

async fn bare_decode(config: &Config, file: &Path, maps: &[&str]) -> anyhow::Result<PassResult> {
    let started = Instant::now();
    let status = tokio::process::Command::new(&config.ffmpeg)
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(maps)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .status()
        .await?;
    if !status.success() {
        bail!("bare ffmpeg decode failed: {status}");
    }
    Ok(PassResult {
        wall_s: started.elapsed().as_secs_f64(),
        cpu_s: cpu_seconds(libc::RUSAGE_SELF) + cpu_seconds(libc::RUSAGE_CHILDREN),
        own_cpu_s: cpu_seconds(libc::RUSAGE_SELF),
        ffmpeg_peak_rss_mib: peak_rss_mib(libc::RUSAGE_CHILDREN),
        own_peak_rss_mib: peak_rss_mib(libc::RUSAGE_SELF),
        probe_s: 0.0,
    })
}

async fn analysis_pass(config: &Config, file: &Path) -> anyhow::Result<PassResult> {
    let probe_started = Instant::now();
    let probe = media::probe(&config.ffprobe, file).await?;
    let probe_s = probe_started.elapsed().as_secs_f64();
    let work = tempfile::tempdir()?;
    let mut run_config = config.clone();
    run_config.data_dir = work.path().to_path_buf();
    let store = Store::open(&work.path().join("db"), config.store_cache_mb << 20)?;
    let slice_ms = (config.ingest.slice_seconds * 1000.0) as i64;
    let prepared = PreparedIngest {
        job_id: "bench".into(),
        video_id: "0000000000000000".into(),
        sha256: "0".repeat(64),
        filename: file.display().to_string(),
        size_bytes: std::fs::metadata(file)?.len(),
        source: file.to_path_buf(),
        keep_source_at: None,
        slices: crate::ingest::plan::plan_slices(probe.duration_ms, slice_ms, &probe.keyframes_ms)?,
        probe,
        slice_ms,
        clip_ms: (config.ingest.clip_seconds * 1000.0) as i64,
        subtitles: Vec::new(),
    };
    let analyzer = Arc::new(SignalAnalyzer);
    let text_embedder =
        crate::models::load_default_text_embedder(&config.models.dir, config.models.threads)?;
    let transcriber = crate::models::load_transcriber(&config.models)?;
    let pipeline = Pipeline {
        config: &run_config,
        analyzer: analyzer.as_ref(),
        text_embedder: &text_embedder,
        transcriber: transcriber
            .as_ref()
            .map(|t| t as &dyn crate::models::Transcriber),
        image_embedder: None,
        search: None,
    };
    let writer = store.begin_video(&prepared.video_id)?;
    let sink = CollectSink::default();
    let own_before = cpu_seconds(libc::RUSAGE_SELF);
    let cpu_before = own_before + cpu_seconds(libc::RUSAGE_CHILDREN);
    let started = Instant::now();
    pipeline
        .run(&prepared, &work.path().join("staging"), &writer, &sink)
        .await?;
    Ok(PassResult {
        wall_s: started.elapsed().as_secs_f64(),
        cpu_s: cpu_seconds(libc::RUSAGE_SELF) + cpu_seconds(libc::RUSAGE_CHILDREN) - cpu_before,
        own_cpu_s: cpu_seconds(libc::RUSAGE_SELF) - own_before,
        ffmpeg_peak_rss_mib: peak_rss_mib(libc::RUSAGE_CHILDREN),
        own_peak_rss_mib: peak_rss_mib(libc::RUSAGE_SELF),
        probe_s,
    })
}

fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: getrusage only fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    usage
}

fn cpu_seconds(who: libc::c_int) -> f64 {
    let u = rusage(who);
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(u.ru_utime) + s(u.ru_stime)
}

/// Peak RSS of this process (RUSAGE_SELF) or its largest waited-for child.
fn peak_rss_mib(who: libc::c_int) -> f64 {
    rusage(who).ru_maxrss as f64 / 1024.0
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// `bench models`: every offline model's load time, speed and memory. Text embedding:
/// ms per text one by one and batched. Speech: real-time factor on read speech (and its
/// word error rate when a reference transcript is known), and on silence (gated).
/// Reranking: ms per query over 20 candidates. Peak RSS of the process at the end.
pub fn models(config: &Config, count: usize, speech: &[PathBuf]) -> anyhow::Result<()> {
    use crate::models::{
        conformance::word_error_rate, RerankCandidate, Reranker, SpeechAudio, TextEmbedder,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rss = || current_rss_mib();
    println!("threads                      {}", config.models.threads);
    println!("RSS at start                 {:.0} MiB", rss());

    let started = Instant::now();
    let model =
        crate::models::load_default_text_embedder(&config.models.dir, config.models.threads)?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let texts = sample_texts(count);
    model.embed_blocking(&texts[..1])?; // warm-up
    let started = Instant::now();
    for text in &texts {
        model.embed_blocking(std::slice::from_ref(text))?;
    }
    let single_ms = started.elapsed().as_secs_f64() * 1000.0 / texts.len() as f64;
    let started = Instant::now();
    model.embed_blocking(&texts)?;
    let batched_ms = started.elapsed().as_secs_f64() * 1000.0 / texts.len() as f64;
    println!();
    println!("text embedder                {}", model.name());
    println!("  load                       {load_ms:.0} ms");
    println!(
        "  per text, one by one       {single_ms:.1} ms ({} texts)",
        texts.len()
    );
    println!("  per text, batched          {batched_ms:.1} ms");
    println!("  RSS after                  {:.0} MiB", rss());

    let started = Instant::now();
    let whisper = crate::models::load_default_transcriber(
        &config.models.dir,
        config.models.threads,
        config.models.speech_gate_db,
    )?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (audio, reference) = runtime.block_on(speech_input(config, speech))?;
    let seconds = audio.len() as f64 / 16_000.0;
    let transcribe = |samples: Vec<f32>| {
        let started = Instant::now();
        let out = whisper.transcribe_blocking(&SpeechAudio {
            start_ms: 0,
            samples,
            is_final: true,
        });
        out.map(|o| (o, started.elapsed().as_secs_f64()))
    };
    let (heard, wall) = transcribe(audio)?;
    let text: Vec<&str> = heard.segments.iter().map(|s| s.text.as_str()).collect();
    println!();
    println!(
        "speech                       {}",
        crate::models::WhisperTranscriber::NAME
    );
    println!("  load                       {load_ms:.0} ms");
    println!(
        "  speech: {seconds:.1} s in        {wall:.2} s = real-time factor {:.2} ({} segments)",
        wall / seconds,
        heard.segments.len()
    );
    if let Some(reference) = reference {
        println!(
            "  word error rate            {:.1} %",
            100.0 * word_error_rate(&reference, &text.join(" "))
        );
    }
    let (quiet, wall) = transcribe(vec![0.0; 60 * 16_000])?;
    println!(
        "  silence: 60 s in           {wall:.3} s (gated: {:.0} s skipped)",
        quiet.skipped_silent_ms as f64 / 1000.0
    );
    println!("  RSS after                  {:.0} MiB", rss());

    let reranker = crate::models::EmbeddingReranker::new(std::sync::Arc::new(model.clone()));
    let candidates: Vec<RerankCandidate> = texts
        .iter()
        .take(20)
        .enumerate()
        .map(|(i, t)| RerankCandidate {
            text: t.clone(),
            first_stage_score: (20 - i) as f32,
            vector: None,
        })
        .collect();
    let runs = 10;
    let started = Instant::now();
    for _ in 0..runs {
        runtime.block_on(reranker.rerank("the goalkeeper saves a penalty", &candidates))?;
    }
    println!();
    println!("reranker                     {}", reranker.name());
    println!(
        "  per query, {} candidates    {:.1} ms",
        candidates.len(),
        started.elapsed().as_secs_f64() * 1000.0 / runs as f64
    );
    println!();
    println!(
        "peak RSS                     {:.0} MiB",
        peak_rss_mib(libc::RUSAGE_SELF)
    );
    Ok(())
}

/// The speech to time: the given files, or the LibriVox utterances setup installs (with
/// their reference transcript).
async fn speech_input(
    config: &Config,
    files: &[PathBuf],
) -> anyhow::Result<(Vec<f32>, Option<String>)> {
    let mut audio = Vec::new();
    if !files.is_empty() {
        for f in files {
            audio.extend(crate::media::audio::read_pcm(&config.ffmpeg, f).await?);
        }
        return Ok((audio, None));
    }
    let dir = PathBuf::from("assets/speech/librivox");
    let transcription = std::fs::read_to_string(dir.join("transcription")).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (run scripts/setup.sh, or pass audio files)",
            dir.display()
        )
    })?;
    let mut reference = Vec::new();
    for line in transcription.lines() {
        let Some((text, id)) = line.rsplit_once(" (") else {
            continue;
        };
        let wav = dir.join(format!("{}.wav", id.trim_end_matches(')')));
        audio.extend(crate::media::audio::read_pcm(&config.ffmpeg, &wav).await?);
        audio.extend(std::iter::repeat_n(0.0, 8_000));
        reference.push(
            text.replace("<s>", "")
                .replace("</s>", "")
                .trim()
                .to_string(),
        );
    }
    Ok((audio, Some(reference.join(" "))))
}

/// Resident memory now, from /proc (MiB).
fn current_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn sample_texts(count: usize) -> Vec<String> {
    let subjects = [
        "the crowd",
        "a dog",
        "the goalkeeper",
        "two friends",
        "a red car",
        "the band",
    ];
    let actions = [
        "cheers loudly",
        "runs across the field",
        "dives to save a shot",
        "laughs at a joke",
        "speeds around a corner",
        "plays the final song",
    ];
    (0..count.max(20))
        .map(|i| {
            format!(
                "{} {} in scene {i}.",
                subjects[i % subjects.len()],
                actions[(i / subjects.len()) % actions.len()]
            )
        })
        .collect()
}

/// `bench search`: builds a search index of `docs` synthetic documents in a temporary
/// sled store and times BM25, the exact vector scan, the HNSW graph (with its recall@10
/// against the exact scan) and the hybrid path (BM25 + graph + RRF) over `queries`
/// queries, printing build times, p50/p99 latencies and memory.
///
/// Words are drawn Zipf-like (rank r with probability ∝ 1/r over 20,000 words, so the
/// commonest word is ~7 % of all words, as in English text); vectors are unit vectors
/// scattered around 512 centres, since real embeddings cluster by topic (uniform random
/// vectors in 384 dimensions have no meaningful neighbours). Synthetic: this measures
/// speed and scaling, not relevance (the `search-compare` bench judges relevance).
pub fn search_scale(
    docs: usize,
    dims: usize,
    queries: usize,
    unpersisted: bool,
    ef_values: &[usize],
) -> anyhow::Result<()> {
    use crate::search::fusion::{fuse, Fusion};
    use crate::search::index::{DocKind, SearchDoc, SearchIndex, Space};
    use crate::search::vectors::AnnConfig;

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
    // Text embeddings have a low intrinsic dimension: a point is a topic centre in a
    // 24-d latent space plus spread, mapped to `dims` by a fixed random matrix, plus a
    // little noise in every dimension.
    const LATENT: usize = 24;
    let centres: Vec<Vec<f32>> = (0..512)
        .map(|_| {
            (0..LATENT)
                .map(|_| uniform(&mut next) as f32 - 0.5)
                .collect()
        })
        .collect();
    let basis: Vec<Vec<f32>> = (0..dims)
        .map(|_| {
            (0..LATENT)
                .map(|_| uniform(&mut next) as f32 - 0.5)
                .collect()
        })
        .collect();
    let vector = |next: &mut dyn FnMut() -> u64| {
        let c = &centres[(next() % centres.len() as u64) as usize];
        let z: Vec<f32> = c
            .iter()
            .map(|x| x + 0.6 * (uniform(next) as f32 - 0.5))
            .collect();
        let v: Vec<f32> = basis
            .iter()
            .map(|row| {
                row.iter().zip(&z).map(|(a, b)| a * b).sum::<f32>()
                    + 0.02 * (uniform(next) as f32 - 0.5)
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
    };
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
    let index = SearchIndex::open_with(&db, ann)?;
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
        batch.push((doc, vector(&mut next)));
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
        SearchIndex::open_with(&db, ann)?
    };
    let reopen_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    index.build_graphs_now();
    index.wait_for_graphs();
    let graph_s = started.elapsed().as_secs_f64();
    let qs: Vec<(String, Vec<f32>)> = (0..queries)
        .map(|_| {
            let words: Vec<String> = (0..3).map(|_| word(&mut next)).collect();
            (words.join(" "), vector(&mut next))
        })
        .collect();
    let all = |_: &crate::search::index::DocMeta| true;
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

/// `bench highlight`: a 10-minute video made of `file` looped (demo.mp4 by default),
/// ingested once, then each strategy run end to end in this process (analysis,
/// post-processing and the rendered reel): wall time and CPU (own and ffmpeg's), sliced
/// with concurrency 1 and `concurrency`, and render time against the reel's length.
pub async fn highlight(
    config: &Config,
    file: &Path,
    minutes: u32,
    concurrency: usize,
) -> anyhow::Result<()> {
    use crate::highlight::job::{self, HighlightRequest, StrategyKind};
    use crate::highlight::library::{Library, NewEntry};
    use crate::highlight::matched::MatchOptions;
    use crate::highlight::render::{RenderOptions, Subtitles};
    use crate::highlight::segments::Fit;
    use crate::ingest::{Engine, IngestOptions, Providers};

    let work = tempfile::tempdir()?;
    let long = work.path().join("long.mp4");
    let probe = media::probe(&config.ffprobe, file).await?;
    let loops = ((minutes as i64 * 60_000) / probe.duration_ms.max(1)).max(1);
    let status = std::process::Command::new(&config.ffmpeg)
        .args([
            "-v",
            "error",
            "-y",
            "-stream_loop",
            &(loops - 1).to_string(),
            "-i",
        ])
        .arg(file)
        .args(["-c", "copy"])
        .arg(&long)
        .status()?;
    anyhow::ensure!(status.success(), "ffmpeg could not loop {}", file.display());
    let mut run_config = config.clone();
    run_config.data_dir = work.path().join("data");
    run_config.allowed_roots = vec![work.path().to_path_buf()];
    let text_embedder: Arc<dyn crate::models::TextEmbedder> = Arc::new(
        crate::models::load_default_text_embedder(&config.models.dir, config.models.threads)?,
    );
    let providers = Providers {
        analyzer: Arc::new(SignalAnalyzer),
        reranker: Arc::new(crate::models::default_reranker(text_embedder.clone())),
        text_embedder,
        transcriber: None,
        image_embedder: None,
        video_embedder: None,
        data_automation: None,
    };
    let engine = Engine::open(run_config, providers)?;
    let started = Instant::now();
    let handle = engine
        .ingest_path(
            &long.display().to_string(),
            IngestOptions {
                force: false,
                slice_seconds: 30.0,
                clip_seconds: 0.0,
            },
        )
        .await?;
    let job_id = handle.id();
    let video_id = loop {
        let record = engine.job(&job_id).await?;
        if record.state.is_final() {
            anyhow::ensure!(record.error.is_none(), "ingest failed: {:?}", record.error);
            break record.video_id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let video = engine.store().video(&video_id)?.expect("ingested");
    println!(
        "video                      {:.1} min ({} × {}), ingested in {:.1} s (no speech model)",
        video.probe.duration_ms as f64 / 60_000.0,
        loops,
        file.display(),
        started.elapsed().as_secs_f64()
    );
    let request = |strategy, target_ms: Option<i64>, render: bool| HighlightRequest {
        video_id: video_id.clone(),
        strategy,
        fit: Fit {
            target_ms,
            ..Fit::default()
        },
        render: render.then_some(RenderOptions {
            crossfade_ms: 0,
            subtitles: Subtitles::None,
            music: None,
        }),
    };
    let sliced = |c| StrategyKind::Sliced {
        slice_ms: 30_000,
        concurrency: c,
    };
    let mut runs = vec![
        (
            "direct, choose only",
            request(StrategyKind::Direct, None, false),
        ),
        ("sliced c=1, choose only", request(sliced(1), None, false)),
        (
            "sliced c=N, choose only",
            request(sliced(concurrency), None, false),
        ),
        (
            "points, clips, choose only",
            request(StrategyKind::Points(MatchOptions::default()), None, false),
        ),
        (
            "points, clips, prefilter+dedup+coarse",
            request(
                StrategyKind::Points(MatchOptions {
                    prefilter: true,
                    dedup_similarity: 0.995,
                    coarse: true,
                    ..MatchOptions::default()
                }),
                None,
                false,
            ),
        ),
        ("direct + render", request(StrategyKind::Direct, None, true)),
        (
            "sliced c=N + render",
            request(sliced(concurrency), None, true),
        ),
    ];
    for target in [10_000, 30_000, 60_000] {
        runs.push((
            "sliced + render, target",
            request(sliced(concurrency), Some(target), true),
        ));
    }
    // A library entry: the first loop's strongest moment, for Template to find in the
    // other loops.
    let first = job::run(
        &engine,
        &request(StrategyKind::Direct, None, false),
        &|_| {},
    )
    .await?;
    if let Some(best) = first.segments.first() {
        let library = Library::open(engine.store().db())?;
        let entry = Library::prepare(
            engine.store(),
            &NewEntry {
                video_id: video_id.clone(),
                start_ms: best.start_ms,
                end_ms: best.end_ms,
                category: "bench".into(),
                tags: vec![],
                description: best.description.clone(),
                score: 1.0,
            },
        )?;
        library.put(&entry)?;
        runs.insert(
            5,
            (
                "template, choose only",
                request(
                    StrategyKind::Template {
                        category: None,
                        // The API's default for Template.
                        options: MatchOptions {
                            prefilter: true,
                            ..MatchOptions::default()
                        },
                    },
                    None,
                    false,
                ),
            ),
        );
    }
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        format!("run (N = {concurrency})"),
        "wall s",
        "CPU s",
        "own CPU",
        "segments",
        "reel s",
        "clips"
    );
    for (name, req) in runs {
        let own_before = cpu_seconds(libc::RUSAGE_SELF);
        let cpu_before = own_before + cpu_seconds(libc::RUSAGE_CHILDREN);
        let started = Instant::now();
        let compared = std::sync::Mutex::new(None);
        let sink = |e: job::HighlightEvent| {
            if let job::HighlightEvent::Funnel(f) = e {
                *compared.lock().expect("not poisoned") = Some((f.total, f.after_coarse));
            }
        };
        let result = job::run(&engine, &req, &sink).await?;
        let compared = match compared.into_inner().expect("not poisoned") {
            Some((total, kept)) => format!("{kept}/{total}"),
            None => "-".into(),
        };
        let wall = started.elapsed().as_secs_f64();
        let label = match req.fit.target_ms {
            Some(t) => format!("{name} {} s", t / 1000),
            None => name.to_string(),
        };
        println!(
            "{:<40} {:>9.3} {:>9.3} {:>9.3} {:>9} {:>9.1} {:>9}",
            label.replace("N", &concurrency.to_string()),
            wall,
            cpu_seconds(libc::RUSAGE_SELF) + cpu_seconds(libc::RUSAGE_CHILDREN) - cpu_before,
            cpu_seconds(libc::RUSAGE_SELF) - own_before,
            result.segments.len(),
            result.reel_duration_ms as f64 / 1000.0,
            compared,
        );
    }
    engine.shutdown().await;
    Ok(())
}
