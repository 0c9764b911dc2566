//! The HTTP port: the probes (`/health`, `/ready`, `/metrics`), the JSON
//! API under `/v1` (see [`api`]) and the web console at `/` that calls it.
//!
//! Load balancers and orchestrators probe plain HTTP, not gRPC; scripts,
//! notebooks without Arrow, curl and web apps call the API. All share one
//! port beside Flight SQL, over TLS when Flight is (see [`tls`]).

pub mod api;
mod console;
mod probes;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::ServerConfig;
use tokio::net::TcpListener;

pub use api::Api;
pub use probes::Probes;
pub use tls::{TlsError, server_config};

/// The address a request came from (failed logins are throttled by it).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, tls::TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, tls::TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// Serves the probes and, when given, the API and the console on
/// `listener` (over TLS with `tls`) until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    probes: Probes,
    api: Option<Arc<Api>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = probes::router(probes);
    if let Some(api) = api {
        app = app.merge(console::router()).merge(api::router(api));
    }
    let app = app.into_make_service_with_connect_info::<ClientAddr>();
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => {
            axum::serve(tls::TlsListener::new(listener, config)?, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
