//! `reelforge-server bench ingest FILE...`: for each file, in one run, times a bare ffmpeg
//! decode of the same streams against reelforge's full analysis pass (decode, signals,
//! thumbnails, slice analysis, descriptors, sled commit) and reports peak memory of the
//! reelforge process and of the ffmpeg children.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::analysis::SignalAnalyzer;
use crate::config::Config;
use crate::ingest::{CollectSink, Pipeline, PreparedIngest};
use crate::media;
use crate::store::Store;

struct Measured {
    wall_s: f64,
    cpu_s: f64,
    peak_rss_mib: f64,
}

pub async fn ingest(config: &Config, files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    if files.is_empty() {
        bail!("give at least one video file: reelforge-server bench ingest FILE...");
    }
    println!(
        "{:<28} {:>8} {:>10} {:>9} {:>9} {:>11} {:>8} {:>11} {:>11}",
        "file",
        "media s",
        "pass",
        "wall s",
        "cpu s",
        "x realtime",
        "speed",
        "ffmpeg MiB",
        "server MiB"
    );
    for file in files {
        run_one(config, file)
            .await
            .with_context(|| format!("benchmarking {}", file.display()))?;
    }
    println!("speed = bare decode wall time / pass wall time (1.00 = as fast as a bare decode)");
    Ok(())
}

async fn run_one(config: &Config, file: &Path) -> anyhow::Result<()> {
    let probe = media::probe(&config.ffprobe, file).await?;
    let media_s = probe.duration_ms as f64 / 1000.0;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    // reelforge first: getrusage(RUSAGE_CHILDREN).ru_maxrss then holds its ffmpeg's peak.
    reset_peak_rss();
    let cpu_before = cpu_seconds(libc::RUSAGE_SELF) + cpu_seconds(libc::RUSAGE_CHILDREN);
    let work = tempfile::tempdir()?;
    let mut run_config = config.clone();
    run_config.data_dir = work.path().to_path_buf();
    let store = Store::open(&work.path().join("db"))?;
    let slices = crate::ingest::plan::plan_slices(
        probe.duration_ms,
        (config.ingest.slice_seconds * 1000.0) as i64,
        &probe.keyframes_ms,
    )?;
    let prepared = PreparedIngest {
        job_id: "bench".into(),
        video_id: "0000000000000000".into(),
        sha256: "0".repeat(64),
        filename: name.clone(),
        size_bytes: std::fs::metadata(file)?.len(),
        source: file.to_path_buf(),
        keep_source_at: None,
        probe: probe.clone(),
        slice_ms: (config.ingest.slice_seconds * 1000.0) as i64,
        clip_ms: (config.ingest.clip_seconds * 1000.0) as i64,
        slices,
    };
    let analyzer = Arc::new(SignalAnalyzer);
    let pipeline = Pipeline {
        config: &run_config,
        store: &store,
        analyzer: analyzer.as_ref(),
    };
    let sink = CollectSink::default();
    let started = Instant::now();
    pipeline
        .run(&prepared, &work.path().join("staging"), &sink)
        .await?;
    let analysis = Measured {
        wall_s: started.elapsed().as_secs_f64(),
        cpu_s: cpu_seconds(libc::RUSAGE_SELF) + cpu_seconds(libc::RUSAGE_CHILDREN) - cpu_before,
        peak_rss_mib: children_peak_rss_mib(),
    };
    let server_peak = own_peak_rss_mib();

    let video_only = bare_decode(&config.ffmpeg, file, &["-map", "0:v:0"])?;
    let with_audio = if probe.has_audio() {
        Some(bare_decode(
            &config.ffmpeg,
            file,
            &["-map", "0:v:0", "-map", "0:a:0"],
        )?)
    } else {
        None
    };

    let row = |pass: &str, m: &Measured, speed: Option<f64>, server: Option<f64>| {
        println!(
            "{:<28} {:>8.1} {:>10} {:>9.2} {:>9.2} {:>11.1} {:>8} {:>11.1} {:>11}",
            truncate(&name, 28),
            media_s,
            pass,
            m.wall_s,
            m.cpu_s,
            media_s / m.wall_s,
            speed
                .map(|s| format!("{s:.2}"))
                .unwrap_or_else(|| "-".into()),
            m.peak_rss_mib,
            server
                .map(|s| format!("{s:.1}"))
                .unwrap_or_else(|| "-".into()),
        );
    };
    row("decode v", &video_only, None, None);
    let reference = match &with_audio {
        Some(m) => {
            row("decode v+a", m, None, None);
            m.wall_s
        }
        None => video_only.wall_s,
    };
    row(
        "reelforge",
        &analysis,
        Some(reference / analysis.wall_s),
        Some(server_peak),
    );
    Ok(())
}

/// `ffmpeg -i FILE <maps> -f null -`, waited for with wait4 so its own rusage is known.
fn bare_decode(ffmpeg: &str, file: &Path, maps: &[&str]) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let child = std::process::Command::new(ffmpeg)
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(maps)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .spawn()?;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if rc != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("bare ffmpeg decode failed (status {status})");
    }
    Ok(Measured {
        wall_s: started.elapsed().as_secs_f64(),
        cpu_s: timeval_s(usage.ru_utime) + timeval_s(usage.ru_stime),
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
    })
}

fn timeval_s(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    usage
}

fn cpu_seconds(who: libc::c_int) -> f64 {
    let u = rusage(who);
    timeval_s(u.ru_utime) + timeval_s(u.ru_stime)
}

fn children_peak_rss_mib() -> f64 {
    rusage(libc::RUSAGE_CHILDREN).ru_maxrss as f64 / 1024.0
}

/// Peak resident set of this process since the last reset (VmHWM).
fn own_peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Resets VmHWM so each file's peak is its own (Linux: write 5 to clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}
