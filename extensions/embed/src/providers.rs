//! The providers behind one trait: each embeds one batch of texts and
//! checks that it got one vector of the configured length per text.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OnceCell;

use crate::config::{ProviderKind, ResolvedModel};
use crate::error::{EmbedError, Result};
use crate::http::Endpoint;
use crate::local::LocalModel;

/// Something that turns a batch of texts into vectors.
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// One vector per text, row after row, each `dimensions` long.
    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<f32>>;

    /// The vector length the provider reports for its model without
    /// embedding anything, where it can tell, with the URL that told.
    async fn reported_dimensions(&self) -> Result<Option<(usize, String)>> {
        Ok(None)
    }
}

/// Builds the provider a resolved model asks for.
pub fn provider(model: &ResolvedModel) -> Result<Arc<dyn Provider>> {
    Ok(match model.provider {
        ProviderKind::Local => Arc::new(Local {
            model: model.clone(),
            loaded: OnceCell::new(),
        }),
        ProviderKind::Ollama => Arc::new(Ollama {
            endpoint: Endpoint::new(model, "/api/embed", None)?,
            show: Endpoint::new(model, "/api/show", None)?,
            model: model.clone(),
        }),
        ProviderKind::Openai => {
            let key = model
                .api_key_env
                .as_deref()
                .and_then(|var| std::env::var(var).ok())
                .filter(|key| !key.is_empty());
            if key.is_none() {
                tracing::warn!(
                    model = %model.name,
                    "{} is not set: requests to {} carry no API key",
                    model.api_key_env.as_deref().unwrap_or("the API key variable"),
                    model.endpoint
                );
            }
            Arc::new(OpenAi {
                endpoint: Endpoint::new(model, "/v1/embeddings", key)?,
                model: model.clone(),
            })
        }
    })
}

/// The in-process model, loaded on first use (and again after a failed
/// load, so unpacking it does not need a restart).
#[derive(Debug)]
pub struct Local {
    model: ResolvedModel,
    loaded: OnceCell<Arc<LocalModel>>,
}

impl Local {
    async fn loaded(&self) -> Result<Arc<LocalModel>> {
        self.loaded
            .get_or_try_init(|| async {
                let dir = self.model.dir.clone().unwrap_or_default();
                let started = std::time::Instant::now();
                let model = tokio::task::spawn_blocking(move || LocalModel::load(&dir))
                    .await
                    .map_err(|e| EmbedError::Provider {
                        model: self.model.name.clone(),
                        message: e.to_string(),
                    })??;
                if let Some(expected) = self.model.dimensions
                    && expected != model.dimensions()
                {
                    return Err(EmbedError::Dimensions {
                        model: self.model.name.clone(),
                        endpoint: model.dir().display().to_string(),
                        expected,
                        actual: model.dimensions(),
                    });
                }
                tracing::info!(
                    model = %self.model.name, dir = %model.dir().display(),
                    dimensions = model.dimensions(), ms = started.elapsed().as_millis() as u64,
                    "loaded local embedding model"
                );
                Ok(Arc::new(model))
            })
            .await
            .cloned()
    }
}

#[async_trait]
impl Provider for Local {
    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<f32>> {
        let model = self.loaded().await?;
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || model.embed(&texts))
            .await
            .map_err(|e| EmbedError::Provider {
                model: self.model.name.clone(),
                message: e.to_string(),
            })?
    }
}

#[derive(Debug)]
struct Ollama {
    endpoint: Endpoint,
    /// `/api/show`, whose `model_info` has the model's embedding length.
    show: Endpoint,
    model: ResolvedModel,
}

#[derive(Deserialize)]
struct OllamaAnswer {
    embeddings: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct OllamaShow {
    #[serde(default)]
    model_info: serde_json::Map<String, serde_json::Value>,
}

#[async_trait]
impl Provider for Ollama {
    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<f32>> {
        let answer: OllamaAnswer = self
            .endpoint
            .post(&json!({ "model": self.model.model, "input": texts }))
            .await?;
        flatten(&self.model, &self.endpoint, texts.len(), answer.embeddings)
    }

    /// `model_info` names it `<architecture>.embedding_length`.
    async fn reported_dimensions(&self) -> Result<Option<(usize, String)>> {
        let show: OllamaShow = self
            .show
            .post(&json!({ "model": self.model.model }))
            .await?;
        let length = show
            .model_info
            .iter()
            .find(|(key, _)| key.ends_with(".embedding_length"))
            .and_then(|(_, value)| value.as_u64());
        Ok(length.map(|n| (n as usize, self.show.url().to_string())))
    }
}

#[derive(Debug)]
struct OpenAi {
    endpoint: Endpoint,
    model: ResolvedModel,
}

#[derive(Deserialize)]
struct OpenAiAnswer {
    data: Vec<OpenAiEmbedding>,
}

#[derive(Deserialize)]
struct OpenAiEmbedding {
    index: usize,
    embedding: Vec<f32>,
}

#[async_trait]
impl Provider for OpenAi {
    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<f32>> {
        let mut answer: OpenAiAnswer = self
            .endpoint
            .post(&json!({
                "model": self.model.model,
                "input": texts,
                "encoding_format": "float",
            }))
            .await?;
        answer.data.sort_by_key(|e| e.index);
        if answer.data.iter().enumerate().any(|(i, e)| e.index != i) {
            return Err(self.bad_answer("the answer's indexes are not 0..n"));
        }
        let vectors = answer.data.into_iter().map(|e| e.embedding).collect();
        flatten(&self.model, &self.endpoint, texts.len(), vectors)
    }
}

impl OpenAi {
    fn bad_answer(&self, message: &str) -> EmbedError {
        EmbedError::Endpoint {
            model: self.model.name.clone(),
            endpoint: self.endpoint.url().to_string(),
            attempts: 1,
            message: message.into(),
        }
    }
}

/// The vectors of an HTTP answer, row after row, once their count and
/// lengths are checked.
fn flatten(
    model: &ResolvedModel,
    endpoint: &Endpoint,
    texts: usize,
    vectors: Vec<Vec<f32>>,
) -> Result<Vec<f32>> {
    if vectors.len() != texts {
        return Err(EmbedError::Endpoint {
            model: model.name.clone(),
            endpoint: endpoint.url().to_string(),
            attempts: 1,
            message: format!("sent {texts} texts, got {} vectors back", vectors.len()),
        });
    }
    let expected = model.dimensions.unwrap_or_default();
    if let Some(wrong) = vectors.iter().find(|v| v.len() != expected) {
        return Err(EmbedError::Dimensions {
            model: model.name.clone(),
            endpoint: endpoint.url().to_string(),
            expected,
            actual: wrong.len(),
        });
    }
    Ok(vectors.concat())
}
