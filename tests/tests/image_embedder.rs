//! The CLIP loading path end to end: a user's model directory (here a tiny one with
//! random weights) configured on the real server embeds every thumbnail at ingest.

use pb::ingest_event::Event;
use reelforge_proto::v1 as pb;
use reelforge_tests::{done_video_id, drain, fixtures, path_request, Server};

#[tokio::test]
async fn a_configured_clip_model_embeds_every_thumbnail() {
    let data = tempfile::tempdir().unwrap();
    let clip_dir = data.path().join("my-clip");
    reelforge_server::models::clip::write_random_tiny_clip(&clip_dir).unwrap();
    let setting = format!("clip:{}", clip_dir.display());
    let f = fixtures();
    let server = Server::start_with(
        data.path(),
        &[&f.dir],
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
    let video = client
        .get_video(pb::GetVideoRequest {
            video_id: done_video_id(&events),
            include_signals: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(video.frames.len() >= 10, "{}", video.frames.len());
    assert_eq!(stored.count as usize, video.frames.len());
    assert_eq!(
        video.embedding_counts.get("frame_image"),
        Some(&(video.frames.len() as u32))
    );
    server.stop().await;
}
