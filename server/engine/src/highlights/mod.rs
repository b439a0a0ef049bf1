//! The highlights service: a request checked once (`request`), a strategy that proposes
//! segments (`strategy`, one per file behind a trait), the post-processing every strategy
//! shares (merge, resolve by priority, fit: `reelforge_core::segments`), and the reel
//! rendered with its timeline (`outputs`: `render`, `music`, `export`). The matching
//! strategies share `matching`, `units` (clips, frames and the cost filters) and
//! `points` (claiming clips by priority). Each run is a job (`jobs`): an id, a record,
//! a log to watch again, retention. `clips` cuts a stored moment for delivery.

pub mod clips;
pub mod export;
pub mod jobs;
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

pub use matching::{TunedThreshold, Tuning, FRAME_THRESHOLD, LOOK_THRESHOLD, VIDEO_THRESHOLD};
pub use music::MusicChoice;
pub use points::{Point, PointMatch};
pub use request::{HighlightPlan, HighlightRequest, StrategyOptions};
pub use strategy::{EventMatch, SliceOutcome};
pub use units::{Funnel, PrefilterLevels, UnitKind};

use crate::catalog::Catalog;
use crate::config::{EngineConfig, HighlightsConfig};
use crate::library::Library;
use crate::search::Search;
use crate::store::now_unix_ms;
use crate::store::VideoRecord;
use jobs::{
    HighlightHandle, HighlightJobs, HighlightRecord, HighlightState, HighlightWatch, MatchingUsed,
};
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HighlightResult {
    pub highlight_id: String,
    pub strategy: String,
    pub segments: Vec<Segment>,
    pub candidates: usize,
    /// 0 when nothing was rendered.
    pub reel_duration_ms: i64,
    /// Files under the highlight's directory, for `Download`.
    pub files: Vec<String>,
    /// What the analyser's calls cost, and what reusing stored analyses saved.
    #[serde(default)]
    pub cost: AnalysisCost,
}

/// The analyser's calls of one highlight: made (and their cost) and reused from ingest
/// (and what they would have cost again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisCost {
    pub calls: u32,
    pub reused: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub bytes_sent: u64,
    pub saved_input_tokens: u64,
    pub saved_output_tokens: u64,
    pub saved_bytes: u64,
}

impl AnalysisCost {
    /// Counts one slice's reading (a failed one counts as a call, its cost unknown).
    pub fn add(&mut self, o: &SliceOutcome) {
        let u = o.usage.unwrap_or_default();
        if o.reused {
            self.reused += 1;
            self.saved_input_tokens += u.input_tokens;
            self.saved_output_tokens += u.output_tokens;
            self.saved_bytes += u.bytes_sent;
        } else {
            self.calls += 1;
            self.input_tokens += u.input_tokens;
            self.output_tokens += u.output_tokens;
            self.bytes_sent += u.bytes_sent;
        }
    }
}

/// The files a highlight can have, by name.
pub const FILES: [&str; 7] = [
    "reel.mp4",
    "timeline.json",
    "timeline.edl",
    "timeline.otio",
    "timeline.fcpxml",
    "timeline.xml",
    "reel.srt",
];

fn tuning_key(tenant: &str, category: &str) -> Vec<u8> {
    format!("{tenant}\0{category}").into_bytes()
}

/// Name prefix of a highlight directory still being written.
const PARTIAL: &str = ".partial-";

pub struct Highlights {
    /// `data_dir/highlights`.
    root: PathBuf,
    ffmpeg: String,
    ffprobe: String,
    /// Where server-side folders (music) may be read.
    /// Where music may come from, per tenant.
    config: crate::config::EngineConfig,
    catalog: Arc<Catalog>,
    search: Arc<Search>,
    library: Arc<Library>,
    providers: Providers,
    render_slots: Semaphore,
    jobs: HighlightJobs,
    retention: HighlightsConfig,
    /// Each category's tuned defaults (feedback), by tenant and category.
    tunings: sled::Tree,
}

impl Highlights {
    /// The service over `db` (its records) and `data_dir/highlights` (its files);
    /// partial files a crash left are removed and retention runs once.
    pub fn new(
        config: &EngineConfig,
        db: &sled::Db,
        catalog: Arc<Catalog>,
        search: Arc<Search>,
        library: Arc<Library>,
        providers: Providers,
    ) -> Result<Highlights> {
        let h = Highlights {
            root: config.data_dir.join("highlights"),
            ffmpeg: config.ffmpeg.clone(),
            ffprobe: config.ffprobe.clone(),
            config: config.clone(),
            catalog,
            search,
            library,
            providers,
            render_slots: Semaphore::new(RENDERS_AT_ONCE),
            jobs: HighlightJobs::open(db)?,
            retention: config.highlights.clone(),
            tunings: db.open_tree("highlight_tunings")?,
        };
        h.remove_partial();
        h.apply_retention();
        Ok(h)
    }

    /// Starts a planned highlight as a job: recorded before its first event, run to its
    /// end whatever the caller does (a bug that panics fails it with INTERNAL).
    pub fn start(self: &Arc<Self>, plan: HighlightPlan) -> Result<Arc<HighlightHandle>> {
        let highlight_id = uuid::Uuid::new_v4().to_string();
        let video_ids = match plan.strategy.scope() {
            Scope::Video => vec![plan.video_id.clone()],
            Scope::Library => plan.options.video_ids.clone(),
        };
        let handle = self.jobs.begin(HighlightRecord {
            highlight_id: highlight_id.clone(),
            tenant: plan.tenant.clone(),
            key_id: plan.key_id.clone(),
            state: HighlightState::Running,
            strategy: plan.strategy.name().to_string(),
            video_ids,
            created_unix_ms: now_unix_ms(),
            finished_unix_ms: None,
            error: None,
            result: None,
            bytes: 0,
            matching: plan
                .options
                .similarity_threshold
                .map(|threshold| MatchingUsed {
                    unit: plan
                        .options
                        .match_unit
                        .unwrap_or(UnitKind::Clips)
                        .name()
                        .to_string(),
                    threshold,
                    prefilter: plan.options.prefilter.unwrap_or(false),
                }),
            category: plan.options.category.clone(),
        })?;
        let (h, job) = (self.clone(), handle.clone());
        tokio::spawn(async move {
            let (work_h, work_job, id) = (h.clone(), job.clone(), highlight_id.clone());
            let tenant = plan.tenant.clone();
            let work = tokio::spawn(reelforge_models::bedrock::telemetry::for_tenant(
                tenant,
                async move {
                    let sink = |e: HighlightEvent| work_job.emit(e);
                    work_h.run_as(&id, &plan, &sink).await
                },
            ));
            let outcome = match work.await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(highlight = %highlight_id, "highlight task failed: {e}");
                    Err(Error::internal(
                        "the highlight stopped on a server bug; the server's log has the details",
                    ))
                }
            };
            let bytes = dir_bytes(&h.dir(&highlight_id)).await;
            h.jobs.end(&job, &outcome, bytes);
            // Record scans and directory removals: off the async workers.
            let _ = crate::util::blocking(move || {
                h.apply_retention();
                Ok(())
            })
            .await;
        });
        Ok(handle)
    }

    /// Follows a highlight from its first event (see `jobs::HighlightJobs::watch`).
    pub fn watch(&self, tenant: &str, highlight_id: &str) -> Result<HighlightWatch> {
        self.get(tenant, highlight_id)?;
        self.jobs.watch(highlight_id)
    }

    /// `tenant`'s highlight (another tenant's is NOT_FOUND, like one that does not exist).
    pub fn get(&self, tenant: &str, highlight_id: &str) -> Result<HighlightRecord> {
        check_highlight_id(highlight_id)?;
        let record = self.jobs.get(highlight_id)?;
        if record.tenant != tenant {
            return Err(Error::not_found(format!(
                "no highlight with id {highlight_id} (see `reelforge highlights list`)"
            )));
        }
        Ok(record)
    }

    /// One page of the highlights, newest first, optionally only those in `states`.
    pub fn list(
        &self,
        view: &crate::TenantView,
        states: &[HighlightState],
        page_size: i32,
        page_token: &str,
    ) -> Result<reelforge_core::page::Page<HighlightRecord>> {
        use reelforge_core::page::{newest_first, PageRequest};
        let mut names: Vec<String> = states.iter().map(|s| format!("{s:?}")).collect();
        names.sort();
        names.dedup();
        let page = PageRequest::parse(
            page_size,
            page_token,
            &format!("tenant={view} states={names:?}"),
        )?;
        let mut all = self.jobs.all()?;
        all.retain(|r| view.sees(&r.tenant) && (states.is_empty() || states.contains(&r.state)));
        Ok(page.cut(all, |r| {
            format!("{}\n{}", newest_first(r.created_unix_ms), r.highlight_id)
        }))
    }

    /// Adds each tenant's highlights, the bytes of their files and the running ones to
    /// `usage`.
    pub fn usage(
        &self,
        usage: &mut std::collections::BTreeMap<String, crate::store::TenantUsage>,
    ) -> Result<()> {
        for r in self.jobs.all()? {
            let u = usage.entry(r.tenant.clone()).or_default();
            u.highlights += 1;
            u.output_bytes += r.bytes;
            if r.state == HighlightState::Running {
                u.count_running(r.key_id.as_deref());
            }
        }
        Ok(())
    }

    /// Removes a finished highlight: its files, then its record (`HighlightJobs::remove`
    /// refuses a running one).
    pub async fn delete(&self, tenant: &str, highlight_id: &str) -> Result<HighlightRecord> {
        if self.get(tenant, highlight_id)?.state != HighlightState::Running {
            match tokio::fs::remove_dir_all(self.dir(highlight_id)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.jobs.remove(highlight_id)
    }

    /// Removes finished highlights past `[highlights]` limits (age, then total size).
    fn apply_retention(&self) {
        let r = &self.retention;
        let max_age_ms = (r.max_age_days * 86_400_000.0) as i64;
        let expired = match self.jobs.expired(now_unix_ms(), max_age_ms, r.max_bytes) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!("highlight retention: cannot read the records: {e}");
                return;
            }
        };
        for id in expired {
            let _ = std::fs::remove_dir_all(self.dir(&id));
            match self.jobs.remove(&id) {
                Ok(_) => tracing::info!(highlight = %id, "removed by retention"),
                Err(e) => tracing::warn!(highlight = %id, "retention: {e}"),
            }
        }
    }

    /// What strategies resolve their defaults against: the models configured and the
    /// category's tuning.
    fn defaults(&self, tenant: &str, category: Option<&str>) -> Result<Defaults> {
        let tuning = match category.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => self.tuning(tenant, c)?,
            None => None,
        };
        Ok(Defaults {
            video_embedder: self.providers.video_embedder.is_some(),
            tuning,
            language: self.config.highlights.language,
            caption_threshold: self.providers.text_embedder.match_threshold(),
        })
    }

    /// Checks a request for `tenant` and fills in its defaults (the strategies' too, and
    /// what the request's category has tuned for the tenant). The videos it names are
    /// looked up, as the tenant's, when the job runs: another tenant's video fails it
    /// exactly as a missing one does.
    pub async fn plan(&self, tenant: &str, req: &HighlightRequest) -> Result<HighlightPlan> {
        let defaults = self.defaults(tenant, req.options.category.as_deref())?;
        let mut plan = req.validate(self.config.roots_for(tenant), &defaults)?;
        plan.tenant = tenant.to_string();
        Ok(plan)
    }

    /// A strategy's effective options for `given` as a request in `category` would run
    /// them (what feedback compares a tuning against).
    pub fn effective_options(
        &self,
        tenant: &str,
        strategy: &str,
        given: &StrategyOptions,
    ) -> Result<StrategyOptions> {
        let s = strategy::find(strategy)
            .ok_or_else(|| Error::invalid(format!("{strategy:?} is not a highlight strategy")))?;
        s.options(given, &self.defaults(tenant, given.category.as_deref())?)
    }

    /// A category's tuned defaults, if it has been tuned.
    pub fn tuning(&self, tenant: &str, category: &str) -> Result<Option<Tuning>> {
        match self.tunings.get(tuning_key(tenant, category))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| {
                Error::internal(format!("the tuning of {category:?} is unreadable: {e}"))
            })?)),
        }
    }

    /// Stores a category's tuned defaults; later highlights in it start from them.
    pub fn set_tuning(&self, tenant: &str, category: &str, tuning: &Tuning) -> Result<()> {
        let bytes = serde_json::to_vec(tuning).map_err(|e| Error::internal(e.to_string()))?;
        self.tunings.insert(tuning_key(tenant, category), bytes)?;
        self.tunings.flush()?;
        Ok(())
    }

    fn dir(&self, highlight_id: &str) -> PathBuf {
        self.root.join(highlight_id)
    }

    /// Where a highlight's files are written until they are complete.
    fn partial_dir(&self, highlight_id: &str) -> PathBuf {
        self.root.join(format!("{PARTIAL}{highlight_id}"))
    }

    /// Removes what renders a crash interrupted left behind (call at start-up).
    fn remove_partial(&self) {
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
    pub fn artifact(&self, tenant: &str, highlight_id: &str, file: &str) -> Result<PathBuf> {
        self.get(tenant, highlight_id)?;
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

    /// Runs a planned request here and now (no job record: benchmarks, tools); `sink`
    /// gets every event as it happens, `Started` first.
    pub async fn run(
        &self,
        plan: &HighlightPlan,
        sink: &(dyn Fn(HighlightEvent) + Send + Sync),
    ) -> Result<HighlightResult> {
        self.run_as(&uuid::Uuid::new_v4().to_string(), plan, sink)
            .await
    }

    async fn run_as(
        &self,
        highlight_id: &str,
        plan: &HighlightPlan,
        sink: &(dyn Fn(HighlightEvent) + Send + Sync),
    ) -> Result<HighlightResult> {
        let highlight_id = highlight_id.to_string();
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
                    .filter(|m| m.video.tenant == plan.tenant)
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
        // The analyser's calls, counted as their events pass.
        let cost = std::sync::Mutex::new(AnalysisCost::default());
        let counting = |e: HighlightEvent| {
            if let HighlightEvent::Slice(o) = &e {
                cost.lock().expect("cost poisoned").add(o);
            }
            sink(e)
        };
        let sink: &(dyn Fn(HighlightEvent) + Send + Sync) = &counting;
        let cx = Context {
            tenant: &plan.tenant,
            defaults: self.defaults(&plan.tenant, plan.options.category.as_deref())?,
            catalog: &self.catalog,
            search: &self.search,
            library: &self.library,
            providers: &self.providers,
            language: plan.language,
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
            cost: {
                let counted = *cost.lock().expect("cost poisoned");
                counted
            },
            music,
            sink,
        })
        .await
    }
}

fn check_highlight_id(highlight_id: &str) -> Result<()> {
    if uuid::Uuid::parse_str(highlight_id).is_err() {
        return Err(Error::invalid(format!(
            "highlight_id: {highlight_id:?} is not a highlight id (see `reelforge highlights list`)"
        )));
    }
    Ok(())
}

/// Bytes of the files directly in `dir` (0 when it does not exist).
async fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return 0;
    };
    let mut total = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        if let Ok(meta) = entry.metadata().await {
            total += meta.len();
        }
    }
    total
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
