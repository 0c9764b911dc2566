//! `knn()` over a resident graph: the graph's nearest keys among the
//! fragments it holds, an exact search of the fragments it does not hold
//! (rows appended since it was last extended, or rewritten), then one take
//! of the candidates, re-ranked by exact distance.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, AsArray, Float32Array, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use datafusion::logical_expr::Expr;
use lakehouse_extension::SearchRequest;
use lance::Dataset;
use roaring::RoaringTreemap;
use tracing::debug;

use super::graph_indexes::fragment_states;
use super::graphs::{Graph, distance, vectors_f32};
use super::lance_message;
use super::passing::PassingRows;
use crate::error::{Error, Result};
use lakehouse_core::catalog::TableRef;

const DISTANCE: &str = "_distance";

/// The `k` rows nearest the query, nearest first, with `_distance`.
pub async fn search(
    table: &TableRef,
    dataset: &Dataset,
    graph: &Graph,
    request: SearchRequest,
    addresses: bool,
    kept: &PassingRows,
) -> Result<RecordBatch> {
    let invalid =
        |e: lance::Error| Error::invalid(format!("knn over {table}: {}", lance_message(&e)));
    let query = &request.query;
    if query.len() != graph.meta.dimensions {
        return Err(Error::invalid(format!(
            "knn over {table}: the query has {} dimensions, column {} has {}",
            query.len(),
            graph.meta.column,
            graph.meta.dimensions
        )));
    }
    let started = Instant::now();
    let k = request.k;
    let wanted = k * request.options.refine.unwrap_or(1).max(1) as usize;
    let coverage = graph.coverage(fragment_states(dataset));
    let passing = match &request.filter {
        Some(filter) if !coverage.held.is_empty() => {
            Some(passing_rows(dataset, filter, kept).await.map_err(invalid)?)
        }
        _ => None,
    };
    let mut candidates = if coverage.held.is_empty() {
        Vec::new()
    } else if passing.is_none() && !coverage.extra_keys {
        graph.search(query, wanted, request.options.ef, None)?
    } else {
        let held = &coverage.held;
        let keep = |key: u64| {
            held.contains(&(key >> 32)) && passing.as_ref().is_none_or(|rows| rows.contains(key))
        };
        graph.search(query, wanted, request.options.ef, Some(&keep))?
    };
    let searched = started.elapsed();
    if !coverage.not_held.is_empty() {
        let fragments = dataset
            .fragments()
            .iter()
            .filter(|f| coverage.not_held.contains(&f.id))
            .cloned()
            .collect();
        let mut scan = dataset.scan();
        // A scan of some fragments may only search them after a prefilter.
        scan.with_fragments(fragments)
            .prefilter(true)
            .nearest(&graph.meta.column, &Float32Array::from(query.clone()), k)
            .map_err(invalid)?
            .use_index(false)
            .distance_metric(super::search::distance_type(graph.meta.metric))
            .project(&[&graph.meta.column])
            .map_err(invalid)?
            .disable_scoring_autoprojection()
            .with_row_address();
        if let Some(filter) = request.filter {
            scan.filter_expr(filter);
        }
        let found = scan.try_into_batch().await.map_err(invalid)?;
        if let Some(addresses) = found.column_by_name(lance_core::ROW_ADDR) {
            candidates.extend(addresses.as_primitive::<UInt64Type>().values().iter());
        }
    }
    let output =
        output_columns(dataset, &graph.meta.column, request.columns.as_deref()).map_err(invalid)?;
    if candidates.is_empty() {
        let mut fields: Vec<Field> = output
            .read
            .fields
            .iter()
            .filter(|f| output.wanted(&f.name))
            .map(Field::from)
            .collect();
        if addresses {
            fields.push(Field::new(lance_core::ROW_ADDR, DataType::UInt64, true));
        }
        fields.push(Field::new(DISTANCE, DataType::Float32, true));
        return Ok(RecordBatch::new_empty(Arc::new(Schema::new(fields))));
    }
    let exact = started.elapsed();
    let rows = Arc::new(dataset.clone())
        .take_builder(&candidates, output.read.clone())
        .map_err(invalid)?
        .with_row_address(addresses)
        .execute()
        .await
        .map_err(invalid)?;
    let taken = started.elapsed();
    let ranked = nearest_first(&rows, &graph.meta.column, graph.meta.metric, query, k)
        .and_then(|rows| output.keep_wanted(rows));
    debug!(table = %table, graph = %graph.meta.name, filtered = passing.is_some(),
        fragments_searched_exactly = coverage.not_held.len(), candidates = candidates.len(),
        graph_us = searched.as_micros(), exact_us = (exact - searched).as_micros(),
        take_us = (taken - exact).as_micros(), rank_us = (started.elapsed() - taken).as_micros(),
        "knn over an hnsw index");
    ranked
}

/// The columns a search reads (those wanted, and the vector column its
/// re-ranking needs) and which of them it answers.
struct OutputColumns {
    read: lance_core::datatypes::Schema,
    wanted: Option<HashSet<String>>,
}

impl OutputColumns {
    fn wanted(&self, name: &str) -> bool {
        self.wanted.as_ref().is_none_or(|w| w.contains(name))
    }

    /// `rows` without the columns read only to rank them.
    fn keep_wanted(&self, rows: RecordBatch) -> Result<RecordBatch> {
        if self.wanted.is_none() {
            return Ok(rows);
        }
        let keep: Vec<usize> = rows
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.name() == DISTANCE || f.name() == lance_core::ROW_ADDR || self.wanted(f.name())
            })
            .map(|(i, _)| i)
            .collect();
        rows.project(&keep)
            .map_err(|e| Error::internal(format!("projecting knn rows: {e}")))
    }
}

fn output_columns(
    dataset: &Dataset,
    vector_column: &str,
    wanted: Option<&[String]>,
) -> lance::Result<OutputColumns> {
    let Some(wanted) = wanted else {
        let read = dataset.schema().clone();
        return Ok(OutputColumns { read, wanted: None });
    };
    let mut names: Vec<&str> = wanted.iter().map(String::as_str).collect();
    if !names.contains(&vector_column) {
        names.push(vector_column);
    }
    let read = dataset.schema().project(&names)?;
    Ok(OutputColumns {
        read,
        wanted: Some(wanted.iter().cloned().collect()),
    })
}

/// Row addresses of the rows that pass `filter`: kept from an earlier
/// search of this version, or found by a scan of the filter's columns.
async fn passing_rows(
    dataset: &Dataset,
    filter: &Expr,
    kept: &PassingRows,
) -> lance::Result<Arc<RoaringTreemap>> {
    let key = PassingRows::key(dataset.uri(), dataset.version().version, filter);
    if let Some(rows) = key.as_ref().and_then(|key| kept.get(key)) {
        return Ok(rows);
    }
    let mut scan = dataset.scan();
    scan.filter_expr(filter.clone())
        .project::<&str>(&[])?
        .with_row_address();
    let batch = scan.try_into_batch().await?;
    let mut rows = RoaringTreemap::new();
    if let Some(addresses) = batch.column_by_name(lance_core::ROW_ADDR) {
        rows.extend(
            addresses
                .as_primitive::<UInt64Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    let rows = Arc::new(rows);
    if let Some(key) = key {
        kept.insert(key, rows.clone());
    }
    Ok(rows)
}

/// The `k` rows of `rows` nearest `query` by exact distance, nearest
/// first, with `_distance` after their columns.
fn nearest_first(
    rows: &RecordBatch,
    column: &str,
    metric: lakehouse_extension::Metric,
    query: &[f32],
    k: usize,
) -> Result<RecordBatch> {
    let vectors = rows
        .column_by_name(column)
        .ok_or_else(|| Error::internal(format!("a take of the table's rows lacks {column}")))?;
    let mut ranked: Vec<(f32, u32)> = vectors_f32(vectors.as_ref())?
        .into_iter()
        .enumerate()
        .filter_map(|(row, vector)| vector.map(|v| (distance(metric, query, &v), row as u32)))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    ranked.truncate(k);
    let order = UInt32Array::from_iter_values(ranked.iter().map(|(_, row)| *row));
    let mut columns: Vec<ArrayRef> = rows
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), &order, None))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::internal(format!("ordering knn rows: {e}")))?;
    columns.push(Arc::new(Float32Array::from_iter_values(
        ranked.iter().map(|(d, _)| *d),
    )));
    let mut fields = rows.schema().fields().to_vec();
    fields.push(Arc::new(Field::new(DISTANCE, DataType::Float32, true)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::internal(format!("assembling knn rows: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, FixedSizeListArray, Int64Array};
    use arrow::datatypes::Float32Type;
    use lakehouse_extension::Metric;

    #[test]
    fn ranks_by_exact_distance_and_skips_null_vectors() {
        let ids = Int64Array::from(vec![1, 2, 3, 4]);
        let vectors = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            vec![
                Some(vec![Some(3.0), Some(0.0)]),
                Some(vec![Some(1.0), Some(0.0)]),
                None,
                Some(vec![Some(2.0), Some(0.0)]),
            ],
            2,
        );
        let table = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", vectors.data_type().clone(), true),
        ]));
        let rows = RecordBatch::try_new(table, vec![Arc::new(ids), Arc::new(vectors)]).unwrap();
        let best = nearest_first(&rows, "v", Metric::L2, &[0.0, 0.0], 2).unwrap();
        let ids: Vec<i64> = best
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec();
        assert_eq!(ids, vec![2, 4]);
        let distances = best
            .column(2)
            .as_primitive::<Float32Type>()
            .values()
            .to_vec();
        assert_eq!(distances, vec![1.0, 4.0]);
        assert_eq!(best.schema().field(2).name(), DISTANCE);
    }
}
