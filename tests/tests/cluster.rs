//! The server as the client of a Ballista cluster (`--cluster-scheduler`):
//! a scheduler and an executor started from the same binary over the same
//! storage; queries from a Flight SQL client answer exactly what a server
//! without the cluster answers, and those that cannot travel (extension
//! functions, tables read through an ALTER mapping) still answer, here.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lakehouse_tests::{TestServer, rows, server_binary};

/// A cluster process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nobody listens on now (the OS's choice).
fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Waits until something accepts connections on `address`.
fn wait_listening(address: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(storage: &Path, args: &[&str]) -> Process {
    let child = Command::new(server_binary())
        .args(args)
        .arg("--storage")
        .arg(storage)
        .env("LAKEHOUSE_LOG_FILTER", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the lakehouse binary starts");
    Process(child)
}

/// The jobs the executor ran, by id: each leaves a directory of shuffle
/// files (removed 5 minutes after the job, so tests look for new names).
fn jobs_run(work_dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(work_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_run_on_the_cluster_and_answer_as_one_node_does() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("data");
    let work_dir = dir.path().join("shuffle");
    std::fs::create_dir_all(&work_dir).unwrap();

    let scheduler = free_address();
    let _scheduler = start(&storage, &["scheduler", "--bind", &scheduler.to_string()]);
    wait_listening(scheduler);
    let executor = free_address();
    let grpc_port = free_address().port().to_string();
    let _executor = start(
        &storage,
        &[
            "executor",
            "--bind",
            &executor.to_string(),
            "--grpc-port",
            &grpc_port,
            "--scheduler",
            &scheduler.to_string(),
            "--work-dir",
            work_dir.to_str().unwrap(),
        ],
    );
    wait_listening(executor);

    let clustered =
        TestServer::start_on(&storage, &["--cluster-scheduler", &scheduler.to_string()]);
    let mut client = clustered.client().await;
    client
        .query(
            "CREATE TABLE sales AS SELECT v % 7 AS region, v AS amount, 'r' || (v % 3) AS tag \
             FROM (SELECT unnest(range(1, 20001)) AS v)",
        )
        .await
        .unwrap();
    let alone = TestServer::start_on(&storage, &[]);
    let mut single = alone.client().await;

    let queries = [
        "SELECT region, count(*) AS n, sum(amount) AS total FROM sales \
         WHERE amount > 10 GROUP BY region ORDER BY region",
        "SELECT a.tag, count(*) AS n FROM sales a JOIN sales b ON a.amount = b.amount + 1 \
         GROUP BY a.tag ORDER BY a.tag",
        "SELECT amount FROM sales ORDER BY amount DESC LIMIT 3",
    ];
    for sql in queries {
        let before = jobs_run(&work_dir);
        let on_cluster = rows(&client.query(sql).await.unwrap());
        assert!(
            !jobs_run(&work_dir).is_subset(&before),
            "{sql} did not run on the cluster"
        );
        assert_eq!(on_cluster, rows(&single.query(sql).await.unwrap()), "{sql}");
    }

    // What cannot travel runs on the coordinator and still answers.
    let before = jobs_run(&work_dir);
    let answer = rows(
        &client
            .query("SELECT table_name FROM information_schema.tables WHERE table_name = 'sales'")
            .await
            .unwrap(),
    );
    assert_eq!(answer, ["sales"]);
    client
        .query("ALTER TABLE sales RENAME COLUMN amount TO value")
        .await
        .unwrap();
    let sql = "SELECT count(*), sum(value) FROM sales";
    let answer = rows(&client.query(sql).await.unwrap());
    assert_eq!(answer, ["20000|200010000"]);
    assert!(
        jobs_run(&work_dir).is_subset(&before),
        "a query of the server ran on the cluster"
    );
}
