//! Reading old data files with a table's columns as `ALTER TABLE` left them
//! (see `lakehouse_core::catalog::columns`): the scan's expressions are
//! adapted to each file by DataFusion's own adapter, with a renamed column
//! read under the name the file has for it and a column the file lacks
//! read as its default. A dropped column's data is never asked for, and no
//! column can take its name.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::error::Result as DFResult;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, lit};
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};

use lakehouse_core::catalog::{ColumnNames, default_text};

/// Adapts scans of one table version's files.
#[derive(Debug)]
pub struct FileColumns {
    names: ColumnNames,
    /// Defaults of columns that have one, by name, in the table's types.
    defaults: HashMap<String, ScalarValue>,
}

impl FileColumns {
    /// The adapter a version with schema `schema` and column defaults
    /// `defaults` ([`column_defaults`]) needs, if any (none when no column
    /// was renamed, dropped or given a default).
    pub fn of(schema: &Schema, defaults: HashMap<String, ScalarValue>) -> Option<Self> {
        let names = ColumnNames::of(schema);
        (!names.is_identity() || !defaults.is_empty()).then_some(Self { names, defaults })
    }
}

/// The default value of every column that has one, in its type.
pub fn column_defaults(schema: &Schema) -> HashMap<String, ScalarValue> {
    schema
        .fields()
        .iter()
        .filter_map(|field| {
            let text = default_text(field)?;
            let value = ScalarValue::try_from_string(text.to_string(), field.data_type()).ok()?;
            Some((field.name().clone(), value))
        })
        .collect()
}

impl PhysicalExprAdapterFactory for FileColumns {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> DFResult<Arc<dyn PhysicalExprAdapter>> {
        // Table column -> the file's name for it, where they differ.
        let file_names: HashMap<String, String> = physical_file_schema
            .fields()
            .iter()
            .filter_map(|field| {
                let table_column = self.names.table_column(field.name())?;
                (table_column != field.name())
                    .then(|| (table_column.to_string(), field.name().clone()))
            })
            .collect();
        let in_file_names: Vec<Field> = logical_file_schema
            .fields()
            .iter()
            .map(|f| match file_names.get(f.name()) {
                Some(old) => f.as_ref().clone().with_name(old),
                None => f.as_ref().clone(),
            })
            .collect();
        let defaults = logical_file_schema
            .fields()
            .iter()
            .filter(|f| {
                !file_names.contains_key(f.name())
                    && physical_file_schema.index_of(f.name()).is_err()
            })
            .filter_map(|f| {
                let value = self.defaults.get(f.name())?;
                let value = value.cast_to(f.data_type()).ok()?;
                Some((f.name().clone(), value))
            })
            .collect();
        let in_file_names = Arc::new(Schema::new_with_metadata(
            in_file_names,
            logical_file_schema.metadata().clone(),
        ));
        let inner =
            DefaultPhysicalExprAdapterFactory.create(in_file_names, physical_file_schema)?;
        Ok(Arc::new(FileAdapter {
            inner,
            file_names,
            defaults,
        }))
    }
}

/// One file's adapter: the table's columns under the file's names for
/// them, defaults for the columns the file lacks, then DataFusion's own
/// adapter.
#[derive(Debug)]
struct FileAdapter {
    inner: Arc<dyn PhysicalExprAdapter>,
    file_names: HashMap<String, String>,
    defaults: HashMap<String, ScalarValue>,
}

impl PhysicalExprAdapter for FileAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> DFResult<Arc<dyn PhysicalExpr>> {
        let in_file = if self.defaults.is_empty() && self.file_names.is_empty() {
            expr
        } else {
            expr.transform(|e| {
                if let Some(column) = e.downcast_ref::<Column>() {
                    if let Some(value) = self.defaults.get(column.name()) {
                        return Ok(Transformed::yes(lit(value.clone())));
                    }
                    if let Some(old) = self.file_names.get(column.name()) {
                        let renamed: Arc<dyn PhysicalExpr> =
                            Arc::new(Column::new(old, column.index()));
                        return Ok(Transformed::yes(renamed));
                    }
                }
                Ok(Transformed::no(e))
            })
            .data()?
        };
        self.inner.rewrite(in_file)
    }
}
