//! Running a connection's statements: the commands answered here
//! (transactions, settings) and SQL through the engine, under the same
//! rules as Flight SQL's: a request permit per statement (per server and
//! per user), a query slot while a statement plans, writes or streams its
//! rows, the query timeout (or the connection's shorter
//! `statement_timeout`), the result row limit, the caller's role, and
//! `committed_by` on what it writes.
//!
//! A query is planned when its statement arrives (so its columns are
//! known and its table versions fixed) and run when its rows are first
//! read, taking its slot then: the statements of one simple-query text
//! stream one after another, so a later one never waits for a slot an
//! earlier one holds. A cancel request or the deadline stops the running
//! statement, frees its slot and answers `57014`, as Postgres does.
//!
//! Transactions: each statement commits on its own, as on the other
//! ports. `BEGIN`, `COMMIT` and `ROLLBACK` are accepted so that drivers
//! that wrap statements in them (psycopg, SQLAlchemy, JDBC with
//! autocommit off) work, and so are savepoints (psycopg takes one to read
//! type information); a `ROLLBACK` after a write says, as a warning, that
//! the write stays.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::future::BoxFuture;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt, TryStreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::DataRow;
use pgwire::messages::response::{NoticeResponse, TransactionStatus};
use pgwire::messages::startup::ParameterStatus;
use pgwire::types::format::FormatOptions;
use tokio::time::Instant;

use crate::commands::{Command, SessionNames, commands};
use crate::connection::{CancelSignal, Connection};
use crate::errors::{
    IN_FAILED_TRANSACTION, INVALID_PARAMETER_VALUE, QUERY_CANCELED, UNDEFINED_OBJECT, pg_error,
    refused,
};
use crate::settings::{Change, Settings};
use lakehouse_core::catalog::{Catalog, DEFAULT_SCHEMA, acting_as};
use lakehouse_core::types::cast_batch;
use lakehouse_engine::error::{Error, Result};
use lakehouse_engine::query::session::with_settings;
use lakehouse_engine::query::{Planned, QueryEngine, Update};
use lakehouse_serving::Serving;
use lakehouse_serving::access::check_update;
use lakehouse_serving::requests::RequestPermit;

/// What every connection's statements run against.
pub struct Statements {
    pub engine: Arc<QueryEngine>,
    /// The engine's session with `pg_catalog` (see [`crate::catalog`]).
    pub session: SessionContext,
    pub catalog: Arc<Catalog>,
    pub serving: Serving,
    pub parser: PostgresCompatibilityParser,
}

/// A statement as the extended protocol keeps it between Parse and
/// Execute: the command, and for SQL what planning it at Parse found.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub command: Command,
    pub described: Option<Described>,
}

/// The parameters a SQL statement takes and the columns it answers
/// (`None` for a statement that changes data).
#[derive(Debug, Clone)]
pub struct Described {
    pub parameters: Vec<DataType>,
    pub columns: Option<SchemaRef>,
}

/// A statement planned and ready to run.
struct Started {
    permit: RequestPermit,
    settings: Settings,
    bound: Bound,
    plan: LogicalPlan,
}

/// The bound of one statement's run: its deadline and the limit it
/// comes from, and the cancel requests it watches.
struct Bound {
    deadline: Instant,
    limit: Duration,
    cancel: CancelSignal,
}

impl Bound {
    fn new(connection: &Connection, settings: &Settings, server: Duration) -> Self {
        let limit = settings
            .statement_timeout
            .map_or(server, |own| own.min(server));
        Self {
            deadline: Instant::now() + limit,
            limit,
            cancel: connection.cancel_signal(),
        }
    }

    /// Runs `work` until it ends, the deadline passes or a cancel request
    /// comes.
    async fn run<T>(&mut self, work: impl Future<Output = Result<T>>) -> PgWireResult<T> {
        tokio::select! {
            result = tokio::time::timeout_at(self.deadline, work) => match result {
                Ok(done) => done.map_err(|e| pg_error(&e)),
                Err(_) => Err(timed_out(self.limit)),
            },
            () = self.cancel.cancelled() => Err(cancelled()),
        }
    }
}

/// What a rollback says when the block wrote.
const WRITES_STAY: &str = "the writes of this transaction block stay: this server commits each \
                           statement on its own, so ROLLBACK undoes nothing";

fn timed_out(limit: Duration) -> PgWireError {
    refused(
        QUERY_CANCELED,
        format!(
            "canceling statement due to statement timeout: it ran longer than {} ms \
             (statement_timeout, at most the server's query_timeout_secs)",
            limit.as_millis()
        ),
    )
}

fn cancelled() -> PgWireError {
    refused(QUERY_CANCELED, "canceling statement due to user request")
}

/// The connection a logged-in client carries.
pub fn connection_of<C: ClientInfo>(client: &C) -> PgWireResult<Arc<Connection>> {
    client
        .session_extensions()
        .get::<Arc<Connection>>()
        .map(|connection| connection.as_ref().clone())
        .ok_or(PgWireError::NotReadyForQuery)
}

impl Statements {
    /// The commands of a client's text.
    pub fn read(&self, connection: &Connection, text: &str) -> Vec<Command> {
        let settings = connection.settings();
        let names = SessionNames {
            user: connection.identity.name.clone(),
            schema: settings
                .schema
                .clone()
                .unwrap_or_else(|| DEFAULT_SCHEMA.to_string()),
        };
        commands(&self.parser, text, &names)
    }

    /// Plans `sql` for the extended protocol's Parse: what it takes and
    /// answers (boxed, as [`Self::sql`]).
    pub fn describe<'a>(
        &'a self,
        connection: &'a Connection,
        sql: &'a str,
    ) -> BoxFuture<'a, PgWireResult<Described>> {
        self.planned_description(connection, sql).boxed()
    }

    async fn planned_description(
        &self,
        connection: &Connection,
        sql: &str,
    ) -> PgWireResult<Described> {
        let Started { plan, .. } = self.start(connection, sql, None).await?;
        let parameters = self
            .engine
            .parameter_schema(&plan)
            .map_err(|e| pg_error(&e))?
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let columns = match self.classify(&connection.settings(), plan).await? {
            Planned::Query(plan) => Some(self.engine.output_schema(&plan)),
            Planned::Update(_) => None,
        };
        Ok(Described {
            parameters,
            columns,
        })
    }

    /// Runs one command; `parameters` are a bound statement's values.
    pub async fn run<C>(
        &self,
        client: &mut C,
        command: &Command,
        parameters: Option<Vec<ScalarValue>>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = connection_of(client)?;
        let status = client.transaction_status();
        if status == TransactionStatus::Error
            && !matches!(
                command,
                Command::Commit | Command::Rollback | Command::RollbackToSavepoint
            )
        {
            return Err(refused(
                IN_FAILED_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        match command {
            Command::Empty => Ok(Response::EmptyQuery),
            Command::Begin => {
                if status == TransactionStatus::Transaction {
                    notice(
                        client,
                        "WARNING",
                        "25001",
                        "there is already a transaction in progress",
                    )
                    .await?;
                    return Ok(Response::Execution(Tag::new("BEGIN")));
                }
                connection.end_block();
                Ok(Response::TransactionStart(Tag::new("BEGIN")))
            }
            Command::Commit => {
                connection.end_block();
                let tag = if status == TransactionStatus::Error {
                    "ROLLBACK"
                } else {
                    "COMMIT"
                };
                Ok(Response::TransactionEnd(Tag::new(tag)))
            }
            Command::Rollback => {
                if connection.end_block() {
                    notice(client, "WARNING", "01000", WRITES_STAY).await?;
                }
                Ok(Response::TransactionEnd(Tag::new("ROLLBACK")))
            }
            Command::Savepoint(tag) => Ok(Response::Execution(Tag::new(tag))),
            Command::RollbackToSavepoint => {
                if connection.end_block() {
                    notice(client, "WARNING", "01000", WRITES_STAY).await?;
                }
                // Out of a failed block, as Postgres leaves it; the block
                // itself is over here, since there was none to keep.
                Ok(match status {
                    TransactionStatus::Error => Response::TransactionEnd(Tag::new("ROLLBACK")),
                    _ => Response::Execution(Tag::new("ROLLBACK")),
                })
            }
            Command::SetRole => Err(refused(
                "0A000",
                "SET ROLE and SET SESSION AUTHORIZATION are not supported: log in as the user",
            )),
            Command::SetTransaction => Ok(Response::Execution(Tag::new("SET"))),
            Command::Set { name, value } => {
                self.set(client, &connection, name, value).await?;
                Ok(Response::Execution(Tag::new("SET")))
            }
            Command::Show(name) => show(&connection.settings(), name, format),
            Command::Discard => {
                connection.change_settings(|settings| {
                    *settings = Settings::for_user(
                        &connection.identity.name,
                        connection.identity.role == lakehouse_core::auth::Role::Admin,
                    );
                });
                Ok(Response::Execution(Tag::new(command.tag())))
            }
            Command::Deallocate(name) => {
                if let Some(name) = name {
                    client.portal_store().rm_statement(name);
                }
                Ok(Response::Execution(Tag::new(command.tag())))
            }
            Command::Sql(sql) => {
                let in_block = status == TransactionStatus::Transaction;
                self.sql(&connection, sql, parameters, format, in_block)
                    .await
            }
        }
    }

    async fn set<C>(
        &self,
        client: &mut C,
        connection: &Connection,
        name: &str,
        value: &str,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let change = connection
            .settings()
            .check(name, value)
            .map_err(|message| {
                let code = if message.starts_with("unrecognized") {
                    UNDEFINED_OBJECT
                } else {
                    INVALID_PARAMETER_VALUE
                };
                refused(code, message)
            })?;
        if let Change::Schema(schema) = &change
            && !self.catalog.schema_exists(schema)
        {
            return Err(refused(
                "3F000",
                format!("schema \"{schema}\" does not exist (CREATE SCHEMA {schema} first)"),
            ));
        }
        let shown = connection.change_settings(|settings| {
            settings.apply(name, value, change);
            settings.show(name).unwrap_or_default()
        });
        if let Some(reported) = Settings::reported_name(name) {
            client
                .send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    reported.to_string(),
                    shown,
                )))
                .await?;
        }
        Ok(())
    }

    /// A statement's start: its request permit, the connection's settings
    /// now, its bound, and its plan (with `parameters` bound), planned in a
    /// query slot.
    async fn start(
        &self,
        connection: &Connection,
        sql: &str,
        parameters: Option<Vec<ScalarValue>>,
    ) -> PgWireResult<Started> {
        let permit = self.admit(connection)?;
        let settings = connection.settings();
        let mut bound = Bound::new(connection, &settings, self.serving.timeout());
        let serving = &self.serving;
        let plan = bound
            .run(async {
                let (_slot, _) = serving.query_slot().await?;
                with_settings(settings.engine(), async {
                    let plan = self.engine.plan_in(&self.session, sql).await?;
                    match parameters {
                        Some(values) => self.engine.bind_values(&plan, values),
                        None => Ok(plan),
                    }
                })
                .await
            })
            .await?;
        Ok(Started {
            permit,
            settings,
            bound,
            plan,
        })
    }

    /// Sorts a plan into a query or an update under the connection's
    /// settings (bare table names resolve in its schema).
    async fn classify(&self, settings: &Settings, plan: LogicalPlan) -> PgWireResult<Planned> {
        with_settings(settings.engine(), async { self.engine.classify(plan) })
            .await
            .map_err(|e| pg_error(&e))
    }

    fn admit(&self, connection: &Connection) -> PgWireResult<RequestPermit> {
        self.serving
            .admit(&connection.identity.name)
            .map_err(|e| pg_error(&e))
    }

    /// Plans `sql` (binding `parameters`), then writes at once or answers
    /// a query whose rows run when read.
    ///
    /// Boxed here: its future nests too deep to lay out inside pgwire's
    /// generic connection loop in another crate.
    fn sql<'a>(
        &'a self,
        connection: &'a Connection,
        sql: &'a str,
        parameters: Option<Vec<ScalarValue>>,
        format: &'a Format,
        in_block: bool,
    ) -> BoxFuture<'a, PgWireResult<Response>> {
        self.planned_sql(connection, sql, parameters, format, in_block)
            .boxed()
    }

    async fn planned_sql(
        &self,
        connection: &Connection,
        sql: &str,
        parameters: Option<Vec<ScalarValue>>,
        format: &Format,
        in_block: bool,
    ) -> PgWireResult<Response> {
        let Started {
            permit,
            settings,
            mut bound,
            plan,
        } = self.start(connection, sql, parameters).await?;
        let serving = &self.serving;
        match self.classify(&settings, plan).await? {
            Planned::Update(update) => {
                check_update(&connection.identity, &update).map_err(|e| pg_error(&e))?;
                let tag = UpdateTag::of(&update);
                let user = connection.identity.name.clone();
                let rows = bound
                    .run(async {
                        let (_slot, _) = serving.query_slot().await?;
                        acting_as(
                            user,
                            with_settings(settings.engine(), self.engine.execute_update(update)),
                        )
                        .await
                    })
                    .await?;
                connection.wrote(in_block);
                drop(permit);
                Ok(Response::Execution(tag.with(rows)))
            }
            Planned::Query(plan) => {
                let schema = self.engine.output_schema(&plan);
                let options = Arc::new(FormatOptions::from_client_metadata(
                    &settings.format_metadata(),
                ));
                let fields = Arc::new(arrow_schema_to_pg_fields(&schema, format, Some(options))?);
                let rows = self.rows(plan, schema, fields.clone(), settings, permit, bound);
                Ok(Response::Query(QueryResponse::new(fields, rows)))
            }
        }
    }

    /// The rows of a planned query, run when first read: a slot, then the
    /// engine's batches (cast to the announced types, under the row
    /// limit), stopped by the deadline or a cancel request; the permit
    /// and slot are held until the rows end or the reader goes away.
    fn rows(
        &self,
        plan: LogicalPlan,
        schema: SchemaRef,
        fields: Arc<Vec<FieldInfo>>,
        settings: Settings,
        permit: RequestPermit,
        bound: Bound,
    ) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
        let engine = self.engine.clone();
        let slots = self.serving.slots().clone();
        let (deadline, limit) = (bound.deadline, bound.limit);
        let start = async move {
            let slot = slots.acquire(deadline, limit).await?;
            let stream = with_settings(settings.engine(), engine.execute_query(plan)).await?;
            Ok::<_, Error>((slot, stream))
        };
        let batches = futures::stream::once(start)
            .map_ok(move |(slot, stream)| {
                let target = schema.clone();
                stream
                    .map_err(Error::from_datafusion)
                    .and_then(move |batch| {
                        futures::future::ready(cast_batch(&batch, &target).map_err(Error::from))
                    })
                    .inspect(move |_| {
                        let _slot = &slot;
                    })
            })
            .try_flatten();
        let batches = self.serving.limit_rows(batches);
        until_stopped(batches, permit, bound).flat_map(move |batch| match batch {
            Ok(batch) => {
                futures::stream::iter(encode_recordbatch(fields.clone(), batch)).left_stream()
            }
            Err(error) => futures::stream::once(futures::future::ready(Err(error))).right_stream(),
        })
    }
}

/// `batches` until they end, the deadline passes or a cancel request
/// comes (then one error), holding `permit` until then.
fn until_stopped(
    batches: impl Stream<Item = Result<RecordBatch>> + Send + 'static,
    permit: RequestPermit,
    bound: Bound,
) -> impl Stream<Item = PgWireResult<RecordBatch>> + Send + 'static {
    futures::stream::unfold(
        (Box::pin(batches), bound, Some(permit)),
        |(mut batches, mut bound, permit)| async move {
            permit.as_ref()?;
            let deadline = bound.deadline;
            let item = tokio::select! {
                item = tokio::time::timeout_at(deadline, batches.next()) => match item {
                    Ok(None) => return None,
                    Ok(Some(item)) => item.map_err(|e| pg_error(&e)),
                    Err(_) => Err(timed_out(bound.limit)),
                },
                () = bound.cancel.cancelled() => Err(cancelled()),
            };
            let permit = if item.is_ok() { permit } else { None };
            Some((item, (batches, bound, permit)))
        },
    )
}

/// The command tag of a statement that changes data.
struct UpdateTag {
    command: &'static str,
    counts_rows: bool,
}

impl UpdateTag {
    fn of(update: &Update) -> Self {
        let (command, counts_rows) = match update {
            Update::CreateTable { .. } => ("SELECT", true),
            Update::Insert { .. } => ("INSERT", true),
            Update::Merge(_) => ("MERGE", true),
            Update::ChangeRows(change) => (
                if change.operation.as_str().eq_ignore_ascii_case("delete") {
                    "DELETE"
                } else {
                    "UPDATE"
                },
                true,
            ),
            Update::DropTable { .. } => ("DROP TABLE", false),
            Update::CreateSchema { .. } => ("CREATE SCHEMA", false),
            Update::CreateView { .. } => ("CREATE VIEW", false),
            Update::DropView { .. } => ("DROP VIEW", false),
            Update::AlterTable(_) => ("ALTER TABLE", false),
        };
        Self {
            command,
            counts_rows,
        }
    }

    fn with(&self, rows: u64) -> Tag {
        match (self.command, self.counts_rows) {
            // CREATE TABLE without AS wrote nothing.
            ("SELECT", true) if rows == 0 => Tag::new("CREATE TABLE"),
            ("INSERT", _) => Tag::new("INSERT").with_oid(0).with_rows(rows as usize),
            (command, true) => Tag::new(command).with_rows(rows as usize),
            (command, false) => Tag::new(command),
        }
    }
}

/// `SHOW name` (`SHOW ALL`: every setting).
fn show(settings: &Settings, name: &str, format: &Format) -> PgWireResult<Response> {
    let key = setting_key(name);
    let columns = if key == "all" {
        let (names, values) = settings.all().into_iter().unzip();
        vec![names, values]
    } else {
        let value = settings
            .show(key)
            .map_err(|message| refused(UNDEFINED_OBJECT, message))?;
        vec![vec![value]]
    };
    rows_of(show_columns(name), columns, format)
}

/// The setting a `SHOW` names, for the spellings with spaces.
fn setting_key(name: &str) -> &str {
    match name {
        "transaction isolation level" => "transaction_isolation",
        "time zone" => "timezone",
        "session authorization" => "session_authorization",
        other => other,
    }
}

/// A `SHOW` answer: text columns of `schema`, tagged `SHOW`.
fn rows_of(
    schema: SchemaRef,
    columns: Vec<Vec<String>>,
    format: &Format,
) -> PgWireResult<Response> {
    let columns = columns
        .into_iter()
        .map(|values| Arc::new(StringArray::from(values)) as arrow::array::ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema, columns).map_err(|e| pg_error(&Error::from(e)))?;
    let fields = Arc::new(arrow_schema_to_pg_fields(&batch.schema(), format, None)?);
    let rows = futures::stream::iter(encode_recordbatch(fields.clone(), batch));
    let mut response = QueryResponse::new(fields, rows);
    response.set_command_tag("SHOW");
    Ok(Response::Query(response))
}

/// The columns `SHOW name` answers (for Describe too).
pub fn show_columns(name: &str) -> SchemaRef {
    let name = setting_key(name);
    let fields = if name == "all" {
        vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("setting", DataType::Utf8, false),
        ]
    } else {
        vec![Field::new(name, DataType::Utf8, false)]
    };
    Arc::new(Schema::new(fields))
}

/// Sends a notice (a warning the statement goes on after).
async fn notice<C>(client: &mut C, severity: &str, code: &str, message: &str) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let info = ErrorInfo::new(severity.into(), code.into(), message.into());
    client
        .send(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
            info,
        )))
        .await?;
    Ok(())
}

/// The Postgres types of a statement's parameters (`unknown` where the
/// engine cannot tell, so the client sends text).
pub fn parameter_types(described: &Described) -> PgWireResult<Vec<Type>> {
    described
        .parameters
        .iter()
        .map(|t| match t {
            DataType::Null => Ok(Type::UNKNOWN),
            other => into_pg_type(other),
        })
        .collect()
}
