//! Column statistics of a written Parquet file, for its manifest entry.
//!
//! Per column: null count, and min and max over the file's row groups, kept
//! as text that parses back to exactly the same value (checked here, or the
//! bound is left out). The query side hands them to DataFusion, which prunes
//! whole files from them before reading a footer.

use arrow::array::Array;
use arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::file::metadata::ParquetMetaData;

use lakehouse_core::catalog::ColumnStats;

/// Longest string bound kept; longer bounds are left out.
const MAX_STRING_BOUND: usize = 64;

fn has_orderable_stats(t: &DataType) -> bool {
    t.is_integer()
        || t.is_floating()
        || matches!(
            t,
            DataType::Boolean
                | DataType::Decimal128(..)
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(..)
                | DataType::Utf8
                | DataType::LargeUtf8
        )
}

/// Statistics of every top-level column whose type has ordered bounds.
pub fn column_stats(schema: &Schema, metadata: &ParquetMetaData) -> Vec<ColumnStats> {
    schema
        .fields()
        .iter()
        .filter(|f| has_orderable_stats(f.data_type()))
        .filter_map(|field| {
            let converter = StatisticsConverter::try_new(
                field.name(),
                schema,
                metadata.file_metadata().schema_descr(),
            )
            .ok()?;
            let groups = metadata.row_groups();
            let nulls = converter.row_group_null_counts(groups.iter()).ok()?;
            if nulls.null_count() > 0 {
                return None;
            }
            let null_count: u64 = nulls.values().iter().sum();
            let rows: Vec<u64> = groups.iter().map(|g| g.num_rows() as u64).collect();
            let all_null: Vec<bool> = nulls
                .values()
                .iter()
                .zip(&rows)
                .map(|(n, r)| n == r)
                .collect();
            let mins = converter.row_group_mins(groups.iter()).ok()?;
            let maxes = converter.row_group_maxes(groups.iter()).ok()?;
            Some(ColumnStats {
                name: field.name().clone(),
                null_count,
                min: bound(&mins, &all_null, std::cmp::Ordering::Less),
                max: bound(&maxes, &all_null, std::cmp::Ordering::Greater),
            })
        })
        .collect()
}

/// The extreme of the per-row-group bounds in direction `keep`, as text;
/// `None` when a row group with values has no bound.
fn bound(values: &dyn Array, all_null: &[bool], keep: std::cmp::Ordering) -> Option<String> {
    let mut best: Option<ScalarValue> = None;
    for (i, skip) in all_null.iter().enumerate() {
        if *skip {
            continue;
        }
        if values.is_null(i) {
            return None;
        }
        let value = ScalarValue::try_from_array(values, i).ok()?;
        best = match best {
            Some(current) if value.partial_cmp(&current)? != keep => Some(current),
            _ => Some(value),
        };
    }
    let best = best?;
    let as_text = arrow::compute::cast(&best.to_array().ok()?, &DataType::Utf8).ok()?;
    let text = ScalarValue::try_from_array(&as_text, 0).ok()?.to_string();
    if text.len() > MAX_STRING_BOUND {
        return None;
    }
    let back = ScalarValue::try_from_string(text.clone(), &best.data_type()).ok()?;
    (back == best).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{
        Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, TimeUnit};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    #[test]
    fn bounds_span_every_row_group_and_parse_back() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch =
            |ids: Vec<Option<i64>>, names: Vec<Option<&str>>, xs: Vec<f64>, ats: Vec<i64>| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from(ids)),
                        Arc::new(StringArray::from(names)),
                        Arc::new(Float64Array::from(xs)),
                        Arc::new(TimestampMicrosecondArray::from(ats).with_timezone("UTC")),
                    ],
                )
                .unwrap()
            };
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).unwrap();
        writer
            .write(&batch(
                vec![Some(5), None],
                vec![Some("m"), Some("b")],
                vec![0.1, 2.5],
                vec![1, 2],
            ))
            .unwrap();
        writer
            .write(&batch(
                vec![Some(-3), Some(9)],
                vec![None, Some("z")],
                vec![-1.0, 0.3],
                vec![3, 4],
            ))
            .unwrap();
        let metadata = writer.close().unwrap();
        let stats = column_stats(&schema, &metadata);
        let by_name = |n: &str| stats.iter().find(|s| s.name == n).unwrap().clone();
        let id = by_name("id");
        assert_eq!(
            (id.null_count, id.min.as_deref(), id.max.as_deref()),
            (1, Some("-3"), Some("9"))
        );
        let name = by_name("name");
        assert_eq!(
            (name.min.as_deref(), name.max.as_deref()),
            (Some("b"), Some("z"))
        );
        assert_eq!(by_name("x").min.as_deref(), Some("-1.0"));
        let at = by_name("at");
        let min =
            ScalarValue::try_from_string(at.min.unwrap(), schema.field(3).data_type()).unwrap();
        assert_eq!(
            min,
            ScalarValue::TimestampMicrosecond(Some(1), Some("UTC".into()))
        );
    }
}
