//! `DELETE` and `UPDATE` of vector tables, through Lance's own deletion
//! files and row rewrites, landed like every other change (`landing`).
//!
//! The change is made on the dataset version the table's catalog version
//! pins, as an uncommitted Lance transaction (a `Delete`, or an `Update`
//! that deletes the matching rows and appends them with their new values),
//! then landed: committed on the pinned version and pinned by a `delete` or
//! `update` catalog version. Only appends may come between (their rows were
//! not there to match); anything else is a conflict to retry.
//!
//! Deleted rows drop out of searches at once: fragments with deletions are
//! searched exactly beside an `hnsw` graph, and Lance's own indexes skip
//! deleted rows. Updated rows live in new fragments, searched exactly until
//! the index is extended or rebuilt.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use lance::Dataset;
use lance::dataset::transaction::Operation as LanceOperation;
use tracing::info;

use super::VectorTables;
use super::landing::{Change, Pin};
use crate::error::Result;
use lakehouse_core::catalog::{Catalog, Manifest, Operation, RowCounts, TableRef};

impl VectorTables {
    /// Makes the `delete`, `update` or `merge` that `make` prepares on the
    /// table's live version (its manifest and pinned dataset), as Lance's
    /// operation and the rows it changes; lands it unless no row changed.
    /// Returns the rows affected.
    pub(crate) async fn change_rows<F, Fut>(
        &self,
        catalog: &Catalog,
        table: &TableRef,
        operation: Operation,
        make: F,
    ) -> Result<u64>
    where
        F: FnOnce(Arc<Manifest>, Dataset) -> Fut,
        Fut: Future<Output = Result<(LanceOperation, RowCounts)>>,
    {
        let started = Instant::now();
        let lock = self.lock(table);
        let _serialised = lock.lock().await;
        let base = catalog.table(table)?;
        let dataset = self.open(&base).await?;
        let (lance_operation, rows) = make(base.clone(), dataset).await?;
        if rows.affected() == 0 {
            info!(table = %table, operation = operation.as_str(), "no row matched; nothing changed");
            return Ok(0);
        }
        let change = Change {
            base,
            operation: lance_operation,
            applied: None,
            pin: Pin::Rewrite { operation, rows },
        };
        let (committed, _) = self.land(catalog, table, change).await?;
        info!(table = %table, version = committed.version, operation = operation.as_str(),
            rows_added = rows.added, rows_removed = rows.removed,
            seconds = started.elapsed().as_secs_f64(), "rows changed");
        Ok(rows.affected())
    }
}
