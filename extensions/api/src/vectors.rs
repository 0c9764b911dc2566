//! What the server offers extensions over its vector tables: their
//! columns, to plan with, nearest-neighbour search with a prefilter, and
//! their indexes.

use std::fmt::Debug;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::Expr;
use serde::{Deserialize, Serialize};

use crate::Result;

/// How vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    L2,
    Cosine,
    Dot,
}

/// Tuning of one search; absent fields take the index's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchOptions {
    /// IVF partitions to probe.
    pub nprobes: Option<usize>,
    /// HNSW candidate list size.
    pub ef: Option<usize>,
    /// Re-rank `refine * k` candidates by exact distance.
    pub refine: Option<u32>,
    /// The metric, when searching without an index (an index has its own).
    pub metric: Option<Metric>,
}

/// One nearest-neighbour search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// `[schema.]table`, as SQL names it.
    pub table: String,
    pub column: String,
    pub query: Vec<f32>,
    pub k: usize,
    /// Applied before the search (a prefilter), so `k` rows come back
    /// whenever `k` rows match it; columns are unqualified.
    pub filter: Option<Expr>,
    pub options: SearchOptions,
    /// The table's columns the rows need (all when `None`), so a search
    /// reads no column its query does not use; `_distance` always comes.
    pub columns: Option<Vec<String>>,
}

/// One full-text (BM25) search over a text column with an `fts` index.
#[derive(Debug, Clone)]
pub struct TextSearchRequest {
    pub table: String,
    pub column: String,
    pub query: String,
    pub k: usize,
    /// Applied before ranking, as for [`SearchRequest::filter`].
    pub filter: Option<Expr>,
}

/// One hybrid search: the nearest rows to a vector and the best BM25
/// matches of a text, fused by reciprocal rank.
#[derive(Debug, Clone)]
pub struct HybridRequest {
    pub table: String,
    pub vector_column: String,
    pub text_column: String,
    /// The query's embedding, searched in `vector_column`.
    pub vector: Vec<f32>,
    /// The query's text, searched in `text_column` (which has an `fts` index).
    pub text: String,
    pub k: usize,
    /// Applied before both searches, as for [`SearchRequest::filter`].
    pub filter: Option<Expr>,
    pub options: HybridOptions,
}

/// Tuning of a hybrid search; absent fields take the documented defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridOptions {
    /// Weight of the vector ranking in the fusion (default 1).
    pub vector_weight: Option<f32>,
    /// Weight of the text ranking (default 1).
    pub text_weight: Option<f32>,
    /// Rows each search contributes (default `max(5 * k, 50)`).
    pub candidates: Option<usize>,
    /// The constant of reciprocal rank fusion: a row's score is the sum
    /// of `weight / (rrf_k + rank)` (default 60).
    pub rrf_k: Option<f32>,
    /// HNSW candidate list size of the vector search.
    pub ef: Option<usize>,
}

/// The kinds of index a vector table can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// A resident HNSW graph: held in memory (within the server's graph
    /// memory budget) and persisted beside the dataset; the fastest search.
    Hnsw,
    /// IVF partitions of full vectors: exact within the probed partitions.
    IvfFlat,
    /// IVF with product quantization: smallest and fastest; use `refine`.
    IvfPq,
    /// IVF with an HNSW graph over 8-bit scalar-quantized vectors.
    IvfHnswSq,
    /// Full-text (BM25) index on a text column, for `fts()`.
    Fts,
    /// B-tree on a scalar column, for filters.
    Btree,
}

/// Build parameters; absent ones take documented defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexParams {
    pub num_partitions: Option<usize>,
    pub num_sub_vectors: Option<usize>,
    pub num_bits: Option<u8>,
    /// HNSW: neighbours per node.
    pub m: Option<usize>,
    /// HNSW: candidate list size while building.
    pub ef_construction: Option<usize>,
    pub sample_rate: Option<usize>,
    pub max_iterations: Option<usize>,
    /// `hnsw`: how the graph stores vectors (default f16).
    pub precision: Option<Precision>,
    /// `hnsw`: candidate list size of a search that names no `ef`.
    pub ef_search: Option<usize>,
}

/// How a resident graph stores its vectors: f16 halves the memory of f32
/// for a recall within a point of it (answers are re-ranked exactly);
/// i8 quarters it and loses more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F16,
    I8,
}

/// `create_index`'s body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexRequest {
    pub table: String,
    pub column: String,
    pub index_type: IndexKind,
    /// Vector indexes: how distances are measured (default l2).
    #[serde(default)]
    pub metric: Option<Metric>,
    /// Default `<column>_idx`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub params: IndexParams,
    /// Replace an index of that name instead of refusing.
    #[serde(default)]
    pub replace: bool,
}

/// One index of a vector table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexInfo {
    pub name: String,
    pub columns: Vec<String>,
    pub index_type: String,
    /// The table version that first had the index in this form.
    pub table_version: u64,
}

/// Search and indexes over the server's vector tables.
#[async_trait]
pub trait VectorService: Send + Sync + Debug {
    /// The columns of a vector table as of now.
    fn table_schema(&self, table: &str) -> Result<SchemaRef>;

    /// The `k` rows nearest `query`, nearest first: the table's columns
    /// plus `_distance` (float32).
    async fn search(&self, request: SearchRequest) -> Result<Vec<RecordBatch>>;

    /// The `k` best BM25 matches of `query`, best first: the table's
    /// columns plus `_score` (float32).
    async fn text_search(&self, request: TextSearchRequest) -> Result<Vec<RecordBatch>>;

    /// The `k` rows best by reciprocal rank fusion of a vector and a text
    /// search, best first: the table's columns plus `_score` (float32).
    async fn hybrid_search(&self, request: HybridRequest) -> Result<Vec<RecordBatch>>;

    /// Builds an index and commits the table version that has it.
    async fn create_index(&self, request: IndexRequest) -> Result<IndexInfo>;

    /// Removes an index, committing the table version without it.
    async fn drop_index(&self, table: &str, name: &str) -> Result<u64>;

    async fn list_indexes(&self, table: &str) -> Result<Vec<IndexInfo>>;
}
