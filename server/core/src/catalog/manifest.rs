//! The manifest: one immutable JSON object per table version.
//!
//! A manifest is a full snapshot of its version (schema and every data file),
//! so a reader needs exactly one object to see a table, and the put-if-absent
//! of that object is the commit point. The Arrow schema is kept as an IPC
//! schema message (base64), the format every Arrow implementation reads.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::convert::try_schema_from_flatbuffer_bytes;
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::names::TableRef;
use crate::error::{Error, Result};

/// Bumped when the manifest layout changes incompatibly.
pub const MANIFEST_FORMAT: u32 = 1;

/// How a table's data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// Parquet files listed in the manifest.
    Parquet,
    /// A Lance dataset (tables with vector columns); the manifest pins the
    /// dataset version it reads.
    Lance,
}

impl TableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Parquet => "parquet",
            TableKind::Lance => "lance",
        }
    }
}

/// The Lance dataset version a catalog version reads, and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LanceData {
    pub version: u64,
    pub rows: u64,
    /// Bytes of the dataset's data files.
    pub bytes: u64,
}

/// What a version did to its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Append,
    Overwrite,
    Drop,
    /// A vector table's indexes changed; its rows did not.
    Index,
    /// Small files were merged into larger ones; the rows did not change.
    Compact,
    /// Rows matching a predicate were removed (`DELETE`).
    Delete,
    /// Rows matching a predicate were changed in place (`UPDATE`).
    Update,
    /// Rows were updated, deleted and inserted from a source (`MERGE`).
    Merge,
    /// Columns were added, dropped, renamed or widened (`ALTER TABLE`);
    /// no data file changed.
    Alter,
    /// The table was renamed to this name (`ALTER TABLE ... RENAME TO`);
    /// it keeps the files and schema of the old name's last version.
    Rename,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Append => "append",
            Operation::Overwrite => "overwrite",
            Operation::Drop => "drop",
            Operation::Index => "index",
            Operation::Compact => "compact",
            Operation::Delete => "delete",
            Operation::Update => "update",
            Operation::Merge => "merge",
            Operation::Alter => "alter",
            Operation::Rename => "rename",
        }
    }
}

/// One immutable data file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Object path relative to the storage root.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// Per-column statistics, for columns that have them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnStats>,
}

/// Statistics of one column in one data file. Bounds are text that parses
/// back to the exact value in the column's type; absent when unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub name: String,
    pub null_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

/// One version of one table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub table: TableRef,
    pub version: u64,
    pub kind: TableKind,
    pub operation: Operation,
    pub committed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The user whose request made the version; none for the server's own
    /// work (compaction, index upkeep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub rows_added: u64,
    /// Rows a `delete` removed; rows an `update` (or `merge`) changed or
    /// removed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_removed: u64,
    #[serde(with = "ipc_schema")]
    pub schema: SchemaRef,
    pub files: Vec<DataFile>,
    /// Set on Lance tables' versions (which list no files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lance: Option<LanceData>,
    /// The name the table's files are stored under, when it is not the
    /// table's own: a renamed table keeps its old name's, and a table
    /// created under a name whose files a renamed table still holds gets
    /// a fresh one (see [`Manifest::storage`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<TableRef>,
}

impl Manifest {
    pub fn total_rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum::<u64>() + self.lance.map_or(0, |l| l.rows)
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum::<u64>() + self.lance.map_or(0, |l| l.bytes)
    }

    /// The name the table's data files (or Lance dataset) are stored
    /// under: [`crate::catalog::data_prefix`] of it.
    pub fn storage(&self) -> &TableRef {
        self.storage.as_ref().unwrap_or(&self.table)
    }

    pub fn is_dropped(&self) -> bool {
        self.operation == Operation::Drop
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest always serializes")
    }

    pub fn from_json(path: &str, bytes: &[u8]) -> Result<Self> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| Error::CorruptCatalog {
                path: path.to_string(),
                detail: e.to_string(),
            })?;
        if manifest.format > MANIFEST_FORMAT {
            return Err(Error::CorruptCatalog {
                path: path.to_string(),
                detail: format!(
                    "manifest format {} is newer than this server understands ({MANIFEST_FORMAT}); upgrade the server",
                    manifest.format
                ),
            });
        }
        Ok(manifest)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One line of a table's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionSummary {
    pub version: u64,
    pub committed_at: DateTime<Utc>,
    pub operation: Operation,
    pub rows_added: u64,
    /// Rows a `delete` removed or an `update` changed.
    pub rows_removed: u64,
    pub total_rows: u64,
    pub bytes: u64,
    pub idempotency_key: Option<String>,
    /// The manifest's `user`.
    pub committed_by: Option<String>,
}

impl From<&Manifest> for VersionSummary {
    fn from(m: &Manifest) -> Self {
        Self {
            version: m.version,
            committed_at: m.committed_at,
            operation: m.operation,
            rows_added: m.rows_added,
            rows_removed: m.rows_removed,
            total_rows: m.total_rows(),
            bytes: m.total_bytes(),
            idempotency_key: m.idempotency_key.clone(),
            committed_by: m.user.clone(),
        }
    }
}

/// Serde adapter storing an Arrow schema as a base64 IPC schema message.
pub(super) mod ipc_schema {
    use super::*;

    pub fn serialize<S: serde::Serializer>(schema: &SchemaRef, s: S) -> Result<S::Ok, S::Error> {
        let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
            schema,
            &mut DictionaryTracker::new(false),
            &IpcWriteOptions::default(),
        );
        s.serialize_str(&BASE64.encode(encoded.ipc_message))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SchemaRef, D::Error> {
        use serde::de::Error as _;
        let text = String::deserialize(d)?;
        let bytes = BASE64.decode(text).map_err(D::Error::custom)?;
        let schema: Schema = try_schema_from_flatbuffer_bytes(&bytes).map_err(D::Error::custom)?;
        Ok(Arc::new(schema))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, TimeUnit};

    #[test]
    fn round_trips_through_json_with_its_schema() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("price", DataType::Decimal128(12, 2), true),
        ]));
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            table: TableRef::new(None, "t").unwrap(),
            version: 3,
            kind: TableKind::Parquet,
            operation: Operation::Append,
            committed_at: Utc::now(),
            idempotency_key: Some("k1".into()),
            user: Some("ada".into()),
            rows_added: 10,
            rows_removed: 0,
            schema: schema.clone(),
            files: vec![DataFile {
                path: "data/public/t/a.parquet".into(),
                rows: 10,
                bytes: 99,
                columns: vec![ColumnStats {
                    name: "id".into(),
                    null_count: 0,
                    min: Some("1".into()),
                    max: None,
                }],
            }],
            lance: None,
            storage: None,
        };
        let back = Manifest::from_json("m", &manifest.to_json()).unwrap();
        assert_eq!(back.schema, schema);
        assert_eq!(back.files, manifest.files);
        assert_eq!(back.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(back.total_rows(), 10);
    }

    #[test]
    fn names_the_object_when_a_manifest_is_corrupt() {
        let err = Manifest::from_json("_catalog/x/1.json", b"{nope")
            .unwrap_err()
            .to_string();
        assert!(err.contains("_catalog/x/1.json"), "{err}");
    }
}
