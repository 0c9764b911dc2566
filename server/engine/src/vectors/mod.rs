//! Vector tables: catalog tables stored as Lance datasets.
//!
//! A table whose schema has a vector column (a fixed-size list of float32
//! or float16) is stored as a Lance dataset at `lance/<schema>/<table>` under
//! the storage root, so it gets Lance's vector and full-text indexes. Each
//! catalog version pins the dataset version it reads: the table's versions
//! are the catalog's, and time travel, history and drop work as for Parquet
//! tables. Writes to one table are serialised in this process, and each
//! lands on the dataset version the catalog pins (see `landing`), so a
//! write that reached Lance but not the catalog never becomes visible
//! through a later one, and one server's append is never lost to another's
//! on the same storage. One Lance session with bounded caches serves every
//! table.

mod columns;
mod graph_indexes;
mod graph_search;
mod graphs;
mod hybrid;
mod indexes;
mod landing;
mod opened;
mod passing;
mod row_changes;
mod search;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use lance::Dataset;
use lance::dataset::builder::DatasetBuilder;
use lance::dataset::{InsertBuilder, WriteMode as LanceMode, WriteParams};
use lance::session::Session;
use tracing::info;

use crate::error::{CoreError, Error, Result};
use lakehouse_core::catalog::{
    Catalog, Commit, Committed, LanceData, LanceWrite, Manifest, TableRef, WriteMode,
};
use lakehouse_core::storage::Storage;

use landing::{Change, Pin};
use opened::OpenedDatasets;
use passing::PassingRows;
pub use search::Searcher;

/// Metadata cache budget of the shared session, in bytes.
const METADATA_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// Whether a type is a vector column's: a fixed-size list of float32 or
/// float16.
pub fn is_vector_type(data_type: &DataType) -> bool {
    matches!(data_type, DataType::FixedSizeList(item, _)
        if matches!(item.data_type(), DataType::Float32 | DataType::Float16))
}

/// Whether a table of this schema is stored as a Lance dataset.
pub fn has_vector_column(schema: &Schema) -> bool {
    schema
        .fields()
        .iter()
        .any(|f| is_vector_type(f.data_type()))
}

/// The Lance datasets of the catalog's vector tables.
pub struct VectorTables {
    /// The dataset root as a URI Lance opens, when storage allows.
    root: std::result::Result<String, String>,
    /// The storage directory, when it is local.
    local_dir: Option<std::path::PathBuf>,
    session: Arc<Session>,
    locks: parking_lot::Mutex<HashMap<TableRef, Arc<tokio::sync::Mutex<()>>>>,
    /// Datasets opened at pinned versions, for the next query.
    opened: OpenedDatasets,
    /// Rows passing knn prefilters, per dataset version and filter.
    passing: PassingRows,
    /// Resident HNSW graphs (`hnsw` indexes).
    graphs: graphs::Graphs,
    /// Held while appended rows are added to graphs.
    extending: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for VectorTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorTables")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl VectorTables {
    /// Datasets under `storage`, searched through one session that keeps
    /// up to `index_cache_bytes` of index data (Lance weighs its index
    /// cache in bytes: a budget too small for one partition reloads and
    /// decodes the index from storage on every search), and resident
    /// graphs within `graph_budget_bytes`.
    pub fn new(storage: &Storage, index_cache_bytes: usize, graph_budget_bytes: usize) -> Self {
        let root = match &storage.local_dir {
            Some(dir) => Ok(dir.join("lance").to_string_lossy().into_owned()),
            None if storage.location.starts_with("memory://") => {
                Ok("memory://lakehouse/lance".to_string())
            }
            // Lance's own S3 store reads the same AWS_* variables ours does
            // and commits with conditional puts, as the catalog does.
            None if storage.location.starts_with("s3://") => {
                Ok(format!("{}/lance", storage.location.trim_end_matches('/')))
            }
            None => Err(format!(
                "vector tables need a directory, file://, memory:// or s3:// storage, not {}",
                storage.location
            )),
        };
        let session = Arc::new(Session::new(
            index_cache_bytes,
            METADATA_CACHE_BYTES,
            Default::default(),
        ));
        Self {
            root,
            local_dir: storage.local_dir.clone(),
            session,
            locks: parking_lot::Mutex::new(HashMap::new()),
            opened: OpenedDatasets::default(),
            passing: PassingRows::default(),
            graphs: graphs::Graphs::new(storage.store.clone(), graph_budget_bytes),
            extending: tokio::sync::Mutex::new(()),
        }
    }

    /// On local storage, puts what Lance wrote on the disk before the
    /// catalog commit that pins it: Lance writes through its own store,
    /// which does not fsync, so the file system holding the datasets is
    /// synced (syncfs) once per commit.
    pub(crate) async fn make_durable(&self, table: &TableRef) -> Result<()> {
        let Some(dir) = self.local_dir.clone() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            Ok(rustix::fs::syncfs(std::fs::File::open(&dir)?)?)
        })
        .await
        .map_err(|e| Error::internal(format!("syncing vector table {table}: {e}")))?
        .map_err(|e| {
            Error::storage(
                format!("syncing the files of vector table {table} to disk"),
                object_store::Error::Generic {
                    store: "LocalFileSystem (syncfs)",
                    source: Box::new(e),
                },
            )
        })?;
        lakehouse_core::metrics::metrics().fsynced(started.elapsed());
        Ok(())
    }

    /// Where the dataset stored under `storage` (a table's
    /// [`Manifest::storage`]) is.
    fn uri(&self, storage: &TableRef) -> Result<String> {
        let root = self
            .root
            .as_ref()
            .map_err(|e| Error::NotSupported(e.clone()))?;
        Ok(format!("{root}/{}/{}", storage.schema, storage.table))
    }

    fn lock(&self, table: &TableRef) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().entry(table.clone()).or_default().clone()
    }

    /// Whether a dataset is at `uri`, in any version.
    async fn exists(&self, uri: &str) -> bool {
        DatasetBuilder::from_uri(uri)
            .with_session(self.session.clone())
            .load()
            .await
            .is_ok()
    }

    /// The dataset as a catalog version pins it (opened once, then kept).
    pub async fn open(&self, manifest: &Manifest) -> Result<Dataset> {
        let table = &manifest.table;
        let pinned = manifest.lance.ok_or_else(|| {
            Error::internal(format!("vector table {table} pins no dataset version"))
        })?;
        let storage = manifest.storage();
        if let Some(dataset) = self.opened.get(storage, pinned.version) {
            return Ok(dataset);
        }
        let dataset = DatasetBuilder::from_uri(self.uri(storage)?)
            .with_session(self.session.clone())
            .with_version(pinned.version)
            .load()
            .await
            .map_err(|e| lance_error(table, "opening", e))?;
        self.opened.insert(storage, pinned.version, dataset.clone());
        Ok(dataset)
    }

    /// Renames vector table `from` to `to` in the catalog (the dataset
    /// stays where it is: the new name's versions say where), then moves
    /// its hnsw graphs to the new name. A graph that could not be moved is
    /// logged and left out; rebuilding it (`create_index`) restores it.
    pub async fn rename(&self, catalog: &Catalog, from: &TableRef, to: &TableRef) -> Result<u64> {
        let lock = self.lock(from);
        let _serialised = lock.lock().await;
        let _no_extension = self.extending.lock().await;
        let version = catalog.rename_table(from, to).await?;
        if let Err(e) = self.graphs.rename(from, to).await {
            tracing::warn!(table = %to, renamed_from = %from, error = %e,
                "could not move the hnsw indexes of a renamed table; knn uses its Lance indexes until they are built again");
        }
        Ok(version)
    }

    /// Writes `batches` (in `schema`, the table's) into the table's dataset
    /// and commits the result as the table's next catalog version.
    pub async fn write(
        self: &Arc<Self>,
        catalog: &Arc<Catalog>,
        request: WriteRequest<'_>,
        batches: SendableRecordBatchStream,
    ) -> Result<Committed> {
        let table = request.table;
        let lock = self.lock(table);
        let _serialised = lock.lock().await;
        if let Some(key) = request.idempotency_key
            && let Some(version) = catalog.version_for_key(table, key)
        {
            let rows = catalog.version(table, version).await?.rows_added;
            info!(table = %table, version, key, "idempotency key seen before; nothing added");
            return Ok(Committed {
                version,
                rows,
                deduplicated: true,
            });
        }
        let live = catalog.table(table).ok();
        let appending =
            matches!(request.mode, WriteMode::Append | WriteMode::CreateOrAppend) && live.is_some();
        if let Some(live) = &live {
            check_vectors_fit(table, &live.schema, request.schema)?;
            if appending && live.lance.is_none() {
                return Err(Error::invalid(format!(
                    "table {table} is stored as Parquet; vector data is appended to it only as its own columns allow"
                )));
            }
        }
        if appending {
            let live = live.expect("an appended table is live");
            return self.append(catalog, request, live, batches).await;
        }
        let storage = catalog.storage_for(table);
        let uri = self.uri(&storage)?;
        let mode = if self.exists(&uri).await {
            // A dataset left by a dropped table or an uncommitted create.
            LanceMode::Overwrite
        } else {
            // Lance warns when asked to overwrite a dataset that is not there.
            LanceMode::Create
        };
        let params = WriteParams {
            mode,
            session: Some(self.session.clone()),
            ..WriteParams::default()
        };
        let written = InsertBuilder::new(uri.as_str())
            .with_params(&params)
            .execute_stream(batches)
            .await
            .map_err(|e| lance_error(table, "writing", e))?;
        let data = describe(table, &written).await?;
        self.make_durable(table).await?;
        let committed = catalog
            .commit(Commit {
                table: table.clone(),
                mode: request.mode,
                schema: request.schema.clone(),
                files: Vec::new(),
                lance: Some(LanceWrite {
                    data,
                    rows_added: data.rows,
                }),
                idempotency_key: request.idempotency_key.map(str::to_string),
                evolve: false,
                storage: Some(storage),
            })
            .await?;
        // The graphs of the rows replaced hold none of the new ones.
        self.forget_graphs(table).await;
        Ok(committed)
    }

    /// Writes the appended rows as new fragments beside the pinned version,
    /// then lands them as the table's next version (on a newer one when
    /// another writer came first).
    async fn append(
        self: &Arc<Self>,
        catalog: &Arc<Catalog>,
        request: WriteRequest<'_>,
        live: Arc<Manifest>,
        batches: SendableRecordBatchStream,
    ) -> Result<Committed> {
        let table = request.table;
        let base = self.open(&live).await?;
        let params = WriteParams {
            mode: LanceMode::Append,
            session: Some(self.session.clone()),
            ..WriteParams::default()
        };
        let written = InsertBuilder::new(Arc::new(base))
            .with_params(&params)
            .execute_uncommitted_stream(batches)
            .await
            .map_err(|e| lance_error(table, "writing", e))?;
        let change = Change {
            base: live,
            operation: written.operation,
            applied: None,
            pin: Pin::Rows(request),
        };
        let (committed, _) = self.land(catalog, table, change).await?;
        if !committed.deduplicated {
            self.fold_appended_rows(catalog.clone(), table.clone());
        }
        Ok(committed)
    }
}

/// What one write asks of a vector table.
#[derive(Debug, Clone, Copy)]
pub struct WriteRequest<'a> {
    pub table: &'a TableRef,
    pub mode: WriteMode,
    pub schema: &'a SchemaRef,
    pub idempotency_key: Option<&'a str>,
}

/// The dataset version, rows and data bytes of a written dataset.
async fn describe(table: &TableRef, dataset: &Dataset) -> Result<LanceData> {
    let rows = dataset
        .count_rows(None)
        .await
        .map_err(|e| lance_error(table, "counting", e))? as u64;
    let bytes = dataset
        .manifest()
        .fragments
        .iter()
        .flat_map(|f| &f.files)
        .filter_map(|f| f.file_size_bytes.get())
        .map(u64::from)
        .sum();
    Ok(LanceData {
        version: dataset.version().version,
        rows,
        bytes,
    })
}

/// Vectors appended must have the table's dimensions: `InvalidArgument`
/// naming the column and both dimensions otherwise.
pub fn check_vectors_fit(table: &TableRef, existing: &Schema, incoming: &Schema) -> Result<()> {
    for field in incoming.fields() {
        let Ok(current) = existing.field_with_name(field.name()) else {
            continue;
        };
        if let (DataType::FixedSizeList(_, expected), DataType::FixedSizeList(_, actual)) =
            (current.data_type(), field.data_type())
            && expected != actual
        {
            return Err(Error::invalid(format!(
                "column {} of table {table} holds vectors of {expected} dimensions; the data has {actual}",
                field.name()
            )));
        }
    }
    Ok(())
}

fn lance_error(table: &TableRef, doing: &str, e: lance::Error) -> Error {
    let message = format!("{doing} vector table {table}: {}", lance_message(&e));
    match e {
        lance::Error::DatasetNotFound { .. } => CoreError::TableNotFound(table.clone()).into(),
        lance::Error::InvalidInput { .. } | lance::Error::Schema { .. } => Error::invalid(message),
        _ => Error::internal(message),
    }
}

/// A Lance error's text without the source location Lance appends
/// (`..., /path/to/file.rs:12:34`), which means nothing to a client.
fn lance_message(e: &lance::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(", ") {
        Some((message, location))
            if location.ends_with(|c: char| c.is_ascii_digit()) && location.contains(".rs:") =>
        {
            message.to_string()
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, FixedSizeListArray, Float32Array, RecordBatch, RecordBatchIterator};
    use arrow::datatypes::Field;
    use lance::index::DatasetIndexExt;
    use lance::index::vector::VectorIndexParams;
    use lance_index::IndexType;
    use lance_index::vector::ivf::IvfBuildParams;
    use lance_linalg::distance::DistanceType;

    #[tokio::test]
    async fn the_session_keeps_a_searched_index_for_the_next_search() {
        let storage = Storage::open("memory://", std::time::Duration::from_secs(5))
            .await
            .unwrap();
        let tables = VectorTables::new(&storage, 64 << 20, 64 << 20);
        let (rows, dim) = (2_000, 8);
        let values = Float32Array::from_iter_values(
            (0..rows * dim).map(|i| ((i * 7_919) % 1_000) as f32 / 1_000.0),
        );
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let emb = FixedSizeListArray::try_new(item, dim as i32, Arc::new(values), None).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "emb",
            emb.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(emb)]).unwrap();
        let params = WriteParams {
            session: Some(tables.session.clone()),
            ..WriteParams::default()
        };
        let mut dataset = Dataset::write(
            RecordBatchIterator::new([Ok(batch)], schema),
            "memory://cache/vecs",
            Some(params),
        )
        .await
        .unwrap();
        let ivf = VectorIndexParams::with_ivf_flat_params(DistanceType::L2, IvfBuildParams::new(4));
        dataset
            .create_index(&["emb"], IndexType::Vector, None, &ivf, false)
            .await
            .unwrap();
        let query = Float32Array::from(vec![0.5; dim]);
        for _ in 0..3 {
            let mut scan = dataset.scan();
            scan.nearest("emb", &query, 5).unwrap();
            assert_eq!(scan.try_into_batch().await.unwrap().num_rows(), 5);
        }
        // The partitions (every vector, 64,000 bytes) stay cached and later
        // searches hit them. With the budget given as 256 (meant as entries,
        // counted by Lance as bytes) 96 bytes stayed and every search loaded
        // the partitions again: 60 misses against 9 hits.
        let stats = tables.session.index_cache_stats().await;
        assert!(stats.size_bytes > rows * dim * 4, "{stats:?}");
        assert!(stats.misses < stats.hits, "{stats:?}");
    }
}
