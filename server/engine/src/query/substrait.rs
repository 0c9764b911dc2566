//! Substrait plans in: for clients that build plans rather than SQL (ibis,
//! DuckDB's and Spice's Substrait producers, DataFusion's own), sent as
//! Flight SQL's `CommandStatementSubstraitPlan` or through ADBC's
//! `set_substrait_plan`.
//!
//! datafusion-substrait turns the plan into a DataFusion plan directly (no
//! detour through SQL, which would lose what SQL cannot say, such as the
//! order a projection keeps). Its default consumer is wrapped so that a
//! plan reads what SQL may read and nothing else: every named table passes
//! the same check as a table named in SQL (a catalog table or view that
//! exists, at the version named, never a path), and reads of files or of
//! producer-defined tables are refused.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::{DFSchema, DataFusionError, TableReference};
use datafusion::execution::{FunctionRegistry, SessionState};
use datafusion::logical_expr::LogicalPlan;
use datafusion_substrait::extensions::Extensions;
use datafusion_substrait::logical_plan::consumer::{
    DefaultSubstraitConsumer, SubstraitConsumer, from_read_rel, from_substrait_plan_with_consumer,
};
use datafusion_substrait::substrait::proto::read_rel::ReadType;
use datafusion_substrait::substrait::proto::{Plan, ReadRel};
use prost::Message;

use crate::error::{Error, Result};

/// The Substrait specification version this server reads (that of the
/// substrait crate datafusion-substrait 54 is built on), as SqlInfo
/// reports it, e.g. "0.85.0".
pub fn substrait_version() -> String {
    use datafusion_substrait::substrait::version::{
        SUBSTRAIT_MAJOR_VERSION, SUBSTRAIT_MINOR_VERSION, SUBSTRAIT_PATCH_VERSION,
    };
    format!("{SUBSTRAIT_MAJOR_VERSION}.{SUBSTRAIT_MINOR_VERSION}.{SUBSTRAIT_PATCH_VERSION}")
}

/// Decodes a serialized Substrait `Plan` and plans it in `state`, checking
/// every table it names with `check` (the SQL path's reference check).
pub async fn plan(
    state: &SessionState,
    bytes: &[u8],
    check: &(dyn Fn(&TableReference) -> Result<()> + Send + Sync),
) -> Result<LogicalPlan> {
    let plan = Plan::decode(bytes)
        .map_err(|e| Error::invalid(format!("the Substrait plan cannot be read: {e}")))?;
    let extensions = Extensions::try_from(&plan.extensions).map_err(invalid_plan)?;
    if !extensions.type_variations.is_empty() {
        return Err(Error::NotSupported(
            "Substrait type variation extensions".into(),
        ));
    }
    let consumer = CatalogConsumer {
        inner: DefaultSubstraitConsumer::new(&extensions, state),
        check,
    };
    from_substrait_plan_with_consumer(&consumer, &plan)
        .await
        .map_err(|e| match Error::from_datafusion(e) {
            Error::DataFusion(e) => invalid_plan(e),
            ours => ours,
        })
}

fn invalid_plan(e: DataFusionError) -> Error {
    Error::invalid(format!(
        "the Substrait plan cannot be planned: {}",
        e.strip_backtrace()
    ))
}

/// datafusion-substrait's default consumer, reading only catalog tables.
struct CatalogConsumer<'a> {
    inner: DefaultSubstraitConsumer<'a>,
    check: &'a (dyn Fn(&TableReference) -> Result<()> + Send + Sync),
}

#[async_trait]
impl SubstraitConsumer for CatalogConsumer<'_> {
    async fn resolve_table_ref(
        &self,
        table_ref: &TableReference,
    ) -> datafusion::common::Result<Option<Arc<dyn TableProvider>>> {
        (self.check)(table_ref).map_err(Error::into_datafusion)?;
        self.inner.resolve_table_ref(table_ref).await
    }

    fn get_extensions(&self) -> &Extensions {
        self.inner.get_extensions()
    }

    fn get_function_registry(&self) -> &impl FunctionRegistry {
        self.inner.get_function_registry()
    }

    fn push_outer_schema(&self, schema: Arc<DFSchema>) {
        self.inner.push_outer_schema(schema)
    }

    fn pop_outer_schema(&self) {
        self.inner.pop_outer_schema()
    }

    fn get_outer_schema(&self, steps_out: usize) -> Option<Arc<DFSchema>> {
        self.inner.get_outer_schema(steps_out)
    }

    async fn consume_read(&self, rel: &ReadRel) -> datafusion::common::Result<LogicalPlan> {
        let refused = match &rel.read_type {
            Some(ReadType::NamedTable(_) | ReadType::VirtualTable(_)) | None => None,
            Some(ReadType::LocalFiles(_)) => Some("files (LocalFiles)"),
            Some(ReadType::ExtensionTable(_)) => Some("producer-defined tables (ExtensionTable)"),
            Some(ReadType::IcebergTable(_)) => Some("Iceberg tables (IcebergTable)"),
        };
        if let Some(what) = refused {
            return Err(Error::Refused(format!(
                "a Substrait plan may not read {what}: read tables of the catalog by name \
                 (NamedTable)"
            ))
            .into_datafusion());
        }
        from_read_rel(self, rel).await
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;
    use datafusion_substrait::logical_plan::producer::to_substrait_plan;
    use datafusion_substrait::substrait::proto::read_rel::LocalFiles;
    use datafusion_substrait::substrait::proto::{
        NamedStruct, PlanRel, ReadRel, Rel, plan_rel, rel,
    };

    use super::*;

    fn anything(_: &TableReference) -> Result<()> {
        Ok(())
    }

    fn plan_reading(read_type: ReadType) -> Vec<u8> {
        Plan {
            relations: vec![PlanRel {
                rel_type: Some(plan_rel::RelType::Rel(Rel {
                    rel_type: Some(rel::RelType::Read(Box::new(ReadRel {
                        base_schema: Some(NamedStruct::default()),
                        read_type: Some(read_type),
                        ..Default::default()
                    }))),
                })),
            }],
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[tokio::test]
    async fn plans_that_read_files_are_refused() {
        let bytes = plan_reading(ReadType::LocalFiles(LocalFiles::default()));
        let state = SessionContext::new().state();
        let refused = plan(&state, &bytes, &anything).await.unwrap_err();
        assert!(matches!(refused, Error::Refused(_)), "{refused:?}");
        assert!(refused.to_string().contains("LocalFiles"), "{refused}");
    }

    #[test]
    fn the_version_is_the_specification_s_not_the_crate_s() {
        assert_eq!(substrait_version(), "0.85.0");
    }

    #[tokio::test]
    async fn bytes_that_are_not_a_plan_are_refused() {
        let state = SessionContext::new().state();
        let refused = plan(&state, &[0xff, 0x01, 0x02], &anything)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("cannot be read"), "{refused}");
    }

    #[tokio::test]
    async fn every_table_a_plan_names_is_checked_and_the_check_decides() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES (1), (2)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let produced = ctx
            .sql("SELECT * FROM t WHERE column1 IN (SELECT column1 FROM t)")
            .await
            .unwrap()
            .into_optimized_plan()
            .unwrap();
        let bytes = to_substrait_plan(&produced, &ctx.state())
            .unwrap()
            .encode_to_vec();
        let seen = std::sync::Mutex::new(Vec::new());
        let record = |table: &TableReference| {
            seen.lock().unwrap().push(table.to_string());
            Ok(())
        };
        plan(&ctx.state(), &bytes, &record).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["t", "t"]);

        let refuse = |table: &TableReference| Err(Error::invalid(format!("no {table} here")));
        let refused = plan(&ctx.state(), &bytes, &refuse).await.unwrap_err();
        assert_eq!(refused.to_string(), Error::invalid("no t here").to_string());
    }
}
