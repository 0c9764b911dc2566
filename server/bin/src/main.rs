//! The `lakehouse` binary: `lakehouse serve` runs the Flight SQL server;
//! `sql`, `put` and `history` talk to one (`lakehouse-cli`); `user add` and
//! `token add` print configuration entries for authentication; `config
//! show` prints the settings `serve` would run with; `doctor` and `repair`
//! check the catalog in the storage and roll a damaged table back;
//! `scheduler` and `executor` run the Ballista processes of a cluster over
//! the same storage.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lakehouse_core::auth::{self, Role};
use lakehouse_core::catalog::{Catalog, TableRef};
use lakehouse_core::storage::Storage;
use lakehouse_server::config::{LogFormat, ServeArgs, ServerConfig};
use lakehouse_server::server::Server;
use tracing::info;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "lakehouse",
    version,
    about = "A Flight SQL server over a versioned Parquet catalog"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve Flight SQL until SIGINT or SIGTERM
    Serve(ServeArgs),
    /// Run one SQL statement on a server and print the result
    Sql(lakehouse_cli::SqlArgs),
    /// Upload a CSV file into a table
    Put(lakehouse_cli::PutArgs),
    /// List a table's versions
    History(lakehouse_cli::HistoryArgs),
    /// Make the configuration lines that add a user (password login)
    #[command(subcommand)]
    User(UserCommand),
    /// Make an API token and the configuration lines that accept it
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show the settings `serve` would run with
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check the catalog in the storage for damaged manifests and missing data files (changes nothing in the catalog; the start-up check writes and deletes one probe object under _tmp/; exit 1 on a problem)
    Doctor(ServeArgs),
    /// Roll a damaged table back to its last good version; damaged manifests move to _quarantine/ (stop the server first, or use the repair_table action)
    Repair(RepairArgs),
    /// Run a Ballista scheduler for a cluster over this storage (docs/scale.md)
    Scheduler(SchedulerArgs),
    /// Run a Ballista executor that reads this storage (docs/scale.md)
    Executor(ExecutorArgs),
}

#[derive(clap::Args)]
struct SchedulerArgs {
    /// Where the scheduler listens for the coordinator and executors (gRPC)
    #[arg(long, default_value = "127.0.0.1:50050")]
    bind: SocketAddr,
    /// Seconds without a heartbeat after which an executor is declared lost and its tasks run on the others
    #[arg(long, default_value_t = lakehouse_cluster::DEFAULT_EXECUTOR_TIMEOUT.as_secs())]
    executor_timeout_secs: u64,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args)]
struct ExecutorArgs {
    /// Where the executor serves task results to other executors and the coordinator (Arrow Flight)
    #[arg(long, default_value = "127.0.0.1:50060")]
    bind: SocketAddr,
    /// The host other executors and the server reach this one at (default: the --bind address's; required when binding 0.0.0.0)
    #[arg(long)]
    external_host: Option<String>,
    /// The executor's gRPC port, for the scheduler
    #[arg(long, default_value_t = 50061)]
    grpc_port: u16,
    /// The scheduler to serve, host:port (a name or an address)
    #[arg(long, default_value = "127.0.0.1:50050")]
    scheduler: lakehouse_cluster::HostPort,
    /// Tasks run at once (default: the cores present)
    #[arg(long)]
    concurrent_tasks: Option<usize>,
    /// Where shuffle files go (default: a temporary directory)
    #[arg(long)]
    work_dir: Option<String>,
    /// Seconds between heartbeats to the scheduler (keep well under its --executor-timeout-secs)
    #[arg(long, default_value_t = lakehouse_cluster::DEFAULT_HEARTBEAT.as_secs())]
    heartbeat_secs: u64,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args)]
struct RepairArgs {
    /// The table to repair, [schema.]name
    #[arg(long)]
    table: String,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every setting in effect (flags and variables over the config file over defaults) as TOML
    Show(ServeArgs),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Print an [[auth.users]] entry to add to the server's config file
    Add {
        /// The user name clients log in with
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// Read the password from standard input (one line) instead of generating one
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Generate a token, print it once (stderr) and its [[auth.tokens]] entry (stdout)
    Add {
        /// A name for the program that will use the token
        name: String,
        #[arg(long, value_enum)]
        role: Role,
    },
}

/// Prints the config entry for a new user; the password is read from stdin
/// or generated and shown once on stderr.
fn user_add(name: &str, role: Role, password_stdin: bool) -> anyhow::Result<()> {
    auth::check_principal_name(name).map_err(anyhow::Error::msg)?;
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        anyhow::ensure!(
            !password.is_empty(),
            "the password read from standard input is empty"
        );
        password
    } else {
        let password = auth::random_secret();
        eprintln!("password for {name}: {password}");
        password
    };
    print!("{}", auth::user_entry(name, role, &password));
    Ok(())
}

fn token_add(name: &str, role: Role) -> anyhow::Result<()> {
    auth::check_principal_name(name).map_err(anyhow::Error::msg)?;
    let token = auth::random_secret();
    eprintln!(
        "token for {name} (shown once; send it as \"authorization: Bearer <token>\"): {token}"
    );
    print!("{}", auth::token_entry(name, role, &token));
    Ok(())
}

fn init_logging(config: &ServerConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .with_context(|| format!("invalid --log-filter {:?}", config.log_filter))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => info!("SIGINT received; finishing in-flight requests"),
        _ = terminate => info!("SIGTERM received; finishing in-flight requests"),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    init_logging(&config)?;
    // Every TLS connection of the process (Flight, S3 over HTTPS) uses ring:
    // with aws-lc-rs linked too (Lance's S3 store), rustls will not choose.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = Server::start(&config).await?;
    let address = server.local_addr()?;
    info!(%address, "serving Flight SQL");
    if let Some(http) = server.http_addr() {
        let http = http?;
        info!(address = %http, tls = config.tls.is_some(), "serving the probes, the /v1 API and the console over HTTP");
        println!("lakehouse http on {http}");
    }
    if let Some(postgres) = server.postgres_addr() {
        let postgres = postgres?;
        info!(address = %postgres, tls = config.tls.is_some(), "serving the Postgres wire protocol");
        println!("lakehouse postgres on {postgres}");
    }
    // The last line on stdout at start: scripts and tests wait for it to
    // know the server is ready and which port it took.
    println!("lakehouse listening on {address}");
    server.serve(shutdown_signal()).await?;
    Ok(())
}

/// The storage `args` name, opened as the server would, with logging set.
async fn open_storage(args: ServeArgs) -> anyhow::Result<Storage> {
    let config = args.resolve()?;
    init_logging(&config)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(Storage::open(&config.storage, config.storage_timeout).await?)
}

async fn scheduler(args: SchedulerArgs) -> anyhow::Result<()> {
    let storage = open_storage(args.serve).await?;
    info!(address = %args.bind, storage = %storage.location, "running a Ballista scheduler");
    println!("lakehouse scheduler on {}", args.bind);
    let options = lakehouse_cluster::SchedulerOptions {
        address: args.bind,
        executor_timeout: Duration::from_secs(args.executor_timeout_secs),
    };
    tokio::select! {
        ran = lakehouse_cluster::run_scheduler(options, storage) => ran?,
        _ = shutdown_signal() => {}
    }
    Ok(())
}

async fn executor(args: ExecutorArgs) -> anyhow::Result<()> {
    let storage = open_storage(args.serve).await?;
    let options = lakehouse_cluster::ExecutorOptions {
        address: args.bind,
        external_host: args.external_host,
        grpc_port: args.grpc_port,
        scheduler: args.scheduler.clone(),
        concurrent_tasks: args.concurrent_tasks,
        work_dir: args.work_dir,
        heartbeat: Duration::from_secs(args.heartbeat_secs),
    };
    info!(address = %args.bind, scheduler = %args.scheduler, storage = %storage.location, "running a Ballista executor");
    println!("lakehouse executor on {}", args.bind);
    // Ballista's executor answers SIGINT and SIGTERM itself: it tells the
    // scheduler, which moves its tasks at once, and lets running ones end.
    lakehouse_cluster::run_executor(options, storage).await?;
    Ok(())
}

/// The catalog of the storage `args` name, loaded as the server would.
async fn open_catalog(args: ServeArgs) -> anyhow::Result<(String, Catalog)> {
    let config = args.resolve()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let storage = Storage::open(&config.storage, config.storage_timeout).await?;
    let catalog = Catalog::load(storage.store.clone()).await?;
    Ok((config.storage, catalog))
}

async fn doctor(args: ServeArgs) -> anyhow::Result<()> {
    let (location, catalog) = open_catalog(args).await?;
    let problems = catalog.check().await?;
    let tables: std::collections::BTreeSet<&str> =
        problems.iter().map(|p| p.table.as_str()).collect();
    for problem in &problems {
        println!(
            "table {} version {}: {} ({})",
            problem.table, problem.version, problem.detail, problem.path
        );
    }
    if problems.is_empty() {
        println!("catalog at {location}: no damaged manifest, no missing data file");
        return Ok(());
    }
    for table in &tables {
        println!(
            "repair: lakehouse repair --storage {location} --table {table} (server stopped), or the repair_table action"
        );
    }
    std::process::exit(1);
}

async fn repair(args: RepairArgs) -> anyhow::Result<()> {
    let table = TableRef::parse(&args.table)?;
    let (_, catalog) = open_catalog(args.serve).await?;
    let repaired = catalog.repair(&table).await?;
    for damage in &repaired.quarantined {
        println!(
            "moved version {} aside (_quarantine/): {} ({})",
            damage.version, damage.detail, damage.path
        );
    }
    match repaired.version {
        Some(version) => println!("table {} is at version {version}", repaired.table),
        None => println!("table {} had no good version and is gone", repaired.table),
    }
    Ok(())
}

/// Stack of each runtime thread. Plans are trees that planning, optimizing
/// and (on a cluster) protobuf encoding walk recursively; Tokio's 2 MiB
/// default overflowed encoding TPC-H q02 for the scheduler in a debug build.
const THREAD_STACK_BYTES: usize = 16 << 20;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
        .context("starting the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let client_command = match Cli::parse().command {
        Command::Serve(args) => return serve(args).await,
        Command::Sql(args) => lakehouse_cli::sql(args).await,
        Command::Put(args) => lakehouse_cli::put(args).await,
        Command::History(args) => lakehouse_cli::history(args).await,
        Command::User(UserCommand::Add {
            name,
            role,
            password_stdin,
        }) => return user_add(&name, role, password_stdin),
        Command::Token(TokenCommand::Add { name, role }) => return token_add(&name, role),
        Command::Config(ConfigCommand::Show(args)) => {
            print!("{}", args.settings()?.show());
            return Ok(());
        }
        Command::Doctor(args) => return doctor(args).await,
        Command::Repair(args) => return repair(args).await,
        Command::Scheduler(args) => return scheduler(args).await,
        Command::Executor(args) => return executor(args).await,
    };
    // A client command's error is one line for a person, not a chain.
    if let Err(e) = client_command {
        eprintln!("lakehouse: {e}");
        std::process::exit(1);
    }
    Ok(())
}
