//! Nearest-neighbour search over vector tables, offered to extensions (the
//! `vector` extension's `knn()`) through [`VectorService`].

use std::sync::Arc;

use arrow::array::{Float32Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use lakehouse_extension::{
    ExtensionError, HybridRequest, IndexInfo, IndexRequest, Metric, SearchRequest,
    TextSearchRequest, VectorService,
};
use lance::dataset::scanner::Scanner;
use lance_index::scalar::FullTextSearchQuery;
use lance_linalg::distance::DistanceType;

use super::{VectorTables, lance_message};
use crate::error::{CoreError, Error};
use lakehouse_core::catalog::{Catalog, TableRef};

/// Search over the catalog's vector tables at their current versions.
#[derive(Debug)]
pub struct Searcher {
    catalog: Arc<Catalog>,
    tables: Arc<VectorTables>,
}

impl Searcher {
    pub fn new(catalog: Arc<Catalog>, tables: Arc<VectorTables>) -> Self {
        Self { catalog, tables }
    }

    pub(super) fn vector_table(
        &self,
        name: &str,
    ) -> Result<(TableRef, Arc<lakehouse_core::catalog::Manifest>), Error> {
        let table = TableRef::parse(name)?;
        let manifest = self.catalog.table(&table)?;
        if manifest.lance.is_none() {
            return Err(Error::invalid(format!(
                "table {table} is not a vector table (it has no vector column, so it is stored as Parquet)"
            )));
        }
        Ok((table, manifest))
    }
}

#[async_trait]
impl VectorService for Searcher {
    fn table_schema(&self, table: &str) -> Result<SchemaRef, ExtensionError> {
        let (_, manifest) = self.vector_table(table).map_err(for_extension)?;
        Ok(manifest.schema.clone())
    }

    async fn search(&self, request: SearchRequest) -> Result<Vec<RecordBatch>, ExtensionError> {
        self.run(request, false).await.map_err(for_extension)
    }

    async fn text_search(
        &self,
        request: TextSearchRequest,
    ) -> Result<Vec<RecordBatch>, ExtensionError> {
        self.run_text(request, false).await.map_err(for_extension)
    }

    async fn hybrid_search(
        &self,
        request: HybridRequest,
    ) -> Result<Vec<RecordBatch>, ExtensionError> {
        self.run_hybrid(request).await.map_err(for_extension)
    }

    async fn create_index(&self, request: IndexRequest) -> Result<IndexInfo, ExtensionError> {
        self.tables
            .create_index(&self.catalog, request)
            .await
            .map_err(for_extension)
    }

    async fn drop_index(&self, table: &str, name: &str) -> Result<u64, ExtensionError> {
        self.tables
            .drop_index(&self.catalog, table, name)
            .await
            .map_err(for_extension)
    }

    async fn list_indexes(&self, table: &str) -> Result<Vec<IndexInfo>, ExtensionError> {
        self.tables
            .list_indexes(&self.catalog, table)
            .await
            .map_err(for_extension)
    }
}

impl Searcher {
    /// A knn search; with `addresses`, each row also has its `_rowaddr`.
    pub(super) async fn run(
        &self,
        request: SearchRequest,
        addresses: bool,
    ) -> Result<Vec<RecordBatch>, Error> {
        let (table, manifest) = self.vector_table(&request.table)?;
        if let Some(graph) = self
            .tables
            .graph_for(&table, &request.column, request.options.metric)
            .await?
        {
            let dataset = self.tables.open(&manifest).await?;
            return Ok(vec![
                super::graph_search::search(
                    &table,
                    &dataset,
                    &graph,
                    request,
                    addresses,
                    &self.tables.passing,
                )
                .await?,
            ]);
        }
        let options = request.options;
        let k = request.k;
        let query = Float32Array::from(request.query);
        self.scan_once("knn", &request.table, request.filter, |scan| {
            if let Some(columns) = &request.columns {
                scan.project(columns)?;
            }
            scan.nearest(&request.column, &query, k)?;
            if let Some(n) = options.nprobes {
                scan.nprobes(n);
            }
            scan.ef(options.ef.unwrap_or_else(|| default_ef(k)));
            // Re-ranking at least the k found by exact distance costs k
            // vector reads and makes `_distance` exact in the index's metric
            // whatever the index (an HNSW cosine index otherwise reports
            // twice the cosine distance, PQ an approximation).
            scan.refine(options.refine.unwrap_or(1).max(1));
            if let Some(metric) = options.metric {
                scan.distance_metric(distance_type(metric));
            }
            if addresses {
                scan.with_row_address();
            }
            Ok(())
        })
        .await
    }

    /// A BM25 search; with `addresses`, each row also has its `_rowaddr`.
    pub(super) async fn run_text(
        &self,
        request: TextSearchRequest,
        addresses: bool,
    ) -> Result<Vec<RecordBatch>, Error> {
        let k = request.k as i64;
        self.scan_once("fts", &request.table, request.filter, |scan| {
            let mut query = FullTextSearchQuery::new(request.query).with_column(request.column)?;
            query.limit = Some(k);
            scan.full_text_search(query)?;
            if addresses {
                scan.with_row_address();
            }
            Ok(())
        })
        .await
    }

    /// One scan of a vector table at its current version: `configure`
    /// sets the search, `filter` (if any) applies before it.
    async fn scan_once(
        &self,
        function: &str,
        table: &str,
        filter: Option<datafusion::logical_expr::Expr>,
        configure: impl FnOnce(&mut Scanner) -> lance::Result<()>,
    ) -> Result<Vec<RecordBatch>, Error> {
        let (table, manifest) = self.vector_table(table)?;
        let dataset = self.tables.open(&manifest).await?;
        let invalid = |e: lance::Error| {
            Error::invalid(format!("{function} over {table}: {}", lance_message(&e)))
        };
        let mut scan = dataset.scan();
        configure(&mut scan).map_err(invalid)?;
        if let Some(filter) = filter {
            scan.filter_expr(filter).prefilter(true);
        }
        Ok(vec![scan.try_into_batch().await.map_err(invalid)?])
    }
}

/// HNSW candidate list size when the request names none: wide enough for
/// recall@k of 0.95 or better on hard (random, high-dimensional) data.
fn default_ef(k: usize) -> usize {
    (k * 20).max(200)
}

pub fn distance_type(metric: Metric) -> DistanceType {
    match metric {
        Metric::L2 => DistanceType::L2,
        Metric::Cosine => DistanceType::Cosine,
        Metric::Dot => DistanceType::Dot,
    }
}

/// A server error as an extension sees it, keeping its kind.
pub fn for_extension(e: Error) -> ExtensionError {
    let message = e.to_string();
    match e {
        Error::Core(CoreError::InvalidArgument(_)) | Error::Refused(_) | Error::BadCsv { .. } => {
            ExtensionError::InvalidArgument(message)
        }
        Error::Core(
            CoreError::TableNotFound(_)
            | CoreError::SchemaNotFound(_)
            | CoreError::VersionNotFound { .. }
            | CoreError::FileNotFound(_),
        )
        | Error::HandleNotFound(_) => ExtensionError::NotFound(message),
        Error::Core(CoreError::TableExists(_) | CoreError::SchemaExists(_)) => {
            ExtensionError::AlreadyExists(message)
        }
        Error::Core(
            CoreError::SchemaConflict { .. }
            | CoreError::CommitConflict { .. }
            | CoreError::BaseMoved { .. }
            | CoreError::ReadByViews { .. },
        ) => ExtensionError::FailedPrecondition(message),
        Error::ResourceExhausted(_) => ExtensionError::ResourceExhausted(message),
        Error::Extension(inner) => inner,
        _ => ExtensionError::Internal(message),
    }
}
