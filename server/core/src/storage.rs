//! Storage: one `ObjectStore` built from a URL, the only source of truth.
//!
//! Everything the server keeps (catalog manifests and data files) lives under
//! the store's root, so a restart, or a second server on the same bucket,
//! sees the same tables. This module knows nothing about tables; it only
//! turns a location into a store and proves the store is usable. A local
//! directory's store fsyncs what it writes ([`crate::synced`]).

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};
use crate::synced::SyncedLocalStore;

/// The URL under which the store is registered with DataFusion's runtime.
pub const STORE_URL: &str = "lakehouse://store/";

/// An opened storage location.
#[derive(Debug, Clone)]
pub struct Storage {
    /// Rooted at the configured location: paths are relative to it.
    pub store: Arc<dyn ObjectStore>,
    /// The location as the operator gave it, for logs and errors.
    pub location: String,
    /// The directory, when the store is a local one.
    pub local_dir: Option<std::path::PathBuf>,
}

impl Storage {
    /// Opens `location`: a directory path, `file://`, `memory://` or
    /// `s3://bucket/prefix` (endpoint, region and credentials from the usual
    /// `AWS_*` variables), then checks it can be written, waiting at most
    /// `timeout` for the answer.
    pub async fn open(location: &str, timeout: std::time::Duration) -> Result<Self> {
        let store = build_store(location)?;
        let is_local = !location.contains("://") || location.starts_with("file://");
        let storage = Self {
            store,
            location: location.to_string(),
            local_dir: is_local
                .then(|| location.strip_prefix("file://").unwrap_or(location).into()),
        };
        match tokio::time::timeout(timeout, storage.check_writable()).await {
            Ok(checked) => checked?,
            Err(_) => return Err(storage.unanswered(timeout)),
        }
        Ok(storage)
    }

    /// The error for a store that did not answer the start-up check in time,
    /// naming where the server looked.
    fn unanswered(&self, timeout: std::time::Duration) -> Error {
        let endpoint = ["AWS_ENDPOINT", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|name| std::env::var(name).ok())
            .map_or_else(
                || "the AWS default endpoint".to_string(),
                |e| format!("endpoint {e}"),
            );
        Error::storage(
            format!("checking that storage {} is writable", self.location),
            object_store::Error::Generic {
                store: if self.location.starts_with("s3://") {
                    "S3"
                } else {
                    "storage"
                },
                source: format!(
                    "did not answer within {} s ({endpoint}); check the endpoint, the network \
                     and the credentials, or raise --storage-timeout-secs",
                    timeout.as_secs()
                )
                .into(),
            },
        )
    }

    async fn check_writable(&self) -> Result<()> {
        check_conditional_puts(self.store.as_ref(), &self.location).await
    }
}

/// Proves `store` writable and that it honours put-if-absent, which every
/// catalog commit relies on: a probe is put twice with `PutMode::Create`
/// (S3: `If-None-Match: *`) and the second put must be refused. A store
/// that lets it through would let two servers commit the same version,
/// one silently replacing the other, so the server does not start on it.
pub async fn check_conditional_puts(store: &dyn ObjectStore, location: &str) -> Result<()> {
    let probe = Path::from(format!("_tmp/probe-{}", uuid::Uuid::new_v4()));
    let context = || format!("checking that storage {location} is writable");
    let create = || PutOptions::from(PutMode::Create);
    store
        .put_opts(&probe, PutPayload::from_static(b"ok"), create())
        .await
        .map_err(|e| Error::storage(context(), e))?;
    let again = store
        .put_opts(&probe, PutPayload::from_static(b"ok"), create())
        .await;
    store
        .delete(&probe)
        .await
        .map_err(|e| Error::storage(context(), e))?;
    match again {
        Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Ok(_) => Err(Error::invalid(format!(
            "storage {location} does not honour conditional puts (a second put-if-absent of one object \
             succeeded): catalog commits rely on them, and without them two writers could commit the \
             same table version and lose one's rows. Use a store that supports If-None-Match on PUT \
             (AWS S3, MinIO, moto) or a local directory"
        ))),
        Err(e) => Err(Error::storage(
            format!(
                "checking that storage {location} honours conditional puts (If-None-Match), which \
                 catalog commits rely on"
            ),
            e,
        )),
    }
}

/// Removes the parts of multipart uploads that never completed (a process
/// killed while writing) under `dir`, when older than `cutoff`; returns the
/// files and bytes removed. The local store writes a part as `NAME#N` beside
/// its final name and hides such files from listings, so vacuum cannot see
/// them through the store. (On S3, a bucket lifecycle rule aborting
/// incomplete multipart uploads does this job.)
pub async fn remove_abandoned_parts(
    dir: &std::path::Path,
    cutoff: std::time::SystemTime,
) -> std::io::Result<(u64, u64)> {
    let mut removed = (0, 0);
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    while let Some(entry) = entries.next_entry().await? {
        let meta = entry.metadata().await?;
        let is_part = entry.file_name().to_string_lossy().contains('#');
        if is_part && meta.is_file() && meta.modified()? < cutoff {
            tokio::fs::remove_file(entry.path()).await?;
            removed.0 += 1;
            removed.1 += meta.len();
        }
    }
    Ok(removed)
}

fn build_store(location: &str) -> Result<Arc<dyn ObjectStore>> {
    let unusable = |detail: String| Error::invalid(format!("storage {location:?}: {detail}"));
    if location == "memory://" || location == "memory:" {
        return Ok(Arc::new(InMemory::new()));
    }
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(unusable(
                "an s3 URL needs a bucket: s3://bucket/prefix".into(),
            ));
        }
        let s3 = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| unusable(e.to_string()))?;
        let s3: Arc<dyn ObjectStore> = Arc::new(s3);
        let prefix = prefix.trim_matches('/');
        return Ok(if prefix.is_empty() {
            s3
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        });
    }
    if location.contains("://") && !location.starts_with("file://") {
        return Err(unusable(
            "unknown scheme; use a directory path, file://, s3:// or memory://".into(),
        ));
    }
    let dir = location.strip_prefix("file://").unwrap_or(location);
    std::fs::create_dir_all(dir).map_err(|e| unusable(format!("cannot create directory: {e}")))?;
    let root = std::fs::canonicalize(dir)
        .map_err(|e| unusable(format!("cannot resolve directory: {e}")))?;
    let local = LocalFileSystem::new_with_prefix(&root)
        .map_err(|e| unusable(e.to_string()))?
        .with_automatic_cleanup(true);
    Ok(Arc::new(SyncedLocalStore::new(local, root)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

    /// A store that ignores put-if-absent, as some S3 look-alikes do.
    #[derive(Debug)]
    struct Unconditional(InMemory);

    impl std::fmt::Display for Unconditional {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Unconditional")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Unconditional {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            _: PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.0
                .put_opts(location, payload, PutOptions::default())
                .await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.0.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.0.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn a_store_without_put_if_absent_is_refused() {
        check_conditional_puts(&InMemory::new(), "memory://")
            .await
            .unwrap();
        let refused = check_conditional_puts(&Unconditional(InMemory::new()), "s3://lookalike/x")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("s3://lookalike/x does not honour conditional puts")
                && refused.contains("If-None-Match"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn opens_a_new_directory_and_proves_it_writable() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("nested/data");
        let storage = Storage::open(location.to_str().unwrap(), TIMEOUT)
            .await
            .unwrap();
        assert!(location.is_dir());
        assert!(storage.location.ends_with("nested/data"));
    }

    #[tokio::test]
    async fn rejects_unknown_schemes_with_the_location_named() {
        let err = Storage::open("ftp://host/x", TIMEOUT)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ftp://host/x") && err.contains("unknown scheme"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn rejects_an_unwritable_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = Storage::open(file.to_str().unwrap(), TIMEOUT)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not-a-dir"), "{err}");
    }
}
