//! Ingest: a stream of record batches in, Parquet files out, then exactly
//! one catalog commit.
//!
//! Decoding (the caller's stream) and encoding (Parquet) run in two tasks
//! joined by a small bounded channel, so they overlap on two cores while
//! memory stays bounded by a few batches. Anything that fails before the
//! commit removes the files it wrote: nothing half-done becomes visible.

mod compact;
mod csv;
mod dictionary;
mod embedding;
mod file_stats;
mod parquet_files;
mod register;
mod row_group_encoder;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tracing::info;

pub use compact::Compacted;
pub use csv::{CsvLoaded, CsvOptions, parse_type};
pub use embedding::{EmbedSpec, declared};
pub use parquet_files::{FileLayout, ParquetFiles};
pub use register::Registered;

use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{CoreError, Error, Result};
use crate::vectors::{VectorTables, WriteRequest, check_vectors_fit, has_vector_column};
use embedding::EmbedPlan;
use lakehouse_core::catalog::{
    Catalog, Commit, Committed, DataFile, TableKind, TableRef, WriteMode, data_prefix,
    default_text, delete_uncommitted, evolve_schema, schema_differences, table_schema_for,
};
use lakehouse_core::types::cast_batch;
use lakehouse_extension::EmbeddingService;

/// Batches in flight between the decoding and the encoding task.
const PIPELINE_DEPTH: usize = 4;

/// One ingest request.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub table: TableRef,
    pub mode: WriteMode,
    pub idempotency_key: Option<String>,
    /// An append may add columns and leave some out.
    pub evolve: bool,
    /// How a new (or replaced) table is stored; by default Lance when it
    /// has a vector column, Parquet otherwise.
    pub format: Option<TableKind>,
    /// Vector columns to fill with embeddings of text columns, declared on
    /// the new table.
    pub embed: Vec<EmbedSpec>,
}

/// Writes streams of batches into catalog tables.
#[derive(Debug, Clone)]
pub struct Ingest {
    catalog: Arc<Catalog>,
    layout: FileLayout,
    /// Where tables with vector columns go; without it every table is
    /// Parquet.
    vectors: Option<Arc<VectorTables>>,
    /// The models that fill embedded columns.
    embeddings: Option<Arc<dyn EmbeddingService>>,
    compactions: Arc<compact::Compactions>,
}

impl Ingest {
    pub fn new(catalog: Arc<Catalog>, layout: FileLayout) -> Self {
        Self {
            catalog,
            layout,
            vectors: None,
            embeddings: None,
            compactions: Arc::default(),
        }
    }

    /// Stores tables with vector columns as Lance datasets.
    pub fn with_vectors(mut self, vectors: Arc<VectorTables>) -> Self {
        self.vectors = Some(vectors);
        self
    }

    /// Fills embedded columns with these models.
    pub fn with_embeddings(mut self, models: Option<Arc<dyn EmbeddingService>>) -> Self {
        self.embeddings = models;
        self
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Writes `batches` (all of `input_schema`) into the request's table and
    /// commits them as one version.
    pub async fn write<S>(
        &self,
        request: IngestRequest,
        input_schema: SchemaRef,
        batches: S,
    ) -> Result<Committed>
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        let started = std::time::Instant::now();
        let existing = self
            .catalog
            .table(&request.table)
            .ok()
            .map(|t| t.schema.clone());
        let embed = EmbedPlan::new(
            &request.table,
            existing.as_deref(),
            &input_schema,
            &request.embed,
            self.embeddings.as_ref(),
        )?;
        let (input_schema, batches) = match (&self.embeddings, embed.is_empty()) {
            (Some(models), false) => {
                let schema = embed.schema(&input_schema);
                let filled = embed.apply(
                    request.table.clone(),
                    models.clone(),
                    schema.clone(),
                    batches,
                );
                (schema, filled.boxed())
            }
            _ => (input_schema, batches.boxed()),
        };
        let table_schema = self.target_schema(&request, &input_schema)?;
        if let Some(vectors) = self.lance_target(&request, &table_schema) {
            return self
                .write_lance(vectors, request, table_schema, batches, started)
                .await;
        }
        let _uploading = self.catalog.uploading(&request.table);
        let storage = self.catalog.storage_for(&request.table);
        let files = self
            .write_files(&storage, table_schema.clone(), batches)
            .await?;

        let written = files.clone();
        let committed = self
            .catalog
            .commit(Commit {
                table: request.table.clone(),
                mode: request.mode,
                schema: table_schema,
                files,
                lance: None,
                idempotency_key: request.idempotency_key,
                evolve: request.evolve,
                storage: Some(storage),
            })
            .await;
        match committed {
            Ok(committed) => {
                log_finished(&request.table, &committed, started);
                self.compact_in_background(&request.table);
                Ok(committed)
            }
            Err(e) => {
                delete_uncommitted(self.catalog.store().as_ref(), &written).await;
                Err(e.into())
            }
        }
    }

    /// Writes `batches` as new Parquet files (in `table_schema`, the
    /// batches aligned to it) under the data prefix of `storage` (a
    /// table's [`Catalog::storage_for`]), not yet committed: on failure
    /// nothing written is left behind.
    pub(crate) async fn write_files<S>(
        &self,
        storage: &TableRef,
        table_schema: SchemaRef,
        batches: S,
    ) -> Result<Vec<DataFile>>
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        let mut files = ParquetFiles::new(
            self.catalog.store().clone(),
            data_prefix(storage),
            table_schema.clone(),
            self.layout.clone(),
        );
        let (tx, mut rx) = mpsc::channel::<RecordBatch>(PIPELINE_DEPTH);
        let encoder = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                if let Err(e) = files.write(&batch).await {
                    files.abort().await;
                    return Err(e);
                }
            }
            Ok(files)
        });

        let fed = feed(batches, &table_schema, &tx).await;
        drop(tx);
        let files = encoder
            .await
            .map_err(|e| Error::internal(format!("ingest encoder task failed: {e}")))?;
        match (fed, files) {
            (Ok(()), Ok(files)) => files.finish().await,
            (Err(e), Ok(files)) => {
                files.abort().await;
                Err(e)
            }
            (_, Err(e)) => Err(e),
        }
    }

    /// The vector store, when this write goes to a Lance dataset: always
    /// for a Lance table that is appended to, and for a new (or replaced)
    /// table the request says is Lance or, when it says nothing, whose
    /// schema has a vector column.
    fn lance_target(&self, request: &IngestRequest, schema: &Schema) -> Option<&Arc<VectorTables>> {
        let vectors = self.vectors.as_ref()?;
        let appending = matches!(request.mode, WriteMode::Append | WriteMode::CreateOrAppend);
        let lance = match self.catalog.table(&request.table) {
            Ok(live) if appending => live.kind == TableKind::Lance,
            _ => match request.format {
                Some(format) => format == TableKind::Lance,
                None => has_vector_column(schema),
            },
        };
        lance.then_some(vectors)
    }

    /// Streams the batches into the table's Lance dataset while they
    /// arrive; a failure of the incoming stream wins over the write's.
    async fn write_lance<S>(
        &self,
        vectors: &Arc<VectorTables>,
        request: IngestRequest,
        table_schema: SchemaRef,
        batches: S,
        started: std::time::Instant,
    ) -> Result<Committed>
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        if request.evolve
            && let Ok(live) = self.catalog.table(&request.table)
            && schema_differences(&live.schema, &table_schema).is_some()
        {
            return Err(Error::NotSupported(format!(
                "adding columns to vector table {} (evolve)",
                request.table
            )));
        }
        let stream_schema = table_schema.clone();
        let (tx, rx) = mpsc::channel::<DFResult<RecordBatch>>(PIPELINE_DEPTH);
        let stream = RecordBatchStreamAdapter::new(table_schema.clone(), ReceiverStream::new(rx));
        // A failed upload must fail Lance's write too: a stream that merely
        // ended would be committed.
        let feeding = async move {
            let mut batches = std::pin::pin!(batches);
            while let Some(batch) = batches.next().await {
                match batch.and_then(|b| align(&b, &table_schema)) {
                    Ok(aligned) => {
                        if tx.send(Ok(aligned)).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        let stop = DataFusionError::Execution(format!("the upload failed: {e}"));
                        let _ = tx.send(Err(stop)).await;
                        return Err(e);
                    }
                }
            }
            Ok(())
        };
        let write = WriteRequest {
            table: &request.table,
            mode: request.mode,
            schema: &stream_schema,
            idempotency_key: request.idempotency_key.as_deref(),
        };
        let (fed, written) = tokio::join!(
            feeding,
            vectors.write(&self.catalog, write, Box::pin(stream))
        );
        fed?;
        let committed = written?;
        log_finished(&request.table, &committed, started);
        Ok(committed)
    }

    /// The schema files are written in: the table's own when appending,
    /// otherwise the table schema derived from the input. Refuses drift
    /// before any byte is written.
    fn target_schema(&self, request: &IngestRequest, input: &SchemaRef) -> Result<SchemaRef> {
        match self.catalog.check_write(&request.table, request.mode)? {
            Some(existing) => {
                check_vectors_fit(&request.table, &existing, input)?;
                let conflict = |differences| CoreError::SchemaConflict {
                    table: request.table.clone(),
                    differences,
                };
                if request.evolve {
                    return Ok(Arc::new(evolve_schema(&existing, input).map_err(conflict)?));
                }
                if let Some(differences) = schema_differences(&existing, input) {
                    return Err(conflict(differences).into());
                }
                Ok(existing)
            }
            None => Ok(Arc::new(table_schema_for(input))),
        }
    }
}

fn log_finished(table: &TableRef, committed: &Committed, started: std::time::Instant) {
    let secs = started.elapsed().as_secs_f64();
    info!(
        table = %table,
        version = committed.version,
        rows = committed.rows,
        seconds = secs,
        rows_per_sec = (committed.rows as f64 / secs.max(1e-9)) as u64,
        "ingest finished"
    );
}

/// Aligns every batch to the table schema (by column name, casting within a
/// type family) and hands it to the encoder.
async fn feed<S>(batches: S, table_schema: &SchemaRef, tx: &mpsc::Sender<RecordBatch>) -> Result<()>
where
    S: Stream<Item = Result<RecordBatch>> + Send,
{
    let mut batches = std::pin::pin!(batches);
    while let Some(batch) = batches.next().await {
        let aligned = align(&batch?, table_schema)?;
        if tx.send(aligned).await.is_err() {
            // The encoder stopped; its own error is reported by the caller.
            return Ok(());
        }
    }
    Ok(())
}

/// The values of a column a batch lacks: its default, else nulls.
fn missing_column(field: &Field, rows: usize) -> Result<ArrayRef> {
    match default_text(field) {
        Some(text) => {
            let value = ScalarValue::try_from_string(text.to_string(), field.data_type())?;
            Ok(value.to_array_of_size(rows)?)
        }
        None => Ok(new_null_array(field.data_type(), rows)),
    }
}

/// Orders `batch`'s columns as the table's; a column the batch lacks
/// (possible only when the schema evolves, or after `ALTER TABLE ... ADD`)
/// is filled with its default, else nulls.
pub(crate) fn align(batch: &RecordBatch, table_schema: &SchemaRef) -> Result<RecordBatch> {
    let (fields, columns): (Vec<_>, Vec<_>) = table_schema
        .fields()
        .iter()
        .map(|f| match batch.schema().index_of(f.name()) {
            Ok(i) => Ok((batch.schema().field(i).clone(), batch.column(i).clone())),
            Err(_) => Ok((f.as_ref().clone(), missing_column(f, batch.num_rows())?)),
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    let projected =
        RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)?;
    Ok(cast_batch(&projected, table_schema)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use parquet::arrow::ParquetRecordBatchStreamBuilder;
    use parquet::arrow::async_reader::ParquetObjectReader;

    /// A reader of one data file of a table.
    pub(crate) async fn file_reader(
        catalog: &Catalog,
        file: &lakehouse_core::catalog::DataFile,
    ) -> ParquetRecordBatchStreamBuilder<ParquetObjectReader> {
        let reader = ParquetObjectReader::new(catalog.store().clone(), file.path.as_str().into())
            .with_file_size(file.bytes);
        ParquetRecordBatchStreamBuilder::new(reader).await.unwrap()
    }

    fn row_group_rows(builder: &ParquetRecordBatchStreamBuilder<ParquetObjectReader>) -> Vec<i64> {
        builder
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect()
    }
    fn batch(ids: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("id", DataType::Int64, false),
        ]));
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(Int64Array::from(ids)),
            ],
        )
        .unwrap()
    }

    async fn setup(layout: FileLayout) -> (Arc<Catalog>, Ingest) {
        let catalog = Arc::new(Catalog::load(Arc::new(InMemory::new())).await.unwrap());
        (catalog.clone(), Ingest::new(catalog, layout))
    }

    fn request(mode: WriteMode) -> IngestRequest {
        IngestRequest {
            table: TableRef::new(None, "t").unwrap(),
            mode,
            idempotency_key: None,
            evolve: false,
            format: None,
            embed: Vec::new(),
        }
    }

    /// An in-memory store whose disk fills up on demand: while `full`, a
    /// data file cannot be written (ENOSPC), as on a full local disk.
    #[derive(Debug, Default)]
    struct FillingDisk {
        inner: InMemory,
        full: std::sync::atomic::AtomicBool,
    }

    impl FillingDisk {
        fn refuse(&self, location: &object_store::path::Path) -> object_store::Result<()> {
            if self.full.load(std::sync::atomic::Ordering::SeqCst)
                && location.as_ref().starts_with("data/")
            {
                return Err(object_store::Error::Generic {
                    store: "FillingDisk",
                    source: Box::new(std::io::Error::from(std::io::ErrorKind::StorageFull)),
                });
            }
            Ok(())
        }
    }

    impl std::fmt::Display for FillingDisk {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("FillingDisk")
        }
    }

    #[async_trait::async_trait]
    impl object_store::ObjectStore for FillingDisk {
        async fn put_opts(
            &self,
            location: &object_store::path::Path,
            payload: object_store::PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.refuse(location)?;
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &object_store::path::Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.refuse(location)?;
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &object_store::path::Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<
                'static,
                object_store::Result<object_store::path::Path>,
            >,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>
        {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &object_store::path::Path,
            to: &object_store::path::Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn a_full_disk_fails_the_upload_as_a_limit_and_leaves_the_table_as_it_was() {
        let disk = Arc::new(FillingDisk::default());
        let catalog = Arc::new(Catalog::load(disk.clone()).await.unwrap());
        let ingest = Ingest::new(catalog.clone(), FileLayout::default());
        let rows =
            |ids: std::ops::Range<i64>| futures::stream::iter(vec![Ok(batch(ids.collect()))]);
        ingest
            .write(
                request(WriteMode::Create),
                batch(vec![]).schema(),
                rows(0..10),
            )
            .await
            .unwrap();
        let append = || {
            ingest.write(
                request(WriteMode::Append),
                batch(vec![]).schema(),
                rows(10..20),
            )
        };
        disk.full.store(true, std::sync::atomic::Ordering::SeqCst);
        let refused = append().await.unwrap_err();
        let text = refused.to_string();
        assert!(
            matches!(refused, Error::ResourceExhausted(_)),
            "{refused:?}"
        );
        assert!(
            text.contains("the storage is full")
                && text.contains("data/public/t/")
                && text.contains("nothing was committed"),
            "{text}"
        );
        let table = TableRef::new(None, "t").unwrap();
        let m = catalog.table(&table).unwrap();
        assert_eq!((m.version, m.total_rows()), (1, 10));
        let read: Vec<RecordBatch> = file_reader(&catalog, &m.files[0])
            .await
            .build()
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(read.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);
        disk.full.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(append().await.unwrap().version, 2);
    }

    #[tokio::test]
    async fn rolls_files_at_the_size_bound_and_commits_once() {
        let (catalog, ingest) = setup(FileLayout {
            target_file_bytes: 1,
            row_group_rows: 2,
            ..FileLayout::default()
        })
        .await;
        let input = futures::stream::iter((0..5).map(|i| Ok(batch(vec![i, i + 100]))));
        let committed = ingest
            .write(request(WriteMode::Create), batch(vec![]).schema(), input)
            .await
            .unwrap();
        assert_eq!((committed.version, committed.rows), (1, 10));
        let m = catalog.table(&TableRef::new(None, "t").unwrap()).unwrap();
        assert_eq!(m.files.len(), 5);
        assert!(m.files.iter().all(|f| f.rows == 2 && f.bytes > 0));
    }

    #[tokio::test]
    async fn splits_batches_into_row_groups_and_keeps_every_row_in_order() {
        let (catalog, ingest) = setup(FileLayout {
            target_file_bytes: 1 << 30,
            row_group_rows: 3,
            ..FileLayout::default()
        })
        .await;
        let input = futures::stream::iter(vec![Ok(batch((0..10).collect())), Ok(batch(vec![10]))]);
        ingest
            .write(request(WriteMode::Create), batch(vec![]).schema(), input)
            .await
            .unwrap();
        let m = catalog.table(&TableRef::new(None, "t").unwrap()).unwrap();
        assert_eq!(m.files.len(), 1);
        let builder = file_reader(&catalog, &m.files[0]).await;
        let groups = row_group_rows(&builder);
        assert_eq!(groups, vec![3, 3, 3, 2]);
        let read: Vec<RecordBatch> = builder.build().unwrap().try_collect().await.unwrap();
        let read = arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
        assert_eq!(read.columns(), batch((0..11).collect()).columns());
    }

    #[tokio::test]
    async fn row_groups_close_at_their_byte_bound_too() {
        let (catalog, ingest) = setup(FileLayout {
            target_file_bytes: 1 << 30,
            row_group_rows: 1000,
            row_group_bytes: 80,
            ..FileLayout::default()
        })
        .await;
        // 8 bytes a row: about 10 rows fit in 80 bytes.
        let input = futures::stream::iter(vec![Ok(batch((0..95).collect()))]);
        ingest
            .write(request(WriteMode::Create), batch(vec![]).schema(), input)
            .await
            .unwrap();
        let m = catalog.table(&TableRef::new(None, "t").unwrap()).unwrap();
        let builder = file_reader(&catalog, &m.files[0]).await;
        let groups = row_group_rows(&builder);
        assert!(
            groups.len() >= 9 && groups.iter().all(|&rows| rows <= 10),
            "{groups:?}"
        );
        assert_eq!(groups.iter().sum::<i64>(), 95);
    }

    #[tokio::test]
    async fn a_failing_stream_commits_nothing_and_leaves_no_files() {
        let (catalog, ingest) = setup(FileLayout {
            target_file_bytes: 1,
            row_group_rows: 1000,
            ..FileLayout::default()
        })
        .await;
        let input = futures::stream::iter(vec![
            Ok(batch(vec![1])),
            Err(Error::invalid("client went away")),
        ]);
        let err = ingest
            .write(request(WriteMode::Create), batch(vec![]).schema(), input)
            .await;
        assert!(err.unwrap_err().to_string().contains("client went away"));
        assert!(!catalog.table_exists(&TableRef::new(None, "t").unwrap()));
        let left: Vec<_> = catalog.store().list(None).collect().await;
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn appends_align_columns_by_name() {
        let (catalog, ingest) = setup(FileLayout::default()).await;
        let first = futures::stream::iter(vec![Ok(batch(vec![1]))]);
        ingest
            .write(request(WriteMode::Create), batch(vec![]).schema(), first)
            .await
            .unwrap();
        let reordered = batch(vec![2]).project(&[1, 0]).unwrap();
        let schema = reordered.schema();
        let second = futures::stream::iter(vec![Ok(reordered)]);
        ingest
            .write(request(WriteMode::Append), schema, second)
            .await
            .unwrap();
        assert_eq!(
            catalog
                .table(&TableRef::new(None, "t").unwrap())
                .unwrap()
                .total_rows(),
            2
        );
    }
}
