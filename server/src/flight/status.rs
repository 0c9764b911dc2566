//! The one mapping from [`Error`] to gRPC status.
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

use crate::error::Error;

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
        ExtensionError::Internal(_) => Code::Internal,
    }
}

fn code(e: &Error) -> Code {
    match e {
        Error::InvalidArgument(_) | Error::Refused(_) | Error::BadCsv { .. } => {
            Code::InvalidArgument
        }
        Error::NotSupported(_) => Code::Unimplemented,
        Error::TableNotFound(_)
        | Error::SchemaNotFound(_)
        | Error::VersionNotFound { .. }
        | Error::FileNotFound(_)
        | Error::HandleNotFound(_) => Code::NotFound,
        Error::TableExists(_) | Error::SchemaExists(_) => Code::AlreadyExists,
        Error::SchemaConflict { .. } | Error::CommitConflict { .. } => Code::FailedPrecondition,
        Error::ResourceExhausted(_) => Code::ResourceExhausted,
        Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::PermissionDenied(_) => Code::PermissionDenied,
        Error::Cancelled(_) => Code::Cancelled,
        Error::Storage { .. } | Error::Parquet(_) | Error::Internal(_) => Code::Internal,
        Error::CorruptCatalog { .. } => Code::DataLoss,
        Error::DataFusion(inner) => datafusion_code(inner),
        Error::Arrow(inner) => arrow_code(inner),
        Error::Extension(inner) => extension_code(inner),
    }
}

fn message(e: &Error) -> String {
    match e {
        Error::DataFusion(inner) => inner.strip_backtrace().to_string(),
        other => other.to_string(),
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let code = code(&e);
        let text = message(&e);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableRef;

    #[test]
    fn each_kind_gets_its_code() {
        let t = TableRef::new(None, "trips").unwrap();
        let cases = [
            (Error::invalid("bad"), Code::InvalidArgument),
            (Error::TableNotFound(t.clone()), Code::NotFound),
            (Error::TableExists(t.clone()), Code::AlreadyExists),
            (
                Error::SchemaConflict {
                    table: t.clone(),
                    differences: "x".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                Error::ResourceExhausted("limit".into()),
                Code::ResourceExhausted,
            ),
            (Error::Unauthenticated("who".into()), Code::Unauthenticated),
            (Error::PermissionDenied("no".into()), Code::PermissionDenied),
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
            (Error::Internal("bug".into()), Code::Internal),
        ];
        for (error, expected) in cases {
            assert_eq!(Status::from(error).code(), expected);
        }
    }

    #[test]
    fn messages_name_the_table_and_internal_ones_carry_a_request_id() {
        let status = Status::from(Error::TableNotFound(TableRef::new(None, "trips").unwrap()));
        assert_eq!(status.message(), "table public.trips does not exist");
        let status = Status::from(Error::Internal("bug".into()));
        assert!(
            status.message().contains("request id"),
            "{}",
            status.message()
        );
    }
}
