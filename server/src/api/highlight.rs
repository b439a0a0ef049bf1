//! `reelforge.v1.Highlight`.

use std::pin::Pin;
use std::sync::Arc;

use reelforge_core::error::Error;
use reelforge_core::segments::Segment;
use reelforge_engine::highlights::export::TimelineFormat;
use reelforge_engine::highlights::jobs::{HighlightRecord, HighlightState, HighlightWatch};
use reelforge_engine::highlights::render::Subtitles;
use reelforge_engine::highlights::{
    HighlightEvent, HighlightPlan, HighlightRequest, HighlightResult, Point, StrategyOptions,
    UnitKind,
};
use reelforge_engine::{Highlights, Limits};
use reelforge_proto::v1 as pb;
use tokio::io::AsyncReadExt;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::status::{bounded, code_for, to_status};
use crate::auth::{audit_target, Caller};
use crate::codes::code_name;

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::HighlightEvent, Status>> + Send>>;
type WatchStream = EventStream;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::FileChunk, Status>> + Send>>;
type ClipStream = Pin<Box<dyn Stream<Item = Result<pb::ClipChunk, Status>> + Send>>;

/// Download chunk size.
const CHUNK_BYTES: usize = 1 << 20;

/// `file` in chunks of `CHUNK_BYTES`, each made into a message by `chunk`, read as the
/// caller takes them; `keep` lives until the stream ends or the caller goes away.
fn stream_file<T: Send + 'static>(
    mut file: tokio::fs::File,
    keep: impl Send + 'static,
    mut chunk: impl FnMut(Vec<u8>) -> T + Send + 'static,
) -> ReceiverStream<Result<T, Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let _keep = keep;
        loop {
            let mut buf = vec![0u8; CHUNK_BYTES];
            match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(chunk(buf))).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(to_status(e.into()))).await;
                    break;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

pub struct HighlightApi {
    highlights: Arc<Highlights>,
    limits: Arc<Limits>,
}

impl HighlightApi {
    pub fn new(highlights: Arc<Highlights>, limits: Arc<Limits>) -> Self {
        HighlightApi { highlights, limits }
    }
}

fn point(p: &Point) -> pb::HighlightPoint {
    pb::HighlightPoint {
        index: p.index,
        priority: p.priority as u32,
        description: p.description.clone(),
        model: p.model.clone(),
        source: p.source.clone(),
        start_ms: p.start_ms,
        end_ms: p.end_ms,
    }
}

/// Zero is proto's "unset": the engine's default.
fn set<T: PartialEq + Default>(value: T) -> Option<T> {
    (value != T::default()).then_some(value)
}

fn strategy_name(value: i32) -> Result<&'static str, Error> {
    Ok(match pb::HighlightStrategy::try_from(value) {
        Ok(pb::HighlightStrategy::Direct) => "direct",
        Ok(pb::HighlightStrategy::Sliced) => "sliced",
        Ok(pb::HighlightStrategy::Script) => "script",
        Ok(pb::HighlightStrategy::Points) => "points",
        Ok(pb::HighlightStrategy::Template) => "template",
        Err(_) => {
            return Err(Error::invalid(format!(
                "strategy {value} is not a highlight strategy"
            )))
        }
    })
}

/// Converts; the engine checks and applies defaults (`Highlights::plan`).
fn request(r: pb::HighlightRequest) -> Result<HighlightRequest, Error> {
    let pb::HighlightRequest {
        video_id,
        strategy,
        slice_seconds,
        concurrency,
        target_seconds,
        min_segment_seconds,
        max_segment_seconds,
        padding_seconds,
        order_by_score,
        render,
        crossfade_seconds,
        subtitles,
        script,
        video_ids,
        match_unit,
        similarity_threshold,
        transcript_points,
        prefilter,
        prefilter_motion,
        prefilter_loudness_db,
        dedup_similarity,
        coarse,
        category,
        music_dir,
        music_volume,
        fresh,
        timeline_formats,
        language,
    } = r;
    let timeline_formats = timeline_formats
        .into_iter()
        .map(|f| match pb::TimelineFormat::try_from(f) {
            Ok(pb::TimelineFormat::Edl) => Ok(TimelineFormat::Edl),
            Ok(pb::TimelineFormat::Otio) => Ok(TimelineFormat::Otio),
            Ok(pb::TimelineFormat::Fcpxml) => Ok(TimelineFormat::Fcpxml),
            Ok(pb::TimelineFormat::Xmeml) => Ok(TimelineFormat::Xmeml),
            _ => Err(Error::invalid(format!(
                "timeline_formats: {f} is not a timeline format (EDL 1, OTIO 2, FCPXML 3, XMEML 4)"
            ))),
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let match_unit = match pb::MatchUnit::try_from(match_unit) {
        Ok(pb::MatchUnit::Clips) => None,
        Ok(pb::MatchUnit::Frames) => Some(UnitKind::Frames),
        Err(_) => {
            return Err(Error::invalid(format!(
                "match_unit {match_unit} is not a match unit"
            )))
        }
    };
    let subtitles = match pb::SubtitleMode::try_from(subtitles) {
        Ok(pb::SubtitleMode::None) => Subtitles::None,
        Ok(pb::SubtitleMode::Soft) => Subtitles::Soft,
        Ok(pb::SubtitleMode::Burn) => Subtitles::Burn,
        Err(_) => {
            return Err(Error::invalid(format!(
                "subtitles {subtitles} is not a subtitle mode"
            )))
        }
    };
    Ok(HighlightRequest {
        video_id,
        strategy: strategy_name(strategy)?.to_string(),
        options: StrategyOptions {
            slice_seconds: set(slice_seconds),
            concurrency: set(concurrency),
            script: set(script),
            events: Vec::new(),
            video_ids,
            match_unit,
            similarity_threshold,
            transcript_points,
            prefilter,
            prefilter_motion,
            prefilter_loudness_db,
            dedup_similarity: set(dedup_similarity),
            coarse: set(coarse),
            category: set(category),
            fresh,
        },
        target_seconds: set(target_seconds),
        min_segment_seconds: set(min_segment_seconds),
        max_segment_seconds: set(max_segment_seconds),
        padding_seconds: set(padding_seconds),
        order_by_score,
        render,
        crossfade_seconds: set(crossfade_seconds),
        subtitles,
        music_dir: set(music_dir),
        music_volume: set(music_volume),
        timeline_formats,
        language: set(language),
    })
}

/// The request as it runs, for the caller to see every default.
fn effective(p: &HighlightPlan) -> pb::HighlightRequest {
    let o = &p.options;
    let seconds = |ms: i64| ms as f64 / 1000.0;
    let strategy = match p.strategy.name() {
        "direct" => pb::HighlightStrategy::Direct,
        "script" => pb::HighlightStrategy::Script,
        "points" => pb::HighlightStrategy::Points,
        "template" => pb::HighlightStrategy::Template,
        _ => pb::HighlightStrategy::Sliced,
    };
    let render = p.render.as_ref();
    let music = render.and_then(|r| r.music.as_ref());
    pb::HighlightRequest {
        video_id: p.video_id.clone(),
        strategy: strategy as i32,
        slice_seconds: o.slice_seconds.unwrap_or_default(),
        concurrency: o.concurrency.unwrap_or_default(),
        target_seconds: p.fit.target_ms.map_or(0.0, seconds),
        min_segment_seconds: seconds(p.fit.min_segment_ms),
        max_segment_seconds: seconds(p.fit.max_segment_ms),
        padding_seconds: seconds(p.fit.padding_ms),
        order_by_score: !p.fit.time_order,
        render: Some(render.is_some()),
        crossfade_seconds: render.map_or(0.0, |r| seconds(r.crossfade_ms)),
        subtitles: match render.map_or(Subtitles::None, |r| r.subtitles) {
            Subtitles::None => pb::SubtitleMode::None,
            Subtitles::Soft => pb::SubtitleMode::Soft,
            Subtitles::Burn => pb::SubtitleMode::Burn,
        } as i32,
        script: o.script.clone().unwrap_or_default(),
        video_ids: o.video_ids.clone(),
        match_unit: match o.match_unit {
            Some(UnitKind::Frames) => pb::MatchUnit::Frames,
            _ => pb::MatchUnit::Clips,
        } as i32,
        similarity_threshold: o.similarity_threshold,
        transcript_points: o.transcript_points,
        prefilter: o.prefilter,
        prefilter_motion: o.prefilter_motion,
        prefilter_loudness_db: o.prefilter_loudness_db,
        dedup_similarity: o.dedup_similarity.unwrap_or_default(),
        coarse: o.coarse.unwrap_or_default(),
        category: o.category.clone().unwrap_or_default(),
        music_dir: music.map_or(String::new(), |m| m.dir.display().to_string()),
        music_volume: music.map_or(0.0, |m| m.volume),
        fresh: o.fresh,
        timeline_formats: p
            .timelines
            .iter()
            .map(|f| match f {
                TimelineFormat::Edl => pb::TimelineFormat::Edl,
                TimelineFormat::Otio => pb::TimelineFormat::Otio,
                TimelineFormat::Fcpxml => pb::TimelineFormat::Fcpxml,
                TimelineFormat::Xmeml => pb::TimelineFormat::Xmeml,
            } as i32)
            .collect(),
        language: p.language.code().to_string(),
    }
}

pub(super) fn segment(s: &Segment) -> pb::HighlightSegment {
    pb::HighlightSegment {
        video_id: s.video_id.clone(),
        start_ms: s.start_ms,
        end_ms: s.end_ms,
        score: s.score,
        priority: s.priority as u32,
        description: s.description.clone(),
        reason: s.reason.clone(),
        model: s.model.clone(),
        similarity: s.similarity,
    }
}

fn event(e: HighlightEvent) -> pb::HighlightEvent {
    use pb::highlight_event::Event;
    let event = match e {
        HighlightEvent::Started { highlight_id, plan } => Event::Started(pb::HighlightStarted {
            highlight_id,
            effective: Some(effective(&plan)),
        }),
        HighlightEvent::Slice(o) => Event::Slice(pb::SliceResult {
            index: o.index,
            start_ms: o.start_ms,
            end_ms: o.end_ms,
            model: o.model,
            error: o.error.unwrap_or_default(),
            segments: o.segments.iter().map(segment).collect(),
            description: o.description,
            usage: o.usage.map(super::convert::usage),
            reused: o.reused,
        }),
        HighlightEvent::Points(points) => Event::Points(pb::HighlightPoints {
            points: points.iter().map(point).collect(),
        }),
        HighlightEvent::Funnel(f) => Event::Funnel(pb::ClipFunnel {
            unit: f.unit,
            total: f.total,
            after_prefilter: f.after_prefilter,
            after_dedup: f.after_dedup,
            after_coarse: f.after_coarse,
        }),
        HighlightEvent::PointMatch(m) => Event::PointMatch(pb::PointMatch {
            point: Some(point(&m.point)),
            clips_above: m.units_above,
            best_similarity: m.best_similarity,
            segments: m.segments.iter().map(segment).collect(),
        }),
        HighlightEvent::ScriptMatch(m) => Event::ScriptMatch(pb::ScriptMatch {
            index: m.index,
            event: m.event,
            segment: m.segment.as_ref().map(segment),
            source: m.source,
            matched_text: m.matched_text,
        }),
        HighlightEvent::Chosen(segments, candidates) => Event::Chosen(pb::ChosenSegments {
            segments: segments.iter().map(segment).collect(),
            candidates: candidates as u32,
        }),
        HighlightEvent::Music(m) => Event::Music(pb::MusicChoice {
            track: m.track.path.display().to_string(),
            similarity: m.similarity,
            words: m.track.words,
        }),
        HighlightEvent::Render { done, total } => Event::Render(pb::RenderProgress {
            steps_done: done,
            steps_total: total,
        }),
    };
    pb::HighlightEvent { event: Some(event) }
}

fn result(r: &HighlightResult) -> pb::HighlightResult {
    pb::HighlightResult {
        highlight_id: r.highlight_id.clone(),
        strategy: r.strategy.clone(),
        segments: r.segments.iter().map(segment).collect(),
        candidates: r.candidates as u32,
        reel_duration_ms: r.reel_duration_ms,
        files: r.files.clone(),
        cost: Some(pb::AnalysisCost {
            calls: r.cost.calls,
            reused: r.cost.reused,
            input_tokens: r.cost.input_tokens,
            output_tokens: r.cost.output_tokens,
            bytes_sent: r.cost.bytes_sent,
            saved_input_tokens: r.cost.saved_input_tokens,
            saved_output_tokens: r.cost.saved_output_tokens,
            saved_bytes: r.cost.saved_bytes,
        }),
    }
}

fn info(r: &HighlightRecord) -> pb::HighlightInfo {
    let (error_code, error) = match &r.error {
        Some((kind, message)) => (code_name(code_for(*kind)).to_string(), message.clone()),
        None => (String::new(), String::new()),
    };
    pb::HighlightInfo {
        highlight_id: r.highlight_id.clone(),
        state: match r.state {
            HighlightState::Running => pb::HighlightState::Running,
            HighlightState::Succeeded => pb::HighlightState::Succeeded,
            HighlightState::Failed => pb::HighlightState::Failed,
            HighlightState::Interrupted => pb::HighlightState::Interrupted,
        } as i32,
        strategy: r.strategy.clone(),
        video_ids: r.video_ids.clone(),
        created_unix_ms: r.created_unix_ms,
        finished_unix_ms: r.finished_unix_ms.unwrap_or(0),
        error_code,
        error,
        result: r.result.as_ref().map(result),
        bytes: r.bytes as i64,
        tenant: r.tenant.clone(),
    }
}

/// Streams a highlight's events to one caller, then `done` or the failure as the
/// stream's status. The highlight does not depend on the caller.
fn stream_highlight(mut watch: HighlightWatch) -> EventStream {
    // Unbounded: a highlight has a bounded number of events (its slices, its render
    // steps), and a slow reader must not lose any.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(e) = watch.next().await {
            if tx.send(Ok(event(e))).is_err() {
                return;
            }
        }
        let last = match watch.outcome() {
            Ok(r) => Ok(pb::HighlightEvent {
                event: Some(pb::highlight_event::Event::Done(result(&r))),
            }),
            Err((kind, message)) => Err(Status::new(code_for(kind), bounded(&message))),
        };
        let _ = tx.send(last);
    });
    Box::pin(UnboundedReceiverStream::new(rx))
}

#[tonic::async_trait]
impl pb::highlight_server::Highlight for HighlightApi {
    type HighlightStream = EventStream;
    type WatchHighlightStream = WatchStream;
    type DownloadStream = ChunkStream;
    type GetClipStream = ClipStream;

    async fn get_clip(
        &self,
        req: Request<pb::GetClipRequest>,
    ) -> Result<Response<Self::GetClipStream>, Status> {
        let tenant = Caller::of(&req).tenant;
        let pb::GetClipRequest {
            video_id,
            start_ms,
            end_ms,
            max_height,
            exact,
        } = req.into_inner();
        if video_id.is_empty() {
            return Err(Status::invalid_argument("video_id is required"));
        }
        let clip = self
            .highlights
            .clip(
                &tenant,
                &video_id,
                reelforge_engine::highlights::clips::ClipRequest {
                    start_ms,
                    end_ms,
                    max_height: (max_height > 0).then_some(max_height),
                    exact,
                },
            )
            .await
            .map_err(to_status)?;
        let file = tokio::fs::File::open(&clip.path)
            .await
            .map_err(|e| to_status(e.into()))?;
        let mut info = Some(pb::ClipInfo {
            video_id: clip.video_id.clone(),
            start_ms: clip.start_ms,
            end_ms: clip.end_ms,
            stream_copy: clip.stream_copy,
            total_bytes: clip.bytes as i64,
            content_type: "video/mp4".into(),
        });
        // The clip (its file removed on drop) is kept until the stream ends or the caller
        // goes away.
        let chunks = stream_file(file, clip, move |data| pb::ClipChunk {
            info: info.take(),
            data,
        });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn highlight(
        &self,
        req: Request<pb::HighlightRequest>,
    ) -> Result<Response<Self::HighlightStream>, Status> {
        let caller = Caller::of(&req);
        let req = request(req.into_inner()).map_err(to_status)?;
        audit_target(format!("video {}", req.video_id));
        let mut plan = self
            .highlights
            .plan(&caller.tenant, &req)
            .await
            .map_err(to_status)?;
        plan.key_id = caller.key_id.clone();
        self.limits
            .admit_job(&caller.admission(), 0)
            .await
            .map_err(to_status)?;
        // A job: it runs to its end even if the caller goes away; its files stay for
        // `Download`, and `WatchHighlight` re-attaches.
        let handle = self.highlights.start(plan).map_err(to_status)?;
        let id = handle.record().highlight_id;
        let watch = self
            .highlights
            .watch(&caller.tenant, &id)
            .map_err(to_status)?;
        Ok(Response::new(stream_highlight(watch)))
    }

    async fn watch_highlight(
        &self,
        req: Request<pb::WatchHighlightRequest>,
    ) -> Result<Response<Self::WatchHighlightStream>, Status> {
        let tenant = Caller::of(&req).tenant;
        let id = req.into_inner().highlight_id;
        let watch = self.highlights.watch(&tenant, &id).map_err(to_status)?;
        Ok(Response::new(stream_highlight(watch)))
    }

    async fn get_highlight(
        &self,
        req: Request<pb::GetHighlightRequest>,
    ) -> Result<Response<pb::HighlightInfo>, Status> {
        let tenant = Caller::of(&req).tenant;
        let record = self
            .highlights
            .get(&tenant, &req.into_inner().highlight_id)
            .map_err(to_status)?;
        Ok(Response::new(info(&record)))
    }

    async fn list_highlights(
        &self,
        req: Request<pb::ListHighlightsRequest>,
    ) -> Result<Response<pb::ListHighlightsResponse>, Status> {
        let caller = Caller::of(&req);
        let pb::ListHighlightsRequest {
            page_size,
            page_token,
            states,
            tenant,
        } = req.into_inner();
        let view = caller.view(&tenant).map_err(to_status)?;
        let states = states
            .iter()
            .enumerate()
            .map(|(i, &s)| match pb::HighlightState::try_from(s) {
                Ok(pb::HighlightState::Running) => Ok(HighlightState::Running),
                Ok(pb::HighlightState::Succeeded) => Ok(HighlightState::Succeeded),
                Ok(pb::HighlightState::Failed) => Ok(HighlightState::Failed),
                Ok(pb::HighlightState::Interrupted) => Ok(HighlightState::Interrupted),
                _ => Err(Status::invalid_argument(format!(
                    "states[{i}]: {s} is not a highlight state (running, succeeded, failed, interrupted)"
                ))),
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let page = self
            .highlights
            .list(&view, &states, page_size, &page_token)
            .map_err(to_status)?;
        Ok(Response::new(pb::ListHighlightsResponse {
            highlights: page.items.iter().map(info).collect(),
            next_page_token: page.next_token,
        }))
    }

    async fn delete_highlight(
        &self,
        req: Request<pb::DeleteHighlightRequest>,
    ) -> Result<Response<pb::HighlightInfo>, Status> {
        let tenant = Caller::of(&req).tenant;
        let highlight_id = req.into_inner().highlight_id;
        audit_target(format!("highlight {highlight_id}"));
        let record = self
            .highlights
            .delete(&tenant, &highlight_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(info(&record)))
    }

    async fn download(
        &self,
        req: Request<pb::DownloadRequest>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        let tenant = Caller::of(&req).tenant;
        let r = req.into_inner();
        let path = self
            .highlights
            .artifact(&tenant, &r.highlight_id, &r.file)
            .map_err(to_status)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| to_status(e.into()))?;
        let total = file
            .metadata()
            .await
            .map_err(|e| to_status(e.into()))?
            .len() as i64;
        let chunks = stream_file(file, (), move |data| pb::FileChunk {
            data,
            total_bytes: total,
        });
        Ok(Response::new(Box::pin(chunks)))
    }
}
