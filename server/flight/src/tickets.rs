//! What travels inside tickets and commands, and the fixed schemas of the
//! key-lookup commands.
//!
//! A statement ticket carries the statement itself, SQL or a Substrait plan
//! (planned again on DoGet), so a ticket stays valid on any server of the
//! same storage and after a restart. An update that a client sent as a
//! query has already run; its ticket carries only the row count to report.

use std::sync::{Arc, LazyLock};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::sql::{TableDefinitionOptions, TableExistsOption, TableNotExistOption};
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use lakehouse_core::catalog::WriteMode;
use lakehouse_engine::error::{Error, Result};

/// The table types `GetTableTypes` lists.
pub const TABLE_TYPES: [&str; 2] = ["TABLE", "VIEW"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementTicket {
    Query {
        sql: String,
        /// The id this server keeps the plan under until the DoGet
        /// (see `planned`); any server can still answer by the SQL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<u64>,
    },
    /// A query sent as a Substrait plan, kept in base64.
    Substrait {
        substrait: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<u64>,
    },
    Affected {
        rows: u64,
    },
}

/// A statement as a client sent it: SQL text or a serialized Substrait plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    Sql(String),
    Substrait(Bytes),
}

/// How error messages name a statement: SQL quoted, a plan by its kind.
impl std::fmt::Display for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Statement::Sql(sql) => write!(f, "{sql:?}"),
            Statement::Substrait(_) => f.write_str("the Substrait plan"),
        }
    }
}

impl Statement {
    /// The ticket that runs this query, with the id of its kept plan.
    pub fn ticket(&self, plan: Option<u64>) -> StatementTicket {
        match self {
            Statement::Sql(sql) => StatementTicket::Query {
                sql: sql.clone(),
                plan,
            },
            Statement::Substrait(bytes) => StatementTicket::Substrait {
                substrait: BASE64_STANDARD.encode(bytes),
                plan,
            },
        }
    }

    /// What identifies the statement among kept plans.
    pub fn key(&self) -> String {
        match self {
            Statement::Sql(sql) => sql.clone(),
            Statement::Substrait(bytes) => format!("substrait:{}", BASE64_STANDARD.encode(bytes)),
        }
    }
}

impl StatementTicket {
    /// The query a ticket runs and the id of its kept plan.
    pub fn statement(&self) -> Result<(Statement, Option<u64>)> {
        match self {
            StatementTicket::Query { sql, plan } => Ok((Statement::Sql(sql.clone()), *plan)),
            StatementTicket::Substrait { substrait, plan } => {
                let bytes = BASE64_STANDARD.decode(substrait).map_err(|e| {
                    Error::invalid(format!("the ticket's Substrait plan is not base64: {e}"))
                })?;
                Ok((Statement::Substrait(bytes.into()), *plan))
            }
            StatementTicket::Affected { .. } => Err(Error::invalid(
                "this ticket reports an update's row count; it runs no statement",
            )),
        }
    }

    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("tickets always serialize"))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(format!("the ticket was not issued by this server: {e}")))
    }

    pub fn affected_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "rows_affected",
            DataType::Int64,
            false,
        )]))
    }

    pub fn affected_batch(rows: u64) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            Self::affected_schema(),
            vec![Arc::new(Int64Array::from(vec![rows as i64]))],
        )?)
    }
}

/// The write mode ADBC's ingest modes map to.
pub fn ingest_mode(options: Option<&TableDefinitionOptions>) -> Result<WriteMode> {
    let Some(options) = options else {
        return Ok(WriteMode::Create);
    };
    let if_not_exist = TableNotExistOption::try_from(options.if_not_exist).map_err(|_| {
        Error::invalid(format!(
            "unknown if_not_exist option {}",
            options.if_not_exist
        ))
    })?;
    let if_exists = TableExistsOption::try_from(options.if_exists)
        .map_err(|_| Error::invalid(format!("unknown if_exists option {}", options.if_exists)))?;
    let create = !matches!(if_not_exist, TableNotExistOption::Fail);
    match (create, if_exists) {
        (true, TableExistsOption::Fail | TableExistsOption::Unspecified) => Ok(WriteMode::Create),
        (true, TableExistsOption::Append) => Ok(WriteMode::CreateOrAppend),
        (true, TableExistsOption::Replace) => Ok(WriteMode::CreateOrOverwrite),
        (false, TableExistsOption::Append | TableExistsOption::Unspecified) => {
            Ok(WriteMode::Append)
        }
        (false, TableExistsOption::Replace) => Ok(WriteMode::Overwrite),
        (false, TableExistsOption::Fail) => Err(Error::invalid(
            "if_not_exist=fail with if_exists=fail can never succeed",
        )),
    }
}

/// `GetPrimaryKeys` result schema (Flight SQL spec).
pub static PRIMARY_KEY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
});

/// `GetExportedKeys`, `GetImportedKeys` and `GetCrossReference` result
/// schema (Flight SQL spec).
pub static KEY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
});

#[cfg(test)]
mod tests {
    use super::*;

    fn options(
        if_not_exist: TableNotExistOption,
        if_exists: TableExistsOption,
    ) -> TableDefinitionOptions {
        TableDefinitionOptions {
            if_not_exist: if_not_exist as i32,
            if_exists: if_exists as i32,
        }
    }

    #[test]
    fn adbc_modes_map_to_write_modes() {
        use TableExistsOption as E;
        use TableNotExistOption as N;
        assert_eq!(
            ingest_mode(Some(&options(N::Create, E::Fail))).unwrap(),
            WriteMode::Create
        );
        assert_eq!(
            ingest_mode(Some(&options(N::Fail, E::Append))).unwrap(),
            WriteMode::Append
        );
        assert_eq!(
            ingest_mode(Some(&options(N::Create, E::Replace))).unwrap(),
            WriteMode::CreateOrOverwrite
        );
        assert_eq!(
            ingest_mode(Some(&options(N::Create, E::Append))).unwrap(),
            WriteMode::CreateOrAppend
        );
        assert!(ingest_mode(Some(&options(N::Fail, E::Fail))).is_err());
    }

    #[test]
    fn tickets_round_trip_and_foreign_ones_are_refused() {
        let t = StatementTicket::Query {
            sql: "SELECT 1".into(),
            plan: Some(3),
        };
        assert_eq!(StatementTicket::decode(&t.encode()).unwrap(), t);
        // Tickets issued before plans were kept carry only the SQL.
        assert_eq!(
            StatementTicket::decode(br#"{"query":{"sql":"SELECT 1"}}"#).unwrap(),
            StatementTicket::Query {
                sql: "SELECT 1".into(),
                plan: None
            }
        );
        let substrait = Statement::Substrait(Bytes::from_static(b"\x12\x00plan"));
        let t = substrait.ticket(Some(4));
        let (statement, plan) = StatementTicket::decode(&t.encode())
            .unwrap()
            .statement()
            .unwrap();
        assert_eq!((statement, plan), (substrait, Some(4)));
        let err = StatementTicket::decode(b"\x00garbage")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not issued by this server"), "{err}");
    }
}
