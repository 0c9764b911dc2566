//! What a SQL text is allowed to do, decided before and after planning.
//!
//! Data is reached only through the catalog: `CREATE EXTERNAL TABLE`,
//! `COPY ... TO`, reading a file or URL by path, and `SET` of engine options
//! are refused with the reason. Planned statements are sorted into queries
//! (streamed back) and updates (catalog commits).

use std::ops::ControlFlow;

use datafusion::common::TableReference;
use datafusion::execution::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DdlStatement, DmlStatement, LogicalPlan, WriteOp};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Statement as SqlStatement, Value, visit_expressions_mut,
};

use super::alter::AlterTable;
use super::carried::carried;
use super::merge::MergeSpec;
use super::row_change::RowChange;
use crate::error::{Error, Result};
use lakehouse_core::catalog::{CATALOG_NAME, Operation, SYSTEM_SCHEMAS, TableRef, split_version};

/// A statement that changes the catalog.
#[derive(Debug, Clone)]
pub enum Update {
    CreateTable {
        table: TableRef,
        input: LogicalPlan,
        if_not_exists: bool,
        or_replace: bool,
    },
    Insert {
        table: TableRef,
        input: LogicalPlan,
        overwrite: bool,
    },
    DropTable {
        table: TableRef,
        if_exists: bool,
    },
    CreateSchema {
        name: String,
        if_not_exists: bool,
    },
    /// `DELETE` or `UPDATE`.
    ChangeRows(RowChange),
    CreateView {
        view: TableRef,
        /// The `CREATE VIEW` statement, as DataFusion printed it.
        definition: String,
        input: LogicalPlan,
        or_replace: bool,
    },
    DropView {
        view: TableRef,
        if_exists: bool,
    },
    AlterTable(AlterTable),
    Merge(MergeSpec),
}

/// A planned statement.
#[derive(Debug, Clone)]
pub enum Planned {
    Query(LogicalPlan),
    Update(Update),
}

/// Refuses the statement kinds that reach data outside the catalog or
/// change engine settings.
pub fn refuse_dangerous(statement: &DFStatement) -> Result<()> {
    match statement {
        DFStatement::CreateExternalTable(_) => Err(Error::Refused(
            "CREATE EXTERNAL TABLE is disabled: tables are created through the catalog \
             (bulk ingest, CREATE TABLE ... AS SELECT)"
                .into(),
        )),
        DFStatement::CopyTo(_) => Err(Error::Refused(
            "COPY ... TO is disabled: the server never writes outside its catalog; \
             read results through a query instead"
                .into(),
        )),
        DFStatement::Reset(_) => Err(Error::Refused(
            "RESET is disabled: engine settings are chosen by the server's configuration".into(),
        )),
        DFStatement::Statement(s) if matches!(**s, SqlStatement::Set(_)) => Err(Error::Refused(
            "SET is disabled: engine settings are chosen by the server's configuration".into(),
        )),
        DFStatement::Explain(explain) => refuse_dangerous(&explain.statement),
        DFStatement::Statement(_) => Ok(()),
    }
}

/// Numbers `?` placeholders in textual order, so JDBC- and ODBC-style
/// parameters work alongside PostgreSQL-style ones: they become `$1, $2, ...`,
/// or, when the text also uses `$n`, continue after the highest `n`.
pub fn number_question_marks(statement: &mut DFStatement) {
    let DFStatement::Statement(inner) = statement else {
        return;
    };
    let mut highest = 0;
    let _ = visit_expressions_mut(inner.as_mut(), |expr| {
        if let SqlExpr::Value(v) = expr
            && let Value::Placeholder(p) = &v.value
            && let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
        {
            highest = highest.max(n);
        }
        ControlFlow::<()>::Continue(())
    });
    let mut next = highest + 1;
    let _ = visit_expressions_mut(inner.as_mut(), |expr| {
        if let SqlExpr::Value(v) = expr
            && let Value::Placeholder(p) = &mut v.value
            && p == "?"
        {
            *p = format!("${next}");
            next += 1;
        }
        ControlFlow::<()>::Continue(())
    });
}

/// True for names that can only mean a file or URL, never a catalog table.
fn looks_like_path(name: &str) -> bool {
    name.contains(['/', '\\', ':', '.', '*'])
}

/// The catalog tables and views a statement names (table functions and
/// the system schemas aside); a name that can only be a file or URL is
/// refused with the reason.
pub fn catalog_references(
    state: &SessionState,
    statement: &DFStatement,
) -> Result<Vec<TableReference>> {
    let mut found = Vec::new();
    for reference in state.resolve_table_references(statement)? {
        refuse_path(&reference)?;
        let is_function =
            reference.schema().is_none() && state.table_functions().contains_key(reference.table());
        if !is_function && !is_system(&reference) {
            found.push(reference);
        }
    }
    Ok(found)
}

/// Refuses a table name that can only mean a file or URL, with the reason.
pub fn refuse_path(reference: &TableReference) -> Result<()> {
    let name = reference.table();
    if looks_like_path(name) {
        return Err(Error::Refused(format!(
            "reading files or URLs by path ({name:?}) is disabled: load data into a table \
             with bulk ingest and query it by name"
        )));
    }
    Ok(())
}

/// Whether a reference is to a system schema (`information_schema`,
/// `pg_catalog`), which any statement may read.
pub fn is_system(reference: &TableReference) -> bool {
    reference
        .schema()
        .is_some_and(|schema| SYSTEM_SCHEMAS.contains(&schema))
}

/// Resolves a DataFusion table reference to a catalog table; a bare name
/// is in the session's schema, else `public`.
pub fn table_ref(reference: &TableReference) -> Result<TableRef> {
    check_catalog(reference)?;
    Ok(TableRef::new(
        schema_of(reference).as_deref(),
        reference.table(),
    )?)
}

/// Resolves a reference that may name a version (`table@vN`).
pub fn versioned_table_ref(reference: &TableReference) -> Result<(TableRef, Option<u64>)> {
    check_catalog(reference)?;
    let (table, version) = split_version(reference.table())?;
    Ok((
        TableRef::new(schema_of(reference).as_deref(), table)?,
        version,
    ))
}

fn schema_of(reference: &TableReference) -> Option<String> {
    reference
        .schema()
        .map(str::to_string)
        .or_else(super::session::schema)
}

fn check_catalog(reference: &TableReference) -> Result<()> {
    match reference.catalog() {
        Some(catalog) if catalog != CATALOG_NAME => Err(Error::invalid(format!(
            "catalog {catalog:?} does not exist; this server has one catalog, {CATALOG_NAME:?}"
        ))),
        _ => Ok(()),
    }
}

/// Sorts a plan into a query or an update, refusing what is not allowed.
pub fn classify(plan: LogicalPlan) -> Result<Planned> {
    if let Some(merge) = carried::<MergeSpec>(&plan) {
        return Ok(Planned::Update(Update::Merge(merge.clone())));
    }
    if let Some(alter) = carried::<AlterTable>(&plan) {
        return Ok(Planned::Update(Update::AlterTable(alter.clone())));
    }
    match plan {
        LogicalPlan::Ddl(ddl) => classify_ddl(ddl).map(Planned::Update),
        LogicalPlan::Dml(dml) => classify_dml(dml).map(Planned::Update),
        LogicalPlan::Copy(_) => Err(Error::Refused("COPY ... TO is disabled".into())),
        LogicalPlan::Statement(statement) => Err(Error::NotSupported(format!(
            "{} statements are not supported",
            statement.name()
        ))),
        query => Ok(Planned::Query(query)),
    }
}

fn classify_ddl(ddl: DdlStatement) -> Result<Update> {
    match ddl {
        DdlStatement::CreateMemoryTable(create) => {
            if create.temporary {
                return Err(Error::NotSupported("temporary tables".into()));
            }
            Ok(Update::CreateTable {
                table: table_ref(&create.name)?,
                input: create.input.as_ref().clone(),
                if_not_exists: create.if_not_exists,
                or_replace: create.or_replace,
            })
        }
        DdlStatement::DropTable(drop) => Ok(Update::DropTable {
            table: table_ref(&drop.name)?,
            if_exists: drop.if_exists,
        }),
        DdlStatement::CreateCatalogSchema(create) => {
            let name = match create.schema_name.split_once('.') {
                Some((catalog, _)) if catalog != CATALOG_NAME => {
                    return Err(Error::invalid(format!(
                        "catalog {catalog:?} does not exist; this server has one catalog, {CATALOG_NAME:?}"
                    )));
                }
                Some((_, schema)) => schema.to_string(),
                None => create.schema_name.clone(),
            };
            Ok(Update::CreateSchema {
                name,
                if_not_exists: create.if_not_exists,
            })
        }
        DdlStatement::CreateExternalTable(_) => {
            Err(Error::Refused("CREATE EXTERNAL TABLE is disabled".into()))
        }
        DdlStatement::CreateView(create) => {
            if create.temporary {
                return Err(Error::NotSupported("temporary views".into()));
            }
            let view = table_ref(&create.name)?;
            Ok(Update::CreateView {
                definition: create.definition.ok_or_else(|| {
                    Error::internal(format!("CREATE VIEW {view} without its SQL"))
                })?,
                view,
                input: create.input.as_ref().clone(),
                or_replace: create.or_replace,
            })
        }
        DdlStatement::DropView(drop) => Ok(Update::DropView {
            view: table_ref(&drop.name)?,
            if_exists: drop.if_exists,
        }),
        other => Err(Error::NotSupported(format!("{} statements", other.name()))),
    }
}

fn classify_dml(dml: DmlStatement) -> Result<Update> {
    let table = table_ref(&dml.table_name)?;
    match dml.op {
        WriteOp::Insert(op) => Ok(Update::Insert {
            table,
            input: dml.input.as_ref().clone(),
            overwrite: matches!(op, InsertOp::Overwrite | InsertOp::Replace),
        }),
        WriteOp::Ctas => Ok(Update::CreateTable {
            table,
            input: dml.input.as_ref().clone(),
            if_not_exists: false,
            or_replace: false,
        }),
        WriteOp::Delete => {
            RowChange::from_plan(table, Operation::Delete, &dml.input).map(Update::ChangeRows)
        }
        WriteOp::Update => {
            RowChange::from_plan(table, Operation::Update, &dml.input).map(Update::ChangeRows)
        }
        // Every row, as DELETE FROM t: a version with no files, no scan.
        WriteOp::Truncate => {
            RowChange::every_row(table, &dml.table_name, &dml.target).map(Update::ChangeRows)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn parse(sql: &str) -> DFStatement {
        DFParser::parse_sql(sql).unwrap().pop_front().unwrap()
    }

    #[test]
    fn question_marks_are_numbered_in_order() {
        let mut s = parse("SELECT ? AS a FROM t WHERE b = ? AND c IN (?, 4)");
        number_question_marks(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT $1 AS a FROM t WHERE b = $2 AND c IN ($3, 4)"
        );
        let mut mixed = parse("SELECT * FROM t WHERE a = $2 AND b = ?");
        number_question_marks(&mut mixed);
        assert_eq!(mixed.to_string(), "SELECT * FROM t WHERE a = $2 AND b = $3");
    }

    #[test]
    fn refuses_statements_that_escape_the_catalog() {
        for sql in [
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc'",
            "COPY (SELECT 1) TO '/tmp/x.parquet'",
            "SET datafusion.execution.batch_size = 1",
            "EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'",
        ] {
            let err = refuse_dangerous(&parse(sql)).unwrap_err();
            assert!(matches!(err, Error::Refused(_)), "{sql}: {err}");
        }
        refuse_dangerous(&parse("SELECT 1")).unwrap();
    }

    #[test]
    fn path_like_names_are_recognised() {
        assert!(looks_like_path("data.parquet"));
        assert!(looks_like_path("/etc/passwd"));
        assert!(looks_like_path("s3://bucket/x"));
        assert!(!looks_like_path("trips_2024"));
    }

    #[test]
    fn other_catalogs_are_unknown() {
        let err = table_ref(&TableReference::full("other", "public", "t")).unwrap_err();
        assert!(err.to_string().contains("\"other\""));
        assert_eq!(
            table_ref(&TableReference::bare("t")).unwrap().to_string(),
            "public.t"
        );
    }
}
