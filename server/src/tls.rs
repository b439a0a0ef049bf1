//! TLS for the gRPC port (rustls with ring): the certificate chain and key from PEM
//! files, and with `client_ca` mutual TLS (a client without a certificate that CA signed
//! is refused in the handshake). `reload` reads the files again (on SIGHUP): connections
//! made before keep the configuration they were made with, new ones get the new one, and
//! files that do not load leave the old configuration serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{self, pki_types::pem::PemObject, pki_types::CertificateDer};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// `[tls]` in the config file: all paths to PEM files; empty: off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The server's certificate chain (leaf first).
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates client certificates must chain to; set: mutual TLS.
    pub client_ca: PathBuf,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        !self.cert.as_os_str().is_empty()
    }

    pub fn validate(&self) -> Result<(), String> {
        let (cert, key, ca) = (
            !self.cert.as_os_str().is_empty(),
            !self.key.as_os_str().is_empty(),
            !self.client_ca.as_os_str().is_empty(),
        );
        if cert != key {
            return Err("tls.cert and tls.key go together: set both (PEM files) or neither".into());
        }
        if ca && !cert {
            return Err("tls.client_ca needs tls.cert and tls.key: mutual TLS is TLS first".into());
        }
        Ok(())
    }

    /// Reads the files into a rustls configuration (HTTP/2 by ALPN, as gRPC clients ask).
    pub fn load(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = read_certs(&self.cert, "tls.cert")?;
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_file(&self.key).with_context(|| {
                format!(
                    "tls.key {}: no PEM private key could be read",
                    self.key.display()
                )
            })?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = if self.client_ca.as_os_str().is_empty() {
            builder.with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(&self.client_ca, "tls.client_ca")? {
                roots.add(cert).with_context(|| {
                    format!(
                        "tls.client_ca {}: not a CA certificate",
                        self.client_ca.display()
                    )
                })?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .context("tls.client_ca")?;
            builder.with_client_cert_verifier(verifier)
        };
        let mut config = builder.with_single_cert(certs, key).with_context(|| {
            format!(
                "tls.cert {} and tls.key {} do not make a usable pair",
                self.cert.display(),
                self.key.display()
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read_certs(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("{key} {}: cannot read it", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{key} {}: not PEM certificates", path.display()))?;
    if certs.is_empty() {
        bail!("{key} {}: holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// The configuration new connections get; `reload` swaps it.
pub struct Reloadable {
    files: TlsConfig,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl Reloadable {
    /// Whether clients must show a certificate (`tls.client_ca`).
    pub fn mutual(&self) -> bool {
        !self.files.client_ca.as_os_str().is_empty()
    }

    pub fn new(files: TlsConfig) -> anyhow::Result<Arc<Reloadable>> {
        let current = RwLock::new(files.load()?);
        Ok(Arc::new(Reloadable { files, current }))
    }

    /// Reads the files again; on failure the configuration in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = self.files.load()?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }

    /// Reloads on every SIGHUP, for as long as the process runs.
    pub fn reload_on_sighup(self: &Arc<Self>) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let this = self.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match this.reload() {
                    Ok(()) => tracing::info!(
                        "TLS: reloaded {} and {}",
                        this.files.cert.display(),
                        this.files.key.display()
                    ),
                    Err(e) => tracing::error!(
                        "TLS: reload failed, still serving the previous certificate: {e:#}"
                    ),
                }
            }
        });
        Ok(())
    }
}

/// Longest a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS connections `listener` accepts: each handshake runs on a task of its own (a
/// slow or failing client holds up no one), and connections whose handshake fails
/// (plaintext, no client certificate under mutual TLS, a CA the client does not trust)
/// are logged and dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<Reloadable>,
    keepalive: Duration,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let _ = socket2::SockRef::from(&tcp)
                .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(keepalive));
            let acceptor = tls.acceptor();
            let tx = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::info!("TLS handshake with {peer} failed: {e}"),
                    Err(_) => tracing::info!("TLS handshake with {peer} timed out"),
                }
            });
            if sender.is_closed() {
                return;
            }
        }
    });
    ReceiverStream::new(receiver)
}
