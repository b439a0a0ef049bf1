//! A Milvus gRPC client over the code generated from Milvus's own protos
//! (`reelforge_proto::milvus`): the channel (TLS for `https`), the `authorization` and
//! `dbname` headers every call carries, a deadline per call, and both kinds of failure
//! (a transport or gRPC status, a Milvus status inside the answer) turned into our
//! errors, naming the setting to check.

use std::future::Future;
use std::time::Duration;

use reelforge_core::error::{Error, Result};
use reelforge_proto::milvus::common;
use reelforge_proto::milvus::milvus::milvus_service_client::MilvusServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Response, Status};

use crate::config::MilvusConfig;

pub type Service = MilvusServiceClient<Channel>;

#[derive(Clone)]
pub struct Client {
    service: Service,
    uri: String,
    /// base64 of the token, as Milvus reads it.
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    db: Option<MetadataValue<tonic::metadata::Ascii>>,
    timeout: Duration,
}

impl Client {
    /// A client whose channel connects on first use (and again after the server comes
    /// back).
    pub fn new(config: &MilvusConfig) -> Result<Client> {
        config.validate()?;
        let bad_uri = |e: &dyn std::fmt::Display| {
            Error::invalid(format!("search.milvus.uri {:?}: {e}", config.uri))
        };
        let mut endpoint = Endpoint::from_shared(config.uri.clone())
            .map_err(|e| bad_uri(&e))?
            .connect_timeout(Duration::from_secs(config.timeout_seconds.min(5)))
            .timeout(Duration::from_secs(config.timeout_seconds))
            .tcp_nodelay(true);
        if config.uri.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if !config.tls_ca.as_os_str().is_empty() {
                let pem = std::fs::read(&config.tls_ca).map_err(|e| {
                    Error::invalid(format!(
                        "search.milvus.tls_ca: cannot read {}: {e}",
                        config.tls_ca.display()
                    ))
                })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| bad_uri(&e))?;
        }
        let header = |value: &str, field: &str| {
            MetadataValue::try_from(value)
                .map_err(|_| Error::invalid(format!("{field} must be printable ASCII")))
        };
        let authorization = match config.token.as_str() {
            "" => None,
            token => Some(header(&base64(token.as_bytes()), "search.milvus.token")?),
        };
        let db = match config.db.as_str() {
            "" => None,
            db => Some(header(db, "search.milvus.db")?),
        };
        Ok(Client {
            service: MilvusServiceClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
            uri: config.uri.clone(),
            authorization,
            db,
            timeout: Duration::from_secs(config.timeout_seconds),
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// One call: `call` gets a service handle and the request with its headers; `what`
    /// says what it was doing, for the error.
    pub async fn call<Req, Resp, F, Fut>(&self, what: &str, message: Req, call: F) -> Result<Resp>
    where
        F: FnOnce(Service, Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<Response<Resp>, Status>>,
    {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        if let Some(auth) = &self.authorization {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        if let Some(db) = &self.db {
            request.metadata_mut().insert("dbname", db.clone());
        }
        match call(self.service.clone(), request).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => Err(self.status_error(what, &status)),
        }
    }

    fn status_error(&self, what: &str, status: &Status) -> Error {
        let uri = &self.uri;
        let message = status.message();
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                Error::Unavailable(format!(
                    "the Milvus server at {uri} (search.milvus.uri) cannot be reached ({what}): {message}"
                ))
            }
            Code::Unauthenticated | Code::PermissionDenied => Error::Unavailable(format!(
                "the Milvus server at {uri} refused our credentials ({what}; check search.milvus.token): {message}"
            )),
            code => Error::Internal(format!(
                "the Milvus server at {uri} failed ({what}): {code:?}: {message}"
            )),
        }
    }

    /// The Milvus status inside an answer: success, or an error with Milvus's reason.
    pub fn check(&self, what: &str, status: Option<&common::Status>) -> Result<()> {
        let Some(status) = status else {
            return Ok(());
        };
        // Older servers set only the deprecated error_code.
        #[allow(deprecated)]
        let legacy = status.error_code;
        if status.code == 0 && legacy == 0 {
            return Ok(());
        }
        let reason = &status.reason;
        let uri = &self.uri;
        Err(if status.retriable {
            Error::Unavailable(format!(
                "the Milvus server at {uri} is busy ({what}): {reason}"
            ))
        } else {
            Error::Internal(format!(
                "the Milvus server at {uri} refused {what}: {reason}"
            ))
        })
    }
}

/// Standard base64 with padding (Milvus's `authorization` header).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(super::base64(b"root:Milvus"), "cm9vdDpNaWx2dXM=");
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b"abc"), "YWJj");
        assert_eq!(super::base64(b""), "");
    }
}
