//! `hybrid(table, vector_column, text_column, query, k [, options])`: the
//! `k` rows best by reciprocal rank fusion of a knn search of the query's
//! embedding in `vector_column` and a BM25 search of its words in
//! `text_column` (which needs an `fts` index), best first, with `_score`.
//! `options` is a JSON object: `{"vector_weight": 1, "text_weight": 1,
//! "candidates": 50, "rrf_k": 60, "ef": 64}`. Filters in `WHERE` on the
//! table's columns are prefilters of both searches.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{plan_datafusion_err, plan_err};
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use lakehouse_extension::{EmbeddingService, HybridOptions, HybridRequest, VectorService};

use crate::knn::text_model;
use crate::search::{
    SCORE, Search, SearchTable, k_argument, options_argument, search_schema, text_argument,
};

/// The SQL name.
pub const HYBRID: &str = "hybrid";

#[derive(Debug)]
pub struct Hybrid {
    search: Arc<dyn VectorService>,
    embeddings: Option<Arc<dyn EmbeddingService>>,
}

impl Hybrid {
    pub fn new(
        search: Arc<dyn VectorService>,
        embeddings: Option<Arc<dyn EmbeddingService>>,
    ) -> Self {
        Self { search, embeddings }
    }
}

impl TableFunctionImpl for Hybrid {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(5..=6).contains(&exprs.len()) {
            return plan_err!(
                "{HYBRID} takes (table, vector_column, text_column, query, k [, options]), e.g. hybrid('profiles', 'emb', 'profile', 'forklift operator', 10); got {} arguments",
                exprs.len()
            );
        }
        let table = text_argument(HYBRID, &exprs[0], "table name")?;
        let vector_column = text_argument(HYBRID, &exprs[1], "vector column name")?;
        let text_column = text_argument(HYBRID, &exprs[2], "text column name")?;
        let text = text_argument(HYBRID, &exprs[3], "query")?;
        let k = k_argument(HYBRID, &exprs[4])?;
        let options: HybridOptions = options_argument(
            HYBRID,
            exprs.get(5),
            "vector_weight, text_weight, candidates, rrf_k and ef",
        )?;
        let (schema, vector_type) =
            search_schema(self.search.as_ref(), HYBRID, &table, &vector_column, SCORE)?;
        if !matches!(vector_type, DataType::FixedSizeList(..)) {
            return plan_err!(
                "{HYBRID}: column {vector_column} of {table} is {vector_type}, not a vector column"
            );
        }
        let text_type = schema
            .field_with_name(&text_column)
            .map_err(|_| {
                plan_datafusion_err!("{HYBRID}: table {table} has no column {text_column:?}")
            })?
            .data_type()
            .clone();
        if !matches!(
            text_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            return plan_err!("{HYBRID}: column {text_column} of {table} is {text_type}, not text");
        }
        let field = schema.field_with_name(&vector_column)?;
        let (embeddings, model) = text_model(HYBRID, self.embeddings.as_ref(), field, &table)?;
        Ok(Arc::new(SearchTable {
            service: self.search.clone(),
            search: Search::Hybrid {
                request: HybridRequest {
                    table,
                    vector_column,
                    text_column,
                    vector: Vec::new(),
                    text,
                    k,
                    filter: None,
                    options,
                },
                model,
                embeddings,
            },
            schema,
        }))
    }
}
