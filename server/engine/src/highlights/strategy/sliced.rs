//! Sliced: N-second slices analysed concurrently, each with the running levels of the
//! video before it; the candidates slicing splits and repeats are merged afterwards.

use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;

use super::reading::{self, Material};
use super::{of_video, one, Context, Defaults, Proposal, Shaping, Strategy};
use crate::catalog::VideoMaterial;
use crate::highlights::request::StrategyOptions;
use crate::highlights::HighlightEvent;

/// Slice length when the request sets none.
const SLICE_SECONDS: f64 = 30.0;
/// Slices analysed at once when the request sets none.
const CONCURRENCY: u32 = 4;
/// Most slices analysed at once.
pub const MAX_CONCURRENCY: u32 = 32;

pub struct Sliced;

impl Strategy for Sliced {
    fn name(&self) -> &'static str {
        "sliced"
    }

    fn options(&self, given: &StrategyOptions, _: &Defaults) -> Result<StrategyOptions> {
        let slice_seconds = given.slice_seconds.unwrap_or(SLICE_SECONDS);
        if !slice_seconds.is_finite() || slice_seconds <= 0.0 {
            return Err(Error::invalid(format!(
                "slice_seconds must be a positive number of seconds, got {slice_seconds}"
            )));
        }
        let concurrency = given.concurrency.unwrap_or(CONCURRENCY);
        if concurrency == 0 || concurrency > MAX_CONCURRENCY {
            return Err(Error::invalid(format!(
                "concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}"
            )));
        }
        Ok(StrategyOptions {
            slice_seconds: Some(slice_seconds),
            concurrency: Some(concurrency),
            fresh: Some(given.fresh.unwrap_or(false)),
            ..StrategyOptions::default()
        })
    }

    fn propose<'a>(
        &'a self,
        cx: &'a Context<'a>,
        video: Option<&'a VideoMaterial>,
        options: &'a StrategyOptions,
    ) -> BoxFuture<'a, Result<Proposal>> {
        Box::pin(async move {
            let video = one(video);
            let duration_ms = video.video.probe.duration_ms;
            let slice_ms = (options.slice_seconds.unwrap_or(SLICE_SECONDS) * 1000.0).round() as i64;
            if slice_ms <= 0 || slice_ms > duration_ms {
                return Err(Error::invalid(format!(
                    "slice_seconds must be above 0 and at most the video's duration ({:.1} s), got {:.1}",
                    duration_ms as f64 / 1000.0,
                    slice_ms as f64 / 1000.0
                )));
            }
            let concurrency = options.concurrency.unwrap_or(CONCURRENCY) as usize;
            let on_slice = |o: &reading::SliceOutcome| (cx.sink)(HighlightEvent::Slice(o.clone()));
            let segments = reading::sliced(
                cx.providers.analyzer.as_ref(),
                &Material::of(video, cx.language).fresh(options.fresh == Some(true)),
                slice_ms,
                concurrency,
                &on_slice,
            )
            .await?;
            Ok(of_video(segments, Shaping::Overlapping, video))
        })
    }
}
