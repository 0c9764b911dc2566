//! What goes wrong when embedding, and which extension error kind (and so
//! which gRPC status) each is.

use std::path::PathBuf;

use lakehouse_extension::ExtensionError;

/// The command that unpacks the local model.
pub const SETUP_COMMAND: &str = "scripts/bootstrap.sh (or any ./dev command)";

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "the local embedding model is missing: {path} does not exist; run {SETUP_COMMAND} to unpack all-MiniLM-L6-v2, or point models_dir (LAKEHOUSE_MODELS_DIR) at a directory holding it"
    )]
    ModelMissing { path: PathBuf },
    #[error("cannot load the embedding model file {path}: {message}")]
    ModelFile { path: PathBuf, message: String },
    #[error("unknown embedding model '{name}'; configured: {configured}")]
    UnknownModel { name: String, configured: String },
    #[error("embedding model '{model}': {message}")]
    Config { model: String, message: String },
    #[error("embedding model '{model}' failed: {message}")]
    Provider { model: String, message: String },
    #[error(
        "embedding model '{model}' at {endpoint} answered {actual} dimensions; configuration says {expected}"
    )]
    Dimensions {
        model: String,
        endpoint: String,
        expected: usize,
        actual: usize,
    },
    #[error("embedding model '{model}': {endpoint} failed after {attempts} attempt(s): {message}")]
    Endpoint {
        model: String,
        endpoint: String,
        attempts: u32,
        message: String,
    },
    #[error("{0}")]
    InvalidArgument(String),
}

pub type Result<T, E = EmbedError> = std::result::Result<T, E>;

impl From<EmbedError> for ExtensionError {
    fn from(e: EmbedError) -> Self {
        let message = e.to_string();
        match e {
            EmbedError::ModelMissing { .. } | EmbedError::ModelFile { .. } => {
                ExtensionError::FailedPrecondition(message)
            }
            EmbedError::UnknownModel { .. } => ExtensionError::NotFound(message),
            EmbedError::InvalidArgument(_) => ExtensionError::InvalidArgument(message),
            EmbedError::Config { .. } | EmbedError::Dimensions { .. } => {
                ExtensionError::FailedPrecondition(message)
            }
            EmbedError::Endpoint { .. } => ExtensionError::Unavailable(message),
            EmbedError::Provider { .. } => ExtensionError::Internal(message),
        }
    }
}
