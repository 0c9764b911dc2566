//! Writing the catalog: schemas, table versions (appends re-based onto
//! what other writers committed, creates and overwrites refused on a
//! race), Lance versions and drops.
//!
//! A commit writes data files first (the caller does that), then the
//! version's manifest with a put-if-absent: the manifest is the commit
//! point, so a crash before it leaves only orphan files and never a
//! half-visible version.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use chrono::Utc;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tracing::{debug, info, warn};

use super::*;
use crate::error::{Error, Result};
use crate::metrics::metrics;

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
    /// Files already written under [`data_prefix`] of `storage`.
    pub files: Vec<DataFile>,
    /// For a Lance table: the dataset version written, which the new
    /// version reads (`files` is then empty).
    pub lance: Option<LanceWrite>,
    pub idempotency_key: Option<String>,
    /// An append may add columns and leave some out (read as null).
    pub evolve: bool,
    /// Where a created table's files were written:
    /// [`Catalog::storage_for`] of it (none: its own name). Appends and
    /// overwrites keep the table's.
    pub storage: Option<TableRef>,
}

/// The rows a change to existing rows adds (a `MERGE`'s inserts) and
/// removes or rewrites (deleted, updated), as history shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub added: u64,
    pub removed: u64,
}

impl RowCounts {
    /// The rows the statement affected, as its answer counts them.
    pub fn affected(&self) -> u64 {
        self.added + self.removed
    }
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

impl Catalog {
    /// Creates a schema; with `if_not_exists`, an existing one is fine.
    pub async fn create_schema(&self, name: &str, if_not_exists: bool) -> Result<()> {
        validate_name("schema", name)?;
        if SYSTEM_SCHEMAS.contains(&name) {
            return Err(Error::invalid(format!(
                "{name} is a system schema the server answers itself; choose another name"
            )));
        }
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
        if self.view(table).is_some() {
            return Err(Error::invalid(format!(
                "{table} is a view; tables are written, views are replaced with CREATE OR REPLACE VIEW"
            )));
        }
        let existing = match self.table(table) {
            Ok(manifest) => Some(manifest),
            Err(damaged @ Error::CorruptCatalog { .. }) => return Err(damaged),
            Err(_) => None,
        };
        match (mode, existing) {
            (WriteMode::Create, Some(_)) => Err(Error::TableExists(table.clone())),
            (WriteMode::Append | WriteMode::Overwrite, None) => {
                Err(Error::TableNotFound(table.clone()))
            }
            (WriteMode::Append | WriteMode::CreateOrAppend, Some(m)) => Ok(Some(m.schema.clone())),
            _ => Ok(None),
        }
    }

    pub(super) fn commit_lock(&self, table: &TableRef) -> Arc<tokio::sync::Mutex<()>> {
        self.commit_locks
            .lock()
            .entry(table.clone())
            .or_default()
            .clone()
    }

    /// Commits written files as the table's next version; an append is
    /// re-based onto versions other writers committed meanwhile.
    pub async fn commit(&self, commit: Commit) -> Result<Committed> {
        self.commit_after(commit, None).await
    }

    /// Commits `commit` as the version right after `base`, never re-based:
    /// when the newest version is another, fails with
    /// [`Error::BaseMoved`] (a Lance version already holds its base's rows,
    /// so the writer makes it again on the newest version instead).
    pub async fn commit_on(&self, commit: Commit, base: u64) -> Result<Committed> {
        self.commit_after(commit, Some(base)).await
    }

    async fn commit_after(&self, commit: Commit, base: Option<u64>) -> Result<Committed> {
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
            check_base(&commit.table, base, previous.as_deref())?;
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
    pub(super) async fn deduplicate(&self, commit: &Commit) -> Option<Committed> {
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
            user: author(),
            rows_added,
            rows_removed: 0,
            schema,
            files,
            lance: commit.lance.map(|w| w.data),
            storage: match live {
                Some(m) => m.storage.clone(),
                None => commit.storage.clone().filter(|s| s != table),
            },
        })
    }

    /// Commits, as the version right after `base`, a version of a live
    /// vector table that reads dataset version `data` (an index was built,
    /// dropped or extended: no rows; rows were deleted, updated or merged:
    /// `rows`); [`Error::BaseMoved`] when another version came first.
    pub async fn commit_lance_version(
        &self,
        table: &TableRef,
        data: LanceData,
        operation: Operation,
        rows: RowCounts,
        base: u64,
    ) -> Result<u64> {
        self.commit_derived(table, |current| {
            check_base(table, Some(base), Some(current))?;
            Ok(Manifest {
                version: current.version + 1,
                operation,
                committed_at: Utc::now(),
                idempotency_key: None,
                user: author(),
                rows_added: rows.added,
                rows_removed: rows.removed,
                lance: Some(data),
                ..current.clone()
            })
        })
        .await
    }

    /// Commits the version `next` derives from the table's newest live one;
    /// when another writer took its number, derives it again from the new
    /// newest version.
    pub(super) async fn commit_derived(
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
                user: author(),
                rows_added: 0,
                rows_removed: 0,
                schema: current.schema.clone(),
                files: Vec::new(),
                lance: None,
                storage: current.storage.clone(),
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
    pub(super) async fn put_manifest(&self, manifest: &Manifest) -> Result<()> {
        if let Some(damage) = self.state.read().blocking_damage(&manifest.table) {
            return Err(damage);
        }
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
}

/// [`Error::BaseMoved`] when a commit that must follow `base` would follow
/// another version.
pub(super) fn check_base(
    table: &TableRef,
    base: Option<u64>,
    previous: Option<&Manifest>,
) -> Result<()> {
    match (base, previous) {
        (Some(base), Some(previous)) if previous.version != base => Err(Error::BaseMoved {
            table: table.clone(),
            base,
            newest: previous.version,
        }),
        (Some(base), None) => Err(Error::BaseMoved {
            table: table.clone(),
            base,
            newest: 0,
        }),
        _ => Ok(()),
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
