//! The query slots and timeout of the server's shared
//! [`Serving`](lakehouse_serving::Serving), for Flight handlers, whose
//! work answers in `Status`. Which paths take a slot:
//! statements planned at GetFlightInfo and GetSchema (where updates sent
//! as queries also run) and run at DoGet, prepared statements created,
//! updates run by DoPut (`CREATE TABLE AS`, `INSERT ... SELECT`), and
//! actions that compute (embedding, index builds; these wait for a slot
//! but are not bounded by the query timeout).

use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tonic::Status;

use crate::status::{IntoStatus, ToStatus};
use lakehouse_serving::Serving;

#[derive(Debug, Clone)]
pub struct Admission {
    serving: Serving,
}

impl Admission {
    pub fn new(serving: Serving) -> Self {
        Self { serving }
    }

    pub fn serving(&self) -> &Serving {
        &self.serving
    }

    pub fn timeout(&self) -> Duration {
        self.serving.timeout()
    }

    /// Waits for a slot until `deadline`.
    pub async fn acquire(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, Status> {
        self.serving
            .slots()
            .acquire(deadline, self.timeout())
            .await
            .into_status()
    }

    /// Runs `work` in a slot; the wait and the work together are bounded
    /// by the query timeout.
    pub async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let deadline = Instant::now() + self.timeout();
        let _slot = self.acquire(deadline).await?;
        tokio::time::timeout_at(deadline, work)
            .await
            .unwrap_or_else(|_| Err(timed_out(self.timeout())))
    }

    /// Runs `work` in a slot, waiting for one at most the query timeout.
    pub async fn in_slot<T>(
        &self,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let _slot = self.acquire(Instant::now() + self.timeout()).await?;
        work.await
    }
}

/// The refusal of work that ran past the query timeout.
pub fn timed_out(limit: Duration) -> Status {
    lakehouse_serving::query_slots::timed_out(limit).to_status()
}
