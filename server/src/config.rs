//! The server's configuration: what only the server needs (its address) around the
//! engine's (`reelforge_engine::EngineConfig`). Defaults, then a TOML file, then
//! `REELFORGE_*` environment variables, then command-line flags (applied by the binary).
//! `Display` prints the effective configuration at start.

use std::fmt;
use std::path::Path;

use reelforge_core::error::{Error, Result};
use reelforge_engine::EngineConfig;

use crate::auth::{AuthConfig, LimitsConfig};
use crate::tls::TlsConfig;

#[derive(Debug, Clone)]
pub struct Config {
    /// Address the gRPC server listens on; port 0 picks a free port.
    pub listen: String,
    /// Address of the Prometheus metrics endpoint (`GET /metrics`); "" for none.
    pub metrics_listen: String,
    /// Address of the web page (and gRPC-Web for it), with the gRPC port's TLS and keys;
    /// "" for none (the default).
    pub http_listen: String,
    /// Serve plaintext on an address other than loopback (a trusted network only).
    pub insecure: bool,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub engine: EngineConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:50051".into(),
            metrics_listen: String::new(),
            http_listen: String::new(),
            insecure: false,
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            engine: EngineConfig::default(),
        }
    }
}

impl Config {
    /// Defaults, overlaid by `file` (if given) and then by `REELFORGE_*` variables in `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut config = match file {
            Some(path) => Self::parse(path)?,
            None => Config::default(),
        };
        for (key, value) in env {
            if let Some(name) = key.strip_prefix("REELFORGE_") {
                config.apply_env(name, &value)?;
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// The server's own keys are taken out of the file's table; the rest is the
    /// engine's, unknown keys refused.
    fn parse(path: &Path) -> Result<Config> {
        let bad =
            |e: &dyn fmt::Display| Error::invalid(format!("config file {}: {e}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| bad(&e))?;
        let mut config = Config::default();
        for (key, value) in [
            ("listen", &mut config.listen),
            ("metrics_listen", &mut config.metrics_listen),
            ("http_listen", &mut config.http_listen),
        ] {
            if let Some(v) = table.remove(key) {
                *value = v
                    .as_str()
                    .ok_or_else(|| {
                        bad(&format!(
                            "{key} must be an address such as \"127.0.0.1:9464\""
                        ))
                    })?
                    .to_string();
            }
        }
        if let Some(v) = table.remove("insecure") {
            config.insecure = v
                .as_bool()
                .ok_or_else(|| bad(&"insecure must be true or false"))?;
        }
        if let Some(v) = table.remove("tls") {
            config.tls = v.try_into().map_err(|e| bad(&format!("[tls]: {e}")))?;
        }
        if let Some(v) = table.remove("auth") {
            config.auth = v.try_into().map_err(|e| bad(&format!("[auth]: {e}")))?;
        }
        if let Some(v) = table.remove("limits") {
            config.limits = v.try_into().map_err(|e| bad(&format!("[limits]: {e}")))?;
        }
        config.engine = toml::Value::Table(table).try_into().map_err(|e| bad(&e))?;
        Ok(config)
    }

    fn apply_env(&mut self, name: &str, value: &str) -> Result<()> {
        match name {
            "LISTEN" => self.listen = value.into(),
            "METRICS_LISTEN" => self.metrics_listen = value.into(),
            "HTTP_LISTEN" => self.http_listen = value.into(),
            "INSECURE" => self.insecure = parse(name, value)?,
            "TLS_CERT" => self.tls.cert = value.into(),
            "TLS_KEY" => self.tls.key = value.into(),
            "TLS_CLIENT_CA" => self.tls.client_ca = value.into(),
            "AUTH_REQUIRED" => self.auth.required = Some(parse(name, value)?),
            "RATE_LIMIT_RPS" => self.limits.requests_per_second = parse(name, value)?,
            "RATE_LIMIT_BURST" => self.limits.burst = parse(name, value)?,
            "MAX_MESSAGE_BYTES" => self.limits.max_message_bytes = parse(name, value)?,
            // Variables the client or other tools read (REELFORGE_ADDR, ...) are not ours.
            _ => {
                self.engine.apply_env(name, value)?;
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        self.tls.validate().map_err(Error::invalid)?;
        self.limits.validate().map_err(Error::invalid)?;
        self.engine.validate()
    }
}

fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::invalid(format!("REELFORGE_{name}={value:?} is not a valid value")))
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = toml::Table::new();
        table.insert("listen".into(), self.listen.clone().into());
        table.insert("metrics_listen".into(), self.metrics_listen.clone().into());
        table.insert("http_listen".into(), self.http_listen.clone().into());
        table.insert("insecure".into(), self.insecure.into());
        for (name, value) in [
            ("tls", toml::Value::try_from(&self.tls)),
            ("auth", toml::Value::try_from(&self.auth)),
            ("limits", toml::Value::try_from(&self.limits)),
        ] {
            table.insert(name.into(), value.map_err(|_| fmt::Error)?);
        }
        let engine = toml::Value::try_from(&self.engine).map_err(|_| fmt::Error)?;
        if let toml::Value::Table(engine) = engine {
            table.extend(engine);
        }
        f.write_str(&toml::to_string_pretty(&table).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("reelforge.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:1\"\n[ingest]\nslice_seconds = 10.0\n",
        )
        .unwrap();
        let env = vec![
            ("REELFORGE_SLICE_SECONDS".to_string(), "20".to_string()),
            ("REELFORGE_ADDR".to_string(), "ignored".to_string()),
        ];
        let config = Config::load(Some(&file), env).unwrap();
        assert_eq!(config.listen, "0.0.0.0:1");
        assert_eq!(config.engine.ingest.slice_seconds, 20.0);
        assert_eq!(config.engine.ingest.clip_seconds, 2.0);
        assert!(config.to_string().contains("slice_seconds = 20.0"));
    }

    #[test]
    fn the_search_backend_is_chosen_in_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("milvus.toml");
        std::fs::write(
            &file,
            "[search]\nbackend = \"milvus\"\n[search.milvus]\nuri = \"https://milvus.example:19530\"\ncollection = \"videos\"\n",
        )
        .unwrap();
        let env = vec![(
            "REELFORGE_SEARCH_MILVUS_TOKEN".to_string(),
            "root:Milvus".to_string(),
        )];
        let config = Config::load(Some(&file), env).unwrap();
        let search = &config.engine.search;
        assert_eq!(search.backend, "milvus");
        assert_eq!(search.milvus.uri, "https://milvus.example:19530");
        assert_eq!(search.milvus.collection, "videos");
        assert_eq!(search.milvus.token, "root:Milvus");
        for (name, value, field) in [
            ("REELFORGE_SEARCH_BACKEND", "opensearch", "search.backend"),
            (
                "REELFORGE_SEARCH_MILVUS_URI",
                "milvus:19530",
                "search.milvus.uri",
            ),
            (
                "REELFORGE_SEARCH_MILVUS_TIMEOUT_SECONDS",
                "soon",
                "TIMEOUT_SECONDS",
            ),
        ] {
            let env = vec![(name.to_string(), value.to_string())];
            let err = Config::load(Some(&file), env).unwrap_err().to_string();
            assert!(err.contains(field), "{name}={value}: {err}");
        }
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "slice_secs = 3\n").unwrap();
        let err = Config::load(Some(&file), vec![]).unwrap_err().to_string();
        assert!(err.contains("slice_secs"), "{err}");
        let env = vec![("REELFORGE_SLICE_SECONDS".to_string(), "0".to_string())];
        let err = Config::load(None, env).unwrap_err().to_string();
        assert!(err.contains("slice_seconds"), "{err}");
    }

    #[test]
    fn bedrock_video_settings_are_checked() {
        let load = |pairs: &[(&str, &str)]| {
            let env: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Config::load(None, env).map_err(|e| e.to_string())
        };
        let err = load(&[("REELFORGE_BEDROCK_INLINE_VIDEO_LIMIT_BYTES", "30000000")]).unwrap_err();
        assert!(
            err.contains("inline_video_limit_bytes") && err.contains("25,000,000"),
            "{err}"
        );
        // 18 MiB as base64 is over the service's limit.
        let err = load(&[("REELFORGE_BEDROCK_INLINE_VIDEO_LIMIT_BYTES", "18874368")]).unwrap_err();
        assert!(err.contains("18675000"), "{err}");
        // Only Nova models that take video analyse video: Nova Micro reads text only.
        let err = load(&[("REELFORGE_ANALYZER", "bedrock:us.amazon.nova-micro-v1:0")]).unwrap_err();
        assert!(
            err.contains("models.analyzer") && err.contains("does not take video"),
            "{err}"
        );
        assert!(load(&[("REELFORGE_ANALYZER", "bedrock:us.amazon.nova-pro-v1:0")]).is_ok());
        // Each role's limit of calls in flight, checked by name.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roles.toml");
        std::fs::write(
            &file,
            "[models.bedrock.concurrency_per_role]\nanalyser = 2\n",
        )
        .unwrap();
        let err = Config::load(Some(&file), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown role \"analyser\"") && err.contains("analyzer"),
            "{err}"
        );
        std::fs::write(
            &file,
            "[models.bedrock.concurrency_per_role]\nanalyzer = 2\n",
        )
        .unwrap();
        let ok = Config::load(Some(&file), Vec::new()).unwrap();
        assert_eq!(ok.engine.models.bedrock.limit_of("analyzer"), 2);
        assert_eq!(ok.engine.models.bedrock.limit_of("text_embedder"), 4);
        let err = load(&[("REELFORGE_BEDROCK_S3_URI", "bucket/prefix")]).unwrap_err();
        assert!(err.contains("s3://bucket/prefix"), "{err}");
        let err = load(&[(
            "REELFORGE_VIDEO_EMBEDDER",
            "bedrock:amazon.titan-embed-text-v2:0",
        )])
        .unwrap_err();
        assert!(err.contains("models.video_embedder"), "{err}");
        let err = load(&[
            (
                "REELFORGE_VIDEO_EMBEDDER",
                "bedrock:amazon.nova-2-multimodal-embeddings-v1:0",
            ),
            ("REELFORGE_BEDROCK_EMBEDDING_DIMENSIONS", "512"),
        ])
        .unwrap_err();
        assert!(
            err.contains("embedding_dimensions") && err.contains("3072"),
            "{err}"
        );
        let ok = load(&[
            (
                "REELFORGE_VIDEO_EMBEDDER",
                "bedrock:amazon.nova-2-multimodal-embeddings-v1:0",
            ),
            ("REELFORGE_BEDROCK_S3_URI", "s3://reelforge-staging/work"),
        ])
        .unwrap();
        assert_eq!(
            ok.engine.models.bedrock.s3_uri,
            "s3://reelforge-staging/work"
        );
    }
}
