//! The server's table actions: create a table with its columns, read a
//! table's history, register Parquet files already in the store, merge
//! small files, vacuum old versions, and repair a damaged table.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Field, Schema};
use async_trait::async_trait;
use lakehouse_core::catalog::{Catalog, TableKind, TableRef, VacuumOptions, WriteMode};
use lakehouse_extension::{Access, Action, Result as ActionResult, parse_body, to_json};
use serde::Deserialize;

use super::host_error;
use crate::error::{Error, Result};
use crate::ingest::{EmbedSpec, Ingest, IngestRequest, parse_type};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableBody {
    table: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTableBody {
    table: String,
    columns: Vec<ColumnBody>,
    #[serde(default)]
    embed: Vec<EmbedSpec>,
    format: Option<TableKind>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnBody {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

/// `create_table`.
pub struct CreateTable(pub Ingest);

#[async_trait]
impl Action for CreateTable {
    fn name(&self) -> &str {
        "create_table"
    }

    fn description(&self) -> &str {
        "Creates an empty table (version 1) with the given columns, and the vector columns it fills with \
         embeddings of its text columns on every write."
    }

    fn body(&self) -> &str {
        "{\"table\": \"[schema.]name\", \"columns\": [{\"name\", \"type\"}], \"embed\": [{\"source\", \"target\", \
         \"model\"}], \"format\": \"parquet\"|\"lance\"}; types as in CSV uploads (int64, text, date, vector(384), ...)"
    }

    fn result(&self) -> &str {
        "JSON {table, version, columns: [{name, type}]}"
    }

    fn access(&self) -> Access {
        Access::Write
    }

    async fn run(&self, body: &[u8]) -> ActionResult<Vec<u8>> {
        let body: CreateTableBody = parse_body(self.name(), body)?;
        create_table(&self.0, body).await.map_err(host_error)
    }
}

async fn create_table(ingest: &Ingest, body: CreateTableBody) -> Result<Vec<u8>> {
    let table = TableRef::parse(&body.table)?;
    if body.columns.is_empty() && body.embed.is_empty() {
        return Err(Error::invalid(format!(
            "create_table {table}: give at least one column"
        )));
    }
    let fields = body
        .columns
        .iter()
        .map(|c| {
            let data_type = parse_type(&c.data_type).map_err(|e| {
                Error::invalid(format!("create_table {table}: column {:?}: {e}", c.name))
            })?;
            Ok(Field::new(&c.name, data_type, true))
        })
        .collect::<Result<Vec<_>>>()?;
    let request = IngestRequest {
        table: table.clone(),
        mode: WriteMode::Create,
        idempotency_key: None,
        evolve: false,
        format: body.format,
        embed: body.embed,
    };
    let committed = ingest
        .write(
            request,
            Arc::new(Schema::new(fields)),
            futures::stream::empty(),
        )
        .await?;
    let schema = ingest.catalog().table(&table)?.schema.clone();
    let columns: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    Ok(serde_json::to_vec(&serde_json::json!({
        "table": table.to_string(),
        "version": committed.version,
        "columns": columns,
    }))
    .expect("JSON values serialize"))
}

/// `table_history`.
pub struct TableHistory(pub Arc<Catalog>);

#[async_trait]
impl Action for TableHistory {
    fn name(&self) -> &str {
        "table_history"
    }

    fn description(&self) -> &str {
        "A table's versions, oldest first."
    }

    fn body(&self) -> &str {
        "{\"table\": \"[schema.]name\"}"
    }

    fn result(&self) -> &str {
        "JSON array of {version, committed_at, operation, rows_added, rows_removed, total_rows, bytes, idempotency_key, committed_by}"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    async fn run(&self, body: &[u8]) -> ActionResult<Vec<u8>> {
        let body: TableBody = parse_body(self.name(), body)?;
        let table = TableRef::parse(&body.table).map_err(|e| host_error(e.into()))?;
        to_json(&self.0.history(&table).map_err(|e| host_error(e.into()))?)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VacuumBody {
    table: String,
    retain_hours: Option<f64>,
    min_file_age_secs: Option<u64>,
}

/// `vacuum`.
pub struct Vacuum(pub Arc<Catalog>);

#[async_trait]
impl Action for Vacuum {
    fn name(&self) -> &str {
        "vacuum"
    }

    fn description(&self) -> &str {
        "Removes versions older than a retention (never the newest) and data files no remaining version \
         references."
    }

    fn body(&self) -> &str {
        "{\"table\": \"[schema.]name\", \"retain_hours\": 168, \"min_file_age_secs\": 3600}"
    }

    fn result(&self) -> &str {
        "JSON {table, newest_version, versions_removed, files_removed, bytes_removed}"
    }

    fn access(&self) -> Access {
        Access::Admin
    }

    async fn run(&self, body: &[u8]) -> ActionResult<Vec<u8>> {
        let body: VacuumBody = parse_body(self.name(), body)?;
        vacuum(&self.0, body).await.map_err(host_error)
    }
}

async fn vacuum(catalog: &Catalog, body: VacuumBody) -> Result<Vec<u8>> {
    let defaults = VacuumOptions::default();
    let retain = match body.retain_hours {
        Some(h) if h.is_finite() && h >= 0.0 => Duration::from_secs_f64(h * 3600.0),
        Some(h) => {
            return Err(Error::invalid(format!(
                "retain_hours must be 0 or more, not {h}"
            )));
        }
        None => defaults.retain,
    };
    let options = VacuumOptions {
        retain,
        min_file_age: body
            .min_file_age_secs
            .map_or(defaults.min_file_age, Duration::from_secs),
    };
    let report = catalog
        .vacuum(&TableRef::parse(&body.table)?, &options)
        .await?;
    Ok(serde_json::to_vec(&report).expect("a vacuum report serializes"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactBody {
    table: String,
    min_files: Option<usize>,
}

/// `compact`.
pub struct Compact(pub Ingest);

#[async_trait]
impl Action for Compact {
    fn name(&self) -> &str {
        "compact"
    }

    fn description(&self) -> &str {
        "Merges a Parquet table's small files (fewer rows than a row group, written by this server) into \
         files of the normal layout, as a new version with the same rows; the server also does this in the \
         background (compact_min_files)."
    }

    fn body(&self) -> &str {
        "{\"table\": \"[schema.]name\", \"min_files\": 2}"
    }

    fn result(&self) -> &str {
        "JSON {table, version (null when nothing was merged), files_replaced, files_written, rows}"
    }

    fn access(&self) -> Access {
        Access::Write
    }

    async fn run(&self, body: &[u8]) -> ActionResult<Vec<u8>> {
        let body: CompactBody = parse_body(self.name(), body)?;
        let compacted = async {
            let table = TableRef::parse(&body.table)?;
            self.0.compact(&table, body.min_files.unwrap_or(2)).await
        };
        to_json(&compacted.await.map_err(host_error)?)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    table: String,
    paths: Vec<String>,
}

/// `register_parquet`.
pub struct RegisterParquet(pub Ingest);

#[async_trait]
impl Action for RegisterParquet {
    fn name(&self) -> &str {
        "register_parquet"
    }

    fn description(&self) -> &str {
        "Adds Parquet files already in the store to a table (created when missing) as one version, without \
         copying them; paths the table already references are skipped."
    }

    fn body(&self) -> &str {
        "{\"table\": \"[schema.]name\", \"paths\": [\"imports/part-0.parquet\", ...]}"
    }

    fn result(&self) -> &str {
        "JSON {table, version, files_added, rows_added, already_registered}"
    }

    fn access(&self) -> Access {
        Access::Write
    }

    async fn run(&self, body: &[u8]) -> ActionResult<Vec<u8>> {
        let body: RegisterBody = parse_body(self.name(), body)?;
        let registered = async {
            let table = TableRef::parse(&body.table)?;
            self.0.register_parquet(&table, &body.paths).await
        };
        to_json(&registered.await.map_err(host_error)?)
    }
}

/// `repair_table`.
pub struct RepairTable(pub Arc<Catalog>);

#[async_trait]
impl Action for RepairTable {
    fn name(&self) -> &str {
        "repair_table"
    }

    fn description(&self) -> &str {
        "Rolls a damaged table back to its newest version that can be read and whose data files are all \
         there; the damaged manifests move to _quarantine/, other tables are not touched."
    }

    fn body(&self) -> &str {
        "{\"table\": \"[schema.]name\"}"
    }

    fn result(&self) -> &str {
        "JSON {table, version (null when no good version is left), quarantined: [{table, version, path, detail}]}"
    }

    fn access(&self) -> Access {
        Access::Admin
    }

    async fn run(&self, body: &[u8]) -> ActionResult<Vec<u8>> {
        let body: TableBody = parse_body(self.name(), body)?;
        let repaired = async {
            let table = TableRef::parse(&body.table)?;
            self.0.repair(&table).await
        };
        to_json(&repaired.await.map_err(|e| host_error(e.into()))?)
    }
}
