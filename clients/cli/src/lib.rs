//! The client side of the `lakehouse` command: `sql`, `put` and `history`,
//! built on the `lakehouse-client` library so that the command line does
//! exactly what a program using the library would.

mod args;
mod output;
mod upload;

pub use args::{ConnectArgs, Format, HistoryArgs, PutArgs, SqlArgs};

use lakehouse_client::{Client, ClientError, ConnectOptions, Credentials};

/// Why a command failed, worded for the person who ran it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{}", describe(.0))]
    Client(#[from] ClientError),
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("writing the result: {0}")]
    Output(#[from] arrow::error::ArrowError),
}

/// A server's refusal as its code and message; other errors with their
/// innermost cause (the refused connection, the unresolvable host).
fn describe(error: &ClientError) -> String {
    if let Some(status) = error.status() {
        return format!("{:?}: {}", status.code(), status.message());
    }
    let mut root: &dyn std::error::Error = error;
    while let Some(source) = root.source() {
        root = source;
    }
    if std::ptr::addr_eq(root, error as &dyn std::error::Error) {
        error.to_string()
    } else {
        format!("{error} ({root})")
    }
}

async fn connect(args: &ConnectArgs) -> Result<Client, CliError> {
    let credentials = match (&args.user, &args.token) {
        (Some(user), _) => {
            let password = std::env::var("LAKEHOUSE_PASSWORD").map_err(|_| {
                CliError::Usage(format!(
                    "--user {user} needs the password in the LAKEHOUSE_PASSWORD variable"
                ))
            })?;
            Some(Credentials::Password {
                user: user.clone(),
                password,
            })
        }
        (None, Some(token)) => Some(Credentials::Token(token.clone())),
        (None, None) => None,
    };
    let tls_ca_pem = match &args.tls_ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            CliError::Usage(format!("cannot read --tls-ca {}: {e}", path.display()))
        })?),
        None => None,
    };
    let options = ConnectOptions {
        credentials,
        tls_ca_pem,
        tls_client_identity: None,
    };
    Ok(Client::connect_with(&args.server, &options).await?)
}

/// `lakehouse sql`: runs one statement and prints its result.
pub async fn sql(args: SqlArgs) -> Result<(), CliError> {
    let mut client = connect(&args.connect).await?;
    let (schema, batches) = client.query_with_schema(&args.statement).await?;
    output::print(&schema, &batches, args.format)
}

/// `lakehouse history`: a table's versions.
pub async fn history(args: HistoryArgs) -> Result<(), CliError> {
    let mut client = connect(&args.connect).await?;
    let quoted = args.table.replace('\'', "''");
    let (schema, batches) = client
        .query_with_schema(&format!(
            "SELECT * FROM table_history('{quoted}') ORDER BY version"
        ))
        .await?;
    output::print(&schema, &batches, args.format)
}

/// `lakehouse put`: uploads a CSV file.
pub async fn put(args: PutArgs) -> Result<(), CliError> {
    let mut client = connect(&args.connect).await?;
    upload::put(&mut client, &args).await
}
