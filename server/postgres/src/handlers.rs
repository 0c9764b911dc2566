//! pgwire's handler traits over [`Statements`]: the simple query protocol
//! (psql), the extended one (Parse, Bind, Describe, Execute: psycopg,
//! JDBC, asyncpg), cancel requests, and errors logged as they leave.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ScalarValue;
use futures::Sink;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ErrorHandler, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::cancel::CancelRequest;

use crate::commands::Command;
use crate::connection::Connections;
use crate::errors::refused;
use crate::startup::Startup;
use crate::statements::{
    Described, Prepared, Statements, connection_of, parameter_types, show_columns,
};
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, df::deserialize_parameters, into_pg_type};

/// The handlers of one connection: the shared statements and its own
/// startup (which knows whether it is over the connection limit).
pub struct Handlers {
    pub statements: Arc<Queries>,
    pub startup: Arc<Startup>,
    pub cancels: Arc<Cancels>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.statements.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.statements.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LoggedErrors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancels.clone()
    }
}

/// Cancel requests, by process id and key.
pub struct Cancels(pub Arc<Connections>);

#[async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.0.cancel(request.pid, &request.secret_key);
    }
}

/// Logs each error sent, with who and what.
struct LoggedErrors;

impl ErrorHandler for LoggedErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        let user = crate::statements::connection_of(client)
            .ok()
            .map(|c| c.identity.name.clone());
        tracing::info!(user = user.as_deref().unwrap_or("-"), client = %client.socket_addr(),
            error = %error, "postgres statement failed");
    }
}

/// The query handlers over the shared [`Statements`].
pub struct Queries {
    statements: Arc<Statements>,
    parser: Arc<Parser>,
}

impl Queries {
    pub fn new(statements: Statements) -> Self {
        let statements = Arc::new(statements);
        Self {
            parser: Arc::new(Parser(statements.clone())),
            statements,
        }
    }
}

/// The extended protocol's Parse: reads and plans a statement.
pub struct Parser(Arc<Statements>);

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = connection_of(client)?;
        let mut responses = Vec::new();
        for command in self.statements.read(&connection, query) {
            match self
                .statements
                .run(client, &command, None, &Format::UnifiedText)
                .await
            {
                Ok(response) => responses.push(response),
                // Postgres stops at the first failing statement of a text;
                // the answers before it are still sent.
                Err(error) => {
                    responses.push(Response::Error(Box::new(ErrorInfo::from(error))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Prepared>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let connection = connection_of(client)?;
        let mut commands = self.0.read(&connection, sql);
        if commands.len() > 1 {
            return Err(refused(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let command = commands.pop().unwrap_or(Command::Empty);
        let described = match &command {
            Command::Sql(sql) => Some(self.0.describe(&connection, sql).await?),
            Command::Show(name) => Some(Described {
                parameters: Vec::new(),
                columns: Some(show_columns(name)),
            }),
            _ => None,
        };
        Ok(Prepared { command, described })
    }

    fn get_parameter_types(&self, statement: &Prepared) -> PgWireResult<Vec<Type>> {
        statement
            .described
            .as_ref()
            .map_or(Ok(Vec::new()), parameter_types)
    }

    fn get_result_schema(
        &self,
        statement: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match statement
            .described
            .as_ref()
            .and_then(|d| d.columns.as_ref())
        {
            Some(columns) => {
                arrow_schema_to_pg_fields(columns, format.unwrap_or(&Format::UnifiedText), None)
            }
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let parameters = match &prepared.described {
            Some(described) if portal.parameter_len() > 0 => Some(values(portal, described)?),
            _ => None,
        };
        self.statements
            .run(
                client,
                &prepared.command,
                parameters,
                &portal.result_column_format,
            )
            .await
    }
}

/// A portal's parameter values: each as the client typed it, else as the
/// engine expects it, else as text (which the engine casts).
fn values(portal: &Portal<Prepared>, described: &Described) -> PgWireResult<Vec<ScalarValue>> {
    let count = portal.parameter_len();
    let inferred: Vec<Option<&arrow::datatypes::DataType>> = (0..count)
        .map(|i| described.parameters.get(i).filter(|t| !t.is_null()))
        .collect();
    let types = (0..count)
        .map(|i| {
            let given = portal
                .statement
                .parameter_types
                .get(i)
                .cloned()
                .flatten()
                .filter(|t| *t != Type::UNKNOWN);
            let expected = inferred[i].and_then(|t| into_pg_type(t).ok());
            Some(given.or(expected).unwrap_or(Type::TEXT))
        })
        .collect();
    let statement = Arc::new(StoredStatement::new(
        portal.statement.id.clone(),
        portal.statement.statement.clone(),
        types,
    ));
    let mut typed = Portal::new_cursor(portal.name.clone(), statement);
    typed.parameters = portal.parameters.clone();
    typed.parameter_format = portal.parameter_format.clone();
    let values = deserialize_parameters(&typed, &inferred)?;
    Ok(match values {
        datafusion::common::ParamValues::List(list) => list.into_iter().map(|v| v.value).collect(),
        datafusion::common::ParamValues::Map(map) => map.into_values().map(|v| v.value).collect(),
    })
}
