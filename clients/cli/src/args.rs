//! Command-line arguments of the client commands.

use clap::{Args, ValueEnum};

/// Where the server is, and how to log in to it.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Server address, host:port, http://host:port or https://host:port
    #[arg(long, env = "LAKEHOUSE_SERVER", default_value = "127.0.0.1:50051")]
    pub server: String,
    /// User to log in as (with the password in LAKEHOUSE_PASSWORD)
    #[arg(long, env = "LAKEHOUSE_USER", conflicts_with = "token")]
    pub user: Option<String>,
    /// API token to send as the bearer token
    #[arg(long, env = "LAKEHOUSE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificate(s) to trust for a TLS server (implies TLS)
    #[arg(long, env = "LAKEHOUSE_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns, for people
    Table,
    /// CSV with a header line
    Csv,
    /// A JSON array of objects
    Json,
    /// An Arrow IPC stream, for programs
    Arrow,
}

#[derive(Debug, Clone, Args)]
pub struct SqlArgs {
    /// The SQL statement to run
    pub statement: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The table, as name or schema.name
    pub table: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// How an upload meets the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The table must not exist
    Create,
    /// The table must exist
    Append,
    /// Replace the table's rows (creating it when missing)
    Overwrite,
    /// Create the table when missing, else append
    CreateAppend,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Create => "create",
            Mode::Append => "append",
            Mode::Overwrite => "overwrite",
            Mode::CreateAppend => "create_append",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    /// The CSV file to upload; - reads standard input
    pub file: String,
    /// The table to load into
    #[arg(long)]
    pub table: String,
    /// The table's schema (default public)
    #[arg(long)]
    pub schema: Option<String>,
    #[arg(long, value_enum, default_value_t = Mode::CreateAppend)]
    pub mode: Mode,
    /// The file has no header line (columns are column_1, column_2, ... or --column names)
    #[arg(long)]
    pub no_header: bool,
    /// Field delimiter, one character
    #[arg(long)]
    pub delimiter: Option<String>,
    /// Quote character
    #[arg(long)]
    pub quote: Option<String>,
    /// Escape character inside quotes (default: quotes are doubled)
    #[arg(long)]
    pub escape: Option<String>,
    /// A field text read as null (repeatable; default: the empty field)
    #[arg(long = "null-value")]
    pub null_values: Vec<String>,
    /// Column type instead of inference, NAME:TYPE (repeatable), e.g. zip:text
    #[arg(long = "column")]
    pub columns: Vec<String>,
    /// Makes a retried upload add its rows once
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Add the file's new columns to the table instead of refusing them
    #[arg(long)]
    pub evolve: bool,
    /// Fill a vector column with the embedding of a text column, TARGET=SOURCE[:MODEL]
    /// (repeatable), e.g. summary_embedding=summary; declared when the table is created
    #[arg(long = "embed")]
    pub embed: Vec<String>,
    /// Bytes per chunk sent
    #[arg(long, default_value_t = 1024 * 1024)]
    pub chunk_bytes: usize,
    /// Print the server's result as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}
