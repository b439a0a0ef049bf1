//! Event-driven ingest against the real server: a watched folder (inotify through
//! `notify`, rescans as a backstop) and an S3 prefix on the Bedrock stub's S3 (listed
//! through the real SDK). New videos become ingest jobs once complete; renames, second
//! copies, other files and half-written files are not ingested (again); deletions delete
//! videos only when asked, also across a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use reelforge_proto::v1 as pb;
use reelforge_tests::bedrock_stub::BedrockStub;
use reelforge_tests::{asset, Server};
use sha2::Digest;
use tonic::transport::Channel;

type Client = pb::ingest_client::IngestClient<Channel>;

fn video_id_of(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))[..16].to_string()
}

async fn videos(client: &mut Client) -> Vec<pb::VideoSummary> {
    client
        .list_videos(pb::ListVideosRequest::default())
        .await
        .unwrap()
        .into_inner()
        .videos
}

async fn jobs(client: &mut Client) -> Vec<pb::Job> {
    client
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs
}

/// Waits until the stored videos (with every job ended) satisfy `ok`.
async fn until(client: &mut Client, what: &str, ok: impl Fn(&[pb::VideoSummary]) -> bool) {
    let started = Instant::now();
    loop {
        let v = videos(client).await;
        let busy = jobs(client).await.iter().any(|j| {
            j.state == pb::JobState::Running as i32 || j.state == pb::JobState::Queued as i32
        });
        if ok(&v) && !busy {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}: {:?}",
            v.iter()
                .map(|v| (&v.video_id, &v.filename))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ids(v: &[pb::VideoSummary]) -> Vec<String> {
    let mut ids: Vec<String> = v.iter().map(|v| v.video_id.clone()).collect();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_folder_ingests_each_new_video_once_and_deletes_only_when_asked() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let incoming = root.path().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let (bikes, bunny) = (
        std::fs::read(asset("samples/bikes.mp4")).unwrap(),
        std::fs::read(asset("samples/bigbuckbunny.mp4")).unwrap(),
    );
    let (bikes_id, bunny_id) = (video_id_of(&bikes), video_id_of(&bunny));
    // Already there when the server starts.
    std::fs::write(incoming.join("before.mp4"), &bikes).unwrap();
    let folder = incoming.to_str().unwrap().to_string();
    let env = |propagate: &'static str| {
        vec![
            ("REELFORGE_TRANSCRIBER", "none"),
            ("REELFORGE_WATCH_SOURCES", folder.clone().leak() as &str),
            ("REELFORGE_WATCH_STABLE_SECONDS", "1"),
            ("REELFORGE_WATCH_POLL_SECONDS", "1"),
            ("REELFORGE_WATCH_PROPAGATE_DELETES", propagate),
        ]
    };
    let server = Server::start_with(data.path(), &[root.path()], &env("false")).await;
    let mut client = server.client().await;
    until(&mut client, "the file already there", |v| {
        ids(v) == [bikes_id.clone()]
    })
    .await;

    // A file written in two parts, in a subfolder made after the start: ingested once,
    // complete (its id is the whole file's hash).
    let sub = incoming.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let half = bunny.len() / 2;
    std::fs::write(sub.join("bunny.mp4"), &bunny[..half]).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(sub.join("bunny.mp4"))
            .unwrap();
        f.write_all(&bunny[half..]).unwrap();
    }
    until(&mut client, "the new file", |v| {
        ids(v) == sorted(vec![bikes_id.clone(), bunny_id.clone()])
    })
    .await;
    let bunny_video = videos(&mut client)
        .await
        .into_iter()
        .find(|v| v.video_id == bunny_id)
        .unwrap();
    assert_eq!(bunny_video.filename, "bunny.mp4");

    // A rename, a second copy, a text file and a broken "video": no new ingest.
    std::fs::rename(incoming.join("before.mp4"), incoming.join("renamed.mp4")).unwrap();
    std::fs::write(incoming.join("copy-of-bunny.mp4"), &bunny).unwrap();
    std::fs::write(incoming.join("notes.txt"), b"not a video").unwrap();
    std::fs::write(incoming.join("broken.mp4"), b"not really an mp4").unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let all_jobs = jobs(&mut client).await;
    assert_eq!(
        all_jobs.len(),
        2,
        "one job per new content: {:?}",
        all_jobs
            .iter()
            .map(|j| (&j.video_id, j.state))
            .collect::<Vec<_>>()
    );
    assert_eq!(ids(&videos(&mut client).await).len(), 2);

    // A deleted file: its video stays (deletions are not propagated unless asked), and
    // whole: it keeps its own copy of the file.
    std::fs::remove_file(incoming.join("renamed.mp4")).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(ids(&videos(&mut client).await).len(), 2);
    let mut clip = pb::highlight_client::HighlightClient::new(server.channel().await)
        .get_clip(pb::GetClipRequest {
            video_id: bikes_id.clone(),
            start_ms: 0,
            end_ms: 2_000,
            ..Default::default()
        })
        .await
        .expect("a clip of a video whose watched file is gone")
        .into_inner();
    let mut bytes = 0;
    while let Some(chunk) = clip.message().await.unwrap() {
        bytes += chunk.data.len();
    }
    assert!(bytes > 1000, "{bytes} bytes of clip");
    server.stop().await;

    // While the server is down both of the bunny's files are deleted; restarted with
    // propagate_deletes, the rescan finds them gone and deletes its video (only once no
    // file with its content is left); nothing is ingested again.
    std::fs::remove_file(sub.join("bunny.mp4")).unwrap();
    std::fs::remove_file(incoming.join("copy-of-bunny.mp4")).unwrap();
    let server = Server::start_with(data.path(), &[root.path()], &env("true")).await;
    let mut client = server.client().await;
    until(&mut client, "the deleted files' video to go", |v| {
        ids(v) == [bikes_id.clone()]
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ids(&videos(&mut client).await), vec![bikes_id]);
    assert_eq!(jobs(&mut client).await.len(), 2, "nothing ingested again");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_prefix_is_listed_and_its_new_objects_are_ingested() {
    let model = reelforge_models::load_text_embedder(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"),
        reelforge_models::MiniLmEmbedder::NAME,
        1,
    )
    .unwrap();
    let stub = BedrockStub::start(model).await;
    let data = tempfile::tempdir().unwrap();
    let url = stub.url.as_str();
    let server = Server::start_with(
        data.path(),
        &[],
        &[
            ("REELFORGE_TRANSCRIBER", "none"),
            ("AWS_ACCESS_KEY_ID", "AKIDREELFORGETEST"),
            ("AWS_SECRET_ACCESS_KEY", "reelforge-test-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("REELFORGE_BEDROCK_S3_ENDPOINT_URL", url),
            ("REELFORGE_BEDROCK_S3_FORCE_PATH_STYLE", "true"),
            ("REELFORGE_WATCH_SOURCES", "s3://incoming-videos/drop/"),
            ("REELFORGE_WATCH_POLL_SECONDS", "0.5"),
            ("REELFORGE_WATCH_PROPAGATE_DELETES", "true"),
        ],
    )
    .await;
    let mut client = server.client().await;
    let bikes = std::fs::read(asset("samples/bikes.mp4")).unwrap();
    let bikes_id = video_id_of(&bikes);
    stub.put_object("incoming-videos/drop/bikes.mp4", bikes.clone());
    stub.put_object("incoming-videos/elsewhere/x.mp4", bikes.clone());
    until(&mut client, "the uploaded object", |v| {
        ids(v) == [bikes_id.clone()]
    })
    .await;
    let v = videos(&mut client).await;
    assert_eq!(v[0].filename, "bikes.mp4");

    // A copy under another key: known by its entity tag, never downloaded.
    stub.clear();
    stub.put_object("incoming-videos/drop/again/bikes-copy.mp4", bikes.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = stub.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.path.starts_with("/incoming-videos")),
        "the prefix is listed: {requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.path.contains("bikes-copy")),
        "the copy is not downloaded: {requests:?}"
    );
    assert_eq!(jobs(&mut client).await.len(), 1);

    // Both objects deleted, deletions propagated: the video goes.
    stub.delete_object("incoming-videos/drop/bikes.mp4");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        ids(&videos(&mut client).await),
        vec![bikes_id],
        "a copy remains"
    );
    stub.delete_object("incoming-videos/drop/again/bikes-copy.mp4");
    until(&mut client, "the deleted objects' video to go", |v| {
        v.is_empty()
    })
    .await;
    server.stop().await;
}
