//! `accelerated_tables`: where the in-memory copies of the accelerated
//! tables stand, optionally after waiting for them to catch up with the
//! catalog (a loader or a test waits on it instead of polling).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lakehouse_extension::{Access, Action, ExtensionError, Result, parse_body, to_json};
use serde::Deserialize;

use crate::query::Accelerated;

/// The longest wait a body may ask for.
const MAX_WAIT_SECS: f64 = 3600.0;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    wait_secs: Option<f64>,
}

/// `accelerated_tables`.
pub struct AcceleratedTables(pub Arc<Accelerated>);

#[async_trait]
impl Action for AcceleratedTables {
    fn name(&self) -> &str {
        "accelerated_tables"
    }

    fn description(&self) -> &str {
        "Where the in-memory copies of the accelerated tables (setting accelerated_tables) stand: per table \
         its state (resident, loading, over_budget, not_found, not_parquet, failed), the version, rows and \
         memory held, and the memory budget. With wait_secs, first waits up to that long for every copy to \
         catch up with the commits made before the call."
    }

    fn body(&self) -> &str {
        "empty, {} or {\"wait_secs\": 30}"
    }

    fn result(&self) -> &str {
        "JSON {memory_limit_bytes, memory_used_bytes, tables: [{table, state, version, rows, bytes, files, \
         load_ms, message}]}"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        let body: StatusBody = if body.iter().all(u8::is_ascii_whitespace) {
            StatusBody::default()
        } else {
            parse_body(self.name(), body)?
        };
        let wait = match body.wait_secs {
            None => None,
            Some(secs) if (0.0..=MAX_WAIT_SECS).contains(&secs) => {
                Some(Duration::from_secs_f64(secs))
            }
            Some(secs) => {
                return Err(ExtensionError::InvalidArgument(format!(
                    "accelerated_tables: wait_secs {secs} is not between 0 and {MAX_WAIT_SECS}"
                )));
            }
        };
        to_json(&self.0.status(wait).await)
    }
}
