//! The `lakehouse` binary: `lakehouse serve` runs the Flight SQL server;
//! `sql`, `put` and `history` talk to one (`lakehouse-cli`).

use std::io::IsTerminal;

use anyhow::Context;
use clap::{Parser, Subcommand};
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
    let server = Server::start(&config).await?;
    let address = server.local_addr()?;
    info!(%address, "serving Flight SQL");
    // The one line on stdout: scripts and tests wait for it to know the
    // server is ready and which port it took.
    println!("lakehouse listening on {address}");
    server.serve(shutdown_signal()).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client_command = match Cli::parse().command {
        Command::Serve(args) => return serve(args).await,
        Command::Sql(args) => lakehouse_cli::sql(args).await,
        Command::Put(args) => lakehouse_cli::put(args).await,
        Command::History(args) => lakehouse_cli::history(args).await,
    };
    // A client command's error is one line for a person, not a chain.
    if let Err(e) = client_command {
        eprintln!("lakehouse: {e}");
        std::process::exit(1);
    }
    Ok(())
}
