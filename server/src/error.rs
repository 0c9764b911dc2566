//! The server's one error type.
//!
//! Every layer below the Flight service (storage, catalog, ingest, query)
//! returns [`Error`]; the Flight boundary turns it into a `tonic::Status` in
//! exactly one place (`flight::status`). Variants are chosen by what the
//! caller can do about them, so that mapping can pick the right gRPC code,
//! and every message names the schema, table, column or file concerned.

use datafusion::error::DataFusionError;
use lakehouse_extension::ExtensionError;

use crate::catalog::TableRef;

/// Result alias used throughout the server.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is malformed: bad SQL, a bad command, a bad option.
    #[error("{0}")]
    InvalidArgument(String),

    /// SQL the server understands but refuses to run, with the reason.
    #[error("refused: {0}")]
    Refused(String),

    /// SQL or a protocol feature the server does not support (yet).
    #[error("not supported: {0}")]
    NotSupported(String),

    #[error("table {0} does not exist")]
    TableNotFound(TableRef),

    /// A file named by the request is not in the store.
    #[error("file {0:?} does not exist in the store")]
    FileNotFound(String),

    #[error("schema {0:?} does not exist")]
    SchemaNotFound(String),

    /// A version that never existed, was vacuumed, or is a drop.
    #[error("version {version} of table {table} cannot be read: {detail}")]
    VersionNotFound {
        table: TableRef,
        version: u64,
        detail: String,
    },

    /// An uploaded CSV file that cannot be read: the line (from 1) and,
    /// when known, the column.
    #[error("CSV line {line}{}: {detail}", column.as_ref().map(|c| format!(", column {c:?}")).unwrap_or_default())]
    BadCsv {
        line: u64,
        column: Option<String>,
        detail: String,
    },

    #[error("table {0} already exists")]
    TableExists(TableRef),

    #[error("schema {0:?} already exists")]
    SchemaExists(String),

    /// Appending data whose columns differ from the table's.
    #[error("schema of the data does not match table {table}: {differences}")]
    SchemaConflict {
        table: TableRef,
        differences: String,
    },

    /// Another writer committed a version this request could not be
    /// re-based onto (overwrite or create racing another writer).
    #[error("table {table} changed while this request ran: {detail}")]
    CommitConflict { table: TableRef, detail: String },

    /// The client abandoned the request; nothing was committed.
    #[error("{0}")]
    Cancelled(String),

    /// No credentials, or ones that do not check out.
    #[error("{0}")]
    Unauthenticated(String),

    /// Authenticated, but the caller's role does not allow the operation.
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    /// A server-side limit was hit.
    #[error("{0}")]
    ResourceExhausted(String),

    /// A prepared statement or other server-held handle that does not exist.
    #[error("{0}")]
    HandleNotFound(String),

    /// The object store failed; `context` says what we were doing.
    #[error("storage error while {context}: {source}")]
    Storage {
        context: String,
        #[source]
        source: object_store::Error,
    },

    /// A catalog object in the store could not be decoded.
    #[error("catalog object {path} is corrupt: {detail}")]
    CorruptCatalog { path: String, detail: String },

    /// An extension's error, with the kind it chose.
    #[error(transparent)]
    Extension(#[from] ExtensionError),

    #[error(transparent)]
    DataFusion(#[from] DataFusionError),

    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),

    /// A bug or an impossible state; logged with the request id.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn storage(context: impl Into<String>, source: object_store::Error) -> Self {
        Self::Storage {
            context: context.into(),
            source,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }

    /// Errors we raise inside DataFusion callbacks travel as
    /// `DataFusionError::External`; bring them back out so they keep their
    /// kind (a missing table stays NotFound) instead of becoming opaque.
    pub fn from_datafusion(error: DataFusionError) -> Self {
        match error {
            DataFusionError::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => match other.downcast::<ExtensionError>() {
                    Ok(extension) => Error::Extension(*extension),
                    Err(other) => Error::DataFusion(DataFusionError::External(other)),
                },
            },
            DataFusionError::Context(context, inner) => match Error::from_datafusion(*inner) {
                Error::DataFusion(inner) => {
                    Error::DataFusion(DataFusionError::Context(context, Box::new(inner)))
                }
                ours => ours,
            },
            DataFusionError::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
                Ok(inner) => Error::from_datafusion(inner),
                Err(shared) => Error::DataFusion(DataFusionError::Shared(shared)),
            },
            other => Error::DataFusion(other),
        }
    }

    /// Wraps this error for returning from a DataFusion trait method.
    pub fn into_datafusion(self) -> DataFusionError {
        match self {
            Error::DataFusion(inner) => inner,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}
