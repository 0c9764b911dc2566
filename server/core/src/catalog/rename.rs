//! Renaming a table (`ALTER TABLE ... RENAME TO`) without moving a file.
//!
//! The new name's first version (operation `rename`) is the old name's
//! newest version under the new name: the same schema, the same files (or
//! the same Lance dataset version) and a `storage` naming where they are.
//! Then the old name is dropped. Two versions on two tables cannot be put
//! in one atomic write, so the order is the safe one: a crash between the
//! two leaves both names readable, never neither. A version another
//! writer committed to the old name in between makes the drop fail its
//! put-if-absent: the new name's version is then removed and the rename
//! runs again on the newest version, so no row written meanwhile is lost.
//! Vacuum keeps files a table shares with another (see `vacuum`), and a
//! table created later under the old name is stored under a fresh name
//! ([`Catalog::storage_for`]).

use chrono::Utc;
use object_store::ObjectStoreExt;
use tracing::info;

use super::*;
use crate::error::{Error, Result};

/// Attempts before a rename that keeps meeting new versions gives up.
const MAX_ATTEMPTS: usize = 100;

impl Catalog {
    /// Renames live table `from` to `to`, which must not name a live table
    /// or view, nor be read by a view; returns the new name's version.
    pub async fn rename_table(&self, from: &TableRef, to: &TableRef) -> Result<u64> {
        if from == to {
            return Err(Error::invalid(format!(
                "table {from} is already named {to}"
            )));
        }
        // Both commit locks, in name order so that two renames never wait
        // on each other.
        let (first, second) = if from < to { (from, to) } else { (to, from) };
        let first_lock = self.commit_lock(first);
        let _first = first_lock.lock().await;
        let second_lock = self.commit_lock(second);
        let _second = second_lock.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            let current = self.table(from)?;
            if !self.schema_exists(&to.schema) {
                return Err(Error::SchemaNotFound(to.schema.clone()));
            }
            if self.table_exists(to) {
                return Err(Error::TableExists(to.clone()));
            }
            if self.view(to).is_some() {
                return Err(Error::ViewExists(to.clone()));
            }
            let readers = self.views_reading(from);
            if !readers.is_empty() {
                let names: Vec<String> = readers.iter().map(|v| format!("view {v}")).collect();
                return Err(Error::ReadByViews {
                    table: from.clone(),
                    views: names.join(", "),
                });
            }
            let earlier = self.state.read().tables.get(to).map(|t| t.latest.version);
            let storage = current.storage().clone();
            let renamed = Manifest {
                table: to.clone(),
                version: earlier.map_or(1, |v| v + 1),
                operation: Operation::Rename,
                committed_at: Utc::now(),
                idempotency_key: None,
                user: author(),
                rows_added: 0,
                rows_removed: 0,
                storage: (&storage != to).then_some(storage),
                ..(*current).clone()
            };
            if let Err(e) = self.put_manifest(&renamed).await {
                if is_taken(&e) {
                    self.refresh_table(to).await?;
                    continue;
                }
                return Err(e);
            }
            let tombstone = Manifest {
                version: current.version + 1,
                operation: Operation::Drop,
                committed_at: renamed.committed_at,
                idempotency_key: None,
                user: author(),
                rows_added: 0,
                rows_removed: 0,
                files: Vec::new(),
                lance: None,
                ..(*current).clone()
            };
            match self.put_manifest(&tombstone).await {
                Ok(()) => {
                    info!(table = %from, to = %to, version = renamed.version, "table renamed");
                    let version = renamed.version;
                    let mut state = self.write_state();
                    insert_manifest(&mut state, renamed);
                    insert_manifest(&mut state, tombstone);
                    return Ok(version);
                }
                Err(e) => {
                    let path = manifest_path(to, renamed.version);
                    self.store.delete(&path).await.map_err(|undo| {
                        Error::storage(
                            format!(
                                "removing {path} after the rename of {from} met a newer version ({e})"
                            ),
                            undo,
                        )
                    })?;
                    if !is_taken(&e) {
                        return Err(e);
                    }
                    self.refresh_table(from).await?;
                }
            }
        }
        Err(Error::CommitConflict {
            table: from.clone(),
            detail: format!(
                "other writers kept committing while it was renamed to {to}; run the statement again"
            ),
        })
    }
}

/// Whether a manifest put failed because another writer took the version.
fn is_taken(error: &Error) -> bool {
    matches!(
        error,
        Error::Storage {
            source: object_store::Error::AlreadyExists { .. },
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::memory::InMemory;

    use super::*;
    use crate::catalog::{Commit, VacuumOptions, WriteMode};

    async fn write(catalog: &Catalog, table: &TableRef, mode: WriteMode) -> String {
        let storage = catalog.storage_for(table);
        let path = format!("{}/{}.parquet", data_prefix(&storage), uuid::Uuid::new_v4());
        catalog
            .store()
            .put(&Path::from(path.as_str()), "0123456789".into())
            .await
            .unwrap();
        catalog
            .commit(Commit {
                table: table.clone(),
                mode,
                schema: Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)])),
                files: vec![DataFile {
                    path: path.clone(),
                    rows: 1,
                    bytes: 10,
                    columns: vec![],
                }],
                lance: None,
                idempotency_key: None,
                evolve: false,
                storage: Some(storage),
            })
            .await
            .unwrap();
        path
    }

    const NOTHING_KEPT: VacuumOptions = VacuumOptions {
        retain: std::time::Duration::ZERO,
        min_file_age: std::time::Duration::ZERO,
    };

    #[tokio::test]
    async fn a_renamed_table_keeps_its_files_through_both_names_vacuums_and_a_new_table_of_the_old_name()
     {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::load(store.clone()).await.unwrap();
        let (t, u) = (TableRef::parse("t").unwrap(), TableRef::parse("u").unwrap());
        let first = write(&catalog, &t, WriteMode::Create).await;
        assert_eq!(catalog.rename_table(&t, &u).await.unwrap(), 1);
        assert!(!catalog.table_exists(&t));
        let renamed = catalog.table(&u).unwrap();
        assert_eq!(renamed.operation, Operation::Rename);
        assert_eq!(renamed.files[0].path, first);
        assert_eq!(renamed.storage(), &t);
        // Appends to the new name go where its files are.
        let appended = write(&catalog, &u, WriteMode::Append).await;
        assert!(appended.starts_with("data/public/t/"), "{appended}");
        // A new table under the old name does not share them.
        let again = write(&catalog, &t, WriteMode::Create).await;
        assert!(!again.starts_with("data/public/t/"), "{again}");
        catalog.vacuum(&t, &NOTHING_KEPT).await.unwrap();
        catalog.vacuum(&u, &NOTHING_KEPT).await.unwrap();
        for path in [&first, &appended, &again] {
            assert!(
                store.head(&Path::from(path.as_str())).await.is_ok(),
                "{path}"
            );
        }
        let reloaded = Catalog::load(store).await.unwrap();
        assert_eq!(reloaded.table(&u).unwrap().total_rows(), 2);
        assert_eq!(reloaded.table(&t).unwrap().files[0].path, again);
    }

    #[tokio::test]
    async fn a_rename_onto_a_live_table_or_of_a_missing_one_is_refused() {
        let catalog = Catalog::load(Arc::new(InMemory::new())).await.unwrap();
        let (t, u) = (TableRef::parse("t").unwrap(), TableRef::parse("u").unwrap());
        write(&catalog, &t, WriteMode::Create).await;
        write(&catalog, &u, WriteMode::Create).await;
        assert!(matches!(
            catalog.rename_table(&t, &u).await,
            Err(Error::TableExists(_))
        ));
        let missing = TableRef::parse("missing").unwrap();
        assert!(matches!(
            catalog
                .rename_table(&missing, &TableRef::parse("v").unwrap())
                .await,
            Err(Error::TableNotFound(_))
        ));
        assert!(matches!(
            catalog
                .rename_table(&t, &TableRef::parse("nowhere.v").unwrap())
                .await,
            Err(Error::SchemaNotFound(_))
        ));
        assert_eq!(catalog.table(&t).unwrap().version, 1);
    }
}
