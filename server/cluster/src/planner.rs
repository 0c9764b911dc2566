//! The coordinator's side: which queries go to the cluster.
//!
//! A query goes to the scheduler when every part of it can travel: its
//! tables encode ([`crate::codec`]) and every function it calls is one the
//! scheduler and executors know (DataFusion's own; not the extension
//! functions the server installs, such as `embed()` or `knn()`). Anything
//! else is planned here by DataFusion, as on a single node, and logged at
//! debug level with the reason, so one query never fails for being
//! unsuited to the cluster.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use ballista_core::config::BallistaConfig;
use ballista_core::planner::BallistaQueryPlanner;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion_proto::bytes::logical_plan_to_bytes_with_extension_codec;
use datafusion_proto::protobuf::LogicalPlanNode;
use tracing::debug;

use crate::codec::LakehouseLogicalCodec;
use crate::job::CancelOnDrop;

/// Plans distributable queries for a Ballista scheduler, the rest here.
pub struct ClusterPlanner {
    ballista: BallistaQueryPlanner<LogicalPlanNode>,
    scheduler_url: String,
    codec: Arc<LakehouseLogicalCodec>,
    local: DefaultPhysicalPlanner,
    /// The functions every process of the cluster has (DataFusion's).
    known_functions: HashSet<String>,
}

impl std::fmt::Debug for ClusterPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPlanner").finish_non_exhaustive()
    }
}

impl ClusterPlanner {
    /// A planner for the scheduler at `scheduler` (`host:port`).
    pub fn new(scheduler: &str) -> Self {
        let codec = Arc::new(LakehouseLogicalCodec::default());
        let defaults = SessionStateBuilder::new().with_default_features().build();
        let known_functions = defaults
            .scalar_functions()
            .keys()
            .chain(defaults.aggregate_functions().keys())
            .chain(defaults.window_functions().keys())
            .cloned()
            .collect();
        let scheduler_url = format!("http://{scheduler}");
        Self {
            ballista: BallistaQueryPlanner::with_extension(
                scheduler_url.clone(),
                BallistaConfig::default(),
                codec.clone(),
            ),
            scheduler_url,
            codec,
            local: DefaultPhysicalPlanner::default(),
            known_functions,
        }
    }

    /// Why `plan` (optimized) cannot run on the cluster, if it cannot.
    fn stays_here(&self, plan: &LogicalPlan) -> Option<String> {
        let mut reason = None;
        let _ = plan.apply_with_subqueries(|node| {
            node.apply_expressions(|expr| {
                expr.apply(|e| {
                    let name = match e {
                        // DataFusion 54 runs a scalar subquery the optimizer
                        // left in place as a ScalarSubqueryExec whose
                        // expressions Ballista 54.1 cannot ship to an
                        // executor apart from it: the executor refuses the
                        // task, and the scheduler takes that for a lost
                        // executor and waits for another (TPC-H q11 hung).
                        Expr::ScalarSubquery(_) => {
                            reason = Some(
                                "it has a scalar subquery, which Ballista 54.1 cannot run".into(),
                            );
                            return Ok(TreeNodeRecursion::Stop);
                        }
                        Expr::ScalarFunction(f) => Some(f.func.name()),
                        Expr::AggregateFunction(f) => Some(f.func.name()),
                        Expr::WindowFunction(f) => Some(f.fun.name()),
                        _ => None,
                    };
                    match name {
                        Some(name) if !self.known_functions.contains(name) => {
                            reason = Some(format!("it calls {name}(), which only this server has"));
                            Ok(TreeNodeRecursion::Stop)
                        }
                        _ => Ok(TreeNodeRecursion::Continue),
                    }
                })
            })
        });
        if reason.is_some() {
            return reason;
        }
        logical_plan_to_bytes_with_extension_codec(plan, self.codec.as_ref())
            .err()
            .map(|e| e.strip_backtrace())
    }
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        state: &SessionState,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match self.stays_here(plan) {
            None => {
                let distributed = self.ballista.create_physical_plan(plan, state).await?;
                Ok(CancelOnDrop::wrap(distributed, &self.scheduler_url))
            }
            Some(reason) => {
                debug!(%reason, "the query runs on this server, not on the cluster");
                self.local.create_physical_plan(plan, state).await
            }
        }
    }
}
