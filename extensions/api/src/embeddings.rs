//! What the server offers extensions for turning text into vectors: its
//! configured embedding models, by name, one of them the default.
//!
//! The models live in the server (they are configuration, and ingest fills
//! vector columns with them); extensions reach them only through this
//! trait, so an SQL function, an action and `knn()` all embed alike.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::Serialize;

use crate::Result;

/// Field metadata on a vector column naming the text column it embeds
/// (a table that fills it on ingest declares it so).
pub const EMBED_SOURCE_KEY: &str = "lakehouse.embed.source";
/// Field metadata on a vector column naming the model that embeds it.
pub const EMBED_MODEL_KEY: &str = "lakehouse.embed.model";

/// One configured model, as `list_models` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The name SQL and actions use (`embed(text, 'NAME')`).
    pub name: String,
    /// `local`, `ollama` or `openai`.
    pub provider: String,
    /// The provider's own model name (for `local`, its directory).
    pub model: String,
    pub dimensions: usize,
    pub default: bool,
}

/// The vectors of a batch of texts, row after row, each `dimensions` long
/// and, for models that normalise, of unit length.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub dimensions: usize,
    pub values: Vec<f32>,
}

impl Embeddings {
    /// How many texts were embedded.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.dimensions).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The `i`th text's vector.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dimensions..(i + 1) * self.dimensions]
    }
}

/// The server's embedding models.
#[async_trait]
pub trait EmbeddingService: Send + Sync + Debug {
    /// Every configured model, the default marked.
    fn models(&self) -> Vec<ModelInfo>;

    /// The model `name` names, or the default for `None`: its description,
    /// or `NotFound` listing the configured names.
    fn model(&self, name: Option<&str>) -> Result<ModelInfo>;

    /// Embeds `texts` with the model `name` names (the default for `None`),
    /// in the provider's batches; one vector per text, in order.
    async fn embed(&self, name: Option<&str>, texts: &[String]) -> Result<Embeddings>;
}
