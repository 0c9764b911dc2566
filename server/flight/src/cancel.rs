//! Cancelling queries from another connection. `CancelFlightInfo` (and
//! Flight SQL's older `CancelQuery` action) name a query by the
//! `FlightInfo` that `GetFlightInfo` answered; every DoGet that runs a
//! statement registers its ticket here while it waits for a slot and runs.
//! A cancel gives the query's slot back at once (not when its stream is
//! next polled), and the result then ends with `Cancelled`.
//!
//! A cancel that arrives before the DoGet starts is remembered for a while,
//! so the DoGet is refused instead of running. Only the user who runs a
//! query, or an admin, may cancel it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::{CancelStatus, FlightInfo};
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tonic::Status;

use lakehouse_core::auth::{Identity, Role};

/// How long a cancel of a query that has not started is remembered.
const EARLY_CANCEL_TTL: Duration = Duration::from_secs(600);
/// Early cancels remembered at most.
const EARLY_CANCELS: usize = 4096;

/// The statements running (or waiting for a slot) by ticket.
#[derive(Clone, Default, Debug)]
pub struct Running {
    state: Arc<Mutex<State>>,
}

#[derive(Default, Debug)]
struct State {
    by_ticket: HashMap<Bytes, Vec<Entry>>,
    cancelled_early: VecDeque<(Bytes, Instant)>,
    next_id: u64,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    user: String,
    stop: watch::Sender<bool>,
    slot: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

/// One running statement, registered until dropped.
#[derive(Debug)]
pub struct RunningQuery {
    running: Running,
    ticket: Bytes,
    id: u64,
    stopped: watch::Receiver<bool>,
    slot: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

impl Running {
    /// Registers the statement of `ticket` run by `user`; `Cancelled` when
    /// a cancel for it came first.
    pub fn start(&self, ticket: Bytes, user: &str) -> Result<RunningQuery, Status> {
        let mut state = self.state.lock();
        state.forget_old_cancels();
        if let Some(at) = state.cancelled_early.iter().position(|(t, _)| *t == ticket) {
            state.cancelled_early.remove(at);
            return Err(Status::cancelled(
                "the query was cancelled (CancelFlightInfo) before it started",
            ));
        }
        state.next_id += 1;
        let id = state.next_id;
        let (stop, stopped) = watch::channel(false);
        let slot = Arc::new(Mutex::new(None));
        state
            .by_ticket
            .entry(ticket.clone())
            .or_default()
            .push(Entry {
                id,
                user: user.to_string(),
                stop,
                slot: slot.clone(),
            });
        Ok(RunningQuery {
            running: self.clone(),
            ticket,
            id,
            stopped,
            slot,
        })
    }

    /// Cancels the queries of `info`'s endpoints on behalf of `caller`.
    pub fn cancel(&self, info: &FlightInfo, caller: &Identity) -> Result<CancelStatus, Status> {
        let tickets: Vec<Bytes> = info
            .endpoint
            .iter()
            .filter_map(|endpoint| endpoint.ticket.as_ref().map(|t| t.ticket.clone()))
            .collect();
        if tickets.is_empty() {
            return Err(Status::invalid_argument(
                "the FlightInfo to cancel has no endpoint with a ticket: send the one GetFlightInfo answered",
            ));
        }
        let mut state = self.state.lock();
        state.forget_old_cancels();
        for ticket in tickets {
            let Some(entries) = state.by_ticket.get(&ticket) else {
                if state.cancelled_early.len() >= EARLY_CANCELS {
                    state.cancelled_early.pop_front();
                }
                state.cancelled_early.push_back((ticket, Instant::now()));
                continue;
            };
            for entry in entries {
                if entry.user != caller.name && caller.role != Role::Admin {
                    return Err(Status::permission_denied(format!(
                        "{} may not cancel a query of {}: only its user or an admin may",
                        caller.name, entry.user
                    )));
                }
            }
            for entry in entries {
                // The slot goes back now; the stream ends when next polled.
                entry.slot.lock().take();
                let _ = entry.stop.send(true);
            }
            tracing::info!(user = %caller.name, queries = entries.len(), "queries cancelled");
        }
        Ok(CancelStatus::Cancelled)
    }

    fn finish(&self, ticket: &Bytes, id: u64) {
        let mut state = self.state.lock();
        if let Some(entries) = state.by_ticket.get_mut(ticket) {
            entries.retain(|entry| entry.id != id);
            if entries.is_empty() {
                state.by_ticket.remove(ticket);
            }
        }
    }
}

impl State {
    fn forget_old_cancels(&mut self) {
        while self
            .cancelled_early
            .front()
            .is_some_and(|(_, at)| at.elapsed() > EARLY_CANCEL_TTL)
        {
            self.cancelled_early.pop_front();
        }
    }
}

impl RunningQuery {
    /// Keeps the query's slot until the query ends or is cancelled.
    pub fn hold(&self, slot: OwnedSemaphorePermit) {
        if !*self.stopped.borrow() {
            *self.slot.lock() = Some(slot);
        }
    }

    /// Completes when the query is cancelled.
    pub async fn cancelled(&self) {
        let mut stopped = self.stopped.clone();
        if stopped.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for RunningQuery {
    fn drop(&mut self) {
        self.running.finish(&self.ticket, self.id);
    }
}

/// The status a cancelled query's result ends with.
pub fn cancelled_status() -> Status {
    Status::cancelled("the query was cancelled (CancelFlightInfo)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_flight::{FlightEndpoint, Ticket};
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    fn info(ticket: &'static [u8]) -> FlightInfo {
        FlightInfo::new().with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
    }

    fn user(name: &str, role: Role) -> Identity {
        Identity {
            name: name.to_string(),
            role,
        }
    }

    #[tokio::test]
    async fn a_cancel_frees_the_slot_at_once_and_stops_the_query() {
        let running = Running::default();
        let slots = Arc::new(Semaphore::new(1));
        let query = running.start(Bytes::from_static(b"t1"), "ada").unwrap();
        query.hold(slots.clone().acquire_owned().await.unwrap());
        assert_eq!(slots.available_permits(), 0);
        let status = running
            .cancel(&info(b"t1"), &user("ada", Role::Reader))
            .unwrap();
        assert_eq!(status, CancelStatus::Cancelled);
        assert_eq!(slots.available_permits(), 1);
        assert!(*query.stopped.borrow());
        query.cancelled().await;
        drop(query);
        assert!(running.state.lock().by_ticket.is_empty());
    }

    #[tokio::test]
    async fn only_the_user_or_an_admin_may_cancel() {
        let running = Running::default();
        let query = running.start(Bytes::from_static(b"t2"), "walt").unwrap();
        let refused = running
            .cancel(&info(b"t2"), &user("rita", Role::Reader))
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(!*query.stopped.borrow());
        running
            .cancel(&info(b"t2"), &user("root", Role::Admin))
            .unwrap();
        assert!(*query.stopped.borrow());
    }

    #[test]
    fn a_cancel_before_the_start_refuses_the_start() {
        let running = Running::default();
        running
            .cancel(&info(b"t3"), &user("ada", Role::Admin))
            .unwrap();
        let refused = running.start(Bytes::from_static(b"t3"), "ada").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Cancelled);
        assert!(running.start(Bytes::from_static(b"t3"), "ada").is_ok());
        let empty = running
            .cancel(&FlightInfo::new(), &user("ada", Role::Admin))
            .unwrap_err();
        assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    }
}
