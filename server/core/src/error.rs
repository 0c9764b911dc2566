//! The core's error type: what storage, the catalog and authentication
//! can fail with.
//!
//! Variants are chosen by what the caller can do about them, so the Flight
//! boundary's one mapping (`lakehouse-flight`'s `status`) can pick the right
//! gRPC code, and every message names the schema, table, column or file
//! concerned. The engine's error wraps this one.

use crate::catalog::TableRef;

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is malformed: bad SQL, a bad command, a bad option.
    #[error("{0}")]
    InvalidArgument(String),

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

    #[error("table {0} already exists")]
    TableExists(TableRef),

    #[error("schema {0:?} already exists")]
    SchemaExists(String),

    #[error("view {0} already exists")]
    ViewExists(TableRef),

    #[error("view {0} does not exist")]
    ViewNotFound(TableRef),

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

    /// A change made on one version of a table that must be committed
    /// right after it found a newer version there (another writer came
    /// first); the writer makes the change again on the newest version.
    #[error("table {table} moved from version {base} to {newest} while this change was made")]
    BaseMoved {
        table: TableRef,
        base: u64,
        newest: u64,
    },

    /// A table that views read cannot be renamed: they would read nothing.
    #[error(
        "table {table} is read by {views}: drop or replace them (CREATE OR REPLACE VIEW) first, then rename the table"
    )]
    ReadByViews { table: TableRef, views: String },

    /// No credentials, or ones that do not check out.
    #[error("{0}")]
    Unauthenticated(String),

    /// Password logins refused without checking, after too many failures
    /// from the client or for the user name.
    #[error("too many failed logins {who}; retry in {retry_after_secs} s")]
    LoginsThrottled { who: String, retry_after_secs: u64 },

    /// Authenticated, but the caller's role does not allow the operation.
    #[error("permission denied: {0}")]
    PermissionDenied(String),

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

    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

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

    /// Whether this is the store running out of space.
    pub fn is_storage_full(&self) -> bool {
        is_storage_full(self)
    }
}

/// Whether `error`, or any error it was caused by, is a full disk or an
/// exhausted quota (ENOSPC, EDQUOT): a limit the caller can do something
/// about, not a fault of the server.
pub fn is_storage_full(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        {
            return true;
        }
        current = e.source();
    }
    false
}
