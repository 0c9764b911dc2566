//! Lakehouse's foundation: what every other layer stands on.
//!
//! [`storage`] opens one object store from a URL; [`catalog`] keeps the
//! versioned tables in it (the store is the only source of truth);
//! [`auth`] says who a caller is and what their role allows; [`metrics`]
//! counts what the server does; [`types`] holds the Arrow type rules shared
//! by ingest and the wire. Every failure here is an [`Error`].
//!
//! This crate must not depend on gRPC (tonic, arrow-flight) or on the query
//! engine (DataFusion, Lance): those layers depend on it, never the reverse.

pub mod auth;
pub mod catalog;
pub mod error;
pub mod metrics;
pub mod storage;
pub mod synced;
pub mod types;

pub use error::{Error, Result, is_storage_full};
