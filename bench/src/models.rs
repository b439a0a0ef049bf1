//! `reelforge-bench models`: every offline model's load time, speed and memory.

use std::path::PathBuf;
use std::time::Instant;

use reelforge_core::eval::word_error_rate;
use reelforge_engine::EngineConfig;
use reelforge_media as media;

use crate::measure::{current_rss_mib, peak_rss_mib, sample_texts};

/// `bench models`: every offline model's load time, speed and memory. Text embedding:
/// ms per text one by one and batched. Speech: real-time factor on read speech (and its
/// word error rate when a reference transcript is known), and on silence (gated).
/// Reranking: ms per query over 20 candidates. Peak RSS of the process at the end.
pub fn models(config: &EngineConfig, count: usize, speech: &[PathBuf]) -> anyhow::Result<()> {
    use reelforge_models::{RerankCandidate, Reranker, SpeechAudio, TextEmbedder};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rss = || current_rss_mib();
    println!("threads                      {}", config.models.threads);
    println!("RSS at start                 {:.0} MiB", rss());

    let started = Instant::now();
    let model =
        reelforge_models::load_default_text_embedder(&config.models.dir, config.models.threads)?;
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
    let whisper = reelforge_models::load_default_transcriber(
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
        reelforge_models::WhisperTranscriber::NAME
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

    let reranker = reelforge_models::EmbeddingReranker::new(std::sync::Arc::new(model.clone()));
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
    config: &EngineConfig,
    files: &[PathBuf],
) -> anyhow::Result<(Vec<f32>, Option<String>)> {
    let mut audio = Vec::new();
    if !files.is_empty() {
        for f in files {
            audio.extend(media::audio::read_pcm(&config.ffmpeg, f).await?);
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
        audio.extend(media::audio::read_pcm(&config.ffmpeg, &wav).await?);
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
