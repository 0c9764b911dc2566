//! Lakehouse: a Flight SQL server over a versioned catalog of Parquet tables.
//!
//! Data flows one way: a client reaches [`flight`], which hands uploads to
//! [`ingest`] (Parquet files, then one [`catalog`] commit) and SQL to
//! [`query`] (DataFusion over a catalog snapshot, reading through
//! [`storage`]). Nothing below `flight` knows about gRPC; nothing below
//! `query` knows about Flight.

// The Flight service's request futures nest deeply; the nightly compiler
// (cargo-fuzz builds) needs more than the default 128 to lay them out.
#![recursion_limit = "256"]

pub mod auth;
pub mod catalog;
pub mod config;
pub mod error;
pub mod extensions;
pub mod flight;
pub mod fuzzing;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod query;
pub mod server;
pub mod storage;
pub mod types;
pub mod vectors;

pub use error::{Error, Result};
