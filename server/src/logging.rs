//! Logs: text or JSON lines on stderr (`log_format`), and a request id on every line a
//! call logs. The id comes from the caller's `x-request-id` metadata (a visible-ASCII
//! string of at most 128 bytes) or is made here, and is sent back in the response's
//! `x-request-id` header so a caller can quote it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderValue;
use tracing::Instrument;

use crate::codes::{code_name, response_code};

pub const REQUEST_ID: &str = "x-request-id";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?} is not text or json")),
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` filters (default info), stderr.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,hnsw_rs=warn".into());
    // Colour only on a terminal (a log file or collector gets plain text) and never
    // with NO_COLOR set.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// The caller's request id if it is one we can log and echo, else a new one.
fn request_id<B>(req: &http::Request<B>) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Runs every call inside an `rpc` span carrying its method and request id, returns the
/// id, and logs the call's status when it is not OK.
#[derive(Clone, Default)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

#[derive(Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for RequestIdService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let id = request_id(&req);
        let rpc = req.uri().path().trim_start_matches('/').to_string();
        let span = tracing::info_span!("rpc", rpc = %rpc, request_id = %id);
        let future = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        Box::pin(
            async move {
                let mut response = future.await;
                if let Ok(r) = &mut response {
                    let code = response_code(r.headers()).filter(|c| *c != tonic::Code::Ok);
                    if let Some(code) = code {
                        let message = r
                            .headers()
                            .get("grpc-message")
                            .and_then(|v| v.to_str().ok())
                            .map(percent_decode)
                            .unwrap_or_default();
                        match code {
                            tonic::Code::Internal | tonic::Code::Unknown => {
                                tracing::error!(code = code_name(code), detail = %message, "rpc failed")
                            }
                            _ => tracing::info!(code = code_name(code), detail = %message, "rpc refused"),
                        }
                    }
                    if let Ok(value) = HeaderValue::from_str(&id) {
                        r.headers_mut().insert(REQUEST_ID, value);
                    }
                }
                response
            }
            .instrument(span),
        )
    }
}

/// grpc-message is percent-encoded on the wire.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok();
        match (bytes[i], hex().and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_when_safe_and_made_otherwise() {
        let with = |v: &str| {
            let req = http::Request::builder()
                .header(REQUEST_ID, v)
                .body(())
                .unwrap();
            request_id(&req)
        };
        assert_eq!(with("abc-123"), "abc-123");
        assert_ne!(with(&"x".repeat(200)), "x".repeat(200));
        assert_eq!(with("has space").len(), 36, "a uuid replaces an unsafe id");
        assert_eq!(request_id(&http::Request::new(())).len(), 36);
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(
            percent_decode("video %22x%22 not found"),
            "video \"x\" not found"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%E4%B8%AD"), "中");
    }
}
