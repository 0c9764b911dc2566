//! Statements submitted with `PollFlightInfo`: the client sends its
//! command and comes back later instead of holding a call open while a
//! long statement (`CREATE TABLE ... AS`, `INSERT ... SELECT`, `MERGE`)
//! runs. The first poll starts the statement in a task of its own and
//! waits a moment; if it is still running, the answer carries a descriptor
//! to poll with next, and each later poll waits a moment again. Once done,
//! the poll answers the statement's `FlightInfo` (progress 1.0), or its
//! error. A query's `FlightInfo` is ready as soon as it is planned (its
//! rows are computed by DoGet), so queries answer on the first poll.
//!
//! A job belongs to the user who started it; finished jobs are kept for
//! [`KEEP_FINISHED`], and at most [`MAX_JOBS`] at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::{FlightDescriptor, FlightInfo, PollInfo};
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::Status;

use lakehouse_core::auth::Identity;

/// How long one poll waits for its statement before answering "running".
pub const POLL_WAIT: Duration = Duration::from_secs(1);
/// How long a finished job's answer stays to be polled.
const KEEP_FINISHED: Duration = Duration::from_secs(600);
/// Jobs kept at most (running and finished).
pub const MAX_JOBS: usize = 1024;
/// The command of a poll descriptor: this prefix and the job's id.
const POLL_PREFIX: &[u8] = b"lakehouse.poll:";

type Outcome = Option<Result<FlightInfo, Status>>;

struct Job {
    user: String,
    descriptor: FlightDescriptor,
    outcome: watch::Receiver<Outcome>,
    finished: Option<Instant>,
}

/// The statements submitted by polling.
#[derive(Clone, Default)]
pub struct Polls {
    jobs: Arc<Mutex<HashMap<String, Job>>>,
}

impl std::fmt::Debug for Polls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Polls")
            .field("jobs", &self.jobs.lock().len())
            .finish()
    }
}

/// The job id a poll descriptor names, if it is one.
pub fn job_of(descriptor: &FlightDescriptor) -> Option<String> {
    let id = descriptor.cmd.strip_prefix(POLL_PREFIX)?;
    Some(String::from_utf8_lossy(id).into_owned())
}

impl Polls {
    /// Starts `work` (the statement of `descriptor`) for `caller`; its id.
    pub fn start(
        &self,
        caller: &Identity,
        descriptor: FlightDescriptor,
        work: impl Future<Output = Result<FlightInfo, Status>> + Send + 'static,
    ) -> Result<String, Status> {
        let mut jobs = self.jobs.lock();
        jobs.retain(|_, job| job.finished.is_none_or(|at| at.elapsed() < KEEP_FINISHED));
        if jobs.len() >= MAX_JOBS {
            return Err(Status::resource_exhausted(format!(
                "{MAX_JOBS} polled statements are running or waiting to be collected; poll them to the end first"
            )));
        }
        let id = lakehouse_core::auth::random_secret();
        let (done, outcome) = watch::channel(None);
        jobs.insert(
            id.clone(),
            Job {
                user: caller.name.clone(),
                descriptor,
                outcome,
                finished: None,
            },
        );
        let registry = self.clone();
        let job = id.clone();
        tokio::spawn(async move {
            let result = work.await;
            if let Some(entry) = registry.jobs.lock().get_mut(&job) {
                entry.finished = Some(Instant::now());
            }
            let _ = done.send(Some(result));
        });
        Ok(id)
    }

    /// Waits up to `wait` for job `id`: its `FlightInfo` when done (and the
    /// job is forgotten), its error, or a `PollInfo` to poll again with.
    pub async fn poll(
        &self,
        id: &str,
        caller: &Identity,
        wait: Duration,
    ) -> Result<PollInfo, Status> {
        let (mut outcome, descriptor) = {
            let jobs = self.jobs.lock();
            let job = jobs
                .get(id)
                .filter(|job| job.user == caller.name)
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "no polled statement {id:?} of {}: it finished and was collected, or expired",
                        caller.name
                    ))
                })?;
            (job.outcome.clone(), job.descriptor.clone())
        };
        let done = tokio::time::timeout(wait, outcome.wait_for(Option::is_some)).await;
        let result = match done {
            Ok(Ok(outcome)) => outcome.clone().expect("waited for Some"),
            Ok(Err(_)) => Err(Status::internal(
                "the polled statement's task ended without an answer",
            )),
            Err(_) => {
                return Ok(PollInfo {
                    info: Some(FlightInfo::new().with_descriptor(descriptor)),
                    flight_descriptor: Some(FlightDescriptor::new_cmd(poll_command(id))),
                    progress: None,
                    expiration_time: None,
                });
            }
        };
        self.jobs.lock().remove(id);
        Ok(PollInfo {
            info: Some(result?),
            flight_descriptor: None,
            progress: Some(1.0),
            expiration_time: None,
        })
    }
}

fn poll_command(id: &str) -> Bytes {
    [POLL_PREFIX, id.as_bytes()].concat().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakehouse_core::auth::Role;

    fn user(name: &str) -> Identity {
        Identity {
            name: name.to_string(),
            role: Role::Writer,
        }
    }

    #[tokio::test]
    async fn a_long_statement_is_polled_until_done() {
        let polls = Polls::default();
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let descriptor = FlightDescriptor::new_cmd("CREATE TABLE t AS ...");
        let id = polls
            .start(&user("walt"), descriptor.clone(), async move {
                finished.await.unwrap();
                Ok(FlightInfo::new().with_descriptor(FlightDescriptor::new_cmd("done")))
            })
            .unwrap();
        let running = polls
            .poll(&id, &user("walt"), Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(running.progress, None);
        let next = running.flight_descriptor.unwrap();
        assert_eq!(job_of(&next).as_deref(), Some(id.as_str()));
        assert_eq!(running.info.unwrap().flight_descriptor, Some(descriptor));

        let refused = polls
            .poll(&id, &user("rita"), Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::NotFound);

        finish.send(()).unwrap();
        let done = polls
            .poll(&id, &user("walt"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(done.progress, Some(1.0));
        assert_eq!(done.flight_descriptor, None);
        assert_eq!(
            done.info.unwrap().flight_descriptor.unwrap().cmd,
            Bytes::from("done")
        );
        // Collected: polling again says so.
        let gone = polls
            .poll(&id, &user("walt"), Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(gone.code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn a_failed_statement_answers_its_error() {
        let polls = Polls::default();
        let id = polls
            .start(&user("walt"), FlightDescriptor::new_cmd("x"), async {
                Err(Status::invalid_argument("SQL parse error"))
            })
            .unwrap();
        let error = polls
            .poll(&id, &user("walt"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert_eq!(job_of(&FlightDescriptor::new_cmd("SELECT 1")), None);
    }
}
