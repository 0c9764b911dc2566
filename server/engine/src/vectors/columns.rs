//! `ALTER TABLE` on vector tables: Lance changes its own schema. Renaming
//! and dropping a column, and adding one without a default, change the
//! dataset's metadata alone; an added column with a default has its value
//! written beside every fragment; widening a type rewrites that column.
//!
//! The changes are made one Lance commit each on the pinned version (made
//! newest, see `landing`), each of which must land right after the one
//! before, then one catalog `alter` version pins the result. A commit
//! another writer came between fails the statement with a conflict to run
//! again; the dataset versions it made are pinned by nothing.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use datafusion::common::ScalarValue;
use lance::Dataset;
use lance::dataset::{BatchUDF, ColumnAlteration, NewColumnTransform};
use tracing::info;

use super::{VectorTables, describe, is_vector_type, lance_error};
use crate::error::{CoreError, Error, Result};
use lakehouse_core::catalog::{Catalog, ColumnChange, TableRef, alter_stored_schema};

impl VectorTables {
    /// Applies `changes` to a vector table's columns as one `alter`
    /// version; returns the version the table is at (unchanged when the
    /// changes change nothing, as `IF [NOT] EXISTS` may).
    pub(crate) async fn alter_columns(
        &self,
        catalog: &Catalog,
        table: &TableRef,
        changes: &[ColumnChange],
    ) -> Result<u64> {
        let started = Instant::now();
        let lock = self.lock(table);
        let _serialised = lock.lock().await;
        let (live, mut dataset) = self.pinned_head(catalog, table).await?;
        // Every change is checked before the first touches the dataset.
        if alter_stored_schema(table, &live.schema, changes)? == *live.schema {
            return Ok(live.version);
        }
        let mut schema = live.schema.as_ref().clone();
        for change in changes {
            let next = alter_stored_schema(table, &schema, std::slice::from_ref(change))?;
            if next == schema {
                continue;
            }
            let before = dataset.version().version;
            apply(table, &mut dataset, &schema, change).await?;
            if dataset.version().version != before + 1 {
                return Err(conflict(table));
            }
            schema = next;
        }
        let data = describe(table, &dataset).await?;
        self.make_durable(table).await?;
        let version = catalog
            .commit_lance_alter(table, changes, data, live.version)
            .await
            .map_err(|e| match e {
                CoreError::BaseMoved { .. } => conflict(table),
                other => other.into(),
            })?;
        self.forget_graphs_of_changed_columns(table, changes).await;
        info!(table = %table, version, changes = changes.len(),
            seconds = started.elapsed().as_secs_f64(), "vector table columns altered");
        Ok(version)
    }

    /// Removes the hnsw graphs over columns renamed, dropped or widened:
    /// they describe a column that is no longer there as it was.
    async fn forget_graphs_of_changed_columns(&self, table: &TableRef, changes: &[ColumnChange]) {
        let changed: Vec<&str> = changes
            .iter()
            .filter_map(|change| match change {
                ColumnChange::Drop { name, .. } | ColumnChange::Widen { name, .. } => {
                    Some(name.as_str())
                }
                ColumnChange::Rename { from, .. } => Some(from.as_str()),
                ColumnChange::Add { .. } => None,
            })
            .collect();
        let Ok(listed) = self.graphs.list(table).await else {
            return;
        };
        for meta in listed
            .iter()
            .filter(|m| changed.contains(&m.column.as_str()))
        {
            match self.graphs.drop_graph(table, &meta.name).await {
                Ok(_) => {
                    info!(table = %table, index = %meta.name, column = %meta.column,
                        "hnsw index removed: its column was altered; create it again over the new column")
                }
                Err(e) => {
                    tracing::warn!(table = %table, index = %meta.name, error = %e,
                        "could not remove the hnsw index of an altered column")
                }
            }
        }
    }
}

/// Makes one change as a Lance commit on `dataset` (whose table columns
/// are `schema`).
async fn apply(
    table: &TableRef,
    dataset: &mut Dataset,
    schema: &Schema,
    change: &ColumnChange,
) -> Result<()> {
    let made = match change {
        ColumnChange::Add {
            name,
            data_type,
            default,
            ..
        } => {
            let added = Arc::new(Schema::new(vec![Field::new(name, data_type.clone(), true)]));
            let Some(text) = default else {
                return dataset
                    .add_columns(NewColumnTransform::AllNulls(added), None, None)
                    .await
                    .map_err(|e| lance_error(table, "adding a column to", e));
            };
            let value =
                ScalarValue::try_from_string(text.clone(), data_type).map_err(Error::from)?;
            let output = added.clone();
            let udf = BatchUDF {
                mapper: Box::new(move |batch: &RecordBatch| {
                    let column = value.to_array_of_size(batch.num_rows())?;
                    Ok(RecordBatch::try_new(output.clone(), vec![column])?)
                }),
                output_schema: added,
                result_checkpoint: None,
            };
            // One column is read to count each batch's rows: the first
            // that is not a vector, which is the cheapest to read.
            let read = schema
                .fields()
                .iter()
                .find(|f| !is_vector_type(f.data_type()))
                .or(schema.fields().first())
                .map(|f| vec![f.name().clone()]);
            dataset
                .add_columns(NewColumnTransform::BatchUDF(udf), read, None)
                .await
        }
        ColumnChange::Drop { name, .. } => dataset.drop_columns(&[name.as_str()]).await,
        ColumnChange::Rename { from, to } => {
            dataset
                .alter_columns(&[ColumnAlteration::new(from.clone()).rename(to.clone())])
                .await
        }
        ColumnChange::Widen { name, data_type } => {
            dataset
                .alter_columns(&[ColumnAlteration::new(name.clone()).cast_to(data_type.clone())])
                .await
        }
    };
    made.map_err(|e| lance_error(table, "altering the columns of", e))
}

fn conflict(table: &TableRef) -> Error {
    CoreError::CommitConflict {
        table: table.clone(),
        detail:
            "another change landed while its columns were being altered; run the statement again"
                .into(),
    }
    .into()
}
