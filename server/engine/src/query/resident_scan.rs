//! The scan of an accelerated table's in-memory copy: DataFusion's memory
//! source, reporting the statistics the table's file scan reports (the
//! manifest's row counts, bounds and null counts) instead of those it
//! computes from the batches.
//!
//! Computed from the batches, the total size is the memory the copy holds,
//! strings included, and no column has bounds, so filters are estimated
//! blind: DataFusion then built TPC-H q07's and q21's joins from filtered
//! lineitem instead of orders and ran them 1.3x and 1.9x slower than from
//! the files. With the file scan's statistics a query gets the plan it gets
//! over the files, minus the decoding.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use datafusion::common::{Result as DFResult, Statistics};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSource;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::DisplayFormatType;
use datafusion::physical_plan::execution_plan::SchedulingType;

/// Batches in memory, with the statistics of the table version they hold.
#[derive(Debug, Clone)]
pub struct ResidentScan {
    batches: MemorySourceConfig,
    /// Of every column of the version, before projection.
    statistics: Statistics,
}

impl ResidentScan {
    pub fn new(batches: MemorySourceConfig, statistics: Statistics) -> Self {
        Self {
            batches,
            statistics,
        }
    }

    /// `self` reading `batches`, a changed copy of its own.
    fn with_batches(&self, batches: Arc<dyn DataSource>) -> Option<Arc<dyn DataSource>> {
        let batches = (batches as Arc<dyn Any + Send + Sync>)
            .downcast::<MemorySourceConfig>()
            .ok()?;
        Some(Arc::new(Self {
            batches: batches.as_ref().clone(),
            statistics: self.statistics.clone(),
        }))
    }
}

impl DataSource for ResidentScan {
    fn open(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        self.batches.open(partition, context)
    }

    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.batches.fmt_as(t, f)
    }

    fn output_partitioning(&self) -> Partitioning {
        self.batches.output_partitioning()
    }

    fn eq_properties(&self) -> EquivalenceProperties {
        self.batches.eq_properties()
    }

    fn scheduling_type(&self) -> SchedulingType {
        self.batches.scheduling_type()
    }

    fn partition_statistics(&self, partition: Option<usize>) -> DFResult<Arc<Statistics>> {
        let mut whole = self
            .statistics
            .clone()
            .project(self.batches.projection().as_ref());
        // As a file scan's projection does: the size of the projected rows
        // when every column is fixed-width.
        whole.calculate_total_byte_size(self.batches.eq_properties().schema());
        let statistics = match partition {
            None => whole,
            // The batches are dealt to the partitions in turn: each holds
            // about its share of the rows.
            Some(_) => {
                let partitions = self.batches.partitions().len().max(1);
                let mut share = whole.to_inexact();
                share.num_rows = share.num_rows.map(|rows| rows / partitions);
                share
            }
        };
        Ok(Arc::new(statistics.with_fetch(
            self.batches.fetch(),
            0,
            1,
        )?))
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn DataSource>> {
        self.with_batches(self.batches.with_fetch(limit)?)
    }

    fn fetch(&self) -> Option<usize> {
        self.batches.fetch()
    }

    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExprs,
    ) -> DFResult<Option<Arc<dyn DataSource>>> {
        Ok(self
            .batches
            .try_swapping_with_projection(projection)?
            .and_then(|batches| self.with_batches(batches)))
    }
}
