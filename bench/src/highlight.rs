//! `reelforge-bench highlight`: each strategy end to end on a long video.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use reelforge_engine::highlights::{HighlightEvent, HighlightRequest, StrategyOptions};
use reelforge_engine::ingest::IngestOptions;
use reelforge_engine::library::NewEntry;
use reelforge_engine::{Engine, EngineConfig};
use reelforge_media as media;
use reelforge_models::analysis::SignalAnalyzer;
use reelforge_models::{default_reranker, load_text_embedder, Providers, TextEmbedder};

use crate::measure::cpu_seconds;

/// `bench highlight`: a 10-minute video made of `file` looped (demo.mp4 by default),
/// ingested once, then each strategy run end to end in this process (analysis,
/// post-processing and the rendered reel): wall time and CPU (own and ffmpeg's), sliced
/// with concurrency 1 and `concurrency`, and render time against the reel's length.
pub async fn highlight(
    config: &EngineConfig,
    file: &Path,
    minutes: u32,
    concurrency: usize,
) -> anyhow::Result<()> {
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
    let text_embedder: Arc<dyn TextEmbedder> = load_text_embedder(
        &config.models.dir,
        &config.models.text_embedder,
        config.models.threads,
    )?;
    let providers = Providers {
        analyzer: Arc::new(SignalAnalyzer),
        reranker: Arc::new(default_reranker(text_embedder.clone())),
        text_embedder,
        transcriber: None,
        image_embedder: None,
        video_embedder: None,
        data_automation: None,
        sound_tagger: reelforge_models::load_sound_tagger(&config.models)?,
        scene_tagger: reelforge_models::load_scene_tagger(&config.models)?,
        text_reader: reelforge_models::load_text_reader(&config.models)?,
    };
    let engine = Engine::open(run_config, providers)?;
    let started = Instant::now();
    let handle = engine
        .ingest
        .ingest_path(
            &long.display().to_string(),
            IngestOptions {
                tenant: String::new(),
                key_id: None,
                force: false,
                slice_seconds: 30.0,
                clip_seconds: 0.0,
                language: String::new(),
            },
        )
        .await?;
    let job_id = handle.id();
    let video_id = loop {
        let record = engine
            .catalog
            .job(reelforge_engine::DEFAULT_TENANT, &job_id)
            .await?;
        if record.state.is_final() {
            anyhow::ensure!(record.error.is_none(), "ingest failed: {:?}", record.error);
            break record.video_id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let video = engine.catalog.find(&video_id).await?.expect("ingested");
    println!(
        "video                      {:.1} min ({} × {}), ingested in {:.1} s (no speech model)",
        video.probe.duration_ms as f64 / 60_000.0,
        loops,
        file.display(),
        started.elapsed().as_secs_f64()
    );
    let request =
        |strategy: &str, options: StrategyOptions, target_ms: Option<i64>, render: bool| {
            HighlightRequest {
                video_id: video_id.clone(),
                strategy: strategy.into(),
                options,
                target_seconds: target_ms.map(|t| t as f64 / 1000.0),
                render: Some(render),
                ..HighlightRequest::default()
            }
        };
    let none = StrategyOptions::default;
    let sliced = |c: usize| StrategyOptions {
        concurrency: Some(c as u32),
        ..StrategyOptions::default()
    };
    let mut runs = vec![
        (
            "direct, choose only",
            request("direct", none(), None, false),
        ),
        (
            "sliced c=1, choose only",
            request("sliced", sliced(1), None, false),
        ),
        (
            "sliced c=N, choose only",
            request("sliced", sliced(concurrency), None, false),
        ),
        (
            "points, clips, choose only",
            request("points", none(), None, false),
        ),
        (
            "points, clips, prefilter+dedup+coarse",
            request(
                "points",
                StrategyOptions {
                    prefilter: Some(true),
                    dedup_similarity: Some(0.995),
                    coarse: Some(true),
                    ..StrategyOptions::default()
                },
                None,
                false,
            ),
        ),
        ("direct + render", request("direct", none(), None, true)),
        (
            "sliced c=N + render",
            request("sliced", sliced(concurrency), None, true),
        ),
    ];
    for target in [10_000, 30_000, 60_000] {
        runs.push((
            "sliced + render, target",
            request("sliced", sliced(concurrency), Some(target), true),
        ));
    }
    let highlights = &engine.highlights;
    // A library entry: the first loop's strongest moment, for Template to find in the
    // other loops.
    let direct = highlights
        .plan(
            reelforge_engine::DEFAULT_TENANT,
            &request("direct", none(), None, false),
        )
        .await?;
    let first = highlights.run(&direct, &|_| {}).await?;
    if let Some(best) = first.segments.first() {
        engine
            .library
            .add(
                reelforge_engine::DEFAULT_TENANT,
                NewEntry {
                    video_id: video_id.clone(),
                    start_seconds: best.start_ms as f64 / 1000.0,
                    end_seconds: best.end_ms as f64 / 1000.0,
                    category: "bench".into(),
                    tags: vec![],
                    description: best.description.clone(),
                    score: None,
                },
            )
            .await?;
        runs.insert(
            5,
            (
                "template, choose only",
                request("template", none(), None, false),
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
        let sink = |e: HighlightEvent| {
            if let HighlightEvent::Funnel(f) = e {
                *compared.lock().expect("not poisoned") = Some((f.total, f.after_coarse));
            }
        };
        let plan = highlights
            .plan(reelforge_engine::DEFAULT_TENANT, &req)
            .await?;
        let result = highlights.run(&plan, &sink).await?;
        let compared = match compared.into_inner().expect("not poisoned") {
            Some((total, kept)) => format!("{kept}/{total}"),
            None => "-".into(),
        };
        let wall = started.elapsed().as_secs_f64();
        let label = match plan.fit.target_ms {
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
