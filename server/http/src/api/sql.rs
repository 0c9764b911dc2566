//! `POST /v1/sql`: a statement, its answer streamed in the format asked
//! for. Queries take a query slot and run under the query timeout and the
//! result row limit, as on Flight; statements that change data answer the
//! rows they affected, under the caller's role.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, NullArray, RecordBatch, StringArray,
    UInt64Array,
};
use arrow::datatypes::{Field, Schema};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};

use super::results::{Format, encode};
use super::{Api, Caller, Problem, rejected};
use lakehouse_core::catalog::acting_as;
use lakehouse_core::types::cast_batch;
use lakehouse_engine::error::{Error, Result};
use lakehouse_engine::query::Planned;
use lakehouse_serving::access::check_update;
use lakehouse_serving::query_slots::timed_out;
use lakehouse_serving::requests::RequestPermit;

/// A statement to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One SQL statement.
    #[schema(example = "SELECT city, count(*) AS trips FROM trips GROUP BY city")]
    pub sql: String,
    /// Values for the statement's placeholders (`$1`, `$2`, ... or `?`),
    /// in order: numbers, strings, booleans or null.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub params: Vec<serde_json::Value>,
    /// The answer's format: `json` (the default), `ndjson`, `csv`,
    /// `arrow` (an Arrow IPC stream) or `parquet`; the `format` query
    /// parameter and the `Accept` header say the same.
    pub format: Option<String>,
}

/// The format, as a query parameter.
#[derive(Debug, Deserialize, IntoParams)]
pub struct FormatQuery {
    /// `json`, `ndjson`, `csv`, `arrow` or `parquet`; before the body's
    /// `format` and the `Accept` header.
    pub format: Option<String>,
}

/// A query's answer in JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rows {
    /// The result's columns: name, Arrow type, nullable.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    /// One object per row, by column name.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Value>,
    pub row_count: u64,
    /// Set when the query failed after rows were sent (the row limit, the
    /// timeout): what happened.
    pub error: Option<Problem>,
}

/// A statement's JSON answer: a query's rows, or what a statement that
/// changes data affected.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SqlAnswer {
    #[expect(
        dead_code,
        reason = "the shape of the JSON rows answer for the OpenAPI document; results::JsonEncoder streams it"
    )]
    Rows(Box<Rows>),
    Affected(Affected),
}

/// What a statement that changes data did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Affected {
    /// Rows inserted, deleted, updated or merged; 0 for DDL.
    pub rows_affected: u64,
}

/// Runs one SQL statement.
#[utoipa::path(
    post,
    path = "/v1/sql",
    tag = "sql",
    request_body = SqlRequest,
    params(FormatQuery),
    responses(
        (status = 200, description = "A query's rows, or what a statement that changes data affected",
            content(
                (SqlAnswer = "application/json"),
                (String = "application/x-ndjson"),
                (String = "text/csv"),
                (Vec<u8> = "application/vnd.apache.arrow.stream"),
                (Vec<u8> = "application/vnd.apache.parquet"),
            )),
        (status = 400, description = "Bad SQL, an unknown column, a bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role does not allow the statement", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A table the statement names does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A conflict: the table exists, or changed meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A limit: requests, query slots, rows, time", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
pub async fn sql(
    State(api): State<Arc<Api>>,
    caller: Caller,
    query: std::result::Result<Query<FormatQuery>, QueryRejection>,
    headers: HeaderMap,
    body: std::result::Result<Json<SqlRequest>, JsonRejection>,
) -> std::result::Result<Response, Problem> {
    let Query(query) = query.map_err(rejected)?;
    let Json(request) = body.map_err(rejected)?;
    let format = answer_format(query.format.as_deref(), request.format.as_deref(), &headers)?;
    let Caller { identity, permit } = caller;
    let serving = api.serving.clone();
    let (slot, deadline) = serving.query_slot().await?;
    let timeout = serving.timeout();
    let planned = tokio::time::timeout_at(deadline, async {
        let plan = api.engine.plan(&request.sql).await?;
        let plan = match parameters(&request.params)? {
            Some(row) => api.engine.bind(&plan, &row, 0)?,
            None => plan,
        };
        api.engine.classify(plan)
    })
    .await
    .unwrap_or_else(|_| Err(timed_out(timeout)))?;
    let plan = match planned {
        Planned::Update(update) => {
            check_update(&identity, &update)?;
            let rows = tokio::time::timeout_at(
                deadline,
                acting_as(identity.name.clone(), api.engine.execute_update(update)),
            )
            .await
            .unwrap_or_else(|_| Err(timed_out(timeout)))?;
            return Ok(Json(SqlAnswer::Affected(Affected {
                rows_affected: rows,
            }))
            .into_response());
        }
        Planned::Query(plan) => plan,
    };
    let schema = api.engine.output_schema(&plan);
    let batches = tokio::time::timeout_at(deadline, api.engine.execute_query(plan))
        .await
        .unwrap_or_else(|_| Err(timed_out(timeout)))?;
    let target = schema.clone();
    let batches = batches
        .map_err(Error::from_datafusion)
        .and_then(move |batch| {
            futures::future::ready(cast_batch(&batch, &target).map_err(Error::from))
        });
    let batches: Batches = Box::pin(serving.limit_rows(batches));
    let batches = until_deadline(batches, (permit, slot), deadline, timeout);
    // The first batch before the status: most failures show there, and
    // then the answer is a problem with its status, not a 200 cut short.
    let mut batches = Box::pin(batches.peekable());
    if let Some(Err(_)) = batches.as_mut().peek().await {
        let Some(Err(error)) = batches.next().await else {
            unreachable!("peeked an error")
        };
        return Err(error.into());
    }
    let body = encode(format, schema, batches)?;
    let mut response = axum::body::Body::from_stream(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    Ok(response)
}

type Batches = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// `batches`, holding the request's permits and query slot until they end
/// (or are dropped), and ending with the timeout's error at `deadline`.
fn until_deadline(
    batches: Batches,
    held: (RequestPermit, OwnedSemaphorePermit),
    deadline: Instant,
    timeout: Duration,
) -> Batches {
    Box::pin(futures::stream::unfold(
        (batches, Some(held)),
        move |(mut batches, held)| async move {
            held.as_ref()?;
            match tokio::time::timeout_at(deadline, batches.next()).await {
                Ok(Some(item)) => Some((item, (batches, held))),
                Ok(None) => None,
                Err(_) => Some((Err(timed_out(timeout)), (batches, None))),
            }
        },
    ))
}

/// The answer's format: the query parameter, else the body's, else the
/// `Accept` header, else JSON.
fn answer_format(
    query: Option<&str>,
    body: Option<&str>,
    headers: &HeaderMap,
) -> std::result::Result<Format, Problem> {
    if let Some(name) = query.or(body) {
        return Format::from_name(name).ok_or_else(|| {
            Problem::bad_request(format!("format {name:?} is not one of {}", Format::NAMES))
        });
    }
    Ok(headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_accept)
        .unwrap_or(Format::Json))
}

/// The parameters as one row of a batch, typed as JSON gives them (the
/// engine casts each to the placeholder's type); none without any.
fn parameters(values: &[serde_json::Value]) -> Result<Option<RecordBatch>> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut fields = Vec::with_capacity(values.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let column: ArrayRef = match value {
            serde_json::Value::Null => Arc::new(NullArray::new(1)),
            serde_json::Value::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(v), _, _) => Arc::new(Int64Array::from(vec![v])),
                (None, Some(v), _) => Arc::new(UInt64Array::from(vec![v])),
                (_, _, Some(v)) => Arc::new(Float64Array::from(vec![v])),
                _ => {
                    return Err(Error::invalid(format!(
                        "parameter {} is not a number SQL can hold: {n}",
                        i + 1
                    )));
                }
            },
            serde_json::Value::String(s) => Arc::new(StringArray::from(vec![s.as_str()])),
            other => {
                return Err(Error::invalid(format!(
                    "parameter {} is a JSON {}; parameters are numbers, strings, booleans or null",
                    i + 1,
                    if other.is_array() { "array" } else { "object" }
                )));
            }
        };
        fields.push(Field::new(
            format!("${}", i + 1),
            column.data_type().clone(),
            true,
        ));
        columns.push(column);
    }
    Ok(Some(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?))
}
