//! Authentication: who a call comes from, from its `authorization` header.
//!
//! Users (Argon2id password hashes) and static API tokens (SHA-256 digests)
//! are listed in configuration with a role. A client either sends Basic
//! credentials to `Handshake` and gets a signed, expiring bearer token back
//! in the `authorization` response header, or sends Basic credentials or a
//! bearer token (signed or static) on every call, as Tableau and the JDBC
//! driver do. Verified Basic credentials are remembered for a few minutes
//! so that per-call Basic does not pay for Argon2 every time.
//!
//! Refusals say only what the caller needs to fix (no credentials, invalid
//! ones, an expired token), never which of name or password was wrong.

mod password;
mod role;
mod throttle;
mod token;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use parking_lot::Mutex;
use ring::digest;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tracing::info;

pub use password::{hash_password, random_secret, token_digest};
pub use role::{Identity, Role};
pub use throttle::{FREE_FAILURES, MAX_WAIT};
use throttle::{Subject, Throttle};
use token::{Claims, TokenError, TokenSigner};

use crate::error::{Error, Result};

/// How long a bearer token from `Handshake` stays valid by default.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 8 * 60 * 60;
/// The variable holding the token-signing secret by default.
pub const DEFAULT_TOKEN_SECRET_ENV: &str = "LAKEHOUSE_TOKEN_SECRET";
/// How long verified Basic credentials are remembered.
const BASIC_CACHE_TTL: Duration = Duration::from_secs(300);
/// Most remembered Basic credentials; the memory is cleared when full.
const BASIC_CACHE_ENTRIES: usize = 10_000;
/// Password verifications at once: each takes ~19 MiB and tens of ms of a
/// core, so a flood of guesses queues rather than starving queries.
const CONCURRENT_VERIFICATIONS: usize = 2;

/// `[auth]` in the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub users: Vec<UserEntry>,
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    pub token_ttl_secs: Option<u64>,
    /// Environment variable holding the secret that signs bearer tokens;
    /// servers behind one address need the same secret.
    pub token_secret_env: Option<String>,
}

/// `[[auth.users]]`: a person or tool that logs in with a password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    pub role: Role,
    /// Argon2id hash in PHC form, as `lakehouse user add` prints it.
    pub password_hash: String,
}

/// `[[auth.tokens]]`: a static API token for a program.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the token, as `lakehouse token add` prints it.
    pub sha256: String,
}

impl AuthConfig {
    /// Whether any user or token is configured (authentication is on).
    pub fn enabled(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }
}

/// Checks the credentials of every call.
#[derive(Debug)]
pub struct Authenticator {
    /// Every user and token name, with its role.
    roles: HashMap<String, Role>,
    password_hashes: HashMap<String, String>,
    /// API token digest -> name.
    api_tokens: HashMap<String, String>,
    signer: TokenSigner,
    token_ttl: Duration,
    /// Verified with when a name is unknown, so that the answer takes as
    /// long as for a known name with a wrong password.
    decoy_hash: String,
    cache_salt: [u8; 16],
    verified_basic: Mutex<HashMap<Vec<u8>, (String, Instant)>>,
    verifying: Semaphore,
    /// Failed password logins by client address and user name.
    throttle: Throttle,
}

impl Authenticator {
    /// `None` when no user or token is configured.
    pub fn new(config: &AuthConfig) -> Result<Option<Self>, String> {
        if !config.enabled() {
            return Ok(None);
        }
        let mut roles = HashMap::new();
        let mut password_hashes = HashMap::new();
        let mut api_tokens = HashMap::new();
        for user in &config.users {
            check_principal_name(&user.name)?;
            password::check_hash(&user.password_hash)
                .map_err(|e| format!("user {:?}: password_hash is {e}", user.name))?;
            if roles.insert(user.name.clone(), user.role).is_some() {
                return Err(format!("user {:?} is listed twice", user.name));
            }
            password_hashes.insert(user.name.clone(), user.password_hash.clone());
        }
        for token in &config.tokens {
            check_principal_name(&token.name)?;
            let digest = token.sha256.to_ascii_lowercase();
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "token {:?}: sha256 must be 64 hex digits, as `lakehouse token add` prints it",
                    token.name
                ));
            }
            if roles.insert(token.name.clone(), token.role).is_some() {
                return Err(format!(
                    "{:?} is listed twice among users and tokens",
                    token.name
                ));
            }
            api_tokens.insert(digest, token.name.clone());
        }
        let secret_env = config
            .token_secret_env
            .as_deref()
            .unwrap_or(DEFAULT_TOKEN_SECRET_ENV);
        let secret = match std::env::var(secret_env) {
            Ok(secret) if secret.len() >= 32 => secret.into_bytes(),
            Ok(_) => {
                return Err(format!(
                    "{secret_env} must hold at least 32 characters to sign tokens"
                ));
            }
            Err(_) => {
                info!(
                    variable = secret_env,
                    "no token secret set: bearer tokens are signed with a random secret and end with this process"
                );
                password::random_bytes::<32>().to_vec()
            }
        };
        let ttl = config.token_ttl_secs.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
        if ttl == 0 {
            return Err("auth.token_ttl_secs must be greater than 0".into());
        }
        info!(
            users = config.users.len(),
            tokens = config.tokens.len(),
            "authentication on"
        );
        Ok(Some(Self {
            roles,
            password_hashes,
            api_tokens,
            signer: TokenSigner::new(&secret),
            token_ttl: Duration::from_secs(ttl),
            decoy_hash: hash_password(&random_secret()),
            cache_salt: password::random_bytes(),
            verified_basic: Mutex::new(HashMap::new()),
            verifying: Semaphore::new(CONCURRENT_VERIFICATIONS),
            throttle: Throttle::default(),
        }))
    }

    /// The identity a call's `authorization` header (its raw value, `None`
    /// when absent) proves.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Identity> {
        self.authenticate_from(None, authorization).await
    }

    /// [`Self::authenticate`] for a call from `client`: failed password
    /// logins from it, or for the same user name, are throttled.
    pub async fn authenticate_from(
        &self,
        client: Option<IpAddr>,
        authorization: Option<&[u8]>,
    ) -> Result<Identity> {
        let header = authorization
            .ok_or_else(|| {
                Error::Unauthenticated(
                    "authentication required: log in with Basic credentials (Flight Handshake) \
                     or send a bearer token"
                        .into(),
                )
            })
            .and_then(|value| std::str::from_utf8(value).map_err(|_| invalid()))?;
        let (scheme, value) = header.split_once(' ').ok_or_else(invalid)?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = BASIC_BASE64.decode(value).map_err(|_| invalid())?;
            let text = String::from_utf8(decoded).map_err(|_| invalid())?;
            let (name, password) = text.split_once(':').ok_or_else(invalid)?;
            self.login(client, name, password).await
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.check_bearer(value)
        } else {
            Err(invalid())
        }
    }

    /// The identity of `name` proving itself with `secret` from `client`,
    /// for protocols that carry a user and a password only (Postgres): the
    /// user's password (throttled after failures, as any login), or a
    /// bearer or API token issued to that same name.
    pub async fn login_with_secret(
        &self,
        client: Option<IpAddr>,
        name: &str,
        secret: &str,
    ) -> Result<Identity> {
        if let Ok(identity) = self.check_bearer(secret)
            && identity.name == name
        {
            return Ok(identity);
        }
        self.login(client, name, secret).await
    }

    /// A signed bearer token for `identity`, valid for the configured time.
    pub fn issue_token(&self, identity: &Identity) -> String {
        let exp = now_secs() + self.token_ttl.as_secs();
        self.signer.sign(&Claims {
            sub: identity.name.clone(),
            exp,
        })
    }

    fn identity(&self, name: &str) -> Option<Identity> {
        self.roles.get(name).map(|role| Identity {
            name: name.to_string(),
            role: *role,
        })
    }

    fn check_bearer(&self, token: &str) -> Result<Identity> {
        if TokenSigner::is_signed_token(token) {
            return match self.signer.verify(token, now_secs()) {
                Ok(claims) => self.identity(&claims.sub).ok_or_else(invalid),
                Err(TokenError::Expired) => Err(Error::Unauthenticated(
                    "the bearer token has expired: log in again".into(),
                )),
                Err(TokenError::Invalid) => Err(invalid()),
            };
        }
        self.api_tokens
            .get(&token_digest(token))
            .and_then(|name| self.identity(name))
            .ok_or_else(invalid)
    }

    /// Checks a password unless the client or the name must wait after
    /// failed logins; records the outcome.
    async fn login(&self, client: Option<IpAddr>, name: &str, password: &str) -> Result<Identity> {
        let key = self.cache_key(name, password);
        if let Some((cached, at)) = self.verified_basic.lock().get(&key)
            && at.elapsed() < BASIC_CACHE_TTL
            && cached == name
        {
            return self.identity(name).ok_or_else(invalid);
        }
        let mut subjects = vec![Subject::User(name.to_string())];
        subjects.extend(client.map(Subject::Client));
        if let Some((who, wait)) = self.throttle.waiting(&subjects) {
            return Err(Error::LoginsThrottled {
                who: who.to_string(),
                retry_after_secs: wait.as_secs_f64().ceil() as u64,
            });
        }
        let checked = self.check_password(key, name, password, &subjects).await;
        match &checked {
            Ok(_) => self.throttle.succeeded(&subjects),
            Err(Error::Unauthenticated(_)) => {
                self.throttle.failed(&subjects);
                info!(user = name, client = ?client, "failed login");
            }
            Err(_) => {}
        }
        checked
    }

    async fn check_password(
        &self,
        key: Vec<u8>,
        name: &str,
        password: &str,
        subjects: &[Subject],
    ) -> Result<Identity> {
        let known = self.password_hashes.get(name);
        let hash = known.unwrap_or(&self.decoy_hash).clone();
        let password = password.to_string();
        let _permit = self.verifying.acquire().await.map_err(|_| invalid())?;
        // Attempts that queued together: those behind the failures that
        // started a wait are refused without hashing.
        if let Some((who, wait)) = self.throttle.waiting(subjects) {
            return Err(Error::LoginsThrottled {
                who: who.to_string(),
                retry_after_secs: wait.as_secs_f64().ceil() as u64,
            });
        }
        let matches =
            tokio::task::spawn_blocking(move || password::verify_password(&hash, &password))
                .await
                .map_err(|e| Error::Internal(format!("password verification panicked: {e}")))?;
        if !(matches && known.is_some()) {
            return Err(invalid());
        }
        let mut cache = self.verified_basic.lock();
        if cache.len() >= BASIC_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (name.to_string(), Instant::now()));
        self.identity(name).ok_or_else(invalid)
    }

    fn cache_key(&self, name: &str, password: &str) -> Vec<u8> {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(&self.cache_salt);
        context.update(name.as_bytes());
        context.update(&[0]);
        context.update(password.as_bytes());
        context.finish().as_ref().to_vec()
    }
}

/// Base64 of Basic credentials, with or without `=` padding: ADBC's Go
/// driver sends it unpadded.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The one refusal for credentials that do not check out.
fn invalid() -> Error {
    Error::Unauthenticated("invalid credentials".into())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// User and token names: what Basic credentials can carry.
pub fn check_principal_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!(
            "user or token name {name:?} must be 1 to 128 characters"
        ));
    }
    if name
        .chars()
        .any(|c| c == ':' || c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "user or token name {name:?} may not contain ':', spaces or control characters"
        ));
    }
    Ok(())
}

/// The configuration lines that add a user with `password`.
pub fn user_entry(name: &str, role: Role, password: &str) -> String {
    format!(
        "[[auth.users]]\nname = {name:?}\nrole = \"{role}\"\npassword_hash = \"{}\"\n",
        hash_password(password)
    )
}

/// The configuration lines that add an API token.
pub fn token_entry(name: &str, role: Role, token: &str) -> String {
    format!(
        "[[auth.tokens]]\nname = {name:?}\nrole = \"{role}\"\nsha256 = \"{}\"\n",
        token_digest(token)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    fn config() -> AuthConfig {
        let file = format!(
            "{}{}",
            user_entry("alice", Role::Writer, "s3cret!"),
            token_entry("etl", Role::Reader, "tok-123")
        );
        #[derive(Deserialize)]
        struct File {
            auth: AuthConfig,
        }
        toml::from_str::<File>(&file).unwrap().auth
    }

    fn headers(value: &str) -> Option<Vec<u8>> {
        Some(value.as_bytes().to_vec())
    }

    fn basic(user: &str, password: &str) -> Option<Vec<u8>> {
        headers(&format!(
            "Basic {}",
            STANDARD.encode(format!("{user}:{password}"))
        ))
    }

    #[tokio::test]
    async fn printed_entries_parse_and_authenticate() {
        let auth = Authenticator::new(&config()).unwrap().unwrap();
        let alice = auth
            .authenticate(basic("alice", "s3cret!").as_deref())
            .await
            .unwrap();
        assert_eq!(alice.role, Role::Writer);
        // Remembered: the second check takes the cached path.
        assert_eq!(
            auth.authenticate(basic("alice", "s3cret!").as_deref())
                .await
                .unwrap(),
            alice
        );
        // "alice:s3cret!" needs padding; ADBC's Go driver leaves it off.
        let unpadded = format!("Basic {}", STANDARD_NO_PAD.encode("alice:s3cret!"));
        assert!(!unpadded.ends_with('='));
        assert_eq!(
            auth.authenticate(headers(&unpadded).as_deref())
                .await
                .unwrap(),
            alice
        );
        let etl = auth
            .authenticate(headers("Bearer tok-123").as_deref())
            .await
            .unwrap();
        assert_eq!(etl.name, "etl");
        let token = auth.issue_token(&alice);
        let again = auth
            .authenticate(headers(&format!("bearer {token}")).as_deref())
            .await
            .unwrap();
        assert_eq!(again, alice);
    }

    #[tokio::test]
    async fn a_password_or_a_token_of_the_same_name_logs_in() {
        let auth = Authenticator::new(&config()).unwrap().unwrap();
        let alice = auth.login_with_secret(None, "alice", "s3cret!").await;
        assert_eq!(alice.unwrap().role, Role::Writer);
        let etl = auth.login_with_secret(None, "etl", "tok-123").await;
        assert_eq!(etl.unwrap().name, "etl");
        let signed = auth.issue_token(&Identity {
            name: "alice".into(),
            role: Role::Writer,
        });
        assert!(auth.login_with_secret(None, "alice", &signed).await.is_ok());
        // A token proves its own name only.
        assert!(
            auth.login_with_secret(None, "alice", "tok-123")
                .await
                .is_err()
        );
        assert!(auth.login_with_secret(None, "etl", &signed).await.is_err());
        assert!(
            auth.login_with_secret(None, "alice", "wrong")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn wrong_or_missing_credentials_are_refused_alike() {
        let auth = Authenticator::new(&config()).unwrap().unwrap();
        let missing = auth.authenticate(None).await.unwrap_err();
        assert!(matches!(missing, Error::Unauthenticated(_)));
        let wrong_password = auth
            .authenticate(basic("alice", "guess").as_deref())
            .await
            .unwrap_err();
        let no_such_user = auth
            .authenticate(basic("mallory", "s3cret!").as_deref())
            .await
            .unwrap_err();
        assert_eq!(wrong_password.to_string(), no_such_user.to_string());
        for value in [
            "Bearer tok-124",
            "Bearer lh1.x.y",
            "Digest abc",
            "Basic !!!",
            "Basic",
        ] {
            let refused = auth
                .authenticate(headers(value).as_deref())
                .await
                .unwrap_err();
            assert_eq!(refused.to_string(), wrong_password.to_string(), "{value}");
        }
    }

    #[test]
    fn bad_entries_are_named() {
        let mut bad = config();
        bad.users[0].password_hash = "plain".into();
        assert!(Authenticator::new(&bad).unwrap_err().contains("alice"));
        let mut twice = config();
        twice.tokens[0].name = "alice".into();
        assert!(Authenticator::new(&twice).unwrap_err().contains("twice"));
        assert!(check_principal_name("a:b").is_err());
        assert!(
            Authenticator::new(&AuthConfig::default())
                .unwrap()
                .is_none()
        );
    }
}
