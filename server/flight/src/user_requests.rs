//! Requests in flight per user: one user's open result streams, uploads
//! and calls are capped (`max_requests_per_user`) below the server's
//! `max_concurrent_requests`, so one client cannot take every permit from
//! the others. Not applied to the anonymous user of a server without
//! authentication, where the server-wide limit is the only one.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use lakehouse_engine::error::Error;

#[derive(Debug)]
pub struct UserRequests {
    max: usize,
    counts: Mutex<HashMap<String, usize>>,
}

/// One request of one user; the count goes down when it drops.
#[derive(Debug)]
pub struct UserPermit {
    requests: Arc<UserRequests>,
    user: String,
}

impl UserRequests {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            counts: Mutex::default(),
        })
    }

    /// A permit for one more request of `user`, or `ResourceExhausted`
    /// when the user already has their limit in flight.
    pub fn acquire(self: &Arc<Self>, user: &str) -> Result<UserPermit, Error> {
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
        let requests = UserRequests::new(2);
        let first = requests.acquire("mallory").unwrap();
        let _second = requests.acquire("mallory").unwrap();
        let refused = requests.acquire("mallory").unwrap_err().to_string();
        assert!(refused.contains("max_requests_per_user"), "{refused}");
        let _rita = requests.acquire("rita").unwrap();
        drop(first);
        requests.acquire("mallory").unwrap();
    }
}
