//! `DELETE` and `UPDATE` of Parquet tables, copy-on-write: only the files
//! holding matching rows are rewritten, then swapped for the new files in
//! one catalog version.
//!
//! Two passes over the version the statement was planned on. The first
//! scans with the predicate pushed into the Parquet reader (file, row-group
//! and page statistics skip what cannot match) and counts matching rows
//! per file ([`FILE_COLUMN`]). The second reads only those files and writes
//! what stays: for a delete the rows the predicate is not true for, for an
//! update every row with the new values where it is. A delete that removes
//! every row of a file writes nothing for it. The commit swaps files the
//! way compaction does, so appends that landed meanwhile stay. When another
//! writer rewrote one of the same files first (a delete, an update, a
//! compaction), the statement runs again on the newest version, a few
//! times, as long as the table's columns did not change meanwhile; then
//! the conflict is the client's to retry (`lakehouse_core::catalog::Rewrite`).
//! Merge-on-read (deletion vectors) would make small deletes cheaper by
//! writing no rows at all; it is not done, so a delete of one row rewrites
//! its whole file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, UInt64Type};
use datafusion::functions_aggregate::count::count;
use datafusion::prelude::{col, lit};
use futures::TryStreamExt;
use tracing::info;

use super::QueryEngine;
use super::provider::{FILE_COLUMN, Nullability, ParquetTable};
use super::row_change::RowChange;
use crate::error::{CoreError, Error, Result};
use lakehouse_core::catalog::{
    DataFile, Manifest, Operation, Rewrite, TableRef, delete_uncommitted,
};

/// Runs of one statement before a conflict goes back to the client.
pub(super) const MAX_ATTEMPTS: usize = 5;

impl QueryEngine {
    /// Applies `change` to the Parquet table version `planned` (again on the
    /// newest version after a conflict); returns the rows deleted or
    /// updated.
    pub(super) async fn change_parquet_rows(
        &self,
        change: &RowChange,
        planned: &Arc<Manifest>,
    ) -> Result<u64> {
        let mut planned = planned.clone();
        let mut attempt = 1;
        loop {
            match self.change_parquet_rows_on(change, &planned).await {
                Err(Error::Core(CoreError::CommitConflict { .. })) if attempt < MAX_ATTEMPTS => {
                    let newest = self.catalog.table(&change.table)?;
                    if newest.schema != planned.schema || newest.kind != planned.kind {
                        return Err(CoreError::CommitConflict {
                            table: change.table.clone(),
                            detail: format!(
                                "version {} changed the table's columns while this {} ran on version {}; run it again",
                                newest.version,
                                change.operation.as_str(),
                                planned.version
                            ),
                        }
                        .into());
                    }
                    info!(table = %change.table, attempt, version = newest.version,
                        "another writer rewrote the same files first; running the statement again on the newest version");
                    planned = newest;
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    async fn change_parquet_rows_on(
        &self,
        change: &RowChange,
        planned: &Arc<Manifest>,
    ) -> Result<u64> {
        let started = Instant::now();
        let table = &change.table;
        let _reading = self.catalog.reading(table, planned.version);
        let _uploading = self.catalog.uploading(table);
        let matching = self.matching_rows(change, planned).await?;
        let changed: u64 = matching.values().sum();
        if changed == 0 {
            info!(table = %table, operation = change.operation.as_str(), "no row matched; nothing changed");
            return Ok(0);
        }
        let affected: Vec<DataFile> = matching
            .keys()
            .map(|&position| planned.files[position].clone())
            .collect();
        let affected_rows: u64 = affected.iter().map(|f| f.rows).sum();
        let staying = match change.operation {
            Operation::Delete => affected_rows - changed,
            _ => affected_rows,
        };
        let written = if staying == 0 {
            Vec::new()
        } else {
            self.rewrite(change, planned, affected.clone()).await?
        };
        let rewrite = Rewrite {
            operation: change.operation,
            replaced: affected.iter().map(|f| f.path.clone()).collect(),
            written,
            rows_added: 0,
            rows_removed: changed,
        };
        let written_rows = rewrite.written.iter().map(|f| f.rows).sum::<u64>();
        let files_written = rewrite.written.len();
        let version = self
            .commit_rewritten(table, rewrite, staying, || {
                format!(
                    "{} of table {table}: {} files held {affected_rows} rows, {changed} matching",
                    change.operation.as_str(),
                    affected.len()
                )
            })
            .await?;
        info!(table = %table, version, operation = change.operation.as_str(), rows = changed,
            files_read = affected.len(), files_written, rows_rewritten = written_rows,
            seconds = started.elapsed().as_secs_f64(), "rows changed");
        Ok(changed)
    }

    /// Commits `rewrite` when its files hold `expected` rows; otherwise,
    /// or when the commit fails, deletes the files it wrote. `what` names
    /// the statement for the error.
    pub(super) async fn commit_rewritten(
        &self,
        table: &TableRef,
        rewrite: Rewrite,
        expected: u64,
        what: impl FnOnce() -> String,
    ) -> Result<u64> {
        let written: u64 = rewrite.written.iter().map(|f| f.rows).sum();
        let committed = if written == expected {
            self.catalog
                .commit_rewrite(table, &rewrite)
                .await
                .map_err(Error::from)
        } else {
            Err(Error::internal(format!(
                "{}, but {written} rows were written instead of {expected}",
                what()
            )))
        };
        if committed.is_err() {
            delete_uncommitted(self.catalog.store().as_ref(), &rewrite.written).await;
        }
        committed
    }

    /// Per file of `planned` (by position) holding a row the predicate is
    /// true for, how many it holds.
    async fn matching_rows(
        &self,
        change: &RowChange,
        planned: &Arc<Manifest>,
    ) -> Result<BTreeMap<usize, u64>> {
        let Some(predicate) = &change.predicate else {
            return Ok(planned
                .files
                .iter()
                .enumerate()
                .filter(|(_, f)| f.rows > 0)
                .map(|(position, f)| (position, f.rows))
                .collect());
        };
        let scan = change.scan_of(Arc::new(ParquetTable::with_file_column(planned.clone())))?;
        let plan = scan
            .filter(predicate.clone())?
            .aggregate(vec![col(FILE_COLUMN)], vec![count(lit(1)).alias("rows")])?
            .build()?;
        let batches: Vec<RecordBatch> = self
            .execute_query(plan)
            .await?
            .try_collect()
            .await
            .map_err(Error::from_datafusion)?;
        let mut matching = BTreeMap::new();
        for batch in &batches {
            let files = batch.column(0).as_primitive::<UInt64Type>();
            let rows = batch.column(1).as_primitive::<Int64Type>();
            for (file, rows) in files.values().iter().zip(rows.values()) {
                matching.insert(*file as usize, *rows as u64);
            }
        }
        Ok(matching)
    }

    /// Writes what stays of `affected` (files of `planned`) after `change`,
    /// as new files of the table (not yet committed).
    async fn rewrite(
        &self,
        change: &RowChange,
        planned: &Arc<Manifest>,
        affected: Vec<DataFile>,
    ) -> Result<Vec<DataFile>> {
        let only_affected = Manifest {
            files: affected,
            ..planned.as_ref().clone()
        };
        let scan = change.scan_of(Arc::new(ParquetTable::new(
            Arc::new(only_affected),
            Nullability::OfTheVersion,
        )))?;
        let plan = match change.operation {
            Operation::Update => change.updated(scan)?,
            _ => change.kept(scan)?,
        }
        .build()?;
        let stream = self.execute_query(plan).await?;
        self.ingest
            .write_files(
                &self.catalog.storage_for(&change.table),
                planned.schema.clone(),
                stream.map_err(Error::from_datafusion),
            )
            .await
    }
}
