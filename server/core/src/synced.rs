//! A local directory store whose writes are on the disk before they are
//! acknowledged.
//!
//! object_store's `LocalFileSystem` writes a staged file and renames (or
//! hard-links) it into place, but never calls fsync: after a power loss a
//! committed manifest could be empty, or name data files whose blocks never
//! reached the disk. This wrapper fsyncs every file it completes (a put, a
//! multipart upload, a copy or a rename) and then its directory, so the new
//! name survives too; the first time a directory is seen, its ancestors up
//! to the store's root are synced as well (it may have just been made), and
//! it is remembered so that later files in it cost two fsyncs, not five. Since a catalog commit writes its data files before
//! its manifest, and the manifest is the commit point, a commit the client
//! was told about is on the disk.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};
use parking_lot::Mutex;

use crate::metrics::metrics;

/// `LocalFileSystem` rooted at `root`, fsyncing what it writes.
#[derive(Debug)]
pub struct SyncedLocalStore {
    inner: Arc<LocalFileSystem>,
    root: PathBuf,
    /// Files made durable so far.
    synced: Arc<AtomicU64>,
    /// Directories whose own entry is known to be durable.
    durable_dirs: Arc<Mutex<HashSet<PathBuf>>>,
}

impl SyncedLocalStore {
    pub fn new(inner: LocalFileSystem, root: PathBuf) -> Self {
        Self {
            inner: Arc::new(inner),
            root,
            synced: Arc::default(),
            durable_dirs: Arc::default(),
        }
    }

    /// How many files this store has made durable.
    pub fn files_synced(&self) -> u64 {
        self.synced.load(Ordering::Relaxed)
    }

    async fn sync(&self, location: &Path) -> Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        self.syncer(file).sync().await
    }

    fn syncer(&self, file: PathBuf) -> Syncer {
        Syncer {
            file,
            root: self.root.clone(),
            synced: self.synced.clone(),
            durable_dirs: self.durable_dirs.clone(),
        }
    }
}

/// What making one file durable needs.
#[derive(Debug, Clone)]
struct Syncer {
    file: PathBuf,
    root: PathBuf,
    synced: Arc<AtomicU64>,
    durable_dirs: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Syncer {
    /// Fsyncs the file and its directory, and the directory's ancestors up
    /// to the root the first time it is seen; counts it in this store's and
    /// the process's metrics.
    async fn sync(self) -> Result<()> {
        let started = Instant::now();
        let Syncer {
            file,
            root,
            synced,
            durable_dirs,
        } = self;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            let Some(parent) = file.parent() else {
                return Ok(());
            };
            std::fs::File::open(parent)?.sync_all()?;
            if durable_dirs.lock().contains(parent) {
                return Ok(());
            }
            let mut dir = parent;
            while dir != root.as_path() && dir.starts_with(&root) {
                let Some(up) = dir.parent() else { break };
                std::fs::File::open(up)?.sync_all()?;
                dir = up;
            }
            durable_dirs.lock().insert(parent.to_path_buf());
            Ok(())
        })
        .await
        .map_err(|e| generic(std::io::Error::other(e)))?
        .map_err(generic)?;
        synced.fetch_add(1, Ordering::Relaxed);
        metrics().fsynced(started.elapsed());
        Ok(())
    }
}

fn generic(source: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem (fsync)",
        source: Box::new(source),
    }
}

impl fmt::Display for SyncedLocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Synced{}", self.inner)
    }
}

#[async_trait]
impl ObjectStore for SyncedLocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let put = self.inner.put_opts(location, payload, opts).await?;
        self.sync(location).await?;
        Ok(put)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(SyncedUpload {
            upload,
            syncer: self.syncer(self.inner.path_to_filesystem(location)?),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.sync(to).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.sync(to).await
    }
}

/// A multipart upload that fsyncs its file once it is complete.
#[derive(Debug)]
struct SyncedUpload {
    upload: Box<dyn MultipartUpload>,
    syncer: Syncer,
}

#[async_trait]
impl MultipartUpload for SyncedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let put = self.upload.complete().await?;
        self.syncer.clone().sync().await?;
        Ok(put)
    }

    async fn abort(&mut self) -> Result<()> {
        self.upload.abort().await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;

    #[tokio::test]
    async fn writes_land_in_the_directory_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let store = SyncedLocalStore::new(
            LocalFileSystem::new_with_prefix(&root).unwrap(),
            root.clone(),
        );
        let manifest = Path::from("_catalog/tables/public/t/00000000000000000001.json");
        store
            .put_opts(
                &manifest,
                PutPayload::from_static(b"{}"),
                PutOptions::from(object_store::PutMode::Create),
            )
            .await
            .unwrap();
        let again = store
            .put_opts(
                &manifest,
                PutPayload::from_static(b"{}"),
                PutOptions::from(object_store::PutMode::Create),
            )
            .await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "{again:?}"
        );
        let data = Path::from("data/public/t/part.parquet");
        let mut upload = store.put_multipart(&data).await.unwrap();
        upload
            .put_part(PutPayload::from_static(b"abc"))
            .await
            .unwrap();
        upload
            .put_part(PutPayload::from_static(b"def"))
            .await
            .unwrap();
        assert_eq!(store.files_synced(), 1, "parts are not synced one by one");
        upload.complete().await.unwrap();
        assert_eq!(store.files_synced(), 2);
        store
            .copy(&data, &Path::from("data/public/t/copy.parquet"))
            .await
            .unwrap();
        assert_eq!(store.files_synced(), 3);
        let read = store.get(&data).await.unwrap().bytes().await.unwrap();
        assert_eq!(&read[..], b"abcdef");
        assert_eq!(
            std::fs::read(root.join("_catalog/tables/public/t/00000000000000000001.json")).unwrap(),
            b"{}"
        );
    }
}
