//! The rows that pass a knn prefilter, kept per dataset version and
//! filter. A filtered search over a graph must know which rows pass before
//! it walks the graph, and finding them is a scan of the filter's columns:
//! at a million rows, most of a filtered knn() call (31 queries/s against
//! 151 unfiltered). Applications filter by the same few predicates again
//! and again (a category, a tenant, a language), so the answer is kept. A
//! version never changes, so an entry is never stale; a filter whose value
//! can change between queries (`now()`, `random()`) is never kept. The
//! least recently used entry goes first when the kept rows pass the budget.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, Volatility};
use parking_lot::Mutex;
use roaring::RoaringTreemap;

/// Row addresses kept in all entries together: a few hundred MB at
/// most however sparse (a compressed bitmap holds a dense run of a million
/// rows in about 130 KB).
const MAX_ROWS: u64 = 128 << 20;
/// Filters kept at most.
const CAPACITY: usize = 256;

/// Which rows of one dataset version a filter keeps.
type Key = (String, u64, String);

#[derive(Default)]
pub struct PassingRows {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    clock: u64,
    rows: u64,
    entries: HashMap<Key, (Arc<RoaringTreemap>, u64)>,
}

impl PassingRows {
    /// The key of `filter` over the dataset at `uri` and `version`, if
    /// its answer can be kept (it calls no function whose value may change).
    pub fn key(uri: &str, version: u64, filter: &Expr) -> Option<Key> {
        immutable(filter).then(|| (uri.to_string(), version, filter.to_string()))
    }

    pub fn get(&self, key: &Key) -> Option<Arc<RoaringTreemap>> {
        let mut kept = self.kept.lock();
        kept.clock += 1;
        let now = kept.clock;
        let (rows, used) = kept.entries.get_mut(key)?;
        *used = now;
        Some(rows.clone())
    }

    /// Keeps `rows` under `key`, letting the least recently used go until
    /// they fit; rows alone over the budget are not kept.
    pub fn insert(&self, key: Key, rows: Arc<RoaringTreemap>) {
        let size = rows.len();
        if size > MAX_ROWS {
            return;
        }
        let mut kept = self.kept.lock();
        while kept.rows + size > MAX_ROWS || kept.entries.len() >= CAPACITY {
            let Some(oldest) = kept
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some((gone, _)) = kept.entries.remove(&oldest) {
                kept.rows -= gone.len();
            }
        }
        kept.clock += 1;
        let now = kept.clock;
        kept.rows += size;
        if let Some((replaced, _)) = kept.entries.insert(key, (rows, now)) {
            kept.rows -= replaced.len();
        }
    }
}

/// True when every function `filter` calls answers the same for the same
/// input whenever it is called.
fn immutable(filter: &Expr) -> bool {
    let mut immutable = true;
    filter
        .apply(|e| {
            if let Expr::ScalarFunction(call) = e
                && call.func.signature().volatility != Volatility::Immutable
            {
                immutable = false;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("visiting an expression cannot fail");
    immutable
}

#[cfg(test)]
mod tests {
    use datafusion::functions::expr_fn::{now, random};
    use datafusion::prelude::{col, lit};

    use super::*;

    fn rows(range: std::ops::Range<u64>) -> Arc<RoaringTreemap> {
        let mut rows = RoaringTreemap::new();
        rows.insert_range(range);
        Arc::new(rows)
    }

    #[test]
    fn filters_whose_value_can_change_are_not_kept() {
        assert!(PassingRows::key("t", 1, &col("cat").eq(lit(3))).is_some());
        assert!(PassingRows::key("t", 1, &random().lt(lit(0.5))).is_none());
        assert!(PassingRows::key("t", 1, &col("at").lt(now())).is_none());
    }

    #[test]
    fn a_filter_is_kept_per_version_and_the_oldest_goes_over_budget() {
        let passing = PassingRows::default();
        let filter = col("cat").eq(lit(3));
        let v1 = PassingRows::key("t", 1, &filter).unwrap();
        let v2 = PassingRows::key("t", 2, &filter).unwrap();
        passing.insert(v1.clone(), rows(0..10));
        assert_eq!(passing.get(&v1).unwrap().len(), 10);
        assert!(passing.get(&v2).is_none(), "another version");
        passing.insert(v2.clone(), rows(0..MAX_ROWS - 5));
        assert!(passing.get(&v1).is_none(), "let go to make room");
        assert!(passing.get(&v2).is_some());
        let huge = PassingRows::key("t", 3, &filter).unwrap();
        passing.insert(huge.clone(), rows(0..MAX_ROWS + 1));
        assert!(passing.get(&huge).is_none(), "over the budget alone");
        assert!(passing.get(&v2).is_some());
    }
}
