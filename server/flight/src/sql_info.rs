//! What the server tells BI tools and drivers about itself: `GetSqlInfo`
//! and `GetXdbcTypeInfo`. Built once; both are pure data.
//!
//! The values describe DataFusion's SQL as this server exposes it (no
//! transactions, no positioned updates, forward-only results).

use std::sync::LazyLock;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlOuterJoinsSupportLevel,
    SqlSupportedCaseSensitivity, SqlSupportedGroupBy, SqlSupportedResultSetConcurrency,
    SqlSupportedResultSetType, SqlSupportedSubqueries, SqlSupportedTransaction, SqlSupportedUnions,
    SupportedSqlGrammar, XdbcDataType, XdbcDatetimeSubcode,
};

use arrow::compute::can_cast_types;
use arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use arrow_flight::sql::SqlSupportsConvert as Convert;

use lakehouse_core::catalog::MAX_NAME_LEN;

/// Each SQL type of `SqlSupportsConvert`, the SQL name `CAST` takes for it
/// and the Arrow type DataFusion makes of that name.
const CONVERT_TYPES: &[(Convert, &str, DataType)] = &[
    (Convert::SqlConvertBigint, "BIGINT", DataType::Int64),
    (Convert::SqlConvertBinary, "BYTEA", DataType::Binary),
    (Convert::SqlConvertBit, "BOOLEAN", DataType::Boolean),
    (Convert::SqlConvertChar, "CHAR", DataType::Utf8),
    (Convert::SqlConvertDate, "DATE", DataType::Date32),
    (
        Convert::SqlConvertDecimal,
        "DECIMAL(38, 10)",
        DataType::Decimal128(38, 10),
    ),
    (Convert::SqlConvertFloat, "DOUBLE", DataType::Float64),
    (Convert::SqlConvertInteger, "INTEGER", DataType::Int32),
    (
        Convert::SqlConvertIntervalDayTime,
        "INTERVAL",
        DataType::Interval(IntervalUnit::MonthDayNano),
    ),
    (
        Convert::SqlConvertIntervalYearMonth,
        "INTERVAL",
        DataType::Interval(IntervalUnit::MonthDayNano),
    ),
    (Convert::SqlConvertLongvarbinary, "BYTEA", DataType::Binary),
    (Convert::SqlConvertLongvarchar, "TEXT", DataType::Utf8),
    (
        Convert::SqlConvertNumeric,
        "NUMERIC(38, 10)",
        DataType::Decimal128(38, 10),
    ),
    (Convert::SqlConvertReal, "REAL", DataType::Float32),
    (Convert::SqlConvertSmallint, "SMALLINT", DataType::Int16),
    (
        Convert::SqlConvertTime,
        "TIME",
        DataType::Time64(TimeUnit::Nanosecond),
    ),
    (
        Convert::SqlConvertTimestamp,
        "TIMESTAMP",
        DataType::Timestamp(TimeUnit::Nanosecond, None),
    ),
    (Convert::SqlConvertTinyint, "TINYINT", DataType::Int8),
    (Convert::SqlConvertVarbinary, "BYTEA", DataType::Binary),
    (Convert::SqlConvertVarchar, "VARCHAR", DataType::Utf8),
];

/// For each SQL type, the types `CAST` turns it into: Arrow's cast rules,
/// which DataFusion's `CAST` follows.
fn convertible() -> std::collections::HashMap<i32, Vec<i32>> {
    CONVERT_TYPES
        .iter()
        .map(|(from, _, from_type)| {
            let to = CONVERT_TYPES
                .iter()
                .filter(|(_, _, to_type)| can_cast_types(from_type, to_type))
                .map(|(to, _, _)| *to as i32)
                .collect();
            (*from as i32, to)
        })
        .collect()
}

fn bits<T: Into<i32>>(flags: impl IntoIterator<Item = T>) -> i32 {
    flags.into_iter().fold(0, |acc, f| acc | (1 << f.into()))
}

const KEYWORDS: &[&str] = &[
    "ANALYZE", "ASOF", "DESCRIBE", "EXPLAIN", "ILIKE", "LIMIT", "OFFSET", "QUALIFY", "SHOW",
    "UNNEST", "VERBOSE",
];
const NUMERIC_FUNCTIONS: &[&str] = &[
    "abs", "acos", "asin", "atan", "atan2", "cbrt", "ceil", "cos", "cot", "degrees", "exp",
    "floor", "ln", "log", "log10", "log2", "pi", "power", "radians", "random", "round", "signum",
    "sin", "sqrt", "tan", "trunc",
];
const STRING_FUNCTIONS: &[&str] = &[
    "ascii",
    "bit_length",
    "btrim",
    "char_length",
    "chr",
    "concat",
    "concat_ws",
    "initcap",
    "left",
    "length",
    "lower",
    "lpad",
    "ltrim",
    "octet_length",
    "repeat",
    "replace",
    "reverse",
    "right",
    "rpad",
    "rtrim",
    "split_part",
    "starts_with",
    "strpos",
    "substr",
    "translate",
    "trim",
    "upper",
];
const SYSTEM_FUNCTIONS: &[&str] = &["arrow_typeof", "version"];
const DATETIME_FUNCTIONS: &[&str] = &[
    "current_date",
    "current_time",
    "date_bin",
    "date_part",
    "date_trunc",
    "extract",
    "from_unixtime",
    "now",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_unixtime",
];

/// The `GetSqlInfo` answers.
pub static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let max_name = MAX_NAME_LEN as i64;
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "lakehouse");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "58");
    b.append(SqlInfo::FlightSqlServerReadOnly, false);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, true);
    let substrait_version = lakehouse_engine::query::substrait::substrait_version();
    b.append(
        SqlInfo::FlightSqlServerSubstraitMinVersion,
        substrait_version.as_str(),
    );
    b.append(
        SqlInfo::FlightSqlServerSubstraitMaxVersion,
        substrait_version.as_str(),
    );
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, true);
    b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, true);
    b.append(SqlInfo::SqlDdlTable, true);
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    // Quoted names keep their case and are compared exactly. Flight SQL's
    // enum has no "case-sensitive"; drivers read UNKNOWN as that (the Arrow
    // ODBC driver maps it to SQL_IC_SENSITIVE) and CASE_INSENSITIVE as
    // "stored mixed, compared without case", which would be false.
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityUnknown as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    b.append(SqlInfo::SqlKeywords, KEYWORDS);
    b.append(SqlInfo::SqlNumericFunctions, NUMERIC_FUNCTIONS);
    b.append(SqlInfo::SqlStringFunctions, STRING_FUNCTIONS);
    b.append(SqlInfo::SqlSystemFunctions, SYSTEM_FUNCTIONS);
    b.append(SqlInfo::SqlDatetimeFunctions, DATETIME_FUNCTIONS);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsConvert, convertible());
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(
        SqlInfo::SqlSupportedGroupBy,
        bits([
            SqlSupportedGroupBy::SqlGroupByUnrelated,
            SqlSupportedGroupBy::SqlGroupByBeyondSelect,
        ]),
    );
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(
        SqlInfo::SqlSupportedGrammar,
        bits([
            SupportedSqlGrammar::SqlMinimumGrammar,
            SupportedSqlGrammar::SqlCoreGrammar,
        ]),
    );
    // arrow-flight does not re-export SupportedAnsi92SqlGrammarLevel:
    // bit 0 is ANSI92_ENTRY_SQL, bit 1 ANSI92_INTERMEDIATE_SQL.
    b.append(SqlInfo::SqlAnsi92SupportedLevel, bits([0, 1]));
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    b.append(
        SqlInfo::SqlOuterJoinsSupportLevel,
        SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32,
    );
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    b.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
    b.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    b.append(
        SqlInfo::SqlSupportedSubqueries,
        bits([
            SqlSupportedSubqueries::SqlSubqueriesInComparisons,
            SqlSupportedSubqueries::SqlSubqueriesInExists,
            SqlSupportedSubqueries::SqlSubqueriesInIns,
        ]),
    );
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    b.append(
        SqlInfo::SqlSupportedUnions,
        bits([
            SqlSupportedUnions::SqlUnion,
            SqlSupportedUnions::SqlUnionAll,
        ]),
    );
    for limit in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        b.append(limit, 0i64);
    }
    b.append(SqlInfo::SqlMaxColumnNameLength, max_name);
    b.append(SqlInfo::SqlDbSchemaNameLength, max_name);
    b.append(SqlInfo::SqlMaxCatalogNameLength, max_name);
    b.append(SqlInfo::SqlMaxTableNameLength, max_name);
    b.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, true);
    b.append(SqlInfo::SqlDefaultTransactionIsolation, 0i64);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, true);
    b.append(
        SqlInfo::SqlSupportedResultSetTypes,
        bits([SqlSupportedResultSetType::SqlResultSetTypeForwardOnly]),
    );
    let read_only = bits([SqlSupportedResultSetConcurrency::SqlResultSetConcurrencyReadOnly]);
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetUnspecified,
        read_only,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetForwardOnly,
        read_only,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollSensitive,
        0i32,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollInsensitive,
        0i32,
    );
    // A prepared INSERT, DELETE, UPDATE or MERGE runs once per row of
    // parameters bound (JDBC `executeBatch`, ADBC `executemany`).
    b.append(SqlInfo::SqlBatchUpdatesSupported, true);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    b.build().expect("static SQL info is valid")
});

fn type_info(name: &str, data_type: XdbcDataType, column_size: Option<i32>) -> XdbcTypeInfo {
    let quoted = matches!(
        data_type,
        XdbcDataType::XdbcVarchar
            | XdbcDataType::XdbcDate
            | XdbcDataType::XdbcTimestamp
            | XdbcDataType::XdbcTime
    );
    let numeric = matches!(
        data_type,
        XdbcDataType::XdbcTinyint
            | XdbcDataType::XdbcSmallint
            | XdbcDataType::XdbcInteger
            | XdbcDataType::XdbcBigint
            | XdbcDataType::XdbcFloat
            | XdbcDataType::XdbcReal
            | XdbcDataType::XdbcDouble
            | XdbcDataType::XdbcDecimal
    );
    let subcode = match data_type {
        XdbcDataType::XdbcDate => Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
        XdbcDataType::XdbcTime => Some(XdbcDatetimeSubcode::XdbcSubcodeTime),
        XdbcDataType::XdbcTimestamp => Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
        _ => None,
    };
    XdbcTypeInfo {
        type_name: name.to_string(),
        data_type,
        column_size,
        literal_prefix: quoted.then(|| "'".to_string()),
        literal_suffix: quoted.then(|| "'".to_string()),
        create_params: (data_type == XdbcDataType::XdbcDecimal)
            .then(|| vec!["precision".to_string(), "scale".to_string()]),
        nullable: Nullable::NullabilityNullable,
        case_sensitive: data_type == XdbcDataType::XdbcVarchar,
        searchable: Searchable::Full,
        unsigned_attribute: numeric.then_some(false),
        fixed_prec_scale: false,
        auto_increment: numeric.then_some(false),
        local_type_name: Some(name.to_string()),
        minimum_scale: (data_type == XdbcDataType::XdbcDecimal).then_some(0),
        maximum_scale: (data_type == XdbcDataType::XdbcDecimal).then_some(38),
        sql_data_type: data_type,
        datetime_subcode: subcode,
        num_prec_radix: numeric.then_some(10),
        interval_precision: None,
    }
}

/// The `GetXdbcTypeInfo` answers: the SQL types DataFusion accepts.
pub static XDBC_TYPE_INFO: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
    let mut b = XdbcTypeInfoDataBuilder::new();
    for info in [
        type_info("BOOLEAN", XdbcDataType::XdbcBit, Some(1)),
        type_info("TINYINT", XdbcDataType::XdbcTinyint, Some(3)),
        type_info("SMALLINT", XdbcDataType::XdbcSmallint, Some(5)),
        type_info("INTEGER", XdbcDataType::XdbcInteger, Some(10)),
        type_info("BIGINT", XdbcDataType::XdbcBigint, Some(19)),
        type_info("REAL", XdbcDataType::XdbcReal, Some(24)),
        type_info("DOUBLE", XdbcDataType::XdbcDouble, Some(53)),
        type_info("DECIMAL", XdbcDataType::XdbcDecimal, Some(38)),
        type_info("VARCHAR", XdbcDataType::XdbcVarchar, None),
        type_info("BYTEA", XdbcDataType::XdbcVarbinary, None),
        type_info("DATE", XdbcDataType::XdbcDate, Some(10)),
        type_info("TIME", XdbcDataType::XdbcTime, Some(15)),
        type_info("TIMESTAMP", XdbcDataType::XdbcTimestamp, Some(26)),
        XdbcTypeInfo {
            datetime_subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeTimestampWithTimezone),
            ..type_info(
                "TIMESTAMP WITH TIME ZONE",
                XdbcDataType::XdbcTimestamp,
                Some(32),
            )
        },
        XdbcTypeInfo {
            literal_prefix: Some("INTERVAL '".to_string()),
            literal_suffix: Some("'".to_string()),
            // Months, days and nanoseconds: year-month and day-time both.
            datetime_subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeIntervalDayToSecond),
            interval_precision: Some(9),
            ..type_info("INTERVAL", XdbcDataType::XdbcInterval, None)
        },
        // Flight SQL's type codes have none for arrays and structs (JDBC's
        // ARRAY and STRUCT); the names say what they are.
        XdbcTypeInfo {
            create_params: Some(vec!["element type".to_string()]),
            searchable: Searchable::None,
            ..type_info("ARRAY", XdbcDataType::XdbcUnknownType, None)
        },
        XdbcTypeInfo {
            create_params: Some(vec!["field name and type, ...".to_string()]),
            searchable: Searchable::None,
            ..type_info("STRUCT", XdbcDataType::XdbcUnknownType, None)
        },
    ] {
        b.append(info);
    }
    b.build().expect("static type info is valid")
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_every_documented_info_field_and_type() {
        let all = SQL_INFO.record_batch(Vec::<u32>::new()).unwrap();
        // Every SqlInfo id.
        assert_eq!(all.num_rows(), 91);
        assert_eq!(
            SQL_INFO
                .record_batch([SqlInfo::FlightSqlServerName as u32])
                .unwrap()
                .num_rows(),
            1
        );
        assert_eq!(XDBC_TYPE_INFO.record_batch(None).unwrap().num_rows(), 17);
        let timestamps = XDBC_TYPE_INFO
            .record_batch(Some(XdbcDataType::XdbcTimestamp as i32))
            .unwrap();
        assert_eq!(timestamps.num_rows(), 2);
        let interval = XDBC_TYPE_INFO
            .record_batch(Some(XdbcDataType::XdbcInterval as i32))
            .unwrap();
        assert_eq!(interval.num_rows(), 1);
        let varchar = XDBC_TYPE_INFO
            .record_batch(Some(XdbcDataType::XdbcVarchar as i32))
            .unwrap();
        assert_eq!(varchar.num_rows(), 1);
    }

    #[test]
    fn quoted_names_are_not_said_to_be_case_insensitive() {
        use arrow::array::{AsArray, Int32Array};
        let case = |info: SqlInfo| {
            let batch = SQL_INFO.record_batch([info as u32]).unwrap();
            let value = batch.column(1).as_union().value(0);
            value
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .value(0)
        };
        assert_eq!(
            case(SqlInfo::SqlIdentifierCase),
            SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32
        );
        assert_eq!(
            case(SqlInfo::SqlQuotedIdentifierCase),
            SqlSupportedCaseSensitivity::SqlCaseSensitivityUnknown as i32
        );
    }

    /// Every conversion the matrix claims runs as a `CAST` in the engine,
    /// and a conversion it leaves out is refused.
    #[tokio::test]
    async fn the_convert_matrix_is_what_cast_does() {
        let ctx = datafusion::prelude::SessionContext::new();
        let matrix = convertible();
        let mut claimed = 0;
        for (from, sql_from, _) in CONVERT_TYPES {
            for (to, sql_to, _) in CONVERT_TYPES {
                let sql = format!("SELECT CAST(CAST(NULL AS {sql_from}) AS {sql_to})");
                let runs = match ctx.sql(&sql).await {
                    Ok(frame) => frame.collect().await.is_ok(),
                    Err(_) => false,
                };
                let listed = matrix[&(*from as i32)].contains(&(*to as i32));
                assert_eq!(listed, runs, "{sql}: listed {listed}, runs {runs}");
                claimed += usize::from(listed);
            }
        }
        assert!(claimed > 200, "{claimed} conversions");
        assert!(
            matrix[&(Convert::SqlConvertVarchar as i32)]
                .contains(&(Convert::SqlConvertInteger as i32))
        );
        assert!(
            !matrix[&(Convert::SqlConvertDate as i32)].contains(&(Convert::SqlConvertBit as i32))
        );
    }
}
