//! reelforge-server: serves the gRPC API, or runs a benchmark.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use reelforge_server::analysis::SignalAnalyzer;
use reelforge_server::ingest::{Engine, Providers};
use reelforge_server::models::{self, TextEmbedder};
use reelforge_server::{api, bench, Config};
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
    /// Directory for the store, thumbnails and uploaded sources.
    #[arg(long)]
    data_dir: Option<PathBuf>,
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
    /// Benchmarks that print tables.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
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

#[derive(Subcommand)]
enum BenchCommand {
    /// Bare ffmpeg decode vs reelforge's analysis pass, with CPU and peak memory, per file.
    Ingest {
        /// Interleaved repetitions of each pass (medians are reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        files: Vec<PathBuf>,
    },
    /// Offline models: load times, ms per text embedding (one by one and batched),
    /// speech-to-text real-time factor and word error rate, rerank latency, memory.
    Models {
        /// How many texts to embed each way.
        #[arg(long, default_value_t = 64)]
        texts: usize,
        /// Audio or video files to transcribe (default: the LibriVox read speech that
        /// scripts/setup.sh installs, scored against its transcript).
        speech: Vec<PathBuf>,
    },
    /// Search at scale on synthetic documents: index build, BM25, exact vector and hybrid
    /// latency (p50/p99), memory.
    Search {
        #[arg(long, default_value_t = 10_000)]
        docs: usize,
        #[arg(long, default_value_t = 384)]
        dims: usize,
        #[arg(long, default_value_t = 200)]
        queries: usize,
        /// Build the index in memory only (no sled writes): for sizes where building
        /// through sled takes too long; queries read memory either way.
        #[arg(long)]
        unpersisted: bool,
        /// Graph search breadths to measure (recall@10 and latency each); the first is
        /// used for the hybrid line.
        #[arg(long, value_delimiter = ',', default_value = "96")]
        ef_search: Vec<usize>,
    },
    /// Highlights of a long video (a file looped): wall time and CPU per strategy,
    /// sliced concurrency 1 vs N, render time vs reel length.
    Highlight {
        /// The clip to loop (default: assets/samples/demo.mp4).
        #[arg(long, default_value = "assets/samples/demo.mp4")]
        file: PathBuf,
        #[arg(long, default_value_t = 10)]
        minutes: u32,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// One pass in this process, printed as JSON (used by `bench ingest`).
    #[command(hide = true)]
    IngestPass {
        #[arg(long, value_enum)]
        pass: bench::Pass,
        file: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,hnsw_rs=warn".into()),
        )
        .init();
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    config.allowed_roots.extend(args.allow_roots);
    config.validate()?;

    let runtime = tokio::runtime::Runtime::new()?;
    match args.command {
        Some(Command::Bench {
            which: BenchCommand::Ingest { runs, files },
        }) => runtime.block_on(bench::ingest(&config, &files, runs)),
        Some(Command::Models {
            which: ModelsCommand::ConvertWhisper { from, to },
        }) => {
            let to =
                to.unwrap_or_else(|| config.models.dir.join(models::WhisperTranscriber::DIR_NAME));
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
        Some(Command::Bench {
            which: BenchCommand::Models { texts, speech },
        }) => bench::models(&config, texts, &speech),
        Some(Command::Bench {
            which:
                BenchCommand::Search {
                    docs,
                    dims,
                    queries,
                    unpersisted,
                    ef_search,
                },
        }) => bench::search_scale(docs, dims, queries, unpersisted, &ef_search),
        Some(Command::Bench {
            which:
                BenchCommand::Highlight {
                    file,
                    minutes,
                    concurrency,
                },
        }) => runtime.block_on(bench::highlight(&config, &file, minutes, concurrency)),
        Some(Command::Bench {
            which: BenchCommand::IngestPass { pass, file },
        }) => runtime.block_on(bench::ingest_pass(&config, &file, pass)),
        Some(Command::Reindex) => runtime.block_on(reindex(config)),
        None => runtime.block_on(serve(config)),
    }
}

/// The models the configuration names, loaded (local) or connected (Bedrock).
async fn load_providers(config: &Config) -> anyhow::Result<Providers> {
    let started = std::time::Instant::now();
    let uses_bedrock = [
        &config.models.text_embedder,
        &config.models.reranker,
        &config.models.analyzer,
        &config.models.video_embedder,
    ]
    .iter()
    .any(|s| models::bedrock::model_of(s).is_some())
        || !config.models.bedrock.data_automation_project_arn.is_empty();
    let bedrock = match uses_bedrock {
        true => Some(
            models::bedrock::Bedrock::connect(&config.models.bedrock)
                .await
                .context("cannot set up the Bedrock client (models.bedrock)")?,
        ),
        false => None,
    };
    let text_embedder: Arc<dyn TextEmbedder> = match (
        models::bedrock::model_of(&config.models.text_embedder)
            .and_then(models::bedrock::EmbedModel::from_id),
        &bedrock,
    ) {
        (Some(model), Some(bedrock)) => Arc::new(models::bedrock::BedrockEmbedder::new(
            bedrock.clone(),
            model,
            config.models.bedrock.embedding_dimensions,
        )?),
        _ => Arc::new(
            models::load_default_text_embedder(&config.models.dir, config.models.threads)
                .context("cannot load the offline text embedding model")?,
        ),
    };
    tracing::info!(
        "text embedder {} ({} dims) ready in {} ms",
        text_embedder.name(),
        text_embedder.dimensions(),
        started.elapsed().as_millis()
    );
    let started = std::time::Instant::now();
    let transcriber = models::load_transcriber(&config.models)
        .context("cannot load the offline speech model")?
        .map(|t| Arc::new(t) as Arc<dyn models::Transcriber>);
    match &transcriber {
        Some(t) => tracing::info!(
            "loaded {} in {} ms",
            t.name(),
            started.elapsed().as_millis()
        ),
        None => tracing::info!("speech is not transcribed (models.transcriber = \"none\")"),
    }
    let image_embedder = models::load_image_embedder(&config.models)
        .context("cannot load the image embedder (models.image_embedder)")?
        .map(|e| Arc::new(e) as Arc<dyn models::ImageTextEmbedder>);
    if let Some(e) = &image_embedder {
        tracing::info!(
            "thumbnails are embedded by {} ({} dims)",
            e.name(),
            e.dimensions()
        );
    }
    let video_embedder = match (
        &bedrock,
        models::bedrock::model_of(&config.models.video_embedder),
    ) {
        (Some(b), Some(_)) => Some(Arc::new(models::bedrock::NovaVideoEmbedder::new(
            b.clone(),
            config.models.bedrock.embedding_dimensions,
            &config.ffmpeg,
            config.data_dir.join("staging").join("clips"),
        )?) as Arc<dyn models::VideoEmbedder>),
        _ => None,
    };
    let providers = Providers {
        image_embedder,
        video_embedder,
        data_automation: bedrock.as_ref().and_then(|b| b.data_automation().cloned()),
        analyzer: match (&bedrock, models::bedrock::model_of(&config.models.analyzer)) {
            (Some(b), Some(model)) => Arc::new(models::bedrock::NovaAnalyzer::new(
                b.clone(),
                model,
                &config.ffmpeg,
                config.data_dir.join("staging").join("proxies"),
            )),
            _ => Arc::new(SignalAnalyzer),
        },
        reranker: match &bedrock {
            Some(b) if models::bedrock::model_of(&config.models.reranker).is_some() => {
                Arc::new(models::bedrock::CohereReranker::new(b.clone()))
            }
            _ => Arc::new(models::default_reranker(text_embedder.clone())),
        },
        text_embedder,
        transcriber,
    };
    Ok(providers)
}

async fn reindex(config: Config) -> anyhow::Result<()> {
    let providers = load_providers(&config).await?;
    let engine =
        Engine::open_to_reindex(config, providers).context("cannot open the data directory")?;
    let videos = engine.videos().await?;
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
            let job = engine.reingest(video).await?.id();
            loop {
                let record = engine.job(&job).await?;
                if record.state.is_final() {
                    return match record.error {
                        None => Ok(record.video_id),
                        Some(e) => Err(reelforge_server::error::Error::Unavailable(e)),
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

async fn serve(config: Config) -> anyhow::Result<()> {
    eprintln!("reelforge-server effective configuration:\n{config}");
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let providers = load_providers(&config).await?;
    let engine = Engine::open(config, providers).context("cannot open the data directory")?;
    engine.check_text_embedder().await?;
    let (indexed, dropped) = engine
        .reconcile_search()
        .await
        .context("cannot bring the search index up to date")?;
    if indexed + dropped > 0 {
        tracing::info!("search index: indexed {indexed} videos, dropped {dropped}");
    }
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to find the port.
    // Handlers are registered before the address is announced: a client that stops the
    // server right away must get a graceful shutdown, not the default SIGTERM death.
    let signals = ShutdownSignals::register()?;
    println!("reelforge-server listening on {addr}");
    std::io::stdout().flush()?;

    let shutdown_engine = engine.clone();
    let shutdown = async move {
        signals.wait().await;
        tracing::info!("shutting down: interrupting running jobs and flushing the store");
        shutdown_engine.shutdown().await;
    };
    api::serve(engine.clone(), listener, shutdown).await?;
    engine.store().flush()?;
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
