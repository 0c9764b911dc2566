//! Logging in. The startup packet names the user; the server asks for a
//! password in clear text (which is why the port takes the server's TLS
//! certificate when one is configured, and then refuses plain
//! connections) and checks it as Flight checks Basic credentials: the
//! user's password, throttled after failed attempts per client address
//! and user, or a bearer or API token of that name. With authentication
//! off, no password is asked and the connection is the anonymous admin,
//! as on the other ports.
//!
//! Settings in the startup packet (`TimeZone`, `DateStyle`, `options=-c
//! search_path=...`) apply as `SET` would; a bad one ends the connection,
//! as in Postgres. The database name is not checked: the server has one
//! catalog, `lakehouse`, whatever the client names.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tracing::info;

use crate::connection::{Connection, Connections};
use crate::errors::fatal;
use crate::settings::{Change, SERVER_VERSION};
use lakehouse_core::auth::{Authenticator, Identity};
use lakehouse_core::catalog::Catalog;
use lakehouse_serving::errors::Refusal;

/// Startup parameters that are not settings.
const NOT_SETTINGS: [&str; 5] = ["user", "database", "options", "replication", "_pq_.command"];

/// The startup handler of one connection.
pub struct Startup {
    pub auth: Option<Arc<Authenticator>>,
    pub catalog: Arc<Catalog>,
    pub connections: Arc<Connections>,
    pub keys: Arc<RandomPidSecretKeyGenerator>,
    pub tls_required: bool,
    /// Set when the connection is over `max_postgres_connections`: its
    /// login is answered with this refusal.
    pub over_limit: Option<String>,
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(startup) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                if let Some(refusal) = &self.over_limit {
                    return Err(fatal("53300", refusal.clone()));
                }
                if self.tls_required && !client.is_secure() {
                    return Err(fatal(
                        "28000",
                        "this server accepts TLS connections only: connect with sslmode=require \
                         (or verify-full with the server's CA)",
                    ));
                }
                if self.auth.is_some() {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::CleartextPassword,
                        ))
                        .await?;
                } else {
                    self.admit(client, Identity::anonymous()).await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let Some(auth) = &self.auth else {
                    return Ok(());
                };
                let password = message.into_password()?.password;
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .ok_or(PgWireError::UserNameRequired)?;
                let address = client.socket_addr().ip();
                match auth
                    .login_with_secret(Some(address), &user, &password)
                    .await
                {
                    Ok(identity) => self.admit(client, identity).await?,
                    Err(error) => {
                        let refusal = Refusal::of(&error.into());
                        return Err(fatal(
                            "28P01",
                            format!(
                                "password authentication failed for user \"{user}\": {}",
                                refusal.message
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Startup {
    /// Opens the connection of `identity`: its settings from the startup
    /// packet, its cancel key, then `ReadyForQuery`.
    async fn admit<C>(&self, client: &mut C, identity: Identity) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = Arc::new(Connection::new(identity, client.socket_addr()));
        for (name, value) in startup_settings(client.metadata()) {
            let change = connection
                .settings()
                .check(&name, &value)
                .map_err(|message| fatal("22023", message))?;
            if let Change::Schema(schema) = &change
                && !self.catalog.schema_exists(schema)
            {
                return Err(fatal(
                    "3F000",
                    format!("schema \"{schema}\" does not exist"),
                ));
            }
            connection.change_settings(|settings| settings.apply(&name, &value, change));
        }
        let (pid, key) = self.keys.generate(client);
        client.set_pid_and_secret_key(pid, key.clone());
        let registered = self.connections.register(pid, key, &connection);
        info!(
            user = %connection.identity.name,
            client = %connection.client,
            tls = client.is_secure(),
            application = client.metadata().get("application_name").map_or("-", String::as_str),
            "postgres connection"
        );
        client.session_extensions().insert(connection);
        client.session_extensions().insert(registered);
        finish_authentication(client, &Parameters).await
    }
}

/// The settings a startup packet carries: its own parameters and the
/// `-c name=value` (or `--name=value`) parts of `options`.
fn startup_settings(metadata: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut settings: Vec<(String, String)> = metadata
        .iter()
        .filter(|(name, _)| !NOT_SETTINGS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if let Some(options) = metadata.get("options") {
        let mut words = options.split_whitespace();
        while let Some(word) = words.next() {
            let assignment = match word {
                "-c" => words.next(),
                other => other
                    .strip_prefix("--")
                    .or_else(|| other.strip_prefix("-c")),
            };
            if let Some((name, value)) = assignment.and_then(|a| a.split_once('=')) {
                settings.push((name.replace('-', "_"), value.to_string()));
            }
        }
    }
    settings.sort();
    settings
}

/// The parameters reported once logged in.
struct Parameters;

impl ServerParameterProvider for Parameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let connection = crate::statements::connection_of(client).ok()?;
        let settings = connection.settings();
        let reported = [
            ("server_version", "server_version"),
            ("server_encoding", "server_encoding"),
            ("client_encoding", "client_encoding"),
            ("DateStyle", "datestyle"),
            ("IntervalStyle", "intervalstyle"),
            ("TimeZone", "timezone"),
            ("integer_datetimes", "integer_datetimes"),
            ("standard_conforming_strings", "standard_conforming_strings"),
            ("application_name", "application_name"),
            ("session_authorization", "session_authorization"),
            ("is_superuser", "is_superuser"),
            (
                "default_transaction_read_only",
                "default_transaction_read_only",
            ),
        ];
        let mut parameters: HashMap<String, String> = reported
            .iter()
            .filter_map(|(shown, key)| settings.show(key).ok().map(|v| (shown.to_string(), v)))
            .collect();
        parameters.insert("server_version".into(), SERVER_VERSION.into());
        parameters.insert("in_hot_standby".into(), "off".into());
        Some(parameters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_options_become_settings() {
        let metadata: HashMap<String, String> = [
            ("user", "ada"),
            ("database", "lakehouse"),
            ("TimeZone", "Europe/Paris"),
            ("options", "-c search_path=sales --statement-timeout=5s"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            startup_settings(&metadata),
            vec![
                ("TimeZone".to_string(), "Europe/Paris".to_string()),
                ("search_path".to_string(), "sales".to_string()),
                ("statement_timeout".to_string(), "5s".to_string()),
            ]
        );
    }
}
