//! Whether data with one Arrow schema may be written into a table with
//! another, and if not, exactly which columns differ.
//!
//! Column names must match; types must match up to representation (the
//! string family Utf8/LargeUtf8/Utf8View, likewise binary), because clients
//! choose those freely for the same logical column. Nullability is not part
//! of a table's contract: table columns are always nullable.

use arrow::datatypes::{DataType, Field, Schema};

use crate::types::classic_schema;

/// True when values of `data` can be stored in a column of `table` by a
/// lossless representation change.
pub fn types_compatible(table: &DataType, data: &DataType) -> bool {
    table == data
        || logical_family(table) == logical_family(data) && logical_family(table).is_some()
}

fn logical_family(t: &DataType) -> Option<&'static str> {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some("string"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Some("binary"),
        _ => None,
    }
}

/// Describes how `data` differs from `table`, or `None` when it can be
/// appended. The text lists added, missing and retyped columns.
pub fn schema_differences(table: &Schema, data: &Schema) -> Option<String> {
    let added: Vec<String> = data
        .fields()
        .iter()
        .filter(|f| table.field_with_name(f.name()).is_err())
        .map(|f| format!("{} ({})", f.name(), f.data_type()))
        .collect();
    let missing: Vec<String> = table
        .fields()
        .iter()
        .filter(|f| data.field_with_name(f.name()).is_err())
        .map(|f| format!("{} ({})", f.name(), f.data_type()))
        .collect();
    let retyped: Vec<String> = table
        .fields()
        .iter()
        .filter_map(|t| {
            let d = data.field_with_name(t.name()).ok()?;
            (!types_compatible(t.data_type(), d.data_type())).then(|| {
                format!(
                    "{} (table has {}, data has {})",
                    t.name(),
                    t.data_type(),
                    d.data_type()
                )
            })
        })
        .collect();
    let mut parts = Vec::new();
    for (label, cols) in [("added", added), ("missing", missing), ("retyped", retyped)] {
        if !cols.is_empty() {
            parts.push(format!("{label} columns: {}", cols.join(", ")));
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The table schema after appending `data` with schema evolution: the
/// table's columns, then `data`'s new ones (nullable). Columns the data
/// lacks read as null; a column whose type changed is still refused, with
/// the differences as [`schema_differences`] words them.
pub fn evolve_schema(table: &Schema, data: &Schema) -> Result<Schema, String> {
    let shared: Vec<Field> = table
        .fields()
        .iter()
        .filter_map(|t| data.field_with_name(t.name()).ok().cloned())
        .collect();
    let table_shared: Vec<Field> = table
        .fields()
        .iter()
        .filter(|t| data.field_with_name(t.name()).is_ok())
        .map(|f| f.as_ref().clone())
        .collect();
    if let Some(retyped) = schema_differences(&Schema::new(table_shared), &Schema::new(shared)) {
        return Err(retyped);
    }
    let added = data
        .fields()
        .iter()
        .filter(|f| table.field_with_name(f.name()).is_err())
        .map(|f| f.as_ref().clone().with_nullable(true));
    let fields: Vec<Field> = table
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .chain(
            classic_schema(&Schema::new(added.collect::<Vec<_>>()))
                .fields()
                .iter()
                .map(|f| f.as_ref().clone()),
        )
        .collect();
    Ok(Schema::new_with_metadata(fields, table.metadata().clone()))
}

/// The schema a new table gets from its first data: every column nullable
/// and in classic (non-view) form, field metadata kept.
pub fn table_schema_for(data: &Schema) -> Schema {
    let fields: Vec<Field> = classic_schema(data)
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Schema::new_with_metadata(fields, data.metadata().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(cols: &[(&str, DataType)]) -> Schema {
        Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn evolution_adds_columns_and_refuses_retyping() {
        let table = schema(&[("a", DataType::Int64), ("b", DataType::Utf8)]);
        let data = schema(&[("c", DataType::Float64), ("a", DataType::Int64)]);
        let evolved = evolve_schema(&table, &data).unwrap();
        let names: Vec<&str> = evolved.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let retyped = schema(&[("a", DataType::Utf8), ("c", DataType::Float64)]);
        let err = evolve_schema(&table, &retyped).unwrap_err();
        assert!(
            err.contains("retyped columns: a (table has Int64, data has Utf8)"),
            "{err}"
        );
    }

    #[test]
    fn equal_or_same_family_schemas_are_compatible() {
        let table = schema(&[("a", DataType::Int64), ("s", DataType::Utf8)]);
        let data = schema(&[("s", DataType::LargeUtf8), ("a", DataType::Int64)]);
        assert_eq!(schema_differences(&table, &data), None);
    }

    #[test]
    fn lists_every_added_missing_and_retyped_column() {
        let table = schema(&[
            ("a", DataType::Int64),
            ("b", DataType::Utf8),
            ("c", DataType::Float64),
        ]);
        let data = schema(&[
            ("a", DataType::Utf8),
            ("c", DataType::Float64),
            ("d", DataType::Boolean),
        ]);
        let text = schema_differences(&table, &data).unwrap();
        assert_eq!(
            text,
            "added columns: d (Boolean); missing columns: b (Utf8); retyped columns: a (table has Int64, data has Utf8)"
        );
    }

    #[test]
    fn new_tables_have_nullable_classic_columns() {
        let data = Schema::new(vec![
            Field::new("a", DataType::Int32, false),
            Field::new("s", DataType::Utf8View, true),
        ]);
        let table = table_schema_for(&data);
        assert!(table.field(0).is_nullable());
        assert_eq!(table.field(1).data_type(), &DataType::Utf8);
    }
}
