//! Query: SQL in, a checked DataFusion plan out, then either a stream of
//! record batches (queries) or a catalog commit (updates).
//!
//! One DataFusion session serves every request; the catalog is read live
//! through [`provider::LakehouseCatalog`], and each table is planned at the
//! version current when the statement is planned. Nothing here knows about
//! Flight.

mod accelerated;
mod alter;
mod as_of;
mod carried;
mod copy_on_write;
mod file_columns;
mod history;
mod memory;
mod merge;
mod merge_rows;
mod provider;
mod resident_scan;
mod row_change;
mod semi_join_pushdown;
pub mod session;
mod statement;
pub mod substrait;
mod vector_defaults;
mod vector_rows;
mod views;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{ParamValues, ScalarValue, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::{StreamExt, TryStreamExt};
use lakehouse_extension::ParameterizedTable;
use url::Url;

pub use accelerated::{Accelerated, AccelerationOptions, AccelerationStatus};
use memory::QueryPool;
pub use provider::{Nullability, ParquetTable, PinnedScan};
pub use row_change::RowChange;
pub use statement::{Planned, Update};

use crate::error::{Error, Result};
use crate::ingest::{Ingest, IngestRequest};
use crate::vectors::VectorTables;
use lakehouse_core::catalog::{
    CATALOG_NAME, Catalog, DEFAULT_SCHEMA, NewView, Reading, TableRef, WriteMode,
};
use lakehouse_core::storage::{STORE_URL, Storage};
use lakehouse_core::types::classic_schema;
use provider::LakehouseCatalog;
use statement::{
    catalog_references, classify, is_system, number_question_marks, refuse_dangerous, refuse_path,
    versioned_table_ref,
};
use views::ViewPlanner;

/// The table function calls in a plan that wait for parameter values.
fn parameterized_scans(plan: &LogicalPlan) -> Result<Vec<ParameterizedTable>> {
    let mut found = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(table) = provider.downcast_ref::<ParameterizedTable>()
        {
            found.push(table.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(Error::from_datafusion)?;
    Ok(found)
}

/// Marks every Parquet table version `plan` scans as being read, so that
/// vacuum keeps it while the guards live.
fn versions_read(catalog: &Catalog, plan: &LogicalPlan) -> Result<Vec<Reading>> {
    let mut reading = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(table) = provider.downcast_ref::<ParquetTable>()
        {
            let manifest = table.manifest();
            reading.push(catalog.reading(&manifest.table, manifest.version));
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(Error::from_datafusion)?;
    Ok(reading)
}

/// Replaces each table function call waiting for parameters with the
/// provider for `values`.
fn bind_parameterized_scans(plan: LogicalPlan, values: &ParamValues) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::TableScan(mut scan) => {
            let bound = source_as_provider(&scan.source).ok().and_then(|p| {
                p.downcast_ref::<ParameterizedTable>()
                    .map(|t| t.0.bind(values))
            });
            match bound {
                Some(provider) => {
                    scan.source = provider_as_source(provider?);
                    Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
                }
                None => Ok(Transformed::no(LogicalPlan::TableScan(scan))),
            }
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
    .map_err(Error::from_datafusion)
}

/// True for an INSERT, planned against the catalog as declared.
fn is_insert(statement: &DFStatement) -> bool {
    matches!(statement, DFStatement::Statement(s) if matches!(s.as_ref(), SqlStatement::Insert(_)))
}

/// How queries run.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Send Utf8View, BinaryView and list views out as their classic forms.
    pub classic_types: bool,
    /// Partitions a scan is split into; defaults to the number of cores.
    pub target_partitions: usize,
    /// Bytes all running queries may reserve together before operators
    /// spill to disk.
    pub memory_limit: usize,
    /// Bytes one query may reserve.
    pub query_memory_limit: usize,
    /// Tables copied into memory, and the memory the copies may take.
    pub acceleration: AccelerationOptions,
}

/// Share of physical memory the query pool gets by default.
const DEFAULT_MEMORY_FRACTION: f64 = 0.5;
/// Share of physical memory accelerated tables may take by default.
const DEFAULT_ACCELERATION_FRACTION: f64 = 0.25;
/// Pool size when physical memory cannot be read.
const FALLBACK_MEMORY_LIMIT: usize = 4 << 30;

/// Bytes and rows under which a join's build side is collected once for
/// every partition (see [`QueryEngine::new`]).
const SHARED_BUILD_BYTES: usize = 32 << 20;
const SHARED_BUILD_ROWS: usize = 1 << 20;

impl Default for QueryOptions {
    fn default() -> Self {
        let share = |fraction: f64| {
            memory::physical_memory().map_or(FALLBACK_MEMORY_LIMIT, |bytes| {
                (bytes as f64 * fraction) as usize
            })
        };
        let memory_limit = share(DEFAULT_MEMORY_FRACTION);
        Self {
            classic_types: true,
            target_partitions: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_limit,
            query_memory_limit: memory_limit / 2,
            acceleration: AccelerationOptions {
                tables: Vec::new(),
                memory_limit: share(DEFAULT_ACCELERATION_FRACTION),
            },
        }
    }
}

/// Plans and runs SQL against the catalog.
pub struct QueryEngine {
    catalog: Arc<Catalog>,
    ingest: Ingest,
    ctx: SessionContext,
    /// The catalog as an INSERT's target is planned against: every
    /// column nullable (see [`Nullability`]).
    insert_catalogs: Arc<MemoryCatalogProviderList>,
    vectors: Arc<VectorTables>,
    accelerated: Arc<Accelerated>,
    options: QueryOptions,
    /// Plans queries somewhere else than here (a cluster), when set.
    query_planner: Option<Arc<dyn QueryPlanner + Send + Sync>>,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl QueryEngine {
    pub fn new(
        storage: &Storage,
        catalog: Arc<Catalog>,
        ingest: Ingest,
        vectors: Arc<VectorTables>,
        options: QueryOptions,
    ) -> Result<Self> {
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG_NAME, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            .with_target_partitions(options.target_partitions);
        // Types named in SQL stay classic; scans still decode strings into
        // view types (see `ParquetTable`), cast back on the way out.
        if options.classic_types {
            config.options_mut().sql_parser.map_string_types_to_utf8view = false;
        }
        // A join whose smaller side is under these is built once and shared
        // by every partition instead of both sides being hash-partitioned
        // first. DataFusion's defaults (1 MiB, 128 Ki rows) are for many
        // cores; here the repartitioning costs more than the shared build:
        // TPC-H SF1 q05 -25%, q07 -26%, q21 -11% (docs/performance.md).
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.hash_join_single_partition_threshold = SHARED_BUILD_BYTES;
        optimizer.hash_join_single_partition_threshold_rows = SHARED_BUILD_ROWS;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(options.memory_limit)))
            .build_arc()?;
        let url = Url::parse(STORE_URL).map_err(|e| Error::internal(e.to_string()))?;
        runtime.register_object_store(&url, storage.store.clone());
        let accelerated = Arc::new(Accelerated::new(
            options.acceleration.clone(),
            catalog.clone(),
            config.clone(),
            runtime.clone(),
        ));
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.add_optimizer_rule(Arc::new(semi_join_pushdown::SemiJoinPushdown));
        let views = Arc::new(ViewPlanner::default());
        ctx.register_catalog(
            CATALOG_NAME,
            Arc::new(LakehouseCatalog::new(
                catalog.clone(),
                vectors.clone(),
                views.clone(),
                Nullability::OfTheVersion,
                Some(accelerated.clone()),
            )),
        );
        let insert_catalogs = Arc::new(MemoryCatalogProviderList::new());
        insert_catalogs.register_catalog(
            CATALOG_NAME.to_string(),
            Arc::new(LakehouseCatalog::new(
                catalog.clone(),
                vectors.clone(),
                views.clone(),
                Nullability::Declared,
                None,
            )),
        );
        ctx.register_udtf(
            history::FUNCTION_NAME,
            Arc::new(history::TableHistory::new(catalog.clone())),
        );
        views.set_session(ctx.clone());
        accelerated.start();
        Ok(Self {
            catalog,
            ingest,
            ctx,
            insert_catalogs,
            vectors,
            accelerated,
            options,
            query_planner: None,
        })
    }

    /// Queries (not updates) are planned by `planner` from now on: a
    /// cluster's, which runs what it can distribute and hands the rest to
    /// DataFusion's own planner here.
    pub fn with_query_planner(mut self, planner: Arc<dyn QueryPlanner + Send + Sync>) -> Self {
        self.query_planner = Some(planner);
        self
    }

    /// The in-memory copies of the accelerated tables.
    pub fn accelerated(&self) -> &Arc<Accelerated> {
        &self.accelerated
    }

    /// The session every statement is planned in, for registering
    /// extension functions.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Parses, checks and plans one SQL statement. Placeholders (`$1` or
    /// `?`) stay in the plan until [`Self::bind`].
    pub async fn plan(&self, sql: &str) -> Result<LogicalPlan> {
        self.plan_in(&self.ctx, sql).await
    }

    /// [`Self::plan`] in `session`, a copy of [`Self::session`] that a
    /// protocol extends with what its clients expect (the Postgres port's
    /// `pg_catalog` and functions); tables and their checks are the same.
    pub async fn plan_in(&self, session: &SessionContext, sql: &str) -> Result<LogicalPlan> {
        let state = session::applied(session.state());
        let dialect = state.config_options().sql_parser.dialect;
        let sql = as_of::rewrite_as_of(sql, |table, as_of| match as_of {
            as_of::AsOf::Version(version) => {
                self.catalog.check_version(table, version)?;
                Ok(version)
            }
            as_of::AsOf::Time(time) => Ok(self.catalog.version_at(table, time)?),
        })?;
        let mut statement = state
            .sql_to_statement(&sql, &dialect)
            .map_err(|e| Error::invalid(format!("SQL parse error: {}", e.strip_backtrace())))?;
        refuse_dangerous(&statement)?;
        number_question_marks(&mut statement);
        self.check_references(&state, &statement)?;
        let normalize = state.config_options().sql_parser.enable_ident_normalization;
        if let DFStatement::Statement(inner) = &statement {
            match inner.as_ref() {
                SqlStatement::AlterTable(alter) => return alter::alter_plan(alter, normalize),
                SqlStatement::Merge(merge) => return merge::merge_plan(merge, normalize),
                _ => {}
            }
        }
        let state = if is_insert(&statement) {
            SessionStateBuilder::new_from_existing(state)
                .with_catalog_list(self.insert_catalogs.clone())
                .build()
        } else {
            state
        };
        state
            .statement_to_plan(statement)
            .await
            .map_err(Error::from_datafusion)
    }

    /// Every table a statement reads must be a catalog table that exists
    /// (at the version named, for `table@vN`); names that look like files
    /// or URLs are refused with the reason.
    fn check_references(
        &self,
        state: &datafusion::execution::SessionState,
        statement: &DFStatement,
    ) -> Result<()> {
        let normalize = state.config_options().sql_parser.enable_ident_normalization;
        let created = match statement {
            DFStatement::Statement(s) => match s.as_ref() {
                SqlStatement::CreateTable(create) => Some(object_name_to_table_reference(
                    create.name.clone(),
                    normalize,
                )?),
                SqlStatement::Drop { .. } => return Ok(()),
                _ => None,
            },
            _ => None,
        };
        for reference in catalog_references(state, statement)? {
            if Some(&reference) != created.as_ref() {
                self.check_table(&reference)?;
            }
        }
        Ok(())
    }

    /// A table a statement reads must be a catalog table or view that
    /// exists, at the version named for `table@vN`.
    fn check_table(&self, reference: &TableReference) -> Result<()> {
        match versioned_table_ref(reference)? {
            (table, None) if self.catalog.view(&table).is_some() => Ok(()),
            (table, None) => Ok(self.catalog.table(&table).map(drop)?),
            (table, Some(version)) => Ok(self.catalog.check_version(&table, version)?),
        }
    }

    /// Plans a serialized Substrait `Plan` (see [`substrait`]); the tables
    /// it names pass the checks of tables named in SQL.
    pub async fn plan_substrait(&self, plan: &[u8]) -> Result<LogicalPlan> {
        let state = session::applied(self.ctx.state());
        let check = |reference: &TableReference| {
            refuse_path(reference)?;
            if is_system(reference) {
                return Ok(());
            }
            self.check_table(reference)
        };
        substrait::plan(&state, plan, &check).await
    }

    /// Sorts a plan into a query or an update.
    pub fn classify(&self, plan: LogicalPlan) -> Result<Planned> {
        classify(plan)
    }

    /// The schema a query's results leave the server with: every column
    /// nullable, since whether DataFusion knows a column to be free of
    /// nulls depends on the table version read (see `ParquetTable`), and a
    /// query's result schema must not change when a table gains a null.
    pub fn output_schema(&self, plan: &LogicalPlan) -> SchemaRef {
        let schema: Schema = plan.schema().as_arrow().clone();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
        if self.options.classic_types {
            classic_schema(&schema)
        } else {
            Arc::new(schema)
        }
    }

    /// The parameters a plan expects, as a schema of fields `$1..$n`
    /// (type Null where DataFusion cannot infer one).
    pub fn parameter_schema(&self, plan: &LogicalPlan) -> Result<SchemaRef> {
        let mut fields: Vec<(String, DataType)> = plan
            .get_parameter_fields()
            .map_err(Error::from_datafusion)?
            .into_iter()
            .map(|(name, field)| {
                let data_type = field.map_or(DataType::Null, |f| f.data_type().clone());
                (name, data_type)
            })
            .collect();
        for (name, data_type) in parameterized_scans(plan)?
            .iter()
            .flat_map(|table| table.0.parameters())
        {
            match fields.iter_mut().find(|(n, _)| *n == name) {
                Some((_, existing)) if existing == &DataType::Null => *existing = data_type,
                Some(_) => {}
                None => fields.push((name, data_type)),
            }
        }
        let mut indexed: Vec<(usize, Field)> = fields
            .into_iter()
            .map(|(name, data_type)| {
                let index = name
                    .trim_start_matches('$')
                    .parse::<usize>()
                    .unwrap_or(usize::MAX);
                (index, Field::new(name, data_type, true))
            })
            .collect();
        indexed.sort_by_key(|(i, _)| *i);
        // Positions are what clients bind by: `$3` alone still takes three
        // values, and the first two (unused) are of no particular type.
        let mut positional = Vec::with_capacity(indexed.len());
        for (index, field) in indexed {
            while index != usize::MAX && positional.len() + 1 < index {
                positional.push(Field::new(
                    format!("${}", positional.len() + 1),
                    DataType::Null,
                    true,
                ));
            }
            positional.push(field);
        }
        Ok(Arc::new(Schema::new(positional)))
    }

    /// Substitutes one row of parameter values into a plan, casting each
    /// value to the type the plan expects where it knows one.
    pub fn bind(&self, plan: &LogicalPlan, row: &RecordBatch, index: usize) -> Result<LogicalPlan> {
        let values = row
            .columns()
            .iter()
            .map(|column| ScalarValue::try_from_array(column, index))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.bind_values(plan, values)
    }

    /// [`Self::bind`] for values already read, `$1` first.
    pub fn bind_values(&self, plan: &LogicalPlan, values: Vec<ScalarValue>) -> Result<LogicalPlan> {
        let expected = self.parameter_schema(plan)?;
        if values.len() != expected.fields().len() {
            return Err(Error::invalid(format!(
                "the statement takes {} parameter(s) but {} were bound",
                expected.fields().len(),
                values.len()
            )));
        }
        let values = values
            .into_iter()
            .zip(expected.fields())
            .map(|(value, field)| match field.data_type() {
                DataType::Null => Ok(value),
                t if t == &value.data_type() => Ok(value),
                t => value.cast_to(t).map_err(|e| {
                    Error::invalid(format!(
                        "parameter {} cannot be used as {t}: {}",
                        field.name(),
                        e.strip_backtrace()
                    ))
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        let values = ParamValues::from(values);
        let bound = plan
            .clone()
            .with_param_values(values.clone())
            .map_err(Error::from_datafusion)?;
        bind_parameterized_scans(bound, &values)
    }

    /// Runs a query plan, streaming its batches, in a memory pool of its
    /// own over the shared one.
    pub async fn execute_query(&self, plan: LogicalPlan) -> Result<SendableRecordBatchStream> {
        let state = session::applied(self.ctx.state());
        let mut runtime = state.runtime_env().as_ref().clone();
        runtime.memory_pool = Arc::new(QueryPool::new(
            runtime.memory_pool.clone(),
            self.options.query_memory_limit,
        ));
        let mut state =
            SessionStateBuilder::new_from_existing(state).with_runtime_env(Arc::new(runtime));
        if let Some(planner) = &self.query_planner {
            state = state.with_query_planner(planner.clone());
        }
        let state = state.build();
        let reading = versions_read(&self.catalog, &plan)?;
        let stream = DataFrame::new(state, plan)
            .execute_stream()
            .await
            .map_err(Error::from_datafusion)?;
        let schema = stream.schema();
        // The guards go with the stream: vacuum keeps the versions until
        // the last batch is read or the reader goes away.
        let stream = stream.map(move |batch| {
            let _reading = &reading;
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    /// Runs an update; returns the rows it wrote.
    pub async fn execute_update(&self, update: Update) -> Result<u64> {
        match update {
            Update::CreateSchema {
                name,
                if_not_exists,
            } => {
                self.catalog.create_schema(&name, if_not_exists).await?;
                Ok(0)
            }
            Update::DropTable { table, if_exists } => {
                if self.catalog.view(&table).is_some() {
                    return Err(Error::invalid(format!(
                        "{table} is a view: DROP VIEW {table}"
                    )));
                }
                self.catalog.drop_table(&table, if_exists).await?;
                Ok(0)
            }
            Update::Merge(spec) => self.merge(&spec).await,
            Update::AlterTable(alter) => {
                match &alter.action {
                    alter::AlterAction::Columns(changes) => {
                        let changes = alter::resolve(&self.ctx, changes).await?;
                        if self.catalog.table(&alter.table)?.lance.is_some() {
                            self.vectors
                                .alter_columns(&self.catalog, &alter.table, &changes)
                                .await?;
                        } else {
                            self.catalog.commit_alter(&alter.table, &changes).await?;
                        }
                    }
                    alter::AlterAction::RenameTo(to) => {
                        if self.catalog.table(&alter.table)?.lance.is_some() {
                            self.vectors.rename(&self.catalog, &alter.table, to).await?;
                        } else {
                            self.catalog.rename_table(&alter.table, to).await?;
                        }
                    }
                }
                Ok(0)
            }
            Update::CreateView {
                view,
                definition,
                input,
                or_replace,
            } => {
                let (sql, columns) = views::view_query(&definition)?;
                let output = self.output_schema(&input);
                let state = self.ctx.state();
                let dialect = state.config_options().sql_parser.dialect;
                let statement = state.sql_to_statement(&definition, &dialect)?;
                self.catalog
                    .create_view(NewView {
                        view,
                        sql,
                        columns,
                        schema: output,
                        reads: views::tables_named(&state, &statement)?,
                        or_replace,
                        if_not_exists: false,
                    })
                    .await?;
                Ok(0)
            }
            Update::DropView { view, if_exists } => {
                if self.catalog.table_exists(&view) {
                    return Err(Error::invalid(format!(
                        "{view} is a table: DROP TABLE {view}"
                    )));
                }
                self.catalog.drop_view(&view, if_exists).await?;
                Ok(0)
            }
            Update::CreateTable {
                table,
                input,
                if_not_exists,
                or_replace,
            } => {
                if if_not_exists && self.catalog.table_exists(&table) {
                    return Ok(0);
                }
                let mode = if or_replace {
                    WriteMode::CreateOrOverwrite
                } else {
                    WriteMode::Create
                };
                self.write_plan(table, mode, input).await
            }
            Update::Insert {
                table,
                input,
                overwrite,
            } => {
                let mode = if overwrite {
                    WriteMode::Overwrite
                } else {
                    WriteMode::Append
                };
                self.write_plan(table, mode, input).await
            }
            Update::ChangeRows(change) => self.change_rows(&change).await,
        }
    }

    /// Runs a `DELETE` or `UPDATE`; returns the rows it deleted or changed.
    async fn change_rows(&self, change: &RowChange) -> Result<u64> {
        match change.provider().downcast_ref::<ParquetTable>() {
            Some(planned) => {
                let planned = planned.manifest().clone();
                self.change_parquet_rows(change, &planned).await
            }
            None => self.change_vector_rows(change).await,
        }
    }

    async fn write_plan(
        &self,
        table: TableRef,
        mode: WriteMode,
        input: LogicalPlan,
    ) -> Result<u64> {
        self.catalog.check_write(&table, mode)?;
        let schema: SchemaRef = Arc::new(input.schema().as_arrow().clone());
        let stream = self.execute_query(input).await?;
        let request = IngestRequest {
            table,
            mode,
            idempotency_key: None,
            evolve: false,
            format: None,
            embed: Vec::new(),
        };
        let committed = self
            .ingest
            .write(request, schema, stream.map_err(Error::from_datafusion))
            .await?;
        Ok(committed.rows)
    }
}
