//! What a highlight leaves behind once its segments are chosen: the reel rendered with
//! ffmpeg (two renders at a time), background music mixed in, a still per segment, and
//! the timeline as JSON, CMX3600 EDL and OpenTimelineIO under `data_dir/highlights/<id>/`
//! (written as `.partial-<id>` and renamed when complete).

use std::collections::HashMap;
use std::path::PathBuf;

use reelforge_core::error::{Error, Result};
use reelforge_core::segments::{self, Fit, Segment};
use reelforge_media::probe::StreamRecord;

use super::export::{Timeline, TimelineClip};
use super::music::{self, MusicOptions, Track};
use super::render::{self, Piece, Shape};
use super::request::HighlightPlan;
use super::{media_of, AnalysisCost, HighlightEvent, HighlightResult, Highlights};
use crate::store::VideoRecord;

/// `thumb-NNN.jpg`: the still of segment NNN (from 001) of a rendered highlight.
pub(super) fn is_thumbnail_name(file: &str) -> bool {
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
    sources: &[(&VideoRecord, StreamRecord)],
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
        if reelforge_media::process::output(cmd, ffmpeg, "making a segment still")
            .await
            .is_ok()
        {
            names.push(name);
        }
    }
    names
}

/// Segments kept in the order given (a script's), each shaped alone; the target cuts the
/// tail.
pub(super) fn fit_in_order(
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
            s.end_ms = s.end_ms.min(s.start_ms.saturating_add(room));
        }
        total += s.duration_ms();
        chosen.push(s);
    }
    chosen
}

/// Chooses a track for the reel and mixes it under the reel's audio, in place.
async fn mix_music(
    h: &Highlights,
    chosen: &[Segment],
    tracks: &[Track],
    options: &MusicOptions,
    reel: &render::Rendered,
    work: &std::path::Path,
    sink: &(dyn Fn(HighlightEvent) + Send + Sync),
) -> Result<()> {
    let descriptions: Vec<String> = chosen.iter().map(|s| s.description.clone()).collect();
    let choice = music::choose(h.providers.text_embedder.as_ref(), tracks, &descriptions).await?;
    let mixed = work.join("reel-music.mp4");
    music::mix(
        &h.ffmpeg,
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

/// Renders (when asked) and writes the files of a highlight whose segments are chosen.
pub(super) async fn finish(o: Outputs<'_>) -> Result<HighlightResult> {
    // Written under a partial name and renamed whole when done, so no caller (and no
    // restart after a crash) ever sees half a highlight.
    let done = o.h.dir(o.highlight_id);
    let dir = o.h.partial_dir(o.highlight_id);
    tokio::fs::create_dir_all(&dir).await?;
    // Renders run two at a time at most: each is an ffmpeg re-encode using every core.
    // Choosing without rendering waits for nothing.
    let outputs = async {
        let _slot = match (&o.req.render, o.chosen.is_empty()) {
            (Some(_), false) => Some(
                o.h.render_slots
                    .acquire()
                    .await
                    .map_err(|_| Error::Unavailable("the server is shutting down".into()))?,
            ),
            _ => None,
        };
        write_outputs(o, &dir).await
    }
    .await;
    let outputs = match outputs {
        Ok(result) => tokio::fs::rename(&dir, &done)
            .await
            .map(|_| result)
            .map_err(Error::from),
        Err(e) => Err(e),
    };
    if outputs.is_err() {
        // Nothing half-made stays behind.
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    outputs
}

/// A highlight whose segments are chosen, for `finish`.
pub(super) struct Outputs<'a> {
    pub h: &'a Highlights,
    pub highlight_id: &'a str,
    pub req: &'a HighlightPlan,
    pub videos: &'a HashMap<String, VideoRecord>,
    pub chosen: Vec<Segment>,
    pub candidates: usize,
    pub cost: AnalysisCost,
    /// The tracks to choose background music from.
    pub music: Option<Vec<Track>>,
    pub sink: &'a (dyn Fn(HighlightEvent) + Send + Sync),
}

/// Renders the reel (when asked) and writes the timeline files into `dir`.
async fn write_outputs(o: Outputs<'_>, dir: &std::path::Path) -> Result<HighlightResult> {
    let Outputs {
        h,
        req,
        videos,
        chosen,
        candidates: count,
        cost,
        music,
        highlight_id,
        sink,
    } = o;
    // Each segment's source; the reel takes the first segment's size and frame rate.
    type Media<'v> = (&'v VideoRecord, StreamRecord);
    let media = |s: &Segment| -> Result<Media<'_>> {
        let video = videos
            .get(&s.video_id)
            .ok_or_else(|| Error::internal(format!("segment of unknown video {}", s.video_id)))?;
        Ok((video, media_of(video)?))
    };
    let fps_of = |stream: &StreamRecord| {
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
            &h.ffmpeg,
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
            (Ok(r), Some(tracks), Some(m)) => mix_music(h, &chosen, &tracks, m, &r, &work, sink)
                .await
                .map(|_| r),
            (r, ..) => r,
        };
        let _ = tokio::fs::remove_dir_all(&work).await;
        let rendered = rendered?;
        files.insert(0, "reel.mp4".to_string());
        files.extend(write_thumbnails(&h.ffmpeg, &sources, &chosen, dir).await);
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
                TimelineClip::new(s, video, stream, fps_of(stream), r)
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
        cost,
    };
    files.push("timeline.json".to_string());
    for format in &req.timelines {
        tokio::fs::write(dir.join(format.file_name()), format.write(&timeline)?).await?;
        files.push(format.file_name().to_string());
    }
    let result = HighlightResult { files, ..result };
    let json = serde_json::json!({ "result": &result, "timeline": &timeline });
    tokio::fs::write(dir.join("timeline.json"), serde_json::to_vec_pretty(&json)?).await?;
    Ok(result)
}
