//! The engine's [`Error`] (and the core's within it) as gRPC status: the
//! kinds of `lakehouse_serving::errors`, each with its code.

use tonic::{Code, Status};

use lakehouse_engine::error::Error;
use lakehouse_serving::errors::{ErrorKind, Refusal};

/// The gRPC code of each kind of error.
fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Unimplemented => Code::Unimplemented,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Cancelled => Code::Cancelled,
        ErrorKind::Internal => Code::Internal,
        ErrorKind::DataLoss => Code::DataLoss,
    }
}

/// An engine (or core) error as the gRPC status a client gets. (Rust's
/// orphan rule forbids `From<Error> for Status` here: both are foreign.)
pub trait ToStatus {
    fn to_status(self) -> Status;
}

impl<E: Into<Error>> ToStatus for E {
    fn to_status(self) -> Status {
        status_of(self.into())
    }
}

fn status_of(e: Error) -> Status {
    let refusal = Refusal::of(&e);
    let mut status = Status::new(code(refusal.kind), refusal.message);
    if let Some(secs) = refusal.retry_after_secs {
        status.metadata_mut().insert("retry-after", secs.into());
    }
    status
}

/// An engine (or core) result as the result a Flight call answers, so
/// `?` can cross the boundary: `engine_call().await.into_status()?`.
pub trait IntoStatus<T> {
    fn into_status(self) -> Result<T, Status>;
}

impl<T, E: Into<Error>> IntoStatus<T> for Result<T, E> {
    fn into_status(self) -> Result<T, Status> {
        self.map_err(ToStatus::to_status)
    }
}

/// The canonical name of a gRPC code, as metrics label it.
pub fn code_name(code: Code) -> &'static str {
    use Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakehouse_core::catalog::TableRef;
    use lakehouse_engine::error::CoreError;

    #[test]
    fn kinds_get_their_codes_and_messages_name_what_is_concerned() {
        let status = CoreError::TableNotFound(TableRef::new(None, "trips").unwrap()).to_status();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "table public.trips does not exist");
        assert_eq!(
            Error::invalid("bad").to_status().code(),
            Code::InvalidArgument
        );
        let status = Error::internal("bug").to_status();
        assert_eq!(status.code(), Code::Internal);
        assert!(
            status.message().contains("request id"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn a_throttled_login_says_when_to_retry() {
        let status = CoreError::LoginsThrottled {
            who: "for user \"ada\"".into(),
            retry_after_secs: 4,
        }
        .to_status();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.metadata().get("retry-after").unwrap(), "4");
    }
}
