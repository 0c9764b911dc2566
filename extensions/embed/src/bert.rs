//! The BERT encoder of the local model: weights read from
//! `model.safetensors`, and a forward pass written for embedding many texts
//! at once on the CPU.
//!
//! Why not a general tensor library's BERT: padding every text of a batch to
//! the longest, one small matrix product per text for each linear layer, and
//! a fresh allocation for every intermediate made candle's `BertModel` run
//! paragraphs at 0.45x sentence-transformers' speed on the same CPU. Here
//! the tokens of all the texts of a pass are packed into one matrix with no
//! padding (so no attention mask either): each linear layer is one large
//! matrix product, attention runs per text and head in parallel with its
//! scores in a small buffer, and bias, GELU, residual and LayerNorm are
//! fused passes over rows in place.

use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::kernels::{self, MatMut, MatRef};

/// The fields of a Hugging Face BERT `config.json` the encoder uses.
#[derive(Debug, Deserialize)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_hidden_act() -> String {
    "gelu".to_owned()
}

fn default_position_embedding_type() -> String {
    "absolute".to_owned()
}

impl BertConfig {
    /// Refuses what the encoder does not implement, saying what it found.
    pub fn check(&self) -> Result<(), String> {
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (only \"gelu\", the exact form)",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                self.position_embedding_type
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }
}

/// A linear layer: `weight` is `[outputs, inputs]`, row-major, as stored.
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Linear {
    /// `out = input x weight^T`, without the bias (which the next fused
    /// pass adds).
    fn project(&self, input: &[f32], out: &mut [f32], threads: usize) {
        let rows = input.len() / self.inputs;
        kernels::matmul(
            MatMut::dense(&mut out[..rows * self.outputs], rows, self.outputs),
            false,
            MatRef::dense(input, rows, self.inputs),
            MatRef::dense(&self.weight, self.outputs, self.inputs).transposed(),
            1.0,
            threads,
        );
    }
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// One transformer layer; query, key and value are one `[3H, H]` linear
/// layer so that they are one matrix product.
struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    up: Linear,
    down: Linear,
    output_norm: LayerNorm,
}

/// The encoder's weights and shape.
pub struct Encoder {
    words: Vec<f32>,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    eps: f32,
}

/// Reads the tensors of one checkpoint, with or without the `bert.` prefix
/// that `BertFor...` checkpoints put on the encoder's names.
struct Tensors<'a> {
    file: SafeTensors<'a>,
}

impl Tensors<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        let view = self
            .file
            .tensor(name)
            .or_else(|_| self.file.tensor(&format!("bert.{name}")))
            .map_err(|_| format!("tensor {name} is missing"))?;
        if view.dtype() != Dtype::F32 {
            return Err(format!(
                "tensor {name} is {:?}, only F32 is supported",
                view.dtype()
            ));
        }
        if view.shape() != shape {
            return Err(format!(
                "tensor {name} has shape {:?}, the configuration implies {shape:?}",
                view.shape()
            ));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn linear(&self, prefix: &str, inputs: usize, outputs: usize) -> Result<Linear, String> {
        Ok(Linear {
            weight: self.get(&format!("{prefix}.weight"), &[outputs, inputs])?,
            bias: self.get(&format!("{prefix}.bias"), &[outputs])?,
            inputs,
            outputs,
        })
    }

    /// Older checkpoints name LayerNorm's parameters gamma and beta.
    fn layer_norm(&self, prefix: &str, width: usize) -> Result<LayerNorm, String> {
        let get = |new: &str, old: &str| {
            self.get(&format!("{prefix}.{new}"), &[width])
                .or_else(|_| self.get(&format!("{prefix}.{old}"), &[width]))
        };
        Ok(LayerNorm {
            gamma: get("weight", "gamma")?,
            beta: get("bias", "beta")?,
        })
    }
}

/// Stacks query, key and value into one linear layer.
fn stack(parts: [Linear; 3]) -> Linear {
    let inputs = parts[0].inputs;
    let outputs = parts.iter().map(|p| p.outputs).sum();
    Linear {
        weight: parts
            .iter()
            .flat_map(|p| p.weight.iter().copied())
            .collect(),
        bias: parts.iter().flat_map(|p| p.bias.iter().copied()).collect(),
        inputs,
        outputs,
    }
}

/// Rows per task of the row-wise passes: big enough that a task outweighs
/// rayon's scheduling, small enough to spread over every core.
const ROWS_PER_TASK: usize = 32;

/// Sequences shorter than this run their heads on one thread: the work per
/// head is too small to be worth a task of its own.
const PARALLEL_HEADS_FROM: usize = 64;

impl Encoder {
    /// Builds the encoder from a checked configuration and the bytes of
    /// `model.safetensors`; errors say which tensor is missing or wrong.
    pub fn load(config: &BertConfig, safetensors: &[u8]) -> Result<Self, String> {
        config.check()?;
        let tensors = Tensors {
            file: SafeTensors::deserialize(safetensors).map_err(|e| e.to_string())?,
        };
        let h = config.hidden_size;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(Layer {
                    qkv: stack([
                        tensors.linear(&format!("{p}.attention.self.query"), h, h)?,
                        tensors.linear(&format!("{p}.attention.self.key"), h, h)?,
                        tensors.linear(&format!("{p}.attention.self.value"), h, h)?,
                    ]),
                    attention_out: tensors.linear(&format!("{p}.attention.output.dense"), h, h)?,
                    attention_norm: tensors
                        .layer_norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                    up: tensors.linear(
                        &format!("{p}.intermediate.dense"),
                        h,
                        config.intermediate_size,
                    )?,
                    down: tensors.linear(
                        &format!("{p}.output.dense"),
                        config.intermediate_size,
                        h,
                    )?,
                    output_norm: tensors.layer_norm(&format!("{p}.output.LayerNorm"), h)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let token_types = tensors.get(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        if token_types.is_empty() {
            return Err("tensor embeddings.token_type_embeddings.weight is empty".to_owned());
        }
        Ok(Self {
            words: tensors.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            positions: tensors.get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type: token_types[..h].to_vec(),
            embedding_norm: tensors.layer_norm("embeddings.LayerNorm", h)?,
            layers,
            hidden: h,
            heads: config.num_attention_heads,
            intermediate: config.intermediate_size,
            eps: config.layer_norm_eps as f32,
        })
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// The mean of the last layer's token vectors of each sequence (the
    /// sentence-transformers mean pooling over the attention mask), row
    /// after row. Every id must be below the configuration's `vocab_size`
    /// and every sequence at most `max_position_embeddings` long, which
    /// [`crate::local::LocalModel::load`] makes its tokenizer guarantee.
    pub fn mean_pooled(&self, sequences: &[&[u32]]) -> Vec<f32> {
        let h = self.hidden;
        let threads = rayon::current_num_threads();
        let offsets: Vec<usize> = std::iter::once(0)
            .chain(sequences.iter().scan(0, |end, s| {
                *end += s.len();
                Some(*end)
            }))
            .collect();
        let tokens = offsets[sequences.len()];

        let mut hidden = vec![0f32; tokens * h];
        self.embed_tokens(sequences, &offsets, &mut hidden);
        let mut qkv = vec![0f32; tokens * 3 * h];
        let mut context = vec![0f32; tokens * h];
        let mut projected = vec![0f32; tokens * h];
        let mut intermediate = vec![0f32; tokens * self.intermediate];
        for layer in &self.layers {
            layer.qkv.project(&hidden, &mut qkv, threads);
            qkv.par_chunks_mut(ROWS_PER_TASK * 3 * h)
                .for_each(|rows| kernels::add_bias(rows, &layer.qkv.bias));
            self.attention(&qkv, &offsets, &mut context);
            layer
                .attention_out
                .project(&context, &mut projected, threads);
            self.residual_norm(
                &mut hidden,
                &projected,
                &layer.attention_out.bias,
                &layer.attention_norm,
            );
            layer.up.project(&hidden, &mut intermediate, threads);
            intermediate
                .par_chunks_mut(ROWS_PER_TASK * self.intermediate)
                .for_each(|rows| kernels::add_bias_gelu(rows, &layer.up.bias));
            layer.down.project(&intermediate, &mut projected, threads);
            self.residual_norm(
                &mut hidden,
                &projected,
                &layer.down.bias,
                &layer.output_norm,
            );
        }

        let mut pooled = vec![0f32; sequences.len() * h];
        pooled.par_chunks_mut(h).enumerate().for_each(|(s, out)| {
            let rows = &hidden[offsets[s] * h..offsets[s + 1] * h];
            for row in rows.chunks_exact(h) {
                for (o, x) in out.iter_mut().zip(row) {
                    *o += x;
                }
            }
            let count = (offsets[s + 1] - offsets[s]).max(1) as f32;
            out.iter_mut().for_each(|o| *o /= count);
        });
        pooled
    }

    /// Word + position + token-type (0) embeddings, then LayerNorm.
    fn embed_tokens(&self, sequences: &[&[u32]], offsets: &[usize], hidden: &mut [f32]) {
        let h = self.hidden;
        let mut rows: Vec<&mut [f32]> = Vec::with_capacity(sequences.len());
        let mut rest = hidden;
        for s in 0..sequences.len() {
            let (head, tail) = rest.split_at_mut((offsets[s + 1] - offsets[s]) * h);
            rows.push(head);
            rest = tail;
        }
        rows.into_par_iter().zip(sequences).for_each(|(rows, ids)| {
            for (position, (row, &id)) in rows.chunks_exact_mut(h).zip(*ids).enumerate() {
                let word = &self.words[id as usize * h..(id as usize + 1) * h];
                let place = &self.positions[position * h..(position + 1) * h];
                for (((x, w), p), t) in row.iter_mut().zip(word).zip(place).zip(&self.token_type) {
                    *x = w + p + t;
                }
            }
            kernels::layer_norm(
                rows,
                &self.embedding_norm.gamma,
                &self.embedding_norm.beta,
                self.eps,
            );
        });
    }

    /// Self-attention of every sequence on its own tokens: `context` gets,
    /// for each token, the heads' attention-weighted values side by side.
    fn attention(&self, qkv: &[f32], offsets: &[usize], context: &mut [f32]) {
        let h = self.hidden;
        let mut per_sequence: Vec<(usize, &mut [f32])> = Vec::with_capacity(offsets.len() - 1);
        let mut rest = context;
        for window in offsets.windows(2) {
            let (head, tail) = rest.split_at_mut((window[1] - window[0]) * h);
            per_sequence.push((window[0], head));
            rest = tail;
        }
        per_sequence.into_par_iter().for_each(|(start, out)| {
            let len = out.len() / h;
            let rows = &qkv[start * 3 * h..(start + len) * 3 * h];
            self.sequence_attention(rows, len, out);
        });
    }

    /// Attention of one sequence of `len` tokens, whose rows of `qkv` are
    /// `rows`; writes its `len` context rows into `out`.
    fn sequence_attention(&self, rows: &[f32], len: usize, out: &mut [f32]) {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        // Each head's context in its own `len x d` block, so that heads can
        // run in parallel on disjoint memory; interleaved into `out` after.
        let mut by_head = vec![0f32; self.heads * len * d];
        let one_head = |(head, block): (usize, &mut [f32])| {
            let query = MatRef::new(&rows[head * d..], len, d, 3 * h, 1);
            let key = MatRef::new(&rows[h + head * d..], len, d, 3 * h, 1);
            let value = MatRef::new(&rows[2 * h + head * d..], len, d, 3 * h, 1);
            let mut scores = vec![0f32; len * len];
            kernels::matmul(
                MatMut::dense(&mut scores, len, len),
                false,
                query,
                key.transposed(),
                scale,
                1,
            );
            kernels::softmax_rows(&mut scores, len);
            kernels::matmul(
                MatMut::dense(block, len, d),
                false,
                MatRef::dense(&scores, len, len),
                value,
                1.0,
                1,
            );
        };
        if len >= PARALLEL_HEADS_FROM {
            by_head
                .par_chunks_mut(len * d)
                .enumerate()
                .for_each(one_head);
        } else {
            by_head.chunks_mut(len * d).enumerate().for_each(one_head);
        }
        for (token, row) in out.chunks_exact_mut(h).enumerate() {
            for (head, part) in row.chunks_exact_mut(d).enumerate() {
                part.copy_from_slice(
                    &by_head[(head * len + token) * d..(head * len + token + 1) * d],
                );
            }
        }
    }

    /// `hidden = LayerNorm(hidden + projected + bias)`, over every core.
    fn residual_norm(&self, hidden: &mut [f32], projected: &[f32], bias: &[f32], norm: &LayerNorm) {
        let chunk = ROWS_PER_TASK * self.hidden;
        hidden
            .par_chunks_mut(chunk)
            .zip(projected.par_chunks(chunk))
            .for_each(|(rows, added)| {
                kernels::residual_layer_norm(rows, added, bias, &norm.gamma, &norm.beta, self.eps)
            });
    }
}
