//! The strategies that match text or looks against a video's clips: Points + clips (a
//! model's prioritised highlight points) and Template (the highlight library's entries).
//! Both run the cost filters first and stream what they did: the points, the filter
//! funnel, and each point's match.

use std::collections::HashMap;

use super::library::{Library, LibraryEntry};
use super::points::{self, Point, PointMatch, Scores};
use super::segments::Segment;
use super::strategy::{self, Material, SliceOutcome};
use super::units::{self, CostOptions, Funnel, Unit, UnitKind, UnitSource};
use crate::analysis::visual::{cosine, emphasise_motion};
use crate::error::{Error, Result};
use crate::ingest::{blocking, Engine};
use crate::models::{EmbedPurpose, TranscriptSegment, VideoEmbedder};
use crate::search::vectors::dot;
use crate::store::{EmbeddingKind, VideoRecord};

/// Default similarity thresholds, by space: point text vs clip captions (text embedder),
/// point text vs clip video (video embedder),
/// point text vs frames (image-text embedder, whose cosines run lower), and a library
/// entry's look vs a clip's (visual descriptors, which run high).
pub const CAPTION_THRESHOLD: f32 = 0.6;
pub const FRAME_THRESHOLD: f32 = 0.25;
pub const LOOK_THRESHOLD: f32 = 0.9;
/// Point text vs a clip's video embedding (`models.video_embedder`): cross-modal cosines
/// run lower than text-to-text ones.
pub const VIDEO_THRESHOLD: f32 = 0.3;
/// Template looks weigh motion this much more than the stored descriptor does: a still
/// of a highlight's scene is not the highlight.
const MOTION_EMPHASIS: f32 = 4.0;
/// The coarse pass keeps this much around each region the analyser flagged.
const COARSE_PAD_MS: i64 = 5_000;

/// Options of the matching strategies.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchOptions {
    pub unit: UnitKind,
    /// `None`: the space's default.
    pub threshold: Option<f32>,
    /// Points + clips: the transcript's lines are points too.
    pub transcript_points: bool,
    /// Drop still, quiet clips before matching.
    pub prefilter: bool,
    /// Drop clips this similar to the previous kept one (0: off).
    pub dedup_similarity: f32,
    /// Match only around what the analyser's whole-video reading flagged.
    pub coarse: bool,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            unit: UnitKind::Clips,
            threshold: None,
            transcript_points: true,
            prefilter: false,
            dedup_similarity: 0.0,
            coarse: false,
        }
    }
}

/// What the matching strategies stream.
pub trait MatchSink: Send + Sync {
    fn slice(&self, outcome: &SliceOutcome);
    fn points(&self, points: &[Point]);
    fn funnel(&self, funnel: &Funnel);
    fn matched(&self, m: &PointMatch);
}

/// The stored material of one video.
pub struct Video<'a> {
    pub record: &'a VideoRecord,
    pub material: Material<'a>,
    pub transcript: &'a [TranscriptSegment],
}

async fn load_units(engine: &Engine, v: &Video<'_>, kind: UnitKind) -> Result<Vec<Unit>> {
    let (store, id) = (engine.store().clone(), v.record.video_id.clone());
    let looks: Vec<(i64, Option<Vec<f32>>)> = match kind {
        UnitKind::Clips => {
            blocking(move || {
                Ok(store
                    .embeddings(&id, EmbeddingKind::VisualDescriptor)?
                    .into_iter()
                    .map(|(owner, v)| (owner as i64, Some(v)))
                    .collect())
            })
            .await?
        }
        UnitKind::Frames => {
            let looks: Vec<(i64, Option<Vec<f32>>)> = blocking(move || {
                let frames = store.frames(&id)?;
                let vectors = store.embeddings(&id, EmbeddingKind::FrameImage)?;
                Ok(vectors
                    .into_iter()
                    .filter_map(|(owner, v)| frames.get(owner as usize).map(|f| (f.t_ms, Some(v))))
                    .collect())
            })
            .await?;
            if looks.is_empty() {
                return Err(Error::FailedPrecondition(format!(
                    "video {} has no frame embeddings (it was ingested without models.image_embedder); ingest it again with one, or match clips",
                    v.record.video_id
                )));
            }
            looks
        }
    };
    Ok(units::build(
        kind,
        &UnitSource {
            video: v.record,
            windows: v.material.windows,
            cut_points_ms: v.material.cut_points_ms,
            transcript: v.transcript,
            looks,
        },
    ))
}

fn cost(o: &MatchOptions, coarse_regions: Option<Vec<(i64, i64)>>) -> CostOptions {
    CostOptions {
        prefilter: o.prefilter,
        dedup_similarity: o.dedup_similarity,
        coarse_regions: if o.coarse { coarse_regions } else { None },
    }
}

/// The video embeddings of `clips`: those stored by an earlier request, the rest made
/// now (in one call, so a whole grid can go as one job) and stored with the video.
async fn clip_video_vectors(
    engine: &Engine,
    v: &Video<'_>,
    embedder: &dyn VideoEmbedder,
    clips: &[&Unit],
) -> Result<Vec<Vec<f32>>> {
    let (store, id) = (engine.store().clone(), v.record.video_id.clone());
    let dims = embedder.dimensions();
    let mut known: HashMap<u32, Vec<f32>> =
        blocking(move || store.embeddings(&id, EmbeddingKind::ClipVideo))
            .await?
            .into_iter()
            .filter(|(_, vector)| vector.len() == dims)
            .collect();
    let missing: Vec<&Unit> = clips
        .iter()
        .copied()
        .filter(|c| !known.contains_key(&c.index))
        .collect();
    if !missing.is_empty() {
        let spans: Vec<(i64, i64)> = missing.iter().map(|c| (c.start_ms, c.end_ms)).collect();
        let made = embedder
            .embed_spans(v.material.source, v.material.duration_ms, &spans)
            .await?;
        let new: Vec<(u32, Vec<f32>)> = missing.iter().map(|c| c.index).zip(made).collect();
        known.extend(new.iter().cloned());
        let (store, id) = (engine.store().clone(), v.record.video_id.clone());
        blocking(move || store.put_live_embeddings(&id, EmbeddingKind::ClipVideo, &new)).await?;
    }
    Ok(clips
        .iter()
        .map(|c| known.get(&c.index).cloned().unwrap_or_default())
        .collect())
}

/// Points + clips on one video.
pub async fn points_and_clips(
    engine: &Engine,
    v: &Video<'_>,
    o: &MatchOptions,
    sink: &dyn MatchSink,
) -> Result<Vec<Segment>> {
    let providers = engine.providers();
    let image = match o.unit {
        UnitKind::Frames => Some(providers.image_embedder.clone().ok_or_else(|| {
            Error::FailedPrecondition(
                "matching frames needs an image-text embedder: set models.image_embedder (e.g. \"clip:/path/to/clip\") or match clips".into(),
            )
        })?),
        UnitKind::Clips => None,
    };
    let video = match o.unit {
        UnitKind::Clips => providers.video_embedder.clone(),
        UnitKind::Frames => None,
    };
    // The points: the analyser's whole-video reading, then the transcript.
    let on_slice: &(dyn Fn(&SliceOutcome) + Send + Sync) = &|s: &SliceOutcome| sink.slice(s);
    let analysed = strategy::direct(providers.analyzer.as_ref(), &v.material, on_slice).await?;
    let transcriber = v.record.transcriber.clone();
    let points = points::points_from(&analysed, v.transcript, &transcriber, o.transcript_points);
    sink.points(&points);
    let units = load_units(engine, v, o.unit).await?;
    let regions: Vec<(i64, i64)> = analysed
        .iter()
        .map(|s| (s.start_ms - COARSE_PAD_MS, s.end_ms + COARSE_PAD_MS))
        .collect();
    let filtered = units::filter(o.unit, &units, v.material.windows, &cost(o, Some(regions)));
    sink.funnel(&filtered.funnel);
    if points.is_empty() || filtered.kept.is_empty() {
        return Ok(Vec::new());
    }
    let texts: Vec<String> = points.iter().map(|p| p.description.clone()).collect();
    let (point_vectors, unit_vectors, matcher, default_threshold): (
        Vec<Vec<f32>>,
        Vec<Vec<f32>>,
        String,
        f32,
    ) = match (image, video) {
        (_, Some(video)) => {
            // The clips' picture and sound against the points' words, in one space.
            let kept: Vec<&Unit> = filtered.kept.iter().map(|&i| &units[i]).collect();
            let p = video.embed_queries(&texts).await?;
            let u = clip_video_vectors(engine, v, video.as_ref(), &kept).await?;
            (
                p.into_iter().map(|e| e.vector).collect(),
                u,
                video.name().to_string(),
                VIDEO_THRESHOLD,
            )
        }
        (Some(image), None) => {
            let p = image.embed_texts(&texts).await?;
            let u = filtered
                .kept
                .iter()
                .map(|&i| units[i].look.clone().unwrap_or_default())
                .collect();
            (
                p.into_iter().map(|e| e.vector).collect(),
                u,
                image.name().to_string(),
                FRAME_THRESHOLD,
            )
        }
        (None, None) => {
            let embedder = &providers.text_embedder;
            let captions: Vec<String> = filtered
                .kept
                .iter()
                .map(|&i| units[i].caption.clone())
                .collect();
            let p = embedder.embed(&texts, EmbedPurpose::Query).await?;
            let u = embedder.embed(&captions, EmbedPurpose::Index).await?;
            (
                p.into_iter().map(|e| e.vector).collect(),
                u.into_iter().map(|e| e.vector).collect(),
                embedder.name().to_string(),
                CAPTION_THRESHOLD,
            )
        }
    };
    let similarity: Vec<Vec<f32>> = point_vectors
        .iter()
        .map(|p| {
            unit_vectors
                .iter()
                .map(|u| if u.is_empty() { -1.0 } else { dot(p, u) })
                .collect()
        })
        .collect();
    let threshold = o.threshold.unwrap_or(default_threshold);
    let scores = Scores {
        filtered: &filtered,
        similarity: &similarity,
        threshold,
        matcher: &matcher,
    };
    let (segments, matches) = points::resolve(&v.record.video_id, &points, &units, o.unit, &scores);
    for m in &matches {
        sink.matched(m);
    }
    Ok(segments)
}

/// Template: the new video's clips that look like library entries (of `category`, or
/// all), ordered by the category's script when it has one. Returns the segments and
/// whether they are in script order (otherwise the caller orders them).
pub async fn template(
    engine: &Engine,
    v: &Video<'_>,
    category: Option<&str>,
    o: &MatchOptions,
    sink: &dyn MatchSink,
) -> Result<(Vec<Segment>, bool)> {
    if o.unit != UnitKind::Clips {
        return Err(Error::invalid(
            "the template strategy matches clips (library entries are clip looks), not frames",
        ));
    }
    let library = Library::open(engine.store().db())?;
    let category = category.map(super::library::check_category).transpose()?;
    let (lib, cat) = (library.clone(), category.clone());
    let (entries, script) = blocking(move || {
        let entries = lib.list(cat.as_deref())?;
        let script = match &cat {
            Some(c) => lib.script(c)?,
            None => Vec::new(),
        };
        Ok((entries, script))
    })
    .await?;
    if entries.is_empty() {
        return Err(Error::FailedPrecondition(match &category {
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
            priority: super::segments::priority_of_score(e.score),
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
    sink.points(&points);
    let units = load_units(engine, v, UnitKind::Clips).await?;
    // The coarse pass is the analyser's whole-video reading, only when asked.
    let regions = if o.coarse {
        let on_slice: &(dyn Fn(&SliceOutcome) + Send + Sync) = &|s: &SliceOutcome| sink.slice(s);
        let analysed =
            strategy::direct(engine.providers().analyzer.as_ref(), &v.material, on_slice).await?;
        Some(
            analysed
                .iter()
                .map(|s| (s.start_ms - COARSE_PAD_MS, s.end_ms + COARSE_PAD_MS))
                .collect(),
        )
    } else {
        None
    };
    let filtered = units::filter(
        UnitKind::Clips,
        &units,
        v.material.windows,
        &cost(o, regions),
    );
    sink.funnel(&filtered.funnel);
    let own = |e: &LibraryEntry, u: &Unit| {
        e.video_id == v.record.video_id && u.start_ms < e.end_ms && u.end_ms > e.start_ms
    };
    // A past highlight does not match its own footage.
    let similarity: Vec<Vec<f32>> = entries
        .iter()
        .map(|e| {
            filtered
                .kept
                .iter()
                .map(|&i| match &units[i].look {
                    Some(look) if !own(e, &units[i]) && look.len() == e.look.len() => {
                        let look = emphasise_motion(look, MOTION_EMPHASIS);
                        let closest =
                            |l: &Vec<f32>| cosine(&look, &emphasise_motion(l, MOTION_EMPHASIS));
                        if e.clip_looks.is_empty() {
                            closest(&e.look)
                        } else {
                            e.clip_looks.iter().map(closest).fold(-1.0, f32::max)
                        }
                    }
                    _ => -1.0,
                })
                .collect()
        })
        .collect();
    let threshold = o.threshold.unwrap_or(LOOK_THRESHOLD);
    let scores = Scores {
        filtered: &filtered,
        similarity: &similarity,
        threshold,
        matcher: "visual descriptor",
    };
    let (segments, matches) = points::resolve(
        &v.record.video_id,
        &points,
        &units,
        UnitKind::Clips,
        &scores,
    );
    for m in &matches {
        sink.matched(m);
    }
    // Adjacent clips that look like different entries are one highlight-like stretch; it
    // takes the words of the entry matched best inside it.
    let mut segments = super::segments::merge_close(segments, 0);
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
    let embedder = &engine.providers().text_embedder;
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
