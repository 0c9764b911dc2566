//! The bytes of an upload, with a way to read them again from the start.
//!
//! Type inference looks at the first records only; when a later record
//! needs a wider type, the upload is parsed again from its first byte. The
//! client cannot resend, so the bytes received are kept in an anonymous
//! temporary file (deleted by the OS when closed) for as long as some
//! column's type is still a guess, and no longer: once every type is fixed
//! the copy is dropped and bytes pass straight through.

use std::io::SeekFrom;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::{Error, Result};

/// Bytes read back from the copy at a time.
const REPLAY_CHUNK: usize = 1024 * 1024;

pub struct ByteSource<S> {
    upload: S,
    copy: Option<File>,
    copied: u64,
    /// Where the next replayed read starts, while replaying.
    replay_at: Option<u64>,
    received: u64,
    ended: bool,
}

impl<S> ByteSource<S>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
{
    /// Keeps a copy in a temporary file under `dir`.
    pub fn new(upload: S, dir: &Path) -> Result<Self> {
        let copy = tempfile::tempfile_in(dir).map_err(|e| {
            Error::Internal(format!(
                "cannot create a temporary file in {} for the upload: {e}",
                dir.display()
            ))
        })?;
        Ok(Self {
            upload,
            copy: Some(File::from_std(copy)),
            copied: 0,
            replay_at: None,
            received: 0,
            ended: false,
        })
    }

    /// Bytes received from the client so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Stops keeping a copy: no re-read will be needed.
    pub fn drop_copy(&mut self) {
        if self.replay_at.is_none() {
            self.copy = None;
        }
    }

    /// The next chunk: replayed from the copy, then from the client.
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        if let Some(at) = self.replay_at {
            if at < self.copied {
                return self.replay(at).await.map(Some);
            }
            self.replay_at = None;
            if let Some(copy) = &mut self.copy {
                copy.seek(SeekFrom::End(0)).await.map_err(io("seek"))?;
            }
        }
        if self.ended {
            return Ok(None);
        }
        match self.upload.next().await {
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                if let Some(copy) = &mut self.copy {
                    copy.write_all(&chunk).await.map_err(io("write"))?;
                    self.copied += chunk.len() as u64;
                }
                Ok(Some(chunk))
            }
            Some(Err(e)) => Err(e),
            None => {
                self.ended = true;
                Ok(None)
            }
        }
    }

    /// Starts again from the first byte.
    pub async fn rewind(&mut self) -> Result<()> {
        let copy = self
            .copy
            .as_mut()
            .ok_or_else(|| Error::Internal("an upload without a copy cannot be re-read".into()))?;
        copy.flush().await.map_err(io("flush"))?;
        copy.seek(SeekFrom::Start(0)).await.map_err(io("seek"))?;
        self.replay_at = Some(0);
        Ok(())
    }

    async fn replay(&mut self, at: u64) -> Result<Bytes> {
        let copy = self.copy.as_mut().expect("replaying needs the copy");
        let want = REPLAY_CHUNK.min((self.copied - at) as usize);
        let mut buffer = BytesMut::zeroed(want);
        copy.read_exact(&mut buffer).await.map_err(io("read"))?;
        self.replay_at = Some(at + want as u64);
        Ok(buffer.freeze())
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Internal(format!("the upload's temporary copy failed to {what}: {e}"))
}
