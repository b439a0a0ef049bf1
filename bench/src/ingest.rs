//! `reelforge-bench ingest [--runs N] FILE...`: for each file, in one run, a bare ffmpeg
//! decode of the same streams against reelforge's analysis pass (decode, signals,
//! thumbnails, slice analysis, descriptors, sled commit), with CPU time and peak memory.
//!
//! Each pass runs in a fresh child process (`reelforge-bench ingest-pass`), so peak RSS
//! and child rusage belong to that pass alone; passes are interleaved `runs` times and
//! the median wall time is reported, because this 2-core machine's timings drift run to
//! run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use reelforge_engine::ingest::{Pipeline, PreparedIngest};
use reelforge_engine::jobs::CollectSink;
use reelforge_engine::store::Store;
use reelforge_engine::EngineConfig;
use reelforge_media as media;
use reelforge_models::analysis::SignalAnalyzer;
use serde::{Deserialize, Serialize};

use crate::measure::{cpu_seconds, peak_rss_mib, truncate};

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

pub async fn ingest(config: &EngineConfig, files: &[PathBuf], runs: usize) -> anyhow::Result<()> {
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
        .args(["ingest-pass", "--pass"])
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
pub async fn ingest_pass(config: &EngineConfig, file: &Path, pass: Pass) -> anyhow::Result<()> {
    let result = match pass {
        Pass::DecodeVideo => bare_decode(config, file, &["-map", "0:v:0"]).await?,
        Pass::DecodeAll => bare_decode(config, file, &["-map", "0:v:0", "-map", "0:a:0"]).await?,
        Pass::Reelforge => analysis_pass(config, file).await?,
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

async fn bare_decode(
    config: &EngineConfig,
    file: &Path,
    maps: &[&str],
) -> anyhow::Result<PassResult> {
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

async fn analysis_pass(config: &EngineConfig, file: &Path) -> anyhow::Result<PassResult> {
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
        tenant: reelforge_engine::DEFAULT_TENANT.into(),
        video_id: "0000000000000000".into(),
        sha256: "0".repeat(64),
        filename: file.display().to_string(),
        size_bytes: std::fs::metadata(file)?.len(),
        source: file.to_path_buf(),
        keep_source_at: None,
        slices: reelforge_engine::ingest::plan::plan_slices(
            probe.duration_ms,
            slice_ms,
            &probe.keyframes_ms,
        )?,
        probe,
        slice_ms,
        clip_ms: (config.ingest.clip_seconds * 1000.0) as i64,
        subtitles: Vec::new(),
        language: None,
        descriptions: config.ingest.description_language,
    };
    let analyzer = Arc::new(SignalAnalyzer);
    let text_embedder = reelforge_models::load_text_embedder(
        &config.models.dir,
        &config.models.text_embedder,
        config.models.threads,
    )?;
    let transcriber = reelforge_models::load_transcriber(&config.models)?;
    let sound_tagger = reelforge_models::load_sound_tagger(&config.models)?;
    let scene_tagger = reelforge_models::load_scene_tagger(&config.models)?;
    let text_reader = reelforge_models::load_text_reader(&config.models)?;
    let pipeline = Pipeline {
        config: &run_config,
        analyzer: analyzer.as_ref(),
        text_embedder: text_embedder.as_ref(),
        transcriber: transcriber
            .as_ref()
            .map(|t| t as &dyn reelforge_models::Transcriber),
        image_embedder: None,
        sound_tagger: sound_tagger.clone(),
        scene_tagger: scene_tagger.clone(),
        text_reader: text_reader.clone(),
        search: None,
    };
    let writer = store.begin_video(&prepared.video_id)?;
    let sink = CollectSink::default();
    let own_before = cpu_seconds(libc::RUSAGE_SELF);
    let cpu_before = own_before + cpu_seconds(libc::RUSAGE_CHILDREN);
    let started = Instant::now();
    pipeline
        .run(
            &prepared,
            &work.path().join("staging"),
            &writer,
            &sink,
            None,
        )
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
