//! What a `DELETE` or `UPDATE` does to each row, read off DataFusion's plan.
//!
//! DataFusion plans `DELETE FROM t WHERE p` as a filter over a scan of `t`,
//! and `UPDATE t SET c = e WHERE p` as a projection (one expression per
//! column of `t`) over the same filter: the rows that change and their new
//! values, but not the rows that stay. A copy-on-write rewrite needs both,
//! so the predicate, the new values and the shape of the scan they refer
//! to are taken apart here, to be planned again over the files that hold
//! matching rows (`copy_on_write`) or handed to Lance.

use std::sync::Arc;

use datafusion::common::{Column, TableReference};
use datafusion::datasource::{TableProvider, provider_as_source, source_as_provider};
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, TableScan, TableSource, lit, when,
};

use crate::error::{Error, Result};
use lakehouse_core::catalog::{Operation, TableRef};

/// A `DELETE` or `UPDATE` of one table, as planned.
#[derive(Debug, Clone)]
pub struct RowChange {
    pub table: TableRef,
    /// `delete` or `update`.
    pub operation: Operation,
    /// Rows for which it is true change; none: every row.
    pub predicate: Option<Expr>,
    /// For an update, one expression per table column, in order, named
    /// as the column: its new value for a matching row.
    pub values: Vec<Expr>,
    /// The table's scan as the statement planned it: the provider it read
    /// and the name (and alias) its columns are qualified by.
    scan: Scan,
}

#[derive(Debug, Clone)]
struct Scan {
    name: TableReference,
    alias: Option<TableReference>,
    provider: Arc<dyn TableProvider>,
}

impl RowChange {
    /// Takes apart the input DataFusion planned for a `DELETE` (`values`
    /// empty) or `UPDATE` of `table`.
    pub fn from_plan(table: TableRef, operation: Operation, input: &LogicalPlan) -> Result<Self> {
        let unsupported = |what: &str| {
            Error::NotSupported(format!(
                "{what} in {} on table {table}",
                operation.as_str().to_uppercase()
            ))
        };
        let (values, below) = match (operation, input) {
            (Operation::Update, LogicalPlan::Projection(p)) => (p.expr.clone(), p.input.as_ref()),
            (Operation::Update, _) => return Err(Error::internal("an UPDATE plan without values")),
            (_, LogicalPlan::Limit(_)) => return Err(unsupported("LIMIT")),
            (_, plan) => (Vec::new(), plan),
        };
        let (predicate, scan) = match below {
            LogicalPlan::Filter(filter) => (Some(filter.predicate.clone()), filter.input.as_ref()),
            plan => (None, plan),
        };
        let scan = match scan {
            LogicalPlan::TableScan(scan) => Scan::of(scan, None),
            LogicalPlan::SubqueryAlias(alias) => match alias.input.as_ref() {
                LogicalPlan::TableScan(scan) => Scan::of(scan, Some(alias.alias.clone())),
                _ => return Err(unsupported("a FROM clause")),
            },
            _ => return Err(unsupported("a FROM clause")),
        }?;
        Ok(Self {
            table,
            operation,
            predicate,
            values,
            scan,
        })
    }

    /// A delete of every row of the table `target` (named `name` in the
    /// statement): `TRUNCATE`, which DataFusion plans without a scan.
    pub fn every_row(
        table: TableRef,
        name: &TableReference,
        target: &Arc<dyn TableSource>,
    ) -> Result<Self> {
        Ok(Self {
            table,
            operation: Operation::Delete,
            predicate: None,
            values: Vec::new(),
            scan: Scan {
                name: name.clone(),
                alias: None,
                provider: source_as_provider(target).map_err(Error::from_datafusion)?,
            },
        })
    }

    /// The provider the statement's scan read: the table at the version
    /// planned on.
    pub fn provider(&self) -> &Arc<dyn TableProvider> {
        &self.scan.provider
    }

    /// A scan of `provider` standing in for the table, under the names the
    /// predicate and values refer to.
    pub fn scan_of(&self, provider: Arc<dyn TableProvider>) -> Result<LogicalPlanBuilder> {
        let scan =
            LogicalPlanBuilder::scan(self.scan.name.clone(), provider_as_source(provider), None)?;
        Ok(match &self.scan.alias {
            Some(alias) => scan.alias(alias.clone())?,
            None => scan,
        })
    }

    /// Every row of a table scan (`scan`), the changed ones as they are
    /// after an update: matching rows take the new values, the others keep
    /// theirs.
    pub fn updated(&self, scan: LogicalPlanBuilder) -> Result<LogicalPlanBuilder> {
        let values = self
            .values
            .iter()
            .map(|value| {
                let name = value.schema_name().to_string();
                let unchanged = matches!(value.clone().unalias(), Expr::Column(Column { name: ref n, .. }) if *n == name);
                match (&self.predicate, unchanged) {
                    (_, true) | (None, _) => Ok(value.clone()),
                    (Some(predicate), false) => {
                        let old = Expr::Column(Column::new(
                            Some(self.qualifier().clone()),
                            name.clone(),
                        ));
                        Ok(when(predicate.clone(), value.clone().unalias())
                            .otherwise(old)?
                            .alias(name))
                    }
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(scan.project(values)?)
    }

    /// The rows of a table scan (`scan`) an update changes, with their new
    /// values.
    pub fn changed(&self, scan: LogicalPlanBuilder) -> Result<LogicalPlanBuilder> {
        let matching = match &self.predicate {
            Some(predicate) => scan.filter(predicate.clone())?,
            None => scan,
        };
        Ok(matching.project(self.values.clone())?)
    }

    /// The rows of a table scan (`scan`) a delete keeps: those the
    /// predicate is not true for (false or null).
    pub fn kept(&self, scan: LogicalPlanBuilder) -> Result<LogicalPlanBuilder> {
        let predicate = self.predicate.clone().unwrap_or_else(|| lit(true));
        Ok(scan.filter(Expr::IsNotTrue(Box::new(predicate)))?)
    }

    /// The name columns are qualified by: the alias, else the table name.
    fn qualifier(&self) -> &TableReference {
        self.scan.alias.as_ref().unwrap_or(&self.scan.name)
    }
}

impl Scan {
    fn of(scan: &TableScan, alias: Option<TableReference>) -> Result<Self> {
        let provider = source_as_provider(&scan.source).map_err(Error::from_datafusion)?;
        Ok(Self {
            name: scan.table_name.clone(),
            alias,
            provider,
        })
    }
}
