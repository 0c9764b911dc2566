//! `create_index`, `drop_index` and `list_indexes`: DoAction verbs over a
//! vector table's indexes, JSON in and out.

use std::sync::Arc;

use async_trait::async_trait;
use lakehouse_extension::{
    Access, Action, IndexRequest, Result, VectorService, parse_body, to_json,
};
use serde::Deserialize;

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
        "Builds an index on a vector table: an hnsw graph stored beside it, or a Lance index committed as a table version."
    }

    fn body(&self) -> &str {
        "{\"table\", \"column\", \"index_type\": \"hnsw\"|\"ivf_flat\"|\"ivf_pq\"|\"ivf_hnsw_sq\"|\"fts\"|\"btree\", \
         \"metric\": \"l2\"|\"cosine\"|\"dot\", \"name\", \"params\": {m, ef_construction, ef_search, precision (hnsw); \
         num_partitions, num_sub_vectors, num_bits, m, ef_construction, sample_rate, max_iterations (IVF)}, \"replace\": false}"
    }

    fn result(&self) -> &str {
        "JSON {name, columns, index_type, table_version}"
    }

    fn takes_query_slot(&self) -> bool {
        true
    }

    fn access(&self) -> Access {
        Access::Admin
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        let request: IndexRequest = parse_body(self.name(), body)?;
        to_json(&self.0.create_index(request).await?)
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
        "Removes an index from a vector table."
    }

    fn body(&self) -> &str {
        "{\"table\", \"name\"}"
    }

    fn result(&self) -> &str {
        "JSON {table, name, table_version}"
    }

    fn access(&self) -> Access {
        Access::Admin
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        let body: DropBody = parse_body(self.name(), body)?;
        let version = self.0.drop_index(&body.table, &body.name).await?;
        to_json(
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
        "A vector table's indexes."
    }

    fn body(&self) -> &str {
        "{\"table\"}"
    }

    fn result(&self) -> &str {
        "JSON array of {name, columns, index_type, table_version}"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        let body: TableBody = parse_body(self.name(), body)?;
        to_json(&self.0.list_indexes(&body.table).await?)
    }
}
