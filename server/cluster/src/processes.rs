//! The scheduler and executor processes (`lakehouse scheduler`,
//! `lakehouse executor`): Ballista's, with the server's codec and the
//! server's storage registered under the URL the engine's scans name, so a
//! plan made by the coordinator reads the same files everywhere.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::RuntimeProducer;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionConfig;
use url::Url;

use crate::codec::LakehouseLogicalCodec;
use crate::{Error, Result};
use lakehouse_core::storage::{STORE_URL, Storage};

/// A runtime that reads the server's storage under [`STORE_URL`].
fn runtime(storage: &Storage) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    let runtime = RuntimeEnvBuilder::new().build()?;
    let url = Url::parse(STORE_URL).expect("STORE_URL is a URL");
    runtime.register_object_store(&url, storage.store.clone());
    Ok(Arc::new(runtime))
}

/// Where a scheduler listens and when it gives up on a silent executor.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub address: SocketAddr,
    /// An executor not heard from for this long is declared lost: its
    /// running tasks, and the finished ones whose shuffle output it held,
    /// are run again on the executors left.
    pub executor_timeout: Duration,
}

impl SchedulerOptions {
    /// A scheduler on `address` with the default executor timeout.
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            executor_timeout: DEFAULT_EXECUTOR_TIMEOUT,
        }
    }
}

/// How long a scheduler waits for a silent executor: six of its
/// heartbeats at the default interval (Ballista's own 180 s leaves a query
/// waiting three minutes on a killed executor).
pub const DEFAULT_EXECUTOR_TIMEOUT: Duration = Duration::from_secs(30);

/// Executors ask the scheduler for tasks whenever they have a free slot
/// (50 ms apart when idle) rather than the scheduler pushing tasks to
/// them: Ballista 54.1's push scheduling resets a lost executor's tasks but
/// offers them to the executors left only on the next event (a task
/// finishing, a job arriving), so with the others idle the query waited
/// forever (found by the executor-kill test); a polling executor takes
/// them on its next poll.
const SCHEDULING: TaskSchedulingPolicy = TaskSchedulingPolicy::PullStaged;

/// How often an executor tells the scheduler it is alive (Ballista's own
/// default is 60 s, longer than the whole timeout above).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// Runs a scheduler until it fails; jobs are planned with the server's
/// codec against `storage`.
pub async fn run_scheduler(options: SchedulerOptions, storage: Storage) -> Result<()> {
    let address = options.address;
    let timeout = whole_seconds(options.executor_timeout, "the executor timeout")?;
    let for_sessions = storage.clone();
    let mut config = SchedulerConfig::default()
        .with_hostname(address.ip().to_string())
        .with_port(address.port())
        .with_override_session_builder(Arc::new(move |mut config: SessionConfig| {
            // Every hash join is planned partitioned, none as a broadcast
            // (CollectLeft) join: Ballista 54.1 ran some broadcast joins
            // with the wrong input (TPC-H q02 and q08 at SF0.01 failed in
            // a stage with "Column references column 's_nationkey' at
            // index 4 but input schema only has 3 columns").
            let optimizer = &mut config.options_mut().optimizer;
            optimizer.hash_join_single_partition_threshold = 0;
            optimizer.hash_join_single_partition_threshold_rows = 0;
            Ok(SessionStateBuilder::new()
                .with_default_features()
                .with_config(config)
                .with_runtime_env(runtime(&for_sessions)?)
                .build())
        }));
    config.bind_host = address.ip().to_string();
    config.scheduling_policy = SCHEDULING;
    config.executor_timeout_seconds = timeout;
    // Look for silent executors often enough that one is dropped within
    // about a sixth of the timeout after it expires.
    config.expire_dead_executor_interval_seconds = (timeout / 6).clamp(1, 15);
    config.override_logical_codec = Some(Arc::new(LakehouseLogicalCodec::default()));
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, address, Arc::new(config)).await?;
    Ok(())
}

/// A `host:port` another process is reached at: a name (a Kubernetes
/// Service, a DNS name) or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl std::str::FromStr for HostPort {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let parsed = text.rsplit_once(':').and_then(|(host, port)| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            match port.parse::<u16>() {
                Ok(port) if port != 0 && !host.is_empty() => Some(Self {
                    host: host.to_string(),
                    port,
                }),
                _ => None,
            }
        });
        parsed.ok_or_else(|| Error::Config(format!("{text:?} is not host:port")))
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl From<SocketAddr> for HostPort {
    fn from(address: SocketAddr) -> Self {
        Self {
            host: address.ip().to_string(),
            port: address.port(),
        }
    }
}

/// Where an executor listens and which scheduler it serves.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Where the executor serves task results (Arrow Flight); the gRPC
    /// port for the scheduler is `grpc_port`.
    pub address: SocketAddr,
    /// The host other executors and the coordinator reach this one at
    /// (default: `address`'s, which must then not be unspecified).
    pub external_host: Option<String>,
    pub grpc_port: u16,
    pub scheduler: HostPort,
    /// Tasks run at once (default: the cores present).
    pub concurrent_tasks: Option<usize>,
    /// Where shuffle files are written (default: a temporary directory).
    pub work_dir: Option<String>,
    /// How often it tells the scheduler it is alive; keep it well under
    /// the scheduler's executor timeout.
    pub heartbeat: Duration,
}

/// `duration` in whole seconds, at least one (Ballista counts in seconds).
fn whole_seconds(duration: Duration, what: &str) -> Result<u64> {
    match duration.as_secs() {
        0 => Err(Error::Config(format!(
            "{what} must be at least one second, not {duration:?}"
        ))),
        seconds => Ok(seconds),
    }
}

/// Runs an executor until it fails or is told to stop (SIGINT, SIGTERM:
/// it tells the scheduler, which runs its tasks elsewhere at once, then
/// lets its running tasks finish), reading `storage`.
pub async fn run_executor(options: ExecutorOptions, storage: Storage) -> Result<()> {
    let heartbeat = whole_seconds(options.heartbeat, "the heartbeat interval")?;
    let external_host = match options.external_host {
        Some(host) => host,
        None if options.address.ip().is_unspecified() => {
            return Err(Error::Config(format!(
                "the executor binds {}, an address it cannot tell others to connect to: \
                 give the host other machines reach it at (--external-host)",
                options.address
            )));
        }
        None => options.address.ip().to_string(),
    };
    let producer: RuntimeProducer = Arc::new(move |_: &SessionConfig| runtime(&storage));
    let mut config = ExecutorProcessConfig {
        bind_host: options.address.ip().to_string(),
        external_host: Some(external_host),
        port: options.address.port(),
        grpc_port: options.grpc_port,
        scheduler_host: options.scheduler.host,
        scheduler_port: options.scheduler.port,
        work_dir: options.work_dir,
        print_thread_info: false,
        executor_heartbeat_interval_seconds: heartbeat,
        task_scheduling_policy: SCHEDULING,
        override_runtime_producer: Some(producer),
        override_logical_codec: Some(Arc::new(LakehouseLogicalCodec::default())),
        ..Default::default()
    };
    if let Some(tasks) = options.concurrent_tasks {
        config.concurrent_tasks = tasks;
    }
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::HostPort;

    #[test]
    fn host_port_takes_names_and_addresses() {
        let parsed: HostPort = "lakehouse-scheduler:50050".parse().unwrap();
        assert_eq!(
            (parsed.host.as_str(), parsed.port),
            ("lakehouse-scheduler", 50050)
        );
        let v6: HostPort = "[::1]:50050".parse().unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.to_string()),
            ("::1", "[::1]:50050".into())
        );
        for bad in [
            "scheduler",
            "scheduler:0",
            ":50050",
            "host:port",
            "host:70000",
        ] {
            let err = bad.parse::<HostPort>().unwrap_err().to_string();
            assert!(err.contains("is not host:port"), "{bad}: {err}");
        }
    }
}
