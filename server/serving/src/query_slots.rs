//! Admission of queries: at most `max_running_queries` run at once, the
//! rest wait their turn.
//!
//! A running query holds decoded row groups, hash tables and encode
//! buffers until its last batch is sent; on a table that grows, each query
//! runs longer, so without a bound the number running (and the memory they
//! hold) climbs with the table. Running more queries than a few per core
//! adds no throughput, only memory and time slices, so queries past the
//! bound wait in arrival order instead of being refused; the wait counts
//! against `query_timeout_secs`. Statements take a slot while they are
//! planned and while their results stream, and so do updates, prepared
//! statements being created and actions that compute; catalog browsing
//! never waits behind a long query, and runs only under the query timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use lakehouse_core::metrics::metrics;
use lakehouse_engine::error::Error;

/// The refusal of work that ran past the query timeout.
pub fn timed_out(limit: Duration) -> Error {
    Error::ResourceExhausted(format!(
        "the query ran longer than the limit of {} s (query_timeout_secs) and was stopped",
        limit.as_secs()
    ))
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
    ) -> Result<OwnedSemaphorePermit, Error> {
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
            ))),
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
        let refused = slots
            .acquire(
                Instant::now() + Duration::from_millis(20),
                Duration::from_secs(3),
            )
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::ResourceExhausted(_)), "{refused}");
        let message = refused.to_string();
        assert!(message.contains("waited 3 s"), "{message}");
        assert!(message.contains("max_running_queries"), "{message}");
    }
}
