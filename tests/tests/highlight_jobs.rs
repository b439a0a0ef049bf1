//! Highlights are jobs: a highlight runs to its end after its caller hangs up, is watched
//! again by id (its whole log), read, listed page by page, deleted (files and record),
//! and removed by the retention policy at the next start — over gRPC and the real CLI.

use std::time::Duration;

use pb::highlight_client::HighlightClient;
use pb::highlight_event::Event;
use reelforge_proto::v1 as pb;
use reelforge_tests::{fixtures, ingest_path_done, Server};
use tonic::transport::Channel;
use tonic::Code;

fn sliced(video_id: &str) -> pb::HighlightRequest {
    pb::HighlightRequest {
        video_id: video_id.to_string(),
        strategy: pb::HighlightStrategy::Sliced as i32,
        slice_seconds: 4.0,
        target_seconds: 4.0,
        ..Default::default()
    }
}

/// Starts a highlight and hangs up right after its first event; returns its id.
async fn start_and_hang_up(client: &mut HighlightClient<Channel>, video_id: &str) -> String {
    let mut stream = client
        .highlight(sliced(video_id))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let Some(Event::Started(started)) = first.event else {
        panic!("the first event is not started: {first:?}")
    };
    drop(stream);
    started.highlight_id
}

async fn watch(client: &mut HighlightClient<Channel>, id: &str) -> Vec<Event> {
    let mut stream = client
        .watch_highlight(pb::WatchHighlightRequest {
            highlight_id: id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(120), stream.message())
        .await
        .expect("the highlight ends")
        .unwrap()
    {
        events.push(e.event.unwrap());
    }
    events
}

async fn get(
    client: &mut HighlightClient<Channel>,
    id: &str,
) -> Result<pb::HighlightInfo, tonic::Status> {
    client
        .get_highlight(pb::GetHighlightRequest {
            highlight_id: id.to_string(),
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_highlight_outlives_its_caller_and_is_watched_listed_deleted_and_expired() {
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[&f.dir]).await;
    let mut ingest = server.client().await;
    let (_, video_id) = ingest_path_done(&mut ingest, &f.small, 4.0).await;
    let mut client = HighlightClient::new(server.channel().await);

    // The caller hangs up after the first event; the highlight still renders.
    let first = start_and_hang_up(&mut client, &video_id).await;
    let events = watch(&mut client, &first).await;
    assert!(
        matches!(events.first(), Some(Event::Started(s)) if s.highlight_id == first),
        "the whole log replays from the start: {events:?}"
    );
    let Some(Event::Done(done)) = events.last() else {
        panic!("the log ends with done: {events:?}")
    };
    assert!(done.files.contains(&"reel.mp4".to_string()), "{done:?}");
    assert!(events.iter().any(|e| matches!(e, Event::Render(_))));
    let info = get(&mut client, &first).await.unwrap();
    assert_eq!(info.state, pb::HighlightState::Succeeded as i32);
    assert_eq!(info.video_ids, vec![video_id.clone()]);
    assert_eq!(info.strategy, "sliced");
    let dir = data.path().join("highlights").join(&first);
    let on_disk: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(
        info.bytes as u64, on_disk,
        "the record counts its files' bytes"
    );
    assert!(info.finished_unix_ms >= info.created_unix_ms);
    assert_eq!(info.result.unwrap().files, done.files);

    // A second one; the listing pages newest first and filters by state.
    let second = start_and_hang_up(&mut client, &video_id).await;
    watch(&mut client, &second).await;
    let page = |token: String, states: Vec<i32>| {
        let mut client = client.clone();
        async move {
            client
                .list_highlights(pb::ListHighlightsRequest {
                    page_size: 1,
                    page_token: token,
                    states,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
        }
    };
    let one = page(String::new(), vec![]).await.unwrap();
    let two = page(one.next_page_token.clone(), vec![]).await.unwrap();
    let ids: Vec<&str> = one
        .highlights
        .iter()
        .chain(&two.highlights)
        .map(|h| h.highlight_id.as_str())
        .collect();
    assert_eq!(ids, vec![second.as_str(), first.as_str()]);
    assert!(two.next_page_token.is_empty());
    let failed = page(String::new(), vec![pb::HighlightState::Failed as i32])
        .await
        .unwrap();
    assert!(failed.highlights.is_empty());
    let err = page(
        one.next_page_token.clone(),
        vec![pb::HighlightState::Failed as i32],
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "a token is bound to its filter"
    );
    let err = page(String::new(), vec![42]).await.unwrap_err();
    assert!(err.message().contains("states[0]"), "{err:?}");

    // A failed highlight is a record too, and watching it again gives the same status.
    let missing = "0123456789abcdef";
    let mut stream = client
        .highlight(sliced(missing))
        .await
        .unwrap()
        .into_inner();
    let mut id = String::new();
    let status = loop {
        match stream.message().await {
            Ok(Some(pb::HighlightEvent {
                event: Some(Event::Started(s)),
            })) => id = s.highlight_id,
            Ok(Some(_)) => {}
            Ok(None) => panic!("a highlight of a missing video fails"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let info = get(&mut client, &id).await.unwrap();
    assert_eq!(info.state, pb::HighlightState::Failed as i32);
    assert_eq!(info.error_code, "NOT_FOUND");
    assert!(info.error.contains(missing), "{info:?}");
    let mut again = client
        .watch_highlight(pb::WatchHighlightRequest {
            highlight_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let replayed = loop {
        match again.message().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the replay of a failed highlight ends in its status"),
            Err(s) => break s,
        }
    };
    assert_eq!(replayed.code(), Code::NotFound);
    client
        .delete_highlight(pb::DeleteHighlightRequest { highlight_id: id })
        .await
        .unwrap();
    // Ids are checked.
    let err = get(&mut client, "../etc").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // The CLI lists, shows and removes.
    let out = server.cli(&["highlights", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains(&first) && text.contains(&second) && text.contains("succeeded"),
        "{text}"
    );
    let out = server.cli(&["highlights", "show", &first]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["state"], "succeeded");
    let out = server.cli(&["highlights", "watch", &first]);
    let lines = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        lines.lines().count() >= 3 && lines.contains("reel.mp4"),
        "{lines}"
    );
    let out = server.cli(&["highlights", "rm", &second]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&second));
    assert_eq!(
        get(&mut client, &second).await.unwrap_err().code(),
        Code::NotFound
    );
    let download = client
        .download(pb::DownloadRequest {
            highlight_id: second.clone(),
            file: "reel.mp4".into(),
        })
        .await;
    assert_eq!(download.unwrap_err().code(), Code::NotFound);
    assert!(!data.path().join("highlights").join(&second).exists());
    let out = server.cli(&["highlights", "show", "not-an-id"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("highlight_id"),
        "{out:?}"
    );
    server.stop().await;

    // Retention: with room for nothing, the next start removes every finished highlight.
    let server = Server::start_with(
        data.path(),
        &[&f.dir],
        &[("REELFORGE_HIGHLIGHTS_MAX_BYTES", "1")],
    )
    .await;
    let mut client = HighlightClient::new(server.channel().await);
    assert_eq!(
        get(&mut client, &first).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(!dir.exists());
    server.stop().await;
}
