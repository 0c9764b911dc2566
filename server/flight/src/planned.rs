//! Plans made for a `GetFlightInfo`, kept for the `DoGet` that follows.
//!
//! A statement ticket carries its statement (SQL or a Substrait plan) so
//! that any server can answer it after any delay; the server that planned it keeps the plan a little
//! while under an id the ticket also carries, and the DoGet takes it
//! instead of planning the SQL again, provided the catalog has not
//! changed since (same generation). Planning is 1-3 ms of a TPC-H query;
//! for a 40 ms query that is most of what Flight adds to running the same
//! plan in-process. A DoGet that finds no plan (another server, a restart,
//! a catalog change, a second DoGet of the ticket, eviction) plans the
//! statement again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::logical_expr::LogicalPlan;
use parking_lot::Mutex;

/// Plans kept at most; the oldest goes first. Clients that ask for a
/// FlightInfo and never fetch it cost no more than this.
const CAPACITY: usize = 64;

struct Kept {
    id: u64,
    key: String,
    generation: u64,
    plan: LogicalPlan,
}

#[derive(Default)]
pub struct PlannedQueries {
    next_id: AtomicU64,
    kept: Mutex<VecDeque<Kept>>,
}

impl std::fmt::Debug for PlannedQueries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedQueries")
            .field("kept", &self.kept.lock().len())
            .finish()
    }
}

impl PlannedQueries {
    /// Keeps the plan of the statement `key` (see `Statement::key`), made
    /// with the catalog at `generation`; returns its id.
    pub fn keep(&self, key: &str, plan: LogicalPlan, generation: u64) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.kept.lock();
        if kept.len() == CAPACITY {
            kept.pop_front();
        }
        kept.push_back(Kept {
            id,
            key: key.to_string(),
            generation,
            plan,
        });
        id
    }

    /// Takes the plan kept under `id` if it is the plan of the statement
    /// `key` (a ticket from another server may carry an id this one gave to
    /// another statement) and the catalog is still at the generation it was
    /// made at.
    pub fn take(&self, id: u64, key: &str, generation: u64) -> Option<LogicalPlan> {
        let mut kept = self.kept.lock();
        let at = kept.iter().position(|k| k.id == id && k.key == key)?;
        let found = kept.remove(at)?;
        (found.generation == generation).then_some(found.plan)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::LogicalPlanBuilder;

    use super::*;

    fn plan() -> LogicalPlan {
        LogicalPlanBuilder::empty(true).build().unwrap()
    }

    #[test]
    fn a_plan_is_taken_once_and_only_at_its_generation() {
        let planned = PlannedQueries::default();
        let a = planned.keep("select 1", plan(), 7);
        let b = planned.keep("select 2", plan(), 7);
        assert!(planned.take(a, "select 2", 7).is_none(), "other SQL");
        assert!(planned.take(a, "select 1", 7).is_some());
        assert!(planned.take(a, "select 1", 7).is_none(), "taken twice");
        assert!(
            planned.take(b, "select 2", 8).is_none(),
            "the catalog changed"
        );
        assert!(
            planned.take(b, "select 2", 7).is_none(),
            "a stale plan is dropped"
        );
    }

    #[test]
    fn the_oldest_plan_goes_when_full() {
        let planned = PlannedQueries::default();
        let first = planned.keep("q", plan(), 1);
        let ids: Vec<u64> = (0..CAPACITY)
            .map(|_| planned.keep("q", plan(), 1))
            .collect();
        assert!(planned.take(first, "q", 1).is_none());
        assert!(ids.iter().all(|id| planned.take(*id, "q", 1).is_some()));
    }
}
