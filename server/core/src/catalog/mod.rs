//! The versioned catalog: schemas, tables, and for each table an ordered list
//! of immutable versions.
//!
//! The object store is the only source of truth. A commit writes data files
//! first (the caller does that), then the version's manifest with a
//! put-if-absent: the manifest is the commit point, so a crash before it
//! leaves only orphan files and never a half-visible version. Two writers
//! racing for one version number: one wins; the other re-reads the table and
//! re-bases an append on top, or fails a create/overwrite with a conflict.
//!
//! The in-memory state is a cache of the store, rebuilt from it at start.
//! This module holds that state and reads it; `commit` writes versions,
//! `load` rebuilds and refreshes the state from the store, `vacuum` removes
//! what no version needs. It knows nothing of SQL, Flight or Parquet
//! encoding.

mod activity;
mod author;
mod columns;
mod commit;
mod compat;
mod damage;
mod load;
mod manifest;
mod names;
mod rename;
mod rewrite;
mod vacuum;
mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use object_store::ObjectStore;
use object_store::path::Path;
use parking_lot::{Mutex, RwLock};

pub use activity::{Activity, LEASE_AFTER, LEASE_EXPIRY, Reading, Uploading};
pub use author::{acting_as, author, on_behalf};
pub use columns::{ColumnChange, ColumnNames, alter_stored_schema, default_text, file_names};
pub use commit::{Commit, Committed, LanceWrite, RowCounts, WriteMode, delete_uncommitted};
pub use compat::{evolve_schema, schema_differences, table_schema_for, types_compatible};
pub use damage::{Damage, Repaired};
pub use manifest::{
    ColumnStats, DataFile, LanceData, MANIFEST_FORMAT, Manifest, Operation, TableKind,
    VersionSummary,
};
pub use names::{
    CATALOG_NAME, DEFAULT_SCHEMA, MAX_NAME_LEN, SYSTEM_SCHEMAS, TableRef, split_version,
    validate_name,
};
pub use rewrite::Rewrite;
pub use vacuum::{VacuumOptions, VacuumReport};
pub use views::{NewView, View};

use crate::error::{Error, Result};

const SCHEMAS_PREFIX: &str = "_catalog/schemas";
const TABLES_PREFIX: &str = "_catalog/tables";

/// Where the data files of a table live, relative to the storage root.
pub fn data_prefix(table: &TableRef) -> Path {
    Path::from(format!("data/{}/{}", table.schema, table.table))
}

fn manifest_path(table: &TableRef, version: u64) -> Path {
    Path::from(format!(
        "{TABLES_PREFIX}/{}/{}/{version:020}.json",
        table.schema, table.table
    ))
}

fn table_prefix(table: &TableRef) -> Path {
    Path::from(format!("{TABLES_PREFIX}/{}/{}", table.schema, table.table))
}

fn schema_path(schema: &str) -> Path {
    Path::from(format!("{SCHEMAS_PREFIX}/{schema}.json"))
}

#[derive(Debug)]
struct TableState {
    /// Newest version, which may be a drop.
    latest: Arc<Manifest>,
    /// Every version still in the store, oldest first.
    versions: BTreeMap<u64, VersionSummary>,
}

impl TableState {
    fn new(manifest: Manifest) -> Self {
        let versions = BTreeMap::from([(manifest.version, VersionSummary::from(&manifest))]);
        Self {
            latest: Arc::new(manifest),
            versions,
        }
    }

    fn apply(&mut self, manifest: Manifest) {
        self.versions
            .insert(manifest.version, VersionSummary::from(&manifest));
        if manifest.version > self.latest.version {
            self.latest = Arc::new(manifest);
        }
    }

    fn live(&self) -> Option<&Arc<Manifest>> {
        (!self.latest.is_dropped()).then_some(&self.latest)
    }

    /// The version an idempotency key produced, if it is still in history.
    fn version_for_key(&self, key: &str) -> Option<u64> {
        self.versions
            .values()
            .find(|v| v.idempotency_key.as_deref() == Some(key))
            .map(|v| v.version)
    }
}

#[derive(Debug, Default)]
struct State {
    schemas: BTreeSet<String>,
    tables: BTreeMap<TableRef, TableState>,
    /// Manifests that could not be read, by table and version.
    damaged: BTreeMap<TableRef, BTreeMap<u64, Damage>>,
    /// The newest version of every view, which may be a drop.
    views: BTreeMap<TableRef, Arc<View>>,
}

/// The catalog of one storage location.
#[derive(Debug)]
pub struct Catalog {
    store: Arc<dyn ObjectStore>,
    state: RwLock<State>,
    /// Counts changes to `state` (commits, schemas, refreshes from other
    /// servers): equal before and after some reading means nothing changed
    /// in between.
    generation: AtomicU64,
    /// Wakes the watchers of [`Self::changes`] after each change to
    /// `state`, with the generation it made.
    changed: tokio::sync::watch::Sender<u64>,
    /// Serialises commits to one table inside this process; across
    /// processes the put-if-absent does the same job.
    commit_locks: Mutex<HashMap<TableRef, Arc<tokio::sync::Mutex<()>>>>,
    /// The store's directory when it is local, for what only the file
    /// system shows (abandoned upload parts).
    local_dir: Option<std::path::PathBuf>,
    /// Reads and uploads in flight, which vacuum leaves alone.
    activity: Arc<Activity>,
}

/// The state held for a change; dropping it releases the lock, then tells
/// the watchers.
struct StateWrite<'a> {
    state: Option<parking_lot::RwLockWriteGuard<'a, State>>,
    changed: &'a tokio::sync::watch::Sender<u64>,
    generation: u64,
}

impl std::ops::Deref for StateWrite<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        self.state.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for StateWrite<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.state.as_mut().expect("held until dropped")
    }
}

impl Drop for StateWrite<'_> {
    fn drop(&mut self) {
        drop(self.state.take());
        self.changed.send_replace(self.generation);
    }
}

impl Catalog {
    /// Tells the catalog that its store is the local directory `dir`.
    pub fn with_local_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.local_dir = dir;
        self
    }

    /// The count of changes so far; see [`Self::write_state`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The state, to change: the generation moves on as the lock is taken,
    /// so a reader that sees one generation before and after its reads
    /// read no change. The watchers of [`Self::changes`] are woken once the
    /// guard is dropped, when the change can be read.
    fn write_state(&self) -> StateWrite<'_> {
        let state = self.state.write();
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        StateWrite {
            state: Some(state),
            changed: &self.changed,
            generation,
        }
    }

    /// Wakes on every change to the catalog (commits, drops, renames,
    /// views, refreshes from other servers) with the generation it made;
    /// what changed is read from the catalog itself.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Marks `version` of `table` as being read until the guard drops, so
    /// that vacuum keeps it and its files.
    pub fn reading(&self, table: &TableRef, version: u64) -> Reading {
        self.activity.reading(table, version)
    }

    /// Marks an upload to `table` as in flight until the guard drops, so
    /// that vacuum keeps the files it writes before it commits.
    pub fn uploading(&self, table: &TableRef) -> Uploading {
        self.activity.uploading(self.store.clone(), table)
    }

    pub fn schema_names(&self) -> Vec<String> {
        self.state.read().schemas.iter().cloned().collect()
    }

    pub fn schema_exists(&self, schema: &str) -> bool {
        self.state.read().schemas.contains(schema)
    }

    /// The newest version of every live table in `schema`, by name.
    pub fn tables_in(&self, schema: &str) -> Vec<Arc<Manifest>> {
        self.state
            .read()
            .tables
            .iter()
            .filter(|(t, _)| t.schema == schema)
            .filter_map(|(_, s)| s.live().cloned())
            .collect()
    }

    /// The newest version of a live table.
    pub fn table(&self, table: &TableRef) -> Result<Arc<Manifest>> {
        let state = self.state.read();
        if let Some(damage) = state.blocking_damage(table) {
            return Err(damage);
        }
        match state.tables.get(table).and_then(TableState::live) {
            Some(m) => Ok(m.clone()),
            None if !state.schemas.contains(&table.schema) => {
                Err(Error::SchemaNotFound(table.schema.clone()))
            }
            None => Err(Error::TableNotFound(table.clone())),
        }
    }

    /// The name `table`'s files are written under: a live table's own
    /// storage; for a new table its name, unless another table (one
    /// renamed from it) still holds files there, then a fresh name.
    pub fn storage_for(&self, table: &TableRef) -> TableRef {
        let state = self.state.read();
        if let Some(live) = state.tables.get(table).and_then(TableState::live) {
            return live.storage().clone();
        }
        if state.sharing(table, table).is_empty() {
            return table.clone();
        }
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        TableRef {
            schema: table.schema.clone(),
            table: format!("{}-{}", table.table, &fresh[..8]),
        }
    }

    pub fn table_exists(&self, table: &TableRef) -> bool {
        self.table(table).is_ok()
    }

    /// The version an idempotency key already made on a table, if any.
    pub fn version_for_key(&self, table: &TableRef, key: &str) -> Option<u64> {
        self.state.read().tables.get(table)?.version_for_key(key)
    }

    /// Every version of a table still in the store, oldest first; a
    /// dropped table keeps its history until vacuumed.
    pub fn history(&self, table: &TableRef) -> Result<Vec<VersionSummary>> {
        let state = self.state.read();
        let Some(t) = state.tables.get(table) else {
            return Err(if state.schemas.contains(&table.schema) {
                Error::TableNotFound(table.clone())
            } else {
                Error::SchemaNotFound(table.schema.clone())
            });
        };
        Ok(t.versions.values().cloned().collect())
    }

    /// The version of `table` current at `time`: the newest committed at
    /// or before it, to the microsecond (as history shows commit times),
    /// which must be readable (see [`Catalog::check_version`]).
    pub fn version_at(&self, table: &TableRef, time: DateTime<Utc>) -> Result<u64> {
        let history = self.history(table)?;
        let micros = time.timestamp_micros();
        let Some(current) = history
            .iter()
            .rev()
            .find(|v| v.committed_at.timestamp_micros() <= micros)
        else {
            let detail = match history.first() {
                Some(oldest) => format!(
                    "the oldest version kept, {}, was committed at {} (older ones were never made or were removed by vacuum)",
                    oldest.version,
                    oldest.committed_at.to_rfc3339()
                ),
                None => "it has no version".to_string(),
            };
            return Err(Error::invalid(format!(
                "table {table} has no version as of {}: {detail}",
                time.to_rfc3339()
            )));
        };
        self.check_version(table, current.version)?;
        Ok(current.version)
    }

    /// Checks, from memory, that `version` of `table` can be read: it is
    /// still in the store and is not a drop. Planning checks this; only
    /// reading the version fetches its manifest.
    pub fn check_version(&self, table: &TableRef, version: u64) -> Result<()> {
        let not_found = |detail: &str| Error::VersionNotFound {
            table: table.clone(),
            version,
            detail: detail.to_string(),
        };
        let state = self.state.read();
        let t = state
            .tables
            .get(table)
            .ok_or_else(|| Error::TableNotFound(table.clone()))?;
        match t.versions.get(&version) {
            None => Err(not_found(
                "no such version (never committed, or removed by vacuum)",
            )),
            Some(s) if s.operation == Operation::Drop => {
                Err(not_found("the table was dropped at this version"))
            }
            Some(_) => Ok(()),
        }
    }

    /// The table as of `version` (see [`Catalog::check_version`]).
    pub async fn version(&self, table: &TableRef, version: u64) -> Result<Arc<Manifest>> {
        self.check_version(table, version)?;
        if let Some(latest) = self
            .state
            .read()
            .tables
            .get(table)
            .map(|t| t.latest.clone())
            && latest.version == version
        {
            return Ok(latest);
        }
        Ok(Arc::new(
            self.read_manifest(manifest_path(table, version)).await?,
        ))
    }
}

impl State {
    /// The tables other than `except` whose files are stored under
    /// `storage` (renamed from it, or the name a table was renamed from).
    fn sharing(&self, storage: &TableRef, except: &TableRef) -> Vec<TableRef> {
        self.tables
            .iter()
            .filter(|(name, t)| *name != except && t.latest.storage() == storage)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

fn insert_manifest(state: &mut State, manifest: Manifest) {
    match state.tables.get_mut(&manifest.table) {
        Some(existing) => existing.apply(manifest),
        None => {
            state
                .tables
                .insert(manifest.table.clone(), TableState::new(manifest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    fn schema(cols: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn commit(table: &TableRef, mode: WriteMode, rows: u64, key: Option<&str>) -> Commit {
        Commit {
            table: table.clone(),
            mode,
            schema: schema(&[("a", DataType::Int64)]),
            files: vec![DataFile {
                path: format!(
                    "data/{}/{}/{}.parquet",
                    table.schema,
                    table.table,
                    uuid::Uuid::new_v4()
                ),
                rows,
                bytes: 10,
                columns: vec![],
            }],
            lance: None,
            idempotency_key: key.map(str::to_string),
            evolve: false,
            storage: None,
        }
    }

    #[tokio::test]
    async fn versions_accumulate_and_survive_a_reload() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::load(store.clone()).await.unwrap();
        let t = TableRef::new(None, "t").unwrap();
        assert_eq!(
            catalog
                .commit(commit(&t, WriteMode::Create, 5, None))
                .await
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            catalog
                .commit(commit(&t, WriteMode::Append, 7, None))
                .await
                .unwrap()
                .version,
            2
        );
        let reloaded = Catalog::load(store).await.unwrap();
        let m = reloaded.table(&t).unwrap();
        assert_eq!((m.version, m.total_rows(), m.files.len()), (2, 12, 2));
    }

    #[tokio::test]
    async fn watchers_wake_after_a_commit_with_it_readable() {
        let catalog = Arc::new(Catalog::load(Arc::new(InMemory::new())).await.unwrap());
        let t = TableRef::new(None, "t").unwrap();
        let mut changes = catalog.changes();
        changes.mark_unchanged();
        let watcher = {
            let (catalog, t) = (catalog.clone(), t.clone());
            tokio::spawn(async move {
                changes.changed().await.unwrap();
                let generation = *changes.borrow_and_update();
                (generation, catalog.table(&t).map(|m| m.version).ok())
            })
        };
        catalog
            .commit(commit(&t, WriteMode::Create, 5, None))
            .await
            .unwrap();
        let (generation, version) = watcher.await.unwrap();
        assert!(generation >= 1 && generation <= catalog.generation());
        assert_eq!(version, Some(1));
    }

    #[tokio::test]
    async fn modes_are_enforced() {
        let catalog = Catalog::load(Arc::new(InMemory::new())).await.unwrap();
        let t = TableRef::new(None, "t").unwrap();
        assert!(matches!(
            catalog.commit(commit(&t, WriteMode::Append, 1, None)).await,
            Err(Error::TableNotFound(_))
        ));
        catalog
            .commit(commit(&t, WriteMode::Create, 1, None))
            .await
            .unwrap();
        assert!(matches!(
            catalog.commit(commit(&t, WriteMode::Create, 1, None)).await,
            Err(Error::TableExists(_))
        ));
        let replaced = catalog
            .commit(commit(&t, WriteMode::Overwrite, 3, None))
            .await
            .unwrap();
        assert_eq!(catalog.table(&t).unwrap().total_rows(), 3);
        assert_eq!(replaced.version, 2);
    }

    #[tokio::test]
    async fn schema_drift_names_the_columns() {
        let catalog = Catalog::load(Arc::new(InMemory::new())).await.unwrap();
        let t = TableRef::new(None, "t").unwrap();
        catalog
            .commit(commit(&t, WriteMode::Create, 1, None))
            .await
            .unwrap();
        let mut drift = commit(&t, WriteMode::Append, 1, None);
        drift.schema = schema(&[("a", DataType::Utf8), ("b", DataType::Int32)]);
        let err = catalog.commit(drift).await.unwrap_err().to_string();
        assert!(
            err.contains("added columns: b (Int32)") && err.contains("retyped columns: a"),
            "{err}"
        );
        assert_eq!(catalog.table(&t).unwrap().version, 1);
    }

    #[tokio::test]
    async fn an_idempotency_key_adds_rows_once() {
        let catalog = Catalog::load(Arc::new(InMemory::new())).await.unwrap();
        let t = TableRef::new(None, "t").unwrap();
        let first = catalog
            .commit(commit(&t, WriteMode::CreateOrAppend, 4, Some("k")))
            .await
            .unwrap();
        let again = catalog
            .commit(commit(&t, WriteMode::CreateOrAppend, 4, Some("k")))
            .await
            .unwrap();
        assert_eq!(
            again,
            Committed {
                version: first.version,
                rows: 4,
                deduplicated: true
            }
        );
        assert_eq!(catalog.table(&t).unwrap().total_rows(), 4);
    }

    /// Two catalogs on one store, both knowing table `t` at version 1.
    async fn two_catalogs_with_a_table() -> (Catalog, Catalog, TableRef) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let one = Catalog::load(store.clone()).await.unwrap();
        let two = Catalog::load(store).await.unwrap();
        let t = TableRef::new(None, "t").unwrap();
        one.commit(commit(&t, WriteMode::Create, 1, None))
            .await
            .unwrap();
        two.refresh_table(&t).await.unwrap();
        (one, two, t)
    }

    #[tokio::test]
    async fn two_catalogs_on_one_store_rebase_appends() {
        let (one, two, t) = two_catalogs_with_a_table().await;
        one.commit(commit(&t, WriteMode::Append, 2, None))
            .await
            .unwrap();
        let v = two
            .commit(commit(&t, WriteMode::Append, 3, None))
            .await
            .unwrap();
        assert_eq!(v.version, 3);
        assert_eq!(two.table(&t).unwrap().total_rows(), 6);
    }

    #[tokio::test]
    async fn a_commit_on_a_base_is_never_rebased() {
        let (one, two, t) = two_catalogs_with_a_table().await;
        one.commit_on(commit(&t, WriteMode::Append, 2, None), 1)
            .await
            .unwrap();
        // The second catalog still sees version 1 newest; the store says 2.
        let moved = two
            .commit_on(commit(&t, WriteMode::Append, 3, None), 1)
            .await
            .unwrap_err();
        assert!(
            matches!(
                moved,
                Error::BaseMoved {
                    base: 1,
                    newest: 2,
                    ..
                }
            ),
            "{moved}"
        );
        // It read version 2 on the way: a commit on it lands.
        let v = two
            .commit_on(commit(&t, WriteMode::Append, 3, None), 2)
            .await
            .unwrap();
        assert_eq!((v.version, two.table(&t).unwrap().total_rows()), (3, 6));
        let stale = one
            .commit_on(commit(&t, WriteMode::Append, 4, None), 2)
            .await
            .unwrap_err();
        assert!(matches!(stale, Error::BaseMoved { .. }), "{stale}");
    }
    #[tokio::test]
    async fn dropped_tables_disappear_and_can_be_recreated() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::load(store.clone()).await.unwrap();
        let t = TableRef::new(None, "t").unwrap();
        catalog
            .commit(commit(&t, WriteMode::Create, 1, None))
            .await
            .unwrap();
        assert!(catalog.drop_table(&t, false).await.unwrap());
        assert!(matches!(catalog.table(&t), Err(Error::TableNotFound(_))));
        assert!(!catalog.drop_table(&t, true).await.unwrap());
        let again = catalog
            .commit(commit(&t, WriteMode::Create, 2, None))
            .await
            .unwrap();
        assert_eq!(again.version, 3);
        assert!(Catalog::load(store).await.unwrap().table_exists(&t));
    }

    #[tokio::test]
    async fn history_time_travel_and_vacuum() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::load(store.clone()).await.unwrap();
        let t = TableRef::new(None, "t").unwrap();
        for (mode, rows) in [
            (WriteMode::Create, 5),
            (WriteMode::Append, 7),
            (WriteMode::Overwrite, 3),
        ] {
            let c = commit(&t, mode, rows, None);
            for f in &c.files {
                store
                    .put(
                        &Path::from(f.path.as_str()),
                        PutPayload::from_static(b"0123456789"),
                    )
                    .await
                    .unwrap();
            }
            catalog.commit(c).await.unwrap();
        }
        let history = catalog.history(&t).unwrap();
        let summary: Vec<(u64, Operation, u64, u64)> = history
            .iter()
            .map(|v| (v.version, v.operation, v.rows_added, v.total_rows))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, Operation::Create, 5, 5),
                (2, Operation::Append, 7, 12),
                (3, Operation::Overwrite, 3, 3)
            ]
        );
        assert_eq!(catalog.version(&t, 1).await.unwrap().total_rows(), 5);
        assert_eq!(catalog.version(&t, 2).await.unwrap().files.len(), 2);
        assert!(matches!(
            catalog.version(&t, 9).await,
            Err(Error::VersionNotFound { .. })
        ));

        let keep_recent = VacuumOptions {
            retain: std::time::Duration::from_secs(3600),
            min_file_age: std::time::Duration::ZERO,
        };
        let report = catalog.vacuum(&t, &keep_recent).await.unwrap();
        assert_eq!(
            (report.versions_removed, report.files_removed),
            (0, 0),
            "recent versions stay readable"
        );

        let everything_old = VacuumOptions {
            retain: std::time::Duration::ZERO,
            min_file_age: std::time::Duration::ZERO,
        };
        let report = catalog.vacuum(&t, &everything_old).await.unwrap();
        assert_eq!(
            (
                report.newest_version,
                report.versions_removed,
                report.files_removed
            ),
            (3, 2, 2)
        );
        assert_eq!(report.bytes_removed, 20);
        assert_eq!(catalog.table(&t).unwrap().total_rows(), 3);
        assert!(matches!(
            catalog.version(&t, 1).await,
            Err(Error::VersionNotFound { .. })
        ));
        let reloaded = Catalog::load(store).await.unwrap();
        assert_eq!(reloaded.history(&t).unwrap().len(), 1);
        assert_eq!(reloaded.table(&t).unwrap().version, 3);
    }

    #[tokio::test]
    async fn a_dropped_table_keeps_its_history_and_old_versions() {
        let catalog = Catalog::load(Arc::new(InMemory::new())).await.unwrap();
        let t = TableRef::new(None, "t").unwrap();
        catalog
            .commit(commit(&t, WriteMode::Create, 5, None))
            .await
            .unwrap();
        catalog.drop_table(&t, false).await.unwrap();
        assert_eq!(catalog.history(&t).unwrap().len(), 2);
        assert_eq!(catalog.version(&t, 1).await.unwrap().total_rows(), 5);
        let err = catalog.version(&t, 2).await.unwrap_err().to_string();
        assert!(err.contains("dropped"), "{err}");
    }

    #[tokio::test]
    async fn schemas_persist_and_unknown_schemas_are_named() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::load(store.clone()).await.unwrap();
        catalog.create_schema("sales", false).await.unwrap();
        assert!(matches!(
            catalog.create_schema("sales", false).await,
            Err(Error::SchemaExists(_))
        ));
        catalog.create_schema("sales", true).await.unwrap();
        assert!(Catalog::load(store).await.unwrap().schema_exists("sales"));
        let t = TableRef::new(Some("nope"), "t").unwrap();
        assert!(matches!(
            catalog.check_write(&t, WriteMode::Create),
            Err(Error::SchemaNotFound(_))
        ));
    }
}
