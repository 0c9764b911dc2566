//! Moves a semi join (`WHERE key IN (subquery)`, `EXISTS` on keys alone)
//! below the inner join whose one side holds its keys, so it filters that
//! side before the join instead of the join's whole output after it.
//!
//! DataFusion plans a decorrelated `IN` as a semi join above everything
//! else in the `FROM` clause. In TPC-H q18 that is the join of 1.5 M
//! orders with 6 M lineitems, of which the subquery keeps 57 orders: the
//! big join is built and probed in full and then nearly all of it is
//! thrown away. Below the join, the semi join leaves 57 orders to join.
//! Spark's optimizer does the same unconditionally
//! (`PushLeftSemiLeftAntiThroughJoin`): a semi join only removes rows of
//! the side it reads, so the inner join above it answers the same rows.
//!
//! Only semi joins on plain columns and without a further join condition
//! move (a non-equality condition may read the other side), through at
//! most one projection that passes the keys through unchanged; anti joins
//! stay (`NOT IN` has null semantics of its own).

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{Expr, Join, JoinType, LogicalPlan, Projection};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// The rule; see the module documentation.
#[derive(Debug, Default)]
pub struct SemiJoinPushdown;

impl OptimizerRule for SemiJoinPushdown {
    fn name(&self) -> &str {
        "semi_join_below_inner_join"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(semi) = &plan else {
            return Ok(Transformed::no(plan));
        };
        match pushed(semi)? {
            Some(moved) => Ok(Transformed::yes(moved)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// `semi` moved below the inner join under it, if it can move.
fn pushed(semi: &Join) -> Result<Option<LogicalPlan>> {
    if semi.join_type != JoinType::LeftSemi
        || semi.filter.is_some()
        || semi.null_aware
        || semi.on.is_empty()
    {
        return Ok(None);
    }
    let (projection, inner) = match semi.left.as_ref() {
        LogicalPlan::Projection(projection) => match projection.input.as_ref() {
            LogicalPlan::Join(inner) => (Some(projection), inner),
            _ => return Ok(None),
        },
        LogicalPlan::Join(inner) => (None, inner),
        _ => return Ok(None),
    };
    if inner.join_type != JoinType::Inner {
        return Ok(None);
    }
    let Some(keys) = semi
        .on
        .iter()
        .map(|(key, _)| match key {
            Expr::Column(column) => Some(column),
            _ => None,
        })
        .collect::<Option<Vec<&Column>>>()
    else {
        return Ok(None);
    };
    if let Some(projection) = projection
        && !keys.iter().all(|key| passes_through(projection, key))
    {
        return Ok(None);
    }
    let holds = |side: &LogicalPlan| keys.iter().all(|key| side.schema().has_column(key));
    let (on_left, on_right) = (holds(&inner.left), holds(&inner.right));
    let filtered = |side: &Arc<LogicalPlan>| -> Result<Arc<LogicalPlan>> {
        Ok(Arc::new(LogicalPlan::Join(Join::try_new(
            side.clone(),
            semi.right.clone(),
            semi.on.clone(),
            None,
            JoinType::LeftSemi,
            semi.join_constraint,
            semi.null_equality,
            false,
        )?)))
    };
    let (left, right) = match (on_left, on_right) {
        (true, false) => (filtered(&inner.left)?, inner.right.clone()),
        (false, true) => (inner.left.clone(), filtered(&inner.right)?),
        _ => return Ok(None),
    };
    let joined = LogicalPlan::Join(Join::try_new(
        left,
        right,
        inner.on.clone(),
        inner.filter.clone(),
        JoinType::Inner,
        inner.join_constraint,
        inner.null_equality,
        inner.null_aware,
    )?);
    Ok(Some(match projection {
        Some(projection) => LogicalPlan::Projection(Projection::try_new(
            projection.expr.clone(),
            Arc::new(joined),
        )?),
        None => joined,
    }))
}

/// Whether `projection` outputs its input's `column` as it is.
fn passes_through(projection: &Projection, column: &Column) -> bool {
    projection
        .expr
        .iter()
        .any(|expr| matches!(expr, Expr::Column(c) if c == column))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn optimized(sql: &str) -> String {
        let ctx = SessionContext::new();
        ctx.add_optimizer_rule(Arc::new(SemiJoinPushdown));
        for (name, columns) in [
            ("orders", "o_key INT, o_customer INT"),
            ("items", "i_order INT, i_quantity INT"),
            ("customers", "c_key INT, c_name TEXT"),
        ] {
            ctx.sql(&format!("CREATE TABLE {name} ({columns})"))
                .await
                .unwrap();
        }
        let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        plan.display_indent().to_string()
    }

    /// The lines of `plan` that are joins, outermost first, as
    /// `<indent><join line>`.
    fn joins(plan: &str) -> Vec<String> {
        plan.lines()
            .filter(|line| line.contains("Join:"))
            .map(|line| line.trim_end().to_string())
            .collect()
    }

    #[tokio::test]
    async fn an_in_subquery_filters_the_side_holding_its_key_before_the_join() {
        let plan = optimized(
            "SELECT c_name, sum(i_quantity) FROM customers, orders, items \
             WHERE c_key = o_customer AND o_key = i_order \
             AND o_key IN (SELECT i_order FROM items GROUP BY i_order HAVING sum(i_quantity) > 300) \
             GROUP BY c_name",
        )
        .await;
        let joins = joins(&plan);
        // Innermost is the semi join on orders; it was outermost.
        let semi = joins.iter().position(|j| j.contains("LeftSemi")).unwrap();
        assert_eq!(semi, joins.len() - 1, "{plan}");
        let semi_depth = joins[semi].len() - joins[semi].trim_start().len();
        let inner_depths: Vec<usize> = joins
            .iter()
            .filter(|j| j.contains("Inner Join"))
            .map(|j| j.len() - j.trim_start().len())
            .collect();
        assert!(inner_depths.iter().all(|d| *d < semi_depth), "{plan}");
    }

    #[tokio::test]
    async fn a_semi_join_with_a_condition_on_both_sides_stays_above() {
        // The correlated condition reads `o_customer` as well as the key:
        // the semi join keeps a filter and does not move.
        let plan = optimized(
            "SELECT c_name FROM customers, orders WHERE c_key = o_customer \
             AND EXISTS (SELECT 1 FROM items WHERE i_order = o_key AND i_quantity > o_customer)",
        )
        .await;
        let joins = joins(&plan);
        assert!(joins[0].contains("LeftSemi"), "{plan}");
    }

    #[tokio::test]
    async fn not_in_stays_where_it_is() {
        let plan = optimized(
            "SELECT c_name FROM customers, orders WHERE c_key = o_customer \
             AND o_key NOT IN (SELECT i_order FROM items)",
        )
        .await;
        let joins = joins(&plan);
        assert!(joins[0].contains("LeftAnti"), "{plan}");
    }
}
