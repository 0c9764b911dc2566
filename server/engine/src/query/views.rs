//! Views from the catalog as DataFusion sees them: the view's SQL planned
//! in the engine's session whenever a statement names it, handed over as a
//! `ViewTable`, whose plan DataFusion's SQL planner inlines into the
//! statement's (so filters and projections reach the view's tables as if
//! the query had been written out, and the table versions read are marked
//! for vacuum as any other).
//!
//! `CREATE VIEW` keeps the query's text (time travel clauses already
//! turned into version names, so a view over `t VERSION AS OF 3` stays on
//! version 3), the names given to its columns and the tables and views it
//! reads; see `lakehouse_core::catalog::View`.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use datafusion::catalog::TableProvider;
use datafusion::catalog::view::ViewTable;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{SessionContext, col};
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use super::statement::{catalog_references, versioned_table_ref};
use crate::error::{Error, Result};
use lakehouse_core::catalog::{TableRef, View};

/// Plans views in the engine's session. The session holds the catalog
/// that holds this, so the two keep each other for the life of the engine
/// (one per process).
#[derive(Default)]
pub struct ViewPlanner {
    session: OnceLock<SessionContext>,
}

impl std::fmt::Debug for ViewPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewPlanner").finish_non_exhaustive()
    }
}

impl ViewPlanner {
    /// Gives the planner the session views are planned in.
    pub fn set_session(&self, ctx: SessionContext) {
        let _ = self.session.set(ctx);
    }

    /// The view as a table provider, planned now.
    pub async fn provider(&self, view: &View) -> Result<Arc<dyn TableProvider>> {
        let ctx = self
            .session
            .get()
            .ok_or_else(|| Error::internal("views are planned before the session exists"))?;
        let plan = ctx
            .state()
            .create_logical_plan(&view.sql)
            .await
            .map_err(|e| {
                Error::invalid(format!(
                    "view {} cannot be read: {} (replace it with CREATE OR REPLACE VIEW)",
                    view.view,
                    e.strip_backtrace()
                ))
            })?;
        let plan = named_columns(plan, view)?;
        Ok(Arc::new(ViewTable::new(plan, Some(view.sql.clone()))))
    }
}

/// The view's plan with its columns given the names the view declared.
fn named_columns(plan: LogicalPlan, view: &View) -> Result<LogicalPlan> {
    if view.columns.is_empty() {
        return Ok(plan);
    }
    let fields = plan.schema().columns();
    if fields.len() != view.columns.len() {
        return Err(Error::invalid(format!(
            "view {} names {} columns but its query now gives {}; replace it with CREATE OR REPLACE VIEW",
            view.view,
            view.columns.len(),
            fields.len()
        )));
    }
    let renamed = fields
        .into_iter()
        .zip(&view.columns)
        .map(|(column, name)| col(column).alias(name));
    Ok(LogicalPlanBuilder::from(plan).project(renamed)?.build()?)
}

/// The query text and declared column names of a `CREATE VIEW` statement.
pub fn view_query(definition: &str) -> Result<(String, Vec<String>)> {
    let mut statements = DFParser::parse_sql(definition)
        .map_err(|e| Error::invalid(format!("SQL parse error: {e}")))?;
    match statements.pop_front() {
        Some(DFStatement::Statement(statement)) => match *statement {
            SqlStatement::CreateView(create) => Ok((
                create.query.to_string(),
                create.columns.into_iter().map(|c| c.name.value).collect(),
            )),
            _ => Err(Error::internal("a view definition that is not CREATE VIEW")),
        },
        _ => Err(Error::internal("a view definition that is not CREATE VIEW")),
    }
}

/// The catalog tables and views a statement names (versions named or
/// not).
pub fn tables_named(state: &SessionState, statement: &DFStatement) -> Result<Vec<TableRef>> {
    let mut found = BTreeSet::new();
    for reference in catalog_references(state, statement)? {
        found.insert(versioned_table_ref(&reference)?.0);
    }
    Ok(found.into_iter().collect())
}
