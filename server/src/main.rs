//! reelforge-server: serves the gRPC API; `reindex` and one-time model conversions.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use reelforge_engine::Engine;
use reelforge_models::{self as models, Providers};
use reelforge_server::logging::{self, LogFormat};
use reelforge_server::metrics::Metrics;
use reelforge_server::{api, Config};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "reelforge-server",
    version,
    about = "reelforge video highlight and search server"
)]
struct Args {
    /// TOML config file; REELFORGE_* variables and these flags override it.
    #[arg(long, env = "REELFORGE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free one; the bound address is printed).
    #[arg(long)]
    listen: Option<String>,
    /// Address for Prometheus metrics (`GET /metrics`); off unless set.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Directory for the store, thumbnails and uploaded sources.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log lines as `text` or `json` (one object per line, with the call's request id).
    #[arg(long, env = "REELFORGE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// A directory clients may ingest server-side files from (repeatable).
    #[arg(long = "allow-root")]
    allow_roots: Vec<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Model files: one-time conversions the setup step runs.
    Models {
        #[command(subcommand)]
        which: ModelsCommand,
    },
    /// Ingests every stored video again from its source with the configured models and
    /// rebuilds the search index: after changing models.text_embedder (the server refuses
    /// to serve vectors another embedder made).
    Reindex,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Converts a CTranslate2 Whisper model directory (model.bin, config.json,
    /// tokenizer.json) into the safetensors layout the transcriber loads.
    ConvertWhisper {
        /// The CTranslate2 model directory.
        #[arg(long)]
        from: PathBuf,
        /// Output directory (default: <models dir>/whisper-tiny-en).
        #[arg(long)]
        to: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    logging::init(args.log_format);
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(listen) = args.metrics_listen {
        config.metrics_listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.engine.data_dir = dir;
    }
    config.engine.allowed_roots.extend(args.allow_roots);
    config.validate()?;

    let runtime = tokio::runtime::Runtime::new()?;
    match args.command {
        Some(Command::Models {
            which: ModelsCommand::ConvertWhisper { from, to },
        }) => {
            let to = to.unwrap_or_else(|| {
                config
                    .engine
                    .models
                    .dir
                    .join(models::WhisperTranscriber::DIR_NAME)
            });
            let started = std::time::Instant::now();
            let shape = models::whisper::convert_ct2_whisper(&from, &to)
                .with_context(|| format!("cannot convert {}", from.display()))?;
            eprintln!(
                "converted {} -> {} in {} ms ({} encoder + {} decoder layers, d_model {}, \
                 {} tokens)",
                from.display(),
                to.display(),
                started.elapsed().as_millis(),
                shape.encoder_layers,
                shape.decoder_layers,
                shape.d_model,
                shape.vocab_size
            );
            Ok(())
        }
        Some(Command::Reindex) => runtime.block_on(reindex(config)),
        None => runtime.block_on(serve(config, args.log_format)),
    }
}

/// The models the configuration names, loaded (local) or connected (Bedrock); their
/// background pools and every media tool run at `background_nice`.
async fn load_providers(config: &Config) -> anyhow::Result<Providers> {
    let engine = &config.engine;
    reelforge_media::process::set_background_nice(engine.background_nice);
    Ok(Providers::load(
        &engine.models,
        &engine.ffmpeg,
        &engine.data_dir.join("staging"),
    )
    .await?)
}

async fn reindex(config: Config) -> anyhow::Result<()> {
    let providers = load_providers(&config).await?;
    let engine = Engine::open_to_reindex(config.engine, providers)
        .context("cannot open the data directory")?;
    let videos = engine.catalog.videos().await?;
    let mut failed = Vec::new();
    for (i, video) in videos.iter().enumerate() {
        eprint!(
            "[{}/{}] {} ({}): ",
            i + 1,
            videos.len(),
            video.filename,
            video.video_id
        );
        let outcome = async {
            let job = engine.ingest.reingest(video).await?.id();
            loop {
                let record = engine.catalog.job(&job).await?;
                if record.state.is_final() {
                    return match record.error {
                        None => Ok(record.video_id),
                        Some(e) => Err(reelforge_core::Error::Unavailable(e)),
                    };
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        .await;
        match outcome {
            Ok(id) if id == video.video_id => eprintln!("embedded again"),
            Ok(id) => eprintln!("its source changed: now video {id}"),
            Err(e) => {
                eprintln!("failed: {e}");
                failed.push(video.video_id.clone());
            }
        }
    }
    engine.shutdown().await;
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} videos could not be ingested again (their sources may be gone): {}; delete them or restore their files",
            failed.len(),
            videos.len(),
            failed.join(", ")
        );
    }
    eprintln!("reindexed {} videos", videos.len());
    Ok(())
}

async fn serve(config: Config, log_format: LogFormat) -> anyhow::Result<()> {
    match log_format {
        LogFormat::Text => eprintln!("reelforge-server effective configuration:\n{config}"),
        // One JSON line like every other, the TOML as a field.
        LogFormat::Json => tracing::info!(config = %config, "effective configuration"),
    }
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let metrics_listener = match config.metrics_listen.as_str() {
        "" => None,
        addr => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?,
        ),
    };
    let providers = load_providers(&config).await?;
    let engine =
        Engine::open(config.engine, providers).context("cannot open the data directory")?;
    engine.catalog.check_text_embedder().await?;
    let (indexed, dropped) = engine
        .catalog
        .reconcile_search()
        .await
        .context("cannot bring the search index up to date")?;
    if indexed + dropped > 0 {
        tracing::info!("search index: indexed {indexed} videos, dropped {dropped}");
    }
    // Ingests a previous process left unfinished continue where they stopped.
    engine.resume_jobs().await;
    // New videos in the watched folders and S3 prefixes become ingest jobs.
    engine.start_watching();
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to find the port.
    // Handlers are registered before the address is announced: a client that stops the
    // server right away must get a graceful shutdown, not the default SIGTERM death.
    let signals = ShutdownSignals::register()?;
    println!("reelforge-server listening on {addr}");
    std::io::stdout().flush()?;

    let metrics = Metrics::new();
    metrics.watch(
        engine.catalog.clone(),
        engine.search.clone(),
        engine.ingest.clone(),
    );
    let stopping = tokio_util::sync::CancellationToken::new();
    if let Some(listener) = metrics_listener {
        eprintln!(
            "reelforge-server metrics on http://{}/metrics",
            listener.local_addr()?
        );
        let (metrics, stopped) = (metrics.clone(), stopping.clone());
        tokio::spawn(async move {
            let stop = async move { stopped.cancelled().await };
            if let Err(e) = reelforge_server::metrics::serve(metrics, listener, stop).await {
                tracing::error!("the metrics endpoint stopped: {e}");
            }
        });
    }
    let shutdown_engine = engine.clone();
    let shutdown = async move {
        signals.wait().await;
        tracing::info!("shutting down: interrupting running jobs and flushing the store");
        stopping.cancel();
        shutdown_engine.shutdown().await;
    };
    api::serve(engine.clone(), listener, metrics, shutdown).await?;
    engine.flush()?;
    tracing::info!("stopped");
    Ok(())
}

struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
