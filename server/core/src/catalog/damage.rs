//! Damaged tables: manifests that cannot be read back (torn by a power
//! loss, truncated by a full disk, edited by hand) and versions whose data
//! files are gone.
//!
//! Damage never stops the catalog from loading: the manifest is recorded
//! with what is wrong, logged naming the table and the file, and every
//! other table is served. A table whose newest manifest is damaged cannot
//! be read or written (the error names the file and the fix) until
//! [`Catalog::repair`] moves the damaged manifests, and those of newer
//! versions whose data files are missing, to `_quarantine/` beside the
//! catalog, which rolls the table back to its last good version. Nothing
//! else is touched. [`Catalog::check`] lists every problem without
//! changing anything (`lakehouse doctor`).

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use tracing::{error, info, warn};

use super::{Catalog, Manifest, State, TableRef, manifest_path, table_prefix};
use crate::error::{Error, Result};

/// Where repair moves the manifests it takes out of a table's history.
const QUARANTINE_PREFIX: &str = "_quarantine";

/// Something wrong with one version of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damage {
    pub table: String,
    pub version: u64,
    /// The object concerned: the manifest, or a data file it names.
    pub path: String,
    pub detail: String,
}

/// What [`Catalog::repair`] did to one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repaired {
    pub table: String,
    /// The table's newest version now; `None` when no good version is left
    /// (the table is gone).
    pub version: Option<u64>,
    /// The manifests moved to `_quarantine/`, and why.
    pub quarantined: Vec<Damage>,
}

/// The table and version a manifest's path names.
pub(super) fn manifest_version(path: &Path) -> Option<(TableRef, u64)> {
    let parts: Vec<&str> = path.as_ref().split('/').collect();
    match parts.as_slice() {
        ["_catalog", "tables", schema, table, file] => {
            let version = file.strip_suffix(".json")?.parse().ok()?;
            Some((TableRef::new(Some(schema), table).ok()?, version))
        }
        _ => None,
    }
}

impl State {
    /// Records a manifest that cannot be read.
    pub(super) fn record_damage(
        &mut self,
        table: TableRef,
        version: u64,
        path: &str,
        detail: &str,
    ) {
        error!(
            table = %table,
            version,
            file = path,
            error = detail,
            "a manifest of the table cannot be read; the table is served only up to its last good version, \
             and not at all if this is its newest: `lakehouse doctor` lists the damage, `lakehouse repair` \
             or the repair_table action rolls the table back"
        );
        self.damaged.entry(table.clone()).or_default().insert(
            version,
            Damage {
                table: table.to_string(),
                version,
                path: path.to_string(),
                detail: detail.to_string(),
            },
        );
    }

    /// The newest version of `table` read so far, good or damaged: a
    /// refresh reads only newer ones, so damage is logged once, not at
    /// every refresh.
    pub(super) fn newest_known(&self, table: &TableRef) -> u64 {
        let good = self.tables.get(table).map_or(0, |t| t.latest.version);
        let damaged = self
            .damaged
            .get(table)
            .and_then(|d| d.last_key_value())
            .map_or(0, |(v, _)| *v);
        good.max(damaged)
    }

    /// The damage that stops `table` from being read or written: a
    /// damaged manifest newer than every good one.
    pub(super) fn blocking_damage(&self, table: &TableRef) -> Option<Error> {
        let (&version, damage) = self.damaged.get(table)?.last_key_value()?;
        let good = self.tables.get(table).map(|t| t.latest.version);
        if good.is_some_and(|good| good > version) {
            return None;
        }
        let back_to = good.map_or_else(
            || "removes the table, which has no good version".to_string(),
            |good| format!("rolls it back to version {good}"),
        );
        Some(Error::CorruptCatalog {
            path: damage.path.clone(),
            detail: format!(
                "{}; table {table} cannot be read or written until it is repaired: the repair_table action \
                 (or `lakehouse repair --table {table}` with the server stopped) {back_to}",
                damage.detail
            ),
        })
    }
}

impl Catalog {
    /// Every problem in the catalog: damaged manifests, and data files that
    /// the newest version of a table names but the store does not have.
    pub async fn check(&self) -> Result<Vec<Damage>> {
        let (mut problems, newest): (Vec<Damage>, Vec<Arc<Manifest>>) = {
            let state = self.state.read();
            (
                state
                    .damaged
                    .values()
                    .flat_map(|d| d.values().cloned())
                    .collect(),
                state
                    .tables
                    .values()
                    .filter_map(|t| t.live().cloned())
                    .collect(),
            )
        };
        for manifest in newest {
            if let Some(missing) = self.missing_file(&manifest).await? {
                problems.push(missing);
            }
        }
        Ok(problems)
    }

    /// The first data file of `manifest` that the store does not have.
    async fn missing_file(&self, manifest: &Manifest) -> Result<Option<Damage>> {
        for file in &manifest.files {
            match self.store.head(&Path::from(file.path.as_str())).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => {
                    return Ok(Some(Damage {
                        table: manifest.table.to_string(),
                        version: manifest.version,
                        path: file.path.clone(),
                        detail: format!(
                            "data file {} of version {} is missing",
                            file.path, manifest.version
                        ),
                    }));
                }
                Err(e) => {
                    return Err(Error::storage(
                        format!("checking data file {}", file.path),
                        e,
                    ));
                }
            }
        }
        Ok(None)
    }

    /// Rolls `table` back to its newest version that can be read and whose
    /// data files are all there: damaged manifests, and those of newer
    /// versions that name missing files, move to `_quarantine/`. Other
    /// tables are not touched.
    pub async fn repair(&self, table: &TableRef) -> Result<Repaired> {
        let lock = self.commit_lock(table);
        let _guard = lock.lock().await;
        let mut quarantined: Vec<Damage> = self
            .state
            .read()
            .damaged
            .get(table)
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default();
        for damage in &quarantined {
            self.quarantine(table, damage.version).await?;
        }
        let mut version = self
            .state
            .read()
            .tables
            .get(table)
            .map(|t| t.latest.version);
        while let Some(newest) = version {
            let manifest = self.read_manifest(manifest_path(table, newest)).await?;
            let Some(missing) = self.missing_file(&manifest).await? else {
                break;
            };
            self.quarantine(table, newest).await?;
            quarantined.push(missing);
            version = self
                .state
                .read()
                .tables
                .get(table)
                .and_then(|t| t.versions.range(..newest).next_back().map(|(v, _)| *v));
        }
        self.reload_table(table).await?;
        let version = self
            .state
            .read()
            .tables
            .get(table)
            .map(|t| t.latest.version);
        if quarantined.is_empty() {
            info!(table = %table, "repair found nothing wrong");
        } else {
            warn!(table = %table, version, quarantined = quarantined.len(), "table repaired: damaged versions moved to _quarantine/");
        }
        Ok(Repaired {
            table: table.to_string(),
            version,
            quarantined,
        })
    }

    /// Moves the manifest of `version` of `table` out of the catalog.
    async fn quarantine(&self, table: &TableRef, version: u64) -> Result<()> {
        let from = manifest_path(table, version);
        let to = Path::from(format!("{QUARANTINE_PREFIX}/{from}"));
        let context = || format!("moving manifest {from} to {to}");
        self.store
            .copy(&from, &to)
            .await
            .map_err(|e| Error::storage(context(), e))?;
        self.store
            .delete(&from)
            .await
            .map_err(|e| Error::storage(context(), e))?;
        warn!(table = %table, version, file = %from, quarantine = %to, "manifest taken out of the table's history");
        Ok(())
    }

    /// Reads `table`'s manifests afresh, replacing what was known of it.
    async fn reload_table(&self, table: &TableRef) -> Result<()> {
        let paths: Vec<Path> = self
            .store
            .list(Some(&table_prefix(table)))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| Error::storage(format!("listing versions of {table}"), e))?;
        {
            let mut state = self.write_state();
            state.tables.remove(table);
            state.damaged.remove(table);
        }
        self.apply_manifests(paths).await
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    use super::*;
    use crate::catalog::{Commit, DataFile, WriteMode};

    /// A commit of one data file that exists in `store`.
    async fn commit(store: &Arc<dyn ObjectStore>, table: &TableRef, mode: WriteMode) -> Commit {
        let path = format!(
            "data/{}/{}/{}.parquet",
            table.schema,
            table.table,
            uuid::Uuid::new_v4()
        );
        store
            .put(&Path::from(path.as_str()), PutPayload::from_static(b"PAR1"))
            .await
            .unwrap();
        Commit {
            table: table.clone(),
            mode,
            schema: Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)])),
            files: vec![DataFile {
                path,
                rows: 10,
                bytes: 4,
                columns: vec![],
            }],
            lance: None,
            idempotency_key: None,
            evolve: false,
            storage: None,
        }
    }

    /// A store with table `good` at version 2 and table `hurt` at version 3.
    async fn two_tables() -> (Arc<dyn ObjectStore>, TableRef, TableRef) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::load(store.clone()).await.unwrap();
        let good = TableRef::new(None, "good").unwrap();
        let hurt = TableRef::new(None, "hurt").unwrap();
        catalog
            .commit(commit(&store, &good, WriteMode::Create).await)
            .await
            .unwrap();
        catalog
            .commit(commit(&store, &good, WriteMode::Append).await)
            .await
            .unwrap();
        for mode in [WriteMode::Create, WriteMode::Append, WriteMode::Append] {
            catalog
                .commit(commit(&store, &hurt, mode).await)
                .await
                .unwrap();
        }
        (store, good, hurt)
    }

    async fn manifest_bytes(
        store: &Arc<dyn ObjectStore>,
        table: &TableRef,
        version: u64,
    ) -> Vec<u8> {
        store
            .get(&manifest_path(table, version))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    async fn overwrite(
        store: &Arc<dyn ObjectStore>,
        table: &TableRef,
        version: u64,
        bytes: Vec<u8>,
    ) {
        store
            .put(&manifest_path(table, version), PutPayload::from(bytes))
            .await
            .unwrap();
    }

    /// Loads the damaged store and checks everything a user sees, then
    /// repairs and checks the table is back at version 2 and writable.
    async fn load_and_repair(
        store: Arc<dyn ObjectStore>,
        good: &TableRef,
        hurt: &TableRef,
        case: &str,
    ) {
        let catalog = Catalog::load(store.clone())
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(catalog.table(good).unwrap().version, 2, "{case}");
        assert_eq!(
            catalog.refresh().await.unwrap(),
            0,
            "{case}: damage is read once"
        );
        let refused = catalog.table(hurt).unwrap_err().to_string();
        assert!(
            refused.contains("_catalog/tables/public/hurt/00000000000000000003.json")
                && refused.contains("table public.hurt cannot be read or written")
                && refused.contains("rolls it back to version 2"),
            "{case}: {refused}"
        );
        let write = catalog
            .commit(commit(&store, hurt, WriteMode::Append).await)
            .await;
        assert!(
            matches!(write, Err(Error::CorruptCatalog { .. })),
            "{case}: {write:?}"
        );
        let problems = catalog.check().await.unwrap();
        assert_eq!(problems.len(), 1, "{case}: {problems:?}");
        assert_eq!(
            (problems[0].table.as_str(), problems[0].version),
            ("public.hurt", 3),
            "{case}"
        );

        let repaired = catalog.repair(hurt).await.unwrap();
        assert_eq!(repaired.version, Some(2), "{case}");
        assert_eq!(repaired.quarantined.len(), 1, "{case}");
        assert_eq!(catalog.table(hurt).unwrap().version, 2, "{case}");
        assert!(catalog.check().await.unwrap().is_empty(), "{case}");
        store
            .head(&Path::from(format!(
                "_quarantine/{}",
                manifest_path(hurt, 3)
            )))
            .await
            .unwrap_or_else(|e| panic!("{case}: the damaged manifest is kept aside: {e}"));
        let next = catalog
            .commit(commit(&store, hurt, WriteMode::Append).await)
            .await
            .unwrap();
        assert_eq!(next.version, 3, "{case}");
        assert_eq!(
            Catalog::load(store)
                .await
                .unwrap()
                .table(hurt)
                .unwrap()
                .version,
            3,
            "{case}"
        );
    }

    #[tokio::test]
    async fn a_torn_newest_manifest_stops_only_its_table_until_repaired() {
        let (store, good, hurt) = two_tables().await;
        let whole = manifest_bytes(&store, &hurt, 3).await;
        let mut cases: Vec<(String, Vec<u8>)> =
            [1, whole.len() / 3, whole.len() / 2, whole.len() - 1]
                .into_iter()
                .map(|at| {
                    (
                        format!("truncated at byte {at} of {}", whole.len()),
                        whole[..at].to_vec(),
                    )
                })
                .collect();
        cases.push(("zero-length".into(), Vec::new()));
        cases.push(("not JSON".into(), b"\x00\xff garbage \x13".to_vec()));
        cases.push((
            "JSON of something else".into(),
            br#"{"hello": "world"}"#.to_vec(),
        ));
        for (case, bytes) in cases {
            let (store, good, hurt) = two_tables().await;
            overwrite(&store, &hurt, 3, bytes).await;
            load_and_repair(store, &good, &hurt, &case).await;
        }
        let _ = (store, good);
    }

    #[tokio::test]
    async fn a_damaged_older_version_leaves_the_table_served() {
        let (store, _, hurt) = two_tables().await;
        overwrite(&store, &hurt, 1, b"{".to_vec()).await;
        let catalog = Catalog::load(store).await.unwrap();
        assert_eq!(catalog.table(&hurt).unwrap().version, 3);
        let old = catalog.version(&hurt, 1).await;
        assert!(old.is_err(), "{old:?}");
        assert_eq!(catalog.check().await.unwrap().len(), 1);
        let repaired = catalog.repair(&hurt).await.unwrap();
        assert_eq!((repaired.version, repaired.quarantined.len()), (Some(3), 1));
    }

    #[tokio::test]
    async fn a_missing_data_file_rolls_the_table_back_to_the_version_before_it() {
        let (store, good, hurt) = two_tables().await;
        let catalog = Catalog::load(store.clone()).await.unwrap();
        let newest = catalog.table(&hurt).unwrap();
        let added = newest.files.last().unwrap().path.clone();
        store.delete(&Path::from(added.as_str())).await.unwrap();
        let problems = catalog.check().await.unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            (problems[0].version, problems[0].path.as_str()),
            (3, added.as_str())
        );
        let repaired = catalog.repair(&hurt).await.unwrap();
        assert_eq!(repaired.version, Some(2));
        assert_eq!(catalog.table(&hurt).unwrap().files.len(), 2);
        assert_eq!(
            catalog.table(&good).unwrap().version,
            2,
            "the other table is untouched"
        );
        assert!(catalog.check().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_table_whose_only_manifest_is_damaged_is_removed_by_repair() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::load(store.clone()).await.unwrap();
        let t = TableRef::new(None, "t").unwrap();
        catalog
            .commit(commit(&store, &t, WriteMode::Create).await)
            .await
            .unwrap();
        overwrite(&store, &t, 1, Vec::new()).await;
        let catalog = Catalog::load(store.clone()).await.unwrap();
        let refused = catalog.table(&t).unwrap_err().to_string();
        assert!(refused.contains("removes the table"), "{refused}");
        let create = catalog
            .commit(commit(&store, &t, WriteMode::Create).await)
            .await;
        assert!(
            matches!(create, Err(Error::CorruptCatalog { .. })),
            "{create:?}"
        );
        assert_eq!(catalog.repair(&t).await.unwrap().version, None);
        assert!(matches!(catalog.table(&t), Err(Error::TableNotFound(_))));
        let created = catalog
            .commit(commit(&store, &t, WriteMode::Create).await)
            .await
            .unwrap();
        assert_eq!(created.version, 1);
    }
}
