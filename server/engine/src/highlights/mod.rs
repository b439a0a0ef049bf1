//! The highlights service: a request checked once (`request`), a strategy that proposes
//! segments (`strategy`, one per file behind a trait), the post-processing every strategy
//! shares (merge, resolve by priority, fit: `reelforge_core::segments`), and the reel
//! rendered with its timeline (`outputs`: `render`, `music`, `export`). The matching
//! strategies share `matching`, `units` (clips, frames and the cost filters) and
//! `points` (claiming clips by priority).

pub mod export;
mod matching;
pub mod music;
mod outputs;
pub mod points;
pub mod render;
pub mod request;
pub mod strategy;
pub mod units;

use std::path::PathBuf;
use std::sync::Arc;

use reelforge_core::error::{Error, Result};
use reelforge_core::ids::validate_video_id;
use reelforge_core::segments::{self, Segment};
use reelforge_media::probe::StreamRecord;
use reelforge_models::Providers;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

pub use matching::{CAPTION_THRESHOLD, FRAME_THRESHOLD, LOOK_THRESHOLD, VIDEO_THRESHOLD};
pub use music::MusicChoice;
pub use points::{Point, PointMatch};
pub use request::{HighlightPlan, HighlightRequest, StrategyOptions};
pub use strategy::{EventMatch, SliceOutcome};
pub use units::{Funnel, UnitKind};

use crate::catalog::Catalog;
use crate::config::EngineConfig;
use crate::library::Library;
use crate::search::Search;
use crate::store::VideoRecord;
use strategy::{Context, Defaults, Scope, Shaping};

/// Candidates of one video this close merge (slicing splits and repeats moments).
const MERGE_GAP_MS: i64 = 1_000;
/// Renders at once: each is an ffmpeg re-encode using every core.
const RENDERS_AT_ONCE: usize = 2;

#[derive(Debug, Clone)]
pub enum HighlightEvent {
    /// First: the request as it runs, every default filled in, and the highlight's id.
    Started {
        highlight_id: String,
        plan: HighlightPlan,
    },
    Slice(SliceOutcome),
    /// Points, Template: what is matched against the clips.
    Points(Vec<Point>),
    /// Points, Template: how many clips the cost filters left.
    Funnel(Funnel),
    /// Points, Template: how one point (or library entry) matched.
    PointMatch(PointMatch),
    /// Script: how one event was matched.
    ScriptMatch(EventMatch),
    /// The segments chosen after post-processing, and how many candidates there were.
    Chosen(Vec<Segment>, usize),
    Render {
        done: u32,
        total: u32,
    },
    /// The background track chosen for the reel (mixed in after the render).
    Music(MusicChoice),
}

/// What a finished highlight leaves behind (also `timeline.json` beside the reel).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HighlightResult {
    pub highlight_id: String,
    pub strategy: String,
    pub segments: Vec<Segment>,
    pub candidates: usize,
    /// 0 when nothing was rendered.
    pub reel_duration_ms: i64,
    /// Files under the highlight's directory, for `Download`.
    pub files: Vec<String>,
}

/// The files a highlight can have, by name.
pub const FILES: [&str; 5] = [
    "reel.mp4",
    "timeline.json",
    "timeline.edl",
    "timeline.otio",
    "reel.srt",
];

/// Name prefix of a highlight directory still being written.
const PARTIAL: &str = ".partial-";

pub struct Highlights {
    /// `data_dir/highlights`.
    root: PathBuf,
    ffmpeg: String,
    ffprobe: String,
    /// Where server-side folders (music) may be read.
    allowed_roots: Vec<PathBuf>,
    catalog: Arc<Catalog>,
    search: Arc<Search>,
    library: Arc<Library>,
    providers: Providers,
    render_slots: Semaphore,
}

impl Highlights {
    pub fn new(
        config: &EngineConfig,
        catalog: Arc<Catalog>,
        search: Arc<Search>,
        library: Arc<Library>,
        providers: Providers,
    ) -> Highlights {
        Highlights {
            root: config.data_dir.join("highlights"),
            ffmpeg: config.ffmpeg.clone(),
            ffprobe: config.ffprobe.clone(),
            allowed_roots: config.allowed_roots.clone(),
            catalog,
            search,
            library,
            providers,
            render_slots: Semaphore::new(RENDERS_AT_ONCE),
        }
    }

    /// What strategies resolve their defaults against: the models configured.
    fn defaults(&self) -> Defaults {
        Defaults {
            video_embedder: self.providers.video_embedder.is_some(),
        }
    }

    /// Checks a request and fills in its defaults (the strategies' too).
    pub fn plan(&self, req: &HighlightRequest) -> Result<HighlightPlan> {
        req.validate(&self.allowed_roots, &self.defaults())
    }

    fn dir(&self, highlight_id: &str) -> PathBuf {
        self.root.join(highlight_id)
    }

    /// Where a highlight's files are written until they are complete.
    fn partial_dir(&self, highlight_id: &str) -> PathBuf {
        self.root.join(format!("{PARTIAL}{highlight_id}"))
    }

    /// Removes what renders a crash interrupted left behind (call at start-up).
    pub fn remove_partial(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(PARTIAL) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// The path of one of a highlight's files, checked: a known name of an existing
    /// highlight.
    pub fn artifact(&self, highlight_id: &str, file: &str) -> Result<PathBuf> {
        if uuid::Uuid::parse_str(highlight_id).is_err() {
            return Err(Error::invalid(format!(
                "highlight_id: {highlight_id:?} is not a highlight id"
            )));
        }
        if !FILES.contains(&file) && !outputs::is_thumbnail_name(file) {
            return Err(Error::invalid(format!(
                "file: {file:?} is not one of {} or thumb-NNN.jpg",
                FILES.join(", ")
            )));
        }
        let path = self.dir(highlight_id).join(file);
        if !path.is_file() {
            return Err(Error::NotFound(format!(
                "highlight {highlight_id} has no {file}"
            )));
        }
        Ok(path)
    }

    /// Runs a planned request; `sink` gets every event as it happens, `Started` first.
    pub async fn run(
        &self,
        plan: &HighlightPlan,
        sink: &(dyn Fn(HighlightEvent) + Send + Sync),
    ) -> Result<HighlightResult> {
        let highlight_id = uuid::Uuid::new_v4().to_string();
        sink(HighlightEvent::Started {
            highlight_id: highlight_id.clone(),
            plan: plan.clone(),
        });
        // A bad music folder fails the request before any work.
        let music = match plan.render.as_ref().and_then(|r| r.music.as_ref()) {
            Some(m) => Some(music::tracks(&self.ffprobe, &m.dir).await?),
            None => None,
        };
        let video = match plan.strategy.scope() {
            Scope::Library => None,
            Scope::Video => {
                validate_video_id(&plan.video_id)?;
                let material = self
                    .catalog
                    .material(&plan.video_id)
                    .await?
                    .ok_or_else(|| {
                        Error::NotFound(format!(
                            "no video with id {} (see `reelforge videos list`)",
                            plan.video_id
                        ))
                    })?;
                media_of(&material.video)?;
                plan.check_duration(material.video.probe.duration_ms)?;
                Some(material)
            }
        };
        let cx = Context {
            defaults: self.defaults(),
            catalog: &self.catalog,
            search: &self.search,
            library: &self.library,
            providers: &self.providers,
            sink,
        };
        let proposal = plan
            .strategy
            .propose(&cx, video.as_ref(), &plan.options)
            .await?;
        let count = proposal.segments.len();
        let videos = proposal.videos;
        let duration_of = |id: &str| videos.get(id).map_or(0, |v| v.probe.duration_ms);
        let chosen: Vec<Segment> = match proposal.shaping {
            Shaping::InOrder => outputs::fit_in_order(proposal.segments, &plan.fit, &duration_of),
            Shaping::Exclusive => segments::fit(proposal.segments, &plan.fit, &duration_of),
            Shaping::Overlapping => {
                let merged = segments::merge_close(proposal.segments, MERGE_GAP_MS);
                let resolved = segments::resolve_by_priority(merged, plan.fit.min_segment_ms);
                segments::fit(resolved, &plan.fit, &duration_of)
            }
        };
        sink(HighlightEvent::Chosen(chosen.clone(), count));
        outputs::finish(outputs::Outputs {
            h: self,
            highlight_id: &highlight_id,
            req: plan,
            videos: &videos,
            chosen,
            candidates: count,
            music,
            sink,
        })
        .await
    }
}

/// The video stream of a video that has media on this server, or why it cannot be cut.
pub(crate) fn media_of(video: &VideoRecord) -> Result<StreamRecord> {
    let Some(stream) = video.probe.video().cloned() else {
        return Err(Error::FailedPrecondition(format!(
            "video {} has no media on this server (imported from {}); ingest the file to make highlights",
            video.video_id, video.probe.format_name
        )));
    };
    if !std::path::Path::new(&video.source_path).is_file() {
        return Err(Error::FailedPrecondition(format!(
            "the source of video {} ({}) is gone; ingest it again",
            video.video_id, video.source_path
        )));
    }
    Ok(stream)
}
