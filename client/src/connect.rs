//! Reaching the server: its address (`http://` or `https://`), TLS (a CA to trust, a
//! client certificate for mutual TLS) and the API key every call carries.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A connection to the server whose calls carry the API key, if one was given.
pub type Channel = InterceptedService<tonic::transport::Channel, Bearer>;

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[derive(Args, Clone, Debug)]
pub struct ConnectArgs {
    /// Server address (`https://` for TLS).
    #[arg(
        long,
        global = true,
        env = "REELFORGE_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub addr: String,
    /// API key (`rf_...`), sent as a bearer token.
    #[arg(long, global = true, env = "REELFORGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to trust for an https:// server (default: the system's).
    #[arg(long, global = true, env = "REELFORGE_CA")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for a server that asks for one (mutual TLS).
    #[arg(long, global = true, env = "REELFORGE_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "REELFORGE_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
}

fn read(path: &PathBuf, flag: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag} {}: cannot read it", path.display()))
}

pub async fn connect(args: &ConnectArgs) -> anyhow::Result<Channel> {
    let addr = &args.addr;
    let url = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let tls = url.starts_with("https://");
    let mut endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("{addr} is not a valid server address"))?;
    if tls {
        let mut config = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = &args.ca {
            config = config.ca_certificate(Certificate::from_pem(read(ca, "--ca")?));
        }
        if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
            config = config.identity(Identity::from_pem(
                read(cert, "--cert")?,
                read(key, "--key")?,
            ));
        }
        endpoint = endpoint
            .tls_config(config)
            .context("the TLS settings (--ca, --cert, --key)")?;
    } else if args.ca.is_some() || args.cert.is_some() {
        anyhow::bail!("--ca and --cert need an https:// address (got {url})");
    }
    let channel = endpoint.connect().await.with_context(|| {
        format!(
            "cannot reach reelforge-server at {url} (is it running? set --addr or REELFORGE_ADDR{})",
            if tls { "; for TLS check --ca (the CA that signed its certificate) and, if it asks for one, --cert/--key" } else { "" }
        )
    })?;
    let token = match &args.token {
        Some(t) => Some(
            format!("Bearer {}", t.trim())
                .parse()
                .context("--token is not a valid API key (ASCII, no line breaks)")?,
        ),
        None => None,
    };
    Ok(InterceptedService::new(channel, Bearer(token)))
}
