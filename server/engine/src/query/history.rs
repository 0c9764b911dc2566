//! `table_history('t')`: a table's versions as rows, from plain SQL.
//!
//! Reads the catalog's in-memory history (no I/O), so it is cheap enough to
//! call from a dashboard. The same rows back the `table_history` action.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::Expr;

use crate::error::{Error, Result};
use lakehouse_core::catalog::{Catalog, TableRef, VersionSummary};

/// The SQL name of the function.
pub const FUNCTION_NAME: &str = "table_history";

#[derive(Debug)]
pub struct TableHistory {
    catalog: Arc<Catalog>,
}

impl TableHistory {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }
}

impl TableFunctionImpl for TableHistory {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let [Expr::Literal(ScalarValue::Utf8(Some(name)) | ScalarValue::Utf8View(Some(name)), _)] =
            args.exprs()
        else {
            return plan_err!(
                "{FUNCTION_NAME} takes one argument, the table name as a string: {FUNCTION_NAME}('trips')"
            );
        };
        let history = TableRef::parse(name)
            .and_then(|table| self.catalog.history(&table))
            .map_err(Error::from)
            .and_then(|history| history_batch(&history))
            .map_err(|e| e.into_datafusion())?;
        Ok(Arc::new(MemTable::try_new(
            history.schema(),
            vec![vec![history]],
        )?))
    }
}

/// A table's history as one record batch, oldest version first.
pub fn history_batch(history: &[VersionSummary]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("version", DataType::Int64, false),
        Field::new(
            "committed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("operation", DataType::Utf8, false),
        Field::new("rows_added", DataType::Int64, false),
        Field::new("rows_removed", DataType::Int64, false),
        Field::new("total_rows", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("idempotency_key", DataType::Utf8, true),
        Field::new("committed_by", DataType::Utf8, true),
    ]));
    let int = |f: fn(&VersionSummary) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            history.iter().map(|v| f(v) as i64),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        int(|v| v.version),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                history.iter().map(|v| v.committed_at.timestamp_micros()),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(
            history.iter().map(|v| v.operation.as_str()),
        )),
        int(|v| v.rows_added),
        int(|v| v.rows_removed),
        int(|v| v.total_rows),
        int(|v| v.bytes),
        Arc::new(StringArray::from_iter(
            history.iter().map(|v| v.idempotency_key.as_deref()),
        )),
        Arc::new(StringArray::from_iter(
            history.iter().map(|v| v.committed_by.as_deref()),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
