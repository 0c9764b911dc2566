//! Encodes one Parquet row group with its columns in parallel.
//!
//! Encoding (dictionary interning, statistics, compression) is most of the
//! CPU an upload costs, and a row group's columns are independent: each leaf
//! column gets a lane, a task that feeds its batches, in order, to its own
//! column writer on the blocking pool. Lanes run at their own pace, so a
//! cheap integer column never waits for a long text column between batches;
//! they meet only when the row group closes. Each lane queues at most
//! [`LANE_DEPTH`] batches, so memory stays bounded by a few batches.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, compute_leaves,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// Batches queued per column before the feeder waits for that column.
const LANE_DEPTH: usize = 4;

struct Lane {
    queue: mpsc::Sender<ArrowLeafColumn>,
    done: JoinHandle<Result<ArrowColumnChunk>>,
}

/// The row group being encoded; dropping it abandons the work.
pub struct RowGroupEncoder {
    schema: SchemaRef,
    lanes: Vec<Lane>,
    rows: usize,
    /// Arrow bytes of the rows written so far.
    bytes: usize,
}

impl RowGroupEncoder {
    /// Starts a lane per writer; `writers` are the row group's leaf column
    /// writers, in schema order.
    pub fn new(schema: SchemaRef, writers: Vec<ArrowColumnWriter>) -> Self {
        let lanes = writers.into_iter().map(start_lane).collect();
        Self {
            schema,
            lanes,
            rows: 0,
            bytes: 0,
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Arrow bytes of the rows written so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Queues `batch`'s columns on their lanes; waits only while a lane is
    /// [`LANE_DEPTH`] batches behind.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut lanes = self.lanes.iter();
        for (field, array) in self.schema.fields().iter().zip(batch.columns()) {
            for leaf in compute_leaves(field, array)? {
                let lane = lanes.next().ok_or_else(|| {
                    Error::internal(format!(
                        "column {} has more leaves than writers",
                        field.name()
                    ))
                })?;
                if lane.queue.send(leaf).await.is_err() {
                    return Err(self.failure().await);
                }
            }
        }
        self.rows += batch.num_rows();
        self.bytes += lakehouse_core::types::arrow_bytes(batch);
        Ok(())
    }

    /// Waits for every lane and returns the encoded column chunks in order.
    pub async fn finish(mut self) -> Result<Vec<ArrowColumnChunk>> {
        let lanes = std::mem::take(&mut self.lanes);
        let mut chunks = Vec::with_capacity(lanes.len());
        for lane in lanes {
            drop(lane.queue);
            chunks.push(joined(lane.done.await)?);
        }
        Ok(chunks)
    }

    /// The error of the first lane that stopped.
    async fn failure(&mut self) -> Error {
        for lane in std::mem::take(&mut self.lanes) {
            if lane.queue.is_closed() {
                return match joined(lane.done.await) {
                    Err(e) => e,
                    Ok(_) => Error::internal("a column encoder stopped early"),
                };
            }
        }
        Error::internal("a column encoder stopped early")
    }
}

impl Drop for RowGroupEncoder {
    fn drop(&mut self) {
        for lane in &self.lanes {
            lane.done.abort();
        }
    }
}

fn start_lane(writer: ArrowColumnWriter) -> Lane {
    let (queue, mut pending) = mpsc::channel::<ArrowLeafColumn>(LANE_DEPTH);
    let done = tokio::spawn(async move {
        let mut writer = writer;
        let mut leaves = Vec::with_capacity(LANE_DEPTH);
        while pending.recv_many(&mut leaves, LANE_DEPTH).await > 0 {
            let batch = std::mem::take(&mut leaves);
            writer = blocking(move || {
                let mut writer = writer;
                for leaf in &batch {
                    writer.write(leaf)?;
                }
                Ok(writer)
            })
            .await?;
        }
        blocking(move || Ok(writer.close()?)).await
    });
    Lane { queue, done }
}

async fn blocking<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    joined(tokio::task::spawn_blocking(work).await)
}

fn joined<T>(outcome: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    outcome.map_err(|e| Error::internal(format!("column encoder task failed: {e}")))?
}
