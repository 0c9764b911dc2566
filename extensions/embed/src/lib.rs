//! The `embed` extension: text to vectors, in SQL and over DoAction, with
//! the models the server is configured with.
//!
//! This crate also holds the models themselves ([`Models`]): the `local`
//! provider (a sentence-transformers model run in-process by its own BERT
//! encoder),
//! and the `ollama` and `openai` HTTP providers. The server builds
//! [`Models`] from its configuration and offers them to every extension
//! (and to its own ingest) as an [`EmbeddingService`].

mod actions;
mod bert;
mod config;
mod error;
mod http;
mod kernels;
mod local;
mod models;
mod providers;
mod udf;

use lakehouse_extension::{Contributions, Extension, Host, Result, ScalarFunction};

pub use config::{LOCAL_MODEL_DIR, ModelConfig, ModelsConfig, ProviderKind};
pub use error::EmbedError;
pub use lakehouse_extension::EmbeddingService;
pub use local::LocalModel;
pub use models::Models;

/// The extension, to register in a [`lakehouse_extension::Registry`].
pub struct Embed;

impl Extension for Embed {
    fn name(&self) -> &'static str {
        "embed"
    }

    fn description(&self) -> &'static str {
        "Text to vectors with the configured models: embed(text [, model]) in SQL, the embed and list_models actions"
    }

    fn contributions(&self, host: &Host) -> Result<Contributions> {
        let Some(models) = &host.embeddings else {
            return Ok(Contributions::default());
        };
        Ok(Contributions {
            scalar_functions: vec![ScalarFunction {
                udf: udf::Embed::udf(models.clone()),
                description: "embed(text [, model]): the text's vector from the default (or named) model; null stays null".into(),
            }],
            table_functions: Vec::new(),
            actions: actions::actions(models),
        })
    }
}
