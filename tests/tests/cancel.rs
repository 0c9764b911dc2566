//! Cancelling a running query from another connection (`CancelFlightInfo`)
//! through the Rust client: the query's result ends with `Cancelled`, its
//! slot is free at once, and only its user or an admin may cancel it.

use std::time::{Duration, Instant};

use lakehouse_tests::TestServer;
use tonic::Code;

/// A query that runs for minutes unless cancelled.
const LONG: &str = "SELECT sum(value % 7) AS s FROM generate_series(1, 100000000000)";

async fn wait_for(server: &TestServer, metric: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric(metric).await != value {
        assert!(Instant::now() < deadline, "{metric} never became {value}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_flight_info_stops_a_running_query_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(dir.path(), &["--max-running-queries", "1"]);
    let mut first = server.client().await;
    let info = first
        .flight_sql()
        .execute(LONG.to_string(), None)
        .await
        .unwrap();
    let running = {
        let info = info.clone();
        tokio::spawn(async move { first.fetch(info).await })
    };
    wait_for(&server, "lakehouse_active_queries", 1.0).await;

    let mut other = server.client().await;
    let started = Instant::now();
    let status = other.cancel(&info).await.unwrap();
    assert_eq!(status, arrow_flight::CancelStatus::Cancelled);
    // The one slot is free: a query on another connection runs at once.
    let answer = other.query("SELECT 42 AS answer").await.unwrap();
    let freed = started.elapsed();
    assert_eq!(lakehouse_tests::rows(&answer), ["42"]);
    println!("cancel to the next query answered: {freed:?}");
    assert!(
        freed < Duration::from_secs(2),
        "the slot came back after {freed:?}"
    );

    let ended = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the cancelled query's stream ends")
        .unwrap()
        .unwrap_err();
    assert_eq!(ended.code(), Some(Code::Cancelled), "{ended}");
    assert!(ended.to_string().contains("cancelled"), "{ended}");
    wait_for(&server, "lakehouse_active_queries", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_before_the_query_starts_keeps_it_from_running() {
    let server = TestServer::start();
    let mut client = server.client().await;
    let info = client
        .flight_sql()
        .execute(LONG.to_string(), None)
        .await
        .unwrap();
    assert_eq!(
        client.cancel(&info).await.unwrap(),
        arrow_flight::CancelStatus::Cancelled
    );
    let refused = client.fetch(info).await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::Cancelled), "{refused}");
    let empty = client
        .cancel(&arrow_flight::FlightInfo::new())
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Some(Code::InvalidArgument), "{empty}");
}
