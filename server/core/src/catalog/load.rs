//! Loading the catalog from the store, and reading what other servers
//! committed since (refresh): the store is the only source of truth, and
//! the in-memory state is rebuilt from its manifests.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tracing::{debug, info};

use super::damage::manifest_version;
use super::*;
use crate::error::{Error, Result};

impl Catalog {
    /// Rebuilds the catalog from everything under `_catalog/` in the store.
    pub async fn load(store: Arc<dyn ObjectStore>) -> Result<Self> {
        let started = std::time::Instant::now();
        let catalog = Self {
            store,
            state: RwLock::new(State::default()),
            generation: AtomicU64::new(0),
            changed: tokio::sync::watch::Sender::new(0),
            commit_locks: Mutex::new(HashMap::new()),
            local_dir: None,
            activity: Arc::default(),
        };
        let objects = catalog.list_catalog().await?;

        let mut schemas = BTreeSet::from([DEFAULT_SCHEMA.to_string()]);
        let mut manifests = Vec::new();
        let mut views = BTreeMap::new();
        for path in objects {
            let parts: Vec<&str> = path.as_ref().split('/').collect();
            match parts.as_slice() {
                ["_catalog", "schemas", file] => {
                    if let Some(name) = file.strip_suffix(".json") {
                        schemas.insert(name.to_string());
                    }
                }
                ["_catalog", "tables", _, _, file] if file.ends_with(".json") => {
                    manifests.push(path.clone())
                }
                ["_catalog", "views", schema, view, file] if file.ends_with(".json") => {
                    newest_view(&mut views, schema, view, &path);
                }
                _ => debug!(%path, "ignoring unknown object under _catalog"),
            }
        }
        let count = manifests.len();
        catalog.write_state().schemas = schemas;
        catalog.apply_manifests(manifests).await?;
        catalog.read_views(views.into_values()).await?;
        let state = catalog.state.read();
        info!(
            schemas = state.schemas.len(),
            tables = state.tables.values().filter(|t| t.live().is_some()).count(),
            versions = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "catalog loaded"
        );
        drop(state);
        Ok(catalog)
    }

    pub(super) async fn read_manifest(&self, path: Path) -> Result<Manifest> {
        let bytes = self
            .store
            .get(&path)
            .await
            .map_err(|e| Error::storage(format!("reading manifest {path}"), e))?
            .bytes()
            .await
            .map_err(|e| Error::storage(format!("reading manifest {path}"), e))?;
        Manifest::from_json(path.as_ref(), &bytes)
    }

    /// Reads versions of `table` that other writers committed since this
    /// process last looked.
    pub async fn refresh_table(&self, table: &TableRef) -> Result<()> {
        let known = self.state.read().newest_known(table);
        let newer: Vec<Path> = self
            .store
            .list(Some(&table_prefix(table)))
            .map_ok(|meta| meta.location)
            .try_filter(|path| {
                let version = path
                    .filename()
                    .and_then(|f| f.strip_suffix(".json"))
                    .and_then(|v| v.parse::<u64>().ok());
                futures::future::ready(version.is_some_and(|v| v > known))
            })
            .try_collect()
            .await
            .map_err(|e| Error::storage(format!("listing versions of {table}"), e))?;
        self.apply_manifests(newer).await
    }

    /// Reads what other servers on the same store committed since this one
    /// loaded or last refreshed: new schemas, tables and versions (drops
    /// included). Returns how many versions were new.
    pub async fn refresh(&self) -> Result<usize> {
        let objects = self.list_catalog().await?;
        let (schemas, newer, views) = {
            let state = self.state.read();
            let mut schemas = Vec::new();
            let mut newer = Vec::new();
            let mut views = BTreeMap::new();
            for path in objects {
                let parts: Vec<&str> = path.as_ref().split('/').collect();
                match parts.as_slice() {
                    ["_catalog", "schemas", file] => {
                        if let Some(name) = file.strip_suffix(".json")
                            && !state.schemas.contains(name)
                        {
                            schemas.push(name.to_string());
                        }
                    }
                    ["_catalog", "tables", schema, table, file] => {
                        let version = file
                            .strip_suffix(".json")
                            .and_then(|v| v.parse::<u64>().ok());
                        let Ok(table) = TableRef::new(Some(schema), table) else {
                            continue;
                        };
                        let known = state.newest_known(&table);
                        if version.is_some_and(|v| v > known) {
                            newer.push(path.clone());
                        }
                    }
                    ["_catalog", "views", schema, view, file] if file.ends_with(".json") => {
                        newest_view(&mut views, schema, view, &path);
                    }
                    _ => {}
                }
            }
            views.retain(|name, (version, _)| {
                state
                    .views
                    .get(name)
                    .is_none_or(|known| known.version < *version)
            });
            (schemas, newer, views)
        };
        let added = newer.len() + views.len();
        self.write_state().schemas.extend(schemas);
        self.apply_manifests(newer).await?;
        self.read_views(views.into_values()).await?;
        if added > 0 {
            info!(versions = added, "catalog refreshed from the store");
        }
        Ok(added)
    }

    /// Reads the given view versions.
    async fn read_views(&self, views: impl Iterator<Item = (u64, Path)>) -> Result<()> {
        for (_, path) in views {
            self.read_view(&path).await?;
        }
        Ok(())
    }

    /// Every object under `_catalog`: schema markers and manifests.
    async fn list_catalog(&self) -> Result<Vec<Path>> {
        self.store
            .list(Some(&Path::from("_catalog")))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| Error::storage("listing the catalog", e))
    }

    /// Reads manifests (32 at a time) and folds them into the state; one
    /// that cannot be decoded is recorded as damage (see `damage`), not
    /// an error, so one torn file never stops the catalog.
    pub(super) async fn apply_manifests(&self, paths: Vec<Path>) -> Result<()> {
        let read: Vec<(Path, Result<Manifest>)> = futures::stream::iter(paths)
            .map(|path| async move {
                let manifest = self.read_manifest(path.clone()).await;
                (path, manifest)
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let mut state = self.write_state();
        for (path, manifest) in read {
            match manifest {
                Ok(manifest) => {
                    state.schemas.insert(manifest.table.schema.clone());
                    insert_manifest(&mut state, manifest);
                }
                Err(Error::CorruptCatalog { path: file, detail }) => {
                    let Some((table, version)) = manifest_version(&path) else {
                        return Err(Error::CorruptCatalog { path: file, detail });
                    };
                    state.schemas.insert(table.schema.clone());
                    state.record_damage(table, version, &file, &detail);
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }
}

/// Keeps, per view, the path of its newest version seen in a listing.
fn newest_view(views: &mut BTreeMap<TableRef, (u64, Path)>, schema: &str, view: &str, path: &Path) {
    let version = path
        .filename()
        .and_then(|f| f.strip_suffix(".json"))
        .and_then(|v| v.parse::<u64>().ok());
    let (Some(version), Ok(name)) = (version, TableRef::new(Some(schema), view)) else {
        return;
    };
    if views.get(&name).is_none_or(|(known, _)| *known < version) {
        views.insert(name, (version, path.clone()));
    }
}
