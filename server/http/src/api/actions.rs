//! Flight's actions over HTTP: `GET /v1/actions` lists them and
//! `POST /v1/actions/{name}` runs one with its JSON body (building and
//! dropping indexes, vacuum, table history, the extensions' actions), as
//! the caller, with the role each needs and the query slot it waits for,
//! as DoAction does. The list and the results are the ones Flight's
//! `ListActions` and `DoAction` give.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Api, Caller, Problem, rejected};
use lakehouse_core::catalog::acting_as;

/// One action.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionInfo {
    pub name: String,
    /// The role it needs: `reader`, `writer` or `admin`.
    pub role: String,
    pub description: String,
    /// The JSON body it takes.
    pub body: String,
    /// What it answers.
    pub result: String,
}

/// Every action this server runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionList {
    pub actions: Vec<ActionInfo>,
}

/// Lists the actions.
#[utoipa::path(
    get,
    path = "/v1/actions",
    tag = "actions",
    responses(
        (status = 200, description = "Every action, the server's own first", body = ActionList),
        (status = 401, description = "No or wrong credentials", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests in flight", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
pub async fn list(State(api): State<Arc<Api>>, _caller: Caller) -> Json<ActionList> {
    Json(ActionList {
        actions: api
            .actions
            .list()
            .map(|action| ActionInfo {
                name: action.name().to_string(),
                role: action.access().role().to_string(),
                description: action.description().to_string(),
                body: action.body().to_string(),
                result: action.result().to_string(),
            })
            .collect(),
    })
}

/// Runs an action with the request's body (JSON, as DoAction's).
#[utoipa::path(
    post,
    path = "/v1/actions/{name}",
    tag = "actions",
    params(("name" = String, Path, description = "The action, e.g. `create_index`")),
    request_body(content = Object, description = "The action's body, as `GET /v1/actions` describes it", content_type = "application/json"),
    responses(
        (status = 200, description = "The action's result: JSON, as the action describes it", body = serde_json::Value),
        (status = 400, description = "A body the action cannot take", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not run it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such action, or a table it names is missing", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A conflict with another change", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A limit: requests, query slots", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A provider the action needs is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
pub async fn run(
    State(api): State<Arc<Api>>,
    caller: Caller,
    name: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, Problem> {
    let Path(name) = name.map_err(rejected)?;
    let body = body.map_err(rejected)?;
    let _slot = if api.actions.takes_query_slot(&name) {
        Some(api.serving.query_slot().await?)
    } else {
        None
    };
    let ran = acting_as(
        caller.identity.name.clone(),
        api.actions.run(&caller.identity, &name, &body),
    )
    .await;
    let Some(result) = ran else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("unknown action {name:?}; GET /v1/actions lists the actions this server runs"),
        ));
    };
    let result = result?;
    let content_type = if serde_json::from_slice::<serde::de::IgnoredAny>(&result).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], result).into_response())
}
