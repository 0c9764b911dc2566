//! Classic Arrow types for the boundary.
//!
//! DataFusion and newer writers produce Utf8View, BinaryView and list views;
//! the JDBC driver and several ADBC drivers cannot read them. Data leaves the
//! server, and is stored in the catalog, in the classic forms (Utf8, Binary,
//! List), recursively through nested types.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, FieldRef, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;

/// The classic form of `t`, or `t` itself when it has no view parts.
pub fn classic_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::ListView(f) | DataType::List(f) => DataType::List(classic_field(f)),
        DataType::LargeListView(f) | DataType::LargeList(f) => {
            DataType::LargeList(classic_field(f))
        }
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(classic_field(f), *n),
        DataType::Struct(fields) => DataType::Struct(classic_fields(fields)),
        DataType::Map(f, sorted) => DataType::Map(classic_field(f), *sorted),
        DataType::Dictionary(k, v) => DataType::Dictionary(k.clone(), Box::new(classic_type(v))),
        other => other.clone(),
    }
}

fn classic_field(f: &FieldRef) -> FieldRef {
    Arc::new(
        f.as_ref()
            .clone()
            .with_data_type(classic_type(f.data_type())),
    )
}

fn classic_fields(fields: &Fields) -> Fields {
    fields.iter().map(classic_field).collect()
}

/// The schema with every field in classic form.
pub fn classic_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        classic_fields(schema.fields()),
        schema.metadata().clone(),
    ))
}

/// True when the schema has nothing [`classic_type`] would change.
pub fn is_classic(schema: &Schema) -> bool {
    schema
        .fields()
        .iter()
        .all(|f| &classic_type(f.data_type()) == f.data_type())
}

/// Casts `batch` column by column to `target` (same column count, same
/// order). Columns already of the target type are shared, not copied.
pub fn cast_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().fields() == target.fields() {
        return Ok(batch
            .clone()
            .with_schema(target.clone())
            .unwrap_or_else(|_| batch.clone()));
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                cast_with_options(column, field.data_type(), &options)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(target.clone(), columns)
}

/// The Arrow bytes `batch` holds, counting only its slice of shared
/// buffers: what its rows cost in memory, whatever they claim.
pub fn arrow_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| column.to_data().get_slice_memory_size().unwrap_or(0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, StringViewArray};
    use arrow::datatypes::Field;

    #[test]
    fn views_become_classic_recursively() {
        let inner = Arc::new(Field::new("item", DataType::Utf8View, true));
        let t = DataType::Struct(Fields::from(vec![Field::new(
            "l",
            DataType::ListView(inner),
            true,
        )]));
        let expected = DataType::Struct(Fields::from(vec![Field::new(
            "l",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        )]));
        assert_eq!(classic_type(&t), expected);
    }

    #[test]
    fn casting_a_view_batch_keeps_values() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringViewArray::from(vec![
                Some("a"),
                None,
                Some("a longer string than twelve"),
            ]))],
        )
        .unwrap();
        assert!(!is_classic(&schema));
        let out = cast_batch(&batch, &classic_schema(&schema)).unwrap();
        assert_eq!(out.column(0).data_type(), &DataType::Utf8);
        assert_eq!(out.column(0).null_count(), 1);
        assert_eq!(
            arrow::util::display::array_value_to_string(out.column(0), 2).unwrap(),
            "a longer string than twelve"
        );
    }
}
