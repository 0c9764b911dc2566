//! The bytes of an upload, with a way to read them again from the start.
//!
//! Type inference looks at the first records only; when a later record
//! needs a wider type, the upload is parsed again from its first byte. The
//! client cannot resend, so the bytes received are kept in an anonymous
//! temporary file (deleted by the OS when closed) for as long as some
//! column's type is still a guess, and no longer: once every type is fixed
//! the copy is dropped and bytes pass straight through. The copy is written
//! by a thread of its own, handed the received chunks without copying them,
//! so the parser does not wait on the file system, into a [`SpillFile`]
//! that bypasses the page cache.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::spill::SpillFile;
use crate::error::{Error, Result};

/// Bytes read back from the copy at a time.
const REPLAY_CHUNK: usize = 1024 * 1024;
/// Chunks queued for the copy's writer.
const COPY_QUEUE: usize = 8;

/// Work for the thread that owns the temporary file.
enum Job {
    Append(Bytes),
    Read {
        at: u64,
        len: usize,
        reply: oneshot::Sender<std::io::Result<Bytes>>,
    },
    /// Makes the copy readable; answers with the first write error, if any.
    Settle(oneshot::Sender<std::io::Result<()>>),
}

/// Starts the thread that appends to and reads from `file`, in order.
fn spawn_copier(mut file: SpillFile) -> Result<mpsc::Sender<Job>> {
    let (jobs, mut queue) = mpsc::channel::<Job>(COPY_QUEUE);
    std::thread::Builder::new()
        .name("csv-upload-copy".into())
        .spawn(move || {
            let mut failed: Option<std::io::Error> = None;
            while let Some(job) = queue.blocking_recv() {
                match job {
                    Job::Append(bytes) if failed.is_none() => {
                        if let Err(e) = file.append(&bytes) {
                            failed = Some(e);
                        }
                    }
                    Job::Append(_) => {}
                    Job::Read { at, len, reply } => {
                        let mut buffer = BytesMut::zeroed(len);
                        let read = file.read_at(&mut buffer, at).map(|()| buffer.freeze());
                        let _ = reply.send(read);
                    }
                    Job::Settle(reply) => {
                        let settled = match failed.take() {
                            Some(e) => Err(e),
                            None => file.settle(),
                        };
                        let _ = reply.send(settled);
                    }
                }
            }
        })
        .map_err(|e| Error::internal(format!("cannot start the upload copy's writer: {e}")))?;
    Ok(jobs)
}

pub struct ByteSource<S> {
    upload: S,
    copy: Option<mpsc::Sender<Job>>,
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
        let file = tempfile::tempfile_in(dir).map_err(|e| {
            Error::internal(format!(
                "cannot create a temporary file in {} for the upload: {e}",
                dir.display()
            ))
        })?;
        Ok(Self {
            upload,
            copy: Some(spawn_copier(SpillFile::new(file))?),
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
        }
        if self.ended {
            return Ok(None);
        }
        match self.upload.next().await {
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                if let Some(copy) = &self.copy {
                    copy.send(Job::Append(chunk.clone()))
                        .await
                        .map_err(|_| stopped())?;
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
            .as_ref()
            .ok_or_else(|| Error::internal("an upload without a copy cannot be re-read"))?;
        let (reply, answer) = oneshot::channel();
        copy.send(Job::Settle(reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?.map_err(io("write"))?;
        self.replay_at = Some(0);
        Ok(())
    }

    async fn replay(&mut self, at: u64) -> Result<Bytes> {
        let copy = self.copy.as_ref().expect("replaying needs the copy");
        let len = REPLAY_CHUNK.min((self.copied - at) as usize);
        let (reply, answer) = oneshot::channel();
        copy.send(Job::Read { at, len, reply })
            .await
            .map_err(|_| stopped())?;
        let chunk = answer.await.map_err(|_| stopped())?.map_err(io("read"))?;
        self.replay_at = Some(at + len as u64);
        Ok(chunk)
    }
}

fn stopped() -> Error {
    Error::internal("the upload's temporary copy stopped")
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::internal(format!("the upload's temporary copy failed to {what}: {e}"))
}
