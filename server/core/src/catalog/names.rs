//! Names of schemas and tables, validated once at the edge.
//!
//! Names become parts of object-store paths, so a name that passes here can
//! never reach outside its own prefix: no separators, no dots, no control
//! characters, bounded length.

use std::fmt;

use crate::error::{Error, Result};

/// The one catalog this server serves.
pub const CATALOG_NAME: &str = "lakehouse";
/// The schema used when a request names none.
pub const DEFAULT_SCHEMA: &str = "public";
/// Schemas the engine answers itself (DataFusion's `information_schema`,
/// the Postgres port's `pg_catalog`): never catalog schemas.
pub const SYSTEM_SCHEMAS: [&str; 2] = ["information_schema", "pg_catalog"];
/// Longest schema or table name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// A validated `schema.table` pair.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TableRef {
    pub schema: String,
    pub table: String,
}

impl TableRef {
    /// Validates both parts; `schema` defaults to [`DEFAULT_SCHEMA`].
    pub fn new(schema: Option<&str>, table: &str) -> Result<Self> {
        let schema = match schema {
            Some(s) if !s.is_empty() => s,
            _ => DEFAULT_SCHEMA,
        };
        validate_name("schema", schema)?;
        validate_name("table", table)?;
        Ok(Self {
            schema: schema.to_string(),
            table: table.to_string(),
        })
    }
}

impl TableRef {
    /// Parses `table` or `schema.table`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.split_once('.') {
            Some((schema, table)) => Self::new(Some(schema), table),
            None => Self::new(None, text),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// Splits a time-travel name `table@vN` into the table name and version.
/// Names without `@` have no version.
pub fn split_version(name: &str) -> Result<(&str, Option<u64>)> {
    let Some((table, suffix)) = name.rsplit_once('@') else {
        return Ok((name, None));
    };
    let version = suffix
        .strip_prefix('v')
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{name:?} is not a valid time-travel name: write the table, '@v' and a version number, as in \"{table}@v3\""
            ))
        })?;
    Ok((table, Some(version)))
}

/// Checks a schema or table name: a letter or `_` first, then letters,
/// digits, `_` or `-`, at most [`MAX_NAME_LEN`] bytes.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "{kind} name {name:?} is longer than {MAX_NAME_LEN} characters"
        )));
    }
    if !first_ok || !rest_ok {
        return Err(Error::invalid(format!(
            "{kind} name {name:?} is not valid: use a letter or '_' first, then letters, digits, '_' or '-'"
        )));
    }
    Ok(())
}

/// Longest column name accepted.
pub const MAX_COLUMN_NAME_LEN: usize = 256;

/// Checks the column names of data written to `table`: not empty, at most
/// [`MAX_COLUMN_NAME_LEN`] bytes, no control characters. Column names never
/// reach store paths, so any other character (spaces, quotes, dots,
/// non-ASCII letters) is allowed.
pub fn validate_column_names(table: &TableRef, schema: &arrow::datatypes::Schema) -> Result<()> {
    for field in schema.fields() {
        let name = field.name();
        let problem = if name.is_empty() {
            Some("is empty".to_string())
        } else if name.len() > MAX_COLUMN_NAME_LEN {
            Some(format!("is longer than {MAX_COLUMN_NAME_LEN} bytes"))
        } else if name.chars().any(char::is_control) {
            Some("contains a control character".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::invalid(format!(
                "table {table}: column name {name:?} {problem}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_may_not_be_empty_huge_or_hold_control_characters() {
        use arrow::datatypes::{DataType, Field, Schema};
        let table = TableRef::new(None, "t").unwrap();
        let schema = |name: &str| Schema::new(vec![Field::new(name, DataType::Int64, true)]);
        for good in ["id", "first name", "naïve", "a.b", "\"quoted\""] {
            assert!(
                validate_column_names(&table, &schema(good)).is_ok(),
                "{good}"
            );
        }
        let long = "x".repeat(MAX_COLUMN_NAME_LEN + 1);
        for bad in ["", "a\0b", "line\nbreak", long.as_str()] {
            let refused = validate_column_names(&table, &schema(bad)).unwrap_err();
            assert!(
                refused
                    .to_string()
                    .starts_with("table public.t: column name"),
                "{refused}"
            );
        }
    }

    #[test]
    fn accepts_ordinary_names_and_defaults_the_schema() {
        let t = TableRef::new(None, "Trips_2024").unwrap();
        assert_eq!(t.to_string(), "public.Trips_2024");
        assert_eq!(TableRef::new(Some("sales"), "t-1").unwrap().schema, "sales");
    }

    #[test]
    fn parses_qualified_and_bare_names() {
        assert_eq!(
            TableRef::parse("sales.orders").unwrap().to_string(),
            "sales.orders"
        );
        assert_eq!(
            TableRef::parse("orders").unwrap().to_string(),
            "public.orders"
        );
        assert!(TableRef::parse("a.b.c").is_err());
    }

    #[test]
    fn time_travel_names_split_into_table_and_version() {
        assert_eq!(split_version("trips").unwrap(), ("trips", None));
        assert_eq!(split_version("trips@v12").unwrap(), ("trips", Some(12)));
        for bad in ["trips@12", "trips@v", "trips@v0", "trips@vx"] {
            assert!(
                split_version(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("time-travel"),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_names_that_could_escape_their_prefix() {
        for bad in [
            "", "../x", "a/b", "a.b", "1abc", "a b", "é", "a\0b", "..", "a\\b",
        ] {
            let err = TableRef::new(None, bad).unwrap_err().to_string();
            assert!(err.contains("table name"), "{bad:?}: {err}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert!(TableRef::new(None, &long).is_err());
        assert!(
            TableRef::new(Some("x/y"), "t")
                .unwrap_err()
                .to_string()
                .contains("schema name")
        );
    }
}
