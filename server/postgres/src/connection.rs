//! One client connection once logged in: who it is, its settings, and the
//! cancel requests aimed at it.
//!
//! Postgres cancels from a second connection that sends the first one's
//! process id and secret key; [`Connections`] finds the connection by
//! both, and the running statement, which watches its [`CancelSignal`],
//! stops, frees its query slot and answers `57014`. A cancel that comes
//! between statements cancels nothing, as in Postgres.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use pgwire::messages::startup::SecretKey;
use tokio::sync::watch;

use crate::settings::Settings;
use lakehouse_core::auth::{Identity, Role};

/// A logged-in connection.
#[derive(Debug)]
pub struct Connection {
    pub identity: Identity,
    pub client: SocketAddr,
    settings: Mutex<Settings>,
    cancels: watch::Sender<u64>,
    /// A statement inside `BEGIN` wrote: a `ROLLBACK` must say it stays.
    wrote_in_block: AtomicBool,
}

impl Connection {
    pub fn new(identity: Identity, client: SocketAddr) -> Self {
        let settings = Settings::for_user(&identity.name, identity.role == Role::Admin);
        Self {
            identity,
            client,
            settings: Mutex::new(settings),
            cancels: watch::Sender::new(0),
            wrote_in_block: AtomicBool::new(false),
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings.lock().clone()
    }

    pub fn change_settings<T>(&self, change: impl FnOnce(&mut Settings) -> T) -> T {
        change(&mut self.settings.lock())
    }

    /// Cancels the statement running now, if any.
    pub fn cancel(&self) {
        self.cancels.send_modify(|n| *n += 1);
    }

    /// What a statement starting now watches for cancel requests.
    pub fn cancel_signal(&self) -> CancelSignal {
        CancelSignal(self.cancels.subscribe())
    }

    pub fn wrote(&self, in_block: bool) {
        if in_block {
            self.wrote_in_block.store(true, Ordering::Relaxed);
        }
    }

    /// Whether a write happened since the block began; forgets it.
    pub fn end_block(&self) -> bool {
        self.wrote_in_block.swap(false, Ordering::Relaxed)
    }
}

/// Cancel requests that arrive after a statement started.
#[derive(Debug, Clone)]
pub struct CancelSignal(watch::Receiver<u64>);

impl CancelSignal {
    /// Completes when a cancel request arrives; never, once the connection
    /// is gone.
    pub async fn cancelled(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Connections by process id, for cancel requests.
#[derive(Debug, Default)]
pub struct Connections {
    by_pid: Mutex<HashMap<i32, (SecretKey, Weak<Connection>)>>,
}

impl Connections {
    /// Records `connection` under `pid` and `key` until the returned
    /// guard drops with the connection.
    pub fn register(
        self: &Arc<Self>,
        pid: i32,
        key: SecretKey,
        connection: &Arc<Connection>,
    ) -> Registered {
        self.by_pid
            .lock()
            .insert(pid, (key, Arc::downgrade(connection)));
        Registered {
            pid,
            connections: self.clone(),
        }
    }

    /// Cancels the running statement of the connection `pid`, when `key`
    /// is its key; returns whether one matched.
    pub fn cancel(&self, pid: i32, key: &SecretKey) -> bool {
        let found = self
            .by_pid
            .lock()
            .get(&pid)
            .filter(|(expected, _)| expected.eq_value(key))
            .and_then(|(_, connection)| connection.upgrade());
        match found {
            Some(connection) => {
                tracing::info!(user = %connection.identity.name, pid, "postgres cancel request");
                connection.cancel();
                true
            }
            None => false,
        }
    }
}

/// Removes a connection from [`Connections`] when dropped.
#[derive(Debug)]
pub struct Registered {
    pid: i32,
    connections: Arc<Connections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.by_pid.lock().remove(&self.pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_needs_the_right_key_and_reaches_the_running_statement() {
        let connections = Arc::new(Connections::default());
        let connection = Arc::new(Connection::new(
            Identity::anonymous(),
            "127.0.0.1:1".parse().unwrap(),
        ));
        let registered = connections.register(7, SecretKey::I32(42), &connection);
        let mut signal = connection.cancel_signal();
        assert!(!connections.cancel(7, &SecretKey::I32(41)));
        assert!(!connections.cancel(8, &SecretKey::I32(42)));
        assert!(connections.cancel(7, &SecretKey::I32(42)));
        tokio::time::timeout(std::time::Duration::from_secs(1), signal.cancelled())
            .await
            .expect("the statement saw the cancel");
        // A statement that starts after the cancel is not cancelled.
        let mut later = connection.cancel_signal();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), later.cancelled())
                .await
                .is_err()
        );
        drop(registered);
        assert!(connections.by_pid.lock().is_empty());
    }
}
