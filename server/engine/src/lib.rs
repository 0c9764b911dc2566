//! Lakehouse's engine: everything that reads or writes table data.
//!
//! [`ingest`] turns Arrow streams, CSV bytes and registered Parquet files
//! into data files and one catalog commit; [`query`] runs SQL in a
//! DataFusion session over a catalog snapshot; [`vectors`] keeps Lance
//! datasets, their indexes and `knn()` search; [`extensions`] installs the
//! compiled-in extensions' functions; [`actions`] holds every DoAction
//! verb, the server's own and the extensions'. Failures are an
//! [`Error`], which wraps the core's.
//!
//! It stands on `lakehouse-core` and the extension API, and knows nothing
//! of Flight or gRPC: the Flight layer and the HTTP API both call it.

pub mod actions;
pub mod error;
pub mod extensions;
pub mod ingest;
pub mod query;
pub mod vectors;

pub use error::{Error, Result};
