//! A query's result as an HTTP body, streamed batch by batch in the format
//! asked for: JSON (schema, rows as objects, row count), NDJSON, CSV, Arrow
//! IPC stream or Parquet. Each batch is encoded as it comes and its bytes
//! sent at once, so memory stays at a batch (a Parquet row group) however
//! large the result.
//!
//! An error after the first bytes were sent cannot change the status: a
//! JSON answer ends with an `error` member (a problem document) and NDJSON
//! with an `{"error": ...}` line, so the document stays readable and says
//! what happened; CSV, Arrow and Parquet bodies are cut off, which every
//! reader of those formats reports as an error.

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use super::Problem;
use lakehouse_engine::error::Result;

/// Rows per Parquet row group of an answer: what the encoder holds.
const PARQUET_ROW_GROUP_ROWS: usize = 65_536;

/// The answer formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
    Arrow,
    Parquet,
}

impl Format {
    pub const NAMES: &'static str = "json, ndjson, csv, arrow, parquet";

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "json" => Self::Json,
            "ndjson" | "jsonl" => Self::Ndjson,
            "csv" => Self::Csv,
            "arrow" | "ipc" => Self::Arrow,
            "parquet" => Self::Parquet,
            _ => return None,
        })
    }

    /// The first format an `Accept` header names (none: JSON).
    pub fn from_accept(accept: &str) -> Option<Self> {
        accept.split(',').find_map(|part| {
            let media = part.split(';').next().unwrap_or("").trim();
            Some(match media.to_ascii_lowercase().as_str() {
                "application/json" | "*/*" | "application/*" => Self::Json,
                "application/x-ndjson" | "application/jsonl" => Self::Ndjson,
                "text/csv" => Self::Csv,
                "application/vnd.apache.arrow.stream" => Self::Arrow,
                "application/vnd.apache.parquet" => Self::Parquet,
                _ => return None,
            })
        })
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => "application/vnd.apache.arrow.stream",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }

    fn encoder(self, schema: &SchemaRef) -> Result<Box<dyn Encoder>> {
        Ok(match self {
            Self::Json => Box::new(JsonEncoder::new(schema)),
            Self::Ndjson => Box::new(NdjsonEncoder),
            Self::Csv => Box::new(CsvEncoder::new(schema)?),
            Self::Arrow => Box::new(ArrowEncoder::new(schema)?),
            Self::Parquet => Box::new(ParquetEncoder::new(schema)?),
        })
    }
}

/// Encodes `batches` of `schema` in `format`, as body chunks.
pub fn encode<S>(
    format: Format,
    schema: SchemaRef,
    batches: S,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + use<S>>
where
    S: Stream<Item = Result<RecordBatch>> + Send + Unpin + 'static,
{
    let mut encoder = format.encoder(&schema)?;
    let start = encoder.start()?;
    struct State<S> {
        batches: S,
        encoder: Box<dyn Encoder>,
        rows: u64,
        done: bool,
    }
    let state = State {
        batches,
        encoder,
        rows: 0,
        done: false,
    };
    let body = futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        let encoded = match state.batches.next().await {
            Some(Ok(batch)) => {
                state.rows += batch.num_rows() as u64;
                state.encoder.batch(&batch)
            }
            Some(Err(error)) => Err(error),
            None => {
                state.done = true;
                state.encoder.finish(state.rows)
            }
        };
        let chunk = match encoded {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(error) => {
                state.done = true;
                let problem = Problem::from(error);
                match state.encoder.failed(state.rows, &problem) {
                    Some(bytes) => Ok(Bytes::from(bytes)),
                    None => Err(std::io::Error::other(problem.detail)),
                }
            }
        };
        Some((chunk, state))
    });
    Ok(futures::stream::once(async move { Ok(Bytes::from(start)) })
        .chain(body)
        .filter(|chunk| futures::future::ready(!matches!(chunk, Ok(bytes) if bytes.is_empty()))))
}

/// One format's encoder: bytes for the start, each batch and the end.
trait Encoder: Send {
    fn start(&mut self) -> Result<Vec<u8>>;
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>>;
    fn finish(&mut self, rows: u64) -> Result<Vec<u8>>;
    /// The bytes that end the answer with `problem`, when the format can
    /// say so; none: the body is cut off.
    fn failed(&mut self, rows: u64, problem: &Problem) -> Option<Vec<u8>>;
}

/// A buffer the Arrow and Parquet writers write into, drained after each
/// batch.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock())
    }
}

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A column as the JSON answer describes it.
#[derive(Serialize)]
struct Column<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    data_type: String,
    nullable: bool,
}

/// The columns of `schema`, as JSON.
fn columns_json(schema: &SchemaRef) -> serde_json::Value {
    let columns: Vec<Column> = schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect();
    serde_json::json!(columns)
}

/// Rows as JSON objects, one per line, nulls written out.
fn json_lines(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(Vec::new());
    writer.write(batch)?;
    writer.finish()?;
    Ok(writer.into_inner())
}

/// `{"schema": {"fields": [...]}, "rows": [{...}, ...], "row_count": n}`.
struct JsonEncoder {
    columns: serde_json::Value,
    first: bool,
}

impl JsonEncoder {
    fn new(schema: &SchemaRef) -> Self {
        Self {
            columns: columns_json(schema),
            first: true,
        }
    }
}

impl Encoder for JsonEncoder {
    fn start(&mut self) -> Result<Vec<u8>> {
        Ok(format!("{{\"schema\":{{\"fields\":{}}},\"rows\":[", self.columns).into_bytes())
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        let lines = json_lines(batch)?;
        let mut out = Vec::with_capacity(lines.len() + 16);
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if !self.first {
                out.push(b',');
            }
            self.first = false;
            out.extend_from_slice(line);
        }
        Ok(out)
    }

    fn finish(&mut self, rows: u64) -> Result<Vec<u8>> {
        Ok(format!("],\"row_count\":{rows}}}").into_bytes())
    }

    fn failed(&mut self, rows: u64, problem: &Problem) -> Option<Vec<u8>> {
        let problem = serde_json::to_string(problem).ok()?;
        Some(format!("],\"row_count\":{rows},\"error\":{problem}}}").into_bytes())
    }
}

/// One JSON object per row and line.
struct NdjsonEncoder;

impl Encoder for NdjsonEncoder {
    fn start(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        json_lines(batch)
    }

    fn finish(&mut self, _rows: u64) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn failed(&mut self, _rows: u64, problem: &Problem) -> Option<Vec<u8>> {
        let line = serde_json::json!({ "error": problem });
        Some(format!("{line}\n").into_bytes())
    }
}

/// CSV with a header line.
struct CsvEncoder {
    writer: arrow::csv::Writer<Shared>,
    buffer: Shared,
    schema: SchemaRef,
}

impl CsvEncoder {
    fn new(schema: &SchemaRef) -> Result<Self> {
        let buffer = Shared::default();
        let writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(buffer.clone());
        Ok(Self {
            writer,
            buffer,
            schema: schema.clone(),
        })
    }
}

impl Encoder for CsvEncoder {
    fn start(&mut self) -> Result<Vec<u8>> {
        // The header, even for an empty result.
        self.writer
            .write(&RecordBatch::new_empty(self.schema.clone()))?;
        Ok(self.buffer.take())
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        self.writer.write(batch)?;
        Ok(self.buffer.take())
    }

    fn finish(&mut self, _rows: u64) -> Result<Vec<u8>> {
        Ok(self.buffer.take())
    }

    fn failed(&mut self, _rows: u64, _problem: &Problem) -> Option<Vec<u8>> {
        None
    }
}

/// An Arrow IPC stream.
struct ArrowEncoder {
    writer: arrow::ipc::writer::StreamWriter<Shared>,
    buffer: Shared,
}

impl ArrowEncoder {
    fn new(schema: &SchemaRef) -> Result<Self> {
        let buffer = Shared::default();
        let writer = arrow::ipc::writer::StreamWriter::try_new(buffer.clone(), schema)?;
        Ok(Self { writer, buffer })
    }
}

impl Encoder for ArrowEncoder {
    fn start(&mut self) -> Result<Vec<u8>> {
        Ok(self.buffer.take())
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        self.writer.write(batch)?;
        Ok(self.buffer.take())
    }

    fn finish(&mut self, _rows: u64) -> Result<Vec<u8>> {
        self.writer.finish()?;
        Ok(self.buffer.take())
    }

    fn failed(&mut self, _rows: u64, _problem: &Problem) -> Option<Vec<u8>> {
        None
    }
}

/// A Parquet file, zstd, written row group by row group.
struct ParquetEncoder {
    writer: Option<ArrowWriter<Shared>>,
    buffer: Shared,
}

impl ParquetEncoder {
    fn new(schema: &SchemaRef) -> Result<Self> {
        let buffer = Shared::default();
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(buffer.clone(), schema.clone(), Some(properties))?;
        Ok(Self {
            writer: Some(writer),
            buffer,
        })
    }
}

impl Encoder for ParquetEncoder {
    fn start(&mut self) -> Result<Vec<u8>> {
        Ok(self.buffer.take())
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        if let Some(writer) = &mut self.writer {
            writer.write(batch)?;
        }
        Ok(self.buffer.take())
    }

    fn finish(&mut self, _rows: u64) -> Result<Vec<u8>> {
        if let Some(writer) = self.writer.take() {
            writer.close()?;
        }
        Ok(self.buffer.take())
    }

    fn failed(&mut self, _rows: u64, _problem: &Problem) -> Option<Vec<u8>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use lakehouse_engine::error::Error;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .unwrap()
    }

    async fn body(format: Format, batches: Vec<Result<RecordBatch>>) -> Vec<u8> {
        let schema = batch().schema();
        let stream = encode(format, schema, futures::stream::iter(batches)).unwrap();
        let chunks: Vec<_> = stream.collect().await;
        chunks
            .into_iter()
            .map(|c| c.unwrap())
            .flat_map(|b| b.to_vec())
            .collect()
    }

    #[tokio::test]
    async fn json_has_columns_rows_and_count_and_says_when_it_failed() {
        let text = body(Format::Json, vec![Ok(batch()), Ok(batch())]).await;
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(value["row_count"], 4);
        assert_eq!(value["rows"][1], serde_json::json!({"id": 2, "name": null}));
        assert_eq!(value["schema"]["fields"][0]["type"], "Int64");
        let failed = body(
            Format::Json,
            vec![
                Ok(batch()),
                Err(Error::ResourceExhausted("too many".into())),
            ],
        )
        .await;
        let value: serde_json::Value = serde_json::from_slice(&failed).unwrap();
        assert_eq!(value["error"]["status"], 429);
        assert_eq!(value["row_count"], 2);
    }

    #[tokio::test]
    async fn csv_arrow_and_parquet_read_back() {
        let csv = String::from_utf8(body(Format::Csv, vec![Ok(batch())]).await).unwrap();
        assert_eq!(csv, "id,name\n1,a\n2,\n");
        let empty = String::from_utf8(body(Format::Csv, vec![]).await).unwrap();
        assert_eq!(empty, "id,name\n");
        let ipc = body(Format::Arrow, vec![Ok(batch()), Ok(batch())]).await;
        let reader = arrow::ipc::reader::StreamReader::try_new(&ipc[..], None).unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 4);
        let parquet = Bytes::from(body(Format::Parquet, vec![Ok(batch())]).await);
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(parquet, 1024).unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 2);
    }

    #[test]
    fn accept_headers_pick_the_format() {
        assert_eq!(Format::from_accept("text/csv"), Some(Format::Csv));
        assert_eq!(
            Format::from_accept("text/html, application/vnd.apache.arrow.stream;q=0.9"),
            Some(Format::Arrow)
        );
        assert_eq!(Format::from_accept("*/*"), Some(Format::Json));
        assert_eq!(Format::from_accept("image/png"), None);
    }
}
