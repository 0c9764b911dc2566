//! `DELETE` and `UPDATE` of vector (Lance) tables, prepared from the
//! statement as Lance transactions; `VectorTables::change_rows` lands them.
//!
//! A delete is Lance's own (deletion files on the fragments holding
//! matching rows). An update deletes the matching rows the same way and
//! appends them with their new values, computed by DataFusion over the same
//! dataset version, in one Lance `Update` transaction (as Lance's own
//! `UpdateBuilder` does, which commits by itself and so cannot be landed).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::Expr;
use datafusion::prelude::lit;
use lance::Dataset;
use lance::datafusion::LanceTableProvider;
use lance::dataset::transaction::{Operation as LanceOperation, UpdateMode};
use lance::dataset::write::delete::DeleteBuilder;
use lance::dataset::{InsertBuilder, WriteMode as LanceMode, WriteParams};
use lance::table::format::Fragment;

use super::QueryEngine;
use super::row_change::RowChange;
use crate::error::{Error, Result};
use lakehouse_core::catalog::{Operation, RowCounts, TableRef};

impl QueryEngine {
    /// Applies `change` to a vector table; returns the rows deleted or
    /// updated.
    pub(super) async fn change_vector_rows(&self, change: &RowChange) -> Result<u64> {
        let table = change.table.clone();
        self.vectors
            .change_rows(&self.catalog, &table, change.operation, |_, dataset| {
                self.prepare_lance_change(change, dataset)
            })
            .await
    }

    async fn prepare_lance_change(
        &self,
        change: &RowChange,
        dataset: Dataset,
    ) -> Result<(LanceOperation, RowCounts)> {
        let table = &change.table;
        let lance_error = |what: &str, e: lance::Error| {
            Error::invalid(format!("{what} vector table {table}: {e}"))
        };
        let predicate = change
            .predicate
            .clone()
            .map_or_else(|| Ok(lit(true)), unqualified)?;
        let dataset = Arc::new(dataset);
        let deleted = DeleteBuilder::from_expr(dataset.clone(), predicate)
            .execute_uncommitted()
            .await
            .map_err(|e| lance_error("deleting from", e))?;
        let LanceOperation::Delete {
            updated_fragments,
            deleted_fragment_ids,
            ..
        } = deleted.transaction.operation
        else {
            return Err(Error::internal(format!(
                "Lance prepared a delete from {table} as another operation"
            )));
        };
        if change.operation == Operation::Delete || deleted.num_deleted_rows == 0 {
            let operation = LanceOperation::Delete {
                updated_fragments,
                deleted_fragment_ids,
                predicate: change
                    .predicate
                    .as_ref()
                    .map_or_else(|| "true".to_string(), |p| p.to_string()),
            };
            return Ok((operation, removed(deleted.num_deleted_rows)));
        }
        let provider = Arc::new(LanceTableProvider::new(dataset.clone(), false, false));
        let plan = change.changed(change.scan_of(provider)?)?.build()?;
        let rows = self.execute_query(plan).await?;
        let fragments = new_fragments(table, dataset, rows, "the updated rows").await?;
        let written: u64 = fragments
            .iter()
            .map(|f| f.physical_rows.unwrap_or(0) as u64)
            .sum();
        if written != deleted.num_deleted_rows {
            return Err(Error::internal(format!(
                "update of vector table {table}: {} rows matched but {written} were rewritten",
                deleted.num_deleted_rows
            )));
        }
        let operation = rewrite_rows(deleted_fragment_ids, updated_fragments, fragments);
        Ok((operation, removed(written)))
    }
}

/// Writes `rows` (`what`, for messages) as new fragments of `dataset`, not
/// committed.
pub(super) async fn new_fragments(
    table: &TableRef,
    dataset: Arc<Dataset>,
    rows: SendableRecordBatchStream,
    what: &str,
) -> Result<Vec<Fragment>> {
    let params = WriteParams {
        mode: LanceMode::Append,
        ..WriteParams::default()
    };
    let appended = InsertBuilder::new(dataset)
        .with_params(&params)
        .execute_uncommitted_stream(rows)
        .await
        .map_err(|e| Error::invalid(format!("writing {what} of vector table {table}: {e}")))?;
    match appended.operation {
        LanceOperation::Append { fragments } => Ok(fragments),
        _ => Err(Error::internal(format!(
            "Lance prepared {what} of {table} as another operation than an append"
        ))),
    }
}

/// Lance's transaction rewriting rows: fragments `removed` whole, fragments
/// `updated` with rows marked deleted, and `new` ones holding the rows
/// written again (and any added).
pub(super) fn rewrite_rows(
    removed: Vec<u64>,
    updated: Vec<Fragment>,
    new: Vec<Fragment>,
) -> LanceOperation {
    LanceOperation::Update {
        removed_fragment_ids: removed,
        updated_fragments: updated,
        new_fragments: new,
        fields_modified: Vec::new(),
        compacted_sstables: Vec::new(),
        fields_for_preserving_frag_bitmap: Vec::new(),
        update_mode: Some(UpdateMode::RewriteRows),
        inserted_rows_filter: None,
        updated_fragment_offsets: None,
    }
}

fn removed(rows: u64) -> RowCounts {
    RowCounts {
        added: 0,
        removed: rows,
    }
}

/// `expr` with its columns unqualified, as Lance's planner reads them.
fn unqualified(expr: Expr) -> Result<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            datafusion::common::Column::new_unqualified(c.name),
        ))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
    .map_err(Error::from_datafusion)
}
