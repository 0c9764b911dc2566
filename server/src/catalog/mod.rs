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
//! This module knows nothing of SQL, Flight or Parquet encoding.

mod compaction;
mod compat;
mod manifest;
mod names;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::SchemaRef;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parking_lot::{Mutex, RwLock};
use tracing::{debug, info, warn};

pub use compat::{evolve_schema, schema_differences, table_schema_for, types_compatible};
pub use manifest::{
    ColumnStats, DataFile, LanceData, MANIFEST_FORMAT, Manifest, Operation, TableKind,
    VersionSummary,
};
pub use names::{
    CATALOG_NAME, DEFAULT_SCHEMA, MAX_NAME_LEN, TableRef, split_version, validate_name,
};

use crate::error::{Error, Result};
use crate::metrics::metrics;
use crate::storage::remove_abandoned_parts;

const SCHEMAS_PREFIX: &str = "_catalog/schemas";
const TABLES_PREFIX: &str = "_catalog/tables";
/// Re-base attempts for one append before giving up with a conflict.
const MAX_COMMIT_ATTEMPTS: usize = 1000;

/// How a write treats an existing (or missing) table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The table must not exist.
    Create,
    /// The table must exist; rows are added.
    Append,
    /// The table must exist; its rows are replaced.
    Overwrite,
    /// Create when missing, otherwise append.
    CreateOrAppend,
    /// Create when missing, otherwise replace.
    CreateOrOverwrite,
}

/// A data change to commit as one new version.
#[derive(Debug)]
pub struct Commit {
    pub table: TableRef,
    pub mode: WriteMode,
    /// Schema of the written files.
    pub schema: SchemaRef,
    /// Files already written under [`data_prefix`].
    pub files: Vec<DataFile>,
    /// For a Lance table: the dataset version written, which the new
    /// version reads (`files` is then empty).
    pub lance: Option<LanceWrite>,
    pub idempotency_key: Option<String>,
    /// An append may add columns and leave some out (read as null).
    pub evolve: bool,
}

/// A write to a Lance table's dataset, to commit.
#[derive(Debug, Clone, Copy)]
pub struct LanceWrite {
    pub data: LanceData,
    pub rows_added: u64,
}

/// What a commit produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub version: u64,
    pub rows: u64,
    /// The idempotency key had been used: this is the earlier version and
    /// nothing new was added.
    pub deduplicated: bool,
}

/// What vacuum keeps.
#[derive(Debug, Clone)]
pub struct VacuumOptions {
    /// Versions committed within this long ago stay readable.
    pub retain: std::time::Duration,
    /// Unreferenced files younger than this are left alone: they may belong
    /// to an upload that has not committed yet.
    pub min_file_age: std::time::Duration,
}

impl Default for VacuumOptions {
    fn default() -> Self {
        Self {
            retain: std::time::Duration::from_secs(7 * 24 * 3600),
            min_file_age: std::time::Duration::from_secs(3600),
        }
    }
}

/// What vacuum removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VacuumReport {
    pub table: TableRef,
    pub newest_version: u64,
    pub versions_removed: u64,
    pub files_removed: u64,
    pub bytes_removed: u64,
}

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
    /// Serialises commits to one table inside this process; across
    /// processes the put-if-absent does the same job.
    commit_locks: Mutex<HashMap<TableRef, Arc<tokio::sync::Mutex<()>>>>,
    /// The store's directory when it is local, for what only the file
    /// system shows (abandoned upload parts).
    local_dir: Option<std::path::PathBuf>,
}

impl Catalog {
    /// Rebuilds the catalog from everything under `_catalog/` in the store.
    pub async fn load(store: Arc<dyn ObjectStore>) -> Result<Self> {
        let started = std::time::Instant::now();
        let catalog = Self {
            store,
            state: RwLock::new(State::default()),
            generation: AtomicU64::new(0),
            commit_locks: Mutex::new(HashMap::new()),
            local_dir: None,
        };
        let objects = catalog.list_catalog().await?;

        let mut schemas = BTreeSet::from([DEFAULT_SCHEMA.to_string()]);
        let mut manifests = Vec::new();
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
                _ => debug!(%path, "ignoring unknown object under _catalog"),
            }
        }
        let count = manifests.len();
        catalog.write_state().schemas = schemas;
        catalog.apply_manifests(manifests).await?;
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

    async fn read_manifest(&self, path: Path) -> Result<Manifest> {
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
    /// read no change.
    fn write_state(&self) -> parking_lot::RwLockWriteGuard<'_, State> {
        let state = self.state.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        state
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
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
        match state.tables.get(table).and_then(TableState::live) {
            Some(m) => Ok(m.clone()),
            None if !state.schemas.contains(&table.schema) => {
                Err(Error::SchemaNotFound(table.schema.clone()))
            }
            None => Err(Error::TableNotFound(table.clone())),
        }
    }

    pub fn table_exists(&self, table: &TableRef) -> bool {
        self.table(table).is_ok()
    }

    /// The version an idempotency key already made on a table, if any.
    pub fn version_for_key(&self, table: &TableRef, key: &str) -> Option<u64> {
        self.state.read().tables.get(table)?.version_for_key(key)
    }

    /// Creates a schema; with `if_not_exists`, an existing one is fine.
    pub async fn create_schema(&self, name: &str, if_not_exists: bool) -> Result<()> {
        validate_name("schema", name)?;
        if self.schema_exists(name) {
            return if if_not_exists {
                Ok(())
            } else {
                Err(Error::SchemaExists(name.to_string()))
            };
        }
        let body = serde_json::json!({ "name": name, "created_at": Utc::now() });
        let put = self
            .store
            .put_opts(
                &schema_path(name),
                PutPayload::from(body.to_string().into_bytes()),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) if if_not_exists => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                self.write_state().schemas.insert(name.to_string());
                return Err(Error::SchemaExists(name.to_string()));
            }
            Err(e) => return Err(Error::storage(format!("creating schema {name:?}"), e)),
        }
        self.write_state().schemas.insert(name.to_string());
        info!(schema = name, "schema created");
        Ok(())
    }

    /// Fails fast, before any data is written, when `mode` cannot succeed
    /// on the table as this process currently knows it. Returns the schema
    /// of the existing table, when there is one and it will be appended to.
    pub fn check_write(&self, table: &TableRef, mode: WriteMode) -> Result<Option<SchemaRef>> {
        if !self.schema_exists(&table.schema) {
            return Err(Error::SchemaNotFound(table.schema.clone()));
        }
        let existing = self.table(table).ok();
        match (mode, existing) {
            (WriteMode::Create, Some(_)) => Err(Error::TableExists(table.clone())),
            (WriteMode::Append | WriteMode::Overwrite, None) => {
                Err(Error::TableNotFound(table.clone()))
            }
            (WriteMode::Append | WriteMode::CreateOrAppend, Some(m)) => Ok(Some(m.schema.clone())),
            _ => Ok(None),
        }
    }

    fn commit_lock(&self, table: &TableRef) -> Arc<tokio::sync::Mutex<()>> {
        self.commit_locks
            .lock()
            .entry(table.clone())
            .or_default()
            .clone()
    }

    /// Commits written files as the table's next version.
    pub async fn commit(&self, commit: Commit) -> Result<Committed> {
        let lock = self.commit_lock(&commit.table);
        let _guard = lock.lock().await;
        for attempt in 1..=MAX_COMMIT_ATTEMPTS {
            if let Some(done) = self.deduplicate(&commit).await {
                return Ok(done);
            }
            let previous = self
                .state
                .read()
                .tables
                .get(&commit.table)
                .map(|s| s.latest.clone());
            let manifest = self.next_manifest(&commit, previous.as_deref())?;
            match self.put_manifest(&manifest).await {
                Ok(()) => {
                    let committed = Committed {
                        version: manifest.version,
                        rows: manifest.rows_added,
                        deduplicated: false,
                    };
                    info!(
                        table = %commit.table,
                        version = manifest.version,
                        operation = manifest.operation.as_str(),
                        rows = manifest.rows_added,
                        files = commit.files.len(),
                        "committed"
                    );
                    insert_manifest(&mut self.write_state(), manifest);
                    return Ok(committed);
                }
                Err(Error::Storage {
                    source: object_store::Error::AlreadyExists { .. },
                    ..
                }) => {
                    debug!(table = %commit.table, attempt, "version taken by another writer; re-reading");
                    self.refresh_table(&commit.table).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::CommitConflict {
            table: commit.table.clone(),
            detail: format!("gave up after {MAX_COMMIT_ATTEMPTS} attempts"),
        })
    }

    /// When the commit's idempotency key already made a version, answers
    /// with that version and removes the files this attempt wrote.
    async fn deduplicate(&self, commit: &Commit) -> Option<Committed> {
        let key = commit.idempotency_key.as_ref()?;
        let version = self
            .state
            .read()
            .tables
            .get(&commit.table)?
            .version_for_key(key)?;
        let rows = self
            .read_manifest(manifest_path(&commit.table, version))
            .await
            .map(|m| m.rows_added)
            .unwrap_or(0);
        info!(table = %commit.table, version, key, "idempotency key seen before; nothing added");
        delete_uncommitted(self.store.as_ref(), &commit.files).await;
        Some(Committed {
            version,
            rows,
            deduplicated: true,
        })
    }

    fn next_manifest(&self, commit: &Commit, previous: Option<&Manifest>) -> Result<Manifest> {
        let table = &commit.table;
        names::validate_column_names(table, &commit.schema)?;
        let live = previous.filter(|m| !m.is_dropped());
        let (operation, schema, mut files) = match (commit.mode, live) {
            (WriteMode::Create, Some(_)) => return Err(Error::TableExists(table.clone())),
            (WriteMode::Append | WriteMode::Overwrite, None) => {
                return Err(Error::TableNotFound(table.clone()));
            }
            (WriteMode::Append | WriteMode::CreateOrAppend, Some(m)) => {
                let conflict = |differences| Error::SchemaConflict {
                    table: table.clone(),
                    differences,
                };
                let schema = if commit.evolve {
                    Arc::new(evolve_schema(&m.schema, &commit.schema).map_err(conflict)?)
                } else if let Some(differences) = schema_differences(&m.schema, &commit.schema) {
                    return Err(conflict(differences));
                } else {
                    m.schema.clone()
                };
                (Operation::Append, schema, m.files.clone())
            }
            (WriteMode::Overwrite | WriteMode::CreateOrOverwrite, Some(_)) => (
                Operation::Overwrite,
                Arc::new(table_schema_for(&commit.schema)),
                Vec::new(),
            ),
            (
                WriteMode::Create | WriteMode::CreateOrAppend | WriteMode::CreateOrOverwrite,
                None,
            ) => (
                Operation::Create,
                Arc::new(table_schema_for(&commit.schema)),
                Vec::new(),
            ),
        };
        files.extend(commit.files.iter().cloned());
        let (kind, rows_added) = match commit.lance {
            Some(write) => (TableKind::Lance, write.rows_added),
            None => (
                TableKind::Parquet,
                commit.files.iter().map(|f| f.rows).sum(),
            ),
        };
        if let Some(m) = live
            && operation == Operation::Append
            && m.kind != kind
        {
            return Err(Error::invalid(format!(
                "table {table} is stored as {}, so {} data cannot be appended to it",
                m.kind.as_str(),
                kind.as_str()
            )));
        }
        Ok(Manifest {
            format: MANIFEST_FORMAT,
            table: table.clone(),
            version: previous.map_or(1, |m| m.version + 1),
            kind,
            operation,
            committed_at: Utc::now(),
            idempotency_key: commit.idempotency_key.clone(),
            rows_added,
            schema,
            files,
            lance: commit.lance.map(|w| w.data),
        })
    }

    /// Commits a new version of a live vector table that reads dataset
    /// version `data` and adds no rows (an index was built or dropped).
    pub async fn commit_lance_version(
        &self,
        table: &TableRef,
        data: LanceData,
        operation: Operation,
    ) -> Result<u64> {
        self.commit_derived(table, |current| {
            Ok(Manifest {
                version: current.version + 1,
                operation,
                committed_at: Utc::now(),
                idempotency_key: None,
                rows_added: 0,
                lance: Some(data),
                ..current.clone()
            })
        })
        .await
    }

    /// Commits the version `next` derives from the table's newest live one;
    /// when another writer took its number, derives it again from the new
    /// newest version.
    async fn commit_derived(
        &self,
        table: &TableRef,
        next: impl Fn(&Manifest) -> Result<Manifest>,
    ) -> Result<u64> {
        let lock = self.commit_lock(table);
        let _guard = lock.lock().await;
        loop {
            let manifest = next(self.table(table)?.as_ref())?;
            match self.put_manifest(&manifest).await {
                Ok(()) => {
                    let version = manifest.version;
                    info!(table = %table, version, operation = manifest.operation.as_str(),
                        files = manifest.files.len(), "committed");
                    insert_manifest(&mut self.write_state(), manifest);
                    return Ok(version);
                }
                Err(Error::Storage {
                    source: object_store::Error::AlreadyExists { .. },
                    ..
                }) => self.refresh_table(table).await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops a table by committing a tombstone version; its history stays
    /// readable until vacuumed. Returns false when `if_exists` and missing.
    pub async fn drop_table(&self, table: &TableRef, if_exists: bool) -> Result<bool> {
        let lock = self.commit_lock(table);
        let _guard = lock.lock().await;
        loop {
            let current = match self.table(table) {
                Ok(m) => m,
                Err(Error::TableNotFound(_) | Error::SchemaNotFound(_)) if if_exists => {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
            let tombstone = Manifest {
                format: MANIFEST_FORMAT,
                table: table.clone(),
                version: current.version + 1,
                kind: current.kind,
                operation: Operation::Drop,
                committed_at: Utc::now(),
                idempotency_key: None,
                rows_added: 0,
                schema: current.schema.clone(),
                files: Vec::new(),
                lance: None,
            };
            match self.put_manifest(&tombstone).await {
                Ok(()) => {
                    info!(table = %table, version = tombstone.version, "table dropped");
                    insert_manifest(&mut self.write_state(), tombstone);
                    return Ok(true);
                }
                Err(Error::Storage {
                    source: object_store::Error::AlreadyExists { .. },
                    ..
                }) => {
                    self.refresh_table(table).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes a version's manifest if no other writer took its number;
    /// counts commits, rows added and conflicts for `/metrics`.
    async fn put_manifest(&self, manifest: &Manifest) -> Result<()> {
        let path = manifest_path(&manifest.table, manifest.version);
        let written = self
            .store
            .put_opts(
                &path,
                PutPayload::from(manifest.to_json()),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match &written {
            Ok(_) => {
                metrics().commit();
                metrics().rows_in(manifest.rows_added);
            }
            Err(object_store::Error::AlreadyExists { .. }) => metrics().commit_conflict(),
            Err(_) => {}
        }
        written
            .map(|_| ())
            .map_err(|e| Error::storage(format!("writing manifest {path}"), e))
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

    /// Removes versions committed before `options.retain` ago (never the
    /// newest), then every data file under the table's prefix that no
    /// remaining version references and that is older than
    /// `options.min_file_age` (so uploads still in flight are left alone).
    pub async fn vacuum(&self, table: &TableRef, options: &VacuumOptions) -> Result<VacuumReport> {
        let lock = self.commit_lock(table);
        let _guard = lock.lock().await;
        self.refresh_table(table).await?;
        let now = Utc::now();
        let cutoff =
            now - chrono::Duration::from_std(options.retain).unwrap_or(chrono::Duration::MAX);
        let (newest, expired, retained): (u64, Vec<u64>, Vec<u64>) = {
            let state = self.state.read();
            let t = state
                .tables
                .get(table)
                .ok_or_else(|| Error::TableNotFound(table.clone()))?;
            let newest = t.latest.version;
            let (expired, retained) = t
                .versions
                .values()
                .partition::<Vec<_>, _>(|v| v.version != newest && v.committed_at < cutoff);
            (
                newest,
                expired.iter().map(|v| v.version).collect(),
                retained.iter().map(|v| v.version).collect(),
            )
        };

        let mut referenced = std::collections::HashSet::new();
        for version in retained {
            let manifest = self.read_manifest(manifest_path(table, version)).await?;
            referenced.extend(manifest.files.into_iter().map(|f| f.path));
        }
        for version in &expired {
            let path = manifest_path(table, *version);
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::storage(format!("removing manifest {path}"), e)),
            }
        }
        if let Some(t) = self.write_state().tables.get_mut(table) {
            for version in &expired {
                t.versions.remove(version);
            }
        }

        let file_cutoff =
            now - chrono::Duration::from_std(options.min_file_age).unwrap_or(chrono::Duration::MAX);
        let unreferenced: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&data_prefix(table)))
            .try_filter(|meta| {
                futures::future::ready(
                    !referenced.contains(meta.location.as_ref())
                        && meta.last_modified < file_cutoff,
                )
            })
            .try_collect()
            .await
            .map_err(|e| Error::storage(format!("listing data files of {table}"), e))?;
        let mut report = VacuumReport {
            table: table.clone(),
            newest_version: newest,
            versions_removed: expired.len() as u64,
            files_removed: 0,
            bytes_removed: 0,
        };
        for meta in unreferenced {
            match self.store.delete(&meta.location).await {
                Ok(()) => {
                    report.files_removed += 1;
                    report.bytes_removed += meta.size;
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(Error::storage(
                        format!("removing data file {}", meta.location),
                        e,
                    ));
                }
            }
        }
        if let Some(dir) = &self.local_dir {
            let cutoff = std::time::SystemTime::now()
                .checked_sub(options.min_file_age)
                .unwrap_or(std::time::UNIX_EPOCH);
            let parts_dir = dir.join(data_prefix(table).as_ref());
            let (files, bytes) = remove_abandoned_parts(&parts_dir, cutoff)
                .await
                .map_err(|e| {
                    Error::Internal(format!(
                        "removing abandoned upload parts in {}: {e}",
                        parts_dir.display()
                    ))
                })?;
            report.files_removed += files;
            report.bytes_removed += bytes;
        }
        info!(
            table = %table,
            versions_removed = report.versions_removed,
            files_removed = report.files_removed,
            bytes_removed = report.bytes_removed,
            "vacuumed"
        );
        Ok(report)
    }

    /// Reads versions of `table` that other writers committed since this
    /// process last looked.
    pub async fn refresh_table(&self, table: &TableRef) -> Result<()> {
        let known = self
            .state
            .read()
            .tables
            .get(table)
            .map_or(0, |s| s.latest.version);
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

    /// Reads manifests (32 at a time) and folds them into the state.
    /// Reads what other servers on the same store committed since this one
    /// loaded or last refreshed: new schemas, tables and versions (drops
    /// included). Returns how many versions were new.
    pub async fn refresh(&self) -> Result<usize> {
        let objects = self.list_catalog().await?;
        let (schemas, newer) = {
            let state = self.state.read();
            let mut schemas = Vec::new();
            let mut newer = Vec::new();
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
                        let known = state.tables.get(&table).map_or(0, |t| t.latest.version);
                        if version.is_some_and(|v| v > known) {
                            newer.push(path.clone());
                        }
                    }
                    _ => {}
                }
            }
            (schemas, newer)
        };
        let added = newer.len();
        self.write_state().schemas.extend(schemas);
        self.apply_manifests(newer).await?;
        if added > 0 {
            info!(versions = added, "catalog refreshed from the store");
        }
        Ok(added)
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

    async fn apply_manifests(&self, paths: Vec<Path>) -> Result<()> {
        let manifests: Vec<Manifest> = futures::stream::iter(paths)
            .map(|path| self.read_manifest(path))
            .buffer_unordered(32)
            .try_collect()
            .await?;
        let mut state = self.write_state();
        for manifest in manifests {
            state.schemas.insert(manifest.table.schema.clone());
            insert_manifest(&mut state, manifest);
        }
        Ok(())
    }
}

/// Best-effort removal of files that will never be committed; what is
/// left behind is an orphan that vacuum removes.
pub async fn delete_uncommitted(store: &dyn ObjectStore, files: &[DataFile]) {
    for file in files {
        if let Err(e) = store.delete(&Path::from(file.path.as_str())).await {
            warn!(path = %file.path, error = %e, "could not remove an uncommitted file; vacuum will");
        }
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
    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::memory::InMemory;

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

    #[tokio::test]
    async fn two_catalogs_on_one_store_rebase_appends() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let one = Catalog::load(store.clone()).await.unwrap();
        let two = Catalog::load(store.clone()).await.unwrap();
        let t = TableRef::new(None, "t").unwrap();
        one.commit(commit(&t, WriteMode::Create, 1, None))
            .await
            .unwrap();
        two.refresh_table(&t).await.unwrap();
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
