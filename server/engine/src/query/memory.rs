//! Memory for queries: one pool shared by all, spilling to disk, and a cap
//! per query.
//!
//! DataFusion's `FairSpillPool` bounds what all queries together reserve and
//! shares it fairly among operators that can spill (sorts, aggregations,
//! joins write to temporary files instead of failing). Each query gets its
//! own [`QueryPool`] over the shared one, so one query cannot take the
//! whole pool: past its cap its operators spill, and what cannot spill
//! fails with `ResourceExhausted` naming the setting.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// A query's view of the shared pool, capped at `limit` bytes.
#[derive(Debug)]
pub struct QueryPool {
    shared: Arc<dyn MemoryPool>,
    limit: usize,
    reserved: AtomicUsize,
}

impl QueryPool {
    pub fn new(shared: Arc<dyn MemoryPool>, limit: usize) -> Self {
        Self {
            shared,
            limit,
            reserved: AtomicUsize::new(0),
        }
    }
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "query pool of {} MiB over {}",
            self.limit >> 20,
            self.shared
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.shared.grow(reservation, additional);
        self.reserved.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.shared.shrink(reservation, shrink);
        self.reserved.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let before = self.reserved.fetch_add(additional, Ordering::Relaxed);
        if before + additional > self.limit {
            self.reserved.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the query needs more than its memory limit of {} MiB (query_memory_limit_mb) \
                 for {} and that operator cannot spill to disk; raise the limit or make the \
                 query smaller (filters, fewer columns, LIMIT)",
                self.limit >> 20,
                reservation.consumer().name()
            )));
        }
        if let Err(e) = self.shared.try_grow(reservation, additional) {
            self.reserved.fetch_sub(additional, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        match self.shared.memory_limit() {
            MemoryLimit::Finite(shared) => MemoryLimit::Finite(shared.min(self.limit)),
            _ => MemoryLimit::Finite(self.limit),
        }
    }
}

/// Bytes of physical memory, from /proc/meminfo (Linux); `None` elsewhere.
pub fn physical_memory() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn a_query_stops_at_its_own_cap_before_the_shared_pool() {
        let shared: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let query: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(shared.clone(), 600));
        let reservation = MemoryConsumer::new("HashJoin").register(&query);
        reservation.try_grow(500).unwrap();
        let refused = reservation.try_grow(200).unwrap_err().to_string();
        assert!(
            refused.contains("query_memory_limit_mb") && refused.contains("HashJoin"),
            "{refused}"
        );
        assert_eq!((query.reserved(), shared.reserved()), (500, 500));
        // Another query on the same shared pool meets the shared limit.
        let other: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(shared.clone(), 600));
        let second = MemoryConsumer::new("Sort").register(&other);
        assert!(second.try_grow(600).is_err());
        assert_eq!(other.reserved(), 0);
        reservation.free();
        second.try_grow(600).unwrap();
        assert_eq!(shared.reserved(), 600);
    }
}
