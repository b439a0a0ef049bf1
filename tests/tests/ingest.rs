//! Ingest end to end: a real server process, real ffmpeg, sled on disk, gRPC on a socket.

use std::time::Duration;

use reelforge_engine::store::{JobState, Store};
use reelforge_proto::v1 as pb;
use reelforge_proto::v1::ingest_event::Event;
use reelforge_tests::{
    demo_video, done_video_id, drain, fixtures, free_port, ingest_path_done, path_request, scrape,
    stored_video, upload_chunks, Server,
};
use tokio_stream::StreamExt;
use tonic::Code;

#[tokio::test]
async fn upload_streams_each_slice_in_order_and_reingest_is_idempotent() {
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    let mut client = server.client().await;

    let stream = client
        .ingest_upload(tokio_stream::iter(upload_chunks(&f.small, 4.0, false)))
        .await
        .unwrap();
    let (events, status) = drain(stream.into_inner()).await;
    status.unwrap();

    // accepted, probe, then per slice started..finished in order, embeddings, done.
    assert!(
        matches!(&events[0], Event::Accepted(a) if a.slice_count == 3 && !a.already_ingested),
        "{:?}",
        events[0]
    );
    assert!(
        matches!(&events[1], Event::Probe(p) if (11_900..=12_100).contains(&p.duration_ms)),
        "{:?}",
        events[1]
    );
    let mut order = Vec::new();
    for e in &events {
        match e {
            Event::SliceStarted(s) => order.push(("started", s.index)),
            Event::SliceFinished(s) => order.push(("finished", s.analysis.as_ref().unwrap().index)),
            _ => {}
        }
    }
    let finished: Vec<u32> = order
        .iter()
        .filter(|(k, _)| *k == "finished")
        .map(|(_, i)| *i)
        .collect();
    assert_eq!(finished, vec![0, 1, 2]);
    for i in 0..3u32 {
        let started = order.iter().position(|o| *o == ("started", i)).unwrap();
        let done = order.iter().position(|o| *o == ("finished", i)).unwrap();
        assert!(
            started < done,
            "slice {i} finished before it started: {order:?}"
        );
    }
    let stored: Vec<(String, u32, u32)> = events
        .iter()
        .filter_map(|e| match e {
            Event::EmbeddingsStored(s) => Some((s.kind.clone(), s.count, s.dimensions)),
            _ => None,
        })
        .collect();
    assert_eq!(
        stored,
        vec![
            ("visual_descriptor".to_string(), 6, 82),
            ("text (local:use-multilingual-v3)".to_string(), 3, 512),
            // A steady tone is not speech.
            ("transcript (local:use-multilingual-v3)".to_string(), 0, 512),
            ("summary (local:use-multilingual-v3)".to_string(), 1, 512),
        ]
    );
    let video_id = done_video_id(&events);

    let video = stored_video(&mut client, &video_id, true).await;
    assert_eq!(video.slices.len(), 3);
    assert_eq!(video.slices[1].start_ms, 4_000);
    assert!(video
        .slices
        .iter()
        .all(|s| s.keyframe_aligned && !s.description.is_empty()));
    assert_eq!(video.frames.len(), 12, "one thumbnail per second");
    assert!(video
        .frames
        .iter()
        .all(|fr| std::path::Path::new(&fr.path).exists()));
    assert_eq!(video.signals.len(), 24, "one signal window per 0.5 s");
    assert!(
        video.signals.iter().all(|w| w.loudness_db > -30.0),
        "the tone is audible"
    );
    assert_eq!(video.embedding_counts["visual_descriptor"], 6);
    assert_eq!(
        video.embedding_counts["text"], 3,
        "one per slice description"
    );

    // Same bytes again: same id, nothing re-analysed, no duplicate records.
    let again = client
        .ingest_upload(tokio_stream::iter(upload_chunks(&f.small, 4.0, false)))
        .await
        .unwrap();
    let (events, status) = drain(again.into_inner()).await;
    status.unwrap();
    assert!(
        matches!(&events[0], Event::Accepted(a) if a.already_ingested && a.video_id == video_id)
    );
    assert!(!events.iter().any(|e| matches!(e, Event::SliceFinished(_))));
    assert_eq!(done_video_id(&events), video_id);

    // force re-analyses in place, here with other slices.
    let forced = client
        .ingest_upload(tokio_stream::iter(upload_chunks(&f.small, 6.0, true)))
        .await
        .unwrap();
    let (events, status) = drain(forced.into_inner()).await;
    status.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::SliceFinished(_)))
            .count(),
        2
    );
    let videos = client
        .list_videos(pb::ListVideosRequest::default())
        .await
        .unwrap()
        .into_inner()
        .videos;
    assert_eq!(videos.len(), 1);
    assert_eq!(videos[0].slice_count, 2);
    let video = stored_video(&mut client, &video_id, false).await;
    assert_eq!(
        video.slices.len(),
        2,
        "no stale slices from the first analysis"
    );
    server.stop().await;

    // The same facts hold in the sled store on disk.
    let store = Store::open(&data.path().join("db"), 16 << 20).unwrap();
    assert_eq!(store.videos().unwrap().len(), 1);
    assert_eq!(store.slices(&video_id).unwrap().len(), 2);
    // No upload or staging leftovers.
    for dir in ["uploads", "staging"] {
        let d = data.path().join(dir);
        assert!(
            !d.exists() || std::fs::read_dir(&d).unwrap().next().is_none(),
            "{dir} not empty"
        );
    }
}

#[tokio::test]
async fn bad_inputs_get_clear_errors_and_lose_nothing() {
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.mp4");
    std::fs::copy(&f.small, &secret).unwrap();
    let server = Server::start(data.path(), &[&f.dir]).await;
    let mut client = server.client().await;

    // Something stored first, that no bad request may touch.
    let stream = client
        .ingest_path(path_request(&f.silent, 4.0))
        .await
        .unwrap();
    let (events, status) = drain(stream.into_inner()).await;
    status.unwrap();
    let kept = done_video_id(&events);
    let before = stored_video(&mut client, &kept, true).await;

    let escape = format!(
        "{}/../{}/secret.mp4",
        f.dir.display(),
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    let cases: Vec<(String, f64, Code, &str)> = vec![
        (
            f.dir.join("missing.mp4").display().to_string(),
            0.0,
            Code::NotFound,
            "no such file",
        ),
        (
            f.a_directory.display().to_string(),
            0.0,
            Code::InvalidArgument,
            "is a directory",
        ),
        (
            f.empty.display().to_string(),
            0.0,
            Code::InvalidArgument,
            "empty (0 bytes)",
        ),
        (
            f.truncated.display().to_string(),
            0.0,
            Code::InvalidArgument,
            "not a video ffprobe can read",
        ),
        (
            f.text_as_mp4.display().to_string(),
            0.0,
            Code::InvalidArgument,
            "not a video ffprobe can read",
        ),
        (
            f.header_longer_than_data.display().to_string(),
            0.0,
            Code::InvalidArgument,
            "the header claims 12.0 s",
        ),
        (
            f.small.display().to_string(),
            0.001,
            Code::InvalidArgument,
            "slice_seconds must be between",
        ),
        (
            f.small.display().to_string(),
            -5.0,
            Code::InvalidArgument,
            "slice_seconds must be between",
        ),
        (
            f.small.display().to_string(),
            1e9,
            Code::InvalidArgument,
            "slice_seconds must be between",
        ),
        (
            secret.display().to_string(),
            0.0,
            Code::PermissionDenied,
            "outside the directories",
        ),
        (
            escape,
            0.0,
            Code::PermissionDenied,
            "outside the directories",
        ),
        (
            "../../../../etc/passwd".into(),
            0.0,
            Code::PermissionDenied,
            "outside the directories",
        ),
        ("".into(), 0.0, Code::InvalidArgument, "path is empty"),
    ];
    for (path, slice_seconds, code, message) in cases {
        let request = pb::IngestPathRequest {
            path: path.clone(),
            options: Some(pb::IngestOptions {
                slice_seconds,
                ..Default::default()
            }),
        };
        let status = client
            .ingest_path(request)
            .await
            .err()
            .unwrap_or_else(|| panic!("{path} was accepted"));
        assert_eq!(status.code(), code, "{path}: {}", status.message());
        assert!(
            status.message().contains(message),
            "{path}: {:?} lacks {message:?}",
            status.message()
        );
    }

    // Bad uploads.
    use pb::upload_chunk::Part;
    let data_chunk = |b: &[u8]| pb::UploadChunk {
        part: Some(Part::Data(b.to_vec())),
    };
    let header = |size: i64| pb::UploadChunk {
        part: Some(Part::Header(pb::UploadHeader {
            filename: "x.mp4".into(),
            size_bytes: size,
            options: None,
        })),
    };
    let uploads: Vec<(Vec<pb::UploadChunk>, &str)> = vec![
        (vec![header(0)], "empty (0 bytes were uploaded)"),
        (
            vec![data_chunk(b"abc")],
            "first upload message must be an UploadHeader",
        ),
        (
            vec![header(10), data_chunk(b"abc")],
            "ended after 3 of the 10 bytes",
        ),
        (
            vec![header(2), data_chunk(b"abc")],
            "larger than the 2 bytes",
        ),
        (
            upload_chunks(&f.text_as_mp4, 0.0, false),
            "not a video ffprobe can read",
        ),
        (
            upload_chunks(&f.header_longer_than_data, 0.0, false),
            "the header claims 12.0 s",
        ),
    ];
    for (chunks, message) in uploads {
        let status = client
            .ingest_upload(tokio_stream::iter(chunks))
            .await
            .expect_err("bad upload accepted");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(
            status.message().contains(message),
            "{:?} lacks {message:?}",
            status.message()
        );
        // Told under the caller's file name, never the server's temporary one.
        assert!(
            !status.message().contains(".part"),
            "{:?} names the temporary file",
            status.message()
        );
    }
    let status = client
        .ingest_upload(tokio_stream::iter(upload_chunks(
            &f.text_as_mp4,
            0.0,
            false,
        )))
        .await
        .expect_err("text accepted as video");
    assert!(
        status.message().starts_with("notes.mp4 is not a video"),
        "{:?}",
        status.message()
    );

    // Unknown and malformed ids.
    let status = client
        .get_video(pb::GetVideoRequest {
            video_id: "0123456789abcdef".into(),
            include_signals: false,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .delete_video(pb::DeleteVideoRequest {
            video_id: "../../x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client
        .get_job(pb::GetJobRequest {
            job_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // Nothing stored was touched and the server still serves.
    let after = stored_video(&mut client, &kept, true).await;
    assert_eq!(before, after);
    assert_eq!(
        client
            .list_videos(pb::ListVideosRequest::default())
            .await
            .unwrap()
            .into_inner()
            .videos
            .len(),
        1
    );
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let uploads = data.path().join("uploads");
    assert!(
        !uploads.exists() || std::fs::read_dir(&uploads).unwrap().next().is_none(),
        "failed uploads left files"
    );
}

#[tokio::test]
async fn delete_removes_everything_and_restart_keeps_the_rest() {
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[&f.dir]).await;
    let mut client = server.client().await;
    let mut ids = Vec::new();
    for file in [&f.small, &f.silent] {
        let (events, status) = drain(
            client
                .ingest_upload(tokio_stream::iter(upload_chunks(file, 4.0, false)))
                .await
                .unwrap()
                .into_inner(),
        )
        .await;
        status.unwrap();
        ids.push(done_video_id(&events));
    }
    let job_id = client
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs[0]
        .job_id
        .clone();
    let media = data.path().join("media").join(&ids[0]);
    assert!(
        media.join("source.mp4").exists(),
        "uploads are kept under the data dir"
    );

    let stored = client
        .get_video(pb::GetVideoRequest {
            video_id: ids[0].clone(),
            include_signals: false,
        })
        .await
        .unwrap()
        .into_inner();
    // The sound events of each slice where the tagger heard something are one record.
    let slices_heard = stored
        .slices
        .iter()
        .filter(|s| {
            stored
                .sounds
                .iter()
                .any(|e| e.start_ms >= s.start_ms && e.start_ms < s.end_ms)
        })
        .count() as u64;
    assert!(slices_heard > 0, "the tone was heard: {:?}", stored.sounds);
    let reply = client
        .delete_video(pb::DeleteVideoRequest {
            video_id: ids[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    // 3 slices x (slice, signals, doc, frames, text embedding, what its pictures showed)
    // + the slices' sound events + 6 clip embeddings + the summary embedding + the video +
    // its hash (a tone has no transcript).
    assert_eq!(
        reply.records_removed,
        3 * 6 + slices_heard + 6 + 1 + 2,
        "{reply:?}"
    );
    assert_eq!(
        client
            .get_video(pb::GetVideoRequest {
                video_id: ids[0].clone(),
                include_signals: false
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .delete_video(pb::DeleteVideoRequest {
                video_id: ids[0].clone()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert!(
        !media.exists(),
        "thumbnails and the uploaded source are gone"
    );
    let kept = stored_video(&mut client, &ids[1], true).await;

    // Restart on the same data dir: everything not deleted is still there.
    server.stop().await;
    {
        let store = Store::open(&data.path().join("db"), 16 << 20).unwrap();
        assert_eq!(
            store.owned_record_count(&ids[0]).unwrap(),
            0,
            "no record of the deleted video is left in sled"
        );
        assert!(store
            .video_id_by_content(&kept.summary.as_ref().unwrap().content_sha256)
            .unwrap()
            .is_some());
    }
    let server = Server::start(data.path(), &[&f.dir]).await;
    let mut client = server.client().await;
    let videos = client
        .list_videos(pb::ListVideosRequest::default())
        .await
        .unwrap()
        .into_inner()
        .videos;
    assert_eq!(
        videos
            .iter()
            .map(|v| v.video_id.clone())
            .collect::<Vec<_>>(),
        vec![ids[1].clone()]
    );
    let again = stored_video(&mut client, &ids[1], true).await;
    assert_eq!(kept, again);
    // A finished job can still be replayed after the restart.
    let (events, status) = drain(
        client
            .watch_job(pb::WatchJobRequest { job_id })
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    status.unwrap();
    assert!(matches!(events.last(), Some(Event::Done(_))));
    server.stop().await;
}

#[tokio::test]
async fn a_job_outlives_its_client_and_can_be_cancelled() {
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[&f.dir],
        &[("REELFORGE_MAX_CONCURRENT_JOBS", "1")],
    )
    .await;
    let mut client = server.client().await;

    // Start, read one event, hang up: the job goes on and can be watched from the start.
    let mut stream = client
        .ingest_path(path_request(&f.small, 4.0))
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    let job_id = first.job_id.clone();
    drop(stream);
    let watched = client
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    let mut watched = watched;
    let mut last = None;
    while let Some(e) = watched.next().await {
        let e = e.unwrap();
        seqs.push(e.seq);
        last = e.event;
    }
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "every event, in order, from 0"
    );
    assert!(matches!(last, Some(Event::Done(_))));

    // Cancel a running job mid-analysis: it stops, nothing of it is stored.
    let mut stream = client
        .ingest_path(path_request(&f.long, 10.0))
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    let job_id = first.job_id;
    let Some(Event::Accepted(accepted)) = first.event else {
        panic!("the first event is not accepted")
    };
    let cancelled_video = accepted.video_id;
    // Wait for the first finished slice so the cancel lands mid-decode.
    loop {
        match stream.next().await.unwrap().unwrap().event {
            Some(Event::SliceFinished(_)) => break,
            Some(Event::Done(_)) => panic!("finished before it could be cancelled"),
            _ => {}
        }
    }
    let job = client
        .cancel_job(pb::CancelJobRequest {
            job_id: job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.state, pb::JobState::Cancelled as i32, "{job:?}");
    let (_, status) = drain(stream).await;
    assert_eq!(status.unwrap_err().code(), Code::Cancelled);
    let videos = client
        .list_videos(pb::ListVideosRequest::default())
        .await
        .unwrap()
        .into_inner()
        .videos;
    assert_eq!(videos.len(), 1, "the cancelled video was not stored");
    let staging = data.path().join("staging");
    assert!(!staging.exists() || std::fs::read_dir(&staging).unwrap().next().is_none());
    server.stop().await;
    // The cancelled ingest left no records in sled.
    let store = Store::open(&data.path().join("db"), 16 << 20).unwrap();
    assert_eq!(store.owned_record_count(&cancelled_video).unwrap(), 0);
    drop(store);

    // A shutdown interrupts a running job; it is not cancelled: it resumes at the next
    // start (tests/tests/resume.rs follows that through).
    let server = Server::start(data.path(), &[&f.dir]).await;
    let mut client = server.client().await;
    let mut stream = client
        .ingest_path(path_request(&f.long, 10.0))
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    let job_id = first.job_id;
    let Some(Event::Accepted(_)) = first.event else {
        panic!("the first event is not accepted")
    };
    server.stop().await;
    let store = Store::open(&data.path().join("db"), 16 << 20).unwrap();
    let job = store.job(&job_id).unwrap().unwrap();
    assert_eq!(job.state, JobState::Interrupted, "{job:?}");
    assert!(job.resume.is_some(), "the job keeps its plan to resume");
    drop(stream);
}

#[tokio::test]
async fn concurrent_good_and_bad_requests_all_get_their_answers() {
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[&f.dir]).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut client = server.client().await;
        let path = match i % 4 {
            0 => f.small.clone(),
            1 => f.silent.clone(),
            2 => f.text_as_mp4.clone(),
            _ => f.truncated.clone(),
        };
        tasks.push(tokio::spawn(async move {
            match client.ingest_path(path_request(&path, 4.0)).await {
                Ok(stream) => drain(stream.into_inner()).await.1.map(|_| ()),
                Err(status) => Err(status),
            }
        }));
    }
    let mut ok = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match (i % 4, t.await.unwrap()) {
            (0 | 1, Ok(())) => ok += 1,
            (2 | 3, Err(s)) => assert_eq!(s.code(), Code::InvalidArgument),
            (kind, other) => panic!("request {i} (kind {kind}) got {other:?}"),
        }
    }
    assert_eq!(ok, 4);
    let videos = server
        .client()
        .await
        .list_videos(pb::ListVideosRequest::default())
        .await
        .unwrap()
        .into_inner()
        .videos;
    assert_eq!(
        videos.len(),
        2,
        "duplicates of the same bytes were folded into one video each"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_signal_analyser_finds_the_real_action_in_the_demo() {
    let data = tempfile::tempdir().unwrap();
    let demo = demo_video();
    let server = Server::start(data.path(), &[demo.parent().unwrap()]).await;
    let mut client = server.client().await;
    let (events, status) = drain(
        client
            .ingest_path(path_request(&demo, 10.0))
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    status.unwrap();
    let segments: Vec<pb::SegmentCandidate> = events
        .iter()
        .filter_map(|e| match e {
            Event::SliceFinished(s) => Some(s.analysis.clone().unwrap().segments),
            _ => None,
        })
        .flatten()
        .collect();
    // The real clips sit at 20-30 s (bikes) and 45-50.3 s (Big Buck Bunny with sound).
    let inside =
        |s: &pb::SegmentCandidate, a: i64, b: i64| s.start_ms >= a - 500 && s.end_ms <= b + 500;
    assert!(!segments.is_empty());
    for s in &segments {
        assert!(
            inside(s, 20_000, 30_000) || inside(s, 45_000, 50_300),
            "candidate in a still stretch: {s:?}"
        );
    }
    assert!(
        segments
            .iter()
            .any(|s| inside(s, 20_000, 30_000) && s.end_ms - s.start_ms >= 3_000),
        "{segments:?}"
    );
    assert!(
        segments
            .iter()
            .any(|s| inside(s, 45_000, 50_300) && s.end_ms - s.start_ms >= 3_000),
        "{segments:?}"
    );
    let loud = segments.iter().find(|s| inside(s, 45_000, 50_300)).unwrap();
    assert!(
        loud.description.contains("loud audio"),
        "{}",
        loud.description
    );
    server.stop().await;
}

#[tokio::test]
async fn health_and_reflection_v1_and_v1alpha_are_served() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "reelforge.v1.Ingest".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1alpha as ra;
    let mut alpha =
        ra::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let request = ra::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(ra::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut replies = alpha
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = tokio::time::timeout(Duration::from_secs(10), replies.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Some(ra::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("unexpected reflection reply {reply:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"reelforge.v1.Ingest".to_string()),
        "{names:?}"
    );

    use tonic_reflection::pb::v1 as r1;
    let mut v1 = r1::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let request = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            r1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "reelforge.v1.Ingest".into(),
            ),
        ),
    };
    let mut replies = v1
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    assert!(matches!(
        reply.message_response,
        Some(r1::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
    ));
    server.stop().await;
}

#[tokio::test]
async fn lists_page_by_token_with_filters_over_grpc_and_the_cli() {
    use pb::library_client::LibraryClient;

    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Server::start_with(
        data.path(),
        &[&f.dir],
        &[("REELFORGE_METRICS_LISTEN", metrics.as_str())],
    )
    .await;
    let mut client = server.client().await;
    let (_, small) = ingest_path_done(&mut client, &f.small, 4.0).await;
    let (_, silent) = ingest_path_done(&mut client, &f.silent, 4.0).await;
    // The jobs gauge counts what the listing below pages through.
    let text = scrape(&metrics).await;
    assert!(
        text.lines()
            .any(|l| l == r#"reelforge_jobs{kind="ingest",state="succeeded"} 2"#),
        "{text}"
    );
    // 12 s + 8 s of video analysed by this process, and the time that took.
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert_eq!(value("reelforge_ingest_jobs_succeeded_total"), 2.0);
    assert!((value("reelforge_ingest_video_seconds_total") - 20.0).abs() < 0.5);
    assert!(value("reelforge_ingest_analysis_seconds_total") > 0.0);

    // Every video once, newest first, one per page.
    let list = |req: pb::ListVideosRequest| {
        let mut client = client.clone();
        async move { client.list_videos(req).await.map(|r| r.into_inner()) }
    };
    let first = list(pb::ListVideosRequest {
        page_size: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(first.videos.len(), 1);
    assert_eq!(first.videos[0].video_id, silent, "newest first");
    assert!(!first.next_page_token.is_empty());
    let second = list(pb::ListVideosRequest {
        page_size: 1,
        page_token: first.next_page_token.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(second.videos.len(), 1);
    assert_eq!(second.videos[0].video_id, small);
    assert_eq!(second.next_page_token, "", "the last page has no token");
    let newer_at = first.videos[0].ingested_at_unix_ms;

    // Filters: name (case-insensitive) and ingest time.
    let ids =
        |r: pb::ListVideosResponse| r.videos.into_iter().map(|v| v.video_id).collect::<Vec<_>>();
    let by_name = list(pb::ListVideosRequest {
        name_contains: "SILENT".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(ids(by_name), vec![silent.clone()]);
    let since = list(pb::ListVideosRequest {
        ingested_after_unix_ms: newer_at,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(ids(since), vec![silent.clone()]);
    let before = list(pb::ListVideosRequest {
        ingested_before_unix_ms: newer_at,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(ids(before), vec![small.clone()]);

    // What a caller can get wrong, each named.
    let refused = [
        (
            pb::ListVideosRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListVideosRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::ListVideosRequest {
                page_token: first.next_page_token.clone(),
                name_contains: "small".into(),
                ..Default::default()
            },
            "other filters",
        ),
        (
            pb::ListVideosRequest {
                ingested_after_unix_ms: 2_000,
                ingested_before_unix_ms: 1_000,
                ..Default::default()
            },
            "ingested_after_unix_ms",
        ),
    ];
    for (req, needle) in refused {
        let status = list(req.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{req:?}: {status:?}");
        assert!(status.message().contains(needle), "{req:?}: {status:?}");
    }

    // Jobs by state, paged.
    let mut token = String::new();
    let mut succeeded = Vec::new();
    loop {
        let page = client
            .list_jobs(pb::ListJobsRequest {
                page_size: 1,
                page_token: token,
                states: vec![pb::JobState::Succeeded as i32],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        succeeded.extend(page.jobs.into_iter().map(|j| j.video_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(succeeded, vec![silent.clone(), small.clone()]);
    let failed = client
        .list_jobs(pb::ListJobsRequest {
            states: vec![pb::JobState::Failed as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(failed.jobs.is_empty(), "{failed:?}");
    let status = client
        .list_jobs(pb::ListJobsRequest {
            states: vec![99],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("states[0]"), "{status:?}");

    // Library entries page too; the scripts come with the first page.
    let mut library = LibraryClient::new(server.channel().await);
    for (start, end) in [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)] {
        library
            .add_entry(pb::AddLibraryEntryRequest {
                video_id: small.clone(),
                start_seconds: start,
                end_seconds: end,
                category: "tone".into(),
                description: format!("a steady tone from {start} s"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    library
        .set_script(pb::SetCategoryScriptRequest {
            category: "tone".into(),
            script: "start, then end".into(),
        })
        .await
        .unwrap();
    let page = |token: String| {
        let mut library = library.clone();
        async move {
            library
                .list_entries(pb::ListLibraryEntriesRequest {
                    category: "tone".into(),
                    page_size: 2,
                    page_token: token,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let one = page(String::new()).await;
    let two = page(one.next_page_token.clone()).await;
    let starts: Vec<i64> = one
        .entries
        .iter()
        .chain(&two.entries)
        .map(|e| e.start_ms)
        .collect();
    assert_eq!(starts, vec![0, 2_000, 4_000], "oldest first, each once");
    assert_eq!(one.scripts.len(), 1);
    assert!(
        two.scripts.is_empty() && two.next_page_token.is_empty(),
        "{two:?}"
    );

    // The CLI pages through and filters.
    let out = server.cli(&["videos", "list", "--limit", "1", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    let out = server.cli(&["jobs", "list", "--state", "succeeded"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&small) && text.contains(&silent),
        "{text}"
    );
    let out = server.cli(&["jobs", "list", "--state", "done"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not a job state"),
        "{err}"
    );
    let out = server.cli(&["videos", "list", "--since", "yesterday"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--since"), "{err}");
}

#[tokio::test]
async fn json_logs_carry_each_calls_request_id_and_return_it() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("server.log");
    let server = Server::start_logging_to(
        data.path(),
        &[],
        &[("REELFORGE_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        &log,
    )
    .await;
    let mut client = server.client().await;

    let mut request = tonic::Request::new(pb::GetVideoRequest {
        video_id: "0123456789abcdef".into(),
        include_signals: false,
    });
    request
        .metadata_mut()
        .insert("x-request-id", "caller-trace-42".parse().unwrap());
    let status = client.get_video(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("caller-trace-42"),
        "the caller's id comes back"
    );
    let reply = client
        .list_videos(pb::ListVideosRequest::default())
        .await
        .unwrap();
    let made = reply
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(made.len(), 36, "a request without an id gets one: {made}");
    server.stop().await;

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let refused = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "caller-trace-42")
        .unwrap_or_else(|| panic!("no line with the request id in:\n{text}"));
    assert_eq!(refused["fields"]["code"], "NOT_FOUND", "{refused}");
    assert_eq!(
        refused["span"]["rpc"], "reelforge.v1.Ingest/GetVideo",
        "{refused}"
    );
    assert!(
        refused["fields"]["detail"]
            .as_str()
            .is_some_and(|m| m.contains("0123456789abcdef")),
        "{refused}"
    );
}
