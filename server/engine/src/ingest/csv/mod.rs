//! CSV upload: bytes in chunks cut anywhere, parsed as they arrive into
//! typed batches, written by the same Parquet path as Arrow ingest, and
//! committed as one version.
//!
//! Types come from, in order: the `columns` the upload names, the existing
//! table's columns, then inference from the first block of records. When a
//! later record needs a wider inferred type, what was written is discarded
//! and the upload is parsed again from a temporary copy with the wider
//! type, so a table never holds a guess that turned out wrong. Nothing is
//! committed until the last byte has parsed.

mod convert;
mod infer;
mod options;
mod records;
mod source;
mod spill;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::info;

pub use options::{CsvOptions, parse_type};

use super::{Ingest, IngestRequest, declared};
use crate::error::{CoreError, Error, Result};
use convert::{Misfit, NullValues, Target, Typing, convert};
use infer::Kind;
use lakehouse_core::catalog::{
    Committed, TableRef, evolve_schema, on_behalf, schema_differences, table_schema_for,
};
use records::{Block, Splitter};
use source::ByteSource;

/// How often a long upload logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What an upload committed: the put result's JSON.
#[derive(Debug, Clone, Serialize)]
pub struct CsvLoaded {
    pub table: String,
    pub version: u64,
    pub rows: u64,
    /// CSV bytes received.
    pub bytes: u64,
    /// The idempotency key had been used: nothing was added.
    pub deduplicated: bool,
}

/// The first records, enough to name and type the columns.
struct Start {
    names: Vec<String>,
    blocks: Vec<Block>,
    ended: bool,
}

/// The columns of the table being written and where each comes from.
#[derive(Debug, Clone)]
struct Layout {
    targets: Vec<Target>,
}

impl Layout {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.targets
                .iter()
                .map(|t| Field::new(&t.name, t.typing.data_type(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn guesses(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.source.is_some() && matches!(t.typing, Typing::Inferred(_)))
    }
}

/// Why one pass over the upload stopped before committing.
enum Stop {
    Widen { target: usize, kind: Kind },
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

impl Ingest {
    /// Parses an uploaded CSV file and commits it as one version of the
    /// options' table.
    pub async fn write_csv<S>(&self, options: CsvOptions, upload: S) -> Result<CsvLoaded>
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin,
    {
        let started = Instant::now();
        let table = options.table()?;
        let dialect = options.dialect()?;
        let nulls = options.null_values();
        let explicit = options.column_types()?;
        let existing = self.catalog.check_write(&table, options.mode.into())?;
        let mut source = ByteSource::new(upload, &spill_dir())?;
        let mut layout: Option<Layout> = None;
        loop {
            let mut splitter = Splitter::new(dialect, options.header);
            let start = read_start(&mut source, &mut splitter, &options, &explicit).await?;
            let current = match layout.take() {
                Some(l) => l,
                None => plan(&table, &options, &explicit, existing.as_deref(), &start)?,
            };
            if !current.guesses() {
                source.drop_copy();
            }
            let request = IngestRequest {
                table: table.clone(),
                mode: options.mode.into(),
                idempotency_key: options.idempotency_key.clone(),
                evolve: options.evolve,
                format: options.format,
                embed: options.embed.clone(),
            };
            let pass = Pass {
                table: &table,
                layout: &current,
                schema: current.schema(),
                nulls: &nulls,
                started,
            };
            match pass
                .run(self, request, start, &mut source, &mut splitter)
                .await
            {
                Ok(committed) => {
                    return Ok(CsvLoaded {
                        table: table.to_string(),
                        version: committed.version,
                        rows: committed.rows,
                        bytes: source.received(),
                        deduplicated: committed.deduplicated,
                    });
                }
                Err(Stop::Widen { target, kind }) => {
                    let mut widened = current.clone();
                    let column = &mut widened.targets[target];
                    info!(
                        table = %table,
                        column = %column.name,
                        from = %column.typing.data_type(),
                        to = %kind.data_type(),
                        "a later CSV record needs a wider type; parsing the upload again"
                    );
                    column.typing = Typing::Inferred(kind);
                    layout = Some(widened);
                    source.rewind().await?;
                }
                Err(Stop::Failed(e)) => return Err(e),
            }
        }
    }
}

/// Where uploads keep their temporary copy: `TMPDIR`, else the OS default.
fn spill_dir() -> PathBuf {
    std::env::temp_dir()
}

/// Reads the header and the first block of records.
async fn read_start<S>(
    source: &mut ByteSource<S>,
    splitter: &mut Splitter,
    options: &CsvOptions,
    explicit: &[(String, DataType)],
) -> Result<Start>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
{
    let mut blocks = Vec::new();
    let mut ended = false;
    while blocks.is_empty() {
        match source.next().await? {
            Some(chunk) => splitter.push(&chunk, &mut blocks)?,
            None => {
                splitter.finish(&mut blocks)?;
                ended = true;
                break;
            }
        }
    }
    let Some(first) = blocks.first() else {
        return Err(Error::BadCsv {
            line: 1,
            column: None,
            detail: "the upload is empty: no records".into(),
        });
    };
    let names = if options.header {
        let names = header_names(first)?;
        blocks[0] = first.without_first_row();
        if blocks[0].rows() == 0 && ended {
            return Err(Error::BadCsv {
                line: 1,
                column: None,
                detail: "the file has a header and no records".into(),
            });
        }
        names
    } else if !explicit.is_empty() {
        if explicit.len() != first.columns() {
            return Err(Error::invalid(format!(
                "columns names {} columns but line 1 has {} fields",
                explicit.len(),
                first.columns()
            )));
        }
        explicit.iter().map(|(n, _)| n.clone()).collect()
    } else {
        (1..=first.columns())
            .map(|i| format!("column_{i}"))
            .collect()
    };
    splitter.set_names(names.clone());
    Ok(Start {
        names,
        blocks,
        ended,
    })
}

/// Column names from the header record; empty ones become `column_N`,
/// repeated ones are refused.
fn header_names(block: &Block) -> Result<Vec<String>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    (0..block.columns())
        .map(|c| {
            let name = block.field(0, c).trim();
            let name = if name.is_empty() {
                format!("column_{}", c + 1)
            } else {
                name.to_string()
            };
            if let Some(first) = seen.insert(name.clone(), c + 1) {
                return Err(Error::BadCsv {
                    line: block.line(0),
                    column: Some(name.clone()),
                    detail: format!(
                        "the header names column {name:?} twice (fields {first} and {})",
                        c + 1
                    ),
                });
            }
            Ok(name)
        })
        .collect()
}

/// Decides every column's source and type.
fn plan(
    table: &TableRef,
    options: &CsvOptions,
    explicit: &[(String, DataType)],
    existing: Option<&Schema>,
    start: &Start,
) -> Result<Layout> {
    for (name, _) in explicit {
        if !start.names.contains(name) {
            return Err(Error::invalid(format!(
                "columns names {name:?}, which is not a column of the file (its columns: {})",
                start.names.join(", ")
            )));
        }
    }
    let typing = |c: usize, name: &str| -> Typing {
        if let Some((_, t)) = explicit.iter().find(|(n, _)| n == name) {
            return Typing::Fixed(t.clone());
        }
        if let Some(field) = existing.and_then(|s| s.field_with_name(name).ok()) {
            return Typing::Fixed(field.data_type().clone());
        }
        let kind = start
            .blocks
            .iter()
            .flat_map(|b| (0..b.rows()).map(move |r| b.field(r, c)))
            .filter(|v| !options.null_values().contains(v))
            .fold(Kind::Null, |k, v| k.join(Kind::of(v)));
        Typing::Inferred(kind)
    };
    let file: Vec<Target> = start
        .names
        .iter()
        .enumerate()
        .map(|(c, name)| Target {
            name: name.clone(),
            source: Some(c),
            typing: typing(c, name),
        })
        .collect();
    let Some(existing) = existing else {
        return Ok(Layout { targets: file });
    };
    // Columns the table fills with embeddings are computed after parsing,
    // so a file need not carry them.
    let filled_later = |f: &Field| declared(f).is_some() && !start.names.contains(f.name());
    let existing = &Schema::new(
        existing
            .fields()
            .iter()
            .filter(|f| !filled_later(f))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let data = Layout {
        targets: file.clone(),
    }
    .schema();
    let conflict = |differences| CoreError::SchemaConflict {
        table: table.clone(),
        differences,
    };
    let columns = if options.evolve {
        evolve_schema(existing, &data).map_err(conflict)?
    } else {
        if let Some(differences) = schema_differences(existing, &data) {
            return Err(conflict(differences).into());
        }
        table_schema_for(existing)
    };
    let targets = columns
        .fields()
        .iter()
        .map(
            |field| match file.iter().find(|t| t.name == *field.name()) {
                Some(t) => t.clone(),
                None => Target {
                    name: field.name().clone(),
                    source: None,
                    typing: Typing::Fixed(field.data_type().clone()),
                },
            },
        )
        .collect();
    Ok(Layout { targets })
}

/// Conversions queued ahead of delivery (each a block on a blocking thread).
const CONVERSIONS_QUEUED: usize = 3;

type Conversion = tokio::task::JoinHandle<Result<RecordBatch, Misfit>>;
type Converted = Result<Result<RecordBatch, Misfit>, tokio::task::JoinError>;

/// Sends the next converted batch, in order, to the writer; false when the
/// writer has stopped (its own error is the one reported).
async fn deliver(
    converted: Converted,
    tx: &mpsc::Sender<Result<RecordBatch>>,
) -> Result<bool, Stop> {
    let batch = match converted {
        Ok(Ok(batch)) => batch,
        Ok(Err(Misfit::Widen { target, kind })) => return Err(Stop::Widen { target, kind }),
        Ok(Err(Misfit::Invalid(e))) => return Err(Stop::Failed(e)),
        Err(e) => {
            return Err(Stop::Failed(Error::internal(format!(
                "converting CSV records failed: {e}"
            ))));
        }
    };
    Ok(tx.send(Ok(batch)).await.is_ok())
}

/// One parse of the whole upload into one table write.
struct Pass<'a> {
    table: &'a TableRef,
    layout: &'a Layout,
    schema: SchemaRef,
    nulls: &'a NullValues,
    started: Instant,
}

impl Pass<'_> {
    async fn run<S>(
        &self,
        ingest: &Ingest,
        request: IngestRequest,
        start: Start,
        source: &mut ByteSource<S>,
        splitter: &mut Splitter,
    ) -> Result<Committed, Stop>
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin,
    {
        let (tx, rx) = mpsc::channel::<Result<RecordBatch>>(2);
        let writer = {
            let ingest = ingest.clone();
            let schema = self.schema.clone();
            // The commit names the uploading user, as the call's own would.
            tokio::spawn(on_behalf(async move {
                ingest.write(request, schema, ReceiverStream::new(rx)).await
            }))
        };
        let produced = self.produce(start, source, splitter, &tx).await;
        if produced.is_err() {
            // An error in the stream makes the writer delete what it wrote;
            // a stream that merely ended would be committed.
            let _ = tx.send(Err(Error::internal("the CSV parse stopped"))).await;
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|e| Error::internal(format!("the CSV writer task failed: {e}")))?;
        produced?;
        Ok(written?)
    }

    /// Splits the upload into blocks, converts them on blocking threads
    /// and hands the batches, in order, to the writer. Splitting, converting
    /// and delivering run side by side so the network never waits on the
    /// encoder. The earliest problem in the file is the one reported.
    async fn produce<S>(
        &self,
        start: Start,
        source: &mut ByteSource<S>,
        splitter: &mut Splitter,
        tx: &mpsc::Sender<Result<RecordBatch>>,
    ) -> Result<(), Stop>
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin,
    {
        let (queue, mut queued) = mpsc::channel::<Conversion>(CONVERSIONS_QUEUED);
        let writer = tx.clone();
        let delivery = tokio::spawn(async move {
            while let Some(conversion) = queued.recv().await {
                if !deliver(conversion.await, &writer).await? {
                    break;
                }
            }
            Ok::<(), Stop>(())
        });
        let split = self.split(start, source, splitter, queue).await;
        let delivered = delivery.await.map_err(|e| {
            Stop::Failed(Error::internal(format!(
                "delivering CSV batches failed: {e}"
            )))
        })?;
        delivered?;
        split
    }

    /// Splits and queues conversions until the upload ends, or delivery
    /// stops taking them.
    async fn split<S>(
        &self,
        start: Start,
        source: &mut ByteSource<S>,
        splitter: &mut Splitter,
        queue: mpsc::Sender<Conversion>,
    ) -> Result<(), Stop>
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin,
    {
        let mut rows = 0u64;
        let mut last_report = Instant::now();
        let mut blocks = start.blocks;
        let mut ended = start.ended;
        let targets = Arc::new(self.layout.targets.clone());
        let nulls = Arc::new(self.nulls.clone());
        loop {
            for block in blocks.drain(..) {
                rows += block.rows() as u64;
                let (targets, schema, nulls) =
                    (targets.clone(), self.schema.clone(), nulls.clone());
                let conversion =
                    tokio::task::spawn_blocking(move || convert(&block, &targets, &schema, &nulls));
                if queue.send(conversion).await.is_err() {
                    return Ok(());
                }
            }
            if ended {
                return Ok(());
            }
            match source.next().await? {
                Some(chunk) => splitter.push(&chunk, &mut blocks)?,
                None => {
                    splitter.finish(&mut blocks)?;
                    ended = true;
                }
            }
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                let secs = self.started.elapsed().as_secs_f64();
                info!(
                    table = %self.table,
                    bytes = source.received(),
                    rows,
                    rows_per_sec = (rows as f64 / secs) as u64,
                    "CSV upload in progress"
                );
            }
        }
    }
}
