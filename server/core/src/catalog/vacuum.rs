//! Vacuum: removes old versions (never the newest) and the data files no
//! remaining version references, leaving alone what is still in use.
//!
//! Kept whatever the retention: the newest version; every version a query
//! in this process is reading; every version replaced by a newer one less
//! than the file-age guard ago, so a reader elsewhere that began on it
//! while it was newest has that long to finish (with `retain_hours = 0`
//! too). Of the unreferenced files, kept: those younger than the guard, and
//! those written since the oldest upload to the table still in flight here
//! or announced by another server's lease (see `activity`), however long
//! it has run.

use chrono::Utc;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use tracing::info;

use super::activity::oldest_leased_upload;
use super::*;
use crate::error::{Error, Result};

/// Object stores keep modification times to the second: a file written in
/// the second an upload began may show an earlier time than its start.
const CLOCK_SLACK: chrono::Duration = chrono::Duration::seconds(2);
use crate::storage::remove_abandoned_parts;

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

impl Catalog {
    /// Removes versions committed before `options.retain` ago (never the
    /// newest), then every data file under the table's storage prefix that
    /// no remaining version (nor any version of a table sharing it)
    /// references and that is older than
    /// `options.min_file_age` (so uploads still in flight are left alone).
    pub async fn vacuum(&self, table: &TableRef, options: &VacuumOptions) -> Result<VacuumReport> {
        let lock = self.commit_lock(table);
        let _guard = lock.lock().await;
        self.refresh_table(table).await?;
        let now = Utc::now();
        let cutoff =
            now - chrono::Duration::from_std(options.retain).unwrap_or(chrono::Duration::MAX);
        let file_cutoff =
            now - chrono::Duration::from_std(options.min_file_age).unwrap_or(chrono::Duration::MAX);
        let read_here = self.activity.versions_read(table);
        let (newest, expired, retained): (u64, Vec<u64>, Vec<u64>) = {
            let state = self.state.read();
            let t = state
                .tables
                .get(table)
                .ok_or_else(|| Error::TableNotFound(table.clone()))?;
            let newest = t.latest.version;
            let summaries: Vec<&VersionSummary> = t.versions.values().collect();
            let (expired, retained) = summaries
                .iter()
                .zip(summaries.iter().skip(1).map(|next| next.committed_at))
                .partition::<Vec<_>, _>(|(v, replaced_at)| {
                    v.committed_at < cutoff
                        && *replaced_at < file_cutoff
                        && !read_here.contains(&v.version)
                });
            let mut retained: Vec<u64> = retained.iter().map(|(v, _)| v.version).collect();
            retained.push(newest);
            (
                newest,
                expired.iter().map(|(v, _)| v.version).collect(),
                retained,
            )
        };

        // Files under the table's storage that another table shares (the
        // other name of a rename) stay while any of its versions needs them.
        let (storage, sharing) = {
            let state = self.state.read();
            let storage = state.tables[table].latest.storage().clone();
            let sharing = state.sharing(&storage, table);
            let sharing: Vec<(TableRef, Vec<u64>)> = sharing
                .into_iter()
                .map(|other| {
                    let versions = state.tables[&other].versions.keys().copied().collect();
                    (other, versions)
                })
                .collect();
            (storage, sharing)
        };
        let mut referenced = std::collections::HashSet::new();
        let mut needed: Vec<(TableRef, u64)> =
            retained.into_iter().map(|v| (table.clone(), v)).collect();
        for (other, versions) in &sharing {
            needed.extend(versions.iter().map(|v| (other.clone(), *v)));
        }
        for (owner, version) in needed {
            let manifest = self.read_manifest(manifest_path(&owner, version)).await?;
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

        let mut uploads = Vec::new();
        for writer in std::iter::once(table).chain(sharing.iter().map(|(other, _)| other)) {
            uploads.push(self.activity.oldest_upload(writer));
            uploads.push(oldest_leased_upload(self.store.as_ref(), writer).await?);
        }
        let file_cutoff = match uploads.into_iter().flatten().min() {
            Some(started) => file_cutoff.min(started - CLOCK_SLACK),
            None => file_cutoff,
        };
        let unreferenced: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&data_prefix(&storage)))
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
            let cutoff = std::time::SystemTime::from(file_cutoff);
            let parts_dir = dir.join(data_prefix(&storage).as_ref());
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    use super::*;
    use crate::catalog::{Commit, WriteMode};

    const NOTHING_KEPT: VacuumOptions = VacuumOptions {
        retain: Duration::ZERO,
        min_file_age: Duration::ZERO,
    };

    async fn put(store: &Arc<dyn ObjectStore>, path: &str) {
        store
            .put(&Path::from(path), PutPayload::from_static(b"0123456789"))
            .await
            .unwrap();
    }

    /// Commits a file of its own as the table's next version.
    async fn commit(
        catalog: &Catalog,
        store: &Arc<dyn ObjectStore>,
        t: &TableRef,
        mode: WriteMode,
    ) {
        let path = format!("data/public/t/{}.parquet", uuid::Uuid::new_v4());
        put(store, &path).await;
        let schema = Schema::new(vec![Field::new("a", DataType::Int64, true)]);
        catalog
            .commit(Commit {
                table: t.clone(),
                mode,
                schema: Arc::new(schema),
                files: vec![DataFile {
                    path,
                    rows: 1,
                    bytes: 10,
                    columns: vec![],
                }],
                lance: None,
                idempotency_key: None,
                evolve: false,
                storage: None,
            })
            .await
            .unwrap();
    }

    async fn setup() -> (Arc<dyn ObjectStore>, Catalog, TableRef) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::load(store.clone()).await.unwrap();
        let t = TableRef::new(None, "t").unwrap();
        commit(&catalog, &store, &t, WriteMode::Create).await;
        commit(&catalog, &store, &t, WriteMode::Overwrite).await;
        (store, catalog, t)
    }

    #[tokio::test]
    async fn a_version_being_read_is_kept_until_its_reader_is_done() {
        let (_, catalog, t) = setup().await;
        let reading = catalog.reading(&t, 1);
        let report = catalog.vacuum(&t, &NOTHING_KEPT).await.unwrap();
        assert_eq!((report.versions_removed, report.files_removed), (0, 0));
        drop(reading);
        let report = catalog.vacuum(&t, &NOTHING_KEPT).await.unwrap();
        assert_eq!((report.versions_removed, report.files_removed), (1, 1));
    }

    #[tokio::test]
    async fn a_version_replaced_within_the_file_age_guard_is_kept_for_readers_elsewhere() {
        let (_, catalog, t) = setup().await;
        let no_retention = VacuumOptions {
            retain: Duration::ZERO,
            ..VacuumOptions::default()
        };
        let report = catalog.vacuum(&t, &no_retention).await.unwrap();
        assert_eq!(report.versions_removed, 0);
    }

    #[tokio::test]
    async fn files_written_since_an_upload_began_here_or_elsewhere_are_kept() {
        let (store, catalog, t) = setup().await;
        let uploading = catalog.uploading(&t);
        put(&store, "data/public/t/in-flight-here.parquet").await;
        let report = catalog.vacuum(&t, &NOTHING_KEPT).await.unwrap();
        // The replaced version goes; its file was written before the upload
        // began, but within the clock slack of it.
        assert_eq!((report.versions_removed, report.files_removed), (1, 0));
        drop(uploading);
        let report = catalog.vacuum(&t, &NOTHING_KEPT).await.unwrap();
        assert_eq!(report.files_removed, 2);

        // Another server's upload, announced by its lease.
        let lease = format!(
            r#"{{"started": "{}"}}"#,
            Utc::now() - chrono::Duration::hours(5)
        );
        store
            .put(
                &Path::from("_leases/public/t/elsewhere.json"),
                PutPayload::from(lease.into_bytes()),
            )
            .await
            .unwrap();
        put(&store, "data/public/t/in-flight-elsewhere.parquet").await;
        let report = catalog.vacuum(&t, &NOTHING_KEPT).await.unwrap();
        assert_eq!(report.files_removed, 0);
        store
            .delete(&Path::from("_leases/public/t/elsewhere.json"))
            .await
            .unwrap();
        let report = catalog.vacuum(&t, &NOTHING_KEPT).await.unwrap();
        assert_eq!(report.files_removed, 1);
    }
}
