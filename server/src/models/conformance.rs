//! The conformance suites every provider passes (the local models now, Bedrock's later).
//! Text embedders: dimensions, normalisation, batching equals one by one, empty input
//! refused, long input truncated with a flag, related texts closer than unrelated ones.
//! Rerankers: every candidate scored once, in order, relevant first, deterministic,
//! empty query refused. Transcribers: silence gives nothing, speech gives its words at
//! the right times, unsettled tails are reported, empty audio is fine.

use super::{EmbedPurpose, RerankCandidate, Reranker, SpeechAudio, TextEmbedder, Transcriber};
use crate::analysis::visual::cosine;
use crate::error::Error;

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

/// Word error rate of `hypothesis` against `reference`: word-level edit distance over
/// the reference's length, after lowercasing and dropping punctuation.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let norm = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|w| {
                w.chars()
                    .filter(|c| c.is_alphanumeric() || *c == '\'')
                    .collect::<String>()
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (r, h) = (norm(reference), norm(hypothesis));
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len() as f64
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
