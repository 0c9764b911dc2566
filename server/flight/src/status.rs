//! The one mapping from the engine's [`Error`] (and the core's within it)
//! to gRPC status.
//!
//! The code says what the caller can do (fix the request, create the table,
//! retry, give up); the message names what is concerned. Faults that are
//! ours are logged at error level with a request id that the message
//! carries, so an operator can find the log line a user reports.

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use tonic::{Code, Status};
use tracing::{debug, error};

use lakehouse_extension::ExtensionError;

use lakehouse_engine::error::{CoreError, Error};

fn arrow_code(e: &ArrowError) -> Code {
    match e {
        ArrowError::MemoryError(_) => Code::ResourceExhausted,
        ArrowError::NotYetImplemented(_) => Code::Unimplemented,
        ArrowError::IoError(..) | ArrowError::ExternalError(_) | ArrowError::CDataInterface(_) => {
            Code::Internal
        }
        _ => Code::InvalidArgument,
    }
}

fn datafusion_code(e: &DataFusionError) -> Code {
    match e {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::Execution(_)
        | DataFusionError::Configuration(_) => Code::InvalidArgument,
        DataFusionError::NotImplemented(_) => Code::Unimplemented,
        DataFusionError::ResourcesExhausted(_) => Code::ResourceExhausted,
        DataFusionError::ArrowError(inner, _) => arrow_code(inner),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            datafusion_code(inner)
        }
        DataFusionError::Shared(inner) => datafusion_code(inner),
        DataFusionError::Collection(errors) => {
            errors.first().map_or(Code::Internal, datafusion_code)
        }
        _ => Code::Internal,
    }
}

fn extension_code(e: &ExtensionError) -> Code {
    match e {
        ExtensionError::InvalidArgument(_) => Code::InvalidArgument,
        ExtensionError::NotFound(_) => Code::NotFound,
        ExtensionError::AlreadyExists(_) => Code::AlreadyExists,
        ExtensionError::FailedPrecondition(_) | ExtensionError::Conflict(_) => {
            Code::FailedPrecondition
        }
        ExtensionError::ResourceExhausted(_) => Code::ResourceExhausted,
        ExtensionError::Unavailable(_) => Code::Unavailable,
        ExtensionError::Internal(_) | ExtensionError::Host(_) => Code::Internal,
    }
}

fn core_code(e: &CoreError) -> Code {
    match e {
        CoreError::InvalidArgument(_) => Code::InvalidArgument,
        CoreError::TableNotFound(_)
        | CoreError::SchemaNotFound(_)
        | CoreError::VersionNotFound { .. }
        | CoreError::ViewNotFound(_)
        | CoreError::FileNotFound(_) => Code::NotFound,
        CoreError::TableExists(_) | CoreError::SchemaExists(_) | CoreError::ViewExists(_) => {
            Code::AlreadyExists
        }
        CoreError::SchemaConflict { .. }
        | CoreError::CommitConflict { .. }
        | CoreError::BaseMoved { .. }
        | CoreError::ReadByViews { .. } => Code::FailedPrecondition,
        CoreError::Unauthenticated(_) | CoreError::LoginsThrottled { .. } => Code::Unauthenticated,
        CoreError::PermissionDenied(_) => Code::PermissionDenied,
        CoreError::Storage { .. } if e.is_storage_full() => Code::ResourceExhausted,
        CoreError::Storage { .. } | CoreError::Internal(_) => Code::Internal,
        CoreError::CorruptCatalog { .. } => Code::DataLoss,
        CoreError::Arrow(inner) => arrow_code(inner),
    }
}

fn code(e: &Error) -> Code {
    match e {
        Error::Core(inner) => core_code(inner),
        Error::Refused(_) | Error::BadCsv { .. } => Code::InvalidArgument,
        Error::NotSupported(_) => Code::Unimplemented,
        Error::HandleNotFound(_) => Code::NotFound,
        Error::ResourceExhausted(_) => Code::ResourceExhausted,
        Error::Cancelled(_) => Code::Cancelled,
        Error::Parquet(_) => Code::Internal,
        Error::DataFusion(inner) => datafusion_code(inner),
        Error::Extension(inner) => extension_code(inner),
    }
}

fn message(e: &Error) -> String {
    match e {
        Error::DataFusion(inner) => inner.strip_backtrace().to_string(),
        other => other.to_string(),
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
    let code = code(&e);
    let text = message(&e);
    if let Error::Core(CoreError::LoginsThrottled {
        retry_after_secs, ..
    }) = &e
    {
        let mut status = Status::new(code, text);
        status
            .metadata_mut()
            .insert("retry-after", (*retry_after_secs).into());
        return status;
    }
    match code {
        Code::Internal | Code::DataLoss => {
            let request_id = uuid::Uuid::new_v4();
            error!(%request_id, error = %text, "request failed");
            Status::new(code, format!("{text} (request id {request_id})"))
        }
        _ => {
            debug!(?code, error = %text, "request refused");
            Status::new(code, text)
        }
    }
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

    #[test]
    fn each_kind_gets_its_code() {
        let t = TableRef::new(None, "trips").unwrap();
        let cases = [
            (Error::invalid("bad"), Code::InvalidArgument),
            (CoreError::TableNotFound(t.clone()).into(), Code::NotFound),
            (
                CoreError::TableExists(t.clone()).into(),
                Code::AlreadyExists,
            ),
            (
                CoreError::SchemaConflict {
                    table: t.clone(),
                    differences: "x".into(),
                }
                .into(),
                Code::FailedPrecondition,
            ),
            (
                Error::ResourceExhausted("limit".into()),
                Code::ResourceExhausted,
            ),
            (
                CoreError::Unauthenticated("who".into()).into(),
                Code::Unauthenticated,
            ),
            (
                CoreError::PermissionDenied("no".into()).into(),
                Code::PermissionDenied,
            ),
            (
                Error::DataFusion(DataFusionError::Plan("no".into())),
                Code::InvalidArgument,
            ),
            (
                Error::DataFusion(DataFusionError::Context(
                    "ctx".into(),
                    Box::new(DataFusionError::ResourcesExhausted("mem".into())),
                )),
                Code::ResourceExhausted,
            ),
            (Error::internal("bug"), Code::Internal),
        ];
        for (error, expected) in cases {
            assert_eq!(error.to_status().code(), expected);
        }
    }

    #[test]
    fn a_full_disk_is_a_limit_not_a_fault() {
        let full = CoreError::storage(
            "writing manifest _catalog/tables/public/t/00000000000000000002.json",
            object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(std::io::Error::from(std::io::ErrorKind::StorageFull)),
            },
        );
        let status = full.to_status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("public/t/"),
            "{}",
            status.message()
        );
        let broken = CoreError::storage(
            "writing manifest",
            object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
            },
        );
        assert_eq!(broken.to_status().code(), Code::Internal);
    }

    #[test]
    fn messages_name_the_table_and_internal_ones_carry_a_request_id() {
        let status = CoreError::TableNotFound(TableRef::new(None, "trips").unwrap()).to_status();
        assert_eq!(status.message(), "table public.trips does not exist");
        let status = Error::internal("bug").to_status();
        assert!(
            status.message().contains("request id"),
            "{}",
            status.message()
        );
    }
}
