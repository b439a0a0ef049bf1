//! Speech end to end: a real recording muxed into a video, ingested by the real server
//! with the offline Whisper model, transcribed accurately and at the right times.

use pb::ingest_event::Event;
use reelforge_proto::v1 as pb;
use reelforge_tests::{
    done_video_id, drain, ingest_path_done, mandarin_video, path_request, search_results,
    slice_transcripts, speech_video, stored_video, word_error_rate, Server,
};

#[tokio::test]
async fn speech_is_transcribed_at_the_right_times_streamed_per_slice_and_stored() {
    let data = tempfile::tempdir().unwrap();
    let (video, utterances) = speech_video();
    let server = Server::start(data.path(), &[video.parent().unwrap()]).await;
    let mut client = server.client().await;
    let (events, video_id) = ingest_path_done(&mut client, video, 30.0).await;

    // One transcript event per slice, after that slice's analysis has started.
    let transcripts = slice_transcripts(&events);
    assert_eq!(
        transcripts.iter().map(|t| t.index).collect::<Vec<_>>(),
        vec![0, 1],
        "{transcripts:?}"
    );
    let streamed: Vec<pb::TranscriptSegment> = transcripts
        .iter()
        .flat_map(|t| t.segments.clone())
        .collect();

    let stored = stored_video(&mut client, &video_id, false).await;
    assert_eq!(
        stored.transcript, streamed,
        "what was streamed is what is stored"
    );

    // Accuracy over the whole recording.
    let reference: Vec<&str> = utterances.iter().map(|u| u.text.as_str()).collect();
    let heard: Vec<&str> = stored.transcript.iter().map(|s| s.text.as_str()).collect();
    let wer = word_error_rate(&reference.join(" "), &heard.join(" "));
    eprintln!("WER {wer:.3}: {heard:?}");
    assert!(wer <= 0.25, "word error rate {wer:.3}: {heard:?}");

    // Every segment lies inside the utterance it transcribes (±1 s), and every utterance
    // is heard, including the one across the slice border at 30 s.
    for s in &stored.transcript {
        let owner = utterances
            .iter()
            .find(|u| s.start_ms >= u.start_ms - 1_000 && s.end_ms <= u.end_ms + 1_000);
        let owner = owner.unwrap_or_else(|| panic!("{s:?} is not inside any utterance"));
        let own_words = word_error_rate(&owner.text, &s.text);
        assert!(own_words < 0.5, "{s:?} does not transcribe {owner:?}");
    }
    for u in utterances {
        assert!(
            stored
                .transcript
                .iter()
                .any(|s| s.start_ms < u.end_ms && s.end_ms > u.start_ms),
            "{u:?} was not heard"
        );
    }

    let summary = stored.summary.unwrap();
    assert_eq!(summary.transcriber, "local:whisper-tiny-en");
    assert!(
        summary.summary.contains("Speech: \""),
        "{}",
        summary.summary
    );
    let counts = &stored.embedding_counts;
    assert!(
        counts.get("transcript").copied().unwrap_or(0) >= 2,
        "{counts:?}"
    );
    assert_eq!(counts.get("summary"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("text"), Some(&2), "{counts:?}");

    // A script event that is a spoken line finds that line, not the whole chunk of
    // transcript it was indexed in.
    let mut highlight = pb::highlight_client::HighlightClient::new(server.channel().await);
    let line = &utterances[1];
    let mut stream = highlight
        .highlight(pb::HighlightRequest {
            strategy: pb::HighlightStrategy::Script as i32,
            script: line.text.clone(),
            video_ids: vec![video_id.clone()],
            render: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut done = None;
    while let Some(e) = stream.message().await.unwrap() {
        if let Some(pb::highlight_event::Event::Done(d)) = e.event {
            done = Some(d);
        }
    }
    let segment = done.expect("a result").segments.remove(0);
    let iou = reelforge_core::eval::iou(
        (segment.start_ms, segment.end_ms),
        (line.start_ms, line.end_ms),
    );
    eprintln!("script line {:?} → {segment:?}, IoU {iou:.2}", line);
    assert!(iou > 0.5, "{segment:?} is not {line:?}");
    server.stop().await;
}

#[tokio::test]
async fn speech_can_be_turned_off() {
    let data = tempfile::tempdir().unwrap();
    let (video, _) = speech_video();
    let server = Server::start_with(
        data.path(),
        &[video.parent().unwrap()],
        &[("REELFORGE_TRANSCRIBER", "none")],
    )
    .await;
    let mut client = server.client().await;
    let (events, video_id) = ingest_path_done(&mut client, video, 30.0).await;
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::SliceTranscript(_))));
    let stored = stored_video(&mut client, &video_id, false).await;
    assert!(stored.transcript.is_empty());
    assert_eq!(stored.summary.unwrap().transcriber, "");
    server.stop().await;
}

/// A mixed library on the multilingual model: Mandarin speech (the language named at
/// ingest) and English speech (told by the model). Each language's phrase finds its own
/// video at rank 1, Chinese in either script; a language the model lacks is refused.
#[tokio::test]
async fn mandarin_and_english_speech_are_transcribed_and_each_found_by_its_own_phrase() {
    let data = tempfile::tempdir().unwrap();
    let (mandarin, zh_lines) = mandarin_video();
    let (english, _) = speech_video();
    let server = Server::start_with(
        data.path(),
        &[mandarin.parent().unwrap()],
        &[
            ("REELFORGE_TRANSCRIBER", "local:whisper-base"),
            // Slices are described in Chinese at ingest; highlights stay English unless
            // asked.
            ("REELFORGE_INGEST_DESCRIPTION_LANGUAGE", "zh"),
        ],
    )
    .await;
    let mut client = server.client().await;

    let in_language = |language: &str| pb::IngestPathRequest {
        options: Some(pb::IngestOptions {
            language: language.into(),
            ..Default::default()
        }),
        ..path_request(mandarin, 30.0)
    };
    let refused = client
        .ingest_path(in_language("klingon"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("language \"klingon\"")
            && refused.message().contains("local:whisper-base")
            && refused.message().contains("zh"),
        "{refused:?}"
    );

    let stream = client
        .ingest_path(in_language("zh"))
        .await
        .unwrap()
        .into_inner();
    let (events, status) = drain(stream).await;
    status.unwrap();
    let zh_id = done_video_id(&events);
    let (_, en_id) = ingest_path_done(&mut client, english, 30.0).await;

    let zh = stored_video(&mut client, &zh_id, false).await;
    let heard: Vec<&str> = zh.transcript.iter().map(|s| s.text.as_str()).collect();
    eprintln!("Mandarin heard as {heard:?} (said: {zh_lines:?})");
    assert!(!zh.transcript.is_empty());
    assert!(zh.transcript.iter().all(|s| s.language == "zh"), "{zh:?}");
    let en = stored_video(&mut client, &en_id, false).await;
    assert!(en.transcript.iter().all(|s| s.language == "en"), "{en:?}");

    let mut search = pb::search_client::SearchClient::new(server.channel().await);
    let top = |query: &str| pb::SearchRequest {
        query: query.into(),
        mode: pb::SearchMode::Transcript as i32,
        top_k: 5,
        ..Default::default()
    };
    // Simplified and traditional queries for "the last minute of the match" (said in
    // zh10 at 27 s), and an English line.
    for (query, want, at_ms) in [
        ("比赛最后", &zh_id, 27_000),
        ("比賽最後", &zh_id, 27_000),
        ("had he married a more amiable woman", &en_id, 38_000),
    ] {
        let results = search_results(&mut search, top(query)).await.unwrap();
        let first = results
            .first()
            .unwrap_or_else(|| panic!("{query:?} found nothing"));
        assert_eq!(&first.video_id, want, "{query:?}: {results:?}");
        assert!(
            first.start_ms <= at_ms + 1_000 && first.end_ms >= at_ms,
            "{query:?}: {first:?}"
        );
    }
    // Across languages, by the default (multilingual) embedder's vectors alone: English
    // words find the Mandarin line that means them.
    let by_meaning = |query: &str| pb::SearchRequest {
        fusion: Some(pb::FusionOptions {
            method: pb::FusionMethod::Weighted as i32,
            lexical_weight: 0.0,
            vector_weight: 1.0,
            ..Default::default()
        }),
        ..top(query)
    };
    let results = search_results(&mut search, by_meaning("the last minute of the match"))
        .await
        .unwrap();
    let first = &results[0];
    assert_eq!(first.video_id, zh_id, "{results:?}");
    assert!(
        first.start_ms <= 28_000 && first.end_ms >= 27_000,
        "{first:?}"
    );

    // The slices were described in Chinese (ingest.description_language), and so is a
    // highlight asked in Chinese, which reuses them; one asked in English reads them again.
    let chinese = |text: &str| text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    assert!(
        !zh.slices.is_empty() && zh.slices.iter().all(|s| chinese(&s.description)),
        "{:?}",
        zh.slices
    );
    let mut highlights = pb::highlight_client::HighlightClient::new(server.channel().await);
    for (language, reused) in [("zh", true), ("en", false)] {
        let req = pb::HighlightRequest {
            video_id: zh_id.clone(),
            strategy: pb::HighlightStrategy::Sliced as i32,
            slice_seconds: 30.0,
            render: Some(false),
            language: language.into(),
            ..Default::default()
        };
        let mut stream = highlights.highlight(req).await.unwrap().into_inner();
        let mut slices = Vec::new();
        let mut started = None;
        while let Some(e) = stream.message().await.unwrap() {
            match e.event.unwrap() {
                pb::highlight_event::Event::Slice(s) => slices.push(s),
                pb::highlight_event::Event::Started(s) => started = s.effective,
                _ => {}
            }
        }
        assert_eq!(started.unwrap().language, language);
        assert!(!slices.is_empty());
        for s in &slices {
            assert_eq!(s.reused, reused, "{language}: {s:?}");
            assert_eq!(chinese(&s.description), language == "zh", "{s:?}");
        }
    }
    let refused = highlights
        .highlight(pb::HighlightRequest {
            video_id: zh_id.clone(),
            strategy: pb::HighlightStrategy::Sliced as i32,
            language: "klingon".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("language \"klingon\"") && refused.message().contains("zh"),
        "{refused:?}"
    );
    server.stop().await;
}
