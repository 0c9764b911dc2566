//! The catalog as DataFusion sees it: one catalog provider, a schema
//! provider per schema, and a table provider per table version.
//!
//! A vector table is read through Lance's own provider, at the dataset
//! version its manifest pins. A Parquet table is read through its
//! manifest's file list, sizes and row counts:
//! no directory listing and no HEAD requests at query time. Filters are
//! reported inexact so DataFusion keeps them and pushes them into the Parquet
//! scan for row-group and page pruning.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
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
use serde::{Deserialize, Serialize};

use lance::datafusion::LanceTableProvider;

use super::accelerated::Accelerated;
use super::file_columns::{FileColumns, column_defaults};
use super::vector_defaults::WithDefaults;
use super::views::ViewPlanner;
use crate::vectors::VectorTables;
use lakehouse_core::catalog::{Catalog, DataFile, Manifest, TableRef, file_names, split_version};
use lakehouse_core::storage::STORE_URL;

/// The server's one catalog, read live from [`Catalog`].
#[derive(Debug)]
pub struct LakehouseCatalog {
    catalog: Arc<Catalog>,
    vectors: Arc<VectorTables>,
    views: Arc<ViewPlanner>,
    nullability: Nullability,
    /// The in-memory copies scans read when they hold the version.
    accelerated: Option<Arc<Accelerated>>,
}

/// How a Parquet table's columns are declared to DataFusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nullability {
    /// NOT NULL where the version read holds no null: for reading.
    OfTheVersion,
    /// Every column nullable, as in the catalog: for planning an INSERT,
    /// whose values DataFusion shapes to the target's declared columns.
    Declared,
}

impl LakehouseCatalog {
    pub fn new(
        catalog: Arc<Catalog>,
        vectors: Arc<VectorTables>,
        views: Arc<ViewPlanner>,
        nullability: Nullability,
        accelerated: Option<Arc<Accelerated>>,
    ) -> Self {
        Self {
            catalog,
            vectors,
            views,
            nullability,
            accelerated,
        }
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
                views: self.views.clone(),
                schema: name.to_string(),
                nullability: self.nullability,
                accelerated: self.accelerated.clone(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

#[derive(Debug)]
struct LakehouseSchema {
    catalog: Arc<Catalog>,
    vectors: Arc<VectorTables>,
    views: Arc<ViewPlanner>,
    schema: String,
    nullability: Nullability,
    accelerated: Option<Arc<Accelerated>>,
}

#[async_trait]
impl SchemaProvider for LakehouseSchema {
    fn table_names(&self) -> Vec<String> {
        let tables = self.catalog.tables_in(&self.schema);
        let views = self.catalog.views_in(&self.schema);
        tables
            .iter()
            .map(|m| m.table.table.clone())
            .chain(views.iter().map(|v| v.view.table.clone()))
            .collect()
    }

    /// `name` is a table, `table@vN` for the table as of version N, or a
    /// view.
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
            return match self.catalog.view(&table).filter(|_| version.is_none()) {
                Some(view) => Ok(Some(
                    self.views
                        .provider(&view)
                        .await
                        .map_err(|e| e.into_datafusion())?,
                )),
                None => Ok(None),
            };
        };
        if manifest.lance.is_none() {
            let table = ParquetTable::new(manifest, self.nullability);
            return Ok(Some(Arc::new(match &self.accelerated {
                Some(accelerated) => table.with_acceleration(accelerated.clone()),
                None => table,
            })));
        }
        let dataset = self
            .vectors
            .open(&manifest)
            .await
            .map_err(|e| e.into_datafusion())?;
        let lance = Arc::new(LanceTableProvider::new(Arc::new(dataset), false, false));
        Ok(Some(WithDefaults::wrap(
            lance,
            literal_defaults(&manifest.schema),
        )))
    }

    fn table_exist(&self, name: &str) -> bool {
        TableRef::new(Some(&self.schema), name)
            .is_ok_and(|t| self.catalog.table_exists(&t) || self.catalog.view(&t).is_some())
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
///
/// A column with no null in any file of the version (by the null counts
/// the manifest records) is declared NOT NULL to DataFusion, as the
/// version can never hold one. Table columns are nullable in the catalog,
/// so without this every `NOT IN (subquery)` was planned as a null-aware
/// anti join, which DataFusion may not turn around to build from the small
/// side (TPC-H q16 built it from 118,000 joined rows instead of the 4
/// suppliers, on one partition). Result schemas stay nullable
/// ([`super::QueryEngine::output_schema`]) so they do not change when a
/// later version gains a null.
#[derive(Debug)]
pub struct ParquetTable {
    manifest: Arc<Manifest>,
    nullability: Nullability,
    schema: SchemaRef,
    /// Whether the schema ends with [`FILE_COLUMN`].
    file_column: bool,
    /// How old files' columns are read, after `ALTER TABLE`.
    file_columns: Option<Arc<FileColumns>>,
    /// Per column (by name), the names earlier files record its
    /// statistics under (after a rename).
    earlier_names: HashMap<String, Vec<String>>,
    /// Column defaults, for rows inserted without them.
    defaults: HashMap<String, Expr>,
    /// The in-memory copy of the table, read instead of the files when it
    /// holds the version.
    accelerated: Option<Arc<Accelerated>>,
}

/// The defaults of a version's columns, as DataFusion asks a provider for
/// them.
fn literal_defaults(schema: &Schema) -> HashMap<String, Expr> {
    column_defaults(schema)
        .into_iter()
        .map(|(name, value)| (name, Expr::Literal(value, None)))
        .collect()
}

/// One table version as a scan reads it, serializable: the manifest (its
/// exact file list, schema and statistics) and how its columns are
/// declared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PinnedScan {
    pub manifest: Manifest,
    pub nullability: Nullability,
    pub file_column: bool,
}

/// A column a scan can add after the table's: the position of the row's
/// file in the manifest's list (which files a `DELETE` or `UPDATE` must
/// rewrite).
pub const FILE_COLUMN: &str = "__lakehouse_file";

impl ParquetTable {
    pub fn new(manifest: Arc<Manifest>, nullability: Nullability) -> Self {
        let schema = Arc::new(scan_schema(&manifest, nullability));
        let values = column_defaults(&manifest.schema);
        let defaults = literal_defaults(&manifest.schema);
        let file_columns = FileColumns::of(&manifest.schema, values).map(Arc::new);
        let earlier_names = manifest
            .schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), file_names(f)))
            .filter(|(_, earlier)| !earlier.is_empty())
            .collect();
        Self {
            manifest,
            nullability,
            schema,
            file_column: false,
            file_columns,
            earlier_names,
            defaults,
            accelerated: None,
        }
    }

    /// The version, read from `accelerated`'s copy of the table when it
    /// holds every file of the version.
    pub fn with_acceleration(self, accelerated: Arc<Accelerated>) -> Self {
        Self {
            accelerated: Some(accelerated),
            ..self
        }
    }

    /// The version with [`FILE_COLUMN`] after its columns.
    pub fn with_file_column(manifest: Arc<Manifest>) -> Self {
        let table = Self::new(manifest, Nullability::OfTheVersion);
        let mut fields = table.schema.fields().to_vec();
        fields.push(Arc::new(Field::new(FILE_COLUMN, DataType::UInt64, false)));
        Self {
            schema: Arc::new(Schema::new_with_metadata(
                fields,
                table.schema.metadata().clone(),
            )),
            file_column: true,
            ..table
        }
    }

    /// The version scanned.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// What makes this table again elsewhere (another process of a
    /// cluster): the version, with its exact file list, and how it is read.
    pub fn pinned(&self) -> PinnedScan {
        PinnedScan {
            manifest: self.manifest.as_ref().clone(),
            nullability: self.nullability,
            file_column: self.file_column,
        }
    }

    /// The table a [`PinnedScan`] describes.
    pub fn from_pinned(pinned: PinnedScan) -> Self {
        let manifest = Arc::new(pinned.manifest);
        match pinned.file_column {
            true => Self::with_file_column(manifest),
            false => Self::new(manifest, pinned.nullability),
        }
    }

    /// Whether the version's files are read through a column mapping
    /// (columns added, renamed or retyped by `ALTER TABLE` since some files
    /// were written), which a scan carries as a DataFusion expression
    /// adapter of this crate.
    pub fn maps_file_columns(&self) -> bool {
        self.file_columns.is_some()
    }

    /// The schema of the columns the files hold.
    fn file_schema(&self) -> SchemaRef {
        if self.file_column {
            let columns = self.schema.fields().len() - 1;
            Arc::new(Schema::new_with_metadata(
                self.schema.fields()[..columns].to_vec(),
                self.schema.metadata().clone(),
            ))
        } else {
            self.schema.clone()
        }
    }

    /// What the manifest knows of one file: exact rows, and per column the
    /// null count and bounds recorded at ingest (under the column's name
    /// then, for a renamed one), and the in-memory size of fixed-width
    /// columns.
    ///
    /// The file's total size stays unknown, as DataFusion leaves it for a
    /// Parquet scan with a filter: the compressed size of every column says
    /// little of what a projected, filtered scan yields. Taken as that size,
    /// it made DataFusion repartition both sides of joins it builds from
    /// the small side in-process (TPC-H q16's filtered `part`: 6.9 MB x 20%
    /// over the 1 MB collect threshold, against 40,000 estimated rows).
    fn file_statistics(&self, schema: &SchemaRef, file: &DataFile) -> Statistics {
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
                let earlier = self.earlier_names.get(field.name());
                let Some(stats) = file.columns.iter().find(|c| {
                    &c.name == field.name() || earlier.is_some_and(|e| e.contains(&c.name))
                }) else {
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

    /// The table's statistics: the files' merged (nothing known of the
    /// file column).
    fn table_statistics(&self, files: &[Statistics]) -> Statistics {
        let schema = &self.file_schema();
        let mut merged = if files.is_empty() {
            let mut empty = Statistics::new_unknown(schema);
            empty.num_rows = Precision::Exact(0);
            empty
        } else {
            Statistics::try_merge_iter(files, schema)
                .unwrap_or_else(|_| Statistics::new_unknown(schema))
        };
        if self.file_column {
            merged
                .column_statistics
                .push(ColumnStatistics::new_unknown());
        }
        merged
    }
}

/// The schema a version is scanned with: view types for strings and
/// binaries, and (for reading) NOT NULL for every column each file records
/// no null in.
fn scan_schema(manifest: &Manifest, nullability: Nullability) -> Schema {
    let view = transform_schema_to_view(&manifest.schema);
    if manifest.files.is_empty() || nullability == Nullability::Declared {
        return view;
    }
    let fields: Vec<Field> = view
        .fields()
        .iter()
        .map(|field| {
            let null_free = manifest.files.iter().all(|file| {
                file.columns
                    .iter()
                    .any(|c| &c.name == field.name() && c.null_count == 0)
            });
            field
                .as_ref()
                .clone()
                .with_nullable(field.is_nullable() && !null_free)
        })
        .collect();
    Schema::new_with_metadata(fields, view.metadata().clone())
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
        if self.manifest.files.is_empty() {
            let schema = self.schema();
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        if !self.file_column
            && let Some(accelerated) = &self.accelerated
            && let Some(plan) = accelerated
                .scan(
                    &self.manifest,
                    &self.schema,
                    || {
                        self.statistics()
                            .unwrap_or_else(|| Statistics::new_unknown(&self.schema))
                    },
                    projection,
                    limit,
                    state.config().target_partitions(),
                )
                .map_err(|e| e.into_datafusion())?
        {
            return Ok(plan);
        }
        let schema = self.file_schema();
        let statistics: Vec<Statistics> = self
            .manifest
            .files
            .iter()
            .map(|f| self.file_statistics(&schema, f))
            .collect();
        let files: Vec<PartitionedFile> = self
            .manifest
            .files
            .iter()
            .zip(&statistics)
            .enumerate()
            .map(|(position, (f, stats))| {
                let file = PartitionedFile::new(f.path.clone(), f.bytes);
                let file = if self.file_column {
                    file.with_partition_values(vec![ScalarValue::UInt64(Some(position as u64))])
                } else {
                    file
                };
                file.with_statistics(Arc::new(stats.clone()))
            })
            .collect();
        let groups = FileGroup::new(files).split_files(state.config().target_partitions());
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let table_schema = match self.file_column {
            true => TableSchema::new(
                schema.clone(),
                vec![self.schema.fields()[schema.fields().len()].clone()],
            ),
            false => TableSchema::from_file_schema(schema.clone()),
        };
        let source = format.file_source(table_schema);
        let mut config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, source);
        if let Some(file_columns) = &self.file_columns {
            config = config.with_expr_adapter(Some(file_columns.clone()));
        }
        let config = config
            .with_file_groups(groups)
            .with_statistics(self.table_statistics(&statistics))
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    fn statistics(&self) -> Option<Statistics> {
        let schema = &self.file_schema();
        let files: Vec<Statistics> = self
            .manifest
            .files
            .iter()
            .map(|f| self.file_statistics(schema, f))
            .collect();
        Some(self.table_statistics(&files))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use lakehouse_core::catalog::{ColumnStats, MANIFEST_FORMAT, Operation, TableKind};

    fn file(nulls: &[(&str, u64)]) -> DataFile {
        DataFile {
            path: "data/public/t/f.parquet".into(),
            rows: 10,
            bytes: 100,
            columns: nulls
                .iter()
                .map(|(name, null_count)| ColumnStats {
                    name: name.to_string(),
                    null_count: *null_count,
                    min: None,
                    max: None,
                })
                .collect(),
        }
    }

    fn manifest(files: Vec<DataFile>) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            table: TableRef::new(None, "t").unwrap(),
            version: 1,
            kind: TableKind::Parquet,
            operation: Operation::Create,
            committed_at: Utc::now(),
            idempotency_key: None,
            user: None,
            rows_added: 0,
            rows_removed: 0,
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
                Field::new("added", DataType::Int64, true),
            ])),
            files,
            lance: None,
            storage: None,
        }
    }

    fn nullable(schema: &Schema) -> Vec<(&str, bool)> {
        schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.is_nullable()))
            .collect()
    }

    #[test]
    fn columns_without_a_null_in_any_file_are_scanned_as_not_null() {
        let version = manifest(vec![
            file(&[("id", 0), ("name", 0), ("added", 0)]),
            // An older file: one null name, no statistics for `added`
            // (a column added after it was written, read as nulls).
            file(&[("id", 0), ("name", 1)]),
        ]);
        let schema = scan_schema(&version, Nullability::OfTheVersion);
        assert_eq!(
            nullable(&schema),
            [("id", false), ("name", true), ("added", true)]
        );
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8View);
        let declared = scan_schema(&version, Nullability::Declared);
        assert!(declared.fields().iter().all(|f| f.is_nullable()));
    }

    #[test]
    fn an_empty_version_keeps_every_column_nullable() {
        let schema = scan_schema(&manifest(Vec::new()), Nullability::OfTheVersion);
        assert!(schema.fields().iter().all(|f| f.is_nullable()));
    }
}
