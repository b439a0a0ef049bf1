//! An ingest request's options, checked and given the server's defaults in one place.

use reelforge_core::error::{Error, Result};

use crate::config::{IngestConfig, CLIP_SECONDS_RANGE, SLICE_SECONDS_RANGE};

/// Per-request ingest options; zero means "the server's default".
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Whose video it becomes; empty: the default tenant.
    pub tenant: String,
    /// The API key asking (recorded on the job).
    pub key_id: Option<String>,
    pub force: bool,
    pub slice_seconds: f64,
    pub clip_seconds: f64,
}

impl IngestOptions {
    /// The tenant the ingest is for.
    pub fn tenant(&self) -> &str {
        if self.tenant.is_empty() {
            crate::DEFAULT_TENANT
        } else {
            &self.tenant
        }
    }

    /// Slice and clip lengths in ms, checked against the allowed ranges.
    pub fn resolve(&self, config: &IngestConfig) -> Result<(i64, i64)> {
        let pick = |name: &str,
                    requested: f64,
                    default: f64,
                    (lo, hi): (f64, f64)|
         -> Result<i64> {
            if !requested.is_finite()
                || requested < 0.0
                || (requested != 0.0 && !(lo..=hi).contains(&requested))
            {
                return Err(Error::invalid(format!(
                    "{name} must be between {lo} and {hi} seconds (or 0 for the server default of {default}); got {requested}"
                )));
            }
            let seconds = if requested == 0.0 { default } else { requested };
            Ok((seconds * 1000.0).round() as i64)
        };
        let slice_ms = pick(
            "slice_seconds",
            self.slice_seconds,
            config.slice_seconds,
            SLICE_SECONDS_RANGE,
        )?;
        let clip_ms = pick(
            "clip_seconds",
            self.clip_seconds,
            config.clip_seconds,
            CLIP_SECONDS_RANGE,
        )?;
        Ok((slice_ms, clip_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_default_and_validate() {
        let config = IngestConfig::default();
        assert_eq!(
            IngestOptions::default().resolve(&config).unwrap(),
            (30_000, 2_000)
        );
        let opts = |s: f64| IngestOptions {
            tenant: String::new(),
            slice_seconds: s,
            ..Default::default()
        };
        assert_eq!(opts(4.0).resolve(&config).unwrap().0, 4_000);
        for bad in [-1.0, 0.2, 601.0, f64::NAN, f64::INFINITY, 1e300] {
            let err = opts(bad).resolve(&config).unwrap_err().to_string();
            assert!(err.contains("slice_seconds"), "{err}");
        }
    }
}
