//! Who made a version: the name the request authenticated as, recorded in
//! the manifest (and shown by `table_history`).
//!
//! The Flight boundary runs each call inside [`acting_as`]; every commit
//! made while the call is served records that name. Work the server does on
//! its own (background compaction, extending an index after an append)
//! runs in tasks of its own and records none.

use std::future::Future;

tokio::task_local! {
    static AUTHOR: String;
}

/// Runs `work` on behalf of `user`.
pub async fn acting_as<F: Future>(user: String, work: F) -> F::Output {
    AUTHOR.scope(user, work).await
}

/// `work` acting as the current call's user, for a task spawned to do
/// part of the call's work: task-locals do not cross `tokio::spawn`.
pub fn on_behalf<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let user = author();
    async move {
        match user {
            Some(user) => acting_as(user, work).await,
            None => work.await,
        }
    }
}

/// The user the current call serves, if any.
pub fn author() -> Option<String> {
    AUTHOR.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_inside_a_call_know_its_user() {
        assert_eq!(author(), None);
        let seen = acting_as("ada".into(), async { author() }).await;
        assert_eq!(seen.as_deref(), Some("ada"));
        let spawned = acting_as("ada".into(), async {
            tokio::spawn(async { author() }).await
        })
        .await
        .unwrap();
        assert_eq!(spawned, None);
    }
}
