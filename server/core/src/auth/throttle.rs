//! Back-off for failed password logins, per client address and per user
//! name, so that guessing costs the guesser time and never the server's
//! CPU: once a key has failed [`FREE_FAILURES`] times, each further attempt
//! is refused without hashing until a wait that doubles with every failure
//! (from 1 s up to [`MAX_WAIT`]) has passed. A success clears the client's
//! and the name's record. Bearer tokens are not throttled: checking one
//! costs a signature or a digest, and guessing one is hopeless.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures allowed before any wait (typos).
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// A record is forgotten this long after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Records kept at most; expired ones are dropped when full, then all.
const MAX_RECORDS: usize = 100_000;

/// Who a login attempt is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Client(IpAddr),
    User(String),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Client(ip) => write!(f, "from {ip}"),
            Subject::User(name) => write!(f, "for user {name:?}"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    fn wait(&self) -> Duration {
        let over = self.count.saturating_sub(FREE_FAILURES);
        if over == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs(1u64 << (over - 1).min(16)).min(MAX_WAIT)
    }
}

/// Failed logins by subject.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<Subject, Failures>>,
}

impl Throttle {
    /// The subject among `subjects` that must still wait, and how long.
    pub fn waiting(&self, subjects: &[Subject]) -> Option<(Subject, Duration)> {
        let failures = self.failures.lock();
        let now = Instant::now();
        subjects
            .iter()
            .filter_map(|subject| {
                let record = failures.get(subject)?;
                let until = record.last + record.wait();
                (until > now).then(|| (subject.clone(), until - now))
            })
            .max_by_key(|(_, wait)| *wait)
    }

    pub fn failed(&self, subjects: &[Subject]) {
        let mut failures = self.failures.lock();
        let now = Instant::now();
        if failures.len() >= MAX_RECORDS {
            failures.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if failures.len() >= MAX_RECORDS {
                failures.clear();
            }
        }
        for subject in subjects {
            let record = failures.entry(subject.clone()).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(record.last) >= FORGET_AFTER {
                record.count = 0;
            }
            record.count += 1;
            record.last = now;
        }
    }

    pub fn succeeded(&self, subjects: &[Subject]) {
        let mut failures = self.failures.lock();
        for subject in subjects {
            failures.remove(subject);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_free_failures_and_a_success_clears_them() {
        let throttle = Throttle::default();
        let client = [Subject::Client("10.0.0.7".parse().unwrap())];
        for _ in 0..FREE_FAILURES {
            assert!(throttle.waiting(&client).is_none());
            throttle.failed(&client);
        }
        assert!(throttle.waiting(&client).is_none());
        throttle.failed(&client);
        let (who, wait) = throttle.waiting(&client).unwrap();
        assert_eq!(who.to_string(), "from 10.0.0.7");
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900));
        throttle.failed(&client);
        assert!(throttle.waiting(&client).unwrap().1 > Duration::from_millis(1900));
        for _ in 0..40 {
            throttle.failed(&client);
        }
        assert!(throttle.waiting(&client).unwrap().1 <= MAX_WAIT);
        throttle.succeeded(&client);
        assert!(throttle.waiting(&client).is_none());
    }

    #[test]
    fn the_longest_wait_of_the_subjects_applies() {
        let throttle = Throttle::default();
        let name = Subject::User("alice".into());
        let here = Subject::Client("127.0.0.1".parse().unwrap());
        for _ in 0..FREE_FAILURES + 3 {
            throttle.failed(std::slice::from_ref(&name));
        }
        let (who, _) = throttle.waiting(&[here, name.clone()]).unwrap();
        assert_eq!(who, name);
    }
}
