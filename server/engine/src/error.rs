//! The engine's error type: the core's errors, and what running SQL,
//! reading uploads and calling extensions adds to them.
//!
//! The Flight boundary turns it into a `tonic::Status` in exactly one place
//! (`lakehouse-flight`'s `status`), so variants are chosen by what the
//! caller can do about them and every message names the table, column,
//! file or line concerned.

use datafusion::error::DataFusionError;
use lakehouse_extension::ExtensionError;

pub use lakehouse_core::Error as CoreError;

/// Result alias used throughout the engine and the Flight service.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Storage, catalog or authentication failed.
    #[error(transparent)]
    Core(#[from] CoreError),

    /// SQL the server understands but refuses to run, with the reason.
    #[error("refused: {0}")]
    Refused(String),

    /// SQL or a protocol feature the server does not support (yet).
    #[error("not supported: {0}")]
    NotSupported(String),

    /// An uploaded CSV file that cannot be read: the line (from 1) and,
    /// when known, the column.
    #[error("CSV line {line}{}: {detail}", column.as_ref().map(|c| format!(", column {c:?}")).unwrap_or_default())]
    BadCsv {
        line: u64,
        column: Option<String>,
        detail: String,
    },

    /// The client abandoned the request; nothing was committed.
    #[error("{0}")]
    Cancelled(String),

    /// A server-side limit was hit.
    #[error("{0}")]
    ResourceExhausted(String),

    /// A prepared statement or other server-held handle that does not exist.
    #[error("{0}")]
    HandleNotFound(String),

    /// An extension's error, with the kind it chose.
    #[error(transparent)]
    Extension(ExtensionError),

    #[error(transparent)]
    DataFusion(#[from] DataFusionError),

    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// An action's error: the server's own actions carry theirs whole
/// ([`ExtensionError::Host`]), and keep their kind here.
impl From<ExtensionError> for Error {
    fn from(error: ExtensionError) -> Self {
        match error {
            ExtensionError::Host(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => match other.downcast::<CoreError>() {
                    Ok(core) => Error::Core(*core),
                    Err(other) => Error::Extension(ExtensionError::Host(other)),
                },
            },
            other => Error::Extension(other),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(error: arrow::error::ArrowError) -> Self {
        Self::Core(CoreError::Arrow(error))
    }
}

impl Error {
    pub fn storage(context: impl Into<String>, source: object_store::Error) -> Self {
        Self::Core(CoreError::storage(context, source))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Core(CoreError::invalid(message))
    }

    /// A bug or an impossible state.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Core(CoreError::Internal(message.into()))
    }

    /// Errors we raise inside DataFusion callbacks travel as
    /// `DataFusionError::External`; bring them back out so they keep their
    /// kind (a missing table stays NotFound) instead of becoming opaque.
    pub fn from_datafusion(error: DataFusionError) -> Self {
        match error {
            DataFusionError::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => match other.downcast::<ExtensionError>() {
                    Ok(extension) => Error::from(*extension),
                    Err(other) => match other.downcast::<CoreError>() {
                        Ok(core) => Error::Core(*core),
                        Err(other) => Error::DataFusion(DataFusionError::External(other)),
                    },
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
