//! Direct: the analyser reads the whole video at once (a video longer than it reads well
//! in equal slices within its span).

use reelforge_core::error::Result;
use reelforge_core::BoxFuture;

use super::reading::{self, Material};
use super::{of_video, one, Context, Defaults, Proposal, Shaping, Strategy};
use crate::catalog::VideoMaterial;
use crate::highlights::request::StrategyOptions;
use crate::highlights::HighlightEvent;

pub struct Direct;

impl Strategy for Direct {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn options(&self, given: &StrategyOptions, _: &Defaults) -> Result<StrategyOptions> {
        Ok(StrategyOptions {
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
            let on_slice = |o: &reading::SliceOutcome| (cx.sink)(HighlightEvent::Slice(o.clone()));
            let segments = reading::direct(
                cx.providers.analyzer.as_ref(),
                &Material::of(video, cx.language).fresh(options.fresh == Some(true)),
                &on_slice,
            )
            .await?;
            Ok(of_video(segments, Shaping::Overlapping, video))
        })
    }
}
