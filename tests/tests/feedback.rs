//! The feedback loop end to end on the real server: a Points highlight of demo.mp4 (bikes
//! at 20-30 s, Big Buck Bunny at 45-50.3 s) in the category "cartoons" is rated segment by
//! segment (the bike footage good, the rest bad) and a few search hits besides; one good
//! segment joins the highlight library in the same call; `tune` shows what the rated set
//! says the threshold and pre-filter should be and what that would change, `--apply`
//! stores it, and the next highlight in the category runs with the tuned values and drops
//! what the report said it would. Bad ratings are refused with the field to fix.

use pb::feedback_client::FeedbackClient;
use pb::highlight_client::HighlightClient;
use pb::highlight_event::Event;
use reelforge_proto::v1 as pb;
use reelforge_tests::{demo_video, ingest_path_done, Server};
use tonic::transport::Channel;
use tonic::Code;

/// Points' untuned threshold for clip captions: the default text embedder's
/// (`TextEmbedder::match_threshold` of USE multilingual).
const CAPTION_THRESHOLD: f32 = 0.5;

async fn run(
    client: &mut HighlightClient<Channel>,
    req: pb::HighlightRequest,
) -> (pb::HighlightRequest, pb::HighlightResult) {
    let mut stream = client.highlight(req).await.unwrap().into_inner();
    let (mut effective, mut done) = (None, None);
    while let Some(e) = stream.message().await.unwrap() {
        match e.event.expect("event set") {
            Event::Started(s) => effective = s.effective,
            Event::Done(d) => done = Some(d),
            _ => {}
        }
    }
    (effective.unwrap(), done.unwrap())
}

/// Tunes "cartoons" (and applies it when asked).
async fn tune(feedback: &mut FeedbackClient<Channel>, apply: bool) -> pb::TuneReport {
    feedback
        .tune(pb::TuneRequest {
            category: "cartoons".into(),
            apply,
        })
        .await
        .unwrap()
        .into_inner()
}

fn overlaps(s: &pb::HighlightSegment, start_ms: i64, end_ms: i64) -> bool {
    s.start_ms < end_ms && start_ms < s.end_ms
}

fn segment(highlight_id: &str, index: u32) -> pb::rate_request::Target {
    pb::rate_request::Target::Segment(pb::RatedSegment {
        highlight_id: highlight_id.into(),
        index,
    })
}

fn hit(video_id: &str, start_ms: i64, end_ms: i64) -> pb::rate_request::Target {
    pb::rate_request::Target::Hit(pb::RatedHit {
        video_id: video_id.into(),
        start_ms,
        end_ms,
        query: "bikes jumping".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_tune_a_category_and_the_next_highlight_uses_the_tuning() {
    let data = tempfile::tempdir().unwrap();
    let demo = demo_video();
    let server = Server::start_with(
        data.path(),
        &[demo.parent().unwrap()],
        &[("REELFORGE_TRANSCRIBER", "none")],
    )
    .await;
    let mut ingest = server.client().await;
    let (_, video) = ingest_path_done(&mut ingest, &demo, 30.0).await;
    let mut highlights = HighlightClient::new(server.channel().await);
    let mut feedback = FeedbackClient::new(server.channel().await);
    let request = pb::HighlightRequest {
        video_id: video.clone(),
        strategy: pb::HighlightStrategy::Points as i32,
        category: "cartoons".into(),
        render: Some(false),
        ..Default::default()
    };

    let (effective, first) = run(&mut highlights, request.clone()).await;
    assert_eq!(
        effective.similarity_threshold,
        Some(CAPTION_THRESHOLD),
        "untuned default"
    );
    assert_eq!(effective.category, "cartoons");
    eprintln!("first highlight:");
    for s in &first.segments {
        eprintln!(
            "  {}-{} ms similarity {:?} score {:.3}",
            s.start_ms, s.end_ms, s.similarity, s.score
        );
    }
    assert!(first.segments.len() >= 2, "{:?}", first.segments);
    assert!(first
        .segments
        .iter()
        .all(|s| s.similarity.is_some_and(|x| x >= CAPTION_THRESHOLD)));

    // The viewer of "cartoons" wants the cartoon: every other segment is bad.
    let is_cartoon = |s: &pb::HighlightSegment| overlaps(s, 45_000, 50_280);
    let mut library_entry = String::new();
    for (i, s) in first.segments.iter().enumerate() {
        let good = is_cartoon(s);
        let add = good && library_entry.is_empty();
        let r = feedback
            .rate(pb::RateRequest {
                target: Some(segment(&first.highlight_id, i as u32)),
                good,
                note: format!("segment {i}"),
                category: String::new(),
                add_to_library: add,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (r.category.as_str(), r.strategy.as_str(), r.unit.as_str()),
            ("cartoons", "points", "clips")
        );
        assert_eq!(
            (r.start_ms, r.end_ms, r.video_id.as_str()),
            (s.start_ms, s.end_ms, video.as_str())
        );
        assert_eq!(
            (r.threshold, r.similarity),
            (Some(CAPTION_THRESHOLD), s.similarity)
        );
        if add {
            assert!(!r.library_entry_id.is_empty());
            library_entry = r.library_entry_id;
        }
    }
    assert!(
        !library_entry.is_empty(),
        "the cartoon segment was rated good"
    );
    let entries = pb::library_client::LibraryClient::new(server.channel().await)
        .list_entries(pb::ListLibraryEntriesRequest {
            category: "cartoons".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(entries.iter().any(|e| e.entry_id == library_entry));

    // Search hits: the still opening and the bikes (bad), the cartoon (good).
    for (start, end, good) in [
        (2_000, 8_000, false),
        (21_000, 28_000, false),
        (45_000, 50_000, true),
    ] {
        let r = feedback
            .rate(pb::RateRequest {
                target: Some(hit(&video, start, end)),
                good,
                category: "cartoons".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.similarity.is_none() && r.highlight_id.is_empty());
        eprintln!(
            "hit {start}-{end}: motion {:.4} loudness +{:.1} dB",
            r.motion, r.loudness_above_db
        );
    }

    // Tune without applying: the report, and nothing changes yet.
    let shown = tune(&mut feedback, false).await;
    eprintln!("tune report: {shown:#?}");
    assert!(!shown.applied);
    assert_eq!(shown.ratings as usize, first.segments.len() + 3);
    let t = &shown.thresholds[0];
    assert_eq!(
        (t.strategy.as_str(), t.unit.as_str(), t.before),
        ("points", "clips", CAPTION_THRESHOLD)
    );
    let c = t.rated.unwrap();
    // The cartoon matched its point better than the bikes did: the threshold rises
    // between them, keeping the good and dropping the bad.
    assert!(t.after > t.before, "{t:?}");
    assert_eq!((c.good_kept_after, c.bad_kept_after), (c.good, 0), "{c:?}");
    assert!(shown
        .flips
        .iter()
        .any(|f| !f.good && f.what.starts_with("dropped by the points threshold")));
    // The pre-filter learns the category too: the bikes move but are not loud, the
    // cartoon is loud.
    let p = shown.prefilter.unwrap();
    assert!(p.motion_after > p.motion_before, "{p:?}");
    // Never worse on the rated set than the one in use.
    assert!(
        c.good_kept_after + (c.bad - c.bad_kept_after)
            >= c.good_kept_before + (c.bad - c.bad_kept_before),
        "{c:?}"
    );
    let (_, unchanged) = run(&mut highlights, request.clone()).await;
    assert_eq!(unchanged.segments.len(), first.segments.len());

    // Apply, and the next highlight in the category starts from the tuned values.
    let applied = tune(&mut feedback, true).await;
    assert!(applied.applied);
    let tuned = applied.thresholds[0].after;
    let (effective, second) = run(&mut highlights, request.clone()).await;
    assert_eq!(effective.similarity_threshold, Some(tuned));
    if let Some(p) = &applied.prefilter {
        assert_eq!(effective.prefilter_motion, Some(p.motion_after));
        assert_eq!(effective.prefilter_loudness_db, Some(p.loudness_db_after));
    }
    eprintln!(
        "tuned threshold {tuned:.3}: {} segments before, {} after: {:?}",
        first.segments.len(),
        second.segments.len(),
        second
            .segments
            .iter()
            .map(|s| (s.start_ms, s.end_ms, s.similarity))
            .collect::<Vec<_>>()
    );
    assert!(second
        .segments
        .iter()
        .all(|s| s.similarity.unwrap() >= tuned));
    // What the report said the threshold would drop is gone (that point's claim: the same
    // moment may now go to another point that matches it above the new threshold, under
    // that point's words); what it kept is there.
    for f in applied
        .flips
        .iter()
        .filter(|f| f.what.contains("threshold"))
    {
        let rated = first
            .segments
            .iter()
            .find(|s| (s.start_ms, s.end_ms) == (f.start_ms, f.end_ms))
            .unwrap();
        let still = second
            .segments
            .iter()
            .any(|s| overlaps(s, f.start_ms, f.end_ms) && s.description == rated.description);
        assert_eq!(still, f.what.starts_with("kept"), "{f:?}");
        if !still {
            assert!(second
                .segments
                .iter()
                .filter(|s| overlaps(s, f.start_ms, f.end_ms))
                .all(|s| s.similarity.unwrap() >= tuned));
        }
    }
    for (i, s) in first.segments.iter().enumerate() {
        let predicted_kept = s.similarity.unwrap() >= tuned;
        let kept = second
            .segments
            .iter()
            .any(|n| overlaps(n, s.start_ms, s.end_ms));
        assert!(
            !predicted_kept || kept,
            "segment {i} should still be chosen"
        );
    }
    // A caller's own threshold still wins over the tuning.
    let (effective, _) = run(
        &mut highlights,
        pb::HighlightRequest {
            similarity_threshold: Some(0.6),
            ..request.clone()
        },
    )
    .await;
    assert_eq!(effective.similarity_threshold, Some(0.6));

    // Refusals name what to fix; nothing stored is lost.
    let refused = |target: Option<pb::rate_request::Target>,
                   good: bool,
                   category: &str,
                   add: bool| pb::RateRequest {
        target,
        good,
        category: category.into(),
        add_to_library: add,
        ..Default::default()
    };
    let cases = [
        (
            refused(Some(segment(&first.highlight_id, 99)), true, "", false),
            Code::InvalidArgument,
            "segment",
        ),
        (
            refused(
                Some(segment("6d2f7a3c-0000-4000-8000-000000000000", 0)),
                true,
                "",
                false,
            ),
            Code::NotFound,
            "highlight",
        ),
        (
            refused(Some(hit(&video, 1_000, 2_000)), true, "", false),
            Code::InvalidArgument,
            "category",
        ),
        (
            refused(Some(hit(&video, 5_000, 2_000)), true, "cartoons", false),
            Code::InvalidArgument,
            "start_ms",
        ),
        (
            refused(
                Some(hit(&video, 1_000_000, 1_002_000)),
                true,
                "cartoons",
                false,
            ),
            Code::InvalidArgument,
            "start_ms",
        ),
        (
            refused(
                Some(hit("0123456789abcdef", 0, 1_000)),
                true,
                "cartoons",
                false,
            ),
            Code::NotFound,
            "0123456789abcdef",
        ),
        (
            refused(Some(segment(&first.highlight_id, 0)), false, "", true),
            Code::InvalidArgument,
            "add_to_library",
        ),
        (
            refused(
                Some(segment(&first.highlight_id, 0)),
                true,
                "Bad Name!",
                false,
            ),
            Code::InvalidArgument,
            "category",
        ),
        (
            refused(None, true, "cartoons", false),
            Code::InvalidArgument,
            "target",
        ),
    ];
    for (req, code, field) in cases {
        let err = feedback.rate(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(
            err.message().contains(field),
            "{} should name {field}",
            err.message()
        );
    }
    let err = feedback
        .tune(pb::TuneRequest {
            category: "unrated".into(),
            apply: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let again = tune(&mut feedback, false).await;
    assert_eq!(
        again.ratings, shown.ratings,
        "refused ratings stored nothing"
    );

    // The CLI: segments by the number `highlight` prints them with.
    let out = server.cli(&[
        "rate",
        &first.highlight_id,
        "2",
        "good",
        "--note",
        "nice",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["start_ms"], first.segments[1].start_ms);
    assert_eq!(r["note"], "nice");
    let out = server.cli(&[
        "rate",
        &video,
        "45-50",
        "good",
        "--hit",
        "--category",
        "cartoons",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(&["rate", &first.highlight_id, "0", "good"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("segment number"));
    let out = server.cli(&["tune", "cartoons"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(
        text.contains("points threshold (clips): 0.") && text.contains("not applied"),
        "{text}"
    );
    // Every good rating (the cartoon's) passes the tuned pre-filter, every bad one not.
    assert!(text.contains("keeps 4/4 good and 0/3 bad"), "{text}");
}
