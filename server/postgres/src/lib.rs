//! The Postgres wire protocol port, for the tools that speak only
//! Postgres: psql, psycopg, SQLAlchemy (Superset), JDBC's Postgres driver
//! (DBeaver, Metabase, Tableau, Power BI), Grafana's Postgres source.
//!
//! Built on pgwire (the protocol), arrow-pg (Arrow results as Postgres
//! rows, parameters back to Arrow values) and datafusion-pg-catalog
//! (`pg_catalog` and the SQL rewrites tools' catalog queries need), the
//! crates of the datafusion-postgres project, at the release that pairs
//! with DataFusion 54. Statements go through the same engine, users,
//! roles, limits, timeouts and audit trail as Flight SQL: a
//! [`lakehouse_serving::Serving`] shared with the other ports.
//!
//! - [`startup`]: login (password or token), TLS required when
//!   configured, startup settings;
//! - [`commands`]: what a text asks for, statement by statement;
//! - [`statements`]: running them (the engine, permits, slots, timeouts,
//!   cancel);
//! - [`settings`]: `SET` and `SHOW`;
//! - [`connection`]: one connection and cancel requests;
//! - [`catalog`]: the session with `pg_catalog`;
//! - [`handlers`]: pgwire's traits over the above;
//! - [`errors`]: SQLSTATE codes.

// The statement futures (planning inside a timeout inside a cancel
// select) nest deeper than the default limit when their layout is computed.
#![recursion_limit = "256"]

mod catalog;
mod commands;
mod connection;
mod errors;
mod handlers;
mod settings;
mod startup;
mod statements;

use std::future::Future;
use std::sync::Arc;

use pgwire::api::RandomPidSecretKeyGenerator;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use connection::Connections;
use handlers::{Cancels, Handlers, Queries};
use lakehouse_core::auth::Authenticator;
use lakehouse_core::catalog::Catalog;
use lakehouse_engine::error::Result;
use lakehouse_engine::query::QueryEngine;
use lakehouse_serving::Serving;
use startup::Startup;
use statements::Statements;

/// What the port needs from the server.
pub struct PostgresConfig {
    pub engine: Arc<QueryEngine>,
    pub catalog: Arc<Catalog>,
    pub serving: Serving,
    pub auth: Option<Arc<Authenticator>>,
    /// The server's certificate: then only TLS connections are accepted.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections open at once, logged in or logging in.
    pub max_connections: usize,
}

/// The Postgres port, ready to serve.
pub struct PostgresPort {
    queries: Arc<Queries>,
    cancels: Arc<Cancels>,
    connections: Arc<Connections>,
    auth: Option<Arc<Authenticator>>,
    catalog: Arc<Catalog>,
    keys: Arc<RandomPidSecretKeyGenerator>,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
}

impl PostgresPort {
    /// Builds the port's session (the engine's, with `pg_catalog`): call
    /// once the extensions are installed, so their functions are in it.
    pub fn new(config: PostgresConfig) -> Result<Self> {
        let session = catalog::postgres_session(&config.engine)?;
        let connections = Arc::new(Connections::default());
        let tls = config.tls.map(|server| {
            let mut server = (*server).clone();
            server.alpn_protocols = vec![b"postgresql".to_vec()];
            TlsAcceptor::from(Arc::new(server))
        });
        Ok(Self {
            queries: Arc::new(Queries::new(Statements {
                engine: config.engine,
                session,
                catalog: config.catalog.clone(),
                serving: config.serving,
                parser: datafusion_pg_catalog::sql::PostgresCompatibilityParser::new(),
            })),
            cancels: Arc::new(Cancels(connections.clone())),
            connections,
            auth: config.auth,
            catalog: config.catalog,
            keys: Arc::new(RandomPidSecretKeyGenerator::default()),
            tls,
            max_connections: config.max_connections,
        })
    }

    /// Accepts connections on `listener` until `shutdown` completes; open
    /// connections end with the process.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let open = Arc::new(Semaphore::new(self.max_connections));
        tokio::pin!(shutdown);
        loop {
            let (socket, address) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!(%error, "the Postgres port could not accept a connection");
                        continue;
                    }
                },
                () = &mut shutdown => {
                    info!("the Postgres port stopped accepting");
                    return Ok(());
                }
            };
            let _ = socket.set_nodelay(true);
            let permit = open.clone().try_acquire_owned().ok();
            let over_limit = permit.is_none().then(|| {
                warn!(client = %address, max = self.max_connections, "postgres connection refused: too many open");
                format!(
                    "sorry, too many clients already: {} connections are open \
                     (max_postgres_connections)",
                    self.max_connections
                )
            });
            let handlers = Handlers {
                statements: self.queries.clone(),
                startup: Arc::new(Startup {
                    auth: self.auth.clone(),
                    catalog: self.catalog.clone(),
                    connections: self.connections.clone(),
                    keys: self.keys.clone(),
                    tls_required: self.tls.is_some(),
                    over_limit,
                }),
                cancels: self.cancels.clone(),
            };
            let tls = self.tls.clone();
            tokio::spawn(async move {
                if let Err(error) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                    info!(client = %address, %error, "postgres connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}
