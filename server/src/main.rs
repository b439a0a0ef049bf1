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
    /// Address for the web page (gRPC-Web, media, uploads), with the gRPC port's TLS and
    /// keys; off unless set.
    #[arg(long)]
    http_listen: Option<String>,
    /// Directory for the store, thumbnails and uploaded sources.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log lines as `text` or `json` (one object per line, with the call's request id).
    #[arg(long, env = "REELFORGE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// A directory clients may ingest server-side files from (repeatable).
    #[arg(long = "allow-root")]
    allow_roots: Vec<PathBuf>,
    /// TLS certificate chain (PEM); with --tls-key the port speaks TLS only.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) client certificates must chain to: mutual TLS.
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// Serve plaintext on an address other than loopback (a trusted network only).
    #[arg(long)]
    insecure: bool,
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
    /// API keys (while the server is stopped; a running server manages them through
    /// `reelforge keys` with an admin key).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Ingests every stored video again from its source with the configured models and
    /// rebuilds the search index: after changing models.text_embedder (the server refuses
    /// to serve vectors another embedder made).
    Reindex,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Makes a key and prints its secret (once: only its hash is kept).
    Create {
        /// The tenant the key acts for (its videos, jobs, highlights ...).
        #[arg(long)]
        tenant: String,
        /// read, write or admin.
        #[arg(long)]
        role: String,
        /// Lifetime, e.g. 30d, 12h; default: no expiry.
        #[arg(long)]
        expires: Option<String>,
        /// A note to recognise the key by (who has it, what for).
        #[arg(long, default_value = "")]
        note: String,
        /// Jobs (ingests, highlights) the key may have running at once; default: only
        /// its tenant's limit.
        #[arg(long, default_value_t = 0)]
        max_jobs: u32,
    },
    /// Every key (or one tenant's): id, tenant, role, state.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revokes a key.
    Revoke { key_id: String },
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
    /// Converts the legacy torch pickle of EfficientNet-Lite0's weights
    /// (efficientnet-lite0-57934424.pth) into the safetensors the scene tagger loads.
    ConvertEfficientnet {
        /// The .pth file.
        #[arg(long)]
        from: PathBuf,
        /// Output file (default: <models dir>/efficientnet-lite0/model.safetensors).
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
    if let Some(listen) = args.http_listen {
        config.http_listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.engine.data_dir = dir;
    }
    config.engine.allowed_roots.extend(args.allow_roots);
    if let Some(cert) = args.tls_cert {
        config.tls.cert = cert;
    }
    if let Some(key) = args.tls_key {
        config.tls.key = key;
    }
    if let Some(ca) = args.tls_client_ca {
        config.tls.client_ca = ca;
    }
    config.insecure |= args.insecure;
    config.validate()?;

    let runtime = tokio::runtime::Runtime::new()?;
    match args.command {
        Some(Command::Models {
            which: ModelsCommand::ConvertEfficientnet { from, to },
        }) => {
            let to = to.unwrap_or_else(|| {
                models::vision::EfficientNetTagger::dir_in(&config.engine.models.dir)
                    .join("model.safetensors")
            });
            let started = std::time::Instant::now();
            models::vision::convert_pth(&from, &to)
                .with_context(|| format!("cannot convert {}", from.display()))?;
            eprintln!(
                "converted {} -> {} in {} ms",
                from.display(),
                to.display(),
                started.elapsed().as_millis()
            );
            Ok(())
        }
        Some(Command::Models {
            which: ModelsCommand::ConvertWhisper { from, to },
        }) => {
            let to = to.unwrap_or_else(|| {
                models::WhisperTranscriber::dir_of(
                    &config.engine.models.dir,
                    models::WhisperTranscriber::TINY_EN,
                )
                .expect("a known model")
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
        Some(Command::Keys { command }) => keys(&config, command),
        None => runtime.block_on(serve(config, args.log_format)),
    }
}

fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    use reelforge_engine::keys::{NewKey, Role};
    let keys = Engine::open_keys(&config.engine).map_err(|e| match e {
        reelforge_core::Error::FailedPrecondition(m) => anyhow::anyhow!(
            "{m}: while it runs, manage keys through it: reelforge keys create|list|revoke with an admin key"
        ),
        other => other.into(),
    })?;
    match command {
        KeysCommand::Create {
            tenant,
            role,
            expires,
            note,
            max_jobs,
        } => {
            let expires_in_seconds = expires
                .map(|e| reelforge_core::time::parse_lifetime(&e).map_err(anyhow::Error::msg))
                .transpose()
                .context("--expires")?;
            let made = keys.create(NewKey {
                tenant,
                role: Role::parse(&role).context("--role")?,
                expires_in_seconds,
                note,
                max_concurrent_jobs: max_jobs,
            })?;
            eprintln!(
                "made key {} for tenant {} with the {} role{}; its secret is shown once:",
                made.key.key_id,
                made.key.tenant,
                made.key.role.name(),
                made.key
                    .expires_unix_ms
                    .map(|_| format!(", expiring in {}", expires_words(&made.key)))
                    .unwrap_or_default()
            );
            println!("{}", made.secret);
        }
        KeysCommand::List { tenant } => {
            let now = reelforge_engine::store::now_unix_ms();
            println!("{:<14} {:<20} {:<6} STATE", "KEY", "TENANT", "ROLE");
            for key in keys.list(tenant.as_deref()) {
                let state = key.unusable(now).unwrap_or_else(|| "active".into());
                println!(
                    "{:<14} {:<20} {:<6} {}{}",
                    key.key_id,
                    key.tenant,
                    key.role.name(),
                    state,
                    if key.note.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", key.note)
                    }
                );
            }
        }
        KeysCommand::Revoke { key_id } => {
            let key = keys.revoke(&key_id)?;
            eprintln!("revoked key {} of tenant {}", key.key_id, key.tenant);
        }
    }
    Ok(())
}

fn expires_words(key: &reelforge_engine::keys::ApiKey) -> String {
    let s = (key.expires_unix_ms.unwrap_or(0) - key.created_unix_ms) / 1000;
    match s {
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s => format!("{s} s"),
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
    engine
        .search
        .connect()
        .await
        .context("cannot open the search backend")?;
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
                let record = engine.catalog.job(&video.tenant, &job).await?;
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
    let tls = if config.tls.enabled() {
        let tls = reelforge_server::tls::Reloadable::new(config.tls.clone())?;
        tls.reload_on_sighup()?;
        Some(tls)
    } else {
        plaintext_allowed(&listener, "calls", config.insecure)?;
        None
    };
    let http_listener = match config.http_listen.as_str() {
        "" => None,
        addr => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (http_listen)"))?;
            if tls.is_none() {
                plaintext_allowed(&listener, "the web page and its calls", config.insecure)?;
            }
            Some(listener)
        }
    };
    let metrics_listener = match config.metrics_listen.as_str() {
        "" => None,
        addr => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?,
        ),
    };
    let providers = load_providers(&config).await?;
    let (config_auth, config_limits) = (config.auth.clone(), config.limits.clone());
    let engine =
        Engine::open(config.engine, providers).context("cannot open the data directory")?;
    engine.catalog.check_text_embedder().await?;
    engine
        .search
        .connect()
        .await
        .context("cannot open the search backend")?;
    let (indexed, dropped) = engine
        .catalog
        .reconcile_search()
        .await
        .context("cannot bring the search index up to date")?;
    if indexed + dropped > 0 {
        tracing::info!("search index: indexed {indexed} videos, dropped {dropped}");
    }
    // A write the backend missed while serving is caught up when it answers again.
    engine.search.keep_in_step();
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
    if let Some(http) = &http_listener {
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Tests read this line too.
        println!(
            "reelforge-server web page on {scheme}://{}/",
            http.local_addr()?
        );
    }
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
    let access = reelforge_server::auth::Access::new(
        engine.keys.clone(),
        config_auth,
        config_limits.clone(),
    );
    if !access.required() {
        tracing::warn!(
            "no API keys: every caller is the admin of the default tenant; make one with \
             `reelforge-server keys create --tenant NAME --role admin` to require keys"
        );
    }
    let gate = api::Gate {
        access,
        max_message_bytes: config_limits.max_message_bytes,
        tls,
    };
    let shutdown_engine = engine.clone();
    let shutdown = async move {
        signals.wait().await;
        tracing::info!("shutting down: interrupting running jobs and flushing the store");
        stopping.cancel();
        shutdown_engine.shutdown().await;
    };
    api::serve(
        engine.clone(),
        listener,
        http_listener,
        metrics,
        gate,
        shutdown,
    )
    .await?;
    engine.flush()?;
    tracing::info!("stopped");
    Ok(())
}

/// Plaintext is served on loopback, or with `--insecure` (with a warning) elsewhere; `what`
/// the listener carries, for the messages.
fn plaintext_allowed(listener: &TcpListener, what: &str, insecure: bool) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if !insecure {
        anyhow::bail!(
            "refusing to serve plaintext on {addr} (not loopback): anyone on the network \
             could read and send {what}; set tls.cert and tls.key (--tls-cert, --tls-key), or \
             pass --insecure (insecure = true) on a trusted network"
        );
    }
    tracing::warn!(
        "serving plaintext on {addr} (--insecure): {what} and API keys cross the network unencrypted"
    );
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
