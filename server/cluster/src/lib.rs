//! Lakehouse on a Ballista cluster: the same catalog tables and SQL,
//! executed by a scheduler and executors instead of one process.
//!
//! The server stays the coordinator (catalog, checks, Flight SQL); a query
//! it plans is sent to the scheduler ([`planner`], when it can travel) with
//! each table pinned to the version it planned ([`codec`]); executors read
//! that version's files from the storage every process of the cluster
//! opens the same way ([`processes`]). A job whose result the server stops
//! reading is cancelled on the cluster ([`job`]).

pub mod codec;
pub mod job;
pub mod planner;
pub mod processes;

pub use codec::{LakehouseLogicalCodec, NOT_DISTRIBUTABLE};
pub use planner::ClusterPlanner;
pub use processes::{
    DEFAULT_EXECUTOR_TIMEOUT, DEFAULT_HEARTBEAT, ExecutorOptions, HostPort, SchedulerOptions,
    run_executor, run_scheduler,
};

/// What can go wrong starting a scheduler or an executor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Ballista: {0}")]
    Ballista(#[from] ballista_core::error::BallistaError),
    #[error("DataFusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
