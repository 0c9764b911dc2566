//! The HTTP port: the probes (`/health`, `/ready`, `/metrics`), the JSON
//! API under `/v1` (see [`api`]) and the web console at `/` that calls it.
//!
//! Load balancers and orchestrators probe plain HTTP, not gRPC; scripts,
//! notebooks without Arrow, curl and web apps call the API. Both share one
//! port beside Flight SQL.

pub mod api;
mod console;
mod probes;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use api::Api;
pub use probes::Probes;

/// Serves the probes and, when given, the API and the console on `listener` until
/// `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    probes: Probes,
    api: Option<Arc<Api>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = probes::router(probes);
    if let Some(api) = api {
        app = app.merge(console::router()).merge(api::router(api));
    }
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
