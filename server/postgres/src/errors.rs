//! The engine's errors as Postgres clients read them: the message the
//! other protocols send, under the SQLSTATE code a Postgres server would
//! use, so that drivers raise the exception class their users catch
//! (psycopg's `UndefinedTable`, `InsufficientPrivilege`, ...).

use datafusion::error::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};

use lakehouse_engine::error::{CoreError, Error};
use lakehouse_serving::errors::{ErrorKind, Refusal};

/// `error` as an `ERROR` response: the statement fails, the connection
/// stays.
pub fn pg_error(error: &Error) -> PgWireError {
    let refusal = Refusal::of(error);
    let code = sqlstate(error, refusal.kind);
    let mut info = ErrorInfo::new("ERROR".into(), code.into(), refusal.message);
    if let Some(secs) = refusal.retry_after_secs {
        info.hint = Some(format!("retry in {secs} s"));
    }
    PgWireError::UserError(Box::new(info))
}

/// An error of this port's own, with its SQLSTATE code.
pub fn refused(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}

/// An error that ends the connection (failed login, TLS required).
pub fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}

/// SQLSTATE: `query_canceled`, for a cancel request and a timeout alike,
/// as Postgres does.
pub const QUERY_CANCELED: &str = "57014";
/// SQLSTATE: `undefined_object` (an unknown setting).
pub const UNDEFINED_OBJECT: &str = "42704";
/// SQLSTATE: `invalid_parameter_value`.
pub const INVALID_PARAMETER_VALUE: &str = "22023";
/// SQLSTATE: `in_failed_sql_transaction`.
pub const IN_FAILED_TRANSACTION: &str = "25P02";

/// The SQLSTATE of an engine error of `kind`.
fn sqlstate(error: &Error, kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidArgument => invalid_argument_code(error),
        ErrorKind::NotFound => match error {
            Error::Core(CoreError::SchemaNotFound(_)) => "3F000",
            Error::Core(CoreError::TableNotFound(_) | CoreError::ViewNotFound(_)) => "42P01",
            Error::HandleNotFound(_) => "26000",
            _ => UNDEFINED_OBJECT,
        },
        ErrorKind::AlreadyExists => match error {
            Error::Core(CoreError::SchemaExists(_)) => "42P06",
            _ => "42P07",
        },
        ErrorKind::FailedPrecondition => match error {
            // Another writer committed first: clients retry serialization
            // failures.
            Error::Core(CoreError::CommitConflict { .. } | CoreError::BaseMoved { .. }) => "40001",
            Error::Core(CoreError::ReadByViews { .. }) => "2BP01",
            _ => "55000",
        },
        ErrorKind::ResourceExhausted => match error {
            Error::ResourceExhausted(message) if message.contains("query_timeout_secs") => {
                QUERY_CANCELED
            }
            Error::DataFusion(DataFusionError::ResourcesExhausted(_)) => "53200",
            Error::Core(core) if core.is_storage_full() => "53100",
            _ => "53000",
        },
        ErrorKind::Unauthenticated => "28P01",
        ErrorKind::PermissionDenied => "42501",
        ErrorKind::Unimplemented => "0A000",
        ErrorKind::Unavailable => "58000",
        ErrorKind::Cancelled => QUERY_CANCELED,
        ErrorKind::Internal => "XX000",
        ErrorKind::DataLoss => "XX001",
    }
}

/// Bad SQL: a syntax error, an unknown column, or the general class.
fn invalid_argument_code(error: &Error) -> &'static str {
    match error {
        Error::DataFusion(DataFusionError::SQL(..)) => "42601",
        Error::DataFusion(DataFusionError::SchemaError(inner, _))
            if matches!(
                inner.as_ref(),
                datafusion::common::SchemaError::FieldNotFound { .. }
            ) =>
        {
            "42703"
        }
        Error::DataFusion(DataFusionError::Execution(_) | DataFusionError::ArrowError(..)) => {
            "22000"
        }
        Error::Core(CoreError::InvalidArgument(message)) if message.starts_with("SQL parse") => {
            "42601"
        }
        _ => "42000",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakehouse_core::catalog::TableRef;

    fn code(error: Error) -> String {
        match pg_error(&error) {
            PgWireError::UserError(info) => info.code,
            other => panic!("not a user error: {other}"),
        }
    }

    #[test]
    fn errors_carry_the_sqlstate_postgres_would_send() {
        let trips = TableRef::new(None, "trips").unwrap();
        assert_eq!(
            code(CoreError::TableNotFound(trips.clone()).into()),
            "42P01"
        );
        assert_eq!(
            code(CoreError::SchemaNotFound("sales".into()).into()),
            "3F000"
        );
        assert_eq!(code(CoreError::TableExists(trips).into()), "42P07");
        assert_eq!(
            code(CoreError::PermissionDenied("no".into()).into()),
            "42501"
        );
        assert_eq!(
            code(CoreError::Unauthenticated("no".into()).into()),
            "28P01"
        );
        assert_eq!(code(Error::invalid("SQL parse error: x")), "42601");
        assert_eq!(
            code(lakehouse_serving::query_slots::timed_out(
                std::time::Duration::from_secs(1)
            )),
            QUERY_CANCELED
        );
        assert_eq!(code(Error::ResourceExhausted("rows".into())), "53000");
        assert_eq!(code(Error::NotSupported("x".into())), "0A000");
    }
}
