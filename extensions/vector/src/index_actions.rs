//! `create_index`, `drop_index` and `list_indexes`: DoAction verbs over a
//! vector table's indexes, JSON in and out.

use std::sync::Arc;

use async_trait::async_trait;
use lakehouse_extension::{Access, Action, ExtensionError, IndexRequest, Result, VectorService};
use serde::Deserialize;
use serde::de::DeserializeOwned;

fn parse<T: DeserializeOwned>(action: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        ExtensionError::InvalidArgument(format!("the body of action {action:?} is not valid: {e}"))
    })
}

fn json(value: &impl serde::Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ExtensionError::Internal(e.to_string()))
}

/// Every index action over one service.
pub fn actions(service: &Arc<dyn VectorService>) -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(CreateIndex(service.clone())),
        Arc::new(DropIndex(service.clone())),
        Arc::new(ListIndexes(service.clone())),
    ]
}

struct CreateIndex(Arc<dyn VectorService>);

#[async_trait]
impl Action for CreateIndex {
    fn name(&self) -> &str {
        "create_index"
    }

    fn description(&self) -> &str {
        "Builds an index on a vector table and commits the version that has it. Body: {\"table\", \"column\", \
         \"index_type\": \"ivf_flat\"|\"ivf_pq\"|\"ivf_hnsw_sq\"|\"fts\"|\"btree\", \"metric\": \"l2\"|\"cosine\"|\"dot\", \
         \"name\", \"params\": {num_partitions, num_sub_vectors, num_bits, m, ef_construction, sample_rate, max_iterations}, \
         \"replace\": false}. Result: JSON {name, columns, index_type, table_version}."
    }

    fn access(&self) -> Access {
        Access::Admin
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        let request: IndexRequest = parse(self.name(), body)?;
        json(&self.0.create_index(request).await?)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DropBody {
    table: String,
    name: String,
}

struct DropIndex(Arc<dyn VectorService>);

#[async_trait]
impl Action for DropIndex {
    fn name(&self) -> &str {
        "drop_index"
    }

    fn description(&self) -> &str {
        "Removes an index from a vector table. Body: {\"table\", \"name\"}. Result: JSON {table, name, table_version}."
    }

    fn access(&self) -> Access {
        Access::Admin
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        let body: DropBody = parse(self.name(), body)?;
        let version = self.0.drop_index(&body.table, &body.name).await?;
        json(
            &serde_json::json!({ "table": body.table, "name": body.name, "table_version": version }),
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableBody {
    table: String,
}

struct ListIndexes(Arc<dyn VectorService>);

#[async_trait]
impl Action for ListIndexes {
    fn name(&self) -> &str {
        "list_indexes"
    }

    fn description(&self) -> &str {
        "A vector table's indexes. Body: {\"table\"}. Result: JSON array of {name, columns, index_type, table_version}."
    }

    fn access(&self) -> Access {
        Access::Read
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        let body: TableBody = parse(self.name(), body)?;
        json(&self.0.list_indexes(&body.table).await?)
    }
}
