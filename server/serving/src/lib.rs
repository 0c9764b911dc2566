//! What every protocol does around the engine: Flight SQL and the HTTP API
//! share one [`Serving`], so their requests count against the same limits
//! and run under the same rules.
//!
//! - [`requests`]: permits for requests in flight, per server and per user;
//! - [`query_slots`]: how many statements run at once, the rest waiting;
//! - [`access`]: whether a caller's role allows a statement;
//! - [`limit_rows`]: the row limit of a result;
//! - [`errors`]: what each error means to the caller, for each protocol to
//!   turn into its codes.
//!
//! It knows nothing of gRPC or HTTP: each protocol maps the engine's
//! errors to its own status codes.

pub mod access;
pub mod errors;
pub mod query_slots;
pub mod requests;

use std::time::Duration;

use arrow::array::RecordBatch;
use futures::{Stream, TryStreamExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use lakehouse_engine::error::{Error, Result};
use query_slots::{QuerySlots, timed_out};
use requests::{RequestPermit, Requests};

/// The limits every protocol applies.
#[derive(Debug, Clone)]
pub struct ServingLimits {
    pub max_concurrent_requests: usize,
    /// Requests one user may have in flight at once (not applied when
    /// authentication is off: then everyone is the same anonymous user).
    pub max_requests_per_user: usize,
    /// Statements whose results run at once; more wait.
    pub max_running_queries: usize,
    pub query_timeout: Duration,
    /// Rows one result may have; `None` for no limit.
    pub max_result_rows: Option<u64>,
}

/// Request permits, query slots and limits, shared by the protocols.
#[derive(Debug, Clone)]
pub struct Serving {
    requests: std::sync::Arc<Requests>,
    slots: QuerySlots,
    timeout: Duration,
    max_result_rows: Option<u64>,
}

impl Serving {
    /// The limits of a server; `authenticated` when callers log in (then
    /// each user has a cap of their own).
    pub fn new(limits: &ServingLimits, authenticated: bool) -> Self {
        Self {
            requests: std::sync::Arc::new(Requests::new(
                limits.max_concurrent_requests,
                limits.max_requests_per_user,
                authenticated,
            )),
            slots: QuerySlots::new(limits.max_running_queries),
            timeout: limits.query_timeout,
            max_result_rows: limits.max_result_rows,
        }
    }

    /// The permits of one request of `user`, held until it is served (a
    /// result stream: until it ends).
    pub fn admit(&self, user: &str) -> Result<RequestPermit> {
        self.requests.admit(user)
    }

    /// A permit of the server's alone, for a request not yet tied to a
    /// user (a login).
    pub fn server_permit(&self) -> Result<OwnedSemaphorePermit> {
        self.requests.server_permit()
    }

    pub fn slots(&self) -> &QuerySlots {
        &self.slots
    }

    /// How long a statement may wait for a slot and run.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A slot for a statement starting now, held until the permit drops;
    /// the statement's deadline with it.
    pub async fn query_slot(&self) -> Result<(OwnedSemaphorePermit, Instant)> {
        let deadline = Instant::now() + self.timeout;
        let slot = self.slots.acquire(deadline, self.timeout).await?;
        Ok((slot, deadline))
    }

    /// Runs `work` in a slot; the wait and the work together are bounded
    /// by the query timeout.
    pub async fn bounded<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let (_slot, deadline) = self.query_slot().await?;
        tokio::time::timeout_at(deadline, work)
            .await
            .unwrap_or_else(|_| Err(timed_out(self.timeout)))
    }

    /// `batches` until more than the result row limit have gone by, then
    /// an error.
    pub fn limit_rows<S>(&self, batches: S) -> impl Stream<Item = Result<RecordBatch>> + use<S>
    where
        S: Stream<Item = Result<RecordBatch>> + Send + 'static,
    {
        limit_rows(batches, self.max_result_rows)
    }
}

/// Passes `batches` through until more than `max_rows` rows have gone by,
/// then fails the result with `ResourceExhausted`.
pub fn limit_rows<S>(batches: S, max_rows: Option<u64>) -> impl Stream<Item = Result<RecordBatch>>
where
    S: Stream<Item = Result<RecordBatch>> + Send + 'static,
{
    let mut sent = 0u64;
    batches.and_then(move |batch| {
        sent += batch.num_rows() as u64;
        let over = max_rows.filter(|max| sent > *max);
        futures::future::ready(match over {
            Some(max) => Err(Error::ResourceExhausted(format!(
                "the result has more than {max} rows (max_result_rows); add a LIMIT or narrow the query"
            ))),
            None => Ok(batch),
        })
    })
}
