//! `reelforge-bench models`: every offline model's load time, speed and memory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use reelforge_core::eval::{character_error_rate, word_error_rate};
use reelforge_engine::EngineConfig;
use reelforge_media as media;

use reelforge_models::{SpeechAudio, Transcriber, WhisperTranscriber};

use crate::measure::{current_rss_mib, peak_rss_mib, sample_texts};

/// Chinese read speech with its transcript (`transcription`: one `ID TEXT` line per
/// `ID.wav`), installed by scripts/setup.sh.
pub const CHINESE_SPEECH: &str = "assets/speech/mandarin";

/// `bench models`: every offline model's load time, speed and memory. Text embedding:
/// ms per text one by one and batched. Speech: real-time factor on read speech (and its
/// word error rate when a reference transcript is known), and on silence (gated).
/// Sound events: ms per second of audio and top-k hit rates on real recordings.
/// Reranking: ms per query over 20 candidates. Peak RSS of the process at the end.
pub fn models(config: &EngineConfig, count: usize, speech: &[PathBuf]) -> anyhow::Result<()> {
    use reelforge_models::{RerankCandidate, Reranker};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rss = || current_rss_mib();
    println!("threads                      {}", config.models.threads);
    println!("RSS at start                 {:.0} MiB", rss());

    let texts = sample_texts(count);
    // Each installed offline text embedder; the configured one also serves the reranker.
    let mut configured = None;
    for name in reelforge_models::LOCAL_TEXT_EMBEDDERS {
        let started = Instant::now();
        let model = match reelforge_models::load_text_embedder(
            &config.models.dir,
            name,
            config.models.threads,
        ) {
            Ok(model) => model,
            Err(e) => {
                println!("\ntext embedder                {name}: not measured ({e})");
                continue;
            }
        };
        let load_ms = started.elapsed().as_secs_f64() * 1000.0;
        let embed = |texts: &[String]| {
            runtime.block_on(model.embed(texts, reelforge_models::EmbedPurpose::Index))
        };
        embed(&texts[..1])?; // warm-up
        let started = Instant::now();
        for text in &texts {
            embed(std::slice::from_ref(text))?;
        }
        let single_ms = started.elapsed().as_secs_f64() * 1000.0 / texts.len() as f64;
        let started = Instant::now();
        embed(&texts)?;
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
        if name == config.models.text_embedder {
            configured = Some(model);
        }
    }

    let (audio, reference) = runtime.block_on(speech_input(config, speech))?;
    for name in reelforge_models::whisper::MODELS {
        let Some(dir) = WhisperTranscriber::dir_of(&config.models.dir, name) else {
            continue;
        };
        if !dir.exists() {
            println!();
            println!("speech                       {name}: not installed (scripts/setup.sh)");
            continue;
        }
        let started = Instant::now();
        let whisper = reelforge_models::load_whisper(
            &config.models.dir,
            name,
            config.models.threads,
            config.models.speech_gate_db,
        )?;
        let load_ms = started.elapsed().as_secs_f64() * 1000.0;
        speech_rows(
            &whisper,
            load_ms,
            &audio,
            reference.as_deref(),
            &config.ffmpeg,
            &runtime,
        )?;
        println!("  RSS after                  {:.0} MiB", rss());
    }

    runtime.block_on(sound_rows(config))?;
    println!("  RSS after                  {:.0} MiB", rss());
    runtime.block_on(picture_rows(config))?;
    println!("  RSS after                  {:.0} MiB", rss());

    let Some(model) = configured else {
        anyhow::bail!(
            "models.text_embedder {} is not an offline model: the local reranker needs one",
            config.models.text_embedder
        );
    };
    let reranker = reelforge_models::EmbeddingReranker::new(model);
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

/// The sound tagger's rows: load time, ms per second of audio, and how often each real
/// recording's own class is the window's first (top-1) or among its first three (top-3):
/// the applause recording (any crowd class), the two music loops (Music), the LibriVox
/// utterances (a voice class; and the voice score over the gate).
async fn sound_rows(config: &EngineConfig) -> anyhow::Result<()> {
    use reelforge_models::sound::{self, SoundWindow};
    let started = Instant::now();
    let Some(tagger) = reelforge_models::load_sound_tagger(&config.models)? else {
        println!();
        println!("sound tagger                 none (models.sound_tagger)");
        return Ok(());
    };
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    const VOICE: [&str; 4] = [
        "Speech",
        "Child speech, kid speaking",
        "Conversation",
        "Narration, monologue",
    ];
    let mut speech: Vec<PathBuf> = std::fs::read_dir("assets/speech/librivox")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    speech.sort();
    let mut sets: Vec<(String, Vec<PathBuf>, &[&str])> = vec![
        (
            "applause (crowd classes)".into(),
            vec!["assets/sounds/applause.wav".into()],
            &sound::CROWD,
        ),
        (
            "music loops (Music)".into(),
            vec![
                "assets/music/house_lo.ogg".into(),
                "assets/music/secosmic_lo.wav".into(),
            ],
            &["Music"],
        ),
    ];
    sets.push(("LibriVox (a voice class)".into(), speech, &VOICE));
    println!();
    println!("sound tagger                 {}", tagger.name());
    println!("  load                       {load_ms:.0} ms");
    let (mut audio_s, mut tag_s) = (0.0, 0.0);
    for (name, files, wanted) in sets {
        let (mut windows, mut top1, mut top3, mut voiced) = (0, 0, 0, 0);
        for file in &files {
            let samples = media::audio::read_pcm(&config.ffmpeg, file)
                .await
                .with_context(|| format!("{} (run scripts/setup.sh)", file.display()))?;
            audio_s += samples.len() as f64 / 16_000.0;
            let started = Instant::now();
            let tagged: Vec<SoundWindow> = tagger.tag(0, samples).await?;
            tag_s += started.elapsed().as_secs_f64();
            for w in &tagged {
                windows += 1;
                let rank = w
                    .labels
                    .iter()
                    .position(|l| wanted.contains(&l.label.as_str()));
                top1 += usize::from(rank == Some(0));
                top3 += usize::from(rank.is_some_and(|r| r < 3));
                voiced += usize::from(w.voice >= sound::VOICE_SCORE);
            }
        }
        let pct = |n: usize| 100.0 * n as f64 / windows.max(1) as f64;
        println!(
            "  {:<26} top-1 {:>5.1} %, top-3 {:>5.1} %, voice {:>5.1} % ({windows} windows)",
            name,
            pct(top1),
            pct(top3),
            pct(voiced)
        );
    }
    println!(
        "  per second of audio        {:.2} ms ({audio_s:.0} s tagged)",
        tag_s * 1000.0 / audio_s.max(1e-9)
    );
    Ok(())
}

/// The picture at `seconds` into `video` as a 180p thumbnail (the decode pass's size),
/// with `caption` drawn on it (font size 20, at row 60) when given.
async fn thumbnail(
    ffmpeg: &str,
    video: &str,
    seconds: f64,
    caption: Option<&str>,
) -> anyhow::Result<media::images::RgbImage> {
    let mut filter = "scale=-2:180".to_string();
    if let Some(text) = caption {
        filter.push_str(&format!(
            ",drawtext=fontfile=assets/fonts/wqy-microhei.ttc:text='{text}':fontsize=20:\
             fontcolor=white:borderw=1:bordercolor=black:x=16:y=60"
        ));
    }
    let out = tokio::process::Command::new(ffmpeg)
        .args(["-v", "error", "-ss", &seconds.to_string(), "-i", video])
        .args(["-frames:v", "1", "-vf", &filter])
        .args(["-f", "image2pipe", "-c:v", "mjpeg", "pipe:1"])
        .output()
        .await?;
    media::images::RgbImage::from_jpeg(&out.stdout)
        .with_context(|| format!("{video} at {seconds} s (run scripts/setup.sh)"))
}

/// The picture models' rows: the scene tagger's load time, ms per picture and what it
/// sees in bikes.mp4 second by second; the text reader's ms per picture (with and without
/// text) and its character error rate over captions drawn on real footage (English and
/// Chinese, 14-22 px on a 180p thumbnail).
async fn picture_rows(config: &EngineConfig) -> anyhow::Result<()> {
    use reelforge_models::vision;
    let is_cycle = |label: &str| vision::kind_of(label).is_some_and(|(kind, _)| kind == "bicycle");
    let ffmpeg = &config.ffmpeg;
    let started = Instant::now();
    match reelforge_models::load_scene_tagger(&config.models)? {
        None => println!("\nscene tagger                 none (models.scene_tagger)"),
        Some(tagger) => {
            let load_ms = started.elapsed().as_secs_f64() * 1000.0;
            println!();
            println!("scene tagger                 {}", tagger.name());
            println!("  load                       {load_ms:.0} ms");
            let mut pictures = Vec::new();
            for s in 0..10 {
                pictures.push(thumbnail(ffmpeg, "assets/samples/bikes.mp4", s as f64, None).await?);
            }
            tagger.tag(pictures[..1].to_vec()).await?;
            let started = Instant::now();
            let tagged = tagger.tag(pictures.clone()).await?;
            let per = started.elapsed().as_secs_f64() * 1000.0 / pictures.len() as f64;
            println!("  per picture (320x180)      {per:.1} ms");
            let cycles = tagged
                .iter()
                .filter(|l| l.iter().take(3).any(|l| is_cycle(&l.label)))
                .count();
            println!("  bikes.mp4, a cycle class in the top 3: {cycles} of 10 pictures");
            for (s, labels) in tagged.iter().enumerate() {
                let said: Vec<String> = labels
                    .iter()
                    .take(2)
                    .map(|l| format!("{} {:.2}", vision::short_name(&l.label), l.score))
                    .collect();
                println!("    {s:>2} s  {}", said.join(", "));
            }
        }
    }
    let started = Instant::now();
    match reelforge_models::load_text_reader(&config.models)? {
        None => println!("\ntext reader                  none (models.text_reader)"),
        Some(reader) => {
            let load_ms = started.elapsed().as_secs_f64() * 1000.0;
            println!();
            println!("text reader                  {}", reader.name());
            println!("  load                       {load_ms:.0} ms");
            let plain = thumbnail(ffmpeg, "assets/samples/bikes.mp4", 3.0, None).await?;
            reader.read(plain.clone()).await?;
            let started = Instant::now();
            for _ in 0..5 {
                reader.read(plain.clone()).await?;
            }
            println!(
                "  per picture, no text       {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0 / 5.0
            );
            let captions = [
                "STAGE 3 FINISH",
                "LIVE FROM BRUSSELS",
                "KM 42 TO GO",
                "Final score 3-1",
                "冠军 李明",
                "比赛结束",
                "第三赛段 终点",
                "现场直播 布鲁塞尔",
            ];
            let (mut read_s, mut errors) = (0.0, Vec::new());
            for (i, text) in captions.iter().enumerate() {
                let picture =
                    thumbnail(ffmpeg, "assets/samples/bikes.mp4", i as f64, Some(text)).await?;
                let started = Instant::now();
                let lines = reader.read(picture).await?;
                read_s += started.elapsed().as_secs_f64();
                let read: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
                errors.push(character_error_rate(text, &read.join(" ")));
            }
            println!(
                "  per picture, one caption   {:.1} ms",
                read_s * 1000.0 / captions.len() as f64
            );
            println!(
                "  character error rate       {:.3} mean over {} captions (English and Chinese)",
                errors.iter().sum::<f64>() / errors.len() as f64,
                captions.len()
            );
        }
    }
    Ok(())
}

/// One speech model's rows: real-time factor, word error rate (with a reference), the
/// language it heard, gated silence, and Chinese read speech's character error rate.
fn speech_rows(
    whisper: &WhisperTranscriber,
    load_ms: f64,
    audio: &[f32],
    reference: Option<&str>,
    ffmpeg: &str,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let transcribe = |samples: Vec<f32>, language: Option<&str>| {
        let started = Instant::now();
        let out = whisper.transcribe_blocking(&SpeechAudio {
            start_ms: 0,
            samples,
            is_final: true,
            language: language.map(String::from),
            voiced: None,
        });
        out.map(|o| (o, started.elapsed().as_secs_f64()))
    };
    let seconds = audio.len() as f64 / 16_000.0;
    let (heard, wall) = transcribe(audio.to_vec(), None)?;
    let text: Vec<&str> = heard.segments.iter().map(|s| s.text.as_str()).collect();
    println!();
    println!("speech                       {}", whisper.name());
    println!("  load                       {load_ms:.0} ms");
    println!(
        "  speech: {seconds:.1} s in        {wall:.2} s = real-time factor {:.2} ({} segments, heard as {})",
        wall / seconds,
        heard.segments.len(),
        languages_heard(&heard.segments)
    );
    if let Some(reference) = reference {
        println!(
            "  word error rate            {:.1} %",
            100.0 * word_error_rate(reference, &text.join(" "))
        );
    }
    let (quiet, wall) = transcribe(vec![0.0; 60 * 16_000], None)?;
    println!(
        "  silence: 60 s in           {wall:.3} s (gated: {:.0} s skipped)",
        quiet.skipped_silent_ms as f64 / 1000.0
    );
    if !whisper.languages().iter().any(|l| l == "zh") {
        return Ok(());
    }
    let Ok(chinese) = runtime.block_on(chinese_speech(ffmpeg)) else {
        println!("  Chinese speech             not installed (scripts/setup.sh)");
        return Ok(());
    };
    // The language told by the model per utterance; the text with the language named
    // (the ingest.language a Chinese library would set), scored by character error rate.
    let (mut errors, mut chars, mut seconds, mut wall, mut told_zh) = (0.0, 0.0, 0.0, 0.0, 0);
    let utterances = chinese.len();
    for (samples, reference) in chinese {
        seconds += samples.len() as f64 / 16_000.0;
        let (told, _) = transcribe(samples.clone(), None)?;
        told_zh += usize::from(told.segments.iter().any(|s| s.language == "zh"));
        let (heard, took) = transcribe(samples, Some("zh"))?;
        wall += took;
        let text: String = heard.segments.iter().map(|s| s.text.as_str()).collect();
        let n = reelforge_core::eval::cer_chars(&reference).len() as f64;
        errors += character_error_rate(&reference, &text) * n;
        chars += n;
    }
    println!(
        "  Mandarin: {seconds:.1} s in      {wall:.2} s = real-time factor {:.2} (language zh)",
        wall / seconds
    );
    println!(
        "  character error rate       {:.1} % ({chars:.0} characters)",
        100.0 * errors / chars.max(1.0)
    );
    println!("  told as Chinese            {told_zh} of {utterances} utterances");
    Ok(())
}

fn languages_heard(segments: &[reelforge_models::TranscriptSegment]) -> String {
    let mut codes: Vec<&str> = segments.iter().map(|s| s.language.as_str()).collect();
    codes.sort();
    codes.dedup();
    codes.join("+")
}

/// The Chinese read speech setup installs: `(16 kHz samples, reference text)` per utterance.
async fn chinese_speech(ffmpeg: &str) -> anyhow::Result<Vec<(Vec<f32>, String)>> {
    let dir = PathBuf::from(CHINESE_SPEECH);
    let listing = std::fs::read_to_string(dir.join("transcription"))?;
    let mut out = Vec::new();
    for line in listing.lines() {
        let Some((id, text)) = line.split_once(' ') else {
            continue;
        };
        let samples = media::audio::read_pcm(ffmpeg, &dir.join(format!("{id}.wav"))).await?;
        out.push((samples, text.trim().to_string()));
    }
    Ok(out)
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
