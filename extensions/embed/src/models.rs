//! The server's embedding models: what configuration names, each with its
//! provider, serving [`EmbeddingService`] for SQL, actions and ingest.
//!
//! A call is split into the model's batches, and up to its `concurrency`
//! batches are in flight at once; the vectors come back in the texts'
//! order.

use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use lakehouse_extension::{EmbeddingService, Embeddings, ExtensionError, ModelInfo};

use crate::config::{ModelsConfig, ProviderKind, ResolvedModel};
use crate::error::{EmbedError, Result};
use crate::providers::{Provider, provider};

/// The local model's vector length, read from its `config.json` without
/// loading its weights (planning needs it before the first embedding).
fn local_dimensions(model: &ResolvedModel) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct Hidden {
        hidden_size: usize,
    }
    let dir = model.dir.as_ref()?;
    let bytes = std::fs::read(dir.join("config.json")).ok()?;
    serde_json::from_slice::<Hidden>(&bytes)
        .ok()
        .map(|h| h.hidden_size)
}

/// How long the start-up dimension check waits for a provider.
const DIMENSIONS_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug)]
struct Entry {
    model: ResolvedModel,
    provider: Arc<dyn Provider>,
}

/// Every configured model.
#[derive(Debug)]
pub struct Models {
    default_model: String,
    entries: Vec<Entry>,
}

impl Models {
    /// Builds each model's provider. Nothing is loaded or contacted yet:
    /// a server starts even when a model is missing or an endpoint is
    /// down, and says so when the model is used.
    pub fn new(config: ModelsConfig) -> Result<Self> {
        let entries = config
            .models
            .into_iter()
            .map(|mut model| {
                if model.provider == ProviderKind::Local && model.dimensions.is_none() {
                    model.dimensions = local_dimensions(&model);
                }
                Ok(Entry {
                    provider: provider(&model)?,
                    model,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            default_model: config.default_model,
            entries,
        })
    }

    /// Loads the local models in the background, logging (not failing)
    /// when one is missing, so the first `embed()` does not pay the load.
    pub fn warm_up(self: &Arc<Self>) {
        for entry in &self.entries {
            if entry.model.provider != ProviderKind::Local {
                continue;
            }
            let provider = entry.provider.clone();
            let name = entry.model.name.clone();
            tokio::spawn(async move {
                if let Err(e) = provider.embed_batch(&[String::new()]).await {
                    tracing::warn!(model = %name, "{e}");
                }
            });
        }
    }

    /// Compares each configured vector length with what the provider
    /// reports, where it can tell (Ollama's `/api/show`): a disagreement is
    /// an error, so a server does not start with a model that would fail
    /// every call. A provider that cannot be asked within
    /// [`DIMENSIONS_CHECK_TIMEOUT`] is logged and checked on every answer.
    pub async fn check_dimensions(&self) -> Result<()> {
        let checks = self.entries.iter().map(|entry| async move {
            let Some(expected) = entry.model.dimensions else {
                return Ok(());
            };
            let asked = tokio::time::timeout(
                DIMENSIONS_CHECK_TIMEOUT,
                entry.provider.reported_dimensions(),
            )
            .await;
            match asked {
                Ok(Ok(Some((actual, url)))) if actual != expected => Err(EmbedError::Dimensions {
                    model: entry.model.name.clone(),
                    endpoint: url,
                    expected,
                    actual,
                }),
                Ok(Ok(Some((_, url)))) => {
                    tracing::info!(model = %entry.model.name, %url, dimensions = expected, "dimensions confirmed");
                    Ok(())
                }
                Ok(Ok(None)) => Ok(()),
                Ok(Err(e)) => {
                    tracing::warn!(model = %entry.model.name, "dimensions not checked at start: {e}");
                    Ok(())
                }
                Err(_) => {
                    tracing::warn!(
                        model = %entry.model.name,
                        "dimensions not checked at start: no answer within {DIMENSIONS_CHECK_TIMEOUT:?}"
                    );
                    Ok(())
                }
            }
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .collect()
    }

    fn entry(&self, name: Option<&str>) -> Result<&Entry> {
        let name = name.unwrap_or(&self.default_model);
        self.entries
            .iter()
            .find(|e| e.model.name == name)
            .ok_or_else(|| EmbedError::UnknownModel {
                name: name.to_string(),
                configured: self
                    .entries
                    .iter()
                    .map(|e| e.model.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn info(&self, entry: &Entry) -> Result<ModelInfo> {
        let dimensions = match entry.model.dimensions {
            Some(d) => d,
            None => {
                return Err(EmbedError::ModelMissing {
                    path: entry
                        .model
                        .dir
                        .clone()
                        .unwrap_or_default()
                        .join("config.json"),
                });
            }
        };
        Ok(ModelInfo {
            name: entry.model.name.clone(),
            provider: entry.model.provider.as_str().into(),
            model: entry.model.model.clone(),
            dimensions,
            default: entry.model.name == self.default_model,
        })
    }

    async fn embed_with(&self, entry: &Entry, texts: &[String]) -> Result<Embeddings> {
        let info = self.info(entry)?;
        let batches: Vec<Vec<String>> = texts
            .chunks(entry.model.batch_size)
            .map(<[String]>::to_vec)
            .collect();
        let vectors: Vec<Vec<f32>> = futures::stream::iter(batches)
            .map(|batch| {
                let provider = entry.provider.clone();
                async move { provider.embed_batch(&batch).await }
            })
            .buffered(entry.model.concurrency)
            .try_collect()
            .await?;
        Ok(Embeddings {
            dimensions: info.dimensions,
            values: vectors.concat(),
        })
    }
}

#[async_trait]
impl EmbeddingService for Models {
    fn models(&self) -> Vec<ModelInfo> {
        self.entries
            .iter()
            .map(|e| {
                self.info(e).unwrap_or_else(|_| ModelInfo {
                    name: e.model.name.clone(),
                    provider: e.model.provider.as_str().into(),
                    model: e.model.model.clone(),
                    dimensions: 0,
                    default: e.model.name == self.default_model,
                })
            })
            .collect()
    }

    fn model(&self, name: Option<&str>) -> lakehouse_extension::Result<ModelInfo> {
        Ok(self.info(self.entry(name)?)?)
    }

    async fn embed(
        &self,
        name: Option<&str>,
        texts: &[String],
    ) -> lakehouse_extension::Result<Embeddings> {
        let entry = self.entry(name)?;
        self.embed_with(entry, texts)
            .await
            .map_err(ExtensionError::from)
    }
}
