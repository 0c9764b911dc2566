//! Rows of a vector argument as `f64` slices, whatever list type and float
//! width it arrives in.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, GenericListArray, OffsetSizeTrait,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ColumnarValue;

/// Whether a type can hold vectors: a list of floats of any kind.
pub fn check_vector_type(function: &str, position: usize, data_type: &DataType) -> Result<()> {
    let element = match data_type {
        DataType::FixedSizeList(field, _) | DataType::List(field) | DataType::LargeList(field) => {
            field.data_type()
        }
        DataType::Null => return Ok(()),
        other => {
            return plan_err!(
                "{function}: argument {position} is {other}, not a vector (a list of floats)"
            );
        }
    };
    match element {
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Int64
        | DataType::Int32
        | DataType::Null => Ok(()),
        other => plan_err!("{function}: argument {position} is a list of {other}, not of floats"),
    }
}

/// One argument's vectors: offsets into float64 values, and which rows are
/// null. A constant argument is one row used for every row.
pub struct Vectors {
    values: Float64Array,
    /// `(start, len)` per row.
    bounds: Vec<(usize, usize)>,
    nulls: Vec<bool>,
    constant: bool,
}

impl Vectors {
    pub fn from_argument(function: &str, value: &ColumnarValue) -> Result<Self> {
        let (array, constant) = match value {
            ColumnarValue::Array(array) => (array.clone(), false),
            ColumnarValue::Scalar(scalar) => (scalar.to_array_of_size(1)?, true),
        };
        let mut vectors = Self::from_array(function, &array)?;
        vectors.constant = constant;
        Ok(vectors)
    }

    fn from_array(function: &str, array: &ArrayRef) -> Result<Self> {
        let rows = array.len();
        let nulls: Vec<bool> = match array.logical_nulls() {
            Some(nulls) => nulls.iter().map(|valid| !valid).collect(),
            None => vec![false; rows],
        };
        let (child, bounds): (ArrayRef, Vec<(usize, usize)>) = match array.data_type() {
            DataType::FixedSizeList(_, size) => {
                // A sliced fixed-size list's values are sliced with it.
                let size = *size as usize;
                let bounds = (0..rows).map(|i| (i * size, size)).collect();
                (array.as_fixed_size_list().values().clone(), bounds)
            }
            DataType::List(_) => list_bounds(array.as_list::<i32>()),
            DataType::LargeList(_) => list_bounds(array.as_list::<i64>()),
            DataType::Null => {
                let empty: ArrayRef = Arc::new(Float64Array::from(Vec::<f64>::new()));
                (empty, vec![(0, 0); rows])
            }
            other => return exec_err!("{function}: {other} is not a vector type"),
        };
        let values = cast(&child, &DataType::Float64)?;
        let values = values.as_primitive().clone();
        if values.null_count() > 0 {
            // A null row's slots may be null; a present vector's may not.
            for (row, &(start, len)) in bounds.iter().enumerate() {
                if !nulls[row] && (start..start + len).any(|i| values.is_null(i)) {
                    return exec_err!(
                        "{function}: the vector in row {} has a null element",
                        row + 1
                    );
                }
            }
        }
        Ok(Self {
            values,
            bounds,
            nulls,
            constant: false,
        })
    }

    /// Row `row`'s vector, or `None` when it is null.
    pub fn row(&self, row: usize) -> Option<&[f64]> {
        let row = if self.constant { 0 } else { row };
        if self.nulls[row] {
            return None;
        }
        let (start, len) = self.bounds[row];
        Some(&self.values.values()[start..start + len])
    }
}

/// A list's values and each row's `(start, len)` in them.
fn list_bounds<O: OffsetSizeTrait>(list: &GenericListArray<O>) -> (ArrayRef, Vec<(usize, usize)>) {
    let bounds = list
        .offsets()
        .windows(2)
        .map(|w| (w[0].as_usize(), (w[1] - w[0]).as_usize()))
        .collect();
    (list.values().clone(), bounds)
}
