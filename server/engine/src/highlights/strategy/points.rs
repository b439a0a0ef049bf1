//! Points + clips: prioritised highlight points (the analyser's whole-video reading and
//! the transcript's lines) matched against the video's 2-3 s clips (or 1 fps frames) in a
//! shared embedding space: the video embedder's (picture and sound), the image-text
//! embedder's (frames) or the text embedder's (clip captions). The cost filters run
//! first.

use reelforge_core::error::{Error, Result};
use reelforge_core::segments::Segment;
use reelforge_core::vector::dot;
use reelforge_core::BoxFuture;
use reelforge_models::EmbedPurpose;

use super::reading::{self, Material, SliceOutcome};
use super::{of_video, one, Context, Defaults, Proposal, Shaping, Strategy};
use crate::catalog::VideoMaterial;
use crate::highlights::matching::{
    clip_video_vectors, load_units, MatchDefaults, MatchOptions, COARSE_PAD_MS, FRAME_THRESHOLD,
    VIDEO_THRESHOLD,
};
use crate::highlights::points::{points_from, resolve, Scores};
use crate::highlights::request::StrategyOptions;
use crate::highlights::units::{self, Unit, UnitKind};
use crate::highlights::HighlightEvent;

pub struct Points;

/// The default threshold of a unit's space.
fn threshold(unit: UnitKind, defaults: &Defaults) -> f32 {
    match unit {
        UnitKind::Frames => FRAME_THRESHOLD,
        UnitKind::Clips if defaults.video_embedder => VIDEO_THRESHOLD,
        UnitKind::Clips => defaults.caption_threshold,
    }
}

/// What Points' options default to.
const DEFAULTS: MatchDefaults = MatchDefaults {
    strategy: "points",
    prefilter: false,
    threshold,
};

impl Strategy for Points {
    fn name(&self) -> &'static str {
        "points"
    }

    fn options(&self, given: &StrategyOptions, defaults: &Defaults) -> Result<StrategyOptions> {
        Ok(MatchOptions::read(given, &DEFAULTS, defaults)?.effective())
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
            let segments = points_and_clips(cx, video, &o).await?;
            Ok(of_video(segments, Shaping::Exclusive, video))
        })
    }
}

/// Points + clips on one video.
async fn points_and_clips(
    cx: &Context<'_>,
    v: &VideoMaterial,
    o: &MatchOptions,
) -> Result<Vec<Segment>> {
    let providers = cx.providers;
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
    let on_slice = |s: &SliceOutcome| (cx.sink)(HighlightEvent::Slice(s.clone()));
    let analysed = reading::direct(
        providers.analyzer.as_ref(),
        &Material::of(v, cx.language),
        &on_slice,
    )
    .await?;
    let points = points_from(
        &analysed,
        &v.transcript,
        &v.video.transcriber,
        o.transcript_points,
    );
    (cx.sink)(HighlightEvent::Points(points.clone()));
    let units = load_units(cx.catalog, v, o.unit, cx.language).await?;
    let regions: Vec<(i64, i64)> = analysed
        .iter()
        .map(|s| (s.start_ms - COARSE_PAD_MS, s.end_ms + COARSE_PAD_MS))
        .collect();
    let filtered = units::filter(o.unit, &units, &v.windows, &o.cost(Some(regions)));
    (cx.sink)(HighlightEvent::Funnel(filtered.funnel.clone()));
    if points.is_empty() || filtered.kept.is_empty() {
        return Ok(Vec::new());
    }
    let texts: Vec<String> = points.iter().map(|p| p.description.clone()).collect();
    let (point_vectors, unit_vectors, matcher): (Vec<Vec<f32>>, Vec<Vec<f32>>, String) =
        match (image, video) {
            (_, Some(video)) => {
                // The clips' picture and sound against the points' words, in one space.
                let kept: Vec<&Unit> = filtered.kept.iter().map(|&i| &units[i]).collect();
                let p = video.embed_queries(&texts).await?;
                let u = clip_video_vectors(cx.catalog, v, video.as_ref(), &kept).await?;
                (
                    p.into_iter().map(|e| e.vector).collect(),
                    u,
                    video.name().to_string(),
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
    let scores = Scores {
        filtered: &filtered,
        similarity: &similarity,
        threshold: o.threshold,
        matcher: &matcher,
    };
    let (segments, matches) = resolve(&v.video.video_id, &points, &units, o.unit, &scores);
    for m in matches {
        (cx.sink)(HighlightEvent::PointMatch(m));
    }
    Ok(segments)
}
