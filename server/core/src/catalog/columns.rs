//! Column changes (`ALTER TABLE`) made in the table's schema alone: data
//! files are never rewritten for them.
//!
//! Files keep the columns they were written with, so the schema records
//! what readers need to read old files with the new columns:
//! - a renamed column lists its earlier names (`lakehouse.file_names`);
//! - an added column may have a default (`lakehouse.default`), the value
//!   files written before it read as, and that rows written without it get;
//! - dropped columns are listed on the schema (`lakehouse.dropped_columns`)
//!   so that their data in old files never shows up again.
//!
//! A name old files use for another column, or for a dropped one, cannot be
//! given to a column (added or renamed): readers could not tell the two
//! apart. Widening a column's type (int32 to int64, float32 to float64, a
//! wider decimal) reads old files with a cast.
//!
//! A vector table's columns are changed by Lance itself (fields renamed and
//! dropped by id, an added column's values written), so its schema keeps no
//! earlier names ([`alter_stored_schema`]); the engine makes the Lance
//! change and [`Catalog::commit_lance_alter`] pins it.

use std::collections::{HashMap, HashSet};

use arrow::datatypes::{DataType, Field, Schema};
use chrono::Utc;

use super::{Catalog, Manifest, Operation, TableKind, TableRef, author};
use crate::error::{Error, Result};

/// Field metadata: the column's earlier names, as old files hold it.
pub const FILE_NAMES_KEY: &str = "lakehouse.file_names";
/// Field metadata: the column's default value, as text in its type.
pub const DEFAULT_KEY: &str = "lakehouse.default";
/// Schema metadata: names of dropped columns old files may still hold.
pub const DROPPED_KEY: &str = "lakehouse.dropped_columns";

/// One change to a table's columns, its types as `T`: SQL text as written
/// (`ColumnChange<String>`), then Arrow types once resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum ColumnChange<T = DataType> {
    /// A new nullable column; old rows read `default` (an expression as
    /// written, then its value as text in the type), or null without one.
    Add {
        name: String,
        data_type: T,
        default: Option<String>,
        if_not_exists: bool,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
    Rename {
        from: String,
        to: String,
    },
    /// A wider type for the same values.
    Widen {
        name: String,
        data_type: T,
    },
}

impl Catalog {
    /// Applies `changes` to the newest version's columns, as one `alter`
    /// version (none when they change nothing, as `IF EXISTS` may); returns
    /// the version the table is at.
    pub async fn commit_alter(&self, table: &TableRef, changes: &[ColumnChange]) -> Result<u64> {
        let altered = |current: &Manifest| -> Result<Schema> {
            if current.kind != TableKind::Parquet {
                return Err(Error::invalid(format!(
                    "table {table} is a vector (Lance) table; ALTER TABLE changes the columns of Parquet tables"
                )));
            }
            let mut schema = current.schema.as_ref().clone();
            for change in changes {
                schema = alter_schema(table, &schema, change)?;
            }
            Ok(schema)
        };
        let current = self.table(table)?;
        if altered(&current)? == *current.schema {
            return Ok(current.version);
        }
        self.commit_derived(table, |current| {
            Ok(altered_version(current, altered(current)?))
        })
        .await
    }
}

/// The `alter` version after `current` with columns `schema`.
fn altered_version(current: &Manifest, schema: Schema) -> Manifest {
    Manifest {
        version: current.version + 1,
        operation: Operation::Alter,
        committed_at: Utc::now(),
        idempotency_key: None,
        user: author(),
        rows_added: 0,
        rows_removed: 0,
        schema: std::sync::Arc::new(schema),
        ..current.clone()
    }
}

impl Catalog {
    /// Commits, as the version right after `base`, the vector table's
    /// `changes` made in its dataset (now at `data`);
    /// [`Error::BaseMoved`] when another version came first.
    pub async fn commit_lance_alter(
        &self,
        table: &TableRef,
        changes: &[ColumnChange],
        data: super::LanceData,
        base: u64,
    ) -> Result<u64> {
        self.commit_derived(table, |current| {
            super::commit::check_base(table, Some(base), Some(current))?;
            let schema = alter_stored_schema(table, &current.schema, changes)?;
            Ok(Manifest {
                lance: Some(data),
                ..altered_version(current, schema)
            })
        })
        .await
    }
}

/// `schema` after `changes`, for a table whose storage renames and drops
/// columns itself (a vector table): no earlier names are kept, defaults
/// are (for rows written later without the column).
pub fn alter_stored_schema(
    table: &TableRef,
    schema: &Schema,
    changes: &[ColumnChange],
) -> Result<Schema> {
    let mut altered = schema.clone();
    for change in changes {
        altered = alter_schema(table, &altered, change)?;
    }
    let fields: Vec<Field> = altered
        .fields()
        .iter()
        .map(|field| {
            let mut metadata = field.metadata().clone();
            metadata.remove(FILE_NAMES_KEY);
            field.as_ref().clone().with_metadata(metadata)
        })
        .collect();
    let mut metadata = altered.metadata().clone();
    metadata.remove(DROPPED_KEY);
    Ok(Schema::new_with_metadata(fields, metadata))
}

/// How the columns of a table's data files map to its columns now.
#[derive(Debug, Clone, Default)]
pub struct ColumnNames {
    /// File column name -> table column name, where they differ or the
    /// file's column belongs to no table column (`None`).
    renamed: HashMap<String, Option<String>>,
}

impl ColumnNames {
    pub fn of(schema: &Schema) -> Self {
        let mut renamed = HashMap::new();
        for name in dropped(schema) {
            renamed.insert(name, None);
        }
        for field in schema.fields() {
            for old in file_names(field) {
                renamed.insert(old, Some(field.name().clone()));
            }
        }
        Self { renamed }
    }

    /// True when every file column has its table column's name.
    pub fn is_identity(&self) -> bool {
        self.renamed.is_empty()
    }

    /// The table column a file column named `file_column` holds, if any.
    pub fn table_column<'a>(&'a self, file_column: &'a str) -> Option<&'a str> {
        match self.renamed.get(file_column) {
            Some(renamed) => renamed.as_deref(),
            None => Some(file_column),
        }
    }
}

/// The earlier names of a column.
pub fn file_names(field: &Field) -> Vec<String> {
    field
        .metadata()
        .get(FILE_NAMES_KEY)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// A column's default value, as text in its type.
pub fn default_text(field: &Field) -> Option<&str> {
    field.metadata().get(DEFAULT_KEY).map(String::as_str)
}

fn dropped(schema: &Schema) -> Vec<String> {
    schema
        .metadata()
        .get(DROPPED_KEY)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// `schema` after `change`; the error names the table and column.
pub fn alter_schema(table: &TableRef, schema: &Schema, change: &ColumnChange) -> Result<Schema> {
    let find = |name: &str| schema.fields().iter().position(|f| f.name() == name);
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut metadata = schema.metadata().clone();
    match change {
        ColumnChange::Add {
            name,
            data_type,
            default,
            if_not_exists,
        } => {
            if find(name).is_some() {
                return if *if_not_exists {
                    Ok(schema.clone())
                } else {
                    Err(Error::invalid(format!(
                        "table {table} already has a column {name:?}"
                    )))
                };
            }
            check_name_free(table, schema, name)?;
            let mut field = Field::new(name, data_type.clone(), true);
            if let Some(default) = default {
                field = field
                    .with_metadata(HashMap::from([(DEFAULT_KEY.to_string(), default.clone())]));
            }
            fields.push(field);
        }
        ColumnChange::Drop { name, if_exists } => {
            let Some(position) = find(name) else {
                return if *if_exists {
                    Ok(schema.clone())
                } else {
                    Err(missing(table, schema, name))
                };
            };
            if fields.len() == 1 {
                return Err(Error::invalid(format!(
                    "column {name:?} is the last of table {table}; drop the table instead"
                )));
            }
            let removed = fields.remove(position);
            let mut gone = dropped(schema);
            gone.push(removed.name().clone());
            gone.extend(file_names(&removed));
            metadata.insert(DROPPED_KEY.to_string(), to_json(&gone));
        }
        ColumnChange::Rename { from, to } => {
            let Some(position) = find(from) else {
                return Err(missing(table, schema, from));
            };
            if find(to).is_some() {
                return Err(Error::invalid(format!(
                    "table {table} already has a column {to:?}"
                )));
            }
            check_name_free(table, schema, to)?;
            let field = &fields[position];
            let mut earlier = file_names(field);
            earlier.retain(|n| n != to);
            earlier.push(from.clone());
            let mut field_metadata = field.metadata().clone();
            field_metadata.insert(FILE_NAMES_KEY.to_string(), to_json(&earlier));
            fields[position] = field.clone().with_name(to).with_metadata(field_metadata);
        }
        ColumnChange::Widen { name, data_type } => {
            let Some(position) = find(name) else {
                return Err(missing(table, schema, name));
            };
            let current = fields[position].data_type().clone();
            if &current == data_type {
                return Ok(schema.clone());
            }
            if !widens(&current, data_type) {
                return Err(Error::invalid(format!(
                    "column {name:?} of table {table} is {current}; it can only be widened \
                     (int8 to int16, int32 or int64, and so on; float32 to float64; a decimal \
                     to more digits at the same scale), not changed to {data_type}"
                )));
            }
            fields[position] = fields[position].clone().with_data_type(data_type.clone());
        }
    }
    Ok(Schema::new_with_metadata(fields, metadata))
}

/// Refuses a name old files use for another (or a dropped) column.
fn check_name_free(table: &TableRef, schema: &Schema, name: &str) -> Result<()> {
    let used_by_files: HashSet<String> = dropped(schema)
        .into_iter()
        .chain(schema.fields().iter().flat_map(|f| file_names(f)))
        .collect();
    if used_by_files.contains(name) {
        return Err(Error::invalid(format!(
            "column name {name:?} is still used by older data files of table {table} \
             (for a column since renamed or dropped); choose another name"
        )));
    }
    Ok(())
}

fn missing(table: &TableRef, schema: &Schema, name: &str) -> Error {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    Error::invalid(format!(
        "table {table} has no column {name:?} (its columns: {})",
        names.join(", ")
    ))
}

/// Whether every value of `from` is a value of `to`.
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let rank = |t: &DataType| match t {
        Int8 | UInt8 => 1,
        Int16 | UInt16 => 2,
        Int32 | UInt32 => 3,
        Int64 | UInt64 => 4,
        _ => 0,
    };
    match (from, to) {
        (Int8 | Int16 | Int32, Int16 | Int32 | Int64) => rank(from) < rank(to),
        (UInt8 | UInt16 | UInt32, UInt16 | UInt32 | UInt64) => rank(from) < rank(to),
        (UInt8 | UInt16 | UInt32, Int16 | Int32 | Int64) => rank(from) < rank(to),
        (Float16, Float32 | Float64) | (Float32, Float64) => true,
        (Decimal128(p, s), Decimal128(p2, s2)) => s == s2 && p2 > p,
        (Utf8, LargeUtf8) | (Binary, LargeBinary) => true,
        _ => false,
    }
}

fn to_json(names: &[String]) -> String {
    serde_json::to_string(names).expect("names always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableRef {
        TableRef::parse("t").unwrap()
    }

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ])
    }

    fn apply(schema: &Schema, change: ColumnChange) -> Result<Schema> {
        alter_schema(&table(), schema, &change)
    }

    #[test]
    fn a_renamed_column_reads_its_old_name_in_files() {
        let renamed = apply(
            &schema(),
            ColumnChange::Rename {
                from: "name".into(),
                to: "label".into(),
            },
        )
        .unwrap();
        let again = apply(
            &renamed,
            ColumnChange::Rename {
                from: "label".into(),
                to: "title".into(),
            },
        )
        .unwrap();
        let names = ColumnNames::of(&again);
        assert_eq!(names.table_column("name"), Some("title"));
        assert_eq!(names.table_column("label"), Some("title"));
        assert_eq!(names.table_column("id"), Some("id"));
        let err = apply(
            &again,
            ColumnChange::Add {
                name: "name".into(),
                data_type: DataType::Utf8,
                default: None,
                if_not_exists: false,
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("still used by older data files"),
            "{err}"
        );
    }

    #[test]
    fn a_dropped_column_hides_its_file_data() {
        let dropped = apply(
            &schema(),
            ColumnChange::Drop {
                name: "name".into(),
                if_exists: false,
            },
        )
        .unwrap();
        assert_eq!(dropped.fields().len(), 1);
        assert_eq!(ColumnNames::of(&dropped).table_column("name"), None);
        let err = apply(
            &dropped,
            ColumnChange::Drop {
                name: "id".into(),
                if_exists: false,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("last of table"), "{err}");
        let err = apply(
            &dropped,
            ColumnChange::Drop {
                name: "nope".into(),
                if_exists: false,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("its columns: id"), "{err}");
    }

    #[test]
    fn only_widening_type_changes_are_allowed() {
        let widened = apply(
            &schema(),
            ColumnChange::Widen {
                name: "id".into(),
                data_type: DataType::Int64,
            },
        )
        .unwrap();
        assert_eq!(widened.field(0).data_type(), &DataType::Int64);
        let err = apply(
            &widened,
            ColumnChange::Widen {
                name: "id".into(),
                data_type: DataType::Int16,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("can only be widened"), "{err}");
        assert!(widens(
            &DataType::Decimal128(10, 2),
            &DataType::Decimal128(12, 2)
        ));
        assert!(!widens(&DataType::Int64, &DataType::Float64));
    }
}
