//! `reelforge videos ...` and `reelforge jobs ...`.

use clap::Subcommand;
use reelforge_proto::v1 as pb;
use tokio_stream::StreamExt;

use crate::output::{self, clock};
use crate::{pages, Client};

#[derive(Subcommand)]
pub enum VideosCommand {
    /// List stored videos, newest first.
    List {
        /// Only videos whose file name contains this (case-insensitive).
        #[arg(long)]
        name: Option<String>,
        /// Only videos ingested since then: how long ago (30m, 12h, 7d) or Unix ms.
        #[arg(long)]
        since: Option<String>,
        /// Only videos ingested before then (same forms as --since).
        #[arg(long)]
        until: Option<String>,
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
    /// Show one video with its slices.
    Show {
        video_id: String,
        /// Include the 0.5 s signal windows.
        #[arg(long)]
        signals: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete a video and everything derived from it.
    Rm { video_ids: Vec<String> },
    /// Read a video's slices again with the server's analyser (e.g. after Nova failed on
    /// some at ingest).
    Reanalyse {
        video_id: String,
        /// Only the slices the analyser failed on.
        #[arg(long)]
        failed: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only jobs in this state (repeatable): queued, running, succeeded, failed,
        /// cancelled, interrupted.
        #[arg(long = "state", value_parser = parse_state)]
        states: Vec<pb::JobState>,
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
    /// Show one job.
    Show {
        job_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Replay a job's events and follow it to its end, as JSON lines.
    Watch { job_id: String },
    /// Cancel a queued or running job.
    Cancel { job_id: String },
}

pub async fn run_videos(client: &mut Client, command: VideosCommand) -> anyhow::Result<()> {
    match command {
        VideosCommand::List {
            name,
            since,
            until,
            tenant,
            limit,
            json,
        } => {
            let column = output::TenantColumn::new(&tenant);
            let bound = |flag: &str, t: Option<String>| -> anyhow::Result<i64> {
                t.map_or(Ok(0), |t| pages::since(flag, &t))
            };
            let request = pb::ListVideosRequest {
                name_contains: name.unwrap_or_default(),
                ingested_after_unix_ms: bound("--since", since)?,
                ingested_before_unix_ms: bound("--until", until)?,
                tenant: tenant.unwrap_or_default(),
                ..Default::default()
            };
            let videos = pages::collect(limit, |page_size, page_token| {
                let (mut client, request) = (client.clone(), request.clone());
                async move {
                    let r = client
                        .list_videos(pb::ListVideosRequest {
                            page_size,
                            page_token,
                            ..request
                        })
                        .await?
                        .into_inner();
                    Ok((r.videos, r.next_page_token))
                }
            })
            .await?;
            if json {
                return output::json_line(&videos);
            }
            println!(
                "{}{:<16}  {:>9}  {:>6}  FILE",
                column.head(),
                "VIDEO",
                "DURATION",
                "SLICES"
            );
            for v in videos {
                println!(
                    "{}{:<16}  {:>9}  {:>6}  {}",
                    column.cell(&v.tenant),
                    v.video_id,
                    clock(v.duration_ms),
                    v.slice_count,
                    v.filename
                );
            }
        }
        VideosCommand::Show {
            video_id,
            signals,
            json,
        } => {
            let request = pb::GetVideoRequest {
                video_id,
                include_signals: signals,
            };
            let video = client.get_video(request).await?.into_inner();
            if json {
                return output::json_line(&video);
            }
            print_video(&video);
        }
        VideosCommand::Rm { video_ids } => {
            if video_ids.is_empty() {
                anyhow::bail!("give the id of at least one video (see `reelforge videos list`)");
            }
            for video_id in video_ids {
                let r = client
                    .delete_video(pb::DeleteVideoRequest { video_id })
                    .await?
                    .into_inner();
                println!("deleted {} ({} records)", r.video_id, r.records_removed);
            }
        }
        VideosCommand::Reanalyse {
            video_id,
            failed,
            json,
        } => {
            let r = client
                .reanalyse_video(pb::ReanalyseVideoRequest {
                    video_id,
                    failed_only: failed,
                })
                .await?
                .into_inner();
            if json {
                return output::json_line(&r);
            }
            println!(
                "{}: {} slices analysed again, {} replaced",
                r.video_id, r.slices_given, r.slices_replaced
            );
            for f in &r.failed {
                println!("slice {} failed again: {}", f.index + 1, f.error);
            }
            if !r.failed.is_empty() {
                anyhow::bail!("{} slices still failed", r.failed.len());
            }
        }
    }
    Ok(())
}

fn print_video(video: &pb::Video) {
    if let Some(s) = &video.summary {
        println!("video    {}", s.video_id);
        println!("file     {}", s.filename);
        println!("source   {}", s.source_path);
        println!("sha256   {}", s.content_sha256);
        println!("duration {} ({} bytes)", clock(s.duration_ms), s.size_bytes);
        println!("analyser {}", s.analyzer);
        if !s.transcriber.is_empty() {
            println!("speech   {}", s.transcriber);
        }
        if !s.summary.is_empty() {
            println!("summary  {}", s.summary);
        }
    }
    for (kind, count) in &video.embedding_counts {
        println!("embeddings {kind}: {count}");
    }
    println!("thumbnails {}", video.frames.len());
    println!();
    for a in &video.slices {
        println!(
            "slice {:>3} {}-{} score {:.2}  {}",
            a.index,
            clock(a.start_ms),
            clock(a.end_ms),
            a.highlight_score,
            a.description
        );
    }
    if !video.transcript.is_empty() {
        println!();
        for t in &video.transcript {
            println!("{}-{}  {}", clock(t.start_ms), clock(t.end_ms), t.text);
        }
    }
    if !video.sounds.is_empty() {
        println!();
        for e in &video.sounds {
            println!(
                "{}-{}  heard {} ({:.2})",
                clock(e.start_ms),
                clock(e.end_ms),
                e.label,
                e.score
            );
        }
    }
    if !video.scenes.is_empty() {
        println!();
        for s in &video.scenes {
            println!(
                "{}-{}  seen {} ({:.2})",
                clock(s.start_ms),
                clock(s.end_ms),
                s.label,
                s.score
            );
        }
    }
    if !video.texts.is_empty() {
        println!();
        for t in &video.texts {
            println!(
                "{}-{}  on screen \"{}\"",
                clock(t.start_ms),
                clock(t.end_ms),
                t.text
            );
        }
    }
    if !video.signals.is_empty() {
        println!();
        println!("{:>8}  {:>8}  {:>7}  cut", "t", "dBFS", "motion");
        for w in &video.signals {
            println!(
                "{:>8}  {:>8.1}  {:>7.4}  {}",
                clock(w.start_ms),
                w.loudness_db,
                w.motion,
                if w.scene_cut { "*" } else { "" }
            );
        }
    }
}

fn state_name(state: i32) -> &'static str {
    pb::JobState::try_from(state)
        .map(|s| s.as_str_name())
        .unwrap_or("JOB_STATE_UNKNOWN")
}

fn job_json(j: &pb::Job) -> serde_json::Value {
    let mut value = serde_json::to_value(j).unwrap_or_default();
    value["state"] = state_name(j.state)
        .trim_start_matches("JOB_STATE_")
        .to_lowercase()
        .into();
    value
}

fn parse_state(text: &str) -> Result<pb::JobState, String> {
    pb::JobState::from_str_name(&format!("JOB_STATE_{}", text.trim().to_uppercase()))
        .filter(|s| *s != pb::JobState::Unspecified)
        .ok_or_else(|| {
            format!(
                "{text:?} is not a job state: use queued, running, succeeded, failed, cancelled or interrupted"
            )
        })
}

pub async fn run_jobs(client: &mut Client, command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::List {
            states,
            tenant,
            limit,
            json,
        } => {
            let column = output::TenantColumn::new(&tenant);
            let states: Vec<i32> = states.into_iter().map(|s| s as i32).collect();
            let tenant = tenant.unwrap_or_default();
            let jobs = pages::collect(limit, |page_size, page_token| {
                let (mut client, states, tenant) = (client.clone(), states.clone(), tenant.clone());
                async move {
                    let r = client
                        .list_jobs(pb::ListJobsRequest {
                            page_size,
                            page_token,
                            states,
                            tenant,
                        })
                        .await?
                        .into_inner();
                    Ok((r.jobs, r.next_page_token))
                }
            })
            .await?;
            if json {
                return output::json_line(&jobs.iter().map(job_json).collect::<Vec<_>>());
            }
            println!(
                "{}{:<36}  {:<12}  {:<16}  {:>7}  FILE",
                column.head(),
                "JOB",
                "STATE",
                "VIDEO",
                "SLICES"
            );
            for j in jobs {
                let state = state_name(j.state)
                    .trim_start_matches("JOB_STATE_")
                    .to_lowercase();
                println!(
                    "{}{:<36}  {:<12}  {:<16}  {:>3}/{:<3}  {}",
                    column.cell(&j.tenant),
                    j.job_id,
                    state,
                    j.video_id,
                    j.slices_done,
                    j.slices_total,
                    j.filename
                );
            }
        }
        JobsCommand::Show { job_id, json } => {
            let j = client
                .get_job(pb::GetJobRequest { job_id })
                .await?
                .into_inner();
            if json {
                return output::json_line(&job_json(&j));
            }
            println!("{}", serde_json::to_string_pretty(&job_json(&j))?);
        }
        JobsCommand::Watch { job_id } => {
            let mut stream = client
                .watch_job(pb::WatchJobRequest { job_id })
                .await?
                .into_inner();
            while let Some(event) = stream.next().await {
                output::json_line(&event?)?;
            }
        }
        JobsCommand::Cancel { job_id } => {
            let j = client
                .cancel_job(pb::CancelJobRequest { job_id })
                .await?
                .into_inner();
            println!("{}", serde_json::to_string(&job_json(&j))?);
        }
    }
    Ok(())
}
