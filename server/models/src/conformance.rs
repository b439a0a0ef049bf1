//! The conformance suites every provider passes, local and Bedrock alike (the Bedrock
//! ones through the real SDK against the wire-format stub in `tests/`).
//! Text embedders: dimensions, normalisation, batching equals one by one, empty input
//! refused, long input truncated with a flag, related texts closer than unrelated ones.
//! Rerankers: every candidate scored once, in order, relevant first, deterministic,
//! empty query refused. Transcribers: silence gives nothing, speech gives its words at
//! the right times, unsettled tails are reported, empty audio is fine.
//! Video analysers (the offline signal analyser, Nova): each slice's result names the
//! slice and the analyser, its segments lie inside the slice on the video's timeline
//! (wherever the slice starts), scores are in 0..1, reading the same slice twice gives the
//! same segments, and asked for Chinese it describes the slice and its segments in Chinese. Video embedders: dimensions, normalisation, order kept,
//! spans over the limit and empty queries refused, and moving footage closer to words
//! about motion than a still picture is. Sound taggers: windows on the video's timeline,
//! one after another and inside the audio, scores in 0..1 best first, deterministic;
//! silence has no events and no voice; real recordings of music, read speech and an
//! audience applauding are heard as music, as a voice (most of it, for the transcriber)
//! and as a crowd cue.

use std::path::Path;

use super::{
    EmbedPurpose, RerankCandidate, Reranker, SpeechAudio, TextEmbedder, Transcriber, VideoEmbedder,
};
use crate::analysis::{Baseline, Language, SignalWindow, SliceInput, VideoAnalyzer};
use crate::sound::{self, SoundTagger};
use crate::vision::{self, SceneTagger, TextReader};
use reelforge_core::error::Error;
use reelforge_core::eval::word_error_rate;
use reelforge_core::vector::cosine;
use reelforge_media::images::RgbImage;

/// Signal windows (500 ms) over `[start_ms, end_ms)`: still and quiet, with a loud,
/// moving burst over the middle fifth.
fn burst_windows(start_ms: i64, end_ms: i64) -> Vec<SignalWindow> {
    let n = ((end_ms - start_ms) / 500) as usize;
    (0..n)
        .map(|i| {
            let burst = i >= n * 2 / 5 && i < n * 3 / 5;
            SignalWindow {
                start_ms: start_ms + i as i64 * 500,
                loudness_db: if burst { -12.0 } else { -50.0 },
                motion: if burst { 0.2 } else { 0.001 },
                scene_cut: i == n * 2 / 5,
            }
        })
        .collect()
}

/// Runs every video analyser check on `slices` (index, start ms, end ms) of the video at
/// `source`, each holding moving footage (an analyser that looks at the picture must find
/// it; the signal windows it is given put a loud, moving burst in the middle fifth);
/// panics with what failed.
pub async fn video_analyzer(
    analyzer: &dyn VideoAnalyzer,
    source: &Path,
    duration_ms: i64,
    slices: &[(u32, i64, i64)],
) {
    assert!(!slices.is_empty(), "the suite needs slices with action");
    let baseline = Baseline {
        loudness_db: -50.0,
        motion: 0.001,
        windows: 20,
    };
    for &(index, start_ms, end_ms) in slices {
        assert!(end_ms <= duration_ms, "slice {index} ends past the video");
        let windows = burst_windows(start_ms, end_ms);
        let cuts = [start_ms + (end_ms - start_ms) * 2 / 5];
        let input = |language| SliceInput {
            source,
            video_duration_ms: duration_ms,
            index,
            start_ms,
            end_ms,
            windows: &windows,
            cut_points_ms: &cuts,
            baseline,
            language,
            sounds: &[],
            sights: &[],
        };
        let a = analyzer
            .analyze_slice(input(Language::English))
            .await
            .unwrap_or_else(|e| panic!("slice {index} is analysed: {e}"));
        assert_eq!(
            (a.index, a.start_ms, a.end_ms),
            (index, start_ms, end_ms),
            "the result names its slice"
        );
        assert_eq!(a.analyzer, analyzer.name(), "the result names its analyser");
        assert!(
            (0.0..=1.0).contains(&a.highlight_score),
            "slice {index}: highlight score {}",
            a.highlight_score
        );
        assert!(!a.segments.is_empty(), "slice {index}: the action is found");
        for s in &a.segments {
            assert!(
                start_ms <= s.start_ms && s.start_ms < s.end_ms && s.end_ms <= end_ms,
                "slice {index} ({start_ms}-{end_ms} ms): segment {}-{} ms is outside it",
                s.start_ms,
                s.end_ms
            );
            assert!((0.0..=1.0).contains(&s.score), "score {}", s.score);
        }
        let again = analyzer
            .analyze_slice(input(Language::English))
            .await
            .expect("analysed again");
        let spans = |x: &crate::analysis::SliceAnalysis| -> Vec<(i64, i64)> {
            x.segments.iter().map(|s| (s.start_ms, s.end_ms)).collect()
        };
        assert_eq!(spans(&a), spans(&again), "slice {index}: deterministic");
        assert_eq!(a.language, Language::English);
        if index != slices[0].0 {
            continue;
        }
        // Asked for Chinese, it answers in Chinese and says so.
        let zh = analyzer
            .analyze_slice(input(Language::Chinese))
            .await
            .expect("analysed in Chinese");
        assert_eq!(zh.language, Language::Chinese);
        let chinese = |text: &str| text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        assert!(chinese(&zh.description), "{}", zh.description);
        assert!(
            !zh.segments.is_empty(),
            "the action is found in Chinese too"
        );
        for s in &zh.segments {
            assert!(chinese(&s.description), "{}", s.description);
        }
    }
}

/// Runs every video embedder check; `moving` and `still` are spans of the video at
/// `source` that show motion and a still picture. Panics with what failed.
pub async fn video_embedder(
    embedder: &dyn VideoEmbedder,
    source: &Path,
    duration_ms: i64,
    moving: (i64, i64),
    still: (i64, i64),
) {
    let spans = [moving, still];
    let vectors = embedder
        .embed_spans(source, duration_ms, &spans)
        .await
        .expect("spans embed");
    assert_eq!(vectors.len(), 2);
    for v in &vectors {
        assert_eq!(v.len(), embedder.dimensions());
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let reversed = embedder
        .embed_spans(source, duration_ms, &[still, moving])
        .await
        .expect("spans embed");
    assert!(cosine(&reversed[0], &vectors[1]) > 0.9999, "order is kept");
    assert!(cosine(&reversed[1], &vectors[0]) > 0.9999, "order is kept");
    let query = embedder
        .embed_queries(&["fast motion and action".to_string()])
        .await
        .expect("a query embeds");
    assert_eq!(query[0].vector.len(), embedder.dimensions());
    let (to_moving, to_still) = (
        cosine(&query[0].vector, &vectors[0]),
        cosine(&query[0].vector, &vectors[1]),
    );
    assert!(
        to_moving > to_still,
        "words about motion find the moving span: {to_moving} vs {to_still}"
    );
    let long = embedder
        .embed_spans(source, duration_ms, &[(0, embedder.max_span_ms() + 1000)])
        .await;
    assert!(
        matches!(long, Err(Error::InvalidInput(ref m)) if m.contains("span")),
        "{long:?}"
    );
    assert!(embedder
        .embed_spans(source, duration_ms, &[])
        .await
        .expect("no spans")
        .is_empty());
    let empty = embedder.embed_queries(&[" ".to_string()]).await;
    assert!(
        matches!(empty, Err(Error::InvalidInput(ref m)) if m.contains("empty")),
        "{empty:?}"
    );
}

/// Runs every check; panics with what failed.
pub async fn text_embedder(embedder: &dyn TextEmbedder) {
    let texts: Vec<String> = [
        "A goal is scored and the crowd erupts.",
        "The striker shoots and the fans cheer loudly.",
        "Quarterly tax filing deadlines for small businesses.",
        "slow pan over a quiet lake at dawn",
    ]
    .map(String::from)
    .to_vec();
    let batch = embedder
        .embed(&texts, EmbedPurpose::Index)
        .await
        .expect("batch embeds");
    assert_eq!(batch.len(), texts.len());
    for (i, e) in batch.iter().enumerate() {
        assert_eq!(
            e.vector.len(),
            embedder.dimensions(),
            "text {i}: dimensions"
        );
        let norm = e.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "text {i}: norm {norm}");
        assert!(!e.truncated, "text {i} is short");
    }
    for (i, text) in texts.iter().enumerate() {
        let single = embedder
            .embed(std::slice::from_ref(text), EmbedPurpose::Index)
            .await
            .expect("single embeds");
        let similarity = cosine(&single[0].vector, &batch[i].vector);
        assert!(
            similarity > 0.9999,
            "text {i}: batch and single differ (cosine {similarity})"
        );
    }
    let related = cosine(&batch[0].vector, &batch[1].vector);
    let unrelated = cosine(&batch[0].vector, &batch[2].vector);
    assert!(
        related > unrelated + 0.3,
        "related {related} vs unrelated {unrelated}"
    );

    let empty = embedder
        .embed(&["  ".to_string()], EmbedPurpose::Query)
        .await;
    assert!(
        matches!(empty, Err(Error::InvalidInput(ref m)) if m.contains("empty")),
        "{empty:?}"
    );
    assert!(embedder
        .embed(&[], EmbedPurpose::Query)
        .await
        .expect("no texts")
        .is_empty());

    // 5,600 words (29,400 characters): beyond what any of the providers reads.
    let long = "the crowd cheers as the team scores again ".repeat(700);
    let long = embedder
        .embed(&[long], EmbedPurpose::Index)
        .await
        .expect("long text embeds");
    assert!(
        long[0].truncated,
        "a 5,600-word text is truncated and says so"
    );
    assert_eq!(long[0].vector.len(), embedder.dimensions());
}

/// Runs every reranker check; panics with what failed.
pub async fn reranker(reranker: &dyn Reranker) {
    let candidates: Vec<RerankCandidate> = [
        ("Quarterly tax filing deadlines for small businesses.", 0.0),
        (
            "The striker shoots from distance and scores; the fans cheer.",
            0.0,
        ),
        ("A slow pan over a quiet lake at dawn.", 0.0),
        ("Goal! A late winner in the final minute of the match.", 0.0),
    ]
    .map(|(t, s)| RerankCandidate {
        text: t.into(),
        first_stage_score: s,
        vector: None,
    })
    .to_vec();
    let query = "a goal scored at the end of a football match";
    let scores = reranker.rerank(query, &candidates).await.expect("reranks");
    let mut seen: Vec<usize> = scores.iter().map(|s| s.index).collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![0, 1, 2, 3], "every candidate exactly once");
    assert!(
        scores.windows(2).all(|w| w[0].score >= w[1].score),
        "most relevant first: {scores:?}"
    );
    let top_two: Vec<usize> = scores[..2].iter().map(|s| s.index).collect();
    assert!(
        top_two.contains(&1) && top_two.contains(&3),
        "the football candidates rank first: {scores:?}"
    );
    let again = reranker.rerank(query, &candidates).await.expect("reranks");
    assert_eq!(scores, again, "deterministic");

    // The first-stage score counts: between two equally unrelated texts it decides.
    let tie = [
        RerankCandidate {
            text: "Invoices are due at month end.".into(),
            first_stage_score: 1.0,
            vector: None,
        },
        RerankCandidate {
            text: "Invoices are due at month end.".into(),
            first_stage_score: 9.0,
            vector: None,
        },
    ];
    let tie = reranker.rerank(query, &tie).await.expect("reranks");
    assert_eq!(tie[0].index, 1, "{tie:?}");

    assert!(reranker
        .rerank(query, &[])
        .await
        .expect("no candidates")
        .is_empty());
    let empty = reranker.rerank(" ", &candidates).await;
    assert!(
        matches!(empty, Err(Error::InvalidInput(ref m)) if m.contains("empty")),
        "{empty:?}"
    );
}

/// Runs every transcriber check on `speech` (16 kHz mono read speech) and its reference
/// text; panics with what failed. Returns the word error rate on `speech`.
pub async fn transcriber(transcriber: &dyn Transcriber, speech: &[f32], reference: &str) -> f64 {
    let rate = 16_000usize;
    // 3 s of silence, the speech, 3 s of silence, placed 60 s into a video.
    let mut samples = vec![0f32; 3 * rate];
    samples.extend_from_slice(speech);
    samples.extend(std::iter::repeat_n(0f32, 3 * rate));
    let speech_end_ms = 60_000 + ((3 * rate + speech.len()) * 1000 / rate) as i64;
    let out = transcriber
        .transcribe(SpeechAudio {
            start_ms: 60_000,
            samples: samples.clone(),
            is_final: true,
            language: None,
            voiced: None,
        })
        .await
        .expect("transcribes");
    assert!(!out.segments.is_empty(), "speech gives segments");
    for s in &out.segments {
        assert!(s.start_ms <= s.end_ms, "{s:?}");
        assert!(
            s.start_ms >= 60_000 + 2_000 && s.end_ms <= speech_end_ms + 1_500,
            "segment {s:?} lies outside the speech (60-{speech_end_ms} ms)"
        );
    }
    let text: Vec<&str> = out.segments.iter().map(|s| s.text.as_str()).collect();
    let wer = word_error_rate(reference, &text.join(" "));
    assert_eq!(
        out.settled_ms,
        60_000 + (samples.len() * 1000 / rate) as i64
    );

    let silence = transcriber
        .transcribe(SpeechAudio {
            start_ms: 0,
            samples: vec![0f32; 20 * rate],
            is_final: true,
            language: None,
            voiced: None,
        })
        .await
        .expect("silence transcribes");
    assert!(silence.segments.is_empty(), "{:?}", silence.segments);
    assert_eq!(silence.settled_ms, 20_000);

    let empty = transcriber
        .transcribe(SpeechAudio {
            start_ms: 5_000,
            samples: Vec::new(),
            is_final: true,
            language: None,
            voiced: None,
        })
        .await
        .expect("empty audio transcribes");
    assert!(empty.segments.is_empty());
    assert_eq!(empty.settled_ms, 5_000);

    // Cut in the middle of the speech: what runs into the cut is left unsettled, and
    // nothing reported ends past it.
    let cut = 3 * rate + speech.len() / 2;
    let partial = transcriber
        .transcribe(SpeechAudio {
            start_ms: 0,
            samples: samples[..cut].to_vec(),
            is_final: false,
            language: None,
            voiced: None,
        })
        .await
        .expect("partial audio transcribes");
    let cut_ms = (cut * 1000 / rate) as i64;
    assert!(partial.settled_ms < cut_ms, "{partial:?}");
    assert!(
        partial
            .segments
            .iter()
            .all(|s| s.end_ms <= partial.settled_ms + 20),
        "{partial:?}"
    );
    wer
}

/// Real recordings (16 kHz mono) a sound tagger must recognise.
pub struct SoundRecordings {
    pub music: Vec<f32>,
    pub speech: Vec<f32>,
    pub applause: Vec<f32>,
}

/// The sound tagger conformance suite (see the module's summary).
pub async fn sound_tagger(tagger: &dyn SoundTagger, recordings: &SoundRecordings) {
    assert!(!tagger.name().is_empty());
    assert!(tagger.classes().iter().any(|c| c == "Music"));
    assert!(tagger.tag(0, Vec::new()).await.unwrap().is_empty());
    // A short sound is one window; silence has neither events nor a voice.
    let rate = 16_000;
    let short = tagger.tag(2_000, vec![0.0; rate / 4]).await.unwrap();
    assert_eq!(short.len(), 1);
    assert_eq!((short[0].start_ms, short[0].end_ms), (2_000, 2_250));
    let silence = tagger.tag(10_000, vec![0.0; 3 * rate]).await.unwrap();
    assert!(silence.len() >= 4, "{} windows over 3 s", silence.len());
    for pair in silence.windows(2) {
        assert!(pair[0].start_ms < pair[1].start_ms && pair[1].start_ms <= pair[0].end_ms);
    }
    for w in &silence {
        assert!(w.start_ms >= 10_000 && w.end_ms <= 13_000 && w.start_ms < w.end_ms);
        assert!(w.voice < sound::VOICE_SCORE, "silence has a voice: {w:?}");
        assert!(w.labels.windows(2).all(|p| p[0].score >= p[1].score));
        assert!(w.labels.iter().all(|l| (0.0..=1.0).contains(&l.score)));
    }
    assert!(
        sound::events(&silence).is_empty(),
        "{:?}",
        sound::events(&silence)
    );
    // Music is heard as music, over most of it.
    let seconds = |s: &[f32]| s.len() as i64 * 1000 / rate as i64;
    let music = tagger.tag(0, recordings.music.clone()).await.unwrap();
    assert_eq!(
        music,
        tagger.tag(0, recordings.music.clone()).await.unwrap()
    );
    let heard: i64 = sound::events(&music)
        .iter()
        .filter(|e| e.label == "Music")
        .map(|e| e.end_ms - e.start_ms)
        .sum();
    assert!(
        heard * 2 >= seconds(&recordings.music),
        "music heard for {heard} ms: {music:?}"
    );
    assert!(
        sound::voiced(&music).is_empty(),
        "music has a voice: {music:?}"
    );
    // Read speech is a voice over nearly all of it.
    let speech = tagger.tag(5_000, recordings.speech.clone()).await.unwrap();
    let voiced: i64 = sound::voiced(&speech).iter().map(|(a, b)| b - a).sum();
    assert!(
        voiced * 10 >= seconds(&recordings.speech) * 9,
        "a voice over {voiced} ms of {} ms",
        seconds(&recordings.speech)
    );
    assert!(sound::events(&speech).iter().any(|e| e.label == "Speech"));
    // An audience applauding makes a crowd event.
    let applause = tagger.tag(0, recordings.applause.clone()).await.unwrap();
    let crowd = sound::events(&applause)
        .into_iter()
        .filter(|e| sound::CROWD.contains(&e.label.as_str()))
        .max_by(|a, b| a.score.total_cmp(&b.score));
    assert!(crowd.is_some_and(|e| e.score >= 0.5), "{applause:?}");
}

/// Every `SceneTagger` must pass this. `cyclist` is a real picture of someone riding a
/// bicycle.
pub async fn scene_tagger(tagger: &dyn SceneTagger, cyclist: &RgbImage) {
    assert!(!tagger.name().is_empty());
    let is_cycle = |label: &str| vision::kind_of(label).is_some_and(|(kind, _)| kind == "bicycle");
    assert!(tagger.classes().iter().any(|c| is_cycle(c)));
    assert!(tagger.tag(Vec::new()).await.unwrap().is_empty());
    let flat = RgbImage {
        width: 64,
        height: 48,
        pixels: vec![128; 64 * 48 * 3],
    };
    let tagged = tagger
        .tag(vec![cyclist.clone(), flat.clone(), cyclist.clone()])
        .await
        .unwrap();
    assert_eq!(tagged.len(), 3, "one list of labels per picture");
    assert_eq!(tagged[0], tagged[2], "the same picture, the same labels");
    for labels in &tagged {
        assert!(labels.windows(2).all(|p| p[0].score >= p[1].score));
        assert!(labels
            .iter()
            .all(|l| (vision::LABEL_FLOOR..=1.0).contains(&l.score)));
    }
    assert!(
        tagged[0].iter().take(3).any(|l| is_cycle(&l.label)),
        "no cycle class in the cyclist's top three: {:?}",
        tagged[0]
    );
    assert!(
        tagged[1].iter().all(|l| !is_cycle(&l.label)),
        "a flat grey picture is not a cycle: {:?}",
        tagged[1]
    );
}

/// Every `TextReader` must pass this. `captioned` is real footage with `caption` written
/// on it in the band `band` (top and bottom rows); `plain` the same footage without.
pub async fn text_reader(
    reader: &dyn TextReader,
    captioned: &RgbImage,
    caption: &str,
    band: (u32, u32),
    plain: &RgbImage,
) {
    assert!(!reader.name().is_empty());
    let empty = RgbImage {
        width: 0,
        height: 0,
        pixels: Vec::new(),
    };
    assert!(reader.read(empty).await.unwrap().is_empty());
    let lines = reader.read(captioned.clone()).await.unwrap();
    assert_eq!(lines, reader.read(captioned.clone()).await.unwrap());
    let key = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let line = lines
        .iter()
        .find(|l| key(&l.text) == key(caption))
        .unwrap_or_else(|| panic!("{caption:?} not read: {lines:?}"));
    assert!((vision::TEXT_SCORE..=1.0).contains(&line.score));
    let [x, y, w, h] = line.bbox;
    assert!(w > 0 && h > 0 && x + w <= captioned.width && y + h <= captioned.height);
    let middle = y + h / 2;
    assert!(
        (band.0..=band.1).contains(&middle),
        "{caption:?} read at rows {y}..{} (written in {band:?})",
        y + h
    );
    let plain_lines = reader.read(plain.clone()).await.unwrap();
    assert!(
        plain_lines.iter().all(|l| key(&l.text) != key(caption)),
        "{caption:?} read off footage that does not show it"
    );
}
