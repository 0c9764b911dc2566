//! The `vector` extension: vector math in SQL.
//!
//! `l2_distance` works on any two vectors of one dimension: fixed-size lists
//! (a vector column) or lists (an array literal such as `[0.1, 0.2]`, or a
//! parameter) of float16, float32 or float64, in any mix of columns and
//! constants. DataFusion's own `cosine_distance` and `dot_product` (alias of
//! `inner_product`) cover the other two metrics.

mod distance;
mod fts;
mod hybrid;
mod index_actions;
mod knn;
mod search;
mod vectors;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use lakehouse_extension::{Contributions, Extension, Host, Result, ScalarFunction, TableFunction};

pub use distance::{L2Distance, euclidean};

/// The extension, to register in a [`lakehouse_extension::Registry`].
pub struct Vector;

impl Extension for Vector {
    fn name(&self) -> &'static str {
        "vector"
    }

    fn description(&self) -> &'static str {
        "Vector search and math: knn(), fts() and hybrid() over vector tables, create_index/drop_index/list_indexes, l2_distance (cosine_distance and dot_product are built in)"
    }

    fn contributions(&self, host: &Host) -> Result<Contributions> {
        let table_functions = host
            .vectors
            .iter()
            .flat_map(|search| {
                [
                    TableFunction {
                        name: knn::KNN.into(),
                        function: Arc::new(knn::Knn::new(search.clone(), host.embeddings.clone())),
                        description: "knn(table, column, query, k [, options]): the k rows nearest query (a vector, or a text embedded with the column's model), nearest first, with _distance; WHERE filters on the table's columns are prefilters".into(),
                    },
                    TableFunction {
                        name: fts::FTS.into(),
                        function: Arc::new(fts::Fts::new(search.clone())),
                        description: "fts(table, column, query, k): the k best BM25 matches of query in a text column with an fts index, best first, with _score".into(),
                    },
                    TableFunction {
                        name: hybrid::HYBRID.into(),
                        function: Arc::new(hybrid::Hybrid::new(search.clone(), host.embeddings.clone())),
                        description: "hybrid(table, vector_column, text_column, query, k [, options]): the k rows best by reciprocal rank fusion of knn over the query's embedding and BM25 over its words, best first, with _score; WHERE filters on the table's columns are prefilters".into(),
                    },
                ]
            })
            .collect();
        Ok(Contributions {
            scalar_functions: vec![ScalarFunction {
                udf: ScalarUDF::new_from_impl(L2Distance::default()),
                description: "l2_distance(a, b): Euclidean distance between two vectors".into(),
            }],
            table_functions,
            actions: host
                .vectors
                .iter()
                .flat_map(index_actions::actions)
                .collect(),
        })
    }
}
