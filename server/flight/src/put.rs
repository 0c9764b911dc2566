//! DoPut: every upload, routed by its descriptor's command.
//!
//! A JSON object is a CSV upload (`{"ingest_csv": {...}}`); anything else
//! must be a Flight SQL command. arrow-rs's `FlightSqlService` routing
//! refuses a command that is not a protobuf `Any` before a service sees
//! it, so DoPut is routed here rather than there.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::{Array, AsArray, GenericBinaryArray, OffsetSizeTrait, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{
    Any, Command, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementIngest, CommandStatementUpdate, DoPutPreparedStatementResult,
    DoPutUpdateResult,
};
use arrow_flight::{FlightData, PutResult};
use bytes::Bytes;
use futures::stream::Peekable;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, Streaming};

use super::tickets::ingest_mode;
use super::upload_watch::UploadWatch;
use super::{FlightSql, check_catalog};
use crate::status::{IntoStatus, ToStatus};
use lakehouse_core::auth::{Identity, Role};
use lakehouse_core::catalog::{TableKind, TableRef};
use lakehouse_core::types::arrow_bytes;
use lakehouse_engine::error::{Error, Result};
use lakehouse_engine::ingest::{CsvOptions, EmbedSpec, IngestRequest};
use lakehouse_engine::query::Planned;
use lakehouse_serving::access::check_update;

/// The `app_metadata` of a message that abandons its upload, for clients
/// that cannot cancel a call (pyarrow's DoPut writer can only finish it).
const ABORT: &[u8] = b"abort";

/// The header prefix that carries ingest options: `x-lakehouse-embed`
/// is the option `lakehouse.embed`. ADBC's Flight SQL driver refuses
/// statement options it does not know, but sends any header it is given
/// (`adbc.flight.sql.rpc.call_header.x-lakehouse-embed`).
pub const OPTION_HEADER_PREFIX: &str = "x-lakehouse-";

/// The `lakehouse.*` ingest options a call's headers carry.
pub fn header_options(headers: &tonic::metadata::MetadataMap) -> HashMap<String, String> {
    headers
        .iter()
        .filter_map(|entry| match entry {
            tonic::metadata::KeyAndValueRef::Ascii(key, value) => {
                let name = key.as_str().strip_prefix(OPTION_HEADER_PREFIX)?;
                let value = value.to_str().ok()?;
                Some((
                    format!("lakehouse.{}", name.replace('-', "_")),
                    value.to_string(),
                ))
            }
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        })
        .collect()
}

/// An upload's messages, whether its client abandoned it, and the ingest
/// options its headers carry.
struct Upload {
    data: Peekable<Streaming<FlightData>>,
    watch: UploadWatch,
    header_options: HashMap<String, String>,
    identity: Identity,
}

type DoPutStream = <FlightSql as FlightService>::DoPutStream;

impl FlightSql {
    /// Answers a DoPut from `identity`; `watch` says whether the client
    /// abandoned it.
    pub async fn put(
        &self,
        upload: Streaming<FlightData>,
        watch: Option<UploadWatch>,
        header_options: HashMap<String, String>,
        identity: Identity,
    ) -> Result<Response<DoPutStream>, Status> {
        let mut upload = Upload {
            data: upload.peekable(),
            watch: watch.unwrap_or_default(),
            header_options,
            identity,
        };
        let command = match Pin::new(&mut upload.data).peek().await {
            None => return Err(Error::invalid("DoPut sent no messages").to_status()),
            Some(Err(status)) => return Err(status.clone()),
            Some(Ok(first)) => first.flight_descriptor.as_ref().map(|d| d.cmd.clone()),
        };
        let command = command
            .ok_or_else(|| {
                Error::invalid("the first DoPut message carries no descriptor naming the command")
            })
            .into_status()?;
        if command.trim_ascii_start().starts_with(b"{") {
            let loaded = self.put_csv(&command, upload).await.into_status()?;
            let body = serde_json::to_vec(&loaded).expect("the upload result serializes");
            return Ok(one_result(body.into()));
        }
        let any = Any::decode(command).map_err(|e| {
            Error::invalid(format!(
                "the descriptor is neither a CSV upload (a JSON object) nor a Flight SQL command (a protobuf Any): {e}"
            ))
        }).into_status()?;
        let count = |rows: i64| {
            one_result(
                DoPutUpdateResult { record_count: rows }
                    .encode_to_vec()
                    .into(),
            )
        };
        Ok(
            match Command::try_from(any).map_err(Error::from).into_status()? {
                Command::CommandStatementUpdate(c) => count(
                    self.admission()
                        .bounded(async {
                            self.put_statement_update(c, &upload.identity)
                                .await
                                .into_status()
                        })
                        .await?,
                ),
                Command::CommandStatementIngest(c) => {
                    count(self.put_statement_ingest(c, upload).await.into_status()?)
                }
                Command::CommandPreparedStatementUpdate(c) => count(
                    self.admission()
                        .bounded(async { self.put_prepared_update(c, upload).await.into_status() })
                        .await?,
                ),
                Command::CommandPreparedStatementQuery(c) => {
                    let result = self.put_prepared_query(c, upload).await.into_status()?;
                    one_result(result.encode_to_vec().into())
                }
                other => {
                    return Err(
                        Error::NotSupported(format!("DoPut with {}", other.type_url())).to_status(),
                    );
                }
            },
        )
    }

    async fn put_statement_update(
        &self,
        command: CommandStatementUpdate,
        identity: &Identity,
    ) -> Result<i64> {
        let plan = self.engine.plan(&command.query).await?;
        match self.engine.classify(plan)? {
            Planned::Update(update) => {
                check_update(identity, &update)?;
                Ok(self.engine.execute_update(update).await? as i64)
            }
            Planned::Query(_) => Err(Error::invalid(format!(
                "{:?} is a query: execute it with a query, not an update",
                command.query
            ))),
        }
    }

    async fn put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        upload: Upload,
    ) -> Result<i64> {
        check_catalog(command.catalog.as_deref())?;
        if command.temporary {
            return Err(Error::NotSupported("temporary tables".into()));
        }
        if command.transaction_id.is_some() {
            return Err(Error::NotSupported("transactions".into()));
        }
        let table = TableRef::new(command.schema.as_deref(), &command.table)?;
        upload
            .identity
            .require(Role::Writer, &format!("ingesting into table {table}"))?;
        let mode = ingest_mode(command.table_definition_options.as_ref())?;
        // Options in the command win over the same options in headers.
        let mut options = upload.header_options.clone();
        options.extend(command.options.clone());
        let idempotency_key = options.get("lakehouse.idempotency_key").cloned();
        let format = options
            .get("lakehouse.format")
            .map(|f| table_format(f))
            .transpose()?;
        let embed = match options.get("lakehouse.embed") {
            Some(value) => EmbedSpec::parse_option(value)?,
            None => Vec::new(),
        };
        let (schema, batches) = decode_upload(upload).await?;
        let schema = schema.ok_or_else(|| Error::invalid("the upload carried no Arrow schema"))?;
        let request = IngestRequest {
            table,
            mode,
            idempotency_key,
            evolve: false,
            format,
            embed,
        };
        let committed = self.ingest.write(request, schema, batches).await?;
        Ok(committed.rows as i64)
    }

    async fn put_prepared_query(
        &self,
        query: CommandPreparedStatementQuery,
        upload: Upload,
    ) -> Result<DoPutPreparedStatementResult> {
        let parameters = decode_parameters(upload).await?;
        self.prepared
            .bind(&query.prepared_statement_handle, parameters)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn put_prepared_update(
        &self,
        query: CommandPreparedStatementUpdate,
        upload: Upload,
    ) -> Result<i64> {
        let identity = upload.identity.clone();
        let parameters = decode_parameters(upload).await?;
        let mut statement = self
            .prepared_statement(&query.prepared_statement_handle)
            .await?;
        if !parameters.is_empty() {
            statement.parameters = parameters;
        }
        self.run_prepared_update(statement, &identity).await
    }

    /// A CSV upload: the command names the table and options; the batches
    /// hold one binary column of file chunks.
    async fn put_csv(
        &self,
        command: &[u8],
        upload: Upload,
    ) -> Result<lakehouse_engine::ingest::CsvLoaded> {
        let options = CsvOptions::from_command(command)?;
        upload.identity.require(
            Role::Writer,
            &format!("uploading CSV into table {}", options.table),
        )?;
        let (_, batches) = decode_upload(upload).await?;
        let chunks = batches
            .map(|batch| batch.and_then(|b| csv_chunks(&b)))
            .map_ok(|chunks| futures::stream::iter(chunks.into_iter().map(Ok)))
            .try_flatten();
        self.ingest.write_csv(options, prefetch(chunks)).await
    }
}

/// Chunks, and bytes, received ahead of the parser at most.
const PREFETCH_CHUNKS: usize = 16;
const PREFETCH_BYTES: usize = 32 * 1024 * 1024;

/// Receives `chunks` in a task of its own, up to [`PREFETCH_CHUNKS`] and
/// [`PREFETCH_BYTES`] ahead (a larger chunk waits until none is ahead), so
/// the network keeps flowing while the parser works on earlier chunks.
fn prefetch<S>(chunks: S) -> impl Stream<Item = Result<Bytes>> + Send + Unpin
where
    S: Stream<Item = Result<Bytes>> + Send + 'static,
{
    let budget = Arc::new(Semaphore::new(PREFETCH_BYTES));
    let (tx, rx) = mpsc::channel(PREFETCH_CHUNKS);
    tokio::spawn(async move {
        let mut chunks = std::pin::pin!(chunks);
        while let Some(chunk) = chunks.next().await {
            let failed = chunk.is_err();
            let size = chunk.as_ref().map_or(0, Bytes::len).min(PREFETCH_BYTES);
            let Ok(permit) = budget.clone().acquire_many_owned(size as u32).await else {
                break;
            };
            if tx.send((chunk, permit)).await.is_err() || failed {
                break;
            }
        }
    });
    ReceiverStream::new(rx).map(|(chunk, _permit)| chunk)
}

fn one_result(app_metadata: Bytes) -> Response<DoPutStream> {
    Response::new(Box::pin(futures::stream::once(async {
        Ok(PutResult { app_metadata })
    })))
}

/// Decodes an uploaded Arrow stream; returns its schema (absent when the
/// client sent only the command) and batches. Messages without an IPC
/// header, such as a descriptor-only first message, carry no data.
async fn decode_upload(
    upload: Upload,
) -> Result<(
    Option<SchemaRef>,
    impl Stream<Item = Result<RecordBatch>> + Send,
)> {
    let watch = upload.watch;
    let abandoned = futures::stream::once(async move {
        watch.broken().then(|| {
            FlightError::Tonic(Box::new(Status::cancelled(
                "the client abandoned the upload before finishing it; nothing was committed",
            )))
        })
    })
    .filter_map(|e| futures::future::ready(e.map(Err)));
    let flight_data = upload
        .data
        .and_then(|data| {
            futures::future::ready(if data.app_metadata.as_ref() == ABORT {
                Err(Status::cancelled(
                    "the client abandoned the upload (it sent \"abort\"); nothing was committed",
                ))
            } else {
                Ok(data)
            })
        })
        .try_filter(|data| futures::future::ready(!data.data_header.is_empty()))
        .map_err(FlightError::from)
        .chain(abandoned);
    let mut batches = FlightRecordBatchStream::new_from_flight_data(flight_data);
    let first = batches.next().await.transpose().map_err(upload_error)?;
    let schema = match &first {
        Some(batch) => Some(batch.schema()),
        None => batches.schema().cloned(),
    };
    let first = first.map(check_backed).transpose()?;
    let rest = batches
        .map_err(upload_error)
        .and_then(|batch| futures::future::ready(check_backed(batch)));
    Ok((schema, futures::stream::iter(first.map(Ok)).chain(rest)))
}

/// Rows a batch may claim without data behind them (all its columns of
/// type Null, or none): an IPC message of a few bytes can claim any length.
const MAX_UNBACKED_ROWS: usize = 1 << 20;
/// Parameter sets one bind may carry (each runs the statement once), their
/// Arrow bytes, and parameters per set.
const MAX_PARAMETER_SETS: usize = 100_000;
const MAX_PARAMETER_BYTES: usize = 16 << 20;
const MAX_PARAMETERS: usize = 1_000;

/// Refuses a batch whose rows are not backed by at least a bit of data
/// each, past [`MAX_UNBACKED_ROWS`].
fn check_backed(batch: RecordBatch) -> Result<RecordBatch> {
    let (rows, bytes) = (batch.num_rows(), arrow_bytes(&batch));
    if rows > MAX_UNBACKED_ROWS && rows / 8 > bytes {
        return Err(Error::ResourceExhausted(format!(
            "a batch of {rows} rows carries only {bytes} bytes of data (columns of type Null, or none); \
             such batches may have at most {MAX_UNBACKED_ROWS} rows: send smaller batches"
        )));
    }
    Ok(batch)
}

/// The parameter rows a client bound, if any, within the bounds on
/// parameters per set, sets and bytes.
async fn decode_parameters(upload: Upload) -> Result<Vec<RecordBatch>> {
    let (schema, batches) = decode_upload(upload).await?;
    if let Some(schema) = &schema
        && schema.fields().len() > MAX_PARAMETERS
    {
        return Err(Error::ResourceExhausted(format!(
            "{} parameters were bound; a statement takes at most {MAX_PARAMETERS}",
            schema.fields().len()
        )));
    }
    let mut batches = std::pin::pin!(batches);
    let (mut sets, mut bytes, mut bound) = (0, 0, Vec::new());
    while let Some(batch) = batches.try_next().await? {
        sets += batch.num_rows();
        bytes += arrow_bytes(&batch);
        if sets > MAX_PARAMETER_SETS || bytes > MAX_PARAMETER_BYTES {
            return Err(Error::ResourceExhausted(format!(
                "the bound parameters exceed {MAX_PARAMETER_SETS} sets or {} MiB; \
                 bind fewer at a time (each set runs the statement once)",
                MAX_PARAMETER_BYTES >> 20
            )));
        }
        bound.push(batch);
    }
    Ok(bound)
}

fn upload_error(e: FlightError) -> Error {
    match e {
        FlightError::Tonic(status) if status.code() == tonic::Code::Cancelled => {
            Error::Cancelled(status.message().to_string())
        }
        FlightError::Tonic(status) if status.code() == tonic::Code::ResourceExhausted => {
            Error::ResourceExhausted(status.message().to_string())
        }
        FlightError::Tonic(status) => {
            Error::invalid(format!("the upload stopped: {}", status.message()))
        }
        other => Error::invalid(format!("the upload is not a valid Arrow stream: {other}")),
    }
}

/// The file chunks in one uploaded batch: the values of its one binary
/// column, in order.
fn csv_chunks(batch: &RecordBatch) -> Result<Vec<Bytes>> {
    let column = match batch.columns() {
        [column] => column,
        columns => {
            return Err(Error::invalid(format!(
                "a CSV upload's batches have one binary column of file chunks, not {} columns",
                columns.len()
            )));
        }
    };
    Ok(match column.data_type() {
        DataType::Binary => shared_values(column.as_binary::<i32>()),
        DataType::LargeBinary => shared_values(column.as_binary::<i64>()),
        DataType::BinaryView => column
            .as_binary_view()
            .iter()
            .flatten()
            .map(Bytes::copy_from_slice)
            .collect(),
        other => {
            return Err(Error::invalid(format!(
                "a CSV upload's column holds binary file chunks, not {other}"
            )));
        }
    })
}

/// An Arrow buffer as the owner of `Bytes`, so chunks are not copied.
struct SharedBuffer(arrow::buffer::Buffer);

impl AsRef<[u8]> for SharedBuffer {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// The non-null values of a binary array, sharing its buffer.
fn shared_values<O: OffsetSizeTrait>(array: &GenericBinaryArray<O>) -> Vec<Bytes> {
    let values = Bytes::from_owner(SharedBuffer(array.values().clone()));
    let offsets = array.value_offsets();
    (0..array.len())
        .filter(|&i| array.is_valid(i))
        .map(|i| values.slice(offsets[i].as_usize()..offsets[i + 1].as_usize()))
        .collect()
}

/// The `lakehouse.format` ingest option: how a new table is stored.
fn table_format(name: &str) -> Result<TableKind> {
    match name.to_ascii_lowercase().as_str() {
        "parquet" => Ok(TableKind::Parquet),
        "lance" => Ok(TableKind::Lance),
        other => Err(Error::invalid(format!(
            "lakehouse.format is {other:?}; use \"parquet\" or \"lance\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefetch_passes_chunks_larger_than_its_budget_in_order() {
        let big = PREFETCH_BYTES + 1;
        let chunks = futures::stream::iter(
            [big, 10, big]
                .into_iter()
                .enumerate()
                .map(|(i, n)| Ok(Bytes::from(vec![i as u8; n]))),
        );
        let out: Vec<Bytes> = prefetch(chunks).try_collect().await.unwrap();
        let shape: Vec<(usize, u8)> = out.iter().map(|c| (c.len(), c[0])).collect();
        assert_eq!(shape, [(big, 0), (10, 1), (big, 2)]);
    }
}
