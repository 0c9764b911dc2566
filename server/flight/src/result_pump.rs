//! Results for clients that stop reading.
//!
//! A result stream is only polled when the connection has room for more,
//! so a client that opens a DoGet and stops reading (but keeps its
//! connection) would hold the query's slot, permits and memory for as long
//! as it likes. Here the result runs in a task of its own that hands each
//! message to the response through a small channel; when the client takes
//! nothing for `result_write_timeout_secs`, the task drops the query (and
//! everything it holds) and the response ends with `ResourceExhausted`
//! naming the setting, never as a result that looks complete.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow_flight::FlightData;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::Status;
use tracing::warn;

use lakehouse_engine::error::Error;

use super::status::ToStatus;

/// Messages produced ahead of the client.
const AHEAD: usize = 2;

type Results = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// `results`, produced in a task that gives up after `write_timeout`
/// without the client taking a message, or as soon as the client goes away
/// (a cancelled call, a closed connection), even while the query is still
/// working towards its first batch.
pub fn pumped(mut results: Results, write_timeout: Duration) -> Results {
    let (tx, rx) = mpsc::channel(AHEAD);
    let stalled = Arc::new(AtomicBool::new(false));
    let flag = stalled.clone();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = results.next() => next,
                () = tx.closed() => return,
            };
            let Some(message) = next else {
                return;
            };
            match tokio::time::timeout(write_timeout, tx.send(message)).await {
                Ok(Ok(())) => {}
                // The client went away.
                Ok(Err(_)) => return,
                Err(_) => {
                    warn!(
                        write_timeout_secs = write_timeout.as_secs(),
                        "a client read nothing of its result for result_write_timeout_secs; stopping the query"
                    );
                    flag.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    });
    Box::pin(futures::stream::unfold(
        (rx, stalled, false),
        move |(mut rx, stalled, done)| async move {
            if done {
                return None;
            }
            match rx.recv().await {
                Some(message) => Some((message, (rx, stalled, false))),
                None if stalled.load(Ordering::SeqCst) => {
                    let refusal = Error::ResourceExhausted(format!(
                        "the client read nothing of this result for {} s (result_write_timeout_secs), \
                         so the server stopped the query; read results as they come",
                        write_timeout.as_secs()
                    ))
                    .to_status();
                    Some((Err(refusal), (rx, stalled, true)))
                }
                None => None,
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Result<FlightData, Status> {
        Ok(FlightData::default())
    }

    #[tokio::test]
    async fn a_reader_that_keeps_reading_gets_everything() {
        let results = futures::stream::iter((0..10).map(|_| message())).boxed();
        let got: Vec<_> = pumped(results, Duration::from_millis(200)).collect().await;
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(Result::is_ok));
    }

    struct DropFlag(Arc<AtomicBool>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_client_that_goes_away_stops_a_query_that_has_not_answered_yet() {
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        // A query working towards its first batch: it never yields.
        let results = futures::stream::pending::<Result<FlightData, Status>>()
            .map(move |item| {
                let _held = &dropped_tx;
                item
            })
            .boxed();
        let stream = pumped(results, Duration::from_secs(600));
        drop(stream);
        tokio::time::timeout(Duration::from_secs(5), dropped_rx)
            .await
            .expect("the query was dropped when its client went away")
            .unwrap_err();
    }

    #[tokio::test]
    async fn a_stalled_reader_ends_with_an_error_and_the_query_is_dropped() {
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = DropFlag(dropped.clone());
        let results = futures::stream::iter((0..100).map(move |_| {
            let _held = &guard;
            message()
        }))
        .boxed();
        let mut stream = pumped(results, Duration::from_millis(100));
        assert!(stream.next().await.unwrap().is_ok());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(dropped.load(Ordering::SeqCst), "the query was not dropped");
        let rest: Vec<_> = stream.collect().await;
        let last = rest.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.code(), tonic::Code::ResourceExhausted);
        assert!(last.message().contains("result_write_timeout_secs"));
        assert!(rest.len() <= AHEAD + 2);
    }
}
