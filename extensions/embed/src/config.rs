//! Named embedding models as configuration spells them (`[models.NAME]` in
//! the server's TOML file), and the defaults a model gets for what it
//! leaves out.
//!
//! With no models configured the server has one, `local`: all-MiniLM-L6-v2
//! run in-process, so embedding works offline out of the box.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{EmbedError, Result};

/// The name of the model a server has when none is configured.
pub const LOCAL_MODEL_NAME: &str = "local";
/// The local model's directory under the models directory.
pub const LOCAL_MODEL_DIR: &str = "all-MiniLM-L6-v2";

/// Who computes the vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// In-process, on the CPU.
    Local,
    /// An Ollama server's `POST /api/embed`.
    Ollama,
    /// Any OpenAI-compatible `POST /v1/embeddings`.
    Openai,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Openai => "openai",
        }
    }
}

/// One `[models.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: ProviderKind,
    /// The provider's model name; for `local`, a directory (relative to the
    /// models directory, or absolute).
    pub model: Option<String>,
    /// Vector length; checked against what the model answers.
    pub dimensions: Option<usize>,
    /// Base URL of an HTTP provider, e.g. `http://localhost:11434`.
    pub endpoint: Option<String>,
    /// The environment variable holding an `openai` API key.
    pub api_key_env: Option<String>,
    /// Texts per provider request (per forward pass group for `local`).
    pub batch_size: Option<usize>,
    /// Requests in flight at once for one embedding call.
    pub concurrency: Option<usize>,
    /// Seconds before an HTTP request is abandoned (and retried).
    pub timeout_secs: Option<u64>,
    /// Further attempts after a timeout, a refused connection, 429 or 5xx.
    pub retries: Option<u32>,
}

impl ModelConfig {
    /// The built-in local model.
    pub fn local() -> Self {
        Self {
            provider: ProviderKind::Local,
            model: None,
            dimensions: None,
            endpoint: None,
            api_key_env: None,
            batch_size: None,
            concurrency: None,
            timeout_secs: None,
            retries: None,
        }
    }
}

/// Every model setting, resolved: what a provider is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    pub name: String,
    pub provider: ProviderKind,
    pub model: String,
    /// `None` for `local` until the model is loaded and tells.
    pub dimensions: Option<usize>,
    pub endpoint: String,
    pub api_key_env: Option<String>,
    pub batch_size: usize,
    pub concurrency: usize,
    pub timeout: Duration,
    pub retries: u32,
    /// For `local`: the model's directory.
    pub dir: Option<PathBuf>,
}

/// The models of one server and which is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelsConfig {
    pub default_model: String,
    pub models: Vec<ResolvedModel>,
}

impl ModelsConfig {
    /// Resolves configured models (none means the built-in `local`) with
    /// `default_model` naming the default, which may be left out when there
    /// is one model or one is called `local`.
    pub fn resolve(
        configured: BTreeMap<String, ModelConfig>,
        default_model: Option<String>,
        models_dir: &Path,
    ) -> Result<Self> {
        let configured = if configured.is_empty() {
            BTreeMap::from([(LOCAL_MODEL_NAME.to_string(), ModelConfig::local())])
        } else {
            configured
        };
        let names = configured.keys().cloned().collect::<Vec<_>>().join(", ");
        let default_model = match default_model {
            Some(name) if configured.contains_key(&name) => name,
            Some(name) => {
                return Err(EmbedError::UnknownModel {
                    name,
                    configured: names,
                });
            }
            None if configured.len() == 1 => configured.keys().next().cloned().unwrap_or_default(),
            None if configured.contains_key(LOCAL_MODEL_NAME) => LOCAL_MODEL_NAME.to_string(),
            None => {
                return Err(EmbedError::Config {
                    model: names,
                    message: "several models are configured: set default_model to one of them"
                        .into(),
                });
            }
        };
        let models = configured
            .into_iter()
            .map(|(name, config)| resolve_one(name, config, models_dir))
            .collect::<Result<_>>()?;
        Ok(Self {
            default_model,
            models,
        })
    }
}

fn resolve_one(name: String, c: ModelConfig, models_dir: &Path) -> Result<ResolvedModel> {
    let invalid = |message: String| EmbedError::Config {
        model: name.clone(),
        message,
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(invalid(
            "model names use letters, digits, '_', '-' and '.' only".into(),
        ));
    }
    for (field, value) in [
        ("batch_size", c.batch_size),
        ("concurrency", c.concurrency),
        ("dimensions", c.dimensions),
    ] {
        if value == Some(0) {
            return Err(invalid(format!("{field} must be at least 1")));
        }
    }
    let (model, dimensions, endpoint, batch_size, concurrency) = match c.provider {
        ProviderKind::Local => {
            if c.endpoint.is_some() || c.api_key_env.is_some() {
                return Err(invalid(
                    "a local model takes no endpoint or api_key_env".into(),
                ));
            }
            (LOCAL_MODEL_DIR, c.dimensions, "", 256, 1)
        }
        ProviderKind::Ollama => (
            "nomic-embed-text",
            Some(c.dimensions.unwrap_or(768)),
            "http://localhost:11434",
            64,
            4,
        ),
        ProviderKind::Openai => (
            "text-embedding-3-small",
            Some(c.dimensions.unwrap_or(1536)),
            "https://api.openai.com",
            256,
            4,
        ),
    };
    let model = c.model.unwrap_or_else(|| model.to_string());
    let dir = (c.provider == ProviderKind::Local).then(|| models_dir.join(&model));
    let api_key_env = match c.provider {
        ProviderKind::Openai => Some(c.api_key_env.unwrap_or_else(|| "OPENAI_API_KEY".into())),
        _ => c.api_key_env,
    };
    Ok(ResolvedModel {
        name,
        provider: c.provider,
        model,
        dimensions,
        endpoint: c
            .endpoint
            .unwrap_or_else(|| endpoint.to_string())
            .trim_end_matches('/')
            .to_string(),
        api_key_env,
        batch_size: c.batch_size.unwrap_or(batch_size),
        concurrency: c.concurrency.unwrap_or(concurrency),
        timeout: Duration::from_secs(c.timeout_secs.unwrap_or(60)),
        retries: c.retries.unwrap_or(3),
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_models_means_the_local_one_as_default() {
        let c = ModelsConfig::resolve(BTreeMap::new(), None, Path::new("/m")).unwrap();
        assert_eq!(c.default_model, "local");
        assert_eq!(c.models.len(), 1);
        assert_eq!(
            c.models[0].dir.as_deref(),
            Some(Path::new("/m/all-MiniLM-L6-v2"))
        );
    }

    #[test]
    fn http_models_get_their_providers_defaults() {
        let ollama: ModelConfig = toml::from_str("provider = \"ollama\"").unwrap();
        let c = ModelsConfig::resolve(
            BTreeMap::from([("nomic".to_string(), ollama)]),
            None,
            Path::new("/m"),
        )
        .unwrap();
        let m = &c.models[0];
        assert_eq!(
            (m.model.as_str(), m.dimensions),
            ("nomic-embed-text", Some(768))
        );
        assert_eq!(m.endpoint, "http://localhost:11434");
        assert_eq!(c.default_model, "nomic");
    }

    #[test]
    fn an_ambiguous_or_unknown_default_is_refused_by_name() {
        let two = || {
            BTreeMap::from([
                ("a".to_string(), ModelConfig::local()),
                ("b".to_string(), ModelConfig::local()),
            ])
        };
        let e = ModelsConfig::resolve(two(), None, Path::new("/m")).unwrap_err();
        assert!(e.to_string().contains("set default_model"), "{e}");
        let e = ModelsConfig::resolve(two(), Some("c".into()), Path::new("/m")).unwrap_err();
        assert!(
            e.to_string().contains("'c'") && e.to_string().contains("a, b"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_zero_sizes_are_refused() {
        assert!(toml::from_str::<ModelConfig>("provider = \"local\"\nbatch = 3").is_err());
        let zero: ModelConfig = toml::from_str("provider = \"ollama\"\nbatch_size = 0").unwrap();
        let e = ModelsConfig::resolve(
            BTreeMap::from([("z".to_string(), zero)]),
            None,
            Path::new("/m"),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("batch_size must be at least 1"),
            "{e}"
        );
    }
}
