//! Building, dropping and listing a vector table's indexes.
//!
//! Each change is a Lance commit followed by a catalog version (operation
//! `index`) pinning it, under the table's write lock, so an index is part
//! of the table's history like its rows. Defaults favour recall:
//! `num_partitions` about one per 4,096 rows (at least 1), `num_sub_vectors`
//! one per 4 dimensions for PQ, HNSW `m` 20 and `ef_construction` 150,
//! 8-bit scalar quantization. A vector index needs rows to train on: the
//! request is refused, saying how many, while the table is smaller, and knn
//! answers exactly (a flat search) until then. Rows appended to an indexed
//! table are folded into its indexes in the background after each append.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lakehouse_extension::{IndexInfo, IndexKind, IndexParams, IndexRequest, Metric};
use lance::Dataset;
use lance::index::DatasetIndexExt;
use lance::index::vector::VectorIndexParams;
use lance_index::optimize::OptimizeOptions;
use lance_index::scalar::{BuiltinIndexType, InvertedIndexParams, ScalarIndexParams};
use lance_index::vector::hnsw::builder::HnswBuildParams;
use lance_index::vector::ivf::IvfBuildParams;
use lance_index::vector::pq::PQBuildParams;
use lance_index::vector::sq::builder::SQBuildParams;
use lance_index::{IndexParams as LanceIndexParams, IndexType};
use tracing::{info, warn};

use super::search::distance_type;
use super::{Change, Pin, VectorTables, is_vector_type, lance_error, lance_message};
use crate::error::{Error, Result};
use lakehouse_core::catalog::{Catalog, Manifest, TableRef};

/// How often a long index build says it is still working.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Rows per IVF partition the defaults aim for.
const ROWS_PER_PARTITION: usize = 4096;
/// Rows a product quantizer needs to train its 256 centroids per subvector.
const PQ_TRAINING_ROWS: u64 = 256;

impl VectorTables {
    /// Builds the requested index and commits the version that has it.
    pub async fn create_index(
        &self,
        catalog: &Catalog,
        request: IndexRequest,
    ) -> Result<IndexInfo> {
        let table = TableRef::parse(&request.table)?;
        let lock = self.lock(&table);
        let _serialised = lock.lock().await;
        let live = vector_manifest(catalog, &table)?;
        let field = live.schema.field_with_name(&request.column).map_err(|_| {
            Error::invalid(format!(
                "table {table} has no column {:?} to index",
                request.column
            ))
        })?;
        if request.index_type == IndexKind::Hnsw {
            // A graph is not a Lance commit: it reads the pinned version.
            let dims = vector_dimensions(&table, "hnsw", &request.column, field.data_type())?;
            let dataset = self.open(&live).await?;
            return self
                .create_graph(&table, &live, &dataset, dims, request)
                .await;
        }
        let (manifest, mut dataset) = self.live_dataset(catalog, &table).await?;
        let on = dataset.version().version;
        let rows = manifest.total_rows();
        let built = build_params(&table, &request, field.data_type(), rows)?;
        let name = request
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_idx", request.column));
        let started = Instant::now();
        info!(table = %table, column = %request.column, index = %name, kind = ?request.index_type, rows, "building index");
        if self.graph_named(&table, &name).await? {
            return Err(name_taken(&table, &name, "an hnsw index: drop it first"));
        }
        if !request.replace
            && dataset
                .load_indices()
                .await
                .map_err(|e| lance_error(&table, "listing the indexes of", e))?
                .iter()
                .any(|index| index.name == name)
        {
            return Err(name_taken(
                &table,
                &name,
                "pass \"replace\": true to rebuild it",
            ));
        }
        let columns = [request.column.as_str()];
        {
            let build = dataset.create_index(
                &columns,
                built.index_type,
                Some(name.clone()),
                built.params.as_ref(),
                request.replace,
            );
            let mut build = std::pin::pin!(build);
            let mut ticker = tokio::time::interval(PROGRESS_EVERY);
            ticker.tick().await;
            loop {
                tokio::select! {
                    done = &mut build => {
                        done.map_err(|e| index_error(&table, &name, e))?;
                        break;
                    }
                    _ = ticker.tick() => {
                        info!(table = %table, index = %name, elapsed_secs = started.elapsed().as_secs(), "index build in progress");
                    }
                }
            }
        }
        let version = self
            .land_index(catalog, &table, manifest, on, dataset)
            .await?;
        info!(table = %table, index = %name, version, seconds = started.elapsed().as_secs_f64(), "index built");
        Ok(IndexInfo {
            name,
            columns: vec![request.column.clone()],
            index_type: index_type_name(request.index_type).to_string(),
            table_version: version,
        })
    }

    /// Drops an index by name; returns the table version without it (the
    /// current one for an `hnsw` index, which is not part of the history).
    pub async fn drop_index(&self, catalog: &Catalog, table: &str, name: &str) -> Result<u64> {
        let table = TableRef::parse(table)?;
        let lock = self.lock(&table);
        let _serialised = lock.lock().await;
        let live = vector_manifest(catalog, &table)?;
        if self.graphs.drop_graph(&table, name).await? {
            info!(table = %table, index = name, "hnsw index dropped");
            return Ok(live.version);
        }
        let (manifest, mut dataset) = self.live_dataset(catalog, &table).await?;
        let on = dataset.version().version;
        dataset
            .drop_index(name)
            .await
            .map_err(|e| index_error(&table, name, e))?;
        let version = self
            .land_index(catalog, &table, manifest, on, dataset)
            .await?;
        info!(table = %table, index = name, version, "index dropped");
        Ok(version)
    }

    /// The indexes of a vector table's current version.
    pub async fn list_indexes(&self, catalog: &Catalog, table: &str) -> Result<Vec<IndexInfo>> {
        let table = TableRef::parse(table)?;
        let manifest = vector_manifest(catalog, &table)?;
        let dataset = self.open(&manifest).await?;
        let indexes = dataset
            .load_indices()
            .await
            .map_err(|e| lance_error(&table, "listing the indexes of", e))?;
        let schema = dataset.schema();
        let mut listed: Vec<IndexInfo> = Vec::new();
        for index in indexes.iter() {
            if lance_index::is_system_index(index) || listed.iter().any(|l| l.name == index.name) {
                continue;
            }
            let columns = index
                .fields
                .iter()
                .filter_map(|id| schema.field_by_id(*id).map(|f| f.name.clone()))
                .collect();
            let details = index
                .index_details
                .as_ref()
                .map(|d| d.type_url.rsplit('.').next().unwrap_or_default())
                .unwrap_or_default();
            let index_type = match details {
                "InvertedIndexDetails" => index_type_name(IndexKind::Fts).to_string(),
                "BTreeIndexDetails" => index_type_name(IndexKind::Btree).to_string(),
                // Lance's details do not say which vector index it is; its
                // statistics do (`IVF_PQ`, `IVF_HNSW_SQ`, ...).
                _ => dataset
                    .index_statistics(&index.name)
                    .await
                    .ok()
                    .and_then(|stats| serde_json::from_str::<serde_json::Value>(&stats).ok())
                    .and_then(|stats| stats["index_type"].as_str().map(str::to_ascii_lowercase))
                    .unwrap_or_else(|| details.to_string()),
            };
            listed.push(IndexInfo {
                name: index.name.clone(),
                columns,
                index_type,
                table_version: manifest.version,
            });
        }
        for graph in self.graphs.list(&table).await?.iter() {
            listed.push(IndexInfo {
                name: graph.name.clone(),
                columns: vec![graph.column.clone()],
                index_type: index_type_name(IndexKind::Hnsw).to_string(),
                table_version: manifest.version,
            });
        }
        Ok(listed)
    }

    /// Adds rows appended since the indexes were built to them, in the
    /// background: to the `hnsw` graphs (stored beside the dataset), then
    /// folded into the Lance indexes, committed as an `index` version.
    /// Until then, knn searches the new rows exactly beside the index, so
    /// nothing waits for it; a failure is logged and the next append
    /// tries again.
    pub fn fold_appended_rows(self: &Arc<Self>, catalog: Arc<Catalog>, table: TableRef) {
        let tables = self.clone();
        tokio::spawn(async move {
            if let Err(e) = tables.extend_graphs(&catalog, &table).await {
                warn!(table = %table, error = %e, "could not add appended rows to the hnsw indexes; knn still finds them");
            }
            let started = Instant::now();
            match tables.fold(&catalog, &table).await {
                Ok(Some(version)) => {
                    info!(table = %table, version, seconds = started.elapsed().as_secs_f64(), "appended rows folded into the indexes")
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(table = %table, error = %e, "could not fold appended rows into the indexes; knn still finds them")
                }
            }
        });
    }

    async fn fold(&self, catalog: &Catalog, table: &TableRef) -> Result<Option<u64>> {
        let lock = self.lock(table);
        let _serialised = lock.lock().await;
        let indexes = self
            .open(vector_manifest(catalog, table)?.as_ref())
            .await?
            .load_indices()
            .await
            .map_err(|e| lance_error(table, "listing the indexes of", e))?;
        if indexes.iter().all(lance_index::is_system_index) {
            return Ok(None);
        }
        let (manifest, mut dataset) = self.live_dataset(catalog, table).await?;
        let on = dataset.version().version;
        info!(table = %table, "folding appended rows into the indexes");
        dataset
            .optimize_indices(&OptimizeOptions::append())
            .await
            .map_err(|e| lance_error(table, "optimizing the indexes of", e))?;
        let version = self
            .land_index(catalog, table, manifest, on, dataset)
            .await?;
        Ok(Some(version))
    }

    /// The live manifest of a vector table and its dataset at the pinned
    /// version, made the newest, for an index change to commit on.
    async fn live_dataset(
        &self,
        catalog: &Catalog,
        table: &TableRef,
    ) -> Result<(Arc<Manifest>, Dataset)> {
        vector_manifest(catalog, table)?;
        self.pinned_head(catalog, table).await
    }

    /// Lands an index change, committed to the dataset as `applied` on
    /// its version `on`, as an `index` version after `base`.
    async fn land_index(
        &self,
        catalog: &Catalog,
        table: &TableRef,
        base: Arc<Manifest>,
        on: u64,
        applied: Dataset,
    ) -> Result<u64> {
        let operation = applied
            .read_transaction()
            .await
            .map_err(|e| lance_error(table, "reading the index change of", e))?
            .ok_or_else(|| {
                Error::internal(format!(
                    "vector table {table}: the dataset did not record its index change"
                ))
            })?
            .operation;
        let change = Change {
            base,
            operation,
            applied: Some((on, applied)),
            pin: Pin::Index,
        };
        Ok(self.land(catalog, table, change).await?.0.version)
    }
}

pub(super) fn vector_manifest(catalog: &Catalog, table: &TableRef) -> Result<Arc<Manifest>> {
    let manifest = catalog.table(table)?;
    if manifest.lance.is_none() {
        return Err(Error::invalid(format!(
            "table {table} is not a vector table (it has no vector column, so it is stored as Parquet); indexes are for vector tables"
        )));
    }
    Ok(manifest)
}

struct Built {
    index_type: IndexType,
    params: Box<dyn LanceIndexParams>,
}

fn index_type_name(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::Hnsw => "hnsw",
        IndexKind::IvfFlat => "ivf_flat",
        IndexKind::IvfPq => "ivf_pq",
        IndexKind::IvfHnswSq => "ivf_hnsw_sq",
        IndexKind::Fts => "fts",
        IndexKind::Btree => "btree",
    }
}

/// Lance parameters for a request, with the documented defaults, after
/// checking the column suits the index and the table can train it.
fn build_params(
    table: &TableRef,
    request: &IndexRequest,
    column_type: &arrow::datatypes::DataType,
    rows: u64,
) -> Result<Built> {
    use arrow::datatypes::DataType;
    let kind = index_type_name(request.index_type);
    let column = &request.column;
    let params: &IndexParams = &request.params;
    match request.index_type {
        IndexKind::Fts => {
            if !matches!(
                column_type,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                return Err(Error::invalid(format!(
                    "an fts index needs a text column; {column} of {table} is {column_type}"
                )));
            }
            return Ok(Built {
                index_type: IndexType::Inverted,
                params: Box::new(InvertedIndexParams::default()),
            });
        }
        IndexKind::Btree => {
            if is_vector_type(column_type) {
                return Err(Error::invalid(format!(
                    "a btree index is for scalar columns; {column} of {table} holds vectors"
                )));
            }
            return Ok(Built {
                index_type: IndexType::BTree,
                params: Box::new(ScalarIndexParams::for_builtin(BuiltinIndexType::BTree)),
            });
        }
        IndexKind::IvfFlat | IndexKind::IvfPq | IndexKind::IvfHnswSq | IndexKind::Hnsw => {}
    }
    let dims = vector_dimensions(table, kind, column, column_type)?;
    let partitions = params
        .num_partitions
        .unwrap_or_else(|| (rows as usize / ROWS_PER_PARTITION).max(1));
    let needed = match request.index_type {
        IndexKind::IvfPq => (partitions as u64).max(PQ_TRAINING_ROWS),
        _ => partitions as u64,
    };
    if rows < needed.max(2) {
        return Err(Error::invalid(format!(
            "table {table} has {rows} rows; an {kind} index with {partitions} partitions needs at least {} to train. Until then knn answers exactly (a full scan), which is fast at this size",
            needed.max(2)
        )));
    }
    let mut ivf = IvfBuildParams::new(partitions);
    if let Some(iterations) = params.max_iterations {
        ivf.max_iters = iterations;
    }
    if let Some(rate) = params.sample_rate {
        ivf.sample_rate = rate;
    }
    let metric = distance_type(request.metric.unwrap_or(Metric::L2));
    let vector = match request.index_type {
        IndexKind::IvfFlat => VectorIndexParams::with_ivf_flat_params(metric, ivf),
        IndexKind::IvfPq => {
            let sub_vectors = params
                .num_sub_vectors
                .unwrap_or_else(|| default_sub_vectors(dims));
            if !dims.is_multiple_of(sub_vectors) {
                return Err(Error::invalid(format!(
                    "num_sub_vectors ({sub_vectors}) must divide the {dims} dimensions of {column}"
                )));
            }
            let pq = PQBuildParams {
                num_sub_vectors: sub_vectors,
                num_bits: usize::from(params.num_bits.unwrap_or(8)),
                ..PQBuildParams::default()
            };
            VectorIndexParams::with_ivf_pq_params(metric, ivf, pq)
        }
        IndexKind::IvfHnswSq => {
            let defaults = HnswBuildParams::default();
            let hnsw = HnswBuildParams {
                m: params.m.unwrap_or(defaults.m),
                ef_construction: params.ef_construction.unwrap_or(defaults.ef_construction),
                ..defaults
            };
            let sq = SQBuildParams {
                num_bits: u16::from(params.num_bits.unwrap_or(8)),
                ..SQBuildParams::default()
            };
            VectorIndexParams::with_ivf_hnsw_sq_params(metric, ivf, hnsw, sq)
        }
        IndexKind::Fts | IndexKind::Btree | IndexKind::Hnsw => unreachable!("handled above"),
    };
    Ok(Built {
        index_type: IndexType::Vector,
        params: Box::new(vector),
    })
}

/// PQ subvectors of 4 dimensions where the dimension allows (8x
/// compression of float32 with 8-bit codes): on random 128-d data, 8
/// dimensions per subvector left recall@10 at 0.69 even with refine 20.
fn default_sub_vectors(dims: usize) -> usize {
    [4, 2, 1]
        .into_iter()
        .find(|width| dims.is_multiple_of(*width))
        .map_or(dims, |width| dims / width)
}

/// The dimensions of a vector column an index of `kind` is asked for, or
/// why the column does not suit it.
pub(super) fn vector_dimensions(
    table: &TableRef,
    kind: &str,
    column: &str,
    column_type: &arrow::datatypes::DataType,
) -> Result<usize> {
    let arrow::datatypes::DataType::FixedSizeList(_, dims) = column_type else {
        return Err(Error::invalid(format!(
            "an {kind} index needs a vector column; {column} of {table} is {column_type}"
        )));
    };
    if !is_vector_type(column_type) {
        return Err(Error::invalid(format!(
            "an {kind} index needs float32 or float16 vectors; {column} of {table} is {column_type}"
        )));
    }
    Ok(*dims as usize)
}

pub(super) fn name_taken(table: &TableRef, name: &str, what_to_do: &str) -> Error {
    Error::Extension(lakehouse_extension::ExtensionError::AlreadyExists(format!(
        "table {table} already has an index named {name:?}; {what_to_do}"
    )))
}

fn index_error(table: &TableRef, name: &str, e: lance::Error) -> Error {
    let message = format!("index {name:?} of table {table}: {}", lance_message(&e));
    match e {
        lance::Error::IndexNotFound { .. } => {
            Error::Extension(lakehouse_extension::ExtensionError::NotFound(format!(
                "table {table} has no index named {name:?}; list_indexes lists them"
            )))
        }
        lance::Error::InvalidInput { .. } | lance::Error::Index { .. } => Error::invalid(message),
        _ => Error::internal(message),
    }
}
