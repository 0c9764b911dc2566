//! `hnsw` indexes as the index actions see them: building a table's graph
//! from a dataset version, extending it with appended rows, loading every
//! graph at start. The graphs themselves are `graphs`' business.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;
use futures::{StreamExt, TryStreamExt};
use lakehouse_extension::{IndexInfo, IndexParams, IndexRequest, Metric};
use lance::Dataset;
use lance::index::DatasetIndexExt;
use tracing::{info, warn};

use super::graphs::{self, Graph, Held, Rows};
use super::{VectorTables, lance_error};
use crate::error::{Error, Result};
use lakehouse_core::catalog::{Catalog, Manifest, TableRef};

/// Rows read per batch while building: bounds the memory of a build to
/// the graph plus one batch of vectors.
const BUILD_BATCH_ROWS: usize = 8192;

impl VectorTables {
    /// Builds an `hnsw` index of `dimensions`-long vectors over the
    /// table's live version (`manifest`, `dataset`). The caller holds the
    /// table's write lock and has checked the column.
    pub(super) async fn create_graph(
        &self,
        table: &TableRef,
        manifest: &Manifest,
        dataset: &Dataset,
        dimensions: usize,
        request: IndexRequest,
    ) -> Result<IndexInfo> {
        let column = &request.column;
        check_params(&request.params)?;
        if dataset.manifest.uses_stable_row_ids() {
            return Err(Error::invalid(format!(
                "table {table} uses stable row ids, which hnsw indexes do not support yet; use ivf_hnsw_sq"
            )));
        }
        let name = request
            .name
            .clone()
            .unwrap_or_else(|| format!("{column}_idx"));
        let lance_names = dataset
            .load_indices()
            .await
            .map_err(|e| lance_error(table, "listing the indexes of", e))?;
        if lance_names.iter().any(|index| index.name == name) {
            return Err(super::indexes::name_taken(
                table,
                &name,
                "it is a Lance index: drop it first",
            ));
        }
        if !request.replace && self.graph_named(table, &name).await? {
            return Err(super::indexes::name_taken(
                table,
                &name,
                "pass \"replace\": true to rebuild it",
            ));
        }
        let (held, fragments) = held_fragments(dataset);
        let meta = graphs::describe(
            name.clone(),
            column,
            request.metric.unwrap_or(Metric::L2),
            dimensions,
            &request.params,
            dataset,
            held,
        );
        info!(table = %table, column = %column, index = %name, rows = manifest.total_rows(), m = meta.m,
            ef_construction = meta.ef_construction, precision = ?meta.precision, "building hnsw index");
        let started = Instant::now();
        let rows = read_rows(table, dataset, fragments, column)?;
        let graph = self.graphs.build(table, meta, rows, None).await?;
        info!(table = %table, index = %name, rows = graph.meta.rows, seconds = started.elapsed().as_secs_f64(), "hnsw index built");
        Ok(IndexInfo {
            name,
            columns: vec![column.clone()],
            index_type: "hnsw".to_string(),
            table_version: manifest.version,
        })
    }

    /// Whether the table has an `hnsw` index of this name.
    pub(super) async fn graph_named(&self, table: &TableRef, name: &str) -> Result<bool> {
        Ok(self
            .graphs
            .list(table)
            .await?
            .iter()
            .any(|g| g.name == name))
    }

    /// Adds the rows of fragments the table's current version has and a
    /// graph does not to that graph (appended rows), storing it at that
    /// version. One extension at a time, outside the table's write lock:
    /// appends do not wait for it.
    pub(super) async fn extend_graphs(&self, catalog: &Catalog, table: &TableRef) -> Result<()> {
        let _one_at_a_time = self.extending.lock().await;
        let listed = self.graphs.list(table).await?;
        if listed.is_empty() {
            return Ok(());
        }
        let dataset = &self
            .open(super::indexes::vector_manifest(catalog, table)?.as_ref())
            .await?;
        for meta in listed.iter() {
            let Some(graph) = self.graphs.load(table, meta).await? else {
                continue;
            };
            let coverage = graph.coverage(fragment_states(dataset));
            let (now_held, fragments) = held_fragments(dataset);
            let new: Vec<_> = fragments
                .into_iter()
                .filter(|f| {
                    coverage.not_held.contains(&f.id) && now_held.iter().any(|h| h.id == f.id)
                })
                .collect();
            if new.is_empty() {
                continue;
            }
            if coverage.extra_keys
                || new
                    .iter()
                    .any(|f| graph.meta.fragments.iter().any(|h| h.id == f.id))
            {
                // Rows were rewritten or deleted, not only appended: the
                // graph keeps serving what it holds; a rebuild replaces it.
                info!(table = %table, index = %meta.name, "rows of the hnsw index changed other than by appends; rebuild it (create_index with replace) to index them");
                continue;
            }
            let mut extended = graph.meta.clone();
            extended.dataset_version = dataset.version().version;
            extended.fragments.extend(
                now_held
                    .into_iter()
                    .filter(|h| new.iter().any(|f| f.id == h.id)),
            );
            let started = Instant::now();
            let rows = read_rows(table, dataset, new, &meta.column)?;
            let graph = self
                .graphs
                .build(table, extended, rows, Some(graph))
                .await?;
            info!(table = %table, index = %meta.name, rows = graph.meta.rows, seconds = started.elapsed().as_secs_f64(), "appended rows added to the hnsw index");
        }
        Ok(())
    }

    /// Removes a table's graphs after its dataset was replaced.
    pub(super) async fn forget_graphs(&self, table: &TableRef) {
        if let Err(e) = self.graphs.drop_all(table).await {
            warn!(table = %table, error = %e, "could not remove the hnsw indexes of a replaced table; they are no longer used");
        }
    }

    /// The graph to search a column of `table` with, if it has one that
    /// fits the memory budget.
    pub(super) async fn graph_for(
        &self,
        table: &TableRef,
        column: &str,
        metric: Option<Metric>,
    ) -> Result<Option<Arc<Graph>>> {
        self.graphs.for_column(table, column, metric).await
    }

    /// Loads every vector table's graphs, so the first searches after a
    /// start do not wait for them.
    pub async fn prewarm(&self, catalog: &Catalog) {
        let started = Instant::now();
        let mut loaded = 0;
        for schema in catalog.schema_names() {
            for manifest in catalog.tables_in(&schema) {
                if manifest.lance.is_none() {
                    continue;
                }
                let table = manifest.table.clone();
                let metas = match self.graphs.list(&table).await {
                    Ok(metas) => metas,
                    Err(e) => {
                        warn!(table = %table, error = %e, "could not list the hnsw indexes to load");
                        continue;
                    }
                };
                for meta in metas.iter() {
                    match self.graphs.load(&table, meta).await {
                        Ok(Some(_)) => loaded += 1,
                        Ok(None) => {}
                        Err(e) => {
                            warn!(table = %table, index = %meta.name, error = %e, "could not load an hnsw index; knn loads it when first needed")
                        }
                    }
                }
            }
        }
        if loaded > 0 {
            info!(
                graphs = loaded,
                seconds = started.elapsed().as_secs_f64(),
                "hnsw indexes loaded"
            );
        }
    }
}

/// Each fragment of a version: id, first data file, whether rows of it are
/// deleted.
pub(super) fn fragment_states(dataset: &Dataset) -> impl Iterator<Item = (u64, &str, bool)> {
    dataset.fragments().iter().map(|f| {
        (
            f.id,
            f.files.first().map_or("", |file| file.path.as_str()),
            f.deletion_file.is_some(),
        )
    })
}

/// The fragments a graph of this version can hold (those without deleted
/// rows), as described and as Lance scans them.
fn held_fragments(dataset: &Dataset) -> (Vec<Held>, Vec<lance::table::format::Fragment>) {
    let fragments: Vec<_> = dataset
        .fragments()
        .iter()
        .filter(|f| f.deletion_file.is_none() && !f.files.is_empty())
        .cloned()
        .collect();
    let held = fragments
        .iter()
        .map(|f| Held {
            id: f.id,
            file: f.files[0].path.clone(),
        })
        .collect();
    (held, fragments)
}

/// Row addresses and vectors of `column` in `fragments`, batch by batch.
fn read_rows(
    table: &TableRef,
    dataset: &Dataset,
    fragments: Vec<lance::table::format::Fragment>,
    column: &str,
) -> Result<impl futures::Stream<Item = Result<Rows>> + use<>> {
    let reading = |e: lance::Error| lance_error(table, "reading the vectors of", e);
    let mut scan = dataset.scan();
    scan.with_fragments(fragments)
        .project(&[column])
        .map_err(reading)?
        .with_row_address()
        .batch_size(BUILD_BATCH_ROWS);
    let table = table.clone();
    let column = column.to_string();
    let stream = futures::stream::once(async move { scan.try_into_stream().await })
        .map_ok(|batches| batches.map_err(lance::Error::from))
        .try_flatten()
        .map(move |batch| {
            let batch = batch.map_err(|e| lance_error(&table, "reading the vectors of", e))?;
            let addresses = batch
                .column_by_name(lance_core::ROW_ADDR)
                .map(|c| c.as_primitive::<UInt64Type>().clone())
                .ok_or_else(|| Error::internal("a scan with row addresses returned none"))?;
            let vectors = batch
                .column_by_name(&column)
                .and_then(|c| c.as_fixed_size_list_opt().cloned())
                .ok_or_else(|| Error::internal(format!("a scan of {column} did not return it")))?;
            Ok(Rows { addresses, vectors })
        });
    Ok(stream)
}

/// Refuses parameters an `hnsw` index does not take, or out of range.
fn check_params(params: &IndexParams) -> Result<()> {
    let ivf_only = [
        ("num_partitions", params.num_partitions.is_some()),
        ("num_sub_vectors", params.num_sub_vectors.is_some()),
        ("num_bits", params.num_bits.is_some()),
        ("sample_rate", params.sample_rate.is_some()),
        ("max_iterations", params.max_iterations.is_some()),
    ];
    if let Some((name, _)) = ivf_only.iter().find(|(_, given)| *given) {
        return Err(Error::invalid(format!(
            "{name} is a parameter of IVF indexes; an hnsw index takes m, ef_construction, ef_search and precision"
        )));
    }
    if let Some(m) = params.m
        && !(2..=256).contains(&m)
    {
        return Err(Error::invalid(format!(
            "m (neighbours per node) must be between 2 and 256, not {m}"
        )));
    }
    for (name, value) in [
        ("ef_construction", params.ef_construction),
        ("ef_search", params.ef_search),
    ] {
        if value == Some(0) {
            return Err(Error::invalid(format!("{name} must be at least 1")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::graphs::GraphMeta;

    #[test]
    fn ivf_parameters_are_refused_by_name() {
        let params = IndexParams {
            num_partitions: Some(4),
            ..IndexParams::default()
        };
        let message = check_params(&params).unwrap_err().to_string();
        assert!(message.contains("num_partitions"), "{message}");
        let params = IndexParams {
            m: Some(1),
            ..IndexParams::default()
        };
        assert!(
            check_params(&params)
                .unwrap_err()
                .to_string()
                .contains("between 2 and 256")
        );
        assert!(check_params(&IndexParams::default()).is_ok());
    }

    #[test]
    fn graph_metas_read_back() {
        let meta: GraphMeta = serde_json::from_str(
            r#"{"name":"g","column":"v","metric":"cosine","precision":"f16","m":32,"ef_construction":40,
            "ef_search":64,"dimensions":3,"dataset_version":2,"fragments":[{"id":0,"file":"a.lance"}],
            "rows":10,"built_at":"2026-12-06T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(meta.metric, Metric::Cosine);
        assert_eq!(meta.fragments[0].file, "a.lance");
    }
}
