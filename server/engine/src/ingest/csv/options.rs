//! The options of a CSV upload, as the client sends them: the JSON object
//! `{"ingest_csv": {...}}` carried in the DoPut descriptor's command.
//!
//! Unknown fields are refused so that a misspelt option is an error, not a
//! silently different load.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use serde::Deserialize;

use super::convert::NullValues;
use super::records::Dialect;
use crate::error::{Error, Result};
use crate::ingest::EmbedSpec;
use lakehouse_core::catalog::{TableKind, TableRef, WriteMode};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    ingest_csv: CsvOptions,
}

/// How the rows of an upload meet the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvMode {
    /// The table must not exist.
    Create,
    /// The table must exist.
    Append,
    /// The rows replace the table's, which is created when missing.
    Overwrite,
    #[default]
    CreateAppend,
}

impl From<CsvMode> for WriteMode {
    fn from(mode: CsvMode) -> Self {
        match mode {
            CsvMode::Create => WriteMode::Create,
            CsvMode::Append => WriteMode::Append,
            CsvMode::Overwrite => WriteMode::CreateOrOverwrite,
            CsvMode::CreateAppend => WriteMode::CreateOrAppend,
        }
    }
}

/// A column named with its type, overriding inference.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    pub table: String,
    pub schema: Option<String>,
    #[serde(default)]
    pub mode: CsvMode,
    #[serde(default = "default_header")]
    pub header: bool,
    pub delimiter: Option<String>,
    pub quote: Option<String>,
    pub escape: Option<String>,
    pub null_values: Option<Vec<String>>,
    pub idempotency_key: Option<String>,
    /// `"parquet"` or `"lance"` for a new table; by default Lance when it
    /// has a vector column.
    pub format: Option<TableKind>,
    #[serde(default)]
    pub evolve: bool,
    pub columns: Option<Vec<ColumnSpec>>,
    /// Vector columns a new table fills with embeddings of its text
    /// columns: `[{"source", "target", "model"}]`.
    #[serde(default)]
    pub embed: Vec<EmbedSpec>,
}

fn default_header() -> bool {
    true
}

impl CsvOptions {
    /// Reads the descriptor command `{"ingest_csv": {...}}`.
    pub fn from_command(command: &[u8]) -> Result<Self> {
        let envelope: Envelope = serde_json::from_slice(command).map_err(|e| {
            Error::invalid(format!(
                "the descriptor is not a valid CSV upload command ({{\"ingest_csv\": {{\"table\": ...}}}}): {e}"
            ))
        })?;
        Ok(envelope.ingest_csv)
    }

    pub fn table(&self) -> Result<TableRef> {
        Ok(TableRef::new(self.schema.as_deref(), &self.table)?)
    }

    pub fn dialect(&self) -> Result<Dialect> {
        let defaults = Dialect::default();
        Ok(Dialect {
            delimiter: one_byte("delimiter", self.delimiter.as_deref())?
                .unwrap_or(defaults.delimiter),
            quote: one_byte("quote", self.quote.as_deref())?.unwrap_or(defaults.quote),
            escape: one_byte("escape", self.escape.as_deref())?,
        })
    }

    /// Field texts read as null: by default only the empty field.
    pub fn null_values(&self) -> NullValues {
        NullValues::new(
            self.null_values
                .clone()
                .unwrap_or_else(|| vec![String::new()]),
        )
    }

    /// The explicit columns with their parsed types.
    pub fn column_types(&self) -> Result<Vec<(String, DataType)>> {
        self.columns
            .iter()
            .flatten()
            .map(|c| {
                Ok((
                    c.name.clone(),
                    parse_type(&c.data_type)
                        .map_err(|e| Error::invalid(format!("column {:?}: {e}", c.name)))?,
                ))
            })
            .collect()
    }
}

fn one_byte(option: &str, value: Option<&str>) -> Result<Option<u8>> {
    match value.map(str::as_bytes) {
        None => Ok(None),
        Some([b]) if b.is_ascii() && *b != b'\n' && *b != b'\r' => Ok(Some(*b)),
        Some(_) => Err(Error::invalid(format!(
            "{option} must be one ASCII character other than a line break, not {:?}",
            value.unwrap_or_default()
        ))),
    }
}

/// A column type: a short SQL-like name (`int64`, `bigint`, `double`,
/// `text`, `date`, `timestamp`, `timestamptz`, `decimal(10,2)`, ...) or
/// any Arrow type as Arrow writes it (`Int32`, `Timestamp(ms, "UTC")`).
pub fn parse_type(name: &str) -> Result<DataType, String> {
    let lower = name.trim().to_ascii_lowercase();
    let simple = match lower.as_str() {
        "bool" | "boolean" => Some(DataType::Boolean),
        "int8" | "tinyint" => Some(DataType::Int8),
        "int16" | "smallint" => Some(DataType::Int16),
        "int32" | "int" | "integer" => Some(DataType::Int32),
        "int64" | "bigint" | "long" => Some(DataType::Int64),
        "uint8" => Some(DataType::UInt8),
        "uint16" => Some(DataType::UInt16),
        "uint32" => Some(DataType::UInt32),
        "uint64" => Some(DataType::UInt64),
        "float32" | "float" | "real" => Some(DataType::Float32),
        "float64" | "double" => Some(DataType::Float64),
        "utf8" | "string" | "text" | "varchar" => Some(DataType::Utf8),
        "date" | "date32" => Some(DataType::Date32),
        "timestamp" => Some(DataType::Timestamp(TimeUnit::Microsecond, None)),
        "timestamptz" | "timestamp_utc" => Some(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        )),
        _ => None,
    };
    if let Some(t) = simple {
        return Ok(t);
    }
    if let Some(vector) = vector_type(&lower) {
        return vector.map_err(|e| format!("{name:?} is not a valid vector type: {e}"));
    }
    if let Some(args) = lower
        .strip_prefix("decimal(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let parts: Vec<&str> = args.split(',').map(str::trim).collect();
        if let [p, s] = parts.as_slice()
            && let (Ok(p), Ok(s)) = (p.parse::<u8>(), s.parse::<i8>())
            && (1..=38).contains(&p)
        {
            return Ok(DataType::Decimal128(p, s));
        }
        return Err(format!(
            "{name:?} is not a valid decimal: write decimal(precision, scale) with precision 1 to 38"
        ));
    }
    name.trim().parse::<DataType>().map_err(|_| {
        format!(
            "unknown type {name:?}: use bool, int32, int64, float64, text, date, timestamp, timestamptz, decimal(p,s), vector(n), float16[n] or an Arrow type name"
        )
    })
}

/// `vector(n)` or `float32[n]` (float32 vectors), `float16[n]`: a
/// fixed-size list, which makes the table a vector table.
fn vector_type(lower: &str) -> Option<Result<DataType, String>> {
    let (element, dims) = if let Some(dims) = lower.strip_prefix("vector(") {
        (DataType::Float32, dims.strip_suffix(')')?)
    } else if let Some(dims) = lower.strip_prefix("float32[") {
        (DataType::Float32, dims.strip_suffix(']')?)
    } else if let Some(dims) = lower.strip_prefix("float16[") {
        (DataType::Float16, dims.strip_suffix(']')?)
    } else {
        return None;
    };
    Some(match dims.trim().parse::<i32>() {
        Ok(n) if n > 0 => Ok(DataType::FixedSizeList(
            Arc::new(Field::new_list_field(element, true)),
            n,
        )),
        _ => Err(format!("the dimension {dims:?} is not a positive integer")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_command_with_defaults() {
        let options = CsvOptions::from_command(br#"{"ingest_csv": {"table": "t"}}"#).unwrap();
        assert_eq!(options.mode, CsvMode::CreateAppend);
        assert!(options.header);
        assert_eq!(options.dialect().unwrap(), Dialect::default());
        assert_eq!(options.table().unwrap().to_string(), "public.t");
    }

    #[test]
    fn refuses_unknown_fields_and_bad_dialects() {
        let err = CsvOptions::from_command(br#"{"ingest_csv": {"table": "t", "delimeter": ";"}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("delimeter"), "{err}");
        let options =
            CsvOptions::from_command(br#"{"ingest_csv": {"table": "t", "delimiter": ";;"}}"#)
                .unwrap();
        assert!(
            options
                .dialect()
                .unwrap_err()
                .to_string()
                .contains("delimiter")
        );
    }

    #[test]
    fn parses_type_names() {
        assert_eq!(parse_type("BIGINT").unwrap(), DataType::Int64);
        let vector =
            |element, n| DataType::FixedSizeList(Arc::new(Field::new_list_field(element, true)), n);
        assert_eq!(
            parse_type("vector(384)").unwrap(),
            vector(DataType::Float32, 384)
        );
        assert_eq!(
            parse_type("float16[8]").unwrap(),
            vector(DataType::Float16, 8)
        );
        assert!(
            parse_type("vector(0)")
                .unwrap_err()
                .contains("not a positive integer")
        );
        assert_eq!(
            parse_type("decimal(10, 2)").unwrap(),
            DataType::Decimal128(10, 2)
        );
        assert_eq!(parse_type("Int32").unwrap(), DataType::Int32);
        assert!(parse_type("decimal(99,2)").is_err());
        assert!(parse_type("wat").unwrap_err().contains("unknown type"));
    }
}
