//! Process-wide counters for `/metrics`, in Prometheus' text format.
//!
//! One static set, as Prometheus client libraries keep a default registry:
//! the Flight layer records requests, bytes, rows and query latency; the
//! catalog records commits and conflicts. Everything is an atomic or a
//! short critical section, so recording costs nothing a query would notice.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds (seconds) of the query-latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric the server exports.
pub struct Metrics {
    /// (RPC, gRPC code name) -> calls.
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// (HTTP API route, status) -> requests.
    http_requests: Mutex<BTreeMap<(String, u16), u64>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    rows_in: AtomicU64,
    rows_out: AtomicU64,
    active_queries: AtomicI64,
    queued_queries: AtomicI64,
    /// Per bucket (not cumulative), plus one past the last bound.
    latency_counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
    commits: AtomicU64,
    commit_conflicts: AtomicU64,
    fsyncs: AtomicU64,
    fsync_micros: AtomicU64,
    accelerated_bytes: AtomicU64,
    accelerated_scans: AtomicU64,
}

static METRICS: Metrics = Metrics::new();

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    const fn new() -> Self {
        Self {
            requests: Mutex::new(BTreeMap::new()),
            http_requests: Mutex::new(BTreeMap::new()),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            active_queries: AtomicI64::new(0),
            queued_queries: AtomicI64::new(0),
            latency_counts: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len() + 1],
            latency_sum_micros: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            commit_conflicts: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            fsync_micros: AtomicU64::new(0),
            accelerated_bytes: AtomicU64::new(0),
            accelerated_scans: AtomicU64::new(0),
        }
    }

    /// One HTTP API request to `route` (as routed, e.g.
    /// `/v1/tables/{name}`) answered with `status`.
    pub fn http_request(&self, route: &str, status: u16) {
        *self
            .http_requests
            .lock()
            .entry((route.to_string(), status))
            .or_default() += 1;
    }

    /// One finished call of `rpc` with the gRPC status `code` (its
    /// canonical name, e.g. `NOT_FOUND`).
    pub fn request(&self, rpc: &'static str, code: &'static str) {
        *self.requests.lock().entry((rpc, code)).or_default() += 1;
    }

    pub fn bytes_in(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn bytes_out(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn rows_in(&self, rows: u64) {
        self.rows_in.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn rows_out(&self, rows: u64) {
        self.rows_out.fetch_add(rows, Ordering::Relaxed);
    }

    /// Counts a query as running until the guard drops, then records its
    /// latency.
    pub fn query_started(&'static self) -> QueryGuard {
        self.active_queries.fetch_add(1, Ordering::Relaxed);
        QueryGuard {
            metrics: self,
            started: std::time::Instant::now(),
        }
    }

    /// Counts a query as waiting for a slot until the guard drops.
    pub fn query_queued(&'static self) -> QueuedGuard {
        self.queued_queries.fetch_add(1, Ordering::Relaxed);
        QueuedGuard { metrics: self }
    }

    fn query_finished(&self, took: Duration) {
        self.active_queries.fetch_sub(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn commit_conflict(&self) {
        self.commit_conflicts.fetch_add(1, Ordering::Relaxed);
    }

    /// One file made durable (its fsync and its directories'), taking `took`.
    pub fn fsynced(&self, took: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Bytes the in-memory copies of accelerated tables hold now.
    pub fn accelerated_bytes(&self, bytes: u64) {
        self.accelerated_bytes.store(bytes, Ordering::Relaxed);
    }

    /// One table scan served from an accelerated table's memory copy.
    pub fn accelerated_scan(&self) {
        self.accelerated_scans.fetch_add(1, Ordering::Relaxed);
    }

    /// All metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP lakehouse_requests_total Flight RPCs finished, by RPC and gRPC status code.\n",
        );
        out.push_str("# TYPE lakehouse_requests_total counter\n");
        for ((rpc, code), count) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "lakehouse_requests_total{{rpc=\"{rpc}\",code=\"{code}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP lakehouse_http_requests_total HTTP API requests answered, by route and status.\n",
        );
        out.push_str("# TYPE lakehouse_http_requests_total counter\n");
        for ((route, status), count) in self.http_requests.lock().iter() {
            let _ = writeln!(
                out,
                "lakehouse_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        let counters = [
            (
                "lakehouse_received_bytes_total",
                "Request bytes received (all RPCs).",
                &self.bytes_in,
            ),
            (
                "lakehouse_sent_bytes_total",
                "Arrow IPC bytes sent in query results.",
                &self.bytes_out,
            ),
            (
                "lakehouse_ingested_rows_total",
                "Rows added by committed versions.",
                &self.rows_in,
            ),
            (
                "lakehouse_result_rows_total",
                "Rows sent in query results.",
                &self.rows_out,
            ),
            (
                "lakehouse_catalog_commits_total",
                "Table versions committed.",
                &self.commits,
            ),
            (
                "lakehouse_catalog_commit_conflicts_total",
                "Commits that found their version taken by another writer and retried.",
                &self.commit_conflicts,
            ),
            (
                "lakehouse_fsyncs_total",
                "Files on local storage made durable (fsync of the file and its directories).",
                &self.fsyncs,
            ),
            (
                "lakehouse_accelerated_scans_total",
                "Table scans served from an accelerated table's in-memory copy.",
                &self.accelerated_scans,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP lakehouse_fsync_seconds_total Time spent making files on local storage durable.\n\
             # TYPE lakehouse_fsync_seconds_total counter\nlakehouse_fsync_seconds_total {}",
            self.fsync_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP lakehouse_active_queries Query results being streamed now.\n\
             # TYPE lakehouse_active_queries gauge\nlakehouse_active_queries {}",
            self.active_queries.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP lakehouse_accelerated_bytes Memory held by the copies of accelerated tables (acceleration_memory_mb).\n\
             # TYPE lakehouse_accelerated_bytes gauge\nlakehouse_accelerated_bytes {}",
            self.accelerated_bytes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP lakehouse_queued_queries Queries waiting for a slot (max_running_queries).\n\
             # TYPE lakehouse_queued_queries gauge\nlakehouse_queued_queries {}",
            self.queued_queries.load(Ordering::Relaxed)
        );
        out.push_str("# HELP lakehouse_query_duration_seconds Time from DoGet to the last result batch sent.\n");
        out.push_str("# TYPE lakehouse_query_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, count) in self.latency_counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = LATENCY_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "lakehouse_query_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "lakehouse_query_duration_seconds_sum {}\nlakehouse_query_duration_seconds_count {cumulative}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        out
    }
}

/// A running query; records its end when dropped (finished, failed or
/// abandoned by the client).
pub struct QueryGuard {
    metrics: &'static Metrics,
    started: std::time::Instant,
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        self.metrics.query_finished(self.started.elapsed());
    }
}

/// A query waiting for a slot; stops counting when dropped.
pub struct QueuedGuard {
    metrics: &'static Metrics,
}

impl Drop for QueuedGuard {
    fn drop(&mut self) {
        self.metrics.queued_queries.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::new();
        m.request("DoGet", "OK");
        m.request("DoGet", "OK");
        m.request("DoPut", "PERMISSION_DENIED");
        m.http_request("/v1/sql", 400);
        m.bytes_out(10);
        m.fsynced(Duration::from_millis(1500));
        m.query_finished(Duration::from_millis(3));
        m.query_finished(Duration::from_secs(60));
        let text = m.render();
        assert!(
            text.contains("lakehouse_requests_total{rpc=\"DoGet\",code=\"OK\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("lakehouse_requests_total{rpc=\"DoPut\",code=\"PERMISSION_DENIED\"} 1\n")
        );
        assert!(text.contains("lakehouse_sent_bytes_total 10\n"));
        assert!(
            text.contains("lakehouse_http_requests_total{route=\"/v1/sql\",status=\"400\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("lakehouse_fsyncs_total 1\n"), "{text}");
        assert!(
            text.contains("lakehouse_fsync_seconds_total 1.5\n"),
            "{text}"
        );
        assert!(text.contains("lakehouse_query_duration_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("lakehouse_query_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("lakehouse_query_duration_seconds_bucket{le=\"30\"} 1\n"));
        assert!(text.contains("lakehouse_query_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("lakehouse_query_duration_seconds_count 2\n"));
    }
}
