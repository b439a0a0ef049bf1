//! `reelforge`: the command-line client. Talks to a reelforge-server over gRPC.

mod clip;
mod connect;
mod doctor;
mod feedback;
mod highlight;
mod ingest;
mod keys;
mod library;
mod output;
mod pages;
mod search;
mod videos;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
pub use connect::Channel;
use reelforge_proto::v1::ingest_client::IngestClient;

#[derive(Parser)]
#[command(
    name = "reelforge",
    version,
    about = "Turn videos into highlight reels and a searchable index of moments"
)]
struct Cli {
    #[command(flatten)]
    connect: connect::ConnectArgs,
    /// No progress and no per-event lines: only results and errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest video files: upload them (default) or name files on the server's disk.
    Ingest(ingest::IngestArgs),
    /// Stored videos.
    Videos {
        #[command(subcommand)]
        command: videos::VideosCommand,
    },
    /// Ingest jobs.
    Jobs {
        #[command(subcommand)]
        command: videos::JobsCommand,
    },
    /// Find moments by a description, a line of dialogue or a scene.
    Search(search::SearchArgs),
    /// Make a highlight reel of a stored video (live progress; --out fetches the reel).
    // Boxed: its many flags make it far the largest variant.
    Highlight(Box<highlight::HighlightArgs>),
    /// A moment of a stored video as a playable MP4 (e.g. `clip VIDEO 20-30 --out m.mp4`).
    Clip(clip::ClipArgs),
    /// Rate a highlight segment (`rate HIGHLIGHT 2 good`) or a search hit (`rate --hit
    /// VIDEO 20-30 bad --category C`); ratings tune the category (`tune`).
    Rate(feedback::RateArgs),
    /// Tune a category's matching defaults from its ratings: before and after, and what
    /// it would have changed on the rated set (`--apply` keeps it).
    Tune(feedback::TuneArgs),
    /// Highlights made before: list, show, watch again, remove.
    Highlights {
        #[command(subcommand)]
        command: highlight::HighlightsCommand,
    },
    /// The highlight library the template strategy matches against.
    Library {
        #[command(subcommand)]
        command: library::LibraryCommand,
    },
    /// Score predicted highlight segments against ground truth (recall, precision, F1,
    /// IoU); needs no server.
    Eval(highlight::EvalArgs),
    /// Run the server's Bedrock Data Automation project on a stored video and import what
    /// it finds (summaries, chapters, transcripts) as searchable documents.
    RunBda {
        /// The stored video.
        video: String,
    },
    /// API keys (an admin key): create, list, revoke; `whoami` for any key.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Every tenant (an admin key): keys, videos, bytes kept, jobs running and Bedrock
    /// spending today, against its limits.
    Tenants {
        #[arg(long)]
        json: bool,
    },
    /// Check the server address, TLS, the API key, the server's models and its ffmpeg;
    /// says what to fix (exit status 1 when a check fails).
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: `reelforge completions bash > /etc/bash_completion.d/reelforge`,
    /// zsh into a directory on $fpath as `_reelforge`, fish into
    /// ~/.config/fish/completions/reelforge.fish.
    Completions { shell: clap_complete::Shell },
    /// Import a Bedrock Data Automation result.json (summaries, chapters, transcripts).
    ImportBda {
        /// The result.json file.
        file: std::path::PathBuf,
        /// The stored video it describes (default: a video record of its own).
        #[arg(long)]
        video: Option<String>,
    },
}

pub type Client = IngestClient<Channel>;

/// Largest message the client accepts (a video with many slices and signals is big).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    output::set_quiet(cli.quiet);
    let addr = cli.connect.addr.clone();
    let result = async {
        let command = match cli.command {
            Command::Eval(args) => return highlight::eval(args),
            Command::Doctor { json } => return doctor::run(&cli.connect, json).await,
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "reelforge",
                    &mut std::io::stdout(),
                );
                return Ok(());
            }
            other => other,
        };
        let channel = connect::connect(&cli.connect).await?;
        let mut client =
            IngestClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES);
        match command {
            Command::Search(args) => search::run(channel, args).await,
            Command::Highlight(args) => highlight::run(channel, *args).await,
            Command::Clip(args) => clip::run(channel, args).await,
            Command::Rate(args) => feedback::rate(channel, args).await,
            Command::Tune(args) => feedback::tune(channel, args).await,
            Command::Highlights { command } => highlight::run_highlights(channel, command).await,
            Command::Library { command } => library::run(channel, command).await,
            Command::Keys { command } => keys::run(channel, command).await,
            Command::Tenants { json } => keys::tenants(channel, json).await,
            Command::Eval(_) | Command::Doctor { .. } | Command::Completions { .. } => {
                unreachable!("handled before connecting")
            }
            Command::RunBda { video } => {
                use reelforge_proto::v1::ingest_event::Event;
                let mut stream = client
                    .run_bda(reelforge_proto::v1::RunBdaRequest { video_id: video })
                    .await?
                    .into_inner();
                while let Some(e) = stream.message().await? {
                    match e.event {
                        _ if output::quiet() && !matches!(e.event, Some(Event::BdaImported(_))) => {
                        }
                        Some(Event::Accepted(a)) => {
                            eprintln!("job {}: Data Automation on {}", e.job_id, a.filename)
                        }
                        Some(Event::Bda(p)) if p.stage == "running" => eprintln!(
                            "  {} after {:.0} s",
                            p.detail.to_lowercase(),
                            p.elapsed_ms as f64 / 1000.0
                        ),
                        Some(Event::Bda(p)) => eprintln!("  {}: {}", p.stage, p.detail),
                        Some(Event::BdaImported(i)) => println!(
                            "Data Automation found {} documents for video {}",
                            i.documents, i.video_id
                        ),
                        _ => {}
                    }
                }
                Ok(())
            }
            Command::ImportBda { file, video } => {
                let json = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let reply = client
                    .import_bda(reelforge_proto::v1::ImportBdaRequest {
                        result_json: json,
                        video_id: video.unwrap_or_default(),
                    })
                    .await?
                    .into_inner();
                println!(
                    "imported {} documents into video {}{}",
                    reply.documents,
                    reply.video_id,
                    if reply.created { " (new record)" } else { "" }
                );
                Ok(())
            }
            Command::Ingest(args) => ingest::run(&mut client, args).await,
            Command::Videos { command } => videos::run_videos(&mut client, command).await,
            Command::Jobs { command } => videos::run_jobs(&mut client, command).await,
        }
    }
    .await;
    if let Err(e) = result {
        let mut line = output::one_line(&e);
        // A server that refuses the handshake (no client certificate, an untrusted CA)
        // shows only as a transport error on the first call.
        if addr.starts_with("https://")
            && (line.contains("transport error") || line.contains("connection"))
        {
            line.push_str(
                " (TLS: --ca must name the CA that signed the server's certificate; a server \
                 that asks for client certificates needs --cert and --key)",
            );
        }
        eprintln!("reelforge: {line}");
        std::process::exit(1);
    }
}
