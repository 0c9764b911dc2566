//! The session Postgres clients' statements are planned in: the engine's,
//! with `pg_catalog` and the Postgres functions tools call
//! (`pg_table_is_visible`, `format_type`, `has_table_privilege`, ...)
//! from datafusion-pg-catalog, `pg_type_is_visible` and `pg_get_indexdef`
//! beside them, and
//! `version()` answering as a Postgres server so that drivers that parse
//! it (SQLAlchemy) connect.
//!
//! `pg_catalog` is a schema of the `lakehouse` catalog in this session
//! only: Flight SQL and the HTTP API do not list it. Its tables are built
//! from the live catalog when read, so `\d` sees a table as soon as it is
//! committed.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::SchemaProvider;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProviderList};
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::Column;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlanBuilder, col, lit};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use parking_lot::RwLock;

use crate::settings::SERVER_VERSION;
use lakehouse_core::catalog::CATALOG_NAME;
use lakehouse_engine::error::{Error, Result};
use lakehouse_engine::query::QueryEngine;

const PG_CATALOG: &str = "pg_catalog";

/// A copy of the engine's session (its functions, extensions and
/// settings as they are now) with `pg_catalog` added.
pub fn postgres_session(engine: &QueryEngine) -> Result<SessionContext> {
    let state = engine.session().state();
    let lakehouse = state.catalog_list().catalog(CATALOG_NAME).ok_or_else(|| {
        Error::internal(format!(
            "the engine's session has no {CATALOG_NAME} catalog"
        ))
    })?;
    let catalogs = Arc::new(MemoryCatalogProviderList::new());
    catalogs.register_catalog(
        CATALOG_NAME.to_string(),
        Arc::new(WithPgCatalog {
            tables: lakehouse,
            pg_catalog: RwLock::new(None),
        }),
    );
    let state = SessionStateBuilder::new_from_existing(state)
        .with_catalog_list(catalogs)
        .build();
    let session = SessionContext::new_with_state(state);
    datafusion_pg_catalog::setup_pg_catalog(&session, CATALOG_NAME, EmptyContextProvider)
        .map_err(|e| Error::internal(format!("setting up pg_catalog: {e}")))?;
    session.register_udf(version());
    for name in ["pg_type_is_visible", "pg_function_is_visible"] {
        session.register_udf(visible(name));
    }
    session.register_udf(no_index_definition());
    Ok(session)
}

/// `pg_get_indexdef(index, column, pretty)`: null, as there is no index
/// (`pg_index` is empty); SQLAlchemy's reflection names it in the query
/// that finds none.
fn no_index_definition() -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        "pg_get_indexdef",
        vec![DataType::Int32, DataType::Int64, DataType::Boolean],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let rows = ColumnarValue::values_to_arrays(args)?[0].len();
            Ok(ColumnarValue::Array(arrow::array::new_null_array(
                &DataType::Utf8,
                rows,
            )))
        }),
    )
}

/// `pg_type_is_visible(oid)` and the like: every type and function is on
/// the search path here (they all live in `pg_catalog`).
fn visible(name: &str) -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let oids = ColumnarValue::values_to_arrays(args)?;
            let visible: arrow::array::BooleanArray = oids[0].logical_nulls().map_or_else(
                || std::iter::repeat_n(Some(true), oids[0].len()).collect(),
                |nulls| nulls.iter().map(|valid| valid.then_some(true)).collect(),
            );
            Ok(ColumnarValue::Array(Arc::new(visible)))
        }),
    )
}

/// `version()`: what a Postgres 16 server answers, naming this server.
fn version() -> datafusion::logical_expr::ScalarUDF {
    let text = format!(
        "PostgreSQL {SERVER_VERSION} (Lakehouse {}, Apache DataFusion {}) on {}-{}",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS,
    );
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))),
    )
}

/// The `lakehouse` catalog with a `pg_catalog` schema beside its own.
#[derive(Debug)]
struct WithPgCatalog {
    tables: Arc<dyn CatalogProvider>,
    pg_catalog: RwLock<Option<Arc<dyn SchemaProvider>>>,
}

impl CatalogProvider for WithPgCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.tables.schema_names();
        if self.pg_catalog.read().is_some() {
            names.push(PG_CATALOG.to_string());
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == PG_CATALOG {
            return self.pg_catalog.read().clone();
        }
        self.tables.schema(name)
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        if name != PG_CATALOG {
            return exec_err!("schemas are created with CREATE SCHEMA, not registered");
        }
        let schema: Arc<dyn SchemaProvider> = Arc::new(PgCatalogFixes { tables: schema });
        Ok(self.pg_catalog.write().replace(schema))
    }
}

/// datafusion-pg-catalog's `pg_catalog`, with `pg_index` empty and its
/// vector columns (`indkey`, `indclass`, ...) typed as arrays, as clients
/// `unnest` them (SQLAlchemy's reflection of keys): its rows were the
/// system catalogs' own indexes, and Lakehouse tables have none. `pg_class`
/// gains the (null) `reloptions` and `relacl` that SQLAlchemy reads.
#[derive(Debug)]
struct PgCatalogFixes {
    tables: Arc<dyn SchemaProvider>,
}

#[async_trait::async_trait]
impl SchemaProvider for PgCatalogFixes {
    fn table_names(&self) -> Vec<String> {
        self.tables.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let table = self.tables.table(name).await?;
        match table {
            Some(class) if name.eq_ignore_ascii_case("pg_class") => {
                // The columns Postgres 16 has that the crate's lacks, null.
                let mut columns: Vec<Expr> = class
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| col(Column::new(Some("pg_class"), f.name())))
                    .collect();
                for missing in ["reloptions", "relacl"] {
                    columns.push(
                        lit(ScalarValue::Null)
                            .cast_to(&text_array(), &datafusion::common::DFSchema::empty())?
                            .alias(missing),
                    );
                }
                let plan = LogicalPlanBuilder::scan("pg_class", provider_as_source(class), None)?
                    .project(columns)?
                    .build()?;
                Ok(Some(Arc::new(ViewTable::new(plan, None))))
            }
            Some(index) if name.eq_ignore_ascii_case("pg_index") => {
                let fields: Vec<Field> = index
                    .schema()
                    .fields()
                    .iter()
                    .map(|field| match field.name().as_str() {
                        "indkey" | "indoption" => list_of(field, DataType::Int16),
                        "indcollation" | "indclass" => list_of(field, DataType::Int32),
                        _ => field.as_ref().clone(),
                    })
                    .collect();
                let empty = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]])?;
                Ok(Some(Arc::new(empty)))
            }
            other => Ok(other),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.table_exist(name)
    }
}

fn text_array() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

fn list_of(field: &Field, item: DataType) -> Field {
    Field::new(
        field.name(),
        DataType::List(Arc::new(Field::new_list_field(item, true))),
        true,
    )
}
