//! Server configuration: command-line flags, each also read from a
//! `LAKEHOUSE_*` environment variable, over an optional TOML file, over
//! defaults. A flag or variable wins over the file; the file wins over the
//! default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use lakehouse_ext_embed::{ModelConfig, ModelsConfig};
use lakehouse_extension::Selection;

use crate::auth::AuthConfig;
use crate::ingest::FileLayout;
use crate::query::QueryOptions;

/// Default address: loopback only, the conventional Flight SQL port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default storage: a directory beside where the server starts.
pub const DEFAULT_STORAGE: &str = "./data";
/// Largest gRPC message accepted by default (one uploaded record batch).
pub const DEFAULT_MAX_MESSAGE_MB: usize = 512;
/// How long a stopping server lets in-flight requests finish.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
/// The start-up storage check gives up after this long: an unreachable S3
/// endpoint would otherwise keep the client retrying for minutes.
pub const DEFAULT_STORAGE_TIMEOUT_SECS: u64 = 30;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `lakehouse serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to serve Flight SQL on, e.g. 0.0.0.0:50051 (port 0 picks a free port)
    #[arg(long, env = "LAKEHOUSE_LISTEN")]
    pub listen: Option<String>,
    /// Where tables live: a directory, file://DIR, s3://bucket/prefix or memory://
    #[arg(long, env = "LAKEHOUSE_STORAGE")]
    pub storage: Option<String>,
    /// TOML file with any of these settings (flags and variables win over it)
    #[arg(long, env = "LAKEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter in tracing's syntax, e.g. "info" or "lakehouse_server=debug"
    #[arg(long, env = "LAKEHOUSE_LOG_FILTER")]
    pub log_filter: Option<String>,
    /// Log line format
    #[arg(long, env = "LAKEHOUSE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Send Utf8View/BinaryView/list views to clients as they are instead of
    /// as Utf8/Binary/List (JDBC and some ADBC drivers cannot read views)
    #[arg(long, env = "LAKEHOUSE_KEEP_VIEW_TYPES")]
    pub keep_view_types: Option<bool>,
    /// Ingest closes a Parquet file once it reaches this many MiB
    #[arg(long, env = "LAKEHOUSE_TARGET_FILE_MB")]
    pub target_file_mb: Option<usize>,
    /// Rows per Parquet row group written by ingest
    #[arg(long, env = "LAKEHOUSE_ROW_GROUP_ROWS")]
    pub row_group_rows: Option<usize>,
    /// Merge a table's small files (fewer rows than a row group) in the
    /// background once an append leaves this many; 0 turns it off
    #[arg(long, env = "LAKEHOUSE_COMPACT_MIN_FILES")]
    pub compact_min_files: Option<usize>,
    /// MiB of vector and full-text index data kept in memory between searches
    #[arg(long, env = "LAKEHOUSE_VECTOR_INDEX_CACHE_MB")]
    pub vector_index_cache_mb: Option<usize>,
    /// Partitions a query is split into (default: number of cores)
    #[arg(long, env = "LAKEHOUSE_TARGET_PARTITIONS")]
    pub target_partitions: Option<usize>,
    /// Largest gRPC message accepted, in MiB
    #[arg(long, env = "LAKEHOUSE_MAX_MESSAGE_MB")]
    pub max_message_mb: Option<usize>,
    /// Seconds a stopping server waits for in-flight requests
    #[arg(long, env = "LAKEHOUSE_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Install an extension that is off by default (repeat, or separate names with commas)
    #[arg(
        long = "enable-extension",
        env = "LAKEHOUSE_ENABLE_EXTENSIONS",
        value_delimiter = ','
    )]
    pub enable_extensions: Vec<String>,
    /// Leave out an extension that is on by default (repeat, or separate names with commas)
    #[arg(
        long = "disable-extension",
        env = "LAKEHOUSE_DISABLE_EXTENSIONS",
        value_delimiter = ','
    )]
    pub disable_extensions: Vec<String>,
    /// Directory holding local embedding models (default: ~/.cache/lakehouse/models)
    #[arg(long, env = "LAKEHOUSE_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// The embedding model embed() uses when none is named (default: the only one, or "local")
    #[arg(long, env = "LAKEHOUSE_DEFAULT_MODEL")]
    pub default_model: Option<String>,
    /// Every this many seconds, read what other servers on the same storage committed (default: only on the refresh_catalog action)
    #[arg(long, env = "LAKEHOUSE_CATALOG_REFRESH_SECS")]
    pub catalog_refresh_secs: Option<u64>,
    /// At start, how long the storage may take to answer the check that it is writable
    #[arg(long, env = "LAKEHOUSE_STORAGE_TIMEOUT_SECS")]
    pub storage_timeout_secs: Option<u64>,
    /// Largest upload (DoPut request body) in MiB
    #[arg(long, env = "LAKEHOUSE_MAX_UPLOAD_MB")]
    pub max_upload_mb: Option<u64>,
    /// Requests served at once; more are refused with ResourceExhausted
    #[arg(long, env = "LAKEHOUSE_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// Queries run at once; more wait their turn (default: twice the cores)
    #[arg(long, env = "LAKEHOUSE_MAX_RUNNING_QUERIES")]
    pub max_running_queries: Option<usize>,
    /// MiB all queries may hold together before spilling to disk (default: half of physical memory)
    #[arg(long, env = "LAKEHOUSE_MEMORY_LIMIT_MB")]
    pub memory_limit_mb: Option<usize>,
    /// MiB one query may hold (default: half of --memory-limit-mb)
    #[arg(long, env = "LAKEHOUSE_QUERY_MEMORY_LIMIT_MB")]
    pub query_memory_limit_mb: Option<usize>,
    /// Seconds a query (planning and its result stream) may run
    #[arg(long, env = "LAKEHOUSE_QUERY_TIMEOUT_SECS")]
    pub query_timeout_secs: Option<u64>,
    /// Rows one result may have (default: no limit)
    #[arg(long, env = "LAKEHOUSE_MAX_RESULT_ROWS")]
    pub max_result_rows: Option<u64>,
    /// HTTP address of /health, /ready and /metrics, or "off" (default: the
    /// Flight host with the next port, or port 0 when Flight's is 0)
    #[arg(long, env = "LAKEHOUSE_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Serve on a non-loopback address with no users or tokens configured
    #[arg(long, env = "LAKEHOUSE_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// PEM certificate chain: serve Flight SQL over TLS (with --tls-key)
    #[arg(long, env = "LAKEHOUSE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "LAKEHOUSE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: require clients to present a certificate signed by one
    #[arg(long, env = "LAKEHOUSE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
}

/// The same settings, as a TOML file spells them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    storage: Option<String>,
    log_filter: Option<String>,
    log_format: Option<LogFormat>,
    keep_view_types: Option<bool>,
    target_file_mb: Option<usize>,
    row_group_rows: Option<usize>,
    compact_min_files: Option<usize>,
    vector_index_cache_mb: Option<usize>,
    target_partitions: Option<usize>,
    max_message_mb: Option<usize>,
    shutdown_grace_secs: Option<u64>,
    enable_extensions: Option<Vec<String>>,
    disable_extensions: Option<Vec<String>>,
    models_dir: Option<PathBuf>,
    default_model: Option<String>,
    http_listen: Option<String>,
    catalog_refresh_secs: Option<u64>,
    storage_timeout_secs: Option<u64>,
    max_upload_mb: Option<u64>,
    max_concurrent_requests: Option<usize>,
    max_running_queries: Option<usize>,
    memory_limit_mb: Option<usize>,
    query_memory_limit_mb: Option<usize>,
    query_timeout_secs: Option<u64>,
    max_result_rows: Option<u64>,
    allow_unauthenticated: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    /// `[models.NAME]` tables.
    #[serde(default)]
    models: BTreeMap<String, ModelConfig>,
    /// `[auth]`: users, API tokens, token lifetime.
    #[serde(default)]
    auth: AuthConfig,
}

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    /// Address of the HTTP probes and metrics; `None` when turned off.
    pub http_listen: Option<String>,
    pub storage: String,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub query: QueryOptions,
    pub layout: FileLayout,
    /// Bytes of index data the vector tables' Lance session keeps.
    pub vector_index_cache_bytes: usize,
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

/// Request limits enforced at the Flight boundary; the memory limits live
/// in [`QueryOptions`].
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_upload_bytes: u64,
    pub max_concurrent_requests: usize,
    /// Statements whose results run at once; more wait.
    pub max_running_queries: usize,
    pub query_timeout: std::time::Duration,
    pub max_result_rows: Option<u64>,
}

/// Index data kept between searches by default: 1 GiB, room for the
/// partitions of a few million 384-d vectors' HNSW graphs.
pub const DEFAULT_VECTOR_INDEX_CACHE_MB: usize = 1024;
/// Largest upload by default: 16 GiB.
pub const DEFAULT_MAX_UPLOAD_MB: u64 = 16 * 1024;
/// Requests served at once by default.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;
/// Queries run at once by default, per core: enough to keep every core
/// busy while one query waits on its client, few enough that what running
/// queries hold stays bounded.
pub const DEFAULT_RUNNING_QUERIES_PER_CORE: usize = 2;
/// How long a query may run by default: 15 minutes.
pub const DEFAULT_QUERY_TIMEOUT_SECS: u64 = 15 * 60;

/// PEM files for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

impl ServeArgs {
    /// Merges flags and variables over the config file over defaults.
    pub fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let defaults_layout = FileLayout::default();
        let defaults_query = QueryOptions::default();
        let target_file_mb = nonzero(
            "target_file_mb",
            self.target_file_mb.or(file.target_file_mb),
        )?;
        let row_group_rows = nonzero(
            "row_group_rows",
            self.row_group_rows.or(file.row_group_rows),
        )?;
        let partitions = nonzero(
            "target_partitions",
            self.target_partitions.or(file.target_partitions),
        )?;
        let max_message_mb = nonzero(
            "max_message_mb",
            self.max_message_mb.or(file.max_message_mb),
        )?;
        let max_concurrent_requests = nonzero(
            "max_concurrent_requests",
            self.max_concurrent_requests
                .or(file.max_concurrent_requests),
        )?;
        let max_running_queries = nonzero(
            "max_running_queries",
            self.max_running_queries.or(file.max_running_queries),
        )?;
        let memory_limit_mb = nonzero(
            "memory_limit_mb",
            self.memory_limit_mb.or(file.memory_limit_mb),
        )?;
        let query_memory_limit_mb = nonzero(
            "query_memory_limit_mb",
            self.query_memory_limit_mb.or(file.query_memory_limit_mb),
        )?;
        let max_upload_mb = nonzero("max_upload_mb", self.max_upload_mb.or(file.max_upload_mb))?;
        let query_timeout_secs = nonzero(
            "query_timeout_secs",
            self.query_timeout_secs.or(file.query_timeout_secs),
        )?;
        let max_result_rows = nonzero(
            "max_result_rows",
            self.max_result_rows.or(file.max_result_rows),
        )?;
        let memory_limit = memory_limit_mb.map_or(defaults_query.memory_limit, |mb| mb << 20);
        let query_memory_limit = query_memory_limit_mb.map_or(memory_limit / 2, |mb| mb << 20);
        if query_memory_limit > memory_limit {
            return Err(ConfigError::Invalid(format!(
                "query_memory_limit_mb ({} MiB) is larger than memory_limit_mb ({} MiB)",
                query_memory_limit >> 20,
                memory_limit >> 20
            )));
        }
        let models_dir = self
            .models_dir
            .or(file.models_dir)
            .unwrap_or_else(default_models_dir);
        let models = ModelsConfig::resolve(
            file.models,
            self.default_model.or(file.default_model),
            &models_dir,
        )
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let tls = match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca: self.tls_client_ca.or(file.tls_client_ca),
            }),
            (None, None) if self.tls_client_ca.is_none() && file.tls_client_ca.is_none() => None,
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
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let http_listen = match self.http_listen.or(file.http_listen) {
            Some(off) if off.eq_ignore_ascii_case("off") => None,
            Some(address) => Some(address),
            None => Some(next_port(&listen)?),
        };
        Ok(ServerConfig {
            listen,
            http_listen,
            storage: self
                .storage
                .or(file.storage)
                .unwrap_or_else(|| DEFAULT_STORAGE.into()),
            log_filter: self
                .log_filter
                .or(file.log_filter)
                .unwrap_or_else(|| "info".into()),
            log_format: self
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            query: QueryOptions {
                classic_types: !self
                    .keep_view_types
                    .or(file.keep_view_types)
                    .unwrap_or(false),
                target_partitions: partitions.unwrap_or(defaults_query.target_partitions),
                memory_limit,
                query_memory_limit,
            },
            vector_index_cache_bytes: nonzero(
                "vector_index_cache_mb",
                self.vector_index_cache_mb.or(file.vector_index_cache_mb),
            )?
            .unwrap_or(DEFAULT_VECTOR_INDEX_CACHE_MB)
                << 20,
            layout: FileLayout {
                target_file_bytes: target_file_mb
                    .map_or(defaults_layout.target_file_bytes, |mb| mb * 1024 * 1024),
                row_group_rows: row_group_rows.unwrap_or(defaults_layout.row_group_rows),
                compact_min_files: self
                    .compact_min_files
                    .or(file.compact_min_files)
                    .unwrap_or(defaults_layout.compact_min_files),
            },
            max_message_bytes: max_message_mb.unwrap_or(DEFAULT_MAX_MESSAGE_MB) * 1024 * 1024,
            catalog_refresh: nonzero(
                "catalog_refresh_secs",
                self.catalog_refresh_secs.or(file.catalog_refresh_secs),
            )?
            .map(std::time::Duration::from_secs),
            storage_timeout: std::time::Duration::from_secs(
                nonzero(
                    "storage_timeout_secs",
                    self.storage_timeout_secs.or(file.storage_timeout_secs),
                )?
                .unwrap_or(DEFAULT_STORAGE_TIMEOUT_SECS),
            ),
            limits: Limits {
                max_upload_bytes: max_upload_mb.unwrap_or(DEFAULT_MAX_UPLOAD_MB) << 20,
                max_concurrent_requests: max_concurrent_requests
                    .unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS),
                max_running_queries: max_running_queries.unwrap_or_else(|| {
                    DEFAULT_RUNNING_QUERIES_PER_CORE
                        * std::thread::available_parallelism().map_or(1, |n| n.get())
                }),
                query_timeout: std::time::Duration::from_secs(
                    query_timeout_secs.unwrap_or(DEFAULT_QUERY_TIMEOUT_SECS),
                ),
                max_result_rows,
            },
            shutdown_grace: std::time::Duration::from_secs(
                self.shutdown_grace_secs
                    .or(file.shutdown_grace_secs)
                    .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
            ),
            extensions: Selection {
                enable: names_or(self.enable_extensions, file.enable_extensions),
                disable: names_or(self.disable_extensions, file.disable_extensions),
            },
            models,
            auth: file.auth,
            allow_unauthenticated: self.allow_unauthenticated
                || file.allow_unauthenticated.unwrap_or(false),
            tls,
        })
    }
}

/// Refuses a setting given as 0 where 0 means nothing sensible.
fn nonzero<T: PartialEq + Default>(name: &str, value: Option<T>) -> Result<Option<T>, ConfigError> {
    match value {
        Some(v) if v == T::default() => Err(ConfigError::Invalid(format!(
            "{name} must be greater than 0"
        ))),
        other => Ok(other),
    }
}

/// `host:port` with the port after `listen`'s (port 0 stays 0).
fn next_port(listen: &str) -> Result<String, ConfigError> {
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

/// Where the set-up scripts unpack the local model.
fn default_models_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/lakehouse/models")
}

/// Extension names from flags or variables if any were given, else from
/// the file.
fn names_or(given: Vec<String>, file: Option<Vec<String>>) -> Vec<String> {
    let names = if given.is_empty() {
        file.unwrap_or_default()
    } else {
        given
    };
    names
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
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.storage, DEFAULT_STORAGE);
        assert!(config.query.classic_types);
        assert_eq!(config.http_listen.as_deref(), Some("127.0.0.1:50052"));
    }

    #[test]
    fn the_http_port_follows_the_flight_port_unless_set() {
        let with = |listen: &str, http: Option<&str>| {
            ServeArgs {
                listen: Some(listen.into()),
                http_listen: http.map(str::to_string),
                ..Default::default()
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
            "listen = \"0.0.0.0:1\"\nstorage = \"/srv/x\"\nrow_group_rows = 1000\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.listen, "127.0.0.1:0");
        assert_eq!(config.storage, "/srv/x");
        assert_eq!(config.layout.row_group_rows, 1000);
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
            row_group_rows: Some(0),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("row_group_rows"), "{err}");
    }
}
