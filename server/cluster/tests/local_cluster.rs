//! A scheduler and an executor in this process, on ports of their own, run
//! a query the engine planned over a catalog table, with the table pinned
//! to the version planned, and answer what the engine answers alone.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::collect;
use futures::TryStreamExt;

use lakehouse_cluster::{
    DEFAULT_HEARTBEAT, ExecutorOptions, LakehouseLogicalCodec, NOT_DISTRIBUTABLE, SchedulerOptions,
    run_executor, run_scheduler,
};
use lakehouse_core::catalog::Catalog;
use lakehouse_core::storage::Storage;
use lakehouse_engine::ingest::{FileLayout, Ingest};
use lakehouse_engine::query::{Planned, QueryEngine, QueryOptions};
use lakehouse_engine::vectors::VectorTables;

/// A port nobody listens on now (the OS's choice).
fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Waits until something accepts connections on `address`.
async fn listening(address: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn engine(storage: &Storage) -> QueryEngine {
    let catalog = Arc::new(Catalog::load(storage.store.clone()).await.unwrap());
    let ingest = Ingest::new(catalog.clone(), FileLayout::default());
    let vectors = Arc::new(VectorTables::new(storage, 1 << 20, 1 << 20));
    QueryEngine::new(storage, catalog, ingest, vectors, QueryOptions::default()).unwrap()
}

async fn run(engine: &QueryEngine, sql: &str) {
    match engine.classify(engine.plan(sql).await.unwrap()).unwrap() {
        Planned::Update(update) => drop(engine.execute_update(update).await.unwrap()),
        Planned::Query(_) => panic!("{sql} is a query"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_answers_what_the_engine_answers() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().to_str().unwrap().to_string();
    let storage = Storage::open(&location, Duration::from_secs(10))
        .await
        .unwrap();
    let engine = engine(&storage).await;
    run(
        &engine,
        "CREATE TABLE sales AS SELECT v % 7 AS region, v AS amount \
         FROM (SELECT unnest(range(1, 10001)) AS v)",
    )
    .await;
    run(&engine, "INSERT INTO sales VALUES (7, 5), (8, 6)").await;

    let scheduler = free_address();
    tokio::spawn(run_scheduler(
        SchedulerOptions::new(scheduler),
        storage.clone(),
    ));
    listening(scheduler).await;
    let executor = free_address();
    let options = ExecutorOptions {
        address: executor,
        external_host: None,
        grpc_port: free_address().port(),
        scheduler: scheduler.into(),
        concurrent_tasks: Some(2),
        work_dir: Some(dir.path().join("shuffle").to_str().unwrap().to_string()),
        heartbeat: DEFAULT_HEARTBEAT,
    };
    std::fs::create_dir_all(dir.path().join("shuffle")).unwrap();
    tokio::spawn(run_executor(options, storage.clone()));
    listening(executor).await;

    let sql = "SELECT region, count(*) AS n, sum(amount) AS total FROM sales \
               WHERE amount > 10 GROUP BY region ORDER BY region";
    let plan = match engine.classify(engine.plan(sql).await.unwrap()).unwrap() {
        Planned::Query(plan) => plan,
        Planned::Update(_) => unreachable!("a SELECT"),
    };
    let alone: Vec<_> = engine
        .execute_query(plan.clone())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    let config = engine
        .session()
        .copied_config()
        .with_ballista_logical_extension_codec(Arc::new(LakehouseLogicalCodec::default()));
    let state = SessionStateBuilder::new_from_existing(engine.session().state())
        .with_config(config)
        .build()
        .upgrade_for_ballista(format!("http://{scheduler}"))
        .unwrap();
    // A commit after planning: the cluster still reads the version planned.
    run(&engine, "INSERT INTO sales VALUES (1, 1000000)").await;
    let physical = state.create_physical_plan(&plan).await.unwrap();
    assert_eq!(physical.name(), "DistributedQueryExec");
    let clustered = collect(physical, state.task_ctx()).await.unwrap();

    let alone = pretty_format_batches(&alone).unwrap().to_string();
    assert_eq!(
        pretty_format_batches(&clustered).unwrap().to_string(),
        alone
    );
    assert!(alone.contains("| 1      | 1427 | 7143562 |"), "{alone}");

    // Files from before an ALTER TABLE are read through a mapping
    // executors cannot apply: such a plan is refused, never sent without it.
    run(&engine, "ALTER TABLE sales RENAME COLUMN amount TO value").await;
    let plan = engine.plan("SELECT sum(value) FROM sales").await.unwrap();
    let physical = state.create_physical_plan(&plan).await.unwrap();
    let refused = collect(physical, state.task_ctx()).await.unwrap_err();
    assert!(refused.to_string().contains(NOT_DISTRIBUTABLE), "{refused}");
}
