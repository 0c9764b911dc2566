//! What the server offers extensions for turning text into vectors: its
//! configured embedding models, by name, one of them the default.
//!
//! The models live in the server (they are configuration, and ingest fills
//! vector columns with them); extensions reach them only through this
//! trait, so an SQL function, an action and `knn()` all embed alike.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, StringArray, new_null_array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field};
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

/// A vector column's type for `dimensions`, as vector tables store it.
pub fn vector_type(dimensions: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, true)),
        dimensions as i32,
    )
}

/// `vectors` as a vector column of `rows` rows, null where `valid` is false.
pub fn vector_array(
    vectors: Embeddings,
    valid: Option<NullBuffer>,
) -> datafusion::common::Result<ArrayRef> {
    let field = Arc::new(Field::new("item", DataType::Float32, true));
    let values = Arc::new(Float32Array::from(vectors.values));
    Ok(Arc::new(FixedSizeListArray::try_new(
        field,
        vectors.dimensions as i32,
        values,
        valid,
    )?))
}

/// Embeds a string column, each distinct text once; nulls stay null.
pub async fn embed_strings(
    models: &dyn EmbeddingService,
    model: Option<&str>,
    texts: &StringArray,
) -> datafusion::common::Result<ArrayRef> {
    let to_df =
        |e: crate::ExtensionError| datafusion::common::DataFusionError::External(Box::new(e));
    let info = models.model(model).map_err(to_df)?;
    if texts.null_count() == texts.len() {
        return Ok(new_null_array(&vector_type(info.dimensions), texts.len()));
    }
    let mut distinct: Vec<String> = Vec::new();
    let mut slot: HashMap<&str, usize> = HashMap::new();
    let rows: Vec<Option<usize>> = texts
        .iter()
        .map(|text| {
            text.map(|t| {
                *slot.entry(t).or_insert_with(|| {
                    distinct.push(t.to_string());
                    distinct.len() - 1
                })
            })
        })
        .collect();
    let embedded = models.embed(model, &distinct).await.map_err(to_df)?;
    let dimensions = embedded.dimensions;
    let mut values = Vec::with_capacity(rows.len() * dimensions);
    for row in &rows {
        match row {
            Some(i) => values.extend_from_slice(embedded.row(*i)),
            None => values.extend(std::iter::repeat_n(0.0, dimensions)),
        }
    }
    vector_array(Embeddings { dimensions, values }, texts.nulls().cloned())
}
