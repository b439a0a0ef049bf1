//! The crash test: the real server is killed with SIGKILL at random moments while it
//! ingests (uploads and server-side files, first ingests and forced re-ingests), indexes,
//! renders highlights and writes library entries, and restarted each time. After every
//! restart, everything a caller was told is done is there and whole, nothing half-written
//! is visible, and in the end every interrupted ingest has resumed and finished.
//!
//! `REELFORGE_CRASH_KILLS` sets the number of kills (default 20) and
//! `REELFORGE_CRASH_SEED` replays a run (the seed is printed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reelforge_proto::v1 as pb;
use reelforge_tests::fuzz::Rng;
use reelforge_tests::*;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use pb::highlight_client::HighlightClient;
use pb::ingest_client::IngestClient;
use pb::library_client::LibraryClient;
use pb::search_client::SearchClient;

/// What callers were told is done, so it must survive every later kill.
#[derive(Default, Clone)]
struct Acknowledged {
    /// Video id -> slice count, from `Done` events.
    videos: BTreeMap<String, u32>,
    /// Library entries whose `AddEntry` returned.
    entries: BTreeMap<String, (String, i64, i64)>,
    /// Highlights whose `Done` event arrived: id -> files.
    highlights: BTreeMap<String, Vec<String>>,
    /// Ingest jobs a caller got an id for.
    jobs: Vec<String>,
}

/// Eight-second videos that differ in picture and sound (distinct content ids).
fn material(dir: &Path) -> Vec<PathBuf> {
    let sources = ["testsrc2", "smptebars", "rgbtestsrc", "mandelbrot", "life"];
    sources
        .iter()
        .enumerate()
        .map(|(i, src)| {
            let out = dir.join(format!("clip-{i}.mp4"));
            let video = format!("{src}=size=160x90:rate=25");
            let audio = format!("sine=frequency={}:sample_rate=16000", 300 + 110 * i);
            let args = [
                "-hide_banner",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                &video,
                "-f",
                "lavfi",
                "-i",
                &audio,
                "-t",
                "8",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "25",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            ];
            let status = std::process::Command::new("ffmpeg")
                .args(args)
                .arg(&out)
                .status()
                .expect("run ffmpeg");
            assert!(status.success(), "ffmpeg made {}", out.display());
            out
        })
        .collect()
}

/// The long fixture (180 s) looped to 18 minutes: its tone is no voice, so the speech
/// model skips it and 180 s ingest in about a second; the long ingest must still be
/// running when most kills land.
fn long_video(dir: &Path) -> PathBuf {
    let out = dir.join("long.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-y",
            "-stream_loop",
            "5",
            "-i",
        ])
        .arg(&fixtures().long)
        .args(["-c", "copy"])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg made {}", out.display());
    out
}

/// Follows an ingest stream, recording its job id and, at `Done`, the video.
async fn follow_ingest(
    stream: Result<tonic::Response<tonic::Streaming<pb::IngestEvent>>, tonic::Status>,
    ack: Arc<Mutex<Acknowledged>>,
) {
    let Ok(stream) = stream else { return };
    let mut stream = stream.into_inner();
    let mut recorded = false;
    while let Some(Ok(e)) = stream.next().await {
        if !recorded {
            ack.lock().unwrap().jobs.push(e.job_id.clone());
            recorded = true;
        }
        if let Some(pb::ingest_event::Event::Done(d)) = e.event {
            ack.lock().unwrap().videos.insert(d.video_id, d.slice_count);
        }
    }
}

/// Every page of a listing of videos.
async fn all_videos(client: &mut IngestClient<Channel>) -> Vec<pb::VideoSummary> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_videos(pb::ListVideosRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.videos);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// What must hold after any restart.
async fn check(server: &Server, ack: &Acknowledged, round: usize) {
    let mut client = server.client().await;
    let listed = all_videos(&mut client).await;
    for (id, slices) in &ack.videos {
        assert!(
            listed.iter().any(|v| &v.video_id == id),
            "round {round}: video {id} was reported done but is gone"
        );
        let _ = slices;
    }
    let mut search = SearchClient::new(server.channel().await);
    for summary in &listed {
        // Every listed video is whole: its slices cover it without gaps, each has its
        // description, its thumbnails exist, and search finds it.
        let video = stored_video(&mut client, &summary.video_id, false).await;
        let slices = &video.slices;
        assert_eq!(slices.len() as i32, summary.slice_count, "round {round}");
        assert!(!slices.is_empty(), "round {round}: {summary:?}");
        assert_eq!(slices[0].start_ms, 0);
        for pair in slices.windows(2) {
            assert_eq!(pair[0].end_ms, pair[1].start_ms, "round {round}: a gap");
        }
        assert_eq!(slices.last().unwrap().end_ms, summary.duration_ms);
        assert!(slices.iter().all(|s| !s.description.is_empty()));
        for frame in &video.frames {
            assert!(Path::new(&frame.path).is_file(), "round {round}: {frame:?}");
        }
        if let Some(&n) = ack.videos.get(&summary.video_id) {
            assert_eq!(n as i32, summary.slice_count, "round {round}");
        }
        let hits = search_results(
            &mut search,
            pb::SearchRequest {
                query: slices[0].description.clone(),
                top_k: 5,
                video_ids: vec![summary.video_id.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(
            !hits.is_empty(),
            "round {round}: {} is not searchable",
            summary.video_id
        );
    }
    let mut library = LibraryClient::new(server.channel().await);
    let entries = library
        .list_entries(pb::ListLibraryEntriesRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    for (id, (video, start, end)) in &ack.entries {
        let entry = entries
            .iter()
            .find(|e| &e.entry_id == id)
            .unwrap_or_else(|| panic!("round {round}: library entry {id} is gone"));
        assert_eq!(
            (&entry.video_id, entry.start_ms, entry.end_ms),
            (video, *start, *end)
        );
    }
    let mut highlight = HighlightClient::new(server.channel().await);
    for (id, files) in &ack.highlights {
        for file in files {
            let mut stream = highlight
                .download(pb::DownloadRequest {
                    highlight_id: id.clone(),
                    file: file.clone(),
                })
                .await
                .unwrap_or_else(|e| panic!("round {round}: highlight {id} lost {file}: {e:?}"))
                .into_inner();
            let (mut got, mut total) = (0i64, 0i64);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.unwrap();
                got += chunk.data.len() as i64;
                total = chunk.total_bytes;
            }
            assert!(
                got > 0 && got == total,
                "round {round}: {id}/{file}: {got} of {total}"
            );
        }
    }
}

/// Starts one piece of work in the background.
fn start_work(
    kind: u64,
    server: &Server,
    clips: &[PathBuf],
    long: &Path,
    rng: &mut Rng,
    ack: &Arc<Mutex<Acknowledged>>,
    channel: Channel,
) -> tokio::task::JoinHandle<()> {
    let ack = ack.clone();
    let committed: Vec<String> = ack.lock().unwrap().videos.keys().cloned().collect();
    let pick = rng.next_u64();
    let clip = clips[(pick % clips.len() as u64) as usize].clone();
    let long = long.to_path_buf();
    let _ = server;
    tokio::spawn(async move {
        let mut client = IngestClient::new(channel.clone());
        match kind {
            // An upload (a new video, or one already stored: then nothing is redone).
            0 | 1 => {
                let chunks = upload_chunks(&clip, 4.0, false);
                let stream = client.ingest_upload(tokio_stream::iter(chunks)).await;
                follow_ingest(stream, ack).await;
            }
            // A long server-side ingest, forced when it is stored (a new generation over
            // the committed one).
            2 => {
                let mut request = path_request(&long, 10.0);
                request.options.as_mut().unwrap().force = pick.is_multiple_of(2);
                let stream = client.ingest_path(request).await;
                follow_ingest(stream, ack).await;
            }
            // A rendered highlight of a stored video.
            3 if !committed.is_empty() => {
                let video_id = committed[(pick % committed.len() as u64) as usize].clone();
                let mut highlight = HighlightClient::new(channel);
                let Ok(stream) = highlight
                    .highlight(pb::HighlightRequest {
                        video_id,
                        strategy: pb::HighlightStrategy::Sliced as i32,
                        slice_seconds: 4.0,
                        target_seconds: 4.0,
                        ..Default::default()
                    })
                    .await
                else {
                    return;
                };
                let mut stream = stream.into_inner();
                while let Some(e) = stream.next().await {
                    let Ok(e) = e.inspect_err(|e| eprintln!("crash test: highlight: {e:?}")) else {
                        return;
                    };
                    if let Some(pb::highlight_event::Event::Done(d)) = e.event {
                        ack.lock()
                            .unwrap()
                            .highlights
                            .insert(d.highlight_id, d.files);
                    }
                }
            }
            // Library entries on a stored video.
            _ if !committed.is_empty() => {
                let video_id = committed[(pick % committed.len() as u64) as usize].clone();
                let mut library = LibraryClient::new(channel);
                for k in 0..3i64 {
                    let start = ((pick % 4) as i64 + k) * 1000;
                    let added = library
                        .add_entry(pb::AddLibraryEntryRequest {
                            video_id: video_id.clone(),
                            start_seconds: start as f64 / 1000.0,
                            end_seconds: (start + 1000) as f64 / 1000.0,
                            category: "crash".into(),
                            description: format!("entry {k} of {pick}"),
                            ..Default::default()
                        })
                        .await;
                    match added {
                        Ok(e) => {
                            let e = e.into_inner();
                            ack.lock()
                                .unwrap()
                                .entries
                                .insert(e.entry_id, (e.video_id, e.start_ms, e.end_ms));
                        }
                        Err(e) => {
                            eprintln!("crash test: library add: {e:?}");
                            return;
                        }
                    }
                }
            }
            _ => {}
        }
    })
}

/// Waits until no ingest job is queued or running.
async fn settle(client: &mut IngestClient<Channel>) -> Vec<pb::Job> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let jobs = client
            .list_jobs(pb::ListJobsRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .jobs;
        let busy = jobs.iter().any(|j| {
            j.state == pb::JobState::Queued as i32 || j.state == pb::JobState::Running as i32
        });
        if !busy {
            return jobs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs never settled: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged_and_jobs_resume() {
    let kills: usize = std::env::var("REELFORGE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("REELFORGE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test: {kills} kills, REELFORGE_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let media = tempfile::tempdir().unwrap();
    let clips = material(media.path());
    let long = long_video(media.path());
    let data = tempfile::tempdir().unwrap();
    let ack = Arc::new(Mutex::new(Acknowledged::default()));

    // Two videos stored before the first kill, so highlights and library entries have
    // something to work on from the start.
    {
        let server = Server::start(data.path(), &[media.path()]).await;
        let mut client = server.client().await;
        for clip in &clips[..2] {
            let (_, id) = ingest_path_done(&mut client, clip, 4.0).await;
            let video = stored_video(&mut client, &id, false).await;
            ack.lock()
                .unwrap()
                .videos
                .insert(id, video.slices.len() as u32);
        }
        // And one highlight and one library entry, so every run checks both survive.
        let mut rng_warm = Rng::new(seed ^ 0x9E37_79B9_7F4A_7C15);
        let channel = server.channel().await;
        for kind in [3, 4] {
            start_work(
                kind,
                &server,
                &clips,
                &long,
                &mut rng_warm,
                &ack,
                channel.clone(),
            )
            .await
            .unwrap();
        }
        let warm = ack.lock().unwrap().clone();
        assert!(!warm.highlights.is_empty() && !warm.entries.is_empty());
        server.kill().await;
    }

    let mut moments = Vec::new();
    for round in 0..kills {
        let server = Server::start(data.path(), &[media.path()]).await;
        let acknowledged = ack.lock().unwrap().clone();
        check(&server, &acknowledged, round).await;
        // Two or three pieces of work at once; the kill lands 0.05-4 s in.
        let mut tasks = Vec::new();
        for _ in 0..2 + rng.below(2) as u64 {
            let kind = rng.below(5) as u64;
            let channel = server.channel().await;
            tasks.push(start_work(
                kind, &server, &clips, &long, &mut rng, &ack, channel,
            ));
        }
        let wait = 50 + rng.below(3_950) as u64;
        moments.push(wait);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill().await;
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }

    // The last start: every interrupted job resumes and finishes; nothing was lost.
    let server = Server::start(data.path(), &[media.path()]).await;
    let mut client = server.client().await;
    let jobs = settle(&mut client).await;
    let ack = Arc::try_unwrap(ack).ok().unwrap().into_inner().unwrap();
    for id in &ack.jobs {
        let job = jobs
            .iter()
            .find(|j| &j.job_id == id)
            .unwrap_or_else(|| panic!("job {id} is gone"));
        assert_eq!(
            job.state,
            pb::JobState::Succeeded as i32,
            "every job resumed and finished: {job:?}"
        );
    }
    check(&server, &ack, kills).await;
    let videos = all_videos(&mut client).await;
    // How many jobs were interrupted and resumed (their logs say so).
    let mut distinct = ack.jobs.clone();
    distinct.sort();
    distinct.dedup();
    let mut resumed = 0;
    for id in &distinct {
        let stream = client
            .watch_job(pb::WatchJobRequest { job_id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        let (events, status) = drain(stream).await;
        status.unwrap();
        resumed += events
            .iter()
            .filter(|e| matches!(e, pb::ingest_event::Event::Resumed(_)))
            .count();
    }
    server.stop().await;
    eprintln!(
        "crash test: {kills} kills at {moments:?} ms; {} jobs, {resumed} resumes, {} videos, \
         {} library entries, {} highlights acknowledged",
        distinct.len(),
        videos.len(),
        ack.entries.len(),
        ack.highlights.len()
    );
    assert!(
        resumed > 0,
        "no job was interrupted mid-way: try another seed"
    );
    // Nothing half-written is left in the store: no record outside a committed
    // generation, and no partial highlight directory.
    let store = reelforge_engine::store::Store::open(&data.path().join("db"), 16 << 20).unwrap();
    assert_eq!(
        store.collect_garbage(&Default::default()).unwrap(),
        0,
        "records outside committed generations"
    );
    let partial = std::fs::read_dir(data.path().join("highlights"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(partial, 0);
}
