//! Small-file compaction: a Parquet table's small files merged into files
//! of the normal layout, committed as a `compact` version with the same rows.
//!
//! Every append writes at least one file, so a table fed by many small
//! appends (a stream of 1,000-row batches, say) gathers thousands of tiny
//! files; each scan then opens every one, and query time and the memory
//! scans hold grow with the count. After an append leaves
//! `compact_min_files` small files (fewer rows than a row group) a
//! background task rewrites them, in order, through the same writer ingest
//! uses, and commits. Older versions keep reading the old files (time
//! travel); vacuum removes those once no retained version needs them. Only
//! files this server wrote under the table's data prefix are merged:
//! registered files stay the caller's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, Schema};
use futures::TryStreamExt;
use object_store::path::Path;
use parking_lot::Mutex;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::async_reader::ParquetObjectReader;
use serde::Serialize;
use tracing::{info, warn};

use super::{Ingest, ParquetFiles, align};
use crate::error::{Error, Result};
use lakehouse_core::catalog::{
    ColumnNames, DataFile, Manifest, Operation, Rewrite, TableKind, TableRef, data_prefix,
    delete_uncommitted,
};

/// Most files one run merges, so a run stays bounded in time; a table with
/// more is merged over several runs.
const MAX_FILES_PER_RUN: usize = 1024;

/// After a failed background run, how long appends leave the table alone
/// (the failure is logged once, not after every append).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// What one compaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compacted {
    pub table: String,
    /// The version committed; `None` when there was nothing to merge.
    pub version: Option<u64>,
    pub files_replaced: u64,
    pub files_written: u64,
    pub rows: u64,
}

/// Per table: one compaction at a time, and when the last background run
/// failed.
#[derive(Debug, Default)]
pub struct Compactions {
    running: Mutex<HashMap<TableRef, Arc<tokio::sync::Mutex<()>>>>,
    failed: Mutex<HashMap<TableRef, Instant>>,
}

impl Compactions {
    fn lock_for(&self, table: &TableRef) -> Arc<tokio::sync::Mutex<()>> {
        self.running
            .lock()
            .entry(table.clone())
            .or_default()
            .clone()
    }

    fn recently_failed(&self, table: &TableRef) -> bool {
        self.failed
            .lock()
            .get(table)
            .is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE)
    }
}

impl Ingest {
    /// Merges `table`'s small files when it has at least `min_files` of them
    /// (two at the least); waits for a run already under way.
    pub async fn compact(&self, table: &TableRef, min_files: usize) -> Result<Compacted> {
        let lock = self.compactions.lock_for(table);
        let _running = lock.lock().await;
        self.compact_now(table, min_files).await
    }

    /// Starts a background compaction of `table` when an append has left
    /// it with `compact_min_files` small files and none is running.
    pub(super) fn compact_in_background(&self, table: &TableRef) {
        let min_files = self.layout.compact_min_files;
        let due = min_files > 0
            && self
                .catalog
                .table(table)
                .is_ok_and(|m| self.small_files(&m).len() >= min_files)
            && !self.compactions.recently_failed(table);
        if !due {
            return;
        }
        let lock = self.compactions.lock_for(table);
        let Ok(running) = lock.try_lock_owned() else {
            return;
        };
        let ingest = self.clone();
        let table = table.clone();
        tokio::spawn(async move {
            let _running = running;
            loop {
                match ingest.compact_now(&table, min_files).await {
                    Ok(done) if done.version.is_some() => continue,
                    Ok(_) => break,
                    Err(e) => {
                        warn!(table = %table, error = %e,
                            "background compaction failed; the small files stay readable, next try in {}s",
                            RETRY_AFTER_FAILURE.as_secs());
                        ingest
                            .compactions
                            .failed
                            .lock()
                            .insert(table.clone(), Instant::now());
                        break;
                    }
                }
            }
        });
    }

    async fn compact_now(&self, table: &TableRef, min_files: usize) -> Result<Compacted> {
        let manifest = self.catalog.table(table)?;
        if manifest.kind != TableKind::Parquet {
            return Err(Error::invalid(format!(
                "table {table} is a vector (Lance) table; compaction merges the files of Parquet tables"
            )));
        }
        let small: Vec<DataFile> = self
            .small_files(&manifest)
            .into_iter()
            .take(MAX_FILES_PER_RUN)
            .cloned()
            .collect();
        let rows: u64 = small.iter().map(|f| f.rows).sum();
        let nothing = Compacted {
            table: table.to_string(),
            version: None,
            files_replaced: 0,
            files_written: 0,
            rows: 0,
        };
        if small.len() < min_files.max(2) {
            return Ok(nothing);
        }
        let started = Instant::now();
        let _uploading = self.catalog.uploading(table);
        let merged = self.merge(table, &manifest, &small).await?;
        let written_rows: u64 = merged.iter().map(|f| f.rows).sum();
        let replaced: Vec<String> = small.iter().map(|f| f.path.clone()).collect();
        let committed = if written_rows == rows {
            self.catalog
                .commit_rewrite(table, &compaction(replaced, merged.clone()))
                .await
                .map_err(Error::from)
        } else {
            Err(Error::internal(format!(
                "compacting table {table}: read {rows} rows from {} files but wrote {written_rows}",
                small.len()
            )))
        };
        let version = match committed {
            Ok(version) => version,
            Err(e) => {
                delete_uncommitted(self.catalog.store().as_ref(), &merged).await;
                return Err(e);
            }
        };
        info!(table = %table, version, files_replaced = small.len(), files_written = merged.len(),
            rows, seconds = started.elapsed().as_secs_f64(), "compacted small files");
        Ok(Compacted {
            version: Some(version),
            files_replaced: small.len() as u64,
            files_written: merged.len() as u64,
            rows,
            ..nothing
        })
    }

    /// The files of `manifest` worth merging: written under the table's
    /// data prefix and holding fewer rows than one row group.
    fn small_files<'m>(&self, manifest: &'m Manifest) -> Vec<&'m DataFile> {
        let prefix = format!("{}/", data_prefix(manifest.storage()));
        manifest
            .files
            .iter()
            .filter(|f| f.rows < self.layout.row_group_rows as u64 && f.path.starts_with(&prefix))
            .collect()
    }

    /// Rewrites `files` in order, aligned to the table's schema, as new
    /// files under its data prefix (not yet committed).
    async fn merge(
        &self,
        table: &TableRef,
        manifest: &Manifest,
        files: &[DataFile],
    ) -> Result<Vec<DataFile>> {
        let store = self.catalog.store().clone();
        let mut writer = ParquetFiles::new(
            store.clone(),
            data_prefix(manifest.storage()),
            manifest.schema.clone(),
            self.layout.clone(),
        );
        let names = ColumnNames::of(&manifest.schema);
        for file in files {
            let copied = async {
                let reader =
                    ParquetObjectReader::new(store.clone(), Path::from(file.path.as_str()))
                        .with_file_size(file.bytes);
                let mut batches = ParquetRecordBatchStreamBuilder::new(reader)
                    .await?
                    .with_batch_size(self.layout.row_group_rows.min(64 * 1024))
                    .build()?;
                while let Some(batch) = batches.try_next().await? {
                    let batch = with_table_names(&batch, &names)?;
                    writer.write(&align(&batch, &manifest.schema)?).await?;
                }
                Ok::<_, Error>(())
            }
            .await;
            if let Err(e) = copied {
                writer.abort().await;
                return Err(Error::internal(format!(
                    "compacting table {table}: reading {}: {e}",
                    file.path
                )));
            }
        }
        writer.finish().await
    }
}

/// A data file's batch with its columns under their names in the table
/// now (after `ALTER TABLE`), dropped columns left out.
fn with_table_names(batch: &RecordBatch, names: &ColumnNames) -> Result<RecordBatch> {
    if names.is_identity() {
        return Ok(batch.clone());
    }
    let (fields, columns): (Vec<Field>, Vec<ArrayRef>) = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter_map(|(field, column)| {
            let name = names.table_column(field.name())?;
            Some((field.as_ref().clone().with_name(name), column.clone()))
        })
        .unzip();
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &options,
    )?)
}

/// The rewrite a compaction commits: the same rows in the merged files.
fn compaction(replaced: Vec<String>, merged: Vec<DataFile>) -> Rewrite {
    Rewrite {
        operation: Operation::Compact,
        replaced,
        written: merged,
        rows_added: 0,
        rows_removed: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CoreError;
    use crate::ingest::{FileLayout, IngestRequest};
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use lakehouse_core::catalog::{Catalog, Operation, WriteMode};
    use object_store::memory::InMemory;

    fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let names: Vec<String> = ids.clone().map(|i| format!("n{i}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    fn table() -> TableRef {
        TableRef::new(None, "events").unwrap()
    }

    async fn write(ingest: &Ingest, mode: WriteMode, ids: std::ops::Range<i64>) {
        let request = IngestRequest {
            table: table(),
            mode,
            idempotency_key: None,
            evolve: false,
            format: None,
            embed: Vec::new(),
        };
        let rows = batch(ids);
        ingest
            .write(request, rows.schema(), futures::stream::iter([Ok(rows)]))
            .await
            .unwrap();
    }

    async fn append(ingest: &Ingest, ids: std::ops::Range<i64>) {
        write(ingest, WriteMode::CreateOrAppend, ids).await;
    }

    /// Every id of a version, reading its files in manifest order.
    async fn ids(catalog: &Catalog, manifest: &Manifest) -> Vec<i64> {
        let mut ids = Vec::new();
        for file in &manifest.files {
            let batches: Vec<RecordBatch> = crate::ingest::tests::file_reader(catalog, file)
                .await
                .build()
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            for b in batches {
                let column = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                ids.extend(column.values().iter().copied());
            }
        }
        ids
    }

    async fn setup(compact_min_files: usize) -> (Arc<Catalog>, Ingest) {
        let catalog = Arc::new(Catalog::load(Arc::new(InMemory::new())).await.unwrap());
        let layout = FileLayout {
            row_group_rows: 100,
            compact_min_files,
            ..FileLayout::default()
        };
        (catalog.clone(), Ingest::new(catalog, layout))
    }

    #[tokio::test]
    async fn merges_small_files_keeping_every_row_in_order_and_old_versions_readable() {
        let (catalog, ingest) = setup(0).await;
        for i in 0..12 {
            append(&ingest, i * 30..(i + 1) * 30).await;
        }
        let before = catalog.table(&table()).unwrap();
        assert_eq!(before.files.len(), 12);

        let done = ingest.compact(&table(), 2).await.unwrap();
        assert_eq!(
            (done.version, done.files_replaced, done.rows),
            (Some(13), 12, 360)
        );
        let after = catalog.table(&table()).unwrap();
        assert_eq!(after.operation, Operation::Compact);
        assert_eq!(after.rows_added, 0);
        assert_eq!(after.total_rows(), 360);
        // 360 rows at 100 rows per row group, in one file.
        assert_eq!(after.files.len(), 1);
        assert_eq!(after.files[0].columns.len(), 2, "statistics recorded");
        assert_eq!(ids(&catalog, &after).await, (0..360).collect::<Vec<_>>());
        let old = catalog.version(&table(), 12).await.unwrap();
        assert_eq!(ids(&catalog, &old).await, (0..360).collect::<Vec<_>>());

        let again = ingest.compact(&table(), 2).await.unwrap();
        assert_eq!(again.version, None, "one file is left: nothing to merge");
    }

    #[tokio::test]
    async fn files_of_a_full_row_group_stay_and_appends_after_planning_survive() {
        let (catalog, ingest) = setup(0).await;
        append(&ingest, 0..250).await;
        for i in 0..3 {
            append(&ingest, 1000 + i * 10..1000 + (i + 1) * 10).await;
        }
        let planned = catalog.table(&table()).unwrap();
        let small: Vec<DataFile> = ingest.small_files(&planned).into_iter().cloned().collect();
        // 250 rows (three row groups) in one file, which is not small.
        assert_eq!(planned.files.len(), 4);
        assert_eq!(small.len(), 3);
        let merged = ingest.merge(&table(), &planned, &small).await.unwrap();
        append(&ingest, 5000..5005).await;
        let replaced: Vec<String> = small.iter().map(|f| f.path.clone()).collect();
        catalog
            .commit_rewrite(&table(), &compaction(replaced, merged))
            .await
            .unwrap();
        let after = catalog.table(&table()).unwrap();
        assert_eq!(after.total_rows(), 285);
        let mut got = ids(&catalog, &after).await;
        got.sort_unstable();
        let mut want: Vec<i64> = (0..250).chain(1000..1030).chain(5000..5005).collect();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn an_overwrite_during_compaction_wins() {
        let (catalog, ingest) = setup(0).await;
        for i in 0..3 {
            append(&ingest, i * 10..(i + 1) * 10).await;
        }
        let planned = catalog.table(&table()).unwrap();
        let small: Vec<DataFile> = ingest.small_files(&planned).into_iter().cloned().collect();
        let merged = ingest.merge(&table(), &planned, &small).await.unwrap();
        write(&ingest, WriteMode::Overwrite, 7..8).await;
        let replaced: Vec<String> = small.iter().map(|f| f.path.clone()).collect();
        let err = catalog
            .commit_rewrite(&table(), &compaction(replaced, merged))
            .await
            .unwrap_err();
        assert!(matches!(err, CoreError::CommitConflict { .. }), "{err}");
        assert_eq!(ids(&catalog, &catalog.table(&table()).unwrap()).await, [7]);
    }

    #[tokio::test]
    async fn appends_start_a_background_compaction_at_the_threshold() {
        let (catalog, ingest) = setup(4).await;
        for i in 0..4 {
            append(&ingest, i * 10..(i + 1) * 10).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let latest = catalog.table(&table()).unwrap();
            if latest.operation == Operation::Compact {
                assert_eq!(latest.files.len(), 1);
                assert_eq!(ids(&catalog, &latest).await, (0..40).collect::<Vec<_>>());
                break;
            }
            assert!(Instant::now() < deadline, "no compaction after 30 s");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn below_the_threshold_nothing_is_merged() {
        let (catalog, ingest) = setup(0).await;
        for i in 0..3 {
            append(&ingest, i * 10..(i + 1) * 10).await;
        }
        assert_eq!(ingest.compact(&table(), 4).await.unwrap().version, None);
        assert_eq!(catalog.table(&table()).unwrap().version, 3);
    }
}
