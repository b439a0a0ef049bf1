//! Hostile clients: 1,200 generated requests over real gRPC at every RPC of a running
//! server with data in it: random, empty, huge, negative, NaN and odd-unicode values,
//! unknown enum numbers, garbage and truncated upload streams, clients that vanish
//! mid-stream. Every answer must be a proper status (never UNKNOWN or INTERNAL, which is
//! what a panicking handler or a lost stream looks like), health must answer SERVING
//! throughout, the server must log no panic, and the stored videos and search results
//! must be byte-identical after.
//! `REELFORGE_FUZZ_SEED` replays a run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use reelforge_proto::v1 as pb;
use reelforge_proto::v1::highlight_client::HighlightClient;
use reelforge_proto::v1::library_client::LibraryClient;
use reelforge_proto::v1::search_client::SearchClient;
use reelforge_tests::fuzz::Rng;
use reelforge_tests::{fixtures, ingest_path_done, Server};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Status};

const REQUESTS: usize = 1_200;
const CALLERS: usize = 8;
/// A call still running after this is dropped: a client that vanished.
const PATIENCE: Duration = Duration::from_secs(20);

/// Whether a well-behaved server may answer a hostile request so: with a status it chose
/// (not UNKNOWN or INTERNAL, not a transport or HTTP/2 failure, not a call cut off).
fn proper(status: &Status) -> bool {
    let broken = [
        "h2 protocol error",
        "transport error",
        "error reading a body",
    ];
    !matches!(
        status.code(),
        Code::Unknown
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
            | Code::Unimplemented
            | Code::Cancelled
    ) && !broken.iter().any(|b| status.message().contains(b))
        && !status.message().trim().is_empty()
}

fn nasty_string(rng: &mut Rng) -> String {
    let fixed = [
        "",
        " ",
        "\0",
        "../../../etc/passwd",
        "/etc/passwd",
        "C:\\Windows\\system32",
        "中文搜索 精彩瞬间",
        "🎬🚴‍♀️🏁",
        "\u{202e}evil\u{202d}",
        "\u{feff}\u{200b}",
        "NaN",
        "-1",
        "%s%n%x",
        "'; DROP TABLE videos; --",
        "a penalty save",
        "0123456789abcdef",
        "ffffffffffffffff",
        "\r\n\r\n",
        "\x1b[31mred",
    ];
    match rng.below(5) {
        0 => "x".repeat([1_000, 70_000, 1_000_000][rng.below(3)]),
        1 => (0..rng.below(40))
            .map(|_| char::from_u32(rng.below(0x2FFFF) as u32).unwrap_or('\u{fffd}'))
            .collect(),
        2 => format!("{:016x}", rng.next_u64()),
        _ => rng.pick(&fixed).to_string(),
    }
}

fn nasty_f64(rng: &mut Rng) -> f64 {
    *rng.pick(&[
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        0.0,
        -0.0,
        1e-300,
        0.4,
        3.0,
        30.0,
        1e12,
        f64::MAX,
        -f64::MAX,
    ])
}

fn nasty_f32(rng: &mut Rng) -> f32 {
    nasty_f64(rng) as f32
}

fn nasty_i64(rng: &mut Rng) -> i64 {
    let any = rng.next_u64() as i64;
    *rng.pick(&[i64::MIN, -1, 0, 1, 999, 5_000, i64::MAX, any])
}

fn nasty_u32(rng: &mut Rng) -> u32 {
    let any = rng.next_u64() as u32;
    *rng.pick(&[0, 1, 3, 64, u32::MAX, any])
}

fn nasty_enum(rng: &mut Rng) -> i32 {
    *rng.pick(&[0, 1, 2, 3, 4, 5, -1, 99, i32::MAX, i32::MIN])
}

/// A listing's `tenant`: the caller's own, every tenant's, another's, or garbage.
fn tenant_view(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => String::new(),
        1 => "*".into(),
        2 => "someone-else".into(),
        _ => nasty_string(rng),
    }
}

fn strings(rng: &mut Rng) -> Vec<String> {
    (0..rng.below(4)).map(|_| nasty_string(rng)).collect()
}

/// An id: sometimes a stored video's (with options that must be refused), mostly not.
fn video_id(rng: &mut Rng, stored: &[String]) -> String {
    match rng.below(4) {
        0 => rng.pick(stored).clone(),
        _ => nasty_string(rng),
    }
}

fn bad_ingest_options(rng: &mut Rng) -> pb::IngestOptions {
    // Invalid on purpose: a valid force=true re-ingest would change what is stored.
    pb::IngestOptions {
        force: rng.one_in(2),
        slice_seconds: *rng.pick(&[f64::NAN, f64::INFINITY, -1.0, 1e12, -f64::MAX]),
        clip_seconds: nasty_f64(rng),
        language: nasty_string(rng),
    }
}

struct Clients {
    addr: String,
    ingest: reelforge_proto::v1::ingest_client::IngestClient<Channel>,
    search: SearchClient<Channel>,
    highlight: HighlightClient<Channel>,
    library: LibraryClient<Channel>,
    feedback: reelforge_proto::v1::feedback_client::FeedbackClient<Channel>,
    channel: Channel,
}

/// Drains a server stream to its end; returns the first error status, if any.
async fn drain<T>(
    call: Result<tonic::Response<tonic::Streaming<T>>, Status>,
) -> Result<(), Status> {
    let mut stream = call?.into_inner();
    while let Some(item) = stream.next().await {
        item?;
    }
    Ok(())
}

fn unit<T>(r: Result<tonic::Response<T>, Status>) -> Result<(), Status> {
    r.map(|_| ())
}

/// Sends one generated request; returns the RPC's name and its outcome (`None` when the
/// caller gave up on purpose).
async fn one_request(
    c: &mut Clients,
    rng: &mut Rng,
    stored: &[String],
    fixture_bytes: &[u8],
    bda: &[u8],
) -> (&'static str, Option<Result<(), Status>>) {
    let kind = rng.below(19);
    let (name, call): (&'static str, _) = match kind {
        0 => {
            let path = match rng.below(3) {
                0 => format!("{}/{}", fixtures().dir.display(), nasty_string(rng)),
                1 => fixtures().small.display().to_string(),
                _ => nasty_string(rng),
            };
            let req = pb::IngestPathRequest {
                path,
                options: Some(bad_ingest_options(rng)),
            };
            ("IngestPath", drain(c.ingest.ingest_path(req).await).await)
        }
        1 | 2 => {
            // Upload streams: no header, data first, garbage, truncated, oversized claims,
            // or a client that stops sending half way (the stream is dropped).
            use pb::upload_chunk::Part;
            let header = |rng: &mut Rng| pb::UploadChunk {
                part: Some(Part::Header(pb::UploadHeader {
                    filename: nasty_string(rng),
                    size_bytes: nasty_i64(rng),
                    options: rng.one_in(2).then(|| pb::IngestOptions {
                        force: false,
                        slice_seconds: nasty_f64(rng),
                        clip_seconds: nasty_f64(rng),
                        language: nasty_string(rng),
                    }),
                })),
            };
            let data = |bytes: Vec<u8>| pb::UploadChunk {
                part: Some(Part::Data(bytes)),
            };
            let mut chunks = Vec::new();
            match rng.below(5) {
                0 => chunks.push(data(fixture_bytes[..1000].to_vec())),
                1 => {
                    chunks.push(header(rng));
                    let garbage: Vec<u8> = (0..rng.below(200_000))
                        .map(|_| rng.next_u64() as u8)
                        .collect();
                    chunks.push(data(garbage));
                }
                2 => {
                    chunks.push(header(rng));
                    let cut = rng.below(fixture_bytes.len());
                    chunks.push(data(fixture_bytes[..cut].to_vec()));
                }
                3 => {
                    chunks.push(header(rng));
                    chunks.push(header(rng));
                }
                _ => chunks.push(pb::UploadChunk { part: None }),
            }
            if rng.one_in(3) {
                // Vanish: send what we have, then hang up (the whole connection, as a
                // client that dies does) before ending the stream.
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                for chunk in chunks {
                    let _ = tx.send(chunk).await;
                }
                let mut own = reelforge_proto::v1::ingest_client::IngestClient::new(
                    Channel::from_shared(c.addr.clone())
                        .unwrap()
                        .connect()
                        .await
                        .unwrap(),
                );
                let call = own.ingest_upload(tokio_stream::wrappers::ReceiverStream::new(rx));
                let outcome = tokio::time::timeout(Duration::from_millis(300), call).await;
                drop(own);
                drop(tx);
                return (
                    "IngestUpload(vanished)",
                    match outcome {
                        Ok(Err(status)) => Some(Err(status)),
                        _ => None,
                    },
                );
            }
            (
                "IngestUpload",
                drain(c.ingest.ingest_upload(tokio_stream::iter(chunks)).await).await,
            )
        }
        3 => {
            let req = pb::WatchJobRequest {
                job_id: nasty_string(rng),
            };
            ("WatchJob", drain(c.ingest.watch_job(req).await).await)
        }
        4 => {
            let job_id = nasty_string(rng);
            match rng.below(2) {
                0 => (
                    "GetJob",
                    unit(c.ingest.get_job(pb::GetJobRequest { job_id }).await),
                ),
                _ => (
                    "CancelJob",
                    unit(c.ingest.cancel_job(pb::CancelJobRequest { job_id }).await),
                ),
            }
        }
        5 => {
            let req = pb::ListJobsRequest {
                page_size: rng.next_u64() as i32,
                page_token: nasty_string(rng),
                states: (0..rng.below(3)).map(|_| nasty_enum(rng)).collect(),
                tenant: tenant_view(rng),
            };
            ("ListJobs", unit(c.ingest.list_jobs(req).await))
        }
        6 => {
            let req = pb::ListVideosRequest {
                page_size: rng.next_u64() as i32,
                page_token: if rng.one_in(2) {
                    String::new()
                } else {
                    nasty_string(rng)
                },
                name_contains: nasty_string(rng),
                ingested_after_unix_ms: nasty_i64(rng),
                ingested_before_unix_ms: nasty_i64(rng),
                tenant: tenant_view(rng),
            };
            ("ListVideos", unit(c.ingest.list_videos(req).await))
        }
        7 => {
            let req = pb::GetVideoRequest {
                video_id: video_id(rng, stored),
                include_signals: rng.one_in(2),
            };
            ("GetVideo", unit(c.ingest.get_video(req).await))
        }
        8 => {
            // Never a stored id: deleting one would change what is stored on purpose.
            let req = pb::DeleteVideoRequest {
                video_id: nasty_string(rng),
            };
            ("DeleteVideo", unit(c.ingest.delete_video(req).await))
        }
        9 => {
            let mut json = bda.to_vec();
            for _ in 0..rng.below(6) {
                let i = rng.below(json.len());
                json[i] = rng.next_u64() as u8;
            }
            if rng.one_in(3) {
                json = nasty_string(rng).into_bytes();
            }
            // Always a video that is not stored: an import as a video of its own would
            // add one.
            let req = pb::ImportBdaRequest {
                result_json: json,
                video_id: format!("{:016x}", rng.next_u64()),
            };
            ("ImportBda", unit(c.ingest.import_bda(req).await))
        }
        10 => {
            let req = pb::RunBdaRequest {
                video_id: video_id(rng, stored),
            };
            ("RunBda", drain(c.ingest.run_bda(req).await).await)
        }
        11 | 12 if rng.one_in(2) => {
            // A valid search with one odd value, to get past the checks into the index.
            let mut req = pb::SearchRequest {
                query: nasty_string(rng),
                mode: rng.below(4) as i32,
                top_k: 1 + rng.below(50) as u32,
                ..Default::default()
            };
            match rng.below(5) {
                0 => req.video_ids = vec![video_id(rng, stored)],
                1 => {
                    req.time_range = Some(pb::TimeRange {
                        start_ms: nasty_i64(rng),
                        end_ms: nasty_i64(rng),
                    })
                }
                2 => req.kinds = strings(rng),
                3 => req.rerank = Some(rng.one_in(2)),
                _ => req.merge_adjacent = true,
            }
            ("Search", drain(c.search.search(req).await).await)
        }
        11..=13 => {
            let req = pb::SearchRequest {
                query: nasty_string(rng),
                mode: nasty_enum(rng),
                top_k: nasty_u32(rng),
                video_ids: strings(rng),
                time_range: rng.one_in(2).then(|| pb::TimeRange {
                    start_ms: nasty_i64(rng),
                    end_ms: nasty_i64(rng),
                }),
                kinds: strings(rng),
                fusion: rng.one_in(2).then(|| pb::FusionOptions {
                    method: nasty_enum(rng),
                    rrf_k: nasty_f32(rng),
                    lexical_weight: nasty_f32(rng),
                    vector_weight: nasty_f32(rng),
                }),
                rerank: rng.one_in(2).then(|| rng.one_in(2)),
                rerank_threshold: rng.one_in(2).then(|| nasty_f32(rng)),
                merge_adjacent: rng.one_in(2),
                include_thumbnails: rng.one_in(2),
            };
            ("Search", drain(c.search.search(req).await).await)
        }
        14 if rng.one_in(2) => {
            // A script across the library (no render): past the checks into matching.
            let req = pb::HighlightRequest {
                strategy: pb::HighlightStrategy::Script as i32,
                script: nasty_string(rng),
                render: Some(false),
                target_seconds: nasty_f64(rng),
                ..Default::default()
            };
            ("Highlight", drain(c.highlight.highlight(req).await).await)
        }
        14 | 15 => {
            let video_id = video_id(rng, stored);
            // A stored video gets a request that must be refused: a valid one may derive
            // and keep clip vectors for it (a legitimate change to what is stored).
            let target_seconds = match stored.contains(&video_id) {
                true => f64::NAN,
                false => nasty_f64(rng),
            };
            let req = pb::HighlightRequest {
                video_id,
                strategy: nasty_enum(rng),
                slice_seconds: nasty_f64(rng),
                concurrency: nasty_u32(rng),
                target_seconds,
                min_segment_seconds: nasty_f64(rng),
                max_segment_seconds: nasty_f64(rng),
                padding_seconds: nasty_f64(rng),
                order_by_score: rng.one_in(2),
                render: Some(false),
                crossfade_seconds: nasty_f64(rng),
                subtitles: nasty_enum(rng),
                script: nasty_string(rng),
                video_ids: strings(rng),
                match_unit: nasty_enum(rng),
                similarity_threshold: rng.one_in(2).then(|| nasty_f32(rng)),
                transcript_points: rng.one_in(2).then(|| rng.one_in(2)),
                prefilter: rng.one_in(2).then(|| rng.one_in(2)),
                prefilter_motion: rng.one_in(2).then(|| nasty_f32(rng)),
                prefilter_loudness_db: rng.one_in(2).then(|| nasty_f32(rng)),
                dedup_similarity: nasty_f32(rng),
                coarse: rng.one_in(2),
                category: nasty_string(rng),
                music_dir: nasty_string(rng),
                music_volume: nasty_f32(rng),
                fresh: rng.one_in(2).then(|| rng.one_in(2)),
                timeline_formats: (0..rng.below(4)).map(|_| nasty_enum(rng)).collect(),
                language: nasty_string(rng),
            };
            ("Highlight", drain(c.highlight.highlight(req).await).await)
        }
        16 => {
            // A highlight id: garbage, or well formed but unknown.
            let highlight_id = match rng.one_in(2) {
                true => nasty_string(rng),
                false => format!(
                    "{:08x}-0000-4000-8000-{:012x}",
                    rng.next_u64() as u32,
                    rng.next_u64() >> 16
                ),
            };
            match rng.below(9) {
                5 => {
                    // Read-only: a clip of any range of any video.
                    let req = pb::GetClipRequest {
                        video_id: video_id(rng, stored),
                        start_ms: nasty_i64(rng),
                        end_ms: nasty_i64(rng),
                        max_height: nasty_u32(rng),
                        exact: rng.one_in(2),
                    };
                    ("GetClip", drain(c.highlight.get_clip(req).await).await)
                }
                6 => {
                    // Failed slices only: a stored video here has none, so nothing
                    // stored may change.
                    let req = pb::ReanalyseVideoRequest {
                        video_id: video_id(rng, stored),
                        failed_only: true,
                    };
                    ("ReanalyseVideo", unit(c.ingest.reanalyse_video(req).await))
                }
                7 => {
                    // Ratings of garbage or unknown targets; a well-formed hit on a
                    // stored video is stored (ratings are not the video's data).
                    let target = match rng.below(3) {
                        0 => Some(pb::rate_request::Target::Segment(pb::RatedSegment {
                            highlight_id,
                            index: nasty_u32(rng),
                        })),
                        1 => Some(pb::rate_request::Target::Hit(pb::RatedHit {
                            video_id: video_id(rng, stored),
                            start_ms: nasty_i64(rng),
                            end_ms: nasty_i64(rng),
                            query: nasty_string(rng),
                        })),
                        _ => None,
                    };
                    let req = pb::RateRequest {
                        target,
                        good: rng.one_in(2),
                        note: nasty_string(rng),
                        category: nasty_string(rng),
                        add_to_library: rng.one_in(2),
                    };
                    ("Rate", unit(c.feedback.rate(req).await))
                }
                8 => {
                    let req = pb::TuneRequest {
                        category: nasty_string(rng),
                        apply: rng.one_in(2),
                    };
                    ("Tune", unit(c.feedback.tune(req).await))
                }
                0 => {
                    let req = pb::DownloadRequest {
                        highlight_id,
                        file: nasty_string(rng),
                    };
                    ("Download", drain(c.highlight.download(req).await).await)
                }
                1 => {
                    let req = pb::WatchHighlightRequest { highlight_id };
                    (
                        "WatchHighlight",
                        drain(c.highlight.watch_highlight(req).await).await,
                    )
                }
                2 => {
                    let req = pb::GetHighlightRequest { highlight_id };
                    ("GetHighlight", unit(c.highlight.get_highlight(req).await))
                }
                3 => {
                    let req = pb::ListHighlightsRequest {
                        page_size: rng.next_u64() as i32,
                        page_token: nasty_string(rng),
                        states: (0..rng.below(3))
                            .map(|_| rng.next_u64() as i32 % 7)
                            .collect(),
                        tenant: tenant_view(rng),
                    };
                    (
                        "ListHighlights",
                        unit(c.highlight.list_highlights(req).await),
                    )
                }
                _ => {
                    let req = pb::DeleteHighlightRequest { highlight_id };
                    (
                        "DeleteHighlight",
                        unit(c.highlight.delete_highlight(req).await),
                    )
                }
            }
        }
        17 => {
            let req = pb::AddLibraryEntryRequest {
                video_id: video_id(rng, stored),
                start_seconds: nasty_f64(rng),
                end_seconds: nasty_f64(rng),
                category: nasty_string(rng),
                tags: strings(rng),
                description: nasty_string(rng),
                score: rng.one_in(2).then(|| nasty_f32(rng)),
            };
            ("AddEntry", unit(c.library.add_entry(req).await))
        }
        _ => match rng.below(4) {
            3 => {
                // Key management: garbage only (a key made here would turn keys on for
                // every other caller), so every tenant name is invalid.
                let mut admin =
                    reelforge_proto::v1::admin_client::AdminClient::new(c.channel.clone());
                match rng.below(6) {
                    0 => {
                        let req = pb::CreateKeyRequest {
                            tenant: format!("../{}", nasty_string(rng)),
                            role: nasty_enum(rng),
                            expires_in_seconds: nasty_i64(rng),
                            note: nasty_string(rng),
                            max_concurrent_jobs: rng.next_u64() as u32,
                        };
                        ("CreateKey", unit(admin.create_key(req).await))
                    }
                    1 => {
                        let req = pb::RevokeKeyRequest {
                            key_id: nasty_string(rng),
                        };
                        ("RevokeKey", unit(admin.revoke_key(req).await))
                    }
                    2 => {
                        let req = pb::ListKeysRequest {
                            tenant: nasty_string(rng),
                        };
                        ("ListKeys", unit(admin.list_keys(req).await))
                    }
                    3 => (
                        "ListTenants",
                        unit(admin.list_tenants(pb::ListTenantsRequest {}).await),
                    ),
                    4 => (
                        "GetServerInfo",
                        unit(admin.get_server_info(pb::GetServerInfoRequest {}).await),
                    ),
                    _ => ("WhoAmI", unit(admin.who_am_i(pb::WhoAmIRequest {}).await)),
                }
            }
            0 => {
                let req = pb::ListLibraryEntriesRequest {
                    category: nasty_string(rng),
                    page_size: rng.next_u64() as i32,
                    page_token: nasty_string(rng),
                };
                ("ListEntries", unit(c.library.list_entries(req).await))
            }
            1 => {
                let req = pb::RemoveLibraryEntryRequest {
                    entry_id: nasty_string(rng),
                };
                ("RemoveEntry", unit(c.library.remove_entry(req).await))
            }
            _ => {
                let req = pb::SetCategoryScriptRequest {
                    category: nasty_string(rng),
                    script: nasty_string(rng),
                };
                ("SetScript", unit(c.library.set_script(req).await))
            }
        },
    };
    (name, Some(call))
}

/// What must not change: every stored video in full and the answers to fixed searches
/// (without their timings), as encoded bytes.
async fn snapshot(server: &Server, ids: &[String]) -> Vec<(Vec<u8>, String)> {
    let mut client = server.client().await;
    let mut out = Vec::new();
    let list = client
        .list_videos(pb::ListVideosRequest::default())
        .await
        .unwrap()
        .into_inner();
    out.push((list.encode_to_vec(), format!("{list:?}")));
    for id in ids {
        let video = client
            .get_video(pb::GetVideoRequest {
                video_id: id.clone(),
                include_signals: true,
            })
            .await
            .unwrap()
            .into_inner();
        out.push((video.encode_to_vec(), format!("{video:?}")));
    }
    let mut search = SearchClient::new(server.channel().await);
    for query in ["tone", "riders racing", "中文"] {
        let mut stream = search
            .search(pb::SearchRequest {
                query: query.into(),
                top_k: 20,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        while let Some(reply) = stream.next().await {
            // Results only: the stats message holds timings.
            if let Some(pb::search_response::Item::Result(r)) = reply.unwrap().item {
                out.push((r.encode_to_vec(), format!("{r:?}")));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests_get_proper_answers_and_change_nothing_stored() {
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("server.log");
    let server = Server::start_logging_to(data.path(), &[&f.dir], &[], &log).await;
    let mut client = server.client().await;
    let (_, small) = ingest_path_done(&mut client, &f.small, 4.0).await;
    let (_, silent) = ingest_path_done(&mut client, &f.silent, 4.0).await;
    let bda = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bda/result.json"),
    )
    .unwrap();
    let imported = client
        .import_bda(pb::ImportBdaRequest {
            result_json: bda.clone(),
            video_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .video_id;
    let stored = vec![small, silent, imported];
    let before = snapshot(&server, &stored).await;
    let fixture_bytes = std::fs::read(&f.small).unwrap();

    // Health, polled all along.
    let stop = Arc::new(AtomicUsize::new(0));
    let health = {
        let (channel, stop) = (server.channel().await, stop.clone());
        tokio::spawn(async move {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let (mut checks, mut failures, mut slowest) = (0, Vec::new(), Duration::ZERO);
            while stop.load(Ordering::Relaxed) == 0 {
                let asked = std::time::Instant::now();
                let reply = health
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                checks += 1;
                slowest = slowest.max(asked.elapsed());
                let serving = tonic_health::pb::health_check_response::ServingStatus::Serving;
                match reply {
                    Ok(r) if r.get_ref().status == serving as i32 => {}
                    other => failures.push(format!("{other:?}")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (checks, failures, slowest)
        })
    };

    let seed = Rng::seed_from_env();
    println!("hostile clients: REELFORGE_FUZZ_SEED={seed}");
    let next = Arc::new(AtomicUsize::new(0));
    let tally: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let wrong: Arc<Mutex<Vec<String>>> = Arc::default();
    let messages: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let started = std::time::Instant::now();
    let mut callers = Vec::new();
    for caller in 0..CALLERS {
        let channel = server.channel().await;
        let mut clients = Clients {
            addr: server.addr.clone(),
            ingest: reelforge_proto::v1::ingest_client::IngestClient::new(channel.clone()),
            search: SearchClient::new(channel.clone()),
            highlight: HighlightClient::new(channel.clone()),
            library: LibraryClient::new(channel.clone()),
            feedback: reelforge_proto::v1::feedback_client::FeedbackClient::new(channel.clone()),
            channel,
        };
        let (next, tally, wrong) = (next.clone(), tally.clone(), wrong.clone());
        let messages = messages.clone();
        let (stored, fixture_bytes, bda) = (stored.clone(), fixture_bytes.clone(), bda.clone());
        callers.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed.wrapping_add(caller as u64 * 0x9e37_79b9));
            while next.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                let call = one_request(&mut clients, &mut rng, &stored, &fixture_bytes, &bda);
                let (name, outcome) = match tokio::time::timeout(PATIENCE, call).await {
                    Ok(answer) => answer,
                    Err(_) => ("(gave up after 20 s)", None),
                };
                let label = match &outcome {
                    Some(Ok(())) => format!("{name} OK"),
                    Some(Err(s)) => format!("{name} {:?}", s.code()),
                    None => format!("{name} dropped"),
                };
                if let Some(Err(status)) = &outcome {
                    messages
                        .lock()
                        .unwrap()
                        .entry(label.clone())
                        .or_insert_with(|| status.message().chars().take(160).collect());
                }
                *tally.lock().unwrap().entry(label).or_default() += 1;
                if let Some(Err(status)) = &outcome {
                    if !proper(status) {
                        wrong.lock().unwrap().push(format!("{name}: {status:?}"));
                    }
                }
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
    println!("{REQUESTS} requests in {:?}", started.elapsed());
    stop.store(1, Ordering::Relaxed);
    let (checks, health_failures, slowest) = health.await.unwrap();

    let tally = tally.lock().unwrap().clone();
    println!("outcomes over {REQUESTS} requests: {tally:#?}");
    println!("a message of each: {:#?}", messages.lock().unwrap());
    println!(
        "health checks: {checks}, failures: {}, slowest {slowest:?}",
        health_failures.len()
    );
    let wrong = wrong.lock().unwrap().clone();
    assert!(wrong.is_empty(), "improper answers: {wrong:#?}");
    assert!(health_failures.is_empty(), "health: {health_failures:?}");
    assert!(checks > 0);
    let after = snapshot(&server, &stored).await;
    assert_eq!(before.len(), after.len(), "the stored videos changed");
    for (i, (a, b)) in before.iter().zip(&after).enumerate() {
        if a != b {
            let (a, b) = (format!("{:?}", a.1), format!("{:?}", b.1));
            let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
            let from = at.saturating_sub(200);
            panic!(
                "stored state {i} changed under hostile requests:\nbefore ...{}\nafter  ...{}",
                &a[from..(at + 300).min(a.len())],
                &b[from..(at + 300).min(b.len())]
            );
        }
    }
    server.stop().await;
    // A panic in a task the server spawned reaches no caller; its log shows it.
    let log = std::fs::read_to_string(&log).unwrap();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked at")).collect();
    assert!(panics.is_empty(), "the server panicked: {panics:#?}");
}
