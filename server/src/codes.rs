//! gRPC status codes as the tower layers read them off a response: the code its headers
//! carry (a failed unary call answers trailers-only, its status in the headers) and the
//! code's canonical name.

use tonic::Code;

/// The status a response's headers carry; `None` for a response that goes on (a stream
/// that started, whose end status travels in its trailers).
pub fn response_code(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
}

/// The HTTP status a refusal of the web page's plain HTTP paths answers with.
pub fn http_status(code: Code) -> http::StatusCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange => http::StatusCode::BAD_REQUEST,
        Code::NotFound => http::StatusCode::NOT_FOUND,
        Code::PermissionDenied => http::StatusCode::FORBIDDEN,
        Code::Unauthenticated => http::StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => http::StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition | Code::AlreadyExists => http::StatusCode::CONFLICT,
        Code::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
        _ => http::StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A refusal's message as the `x-reelforge-error` header carries it (non-ASCII and
/// control characters as `?`).
pub fn error_header(message: &str) -> Option<http::HeaderValue> {
    let ascii: String = message
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    http::HeaderValue::from_str(&ascii).ok()
}

/// gRPC's canonical name for a code, e.g. "INVALID_ARGUMENT".
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
