//! `embed` and `list_models`: DoAction verbs over the server's embedding
//! models. `embed` answers Arrow (an IPC stream), since a vector per text
//! is exactly what Arrow carries well; `list_models` answers JSON.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::ipc::writer::StreamWriter;
use lakehouse_extension::{
    Access, Action, EmbeddingService, ExtensionError, Result, embed_strings, parse_body, to_json,
    vector_type,
};
use serde::Deserialize;

/// Most texts one `embed` action takes; larger jobs belong in SQL over a
/// table or in embedding on ingest.
pub const MAX_TEXTS: usize = 100_000;

pub fn actions(models: &Arc<dyn EmbeddingService>) -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(EmbedAction(models.clone())),
        Arc::new(ListModels(models.clone())),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedBody {
    model: Option<String>,
    texts: Vec<Option<String>>,
}

struct EmbedAction(Arc<dyn EmbeddingService>);

#[async_trait]
impl Action for EmbedAction {
    fn name(&self) -> &str {
        "embed"
    }

    fn description(&self) -> &str {
        "Embeds texts with a configured model."
    }

    fn body(&self) -> &str {
        "{\"model\" (optional, the default model), \"texts\": [...]} (at most 100,000; null stays null)"
    }

    fn result(&self) -> &str {
        "an Arrow IPC stream with one column `embedding`, FixedSizeList<Float32, dimensions>, one row per text in order"
    }

    fn takes_query_slot(&self) -> bool {
        true
    }

    fn access(&self) -> Access {
        Access::Read
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        let body: EmbedBody = parse_body(self.name(), body).map_err(|e| {
            ExtensionError::InvalidArgument(format!(
                "{e}; expected {{\"model\": \"NAME\", \"texts\": [\"...\"]}}"
            ))
        })?;
        if body.texts.len() > MAX_TEXTS {
            return Err(ExtensionError::ResourceExhausted(format!(
                "action \"embed\" takes at most {MAX_TEXTS} texts, got {}; embed a table with SQL embed() or on ingest",
                body.texts.len()
            )));
        }
        let info = self.0.model(body.model.as_deref())?;
        let texts = StringArray::from(body.texts);
        let vectors = embed_strings(self.0.as_ref(), body.model.as_deref(), &texts)
            .await
            .map_err(|e| match e {
                datafusion::common::DataFusionError::External(inner) => {
                    match inner.downcast::<ExtensionError>() {
                        Ok(e) => *e,
                        Err(other) => ExtensionError::Internal(other.to_string()),
                    }
                }
                other => ExtensionError::Internal(other.to_string()),
            })?;
        let schema = Arc::new(Schema::new(vec![Field::new(
            "embedding",
            vector_type(info.dimensions),
            true,
        )]));
        let internal =
            |e: datafusion::arrow::error::ArrowError| ExtensionError::Internal(e.to_string());
        let batch = RecordBatch::try_new(schema.clone(), vec![vectors]).map_err(internal)?;
        let mut writer = StreamWriter::try_new(Vec::new(), &schema).map_err(internal)?;
        writer.write(&batch).map_err(internal)?;
        writer.into_inner().map_err(internal)
    }
}

struct ListModels(Arc<dyn EmbeddingService>);

#[async_trait]
impl Action for ListModels {
    fn name(&self) -> &str {
        "list_models"
    }

    fn description(&self) -> &str {
        "The configured embedding models."
    }

    fn body(&self) -> &str {
        "empty"
    }

    fn result(&self) -> &str {
        "JSON array of {name, provider, model, dimensions, default}"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    async fn run(&self, _body: &[u8]) -> Result<Vec<u8>> {
        to_json(&self.0.models())
    }
}
