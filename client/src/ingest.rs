//! `reelforge ingest`: uploads (or names server-side) files and renders the job's event
//! stream as progress bars, result lines, or JSON lines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use reelforge_proto::v1 as pb;
use reelforge_proto::v1::ingest_event::Event;
use tokio::io::AsyncReadExt;
use tokio_stream::StreamExt;

use crate::output::{self, clock};
use crate::Client;

#[derive(Args)]
pub struct IngestArgs {
    /// Video files to ingest.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The paths are on the server's disk (inside its allowed roots): do not upload.
    #[arg(long)]
    server_path: bool,
    /// Re-analyse even if the same bytes were ingested before.
    #[arg(long)]
    force: bool,
    /// Analysis slice length in seconds (server default: 30).
    #[arg(long)]
    slice_seconds: Option<f64>,
    /// Matching clip length in seconds (server default: 2).
    #[arg(long)]
    clip_seconds: Option<f64>,
    /// The language spoken, as the speech model's code (zh, en, ...; `reelforge doctor`
    /// lists the server's); `auto` lets the model tell (server default: ingest.language).
    #[arg(long)]
    language: Option<String>,
    /// Print one JSON object per event on stdout instead of progress bars.
    #[arg(long)]
    json: bool,
}

const CHUNK_BYTES: usize = 256 * 1024;

pub async fn run(client: &mut Client, args: IngestArgs) -> anyhow::Result<()> {
    let options = pb::IngestOptions {
        force: args.force,
        slice_seconds: args.slice_seconds.unwrap_or(0.0),
        clip_seconds: args.clip_seconds.unwrap_or(0.0),
        language: args.language.clone().unwrap_or_default(),
    };
    let bars = MultiProgress::with_draw_target(if output::bars(args.json) {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let mut failures = Vec::new();
    for file in &args.files {
        let result = ingest_one(client, file, &args, options.clone(), &bars).await;
        if let Err(e) = result {
            let line = format!("{}: {}", file.display(), output::one_line(&e));
            if args.json {
                output::json_line(&serde_json::json!({"file": file, "error": line}))?;
            }
            failures.push(line);
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(anyhow::anyhow!(failures.remove(0))),
        n => Err(anyhow::anyhow!(
            "{n} of {} files failed: {}",
            args.files.len(),
            failures.join("; ")
        )),
    }
}

async fn ingest_one(
    client: &mut Client,
    file: &Path,
    args: &IngestArgs,
    options: pb::IngestOptions,
    bars: &MultiProgress,
) -> anyhow::Result<()> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stream = if args.server_path {
        let request = pb::IngestPathRequest {
            path: file.display().to_string(),
            options: Some(options),
        };
        client.ingest_path(request).await?.into_inner()
    } else {
        let upload_bar = bars.add(ProgressBar::no_length());
        let chunks = upload_chunks(file, name.clone(), options, upload_bar.clone()).await?;
        let response = client.ingest_upload(chunks).await;
        upload_bar.finish_and_clear();
        response?.into_inner()
    };
    let mut view = JobView::new(&name, bars, args.json);
    let mut stream = stream;
    while let Some(message) = stream.next().await {
        view.show(message?)?;
    }
    view.finish();
    Ok(())
}

/// The upload as a request stream: a header, then the file in chunks, read as sent.
async fn upload_chunks(
    file: &Path,
    filename: String,
    options: pb::IngestOptions,
    bar: ProgressBar,
) -> anyhow::Result<impl tokio_stream::Stream<Item = pb::UploadChunk>> {
    use pb::upload_chunk::Part;
    let mut f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let meta = f.metadata().await?;
    if meta.is_dir() {
        anyhow::bail!("{} is a directory; give a video file", file.display());
    }
    let size = meta.len();
    bar.set_length(size);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("uploading");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let header = pb::UploadHeader {
            filename,
            size_bytes: size as i64,
            options: Some(options),
        };
        if tx
            .send(pb::UploadChunk {
                part: Some(Part::Header(header)),
            })
            .await
            .is_err()
        {
            return;
        }
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            bar.inc(n as u64);
            if tx
                .send(pb::UploadChunk {
                    part: Some(Part::Data(buf[..n].to_vec())),
                })
                .await
                .is_err()
            {
                break;
            }
        }
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Renders one job's events.
struct JobView<'a> {
    name: String,
    bars: &'a MultiProgress,
    json: bool,
    file_bar: Option<ProgressBar>,
    slice_bar: Option<(ProgressBar, i64, i64)>,
}

impl<'a> JobView<'a> {
    fn new(name: &str, bars: &'a MultiProgress, json: bool) -> Self {
        JobView {
            name: name.to_string(),
            bars,
            json,
            file_bar: None,
            slice_bar: None,
        }
    }

    /// A line above the bars (or plain stdout when there are no bars); none when quiet.
    fn line(&self, text: String) {
        if output::quiet() {
            return;
        }
        self.result(text);
    }

    /// A result line: shown even when quiet.
    fn result(&self, text: String) {
        if self.bars.is_hidden() {
            println!("{text}");
        } else {
            let _ = self.bars.println(text);
        }
    }

    fn show(&mut self, message: pb::IngestEvent) -> anyhow::Result<()> {
        if self.json {
            return output::json_line(&message);
        }
        let Some(event) = message.event else {
            return Ok(());
        };
        match event {
            Event::Accepted(a) => {
                let note = if a.already_ingested {
                    " (already ingested: nothing to do)"
                } else {
                    ""
                };
                let accepted = format!(
                    "{}: video {} job {}{note}",
                    self.name, a.video_id, message.job_id
                );
                if a.already_ingested {
                    self.result(accepted);
                } else {
                    self.line(accepted);
                }
                let bar = self.bars.add(ProgressBar::new(a.slice_count as u64));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:>12} [{bar:30}] {pos}/{len} slices {elapsed}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_message(truncate(&self.name, 12));
                bar.enable_steady_tick(Duration::from_millis(200));
                self.file_bar = Some(bar);
            }
            Event::Probe(p) => {
                let video = p.streams.iter().find(|s| s.kind == "video");
                let audio = p.streams.iter().find(|s| s.kind == "audio");
                self.line(format!(
                    "  probe: {:.1} s, {}{}{}",
                    p.duration_ms as f64 / 1000.0,
                    video
                        .map(|v| format!("{} {}x{} @ {:.2} fps", v.codec, v.width, v.height, v.fps))
                        .unwrap_or_default(),
                    audio
                        .map(|a| format!(", audio {} {} Hz", a.codec, a.sample_rate))
                        .unwrap_or_else(|| ", no audio".into()),
                    format_args!(", {} keyframes", p.keyframe_count),
                ));
            }
            Event::SliceStarted(s) => {
                let bar = self
                    .bars
                    .add(ProgressBar::new((s.end_ms - s.start_ms).max(1) as u64));
                bar.set_style(
                    ProgressStyle::with_template("{msg:>12} [{bar:30}] {percent}%")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.set_message(format!("slice {}", s.index));
                if let Some((old, _, _)) = self.slice_bar.replace((bar, s.start_ms, s.end_ms)) {
                    old.finish_and_clear();
                }
            }
            Event::Progress(p) => {
                if let Some((bar, start, end)) = &self.slice_bar {
                    bar.set_position((p.position_ms.clamp(*start, *end) - start) as u64);
                }
            }
            Event::SliceFinished(f) => {
                let Some(a) = f.analysis else { return Ok(()) };
                if let Some((bar, _, _)) = &self.slice_bar {
                    bar.finish_and_clear();
                }
                if let Some(bar) = &self.file_bar {
                    bar.inc(1);
                }
                self.line(format!(
                    "  slice {:>3} {}-{} score {:.2}  {}",
                    a.index,
                    clock(a.start_ms),
                    clock(a.end_ms),
                    a.highlight_score,
                    a.description
                ));
            }
            Event::SliceTranscript(t) => {
                for s in &t.segments {
                    self.line(format!(
                        "  slice {:>3} transcript {}-{}: {}",
                        t.index,
                        clock(s.start_ms),
                        clock(s.end_ms),
                        s.text
                    ));
                }
            }
            Event::Bda(_) | Event::BdaImported(_) => {}
            Event::Resumed(r) => {
                if let Some(bar) = &self.file_bar {
                    bar.set_position(r.slices_kept as u64);
                }
                self.line(format!(
                    "{}: resumed at slice {} ({})",
                    self.name, r.from_slice, r.reason
                ));
            }
            Event::EmbeddingsStored(e) => {
                self.line(format!(
                    "  stored {} {} embeddings ({} dims)",
                    e.count, e.kind, e.dimensions
                ));
            }
            Event::Done(d) => {
                self.finish();
                if !d.already_ingested {
                    self.result(format!(
                        "{}: done: video {}, {} slices, analysed in {:.1} s ({:.1}x real time)",
                        self.name, d.video_id, d.slice_count, d.analysis_seconds, d.realtime_factor
                    ));
                }
            }
            Event::Error(e) => {
                self.finish();
                // The stream ends with this error as its status, reported by the caller.
                let _ = e;
            }
        }
        Ok(())
    }

    fn finish(&mut self) {
        if let Some((bar, _, _)) = self.slice_bar.take() {
            bar.finish_and_clear();
        }
        if let Some(bar) = self.file_bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}
