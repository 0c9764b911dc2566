//! Admission of queries: at most `max_running_queries` run at once, the
//! rest wait their turn.
//!
//! A running query holds decoded row groups, hash tables and IPC buffers
//! until its last batch is sent; on a table that grows, each query runs
//! longer, so without a bound the number running (and the memory they
//! hold) climbs with the table. Running more queries than a few per core
//! adds no throughput, only memory and time slices, so queries past the
//! bound wait in arrival order instead of being refused; the wait counts
//! against `query_timeout_secs`. Statements take a slot while they are
//! planned and while their results stream, and so do updates, prepared
//! statements being created and actions that compute (see [`Admission`]);
//! catalog browsing (GetTables and the like) never waits behind a long
//! query, and runs only under the query timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::Status;

use crate::status::ToStatus;
use lakehouse_core::metrics::metrics;
use lakehouse_engine::error::Error;

/// Query slots and the query timeout, for every path that plans or runs
/// SQL: statements planned at GetFlightInfo and GetSchema (where updates
/// sent as queries also run), prepared statements created, updates run
/// by DoPut (`CREATE TABLE AS`, `INSERT ... SELECT`), and actions that
/// compute (embedding, index builds; these wait for a slot but are not
/// bounded by the query timeout).
#[derive(Debug, Clone)]
pub struct Admission {
    slots: QuerySlots,
    timeout: Duration,
}

impl Admission {
    pub fn new(max_running_queries: usize, timeout: Duration) -> Self {
        Self {
            slots: QuerySlots::new(max_running_queries),
            timeout,
        }
    }

    pub fn slots(&self) -> &QuerySlots {
        &self.slots
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `work` in a slot; the wait and the work together are bounded
    /// by the query timeout.
    pub async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let deadline = Instant::now() + self.timeout;
        self.in_slot_until(deadline, async {
            tokio::time::timeout_at(deadline, work)
                .await
                .unwrap_or_else(|_| Err(timed_out(self.timeout)))
        })
        .await
    }

    /// Runs `work` in a slot, waiting for one at most the query timeout.
    pub async fn in_slot<T>(
        &self,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        self.in_slot_until(Instant::now() + self.timeout, work)
            .await
    }

    async fn in_slot_until<T>(
        &self,
        deadline: Instant,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let _slot = self.slots.acquire(deadline, self.timeout).await?;
        work.await
    }
}

/// The refusal of work that ran past the query timeout.
pub fn timed_out(limit: Duration) -> Status {
    Error::ResourceExhausted(format!(
        "the query ran longer than the limit of {} s (query_timeout_secs) and was stopped",
        limit.as_secs()
    ))
    .to_status()
}

/// The slots queries run in.
#[derive(Debug, Clone)]
pub struct QuerySlots {
    slots: Arc<Semaphore>,
    size: usize,
}

impl QuerySlots {
    pub fn new(size: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// Waits for a free slot until `deadline`; the slot is held until the
    /// permit drops (when the query's result stream ends).
    pub async fn acquire(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<OwnedSemaphorePermit, Status> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let _waiting = metrics().query_queued();
        // The semaphore is never closed, so only the deadline ends the wait.
        match tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::ResourceExhausted(format!(
                "the query waited {} s (query_timeout_secs) for one of the {} query slots \
                 (max_running_queries) and was not run; the server is busy with other queries",
                timeout.as_secs(),
                self.size
            ))
            .to_status()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queries_past_the_bound_wait_in_order_and_run_when_a_slot_frees() {
        let slots = QuerySlots::new(1);
        let far = Instant::now() + Duration::from_secs(60);
        let first = slots.acquire(far, Duration::from_secs(60)).await.unwrap();
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(far, Duration::from_secs(60)).await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "the second query ran beside the first"
        );
        drop(first);
        waiting.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_query_that_waits_past_its_deadline_is_resource_exhausted() {
        let slots = QuerySlots::new(1);
        let _held = slots
            .acquire(
                Instant::now() + Duration::from_secs(60),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let status = slots
            .acquire(
                Instant::now() + Duration::from_millis(20),
                Duration::from_secs(3),
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("waited 3 s"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("max_running_queries"),
            "{}",
            status.message()
        );
    }
}
