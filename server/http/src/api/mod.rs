//! The JSON API under `/v1`, for scripts, notebooks without Arrow, curl
//! and web apps: the same engine, catalog, credentials, roles and limits
//! as Flight SQL (one shared `lakehouse_serving::Serving`), errors as
//! problem documents, and an OpenAPI 3.1 document generated from the
//! handlers at `/v1/openapi.json`.
//!
//! Every request is logged when it ends (method, route, user, status,
//! time) and counted in `/metrics` by route and status.

mod actions;
mod caller;
mod ingest;
mod problem;
mod results;
mod sql;
mod tables;
mod vectors;

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use caller::AuditUser;
pub use caller::Caller;
use lakehouse_core::auth::Authenticator;
use lakehouse_core::catalog::Catalog;
use lakehouse_core::metrics::metrics;
use lakehouse_engine::actions::Actions;
use lakehouse_engine::ingest::Ingest;
use lakehouse_engine::query::QueryEngine;
use lakehouse_extension::EmbeddingService;
use lakehouse_serving::Serving;
pub use problem::Problem;

/// Largest JSON request body the API reads.
pub const MAX_JSON_BYTES: usize = 16 << 20;

/// What the API serves from.
pub struct Api {
    pub engine: Arc<QueryEngine>,
    pub catalog: Arc<Catalog>,
    /// `None` when authentication is off: every request is the anonymous
    /// admin, as on Flight.
    pub auth: Option<Arc<Authenticator>>,
    pub serving: Serving,
    pub ingest: Ingest,
    /// Largest upload body (`max_upload_mb`), as on Flight.
    pub max_upload_bytes: u64,
    /// The embedding models `/v1/embed` and text searches use.
    pub embeddings: Arc<dyn EmbeddingService>,
    /// Flight's actions, run by `/v1/actions/{name}`.
    pub actions: Arc<Actions>,
}

/// The routes under `/v1`.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/v1/sql", post(sql::sql))
        .route(
            "/v1/ingest/{table}",
            post(ingest::ingest).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/embed", post(vectors::embed))
        .route("/v1/vectors/index/{name}/add", post(vectors::add))
        .route("/v1/vectors/index/{name}/search", post(vectors::search))
        .route("/v1/tables", get(tables::list))
        .route("/v1/tables/{name}", get(tables::show))
        .route("/v1/tables/{name}/versions", get(tables::versions))
        .route("/v1/actions", get(actions::list))
        .route("/v1/actions/{name}", post(actions::run))
        .route("/v1/login", post(login))
        .route("/v1/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .route_layer(axum::middleware::from_fn(logged))
        .with_state(api)
}

/// The OpenAPI document of the routes above.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lakehouse HTTP API",
        description = "SQL, the catalog and ingest over HTTP: the same engine, credentials, roles and limits as the Flight SQL port.",
    ),
    paths(
        sql::sql,
        ingest::ingest,
        vectors::embed,
        vectors::add,
        vectors::search,
        tables::list,
        tables::show,
        tables::versions,
        actions::list,
        actions::run,
        login
    ),
    components(schemas(
        Problem,
        sql::SqlRequest,
        sql::SqlAnswer,
        sql::Rows,
        sql::Affected,
        ingest::Ingested,
        vectors::EmbedRequest,
        vectors::EmbedAnswer,
        vectors::AddRequest,
        vectors::Added,
        vectors::SearchRequest,
        vectors::Hits,
        vectors::Hit,
        tables::TableList,
        tables::TableEntry,
        tables::TableDetail,
        tables::ColumnInfo,
        tables::VersionList,
        tables::VersionEntry,
        actions::ActionList,
        actions::ActionInfo,
        LoggedIn,
    )),
    modifiers(&Credentials),
    tags(
        (name = "sql", description = "Run SQL"),
        (name = "ingest", description = "Load rows"),
        (name = "vectors", description = "Embeddings and vector indexes, as the old system's routes"),
        (name = "tables", description = "The catalog"),
        (name = "actions", description = "Flight's actions: indexes, vacuum, history, the extensions' actions"),
        (name = "auth", description = "Credentials"),
    )
)]
pub struct ApiDoc;

/// Bearer tokens and Basic credentials, as on Flight.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Who is logged in, and a bearer token for later requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedIn {
    pub user: String,
    /// `reader`, `writer` or `admin`.
    pub role: String,
    /// A signed token to send as `Authorization: Bearer ...`; none when
    /// authentication is off.
    pub token: Option<String>,
}

/// Checks the request's credentials (Basic user and password, or a bearer
/// token) and answers a fresh bearer token, as Flight's Handshake does.
#[utoipa::path(
    post,
    path = "/v1/login",
    tag = "auth",
    responses(
        (status = 200, description = "The caller, and a token", body = LoggedIn),
        (status = 401, description = "No or wrong credentials, or too many failed logins", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests in flight", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("basic" = []), ("bearer" = []))
)]
async fn login(State(api): State<Arc<Api>>, caller: Caller) -> Json<LoggedIn> {
    let identity = caller.identity;
    let token = api.auth.as_ref().map(|auth| auth.issue_token(&identity));
    tracing::info!(user = %identity.name, role = %identity.role, "logged in (HTTP)");
    Json(LoggedIn {
        user: identity.name,
        role: identity.role.to_string(),
        token,
    })
}

async fn not_found() -> Problem {
    Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such route; the API's routes are listed at /v1/openapi.json",
    )
}

/// A request part axum could not take (a JSON body, the query string, a
/// path segment), as a problem: too large (413), not declared JSON (415),
/// anything else that does not parse or fit (400).
pub fn rejected(rejection: impl IntoResponse + std::fmt::Display) -> Problem {
    let detail = rejection.to_string();
    let status = rejection.into_response().status();
    match status.as_u16() {
        413 => Problem::new(status, "RESOURCE_EXHAUSTED", detail),
        415 => Problem::new(status, "INVALID_ARGUMENT", detail),
        _ => Problem::bad_request(detail),
    }
}

/// Logs (with the caller, once known) and counts each request when its
/// answer starts.
async fn logged(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let user = AuditUser::default();
    request.extensions_mut().insert(user.clone());
    let response = next.run(request).await;
    let status = response.status();
    metrics().http_request(&route, status.as_u16());
    tracing::info!(%method, route, user = user.name().as_deref().unwrap_or("-"),
        status = status.as_u16(), ms = started.elapsed().as_secs_f64() * 1000.0, "http request");
    response
}
