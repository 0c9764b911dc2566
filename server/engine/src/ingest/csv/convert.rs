//! Turns a block of CSV records into a record batch of the table's types.
//!
//! A column's type is either fixed (named by the upload, or the existing
//! table's) or inferred. A value that does not fit a fixed type is an error
//! naming its line and column. A value that does not fit an inferred type is
//! not an error: the caller widens that column and parses again.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Date32Builder, FixedSizeListArray, Float32Builder,
    Float64Builder, Int64Builder, RecordBatch, RecordBatchOptions, StringArray, StringBuilder,
    TimestampMicrosecondBuilder, new_null_array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, SchemaRef};

use super::infer::{Kind, parse_bool, parse_date, parse_float, parse_int, parse_timestamp};
use super::records::Block;
use crate::error::Error;

/// How a table column's values are found and typed.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// The CSV column holding it; `None` when the file lacks it (null).
    pub source: Option<usize>,
    pub typing: Typing,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Typing {
    Fixed(DataType),
    Inferred(Kind),
}

impl Typing {
    pub fn data_type(&self) -> DataType {
        match self {
            Typing::Fixed(t) => t.clone(),
            Typing::Inferred(kind) => kind.data_type(),
        }
    }
}

/// Why a block could not be converted.
#[derive(Debug)]
pub enum Misfit {
    /// Inferred column `target` must become `kind`.
    Widen {
        target: usize,
        kind: Kind,
    },
    Invalid(Error),
}

/// Field texts that mean null. The empty field, the usual one, is checked
/// by length alone: this runs for every field of an upload.
#[derive(Debug, Clone)]
pub struct NullValues {
    empty: bool,
    others: Vec<String>,
}

impl NullValues {
    pub fn new(values: Vec<String>) -> Self {
        Self {
            empty: values.iter().any(String::is_empty),
            others: values.into_iter().filter(|v| !v.is_empty()).collect(),
        }
    }

    pub fn contains(&self, value: &str) -> bool {
        if value.is_empty() {
            return self.empty;
        }
        self.others.iter().any(|v| v == value)
    }
}

/// Converts `block` into a batch of `schema`, one column per target.
pub fn convert(
    block: &Block,
    targets: &[Target],
    schema: &SchemaRef,
    nulls: &NullValues,
) -> Result<RecordBatch, Misfit> {
    let columns = targets
        .iter()
        .enumerate()
        .map(|(i, target)| {
            let Some(source) = target.source else {
                return Ok(new_null_array(&target.typing.data_type(), block.rows()));
            };
            let values = Column {
                block,
                source,
                nulls,
            };
            match &target.typing {
                Typing::Inferred(kind) => values.parse(*kind).ok_or_else(|| Misfit::Widen {
                    target: i,
                    kind: values.kind(*kind),
                }),
                Typing::Fixed(data_type) => values.cast(data_type, &target.name),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(block.rows()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(|e| Misfit::Invalid(e.into()))
}

/// One CSV column of a block.
struct Column<'a> {
    block: &'a Block,
    source: usize,
    nulls: &'a NullValues,
}

impl Column<'_> {
    /// Each row's value; `None` for null.
    fn values(&self) -> impl Iterator<Item = Option<&str>> {
        self.block
            .column(self.source)
            .map(|value| (!self.nulls.contains(value)).then_some(value))
    }

    /// The narrowest kind holding `kind` and every value here.
    fn kind(&self, kind: Kind) -> Kind {
        self.values()
            .flatten()
            .fold(kind, |k, v| k.join(Kind::of(v)))
    }

    /// The values as `kind`, or `None` when one does not parse as it.
    fn parse(&self, kind: Kind) -> Option<ArrayRef> {
        let rows = self.block.rows();
        macro_rules! build {
            ($builder:expr, $parse:expr) => {{
                let mut builder = $builder;
                for value in self.values() {
                    match value {
                        None => builder.append_null(),
                        Some(v) => builder.append_value($parse(v)?),
                    }
                }
                Some(Arc::new(builder.finish()) as ArrayRef)
            }};
        }
        match kind {
            Kind::Null => self
                .values()
                .all(|v| v.is_none())
                .then(|| new_null_array(&DataType::Utf8, rows)),
            Kind::Bool => build!(BooleanBuilder::with_capacity(rows), parse_bool),
            Kind::Int64 => build!(Int64Builder::with_capacity(rows), parse_int),
            Kind::Float64 => build!(Float64Builder::with_capacity(rows), |v| {
                parse_float(v).or_else(|| parse_int(v).map(|i| i as f64))
            }),
            Kind::Date => build!(Date32Builder::with_capacity(rows), parse_date),
            Kind::Timestamp | Kind::TimestampUtc => {
                let utc = kind == Kind::TimestampUtc;
                let builder = TimestampMicrosecondBuilder::with_capacity(rows)
                    .with_timezone_opt(utc.then(|| "UTC".to_string()));
                build!(builder, |v| {
                    parse_date(v)
                        .map(|days| days as i64 * 86_400_000_000)
                        .or_else(|| {
                            parse_timestamp(v)
                                .filter(|(_, z)| *z == utc)
                                .map(|(t, _)| t)
                        })
                })
            }
            Kind::Utf8 => Some(Arc::new(self.strings()) as ArrayRef),
        }
    }

    fn strings(&self) -> StringArray {
        let bytes = self.block.column(self.source).map(str::len).sum();
        let mut builder = StringBuilder::with_capacity(self.block.rows(), bytes);
        for value in self.values() {
            builder.append_option(value);
        }
        builder.finish()
    }

    /// Vector values, each `[x, y, ...]` (brackets optional; numbers
    /// separated by commas or spaces), as a fixed-size list of `dims`.
    fn vectors(&self, element: &DataType, dims: i32, name: &str) -> Result<ArrayRef, Misfit> {
        let width = dims as usize;
        let mut values = Float32Builder::with_capacity(self.block.rows() * width);
        let mut valid = Vec::with_capacity(self.block.rows());
        for (row, value) in self.values().enumerate() {
            let bad = |detail: String| {
                Misfit::Invalid(Error::BadCsv {
                    line: self.block.line(row),
                    column: Some(name.to_string()),
                    detail,
                })
            };
            let Some(text) = value else {
                values.append_nulls(width);
                valid.push(false);
                continue;
            };
            let inner = text.trim();
            let inner = inner
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .unwrap_or(inner);
            let mut count = 0;
            for number in inner
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|n| !n.is_empty())
            {
                let parsed = parse_float(number)
                    .or_else(|| number.parse::<f64>().ok())
                    .ok_or_else(|| bad(format!("{number:?} in {text:?} is not a number")))?;
                values.append_value(parsed as f32);
                count += 1;
            }
            if count != width {
                return Err(bad(format!(
                    "the vector has {count} numbers where the column holds vectors of {width}"
                )));
            }
            valid.push(true);
        }
        let item = Arc::new(Field::new_list_field(DataType::Float32, true));
        let vectors = FixedSizeListArray::try_new(
            item,
            dims,
            Arc::new(values.finish()),
            Some(NullBuffer::from(valid)),
        )
        .map_err(|e| Misfit::Invalid(e.into()))?;
        let wanted =
            DataType::FixedSizeList(Arc::new(Field::new_list_field(element.clone(), true)), dims);
        cast_with_options(&vectors, &wanted, &CastOptions::default())
            .map_err(|e| Misfit::Invalid(e.into()))
    }

    /// The values cast to a fixed type; the first that does not fit is an
    /// error naming its line.
    fn cast(&self, data_type: &DataType, name: &str) -> Result<ArrayRef, Misfit> {
        if let DataType::FixedSizeList(element, dims) = data_type {
            return self.vectors(element.data_type(), *dims, name);
        }
        let strings = self.strings();
        if data_type == &DataType::Utf8 {
            return Ok(Arc::new(strings));
        }
        let options = CastOptions {
            safe: true,
            ..Default::default()
        };
        let cast = cast_with_options(&strings, data_type, &options)
            .map_err(|e| Misfit::Invalid(e.into()))?;
        if cast.null_count() == strings.null_count() {
            return Ok(cast);
        }
        let row = (0..strings.len())
            .find(|&r| strings.is_valid(r) && cast.is_null(r))
            .expect("a cast that added nulls has a row where it did");
        Err(Misfit::Invalid(Error::BadCsv {
            line: self.block.line(row),
            column: Some(name.to_string()),
            detail: format!("{:?} is not a valid {data_type}", strings.value(row)),
        }))
    }
}
