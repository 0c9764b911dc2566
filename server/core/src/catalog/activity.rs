//! What vacuum must leave alone: table versions that queries are still
//! reading, and files of uploads that have not committed yet.
//!
//! In this process both are known exactly: a query holds a [`Reading`] per
//! version it scans until its stream ends, and an upload an [`Uploading`]
//! until it commits or fails. Vacuum keeps every version being read and
//! every unreferenced file written since the oldest upload in flight to the
//! table began. Other servers on the same storage learn of a long upload
//! through a lease object (`_leases/<schema>/<table>/<id>.json`, holding
//! when it began), written once the upload has run [`LEASE_AFTER`] and
//! rewritten every [`LEASE_AFTER`] while it runs; a lease not rewritten for
//! [`LEASE_EXPIRY`] belongs to a server that died, and vacuum removes it.
//! Shorter uploads elsewhere are covered by vacuum's file-age guard, and
//! readers elsewhere by its rule of keeping a version for the file-age
//! guard after a newer one replaced it (see `vacuum`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::TableRef;
use crate::error::{Error, Result};

/// How long an upload runs before other servers are told of it, and how
/// often its lease is rewritten after that.
pub const LEASE_AFTER: Duration = Duration::from_secs(30);
/// A lease not rewritten for this long is a dead server's.
pub const LEASE_EXPIRY: Duration = Duration::from_secs(120);

const LEASES_PREFIX: &str = "_leases";

/// Reads and uploads in flight in this process.
#[derive(Debug, Default)]
pub struct Activity {
    reads: Mutex<HashMap<(TableRef, u64), usize>>,
    uploads: Mutex<HashMap<uuid::Uuid, (TableRef, DateTime<Utc>)>>,
}

/// A version being read; vacuum keeps it until this is dropped.
#[derive(Debug)]
pub struct Reading {
    activity: Arc<Activity>,
    key: (TableRef, u64),
}

/// An upload in flight; vacuum keeps the table's files written since it
/// began until this is dropped.
#[derive(Debug)]
pub struct Uploading {
    activity: Arc<Activity>,
    id: uuid::Uuid,
    lease: tokio::task::JoinHandle<()>,
    /// Set once the lease has been written, so that it is removed.
    leased: Arc<AtomicBool>,
    store: Arc<dyn ObjectStore>,
    path: Path,
}

/// What a lease object holds.
#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    started: DateTime<Utc>,
}

impl Activity {
    /// Marks `version` of `table` as being read.
    pub fn reading(self: &Arc<Self>, table: &TableRef, version: u64) -> Reading {
        let key = (table.clone(), version);
        *self.reads.lock().entry(key.clone()).or_default() += 1;
        Reading {
            activity: self.clone(),
            key,
        }
    }

    /// Marks an upload to `table` as begun, now.
    pub fn uploading(self: &Arc<Self>, store: Arc<dyn ObjectStore>, table: &TableRef) -> Uploading {
        let id = uuid::Uuid::new_v4();
        let started = Utc::now();
        self.uploads.lock().insert(id, (table.clone(), started));
        let path = lease_path(table, id);
        let leased = Arc::new(AtomicBool::new(false));
        let lease = tokio::spawn(keep_lease(
            store.clone(),
            path.clone(),
            started,
            leased.clone(),
        ));
        Uploading {
            activity: self.clone(),
            id,
            lease,
            leased,
            store,
            path,
        }
    }

    /// The versions of `table` being read here.
    pub fn versions_read(&self, table: &TableRef) -> Vec<u64> {
        self.reads
            .lock()
            .keys()
            .filter(|(t, _)| t == table)
            .map(|(_, v)| *v)
            .collect()
    }

    /// When the oldest upload in flight here to `table` began.
    pub fn oldest_upload(&self, table: &TableRef) -> Option<DateTime<Utc>> {
        self.uploads
            .lock()
            .values()
            .filter(|(t, _)| t == table)
            .map(|(_, started)| *started)
            .min()
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut reads = self.activity.reads.lock();
        if let Some(count) = reads.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                reads.remove(&self.key);
            }
        }
    }
}

impl Drop for Uploading {
    fn drop(&mut self) {
        self.activity.uploads.lock().remove(&self.id);
        self.lease.abort();
        if self.leased.load(Ordering::SeqCst)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (store, path) = (self.store.clone(), self.path.clone());
            runtime.spawn(async move {
                match store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        warn!(%path, error = %e, "could not remove an upload's lease; it expires")
                    }
                }
            });
        }
    }
}

fn lease_path(table: &TableRef, id: uuid::Uuid) -> Path {
    Path::from(format!(
        "{LEASES_PREFIX}/{}/{}/{id}.json",
        table.schema, table.table
    ))
}

/// Writes the lease after [`LEASE_AFTER`] and again every [`LEASE_AFTER`].
async fn keep_lease(
    store: Arc<dyn ObjectStore>,
    path: Path,
    started: DateTime<Utc>,
    leased: Arc<AtomicBool>,
) {
    let body = serde_json::to_vec(&Lease { started }).expect("a lease serializes");
    loop {
        tokio::time::sleep(LEASE_AFTER).await;
        leased.store(true, Ordering::SeqCst);
        match store.put(&path, PutPayload::from(body.clone())).await {
            Ok(_) => debug!(%path, "upload lease written"),
            Err(e) => warn!(%path, error = %e, "could not write an upload's lease"),
        }
    }
}

/// When the oldest upload to `table` that another server (or this one)
/// announced by a live lease began; removes leases that expired.
pub async fn oldest_leased_upload(
    store: &dyn ObjectStore,
    table: &TableRef,
) -> Result<Option<DateTime<Utc>>> {
    let prefix = Path::from(format!("{LEASES_PREFIX}/{}/{}", table.schema, table.table));
    let leases: Vec<object_store::ObjectMeta> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| Error::storage(format!("listing upload leases of {table}"), e))?;
    let expiry = chrono::Duration::seconds(LEASE_EXPIRY.as_secs() as i64);
    let expired_before = Utc::now() - expiry;
    let mut oldest: Option<DateTime<Utc>> = None;
    for meta in leases {
        if meta.last_modified < expired_before {
            debug!(path = %meta.location, "removing an expired upload lease");
            match store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    warn!(path = %meta.location, error = %e, "could not remove an expired lease")
                }
            }
            continue;
        }
        let read = async {
            let bytes = store.get(&meta.location).await?.bytes().await?;
            Ok::<_, object_store::Error>(bytes)
        };
        let started = match read.await {
            Ok(bytes) => match serde_json::from_slice::<Lease>(&bytes) {
                Ok(lease) => lease.started,
                // Unreadable: assume it protects everything it could.
                Err(_) => meta.last_modified - expiry,
            },
            // Removed as its upload ended.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => {
                return Err(Error::storage(
                    format!("reading upload lease {}", meta.location),
                    e,
                ));
            }
        };
        oldest = Some(oldest.map_or(started, |o| o.min(started)));
    }
    Ok(oldest)
}
