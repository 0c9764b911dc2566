//! The catalog as DataFusion sees it: one catalog provider, a schema
//! provider per schema, and a table provider per table version.
//!
//! A vector table is read through Lance's own provider, at the dataset
//! version its manifest pins. A Parquet table is read through its
//! manifest's file list, sizes and row counts:
//! no directory listing and no HEAD requests at query time. Filters are
//! reported inexact so DataFusion keeps them and pushes them into the Parquet
//! scan for row-group and page pruning.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::transform_schema_to_view;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DFResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use lance::datafusion::LanceTableProvider;

use crate::catalog::{Catalog, DataFile, Manifest, TableRef, split_version};
use crate::storage::STORE_URL;
use crate::vectors::VectorTables;

/// The server's one catalog, read live from [`Catalog`].
#[derive(Debug)]
pub struct LakehouseCatalog {
    catalog: Arc<Catalog>,
    vectors: Arc<VectorTables>,
}

impl LakehouseCatalog {
    pub fn new(catalog: Arc<Catalog>, vectors: Arc<VectorTables>) -> Self {
        Self { catalog, vectors }
    }
}

impl CatalogProvider for LakehouseCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.catalog.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.catalog.schema_exists(name).then(|| {
            Arc::new(LakehouseSchema {
                catalog: self.catalog.clone(),
                vectors: self.vectors.clone(),
                schema: name.to_string(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

#[derive(Debug)]
struct LakehouseSchema {
    catalog: Arc<Catalog>,
    vectors: Arc<VectorTables>,
    schema: String,
}

#[async_trait]
impl SchemaProvider for LakehouseSchema {
    fn table_names(&self) -> Vec<String> {
        self.catalog
            .tables_in(&self.schema)
            .iter()
            .map(|m| m.table.table.clone())
            .collect()
    }

    /// `name` is a table, or `table@vN` for the table as of version N.
    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let Ok((base, version)) = split_version(name) else {
            return Ok(None);
        };
        let Ok(table) = TableRef::new(Some(&self.schema), base) else {
            return Ok(None);
        };
        let manifest = match version {
            None => self.catalog.table(&table).ok(),
            Some(v) => self.catalog.version(&table, v).await.ok(),
        };
        let Some(manifest) = manifest else {
            return Ok(None);
        };
        let Some(pinned) = manifest.lance else {
            return Ok(Some(Arc::new(ParquetTable::new(manifest))));
        };
        let dataset = self
            .vectors
            .open(&table, &pinned)
            .await
            .map_err(|e| e.into_datafusion())?;
        Ok(Some(Arc::new(LanceTableProvider::new(
            Arc::new(dataset),
            false,
            false,
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        TableRef::new(Some(&self.schema), name).is_ok_and(|t| self.catalog.table_exists(&t))
    }
}

/// One version of a Parquet table.
///
/// It is scanned with view types (Utf8View, BinaryView) for its string and
/// binary columns, as DataFusion's own Parquet tables are: they decode
/// without copying each value and compare faster (TPC-H SF1 queries that
/// filter or group on strings ran up to 1.4x in-process DataFusion's time
/// before). The catalog keeps the classic types, and results leave the
/// server in them.
#[derive(Debug)]
pub struct ParquetTable {
    manifest: Arc<Manifest>,
    schema: SchemaRef,
}

impl ParquetTable {
    pub fn new(manifest: Arc<Manifest>) -> Self {
        let schema = Arc::new(transform_schema_to_view(&manifest.schema));
        Self { manifest, schema }
    }

    /// What the manifest knows of one file: exact rows, and per column the
    /// null count and bounds recorded at ingest, and the in-memory size of
    /// fixed-width columns.
    ///
    /// The file's total size stays unknown, as DataFusion leaves it for a
    /// Parquet scan with a filter: the compressed size of every column says
    /// little of what a projected, filtered scan yields. Taken as that size,
    /// it made DataFusion repartition both sides of joins it builds from
    /// the small side in-process (TPC-H q16's filtered `part`: 6.9 MB x 20%
    /// over the 1 MB collect threshold, against 40,000 estimated rows).
    fn file_statistics(schema: &SchemaRef, file: &DataFile) -> Statistics {
        let rows = file.rows as usize;
        let column_statistics = schema
            .fields()
            .iter()
            .map(|field| {
                let width = field
                    .data_type()
                    .primitive_width()
                    .map_or(Precision::Absent, |w| Precision::Exact(w * rows));
                let unknown = ColumnStatistics::new_unknown().with_byte_size(width);
                let Some(stats) = file.columns.iter().find(|c| &c.name == field.name()) else {
                    return unknown;
                };
                let bound = |text: &Option<String>| {
                    text.as_ref()
                        .and_then(|t| {
                            ScalarValue::try_from_string(t.clone(), field.data_type()).ok()
                        })
                        .map_or(Precision::Absent, Precision::Exact)
                };
                unknown
                    .with_null_count(Precision::Exact(stats.null_count as usize))
                    .with_min_value(bound(&stats.min))
                    .with_max_value(bound(&stats.max))
            })
            .collect();
        Statistics {
            num_rows: Precision::Exact(rows),
            total_byte_size: Precision::Absent,
            column_statistics,
        }
    }

    /// The table's statistics: the files' merged.
    fn table_statistics(&self, files: &[Statistics]) -> Statistics {
        let schema = &self.schema;
        if files.is_empty() {
            let mut empty = Statistics::new_unknown(schema);
            empty.num_rows = Precision::Exact(0);
            return empty;
        }
        Statistics::try_merge_iter(files, schema)
            .unwrap_or_else(|_| Statistics::new_unknown(schema))
    }
}

#[async_trait]
impl TableProvider for ParquetTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        if self.manifest.files.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let statistics: Vec<Statistics> = self
            .manifest
            .files
            .iter()
            .map(|f| Self::file_statistics(&schema, f))
            .collect();
        let files: Vec<PartitionedFile> = self
            .manifest
            .files
            .iter()
            .zip(&statistics)
            .map(|(f, stats)| {
                PartitionedFile::new(f.path.clone(), f.bytes)
                    .with_statistics(Arc::new(stats.clone()))
            })
            .collect();
        let groups = FileGroup::new(files).split_files(state.config().target_partitions());
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(TableSchema::from_file_schema(schema.clone()));
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, source)
            .with_file_groups(groups)
            .with_statistics(self.table_statistics(&statistics))
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }

    fn statistics(&self) -> Option<Statistics> {
        let schema = &self.schema;
        let files: Vec<Statistics> = self
            .manifest
            .files
            .iter()
            .map(|f| Self::file_statistics(schema, f))
            .collect();
        Some(self.table_statistics(&files))
    }
}
