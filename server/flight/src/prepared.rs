//! Prepared statements held between the calls of one client.
//!
//! A statement is planned once when created; parameters bound by DoPut are
//! kept with it until the client binds new ones or closes it. The same
//! handle is returned after binding, so clients that ignore the handle in
//! `DoPutPreparedStatementResult` (older JDBC drivers) and clients that use
//! it both work. Each user may hold a bounded number open
//! (`max_prepared_per_user`), so one client preparing without end cannot
//! stop another from preparing; a statement unused for `prepared_idle_secs`
//! is closed for its client. Handles are random UUIDs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use bytes::Bytes;
use datafusion::logical_expr::LogicalPlan;
use parking_lot::Mutex;
use tracing::info;

use lakehouse_engine::error::{Error, Result};

use crate::tickets::Statement;

#[derive(Debug, Clone)]
pub struct PreparedStatement {
    pub statement: Statement,
    pub plan: LogicalPlan,
    /// The catalog generation `plan` was made at: the plan reads each
    /// table at the version current then (see `FlightSql::prepared_statement`).
    pub generation: u64,
    /// False for statements that write (their dataset schema is empty).
    pub is_query: bool,
    /// Bound parameter rows; each row runs the statement once.
    pub parameters: Vec<RecordBatch>,
}

#[derive(Debug)]
struct Held {
    statement: PreparedStatement,
    owner: String,
    used: Instant,
}

/// How many statements a user may hold, and for how long unused.
#[derive(Debug, Clone, Copy)]
pub struct PreparedLimits {
    pub max_per_user: usize,
    pub idle: Duration,
}

impl Default for PreparedLimits {
    fn default() -> Self {
        Self {
            max_per_user: 5_000,
            idle: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Default)]
pub struct PreparedStatements {
    open: Mutex<HashMap<Bytes, Held>>,
    limits: PreparedLimits,
}

impl PreparedStatements {
    pub fn new(limits: PreparedLimits) -> Self {
        Self {
            open: Mutex::default(),
            limits,
        }
    }

    /// Opens `statement` for `owner`, closing idle statements first.
    pub fn insert(&self, owner: &str, statement: PreparedStatement) -> Result<Bytes> {
        let mut open = self.open.lock();
        let before = open.len();
        open.retain(|_, held| held.used.elapsed() < self.limits.idle);
        if open.len() < before {
            info!(
                closed = before - open.len(),
                idle_secs = self.limits.idle.as_secs(),
                "closed prepared statements left unused (prepared_idle_secs)"
            );
        }
        let owned = open.values().filter(|held| held.owner == owner).count();
        if owned >= self.limits.max_per_user {
            return Err(Error::ResourceExhausted(format!(
                "user {owner} has {owned} prepared statements open, the limit \
                 (max_prepared_per_user); close some before preparing more"
            )));
        }
        let handle = Bytes::from(uuid::Uuid::new_v4().to_string());
        open.insert(
            handle.clone(),
            Held {
                statement,
                owner: owner.to_string(),
                used: Instant::now(),
            },
        );
        Ok(handle)
    }

    pub fn get(&self, handle: &[u8]) -> Result<PreparedStatement> {
        let mut open = self.open.lock();
        let held = open.get_mut(handle).ok_or_else(|| unknown(handle))?;
        held.used = Instant::now();
        Ok(held.statement.clone())
    }

    pub fn bind(&self, handle: &[u8], parameters: Vec<RecordBatch>) -> Result<()> {
        let mut open = self.open.lock();
        let held = open.get_mut(handle).ok_or_else(|| unknown(handle))?;
        held.used = Instant::now();
        held.statement.parameters = parameters;
        Ok(())
    }

    /// Keeps a plan made again for a newer catalog generation, if the
    /// statement is still open.
    pub fn replan(&self, handle: &[u8], plan: LogicalPlan, generation: u64) {
        if let Some(held) = self.open.lock().get_mut(handle) {
            held.statement.plan = plan;
            held.statement.generation = generation;
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
        "prepared statement {:?} does not exist (closed, unused for longer than prepared_idle_secs, or prepared on another server)",
        String::from_utf8_lossy(handle)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::LogicalPlanBuilder;

    fn statement(plan: LogicalPlan, generation: u64) -> PreparedStatement {
        PreparedStatement {
            statement: Statement::Sql("SELECT 1".into()),
            plan,
            generation,
            is_query: true,
            parameters: vec![],
        }
    }

    #[test]
    fn each_user_has_a_cap_of_their_own_and_idle_statements_close() {
        let statements = PreparedStatements::new(PreparedLimits {
            max_per_user: 3,
            idle: Duration::from_millis(200),
        });
        let plan = LogicalPlanBuilder::empty(false).build().unwrap();
        for _ in 0..3 {
            statements
                .insert("mallory", statement(plan.clone(), 0))
                .unwrap();
        }
        let refused = statements
            .insert("mallory", statement(plan.clone(), 0))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("user mallory has 3 prepared statements open"),
            "{refused}"
        );
        assert!(refused.contains("max_prepared_per_user"), "{refused}");
        let rita = statements
            .insert("rita", statement(plan.clone(), 0))
            .unwrap();
        std::thread::sleep(Duration::from_millis(250));
        statements.get(&rita).unwrap();
        // Mallory's went unused past the idle limit and are closed; Rita's
        // was just used.
        statements
            .insert("mallory", statement(plan.clone(), 0))
            .unwrap();
        assert!(statements.get(&rita).is_ok());
    }

    #[test]
    fn statements_live_until_closed() {
        let statements = PreparedStatements::default();
        let plan = LogicalPlanBuilder::empty(false).build().unwrap();
        let handle = statements.insert("rita", statement(plan, 0)).unwrap();
        assert_eq!(
            statements.get(&handle).unwrap().statement,
            Statement::Sql("SELECT 1".into())
        );
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
            .insert("rita", statement(plan.clone(), 3))
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
