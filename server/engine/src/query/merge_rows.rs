//! `MERGE` on vector (Lance) tables, row by row: Lance marks rows deleted
//! in place, so only the rows a clause acts on are touched, not whole
//! files.
//!
//! The same generated queries as on Parquet tables (see `merge`) run over
//! the pinned dataset read with its row addresses: the target rows the
//! source matches, as the matched clauses leave them, and the source rows
//! to insert. The rows a clause acted on are marked deleted in their
//! fragments; the updated ones and the inserted ones are written as new
//! fragments; all of it is one Lance `Update` transaction, landed as one
//! `merge` version (see `vectors::landing`).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Int64Type, SchemaRef, UInt64Type};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use lance::Dataset;
use lance::datafusion::LanceTableProvider;
use lance::dataset::transaction::Operation as LanceOperation;
use lance::table::format::Fragment;
use parking_lot::Mutex;

use super::QueryEngine;
use super::merge::{ACTION_COLUMN, MergeSpec, Queries, WORK};
use super::vector_rows::{new_fragments, rewrite_rows};
use crate::error::{Error, Result};
use crate::ingest::align;
use lakehouse_core::catalog::{Manifest, Operation, RowCounts, TableRef};

/// Lance's row address column: fragment id in the high 32 bits, the row's
/// offset in the fragment in the low ones.
const ROW_ADDRESS: &str = "_rowaddr";

/// What the matched rows' stream saw.
#[derive(Default)]
struct Acted {
    /// Addresses of the rows a clause acted on (updated or deleted).
    addresses: Vec<u64>,
    updated: u64,
    deleted: u64,
}

impl QueryEngine {
    /// Runs a `MERGE` into a vector table; returns the rows updated,
    /// deleted and inserted.
    pub(super) async fn merge_rows(&self, spec: &MergeSpec) -> Result<u64> {
        let table = spec.table.clone();
        self.vectors
            .change_rows(
                &self.catalog,
                &table,
                Operation::Merge,
                // Boxed: the preparation's future is too large for a
                // worker's stack in a debug build.
                |base, dataset| Box::pin(self.prepare_merge(spec, base, dataset)),
            )
            .await
    }

    async fn prepare_merge(
        &self,
        spec: &MergeSpec,
        base: Arc<Manifest>,
        dataset: Dataset,
    ) -> Result<(LanceOperation, RowCounts)> {
        let table = &spec.table;
        let lance_error = |what: &str, e: lance::Error| {
            Error::invalid(format!("{what} vector table {table}: {e}"))
        };
        let dataset = Arc::new(dataset);
        let target = Arc::new(LanceTableProvider::new(dataset.clone(), false, true));
        let queries = Queries {
            spec,
            columns: base
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        };
        let keyed = format!("SELECT *, {ROW_ADDRESS} AS __lakehouse_row FROM {WORK}.target");
        if !spec.matched.is_empty() {
            self.refuse_ambiguous(&queries, &keyed, target.clone(), target.clone())
                .await?;
        }
        let acted = Arc::new(Mutex::new(Acted::default()));
        let inserted = Arc::new(Mutex::new(0u64));
        let mut streams: Vec<SendableRecordBatchStream> = Vec::new();
        if !spec.matched.is_empty() {
            let sql = queries.rewritten_from(&format!("{WORK}.target"), "JOIN", &[ROW_ADDRESS])?;
            let matched = self
                .work_stream(&sql, target.clone(), target.clone())
                .await?;
            streams.push(updated_rows(matched, spec.delete_clauses(), acted.clone()));
        }
        if !spec.inserts.is_empty() {
            let rows = self
                .work_stream(&queries.inserted()?, target.clone(), target.clone())
                .await?;
            let counted = inserted.clone();
            streams.push(Box::pin(RecordBatchStreamAdapter::new(
                rows.schema(),
                rows.inspect_ok(move |b| *counted.lock() += b.num_rows() as u64),
            )));
        }
        let written =
            append_uncommitted(table, dataset.clone(), base.schema.clone(), streams).await?;
        let acted = std::mem::take(&mut *acted.lock());
        let inserted = *inserted.lock();
        let mut by_fragment: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for address in &acted.addresses {
            by_fragment
                .entry(address >> 32)
                .or_default()
                .push(*address as u32);
        }
        let mut updated_fragments = Vec::new();
        let mut removed_fragment_ids = Vec::new();
        for (id, offsets) in by_fragment {
            let fragment = dataset.get_fragment(id as usize).ok_or_else(|| {
                Error::internal(format!(
                    "MERGE INTO {table}: a matched row is in fragment {id}, which the dataset does not have"
                ))
            })?;
            match fragment
                .extend_deletions(offsets)
                .await
                .map_err(|e| lance_error("marking the merged rows deleted in", e))?
            {
                Some(kept) => updated_fragments.push(kept.metadata().clone()),
                None => removed_fragment_ids.push(id),
            }
        }
        let operation = rewrite_rows(removed_fragment_ids, updated_fragments, written);
        tracing::debug!(table = %table, updated = acted.updated, deleted = acted.deleted, inserted, "merge prepared");
        Ok((
            operation,
            RowCounts {
                added: inserted,
                removed: acted.updated + acted.deleted,
            },
        ))
    }
}

/// Writes the rows of `streams` (aligned to the table's `schema`) as new
/// fragments of `dataset`, not committed; none when there are no rows.
async fn append_uncommitted(
    table: &TableRef,
    dataset: Arc<Dataset>,
    schema: SchemaRef,
    streams: Vec<SendableRecordBatchStream>,
) -> Result<Vec<Fragment>> {
    let aligned_schema = schema.clone();
    let rows = futures::stream::iter(streams)
        .flatten()
        .map(move |batch| {
            let batch = batch?;
            align(&batch, &aligned_schema)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
        })
        .try_filter(|batch| futures::future::ready(batch.num_rows() > 0));
    let mut rows = Box::pin(rows.peekable());
    if rows.as_mut().peek().await.is_none() {
        return Ok(Vec::new());
    }
    let stream: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(schema, rows));
    new_fragments(table, dataset, stream, "the merged rows").await
}

/// The matched rows a clause updated (without the action and address
/// columns), recording the addresses of every row a clause acted on.
fn updated_rows(
    rows: SendableRecordBatchStream,
    deletes: Vec<i64>,
    acted: Arc<Mutex<Acted>>,
) -> SendableRecordBatchStream {
    let schema = rows.schema();
    let action = schema
        .index_of(ACTION_COLUMN)
        .expect("the rewrite query has it");
    let address = schema
        .index_of(ROW_ADDRESS)
        .expect("the rewrite query has it");
    let kept: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| i != action && i != address)
        .collect();
    let out_schema = Arc::new(schema.project(&kept).expect("columns exist"));
    let stream = rows.map(move |batch| {
        let batch = batch?;
        let actions = batch.column(action).as_primitive::<Int64Type>();
        let addresses = batch.column(address).as_primitive::<UInt64Type>();
        let mut seen = acted.lock();
        let mut updates = Vec::with_capacity(batch.num_rows());
        for (a, address) in actions.values().iter().zip(addresses.values()) {
            let deleting = deletes.contains(a);
            if *a != 0 {
                seen.addresses.push(*address);
                if deleting {
                    seen.deleted += 1;
                } else {
                    seen.updated += 1;
                }
            }
            updates.push(Some(*a != 0 && !deleting));
        }
        drop(seen);
        let filtered = filter_record_batch(&batch, &BooleanArray::from(updates))?;
        Ok(filtered.project(&kept)?)
    });
    Box::pin(RecordBatchStreamAdapter::new(out_schema, stream))
}
