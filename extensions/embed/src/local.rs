//! The `local` provider: a sentence-transformers BERT model (by default
//! all-MiniLM-L6-v2) run in-process with candle, on every core.
//!
//! It reproduces `SentenceTransformer.encode` with that model's default
//! settings: the model's own WordPiece tokenizer truncating at
//! `max_seq_length` (256), mean pooling over the attention mask, then L2
//! normalisation. Texts are sorted by length and batched so that padding,
//! which costs as much as real tokens, stays small.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{EmbedError, Result};

/// Where sentence-transformers keeps the truncation length.
#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

/// Tokens (texts times the longest text's length) per forward pass: enough
/// rows to keep the matrix kernels busy, while the attention scores of a
/// pass (texts x 12 heads x length^2 floats) stay small enough to stay in
/// cache rather than be allocated, zeroed and streamed through memory.
const FORWARD_TOKENS: usize = 2048;
/// Most texts per forward pass, however short.
const FORWARD_TEXTS: usize = 128;

/// A loaded model, ready to embed.
pub struct LocalModel {
    dir: PathBuf,
    tokenizer: Tokenizer,
    model: BertModel,
    dimensions: usize,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("dir", &self.dir)
            .field("dimensions", &self.dimensions)
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
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| bad("config.json", e.to_string()))?;
        let max_seq_length = match read("sentence_bert_config.json") {
            Ok(bytes) => {
                serde_json::from_slice::<SentenceBertConfig>(&bytes)
                    .map_err(|e| bad("sentence_bert_config.json", e.to_string()))?
                    .max_seq_length
            }
            Err(_) => config.max_position_embeddings,
        };
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
        let weights = VarBuilder::from_buffered_safetensors(
            read("model.safetensors")?,
            DType::F32,
            &Device::Cpu,
        )
        .map_err(|e| bad("model.safetensors", e.to_string()))?;
        let model = BertModel::load(weights, &config)
            .map_err(|e| bad("model.safetensors", e.to_string()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            tokenizer,
            model,
            dimensions: config.hidden_size,
        })
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
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
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![0f32; texts.len() * self.dimensions];
        let mut start = 0;
        while start < order.len() {
            // Sorted by length, so the last text of a pass is its longest.
            let mut end = start + 1;
            while end < order.len()
                && end - start < FORWARD_TEXTS
                && (end + 1 - start) * ids[order[end]].len() <= FORWARD_TOKENS
            {
                end += 1;
            }
            let chunk = &order[start..end];
            let pooled = self.forward(chunk.iter().map(|&i| ids[i]))?;
            for (row, &i) in pooled.chunks_exact(self.dimensions).zip(chunk) {
                out[i * self.dimensions..(i + 1) * self.dimensions].copy_from_slice(row);
            }
            start = end;
        }
        Ok(out)
    }

    /// Mean-pooled, normalised vectors of one padded batch, row after row.
    fn forward<'a>(
        &self,
        batch: impl ExactSizeIterator<Item = &'a [u32]> + Clone,
    ) -> Result<Vec<f32>> {
        let rows = batch.len();
        let width = batch.clone().map(<[u32]>::len).max().unwrap_or(0).max(1);
        let mut input = vec![0u32; rows * width];
        let mut mask = vec![0f32; rows * width];
        for (r, ids) in batch.enumerate() {
            input[r * width..r * width + ids.len()].copy_from_slice(ids);
            mask[r * width..r * width + ids.len()].fill(1.0);
        }
        let fault = |e: candle_core::Error| EmbedError::Provider {
            model: self.dir.display().to_string(),
            message: e.to_string(),
        };
        let device = Device::Cpu;
        let input = Tensor::from_vec(input, (rows, width), &device).map_err(fault)?;
        let mask = Tensor::from_vec(mask, (rows, width), &device).map_err(fault)?;
        let token_types = input.zeros_like().map_err(fault)?;
        let pooled = (|| {
            let hidden = self.model.forward(&input, &token_types, Some(&mask))?;
            let mask = mask.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
            mean.broadcast_div(&norms)?.flatten_all()?.to_vec1::<f32>()
        })()
        .map_err(fault)?;
        Ok(pooled)
    }
}
