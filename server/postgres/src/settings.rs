//! A connection's run-time settings, as `SET` and `SHOW` (and the startup
//! packet) read and change them: the ones that change what statements do
//! (`search_path`, `TimeZone`, `statement_timeout`), the ones that change
//! how values are written (`DateStyle`, `extra_float_digits`, ...), and
//! the ones clients set out of habit, kept so that `SHOW` answers them.
//! An unknown name is refused as Postgres refuses it.

use std::collections::BTreeMap;
use std::time::Duration;

use lakehouse_core::catalog::DEFAULT_SCHEMA;
use lakehouse_engine::query::session::{SessionSettings, check_time_zone};

/// What a `SET` asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Unqualified names resolve in this schema (checked to exist by the
    /// caller, which knows the catalog).
    Schema(String),
    TimeZone(String),
    /// `None`: the server's own limit.
    StatementTimeout(Option<Duration>),
    /// A setting kept for `SHOW` and value formatting.
    Kept,
}

/// Settings accepted and shown but that change nothing here, with their
/// default, lower-case: what Postgres clients set or read on connect.
const KEPT: [(&str, &str); 18] = [
    ("application_name", ""),
    ("bytea_output", "hex"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("intervalstyle", "postgres"),
    ("jit", "off"),
    ("lc_messages", "C"),
    ("lc_monetary", "C"),
    ("lc_numeric", "C"),
    ("lc_time", "C"),
    ("lock_timeout", "0"),
    ("row_security", "on"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
];

/// Read-only values clients ask for.
const FIXED: [(&str, &str); 7] = [
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("standard_conforming_strings", "on"),
    ("integer_datetimes", "on"),
    ("max_identifier_length", "128"),
    ("server_version_num", "160006"),
    ("is_superuser", "off"),
];

/// The Postgres version this server answers as: 16, whose protocol and
/// catalog `pg_catalog` follows.
pub const SERVER_VERSION: &str = "16.6";

/// One connection's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, String>,
    pub schema: Option<String>,
    pub time_zone: Option<String>,
    pub statement_timeout: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        let mut values: BTreeMap<String, String> = KEPT
            .iter()
            .chain(FIXED.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        values.insert("search_path".into(), DEFAULT_SCHEMA.into());
        values.insert("timezone".into(), "UTC".into());
        values.insert("statement_timeout".into(), "0".into());
        values.insert("server_version".into(), SERVER_VERSION.into());
        Self {
            values,
            schema: None,
            time_zone: None,
            statement_timeout: None,
        }
    }
}

impl Settings {
    /// The settings a connection of `user` starts with.
    pub fn for_user(user: &str, superuser: bool) -> Self {
        let mut settings = Self::default();
        settings
            .values
            .insert("session_authorization".into(), user.to_string());
        settings.values.insert(
            "is_superuser".into(),
            if superuser { "on" } else { "off" }.into(),
        );
        settings
    }

    /// What the engine applies to this connection's statements.
    pub fn engine(&self) -> SessionSettings {
        SessionSettings {
            schema: self.schema.clone(),
            time_zone: self.time_zone.clone(),
        }
    }

    /// The value `SHOW name` answers, by its name in any case.
    pub fn show(&self, name: &str) -> Result<String, String> {
        self.values
            .get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| unrecognized(name))
    }

    /// Every setting and its value, by name.
    pub fn all(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Checks `SET name = value` and what it changes; [`Self::apply`]
    /// makes it so.
    pub fn check(&self, name: &str, value: &str) -> Result<Change, String> {
        let key = name.to_ascii_lowercase();
        match key.as_str() {
            "search_path" => first_schema(value).map(Change::Schema),
            "timezone" | "time zone" => {
                let zone = match value.to_ascii_lowercase().as_str() {
                    "local" | "default" => "UTC".to_string(),
                    _ => value.to_string(),
                };
                check_time_zone(&zone).map_err(|e| e.to_string())?;
                Ok(Change::TimeZone(zone))
            }
            "statement_timeout" => parse_duration(value).map(Change::StatementTimeout),
            "client_encoding" => match value.to_ascii_uppercase().replace('-', "").as_str() {
                "UTF8" | "UNICODE" => Ok(Change::Kept),
                _ => Err(format!(
                    "client_encoding {value:?} is not supported: this server speaks UTF8 only"
                )),
            },
            "standard_conforming_strings" => match value.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => Ok(Change::Kept),
                _ => Err("standard_conforming_strings is always on here".into()),
            },
            _ if FIXED.iter().any(|(k, _)| *k == key) => {
                Err(format!("parameter \"{name}\" cannot be changed"))
            }
            _ if KEPT.iter().any(|(k, _)| *k == key) => Ok(Change::Kept),
            _ => Err(unrecognized(name)),
        }
    }

    /// Applies a checked change; `value` is what `SHOW` answers next.
    pub fn apply(&mut self, name: &str, value: &str, change: Change) {
        let key = match name.to_ascii_lowercase().as_str() {
            "time zone" => "timezone".to_string(),
            other => other.to_string(),
        };
        let shown = match &change {
            Change::Schema(schema) => {
                self.schema = (schema != DEFAULT_SCHEMA).then(|| schema.clone());
                value.to_string()
            }
            Change::TimeZone(zone) => {
                self.time_zone = Some(zone.clone());
                zone.clone()
            }
            Change::StatementTimeout(limit) => {
                self.statement_timeout = *limit;
                limit.map_or_else(|| "0".to_string(), |d| format!("{}ms", d.as_millis()))
            }
            Change::Kept => value.to_string(),
        };
        self.values.insert(key, shown);
    }

    /// Values pgwire formats results with (`DateStyle`, ...), under the
    /// names it reads.
    pub fn format_metadata(&self) -> std::collections::HashMap<String, String> {
        [
            "datestyle",
            "intervalstyle",
            "bytea_output",
            "extra_float_digits",
        ]
        .iter()
        .filter_map(|k| self.values.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
    }

    /// The name a client sees a setting reported under in
    /// `ParameterStatus`, for those Postgres reports when they change.
    pub fn reported_name(name: &str) -> Option<&'static str> {
        match name.to_ascii_lowercase().as_str() {
            "timezone" | "time zone" => Some("TimeZone"),
            "datestyle" => Some("DateStyle"),
            "intervalstyle" => Some("IntervalStyle"),
            "application_name" => Some("application_name"),
            "client_encoding" => Some("client_encoding"),
            _ => None,
        }
    }
}

fn unrecognized(name: &str) -> String {
    format!("unrecognized configuration parameter \"{name}\"")
}

/// The schema of a `search_path`: the first entry other than `"$user"`
/// and the system schemas (which are always searched).
fn first_schema(value: &str) -> Result<String, String> {
    value
        .split(',')
        .map(|part| part.trim().trim_matches('"').trim_matches('\''))
        .find(|part| {
            !part.is_empty()
                && *part != "$user"
                && !lakehouse_core::catalog::SYSTEM_SCHEMAS.contains(part)
        })
        .map(str::to_string)
        .ok_or_else(|| format!("search_path {value:?} names no schema"))
}

/// A Postgres duration setting: a number of milliseconds, or a number
/// with a unit (`ms`, `s`, `min`, `h`); 0 for none.
fn parse_duration(value: &str) -> Result<Option<Duration>, String> {
    let text = value.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid value for statement_timeout: {value:?}"))?;
    let millis = match unit.trim() {
        "" | "ms" => number,
        "s" => number * 1e3,
        "min" => number * 60e3,
        "h" => number * 3600e3,
        other => {
            return Err(format!(
                "invalid unit {other:?} for statement_timeout: use ms, s, min or h"
            ));
        }
    };
    Ok((millis >= 1.0).then(|| Duration::from_millis(millis as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_show_round_trip() {
        let mut settings = Settings::default();
        let change = settings.check("search_path", "\"$user\", sales").unwrap();
        assert_eq!(change, Change::Schema("sales".into()));
        settings.apply("search_path", "\"$user\", sales", change);
        assert_eq!(settings.engine().schema.as_deref(), Some("sales"));
        assert_eq!(settings.show("SEARCH_PATH").unwrap(), "\"$user\", sales");

        let change = settings.check("TimeZone", "Europe/Paris").unwrap();
        settings.apply("TimeZone", "Europe/Paris", change);
        assert_eq!(settings.show("timezone").unwrap(), "Europe/Paris");
        assert!(settings.check("TimeZone", "Mars/Olympus").is_err());
    }

    #[test]
    fn statement_timeouts_read_postgres_units() {
        assert_eq!(parse_duration("0"), Ok(None));
        assert_eq!(parse_duration("250"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(parse_duration("2s"), Ok(Some(Duration::from_secs(2))));
        assert_eq!(parse_duration("1min"), Ok(Some(Duration::from_secs(60))));
        assert!(parse_duration("2 fortnights").is_err());
    }

    #[test]
    fn unknown_and_fixed_settings_are_refused() {
        let settings = Settings::default();
        assert_eq!(
            settings.check("enable_warp", "on").unwrap_err(),
            "unrecognized configuration parameter \"enable_warp\""
        );
        assert!(settings.check("server_encoding", "LATIN1").is_err());
        assert!(settings.check("client_encoding", "LATIN1").is_err());
        assert_eq!(settings.check("client_encoding", "utf-8"), Ok(Change::Kept));
        assert_eq!(settings.check("application_name", "psql"), Ok(Change::Kept));
    }
}
