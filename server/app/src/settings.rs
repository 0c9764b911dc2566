//! Every setting of `lakehouse serve`, declared once, in [`Settings`].
//!
//! Each field is at once a flag (`--name`, dashes for underscores), an
//! environment variable (`LAKEHOUSE_NAME`) and a key of the TOML file; its
//! doc comment is the flag's help, the row of the settings table in
//! docs/operations.md ([`Settings::reference`], checked against the docs by
//! a test) and the comment `lakehouse config show` prints above it. Its
//! default is in [`Settings::defaults`], or, when it depends on the machine
//! or on another setting, in [`Settings::fill_derived`].
//!
//! Layers are merged key by key, generically: defaults, then the file, then
//! flags and variables; a layer that leaves a key unset keeps the one below.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use lakehouse_core::auth::AuthConfig;
use lakehouse_engine::ingest::FileLayout;
use lakehouse_engine::query::QueryOptions;
use lakehouse_ext_embed::ModelConfig;

use crate::config::{ConfigError, next_port};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The codec ingest compresses Parquet pages with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCompression {
    Lz4,
    Zstd,
    Snappy,
    None,
}

/// The settings of `lakehouse serve`; unset is `None`.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to serve Flight SQL on, e.g. 0.0.0.0:50051; port 0 picks a free port
    #[arg(long, env = "LAKEHOUSE_LISTEN")]
    pub listen: Option<String>,
    /// Where tables live: a directory, file://DIR, s3://bucket/prefix or memory:// (docs/operations.md, Storage)
    #[arg(long, env = "LAKEHOUSE_STORAGE")]
    pub storage: Option<String>,
    /// Log filter in tracing's syntax, e.g. "info" or "lakehouse_engine=debug,info"
    #[arg(long, env = "LAKEHOUSE_LOG_FILTER")]
    pub log_filter: Option<String>,
    /// Log line format: text, or json (one JSON object per line)
    #[arg(long, env = "LAKEHOUSE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Send Utf8View/BinaryView/list views to clients as they are instead of as Utf8/Binary/List (JDBC and some ADBC drivers cannot read views)
    #[arg(long, env = "LAKEHOUSE_KEEP_VIEW_TYPES", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub keep_view_types: Option<bool>,
    /// Ingest closes a Parquet file once it reaches this many MiB
    #[arg(long, env = "LAKEHOUSE_TARGET_FILE_MB")]
    pub target_file_mb: Option<usize>,
    /// Rows per Parquet row group written by ingest
    #[arg(long, env = "LAKEHOUSE_ROW_GROUP_ROWS")]
    pub row_group_rows: Option<usize>,
    /// Codec of the Parquet files ingest and compaction write: lz4 (LZ4_RAW; fastest to query), zstd (about 25% smaller files, about 15% slower scans), snappy or none (docs/performance.md, "Against DuckDB")
    #[arg(long, env = "LAKEHOUSE_PARQUET_COMPRESSION", value_enum)]
    pub parquet_compression: Option<ParquetCompression>,
    /// Merge a table's small files (fewer rows than a row group) in the background once an append leaves this many; 0 turns it off (docs/operations.md, Compaction)
    #[arg(long, env = "LAKEHOUSE_COMPACT_MIN_FILES")]
    pub compact_min_files: Option<usize>,
    /// MiB of vector and full-text index data (IVF partitions, HNSW graphs) kept in memory between searches, shared by all vector tables; searches that miss it read and decode the index from storage
    #[arg(long, env = "LAKEHOUSE_VECTOR_INDEX_CACHE_MB")]
    pub vector_index_cache_mb: Option<usize>,
    /// MiB of resident HNSW graphs (`hnsw` indexes) kept in memory, the least recently searched evicted first; a graph larger than this is not loaded and knn uses the table's Lance indexes (docs/vectors.md)
    #[arg(long, env = "LAKEHOUSE_VECTOR_GRAPH_MEMORY_MB")]
    pub vector_graph_memory_mb: Option<usize>,
    /// Partitions one query is split into (default: the number of cores)
    #[arg(long, env = "LAKEHOUSE_TARGET_PARTITIONS")]
    pub target_partitions: Option<usize>,
    /// Largest gRPC message accepted (one uploaded batch), in MiB
    #[arg(long, env = "LAKEHOUSE_MAX_MESSAGE_MB")]
    pub max_message_mb: Option<usize>,
    /// Seconds a stopping server (SIGINT, SIGTERM) waits for in-flight requests
    #[arg(long, env = "LAKEHOUSE_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Install extensions that are off by default (repeat the flag, or separate names with commas)
    #[arg(
        long = "enable-extension",
        env = "LAKEHOUSE_ENABLE_EXTENSIONS",
        value_delimiter = ','
    )]
    pub enable_extensions: Option<Vec<String>>,
    /// Leave out extensions that are on by default (repeat the flag, or separate names with commas)
    #[arg(
        long = "disable-extension",
        env = "LAKEHOUSE_DISABLE_EXTENSIONS",
        value_delimiter = ','
    )]
    pub disable_extensions: Option<Vec<String>>,
    /// Directory holding local embedding models; scripts/bootstrap.sh unpacks all-MiniLM-L6-v2 there (default: ~/.cache/lakehouse/models)
    #[arg(long, env = "LAKEHOUSE_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// The embedding model embed() uses when none is named (default: the only model, or "local")
    #[arg(long, env = "LAKEHOUSE_DEFAULT_MODEL")]
    pub default_model: Option<String>,
    /// Every this many seconds, read what other servers on the same storage committed (also the refresh_catalog action) (default: off)
    #[arg(long, env = "LAKEHOUSE_CATALOG_REFRESH_SECS")]
    pub catalog_refresh_secs: Option<u64>,
    /// At start, how long the check that the storage is writable may wait; an unreachable S3 endpoint fails start after this long, naming the storage and endpoint
    #[arg(long, env = "LAKEHOUSE_STORAGE_TIMEOUT_SECS")]
    pub storage_timeout_secs: Option<u64>,
    /// Largest request body (an upload, in practice) in MiB; past it ResourceExhausted, nothing committed
    #[arg(long, env = "LAKEHOUSE_MAX_UPLOAD_MB")]
    pub max_upload_mb: Option<u64>,
    /// Requests served at once (an open result stream counts until it ends); more are refused ResourceExhausted at once rather than queued
    #[arg(long, env = "LAKEHOUSE_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// Requests one user may have in flight at once (an open result stream counts until it ends); more are refused ResourceExhausted naming this setting; not applied when authentication is off
    #[arg(long, env = "LAKEHOUSE_MAX_REQUESTS_PER_USER")]
    pub max_requests_per_user: Option<usize>,
    /// Prepared statements one user may hold open; preparing more fails ResourceExhausted naming this setting
    #[arg(long, env = "LAKEHOUSE_MAX_PREPARED_PER_USER")]
    pub max_prepared_per_user: Option<usize>,
    /// Seconds a prepared statement may go unused before the server closes it for its client
    #[arg(long, env = "LAKEHOUSE_PREPARED_IDLE_SECS")]
    pub prepared_idle_secs: Option<u64>,
    /// Seconds a result waits for its client to read the next part; past it the query is stopped, its slot and memory freed, and the stream ends ResourceExhausted naming this setting
    #[arg(long, env = "LAKEHOUSE_RESULT_WRITE_TIMEOUT_SECS")]
    pub result_write_timeout_secs: Option<u64>,
    /// Statements planned or run at once (results streaming, planning, updates such as CREATE TABLE AS, embedding and index builds); more wait their turn in arrival order, the wait counting against query_timeout_secs; catalog calls never wait (default: twice the cores)
    #[arg(long, env = "LAKEHOUSE_MAX_RUNNING_QUERIES")]
    pub max_running_queries: Option<usize>,
    /// MiB all queries may reserve together (DataFusion's fair spill pool); sorts, aggregations and spillable joins write temporary files past it (default: half of physical memory)
    #[arg(long, env = "LAKEHOUSE_MEMORY_LIMIT_MB")]
    pub memory_limit_mb: Option<usize>,
    /// MiB one query may reserve; past it operators spill, and what cannot spill fails ResourceExhausted (default: half of memory_limit_mb)
    #[arg(long, env = "LAKEHOUSE_QUERY_MEMORY_LIMIT_MB")]
    pub query_memory_limit_mb: Option<usize>,
    /// Parquet tables kept in memory as Arrow, refreshed after every commit, so their scans skip Parquet decoding (separate names with commas; schema.table or table); a version not yet copied reads its files (docs/operations.md, Accelerated tables) (default: none)
    #[arg(long, env = "LAKEHOUSE_ACCELERATED_TABLES", value_delimiter = ',')]
    pub accelerated_tables: Option<Vec<String>>,
    /// MiB the in-memory copies of accelerated tables may hold together; a table that does not fit reads its files, and the accelerated_tables action says so (default: a quarter of physical memory)
    #[arg(long, env = "LAKEHOUSE_ACCELERATION_MEMORY_MB")]
    pub acceleration_memory_mb: Option<usize>,
    /// Seconds the planning and result stream of one query may take (uploads and actions are not bounded by it)
    #[arg(long, env = "LAKEHOUSE_QUERY_TIMEOUT_SECS")]
    pub query_timeout_secs: Option<u64>,
    /// Rows one result may have; past it the stream fails ResourceExhausted (default: no limit)
    #[arg(long, env = "LAKEHOUSE_MAX_RESULT_ROWS")]
    pub max_result_rows: Option<u64>,
    /// Address of the HTTP port (/health, /ready, /metrics and the /v1 API), or "off" (default: the Flight host with the next port, or port 0 when Flight's is 0)
    #[arg(long, env = "LAKEHOUSE_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Address of the Postgres wire protocol port (psql, psycopg, SQLAlchemy, JDBC's Postgres driver), or "off" (default: off)
    #[arg(long, env = "LAKEHOUSE_POSTGRES_LISTEN")]
    pub postgres_listen: Option<String>,
    /// Connections the Postgres port keeps open at once, logged in or logging in; more are refused with SQLSTATE 53300 naming this setting
    #[arg(long, env = "LAKEHOUSE_MAX_POSTGRES_CONNECTIONS")]
    pub max_postgres_connections: Option<usize>,
    /// Address (host:port) of a Ballista scheduler (`lakehouse scheduler`) that runs the queries it can distribute, or "off" to run every query here (default: off; docs/scale.md)
    #[arg(long, env = "LAKEHOUSE_CLUSTER_SCHEDULER")]
    pub cluster_scheduler: Option<String>,
    /// Serve on a non-loopback address with no users or tokens configured
    #[arg(long, env = "LAKEHOUSE_ALLOW_UNAUTHENTICATED", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_unauthenticated: Option<bool>,
    /// PEM certificate chain: serve Flight SQL and the HTTP port over TLS (with tls_key) (default: no TLS)
    #[arg(long, env = "LAKEHOUSE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of tls_cert
    #[arg(long, env = "LAKEHOUSE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: require clients of both ports to present a certificate signed by one (default: none asked)
    #[arg(long, env = "LAKEHOUSE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// `[models.NAME]` tables: the embedding models (file only).
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelConfig>,
    /// `[auth]`: users, API tokens, token lifetime (file only).
    #[arg(skip)]
    #[serde(default, skip_serializing)]
    pub auth: AuthConfig,
}

/// Only to read the flags' metadata for [`Settings::reference`].
#[derive(clap::Parser)]
struct SettingsCommand {
    #[command(flatten)]
    settings: Settings,
}

impl Settings {
    /// The defaults that are the same on every machine.
    pub fn defaults() -> Self {
        let layout = FileLayout::default();
        Self {
            listen: Some("127.0.0.1:50051".into()),
            storage: Some("./data".into()),
            log_filter: Some("info".into()),
            log_format: Some(LogFormat::Text),
            keep_view_types: Some(false),
            target_file_mb: Some(layout.target_file_bytes >> 20),
            row_group_rows: Some(layout.row_group_rows),
            parquet_compression: Some(ParquetCompression::Lz4),
            compact_min_files: Some(layout.compact_min_files),
            vector_index_cache_mb: Some(1024),
            vector_graph_memory_mb: Some(8192),
            max_message_mb: Some(512),
            shutdown_grace_secs: Some(30),
            storage_timeout_secs: Some(30),
            max_upload_mb: Some(16 * 1024),
            max_concurrent_requests: Some(256),
            max_requests_per_user: Some(64),
            max_prepared_per_user: Some(5_000),
            prepared_idle_secs: Some(3_600),
            result_write_timeout_secs: Some(120),
            query_timeout_secs: Some(15 * 60),
            allow_unauthenticated: Some(false),
            postgres_listen: Some("off".into()),
            max_postgres_connections: Some(100),
            cluster_scheduler: Some("off".into()),
            ..Self::default()
        }
    }

    /// Fills the defaults that depend on the machine or on other settings
    /// (see each setting's "default:"); the rest stays unset.
    pub fn fill_derived(&mut self) -> Result<(), ConfigError> {
        let query = QueryOptions::default();
        self.target_partitions
            .get_or_insert(query.target_partitions);
        self.max_running_queries
            .get_or_insert(2 * std::thread::available_parallelism().map_or(1, |n| n.get()));
        let memory_limit_mb = *self.memory_limit_mb.get_or_insert(query.memory_limit >> 20);
        self.query_memory_limit_mb
            .get_or_insert(memory_limit_mb / 2);
        self.acceleration_memory_mb
            .get_or_insert(query.acceleration.memory_limit >> 20);
        if self.http_listen.is_none()
            && let Some(listen) = &self.listen
        {
            self.http_listen = Some(next_port(listen)?);
        }
        self.models_dir.get_or_insert_with(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/lakehouse/models")
        });
        Ok(())
    }

    /// `self` with every key `over` sets taken from `over`.
    pub fn overlaid(self, over: Settings) -> Result<Self, ConfigError> {
        let mut merged = as_object(&self)?;
        for (key, value) in as_object(&over)? {
            if is_set(&value) {
                merged.insert(key, value);
            }
        }
        let mut settings: Settings = serde_json::from_value(Value::Object(merged))
            .map_err(|e| ConfigError::Invalid(format!("the settings do not combine: {e}")))?;
        settings.auth = if auth_is_set(&over.auth) {
            over.auth
        } else {
            self.auth
        };
        Ok(settings)
    }

    /// The settings as a TOML file would hold them, each with its help as
    /// a comment; `[auth]` is summarised, never printed.
    pub fn show(&self) -> String {
        let help = help_by_key();
        let mut out = String::new();
        for (key, value) in as_object(self).expect("settings that combined are JSON") {
            if key == "models" || !is_set(&value) {
                continue;
            }
            if let Some(help) = help.get(&key) {
                out.push_str(&format!("# {}\n", help.text));
            }
            let value = toml::Value::try_from(&value).expect("a setting is a TOML value");
            out.push_str(&format!("{key} = {value}\n"));
        }
        if !self.models.is_empty() {
            let models = toml::to_string(&BTreeMap::from([("models", &self.models)]))
                .expect("model tables are TOML");
            out.push('\n');
            out.push_str(&models);
        }
        out.push_str(&format!(
            "\n# [auth]: {} users, {} API tokens (not shown)\n",
            self.auth.users.len(),
            self.auth.tokens.len()
        ));
        out
    }

    /// The settings table of docs/operations.md: flag, variable, TOML key,
    /// default and meaning of every setting, in declaration order.
    pub fn reference() -> String {
        let defaults = as_object(&Settings::defaults()).expect("the defaults are JSON");
        let mut table = String::from(
            "| flag | variable | TOML key | default | meaning |\n| --- | --- | --- | --- | --- |\n",
        );
        for (key, help) in help_by_key_ordered() {
            let default = match defaults.get(&key).filter(|v| is_set(v)) {
                Some(value) => format!(
                    "`{}`",
                    toml::Value::try_from(value).expect("a setting is a TOML value")
                ),
                None => help.default.clone().unwrap_or_else(|| "none".into()),
            };
            table.push_str(&format!(
                "| `--{}` | `{}` | `{key}` | {default} | {} |\n",
                help.flag, help.env, help.text
            ));
        }
        table
    }
}

/// What the flags' metadata says of one setting.
struct Help {
    flag: String,
    env: String,
    /// The help without its "(default: ...)".
    text: String,
    /// The "(default: ...)" of a default that depends on the machine or on
    /// other settings.
    default: Option<String>,
}

/// Every setting's help, in declaration order, keyed by its TOML key.
fn help_by_key_ordered() -> Vec<(String, Help)> {
    SettingsCommand::command()
        .get_arguments()
        .filter(|arg| arg.get_long().is_some())
        .map(|arg| {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let (text, default) = match help.rsplit_once(" (default: ") {
                Some((text, default)) => (
                    text.to_string(),
                    Some(default.trim_end_matches(')').to_string()),
                ),
                None => (help, None),
            };
            let key = arg.get_id().as_str().to_string();
            let help = Help {
                flag: arg.get_long().unwrap_or_default().to_string(),
                env: arg
                    .get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                text,
                default,
            };
            (key, help)
        })
        .collect()
}

fn help_by_key() -> BTreeMap<String, Help> {
    help_by_key_ordered().into_iter().collect()
}

/// Whether a layer has an `[auth]` table.
fn auth_is_set(auth: &AuthConfig) -> bool {
    auth.enabled() || auth.token_ttl_secs.is_some() || auth.token_secret_env.is_some()
}

/// The settings as a JSON object; fails only for a path that is not UTF-8.
fn as_object(settings: &Settings) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::to_value(settings) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => unreachable!("a struct is a JSON object"),
        Err(e) => Err(ConfigError::Invalid(format!(
            "a setting cannot be read: {e}"
        ))),
    }
}

/// Whether a layer sets a key: a value, not null or an empty table.
fn is_set(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Object(map) => !map.is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_keeps_what_the_layer_above_leaves_unset() {
        let file = Settings {
            listen: Some("0.0.0.0:1".into()),
            storage: Some("/srv/x".into()),
            ..Settings::default()
        };
        let flags = Settings {
            listen: Some("127.0.0.1:0".into()),
            enable_extensions: Some(vec!["example".into()]),
            ..Settings::default()
        };
        let merged = Settings::defaults()
            .overlaid(file)
            .unwrap()
            .overlaid(flags)
            .unwrap();
        assert_eq!(merged.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(merged.storage.as_deref(), Some("/srv/x"));
        assert_eq!(merged.log_filter.as_deref(), Some("info"));
        assert_eq!(merged.enable_extensions, Some(vec!["example".to_string()]));
    }

    #[test]
    fn every_setting_has_a_flag_a_variable_and_help() {
        let settings = help_by_key_ordered();
        assert!(settings.len() >= 30, "{}", settings.len());
        for (key, help) in &settings {
            assert!(!help.text.is_empty(), "{key} has no help");
            assert!(help.env.starts_with("LAKEHOUSE_"), "{key}: {}", help.env);
            assert!(
                help.flag
                    .starts_with(&key.replace('_', "-")[..key.len() - 1]),
                "{key}: --{}",
                help.flag
            );
        }
        let reference = Settings::reference();
        assert!(reference.contains(
            "| `--max-running-queries` | `LAKEHOUSE_MAX_RUNNING_QUERIES` | `max_running_queries` | twice the cores |"
        ), "{reference}");
        assert!(
            reference
                .contains("| `--listen` | `LAKEHOUSE_LISTEN` | `listen` | `\"127.0.0.1:50051\"` |"),
            "{reference}"
        );
    }
}
