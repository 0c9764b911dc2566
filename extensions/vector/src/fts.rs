//! `fts(table, column, query, k)`: the `k` best BM25 matches of a text
//! query in a column with a full-text index, best first, with their
//! `_score`. Filters on the table's columns in the query's `WHERE` are
//! prefilters, as for `knn()`.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::plan_err;
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use lakehouse_extension::{TextSearchRequest, VectorService};

use crate::search::{SCORE, Search, SearchTable, k_argument, search_schema, text_argument};

/// The SQL name.
pub const FTS: &str = "fts";

#[derive(Debug)]
pub struct Fts {
    search: Arc<dyn VectorService>,
}

impl Fts {
    pub fn new(search: Arc<dyn VectorService>) -> Self {
        Self { search }
    }
}

impl TableFunctionImpl for Fts {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() != 4 {
            return plan_err!(
                "{FTS} takes (table, column, query, k), e.g. fts('docs', 'body', 'forklift safety', 10); got {} arguments",
                exprs.len()
            );
        }
        let table = text_argument(FTS, &exprs[0], "table name")?;
        let column = text_argument(FTS, &exprs[1], "column name")?;
        let query = text_argument(FTS, &exprs[2], "query")?;
        let k = k_argument(FTS, &exprs[3])?;
        let (schema, column_type) =
            search_schema(self.search.as_ref(), FTS, &table, &column, SCORE)?;
        if !matches!(
            column_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            return plan_err!("{FTS}: column {column} of {table} is {column_type}, not text");
        }
        Ok(Arc::new(SearchTable {
            service: self.search.clone(),
            search: Search::Text(TextSearchRequest {
                table,
                column,
                query,
                k,
                filter: None,
            }),
            schema,
        }))
    }
}
