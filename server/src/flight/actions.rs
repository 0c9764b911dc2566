//! Lakehouse's own DoAction verbs: JSON in, JSON out.
//!
//! Each action's body is a JSON object; unknown fields are refused so a
//! typo is an error rather than a silently ignored option. `ListActions`
//! lists them with these descriptions (docs/flight-sql.md has the full
//! reference).

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Field, Schema};
use serde::Deserialize;

use crate::auth::{Identity, Role};
use crate::catalog::{Catalog, TableKind, TableRef, VacuumOptions, WriteMode};
use crate::error::{Error, Result};
use crate::extensions::Extensions;
use crate::ingest::{EmbedSpec, Ingest, IngestRequest, parse_type};

pub const TABLE_HISTORY: &str = "table_history";
pub const VACUUM: &str = "vacuum";
pub const REGISTER_PARQUET: &str = "register_parquet";
pub const LIST_EXTENSIONS: &str = "list_extensions";
pub const CREATE_TABLE: &str = "create_table";
pub const REFRESH_CATALOG: &str = "refresh_catalog";
pub const COMPACT: &str = "compact";

/// Every custom action of the server itself, with its description
/// (extensions add theirs).
pub const ACTIONS: [(&str, &str); 7] = [
    (
        CREATE_TABLE,
        "Creates an empty table (version 1) with the given columns, and the vector columns it fills with \
         embeddings of its text columns on every write. Body: {\"table\": \"[schema.]name\", \"columns\": \
         [{\"name\", \"type\"}], \"embed\": [{\"source\", \"target\", \"model\"}], \"format\": \"parquet\"|\"lance\"}; \
         types as in CSV uploads (int64, text, date, vector(384), ...). Result: JSON {table, version, columns: [{name, type}]}.",
    ),
    (
        TABLE_HISTORY,
        "A table's versions, oldest first. Body: {\"table\": \"[schema.]name\"}. \
         Result: JSON array of {version, committed_at, operation, rows_added, total_rows, bytes, idempotency_key}.",
    ),
    (
        VACUUM,
        "Removes versions older than a retention (never the newest) and data files no remaining version \
         references. Body: {\"table\": \"[schema.]name\", \"retain_hours\": 168, \"min_file_age_secs\": 3600}. \
         Result: JSON {table, newest_version, versions_removed, files_removed, bytes_removed}.",
    ),
    (
        COMPACT,
        "Merges a Parquet table's small files (fewer rows than a row group, written by this server) into \
         files of the normal layout, as a new version with the same rows; the server also does this in the \
         background (compact_min_files). Body: {\"table\": \"[schema.]name\", \"min_files\": 2}. \
         Result: JSON {table, version (null when nothing was merged), files_replaced, files_written, rows}.",
    ),
    (
        REGISTER_PARQUET,
        "Adds Parquet files already in the store to a table (created when missing) as one version, without \
         copying them. Body: {\"table\": \"[schema.]name\", \"paths\": [\"imports/part-0.parquet\", ...]}. \
         Paths the table already references are skipped. Result: JSON {table, version, files_added, rows_added, already_registered}.",
    ),
    (
        REFRESH_CATALOG,
        "Reads what other servers on the same storage committed since this one loaded: new schemas, \
         tables and versions. Body: empty or {}. Result: JSON {versions_added}.",
    ),
    (
        LIST_EXTENSIONS,
        "The extensions this server is built with. Body: empty or {}. Result: JSON array of \
         {name, description, enabled, functions: [{name, kind, extension, description}], actions}.",
    ),
];

/// The names of the server's own actions, which extensions may not take.
pub fn own_action_names() -> Vec<&'static str> {
    ACTIONS.iter().map(|(name, _)| *name).collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    table: String,
    paths: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableBody {
    table: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactBody {
    table: String,
    min_files: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VacuumBody {
    table: String,
    retain_hours: Option<f64>,
    min_file_age_secs: Option<u64>,
}

fn parse<'a, T: Deserialize<'a>>(action: &str, body: &'a [u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| Error::invalid(format!("the body of action {action:?} is not valid: {e}")))
}

/// Runs a custom action, the server's own or an extension's; `None` when
/// no action has that name.
pub async fn run(
    ingest: &Ingest,
    extensions: &Extensions,
    identity: &Identity,
    action: &str,
    body: &[u8],
) -> Option<Result<Vec<u8>>> {
    if let Some(role) = own_action_role(action)
        && let Err(refused) = identity.require(role, &format!("the {action} action"))
    {
        return Some(Err(refused));
    }
    let catalog = ingest.catalog();
    let result = match action {
        TABLE_HISTORY => table_history(catalog, body),
        VACUUM => vacuum(catalog, body).await,
        REGISTER_PARQUET => register_parquet(ingest, body).await,
        LIST_EXTENSIONS => list_extensions(extensions, body),
        REFRESH_CATALOG => refresh_catalog(catalog, body).await,
        CREATE_TABLE => create_table(ingest, body).await,
        COMPACT => compact(ingest, body).await,
        _ => return extensions.run(identity, action, body).await,
    };
    Some(result)
}

/// The role each of the server's own actions needs.
fn own_action_role(action: &str) -> Option<Role> {
    match action {
        TABLE_HISTORY | LIST_EXTENSIONS | REFRESH_CATALOG => Some(Role::Reader),
        REGISTER_PARQUET | CREATE_TABLE | COMPACT => Some(Role::Writer),
        VACUUM => Some(Role::Admin),
        _ => None,
    }
}

async fn create_table(ingest: &Ingest, body: &[u8]) -> Result<Vec<u8>> {
    let body: CreateTableBody = parse(CREATE_TABLE, body)?;
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

/// Refuses a body other than nothing or `{}`.
fn expect_empty(action: &str, body: &[u8]) -> Result<()> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let _: EmptyBody = parse(action, body)?;
    }
    Ok(())
}

fn list_extensions(extensions: &Extensions, body: &[u8]) -> Result<Vec<u8>> {
    expect_empty(LIST_EXTENSIONS, body)?;
    serde_json::to_vec(extensions.listed()).map_err(|e| Error::Internal(e.to_string()))
}

async fn refresh_catalog(catalog: &Catalog, body: &[u8]) -> Result<Vec<u8>> {
    expect_empty(REFRESH_CATALOG, body)?;
    let added = catalog.refresh().await?;
    Ok(serde_json::json!({ "versions_added": added })
        .to_string()
        .into_bytes())
}

fn table_history(catalog: &Catalog, body: &[u8]) -> Result<Vec<u8>> {
    let body: TableBody = parse(TABLE_HISTORY, body)?;
    let history = catalog.history(&TableRef::parse(&body.table)?)?;
    Ok(serde_json::to_vec(&history).expect("history serializes"))
}

async fn register_parquet(ingest: &Ingest, body: &[u8]) -> Result<Vec<u8>> {
    let body: RegisterBody = parse(REGISTER_PARQUET, body)?;
    let registered = ingest
        .register_parquet(&TableRef::parse(&body.table)?, &body.paths)
        .await?;
    Ok(serde_json::to_vec(&registered).expect("a registration result serializes"))
}

async fn compact(ingest: &Ingest, body: &[u8]) -> Result<Vec<u8>> {
    let body: CompactBody = parse(COMPACT, body)?;
    let table = TableRef::parse(&body.table)?;
    let done = ingest.compact(&table, body.min_files.unwrap_or(2)).await?;
    Ok(serde_json::to_vec(&done).expect("a compaction report serialises"))
}

async fn vacuum(catalog: &Catalog, body: &[u8]) -> Result<Vec<u8>> {
    let body: VacuumBody = parse(VACUUM, body)?;
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
