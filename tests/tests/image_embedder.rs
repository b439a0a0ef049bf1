//! The CLIP loading path end to end: a user's model directory (here a tiny one with
//! random weights) configured on the real server embeds every thumbnail at ingest, and
//! visual search finds those thumbnails through the model's text tower. Random weights
//! say nothing about relevance; this checks the path, the filters and the scores.

use pb::ingest_event::Event;
use reelforge_proto::v1 as pb;
use reelforge_tests::{
    demo_video, done_video_id, drain, fixtures, ingest_path_done, path_request, search_results,
    stored_video, Server,
};

#[tokio::test]
async fn a_configured_clip_model_embeds_every_thumbnail() {
    let data = tempfile::tempdir().unwrap();
    let clip_dir = data.path().join("my-clip");
    reelforge_models::testing::write_random_tiny_clip(&clip_dir).unwrap();
    let setting = format!("clip:{}", clip_dir.display());
    let f = fixtures();
    let demo = demo_video();
    let server = Server::start_with(
        data.path(),
        &[&f.dir, demo.parent().unwrap()],
        &[
            ("REELFORGE_IMAGE_EMBEDDER", setting.as_str()),
            ("REELFORGE_TRANSCRIBER", "none"),
        ],
    )
    .await;
    let mut client = server.client().await;
    let (events, status) = drain(
        client
            .ingest_path(path_request(&f.small, 4.0))
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    status.unwrap();
    let stored = events
        .iter()
        .find_map(|e| match e {
            Event::EmbeddingsStored(s) if s.kind.starts_with("frame_image") => Some(s.clone()),
            _ => None,
        })
        .expect("frame_image embeddings are reported");
    assert_eq!(stored.kind, "frame_image (clip:my-clip)");
    assert_eq!(stored.dimensions, 16);
    let video_id = done_video_id(&events);
    let video = stored_video(&mut client, &video_id, false).await;
    assert!(video.frames.len() >= 10, "{}", video.frames.len());
    assert_eq!(stored.count as usize, video.frames.len());
    assert_eq!(
        video.embedding_counts.get("frame_image"),
        Some(&(video.frames.len() as u32))
    );

    // Visual search: every frame is a document; results are frames of this video, in
    // its timeline, best cosine first, with no BM25 stage.
    let mut search = pb::search_client::SearchClient::new(server.channel().await);
    let visual = |top_k: u32, time: Option<(i64, i64)>, kinds: Vec<String>| pb::SearchRequest {
        query: "a bright test pattern".into(),
        mode: pb::SearchMode::Visual as i32,
        top_k,
        time_range: time.map(|(start_ms, end_ms)| pb::TimeRange { start_ms, end_ms }),
        kinds,
        ..Default::default()
    };
    let results = search_results(&mut search, visual(200, None, vec![]))
        .await
        .unwrap();
    assert_eq!(results.len(), video.frames.len(), "every frame is findable");
    let duration = video.probe.as_ref().unwrap().duration_ms;
    for pair in results.windows(2) {
        let (a, b) = (pair[0].scores.unwrap(), pair[1].scores.unwrap());
        assert!(a.vector_cosine >= b.vector_cosine);
    }
    for r in &results {
        assert_eq!(r.source, "frame");
        assert_eq!(r.video_id, video_id);
        assert!(0 <= r.start_ms && r.start_ms < r.end_ms && r.end_ms <= duration + 1);
        let s = r.scores.unwrap();
        assert_eq!((s.bm25_rank, s.reranked), (0, false));
        assert!(s.vector_rank >= 1 && (-1.0..=1.0).contains(&s.vector_cosine));
    }
    let late = search_results(&mut search, visual(200, Some((6_000, 12_000)), vec![]))
        .await
        .unwrap();
    assert!(!late.is_empty() && late.len() < results.len());
    assert!(late.iter().all(|r| r.end_ms > 6_000));
    let err = search_results(
        &mut search,
        visual(5, None, vec!["transcript_chunk".into()]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("kinds"), "{}", err.message());

    // Points matched against demo.mp4's 1 fps frames in the same model's space: every
    // frame is a unit and each point is scored against each; with the lowest threshold
    // every frame counts (random weights: this checks the path, not what matches).
    let (_, demo_id) = ingest_path_done(&mut client, &demo, 30.0).await;
    let mut highlight = pb::highlight_client::HighlightClient::new(server.channel().await);
    let mut stream = highlight
        .highlight(pb::HighlightRequest {
            video_id: demo_id,
            strategy: pb::HighlightStrategy::Points as i32,
            match_unit: pb::MatchUnit::Frames as i32,
            similarity_threshold: Some(-1.0),
            render: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut funnel, mut matches, mut done) = (None, Vec::new(), None);
    while let Some(e) = stream.message().await.unwrap() {
        match e.event.unwrap() {
            pb::highlight_event::Event::Funnel(f) => funnel = Some(f),
            pb::highlight_event::Event::PointMatch(m) => matches.push(m),
            pb::highlight_event::Event::Done(d) => done = Some(d),
            _ => {}
        }
    }
    let funnel = funnel.expect("a funnel event");
    assert_eq!((funnel.unit.as_str(), funnel.total), ("frames", 60));
    assert!(!matches.is_empty(), "demo.mp4 has highlight points");
    assert!(matches.iter().all(|m| m.clips_above == 60));
    let done = done.expect("a result");
    assert!(!done.segments.is_empty());
    assert!(done
        .segments
        .iter()
        .all(|s| s.model.ends_with("clip:my-clip match")));
    server.stop().await;
}
