//! `l2_distance(a, b)`: the Euclidean distance of two vectors.
//!
//! DataFusion already has `cosine_distance`, `inner_product` (alias
//! `dot_product`) and `array_distance` on lists; this adds the name vector
//! users look for, on vector columns as they are stored (fixed-size lists of
//! float16/32/64) as well as lists, with errors that name the dimensions.

use std::sync::Arc;

use datafusion::arrow::array::Float64Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::vectors::{Vectors, check_vector_type};

/// The SQL name.
pub const L2_DISTANCE: &str = "l2_distance";

/// sqrt(sum((a - b)^2)) of two vectors of one length.
pub fn euclidean(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct L2Distance {
    signature: Signature,
}

impl Default for L2Distance {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for L2Distance {
    fn name(&self) -> &str {
        L2_DISTANCE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        for (i, t) in arg_types.iter().enumerate() {
            check_vector_type(L2_DISTANCE, i + 1, t)?;
        }
        if let (DataType::FixedSizeList(_, a), DataType::FixedSizeList(_, b)) =
            (&arg_types[0], &arg_types[1])
            && a != b
        {
            return plan_err!("{L2_DISTANCE}: the vectors have different dimensions ({a} and {b})");
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = Vectors::from_argument(L2_DISTANCE, &args.args[0])?;
        let b = Vectors::from_argument(L2_DISTANCE, &args.args[1])?;
        let mut out = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            let value = match (a.row(row), b.row(row)) {
                (Some(x), Some(y)) if x.len() != y.len() => {
                    return exec_err!(
                        "{L2_DISTANCE}: the vectors have different dimensions ({} and {}) in row {}",
                        x.len(),
                        y.len(),
                        row + 1
                    );
                }
                (Some(x), Some(y)) => Some(euclidean(x, y)),
                _ => None,
            };
            out.push(value);
        }
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(out))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euclidean_on_known_vectors() {
        assert_eq!(euclidean(&[0.0, 0.0], &[3.0, 4.0]), 5.0);
        assert_eq!(euclidean(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
    }
}
