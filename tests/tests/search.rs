//! Search end to end: real videos (speech and action) ingested by the real server, found
//! by a spoken phrase and by a scene description, filtered, explained, refused when the
//! request is bad, and gone after a delete — also across a restart.

use pb::search_client::SearchClient;
use pb::search_response::Item;
use reelforge_proto::v1 as pb;
use reelforge_tests::{
    demo_video, free_port, ingest_path_done, scrape, speech_video, stored_video, Server,
};
use tonic::Code;

fn request(query: &str, mode: pb::SearchMode, top_k: u32) -> pb::SearchRequest {
    pb::SearchRequest {
        query: query.into(),
        mode: mode as i32,
        top_k,
        ..Default::default()
    }
}

async fn search(
    client: &mut SearchClient<tonic::transport::Channel>,
    req: pb::SearchRequest,
) -> Result<(Vec<pb::SearchResult>, pb::SearchStats), tonic::Status> {
    let mut stream = client.search(req).await?.into_inner();
    let (mut results, mut stats) = (Vec::new(), None);
    while let Some(m) = stream.message().await? {
        match m.item {
            Some(Item::Result(r)) => results.push(r),
            Some(Item::Stats(s)) => stats = Some(s),
            None => {}
        }
    }
    Ok((results, stats.expect("statistics come last")))
}

#[tokio::test]
async fn spoken_phrases_and_scenes_are_found_filtered_explained_and_deleted() {
    found_filtered_explained_and_deleted(&[]).await;
}

/// The same, with the index in Milvus (milvus-lite, started here) instead of sled.
#[tokio::test]
async fn the_same_searches_run_on_the_milvus_backend() {
    let dir = tempfile::tempdir().unwrap();
    let milvus = reelforge_tests::MilvusLite::start(&dir.path().join("milvus")).await;
    let uri = milvus.uri();
    found_filtered_explained_and_deleted(&[
        ("REELFORGE_SEARCH_BACKEND", "milvus"),
        ("REELFORGE_SEARCH_MILVUS_URI", &uri),
        ("REELFORGE_SEARCH_MILVUS_COLLECTION", "e2e"),
    ])
    .await;
}

async fn found_filtered_explained_and_deleted(env: &[(&str, &str)]) {
    let data = tempfile::tempdir().unwrap();
    let (speech, utterances) = speech_video();
    let demo = demo_video();
    let roots = [speech.parent().unwrap(), demo.parent().unwrap()];
    let server = Server::start_with(data.path(), &roots, env).await;
    let mut ingest = server.client().await;
    let mut ids = Vec::new();
    for (video, slice) in [(speech.as_path(), 30.0), (demo.as_path(), 10.0)] {
        ids.push(ingest_path_done(&mut ingest, video, slice).await.1);
    }
    let (speech_id, demo_id) = (ids[0].clone(), ids[1].clone());
    let mut client = SearchClient::new(server.channel().await);

    // A line of dialogue, searched in the transcripts, found right after ingest.
    // The local reranker is asked for: it is off by default (it does not beat fusion).
    let line = "had he married a more amiable woman";
    let reranked = pb::SearchRequest {
        rerank: Some(true),
        ..request(line, pb::SearchMode::Transcript, 5)
    };
    let (results, stats) = search(&mut client, reranked).await.unwrap();
    let top = &results[0];
    assert_eq!(top.video_id, speech_id);
    assert_eq!(top.source, "transcript_chunk");
    assert_eq!(top.rank, 1);
    let married = &utterances[3];
    assert!(
        top.start_ms <= married.start_ms + 1_000 && top.end_ms >= married.end_ms - 1_000,
        "{top:?} covers {married:?}"
    );
    let scores = top.scores.unwrap();
    assert_eq!(scores.bm25_rank, 1, "{scores:?}");
    assert!(scores.bm25_score > 0.0 && scores.vector_cosine > 0.0 && scores.reranked);
    assert!(top.snippet.contains("**amiable**"), "{}", top.snippet);
    let terms: Vec<&str> = top.matched_terms.iter().map(|t| t.term.as_str()).collect();
    assert!(
        terms.contains(&"amiabl") && terms.contains(&"woman"),
        "{terms:?}"
    );
    assert!(results.iter().all(|r| r.source == "transcript_chunk"));
    assert_eq!(stats.results as usize, results.len());
    assert!(stats.total_ms > 0.0);
    // Unasked, the same search is fused and not reranked, and its query vector is the one
    // just made (a search embeds a query once; recent queries are remembered).
    let (plain, plain_stats) = search(&mut client, request(line, pb::SearchMode::Transcript, 5))
        .await
        .unwrap();
    assert_eq!(plain[0].video_id, speech_id);
    assert!(plain.iter().all(|r| !r.scores.unwrap().reranked));
    assert!(plain_stats.query_cached && plain_stats.embed_batch == 0);

    // A scene, by what is seen: the bikes clip at 20-30 s of the demo.
    let (results, _) = search(
        &mut client,
        request(
            "a burst of fast motion with a scene cut",
            pb::SearchMode::Scene,
            3,
        ),
    )
    .await
    .unwrap();
    let top = &results[0];
    assert_eq!(top.video_id, demo_id, "{results:?}");
    assert_ne!(top.source, "transcript_chunk");
    assert!(results.iter().all(|r| r.source != "transcript_chunk"));
    assert!(
        results
            .iter()
            .any(|r| r.source == "slice_description" && r.start_ms == 20_000),
        "{results:?}"
    );

    // Filters: one video, a time range, kinds; fused order without rerank.
    let mut only_demo = request(line, pb::SearchMode::All, 10);
    only_demo.video_ids = vec![demo_id.clone()];
    let (results, _) = search(&mut client, only_demo).await.unwrap();
    assert!(results.iter().all(|r| r.video_id == demo_id));
    let mut late = request("fast motion", pb::SearchMode::Scene, 10);
    late.time_range = Some(pb::TimeRange {
        start_ms: 40_000,
        end_ms: 60_000,
    });
    late.kinds = vec!["slice_description".into()];
    late.rerank = Some(false);
    let (results, _) = search(&mut client, late).await.unwrap();
    assert!(!results.is_empty());
    for r in &results {
        assert!(
            r.end_ms > 40_000 && r.source == "slice_description",
            "{r:?}"
        );
        assert!(!r.scores.unwrap().reranked);
    }

    // Bad requests: a clear INVALID_ARGUMENT naming the field, and the server serves on.
    let bad = |f: fn(&mut pb::SearchRequest)| {
        let mut r = request("goal", pb::SearchMode::All, 5);
        f(&mut r);
        r
    };
    let cases: Vec<(pb::SearchRequest, &str)> = vec![
        (bad(|r| r.query = "   ".into()), "query"),
        (bad(|r| r.query = "x".repeat(10 << 20)), "query"),
        (bad(|r| r.top_k = 0), "top_k"),
        (bad(|r| r.top_k = 1_000_000), "top_k"),
        (
            bad(|r| r.video_ids = vec!["ffffffffffffffff".into()]),
            "video_ids",
        ),
        (bad(|r| r.video_ids = vec!["../etc".into()]), "video_ids"),
        (bad(|r| r.kinds = vec!["chapters".into()]), "kinds"),
        (
            bad(|r| {
                r.time_range = Some(pb::TimeRange {
                    start_ms: 9,
                    end_ms: 3,
                })
            }),
            "time_range",
        ),
    ];
    // Visual search needs an image-text model, and this server has none.
    let err = search(&mut client, request("a red car", pb::SearchMode::Visual, 5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("image_embedder"),
        "{}",
        err.message()
    );
    for (req, field) in cases {
        let err = search(&mut client, req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains(field),
            "{} should name {field}",
            err.message()
        );
    }

    // Deleting the speech video removes its documents from search, also after a restart.
    ingest
        .delete_video(pb::DeleteVideoRequest {
            video_id: speech_id.clone(),
        })
        .await
        .unwrap();
    let (results, _) = search(&mut client, request(line, pb::SearchMode::All, 20))
        .await
        .unwrap();
    assert!(
        results.iter().all(|r| r.video_id != speech_id),
        "{results:?}"
    );
    server.stop().await;
    let server = Server::start_with(data.path(), &roots, env).await;
    let mut client = SearchClient::new(server.channel().await);
    let (results, _) = search(&mut client, request(line, pb::SearchMode::All, 20))
        .await
        .unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| r.video_id == demo_id), "{results:?}");
    server.stop().await;
}

#[tokio::test]
async fn the_cli_prints_a_table_and_json_lines() {
    let data = tempfile::tempdir().unwrap();
    let demo = demo_video();
    let server = Server::start(data.path(), &[demo.parent().unwrap()]).await;
    let mut ingest = server.client().await;
    ingest_path_done(&mut ingest, &demo, 10.0).await;
    let out = server.cli(&[
        "search",
        "sudden loud audio",
        "--mode",
        "scene",
        "--top-k",
        "2",
        "--explain",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("SNIPPET") && stdout.contains("**loud**"),
        "{stdout}"
    );
    assert!(stdout.contains("term loud"), "{stdout}");
    assert!(stdout.contains("results in"), "{stdout}");
    let out = server.cli(&["search", "sudden loud audio", "--json", "--top-k", "1"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0]["item"]["result"]["video_id"].is_string(),
        "{lines:?}"
    );
    let out = server.cli(&["search", " "]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVALID_ARGUMENT: query is empty"));
    server.stop().await;
}

#[tokio::test]
async fn subtitles_from_sidecars_and_streams_are_searchable_and_broken_ones_refused() {
    let data = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let small = &reelforge_tests::fixtures().small;
    // A sidecar next to the video.
    let sidecar_video = media.path().join("talk.mp4");
    std::fs::copy(small, &sidecar_video).unwrap();
    std::fs::write(
        media.path().join("talk.srt"),
        "1\n00:00:02,000 --> 00:00:04,500\nThe <b>lighthouse</b> keeper waves.\n\n2\n00:00:08,000 --> 00:00:10,000\nStorm warning tonight.\n",
    )
    .unwrap();
    // A subtitle stream inside the container.
    let subs = media.path().join("inner.srt");
    std::fs::write(
        &subs,
        "1\n00:00:05,000 --> 00:00:07,000\nA giraffe crosses the savanna.\n",
    )
    .unwrap();
    let stream_video = media.path().join("documentary.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(small)
        .arg("-i")
        .arg(&subs)
        .args([
            "-map",
            "0",
            "-map",
            "1",
            "-c",
            "copy",
            "-c:s",
            "mov_text",
            "-metadata",
            "title=doc",
        ])
        .arg(&stream_video)
        .status()
        .unwrap();
    assert!(status.success());
    // The small clip again under another title (other bytes, so another video).
    let retitled = |name: &str, title: &str| {
        let video = media.path().join(name);
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(small)
            .args(["-c", "copy", "-metadata", &format!("title={title}")])
            .arg(&video)
            .status()
            .unwrap();
        assert!(status.success());
        video
    };
    // A broken sidecar.
    let broken_video = retitled("broken.mp4", "another");
    std::fs::write(
        media.path().join("broken.en.srt"),
        "1\n00:00:01,000 --> 00:00:0x,000\nOops\n",
    )
    .unwrap();

    // A Chinese sidecar in GB18030, as many Chinese .srt files are.
    let chinese_video = retitled("match.mp4", "match");
    let (gb18030, _, _) = encoding_rs::GB18030.encode(
        "1\n00:00:01,000 --> 00:00:03,000\n今天的足球比赛很精彩\n\n2\n00:00:05,000 --> 00:00:07,000\n足球迷都来了\n",
    );
    std::fs::write(media.path().join("match.srt"), &gb18030).unwrap();

    let server = Server::start(data.path(), &[media.path()]).await;
    let mut ingest = server.client().await;
    let mut ids = Vec::new();
    for video in [&sidecar_video, &stream_video, &chinese_video] {
        ids.push(ingest_path_done(&mut ingest, video, 4.0).await.1);
    }
    let detail = stored_video(&mut ingest, &ids[0], false).await;
    assert_eq!(detail.subtitles.len(), 2);
    assert_eq!(detail.subtitles[0].text, "The lighthouse keeper waves.");
    assert_eq!(
        (detail.subtitles[1].start_ms, detail.subtitles[1].end_ms),
        (8_000, 10_000)
    );

    let mut client = SearchClient::new(server.channel().await);
    let (results, _) = search(
        &mut client,
        request("lighthouse keeper", pb::SearchMode::Transcript, 3),
    )
    .await
    .unwrap();
    assert_eq!(results[0].video_id, ids[0]);
    assert_eq!((results[0].start_ms, results[0].end_ms), (2_000, 10_000));
    let (results, _) = search(
        &mut client,
        request("giraffe", pb::SearchMode::Transcript, 3),
    )
    .await
    .unwrap();
    assert_eq!(results[0].video_id, ids[1]);
    assert_eq!((results[0].start_ms, results[0].end_ms), (5_000, 7_000));
    // The Chinese lines were read from GB18030 and are found by a compound word whose
    // parts jieba also yields; each stretch is marked once (nested matches used to
    // panic the snippet).
    let (results, _) = search(
        &mut client,
        request("足球比赛", pb::SearchMode::Transcript, 3),
    )
    .await
    .unwrap();
    assert_eq!(results[0].video_id, ids[2]);
    assert!(
        results[0].snippet.contains("今天的**足球比赛**很精彩"),
        "{}",
        results[0].snippet
    );

    let before = ingest
        .list_videos(pb::ListVideosRequest::default())
        .await
        .unwrap()
        .into_inner()
        .videos
        .len();
    let err = ingest
        .ingest_path(reelforge_tests::path_request(&broken_video, 4.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("broken.en.srt") && err.message().contains("cue 1: end time"),
        "{}",
        err.message()
    );
    let after = ingest
        .list_videos(pb::ListVideosRequest::default())
        .await
        .unwrap()
        .into_inner()
        .videos
        .len();
    assert_eq!(before, after, "nothing was stored");
    server.stop().await;
}

#[tokio::test]
async fn bda_results_import_as_searchable_timed_documents() {
    let data = tempfile::tempdir().unwrap();
    let demo = demo_video();
    let server = Server::start(data.path(), &[demo.parent().unwrap()]).await;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bda/result.json");
    let json = std::fs::read(&fixture).unwrap();

    // As a video of its own, through the CLI.
    let out = server.cli(&["import-bda", fixture.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(new record)"), "{stdout}");
    let mut ingest = server.client().await;
    let videos = ingest
        .list_videos(pb::ListVideosRequest::default())
        .await
        .unwrap()
        .into_inner()
        .videos;
    assert_eq!(videos.len(), 1);
    let bda_id = videos[0].video_id.clone();
    assert_eq!(videos[0].filename, "cup-final.mp4");
    assert_eq!(videos[0].duration_ms, 120_000);

    let mut client = SearchClient::new(server.channel().await);
    let (results, _) = search(
        &mut client,
        request("goalkeeper saves the penalty", pb::SearchMode::Scene, 3),
    )
    .await
    .unwrap();
    assert_eq!(results[0].source, "video_summary", "{results:?}");
    let mut chapters = request("goalkeeper saves the penalty", pb::SearchMode::Scene, 3);
    chapters.kinds = vec!["chapter_summary".into()];
    let (results, _) = search(&mut client, chapters).await.unwrap();
    assert_eq!(results[0].source, "chapter_summary", "{results:?}");
    assert_eq!((results[0].start_ms, results[0].end_ms), (40_000, 80_000));
    // A transcript chunk has its audio segment's times, not its chapter's.
    let (results, _) = search(
        &mut client,
        request("header in the last minute", pb::SearchMode::Transcript, 3),
    )
    .await
    .unwrap();
    assert_eq!(
        (results[0].start_ms, results[0].end_ms),
        (101_000, 104_500),
        "{results:?}"
    );

    // For a video already ingested.
    let (_, demo_id) = ingest_path_done(&mut ingest, &demo, 10.0).await;
    let reply = ingest
        .import_bda(pb::ImportBdaRequest {
            result_json: json.clone(),
            video_id: demo_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (reply.video_id.as_str(), reply.created),
        (demo_id.as_str(), false)
    );
    // The summary, three chapter summaries, three timed transcript chunks, and the one
    // shot with words of its own (labels, on-screen text).
    assert_eq!(reply.documents, 8);
    let mut shots = request("full time scoreboard", pb::SearchMode::Scene, 3);
    shots.kinds = vec!["shot".into()];
    shots.video_ids = vec![demo_id.clone()];
    let (results, _) = search(&mut client, shots).await.unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(
        (
            results[0].source.as_str(),
            results[0].start_ms,
            results[0].end_ms
        ),
        ("shot", 100_000, 106_000)
    );
    let mut only_demo = request("captain lifts the trophy", pb::SearchMode::All, 3);
    only_demo.video_ids = vec![demo_id.clone()];
    let (results, _) = search(&mut client, only_demo).await.unwrap();
    assert_eq!(results[0].video_id, demo_id);
    assert_eq!(results[0].source, "chapter_summary");

    // Malformed results are refused naming the field; nothing is written.
    let mut broken: serde_json::Value = serde_json::from_slice(&json).unwrap();
    broken["chapters"][2]["end_timestamp_millis"] = 5.into();
    let err = ingest
        .import_bda(pb::ImportBdaRequest {
            result_json: broken.to_string().into_bytes(),
            video_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("chapters[2].end_timestamp_millis"),
        "{}",
        err.message()
    );
    let err = ingest
        .import_bda(pb::ImportBdaRequest {
            result_json: b"[1, 2]".to_vec(),
            video_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = ingest
        .import_bda(pb::ImportBdaRequest {
            result_json: json.clone(),
            video_id: "0123456789abcdef".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let videos = ingest
        .list_videos(pb::ListVideosRequest::default())
        .await
        .unwrap()
        .into_inner()
        .videos;
    assert_eq!(videos.len(), 2);

    // Deleting the imported video removes its documents.
    ingest
        .delete_video(pb::DeleteVideoRequest {
            video_id: bda_id.clone(),
        })
        .await
        .unwrap();
    let (results, _) = search(
        &mut client,
        request("goalkeeper penalty", pb::SearchMode::All, 10),
    )
    .await
    .unwrap();
    assert!(results.iter().all(|r| r.video_id != bda_id), "{results:?}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_rpcs_by_status_and_time_search_stages() {
    let data = tempfile::tempdir().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Server::start_with(
        data.path(),
        &[],
        &[
            ("REELFORGE_METRICS_LISTEN", metrics.as_str()),
            ("REELFORGE_TRANSCRIBER", "none"),
        ],
    )
    .await;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bda/result.json");
    let out = server.cli(&["import-bda", fixture.to_str().unwrap()]);
    assert!(out.status.success());
    let mut client = SearchClient::new(server.channel().await);
    for _ in 0..2 {
        search(
            &mut client,
            request("goalkeeper saves the penalty", pb::SearchMode::All, 3),
        )
        .await
        .unwrap();
    }
    let err = search(&mut client, request(" ", pb::SearchMode::All, 3))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let text = scrape(&metrics).await;
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(
        has(r#"reelforge_rpc_requests_total{code="OK",rpc="reelforge.v1.Search/Search"} 2"#),
        "{text}"
    );
    assert!(
        has(
            r#"reelforge_rpc_requests_total{code="INVALID_ARGUMENT",rpc="reelforge.v1.Search/Search"} 1"#
        ),
        "{text}"
    );
    for stage in [
        "queue", "embed", "bm25", "vectors", "fuse", "rerank", "total",
    ] {
        assert!(
            has(&format!(
                r#"reelforge_search_stage_seconds_count{{stage="{stage}"}} 2"#
            )),
            "{stage}: {text}"
        );
    }
    // The same query twice: embedded once, then from the cache.
    assert!(
        has(r#"reelforge_search_query_vectors_total{source="model"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"reelforge_search_query_vectors_total{source="cache"} 1"#),
        "{text}"
    );
    // What is stored, read at the scrape: the imported video, its documents, the store.
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert_eq!(value("reelforge_videos"), 1.0);
    assert!(value("reelforge_video_seconds") > 0.0, "{text}");
    assert!(
        value(r#"reelforge_index_documents{backend="embedded"}"#) >= 3.0,
        "{text}"
    );
    assert!(value("reelforge_store_bytes") > 0.0, "{text}");
    server.stop().await;
}

/// ffprobe's (duration s, video height) of an MP4 (`None`: it does not play).
fn clip_shape(path: &std::path::Path) -> Option<(f64, i64)> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=height:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((
        v["format"]["duration"].as_str()?.parse().ok()?,
        v["streams"][0]["height"].as_i64()?,
    ))
}

/// Moments delivered: a search hit's still comes with it, and any stored range is a
/// playable MP4 (stream copy from the keyframe before it, or re-encoded for an exact
/// start or a smaller picture), through the RPC and the CLI.
#[tokio::test]
async fn moments_are_delivered_as_clips_and_stills() {
    use pb::highlight_client::HighlightClient;
    let data = tempfile::tempdir().unwrap();
    let demo = demo_video();
    let server = Server::start(data.path(), &[demo.parent().unwrap()]).await;
    let mut ingest = server.client().await;
    let (_, video_id) = ingest_path_done(&mut ingest, &demo, 10.0).await;

    let mut client = SearchClient::new(server.channel().await);
    let mut with_stills = request("fast motion", pb::SearchMode::Scene, 3);
    with_stills.include_thumbnails = true;
    let (results, _) = search(&mut client, with_stills).await.unwrap();
    assert!(!results.is_empty());
    for r in &results {
        assert_eq!(&r.thumbnail_jpeg[..3], &[0xFF, 0xD8, 0xFF], "a JPEG: {r:?}");
        assert!(
            r.thumbnail_ms >= r.start_ms - 1_000 && r.thumbnail_ms <= r.end_ms,
            "the still is of the moment: {} in {}-{}",
            r.thumbnail_ms,
            r.start_ms,
            r.end_ms
        );
    }
    let (plain, _) = search(
        &mut client,
        request("fast motion", pb::SearchMode::Scene, 3),
    )
    .await
    .unwrap();
    assert!(
        plain.iter().all(|r| r.thumbnail_jpeg.is_empty()),
        "only when asked"
    );

    let highlights = HighlightClient::new(server.channel().await);
    let fetch = |req: pb::GetClipRequest| {
        let mut highlights = highlights.clone();
        async move {
            let mut stream = highlights.get_clip(req).await?.into_inner();
            let (mut info, mut bytes) = (None, Vec::new());
            while let Some(c) = stream.message().await? {
                info = info.or(c.info);
                bytes.extend(c.data);
            }
            Ok::<_, tonic::Status>((info.unwrap(), bytes))
        }
    };
    let clip = |start_ms, end_ms, max_height, exact| pb::GetClipRequest {
        video_id: video_id.clone(),
        start_ms,
        end_ms,
        max_height,
        exact,
    };
    let write = |name: &str, bytes: &[u8]| {
        let path = data.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    // The bikes, 21-29 s: stream copy from the keyframe at or before 21 s.
    let (info, bytes) = fetch(clip(21_000, 29_000, 0, false)).await.unwrap();
    assert!(
        info.stream_copy && info.start_ms <= 21_000 && info.end_ms == 29_000,
        "{info:?}"
    );
    assert_eq!(info.total_bytes as usize, bytes.len());
    assert_eq!(info.content_type, "video/mp4");
    let (duration, height) = clip_shape(&write("copy.mp4", &bytes)).expect("it plays");
    let wanted = (info.end_ms - info.start_ms) as f64 / 1000.0;
    assert!(
        (duration - wanted).abs() < 0.6,
        "{duration} s for {wanted} s"
    );
    // Exact and smaller: re-encoded, starting where asked.
    let (info, bytes) = fetch(clip(21_000, 29_000, 120, true)).await.unwrap();
    assert!(!info.stream_copy && info.start_ms == 21_000, "{info:?}");
    let (duration, height_small) = clip_shape(&write("exact.mp4", &bytes)).expect("it plays");
    assert!((duration - 8.0).abs() < 0.2, "{duration}");
    assert!(
        height_small <= 120 && height_small < height,
        "{height_small} of {height}"
    );

    // Bad ranges and ids: the right code, the field named.
    for (req, code, field) in [
        (clip(-1, 5_000, 0, false), Code::InvalidArgument, "start_ms"),
        (
            clip(70_000, 80_000, 0, false),
            Code::InvalidArgument,
            "start_ms",
        ),
        (
            clip(5_000, 5_000, 0, false),
            Code::InvalidArgument,
            "end_ms",
        ),
        (
            clip(0, 59_000, 8, false),
            Code::InvalidArgument,
            "max_height",
        ),
        (
            pb::GetClipRequest {
                video_id: "0123456789abcdef".into(),
                ..clip(0, 1_000, 0, false)
            },
            Code::NotFound,
            "0123456789abcdef",
        ),
    ] {
        let err = fetch(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(field), "{}", err.message());
    }

    // The CLI: one clip, and every hit of a search as a clip.
    let out_file = data.path().join("moment.mp4");
    let out = server.cli(&[
        "clip",
        &video_id,
        "45-50",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("stream copy"));
    assert!(clip_shape(&out_file).is_some());
    let dir = data.path().join("hits");
    let out = server.cli(&[
        "search",
        "fast motion",
        "--mode",
        "scene",
        "--kind",
        "slice_description",
        "--top-k",
        "2",
        "--clips",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clips: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(clips.len(), 2, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(clips.iter().all(|c| clip_shape(&c.path()).is_some()));
    server.stop().await;
}
