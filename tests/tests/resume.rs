//! Jobs that survive a restart: an ingest interrupted by SIGKILL or by a shutdown resumes
//! at the next start after the last slice it stored (same job id, a `resumed` event in
//! its log), ends with the same video a clean run makes, and pays for no slice twice.

use std::time::Duration;

use reelforge_proto::v1 as pb;
use reelforge_tests::*;
use tokio_stream::StreamExt;

use pb::ingest_event::Event;

/// Reads events until `n` slices have finished; returns the job id.
async fn until_slices_finished(stream: &mut tonic::Streaming<pb::IngestEvent>, n: usize) -> String {
    let mut job_id = String::new();
    let mut finished = 0;
    while let Some(item) = stream.next().await {
        let e = item.expect("the job runs");
        job_id = e.job_id.clone();
        match e.event {
            Some(Event::SliceFinished(_)) => {
                finished += 1;
                if finished >= n {
                    return job_id;
                }
            }
            Some(Event::Done(_)) => panic!("the job finished before it could be interrupted"),
            _ => {}
        }
    }
    panic!("the stream of job {job_id} ended early")
}

/// Watches a job by id until its stream ends; returns every event and the final status.
async fn watch(
    client: &mut pb::ingest_client::IngestClient<tonic::transport::Channel>,
    job_id: &str,
) -> (Vec<Event>, Result<(), tonic::Status>) {
    let stream = client
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.to_string(),
        })
        .await
        .expect("the job is known after the restart")
        .into_inner();
    drain(stream).await
}

/// The job's `resumed` event.
fn resumed_event(events: &[Event]) -> Option<pb::JobResumed> {
    events.iter().find_map(|e| match e {
        Event::Resumed(r) => Some(r.clone()),
        _ => None,
    })
}

/// What two ingests of the same file must agree on.
fn same_video(resumed: &pb::Video, clean: &pb::Video) {
    assert_eq!(resumed.slices.len(), clean.slices.len());
    for (a, b) in resumed.slices.iter().zip(&clean.slices) {
        assert_eq!((a.start_ms, a.end_ms), (b.start_ms, b.end_ms));
        assert!(
            (a.highlight_score - b.highlight_score).abs() < 0.05,
            "slice {}: score {} after the resume, {} in a clean run",
            a.index,
            a.highlight_score,
            b.highlight_score
        );
    }
    assert_eq!(resumed.frames.len(), clean.frames.len(), "thumbnails");
    let times = |v: &pb::Video| v.frames.iter().map(|f| f.t_ms).collect::<Vec<_>>();
    assert_eq!(times(resumed), times(clean));
    assert_eq!(resumed.embedding_counts, clean.embedding_counts);
    let text = |v: &pb::Video| {
        v.transcript
            .iter()
            .map(|s| s.text.trim().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(text(resumed), text(clean), "transcripts");
}

#[tokio::test]
async fn a_killed_ingest_resumes_after_its_last_stored_slice_and_matches_a_clean_run() {
    let (video, _) = speech_video();
    let root = video.parent().unwrap();
    // A clean run to compare with.
    let clean_dir = tempfile::tempdir().unwrap();
    let server = Server::start(clean_dir.path(), &[root]).await;
    let mut client = server.client().await;
    let (_, clean_id) = ingest_path_done(&mut client, video, 6.0).await;
    let clean = stored_video(&mut client, &clean_id, false).await;
    server.stop().await;

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[root]).await;
    let mut client = server.client().await;
    let mut stream = client
        .ingest_path(path_request(video, 6.0))
        .await
        .unwrap()
        .into_inner();
    let job_id = until_slices_finished(&mut stream, 6).await;
    server.kill().await;
    drop(stream);
    let server = Server::start(data.path(), &[root]).await;
    let mut client = server.client().await;
    let (events, status) = watch(&mut client, &job_id).await;
    status.unwrap_or_else(|e| panic!("the resumed job failed: {e:?}"));
    let resumed =
        resumed_event(&events).unwrap_or_else(|| panic!("no resumed event in {events:?}"));
    assert!(resumed.from_slice >= 6, "{resumed:?}");
    assert!(
        resumed.reason.contains("stopped unexpectedly"),
        "{resumed:?}"
    );
    // Slices before the resume point are analysed once: after the resumed event only
    // the rest are.
    let at = events
        .iter()
        .position(|e| matches!(e, Event::Resumed(_)))
        .unwrap();
    let analysed_after: Vec<u32> = events[at..]
        .iter()
        .filter_map(|e| match e {
            Event::SliceFinished(f) => f.analysis.as_ref().map(|a| a.index),
            _ => None,
        })
        .collect();
    let total = clean.slices.len() as u32;
    assert_eq!(
        analysed_after,
        (resumed.from_slice..total).collect::<Vec<_>>(),
        "each slice is analysed once"
    );
    let video_id = done_video_id(&events);
    assert_eq!(video_id, clean_id);
    let job = client
        .get_job(pb::GetJobRequest {
            job_id: job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.state, pb::JobState::Succeeded as i32, "{job:?}");
    assert_eq!(job.slices_done, total);
    let stored = stored_video(&mut client, &video_id, false).await;
    same_video(&stored, &clean);
    // Searchable like any other video.
    let mut search = pb::search_client::SearchClient::new(server.channel().await);
    let hits = search_results(
        &mut search,
        pb::SearchRequest {
            query: stored.transcript[0].text.clone(),
            top_k: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(hits.iter().any(|h| h.video_id == video_id), "{hits:?}");
    // Nothing of the job is left in staging.
    let staging = data.path().join("staging");
    assert!(!staging.exists() || std::fs::read_dir(&staging).unwrap().next().is_none());
    server.stop().await;
}

#[tokio::test]
async fn an_upload_interrupted_by_a_shutdown_resumes_from_its_kept_copy() {
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[&f.dir]).await;
    let mut client = server.client().await;
    let chunks = upload_chunks(&f.long, 10.0, false);
    let mut stream = client
        .ingest_upload(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    let job_id = until_slices_finished(&mut stream, 2).await;
    server.stop().await;
    // A watcher of the interrupted job is told it was interrupted, not that it ended.
    let (_, status) = drain(stream).await;
    let status = status.expect_err("the stream ends with the interruption");
    assert!(
        matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
        ),
        "{status:?}"
    );

    let server = Server::start(data.path(), &[&f.dir]).await;
    let mut client = server.client().await;
    let (events, status) = watch(&mut client, &job_id).await;
    status.unwrap_or_else(|e| panic!("the resumed job failed: {e:?}"));
    let resumed = resumed_event(&events).expect("a resumed event");
    assert!(resumed.from_slice >= 2, "{resumed:?}");
    assert!(resumed.reason.contains("shut down"), "{resumed:?}");
    let video = stored_video(&mut client, &done_video_id(&events), false).await;
    let summary = video.summary.unwrap();
    assert_eq!(summary.filename, "long.mp4");
    assert_eq!(video.slices.len(), 18);
    // The upload was moved into the data dir with the video.
    let media = data.path().join("media").join(&summary.video_id);
    let source = std::fs::read_dir(&media)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("source."))
        .expect("the uploaded source is kept with the video");
    assert_eq!(
        source.metadata().unwrap().len(),
        std::fs::metadata(&f.long).unwrap().len()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_job_whose_source_is_gone_fails_with_the_reason_at_restart() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("going-away.mp4");
    std::fs::copy(&f.long, &copy).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[dir.path()]).await;
    let mut client = server.client().await;
    let mut stream = client
        .ingest_path(path_request(&copy, 10.0))
        .await
        .unwrap()
        .into_inner();
    let job_id = until_slices_finished(&mut stream, 1).await;
    server.kill().await;
    std::fs::remove_file(&copy).unwrap();

    let server = Server::start(data.path(), &[dir.path()]).await;
    let mut client = server.client().await;
    let (_, status) = watch(&mut client, &job_id).await;
    let status = status.expect_err("the job cannot resume");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("going-away.mp4") && status.message().contains("gone"),
        "{status:?}"
    );
    let job = client
        .get_job(pb::GetJobRequest { job_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.state, pb::JobState::Failed as i32);
    // What the first run stored is gone too.
    server.stop().await;
    let store = reelforge_engine::store::Store::open(&data.path().join("db"), 16 << 20).unwrap();
    assert!(store.videos().unwrap().is_empty());
    let ids: Vec<String> = store
        .jobs()
        .unwrap()
        .into_iter()
        .map(|j| j.video_id)
        .collect();
    assert_eq!(store.owned_record_count(&ids[0]).unwrap(), 0);
}

#[tokio::test]
async fn the_events_of_a_resumed_job_replay_in_order_with_the_resume_marked() {
    // WatchJob on a finished, resumed job replays the whole log: accepted first, one
    // resumed event, done last, sequence numbers gapless.
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[&f.dir]).await;
    let mut client = server.client().await;
    let mut stream = client
        .ingest_path(path_request(&f.long, 20.0))
        .await
        .unwrap()
        .into_inner();
    let job_id = until_slices_finished(&mut stream, 1).await;
    server.kill().await;
    let server = Server::start(data.path(), &[&f.dir]).await;
    let mut client = server.client().await;
    let (_, status) = watch(&mut client, &job_id).await;
    status.unwrap();
    let mut replay = client
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    let mut kinds = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(30), replay.next())
        .await
        .unwrap()
    {
        let e = e.unwrap();
        seqs.push(e.seq);
        kinds.push(e.event.unwrap());
    }
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert!(matches!(kinds.first(), Some(Event::Accepted(_))));
    assert!(matches!(kinds.last(), Some(Event::Done(_))));
    assert_eq!(
        kinds
            .iter()
            .filter(|e| matches!(e, Event::Resumed(_)))
            .count(),
        1
    );
    server.stop().await;
}
