//! The scheduler and executor processes (`lakehouse scheduler`,
//! `lakehouse executor`): Ballista's, with the server's codec and the
//! server's storage registered under the URL the engine's scans name, so a
//! plan made by the coordinator reads the same files everywhere.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::RuntimeProducer;
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

/// Runs a scheduler on `address` until it fails; jobs are planned with
/// the server's codec against `storage`.
pub async fn run_scheduler(address: SocketAddr, storage: Storage) -> Result<()> {
    let for_sessions = storage.clone();
    let mut config = SchedulerConfig::default()
        .with_hostname(address.ip().to_string())
        .with_port(address.port())
        .with_override_session_builder(Arc::new(move |config: SessionConfig| {
            Ok(SessionStateBuilder::new()
                .with_default_features()
                .with_config(config)
                .with_runtime_env(runtime(&for_sessions)?)
                .build())
        }));
    config.bind_host = address.ip().to_string();
    config.override_logical_codec = Some(Arc::new(LakehouseLogicalCodec::default()));
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, address, Arc::new(config)).await?;
    Ok(())
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
    pub scheduler: SocketAddr,
    /// Tasks run at once (default: the cores present).
    pub concurrent_tasks: Option<usize>,
    /// Where shuffle files are written (default: a temporary directory).
    pub work_dir: Option<String>,
}

/// Runs an executor until it fails, reading `storage`.
pub async fn run_executor(options: ExecutorOptions, storage: Storage) -> Result<()> {
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
        scheduler_host: options.scheduler.ip().to_string(),
        scheduler_port: options.scheduler.port(),
        work_dir: options.work_dir,
        print_thread_info: false,
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
