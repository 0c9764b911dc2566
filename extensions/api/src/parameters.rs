//! Table functions whose arguments include statement parameters (`$1`).
//!
//! DataFusion calls a table function while planning, before a prepared
//! statement's parameters are bound, and cannot see placeholders inside
//! the provider it returns. Such a function returns a
//! [`ParameterizedTable`]: the server reads the parameters it takes (for
//! the statement's parameter schema) and, once values are bound, swaps it
//! for the provider [`Parameterized::bind`] builds.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{ParamValues, plan_err};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// A table function call waiting for its parameter values.
pub trait Parameterized: Debug + Send + Sync {
    /// The rows it will produce.
    fn schema(&self) -> SchemaRef;

    /// The placeholders it takes (`$1`, ...) with the type each expects.
    fn parameters(&self) -> Vec<(String, DataType)>;

    /// The provider for these values.
    fn bind(&self, values: &ParamValues) -> DFResult<Arc<dyn TableProvider>>;
}

/// The provider a table function returns when an argument is a parameter.
#[derive(Debug, Clone)]
pub struct ParameterizedTable(pub Arc<dyn Parameterized>);

#[async_trait]
impl TableProvider for ParameterizedTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let names: Vec<String> = self.0.parameters().into_iter().map(|(n, _)| n).collect();
        plan_err!(
            "the statement needs values for {}: prepare it and bind them",
            names.join(", ")
        )
    }
}
