//! Errors as RFC 9457 problem documents (`application/problem+json`): the
//! kind of the engine's error (see `lakehouse_serving::errors`) as the
//! HTTP status, its message as the detail, never a stack trace.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use lakehouse_engine::error::Error;
use lakehouse_serving::errors::{ErrorKind, Refusal};

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `about:blank` and the status say
    /// it all here.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, naming the table, column, file and line concerned.
    pub detail: String,
    /// What the error is in Flight SQL terms (`INVALID_ARGUMENT`,
    /// `NOT_FOUND`, ...), the same for both protocols.
    pub code: String,
    #[serde(skip)]
    retry_after_secs: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.into(),
            retry_after_secs: None,
        }
    }

    /// A request the server cannot read (malformed JSON, a wrong content
    /// type): 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", detail)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The HTTP status and Flight code name of each kind of error.
fn status_of(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        ErrorKind::AlreadyExists => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
        ErrorKind::FailedPrecondition => (StatusCode::CONFLICT, "FAILED_PRECONDITION"),
        ErrorKind::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED"),
        ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        ErrorKind::PermissionDenied => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        ErrorKind::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "UNIMPLEMENTED"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        // 499 (client closed request) is not a standard status; the
        // client is gone anyway.
        ErrorKind::Cancelled => (StatusCode::BAD_REQUEST, "CANCELLED"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        ErrorKind::DataLoss => (StatusCode::INTERNAL_SERVER_ERROR, "DATA_LOSS"),
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let refusal = Refusal::of(&error);
        let (status, code) = status_of(refusal.kind);
        Self {
            retry_after_secs: refusal.retry_after_secs,
            ..Self::new(status, code, refusal.message)
        }
    }
}

impl From<lakehouse_engine::error::CoreError> for Problem {
    fn from(error: lakehouse_engine::error::CoreError) -> Self {
        Error::from(error).into()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).expect("a problem always serializes");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer, Basic realm=\"lakehouse\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakehouse_core::catalog::TableRef;
    use lakehouse_engine::error::CoreError;

    #[test]
    fn a_missing_table_is_a_404_naming_it() {
        let problem = Problem::from(CoreError::TableNotFound(TableRef::parse("trips").unwrap()));
        assert_eq!(problem.status, 404);
        assert_eq!(problem.code, "NOT_FOUND");
        assert_eq!(problem.detail, "table public.trips does not exist");
        let response = problem.into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn limits_are_429_and_faults_500_with_a_request_id() {
        assert_eq!(
            Problem::from(Error::ResourceExhausted("x".into())).status,
            429
        );
        let fault = Problem::from(Error::internal("bug"));
        assert_eq!(fault.status, 500);
        assert!(fault.detail.contains("request id"), "{}", fault.detail);
    }
}
