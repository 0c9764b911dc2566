//! Errors an extension reports, by kind, so the server can answer each
//! with the right gRPC status.

/// What went wrong in an extension; the message names what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    /// The request is wrong: a bad argument, body or option.
    #[error("{0}")]
    InvalidArgument(String),
    /// Something the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Something the request would create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the state does not allow it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit was reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Two extensions (or an extension and the server) claim one name, or
    /// configuration names an extension that does not exist.
    #[error("{0}")]
    Conflict(String),
    /// A service the extension depends on (an embedding endpoint, say)
    /// cannot be reached or keeps failing; trying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A fault inside the extension.
    #[error("{0}")]
    Internal(String),
    /// An error of the server's own, raised by one of its actions (which
    /// implement the same [`crate::Action`] trait) and carried whole, so
    /// the server answers it by its own kinds.
    #[error(transparent)]
    Host(Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = ExtensionError> = std::result::Result<T, E>;
