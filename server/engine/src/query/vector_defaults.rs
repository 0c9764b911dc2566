//! A vector table read through Lance's provider, with the defaults
//! `ALTER TABLE ... ADD COLUMN ... DEFAULT` gave its columns: DataFusion
//! asks the provider for them when an `INSERT` leaves a column out, and
//! Lance's provider knows none.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Statistics;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

/// `inner` (Lance's provider) answering `defaults` for omitted columns.
#[derive(Debug)]
pub struct WithDefaults {
    inner: Arc<dyn TableProvider>,
    defaults: HashMap<String, Expr>,
}

impl WithDefaults {
    /// `inner` itself when no column has a default.
    pub fn wrap(
        inner: Arc<dyn TableProvider>,
        defaults: HashMap<String, Expr>,
    ) -> Arc<dyn TableProvider> {
        if defaults.is_empty() {
            inner
        } else {
            Arc::new(Self { inner, defaults })
        }
    }
}

#[async_trait]
impl TableProvider for WithDefaults {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }
}
