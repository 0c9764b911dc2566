//! The `vector` extension: vector math in SQL.
//!
//! `l2_distance` works on any two vectors of one dimension: fixed-size lists
//! (a vector column) or lists (an array literal such as `[0.1, 0.2]`, or a
//! parameter) of float16, float32 or float64, in any mix of columns and
//! constants. DataFusion's own `cosine_distance` and `dot_product` (alias of
//! `inner_product`) cover the other two metrics.

mod distance;
mod vectors;

use datafusion::logical_expr::ScalarUDF;
use lakehouse_extension::{Contributions, Extension, Host, Result, ScalarFunction};

pub use distance::{L2Distance, euclidean};

/// The extension, to register in a [`lakehouse_extension::Registry`].
pub struct Vector;

impl Extension for Vector {
    fn name(&self) -> &'static str {
        "vector"
    }

    fn description(&self) -> &'static str {
        "Vector math and search: l2_distance (cosine_distance and dot_product are built in)"
    }

    fn contributions(&self, _host: &Host) -> Result<Contributions> {
        Ok(Contributions {
            scalar_functions: vec![ScalarFunction {
                udf: ScalarUDF::new_from_impl(L2Distance::default()),
                description: "l2_distance(a, b): Euclidean distance between two vectors".into(),
            }],
            ..Contributions::default()
        })
    }
}
