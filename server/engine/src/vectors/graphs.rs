//! Resident HNSW graphs (`hnsw` indexes): a vector column's graph held in
//! memory between searches, the fastest way to answer `knn()`.
//!
//! Why: Lance's own indexes answer through its scan pipeline, whose fixed
//! cost (a plan and several task hand-offs per query) is about 1.6 ms a
//! search on two cores whatever the index does, fifteen times FAISS's
//! whole search; a graph searched in place answers in about 0.1 ms
//! (docs/performance.md, "knn").
//!
//! The Lance dataset stays the storage of record. A graph is derived data
//! kept beside it, `lance/<schema>/<table>/_graphs/<name>/<dataset
//! version>.{usearch,json}`: its keys are Lance row addresses (fragment id
//! << 32 | offset) and its description lists the fragments it holds, each
//! with its first data file. So one graph serves every version of the
//! table: rows of fragments it does not hold (appended since, rewritten,
//! or with deleted rows) are searched exactly beside it, and keys of
//! fragments a version does not have are filtered out. Appends extend the
//! graph in the background (a new pair of files at the new dataset
//! version; the older pair is removed). Graphs load on first use and at
//! start, and stay within a memory budget, the least recently used out
//! first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, FixedSizeListArray, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use lakehouse_extension::{IndexParams, Metric, Precision};
use lance::Dataset;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::{Error, Result};
use lakehouse_core::catalog::TableRef;

/// Neighbours per node when the request names none (FAISS's HNSW32).
pub const DEFAULT_M: usize = 32;
/// Candidate list while building (FAISS's default efConstruction).
pub const DEFAULT_EF_CONSTRUCTION: usize = 40;
/// Candidate list of a search that names no `ef`: recall@10 0.96 on
/// 100,000 clustered 384-d vectors at f16 (docs/performance.md).
pub const DEFAULT_EF_SEARCH: usize = 64;
/// How long a listing of a table's graphs is trusted before it is read
/// again, so graphs another server builds are found within this delay.
const LISTING_TTL: Duration = Duration::from_secs(5);
/// How often a long build says it is still working.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// One fragment a graph holds every row of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Held {
    pub id: u64,
    /// The fragment's first data file: a rewritten fragment has a new one.
    pub file: String,
}

/// What a graph file holds: written beside it as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphMeta {
    pub name: String,
    pub column: String,
    pub metric: Metric,
    pub precision: Precision,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub dimensions: usize,
    /// The dataset version it was built or last extended at.
    pub dataset_version: u64,
    pub fragments: Vec<Held>,
    pub rows: u64,
    pub built_at: DateTime<Utc>,
}

impl GraphMeta {
    fn options(&self) -> IndexOptions {
        IndexOptions {
            dimensions: self.dimensions,
            metric: match self.metric {
                Metric::L2 => MetricKind::L2sq,
                Metric::Cosine => MetricKind::Cos,
                Metric::Dot => MetricKind::IP,
            },
            quantization: match self.precision {
                Precision::F32 => ScalarKind::F32,
                Precision::F16 => ScalarKind::F16,
                Precision::I8 => ScalarKind::I8,
            },
            connectivity: self.m,
            expansion_add: self.ef_construction,
            expansion_search: self.ef_search,
            multi: false,
        }
    }
}

/// A graph in memory.
pub struct Graph {
    pub meta: GraphMeta,
    index: Index,
    /// Searches at the graph's own `ef` share it; one at another `ef` sets
    /// it (a property of the whole graph) under the write side.
    ef: parking_lot::RwLock<()>,
    bytes: usize,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("meta", &self.meta)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl Graph {
    /// The keys (row addresses) of up to `count` nearest vectors that
    /// `keep` accepts (all when `None`).
    pub fn search(
        &self,
        query: &[f32],
        count: usize,
        ef: Option<usize>,
        keep: Option<&(dyn Fn(u64) -> bool + Sync)>,
    ) -> Result<Vec<u64>> {
        let run = || {
            match keep {
                Some(keep) => self.index.filtered_search(query, count, keep),
                None => self.index.search(query, count),
            }
            .map(|matches| matches.keys)
            .map_err(|e| Error::internal(format!("searching graph {}: {e}", self.meta.name)))
        };
        match ef {
            Some(ef) if ef != self.meta.ef_search => {
                let _exclusive = self.ef.write();
                self.index.change_expansion_search(ef);
                let found = run();
                self.index.change_expansion_search(self.meta.ef_search);
                found
            }
            _ => {
                let _shared = self.ef.read();
                run()
            }
        }
    }

    /// Which of a version's fragments this graph holds, and whether it
    /// holds keys of fragments the version does not have.
    pub fn coverage<'a>(&self, fragments: impl Iterator<Item = (u64, &'a str, bool)>) -> Coverage {
        let held: HashMap<u64, &str> = self
            .meta
            .fragments
            .iter()
            .map(|h| (h.id, h.file.as_str()))
            .collect();
        let mut coverage = Coverage::default();
        for (id, file, has_deletions) in fragments {
            if !has_deletions && held.get(&id) == Some(&file) {
                coverage.held.insert(id);
            } else {
                coverage.not_held.push(id);
            }
        }
        coverage.extra_keys = coverage.held.len() < held.len();
        coverage
    }
}

/// How a graph covers one version of its table.
#[derive(Debug, Default)]
pub struct Coverage {
    /// Fragments whose rows are all in the graph, none deleted.
    pub held: HashSet<u64>,
    /// Fragments to search beside the graph.
    pub not_held: Vec<u64>,
    /// The graph has keys of fragments outside `held`, to filter out.
    pub extra_keys: bool,
}

/// A vector column's rows, read for a graph: row addresses and vectors.
pub struct Rows {
    pub addresses: UInt64Array,
    pub vectors: FixedSizeListArray,
}

/// The resident graphs of every vector table and where they are kept.
pub struct Graphs {
    store: Arc<dyn ObjectStore>,
    budget_bytes: usize,
    state: Mutex<State>,
    /// One load from storage at a time, so concurrent first searches load
    /// a graph once.
    loading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    clock: u64,
    listed: HashMap<TableRef, (Instant, Arc<Vec<GraphMeta>>)>,
    resident: HashMap<(TableRef, String), (Arc<Graph>, u64)>,
}

impl std::fmt::Debug for Graphs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graphs")
            .field("budget_bytes", &self.budget_bytes)
            .finish_non_exhaustive()
    }
}

fn graphs_prefix(table: &TableRef) -> Path {
    Path::from(format!("lance/{}/{}/_graphs", table.schema, table.table))
}

fn graph_path(table: &TableRef, name: &str, version: u64, extension: &str) -> Path {
    Path::from(format!(
        "lance/{}/{}/_graphs/{name}/{version:020}.{extension}",
        table.schema, table.table
    ))
}

/// The dataset version a stored graph file is of (`<version>.<extension>`).
fn file_version(path: &Path) -> Option<u64> {
    path.filename()?.split_once('.')?.0.parse().ok()
}

fn storage_error(doing: String) -> impl FnOnce(object_store::Error) -> Error {
    move |e| Error::storage(doing, e)
}

impl Graphs {
    pub fn new(store: Arc<dyn ObjectStore>, budget_bytes: usize) -> Self {
        Self {
            store,
            budget_bytes,
            state: Mutex::new(State::default()),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// The newest graph of each name of a table, as stored.
    pub async fn list(&self, table: &TableRef) -> Result<Arc<Vec<GraphMeta>>> {
        if let Some((at, listed)) = self.state.lock().listed.get(table)
            && at.elapsed() < LISTING_TTL
        {
            return Ok(listed.clone());
        }
        let prefix = graphs_prefix(table);
        let files: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(storage_error(format!("listing the graphs of {table}")))?;
        let mut newest: HashMap<String, (u64, Path)> = HashMap::new();
        for file in files {
            let Some(rest) = file.location.as_ref().strip_prefix(prefix.as_ref()) else {
                continue;
            };
            let Some((name, file_name)) = rest.trim_start_matches('/').split_once('/') else {
                continue;
            };
            let Some(version) = file_name
                .strip_suffix(".json")
                .and_then(|stem| stem.parse::<u64>().ok())
            else {
                continue;
            };
            if newest.get(name).is_none_or(|(v, _)| *v < version) {
                newest.insert(name.to_string(), (version, file.location.clone()));
            }
        }
        let mut metas = Vec::with_capacity(newest.len());
        for (_, path) in newest.into_values() {
            match self.store.get(&path).await {
                Ok(got) => {
                    let bytes = got
                        .bytes()
                        .await
                        .map_err(storage_error(format!("reading {path}")))?;
                    match serde_json::from_slice::<GraphMeta>(&bytes) {
                        Ok(meta) => metas.push(meta),
                        Err(e) => {
                            warn!(table = %table, file = %path, error = %e, "skipping an unreadable graph description")
                        }
                    }
                }
                // Removed by an extension that replaced it since the listing.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::storage(format!("reading {path}"), e)),
            }
        }
        metas.sort_by(|a, b| a.name.cmp(&b.name));
        let metas = Arc::new(metas);
        self.state
            .lock()
            .listed
            .insert(table.clone(), (Instant::now(), metas.clone()));
        Ok(metas)
    }

    fn forget_listing(&self, table: &TableRef) {
        self.state.lock().listed.remove(table);
    }

    /// The graph to search `column` with (in `metric`, when given), loaded.
    /// `None` when there is none, or it does not fit the memory budget
    /// (then logged, and Lance's indexes answer).
    pub async fn for_column(
        &self,
        table: &TableRef,
        column: &str,
        metric: Option<Metric>,
    ) -> Result<Option<Arc<Graph>>> {
        let listed = self.list(table).await?;
        let Some(meta) = listed
            .iter()
            .filter(|m| m.column == column && metric.is_none_or(|wanted| wanted == m.metric))
            .max_by_key(|m| m.dataset_version)
        else {
            return Ok(None);
        };
        self.load(table, meta).await
    }

    /// A graph from memory, else from storage.
    pub async fn load(&self, table: &TableRef, meta: &GraphMeta) -> Result<Option<Arc<Graph>>> {
        if let Some(graph) = self.resident(table, meta) {
            return Ok(Some(graph));
        }
        let _one_at_a_time = self.loading.lock().await;
        if let Some(graph) = self.resident(table, meta) {
            return Ok(Some(graph));
        }
        let path = graph_path(table, &meta.name, meta.dataset_version, "usearch");
        let bytes = match self.store.get(&path).await {
            Ok(got) => got
                .bytes()
                .await
                .map_err(storage_error(format!("reading graph {path}")))?,
            Err(object_store::Error::NotFound { .. }) => {
                self.forget_listing(table);
                return Ok(None);
            }
            Err(e) => return Err(Error::storage(format!("reading graph {path}"), e)),
        };
        if bytes.len() > self.budget_bytes {
            warn!(table = %table, graph = %meta.name, bytes = bytes.len(), budget = self.budget_bytes,
                "the graph is larger than vector_graph_memory_mb; knn uses the table's Lance indexes");
            return Ok(None);
        }
        let started = Instant::now();
        let meta = meta.clone();
        let graph = tokio::task::spawn_blocking(move || from_bytes(meta, &bytes))
            .await
            .map_err(|e| Error::internal(format!("loading a graph: {e}")))??;
        info!(table = %table, graph = %graph.meta.name, rows = graph.meta.rows, bytes = graph.bytes,
            seconds = started.elapsed().as_secs_f64(), "graph loaded");
        Ok(Some(self.keep(table, graph)))
    }

    fn resident(&self, table: &TableRef, meta: &GraphMeta) -> Option<Arc<Graph>> {
        let mut state = self.state.lock();
        state.clock += 1;
        let now = state.clock;
        let (graph, used) = state
            .resident
            .get_mut(&(table.clone(), meta.name.clone()))?;
        // A newer build (extended, or rebuilt with `replace`) is loaded.
        if (graph.meta.dataset_version, graph.meta.built_at) < (meta.dataset_version, meta.built_at)
        {
            return None;
        }
        *used = now;
        Some(graph.clone())
    }

    /// Keeps a graph resident (replacing an older one of its name), then
    /// evicts the least recently used others while over budget. A graph
    /// larger than the whole budget (one just built) serves the call that
    /// made it and is not kept.
    fn keep(&self, table: &TableRef, graph: Graph) -> Arc<Graph> {
        let graph = Arc::new(graph);
        if graph.bytes > self.budget_bytes {
            warn!(table = %table, graph = %graph.meta.name, bytes = graph.bytes, budget = self.budget_bytes,
                "the graph is larger than vector_graph_memory_mb; knn uses the table's Lance indexes");
            return graph;
        }
        let mut state = self.state.lock();
        state.clock += 1;
        let now = state.clock;
        let key = (table.clone(), graph.meta.name.clone());
        state.resident.insert(key.clone(), (graph.clone(), now));
        loop {
            let total: usize = state.resident.values().map(|(g, _)| g.bytes).sum();
            if total <= self.budget_bytes {
                break;
            }
            let Some(oldest) = state
                .resident
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            info!(table = %oldest.0, graph = %oldest.1, "graph evicted from memory (vector_graph_memory_mb)");
            state.resident.remove(&oldest);
        }
        graph
    }

    /// Builds a graph of `rows` (a stream of a dataset version's held
    /// fragments) and stores it.
    pub async fn build(
        &self,
        table: &TableRef,
        mut meta: GraphMeta,
        rows: impl futures::Stream<Item = Result<Rows>>,
        base: Option<Arc<Graph>>,
    ) -> Result<Arc<Graph>> {
        let options = meta.options();
        let base_bytes = match &base {
            Some(graph) => Some(to_bytes(&graph.index, &meta.name)?),
            None => None,
        };
        let index = Index::new(&options)
            .map_err(|e| Error::internal(format!("creating graph {}: {e}", meta.name)))?;
        if let Some(bytes) = &base_bytes {
            index
                .load_from_buffer(bytes)
                .map_err(|e| Error::internal(format!("copying graph {}: {e}", meta.name)))?;
        }
        drop(base_bytes);
        let index = Arc::new(index);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let started = Instant::now();
        let mut reported = Instant::now();
        let mut added = 0u64;
        futures::pin_mut!(rows);
        while let Some(batch) = rows.try_next().await? {
            let index = index.clone();
            let name = meta.name.clone();
            let count = batch.addresses.len();
            tokio::task::spawn_blocking(move || add_rows(&index, &batch, threads, &name))
                .await
                .map_err(|e| Error::internal(format!("building a graph: {e}")))??;
            added += count as u64;
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                info!(table = %table, graph = %meta.name, rows_added = added, elapsed_secs = started.elapsed().as_secs(), "graph build in progress");
            }
        }
        let index = Arc::into_inner(index).expect("the build's tasks have finished");
        meta.rows = index.size() as u64;
        meta.built_at = Utc::now();
        let bytes = to_bytes(&index, &meta.name)?;
        let stored = bytes.len();
        let data = graph_path(table, &meta.name, meta.dataset_version, "usearch");
        self.store
            .put(&data, bytes.into())
            .await
            .map_err(storage_error(format!("writing graph {data}")))?;
        let described = graph_path(table, &meta.name, meta.dataset_version, "json");
        let json = serde_json::to_vec_pretty(&meta).expect("a graph description serializes");
        self.store
            .put(&described, json.into())
            .await
            .map_err(storage_error(format!(
                "writing graph description {described}"
            )))?;
        info!(table = %table, graph = %meta.name, rows = meta.rows, added, bytes = stored,
            seconds = started.elapsed().as_secs_f64(), "graph stored");
        self.prune(table, &meta.name, meta.dataset_version).await;
        self.forget_listing(table);
        let graph = Graph {
            bytes: index.memory_usage(),
            meta,
            index,
            ef: parking_lot::RwLock::new(()),
        };
        Ok(self.keep(table, graph))
    }

    /// The stored files of one graph, descriptions first, so that removing
    /// them in this order never leaves a listing naming missing data.
    async fn stored_files(&self, table: &TableRef, name: &str) -> Result<Vec<Path>> {
        let prefix = Path::from(format!("{}/{name}", graphs_prefix(table)));
        let files: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(storage_error(format!("listing graph {name} of {table}")))?;
        let mut paths: Vec<Path> = files.into_iter().map(|f| f.location).collect();
        paths.sort_by_key(|p| !p.as_ref().ends_with(".json"));
        Ok(paths)
    }

    async fn remove(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::storage(format!("removing graph file {path}"), e)),
        }
    }

    /// Removes the stored versions of a graph older than `keep` (the ones
    /// it replaced; a newer one another server stored meanwhile stays); a
    /// failure only leaves files behind, so it is logged.
    async fn prune(&self, table: &TableRef, name: &str, keep: u64) {
        let pruned = async {
            for path in self.stored_files(table, name).await? {
                if file_version(&path).is_some_and(|version| version < keep) {
                    self.remove(&path).await?;
                }
            }
            Ok::<_, Error>(())
        };
        if let Err(e) = pruned.await {
            warn!(table = %table, graph = name, error = %e, "could not remove replaced graph files");
        }
    }

    /// Removes every stored version of a graph; whether it had one.
    pub async fn drop_graph(&self, table: &TableRef, name: &str) -> Result<bool> {
        let files = self.stored_files(table, name).await?;
        for path in &files {
            self.remove(path).await?;
        }
        let mut state = self.state.lock();
        state.listed.remove(table);
        state.resident.remove(&(table.clone(), name.to_string()));
        Ok(!files.is_empty())
    }

    /// Moves every stored graph of table `from` to table `to` (renamed),
    /// resident ones included.
    pub async fn rename(&self, from: &TableRef, to: &TableRef) -> Result<()> {
        let source = graphs_prefix(from);
        let files: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&source))
            .try_collect()
            .await
            .map_err(storage_error(format!("listing the graphs of {from}")))?;
        let target = graphs_prefix(to);
        for file in &files {
            let Some(relative) = file.location.prefix_match(&source) else {
                continue;
            };
            let moved = relative.fold(target.clone(), |path, part| path.join(part));
            self.store
                .copy(&file.location, &moved)
                .await
                .map_err(storage_error(format!(
                    "copying graph file {} to {moved}",
                    file.location
                )))?;
        }
        for file in &files {
            self.remove(&file.location).await?;
        }
        let mut state = self.state.lock();
        state.listed.remove(from);
        state.listed.remove(to);
        let moved: Vec<_> = state
            .resident
            .keys()
            .filter(|(table, _)| table == from)
            .cloned()
            .collect();
        for key in moved {
            if let Some(graph) = state.resident.remove(&key) {
                state.resident.insert((to.clone(), key.1), graph);
            }
        }
        Ok(())
    }

    /// Removes every graph of a table (its dataset was replaced).
    pub async fn drop_all(&self, table: &TableRef) -> Result<()> {
        for meta in self.list(table).await?.iter() {
            self.drop_graph(table, &meta.name).await?;
        }
        Ok(())
    }
}

/// A graph's description for a new build over `column`.
pub fn describe(
    name: String,
    column: &str,
    metric: Metric,
    dimensions: usize,
    params: &IndexParams,
    dataset: &Dataset,
    fragments: Vec<Held>,
) -> GraphMeta {
    GraphMeta {
        name,
        column: column.to_string(),
        metric,
        precision: params.precision.unwrap_or(Precision::F16),
        m: params.m.unwrap_or(DEFAULT_M),
        ef_construction: params.ef_construction.unwrap_or(DEFAULT_EF_CONSTRUCTION),
        ef_search: params.ef_search.unwrap_or(DEFAULT_EF_SEARCH),
        dimensions,
        dataset_version: dataset.version().version,
        fragments,
        rows: 0,
        built_at: Utc::now(),
    }
}

fn to_bytes(index: &Index, name: &str) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; index.serialized_length()];
    index
        .save_to_buffer(&mut bytes)
        .map_err(|e| Error::internal(format!("saving graph {name}: {e}")))?;
    Ok(bytes)
}

fn from_bytes(meta: GraphMeta, bytes: &[u8]) -> Result<Graph> {
    let index = Index::new(&meta.options())
        .map_err(|e| Error::internal(format!("creating graph {}: {e}", meta.name)))?;
    index
        .load_from_buffer(bytes)
        .map_err(|e| Error::internal(format!("loading graph {}: {e}", meta.name)))?;
    Ok(Graph {
        bytes: index.memory_usage(),
        meta,
        index,
        ef: parking_lot::RwLock::new(()),
    })
}

/// Adds one batch of rows on `threads` threads (null vectors are skipped:
/// they have no neighbours).
fn add_rows(index: &Index, rows: &Rows, threads: usize, name: &str) -> Result<()> {
    let needed = index.size() + rows.addresses.len();
    if needed > index.capacity() {
        index
            .reserve_capacity_and_threads(needed.max(index.capacity() * 2), threads)
            .map_err(|e| Error::internal(format!("growing graph {name}: {e}")))?;
    }
    let values = cast(rows.vectors.values(), &DataType::Float32)
        .map_err(|e| Error::internal(format!("reading vectors for graph {name}: {e}")))?;
    let values = values.as_primitive::<Float32Type>().values();
    let dims = rows.vectors.value_length() as usize;
    let failed = Mutex::new(None);
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let failed = &failed;
            scope.spawn(move || {
                for row in (thread..rows.addresses.len()).step_by(threads) {
                    if rows.vectors.is_null(row) {
                        continue;
                    }
                    let start = (rows.vectors.offset() + row) * dims;
                    if let Err(e) =
                        index.add(rows.addresses.value(row), &values[start..start + dims])
                    {
                        *failed.lock() = Some(e.to_string());
                        return;
                    }
                }
            });
        }
    });
    match failed.into_inner() {
        Some(e) => Err(Error::internal(format!("adding to graph {name}: {e}"))),
        None => Ok(()),
    }
}

/// Exact distance in a metric, as Lance defines it (squared L2; 1 - cosine
/// similarity; 1 - dot product).
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum(),
        Metric::Dot => 1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>(),
        Metric::Cosine => {
            let (mut dot, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
            for (x, y) in a.iter().zip(b) {
                dot += x * y;
                aa += x * x;
                bb += y * y;
            }
            if aa == 0.0 || bb == 0.0 {
                1.0
            } else {
                1.0 - dot / (aa.sqrt() * bb.sqrt())
            }
        }
    }
}

/// The vectors of a column as f32, row by row (`None` for a null).
pub fn vectors_f32(column: &dyn Array) -> Result<Vec<Option<Vec<f32>>>> {
    let list = column
        .as_fixed_size_list_opt()
        .ok_or_else(|| Error::internal("a vector column is not a fixed-size list"))?;
    let dims = list.value_length() as usize;
    let values = cast(list.values(), &DataType::Float32)
        .map_err(|e| Error::internal(format!("reading vectors: {e}")))?;
    let values = values.as_primitive::<Float32Type>().values();
    Ok((0..list.len())
        .map(|row| {
            (!list.is_null(row)).then(|| {
                let start = (list.offset() + row) * dims;
                values[start..start + dims].to_vec()
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_lances() {
        let a = [1.0, 0.0];
        let b = [0.0, 2.0];
        assert_eq!(distance(Metric::L2, &a, &b), 5.0);
        assert_eq!(distance(Metric::Dot, &a, &b), 1.0);
        assert!((distance(Metric::Cosine, &a, &b) - 1.0).abs() < 1e-6);
        assert!(distance(Metric::Cosine, &a, &a).abs() < 1e-6);
    }

    fn meta(fragments: &[(u64, &str)]) -> GraphMeta {
        GraphMeta {
            name: "g".into(),
            column: "v".into(),
            metric: Metric::L2,
            precision: Precision::F32,
            m: 8,
            ef_construction: 40,
            ef_search: 16,
            dimensions: 2,
            dataset_version: 1,
            fragments: fragments
                .iter()
                .map(|(id, file)| Held {
                    id: *id,
                    file: file.to_string(),
                })
                .collect(),
            rows: 0,
            built_at: Utc::now(),
        }
    }

    fn graph(fragments: &[(u64, &str)], points: &[(u64, [f32; 2])]) -> Graph {
        let meta = meta(fragments);
        let index = Index::new(&meta.options()).unwrap();
        index.reserve(points.len()).unwrap();
        for (key, point) in points {
            index.add(*key, point).unwrap();
        }
        Graph {
            bytes: index.memory_usage(),
            meta,
            index,
            ef: parking_lot::RwLock::new(()),
        }
    }

    #[test]
    fn coverage_holds_only_unchanged_fragments_without_deletions() {
        let g = graph(&[(0, "a"), (1, "b"), (2, "c")], &[]);
        let version = [
            (0, "a", false),
            (1, "b2", false),
            (2, "c", true),
            (3, "d", false),
        ];
        let coverage = g.coverage(version.into_iter());
        assert_eq!(coverage.held, HashSet::from([0]));
        assert_eq!(coverage.not_held, vec![1, 2, 3]);
        assert!(coverage.extra_keys);
        let all = g.coverage([(0, "a", false), (1, "b", false), (2, "c", false)].into_iter());
        assert!(!all.extra_keys);
        assert!(all.not_held.is_empty());
    }

    #[test]
    fn searches_nearest_first_and_filters_keys() {
        let points: Vec<(u64, [f32; 2])> = (0..100u64).map(|i| (i, [i as f32, 0.0])).collect();
        let g = graph(&[(0, "a")], &points);
        assert_eq!(
            g.search(&[10.2, 0.0], 3, None, None).unwrap(),
            vec![10, 11, 9]
        );
        let odd = |key: u64| key % 2 == 1;
        assert_eq!(
            g.search(&[10.2, 0.0], 2, Some(200), Some(&odd)).unwrap(),
            vec![11, 9]
        );
    }

    #[test]
    fn a_graph_survives_storage_round_trips() {
        let points: Vec<(u64, [f32; 2])> = (0..50u64).map(|i| (i << 32, [i as f32, 1.0])).collect();
        let g = graph(&[(0, "a")], &points);
        let bytes = to_bytes(&g.index, "g").unwrap();
        let back = from_bytes(g.meta.clone(), &bytes).unwrap();
        assert_eq!(
            back.search(&[3.0, 1.0], 1, None, None).unwrap(),
            vec![3 << 32]
        );
    }
}
