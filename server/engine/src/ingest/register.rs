//! Registering Parquet files that are already in the store as a new table
//! version, without copying them (the old catalog's registration path).
//!
//! Each file's footer is read once for its schema, row count and column
//! statistics, which go into the manifest like those of written files. All
//! files of one request must agree on their columns; appending to an
//! existing table checks drift as any append does. Registering a path the
//! table already references adds nothing, so a retried request is harmless.
//! The files stay the caller's: nothing here or in a failed commit deletes
//! them, and vacuum only removes files under the table's own data prefix.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::Schema;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::async_reader::ParquetObjectReader;
use serde::Serialize;
use tracing::info;

use super::Ingest;
use super::file_stats::column_stats;
use crate::error::{CoreError, Error, Result};
use lakehouse_core::catalog::{
    Commit, DataFile, TableRef, WriteMode, schema_differences, table_schema_for,
};

/// What a registration committed.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub table: String,
    /// The table's version after the request (unchanged when nothing new).
    pub version: u64,
    pub files_added: u64,
    pub rows_added: u64,
    /// Paths the table already referenced, skipped.
    pub already_registered: u64,
}

impl Ingest {
    /// Adds the Parquet files at `paths` (relative to the storage root) to
    /// `table`, creating it when missing, as one version.
    pub async fn register_parquet(&self, table: &TableRef, paths: &[String]) -> Result<Registered> {
        if paths.is_empty() {
            return Err(Error::invalid("register_parquet needs at least one path"));
        }
        let known: HashSet<String> = self
            .catalog
            .table(table)
            .map(|m| m.files.iter().map(|f| f.path.clone()).collect())
            .unwrap_or_default();
        let storage = self.catalog.storage_for(table);
        let mut seen = HashSet::new();
        let mut new_paths = Vec::new();
        for path in paths {
            let path = checked_path(&storage, path)?;
            if !known.contains(&path) && seen.insert(path.clone()) {
                new_paths.push(path);
            }
        }
        let already_registered = (paths.len() - new_paths.len()) as u64;
        if new_paths.is_empty() {
            let current = self.catalog.table(table)?;
            return Ok(Registered {
                table: table.to_string(),
                version: current.version,
                files_added: 0,
                rows_added: 0,
                already_registered,
            });
        }
        let mut schema: Option<(String, Arc<Schema>)> = None;
        let mut files = Vec::new();
        for path in &new_paths {
            let (file_schema, file) = self.read_footer(path).await?;
            match &schema {
                None => schema = Some((path.clone(), file_schema)),
                Some((first, reference)) => {
                    if let Some(differences) = schema_differences(reference, &file_schema) {
                        return Err(Error::invalid(format!(
                            "{path} does not have the columns of {first}: {differences}"
                        )));
                    }
                }
            }
            files.push(file);
        }
        let (_, schema) = schema.expect("at least one file was read");
        let committed = self
            .catalog
            .commit(Commit {
                table: table.clone(),
                mode: WriteMode::CreateOrAppend,
                schema: Arc::new(table_schema_for(&schema)),
                files,
                lance: None,
                idempotency_key: None,
                evolve: false,
                storage: Some(storage),
            })
            .await?;
        info!(table = %table, version = committed.version, files = new_paths.len(), rows = committed.rows, "registered Parquet files");
        Ok(Registered {
            table: table.to_string(),
            version: committed.version,
            files_added: new_paths.len() as u64,
            rows_added: committed.rows,
            already_registered,
        })
    }

    /// A file's Arrow schema and manifest entry, from its footer.
    async fn read_footer(&self, path: &str) -> Result<(Arc<Schema>, DataFile)> {
        let store = self.catalog.store().clone();
        let location = Path::from(path);
        let meta = store.head(&location).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                CoreError::FileNotFound(path.to_string()).into()
            }
            other => Error::storage(format!("reading {path}"), other),
        })?;
        let reader = ParquetObjectReader::new(store, location).with_file_size(meta.size);
        let builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(|e| Error::invalid(format!("{path} is not a readable Parquet file: {e}")))?;
        let schema = builder.schema().clone();
        let metadata = builder.metadata();
        let file = DataFile {
            path: path.to_string(),
            rows: metadata.file_metadata().num_rows() as u64,
            bytes: meta.size,
            columns: column_stats(&schema, metadata),
        };
        Ok((schema, file))
    }
}

/// A path inside the store, outside the server's own objects and other
/// tables' data (which their vacuum would delete, or their reads count
/// twice); `storage` is the table's [`lakehouse_core::catalog::Catalog::storage_for`].
fn checked_path(storage: &TableRef, path: &str) -> Result<String> {
    let trimmed = path.trim_start_matches("./");
    let bad = |why: &str| Err(Error::invalid(format!("path {path:?} {why}")));
    if trimmed.is_empty() || trimmed.starts_with('/') || trimmed.contains("://") {
        return bad("must be relative to the storage root, as in \"imports/2024/part-0.parquet\"");
    }
    if trimmed
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return bad("must not contain empty, '.' or '..' segments");
    }
    if ["_catalog/", "_tmp/", "_quarantine/", "_leases/", "lance/"]
        .iter()
        .any(|own| trimmed.starts_with(own))
    {
        return bad("is inside the server's own catalog objects");
    }
    if let ["data", schema, name, _, ..] = trimmed.split('/').collect::<Vec<_>>().as_slice()
        && (*schema != storage.schema || *name != storage.table)
    {
        return bad(&format!(
            "is in the data directory of table {schema}.{name}; register a copy outside data/ instead"
        ));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside_the_store() {
        let table = TableRef::new(None, "t").unwrap();
        assert_eq!(
            checked_path(&table, "./imports/a.parquet").unwrap(),
            "imports/a.parquet"
        );
        assert_eq!(
            checked_path(&table, "data/public/t/a.parquet").unwrap(),
            "data/public/t/a.parquet"
        );
        let other = checked_path(&table, "data/public/other/a.parquet").unwrap_err();
        assert!(other.to_string().contains("table public.other"), "{other}");
        for bad in [
            "/etc/passwd",
            "../x.parquet",
            "a/../../b",
            "s3://b/k",
            "_catalog/x.json",
            "_quarantine/_catalog/x.json",
            "lance/public/v/data/x.lance",
            "data/s/t/x.parquet",
            "a//b",
            "",
        ] {
            assert!(checked_path(&table, bad).is_err(), "{bad}");
        }
    }
}
