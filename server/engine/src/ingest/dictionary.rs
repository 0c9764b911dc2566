//! Which columns of a new data file are worth dictionary encoding, judged
//! from its first batch.
//!
//! Parquet writers dictionary-encode every column by default and fall back
//! to plain encoding only once a dictionary page is full, again in every
//! row group. For a column whose values are mostly distinct (prices,
//! identifiers, free text) that is hashing work with nothing to show for
//! it: on CSV upload it was the largest single cost of encoding. A sample
//! of the first batch tells the two kinds apart cheaply.

use std::collections::HashSet;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion::common::hash_utils::{RandomState, create_hashes};

/// Values sampled per column.
const SAMPLE_ROWS: usize = 4096;
/// Above this share of distinct values in the sample, no dictionary.
const DISTINCT_SHARE: f64 = 0.5;

/// Names of the top-level columns that should be written without a
/// dictionary.
pub fn mostly_distinct_columns(batch: &RecordBatch) -> Vec<String> {
    let rows = batch.num_rows().min(SAMPLE_ROWS);
    if rows < 64 {
        return Vec::new();
    }
    let state = RandomState::default();
    let mut hashes = vec![0u64; rows];
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(field, _)| has_dictionary_choice(field.data_type()))
        .filter_map(|(field, column)| {
            let sample = column.slice(0, rows);
            hashes.iter_mut().for_each(|h| *h = 0);
            create_hashes([&sample], &state, &mut hashes).ok()?;
            let distinct = hashes.iter().collect::<HashSet<_>>().len();
            (distinct as f64 > DISTINCT_SHARE * rows as f64).then(|| field.name().clone())
        })
        .collect()
}

fn has_dictionary_choice(data_type: &DataType) -> bool {
    data_type.is_primitive()
        || matches!(
            data_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary
        )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn distinct_columns_lose_their_dictionary() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("price", DataType::Float64, false),
            Field::new("flag", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from_iter_values(
                    (0..5000).map(|i| i as f64 * 1.25),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..5000).map(|i| ["A", "N", "R"][i % 3]),
                )),
            ],
        )
        .unwrap();
        assert_eq!(mostly_distinct_columns(&batch), ["price"]);
    }
}
