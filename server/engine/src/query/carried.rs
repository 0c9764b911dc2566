//! Statements DataFusion does not plan (`ALTER TABLE`, `MERGE`), carried
//! through the plan as a node of their own so that they are classified and
//! authorised like every other update.

use std::cmp::Ordering;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};

/// A statement a plan can carry.
pub trait Carried:
    fmt::Debug + Clone + PartialEq + Eq + Hash + PartialOrd + Send + Sync + 'static
{
    /// The node's name in `EXPLAIN`.
    const NAME: &'static str;
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CarriedNode<T> {
    statement: T,
    schema: DFSchemaRef,
}

impl<T: Carried> PartialOrd for CarriedNode<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.statement.partial_cmp(&other.statement)
    }
}

impl<T: Carried> UserDefinedLogicalNodeCore for CarriedNode<T> {
    fn name(&self) -> &str {
        T::NAME
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        Vec::new()
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {:?}", T::NAME, self.statement)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        _inputs: Vec<LogicalPlan>,
    ) -> datafusion::error::Result<Self> {
        Ok(self.clone())
    }
}

/// A plan carrying `statement`.
pub fn carry<T: Carried>(statement: T) -> LogicalPlan {
    LogicalPlan::Extension(Extension {
        node: Arc::new(CarriedNode {
            statement,
            schema: Arc::new(DFSchema::empty()),
        }),
    })
}

/// The `T` statement a plan carries, if it carries one.
pub fn carried<T: Carried>(plan: &LogicalPlan) -> Option<&T> {
    let LogicalPlan::Extension(extension) = plan else {
        return None;
    };
    extension
        .node
        .as_any()
        .downcast_ref::<CarriedNode<T>>()
        .map(|node| &node.statement)
}
