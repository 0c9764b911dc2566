//! Server configuration: the settings in effect ([`crate::settings`]:
//! flags and `LAKEHOUSE_*` variables over an optional TOML file over
//! defaults), checked and turned into what each layer of the server takes.

use std::path::PathBuf;

use clap::Args;

use lakehouse_ext_embed::ModelsConfig;
use lakehouse_extension::Selection;

use lakehouse_core::auth::AuthConfig;
use lakehouse_core::catalog::TableRef;
use lakehouse_engine::ingest::FileLayout;
use lakehouse_engine::query::{AccelerationOptions, QueryOptions};
use lakehouse_flight::{Limits, PreparedLimits};
use lakehouse_serving::ServingLimits;
use parquet::basic::{Compression, ZstdLevel};

pub use crate::settings::{LogFormat, ParquetCompression, Settings};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Flags of `lakehouse serve` (and `lakehouse config show`).
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML file with any of these settings (flags and variables win over it)
    #[arg(long, env = "LAKEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
}

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    /// Address of the HTTP probes and metrics; `None` when turned off.
    pub http_listen: Option<String>,
    /// Address of the Postgres wire protocol port; `None` when off.
    pub postgres_listen: Option<String>,
    pub max_postgres_connections: usize,
    /// The Ballista scheduler queries go to; `None` when off.
    pub cluster_scheduler: Option<String>,
    pub storage: String,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub query: QueryOptions,
    pub layout: FileLayout,
    /// Bytes of index data the vector tables' Lance session keeps.
    pub vector_index_cache_bytes: usize,
    /// Bytes of resident HNSW graphs kept in memory.
    pub vector_graph_memory_bytes: usize,
    pub max_message_bytes: usize,
    pub limits: Limits,
    /// How often to read other servers' commits; `None`: only on request.
    pub catalog_refresh: Option<std::time::Duration>,
    /// How long the start-up storage check may wait for an answer.
    pub storage_timeout: std::time::Duration,
    pub shutdown_grace: std::time::Duration,
    /// Extensions turned on or off by name (the rest follow their default).
    pub extensions: Selection,
    /// The embedding models and which is the default.
    pub models: ModelsConfig,
    /// Users and API tokens; authentication is on when there are any.
    pub auth: AuthConfig,
    pub allow_unauthenticated: bool,
    /// Certificate and key when serving over TLS.
    pub tls: Option<TlsFiles>,
}

/// PEM files for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

impl ServeArgs {
    /// Every setting as it takes effect: flags and variables over the
    /// config file over defaults.
    pub fn settings(self) -> Result<Settings, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<Settings>(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            None => Settings::default(),
        };
        let mut settings = Settings::defaults()
            .overlaid(file)?
            .overlaid(self.settings)?;
        settings.fill_derived()?;
        Ok(settings)
    }

    /// The settings in effect, checked and in the types the server uses.
    pub fn resolve(self) -> Result<ServerConfig, ConfigError> {
        ServerConfig::from_settings(self.settings()?)
    }
}

/// The accelerated tables' names, checked; each once.
fn accelerated_tables(names: Vec<String>) -> Result<Vec<TableRef>, ConfigError> {
    let mut tables: Vec<TableRef> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let table = TableRef::parse(name).map_err(|e| {
            ConfigError::Invalid(format!(
                "accelerated_tables: {name:?} is not a table name: {e}"
            ))
        })?;
        if !tables.contains(&table) {
            tables.push(table);
        }
    }
    Ok(tables)
}

/// A setting that every layer left unset although it has a default (a bug
/// in [`Settings::defaults`] or [`Settings::fill_derived`]).
fn given<T>(value: Option<T>, key: &str) -> Result<T, ConfigError> {
    value.ok_or_else(|| ConfigError::Invalid(format!("{key} has no value and no default")))
}

impl ServerConfig {
    fn from_settings(s: Settings) -> Result<Self, ConfigError> {
        let memory_limit = given(
            nonzero("memory_limit_mb", s.memory_limit_mb)?,
            "memory_limit_mb",
        )? << 20;
        let query_memory_limit = given(
            nonzero("query_memory_limit_mb", s.query_memory_limit_mb)?,
            "query_memory_limit_mb",
        )? << 20;
        if query_memory_limit > memory_limit {
            return Err(ConfigError::Invalid(format!(
                "query_memory_limit_mb ({} MiB) is larger than memory_limit_mb ({} MiB)",
                query_memory_limit >> 20,
                memory_limit >> 20
            )));
        }
        let models_dir = given(s.models_dir, "models_dir")?;
        let models = ModelsConfig::resolve(s.models, s.default_model, &models_dir)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let tls = match (s.tls_cert, s.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca: s.tls_client_ca,
            }),
            (None, None) if s.tls_client_ca.is_none() => None,
            (None, None) => {
                return Err(ConfigError::Invalid(
                    "tls_client_ca needs tls_cert and tls_key: client certificates are checked only over TLS"
                        .into(),
                ));
            }
            _ => {
                return Err(ConfigError::Invalid(
                    "tls_cert and tls_key go together: give both or neither".into(),
                ));
            }
        };
        let http_listen = match given(s.http_listen, "http_listen")? {
            off if off.eq_ignore_ascii_case("off") => None,
            address => Some(address),
        };
        let postgres_listen = match given(s.postgres_listen, "postgres_listen")? {
            off if off.eq_ignore_ascii_case("off") => None,
            address => Some(address),
        };
        let cluster_scheduler = match given(s.cluster_scheduler, "cluster_scheduler")? {
            off if off.eq_ignore_ascii_case("off") => None,
            address
                if address.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
                }) =>
            {
                Some(address)
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "cluster_scheduler {other:?} is not host:port (or \"off\")"
                )));
            }
        };
        let secs = |value: Option<u64>, key: &str| -> Result<std::time::Duration, ConfigError> {
            Ok(std::time::Duration::from_secs(given(
                nonzero(key, value)?,
                key,
            )?))
        };
        let mib = |value: Option<usize>, key: &str| -> Result<usize, ConfigError> {
            Ok(given(nonzero(key, value)?, key)? << 20)
        };
        Ok(ServerConfig {
            listen: given(s.listen, "listen")?,
            http_listen,
            postgres_listen,
            cluster_scheduler,
            max_postgres_connections: given(
                nonzero("max_postgres_connections", s.max_postgres_connections)?,
                "max_postgres_connections",
            )?,
            storage: given(s.storage, "storage")?,
            log_filter: given(s.log_filter, "log_filter")?,
            log_format: given(s.log_format, "log_format")?,
            query: QueryOptions {
                classic_types: !given(s.keep_view_types, "keep_view_types")?,
                target_partitions: given(
                    nonzero("target_partitions", s.target_partitions)?,
                    "target_partitions",
                )?,
                memory_limit,
                query_memory_limit,
                acceleration: AccelerationOptions {
                    tables: accelerated_tables(s.accelerated_tables.unwrap_or_default())?,
                    memory_limit: mib(s.acceleration_memory_mb, "acceleration_memory_mb")?,
                },
            },
            vector_index_cache_bytes: mib(s.vector_index_cache_mb, "vector_index_cache_mb")?,
            vector_graph_memory_bytes: mib(s.vector_graph_memory_mb, "vector_graph_memory_mb")?,
            layout: FileLayout {
                target_file_bytes: mib(s.target_file_mb, "target_file_mb")?,
                row_group_rows: given(
                    nonzero("row_group_rows", s.row_group_rows)?,
                    "row_group_rows",
                )?,
                compact_min_files: given(s.compact_min_files, "compact_min_files")?,
                compression: codec(given(s.parquet_compression, "parquet_compression")?),
                ..FileLayout::default()
            },
            max_message_bytes: mib(s.max_message_mb, "max_message_mb")?,
            catalog_refresh: nonzero("catalog_refresh_secs", s.catalog_refresh_secs)?
                .map(std::time::Duration::from_secs),
            storage_timeout: secs(s.storage_timeout_secs, "storage_timeout_secs")?,
            limits: Limits {
                serving: ServingLimits {
                    max_concurrent_requests: given(
                        nonzero("max_concurrent_requests", s.max_concurrent_requests)?,
                        "max_concurrent_requests",
                    )?,
                    max_running_queries: given(
                        nonzero("max_running_queries", s.max_running_queries)?,
                        "max_running_queries",
                    )?,
                    query_timeout: secs(s.query_timeout_secs, "query_timeout_secs")?,
                    max_result_rows: nonzero("max_result_rows", s.max_result_rows)?,
                    max_requests_per_user: given(
                        nonzero("max_requests_per_user", s.max_requests_per_user)?,
                        "max_requests_per_user",
                    )?,
                },
                max_upload_bytes: given(
                    nonzero("max_upload_mb", s.max_upload_mb)?,
                    "max_upload_mb",
                )? << 20,
                prepared: PreparedLimits {
                    max_per_user: given(
                        nonzero("max_prepared_per_user", s.max_prepared_per_user)?,
                        "max_prepared_per_user",
                    )?,
                    idle: secs(s.prepared_idle_secs, "prepared_idle_secs")?,
                },
                result_write_timeout: secs(
                    s.result_write_timeout_secs,
                    "result_write_timeout_secs",
                )?,
            },
            shutdown_grace: std::time::Duration::from_secs(given(
                s.shutdown_grace_secs,
                "shutdown_grace_secs",
            )?),
            extensions: Selection {
                enable: names(s.enable_extensions),
                disable: names(s.disable_extensions),
            },
            models,
            auth: s.auth,
            allow_unauthenticated: given(s.allow_unauthenticated, "allow_unauthenticated")?,
            tls,
        })
    }
}

/// Refuses a setting given as 0 where 0 means nothing sensible.
/// Parquet's codec for the setting.
fn codec(compression: ParquetCompression) -> Compression {
    match compression {
        ParquetCompression::Lz4 => Compression::LZ4_RAW,
        ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::None => Compression::UNCOMPRESSED,
    }
}

fn nonzero<T: PartialEq + Default>(name: &str, value: Option<T>) -> Result<Option<T>, ConfigError> {
    match value {
        Some(v) if v == T::default() => Err(ConfigError::Invalid(format!(
            "{name} must be greater than 0"
        ))),
        other => Ok(other),
    }
}

/// `host:port` with the port after `listen`'s (port 0 stays 0).
pub(crate) fn next_port(listen: &str) -> Result<String, ConfigError> {
    let invalid = || ConfigError::Invalid(format!("listen address {listen:?} is not HOST:PORT"));
    let (host, port) = listen.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    let next = match port {
        0 => 0,
        u16::MAX => {
            return Err(ConfigError::Invalid(format!(
                "listen port {port} has no next port for the HTTP probes: set http_listen"
            )));
        }
        p => p + 1,
    };
    Ok(format!("{host}:{next}"))
}

/// Extension names, trimmed, without empty ones.
fn names(given: Option<Vec<String>>) -> Vec<String> {
    given
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = ServeArgs::default().resolve().unwrap();
        assert_eq!(config.listen, "127.0.0.1:50051");
        assert_eq!(config.storage, "./data");
        assert!(config.query.classic_types);
        assert_eq!(config.http_listen.as_deref(), Some("127.0.0.1:50052"));
    }

    #[test]
    fn the_http_port_follows_the_flight_port_unless_set() {
        let with = |listen: &str, http: Option<&str>| {
            ServeArgs {
                config: None,
                settings: Settings {
                    listen: Some(listen.into()),
                    http_listen: http.map(str::to_string),
                    ..Default::default()
                },
            }
            .resolve()
            .map(|c| c.http_listen)
        };
        assert_eq!(
            with("0.0.0.0:0", None).unwrap().as_deref(),
            Some("0.0.0.0:0")
        );
        assert_eq!(
            with("[::1]:9000", None).unwrap().as_deref(),
            Some("[::1]:9001")
        );
        assert_eq!(with("127.0.0.1:0", Some("off")).unwrap(), None);
        assert_eq!(
            with("127.0.0.1:0", Some("127.0.0.1:8080"))
                .unwrap()
                .as_deref(),
            Some("127.0.0.1:8080")
        );
        assert!(with("nonsense", None).is_err());
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lakehouse.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:1\"\nstorage = \"/srv/x\"\nrow_group_rows = 1000\nparquet_compression = \"zstd\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            settings: Settings {
                listen: Some("127.0.0.1:0".into()),
                ..Default::default()
            },
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.listen, "127.0.0.1:0");
        assert_eq!(config.storage, "/srv/x");
        assert_eq!(config.layout.row_group_rows, 1000);
        assert_eq!(
            config.layout.compression,
            Compression::ZSTD(ZstdLevel::default())
        );
    }

    #[test]
    fn ingest_writes_lz4_unless_told_otherwise() {
        let config = ServeArgs::default().resolve().unwrap();
        assert_eq!(config.layout.compression, Compression::LZ4_RAW);
    }

    #[test]
    fn accelerated_tables_are_checked_names_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lakehouse.toml");
        std::fs::write(
            &path,
            "accelerated_tables = [\"lineitem\", \"sales.orders\", \"public.lineitem\"]\nacceleration_memory_mb = 512\n",
        )
        .unwrap();
        let config = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let acceleration = &config.query.acceleration;
        let names: Vec<String> = acceleration
            .tables
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["public.lineitem", "sales.orders"]);
        assert_eq!(acceleration.memory_limit, 512 << 20);
        let none = ServeArgs::default().resolve().unwrap().query.acceleration;
        assert!(none.tables.is_empty() && none.memory_limit > 0);
        let err = ServeArgs {
            config: None,
            settings: Settings {
                accelerated_tables: Some(vec!["bad/name".into()]),
                ..Default::default()
            },
        }
        .resolve()
        .unwrap_err();
        assert!(
            err.to_string().contains("accelerated_tables: \"bad/name\""),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_zero_sizes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        let err = ServeArgs {
            config: None,
            settings: Settings {
                row_group_rows: Some(0),
                ..Default::default()
            },
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("row_group_rows"), "{err}");
    }
}
