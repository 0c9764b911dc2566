//! Vacuum: removes old versions (never the newest) and the data files no
//! remaining version references, leaving files young enough to belong to
//! an upload still in flight.

use chrono::Utc;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use tracing::info;

use super::*;
use crate::error::{Error, Result};
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
}
