//! `reelforge highlight` (make a reel, with live progress, and fetch its files) and
//! `reelforge eval` (score predicted segments against ground truth; no server needed).

use std::path::{Path, PathBuf};

use crate::Channel;
use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reelforge_core::eval::evaluate;
use reelforge_core::time::parse_time;
use reelforge_proto::v1 as pb;
use reelforge_proto::v1::highlight_client::HighlightClient;

use crate::output::{self, clock};

/// Timelines an editor opens.
#[derive(Clone, Copy, ValueEnum)]
pub enum TimelineArg {
    /// CMX 3600 EDL (timeline.edl): every editor, no media links.
    Edl,
    /// OpenTimelineIO JSON (timeline.otio).
    Otio,
    /// FCPXML 1.9 (timeline.fcpxml): Final Cut Pro, DaVinci Resolve.
    Fcpxml,
    /// Final Cut Pro 7 XML (timeline.xml): Premiere Pro, DaVinci Resolve.
    Xmeml,
}

impl TimelineArg {
    fn proto(self) -> pb::TimelineFormat {
        match self {
            TimelineArg::Edl => pb::TimelineFormat::Edl,
            TimelineArg::Otio => pb::TimelineFormat::Otio,
            TimelineArg::Fcpxml => pb::TimelineFormat::Fcpxml,
            TimelineArg::Xmeml => pb::TimelineFormat::Xmeml,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum StrategyArg {
    /// The analyser reads the whole video at once.
    Direct,
    /// Slices analysed in parallel, merged afterwards.
    Sliced,
    /// `--script` events matched across the library (or the videos named), in order.
    Script,
    /// Prioritised highlight points matched against the video's clips (or frames).
    Points,
    /// Clips that look like entries of the highlight library (`--category`).
    Template,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MatchArg {
    /// The 2-3 s clip grid fixed at ingest: each clip's picture and sound with the
    /// server's models.video_embedder (Nova Multimodal Embeddings), else its caption.
    Clips,
    /// The 1 fps thumbnails (needs the server's models.image_embedder).
    Frames,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SubtitlesArg {
    None,
    Soft,
    Burn,
}

#[derive(Args)]
pub struct HighlightArgs {
    /// The stored video (see `reelforge videos list`); for `--strategy script`, the
    /// videos to draw from (none: the whole library).
    pub videos: Vec<String>,
    #[arg(long, value_enum, default_value = "sliced")]
    pub strategy: StrategyArg,
    /// Sliced: slice length (default: the server's, 30 s).
    #[arg(long)]
    pub slice_seconds: Option<f64>,
    /// Sliced: slices analysed at once (default: the server's, 4).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Reel length to aim for (default: every chosen segment).
    #[arg(long)]
    pub target_seconds: Option<f64>,
    /// Shortest segment kept (default: the server's, 1 s).
    #[arg(long)]
    pub min_seconds: Option<f64>,
    /// Longest segment (default: the server's, 20 s).
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Added before and after each segment (default: none).
    #[arg(long)]
    pub padding: Option<f64>,
    /// Best segments first instead of time order.
    #[arg(long)]
    pub by_score: bool,
    /// Crossfade between segments, in seconds (default: straight cuts).
    #[arg(long)]
    pub crossfade: Option<f64>,
    /// The segments' descriptions as subtitles (default: none).
    #[arg(long, value_enum)]
    pub subtitles: Option<SubtitlesArg>,
    /// Script strategy: what should happen, in order ("a jump, then the crowd cheering").
    #[arg(long)]
    pub script: Option<String>,
    /// Points, template: what points are matched against (default: clips).
    #[arg(long = "match", value_enum)]
    pub match_unit: Option<MatchArg>,
    /// Points, template: similarity a clip needs (default: the space's own).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Points: only the analyser's points, not the transcript's lines.
    #[arg(long)]
    pub no_transcript_points: bool,
    /// Cost: drop still, quiet clips before matching (default: on for template, off for
    /// points).
    #[arg(long, value_name = "BOOL")]
    pub prefilter: Option<bool>,
    /// Cost: the pre-filter's motion level (default: the category's tuned level, else
    /// 0.005).
    #[arg(long)]
    pub prefilter_motion: Option<f32>,
    /// Cost: the pre-filter's loudness level, dB over the video's typical level (default:
    /// the category's tuned level, else 3).
    #[arg(long)]
    pub prefilter_loudness_db: Option<f32>,
    /// Cost: drop clips at least this similar in look to the previous one (e.g. 0.995;
    /// default: off).
    #[arg(long)]
    pub dedup: Option<f32>,
    /// Cost: match only around what the analyser's whole-video reading flagged.
    #[arg(long)]
    pub coarse: bool,
    /// Direct, Sliced: analyse every slice again instead of reusing what ingest stored
    /// with the same model on the same slices.
    #[arg(long)]
    pub fresh: bool,
    /// The language segments are described in: en or zh (default: the server's
    /// highlights.language).
    #[arg(long)]
    pub language: Option<String>,
    /// Background music: a folder of tracks on the server (inside its allowed roots).
    #[arg(long)]
    pub music_dir: Option<String>,
    /// The music's gain under the original audio, 0..1 (default: the server's, 0.3).
    #[arg(long)]
    pub music_volume: Option<f32>,
    /// Points, Template: the category whose tuned defaults apply and where ratings of the
    /// segments go (`rate`, `tune`); Template: also the library category (default: every
    /// entry).
    #[arg(long)]
    pub category: Option<String>,
    /// Choose segments and write timelines only.
    #[arg(long)]
    pub no_render: bool,
    /// Write the reel here (fetched from the server).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write timeline.json and the timeline files (and, for a rendered reel, a still per
    /// segment) into this directory.
    #[arg(long)]
    pub timeline_out: Option<PathBuf>,
    /// The timeline files to write, comma-separated (default: all four).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub timeline_format: Vec<TimelineArg>,
    /// One JSON object per event.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Ground truth: a JSON list of {start, end} (seconds or mm:ss) or {start_ms, end_ms}.
    #[arg(long)]
    pub truth: PathBuf,
    /// Predictions: the same, or a highlight's timeline.json / `highlight --json` output.
    #[arg(long)]
    pub pred: PathBuf,
    /// IoU above which a prediction matches.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    #[arg(long)]
    pub json: bool,
}

fn segment_line(s: &pb::HighlightSegment) -> String {
    format!(
        "{}-{}  p{} {:.2}  {}  [{}]",
        clock(s.start_ms),
        clock(s.end_ms),
        s.priority,
        s.score,
        s.description,
        s.model
    )
}

/// The request as the server runs it, in one line: what the user left to its defaults
/// included.
fn effective_line(r: &pb::HighlightRequest) -> String {
    let strategy = pb::HighlightStrategy::try_from(r.strategy)
        .map_or("unknown", |s| s.as_str_name())
        .trim_start_matches("HIGHLIGHT_STRATEGY_")
        .to_lowercase();
    let mut parts = vec![format!("{strategy} highlight")];
    if r.slice_seconds > 0.0 {
        parts.push(format!(
            "{} s slices, {} at a time",
            r.slice_seconds, r.concurrency
        ));
    }
    if let Some(t) = r.similarity_threshold {
        let unit = pb::MatchUnit::try_from(r.match_unit).map_or("clips", |u| {
            if u == pb::MatchUnit::Frames {
                "frames"
            } else {
                "clips"
            }
        });
        parts.push(format!("{unit} above {t:.2} similarity"));
    }
    parts.push(format!(
        "segments {}-{} s{}",
        r.min_segment_seconds,
        r.max_segment_seconds,
        if r.padding_seconds > 0.0 {
            format!(" padded {} s", r.padding_seconds)
        } else {
            String::new()
        }
    ));
    if r.target_seconds > 0.0 {
        parts.push(format!("aiming at {} s", r.target_seconds));
    }
    parts.push(if r.render == Some(true) {
        "rendered".to_string()
    } else {
        "not rendered".to_string()
    });
    parts.join("; ")
}

pub async fn run(channel: Channel, args: HighlightArgs) -> anyhow::Result<()> {
    let mut client = HighlightClient::new(channel);
    let scripted = matches!(args.strategy, StrategyArg::Script);
    if scripted && args.script.is_none() {
        anyhow::bail!("--strategy script needs --script \"what happens, then what\"");
    }
    if !scripted && args.videos.len() != 1 {
        anyhow::bail!("name exactly one video for --strategy direct, sliced, points or template");
    }
    let req = pb::HighlightRequest {
        video_id: if scripted {
            String::new()
        } else {
            args.videos[0].clone()
        },
        video_ids: if scripted {
            args.videos.clone()
        } else {
            vec![]
        },
        script: args.script.clone().unwrap_or_default(),
        strategy: match args.strategy {
            StrategyArg::Direct => pb::HighlightStrategy::Direct,
            StrategyArg::Sliced => pb::HighlightStrategy::Sliced,
            StrategyArg::Script => pb::HighlightStrategy::Script,
            StrategyArg::Points => pb::HighlightStrategy::Points,
            StrategyArg::Template => pb::HighlightStrategy::Template,
        } as i32,
        // Only what the user set; the server fills in the rest and says what it used
        // in its first event.
        match_unit: match args.match_unit {
            None | Some(MatchArg::Clips) => pb::MatchUnit::Clips,
            Some(MatchArg::Frames) => pb::MatchUnit::Frames,
        } as i32,
        similarity_threshold: args.threshold,
        transcript_points: args.no_transcript_points.then_some(false),
        prefilter: args.prefilter,
        prefilter_motion: args.prefilter_motion,
        prefilter_loudness_db: args.prefilter_loudness_db,
        dedup_similarity: args.dedup.unwrap_or_default(),
        coarse: args.coarse,
        fresh: args.fresh.then_some(true),
        category: args.category.clone().unwrap_or_default(),
        music_dir: args.music_dir.clone().unwrap_or_default(),
        music_volume: args.music_volume.unwrap_or_default(),
        slice_seconds: args.slice_seconds.unwrap_or_default(),
        concurrency: args.concurrency.unwrap_or_default(),
        target_seconds: args.target_seconds.unwrap_or_default(),
        min_segment_seconds: args.min_seconds.unwrap_or_default(),
        max_segment_seconds: args.max_seconds.unwrap_or_default(),
        padding_seconds: args.padding.unwrap_or_default(),
        order_by_score: args.by_score,
        render: args.no_render.then_some(false),
        crossfade_seconds: args.crossfade.unwrap_or_default(),
        subtitles: match args.subtitles {
            None | Some(SubtitlesArg::None) => pb::SubtitleMode::None,
            Some(SubtitlesArg::Soft) => pb::SubtitleMode::Soft,
            Some(SubtitlesArg::Burn) => pb::SubtitleMode::Burn,
        } as i32,
        timeline_formats: args
            .timeline_format
            .iter()
            .map(|f| f.proto() as i32)
            .collect(),
        language: args.language.clone().unwrap_or_default(),
    };
    let mut stream = client.highlight(req).await?.into_inner();
    let bar = ProgressBar::new_spinner();
    if !output::bars(args.json) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    // Lines above the spinner, or plain lines when it is not drawn; none when quiet.
    let say = |line: String| {
        if output::quiet() {
        } else if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut slices = 0;
    let mut done = None;
    while let Some(e) = stream.message().await? {
        if args.json {
            output::json_line(&e)?;
        }
        match e.event {
            Some(pb::highlight_event::Event::Started(s)) if !args.json => {
                say(effective_line(&s.effective.unwrap_or_default()));
            }
            Some(pb::highlight_event::Event::Slice(s)) => {
                slices += 1;
                let what = if s.error.is_empty() {
                    let n = match s.segments.len() {
                        1 => "1 candidate".to_string(),
                        n => format!("{n} candidates"),
                    };
                    match s.reused {
                        true => format!("{n} (reused from ingest)"),
                        false => n,
                    }
                } else {
                    format!("failed: {}", s.error)
                };
                bar.set_message(format!("{slices} slices analysed"));
                if !args.json {
                    say(format!(
                        "slice {} {}-{}: {what}",
                        s.index + 1,
                        clock(s.start_ms),
                        clock(s.end_ms)
                    ));
                }
            }
            Some(pb::highlight_event::Event::Chosen(c)) if !args.json => {
                say(format!(
                    "chosen {} of {} candidates:",
                    c.segments.len(),
                    c.candidates
                ));
                // Numbered as `reelforge rate HIGHLIGHT N good|bad` takes them.
                for (n, s) in c.segments.iter().enumerate() {
                    say(format!("  {:>2}. {}", n + 1, segment_line(s)));
                }
            }
            Some(pb::highlight_event::Event::ScriptMatch(m)) if !args.json => {
                say(match &m.segment {
                    Some(s) => format!(
                        "event {} \"{}\": {} {}-{} ({}, score {:.2})",
                        m.index + 1,
                        m.event,
                        s.video_id,
                        clock(s.start_ms),
                        clock(s.end_ms),
                        m.source,
                        s.score
                    ),
                    None => format!(
                        "event {} \"{}\": no unused footage matches",
                        m.index + 1,
                        m.event
                    ),
                });
            }
            Some(pb::highlight_event::Event::Points(p)) if !args.json => {
                say(format!("{} points:", p.points.len()));
                for p in &p.points {
                    say(format!(
                        "  {} p{} {} [{}]",
                        p.index + 1,
                        p.priority,
                        p.description,
                        p.model
                    ));
                }
            }
            Some(pb::highlight_event::Event::Funnel(f)) if !args.json => {
                say(format!(
                    "{} {}: {} after the pre-filter, {} after dropping near-duplicates, {} compared with the points",
                    f.total, f.unit, f.after_prefilter, f.after_dedup, f.after_coarse
                ));
            }
            Some(pb::highlight_event::Event::PointMatch(m)) => {
                let p = m.point.unwrap_or_default();
                bar.set_message(format!("matched point {}", p.index + 1));
                if !args.json {
                    let spans: Vec<String> = m
                        .segments
                        .iter()
                        .map(|s| format!("{}-{}", clock(s.start_ms), clock(s.end_ms)))
                        .collect();
                    say(format!(
                        "point {}: {} clips above the threshold (best {:.2}), kept {}",
                        p.index + 1,
                        m.clips_above,
                        m.best_similarity,
                        if spans.is_empty() {
                            "none".into()
                        } else {
                            spans.join(", ")
                        }
                    ));
                }
            }
            Some(pb::highlight_event::Event::Music(m)) if !args.json => {
                say(format!(
                    "music: {} (similarity {:.2}: {})",
                    m.track, m.similarity, m.words
                ));
            }
            Some(pb::highlight_event::Event::Render(r)) => {
                bar.set_message(format!(
                    "rendering {}%",
                    100 * r.steps_done / r.steps_total.max(1)
                ));
            }
            Some(pb::highlight_event::Event::Done(d)) => done = Some(d),
            Some(pb::highlight_event::Event::Started(_))
            | Some(pb::highlight_event::Event::Chosen(_))
            | Some(pb::highlight_event::Event::ScriptMatch(_))
            | Some(pb::highlight_event::Event::Points(_))
            | Some(pb::highlight_event::Event::Funnel(_))
            | Some(pb::highlight_event::Event::Music(_))
            | None => {}
        }
    }
    bar.finish_and_clear();
    let done = done.context("the server ended the stream without a result")?;
    if !args.json {
        println!(
            "highlight {}: {} segments, reel {}, files: {}",
            done.highlight_id,
            done.segments.len(),
            if done.reel_duration_ms > 0 {
                clock(done.reel_duration_ms)
            } else {
                "not rendered".into()
            },
            done.files.join(", ")
        );
        if let Some(c) = done
            .cost
            .filter(|c| c.calls + c.reused > 0 && !output::quiet())
        {
            println!(
                "analysis: {} model calls ({} input / {} output tokens, {} bytes sent), {} slices reused from ingest (saved {} / {} tokens, {} bytes)",
                c.calls,
                c.input_tokens,
                c.output_tokens,
                c.bytes_sent,
                c.reused,
                c.saved_input_tokens,
                c.saved_output_tokens,
                c.saved_bytes
            );
        }
    }
    if let Some(out) = &args.out {
        if !done.files.iter().any(|f| f == "reel.mp4") {
            anyhow::bail!("no reel was rendered (no segments chosen, or --no-render)");
        }
        download(&mut client, &done.highlight_id, "reel.mp4", out).await?;
        if !args.json {
            println!("wrote {}", out.display());
        }
    }
    if let Some(dir) = &args.timeline_out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let wanted = |f: &&String| f.starts_with("thumb-") || f.starts_with("timeline.");
        for f in done.files.iter().filter(wanted) {
            download(&mut client, &done.highlight_id, f, &dir.join(f)).await?;
        }
        if !args.json {
            println!("wrote the timeline files into {}", dir.display());
        }
    }
    Ok(())
}

/// Fetches one of a highlight's files to `to` (written beside, then renamed).
async fn download(
    client: &mut HighlightClient<Channel>,
    highlight_id: &str,
    file: &str,
    to: &Path,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stream = client
        .download(pb::DownloadRequest {
            highlight_id: highlight_id.into(),
            file: file.into(),
        })
        .await?
        .into_inner();
    let part = to.with_extension("part");
    let mut out =
        std::fs::File::create(&part).with_context(|| format!("cannot write {}", part.display()))?;
    let (mut got, mut total) = (0i64, 0i64);
    while let Some(chunk) = stream.message().await? {
        out.write_all(&chunk.data)?;
        got += chunk.data.len() as i64;
        total = chunk.total_bytes;
    }
    if got != total {
        anyhow::bail!("{file}: got {got} of {total} bytes");
    }
    out.sync_all()?;
    std::fs::rename(&part, to)?;
    Ok(())
}

/// Reads segments from a truth or prediction file: a list, or an object holding one
/// (`segments`, `highlights`, `truth`, `clips`, `result.segments` of a timeline.json, or
/// `event.done.segments` of `highlight --json`'s last line); each item
/// `{start_ms, end_ms}`, `{start, end}` (seconds or clock) or `[start, end]` (seconds).
pub fn read_segments(path: &Path) -> anyhow::Result<Vec<(i64, i64)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let list = match &json {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) => ["segments", "highlights", "truth", "clips"]
            .iter()
            .find_map(|k| o.get(*k).and_then(|v| v.as_array()))
            .or_else(|| {
                ["/result/segments", "/event/done/segments"]
                    .iter()
                    .find_map(|p| json.pointer(p).and_then(|v| v.as_array()))
            })
            .with_context(|| format!("{}: no `segments` list", path.display()))?,
        _ => anyhow::bail!("{}: expected a list of segments", path.display()),
    };
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |e: String| anyhow::anyhow!("{}: segment {i}: {e}", path.display());
            let (start, end) = if let Some(pair) = item.as_array() {
                match pair.as_slice() {
                    [a, b] => (parse_time(a).map_err(at)?, parse_time(b).map_err(at)?),
                    _ => return Err(at("a pair must be [start, end]".into())),
                }
            } else if let (Some(a), Some(b)) = (item.get("start_ms"), item.get("end_ms")) {
                let ms = |v: &serde_json::Value| {
                    v.as_i64()
                        .ok_or_else(|| at(format!("{v} is not whole milliseconds")))
                };
                (ms(a)?, ms(b)?)
            } else if let (Some(a), Some(b)) = (item.get("start"), item.get("end")) {
                (parse_time(a).map_err(at)?, parse_time(b).map_err(at)?)
            } else {
                return Err(at("needs start/end or start_ms/end_ms".into()));
            };
            if end <= start {
                return Err(at(format!("end {end} ms is not after start {start} ms")));
            }
            Ok((start, end))
        })
        .collect()
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let truth = read_segments(&args.truth)?;
    let pred = read_segments(&args.pred)?;
    if truth.is_empty() {
        anyhow::bail!("{}: no ground-truth segments", args.truth.display());
    }
    let e = evaluate(&truth, &pred, args.threshold);
    if args.json {
        return output::json_line(&e);
    }
    println!(
        "{:<4} {:<17} {:<17} {:>6}  match",
        "#", "truth", "its prediction", "IoU"
    );
    for (i, m) in e.truths.iter().enumerate() {
        println!(
            "{:<4} {:<17} {:<17} {:>6.3}  {}",
            i + 1,
            format!("{}-{}", clock(m.truth.0), clock(m.truth.1)),
            m.prediction
                .map_or("-".into(), |b| format!("{}-{}", clock(b.0), clock(b.1))),
            m.iou,
            if m.matched { "yes" } else { "no" }
        );
    }
    println!();
    println!("| metric | value |\n|---|---|");
    println!("| ground-truth segments | {} |", truth.len());
    println!("| predicted segments | {} |", e.predicted);
    println!("| recall (IoU > {}) | {:.3} |", e.threshold, e.recall);
    println!("| precision | {:.3} |", e.precision);
    println!("| F1 | {:.3} |", e.f1);
    println!("| matched pairs (one to one) | {} |", e.matched);
    println!("| mean IoU of matched pairs | {:.3} |", e.mean_iou);
    Ok(())
}

/// `reelforge highlights ...`: highlights as the jobs they are.
#[derive(clap::Subcommand)]
pub enum HighlightsCommand {
    /// List highlights, newest first.
    List {
        /// Only highlights in this state (repeatable): running, succeeded, failed,
        /// interrupted.
        #[arg(long = "state", value_parser = parse_highlight_state)]
        states: Vec<pb::HighlightState>,
        /// Another tenant's (an admin key), or '*' for every tenant's: adds a TENANT
        /// column.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many (default: all, fetched page by page).
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Show one highlight: state, segments, files.
    Show { highlight_id: String },
    /// Replay a highlight's events and follow it to its end, as JSON lines.
    Watch { highlight_id: String },
    /// Remove a finished highlight's files and record.
    Rm { highlight_id: String },
}

fn highlight_state_name(state: i32) -> String {
    pb::HighlightState::try_from(state)
        .map(|s| s.as_str_name())
        .unwrap_or("HIGHLIGHT_STATE_UNKNOWN")
        .trim_start_matches("HIGHLIGHT_STATE_")
        .to_lowercase()
}

fn parse_highlight_state(text: &str) -> Result<pb::HighlightState, String> {
    pb::HighlightState::from_str_name(&format!("HIGHLIGHT_STATE_{}", text.trim().to_uppercase()))
        .filter(|s| *s != pb::HighlightState::Unspecified)
        .ok_or_else(|| {
            format!(
                "{text:?} is not a highlight state: use running, succeeded, failed or interrupted"
            )
        })
}

fn highlight_json(h: &pb::HighlightInfo) -> serde_json::Value {
    let mut value = serde_json::to_value(h).unwrap_or_default();
    value["state"] = highlight_state_name(h.state).into();
    value
}

pub async fn run_highlights(channel: Channel, command: HighlightsCommand) -> anyhow::Result<()> {
    let mut client = HighlightClient::new(channel);
    match command {
        HighlightsCommand::List {
            states,
            tenant,
            limit,
            json,
        } => {
            let column = output::TenantColumn::new(&tenant);
            let states: Vec<i32> = states.into_iter().map(|s| s as i32).collect();
            let tenant = tenant.unwrap_or_default();
            let all = crate::pages::collect(limit, |page_size, page_token| {
                let (mut client, states, tenant) = (client.clone(), states.clone(), tenant.clone());
                async move {
                    let r = client
                        .list_highlights(pb::ListHighlightsRequest {
                            page_size,
                            page_token,
                            states,
                            tenant,
                        })
                        .await?
                        .into_inner();
                    Ok((r.highlights, r.next_page_token))
                }
            })
            .await?;
            if json {
                return output::json_line(&all.iter().map(highlight_json).collect::<Vec<_>>());
            }
            println!(
                "{}{:<36}  {:<11}  {:<9}  {:>9}  {:>10}  VIDEOS",
                column.head(),
                "HIGHLIGHT",
                "STATE",
                "STRATEGY",
                "REEL",
                "BYTES"
            );
            for h in all {
                let reel = h
                    .result
                    .as_ref()
                    .filter(|r| r.reel_duration_ms > 0)
                    .map_or("-".to_string(), |r| clock(r.reel_duration_ms));
                println!(
                    "{}{:<36}  {:<11}  {:<9}  {:>9}  {:>10}  {}",
                    column.cell(&h.tenant),
                    h.highlight_id,
                    highlight_state_name(h.state),
                    h.strategy,
                    reel,
                    h.bytes,
                    h.video_ids.join(",")
                );
            }
        }
        HighlightsCommand::Show { highlight_id } => {
            let h = client
                .get_highlight(pb::GetHighlightRequest { highlight_id })
                .await?
                .into_inner();
            println!("{}", serde_json::to_string_pretty(&highlight_json(&h))?);
        }
        HighlightsCommand::Watch { highlight_id } => {
            let mut stream = client
                .watch_highlight(pb::WatchHighlightRequest { highlight_id })
                .await?
                .into_inner();
            while let Some(event) = stream.message().await? {
                output::json_line(&event)?;
            }
        }
        HighlightsCommand::Rm { highlight_id } => {
            let h = client
                .delete_highlight(pb::DeleteHighlightRequest { highlight_id })
                .await?
                .into_inner();
            println!("removed highlight {} ({} bytes)", h.highlight_id, h.bytes);
        }
    }
    Ok(())
}
