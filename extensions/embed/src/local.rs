//! The `local` provider: a sentence-transformers BERT model (by default
//! all-MiniLM-L6-v2) run in-process on every core (see [`crate::bert`]).
//!
//! It reproduces `SentenceTransformer.encode` with that model's default
//! settings: the model's own WordPiece tokenizer truncating at
//! `max_seq_length` (256), mean pooling over the attention mask, then L2
//! normalisation. Texts are encoded in passes of up to [`PASS_TOKENS`]
//! tokens, packed without padding.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::bert::{BertConfig, Encoder};
use crate::error::{EmbedError, Result};

/// Where sentence-transformers keeps the truncation length.
#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

/// Tokens per forward pass: enough rows for the matrix products to run at
/// full speed, while a pass's intermediate activations (tokens x 1,536
/// floats for MiniLM) stay within a few tens of megabytes.
const PASS_TOKENS: usize = 4096;

/// A loaded model, ready to embed.
pub struct LocalModel {
    dir: PathBuf,
    tokenizer: Tokenizer,
    encoder: Encoder,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("dir", &self.dir)
            .field("dimensions", &self.encoder.hidden_size())
            .finish_non_exhaustive()
    }
}

impl LocalModel {
    /// Loads the model in `dir`: `config.json`, `model.safetensors`,
    /// `tokenizer.json` and, when present, `sentence_bert_config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let missing = |file: &str| EmbedError::ModelMissing {
            path: dir.join(file),
        };
        for file in ["config.json", "model.safetensors", "tokenizer.json"] {
            if !dir.join(file).is_file() {
                return Err(missing(file));
            }
        }
        let read = |file: &str| {
            std::fs::read(dir.join(file)).map_err(|source| EmbedError::ModelFile {
                path: dir.join(file),
                message: source.to_string(),
            })
        };
        let bad = |file: &str, message: String| EmbedError::ModelFile {
            path: dir.join(file),
            message,
        };
        let config: BertConfig = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| bad("config.json", e.to_string()))?;
        let max_seq_length = match read("sentence_bert_config.json") {
            Ok(bytes) => {
                serde_json::from_slice::<SentenceBertConfig>(&bytes)
                    .map_err(|e| bad("sentence_bert_config.json", e.to_string()))?
                    .max_seq_length
            }
            Err(_) => config.max_position_embeddings,
        };
        if max_seq_length == 0 || max_seq_length > config.max_position_embeddings {
            return Err(bad(
                "sentence_bert_config.json",
                format!(
                    "max_seq_length {max_seq_length} is outside 1..={} (max_position_embeddings)",
                    config.max_position_embeddings
                ),
            ));
        }
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| bad("tokenizer.json", e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| bad("tokenizer.json", e.to_string()))?;
        let tokenizer_vocabulary = tokenizer.get_vocab_size(true);
        if tokenizer_vocabulary > config.vocab_size {
            return Err(bad(
                "tokenizer.json",
                format!(
                    "{tokenizer_vocabulary} tokens, more than the model's vocab_size {}",
                    config.vocab_size
                ),
            ));
        }
        let encoder = Encoder::load(&config, &read("model.safetensors")?)
            .map_err(|message| bad("model.safetensors", message))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            tokenizer,
            encoder,
        })
    }

    pub fn dimensions(&self) -> usize {
        self.encoder.hidden_size()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One unit-length vector per text, row after row. CPU-bound: call it
    /// off the async runtime.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<f32>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect(), true)
            .map_err(|e| EmbedError::Provider {
                model: self.dir.display().to_string(),
                message: format!("tokenizing: {e}"),
            })?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let dimensions = self.dimensions();
        let mut out = Vec::with_capacity(texts.len() * dimensions);
        let mut start = 0;
        while start < ids.len() {
            let mut end = start + 1;
            let mut tokens = ids[start].len();
            while end < ids.len() && tokens + ids[end].len() <= PASS_TOKENS {
                tokens += ids[end].len();
                end += 1;
            }
            let mut pooled = self.encoder.mean_pooled(&ids[start..end]);
            for row in pooled.chunks_exact_mut(dimensions) {
                let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                row.iter_mut().for_each(|x| *x /= norm);
            }
            out.extend_from_slice(&pooled);
            start = end;
        }
        Ok(out)
    }
}
