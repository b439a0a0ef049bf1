//! One highlight request from start to end: check it, read the stored video, run the
//! strategy (streaming each slice's result), post-process, render the reel and write its
//! timeline files under `data_dir/highlights/<id>/`.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::export::{self, Timeline, TimelineClip};
use super::matched::{self, MatchOptions, MatchSink};
use super::music::{self, MusicChoice, MusicOptions, Track};
use super::points::{Point, PointMatch};
use super::render::{self, Piece, RenderOptions, Shape};
use super::script::{self, EventMatch};
use super::segments::{self, Fit, Segment};
use super::strategy::{self, Material, SliceOutcome};
use super::units::Funnel;
use crate::error::{Error, Result};
use crate::ingest::{blocking, Engine};

/// Most slices analysed at once.
pub const MAX_CONCURRENCY: usize = 32;
/// Candidates of one video this close merge (slicing splits and repeats moments).
const MERGE_GAP_MS: i64 = 1_000;

#[derive(Debug, Clone, PartialEq)]
pub enum StrategyKind {
    Direct,
    Sliced {
        slice_ms: i64,
        concurrency: usize,
    },
    /// Ordered events matched across `video_ids` (empty: the whole library).
    Script {
        events: Vec<String>,
        video_ids: Vec<String>,
    },
    /// Prioritised points matched against clips or frames.
    Points(MatchOptions),
    /// Clips that look like highlight library entries (of `category`, or all).
    Template {
        category: Option<String>,
        options: MatchOptions,
    },
}

impl StrategyKind {
    pub fn name(&self) -> &'static str {
        match self {
            StrategyKind::Direct => "direct",
            StrategyKind::Sliced { .. } => "sliced",
            StrategyKind::Script { .. } => "script",
            StrategyKind::Points(_) => "points",
            StrategyKind::Template { .. } => "template",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HighlightRequest {
    /// The video (Direct, Sliced); Script uses the strategy's `video_ids`.
    pub video_id: String,
    pub strategy: StrategyKind,
    pub fit: Fit,
    /// `None`: choose segments only, render nothing.
    pub render: Option<RenderOptions>,
}

#[derive(Debug, Clone)]
pub enum HighlightEvent {
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

pub fn highlight_dir(engine: &Engine, highlight_id: &str) -> PathBuf {
    engine
        .config()
        .data_dir
        .join("highlights")
        .join(highlight_id)
}

/// The path of one of a highlight's files, checked: a known name of an existing
/// highlight.
pub fn artifact(engine: &Engine, highlight_id: &str, file: &str) -> Result<PathBuf> {
    if uuid::Uuid::parse_str(highlight_id).is_err() {
        return Err(Error::invalid(format!(
            "highlight_id: {highlight_id:?} is not a highlight id"
        )));
    }
    if !FILES.contains(&file) && !is_thumbnail_name(file) {
        return Err(Error::invalid(format!(
            "file: {file:?} is not one of {} or thumb-NNN.jpg",
            FILES.join(", ")
        )));
    }
    let path = highlight_dir(engine, highlight_id).join(file);
    if !path.is_file() {
        return Err(Error::NotFound(format!(
            "highlight {highlight_id} has no {file}"
        )));
    }
    Ok(path)
}

/// `thumb-NNN.jpg`: the still of segment NNN (from 001) of a rendered highlight.
fn is_thumbnail_name(file: &str) -> bool {
    file.strip_prefix("thumb-")
        .and_then(|r| r.strip_suffix(".jpg"))
        .is_some_and(|n| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn thumbnail_name(index: usize) -> String {
    format!("thumb-{:03}.jpg", index + 1)
}

/// One still per segment (its middle frame, 180 px high), for a caller to preview the
/// reel; a segment whose still cannot be made is skipped.
async fn write_thumbnails(
    ffmpeg: &str,
    sources: &[(
        &crate::store::VideoRecord,
        crate::media::probe::StreamRecord,
    )],
    chosen: &[Segment],
    dir: &std::path::Path,
) -> Vec<String> {
    let mut names = Vec::new();
    for (i, (s, (video, _))) in chosen.iter().zip(sources).enumerate() {
        let name = thumbnail_name(i);
        let middle = (s.start_ms + s.end_ms) as f64 / 2000.0;
        let mut cmd = tokio::process::Command::new(ffmpeg);
        cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
            .args(["-ss", &format!("{middle:.3}"), "-i"])
            .arg(&video.source_path)
            .args(["-frames:v", "1", "-vf", "scale=-2:180", "-q:v", "4"])
            .arg(dir.join(&name));
        if crate::media::process::output(cmd, ffmpeg, "making a segment still")
            .await
            .is_ok()
        {
            names.push(name);
        }
    }
    names
}

/// `duration_ms`: the video's, bounding slices and the target (`None` for Script).
fn check(req: &HighlightRequest, duration_ms: Option<i64>) -> Result<()> {
    let secs = |ms: i64| ms as f64 / 1000.0;
    if let (
        StrategyKind::Sliced {
            slice_ms,
            concurrency,
        },
        Some(duration_ms),
    ) = (&req.strategy, duration_ms)
    {
        let (slice_ms, concurrency) = (*slice_ms, *concurrency);
        if slice_ms <= 0 || slice_ms > duration_ms {
            return Err(Error::invalid(format!(
                "slice_seconds must be above 0 and at most the video's duration ({:.1} s), got {:.1}",
                secs(duration_ms),
                secs(slice_ms)
            )));
        }
        if concurrency == 0 || concurrency > MAX_CONCURRENCY {
            return Err(Error::invalid(format!(
                "concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}"
            )));
        }
    }
    if let StrategyKind::Points(o) | StrategyKind::Template { options: o, .. } = &req.strategy {
        if o.threshold.is_some_and(|t| !(-1.0..=1.0).contains(&t)) {
            return Err(Error::invalid(format!(
                "similarity_threshold must be within -1..1, got {}",
                o.threshold.unwrap_or_default()
            )));
        }
        if !(0.0..=1.0).contains(&o.dedup_similarity) {
            return Err(Error::invalid(format!(
                "dedup_similarity must be within 0..1 (0: off), got {}",
                o.dedup_similarity
            )));
        }
    }
    let f = &req.fit;
    if let Some(t) = f.target_ms {
        let duration_ms = duration_ms.unwrap_or(i64::MAX);
        if t <= 0 || t > duration_ms {
            return Err(Error::invalid(format!(
                "target_seconds must be above 0 and at most the video's duration ({:.1} s), got {:.1}",
                secs(duration_ms),
                secs(t)
            )));
        }
    }
    if f.min_segment_ms <= 0 || f.max_segment_ms < f.min_segment_ms {
        return Err(Error::invalid(format!(
            "segment lengths must satisfy 0 < min_segment_seconds <= max_segment_seconds, got {:.1} and {:.1}",
            secs(f.min_segment_ms),
            secs(f.max_segment_ms)
        )));
    }
    if f.padding_ms < 0 {
        return Err(Error::invalid("padding_seconds must not be negative"));
    }
    if let Some(r) = &req.render {
        if r.crossfade_ms < 0 || r.crossfade_ms * 2 > f.min_segment_ms {
            return Err(Error::invalid(format!(
                "crossfade_seconds must be between 0 and half of min_segment_seconds ({:.1} s)",
                secs(f.min_segment_ms) / 2.0
            )));
        }
    }
    Ok(())
}

/// Runs one request; `sink` gets every event as it happens.
pub async fn run(
    engine: &Engine,
    req: &HighlightRequest,
    sink: &(dyn Fn(HighlightEvent) + Send + Sync),
) -> Result<HighlightResult> {
    // A bad music folder fails the request before any work.
    let music = match req.render.as_ref().and_then(|r| r.music.as_ref()) {
        Some(m) => Some(music::tracks(&engine.config().ffprobe, &m.dir).await?),
        None => None,
    };
    if let StrategyKind::Script { events, video_ids } = &req.strategy {
        return run_script(engine, req, events, video_ids, music, sink).await;
    }
    crate::store::keys::validate_video_id(&req.video_id)
        .map_err(|_| Error::invalid(format!("video_id: {:?} is not a video id", req.video_id)))?;
    let (store, id) = (engine.store().clone(), req.video_id.clone());
    let loaded = blocking(move || {
        let Some(video) = store.video(&id)? else {
            return Ok(None);
        };
        let windows = store.signals(&id)?;
        let cuts: Vec<i64> = store
            .slices(&id)?
            .iter()
            .flat_map(|s| s.cut_points_ms.iter().copied())
            .collect();
        let transcript = store.transcript(&id)?;
        Ok(Some((video, windows, cuts, transcript)))
    })
    .await?;
    let (video, windows, cuts, transcript) = loaded.ok_or_else(|| {
        Error::NotFound(format!(
            "no video with id {} (see `reelforge videos list`)",
            req.video_id
        ))
    })?;
    media_of(&video)?;
    let duration_ms = video.probe.duration_ms;
    check(req, Some(duration_ms))?;
    let source = PathBuf::from(&video.source_path);
    let material = Material {
        video_id: &video.video_id,
        source: &source,
        duration_ms,
        windows: &windows,
        cut_points_ms: &cuts,
    };
    let analyzer = engine.providers().analyzer.clone();
    let on_slice: &(dyn Fn(&SliceOutcome) + Send + Sync) =
        &|o: &SliceOutcome| sink(HighlightEvent::Slice(o.clone()));
    let sink_matches = Sink(sink);
    let mut in_order = false;
    let candidates = match &req.strategy {
        StrategyKind::Direct => strategy::direct(analyzer.as_ref(), &material, on_slice).await?,
        StrategyKind::Points(options) => {
            let v = matched::Video {
                record: &video,
                material,
                transcript: &transcript,
            };
            matched::points_and_clips(engine, &v, options, &sink_matches).await?
        }
        StrategyKind::Template { category, options } => {
            let v = matched::Video {
                record: &video,
                material,
                transcript: &transcript,
            };
            let (segments, ordered) =
                matched::template(engine, &v, category.as_deref(), options, &sink_matches).await?;
            in_order = ordered;
            segments
        }
        StrategyKind::Sliced {
            slice_ms,
            concurrency,
        } => {
            strategy::sliced(
                analyzer.as_ref(),
                &material,
                *slice_ms,
                *concurrency,
                on_slice,
            )
            .await?
        }
        StrategyKind::Script { .. } => unreachable!("handled above"),
    };
    let count = candidates.len();
    let chosen = match &req.strategy {
        // The category's script set the order.
        _ if in_order => fit_in_order(candidates, &req.fit, &|_| duration_ms),
        // Each clip already has one owner: nothing overlaps.
        StrategyKind::Points(_) | StrategyKind::Template { .. } => {
            segments::fit(candidates, &req.fit, &|_| duration_ms)
        }
        _ => {
            let merged = segments::merge_close(candidates, MERGE_GAP_MS);
            let resolved = segments::resolve_by_priority(merged, req.fit.min_segment_ms);
            segments::fit(resolved, &req.fit, &|_| duration_ms)
        }
    };
    sink(HighlightEvent::Chosen(chosen.clone(), count));
    let videos = HashMap::from([(video.video_id.clone(), video)]);
    finish(engine, req, &videos, chosen, count, music, sink).await
}

/// The video stream of a video that has media on this server, or why it cannot be cut.
fn media_of(video: &crate::store::VideoRecord) -> Result<crate::media::probe::StreamRecord> {
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

/// Script: events matched in order across the library (or `video_ids`), one segment each.
async fn run_script(
    engine: &Engine,
    req: &HighlightRequest,
    events: &[String],
    video_ids: &[String],
    music: Option<Vec<Track>>,
    sink: &(dyn Fn(HighlightEvent) + Send + Sync),
) -> Result<HighlightResult> {
    check(req, None)?;
    if events.is_empty() {
        return Err(Error::invalid("script has no events"));
    }
    let library: HashMap<String, crate::store::VideoRecord> = engine
        .videos()
        .await?
        .into_iter()
        .map(|v| (v.video_id.clone(), v))
        .collect();
    for id in video_ids {
        crate::store::keys::validate_video_id(id)
            .map_err(|_| Error::invalid(format!("video_ids: {id:?} is not a video id")))?;
        let video = library.get(id).ok_or_else(|| {
            Error::NotFound(format!(
                "video_ids: no video with id {id} (see `reelforge videos list`)"
            ))
        })?;
        media_of(video)?;
    }
    let usable = |id: &str| library.get(id).is_some_and(|v| media_of(v).is_ok());
    let on_match: &(dyn Fn(&EventMatch) + Send + Sync) =
        &|m: &EventMatch| sink(HighlightEvent::ScriptMatch(m.clone()));
    let matches = script::match_events(engine, events, video_ids, &usable, on_match).await?;
    let matched: Vec<Segment> = matches.into_iter().filter_map(|m| m.segment).collect();
    let count = matched.len();
    let chosen = fit_in_order(matched, &req.fit, &|id| {
        library.get(id).map_or(0, |v| v.probe.duration_ms)
    });
    sink(HighlightEvent::Chosen(chosen.clone(), count));
    finish(engine, req, &library, chosen, count, music, sink).await
}

/// Segments kept in the order given (a script's), each shaped alone; the target cuts the
/// tail.
fn fit_in_order(
    segments: Vec<Segment>,
    fit: &Fit,
    duration_ms: &dyn Fn(&str) -> i64,
) -> Vec<Segment> {
    let mut chosen = Vec::new();
    let mut total = 0;
    for s in segments {
        let duration = duration_ms(&s.video_id);
        let Some(mut s) = segments::shape_one(s, fit, duration) else {
            continue;
        };
        if let Some(target) = fit.target_ms {
            let room = target - total;
            if room < fit.min_segment_ms {
                break;
            }
            s.end_ms = s.end_ms.min(s.start_ms + room);
        }
        total += s.duration_ms();
        chosen.push(s);
    }
    chosen
}

/// Chooses a track for the reel and mixes it under the reel's audio, in place.
async fn mix_music(
    engine: &Engine,
    chosen: &[Segment],
    tracks: &[Track],
    options: &MusicOptions,
    reel: &render::Rendered,
    work: &std::path::Path,
    sink: &(dyn Fn(HighlightEvent) + Send + Sync),
) -> Result<()> {
    let descriptions: Vec<String> = chosen.iter().map(|s| s.description.clone()).collect();
    let choice = music::choose(
        engine.providers().text_embedder.as_ref(),
        tracks,
        &descriptions,
    )
    .await?;
    let mixed = work.join("reel-music.mp4");
    music::mix(
        &engine.config().ffmpeg,
        &reel.path,
        &choice.track.path,
        reel.duration_ms,
        options.volume,
        &mixed,
    )
    .await?;
    tokio::fs::rename(&mixed, &reel.path).await?;
    sink(HighlightEvent::Music(choice));
    Ok(())
}

/// Streams the matching strategies' events.
struct Sink<'a>(&'a (dyn Fn(HighlightEvent) + Send + Sync));

impl MatchSink for Sink<'_> {
    fn slice(&self, outcome: &SliceOutcome) {
        (self.0)(HighlightEvent::Slice(outcome.clone()))
    }
    fn points(&self, points: &[Point]) {
        (self.0)(HighlightEvent::Points(points.to_vec()))
    }
    fn funnel(&self, funnel: &Funnel) {
        (self.0)(HighlightEvent::Funnel(funnel.clone()))
    }
    fn matched(&self, m: &PointMatch) {
        (self.0)(HighlightEvent::PointMatch(m.clone()))
    }
}

/// Renders (when asked) and writes the files of a highlight whose segments are chosen.
async fn finish(
    engine: &Engine,
    req: &HighlightRequest,
    videos: &HashMap<String, crate::store::VideoRecord>,
    chosen: Vec<Segment>,
    count: usize,
    music: Option<Vec<Track>>,
    sink: &(dyn Fn(HighlightEvent) + Send + Sync),
) -> Result<HighlightResult> {
    let highlight_id = uuid::Uuid::new_v4().to_string();
    let dir = highlight_dir(engine, &highlight_id);
    tokio::fs::create_dir_all(&dir).await?;
    // Renders run two at a time at most: each is an ffmpeg re-encode using every core.
    // Choosing without rendering waits for nothing.
    let outputs = async {
        let _slot = match (&req.render, chosen.is_empty()) {
            (Some(_), false) => Some(
                RENDER_SLOTS
                    .acquire()
                    .await
                    .map_err(|_| Error::Unavailable("the server is shutting down".into()))?,
            ),
            _ => None,
        };
        write_outputs(Outputs {
            engine,
            req,
            videos,
            chosen,
            candidates: count,
            music,
            highlight_id: &highlight_id,
            dir: &dir,
            sink,
        })
        .await
    }
    .await;
    if outputs.is_err() {
        // Nothing half-made stays behind.
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    outputs
}

static RENDER_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// What `write_outputs` needs.
struct Outputs<'a> {
    engine: &'a Engine,
    req: &'a HighlightRequest,
    videos: &'a HashMap<String, crate::store::VideoRecord>,
    chosen: Vec<Segment>,
    candidates: usize,
    /// The tracks to choose background music from.
    music: Option<Vec<Track>>,
    highlight_id: &'a str,
    dir: &'a std::path::Path,
    sink: &'a (dyn Fn(HighlightEvent) + Send + Sync),
}

/// Renders the reel (when asked) and writes the timeline files into `o.dir`.
async fn write_outputs(o: Outputs<'_>) -> Result<HighlightResult> {
    let Outputs {
        engine,
        req,
        videos,
        chosen,
        candidates: count,
        music,
        highlight_id,
        dir,
        sink,
    } = o;
    // Each segment's source; the reel takes the first segment's size and frame rate.
    type Media<'v> = (
        &'v crate::store::VideoRecord,
        crate::media::probe::StreamRecord,
    );
    let media = |s: &Segment| -> Result<Media<'_>> {
        let video = videos
            .get(&s.video_id)
            .ok_or_else(|| Error::internal(format!("segment of unknown video {}", s.video_id)))?;
        Ok((video, media_of(video)?))
    };
    let fps_of = |stream: &crate::media::probe::StreamRecord| {
        if stream.fps > 0.0 {
            stream.fps
        } else {
            25.0
        }
    };
    let sources: Vec<Media> = chosen.iter().map(media).collect::<Result<_>>()?;
    let fps = sources.first().map_or(25.0, |(_, st)| fps_of(st));
    let durations: Vec<i64> = chosen.iter().map(Segment::duration_ms).collect();
    let mut files = Vec::new();
    let mut reel_duration_ms = 0;
    let mut crossfade_ms = 0;
    if let (Some(options), Some((_, stream))) = (&req.render, sources.first()) {
        let pieces: Vec<Piece> = chosen
            .iter()
            .zip(&sources)
            .map(|(s, (video, _))| Piece {
                segment: s.clone(),
                source: PathBuf::from(&video.source_path),
                has_audio: video.probe.has_audio(),
            })
            .collect();
        let shape = Shape {
            width: stream.width,
            height: stream.height,
            fps,
        };
        let work = dir.join("work");
        let progress: &(dyn Fn(u32, u32) + Send + Sync) =
            &|done, total| sink(HighlightEvent::Render { done, total });
        let rendered = render::render(
            &engine.config().ffmpeg,
            &pieces,
            shape,
            options,
            &work,
            &dir.join("reel.mp4"),
            progress,
        )
        .await;
        let srt = work.join("reel.srt");
        if srt.is_file() {
            tokio::fs::rename(&srt, dir.join("reel.srt")).await?;
            files.push("reel.srt".to_string());
        }
        let rendered = match (rendered, music, &options.music) {
            (Ok(r), Some(tracks), Some(m)) => {
                mix_music(engine, &chosen, &tracks, m, &r, &work, sink)
                    .await
                    .map(|_| r)
            }
            (r, ..) => r,
        };
        let _ = tokio::fs::remove_dir_all(&work).await;
        let rendered = rendered?;
        files.insert(0, "reel.mp4".to_string());
        files.extend(write_thumbnails(&engine.config().ffmpeg, &sources, &chosen, dir).await);
        reel_duration_ms = rendered.duration_ms;
        crossfade_ms = options.crossfade_ms;
    }
    // The render placed the pieces by the same rule.
    let (record_starts, duration_ms) = render::timeline(&durations, crossfade_ms);
    let timeline = Timeline {
        highlight_id: highlight_id.to_string(),
        strategy: req.strategy.name().to_string(),
        clips: chosen
            .iter()
            .zip(&sources)
            .zip(&record_starts)
            .map(|((s, (video, stream)), &r)| {
                TimelineClip::new(
                    s,
                    &video.filename,
                    &video.source_path,
                    r,
                    fps_of(stream),
                    video.probe.has_audio(),
                )
            })
            .collect(),
        crossfade_ms,
        duration_ms,
        fps,
    };
    let result = HighlightResult {
        highlight_id: highlight_id.to_string(),
        strategy: req.strategy.name().to_string(),
        segments: chosen,
        candidates: count,
        reel_duration_ms,
        files: Vec::new(),
    };
    tokio::fs::write(dir.join("timeline.edl"), export::edl(&timeline)).await?;
    tokio::fs::write(
        dir.join("timeline.otio"),
        serde_json::to_vec_pretty(&export::otio(&timeline))?,
    )
    .await?;
    files.extend(["timeline.json", "timeline.edl", "timeline.otio"].map(String::from));
    let result = HighlightResult { files, ..result };
    let json = serde_json::json!({ "result": &result, "timeline": &timeline });
    tokio::fs::write(dir.join("timeline.json"), serde_json::to_vec_pretty(&json)?).await?;
    Ok(result)
}
