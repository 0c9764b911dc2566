//! The Flight SQL service: decodes commands, calls the engine (query,
//! ingest, vectors, extensions) and the catalog, and encodes results.
//!
//! This is the only layer that knows about gRPC: it depends on
//! `lakehouse-engine` and `lakehouse-core`, never the reverse. Every error
//! crosses into a `tonic::Status` through the one mapping in [`status`].

// The Flight service's request futures nest deeply; the nightly compiler
// (cargo-fuzz builds) needs more than the default 128 to lay them out.
#![recursion_limit = "256"]

mod access;
mod cancel;
pub mod fuzzing;
mod gate;
mod planned;
mod polls;
mod prepared;
mod put;
mod query_slots;
mod result_pump;
mod service;
mod sessions;
mod sql_info;
mod status;
mod tickets;
mod upload_watch;

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{GetDbSchemasBuilder, GetTablesBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, ActionCreatePreparedSubstraitPlanRequest, Any,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandStatementQuery,
    CommandStatementSubstraitPlan, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use datafusion::logical_expr::LogicalPlan;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

pub use gate::Gate;
pub use service::LakehouseFlightService;
pub use upload_watch::watch as watch_upload;

use access::caller;
use lakehouse_core::auth::{Authenticator, Identity};
use lakehouse_core::catalog::{CATALOG_NAME, Catalog};
use lakehouse_core::metrics::metrics;
use lakehouse_core::types::cast_batch;
use lakehouse_engine::actions::Actions;
use lakehouse_engine::error::{Error, Result};
use lakehouse_engine::ingest::Ingest;
use lakehouse_engine::query::{Planned, QueryEngine};
use lakehouse_serving::access::check_update;
use lakehouse_serving::{Serving, ServingLimits};
use planned::PlannedQueries;
pub use prepared::PreparedLimits;
use prepared::{PreparedStatement, PreparedStatements};
use query_slots::Admission;
use sql_info::{SQL_INFO, XDBC_TYPE_INFO};
use status::{IntoStatus, ToStatus};
use tickets::{KEY_SCHEMA, PRIMARY_KEY_SCHEMA, Statement, StatementTicket, TABLE_TYPES};

/// Request limits: those every protocol applies ([`ServingLimits`]) and
/// the Flight boundary's own; the memory limits live in
/// `lakehouse_engine::query::QueryOptions`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub serving: ServingLimits,
    pub max_upload_bytes: u64,
    pub prepared: PreparedLimits,
    /// How long a result waits for its client to take the next message
    /// before the query is stopped.
    pub result_write_timeout: std::time::Duration,
}

type DoGetStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// The Flight SQL protocol over the query engine, catalog and ingest.
#[derive(Debug)]
pub struct FlightSql {
    engine: Arc<QueryEngine>,
    catalog: Arc<Catalog>,
    ingest: Ingest,
    actions: Arc<Actions>,
    prepared: PreparedStatements,
    planned: PlannedQueries,
    /// Query slots, timeout and row limit for every path that plans or
    /// runs SQL, shared with the other protocols.
    admission: Admission,
}

impl FlightSql {
    /// The protocol over these parts, within `limits` (prepared
    /// statements) and the server's shared `serving` (query slots and
    /// timeout, result rows, request permits).
    pub fn new(
        engine: Arc<QueryEngine>,
        catalog: Arc<Catalog>,
        ingest: Ingest,
        actions: Arc<Actions>,
        limits: &Limits,
        serving: Serving,
    ) -> Self {
        Self {
            engine,
            catalog,
            ingest,
            actions,
            prepared: PreparedStatements::new(limits.prepared),
            planned: PlannedQueries::default(),
            admission: Admission::new(serving),
        }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Plans a statement to prepare and keeps it for its caller.
    async fn create_prepared_statement(
        &self,
        statement: Statement,
        transaction_id: Option<Bytes>,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        if transaction_id.is_some() {
            return Err(Error::NotSupported("transactions".into()).to_status());
        }
        let generation = self.catalog.generation();
        let plan = self.plan(&statement).await.into_status()?;
        let parameter_schema = self.engine.parameter_schema(&plan).into_status()?;
        let is_query = matches!(
            self.engine.classify(plan.clone()).into_status()?,
            Planned::Query(_)
        );
        let dataset_schema = if is_query {
            schema_bytes(&self.engine.output_schema(&plan)).into_status()?
        } else {
            Bytes::new()
        };
        let owner = caller(&request).into_status()?.name;
        let handle = self
            .prepared
            .insert(
                &owner,
                PreparedStatement {
                    statement,
                    plan,
                    generation,
                    is_query,
                    parameters: Vec::new(),
                },
            )
            .into_status()?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle,
            dataset_schema,
            parameter_schema: schema_bytes(&parameter_schema).into_status()?,
        })
    }

    /// The FlightInfo of a statement: planned now (updates run now), its
    /// ticket carrying the statement.
    async fn statement_info(
        &self,
        statement: Statement,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let identity = caller(&request).into_status()?;
        let (schema, ticket) = self
            .admission
            .bounded(async {
                self.plan_statement(&statement, &identity)
                    .await
                    .into_status()
            })
            .await?;
        let ticket = TicketStatementQuery {
            statement_handle: ticket.encode(),
        };
        let ticket = ticket.as_any().encode_to_vec().into();
        Ok(Response::new(
            flight_info(&schema, ticket, request.into_inner()).into_status()?,
        ))
    }

    /// Plans a statement as a client sent it.
    async fn plan(&self, statement: &Statement) -> Result<LogicalPlan> {
        match statement {
            Statement::Sql(sql) => self.engine.plan(sql).await,
            Statement::Substrait(plan) => self.engine.plan_substrait(plan).await,
        }
    }

    /// Plans `statement` and, for queries, returns the output schema;
    /// updates sent as queries run now and report their row count.
    async fn plan_statement(
        &self,
        statement: &Statement,
        identity: &Identity,
    ) -> Result<(SchemaRef, StatementTicket)> {
        let generation = self.catalog.generation();
        let plan = self.plan(statement).await?;
        match self.engine.classify(plan)? {
            Planned::Query(plan) => {
                let schema = self.engine.output_schema(&plan);
                let kept = (self.catalog.generation() == generation)
                    .then(|| self.planned.keep(&statement.key(), plan, generation));
                Ok((schema, statement.ticket(kept)))
            }
            Planned::Update(update) => {
                check_update(identity, &update)?;
                let rows = self.engine.execute_update(update).await?;
                Ok((
                    StatementTicket::affected_schema(),
                    StatementTicket::Affected { rows },
                ))
            }
        }
    }

    /// Runs a planned query and encodes it, in classic types when asked.
    async fn stream_query(&self, plan: LogicalPlan) -> Result<DoGetStream> {
        let schema = self.engine.output_schema(&plan);
        let batches = self.engine.execute_query(plan).await?;
        let batches = self
            .admission
            .serving()
            .limit_rows(batches.map_err(Error::from_datafusion));
        Ok(encode(schema, batches))
    }

    /// The prepared statement under `handle`, with a plan of the catalog
    /// as it is now: planned again (and kept) when anything was committed
    /// since, as a plan reads each table at the version current when it
    /// was made (a prepared query run again after an append answered from
    /// the version before it).
    async fn prepared_statement(&self, handle: &[u8]) -> Result<PreparedStatement> {
        let mut statement = self.prepared.get(handle)?;
        let generation = self.catalog.generation();
        if statement.generation != generation {
            statement.plan = self.plan(&statement.statement).await?;
            statement.generation = generation;
            self.prepared
                .replan(handle, statement.plan.clone(), generation);
        }
        Ok(statement)
    }

    /// Runs a prepared query once per bound parameter row, in order.
    async fn stream_prepared(&self, statement: PreparedStatement) -> Result<DoGetStream> {
        if statement.parameters.is_empty() {
            return self.stream_query(statement.plan).await;
        }
        let schema = self.engine.output_schema(&statement.plan);
        let mut plans = Vec::new();
        for batch in &statement.parameters {
            for row in 0..batch.num_rows() {
                plans.push(self.engine.bind(&statement.plan, batch, row)?);
            }
        }
        let engine = self.engine.clone();
        let batches = futures::stream::iter(plans)
            .then(move |plan| {
                let engine = engine.clone();
                async move { engine.execute_query(plan).await }
            })
            .map_ok(|stream| stream.map_err(Error::from_datafusion))
            .try_flatten();
        Ok(encode(schema, self.admission.serving().limit_rows(batches)))
    }

    async fn run_prepared_update(
        &self,
        statement: PreparedStatement,
        identity: &Identity,
    ) -> Result<i64> {
        let mut plans = Vec::new();
        if statement.parameters.is_empty() {
            plans.push(statement.plan.clone());
        }
        for batch in &statement.parameters {
            for row in 0..batch.num_rows() {
                plans.push(self.engine.bind(&statement.plan, batch, row)?);
            }
        }
        let mut total = 0;
        for plan in plans {
            match self.engine.classify(plan)? {
                Planned::Update(update) => {
                    check_update(identity, &update)?;
                    total += self.engine.execute_update(update).await?
                }
                Planned::Query(_) => {
                    return Err(Error::invalid(format!(
                        "{} is a query: execute it with a query, not an update",
                        statement.statement
                    )));
                }
            }
        }
        Ok(total as i64)
    }
}

/// Encodes a stream of batches as Flight data with `schema`.
fn encode<S>(schema: SchemaRef, batches: S) -> DoGetStream
where
    S: Stream<Item = Result<RecordBatch>> + Send + 'static,
{
    let target = schema.clone();
    let batches = batches
        .and_then(move |batch| {
            let target = target.clone();
            async move {
                metrics().rows_out(batch.num_rows() as u64);
                Ok(cast_batch(&batch, &target)?)
            }
        })
        .map_err(|e| FlightError::Tonic(Box::new(e.to_status())));
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from),
    )
}

fn one_batch(batch: RecordBatch) -> DoGetStream {
    let schema = batch.schema();
    encode(schema, futures::stream::once(async { Ok(batch) }))
}

fn flight_info(schema: &Schema, ticket: Bytes, descriptor: FlightDescriptor) -> Result<FlightInfo> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

/// The statement of a `CommandStatementSubstraitPlan`.
fn substrait_statement(command: CommandStatementSubstraitPlan) -> Result<Statement> {
    let plan = command
        .plan
        .ok_or_else(|| Error::invalid("CommandStatementSubstraitPlan carries no plan"))?;
    Ok(Statement::Substrait(plan.plan))
}

/// FlightInfo for a metadata command: the ticket is the command itself.
fn metadata_info(
    command: impl ProstMessageExt,
    schema: &Schema,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = command.as_any().encode_to_vec().into();
    Ok(Response::new(
        flight_info(schema, ticket, request.into_inner()).into_status()?,
    ))
}

fn schema_bytes(schema: &Schema) -> Result<Bytes> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into()?;
    Ok(message.0)
}

fn metadata_error(e: FlightError) -> Error {
    Error::internal(format!("building a metadata result: {e}"))
}

fn check_catalog(catalog: Option<&str>) -> Result<()> {
    match catalog {
        Some(c) if !c.is_empty() && c != CATALOG_NAME => Err(Error::invalid(format!(
            "catalog {c:?} does not exist; this server has one catalog, {CATALOG_NAME:?}"
        ))),
        _ => Ok(()),
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: Bytes::new(),
        };
        Ok(Response::new(Box::pin(futures::stream::once(async {
            Ok(response)
        }))))
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.statement_info(Statement::Sql(query.query), request)
            .await
    }

    async fn get_flight_info_substrait_plan(
        &self,
        query: CommandStatementSubstraitPlan,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.statement_info(substrait_statement(query).into_status()?, request)
            .await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let identity = caller(&request).into_status()?;
        let statement = self
            .admission
            .bounded(async {
                self.prepared_statement(&cmd.prepared_statement_handle)
                    .await
                    .into_status()
            })
            .await?;
        if !statement.is_query {
            // An update executed as a query (ADBC's dbapi does this for DDL):
            // it runs now, once, and its ticket reports the row count.
            let rows = self
                .admission
                .bounded(async {
                    self.run_prepared_update(statement, &identity)
                        .await
                        .into_status()
                })
                .await? as u64;
            let ticket = TicketStatementQuery {
                statement_handle: StatementTicket::Affected { rows }.encode(),
            };
            let ticket = ticket.as_any().encode_to_vec().into();
            let schema = StatementTicket::affected_schema();
            return Ok(Response::new(
                flight_info(&schema, ticket, request.into_inner()).into_status()?,
            ));
        }
        let schema = self.engine.output_schema(&statement.plan);
        let ticket = cmd.as_any().encode_to_vec().into();
        Ok(Response::new(
            flight_info(&schema, ticket, request.into_inner()).into_status()?,
        ))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, &SQL_INFO.schema(), request)
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, &PRIMARY_KEY_SCHEMA, request)
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, &KEY_SCHEMA, request)
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, &KEY_SCHEMA, request)
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, &KEY_SCHEMA, request)
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(query, &XDBC_TYPE_INFO.schema(), request)
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        Err(Error::invalid(format!(
            "the ticket holds an unknown command {:?}",
            message.type_url
        ))
        .to_status())
    }

    async fn get_flight_info_fallback(
        &self,
        command: arrow_flight::sql::Command,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(Error::invalid(format!(
            "the descriptor holds an unknown command {:?}",
            command.type_url()
        ))
        .to_status())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let ticket = StatementTicket::decode(&ticket.statement_handle).into_status()?;
        if let StatementTicket::Affected { rows } = ticket {
            let batch = StatementTicket::affected_batch(rows).into_status()?;
            return Ok(Response::new(one_batch(batch)));
        }
        let (statement, plan) = ticket.statement().into_status()?;
        let generation = self.catalog.generation();
        let kept = plan.and_then(|id| self.planned.take(id, &statement.key(), generation));
        let plan = match kept {
            Some(plan) => plan,
            None => match self
                .engine
                .classify(self.plan(&statement).await.into_status()?)
                .into_status()?
            {
                Planned::Query(plan) => plan,
                Planned::Update(_) => {
                    return Err(Error::invalid("this ticket no longer names a query").to_status());
                }
            },
        };
        let stream = self.stream_query(plan).await.into_status()?;
        Ok(Response::new(stream))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let statement = self
            .prepared_statement(&query.prepared_statement_handle)
            .await
            .into_status()?;
        if !statement.is_query {
            return Err(Error::invalid(format!(
                "{} is an update: execute it with an update, not a query",
                statement.statement
            ))
            .to_status());
        }
        Ok(Response::new(
            self.stream_prepared(statement).await.into_status()?,
        ))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(CATALOG_NAME);
        Ok(Response::new(one_batch(
            builder.build().map_err(metadata_error).into_status()?,
        )))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder: GetDbSchemasBuilder = query.into_builder();
        for schema in self.catalog.schema_names() {
            builder.append(CATALOG_NAME, schema);
        }
        Ok(Response::new(one_batch(
            builder.build().map_err(metadata_error).into_status()?,
        )))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder: GetTablesBuilder = query.into_builder();
        for schema in self.catalog.schema_names() {
            for table in self.catalog.tables_in(&schema) {
                let arrow_schema = lakehouse_core::types::classic_schema(&table.schema);
                builder
                    .append(
                        CATALOG_NAME,
                        &schema,
                        &table.table.table,
                        TABLE_TYPES[0],
                        &arrow_schema,
                    )
                    .map_err(metadata_error)
                    .into_status()?;
            }
            for view in self.catalog.views_in(&schema) {
                let arrow_schema = lakehouse_core::types::classic_schema(&view.schema);
                builder
                    .append(
                        CATALOG_NAME,
                        &schema,
                        &view.view.table,
                        TABLE_TYPES[1],
                        &arrow_schema,
                    )
                    .map_err(metadata_error)
                    .into_status()?;
            }
        }
        Ok(Response::new(one_batch(
            builder.build().map_err(metadata_error).into_status()?,
        )))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for table_type in TABLE_TYPES {
            builder.append(table_type);
        }
        Ok(Response::new(one_batch(
            builder.build().map_err(metadata_error).into_status()?,
        )))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = query
            .into_builder(&SQL_INFO)
            .build()
            .map_err(metadata_error)
            .into_status()?;
        Ok(Response::new(one_batch(batch)))
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(Response::new(one_batch(RecordBatch::new_empty(
            PRIMARY_KEY_SCHEMA.clone(),
        ))))
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(Response::new(one_batch(RecordBatch::new_empty(
            KEY_SCHEMA.clone(),
        ))))
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(Response::new(one_batch(RecordBatch::new_empty(
            KEY_SCHEMA.clone(),
        ))))
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(Response::new(one_batch(RecordBatch::new_empty(
            KEY_SCHEMA.clone(),
        ))))
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = query
            .into_builder(&XDBC_TYPE_INFO)
            .build()
            .map_err(metadata_error)
            .into_status()?;
        Ok(Response::new(one_batch(batch)))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let statement = Statement::Sql(query.query);
        self.admission
            .bounded(self.create_prepared_statement(statement, query.transaction_id, request))
            .await
    }

    async fn do_action_create_prepared_substrait_plan(
        &self,
        query: ActionCreatePreparedSubstraitPlanRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let plan = query.plan.ok_or_else(|| {
            Error::invalid("ActionCreatePreparedSubstraitPlanRequest carries no plan").to_status()
        })?;
        let statement = Statement::Substrait(plan.plan);
        self.admission
            .bounded(self.create_prepared_statement(statement, query.transaction_id, request))
            .await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        Ok(self
            .prepared
            .close(&query.prepared_statement_handle)
            .into_status()?)
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<arrow_flight::ActionType, Status>>> {
        Some(
            self.actions
                .list()
                .map(|action| {
                    Ok(arrow_flight::ActionType {
                        r#type: action.name().to_string(),
                        description: action.summary(),
                    })
                })
                .collect(),
        )
    }

    async fn do_action_fallback(
        &self,
        request: Request<arrow_flight::Action>,
    ) -> Result<
        Response<<Self as arrow_flight::flight_service_server::FlightService>::DoActionStream>,
        Status,
    > {
        let identity = caller(&request).into_status()?;
        let action = request.into_inner();
        let run = async {
            Ok(self
                .actions
                .run(&identity, &action.r#type, &action.body)
                .await)
        };
        let ran = if self.actions.takes_query_slot(&action.r#type) {
            self.admission.in_slot(run).await?
        } else {
            run.await?
        };
        let Some(result) = ran else {
            return Err(Error::invalid(format!(
                "unknown action {:?}; ListActions lists the actions this server offers",
                action.r#type
            ))
            .to_status());
        };
        let body = arrow_flight::Result {
            body: result.into_status()?.into(),
        };
        Ok(Response::new(Box::pin(futures::stream::once(async {
            Ok(body)
        }))))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

impl FlightSql {
    /// The schema a descriptor's results will have, for `GetSchema`.
    pub async fn schema_for(&self, descriptor: &FlightDescriptor) -> Result<SchemaRef> {
        let any = Any::decode(descriptor.cmd.clone()).map_err(|e| {
            Error::invalid(format!("the descriptor is not a Flight SQL command: {e}"))
        })?;
        let statement = if let Some(query) = any.unpack::<CommandStatementQuery>()? {
            Some(Statement::Sql(query.query))
        } else if let Some(query) = any.unpack::<CommandStatementSubstraitPlan>()? {
            Some(substrait_statement(query)?)
        } else {
            None
        };
        if let Some(statement) = statement {
            return match self.engine.classify(self.plan(&statement).await?)? {
                Planned::Query(plan) => Ok(self.engine.output_schema(&plan)),
                Planned::Update(_) => Ok(StatementTicket::affected_schema()),
            };
        }
        if let Some(query) = any.unpack::<CommandPreparedStatementQuery>()? {
            let statement = self
                .prepared_statement(&query.prepared_statement_handle)
                .await?;
            return Ok(self.engine.output_schema(&statement.plan));
        }
        Err(Error::NotSupported(format!(
            "GetSchema for {}",
            any.type_url
        )))
    }

    /// The tonic service: this protocol plus authentication, `GetSchema`
    /// and `PollFlightInfo`.
    pub fn into_service(
        self,
        auth: Option<Arc<Authenticator>>,
        limits: &Limits,
    ) -> LakehouseFlightService {
        LakehouseFlightService::new(Arc::new(self), auth, limits)
    }
}
