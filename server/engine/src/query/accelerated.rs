//! Accelerated tables: an in-memory Arrow copy of the Parquet tables the
//! operator names (setting `accelerated_tables`), so that their scans skip
//! reading and decoding Parquet, about a third of a TPC-H query's time
//! (docs/performance.md).
//!
//! The copy is kept per data file, decoded by the table's own scan. A
//! version whose every file is resident, decoded with the version's
//! columns, is scanned from memory; any other version from its files, so
//! a query never reads a stale copy. A background task follows the
//! catalog's changes: after a commit it decodes the new files and lets go
//! of the files no longer in the table's latest version, so an append
//! costs its own rows only, and until they are decoded queries read the
//! files. All copies share one memory budget (`acceleration_memory_mb`): a
//! table that does not fit is left to its files, with a warning, and its
//! status says so.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayData, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::Statistics;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use super::provider::{Nullability, ParquetTable};
use super::resident_scan::ResidentScan;
use crate::error::{Error, Result};
use lakehouse_core::catalog::{Catalog, DataFile, Manifest, TableRef};
use lakehouse_core::metrics::metrics;

/// Which tables are accelerated, and the memory their copies may take.
#[derive(Debug, Clone)]
pub struct AccelerationOptions {
    pub tables: Vec<TableRef>,
    /// Bytes all copies may hold together.
    pub memory_limit: usize,
}

/// Where an accelerated table stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccelerationState {
    /// Its latest version is in memory: scans read the copy.
    Resident,
    /// Its latest version's files are being decoded; scans read the files.
    Loading,
    /// Its copy would pass `acceleration_memory_mb`: scans read the files.
    OverBudget,
    /// No table has the name (yet).
    NotFound,
    /// A vector (Lance) table: searched through its indexes, not copied.
    NotParquet,
    /// Decoding failed (the message says why); retried on the next commit.
    Failed,
}

/// One accelerated table as the `accelerated_tables` action reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub table: String,
    pub state: AccelerationState,
    /// The version the state is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    pub rows: u64,
    /// Memory the copy holds.
    pub bytes: u64,
    pub files: usize,
    /// Time the last load took, decoding the files it had to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl TableStatus {
    /// `table` in `state`, holding nothing in memory.
    fn holding_nothing(
        table: &TableRef,
        state: AccelerationState,
        version: Option<u64>,
        message: Option<String>,
    ) -> Self {
        Self {
            table: table.to_string(),
            state,
            version,
            rows: 0,
            bytes: 0,
            files: 0,
            load_ms: None,
            message,
        }
    }
}

/// Every accelerated table, and the budget they share.
#[derive(Debug, Clone, Serialize)]
pub struct AccelerationStatus {
    pub memory_limit_bytes: u64,
    pub memory_used_bytes: u64,
    pub tables: Vec<TableStatus>,
}

/// One data file's rows in memory.
struct ResidentFile {
    table: TableRef,
    /// The table's columns (as the catalog declares them) it was decoded
    /// with: a version with other columns reads the files.
    columns: SchemaRef,
    batches: Vec<RecordBatch>,
    rows: u64,
    bytes: usize,
}

#[derive(Default)]
struct Resident {
    /// By data file path.
    files: HashMap<String, ResidentFile>,
    status: BTreeMap<TableRef, TableStatus>,
    bytes: usize,
}

impl Resident {
    /// Lets go of `table`'s files that `keep` refuses.
    fn release(&mut self, table: &TableRef, keep: impl Fn(&str, &ResidentFile) -> bool) {
        let mut freed = 0;
        self.files.retain(|path, file| {
            let kept = &file.table != table || keep(path, file);
            if !kept {
                freed += file.bytes;
            }
            kept
        });
        self.bytes -= freed;
        metrics().accelerated_bytes(self.bytes as u64);
    }

    fn insert(&mut self, path: String, file: ResidentFile) {
        self.bytes += file.bytes;
        if let Some(replaced) = self.files.insert(path, file) {
            self.bytes -= replaced.bytes;
        }
        metrics().accelerated_bytes(self.bytes as u64);
    }
}

/// The memory `batches` hold: each buffer counted once, however many
/// arrays share it (a decoded Parquet page's string data backs the view
/// arrays of every batch cut from the page; counted per array it came to
/// twice what the process held).
fn held_bytes(batches: &[RecordBatch]) -> usize {
    fn add(data: &ArrayData, seen: &mut HashSet<usize>, total: &mut usize) {
        let buffers = data
            .buffers()
            .iter()
            .chain(data.nulls().map(|n| n.buffer()));
        for buffer in buffers {
            if seen.insert(buffer.data_ptr().as_ptr() as usize) {
                *total += buffer.capacity();
            }
        }
        for child in data.child_data() {
            add(child, seen, total);
        }
    }
    let (mut seen, mut total) = (HashSet::new(), 0);
    for column in batches.iter().flat_map(RecordBatch::columns) {
        add(&column.to_data(), &mut seen, &mut total);
    }
    total
}

/// The in-memory copies of the accelerated tables.
pub struct Accelerated {
    options: AccelerationOptions,
    catalog: Arc<Catalog>,
    /// Decodes files: the query session's runtime (its object store and
    /// memory pool), without a catalog.
    loader: SessionContext,
    resident: Mutex<Resident>,
    /// The catalog generation the copies have caught up with.
    caught_up: watch::Sender<u64>,
}

impl std::fmt::Debug for Accelerated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accelerated")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Accelerated {
    pub fn new(
        options: AccelerationOptions,
        catalog: Arc<Catalog>,
        config: SessionConfig,
        runtime: Arc<RuntimeEnv>,
    ) -> Self {
        Self {
            options,
            catalog,
            loader: SessionContext::new_with_config_rt(config, runtime),
            resident: Mutex::new(Resident::default()),
            caught_up: watch::Sender::new(0),
        }
    }

    /// Whether `table` is one of the accelerated tables.
    fn is_accelerated(&self, table: &TableRef) -> bool {
        self.options.tables.contains(table)
    }

    /// Loads the accelerated tables, then follows the catalog's changes,
    /// in a task of its own; nothing to do when no table is accelerated.
    pub fn start(self: &Arc<Self>) {
        if self.options.tables.is_empty() {
            return;
        }
        info!(
            tables = %self.options.tables.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            memory_limit_mb = self.options.memory_limit >> 20,
            "accelerating tables in memory"
        );
        let this = self.clone();
        let mut changes = self.catalog.changes();
        tokio::spawn(async move {
            loop {
                changes.mark_unchanged();
                this.catch_up().await;
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Brings every accelerated table's copy to its latest version.
    async fn catch_up(&self) {
        let generation = self.catalog.generation();
        for table in &self.options.tables {
            let status = self.refresh(table).await;
            self.resident.lock().status.insert(table.clone(), status);
        }
        self.caught_up.send_replace(generation);
    }

    /// Brings `table`'s copy to its latest version and says where it
    /// stands.
    async fn refresh(&self, table: &TableRef) -> TableStatus {
        let status =
            |state, version, message| TableStatus::holding_nothing(table, state, version, message);
        let Ok(manifest) = self.catalog.table(table) else {
            self.resident.lock().release(table, |_, _| false);
            return status(AccelerationState::NotFound, None, None);
        };
        let version = Some(manifest.version);
        if manifest.lance.is_some() {
            self.resident.lock().release(table, |_, _| false);
            return status(
                AccelerationState::NotParquet,
                version,
                Some("a vector (Lance) table is searched through its indexes; only Parquet tables are copied".into()),
            );
        }
        let previous = self.resident.lock().status.get(table).cloned();
        if let Some(previous) = &previous
            && previous.version == version
            && matches!(
                previous.state,
                AccelerationState::OverBudget
                    | AccelerationState::Resident
                    | AccelerationState::Failed
            )
        {
            return previous.clone();
        }
        let wanted: HashSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        let missing: Vec<&DataFile> = {
            let mut resident = self.resident.lock();
            resident.release(table, |path, file| {
                wanted.contains(path) && file.columns == manifest.schema
            });
            resident.status.insert(
                table.clone(),
                status(AccelerationState::Loading, version, None),
            );
            manifest
                .files
                .iter()
                .filter(|f| !resident.files.contains_key(&f.path))
                .collect()
        };
        let started = Instant::now();
        if !missing.is_empty() {
            info!(
                %table,
                version = manifest.version,
                files = missing.len(),
                rows = missing.iter().map(|f| f.rows).sum::<u64>(),
                "decoding files into the table's in-memory copy"
            );
        }
        for file in missing {
            let decoded = match self.decode(&manifest, file).await {
                Ok(decoded) => decoded,
                Err(error) => {
                    warn!(%table, file = %file.path, %error, "could not copy the table into memory; its scans read its files");
                    self.resident.lock().release(table, |_, _| false);
                    return status(
                        AccelerationState::Failed,
                        version,
                        Some(format!("decoding {}: {error}", file.path)),
                    );
                }
            };
            let mut resident = self.resident.lock();
            if resident.bytes + decoded.bytes > self.options.memory_limit {
                let held: usize = resident
                    .files
                    .values()
                    .filter(|f| &f.table == table)
                    .map(|f| f.bytes)
                    .sum();
                resident.release(table, |_, _| false);
                let message = format!(
                    "the copy of {table} takes more than the {} MiB left of acceleration_memory_mb ({} MiB): \
                     {} MiB decoded of {} files when {} did not fit; its scans read its files",
                    (self.options.memory_limit - resident.bytes) >> 20,
                    self.options.memory_limit >> 20,
                    (held + decoded.bytes) >> 20,
                    manifest.files.len(),
                    file.path,
                );
                warn!(%table, "{message}");
                return status(AccelerationState::OverBudget, version, Some(message));
            }
            resident.insert(file.path.clone(), decoded);
        }
        let resident = self.resident.lock();
        let files: Vec<&ResidentFile> = manifest
            .files
            .iter()
            .filter_map(|f| resident.files.get(&f.path))
            .collect();
        let load_ms = started.elapsed().as_secs_f64() * 1e3;
        let loaded = TableStatus {
            rows: files.iter().map(|f| f.rows).sum(),
            bytes: files.iter().map(|f| f.bytes as u64).sum(),
            files: files.len(),
            load_ms: Some(load_ms),
            ..status(AccelerationState::Resident, version, None)
        };
        info!(
            %table,
            version = manifest.version,
            rows = loaded.rows,
            memory_mb = loaded.bytes >> 20,
            load_ms = load_ms as u64,
            "table resident in memory"
        );
        loaded
    }

    /// One data file of `manifest`, decoded by the table's own scan (view
    /// types, columns mapped after `ALTER TABLE`).
    async fn decode(&self, manifest: &Manifest, file: &DataFile) -> Result<ResidentFile> {
        let single = Manifest {
            files: vec![file.clone()],
            ..manifest.clone()
        };
        let table = ParquetTable::new(Arc::new(single), Nullability::Declared);
        let state = self.loader.state();
        let plan = table.scan(&state, None, &[], None).await?;
        let batches = collect(plan, state.task_ctx()).await?;
        Ok(ResidentFile {
            table: manifest.table.clone(),
            columns: manifest.schema.clone(),
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
            bytes: held_bytes(&batches),
            batches,
        })
    }

    /// A scan of `manifest` from memory, with `schema` and the
    /// `statistics` (the version's, as [`ParquetTable`] declares them; made
    /// only when the copy is read), when every file of the version is
    /// resident; none otherwise.
    pub fn scan(
        &self,
        manifest: &Manifest,
        schema: &SchemaRef,
        statistics: impl FnOnce() -> Statistics,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
        partitions: usize,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if !self.is_accelerated(&manifest.table) {
            return Ok(None);
        }
        let count = partitions.max(1);
        let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); count];
        {
            let resident = self.resident.lock();
            let mut next = 0;
            for file in &manifest.files {
                let Some(copy) = resident
                    .files
                    .get(&file.path)
                    .filter(|copy| copy.columns == manifest.schema)
                else {
                    return Ok(None);
                };
                for batch in &copy.batches {
                    parts[next % count].push(batch.clone());
                    next += 1;
                }
            }
        }
        let parts = parts
            .into_iter()
            .map(|part| {
                part.into_iter()
                    .map(|batch| {
                        RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(
                            |e| Error::internal(format!("copy of {}: {e}", manifest.table)),
                        )
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let batches = MemorySourceConfig::try_new(&parts, schema.clone(), projection.cloned())?
            .with_limit(limit);
        metrics().accelerated_scan();
        Ok(Some(DataSourceExec::from_data_source(ResidentScan::new(
            batches,
            statistics(),
        ))))
    }

    /// Where every accelerated table stands; with `wait`, first waits (at
    /// most that long) until the copies have caught up with the catalog
    /// as it is now.
    pub async fn status(&self, wait: Option<Duration>) -> AccelerationStatus {
        if let Some(wait) = wait
            && !self.options.tables.is_empty()
        {
            let now = self.catalog.generation();
            let mut caught_up = self.caught_up.subscribe();
            let _ = tokio::time::timeout(wait, caught_up.wait_for(|g| *g >= now)).await;
        }
        let resident = self.resident.lock();
        let tables = self
            .options
            .tables
            .iter()
            .map(|table| {
                resident.status.get(table).cloned().unwrap_or_else(|| {
                    TableStatus::holding_nothing(table, AccelerationState::Loading, None, None)
                })
            })
            .collect();
        AccelerationStatus {
            memory_limit_bytes: self.options.memory_limit as u64,
            memory_used_bytes: resident.bytes as u64,
            tables,
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringViewArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn buffers_shared_by_batches_are_counted_once() {
        let strings: StringViewArray = (0..1000)
            .map(|i| Some(format!("a string longer than twelve bytes {i}")))
            .collect();
        let numbers = Int64Array::from_iter_values(0..1000);
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8View, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let whole =
            RecordBatch::try_new(schema, vec![Arc::new(strings), Arc::new(numbers)]).unwrap();
        let halves = [whole.slice(0, 500), whole.slice(500, 500)];
        let once = held_bytes(std::slice::from_ref(&whole));
        assert_eq!(held_bytes(&halves), once);
        assert!(once >= 1000 * (16 + 8 + 34), "{once}");
        let per_array: usize = halves.iter().map(RecordBatch::get_array_memory_size).sum();
        assert!(per_array > once, "{per_array} {once}");
    }
}
