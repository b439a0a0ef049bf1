//! What is heard, end to end: real recordings of an audience applauding and of music in a
//! video, ingested by the real server with the offline sound tagger (YAMNet on ONNX
//! Runtime): stored as sound events at the right times, named in the slice descriptions,
//! searchable as `sound_event` documents (in English and Chinese words), made highlight
//! cues by the offline analyser, and the voice detector that keeps Whisper off music.

use pb::ingest_event::Event;
use reelforge_proto::v1 as pb;
use reelforge_tests::{
    demo_video, ingest_path_done, search_results, slice_transcripts, sound_video, stored_video,
    Server,
};

#[tokio::test]
async fn sounds_are_heard_stored_described_searchable_and_cue_highlights() {
    let data = tempfile::tempdir().unwrap();
    let (video, recordings) = sound_video();
    let (applause, music) = (&recordings[0], &recordings[1]);
    let server = Server::start(data.path(), &[video.parent().unwrap()]).await;
    let mut client = server.client().await;
    let (events, video_id) = ingest_path_done(&mut client, video, 12.0).await;

    // Stored: the applause as a crowd's sound where it was played, the music where it
    // starts; nothing heard in the silence before either.
    let stored = stored_video(&mut client, &video_id, false).await;
    let heard = |labels: &[&str]| -> Vec<pb::SoundEvent> {
        stored
            .sounds
            .iter()
            .filter(|e| labels.contains(&e.label.as_str()))
            .cloned()
            .collect()
    };
    let clapping = heard(&["Applause", "Clapping"]);
    assert!(!clapping.is_empty(), "{:?}", stored.sounds);
    for e in &clapping {
        assert!(
            e.start_ms >= applause.start_ms - 1_000 && e.end_ms <= applause.end_ms + 1_000,
            "{e:?} outside {applause:?}"
        );
    }
    assert!(clapping.iter().any(|e| e.score >= 0.8), "{clapping:?}");
    let tunes = heard(&["Music"]);
    assert!(
        tunes
            .iter()
            .any(|e| e.start_ms >= music.start_ms - 1_000 && e.start_ms <= music.start_ms + 1_000),
        "{tunes:?}"
    );
    assert!(
        stored
            .sounds
            .iter()
            .all(|e| e.end_ms > applause.start_ms - 1_000),
        "something heard in the silence: {:?}",
        stored.sounds
    );

    // Described: the first slice names the applause; the analyser's candidate there is
    // the crowd's, spanning the whole applause, with the sound as its reason.
    let first = &stored.slices[0];
    assert!(
        first.description.contains("Heard: applause ("),
        "{}",
        first.description
    );
    let cued: Vec<&pb::SegmentCandidate> = events
        .iter()
        .filter_map(|e| match e {
            Event::SliceFinished(s) => Some(s.analysis.as_ref().unwrap().segments.iter()),
            _ => None,
        })
        .flatten()
        .filter(|s| s.description.starts_with("A crowd cheering"))
        .collect();
    assert_eq!(cued.len(), 1, "{cued:?}");
    assert!(
        cued[0].start_ms <= applause.start_ms + 500 && cued[0].end_ms >= applause.end_ms - 500,
        "{:?} vs {applause:?}",
        cued[0]
    );
    assert!(cued[0].reason.contains("sounds: Applause"), "{:?}", cued[0]);
    let second = &stored.slices[1];
    assert!(
        second
            .segments
            .iter()
            .any(|s| s.description.starts_with("Music starting")),
        "{:?}",
        second.segments
    );

    // Searchable: the applause is found by the sound's own kind and in either language.
    let mut search = pb::search_client::SearchClient::new(server.channel().await);
    for (query, kinds) in [
        ("applause", vec!["sound_event".to_string()]),
        ("掌声", vec![]),
        ("an audience clapping", vec!["sound_event".to_string()]),
    ] {
        let results = search_results(
            &mut search,
            pb::SearchRequest {
                query: query.into(),
                kinds,
                top_k: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let top = results
            .first()
            .unwrap_or_else(|| panic!("{query}: no results"));
        assert!(
            top.start_ms < applause.end_ms && top.end_ms > applause.start_ms,
            "{query}: {top:?}"
        );
    }

    // The voice detector heard no voice: Whisper read (almost) none of the loud audio.
    let read_ms: i64 = events
        .iter()
        .filter_map(|e| match e {
            Event::SliceTranscript(t) => Some(t.decoded_ms),
            _ => None,
        })
        .sum();
    assert!(
        read_ms <= 2_000,
        "Whisper read {read_ms} ms of applause and music"
    );
    assert!(stored.transcript.is_empty(), "{:?}", stored.transcript);
    server.stop().await;
}

#[tokio::test]
async fn the_voice_gate_keeps_whisper_off_the_demos_soundtrack() {
    // demo.mp4's only sound besides near-silence is Big Buck Bunny's soundtrack (45-50.3
    // s): music and effects, no words. Gated by loudness alone Whisper reads it; gated by
    // voice, at most a moment the tagger takes for a voice.
    let demo = demo_video();
    let read = |env: &'static [(&'static str, &'static str)]| {
        let demo = demo.clone();
        async move {
            let data = tempfile::tempdir().unwrap();
            let server = Server::start_with(data.path(), &[demo.parent().unwrap()], env).await;
            let mut client = server.client().await;
            let (events, _) = ingest_path_done(&mut client, &demo, 30.0).await;
            server.stop().await;
            let transcripts = slice_transcripts(&events);
            let read: i64 = transcripts.iter().map(|t| t.decoded_ms).sum();
            let words: usize = transcripts.iter().map(|t| t.segments.len()).sum();
            (read, words)
        }
    };
    let (loudness_only, _) = read(&[("REELFORGE_SOUND_TAGGER", "none")]).await;
    let (voice, words) = read(&[]).await;
    eprintln!("Whisper read {loudness_only} ms gated by loudness, {voice} ms by voice");
    assert!(loudness_only >= 4_000, "{loudness_only}");
    assert!(voice * 2 <= loudness_only, "{voice} vs {loudness_only}");
    assert_eq!(words, 0);
}
