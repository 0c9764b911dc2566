//! `POST /v1/ingest/{table}`: a CSV, NDJSON, Arrow IPC stream or Parquet
//! body into a table, streamed as it arrives, committed as one version.
//!
//! The body's `Content-Type` says its format. CSV goes through the same
//! parser as Flight's CSV upload (types from the table, the named columns
//! or inference; errors name the line and column); NDJSON and Arrow are
//! decoded as they arrive; Parquet, whose footer comes last, is spooled to
//! a temporary file first. The same modes (`create`, `append`, `overwrite`,
//! `create_append`), schema evolution and idempotency keys as Flight. The
//! body may be at most `max_upload_mb`: 413 past it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamDecoder;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

use super::{Api, Caller, Problem, rejected};
use lakehouse_core::auth::Role;
use lakehouse_core::catalog::{TableKind, TableRef, WriteMode, acting_as};
use lakehouse_engine::error::{Error, Result};
use lakehouse_engine::ingest::{CsvOptions, IngestRequest};

/// Lines of an NDJSON body read to infer its columns.
const NDJSON_INFER_LINES: usize = 1000;
/// Bytes held at most to find those lines (long lines: fewer are read).
const NDJSON_INFER_BYTES: usize = 8 << 20;
/// Rows per batch decoded from NDJSON.
const NDJSON_BATCH_ROWS: usize = 8192;

/// How an upload meets its table, and how to read a CSV body.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IngestQuery {
    /// `create` (the table must not exist), `append` (it must),
    /// `overwrite` (its rows are replaced; created when missing) or
    /// `create_append` (the default).
    pub mode: Option<String>,
    /// An append may add columns and leave some out (read as null).
    pub evolve: Option<bool>,
    /// Answer the version this key made before instead of adding the rows
    /// again.
    pub idempotency_key: Option<String>,
    /// `parquet` or `lance` for a new table; by default Lance when it has
    /// a vector column.
    pub format: Option<String>,
    /// CSV: whether the first line names the columns (default true).
    pub header: Option<bool>,
    /// CSV: one character (default `,`).
    pub delimiter: Option<String>,
    /// CSV: one character (default `"`).
    pub quote: Option<String>,
    /// CSV: one character; none by default.
    pub escape: Option<String>,
    /// CSV: field texts read as null, comma-separated (default: only the
    /// empty field).
    pub null_values: Option<String>,
}

/// What an upload committed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ingested {
    /// `schema.table`.
    pub table: String,
    pub version: u64,
    /// Rows the version added.
    pub rows: u64,
    /// Body bytes received.
    pub bytes: u64,
    pub elapsed_ms: f64,
    /// The idempotency key had made a version before: nothing was added.
    pub deduplicated: bool,
}

/// The body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Csv,
    Ndjson,
    Arrow,
    Parquet,
}

impl BodyFormat {
    fn of(headers: &HeaderMap) -> std::result::Result<Self, Problem> {
        let media = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        Ok(match media.as_str() {
            "text/csv" | "application/csv" => Self::Csv,
            "application/x-ndjson" | "application/jsonl" | "application/json-seq" => Self::Ndjson,
            "application/vnd.apache.arrow.stream" => Self::Arrow,
            "application/vnd.apache.parquet" | "application/x-parquet" => Self::Parquet,
            _ => {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "INVALID_ARGUMENT",
                    format!(
                        "the body's Content-Type {media:?} is not one this route reads: text/csv, \
                         application/x-ndjson, application/vnd.apache.arrow.stream or \
                         application/vnd.apache.parquet"
                    ),
                ));
            }
        })
    }
}

/// Loads the body into a table.
#[utoipa::path(
    post,
    path = "/v1/ingest/{table}",
    tag = "ingest",
    params(("table" = String, Path, description = "`table` or `schema.table`"), IngestQuery),
    request_body(
        description = "The rows: CSV, NDJSON, an Arrow IPC stream or a Parquet file",
        content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
            (Vec<u8> = "application/vnd.apache.arrow.stream"),
            (Vec<u8> = "application/vnd.apache.parquet"),
        )
    ),
    responses(
        (status = 200, description = "The version the rows were committed as", body = Ingested),
        (status = 400, description = "A bad option, or a body that does not parse (the line and column named)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`append` to a table that does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`create` of a table that exists, or columns that do not match", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than max_upload_mb", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A Content-Type this route does not read", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A limit: requests in flight", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
pub async fn ingest(
    State(api): State<Arc<Api>>,
    caller: Caller,
    name: std::result::Result<Path<String>, PathRejection>,
    query: std::result::Result<Query<IngestQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> std::result::Result<Json<Ingested>, Problem> {
    let started = Instant::now();
    let Path(name) = name.map_err(rejected)?;
    let Query(query) = query.map_err(rejected)?;
    let table = TableRef::parse(&name)?;
    caller
        .identity
        .require(Role::Writer, &format!("loading rows into table {table}"))
        .map_err(Error::from)?;
    let format = BodyFormat::of(&headers)?;
    let limit = api.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|bytes| bytes > limit) {
        return Err(too_large(limit));
    }
    let received = Arc::new(AtomicU64::new(0));
    let over = Arc::new(AtomicBool::new(false));
    let chunks = limited(body, limit, received.clone(), over.clone());
    let user = caller.identity.name.clone();
    let loaded = acting_as(user, async {
        match format {
            BodyFormat::Csv => {
                let options = csv_options(&table, &query)?;
                let loaded = api.ingest.write_csv(options, Box::pin(chunks)).await?;
                Ok((loaded.version, loaded.rows, loaded.deduplicated))
            }
            other => {
                let request = request(&table, &query)?;
                let committed = match other {
                    BodyFormat::Arrow => {
                        let (schema, batches) = arrow_batches(Box::pin(chunks)).await?;
                        api.ingest.write(request, schema, batches).await?
                    }
                    BodyFormat::Ndjson => {
                        let (schema, batches) = ndjson_batches(Box::pin(chunks)).await?;
                        api.ingest.write(request, schema, batches).await?
                    }
                    _ => {
                        let (schema, batches) = parquet_batches(Box::pin(chunks)).await?;
                        api.ingest.write(request, schema, batches).await?
                    }
                };
                Ok::<_, Error>((committed.version, committed.rows, committed.deduplicated))
            }
        }
    })
    .await;
    let (version, rows, deduplicated) = match loaded {
        Ok(done) => done,
        Err(_) if over.load(Ordering::Acquire) => return Err(too_large(limit)),
        Err(e) => return Err(e.into()),
    };
    Ok(Json(Ingested {
        table: table.to_string(),
        version,
        rows,
        bytes: received.load(Ordering::Acquire),
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        deduplicated,
    }))
}

fn too_large(limit: u64) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RESOURCE_EXHAUSTED",
        format!(
            "the body is larger than the upload limit of {} MiB (max_upload_mb); nothing was committed",
            limit >> 20
        ),
    )
}

/// The body's chunks, counted, failing past `limit` bytes.
fn limited(
    body: Body,
    limit: u64,
    received: Arc<AtomicU64>,
    over: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Bytes>> + Send {
    body.into_data_stream().map(move |chunk| {
        let chunk = chunk
            .map_err(|e| Error::Cancelled(format!("the upload stopped before its end: {e}")))?;
        let total = received.fetch_add(chunk.len() as u64, Ordering::AcqRel) + chunk.len() as u64;
        if total > limit {
            over.store(true, Ordering::Release);
            return Err(Error::ResourceExhausted(format!(
                "the upload is larger than max_upload_mb ({} MiB)",
                limit >> 20
            )));
        }
        Ok(chunk)
    })
}

fn mode(query: &IngestQuery) -> Result<WriteMode> {
    Ok(match query.mode.as_deref().unwrap_or("create_append") {
        "create" => WriteMode::Create,
        "append" => WriteMode::Append,
        "overwrite" => WriteMode::CreateOrOverwrite,
        "create_append" => WriteMode::CreateOrAppend,
        other => {
            return Err(Error::invalid(format!(
                "mode {other:?} is not one of create, append, overwrite, create_append"
            )));
        }
    })
}

fn kind(query: &IngestQuery) -> Result<Option<TableKind>> {
    match query.format.as_deref() {
        None => Ok(None),
        Some("parquet") => Ok(Some(TableKind::Parquet)),
        Some("lance") => Ok(Some(TableKind::Lance)),
        Some(other) => Err(Error::invalid(format!(
            "format {other:?} is not parquet or lance"
        ))),
    }
}

fn request(table: &TableRef, query: &IngestQuery) -> Result<IngestRequest> {
    if query.header.is_some()
        || query.delimiter.is_some()
        || query.quote.is_some()
        || query.escape.is_some()
        || query.null_values.is_some()
    {
        return Err(Error::invalid(
            "header, delimiter, quote, escape and null_values are options of CSV bodies",
        ));
    }
    Ok(IngestRequest {
        table: table.clone(),
        mode: mode(query)?,
        idempotency_key: query.idempotency_key.clone(),
        evolve: query.evolve.unwrap_or(false),
        format: kind(query)?,
        embed: Vec::new(),
    })
}

/// The options of a CSV body, as Flight's CSV upload takes them.
fn csv_options(table: &TableRef, query: &IngestQuery) -> Result<CsvOptions> {
    mode(query)?;
    let mut options = serde_json::json!({
        "table": table.table,
        "schema": table.schema,
        "mode": query.mode.as_deref().unwrap_or("create_append"),
        "header": query.header.unwrap_or(true),
        "evolve": query.evolve.unwrap_or(false),
    });
    let fields = [
        ("delimiter", &query.delimiter),
        ("quote", &query.quote),
        ("escape", &query.escape),
        ("idempotency_key", &query.idempotency_key),
        ("format", &query.format),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            options[name] = serde_json::json!(value);
        }
    }
    if let Some(nulls) = &query.null_values {
        options["null_values"] = serde_json::json!(nulls.split(',').collect::<Vec<_>>());
    }
    let command = serde_json::to_vec(&serde_json::json!({ "ingest_csv": options }))
        .expect("options always serialize");
    CsvOptions::from_command(&command)
}

type Chunks = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;
type Batches = std::pin::Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// An Arrow IPC stream, decoded as its bytes arrive.
async fn arrow_batches(mut chunks: Chunks) -> Result<(SchemaRef, Batches)> {
    let mut decoder = StreamDecoder::new();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut rest = Buffer::from(Vec::<u8>::new());
    // Until the schema message is read.
    let schema = loop {
        if let Some(schema) = decoder.schema() {
            break schema;
        }
        let Some(chunk) = chunks.next().await.transpose()? else {
            return Err(Error::invalid(
                "the body ended before an Arrow IPC stream's schema",
            ));
        };
        rest = Buffer::from(chunk);
        while !rest.is_empty() {
            match decoder.decode(&mut rest).map_err(arrow_body)? {
                Some(batch) => pending.push(batch),
                None if decoder.schema().is_some() => continue,
                None => break,
            }
        }
    };
    let state = (
        decoder,
        chunks,
        rest,
        pending.into_iter().rev().collect::<Vec<_>>(),
        false,
    );
    let batches = futures::stream::try_unfold(
        state,
        |(mut decoder, mut chunks, mut rest, mut pending, ended)| async move {
            loop {
                if let Some(batch) = pending.pop() {
                    return Ok(Some((batch, (decoder, chunks, rest, pending, ended))));
                }
                if !rest.is_empty() {
                    match decoder.decode(&mut rest).map_err(arrow_body)? {
                        Some(batch) => {
                            return Ok(Some((batch, (decoder, chunks, rest, pending, ended))));
                        }
                        None => continue,
                    }
                }
                if ended {
                    return Ok(None);
                }
                match chunks.next().await.transpose()? {
                    Some(chunk) => rest = Buffer::from(chunk),
                    None => {
                        decoder.finish().map_err(arrow_body)?;
                        return Ok(None);
                    }
                }
            }
        },
    );
    Ok((schema, Box::pin(batches)))
}

fn arrow_body(e: arrow::error::ArrowError) -> Error {
    Error::invalid(format!("the body is not a valid Arrow IPC stream: {e}"))
}

/// NDJSON: columns inferred from the first lines, then decoded as the
/// bytes arrive.
async fn ndjson_batches(mut chunks: Chunks) -> Result<(SchemaRef, Batches)> {
    let mut head: Vec<u8> = Vec::new();
    let mut lines_read = 0;
    let mut ended = false;
    while lines_read < NDJSON_INFER_LINES && head.len() < NDJSON_INFER_BYTES {
        match chunks.next().await.transpose()? {
            Some(chunk) => {
                lines_read += chunk.iter().filter(|b| **b == b'\n').count();
                head.extend_from_slice(&chunk);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    // Whole lines only: the head may end inside one, which the decoder
    // reads on with the next chunk.
    let complete = match head.iter().rposition(|b| *b == b'\n') {
        Some(last) if !ended => &head[..last],
        _ => &head[..],
    };
    let lines = complete
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .take(NDJSON_INFER_LINES);
    let values = lines
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_slice::<serde_json::Value>(line)
                .map_err(|e| arrow::error::ArrowError::JsonError(format!("line {}: {e}", i + 1)))
        })
        .collect::<Vec<_>>();
    if values.is_empty() {
        return Err(Error::invalid("the NDJSON body has no rows"));
    }
    let inferred = arrow::json::reader::infer_json_schema_from_iterator(values.into_iter())
        .map_err(ndjson_body)?;
    let schema: SchemaRef = Arc::new(inferred);
    let decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(NDJSON_BATCH_ROWS)
        .build_decoder()
        .map_err(ndjson_body)?;
    let first = Bytes::from(head);
    let state = (decoder, chunks, Some(first), ended, false);
    let batches = futures::stream::try_unfold(
        state,
        |(mut decoder, mut chunks, mut current, ended, flushed)| async move {
            if flushed {
                return Ok(None);
            }
            loop {
                if let Some(bytes) = current.take() {
                    let used = decoder.decode(&bytes).map_err(ndjson_body)?;
                    if used < bytes.len() {
                        // The decoder holds a full batch: hand it out first.
                        current = Some(bytes.slice(used..));
                        match decoder.flush().map_err(ndjson_body)? {
                            Some(batch) => {
                                return Ok(Some((batch, (decoder, chunks, current, ended, false))));
                            }
                            None if used == 0 => {
                                return Err(Error::internal(
                                    "the NDJSON decoder took no bytes and held no rows",
                                ));
                            }
                            None => {}
                        }
                    }
                    continue;
                }
                let next = if ended {
                    None
                } else {
                    chunks.next().await.transpose()?
                };
                match next {
                    Some(chunk) => current = Some(chunk),
                    None => {
                        let last = decoder.flush().map_err(ndjson_body)?;
                        return Ok(last.map(|batch| (batch, (decoder, chunks, None, true, true))));
                    }
                }
            }
        },
    );
    Ok((schema, Box::pin(batches)))
}

fn ndjson_body(e: arrow::error::ArrowError) -> Error {
    Error::invalid(format!("the NDJSON body cannot be read: {e}"))
}

/// A Parquet body: spooled to a temporary file (its footer comes last),
/// then read back batch by batch; the file goes with the stream.
async fn parquet_batches(mut chunks: Chunks) -> Result<(SchemaRef, Batches)> {
    let spooled = tempfile::NamedTempFile::new()
        .map_err(|e| Error::internal(format!("creating a file to spool a Parquet upload: {e}")))?
        .into_temp_path();
    let mut file = tokio::fs::File::create(&spooled)
        .await
        .map_err(|e| Error::internal(format!("spooling a Parquet upload: {e}")))?;
    while let Some(chunk) = chunks.next().await.transpose()? {
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::internal(format!("spooling a Parquet upload: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| Error::internal(format!("spooling a Parquet upload: {e}")))?;
    let reader = tokio::fs::File::open(&spooled)
        .await
        .map_err(|e| Error::internal(format!("reading a spooled Parquet upload: {e}")))?;
    let not_parquet = |e: parquet::errors::ParquetError| {
        Error::invalid(format!("the body is not a Parquet file: {e}"))
    };
    let builder = parquet::arrow::ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(not_parquet)?;
    let schema = builder.schema().clone();
    let batches = builder.build().map_err(not_parquet)?.map_err(move |e| {
        let _spooled = &spooled;
        Error::invalid(format!("the Parquet body cannot be read: {e}"))
    });
    Ok((schema, Box::pin(batches)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ndjson_cut_mid_line_between_chunks_is_read_whole() {
        // Long lines: the inference's byte bound ends its head inside one.
        let long = "x".repeat(10_000);
        let body: Vec<u8> = (0..1000)
            .flat_map(|i| format!("{{\"id\": {i}, \"name\": \"{long}\"}}\n").into_bytes())
            .collect();
        // Chunks that end inside lines, as a network delivers them.
        let chunks: Vec<Result<Bytes>> = body
            .chunks(65_537)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let (schema, batches) = ndjson_batches(Box::pin(futures::stream::iter(chunks)))
            .await
            .unwrap();
        assert_eq!(schema.fields().len(), 2);
        let rows: usize = batches
            .map_ok(|b| b.num_rows())
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .iter()
            .sum();
        assert_eq!(rows, 1000);
    }
}
