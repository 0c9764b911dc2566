//! How a catalog table reaches the scheduler: the coordinator plans a
//! query against a table version, and the scheduler must plan the same
//! version, not whatever the catalog says when the job arrives. So a
//! [`ParquetTable`] is sent as its [`PinnedScan`] (the version's manifest:
//! exact file list, schema and statistics) and made again from it on the
//! scheduler, whose physical plan then names those files on the shared
//! storage for the executors. Everything else goes through Ballista's own
//! codec.
//!
//! A version whose older files are read through a column mapping (after
//! `ALTER TABLE`) is not sent: the mapping is an expression adapter of the
//! engine that DataFusion's physical plan serialization does not carry, so
//! executors would read those files without it. Such a plan fails to encode
//! with [`NOT_DISTRIBUTABLE`] in its message, and the coordinator runs it
//! itself.

use std::sync::Arc;

use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion_proto::logical_plan::LogicalExtensionCodec;

use lakehouse_engine::query::{ParquetTable, PinnedScan};

/// What starts an encoded [`PinnedScan`], so that decoding tells ours from
/// Ballista's own table encodings.
const PINNED_SCAN: &[u8] = b"lakehouse.pinned_scan.v1\n";

/// Marks an encoding error for a plan that must run on the coordinator.
pub const NOT_DISTRIBUTABLE: &str = "runs on the coordinator only";

/// Ballista's logical codec, plus catalog tables.
#[derive(Debug, Default)]
pub struct LakehouseLogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LakehouseLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let Some(pinned) = buf.strip_prefix(PINNED_SCAN) else {
            return self
                .ballista
                .try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let pinned: PinnedScan = serde_json::from_slice(pinned).map_err(|e| {
            DataFusionError::Internal(format!(
                "the scan of {table_ref} sent by the coordinator does not decode: {e}"
            ))
        })?;
        Ok(Arc::new(ParquetTable::from_pinned(pinned)))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let Some(table) = node.downcast_ref::<ParquetTable>() else {
            return self
                .ballista
                .try_encode_table_provider(table_ref, node, buf)
                .map_err(|e| {
                    DataFusionError::NotImplemented(format!(
                        "{table_ref} is not a Parquet table of the catalog ({}): it {NOT_DISTRIBUTABLE}",
                        e.strip_backtrace()
                    ))
                });
        };
        if table.maps_file_columns() {
            return Err(DataFusionError::NotImplemented(format!(
                "{table_ref} has files written before an ALTER TABLE, read through a column \
                 mapping executors cannot apply: it {NOT_DISTRIBUTABLE} until it is compacted"
            )));
        }
        buf.extend_from_slice(PINNED_SCAN);
        serde_json::to_writer(buf, &table.pinned()).map_err(|e| {
            DataFusionError::Internal(format!("the scan of {table_ref} does not encode: {e}"))
        })
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}
