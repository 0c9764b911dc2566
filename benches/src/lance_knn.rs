//! The layer under `knn()`: nearest-neighbour search straight on a Lance
//! dataset, configured as the server's search configures it (the same
//! `ef`, exact re-ranking of the k found), one query at a time.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::array::{Array, Float32Array, Int64Array};
use lakehouse_engine::vectors::default_ef;
use lance::dataset::builder::DatasetBuilder;

/// What to search: the dataset, its vector column and the query vectors
/// (little-endian f32, `dim` per query).
pub struct KnnWorkload<'a> {
    pub dataset: &'a str,
    pub column: &'a str,
    pub vectors: &'a Path,
    pub dim: usize,
    pub k: usize,
}

/// Prints one JSON line per query vector: its wall times and the `id`
/// column of the last run's answer.
pub async fn run(workload: &KnnWorkload<'_>, warmup: usize, samples: usize) -> Result<()> {
    let bytes = std::fs::read(workload.vectors)
        .with_context(|| format!("reading {}", workload.vectors.display()))?;
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if workload.dim == 0 || !floats.len().is_multiple_of(workload.dim) {
        bail!(
            "{} holds {} floats, not a whole number of {}-d vectors",
            workload.vectors.display(),
            floats.len(),
            workload.dim
        );
    }
    let dataset = DatasetBuilder::from_uri(workload.dataset)
        .load()
        .await
        .with_context(|| format!("opening the Lance dataset {}", workload.dataset))?;
    for (i, vector) in floats.chunks(workload.dim).enumerate() {
        let query = Float32Array::from(vector.to_vec());
        let mut ms = Vec::with_capacity(samples);
        let mut ids = Vec::new();
        for run in 0..warmup + samples {
            let started = Instant::now();
            let mut scan = dataset.scan();
            scan.nearest(workload.column, &query, workload.k)?;
            scan.ef(default_ef(workload.k));
            scan.refine(1);
            let batch = scan.try_into_batch().await?;
            if run >= warmup {
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            let column = batch
                .column_by_name("id")
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .context("the dataset has no int64 id column")?;
            ids = column.iter().flatten().collect();
        }
        println!(
            "{}",
            serde_json::json!({ "query": format!("knn{i:05}"), "ms": ms, "rows": ids.len(), "ids": ids })
        );
    }
    Ok(())
}
