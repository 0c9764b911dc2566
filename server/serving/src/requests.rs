//! Requests in flight: at most `max_concurrent_requests` on the whole
//! server (Flight SQL calls and HTTP requests together), and per user at
//! most `max_requests_per_user` of those, so one client cannot take every
//! permit from the others. The per-user cap is not applied to the
//! anonymous user of a server without authentication, where the
//! server-wide limit is the only one. An open result stream or upload
//! counts until it ends.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use lakehouse_engine::error::Error;

#[derive(Debug)]
pub struct Requests {
    server: Arc<Semaphore>,
    max_server: usize,
    /// `None` when authentication is off.
    users: Option<Arc<UserRequests>>,
}

/// What one request holds while it is served.
#[derive(Debug)]
pub struct RequestPermit {
    _server: OwnedSemaphorePermit,
    _user: Option<UserPermit>,
}

impl Requests {
    pub fn new(max_server: usize, max_per_user: usize, per_user: bool) -> Self {
        Self {
            server: Arc::new(Semaphore::new(max_server)),
            max_server,
            users: per_user.then(|| UserRequests::new(max_per_user)),
        }
    }

    /// A permit of the server's, for a request not yet tied to a user
    /// (a login), or `ResourceExhausted` when the server serves its limit.
    pub fn server_permit(&self) -> Result<OwnedSemaphorePermit, Error> {
        self.server.clone().try_acquire_owned().map_err(|_| {
            Error::ResourceExhausted(format!(
                "the server is serving its limit of {} requests (max_concurrent_requests); retry shortly",
                self.max_server
            ))
        })
    }

    /// The permits for one request of `user`: the server's and, when
    /// authentication is on, one of the user's own.
    pub fn admit(&self, user: &str) -> Result<RequestPermit, Error> {
        let server = self.server_permit()?;
        let user = match &self.users {
            Some(users) => Some(users.acquire(user)?),
            None => None,
        };
        Ok(RequestPermit {
            _server: server,
            _user: user,
        })
    }
}

#[derive(Debug)]
struct UserRequests {
    max: usize,
    counts: Mutex<HashMap<String, usize>>,
}

/// One request of one user; the count goes down when it drops.
#[derive(Debug)]
struct UserPermit {
    requests: Arc<UserRequests>,
    user: String,
}

impl UserRequests {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            counts: Mutex::default(),
        })
    }

    /// A permit for one more request of `user`, or `ResourceExhausted`
    /// when the user already has their limit in flight.
    fn acquire(self: &Arc<Self>, user: &str) -> Result<UserPermit, Error> {
        let mut counts = self.counts.lock();
        let count = counts.entry(user.to_string()).or_default();
        if *count >= self.max {
            return Err(Error::ResourceExhausted(format!(
                "user {user} has {} requests in flight, the limit (max_requests_per_user); \
                 finish or cancel some (an unread result stream counts until it ends)",
                self.max
            )));
        }
        *count += 1;
        Ok(UserPermit {
            requests: self.clone(),
            user: user.to_string(),
        })
    }
}

impl Drop for UserPermit {
    fn drop(&mut self) {
        let mut counts = self.requests.counts.lock();
        if let Some(count) = counts.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_has_a_cap_of_their_own() {
        let requests = Requests::new(100, 2, true);
        let first = requests.admit("mallory").unwrap();
        let _second = requests.admit("mallory").unwrap();
        let refused = requests.admit("mallory").unwrap_err().to_string();
        assert!(refused.contains("max_requests_per_user"), "{refused}");
        let _rita = requests.admit("rita").unwrap();
        drop(first);
        requests.admit("mallory").unwrap();
    }

    #[test]
    fn the_server_cap_counts_every_user() {
        let requests = Requests::new(2, 2, false);
        let _a = requests.admit("a").unwrap();
        let _b = requests.admit("b").unwrap();
        let refused = requests.admit("c").unwrap_err().to_string();
        assert!(refused.contains("max_concurrent_requests"), "{refused}");
    }
}
