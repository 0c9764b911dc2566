//! DoAction verbs: the one trait every action implements, the server's own
//! and the extensions' alike, and the reading of their JSON bodies.
//!
//! The server keeps every action in one registry: `ListActions` lists it,
//! the protocol reference (docs/flight-sql.md) is generated from it, and
//! DoAction runs from it after checking the caller's role against
//! [`Action::access`].

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ExtensionError, Result};

/// What an action does to the server's data, which decides the role a
/// caller needs: readers may run `Read` actions, writers also `Write`,
/// admins everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads data or computes from the request alone.
    Read,
    /// Adds data or creates tables.
    Write,
    /// Removes data or changes how it is indexed.
    Admin,
}

impl Access {
    /// The role name that may run it.
    pub fn role(self) -> &'static str {
        match self {
            Access::Read => "reader",
            Access::Write => "writer",
            Access::Admin => "admin",
        }
    }
}

/// A DoAction verb: bytes (usually JSON) in, bytes out.
#[async_trait]
pub trait Action: Send + Sync {
    /// The action type clients send; unique across the server.
    fn name(&self) -> &str;

    /// What it does, in a sentence or two.
    fn description(&self) -> &str;

    /// The body it takes, e.g. `{"table": "[schema.]name"}`, or `empty or {}`.
    fn body(&self) -> &str;

    /// What it answers, e.g. `JSON {table, version}`.
    fn result(&self) -> &str;

    /// What a caller's role must allow for the server to run it.
    fn access(&self) -> Access;

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>>;

    /// Whether running it is work like a query's (embedding texts,
    /// building an index): it then waits for one of the server's query
    /// slots first, sharing `max_running_queries` with queries.
    fn takes_query_slot(&self) -> bool {
        false
    }

    /// The whole description `ListActions` gives: what it does, its body
    /// and its result.
    fn summary(&self) -> String {
        format!(
            "{} Body: {}. Result: {}.",
            self.description(),
            self.body(),
            self.result()
        )
    }
}

/// Reads an action's JSON body as `T` (whose `deny_unknown_fields` refuses
/// a typo); an error names the action and what is wrong.
pub fn parse_body<T: DeserializeOwned>(action: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        ExtensionError::InvalidArgument(format!("the body of action {action:?} is not valid: {e}"))
    })
}

/// Refuses a body other than nothing or `{}`.
pub fn expect_empty_body(action: &str, body: &[u8]) -> Result<()> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    if !body.iter().all(u8::is_ascii_whitespace) {
        let Empty {} = parse_body(action, body)?;
    }
    Ok(())
}

/// An action's JSON answer.
pub fn to_json(value: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ExtensionError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        table: String,
    }

    #[test]
    fn bodies_are_read_strictly_and_errors_name_the_action() {
        let body: Body = parse_body("vacuum", br#"{"table": "t"}"#).unwrap();
        assert_eq!(body.table, "t");
        let refused = parse_body::<Body>("vacuum", br#"{"tabel": "t"}"#).unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("the body of action \"vacuum\" is not valid: unknown field `tabel`"),
            "{refused}"
        );
        expect_empty_body("refresh_catalog", b" \n").unwrap();
        expect_empty_body("refresh_catalog", b"{}").unwrap();
        let refused = expect_empty_body("refresh_catalog", br#"{"x": 1}"#).unwrap_err();
        assert!(
            matches!(refused, ExtensionError::InvalidArgument(_)),
            "{refused}"
        );
    }
}
