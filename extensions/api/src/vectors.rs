//! What the server offers extensions over its vector tables: their
//! columns, to plan with, and nearest-neighbour search with a prefilter.

use std::fmt::Debug;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::Expr;
use serde::Deserialize;

use crate::Result;

/// How vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
}

/// Search over the server's vector tables.
#[async_trait]
pub trait VectorSearch: Send + Sync + Debug {
    /// The columns of a vector table as of now.
    fn table_schema(&self, table: &str) -> Result<SchemaRef>;

    /// The `k` rows nearest `query`, nearest first: the table's columns
    /// plus `_distance` (float32).
    async fn search(&self, request: SearchRequest) -> Result<Vec<RecordBatch>>;
}
