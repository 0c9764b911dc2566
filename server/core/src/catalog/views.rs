//! Views: named queries kept in the catalog beside the tables.
//!
//! A view is stored like a table's versions, one immutable JSON object per
//! version under `_catalog/views/<schema>/<view>/`, written with a
//! put-if-absent, so two servers replacing the same view never interleave
//! and the last commit wins whole; a drop is a tombstone version. It holds
//! the query's SQL (planned again at each use, so it reads the newest
//! versions of its tables, unless it names one), the columns it had when
//! created (for catalog listings) and the tables and views it reads (so
//! that no view ends up reading itself).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::manifest::ipc_schema;
use super::{Catalog, TableRef, validate_name};
use crate::error::{Error, Result};

pub(super) const VIEWS_PREFIX: &str = "_catalog/views";

/// One version of a view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct View {
    pub view: TableRef,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    /// The query, as planned at each use.
    pub sql: String,
    /// Names given to the query's columns (`CREATE VIEW v (a, b) AS ...`);
    /// empty when it keeps its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// The query's columns when the view was made.
    #[serde(with = "ipc_schema")]
    pub schema: SchemaRef,
    /// Tables and views the query reads.
    pub reads: Vec<TableRef>,
    /// A tombstone: the view was dropped at this version.
    #[serde(default)]
    pub dropped: bool,
}

/// What makes a view.
#[derive(Debug, Clone)]
pub struct NewView {
    pub view: TableRef,
    pub sql: String,
    pub columns: Vec<String>,
    pub schema: SchemaRef,
    pub reads: Vec<TableRef>,
    /// Replace a view of that name (`CREATE OR REPLACE VIEW`).
    pub or_replace: bool,
    /// Leave a view of that name as it is (`CREATE VIEW IF NOT EXISTS`).
    pub if_not_exists: bool,
}

pub(super) fn view_path(view: &TableRef, version: u64) -> Path {
    Path::from(format!(
        "{VIEWS_PREFIX}/{}/{}/{version:020}.json",
        view.schema, view.table
    ))
}

impl View {
    pub(super) fn from_json(path: &str, bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::CorruptCatalog {
            path: path.to_string(),
            detail: e.to_string(),
        })
    }
}

impl Catalog {
    /// The live view of that name, if there is one.
    pub fn view(&self, view: &TableRef) -> Option<Arc<View>> {
        self.state
            .read()
            .views
            .get(view)
            .filter(|v| !v.dropped)
            .cloned()
    }

    /// The live views whose query names `table`.
    pub fn views_reading(&self, table: &TableRef) -> Vec<TableRef> {
        self.state
            .read()
            .views
            .values()
            .filter(|v| !v.dropped && v.reads.contains(table))
            .map(|v| v.view.clone())
            .collect()
    }

    /// The live views of `schema`, by name.
    pub fn views_in(&self, schema: &str) -> Vec<Arc<View>> {
        self.state
            .read()
            .views
            .values()
            .filter(|v| v.view.schema == schema && !v.dropped)
            .cloned()
            .collect()
    }

    /// Creates (or replaces) a view; false when `if_not_exists` and one
    /// was there.
    pub async fn create_view(&self, new: NewView) -> Result<bool> {
        let name = &new.view;
        validate_name("view", &name.table)?;
        if !self.schema_exists(&name.schema) {
            return Err(Error::SchemaNotFound(name.schema.clone()));
        }
        if self.table_exists(name) {
            return Err(Error::invalid(format!(
                "{name} is a table; a view needs a name no table has"
            )));
        }
        if self.reads_through_views(&new.reads).contains(name) {
            return Err(Error::invalid(format!(
                "view {name} would read itself (through the views it reads)"
            )));
        }
        loop {
            let current = self.state.read().views.get(name).cloned();
            let live = current.as_ref().filter(|v| !v.dropped);
            match live {
                Some(_) if new.if_not_exists => return Ok(false),
                Some(_) if !new.or_replace => return Err(Error::ViewExists(name.clone())),
                _ => {}
            }
            let view = View {
                view: name.clone(),
                version: current.as_ref().map_or(1, |v| v.version + 1),
                created_at: Utc::now(),
                sql: new.sql.clone(),
                columns: new.columns.clone(),
                schema: new.schema.clone(),
                reads: new.reads.clone(),
                dropped: false,
            };
            if self.put_view(&view).await? {
                info!(view = %name, version = view.version, "view created");
                return Ok(true);
            }
        }
    }

    /// Drops a view; false when `if_exists` and there was none.
    pub async fn drop_view(&self, name: &TableRef, if_exists: bool) -> Result<bool> {
        loop {
            let Some(current) = self.view(name) else {
                return if if_exists {
                    Ok(false)
                } else {
                    Err(Error::ViewNotFound(name.clone()))
                };
            };
            let tombstone = View {
                version: current.version + 1,
                created_at: Utc::now(),
                dropped: true,
                ..current.as_ref().clone()
            };
            if self.put_view(&tombstone).await? {
                info!(view = %name, version = tombstone.version, "view dropped");
                return Ok(true);
            }
        }
    }

    /// Writes a view version if no other writer took its number (then
    /// reads what that writer committed and answers false).
    async fn put_view(&self, view: &View) -> Result<bool> {
        let path = view_path(&view.view, view.version);
        let body = serde_json::to_vec_pretty(view).expect("a view always serializes");
        let written = self
            .store
            .put_opts(
                &path,
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match written {
            Ok(_) => {
                self.insert_view(view.clone());
                Ok(true)
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                self.refresh_view(&view.view).await?;
                Ok(false)
            }
            Err(e) => Err(Error::storage(format!("writing view {path}"), e)),
        }
    }

    /// Reads the newest version of a view from the store.
    async fn refresh_view(&self, name: &TableRef) -> Result<()> {
        use futures::TryStreamExt;
        let prefix = Path::from(format!("{VIEWS_PREFIX}/{}/{}", name.schema, name.table));
        let newest = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| Error::storage(format!("listing versions of view {name}"), e))?
            .into_iter()
            .max_by_key(|p| p.filename().map(str::to_string));
        if let Some(path) = newest {
            self.read_view(&path).await?;
        }
        Ok(())
    }

    /// Reads one view version into the state (kept when newer).
    pub(super) async fn read_view(&self, path: &Path) -> Result<()> {
        let bytes = self
            .store
            .get(path)
            .await
            .map_err(|e| Error::storage(format!("reading view {path}"), e))?
            .bytes()
            .await
            .map_err(|e| Error::storage(format!("reading view {path}"), e))?;
        self.insert_view(View::from_json(path.as_ref(), &bytes)?);
        Ok(())
    }

    fn insert_view(&self, view: View) {
        let mut state = self.write_state();
        let newer = state
            .views
            .get(&view.view)
            .is_none_or(|known| known.version < view.version);
        if newer {
            state.views.insert(view.view.clone(), Arc::new(view));
        }
    }

    /// The views `reads` reaches, directly or through other views.
    fn reads_through_views(&self, reads: &[TableRef]) -> BTreeSet<TableRef> {
        let mut seen = BTreeSet::new();
        let mut next: Vec<TableRef> = reads.to_vec();
        while let Some(name) = next.pop() {
            if let Some(view) = self.view(&name)
                && seen.insert(name)
            {
                next.extend(view.reads.iter().cloned());
            }
        }
        seen
    }
}
