//! Tells an upload the client abandoned from one it finished.
//!
//! tonic ends a request stream cleanly when the client cancels it
//! (HTTP/2 `RST_STREAM` with `CANCEL`), exactly as if the client had
//! finished sending. For an upload that would commit a truncated file. So
//! every request body is watched below tonic: an error from it marks the
//! request, and an upload that ends on a marked request is refused instead
//! of committed. The same wrapper counts the bytes every request brings
//! in, for `/metrics`, and fails a body past the upload limit with
//! `ResourceExhausted`, which the upload reports instead of committing.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

use lakehouse_core::metrics::metrics;

/// Set when the request's body ended in an error.
#[derive(Debug, Clone, Default)]
pub struct UploadWatch(Arc<AtomicBool>);

impl UploadWatch {
    pub fn broken(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A request mapper that wraps each request's body so that its failure is
/// recorded in the request's [`UploadWatch`] extension, and that fails it
/// past `max_bytes`.
pub fn watch(
    max_bytes: u64,
) -> impl Fn(http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> + Clone {
    move |mut request| {
        let watch = UploadWatch::default();
        request.extensions_mut().insert(watch.clone());
        request.map(|inner| {
            tonic::body::Body::new(Watched {
                inner,
                watch,
                received: 0,
                max_bytes,
            })
        })
    }
}

struct Watched {
    inner: tonic::body::Body,
    watch: UploadWatch,
    received: u64,
    max_bytes: u64,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Err(_))) => self.watch.0.store(true, Ordering::Release),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    metrics().bytes_in(data.len() as u64);
                    self.received += data.len() as u64;
                    if self.received > self.max_bytes {
                        self.watch.0.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                            "the upload is larger than the limit of {} MiB (max_upload_mb); nothing was committed",
                            self.max_bytes >> 20
                        )))));
                    }
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
