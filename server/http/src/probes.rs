//! The probes: `/health`, `/ready` and `/metrics`.
//!
//! Load balancers and orchestrators probe plain HTTP, not gRPC, so these
//! live on their own small port beside Flight SQL. `/health` says the
//! process answers; `/ready` that it can serve (the catalog is loaded, which
//! it is before this port opens, the store answers, and it is not
//! stopping); `/metrics` is Prometheus' text format.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use object_store::ObjectStore;
use object_store::path::Path;

use lakehouse_core::metrics::metrics;
use tracing::warn;

/// How long `/ready` waits for the store before calling it unreachable.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the probes look at.
#[derive(Clone)]
pub struct Probes {
    store: Arc<dyn ObjectStore>,
    location: String,
    stopping: Arc<AtomicBool>,
}

impl Probes {
    pub fn new(store: Arc<dyn ObjectStore>, location: String) -> Self {
        Self {
            store,
            location,
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on `/ready` answers 503: the server is draining.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }
}

/// The probe routes.
pub fn router(probes: Probes) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(probes)
}

async fn ready(State(probes): State<Probes>) -> impl IntoResponse {
    if probes.stopping.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".to_string());
    }
    let catalog = Path::from("_catalog");
    let probe = probes.store.list_with_delimiter(Some(&catalog));
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, probe).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n".to_string()),
        // The port answers anyone: the details (location, the store's
        // error) go to the log, the answer says only what is wrong.
        Ok(Err(e)) => {
            warn!(storage = %probes.location, error = %e, "/ready: the storage is unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unreachable (see the server log)\n".to_string(),
            )
        }
        Err(_) => {
            warn!(storage = %probes.location, seconds = STORE_PROBE_TIMEOUT.as_secs(), "/ready: the storage did not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "storage did not answer within {} s (see the server log)\n",
                    STORE_PROBE_TIMEOUT.as_secs()
                ),
            )
        }
    }
}

async fn render_metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics().render(),
    )
}
