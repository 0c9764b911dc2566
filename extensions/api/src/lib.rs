//! The extension API: what an extension is, what it may add to a server,
//! and the registry a server installs its extensions from.
//!
//! An extension is compiled in and adds SQL scalar functions, SQL table
//! functions and DoAction handlers. The server builds a [`Registry`] of
//! every extension it was built with, then installs the ones its
//! configuration enables; installing refuses two contributions with one
//! name, so an extension can never silently replace another's function.
//!
//! This crate depends on DataFusion's function traits and nothing of the
//! server: an extension sees the server only through [`Host`].

mod action;
mod embeddings;
mod error;
mod parameters;
mod registry;
mod vectors;

use std::sync::Arc;

use datafusion::catalog::TableFunctionImpl;
use datafusion::logical_expr::ScalarUDF;

pub use action::{Access, Action, expect_empty_body, parse_body, to_json};
pub use embeddings::{
    EMBED_MODEL_KEY, EMBED_SOURCE_KEY, EmbeddingService, Embeddings, ModelInfo, embed_strings,
    vector_array, vector_type,
};
pub use error::{ExtensionError, Result};
pub use parameters::{Parameterized, ParameterizedTable};
pub use registry::{ExtensionInfo, FunctionInfo, FunctionKind, Installed, Registry, Selection};
pub use vectors::{
    HybridOptions, HybridRequest, IndexInfo, IndexKind, IndexParams, IndexRequest, Metric,
    Precision, SearchOptions, SearchRequest, TextSearchRequest, VectorService,
};

/// A compiled-in extension.
pub trait Extension: Send + Sync + 'static {
    /// The name configuration enables and disables it by: lower case,
    /// unique among extensions.
    fn name(&self) -> &'static str;

    /// One sentence for `list_extensions`.
    fn description(&self) -> &'static str;

    /// Whether it is installed when configuration names it neither way.
    fn enabled_by_default(&self) -> bool {
        true
    }

    /// What it adds to a server, given what the server offers.
    fn contributions(&self, host: &Host) -> Result<Contributions>;
}

/// What the server offers extensions.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// Nearest-neighbour search over the server's vector tables, when it
    /// has any storage for them.
    pub vectors: Option<Arc<dyn VectorService>>,
    /// The configured embedding models.
    pub embeddings: Option<Arc<dyn EmbeddingService>>,
}

/// Everything one extension adds.
#[derive(Default)]
pub struct Contributions {
    pub scalar_functions: Vec<ScalarFunction>,
    pub table_functions: Vec<TableFunction>,
    pub actions: Vec<Arc<dyn Action>>,
}

/// An SQL scalar function and what it does, in one line.
pub struct ScalarFunction {
    pub udf: ScalarUDF,
    pub description: String,
}

/// An SQL table function (used in `FROM`) and what it does, in one line.
pub struct TableFunction {
    pub name: String,
    pub function: Arc<dyn TableFunctionImpl>,
    pub description: String,
}
