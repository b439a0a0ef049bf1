//! What is seen, end to end: real footage with captions burnt in by ffmpeg's drawtext
//! (English, and Chinese in a CJK font from a Debian package), ingested by the real server
//! with the offline picture models (PP-OCRv6 on ONNX Runtime, EfficientNet-Lite0 on
//! candle): the text stored at the times it shows, named in the slice descriptions and
//! searchable as `ocr_text` documents; and what the pictures show in the descriptions.

use reelforge_proto::v1 as pb;
use reelforge_tests::{asset, ingest_path_done, search_results, stored_video, Server};

/// bikes.mp4 (10 s of street footage) with "STAGE 3 FINISH" written at the top from 2 to
/// 6 s and "第三赛段 终点" at the bottom from 6 s to the end.
fn captioned_bikes() -> std::path::PathBuf {
    let out = std::env::temp_dir().join(format!("reelforge-captions-{}.mp4", std::process::id()));
    let font = asset("fonts/wqy-microhei.ttc");
    let font = font.display();
    let filter = format!(
        "drawtext=fontfile={font}:text='STAGE 3 FINISH':fontsize=40:fontcolor=white:\
         borderw=2:bordercolor=black:x=40:y=30:enable='between(t,2,6)',\
         drawtext=fontfile={font}:text='第三赛段 终点':fontsize=40:fontcolor=yellow:\
         borderw=2:bordercolor=black:x=40:y=h-80:enable='gte(t,6)'"
    );
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(asset("samples/bikes.mp4"))
        .args([
            "-vf",
            &filter,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "copy",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "drawing the captions failed");
    out
}

fn search(query: &str, mode: pb::SearchMode, kinds: &[&str]) -> pb::SearchRequest {
    pb::SearchRequest {
        query: query.into(),
        mode: mode as i32,
        top_k: 5,
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn text_on_screen_and_what_the_pictures_show_are_stored_described_and_searchable() {
    let data = tempfile::tempdir().unwrap();
    let video = captioned_bikes();
    let server = Server::start(data.path(), &[video.parent().unwrap()]).await;
    let mut client = server.client().await;
    let (_, video_id) = ingest_path_done(&mut client, &video, 5.0).await;

    // Stored: each caption over the pictures that show it (one picture every 2 s).
    let stored = stored_video(&mut client, &video_id, false).await;
    let text = |t: &str| stored.texts.iter().find(|s| s.text == t).cloned();
    let english = text("STAGE 3 FINISH").unwrap_or_else(|| panic!("{:?}", stored.texts));
    assert_eq!(
        (english.start_ms, english.end_ms),
        (2_000, 6_000),
        "{english:?}"
    );
    let chinese = text("第三赛段终点").unwrap_or_else(|| panic!("{:?}", stored.texts));
    assert_eq!(chinese.start_ms, 6_000, "{chinese:?}");
    assert!(chinese.end_ms >= 9_000, "{chinese:?}");
    assert!(
        stored.texts.iter().all(|t| t.start_ms >= 2_000),
        "text read before any was written: {:?}",
        stored.texts
    );
    assert!(!stored.scenes.is_empty(), "no scene labels");

    // Described: the slice holding each caption names it.
    let slice_at = |ms: i64| {
        stored
            .slices
            .iter()
            .find(|s| s.start_ms <= ms && ms < s.end_ms)
            .unwrap()
            .description
            .clone()
    };
    assert!(
        slice_at(2_000).contains("On-screen text: \"STAGE 3 FINISH\" (00:02.0)"),
        "{}",
        slice_at(2_000)
    );
    assert!(
        slice_at(6_000).contains("\"第三赛段终点\""),
        "{}",
        slice_at(6_000)
    );

    // Searchable by kind, in either language, at the caption's time.
    let mut search_client = pb::search_client::SearchClient::new(server.channel().await);
    for (query, want) in [("stage 3 finish", &english), ("终点", &chinese)] {
        let hits = search_results(
            &mut search_client,
            search(query, pb::SearchMode::All, &["ocr_text"]),
        )
        .await
        .unwrap();
        let top = hits.first().unwrap_or_else(|| panic!("{query}: no hits"));
        assert_eq!(top.source, "ocr_text", "{query}: {top:?}");
        assert_eq!(
            (top.start_ms, top.end_ms),
            (want.start_ms, want.end_ms),
            "{query}: {top:?}"
        );
    }

    // What the pictures show: the clip opens on a wall panel with a light switch, and
    // the tagger's class for it leads the first slice's description.
    let switch = stored
        .scenes
        .iter()
        .find(|t| t.label.starts_with("switch"))
        .unwrap_or_else(|| panic!("{:?}", stored.scenes));
    assert_eq!(switch.start_ms, 0, "{switch:?}");
    assert!(
        stored.slices[0]
            .description
            .starts_with("00:00.0-00:05.0: switch; "),
        "{}",
        stored.slices[0].description
    );
}
