//! Client sessions: Flight's `SetSessionOptions`, `GetSessionOptions` and
//! `CloseSession` actions. A client sets options once for the statements
//! it sends later (the JDBC driver's `catalog` and `schema` properties, a
//! BI tool's time zone); the server keeps them under a session id it hands
//! out as the cookie `arrow_flight_session_id` (RFC 6265), which the client
//! sends back with every call (JDBC does by default, ADBC with
//! `adbc.flight.sql.rpc.with_cookie_middleware`).
//!
//! Options: `catalog` (this server has one, `lakehouse`), `schema` (where
//! unqualified names resolve; it must exist), `time_zone` (IANA name or
//! offset, for `now()` and casts to zoned timestamps) and `query_timeout`
//! (seconds, at most the server's). A session belongs to the user who made
//! it; another user's cookie is ignored. Sessions idle for a day are
//! forgotten, and at most [`MAX_SESSIONS`] are kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tonic::Status;
use tonic::metadata::MetadataMap;

use lakehouse_core::auth::Identity;
use lakehouse_core::catalog::{CATALOG_NAME, Catalog, DEFAULT_SCHEMA};
use lakehouse_engine::query::session::{SessionSettings, check_time_zone};

/// The cookie that carries the session id.
pub const COOKIE: &str = "arrow_flight_session_id";
/// Sessions kept at most; the least recently used goes first.
pub const MAX_SESSIONS: usize = 10_000;
/// A session unused this long is forgotten.
const IDLE: Duration = Duration::from_secs(24 * 3600);

/// A session option's value (Flight.proto `SessionOptionValue`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionOptionValue {
    #[prost(oneof = "OptionValue", tags = "1, 2, 3, 4, 5")]
    pub option_value: Option<OptionValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum OptionValue {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(sfixed64, tag = "3")]
    Int64(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    StringList(StringList),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StringList {
    #[prost(string, repeated, tag = "1")]
    pub values: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsRequest {
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// `SetSessionOptionsResult.ErrorValue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum OptionError {
    InvalidName = 1,
    InvalidValue = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsError {
    #[prost(int32, tag = "1")]
    pub value: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsResult {
    #[prost(map = "string, message", tag = "1")]
    pub errors: HashMap<String, SetSessionOptionsError>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetSessionOptionsResult {
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// `CloseSessionResult.Status.CLOSED`.
pub const CLOSED: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub struct CloseSessionResult {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// What a session changes about a call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InSession {
    pub settings: SessionSettings,
    pub query_timeout: Option<Duration>,
}

#[derive(Debug)]
struct Session {
    user: String,
    options: InSession,
    used: Instant,
}

/// The sessions of every client.
#[derive(Clone)]
pub struct Sessions {
    catalog: Arc<Catalog>,
    /// The server's query timeout: a session may only shorten it.
    max_timeout: Duration,
    by_id: Arc<Mutex<HashMap<String, Session>>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("sessions", &self.by_id.lock().len())
            .finish()
    }
}

impl Sessions {
    pub fn new(catalog: Arc<Catalog>, max_timeout: Duration) -> Self {
        Self {
            catalog,
            max_timeout,
            by_id: Arc::default(),
        }
    }

    /// The options of the caller's session, when the call carries one.
    pub fn of(&self, metadata: &MetadataMap, caller: &Identity) -> InSession {
        let Some(id) = session_id(metadata) else {
            return InSession::default();
        };
        let mut sessions = self.by_id.lock();
        match sessions.get_mut(&id) {
            Some(session) if session.user == caller.name => {
                session.used = Instant::now();
                session.options.clone()
            }
            _ => InSession::default(),
        }
    }

    /// Sets options in the caller's session, making one when the call has
    /// none; the errors per option, and the new session's id (for a
    /// `Set-Cookie`) when one was made.
    pub fn set(
        &self,
        metadata: &MetadataMap,
        caller: &Identity,
        request: SetSessionOptionsRequest,
    ) -> (SetSessionOptionsResult, Option<String>) {
        let mut sessions = self.by_id.lock();
        forget_idle(&mut sessions);
        let existing = session_id(metadata)
            .filter(|id| sessions.get(id).is_some_and(|s| s.user == caller.name));
        let (id, made) = match existing {
            Some(id) => (id, false),
            None => {
                if sessions.len() >= MAX_SESSIONS {
                    forget_least_recent(&mut sessions);
                }
                let id = new_id();
                sessions.insert(
                    id.clone(),
                    Session {
                        user: caller.name.clone(),
                        options: InSession::default(),
                        used: Instant::now(),
                    },
                );
                (id, true)
            }
        };
        let session = sessions.get_mut(&id).expect("inserted or found above");
        session.used = Instant::now();
        let mut errors = HashMap::new();
        for (name, value) in request.session_options {
            if let Err(error) = self.apply(&mut session.options, &name, value.option_value) {
                tracing::info!(user = %caller.name, option = %name, ?error, "session option refused");
                errors.insert(
                    name,
                    SetSessionOptionsError {
                        value: error as i32,
                    },
                );
            }
        }
        (SetSessionOptionsResult { errors }, made.then_some(id))
    }

    fn apply(
        &self,
        options: &mut InSession,
        name: &str,
        value: Option<OptionValue>,
    ) -> Result<(), OptionError> {
        let text = |value: &Option<OptionValue>| match value {
            Some(OptionValue::String(text)) => Ok(Some(text.clone())),
            None => Ok(None),
            _ => Err(OptionError::InvalidValue),
        };
        match name.to_ascii_lowercase().as_str() {
            "catalog" => match text(&value)? {
                Some(catalog) if catalog != CATALOG_NAME => Err(OptionError::InvalidValue),
                _ => Ok(()),
            },
            "schema" => {
                let schema = text(&value)?;
                if let Some(schema) = &schema
                    && !self.catalog.schema_exists(schema)
                {
                    return Err(OptionError::InvalidValue);
                }
                options.settings.schema = schema;
                Ok(())
            }
            "time_zone" | "timezone" => {
                let time_zone = text(&value)?;
                if let Some(time_zone) = &time_zone {
                    check_time_zone(time_zone).map_err(|_| OptionError::InvalidValue)?;
                }
                options.settings.time_zone = time_zone;
                Ok(())
            }
            "query_timeout" => {
                let seconds = match value {
                    Some(OptionValue::Int64(seconds)) => Some(seconds as f64),
                    Some(OptionValue::Double(seconds)) => Some(seconds),
                    Some(OptionValue::String(text)) => {
                        Some(text.trim().parse().map_err(|_| OptionError::InvalidValue)?)
                    }
                    None => None,
                    _ => return Err(OptionError::InvalidValue),
                };
                options.query_timeout = match seconds {
                    None => None,
                    Some(s) if s > 0.0 && s <= self.max_timeout.as_secs_f64() => {
                        Some(Duration::from_secs_f64(s))
                    }
                    Some(_) => return Err(OptionError::InvalidValue),
                };
                Ok(())
            }
            _ => Err(OptionError::InvalidName),
        }
    }

    /// The caller's session's options, with the server's defaults for
    /// those it did not set; `NotFound` without a session.
    pub fn get(
        &self,
        metadata: &MetadataMap,
        caller: &Identity,
    ) -> Result<GetSessionOptionsResult, Status> {
        let options = self.owned(metadata, caller, |_, session| session.options.clone())?;
        let text = |text: &str| SessionOptionValue {
            option_value: Some(OptionValue::String(text.to_string())),
        };
        let timeout = options.query_timeout.unwrap_or(self.max_timeout);
        let session_options = HashMap::from([
            ("catalog".to_string(), text(CATALOG_NAME)),
            (
                "schema".to_string(),
                text(options.settings.schema.as_deref().unwrap_or(DEFAULT_SCHEMA)),
            ),
            (
                "time_zone".to_string(),
                text(options.settings.time_zone.as_deref().unwrap_or("UTC")),
            ),
            (
                "query_timeout".to_string(),
                SessionOptionValue {
                    option_value: Some(OptionValue::Double(timeout.as_secs_f64())),
                },
            ),
        ]);
        Ok(GetSessionOptionsResult { session_options })
    }

    /// Forgets the caller's session; `NotFound` without one.
    pub fn close(&self, metadata: &MetadataMap, caller: &Identity) -> Result<(), Status> {
        let id = self.owned(metadata, caller, |id, _| id.to_string())?;
        self.by_id.lock().remove(&id);
        Ok(())
    }

    fn owned<T>(
        &self,
        metadata: &MetadataMap,
        caller: &Identity,
        read: impl FnOnce(&str, &Session) -> T,
    ) -> Result<T, Status> {
        let missing = || {
            Status::not_found(format!(
                "no session: the call carries no {COOKIE} cookie of a session of {} (SetSessionOptions makes one)",
                caller.name
            ))
        };
        let id = session_id(metadata).ok_or_else(missing)?;
        let sessions = self.by_id.lock();
        let session = sessions
            .get(&id)
            .filter(|s| s.user == caller.name)
            .ok_or_else(missing)?;
        Ok(read(&id, session))
    }
}

/// The `Set-Cookie` value that hands a client its session.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; HttpOnly")
}

/// The `Set-Cookie` value that tells a client its session is gone.
pub fn expire_cookie() -> String {
    format!("{COOKIE}=; Path=/; Max-Age=0")
}

/// The session id in the call's `Cookie` headers, if any.
fn session_id(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get_all("cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then(|| value.to_string())
        })
}

/// 24 random bytes, base64url: unguessable, and safe in a cookie.
fn new_id() -> String {
    lakehouse_core::auth::random_secret()
}

fn forget_idle(sessions: &mut HashMap<String, Session>) {
    sessions.retain(|_, session| session.used.elapsed() < IDLE);
}

fn forget_least_recent(sessions: &mut HashMap<String, Session>) {
    if let Some(oldest) = sessions
        .iter()
        .min_by_key(|(_, session)| session.used)
        .map(|(id, _)| id.clone())
    {
        sessions.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("cookie", value.parse().unwrap());
        metadata
    }

    #[test]
    fn the_session_id_is_read_from_any_cookie_header() {
        assert_eq!(session_id(&MetadataMap::new()), None);
        assert_eq!(
            session_id(&with_cookie("theme=dark; arrow_flight_session_id=abc-123")).as_deref(),
            Some("abc-123")
        );
        assert_eq!(session_id(&with_cookie("arrow_flight_session_id=")), None);
        assert_eq!(session_id(&with_cookie("arrow_flight_session=x")), None);
        assert!(set_cookie("abc").starts_with("arrow_flight_session_id=abc;"));
        assert!(expire_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn session_ids_are_unguessable_and_cookie_safe() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(a.len() >= 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
