//! Wiring: storage, catalog, ingest, query engine and the Flight service,
//! bound to a listener and served until shutdown.
//!
//! Shutdown is graceful: the listener stops accepting, in-flight requests
//! run to completion, and since a version only exists once its manifest is
//! written, stopping can never leave a half-made version.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tracing::{info, warn};

use crate::config::{ServerConfig, TlsFiles};
use lakehouse_cluster::ClusterPlanner;
use lakehouse_core::auth::Authenticator;
use lakehouse_core::catalog::Catalog;
use lakehouse_core::storage::Storage;
use lakehouse_engine::actions::{Actions, server_actions};
use lakehouse_engine::error::Error;
use lakehouse_engine::extensions::Extensions;
use lakehouse_engine::ingest::Ingest;
use lakehouse_engine::query::QueryEngine;
use lakehouse_engine::vectors::{Searcher, VectorTables};
use lakehouse_ext_embed::Models;
use lakehouse_extension::Registry;
use lakehouse_extension::{EmbeddingService, Host};
use lakehouse_flight::Limits;
use lakehouse_flight::{FlightSql, Gate, LakehouseFlightService};
use lakehouse_http::{self, Api, Probes};
use lakehouse_postgres::{PostgresConfig, PostgresPort};
use lakehouse_serving::Serving;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: {source}{}", if hint.is_empty() { String::new() } else { format!(" ({hint})") })]
    Bind {
        address: String,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the extensions: {0}")]
    Extensions(#[source] Error),
    #[error("cannot start on storage {location}: {source}")]
    Storage {
        location: String,
        #[source]
        source: Error,
    },
    #[error("cannot set up the embedding models: {0}")]
    Models(#[source] lakehouse_ext_embed::EmbedError),
    #[error("authentication configuration: {0}")]
    Auth(String),
    #[error(
        "refusing to serve on {address} without authentication: anyone who can reach it could read \
         and change every table. Add users or tokens ([auth] in the config file; `lakehouse user add`), \
         listen on a loopback address, or pass --allow-unauthenticated"
    )]
    Unprotected { address: SocketAddr },
    #[error("cannot read the TLS {what} {path}: {source}")]
    TlsFile {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the Postgres port: {0}")]
    Postgres(#[source] Error),
    #[error("the HTTP port cannot serve TLS: {0}")]
    HttpTls(#[from] lakehouse_http::TlsError),
    #[error("the Flight server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// HTTP/2 flow-control window of one call, and of one connection.
const STREAM_WINDOW_BYTES: u32 = 8 * 1024 * 1024;
const CONNECTION_WINDOW_BYTES: u32 = 32 * 1024 * 1024;
/// How often an idle connection's peer is pinged (HTTP/2 PING and TCP
/// keepalive), and how long its answer may take before the connection is
/// closed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Largest HTTP/2 frame this server accepts (the peer's own setting bounds
/// what it sends).
const MAX_FRAME_BYTES: u32 = 1024 * 1024;

/// A server that is bound and loaded, ready to serve.
pub struct Server {
    listener: TcpListener,
    /// The HTTP port's listener (probes and API), unless turned off.
    http: Option<HttpPort>,
    /// The Postgres port and its listener, when turned on.
    postgres: Option<(TcpListener, PostgresPort)>,
    service: LakehouseFlightService,
    /// Authenticates every call before its body is read, when
    /// authentication is on.
    gate: Option<Gate>,
    tls: Option<ServerTlsConfig>,
    max_message_bytes: usize,
    limits: Limits,
    catalog: Arc<Catalog>,
    catalog_refresh: Option<Duration>,
    shutdown_grace: Duration,
}

fn read_tls_file(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::TlsFile {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// The same certificate, key and client CA for the HTTP and Postgres ports.
fn http_tls_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let client_ca = files
        .client_ca
        .as_deref()
        .map(|ca| read_tls_file("client CA", ca))
        .transpose()?;
    Ok(lakehouse_http::server_config(
        &read_tls_file("certificate", &files.cert)?,
        &read_tls_file("key", &files.key)?,
        client_ca.as_deref(),
    )?)
}

/// The HTTP port before it serves: its listener, TLS (as Flight's), the
/// probes and the API.
type HttpPort = (
    TcpListener,
    Option<Arc<rustls::ServerConfig>>,
    Probes,
    Arc<Api>,
);

/// Reads the PEM files of `files` into tonic's TLS configuration, with
/// ring as the process's TLS crypto provider.
fn tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, ServeError> {
    // Already installed (by an earlier server or a client in this process)
    // is fine: it is the same provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let identity = Identity::from_pem(
        read_tls_file("certificate", &files.cert)?,
        read_tls_file("key", &files.key)?,
    );
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &files.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read_tls_file("client CA", ca)?));
    }
    Ok(tls)
}

/// Reads other servers' commits every `every`, for as long as the process
/// runs; a failed refresh is logged and tried again next time.
async fn refresh_periodically(catalog: Arc<Catalog>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = catalog.refresh().await {
            warn!(error = %e, "catalog refresh failed; trying again in {} s", every.as_secs());
        }
    }
}

/// Binds `address`; `in_use` says what to do when it is taken.
async fn bind(address: &str, in_use: &'static str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Bind {
            address: address.to_string(),
            hint: if source.kind() == std::io::ErrorKind::AddrInUse {
                in_use
            } else {
                ""
            },
            source,
        })
}

/// Refuses a port reachable beyond this machine without authentication
/// (unless allowed, then with a warning).
fn refuse_unprotected(
    listener: &TcpListener,
    given: &str,
    protected: bool,
    allowed: bool,
) -> Result<(), ServeError> {
    let address = listener.local_addr().map_err(|source| ServeError::Bind {
        address: given.to_string(),
        hint: "",
        source,
    })?;
    if protected || address.ip().is_loopback() {
        return Ok(());
    }
    if !allowed {
        return Err(ServeError::Unprotected { address });
    }
    warn!(%address, "serving without authentication on a non-loopback address (--allow-unauthenticated)");
    Ok(())
}

/// Every extension compiled into this server, in a fixed order.
pub fn with_default_extensions() -> Registry {
    let mut registry = Registry::new();
    let built_in = [
        registry.register(lakehouse_ext_vector::Vector),
        registry.register(lakehouse_ext_embed::Embed),
        registry.register(lakehouse_ext_example::Example),
    ];
    for registered in built_in {
        registered.expect("built-in extensions have distinct, valid names");
    }
    registry
}

/// The server without its network: storage, the catalog, ingest and the
/// query engine with its extensions installed. [`Server::start`] serves
/// it; benchmarks open it in-process to measure what Flight adds.
pub struct Core {
    pub storage: Storage,
    pub catalog: Arc<Catalog>,
    pub ingest: Ingest,
    pub engine: QueryEngine,
    pub extensions: Extensions,
    /// Every DoAction verb, the server's own and the extensions'.
    pub actions: Arc<Actions>,
    /// The configured embedding models.
    pub embeddings: Arc<dyn EmbeddingService>,
}

impl Core {
    /// Opens storage, loads the catalog, the embedding models and the
    /// extensions.
    pub async fn open(config: &ServerConfig) -> Result<Self, ServeError> {
        let storage_error = |source: Error| ServeError::Storage {
            location: config.storage.clone(),
            source,
        };
        let storage = Storage::open(&config.storage, config.storage_timeout)
            .await
            .map_err(|e| storage_error(e.into()))?;
        let catalog = Arc::new(
            Catalog::load(storage.store.clone())
                .await
                .map_err(|e| storage_error(e.into()))?
                .with_local_dir(storage.local_dir.clone()),
        );
        let vectors = Arc::new(VectorTables::new(
            &storage,
            config.vector_index_cache_bytes,
            config.vector_graph_memory_bytes,
        ));
        let models = Arc::new(Models::new(config.models.clone()).map_err(ServeError::Models)?);
        models
            .check_dimensions()
            .await
            .map_err(ServeError::Models)?;
        models.warm_up();
        let models: Arc<dyn EmbeddingService> = models;
        let host = Host {
            vectors: Some(Arc::new(Searcher::new(catalog.clone(), vectors.clone()))),
            embeddings: Some(models.clone()),
        };
        {
            let (vectors, catalog) = (vectors.clone(), catalog.clone());
            tokio::spawn(async move { vectors.prewarm(&catalog).await });
        }
        let ingest = Ingest::new(catalog.clone(), config.layout.clone())
            .with_vectors(vectors.clone())
            .with_embeddings(Some(models.clone()));
        let mut engine = QueryEngine::new(
            &storage,
            catalog.clone(),
            ingest.clone(),
            vectors,
            config.query.clone(),
        )
        .map_err(storage_error)?;
        if let Some(scheduler) = &config.cluster_scheduler {
            info!(%scheduler, "queries that can be distributed run on the Ballista cluster");
            engine = engine.with_query_planner(Arc::new(ClusterPlanner::new(scheduler)));
        }
        let extensions = Extensions::install(
            &with_default_extensions(),
            &config.extensions,
            &host,
            engine.session(),
        )
        .map_err(ServeError::Extensions)?;
        let actions = Arc::new(
            Actions::new(
                server_actions(&ingest, &extensions, engine.accelerated()),
                &extensions,
            )
            .map_err(ServeError::Extensions)?,
        );
        info!(
            enabled = %extensions
                .listed()
                .iter()
                .filter(|e| e.enabled)
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            "extensions installed"
        );
        Ok(Self {
            storage,
            catalog,
            ingest,
            engine,
            extensions,
            actions,
            embeddings: models,
        })
    }
}

impl Server {
    /// Opens the [`Core`] and binds the listener.
    pub async fn start(config: &ServerConfig) -> Result<Self, ServeError> {
        let Core {
            storage,
            catalog,
            ingest,
            engine,
            actions,
            embeddings,
            ..
        } = Core::open(config).await?;
        let auth = Authenticator::new(&config.auth)
            .map_err(ServeError::Auth)?
            .map(Arc::new);
        let protected = auth.is_some();
        let gate = auth.clone().map(Gate::new);
        let tls = config.tls.as_ref().map(tls_config).transpose()?;
        let catalog_handle = catalog.clone();
        let serving = Serving::new(&config.limits.serving, protected);
        let engine = Arc::new(engine);
        let api = Arc::new(Api {
            engine: engine.clone(),
            catalog: catalog.clone(),
            auth: auth.clone(),
            serving: serving.clone(),
            ingest: ingest.clone(),
            max_upload_bytes: config.limits.max_upload_bytes,
            embeddings,
            actions: actions.clone(),
        });
        // The HTTP and Postgres ports serve Flight's certificate: read once.
        let side_tls = config.tls.as_ref().map(http_tls_config).transpose()?;
        let postgres = match &config.postgres_listen {
            None => None,
            Some(pg_address) => {
                let pg_listener = bind(
                    pg_address,
                    "the Postgres port; choose another with --postgres-listen, or turn it off",
                )
                .await?;
                refuse_unprotected(
                    &pg_listener,
                    pg_address,
                    protected,
                    config.allow_unauthenticated,
                )?;
                let port = PostgresPort::new(PostgresConfig {
                    engine: engine.clone(),
                    catalog: catalog.clone(),
                    serving: serving.clone(),
                    auth: auth.clone(),
                    tls: side_tls.clone(),
                    max_connections: config.max_postgres_connections,
                })
                .map_err(ServeError::Postgres)?;
                Some((pg_listener, port))
            }
        };
        let service = FlightSql::new(engine, catalog, ingest, actions, &config.limits, serving)
            .into_service(auth, &config.limits);
        let listener = bind(
            &config.listen,
            "is another server running there? choose another address with --listen",
        )
        .await?;
        refuse_unprotected(
            &listener,
            &config.listen,
            protected,
            config.allow_unauthenticated,
        )?;
        let http = match &config.http_listen {
            None => None,
            Some(http_address) => {
                let http_listener = bind(
                    http_address,
                    "the HTTP port; choose another with --http-listen, or turn it off",
                )
                .await?;
                let probes = Probes::new(storage.store.clone(), storage.location.clone());
                Some((http_listener, side_tls, probes, api))
            }
        };
        info!(storage = %storage.location, tls = tls.is_some(), authentication = protected, "storage opened");
        Ok(Self {
            listener,
            http,
            postgres,
            service,
            gate,
            tls,
            max_message_bytes: config.max_message_bytes,
            limits: config.limits.clone(),
            catalog: catalog_handle,
            catalog_refresh: config.catalog_refresh,
            shutdown_grace: config.shutdown_grace,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where the Postgres port answers, when on.
    pub fn postgres_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.postgres
            .as_ref()
            .map(|(listener, _)| listener.local_addr())
    }

    /// Where the probes (`/health`, `/ready`, `/metrics`) and the API
    /// (`/v1/...`) answer, unless turned off.
    pub fn http_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.http
            .as_ref()
            .map(|(listener, ..)| listener.local_addr())
    }

    /// Serves until `shutdown` completes, then drains in-flight requests for
    /// at most the configured grace period; idle client connections (a BI
    /// tool left open) cannot hold the process up past it.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let service = FlightServiceServer::new(self.service)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes);
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        // The probes answer until the Flight server has drained, so that
        // `/ready` can say "stopping" meanwhile.
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let probes = self.http.map(|(listener, tls, probes, api)| {
            let served = probes.clone();
            tokio::spawn(async move {
                let drained = async move {
                    let _ = drained_rx.await;
                };
                if let Err(e) =
                    lakehouse_http::serve(listener, tls, served, Some(api), drained).await
                {
                    warn!(error = %e, "the HTTP port stopped");
                }
            });
            probes
        });
        if let Some((listener, port)) = self.postgres {
            let mut stopped = stop_rx.clone();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = stopped.changed().await;
                };
                if let Err(e) = port.serve(listener, stop).await {
                    warn!(error = %e, "the Postgres port stopped");
                }
            });
        }
        if let Some(every) = self.catalog_refresh {
            tokio::spawn(refresh_periodically(self.catalog.clone(), every));
        }
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = self.tls {
            builder = builder.tls_config(tls)?;
        }
        let server = builder
            // Windows large enough that an upload is not throttled to a
            // round trip per 64 KiB (the HTTP/2 default).
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            // Uploads in frames of up to 1 MiB instead of 16 KiB, as the
            // Rust client accepts results: a task wake-up per frame (on a
            // 1 GB download, 23,600 context switches per scan, now 3,200).
            .max_frame_size(MAX_FRAME_BYTES)
            // Peers that stop answering (a machine gone, a cable pulled)
            // are found and their connections, and whatever their calls
            // hold, closed.
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .tcp_keepalive(Some(KEEPALIVE_INTERVAL))
            .trace_fn(|request| tracing::info_span!("rpc", method = %request.uri().path()))
            .layer(tower::util::option_layer(self.gate))
            .layer(tower::util::MapRequestLayer::new(
                lakehouse_flight::watch_upload(self.limits.max_upload_bytes),
            ))
            .add_service(service)
            // Nagle's algorithm off on every accepted connection: with it, a
            // small answer waited for the client's delayed ACK, 40 ms twice
            // per query (`serve_with_incoming` ignores the builder's
            // `tcp_nodelay`, so it is set on the incoming stream).
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                async move {
                    let _ = stop_rx.changed().await;
                },
            );
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => result?,
            () = shutdown => {
                if let Some(probes) = &probes {
                    probes.stopping();
                }
                let _ = stop_tx.send(true);
                info!(grace_secs = self.shutdown_grace.as_secs(), "stopped accepting; draining in-flight requests");
                match tokio::time::timeout(self.shutdown_grace, &mut server).await {
                    Ok(result) => result?,
                    Err(_) => warn!("grace period over; closing the connections still open"),
                }
            }
        }
        let _ = drained_tx.send(());
        info!("server stopped");
        Ok(())
    }
}
