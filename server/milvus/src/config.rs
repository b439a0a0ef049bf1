//! `[search.milvus]`: where the Milvus server is and how to reach it. Checked once here;
//! every error names the setting.

use std::path::PathBuf;

use reelforge_core::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MilvusConfig {
    /// `http://host:19530` (Milvus, milvus-lite) or `https://...` (TLS: Zilliz Cloud, a
    /// cluster behind TLS).
    pub uri: String,
    /// `user:password` or an API key (Zilliz Cloud); empty: none. Sent as Milvus's
    /// `authorization` header.
    pub token: String,
    /// The database; empty: the server's default.
    pub db: String,
    /// Collections are `<collection>_text` and `<collection>_visual`, one per embedding
    /// space. Servers that share a prefix share their documents.
    pub collection: String,
    /// A PEM file of the certificate authority that signed the server's certificate, for
    /// an `https` uri whose certificate the system does not trust; empty: system roots.
    pub tls_ca: PathBuf,
    /// Longest wait for one call, seconds.
    pub timeout_seconds: u64,
}

impl Default for MilvusConfig {
    fn default() -> Self {
        MilvusConfig {
            uri: "http://127.0.0.1:19530".into(),
            token: String::new(),
            db: String::new(),
            collection: "reelforge".into(),
            tls_ca: PathBuf::new(),
            timeout_seconds: 10,
        }
    }
}

impl MilvusConfig {
    pub fn validate(&self) -> Result<()> {
        let scheme_ok = self.uri.starts_with("http://") || self.uri.starts_with("https://");
        if !scheme_ok || self.uri.len() <= "https://".len() {
            return Err(Error::invalid(format!(
                "search.milvus.uri must be http://HOST:PORT or https://HOST:PORT, got {:?}",
                self.uri
            )));
        }
        let name_ok = !self.collection.is_empty()
            && self.collection.len() <= 200
            && self
                .collection
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !self.collection.starts_with(|c: char| c.is_ascii_digit());
        if !name_ok {
            return Err(Error::invalid(format!(
                "search.milvus.collection must be letters, digits and _ (not starting with a digit), as Milvus names collections; got {:?}",
                self.collection
            )));
        }
        if !self.tls_ca.as_os_str().is_empty() && !self.uri.starts_with("https://") {
            return Err(Error::invalid(
                "search.milvus.tls_ca is set but search.milvus.uri is not https://",
            ));
        }
        if self.timeout_seconds == 0 {
            return Err(Error::invalid(
                "search.milvus.timeout_seconds must be at least 1",
            ));
        }
        Ok(())
    }

    /// Applies `REELFORGE_SEARCH_MILVUS_<NAME>` (`name` without the prefix); false when
    /// the name is not one of these.
    pub fn apply_env(&mut self, name: &str, value: &str) -> Result<bool> {
        match name {
            "URI" => self.uri = value.to_string(),
            "TOKEN" => self.token = value.to_string(),
            "DB" => self.db = value.to_string(),
            "COLLECTION" => self.collection = value.to_string(),
            "TLS_CA" => self.tls_ca = value.into(),
            "TIMEOUT_SECONDS" => {
                self.timeout_seconds = value.parse().map_err(|_| {
                    Error::invalid(format!(
                    "REELFORGE_SEARCH_MILVUS_TIMEOUT_SECONDS must be a whole number, got {value:?}"
                ))
                })?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_named() {
        let ok = MilvusConfig::default();
        ok.validate().unwrap();
        let bad = |c: MilvusConfig, field: &str| {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        };
        bad(
            MilvusConfig {
                uri: "127.0.0.1:19530".into(),
                ..ok.clone()
            },
            "search.milvus.uri",
        );
        bad(
            MilvusConfig {
                collection: "my-videos".into(),
                ..ok.clone()
            },
            "search.milvus.collection",
        );
        bad(
            MilvusConfig {
                tls_ca: "ca.pem".into(),
                ..ok.clone()
            },
            "search.milvus.tls_ca",
        );
    }
}
