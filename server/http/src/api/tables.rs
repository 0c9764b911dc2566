//! `GET /v1/tables`, `/v1/tables/{name}` and `/v1/tables/{name}/versions`:
//! the catalog as JSON, from memory (no storage read).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Api, Caller, Problem, rejected};
use lakehouse_core::catalog::{Manifest, TableRef, VersionSummary};

/// A table or view in the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableEntry {
    pub schema: String,
    pub name: String,
    /// `TABLE` or `VIEW`.
    #[serde(rename = "type")]
    pub table_type: String,
    /// `parquet` or `lance` (vector tables); none for a view.
    pub kind: Option<String>,
    /// The newest version; a view's own version.
    pub version: u64,
    /// Rows and bytes of the newest version; none for a view.
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
}

/// Every table and view.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableList {
    pub tables: Vec<TableEntry>,
}

/// A column of a table.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnInfo {
    pub name: String,
    /// The Arrow type.
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
    /// Nulls in the newest version, where the files' statistics say.
    pub null_count: Option<u64>,
    /// The value rows written without the column get (`ALTER TABLE ...
    /// ADD COLUMN ... DEFAULT`).
    pub default: Option<String>,
}

/// One table at its newest version.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableDetail {
    pub schema: String,
    pub name: String,
    pub kind: String,
    pub version: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Data files of the newest version (0 for a vector table, whose
    /// dataset Lance keeps).
    pub files: u64,
    pub columns: Vec<ColumnInfo>,
    /// Versions kept (time travel reads any of them).
    pub versions: u64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
}

/// One version of a table.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionEntry {
    pub version: u64,
    #[schema(value_type = String, format = DateTime)]
    pub committed_at: String,
    /// `create`, `append`, `overwrite`, `drop`, `index`, `compact`,
    /// `delete`, `update`, `merge`, `alter`, `rename`.
    pub operation: String,
    pub rows_added: u64,
    pub rows_removed: u64,
    pub total_rows: u64,
    pub bytes: u64,
    /// The user or token whose request made it.
    pub committed_by: Option<String>,
}

/// Every version of a table, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    pub table: String,
    pub versions: Vec<VersionEntry>,
}

/// Lists every table and view.
#[utoipa::path(
    get,
    path = "/v1/tables",
    tag = "tables",
    responses(
        (status = 200, description = "Every table and view", body = TableList),
        (status = 401, description = "No or wrong credentials", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests in flight", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
pub async fn list(State(api): State<Arc<Api>>, _caller: Caller) -> Json<TableList> {
    let mut tables = Vec::new();
    for schema in api.catalog.schema_names() {
        for manifest in api.catalog.tables_in(&schema) {
            tables.push(TableEntry {
                schema: schema.clone(),
                name: manifest.table.table.clone(),
                table_type: "TABLE".into(),
                kind: Some(manifest.kind.as_str().into()),
                version: manifest.version,
                rows: Some(manifest.total_rows()),
                bytes: Some(manifest.total_bytes()),
            });
        }
        for view in api.catalog.views_in(&schema) {
            tables.push(TableEntry {
                schema: schema.clone(),
                name: view.view.table.clone(),
                table_type: "VIEW".into(),
                kind: None,
                version: view.version,
                rows: None,
                bytes: None,
            });
        }
    }
    tables.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    Json(TableList { tables })
}

/// One table: columns, size and statistics of its newest version.
#[utoipa::path(
    get,
    path = "/v1/tables/{name}",
    tag = "tables",
    params(("name" = String, Path, description = "`table` or `schema.table`")),
    responses(
        (status = 200, description = "The table at its newest version", body = TableDetail),
        (status = 400, description = "Not a valid table name", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong credentials", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such table", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
pub async fn show(
    State(api): State<Arc<Api>>,
    _caller: Caller,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<TableDetail>, Problem> {
    let Path(name) = name.map_err(rejected)?;
    let table = TableRef::parse(&name)?;
    let manifest = api.catalog.table(&table)?;
    let history = api.catalog.history(&table)?;
    let created_at = history
        .first()
        .map_or(manifest.committed_at, |v| v.committed_at);
    Ok(Json(TableDetail {
        schema: table.schema.clone(),
        name: table.table.clone(),
        kind: manifest.kind.as_str().into(),
        version: manifest.version,
        rows: manifest.total_rows(),
        bytes: manifest.total_bytes(),
        files: manifest.files.len() as u64,
        columns: columns(&manifest),
        versions: history.len() as u64,
        created_at: created_at.to_rfc3339(),
        updated_at: manifest.committed_at.to_rfc3339(),
    }))
}

/// Every version of a table still kept, oldest first.
#[utoipa::path(
    get,
    path = "/v1/tables/{name}/versions",
    tag = "tables",
    params(("name" = String, Path, description = "`table` or `schema.table`")),
    responses(
        (status = 200, description = "The table's versions, oldest first", body = VersionList),
        (status = 400, description = "Not a valid table name", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong credentials", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such table", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
pub async fn versions(
    State(api): State<Arc<Api>>,
    _caller: Caller,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<VersionList>, Problem> {
    let Path(name) = name.map_err(rejected)?;
    let table = TableRef::parse(&name)?;
    let history = api.catalog.history(&table)?;
    Ok(Json(VersionList {
        table: table.to_string(),
        versions: history.iter().map(version_entry).collect(),
    }))
}

fn version_entry(v: &VersionSummary) -> VersionEntry {
    VersionEntry {
        version: v.version,
        committed_at: v.committed_at.to_rfc3339(),
        operation: v.operation.as_str().into(),
        rows_added: v.rows_added,
        rows_removed: v.rows_removed,
        total_rows: v.total_rows,
        bytes: v.bytes,
        committed_by: v.committed_by.clone(),
    }
}

/// The columns with their null counts summed over the files that have
/// statistics for them (none when some file has none).
fn columns(manifest: &Manifest) -> Vec<ColumnInfo> {
    let mut nulls: BTreeMap<&str, Option<u64>> = BTreeMap::new();
    for field in manifest.schema.fields() {
        nulls.insert(field.name(), (!manifest.files.is_empty()).then_some(0));
    }
    for file in &manifest.files {
        for (name, count) in nulls.iter_mut() {
            let found = file.columns.iter().find(|c| c.name == *name);
            *count = match (*count, found) {
                (Some(total), Some(stats)) => Some(total + stats.null_count),
                _ => None,
            };
        }
    }
    manifest
        .schema
        .fields()
        .iter()
        .map(|field| ColumnInfo {
            name: field.name().clone(),
            data_type: field.data_type().to_string(),
            nullable: field.is_nullable(),
            null_count: nulls.get(field.name().as_str()).copied().flatten(),
            default: lakehouse_core::catalog::default_text(field).map(str::to_string),
        })
        .collect()
}
