//! Template: the new video's clips that look like the highlight library's entries (of a
//! category, or all), each clip against the closest of an entry's clips: by their video
//! embeddings (picture and sound) when `models.video_embedder` is set, else by their
//! looks, motion emphasised; ordered by the category's script when it has one.

use reelforge_core::error::{Error, Result};
use reelforge_core::segments::{merge_close, priority_of_score, Segment};
use reelforge_core::vector::{cosine, dot};
use reelforge_core::BoxFuture;
use reelforge_media::visual::emphasise_motion;
use reelforge_models::EmbedPurpose;

use super::reading::{self, Material, SliceOutcome};
use super::{of_video, one, Context, Defaults, Proposal, Shaping, Strategy};
use crate::catalog::VideoMaterial;
use crate::highlights::matching::{
    clip_video_vectors, load_units, MatchDefaults, MatchOptions, CLIP_VIDEO_THRESHOLD,
    COARSE_PAD_MS, LOOK_THRESHOLD, MOTION_EMPHASIS,
};
use crate::highlights::points::{resolve, Point, Scores};
use crate::highlights::request::StrategyOptions;
use crate::highlights::units::{self, Unit, UnitKind};
use crate::highlights::HighlightEvent;
use crate::library::{Category, LibraryEntry};

pub struct Template;

/// What Template's options default to. A past highlight is rarely a still, quiet shot,
/// and stills of its scene look like it: the pre-filter is on unless turned off.
/// With a video embedder, clips are compared with the entries' clips by their video
/// embeddings (picture and sound), else by their looks.
const DEFAULTS: MatchDefaults = MatchDefaults {
    strategy: "template",
    prefilter: true,
    threshold: |_, d| match d.video_embedder {
        true => CLIP_VIDEO_THRESHOLD,
        false => LOOK_THRESHOLD,
    },
};

impl Strategy for Template {
    fn name(&self) -> &'static str {
        "template"
    }

    fn options(&self, given: &StrategyOptions, defaults: &Defaults) -> Result<StrategyOptions> {
        let o = MatchOptions::read(given, &DEFAULTS, defaults)?;
        if o.unit != UnitKind::Clips {
            return Err(Error::invalid(
                "the template strategy matches clips (library entries are clip looks), not frames",
            ));
        }
        Ok(o.effective())
    }

    fn propose<'a>(
        &'a self,
        cx: &'a Context<'a>,
        video: Option<&'a VideoMaterial>,
        options: &'a StrategyOptions,
    ) -> BoxFuture<'a, Result<Proposal>> {
        Box::pin(async move {
            let video = one(video);
            let o = MatchOptions::read(options, &DEFAULTS, &cx.defaults)?;
            let (segments, ordered) = template(cx, video, o.category.as_deref(), &o).await?;
            let shaping = if ordered {
                Shaping::InOrder
            } else {
                Shaping::Exclusive
            };
            Ok(of_video(segments, shaping, video))
        })
    }
}

/// Returns the segments and whether they are in script order.
async fn template(
    cx: &Context<'_>,
    v: &VideoMaterial,
    category: Option<&str>,
    o: &MatchOptions,
) -> Result<(Vec<Segment>, bool)> {
    let Category { entries, script } = cx.library.category(cx.tenant, category).await?;
    let video_embedder = cx.providers.video_embedder.clone();
    let entries = match &video_embedder {
        Some(_) => cx.library.with_clip_videos(entries).await?,
        None => entries,
    };
    if entries.is_empty() {
        return Err(Error::FailedPrecondition(match category {
            Some(c) => format!(
                "the highlight library has no entries in category {c}; add some with `reelforge library add`"
            ),
            None => "the highlight library is empty; add entries with `reelforge library add`".into(),
        }));
    }
    let points: Vec<Point> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| Point {
            index: i as u32,
            priority: priority_of_score(e.score),
            description: e.words(),
            model: format!(
                "library entry {} ({} {:.1}-{:.1} s)",
                e.entry_id,
                e.filename,
                e.start_ms as f64 / 1000.0,
                e.end_ms as f64 / 1000.0
            ),
            source: "template".into(),
            start_ms: e.start_ms,
            end_ms: e.end_ms,
        })
        .collect();
    (cx.sink)(HighlightEvent::Points(points.clone()));
    let units = load_units(cx.catalog, v, UnitKind::Clips, cx.language).await?;
    // The coarse pass is the analyser's whole-video reading, only when asked.
    let regions = if o.coarse {
        let on_slice = |s: &SliceOutcome| (cx.sink)(HighlightEvent::Slice(s.clone()));
        let analysed = reading::direct(
            cx.providers.analyzer.as_ref(),
            &Material::of(v, cx.language),
            &on_slice,
        )
        .await?;
        Some(
            analysed
                .iter()
                .map(|s| (s.start_ms - COARSE_PAD_MS, s.end_ms + COARSE_PAD_MS))
                .collect(),
        )
    } else {
        None
    };
    let filtered = units::filter(UnitKind::Clips, &units, &v.windows, &o.cost(regions));
    (cx.sink)(HighlightEvent::Funnel(filtered.funnel.clone()));
    let own = |e: &LibraryEntry, u: &Unit| {
        e.video_id == v.video.video_id && u.start_ms < e.end_ms && u.end_ms > e.start_ms
    };
    // With a video embedder: the kept clips' video embeddings (made once, kept).
    let unit_videos = match &video_embedder {
        Some(embedder) => {
            let kept: Vec<&Unit> = filtered.kept.iter().map(|&i| &units[i]).collect();
            Some(clip_video_vectors(cx.catalog, v, embedder.as_ref(), &kept).await?)
        }
        None => None,
    };
    let embedder_name = video_embedder.as_ref().map(|e| e.name().to_string());
    let look_similarity = |e: &LibraryEntry, u: &Unit| match &u.look {
        Some(look) if look.len() == e.look.len() => {
            let look = emphasise_motion(look, MOTION_EMPHASIS);
            let closest = |l: &Vec<f32>| cosine(&look, &emphasise_motion(l, MOTION_EMPHASIS));
            if e.clip_looks.is_empty() {
                closest(&e.look)
            } else {
                e.clip_looks.iter().map(closest).fold(-1.0, f32::max)
            }
        }
        _ => -1.0,
    };
    // A past highlight does not match its own footage.
    let similarity: Vec<Vec<f32>> = entries
        .iter()
        .map(|e| {
            let by_video = embedder_name.as_deref() == Some(e.video_embedder.as_str())
                && !e.clip_videos.is_empty();
            filtered
                .kept
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    if own(e, &units[i]) {
                        return -1.0;
                    }
                    match &unit_videos {
                        Some(uv) if by_video => {
                            let u = &uv[k];
                            e.clip_videos
                                .iter()
                                .filter(|c| !u.is_empty() && c.len() == u.len())
                                .map(|c| dot(u, c))
                                .fold(-1.0, f32::max)
                        }
                        // An entry whose video is gone and that has no video embeddings:
                        // by look, moved onto the video threshold's scale.
                        Some(_) => look_similarity(e, &units[i]) - LOOK_THRESHOLD + o.threshold,
                        None => look_similarity(e, &units[i]),
                    }
                })
                .collect()
        })
        .collect();
    let matcher = match &embedder_name {
        Some(name) => format!("{name} clip video"),
        None => "visual descriptor".to_string(),
    };
    let scores = Scores {
        filtered: &filtered,
        similarity: &similarity,
        threshold: o.threshold,
        matcher: &matcher,
    };
    let (segments, matches) = resolve(&v.video.video_id, &points, &units, UnitKind::Clips, &scores);
    for m in matches {
        (cx.sink)(HighlightEvent::PointMatch(m));
    }
    // Adjacent clips that look like different entries are one highlight-like stretch; it
    // takes the words of the entry matched best inside it.
    let mut segments = merge_close(segments, 0);
    let entry_of = |s: &Segment| {
        points
            .iter()
            .position(|p| p.description == s.description)
            .unwrap_or(0)
    };
    // A segment's score: its similarity weighed by how good the entry's highlight was.
    for s in &mut segments {
        s.score *= entries[entry_of(s)].score;
    }
    if script.is_empty() || segments.is_empty() {
        return Ok((segments, false));
    }
    // The category's script orders them: each segment goes to the event its entry's
    // words are closest to, events in order, time order within an event.
    let embedder = &cx.providers.text_embedder;
    let events = embedder.embed(&script, EmbedPurpose::Query).await?;
    let stale: Vec<String> = entries
        .iter()
        .filter(|e| e.text_embedder != embedder.name() || e.text.is_empty())
        .map(|e| e.words())
        .collect();
    let mut fresh = embedder
        .embed(&stale, EmbedPurpose::Index)
        .await?
        .into_iter();
    let entry_vectors: Vec<Vec<f32>> = entries
        .iter()
        .map(|e| {
            if e.text_embedder != embedder.name() || e.text.is_empty() {
                fresh.next().map(|t| t.vector).unwrap_or_default()
            } else {
                e.text.clone()
            }
        })
        .collect();
    let event_of: Vec<usize> = entry_vectors
        .iter()
        .map(|t| {
            (0..events.len())
                .max_by(|&a, &b| dot(t, &events[a].vector).total_cmp(&dot(t, &events[b].vector)))
                .unwrap_or(0)
        })
        .collect();
    segments.sort_by_key(|s| (event_of[entry_of(s)], s.start_ms));
    for s in &mut segments {
        let e = event_of[entry_of(s)];
        s.reason = format!("{}; script event {}: {}", s.reason, e + 1, script[e]);
    }
    Ok((segments, true))
}
