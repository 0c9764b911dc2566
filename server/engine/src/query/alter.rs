//! `ALTER TABLE`: DataFusion does not plan it, so the parsed statement is
//! turned into a plan node of its own here, classified as an update and
//! applied to the table's schema by the catalog (no data file rewritten;
//! see `lakehouse_core::catalog::columns`).
//!
//! Supported: `ADD [COLUMN] [IF NOT EXISTS] c type [DEFAULT expr]`, `DROP
//! [COLUMN] [IF EXISTS] c`, `RENAME COLUMN a TO b`, `ALTER [COLUMN] c [SET
//! DATA] TYPE t` (widening only), several at once, as one version. SQL type
//! names and defaults are resolved by DataFusion itself (`CAST(... AS t)`),
//! so every type name it knows works. `RENAME TO` renames the table (see
//! `lakehouse_core::catalog::Catalog::rename_table`), on its own.

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    AlterColumnOperation, AlterTable as SqlAlterTable, AlterTableOperation, ColumnOption,
    RenameTableNameKind,
};

use super::carried::{Carried, carry};
use super::statement::table_ref;
use crate::error::{Error, Result};
use lakehouse_core::catalog::{ColumnChange, TableRef};

/// One change as written: types and defaults are still SQL text.
pub type WrittenChange = ColumnChange<String>;

/// An `ALTER TABLE` statement as planned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct AlterTable {
    pub table: TableRef,
    pub action: AlterAction,
}

/// What an `ALTER TABLE` does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum AlterAction {
    /// Column changes, applied together as one version.
    Columns(Vec<WrittenChange>),
    /// `RENAME TO`: the table's new name.
    RenameTo(TableRef),
}

impl Carried for AlterTable {
    const NAME: &'static str = "AlterTable";
}

/// The plan of a parsed `ALTER TABLE`.
pub fn alter_plan(alter: &SqlAlterTable, normalize: bool) -> Result<LogicalPlan> {
    let reference =
        datafusion::sql::planner::object_name_to_table_reference(alter.name.clone(), normalize)?;
    let table = table_ref(&reference)?;
    let ident = |i: &datafusion::sql::sqlparser::ast::Ident| {
        if normalize && i.quote_style.is_none() {
            i.value.to_lowercase()
        } else {
            i.value.clone()
        }
    };
    let unsupported = |what: String| {
        Error::NotSupported(format!(
            "{what} in ALTER TABLE {table}: columns can be added, dropped, renamed and widened"
        ))
    };
    let mut changes = Vec::new();
    for operation in &alter.operations {
        match operation {
            AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                column_position: None,
                ..
            } => {
                let mut default = None;
                for option in &column_def.options {
                    match &option.option {
                        ColumnOption::Default(expr) => default = Some(expr.to_string()),
                        ColumnOption::Null => {}
                        other => return Err(unsupported(format!("column option {other}"))),
                    }
                }
                changes.push(ColumnChange::Add {
                    name: ident(&column_def.name),
                    data_type: column_def.data_type.to_string(),
                    default,
                    if_not_exists: *if_not_exists,
                });
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => changes.extend(column_names.iter().map(|name| ColumnChange::Drop {
                name: ident(name),
                if_exists: *if_exists,
            })),
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => changes.push(ColumnChange::Rename {
                from: ident(old_column_name),
                to: ident(new_column_name),
            }),
            AlterTableOperation::AlterColumn {
                column_name,
                op:
                    AlterColumnOperation::SetDataType {
                        data_type,
                        using: None,
                        ..
                    },
            } => changes.push(ColumnChange::Widen {
                name: ident(column_name),
                data_type: data_type.to_string(),
            }),
            AlterTableOperation::RenameTable {
                table_name: RenameTableNameKind::To(name) | RenameTableNameKind::As(name),
            } => {
                if alter.operations.len() > 1 {
                    return Err(Error::NotSupported(format!(
                        "ALTER TABLE {table} RENAME TO with other changes: rename in a statement of its own"
                    )));
                }
                let reference = datafusion::sql::planner::object_name_to_table_reference(
                    name.clone(),
                    normalize,
                )?;
                let mut to = table_ref(&reference)?;
                // An unqualified new name stays in the table's schema.
                if reference.schema().is_none() {
                    to.schema = table.schema.clone();
                }
                return Ok(carry(AlterTable {
                    table,
                    action: AlterAction::RenameTo(to),
                }));
            }
            other => return Err(unsupported(other.to_string())),
        }
    }
    Ok(carry(AlterTable {
        table,
        action: AlterAction::Columns(changes),
    }))
}

/// The changes with their SQL types and defaults resolved.
pub async fn resolve(ctx: &SessionContext, changes: &[WrittenChange]) -> Result<Vec<ColumnChange>> {
    let mut resolved = Vec::with_capacity(changes.len());
    for change in changes {
        resolved.push(match change {
            ColumnChange::Add {
                name,
                data_type,
                default,
                if_not_exists,
            } => {
                let default = match default {
                    Some(expr) => Some(default_text(ctx, name, expr, data_type).await?),
                    None => None,
                };
                ColumnChange::Add {
                    name: name.clone(),
                    data_type: sql_type(ctx, data_type).await?,
                    default,
                    if_not_exists: *if_not_exists,
                }
            }
            ColumnChange::Drop { name, if_exists } => ColumnChange::Drop {
                name: name.clone(),
                if_exists: *if_exists,
            },
            ColumnChange::Rename { from, to } => ColumnChange::Rename {
                from: from.clone(),
                to: to.clone(),
            },
            ColumnChange::Widen { name, data_type } => ColumnChange::Widen {
                name: name.clone(),
                data_type: sql_type(ctx, data_type).await?,
            },
        });
    }
    Ok(resolved)
}

/// The Arrow type DataFusion gives a SQL type name.
async fn sql_type(ctx: &SessionContext, name: &str) -> Result<DataType> {
    let plan = ctx
        .state()
        .create_logical_plan(&format!("SELECT CAST(NULL AS {name})"))
        .await
        .map_err(|e| Error::invalid(format!("{name} is not a type: {}", e.strip_backtrace())))?;
    Ok(match plan.schema().field(0).data_type() {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    })
}

/// A default value, evaluated once and kept as text in the column's type
/// (`data_type`, as SQL names it).
async fn default_text(
    ctx: &SessionContext,
    column: &str,
    expr: &str,
    data_type: &str,
) -> Result<String> {
    let invalid = |detail: String| {
        Error::invalid(format!(
            "DEFAULT {expr} of column {column:?} is not a constant {data_type}: {detail}"
        ))
    };
    let batches = ctx
        .sql(&format!("SELECT CAST({expr} AS {data_type}) AS v"))
        .await
        .map_err(|e| invalid(e.strip_backtrace()))?
        .collect()
        .await
        .map_err(|e| invalid(e.strip_backtrace()))?;
    let value = batches
        .first()
        .filter(|b| b.num_rows() == 1)
        .map(|b| ScalarValue::try_from_array(b.column(0), 0))
        .transpose()?
        .ok_or_else(|| invalid("it gave no value".into()))?;
    if value.is_null() {
        return Err(invalid(
            "it is null, which is what a column without a default reads".into(),
        ));
    }
    Ok(value.to_string())
}
