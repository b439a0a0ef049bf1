//! An ingest request's options, checked and given the server's defaults in one place.

use reelforge_core::error::{Error, Result};

use reelforge_models::Transcriber;

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
    /// The language spoken, as the speech model's code; "": the server's
    /// `ingest.language`; "auto": the model tells.
    pub language: String,
}

/// An ingest's options with the server's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub slice_ms: i64,
    pub clip_ms: i64,
    /// The language speech is transcribed in; `None`: the model tells (or no speech model).
    pub language: Option<String>,
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

    /// Slice and clip lengths in ms, checked against the allowed ranges, and the language,
    /// checked against the speech model's (`None`: speech is not transcribed).
    pub fn resolve(
        &self,
        config: &IngestConfig,
        transcriber: Option<&dyn Transcriber>,
    ) -> Result<Resolved> {
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
        let (field, language) = match self.language.trim() {
            "" => (
                "ingest.language in the server's configuration",
                config.language.trim(),
            ),
            requested => ("language", requested),
        };
        let language = match (language, transcriber) {
            ("" | "auto", _) | (_, None) => None,
            (code, Some(model)) => {
                let known = model.languages();
                if !known.iter().any(|k| k == code) {
                    return Err(Error::invalid(format!(
                        "{field} {code:?} is not a language {} transcribes: use \"auto\" to \
                         let it tell, or one of {}",
                        model.name(),
                        known.join(", ")
                    )));
                }
                Some(code.to_string())
            }
        };
        Ok(Resolved {
            slice_ms,
            clip_ms,
            language,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_default_and_validate() {
        let config = IngestConfig::default();
        let resolved = IngestOptions::default().resolve(&config, None).unwrap();
        assert_eq!((resolved.slice_ms, resolved.clip_ms), (30_000, 2_000));
        let opts = |s: f64| IngestOptions {
            tenant: String::new(),
            slice_seconds: s,
            ..Default::default()
        };
        assert_eq!(opts(4.0).resolve(&config, None).unwrap().slice_ms, 4_000);
        for bad in [-1.0, 0.2, 601.0, f64::NAN, f64::INFINITY, 1e300] {
            let err = opts(bad).resolve(&config, None).unwrap_err().to_string();
            assert!(err.contains("slice_seconds"), "{err}");
        }
    }

    #[test]
    fn a_language_is_the_requests_else_the_servers_and_one_the_model_knows() {
        let english_only: &dyn Transcriber = reelforge_models::testing::transcriber();
        let mut config = IngestConfig::default();
        let with = |language: &str| IngestOptions {
            language: language.into(),
            ..Default::default()
        };
        let language = |o: IngestOptions, c: &IngestConfig| {
            o.resolve(c, Some(english_only)).map(|r| r.language)
        };
        assert_eq!(language(with(""), &config).unwrap(), None);
        assert_eq!(language(with("auto"), &config).unwrap(), None);
        assert_eq!(language(with("en"), &config).unwrap(), Some("en".into()));
        let err = language(with("zh"), &config).unwrap_err().to_string();
        assert!(
            err.starts_with("language \"zh\"") && err.contains("local:whisper-tiny-en"),
            "{err}"
        );
        config.language = "zh".into();
        let err = language(with(""), &config).unwrap_err().to_string();
        assert!(err.starts_with("ingest.language"), "{err}");
        // The request's own language wins over the server's.
        assert_eq!(language(with("auto"), &config).unwrap(), None);
        // Without a speech model there is nothing to check.
        assert_eq!(with("zh").resolve(&config, None).unwrap().language, None);
    }
}
