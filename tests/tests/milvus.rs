//! The Milvus search backend against a real Milvus server (milvus-lite, started here):
//! the backend conformance suite the embedded index also passes, refusals at start, and
//! the server end to end (search, several servers sharing one collection, Milvus lost
//! and back while serving).

use std::time::Duration;

use reelforge_milvus::{MilvusBackend, MilvusConfig};
use reelforge_search::conformance::Statistics;
use reelforge_search::SearchBackend;
use reelforge_tests::MilvusLite;

fn config(milvus: &MilvusLite, prefix: &str) -> MilvusConfig {
    MilvusConfig {
        uri: milvus.uri(),
        collection: prefix.into(),
        ..MilvusConfig::default()
    }
}

/// Milvus computes BM25 with per-segment statistics (Milvus Lite's also over what a filter
/// leaves, and deleted rows count until compaction); where they are the collection's, the
/// maths is ours: scores agree to float rounding.
const MILVUS_BM25_TOLERANCE: f32 = 1e-3;

#[tokio::test]
async fn milvus_backend_passes_the_conformance_suite_and_refuses_what_it_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let milvus = MilvusLite::start(&dir.path().join("milvus")).await;
    let db = sled::open(dir.path().join("db")).unwrap();
    let backend = MilvusBackend::new(&config(&milvus, "suite"), &db, 32, Some(32), false).unwrap();
    backend
        .connect()
        .await
        .expect("connect creates the collections");
    reelforge_search::conformance::backend(
        &backend,
        32,
        MILVUS_BM25_TOLERANCE,
        Statistics::PerSegment,
    )
    .await;

    // A second connect finds the collections as made: nothing to do, marks kept.
    let again = MilvusBackend::new(&config(&milvus, "suite"), &db, 32, Some(32), false).unwrap();
    again.connect().await.unwrap();
    assert_eq!(
        again.indexed_generation("c0ffee0000000003").await.unwrap(),
        Some(1)
    );

    // Another embedder's dimensions: refused, with the command that fixes it.
    let other = MilvusBackend::new(&config(&milvus, "suite"), &db, 48, Some(32), false).unwrap();
    let e = other.connect().await.unwrap_err().to_string();
    assert!(
        e.contains("suite_text") && e.contains("32") && e.contains("48"),
        "{e}"
    );
    assert!(e.contains("reelforge-server reindex"), "{e}");
    // reindex's reset drops and recreates it, empty; the marks go with it.
    let reset = MilvusBackend::new(&config(&milvus, "suite"), &db, 48, Some(32), true).unwrap();
    reset.connect().await.unwrap();
    assert_eq!(reset.stats().await.unwrap().documents, 0);
    assert!(reset.indexed_videos().await.unwrap().is_empty());

    // Nothing listening: refused at once, naming the setting.
    let port = reelforge_tests::free_port();
    let nowhere = MilvusConfig {
        uri: format!("http://127.0.0.1:{port}"),
        timeout_seconds: 3,
        ..MilvusConfig::default()
    };
    let lost = MilvusBackend::new(&nowhere, &db, 32, None, false).unwrap();
    let started = std::time::Instant::now();
    let e = lost.connect().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        e.kind(),
        reelforge_core::error::ErrorKind::Unavailable,
        "{e}"
    );
    assert!(e.to_string().contains("search.milvus.uri"), "{e}");
}

mod end_to_end {
    use std::path::Path;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use pb::search_client::SearchClient;
    use pb::search_response::Item;
    use reelforge_proto::v1 as pb;
    use reelforge_tests::{binary, fixtures, free_port, ingest_path_done, MilvusLite, Server};
    use tonic::Code;

    async fn search(server: &Server, query: &str) -> Result<Vec<pb::SearchResult>, tonic::Status> {
        let mut client = SearchClient::new(server.channel().await);
        let mut stream = client
            .search(pb::SearchRequest {
                query: query.into(),
                top_k: 50,
                ..Default::default()
            })
            .await?
            .into_inner();
        let mut results = Vec::new();
        while let Some(m) = stream.message().await? {
            if let Some(Item::Result(r)) = m.item {
                results.push(r);
            }
        }
        Ok(results)
    }

    /// A 5 s test pattern, a video neither fixture is.
    fn pattern_video(path: &Path) {
        let ok = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=320x180:rate=10")
            .args(["-t", "5", "-pix_fmt", "yuv420p"])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ffmpeg made the pattern video");
    }

    /// Two servers share one Milvus collection: each finds the other's videos, named and
    /// timed without its own catalog. Milvus lost while serving: searches are UNAVAILABLE,
    /// an ingest still stores its video, and the video is searchable once Milvus is back.
    /// Milvus unreachable at start: the server refuses to start, naming the setting.
    #[tokio::test]
    async fn servers_share_a_collection_and_outlive_losing_milvus() {
        let dir = tempfile::tempdir().unwrap();
        let milvus_data = dir.path().join("milvus");
        let mut milvus = MilvusLite::start(&milvus_data).await;
        let port = milvus.port;
        let uri = milvus.uri();
        let env = [
            ("REELFORGE_SEARCH_BACKEND", "milvus"),
            ("REELFORGE_SEARCH_MILVUS_URI", uri.as_str()),
            ("REELFORGE_SEARCH_MILVUS_COLLECTION", "shared"),
        ];
        let f = fixtures();
        let extra = dir.path().join("videos");
        std::fs::create_dir_all(&extra).unwrap();
        let pattern = extra.join("pattern.mp4");
        pattern_video(&pattern);
        let roots = [f.dir.as_path(), extra.as_path()];
        let a = Server::start_with(&dir.path().join("a"), &roots, &env).await;
        let b = Server::start_with(&dir.path().join("b"), &roots, &env).await;
        let small = ingest_path_done(&mut a.client().await, &f.small, 4.0)
            .await
            .1;
        let silent = ingest_path_done(&mut b.client().await, &f.silent, 4.0)
            .await
            .1;

        // Each server finds the other's video, with its file name and times.
        let from_b = search(&b, "a short clip").await.unwrap();
        let hit = from_b
            .iter()
            .find(|r| r.video_id == small)
            .unwrap_or_else(|| panic!("server b finds server a's video: {from_b:?}"));
        assert_eq!(hit.filename, "small.mp4");
        assert!(hit.start_ms >= 0 && hit.end_ms <= 12_100 && hit.end_ms > hit.start_ms);
        let from_a = search(&a, "a short clip").await.unwrap();
        let hit = from_a
            .iter()
            .find(|r| r.video_id == silent)
            .unwrap_or_else(|| panic!("server a finds server b's video: {from_a:?}"));
        assert_eq!(hit.filename, "silent.mp4");

        // Milvus lost: searches are UNAVAILABLE, naming the setting; an ingest still
        // stores its video.
        milvus.kill();
        let e = search(&a, "a short clip").await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        assert!(e.message().contains("search.milvus.uri"), "{}", e.message());
        let newer = ingest_path_done(&mut a.client().await, &pattern, 4.0)
            .await
            .1;

        // Milvus back (same address, same data): the stored video becomes searchable
        // without a restart of the server.
        let _milvus = MilvusLite::start_on(&milvus_data, port).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(results) = search(&a, "a short clip").await {
                if results.iter().any(|r| r.video_id == newer) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the video ingested while Milvus was down is indexed within 60 s of its return"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Nothing was lost: the earlier videos are still found from either server.
        let from_b = search(&b, "a short clip").await.unwrap();
        for id in [&small, &silent, &newer] {
            assert!(from_b.iter().any(|r| &r.video_id == id), "{id}: {from_b:?}");
        }

        // A delete on one server is seen from the other.
        a.client()
            .await
            .delete_video(pb::DeleteVideoRequest {
                video_id: small.clone(),
            })
            .await
            .unwrap();
        let from_b = search(&b, "a short clip").await.unwrap();
        assert!(from_b.iter().all(|r| r.video_id != small), "{from_b:?}");
        a.stop().await;
        b.stop().await;

        // No Milvus at the configured address: the server refuses to start and says
        // which setting to fix.
        let nowhere = format!("http://127.0.0.1:{}", free_port());
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(binary("reelforge-server"))
                .arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--data-dir")
                .arg(dir.path().join("c"))
                .env(
                    "REELFORGE_MODELS_DIR",
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"),
                )
                .env("REELFORGE_SEARCH_BACKEND", "milvus")
                .env("REELFORGE_SEARCH_MILVUS_URI", &nowhere)
                .env("REELFORGE_SEARCH_MILVUS_TIMEOUT_SECONDS", "3")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output(),
        )
        .await
        .expect("the server gave up within 60 s")
        .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("search.milvus.uri") && stderr.contains(&nowhere),
            "{stderr}"
        );
    }
}
