//! Highlight strategies behind one trait, registered in one table. A strategy checks and
//! defaults its own options, then proposes segments; the service around it loads the
//! video, post-processes the proposal and renders. Adding a strategy is one new file here
//! and one line in `STRATEGIES`.

mod direct;
mod points;
pub mod reading;
mod script;
mod sliced;
mod template;

use std::collections::HashMap;

use reelforge_core::error::Result;
use reelforge_core::segments::Segment;
use reelforge_core::BoxFuture;
use reelforge_models::analysis::Language;
use reelforge_models::Providers;

pub use reading::{Material, SliceOutcome};
pub use script::EventMatch;

use super::request::StrategyOptions;
use super::HighlightEvent;
use crate::catalog::{Catalog, VideoMaterial};
use crate::library::Library;
use crate::search::Search;
use crate::store::VideoRecord;

/// Every strategy, by name.
static STRATEGIES: &[&dyn Strategy] = &[
    &direct::Direct,
    &sliced::Sliced,
    &script::Script,
    &points::Points,
    &template::Template,
];

/// The registered strategy called `name`.
pub fn find(name: &str) -> Option<&'static dyn Strategy> {
    STRATEGIES.iter().copied().find(|s| s.name() == name)
}

/// The registered strategies' names.
pub fn names() -> Vec<&'static str> {
    STRATEGIES.iter().map(|s| s.name()).collect()
}

/// What a strategy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The request's one video (loaded, with its signals, by the service).
    Video,
    /// The library (the strategy loads what it needs).
    Library,
}

/// How the service post-processes a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shaping {
    /// Candidates may repeat and overlap (slicing splits and repeats moments): merge
    /// close ones, resolve overlaps by priority, then fit.
    Overlapping,
    /// Each clip already has one owner, nothing overlaps: fit only.
    Exclusive,
    /// The order matters (a script's): each segment shaped alone, the target cuts the
    /// tail.
    InOrder,
}

/// A strategy's segments and how to treat them.
pub struct Proposal {
    pub segments: Vec<Segment>,
    pub shaping: Shaping,
    /// The videos the segments come from.
    pub videos: HashMap<String, VideoRecord>,
}

/// What strategies resolve defaults against: the models configured, and what the
/// request's category has tuned.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// `models.video_embedder` is set (clips are compared by picture and sound).
    pub video_embedder: bool,
    /// The request category's tuned thresholds (`None`: untuned, or no category).
    pub tuning: Option<crate::highlights::matching::Tuning>,
    /// `highlights.language`: what a request that names no language is described in.
    pub language: Language,
    /// The text embedder's threshold for a point's words against a clip's caption
    /// (`TextEmbedder::match_threshold`).
    pub caption_threshold: f32,
}

/// The services and models a strategy may use, and where its events go.
pub struct Context<'a> {
    /// Whose videos and library the strategy may read.
    pub tenant: &'a str,
    /// What the options were resolved against.
    pub defaults: Defaults,
    pub catalog: &'a Catalog,
    pub search: &'a Search,
    pub library: &'a Library,
    pub providers: &'a Providers,
    /// The language the analyser describes what it finds in, and clips are captioned in.
    pub language: Language,
    pub sink: &'a (dyn Fn(HighlightEvent) + Send + Sync),
}

pub trait Strategy: Send + Sync {
    /// The name requests, events and timelines use.
    fn name(&self) -> &'static str;
    fn scope(&self) -> Scope {
        Scope::Video
    }
    /// Checks the request's options for this strategy (without the store) and returns
    /// them with this strategy's defaults filled in; options it does not read are left
    /// out.
    fn options(&self, given: &StrategyOptions, defaults: &Defaults) -> Result<StrategyOptions>;
    /// Proposes segments: of `video` for `Scope::Video`, from the library otherwise.
    /// `options` are what `options` returned.
    fn propose<'a>(
        &'a self,
        cx: &'a Context<'a>,
        video: Option<&'a VideoMaterial>,
        options: &'a StrategyOptions,
    ) -> BoxFuture<'a, Result<Proposal>>;
}

/// The one video of a `Scope::Video` strategy (the service always passes it).
fn one(video: Option<&VideoMaterial>) -> &VideoMaterial {
    video.expect("the service loads the video of a video-scoped strategy")
}

/// A proposal from one video.
fn of_video(segments: Vec<Segment>, shaping: Shaping, video: &VideoMaterial) -> Proposal {
    Proposal {
        segments,
        shaping,
        videos: HashMap::from([(video.video.video_id.clone(), video.video.clone())]),
    }
}
