//! reelforge-bench: benchmarks that print tables (never run by the test suite). The
//! engine's configuration comes as the server's does: `--config FILE`, then
//! `REELFORGE_*` variables.

mod highlight;
mod ingest;
mod load;
mod measure;
mod models;
mod quality;
mod search;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use reelforge_server::Config;

#[derive(Parser)]
#[command(name = "reelforge-bench", version, about = "reelforge benchmarks")]
struct Args {
    /// TOML config file (the server's); REELFORGE_* variables override it.
    #[arg(long, env = "REELFORGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    which: BenchCommand,
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
    /// The same synthetic corpus through the search seam into the embedded index and a
    /// Milvus server, side by side: build, BM25, vector and hybrid latency, recall. Start
    /// one first, e.g. `.venv-milvus/bin/milvus-lite server --data-dir /tmp/m --port 19531`.
    SearchBackends {
        #[arg(long, default_value_t = 100_000)]
        docs: usize,
        #[arg(long, default_value_t = 384)]
        dims: usize,
        #[arg(long, default_value_t = 100)]
        queries: usize,
        #[arg(long, default_value = "http://127.0.0.1:19530")]
        milvus_uri: String,
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
    /// Search quality on the judged corpus through the real search service: nDCG@10 of
    /// each recall path, each fusion, with and without the local reranker.
    Quality {
        #[arg(long, default_value_t = 10_000)]
        docs: usize,
        #[arg(long, default_value_t = 144)]
        queries: usize,
    },
    /// Searches over real gRPC against the release server (beside this binary) holding
    /// the judged corpus: one caller, N callers, N callers during two ingests and a
    /// render; the callers' p50/p99, errors, the server's stage times and memory.
    Load {
        #[arg(long, default_value_t = 10_000)]
        docs: usize,
        #[arg(long, default_value_t = 32)]
        callers: usize,
        /// Length of the one-caller and N-caller phases (the last runs as long as its
        /// background work, at most six times this).
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Where demo.mp4 and speech.mp4 are (scripts/setup.sh makes them).
        #[arg(long, default_value = "assets/samples")]
        samples: PathBuf,
    },
    /// One pass in this process, printed as JSON (used by `bench ingest`).
    #[command(hide = true)]
    IngestPass {
        #[arg(long, value_enum)]
        pass: ingest::Pass,
        file: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let config = Config::load(args.config.as_deref(), std::env::vars())?.engine;
    let runtime = tokio::runtime::Runtime::new()?;
    match args.which {
        BenchCommand::Ingest { runs, files } => {
            runtime.block_on(ingest::ingest(&config, &files, runs))
        }
        BenchCommand::IngestPass { pass, file } => {
            runtime.block_on(ingest::ingest_pass(&config, &file, pass))
        }
        BenchCommand::Models { texts, speech } => models::models(&config, texts, &speech),
        BenchCommand::Load {
            docs,
            callers,
            seconds,
            samples,
        } => runtime.block_on(load::load(
            &config.models.dir,
            &load::LoadOptions {
                docs,
                callers,
                seconds,
                samples,
            },
        )),
        BenchCommand::Quality { docs, queries } => {
            runtime.block_on(quality::quality(&config, docs, queries))
        }
        BenchCommand::Search {
            docs,
            dims,
            queries,
            unpersisted,
            ef_search,
        } => search::search_scale(docs, dims, queries, unpersisted, &ef_search),
        BenchCommand::SearchBackends {
            docs,
            dims,
            queries,
            milvus_uri,
        } => runtime.block_on(search::backends(docs, dims, queries, &milvus_uri)),
        BenchCommand::Highlight {
            file,
            minutes,
            concurrency,
        } => runtime.block_on(highlight::highlight(&config, &file, minutes, concurrency)),
    }
}
