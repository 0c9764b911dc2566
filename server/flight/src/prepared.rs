//! Prepared statements held between the calls of one client.
//!
//! A statement is planned once when created; parameters bound by DoPut are
//! kept with it until the client binds new ones or closes it. The same
//! handle is returned after binding, so clients that ignore the handle in
//! `DoPutPreparedStatementResult` (older JDBC drivers) and clients that use
//! it both work. The number of open statements is bounded.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use bytes::Bytes;
use datafusion::logical_expr::LogicalPlan;
use parking_lot::Mutex;

use lakehouse_engine::error::{Error, Result};

/// Open statements allowed at once, over all clients.
pub const MAX_OPEN_STATEMENTS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct PreparedStatement {
    pub sql: String,
    pub plan: LogicalPlan,
    /// The catalog generation `plan` was made at: the plan reads each
    /// table at the version current then (see `FlightSql::prepared_statement`).
    pub generation: u64,
    /// False for statements that write (their dataset schema is empty).
    pub is_query: bool,
    /// Bound parameter rows; each row runs the statement once.
    pub parameters: Vec<RecordBatch>,
}

#[derive(Debug, Default)]
pub struct PreparedStatements {
    open: Mutex<HashMap<Bytes, PreparedStatement>>,
}

impl PreparedStatements {
    pub fn insert(&self, statement: PreparedStatement) -> Result<Bytes> {
        let mut open = self.open.lock();
        if open.len() >= MAX_OPEN_STATEMENTS {
            return Err(Error::ResourceExhausted(format!(
                "{MAX_OPEN_STATEMENTS} prepared statements are open; close some before preparing more"
            )));
        }
        let handle = Bytes::from(uuid::Uuid::new_v4().to_string());
        open.insert(handle.clone(), statement);
        Ok(handle)
    }

    pub fn get(&self, handle: &[u8]) -> Result<PreparedStatement> {
        self.open
            .lock()
            .get(handle)
            .cloned()
            .ok_or_else(|| unknown(handle))
    }

    pub fn bind(&self, handle: &[u8], parameters: Vec<RecordBatch>) -> Result<()> {
        let mut open = self.open.lock();
        let statement = open.get_mut(handle).ok_or_else(|| unknown(handle))?;
        statement.parameters = parameters;
        Ok(())
    }

    /// Keeps a plan made again for a newer catalog generation, if the
    /// statement is still open.
    pub fn replan(&self, handle: &[u8], plan: LogicalPlan, generation: u64) {
        if let Some(statement) = self.open.lock().get_mut(handle) {
            statement.plan = plan;
            statement.generation = generation;
        }
    }

    pub fn close(&self, handle: &[u8]) -> Result<()> {
        self.open
            .lock()
            .remove(handle)
            .map(|_| ())
            .ok_or_else(|| unknown(handle))
    }
}

fn unknown(handle: &[u8]) -> Error {
    Error::HandleNotFound(format!(
        "prepared statement {:?} does not exist (closed, or prepared on another server)",
        String::from_utf8_lossy(handle)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::LogicalPlanBuilder;

    #[test]
    fn statements_live_until_closed() {
        let statements = PreparedStatements::default();
        let plan = LogicalPlanBuilder::empty(false).build().unwrap();
        let handle = statements
            .insert(PreparedStatement {
                sql: "SELECT 1".into(),
                plan,
                generation: 0,
                is_query: true,
                parameters: vec![],
            })
            .unwrap();
        assert_eq!(statements.get(&handle).unwrap().sql, "SELECT 1");
        statements.close(&handle).unwrap();
        let err = statements.get(&handle).unwrap_err();
        assert!(matches!(err, Error::HandleNotFound(_)));
        assert!(statements.close(&handle).is_err());
    }

    #[test]
    fn a_plan_made_again_is_kept_with_the_bound_parameters() {
        let statements = PreparedStatements::default();
        let plan = LogicalPlanBuilder::empty(false).build().unwrap();
        let handle = statements
            .insert(PreparedStatement {
                sql: "SELECT 1".into(),
                plan: plan.clone(),
                generation: 3,
                is_query: true,
                parameters: vec![],
            })
            .unwrap();
        let batch = RecordBatch::new_empty(std::sync::Arc::new(arrow::datatypes::Schema::empty()));
        statements.bind(&handle, vec![batch]).unwrap();
        statements.replan(&handle, plan, 5);
        let kept = statements.get(&handle).unwrap();
        assert_eq!((kept.generation, kept.parameters.len()), (5, 1));
        statements.close(&handle).unwrap();
        statements.replan(&handle, LogicalPlanBuilder::empty(true).build().unwrap(), 6);
        assert!(
            statements.get(&handle).is_err(),
            "a closed statement stays closed"
        );
    }
}
