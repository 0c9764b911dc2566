//! `hybrid()`: one query searched two ways, by its embedding (knn) and by
//! its words (BM25), and the two rankings fused by reciprocal rank: a row's
//! score is the sum over the rankings it appears in of `weight / (rrf_k +
//! rank)`. Fusing ranks rather than scores needs no calibration between a
//! distance and a BM25 score, and a row both searches rank well beats one
//! only one of them finds.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float32Array, RecordBatch};
use arrow::compute::{concat_batches, interleave};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use lakehouse_extension::{HybridRequest, SearchOptions, SearchRequest, TextSearchRequest};

use super::search::Searcher;
use crate::error::{Error, Result};

/// Rows each search contributes when the request names no number.
fn default_candidates(k: usize) -> usize {
    (5 * k).max(50)
}

/// Reciprocal rank fusion of rankings (row addresses, best first) with
/// their weights: each address with its fused score, best first; ties keep
/// the order in which the rankings first name them.
pub fn fuse(rankings: &[(&[u64], f32)], rrf_k: f32) -> Vec<(u64, f32)> {
    let mut scores: HashMap<u64, (f32, usize)> = HashMap::new();
    let mut seen = 0;
    for (ranking, weight) in rankings {
        for (rank, address) in ranking.iter().enumerate() {
            let entry = scores.entry(*address).or_insert_with(|| {
                seen += 1;
                (0.0, seen)
            });
            entry.0 += weight / (rrf_k + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(u64, f32, usize)> = scores
        .into_iter()
        .map(|(address, (score, first))| (address, score, first))
        .collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused.into_iter().map(|(a, s, _)| (a, s)).collect()
}

impl Searcher {
    pub(super) async fn run_hybrid(&self, request: HybridRequest) -> Result<Vec<RecordBatch>> {
        let options = &request.options;
        let vector_weight = options.vector_weight.unwrap_or(1.0);
        let text_weight = options.text_weight.unwrap_or(1.0);
        let rrf_k = options.rrf_k.unwrap_or(60.0);
        for (name, value) in [
            ("vector_weight", vector_weight),
            ("text_weight", text_weight),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::invalid(format!(
                    "hybrid: {name} must be a number of 0 or more, not {value}"
                )));
            }
        }
        if !(rrf_k.is_finite() && rrf_k >= 0.0) {
            return Err(Error::invalid(format!(
                "hybrid: rrf_k must be a number of 0 or more, not {rrf_k}"
            )));
        }
        let candidates = options
            .candidates
            .unwrap_or_else(|| default_candidates(request.k))
            .max(request.k);
        let (_, manifest) = self.vector_table(&request.table)?;
        let by_vector = self.run(
            SearchRequest {
                table: request.table.clone(),
                column: request.vector_column.clone(),
                query: request.vector.clone(),
                k: candidates,
                filter: request.filter.clone(),
                options: SearchOptions {
                    ef: options.ef,
                    ..SearchOptions::default()
                },
                columns: None,
            },
            true,
        );
        let by_text = self.run_text(
            TextSearchRequest {
                table: request.table.clone(),
                column: request.text_column.clone(),
                query: request.text.clone(),
                k: candidates,
                filter: request.filter.clone(),
            },
            true,
        );
        let (by_vector, by_text) = tokio::try_join!(by_vector, by_text)?;
        let by_vector = one_batch(by_vector)?;
        let by_text = one_batch(by_text)?;
        let vector_ranking = addresses(&by_vector)?;
        let text_ranking = addresses(&by_text)?;
        let mut fused = fuse(
            &[
                (vector_ranking.as_slice(), vector_weight),
                (text_ranking.as_slice(), text_weight),
            ],
            rrf_k,
        );
        fused.truncate(request.k);
        let rows_of = |ranking: &[u64], source: usize| -> HashMap<u64, (usize, usize)> {
            ranking
                .iter()
                .enumerate()
                .map(|(row, address)| (*address, (source, row)))
                .collect()
        };
        let mut found = rows_of(&text_ranking, 1);
        found.extend(rows_of(&vector_ranking, 0));
        let picks: Vec<(usize, usize)> = fused.iter().map(|(address, _)| found[address]).collect();
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for field in manifest.schema.fields() {
            let name = field.name();
            let sources = [&by_vector, &by_text].map(|b| b.column_by_name(name));
            let [Some(from_vector), Some(from_text)] = sources else {
                return Err(Error::internal(format!(
                    "a hybrid search lost column {name}"
                )));
            };
            columns.push(
                interleave(&[from_vector.as_ref(), from_text.as_ref()], &picks)
                    .map_err(|e| Error::internal(format!("assembling hybrid rows: {e}")))?,
            );
            fields.push(field.as_ref().clone());
        }
        fields.push(Field::new("_score", DataType::Float32, true));
        columns.push(Arc::new(Float32Array::from_iter_values(
            fused.iter().map(|(_, score)| *score),
        )));
        Ok(vec![
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
                .map_err(|e| Error::internal(format!("assembling hybrid rows: {e}")))?,
        ])
    }
}

fn one_batch(batches: Vec<RecordBatch>) -> Result<RecordBatch> {
    match batches.as_slice() {
        [one] => Ok(one.clone()),
        _ => {
            let schema = batches
                .first()
                .map(|b| b.schema())
                .ok_or_else(|| Error::internal("a search returned no batch"))?;
            concat_batches(&schema, &batches)
                .map_err(|e| Error::internal(format!("joining search results: {e}")))
        }
    }
}

fn addresses(batch: &RecordBatch) -> Result<Vec<u64>> {
    let column = batch
        .column_by_name(lance_core::ROW_ADDR)
        .ok_or_else(|| Error::internal("a search asked for row addresses returned none"))?;
    if column.null_count() > 0 {
        return Err(Error::internal("a search returned rows without addresses"));
    }
    Ok(column.as_primitive::<UInt64Type>().values().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_both_rankings_find_come_first() {
        let vector = [1, 2, 3, 4];
        let text = [3, 5, 1];
        let fused = fuse(&[(&vector[..], 1.0), (&text[..], 1.0)], 60.0);
        let order: Vec<u64> = fused.iter().map(|(a, _)| *a).collect();
        assert_eq!(order, vec![1, 3, 2, 5, 4]);
        let top = 1.0 / 61.0 + 1.0 / 63.0;
        assert!((fused[0].1 - top).abs() < 1e-6);
    }

    #[test]
    fn weights_move_a_ranking_up_or_out() {
        let vector = [1, 2];
        let text = [3, 4];
        let text_first = fuse(&[(&vector[..], 1.0), (&text[..], 2.0)], 60.0);
        assert_eq!(text_first[0].0, 3);
        let vector_only = fuse(&[(&vector[..], 1.0), (&text[..], 0.0)], 60.0);
        assert_eq!(vector_only[0].0, 1);
        assert_eq!(vector_only[2].1, 0.0);
    }
}
