//! The server as the client of a Ballista cluster (`--cluster-scheduler`):
//! a scheduler and an executor started from the same binary over the same
//! storage; queries from a Flight SQL client answer exactly what a server
//! without the cluster answers, and those that cannot travel (extension
//! functions, tables read through an ALTER mapping) still answer, here.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lakehouse_tests::{TestServer, message, rows, server_binary};

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
        .env(
            "LAKEHOUSE_LOG_FILTER",
            std::env::var("LAKEHOUSE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
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

/// A scheduler and executors over `<dir>/data`, killed when dropped.
struct Cluster {
    scheduler: SocketAddr,
    executors: Vec<Executor>,
    _scheduler: Process,
}

struct Executor {
    process: Process,
    /// Where its shuffle files go: one directory per job it ran.
    work_dir: PathBuf,
}

impl Cluster {
    fn start(
        dir: &Path,
        executors: usize,
        scheduler_args: &[&str],
        executor_args: &[&str],
    ) -> Self {
        let storage = dir.join("data");
        let scheduler = free_address();
        let bind = scheduler.to_string();
        let scheduler_process = start(
            &storage,
            &[&["scheduler", "--bind", &bind][..], scheduler_args].concat(),
        );
        wait_listening(scheduler);
        let executors = (0..executors)
            .map(|n| {
                let work_dir = dir.join(format!("shuffle{n}"));
                std::fs::create_dir_all(&work_dir).unwrap();
                let address = free_address();
                let (bind, grpc_port) = (address.to_string(), free_address().port().to_string());
                let process = start(
                    &storage,
                    &[
                        &[
                            "executor",
                            "--bind",
                            &bind,
                            "--grpc-port",
                            &grpc_port,
                            "--scheduler",
                            &scheduler.to_string(),
                            "--work-dir",
                            work_dir.to_str().unwrap(),
                        ][..],
                        executor_args,
                    ]
                    .concat(),
                );
                wait_listening(address);
                Executor { process, work_dir }
            })
            .collect();
        Self {
            scheduler,
            executors,
            _scheduler: scheduler_process,
        }
    }

    /// The jobs every executor ran.
    fn jobs(&self) -> BTreeSet<String> {
        self.executors
            .iter()
            .flat_map(|e| jobs_run(&e.work_dir))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_run_on_the_cluster_and_answer_as_one_node_does() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("data");
    let cluster = Cluster::start(dir.path(), 1, &[], &[]);
    let work_dir = cluster.executors[0].work_dir.clone();

    let clustered = TestServer::start_on(
        &storage,
        &["--cluster-scheduler", &cluster.scheduler.to_string()],
    );
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

/// A table big enough that a join over it keeps two one-task executors
/// busy for seconds in a debug build, and the query that does it.
const BIG: &str =
    "CREATE TABLE big AS SELECT v, v % 1000 AS k FROM (SELECT unnest(range(1, 1000001)) AS v)";
const BIG_JOIN: &str = "SELECT a.k, count(*) AS n, sum(b.v) AS s FROM big a JOIN big b ON a.v = b.v \
                        GROUP BY a.k ORDER BY a.k";
/// A join of every row with a thousand others: minutes of work.
const ENDLESS_JOIN: &str = "SELECT count(*) FROM big a JOIN big b ON a.k = b.k";

/// Waits until some executor of `cluster` has started a job that was not
/// in `before`, and returns its id.
fn wait_new_job(cluster: &Cluster, before: &BTreeSet<String>, executor: Option<usize>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = match executor {
            Some(n) => jobs_run(&cluster.executors[n].work_dir),
            None => cluster.jobs(),
        };
        if let Some(job) = now.difference(before).next() {
            return job.clone();
        }
        assert!(Instant::now() < deadline, "no job started on the cluster");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `BIG_JOIN` on two one-task executors (scheduler flags
/// `scheduler_args`, executor flags `executor_args`), calls `stop` on the
/// first executor once it works on the job, and checks the query still
/// answers what a single node answers within `deadline`.
async fn stop_an_executor_mid_query(
    scheduler_args: &[&str],
    executor_args: &[&str],
    stop: impl FnOnce(&mut Child),
    deadline: Duration,
) {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("data");
    let executor_args = [&["--concurrent-tasks", "1"][..], executor_args].concat();
    let mut cluster = Cluster::start(dir.path(), 2, scheduler_args, &executor_args);
    let scheduler = cluster.scheduler.to_string();
    let clustered = TestServer::start_on(&storage, &["--cluster-scheduler", &scheduler]);
    let mut client = clustered.client().await;
    client.query(BIG).await.unwrap();
    let alone = TestServer::start_on(&storage, &[]);
    let want = rows(&alone.client().await.query(BIG_JOIN).await.unwrap());
    assert_eq!(want.len(), 1000);

    let before = cluster.jobs();
    let running = tokio::spawn(async move { client.query(BIG_JOIN).await });
    wait_new_job(&cluster, &before, Some(0));
    assert!(
        !running.is_finished(),
        "the query ended before the executor stopped: make the table bigger"
    );
    stop(&mut cluster.executors[0].process.0);
    let started = Instant::now();
    let got = tokio::time::timeout(deadline, running)
        .await
        .expect("the query answered before the deadline")
        .unwrap()
        .expect("the query succeeded on the executor left");
    assert_eq!(rows(&got), want, "the answer after the executor stopped");
    eprintln!(
        "answered {:?} after the executor stopped",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_executor_s_tasks_run_again_on_the_other() {
    // SIGKILL: no goodbye to the scheduler, its shuffle files gone with it.
    // Heartbeats every second and a 3 s timeout notice it fast.
    stop_an_executor_mid_query(
        &["--executor-timeout-secs", "3"],
        &["--heartbeat-secs", "1"],
        |executor| executor.kill().unwrap(),
        Duration::from_secs(300),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_executor_hands_its_tasks_over_at_once() {
    // SIGTERM under a two-minute heartbeat timeout: only the executor's own
    // word to the scheduler can move its tasks before the 60 s deadline.
    stop_an_executor_mid_query(
        &["--executor-timeout-secs", "120"],
        &[],
        |executor| {
            let stopped = Command::new("kill")
                .args(["-TERM", &executor.id().to_string()])
                .status()
                .unwrap();
            assert!(stopped.success());
        },
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_the_server_gives_up_on_is_cancelled_on_the_cluster() {
    use ballista_core::serde::protobuf::GetJobStatusParams;
    use ballista_core::serde::protobuf::job_status::Status;
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;

    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("data");
    let cluster = Cluster::start(dir.path(), 1, &[], &["--concurrent-tasks", "1"]);
    let scheduler = cluster.scheduler.to_string();
    let single = TestServer::start_on(&storage, &[]);
    single.client().await.query(BIG).await.unwrap();
    let clustered = TestServer::start_on(
        &storage,
        &[
            "--cluster-scheduler",
            &scheduler,
            "--query-timeout-secs",
            "3",
        ],
    );
    let mut client = clustered.client().await;

    let before = cluster.jobs();
    let err = client.query(ENDLESS_JOIN).await.unwrap_err();
    assert!(
        message(&err).contains("query_timeout_secs"),
        "{}",
        message(&err)
    );
    let job = wait_new_job(&cluster, &before, None);

    // The job stops on the cluster instead of running on for nobody.
    let mut scheduler = SchedulerGrpcClient::connect(format!("http://{scheduler}"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = scheduler
            .get_job_status(GetJobStatusParams {
                job_id: job.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .and_then(|s| s.status);
        match status {
            Some(Status::Failed(failed)) => {
                assert!(failed.error.contains("Cancelled"), "{}", failed.error);
                break;
            }
            Some(Status::Successful(_)) => panic!("job {job} ran to the end for nobody"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "job {job} still runs: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
