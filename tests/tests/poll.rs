//! Submitting a long statement with `PollFlightInfo` and coming back for
//! it, through arrow-flight's client: each poll answers within about a
//! second, with a descriptor to poll again while the statement runs, and
//! the statement's `FlightInfo` once it is done.

use std::time::{Duration, Instant};

use arrow_flight::FlightDescriptor;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt};
use lakehouse_tests::{TestServer, rows};
use prost::Message;

fn statement(sql: &str) -> FlightDescriptor {
    let command = CommandStatementQuery {
        query: sql.to_string(),
        transaction_id: None,
    };
    FlightDescriptor::new_cmd(command.as_any().encode_to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_statement_is_submitted_and_collected_by_polling() {
    let server = TestServer::start();
    let mut client = server.client().await;
    let started = Instant::now();
    let first = client
        .flight_sql()
        .inner_mut()
        .poll_flight_info(statement(
            "CREATE TABLE big AS SELECT value AS v FROM generate_series(1, 30000000)",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let mut next = first.flight_descriptor.expect("still running: poll again");
    assert_eq!(first.progress, None);
    let mut polls = 1;
    let done = loop {
        let asked = Instant::now();
        let poll = client
            .flight_sql()
            .inner_mut()
            .poll_flight_info(next.clone())
            .await
            .unwrap()
            .into_inner();
        polls += 1;
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{:?}",
            asked.elapsed()
        );
        match poll.flight_descriptor {
            Some(again) => next = again,
            None => break poll,
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "never finished"
        );
    };
    println!("collected after {polls} polls, {:?}", started.elapsed());
    assert_eq!(done.progress, Some(1.0));
    let affected = client.fetch(done.info.unwrap()).await.unwrap();
    assert_eq!(rows(&affected), ["30000000"]);
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM big").await.unwrap()),
        ["30000000"]
    );
    // The job is collected: its descriptor is spent.
    let spent = client
        .flight_sql()
        .inner_mut()
        .poll_flight_info(next)
        .await
        .unwrap_err();
    assert_eq!(spent.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_is_ready_on_the_first_poll() {
    let server = TestServer::start();
    let mut client = server.client().await;
    let poll = client
        .flight_sql()
        .inner_mut()
        .poll_flight_info(statement("SELECT 6 * 7 AS answer"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(poll.flight_descriptor, None);
    assert_eq!(poll.progress, Some(1.0));
    let answer = client.fetch(poll.info.unwrap()).await.unwrap();
    assert_eq!(rows(&answer), ["42"]);
    let refused = client
        .flight_sql()
        .inner_mut()
        .poll_flight_info(statement("SELEC 1"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_statement_counts_against_the_request_limits_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(dir.path(), &["--max-concurrent-requests", "1"]);
    let mut client = server.client().await;
    let first = client
        .flight_sql()
        .inner_mut()
        .poll_flight_info(statement(
            "CREATE TABLE held AS SELECT value AS v FROM generate_series(1, 30000000)",
        ))
        .await
        .unwrap()
        .into_inner();
    let mut next = first.flight_descriptor.expect("still running");
    // The running statement holds the server's one request permit.
    let refused = client.query("SELECT 1").await.unwrap_err();
    assert_eq!(
        refused.code(),
        Some(tonic::Code::ResourceExhausted),
        "{refused}"
    );
    let started = Instant::now();
    loop {
        match client
            .flight_sql()
            .inner_mut()
            .poll_flight_info(next.clone())
            .await
        {
            Ok(poll) => match poll.into_inner().flight_descriptor {
                Some(again) => next = again,
                None => break,
            },
            Err(status) => assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "never finished"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM held").await.unwrap()),
        ["30000000"]
    );
}
