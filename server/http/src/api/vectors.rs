//! The old system's embedding and vector routes, on this server's own
//! parts: `POST /v1/embed` (texts to vectors with a configured model),
//! `POST /v1/vectors/index/{name}/add` (rows into a vector table, embedded
//! first when given as texts) and `/search` (the table's nearest rows to a
//! vector or a text, through `knn()` as in SQL, filters pushed into the
//! search).
//!
//! An index is a vector table (Lance) with the columns `id` (text),
//! `vector`, `text` and `metadata` (JSON text): SQL reads and changes it
//! like any other, and its indexes are built with the `create_index`
//! action. Adding appends rows; an id added twice is found twice.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Api, Caller, Problem, rejected};
use lakehouse_core::auth::Role;
use lakehouse_core::catalog::{TableRef, WriteMode, acting_as};
use lakehouse_engine::error::{Error, Result};
use lakehouse_engine::ingest::IngestRequest;
use lakehouse_engine::query::Planned;
use lakehouse_extension::{Embeddings, vector_array, vector_type};

/// Texts one `/v1/embed` or `add` request may carry.
const MAX_TEXTS: usize = 2048;
/// The nearest rows a search may ask for.
const MAX_K: usize = 1000;

/// Texts to embed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    /// At most 2,048 texts.
    pub texts: Vec<String>,
    /// A configured model's name; the default model when absent.
    pub model: Option<String>,
}

/// One vector per text, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbedAnswer {
    pub model: String,
    pub dimensions: usize,
    pub vectors: Vec<Vec<f32>>,
}

/// Rows to add to an index.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    /// One id per row: strings, or integers (kept as text).
    #[schema(value_type = Vec<String>)]
    pub ids: Vec<serde_json::Value>,
    /// The rows' vectors; or give `texts` and they are embedded.
    pub vectors: Option<Vec<Vec<f32>>>,
    /// The rows' texts: embedded when `vectors` is absent, kept either way.
    pub texts: Option<Vec<String>>,
    /// A JSON object per row, kept and answered with search hits.
    #[schema(value_type = Option<Vec<Object>>)]
    pub metadata: Option<Vec<serde_json::Value>>,
    /// The model that embeds `texts`; the default when absent.
    pub model: Option<String>,
}

/// What an add committed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Added {
    /// `schema.table` of the index.
    pub index: String,
    pub added: usize,
    pub dimensions: usize,
    /// The table's version holding the rows.
    pub version: u64,
}

/// A search of an index.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The query vector; or give `text` and it is embedded.
    pub vector: Option<Vec<f32>>,
    pub text: Option<String>,
    /// Hits wanted, 1 to 1,000 (default 10).
    pub k: Option<usize>,
    /// A SQL predicate over the index's columns (`metadata`, `text`, `id`,
    /// or any column added by SQL), applied before the k nearest are
    /// chosen: `k` hits that pass it.
    pub filter: Option<String>,
    /// The model that embeds `text`; the default when absent. Not with
    /// `hybrid`, which embeds with the index's own model.
    pub model: Option<String>,
    /// `vector` (the default): the nearest rows by `knn()`; `hybrid`:
    /// `text` searched by meaning and by words (BM25, which needs an `fts`
    /// index on `text`), the two rankings fused by `hybrid()`.
    pub mode: Option<String>,
    /// The options of `knn()` (`ef`, `nprobes`, `refine`, `metric`) or of
    /// `hybrid()` (`vector_weight`, `text_weight`, `candidates`, `rrf_k`,
    /// `ef`).
    #[schema(value_type = Option<Object>)]
    pub options: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One hit, nearest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hit {
    pub id: Option<String>,
    /// A vector search's distance to the query vector (as `knn()` answers
    /// it: squared L2 unless `metric` says otherwise); none for `hybrid`.
    pub distance: Option<f32>,
    /// A hybrid search's fused score (higher is better); none for `vector`.
    pub score: Option<f32>,
    pub text: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// The hits of a search.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hits {
    pub index: String,
    pub hits: Vec<Hit>,
}

/// Embeds texts with a configured model.
#[utoipa::path(
    post,
    path = "/v1/embed",
    tag = "vectors",
    request_body = EmbedRequest,
    responses(
        (status = 200, description = "One vector per text", body = EmbedAnswer),
        (status = 400, description = "No texts, too many, or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong credentials", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No model of that name", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests in flight", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The model's provider is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
pub async fn embed(
    State(api): State<Arc<Api>>,
    _caller: Caller,
    body: std::result::Result<Json<EmbedRequest>, JsonRejection>,
) -> std::result::Result<Json<EmbedAnswer>, Problem> {
    let Json(request) = body.map_err(rejected)?;
    check_texts(request.texts.len())?;
    let (model, vectors) = embed_texts(&api, request.model.as_deref(), &request.texts).await?;
    Ok(Json(EmbedAnswer {
        model,
        dimensions: vectors.dimensions,
        vectors: vectors
            .values
            .chunks(vectors.dimensions.max(1))
            .map(<[f32]>::to_vec)
            .collect(),
    }))
}

/// Adds rows to an index (a vector table, created by the first add).
#[utoipa::path(
    post,
    path = "/v1/vectors/index/{name}/add",
    tag = "vectors",
    params(("name" = String, Path, description = "The index: a vector table, `name` or `schema.name`")),
    request_body = AddRequest,
    responses(
        (status = 200, description = "The rows were added", body = Added),
        (status = 400, description = "Mismatched lengths, a vector of the wrong dimension, malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No model of that name", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The table is not an index (its columns differ)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests in flight", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The model's provider is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
pub async fn add(
    State(api): State<Arc<Api>>,
    caller: Caller,
    name: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<AddRequest>, JsonRejection>,
) -> std::result::Result<Json<Added>, Problem> {
    let Path(name) = name.map_err(rejected)?;
    let Json(request) = body.map_err(rejected)?;
    let table = TableRef::parse(&name)?;
    caller
        .identity
        .require(Role::Writer, &format!("adding to index {table}"))
        .map_err(Error::from)?;
    let rows = request.ids.len();
    check_texts(rows)?;
    let lengths = [
        ("vectors", request.vectors.as_ref().map(Vec::len)),
        ("texts", request.texts.as_ref().map(Vec::len)),
        ("metadata", request.metadata.as_ref().map(Vec::len)),
    ];
    for (what, length) in lengths {
        if let Some(length) = length.filter(|l| *l != rows) {
            return Err(Error::invalid(format!(
                "{rows} ids but {length} {what}: give one of each per row"
            ))
            .into());
        }
    }
    let vectors = match (&request.vectors, &request.texts) {
        (Some(vectors), _) => flatten(vectors)?,
        (None, Some(texts)) => embed_texts(&api, request.model.as_deref(), texts).await?.1,
        (None, None) => {
            return Err(Error::invalid("give the rows' vectors, or their texts to embed").into());
        }
    };
    let dimensions = vectors.dimensions;
    if let Ok(existing) = api.catalog.table(&table) {
        let held = existing
            .schema
            .field_with_name("vector")
            .ok()
            .and_then(|f| match f.data_type() {
                DataType::FixedSizeList(_, n) => Some(*n as usize),
                _ => None,
            });
        match held {
            Some(held) if held != dimensions => {
                return Err(Error::invalid(format!(
                    "index {table} holds vectors of {held} dimensions; these have {dimensions}"
                ))
                .into());
            }
            Some(_) => {}
            None => {
                return Err(Error::invalid(format!(
                    "table {table} is not an index: it has no vector column named \"vector\""
                ))
                .into());
            }
        }
    }
    let batch = rows_batch(&request, vectors)?;
    let schema = batch.schema();
    let ingest = IngestRequest {
        table: table.clone(),
        mode: WriteMode::CreateOrAppend,
        idempotency_key: None,
        evolve: false,
        format: None,
        embed: Vec::new(),
    };
    let committed = acting_as(
        caller.identity.name.clone(),
        api.ingest
            .write(ingest, schema, futures::stream::iter([Ok(batch)])),
    )
    .await?;
    Ok(Json(Added {
        index: table.to_string(),
        added: rows,
        dimensions,
        version: committed.version,
    }))
}

/// Finds an index's rows nearest to a vector or a text.
#[utoipa::path(
    post,
    path = "/v1/vectors/index/{name}/search",
    tag = "vectors",
    params(("name" = String, Path, description = "The index: a vector table, `name` or `schema.name`")),
    request_body = SearchRequest,
    responses(
        (status = 200, description = "The nearest rows, nearest first", body = Hits),
        (status = 400, description = "No query, a vector of the wrong dimension, a bad filter, malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong credentials", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such index or model", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A limit: requests, query slots, time", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The model's provider is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
pub async fn search(
    State(api): State<Arc<Api>>,
    _caller: Caller,
    name: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<SearchRequest>, JsonRejection>,
) -> std::result::Result<Json<Hits>, Problem> {
    let Path(name) = name.map_err(rejected)?;
    let Json(request) = body.map_err(rejected)?;
    let table = TableRef::parse(&name)?;
    let k = request.k.unwrap_or(10);
    if !(1..=MAX_K).contains(&k) {
        return Err(Error::invalid(format!("k is {k}; ask for 1 to {MAX_K} hits")).into());
    }
    let options = match &request.options {
        Some(options) => format!(
            ", {}",
            sql_text(&serde_json::Value::Object(options.clone()).to_string())
        ),
        None => String::new(),
    };
    let filter = request
        .filter
        .as_deref()
        .map(|f| format!(" WHERE {f}"))
        .unwrap_or_default();
    // The SQL, the query vector its `$1` stands for (a vector search's,
    // bound to the plan rather than written into the SQL as hundreds of
    // numbers to parse and plan), and whether its second column is a
    // score (hybrid) rather than a distance.
    let (sql, vector, scored) = match request.mode.as_deref().unwrap_or("vector") {
        "vector" => {
            let vector = query_vector(&api, &request).await?;
            let sql = format!(
                "SELECT id, _distance, text, metadata FROM knn({}, 'vector', $1, {k}{options}){filter} ORDER BY _distance",
                sql_text(&table.to_string())
            );
            (sql, Some(vector), false)
        }
        "hybrid" => {
            let (Some(text), None, None) = (&request.text, &request.vector, &request.model) else {
                return Err(Error::invalid(
                    "a hybrid search takes a text (no vector), embedded with the index's own model (no model)",
                )
                .into());
            };
            let sql = format!(
                "SELECT id, _score, text, metadata FROM hybrid({}, 'vector', 'text', {}, {k}{options}){filter} ORDER BY _score DESC",
                sql_text(&table.to_string()),
                sql_text(text)
            );
            (sql, None, true)
        }
        other => {
            return Err(
                Error::invalid(format!("mode is {other:?}; use \"vector\" or \"hybrid\"")).into(),
            );
        }
    };
    let rows = api
        .serving
        .bounded(async {
            let mut plan = api.engine.plan(&sql).await?;
            if let Some(vector) = vector {
                plan = bind_query_vector(&api, &table, plan, vector)?;
            }
            let Planned::Query(plan) = api.engine.classify(plan)? else {
                return Err(Error::invalid("the filter is not a predicate"));
            };
            let stream = api.engine.execute_query(plan).await?;
            futures::TryStreamExt::try_collect::<Vec<RecordBatch>>(stream)
                .await
                .map_err(Error::from_datafusion)
        })
        .await?;
    let mut hits = Vec::new();
    for batch in &rows {
        hits.extend(batch_hits(batch, scored)?);
    }
    Ok(Json(Hits {
        index: table.to_string(),
        hits,
    }))
}

/// The query vector of a vector search: the one given, or the text
/// embedded with the request's model.
async fn query_vector(api: &Api, request: &SearchRequest) -> Result<Vec<f32>> {
    let vector = match (&request.vector, &request.text) {
        (Some(vector), None) => vector.clone(),
        (None, Some(text)) => {
            embed_texts(api, request.model.as_deref(), std::slice::from_ref(text))
                .await?
                .1
                .values
        }
        _ => {
            return Err(Error::invalid(
                "give either a vector or a text to search for",
            ));
        }
    };
    if vector.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "the query vector holds a value that is not a finite number",
        ));
    }
    Ok(vector)
}

/// `plan` (a knn search of `index` whose query vector is `$1`) with
/// `vector` bound to it. The filter is the caller's SQL: placeholders of
/// its own are refused rather than bound to the vector.
fn bind_query_vector(
    api: &Api,
    index: &TableRef,
    plan: LogicalPlan,
    vector: Vec<f32>,
) -> Result<LogicalPlan> {
    let in_filter = plan
        .get_parameter_fields()
        .map_err(Error::from_datafusion)?;
    if !in_filter.is_empty() {
        return Err(Error::invalid(
            "the filter holds a parameter ($1 or ?): write its values into it",
        ));
    }
    let expected = api.engine.parameter_schema(&plan)?;
    if let Some(DataType::FixedSizeList(_, dimensions)) =
        expected.fields().first().map(|f| f.data_type())
        && *dimensions as usize != vector.len()
    {
        return Err(Error::invalid(format!(
            "index {index} holds vectors of {dimensions} dimensions; the query vector has {}",
            vector.len()
        )));
    }
    let values = Float32Array::from(vector);
    let list = FixedSizeListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        values.len() as i32,
        Arc::new(values),
        None,
    )?;
    api.engine
        .bind_values(&plan, vec![ScalarValue::FixedSizeList(Arc::new(list))])
}

/// `text` as a SQL string literal.
fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn check_texts(count: usize) -> Result<()> {
    if count == 0 {
        return Err(Error::invalid("no rows: give at least one"));
    }
    if count > MAX_TEXTS {
        return Err(Error::invalid(format!(
            "{count} rows in one request; send at most {MAX_TEXTS} at a time"
        )));
    }
    Ok(())
}

/// Embeds `texts` with the model `name` names; the model's name and the
/// vectors.
async fn embed_texts(
    api: &Api,
    name: Option<&str>,
    texts: &[String],
) -> Result<(String, Embeddings)> {
    let model = api.embeddings.model(name)?;
    let vectors = api.embeddings.embed(Some(&model.name), texts).await?;
    Ok((model.name, vectors))
}

/// Vectors given as JSON, as one flat run; all of one dimension.
fn flatten(vectors: &[Vec<f32>]) -> Result<Embeddings> {
    let dimensions = vectors.first().map_or(0, Vec::len);
    if dimensions == 0 {
        return Err(Error::invalid("the vectors are empty"));
    }
    if let Some((row, other)) = vectors
        .iter()
        .enumerate()
        .find(|(_, v)| v.len() != dimensions)
    {
        return Err(Error::invalid(format!(
            "vector {row} has {} dimensions, the first has {dimensions}: all must have the same",
            other.len()
        )));
    }
    Ok(Embeddings {
        dimensions,
        values: vectors.concat(),
    })
}

/// The index's columns for an add.
fn index_schema(dimensions: usize) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("vector", vector_type(dimensions), true),
        Field::new("text", DataType::Utf8, true),
        Field::new("metadata", DataType::Utf8, true),
    ]))
}

fn rows_batch(request: &AddRequest, vectors: Embeddings) -> Result<RecordBatch> {
    let ids = request
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| match id {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            other => Err(Error::invalid(format!(
                "id {i} is {other}; ids are strings or integers"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    let texts: Vec<Option<&str>> = match &request.texts {
        Some(texts) => texts.iter().map(|t| Some(t.as_str())).collect(),
        None => vec![None; ids.len()],
    };
    let metadata: Vec<Option<String>> = match &request.metadata {
        Some(values) => values
            .iter()
            .map(|v| (!v.is_null()).then(|| v.to_string()))
            .collect(),
        None => vec![None; ids.len()],
    };
    let schema = index_schema(vectors.dimensions);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        vector_array(vectors, None)?,
        Arc::new(StringArray::from(texts)),
        Arc::new(StringArray::from(metadata)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The hits of one batch of `id, _distance, text, metadata`.
/// The hits of a batch of `id`, `_distance` (or `_score` when `scored`),
/// `text`, `metadata`.
fn batch_hits(batch: &RecordBatch, scored: bool) -> Result<Vec<Hit>> {
    let text = |column: usize| -> Result<Vec<Option<String>>> {
        let cast = arrow::compute::cast(batch.column(column), &DataType::Utf8)?;
        let strings = cast.as_string::<i32>();
        Ok((0..strings.len())
            .map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_string()))
            .collect())
    };
    let measures = arrow::compute::cast(batch.column(1), &DataType::Float32)?;
    let measures = measures.as_primitive::<arrow::datatypes::Float32Type>();
    let (ids, texts, metadata) = (text(0)?, text(2)?, text(3)?);
    Ok((0..batch.num_rows())
        .map(|i| Hit {
            id: ids[i].clone(),
            distance: (!scored).then(|| measures.value(i)),
            score: scored.then(|| measures.value(i)),
            text: texts[i].clone(),
            metadata: metadata[i]
                .as_deref()
                .map(|m| serde_json::from_str(m).unwrap_or(serde_json::Value::String(m.into()))),
        })
        .collect())
}
