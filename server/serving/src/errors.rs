//! The one classification of the engine's [`Error`] (and the core's and
//! extensions' within it) by what the caller can do about it, which each
//! protocol turns into its own codes: gRPC status for Flight, HTTP status
//! and problem documents for the HTTP API.
//!
//! The kind says what the caller can do (fix the request, create the
//! table, retry, give up); the message names what is concerned. Faults
//! that are ours are logged at error level with a request id that the
//! message carries, so an operator can find the log line a user reports.

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use tracing::{debug, error};

use lakehouse_engine::error::{CoreError, Error};
use lakehouse_extension::ExtensionError;

/// What went wrong, as far as the caller is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong: bad SQL, an unknown column, a type mismatch.
    InvalidArgument,
    /// A table, schema, version, view or handle does not exist.
    NotFound,
    /// What would be created exists.
    AlreadyExists,
    /// The state does not allow it now: a schema conflict, a concurrent
    /// change (run it again), a view reading the table.
    FailedPrecondition,
    /// A limit: request or query slots, rows, memory, time, upload size,
    /// a full disk.
    ResourceExhausted,
    /// No credentials, wrong ones, or too many failed logins.
    Unauthenticated,
    /// The caller's role does not allow it.
    PermissionDenied,
    /// Not supported (yet).
    Unimplemented,
    /// A service this request needs is down (an embedding provider).
    Unavailable,
    /// The client went away first; nothing was committed.
    Cancelled,
    /// A fault of ours: the message carries a request id.
    Internal,
    /// The catalog holds an object it cannot read.
    DataLoss,
}

impl ErrorKind {
    /// Whether the fault is the server's (logged with a request id).
    pub fn is_fault(self) -> bool {
        matches!(self, ErrorKind::Internal | ErrorKind::DataLoss)
    }
}

/// An error as a caller sees it: its kind, the message (with a request id
/// for a fault of ours, which is logged), and how long to wait before
/// trying again when that is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: ErrorKind,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl Refusal {
    pub fn of(error: &Error) -> Self {
        let kind = kind(error);
        let text = match error {
            Error::DataFusion(inner) => inner.strip_backtrace().to_string(),
            other => other.to_string(),
        };
        let retry_after_secs = match error {
            Error::Core(CoreError::LoginsThrottled {
                retry_after_secs, ..
            }) => Some(*retry_after_secs),
            _ => None,
        };
        let message = if kind.is_fault() {
            let request_id = uuid::Uuid::new_v4();
            error!(%request_id, error = %text, "request failed");
            format!("{text} (request id {request_id})")
        } else {
            debug!(?kind, error = %text, "request refused");
            text
        };
        Self {
            kind,
            message,
            retry_after_secs,
        }
    }
}

/// The kind of an engine (or core) error.
pub fn kind(e: &Error) -> ErrorKind {
    match e {
        Error::Core(inner) => core_kind(inner),
        Error::Refused(_) | Error::BadCsv { .. } => ErrorKind::InvalidArgument,
        Error::NotSupported(_) => ErrorKind::Unimplemented,
        Error::HandleNotFound(_) => ErrorKind::NotFound,
        Error::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
        Error::Cancelled(_) => ErrorKind::Cancelled,
        Error::Parquet(_) => ErrorKind::Internal,
        Error::DataFusion(inner) => datafusion_kind(inner),
        Error::Extension(inner) => extension_kind(inner),
    }
}

fn core_kind(e: &CoreError) -> ErrorKind {
    match e {
        CoreError::InvalidArgument(_) => ErrorKind::InvalidArgument,
        CoreError::TableNotFound(_)
        | CoreError::SchemaNotFound(_)
        | CoreError::VersionNotFound { .. }
        | CoreError::ViewNotFound(_)
        | CoreError::FileNotFound(_) => ErrorKind::NotFound,
        CoreError::TableExists(_) | CoreError::SchemaExists(_) | CoreError::ViewExists(_) => {
            ErrorKind::AlreadyExists
        }
        CoreError::SchemaConflict { .. }
        | CoreError::CommitConflict { .. }
        | CoreError::BaseMoved { .. }
        | CoreError::ReadByViews { .. } => ErrorKind::FailedPrecondition,
        CoreError::Unauthenticated(_) | CoreError::LoginsThrottled { .. } => {
            ErrorKind::Unauthenticated
        }
        CoreError::PermissionDenied(_) => ErrorKind::PermissionDenied,
        CoreError::Storage { .. } if e.is_storage_full() => ErrorKind::ResourceExhausted,
        CoreError::Storage { .. } | CoreError::Internal(_) => ErrorKind::Internal,
        CoreError::CorruptCatalog { .. } => ErrorKind::DataLoss,
        CoreError::Arrow(inner) => arrow_kind(inner),
    }
}

fn arrow_kind(e: &ArrowError) -> ErrorKind {
    match e {
        ArrowError::MemoryError(_) => ErrorKind::ResourceExhausted,
        ArrowError::NotYetImplemented(_) => ErrorKind::Unimplemented,
        ArrowError::IoError(..) | ArrowError::ExternalError(_) | ArrowError::CDataInterface(_) => {
            ErrorKind::Internal
        }
        _ => ErrorKind::InvalidArgument,
    }
}

fn datafusion_kind(e: &DataFusionError) -> ErrorKind {
    match e {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::Execution(_)
        | DataFusionError::Configuration(_) => ErrorKind::InvalidArgument,
        DataFusionError::NotImplemented(_) => ErrorKind::Unimplemented,
        DataFusionError::ResourcesExhausted(_) => ErrorKind::ResourceExhausted,
        DataFusionError::ArrowError(inner, _) => arrow_kind(inner),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            datafusion_kind(inner)
        }
        DataFusionError::Shared(inner) => datafusion_kind(inner),
        DataFusionError::Collection(errors) => {
            errors.first().map_or(ErrorKind::Internal, datafusion_kind)
        }
        _ => ErrorKind::Internal,
    }
}

fn extension_kind(e: &ExtensionError) -> ErrorKind {
    match e {
        ExtensionError::InvalidArgument(_) => ErrorKind::InvalidArgument,
        ExtensionError::NotFound(_) => ErrorKind::NotFound,
        ExtensionError::AlreadyExists(_) => ErrorKind::AlreadyExists,
        ExtensionError::FailedPrecondition(_) | ExtensionError::Conflict(_) => {
            ErrorKind::FailedPrecondition
        }
        ExtensionError::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
        ExtensionError::Unavailable(_) => ErrorKind::Unavailable,
        ExtensionError::Internal(_) | ExtensionError::Host(_) => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakehouse_core::catalog::TableRef;

    #[test]
    fn each_error_gets_its_kind() {
        let t = TableRef::new(None, "trips").unwrap();
        let cases = [
            (Error::invalid("bad"), ErrorKind::InvalidArgument),
            (
                CoreError::TableNotFound(t.clone()).into(),
                ErrorKind::NotFound,
            ),
            (
                CoreError::TableExists(t.clone()).into(),
                ErrorKind::AlreadyExists,
            ),
            (
                CoreError::SchemaConflict {
                    table: t.clone(),
                    differences: "x".into(),
                }
                .into(),
                ErrorKind::FailedPrecondition,
            ),
            (
                Error::ResourceExhausted("limit".into()),
                ErrorKind::ResourceExhausted,
            ),
            (
                CoreError::Unauthenticated("who".into()).into(),
                ErrorKind::Unauthenticated,
            ),
            (
                CoreError::PermissionDenied("no".into()).into(),
                ErrorKind::PermissionDenied,
            ),
            (
                Error::DataFusion(DataFusionError::Plan("no".into())),
                ErrorKind::InvalidArgument,
            ),
            (
                Error::DataFusion(DataFusionError::Context(
                    "ctx".into(),
                    Box::new(DataFusionError::ResourcesExhausted("mem".into())),
                )),
                ErrorKind::ResourceExhausted,
            ),
            (Error::internal("bug"), ErrorKind::Internal),
        ];
        for (error, expected) in cases {
            assert_eq!(kind(&error), expected, "{error}");
        }
    }

    #[test]
    fn a_full_disk_is_a_limit_not_a_fault() {
        let full = Error::from(CoreError::storage(
            "writing manifest _catalog/tables/public/t/00000000000000000002.json",
            object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(std::io::Error::from(std::io::ErrorKind::StorageFull)),
            },
        ));
        let refusal = Refusal::of(&full);
        assert_eq!(refusal.kind, ErrorKind::ResourceExhausted);
        assert!(refusal.message.contains("public/t/"), "{}", refusal.message);
        let broken = Error::from(CoreError::storage(
            "writing manifest",
            object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
            },
        ));
        assert_eq!(kind(&broken), ErrorKind::Internal);
    }

    #[test]
    fn messages_name_the_table_and_faults_carry_a_request_id() {
        let missing = Error::from(CoreError::TableNotFound(
            TableRef::new(None, "trips").unwrap(),
        ));
        assert_eq!(
            Refusal::of(&missing).message,
            "table public.trips does not exist"
        );
        let fault = Refusal::of(&Error::internal("bug"));
        assert!(fault.message.contains("request id"), "{}", fault.message);
    }
}
