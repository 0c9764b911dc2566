//! The assembled Lakehouse server: its settings ([`settings`], declared
//! once), their checked form ([`config`]), and the
//! wiring that opens storage and the catalog, installs the compiled-in
//! extensions, and binds Flight SQL and the HTTP port ([`server`]).
//!
//! The `lakehouse` binary calls it to serve; benchmarks open its
//! [`server::Core`] in-process to measure what Flight adds. It is the only
//! crate that knows every layer; none of them depends on it.

pub mod config;
pub mod server;
pub mod settings;
