//! What a Postgres client's SQL text asks for, statement by statement:
//! the commands this port answers itself (transactions, `SET`, `SHOW`,
//! `DISCARD`, `DEALLOCATE`) and SQL for the engine.
//!
//! Text is read with the Postgres dialect and rewritten by
//! datafusion-pg-catalog's compatibility rules (`::regclass` casts,
//! `= ANY(array)`, `pg_catalog.` qualifiers, ...) that make the catalog
//! queries of psql, DBeaver and SQLAlchemy plannable; the functions that
//! name the session (`current_user`, `current_schema`) become the
//! connection's values, and the few Postgres functions DataFusion lacks
//! that tools call (`to_regtype`, `generate_subscripts`) the SQL they
//! stand for. Text the Postgres dialect cannot read (Lakehouse
//! SQL such as `VERSION AS OF`) goes to the engine unchanged, which reads
//! it with its own dialect or says what is wrong.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Query, SelectItem, Set, SetExpr,
    Statement, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

/// One statement of a client's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Only whitespace or semicolons.
    Empty,
    Begin,
    Commit,
    Rollback,
    /// `SAVEPOINT name`, `RELEASE SAVEPOINT name`: accepted, as `BEGIN`.
    Savepoint(&'static str),
    /// `ROLLBACK TO SAVEPOINT name`: ends a failed block's failure; undoes
    /// nothing.
    RollbackToSavepoint,
    /// `SET name = value`, `SET TIME ZONE value`, `SET NAMES value`.
    Set {
        name: String,
        value: String,
    },
    /// `SET TRANSACTION ...` and `SET SESSION CHARACTERISTICS ...`: every
    /// statement commits alone, whatever the isolation asked for.
    SetTransaction,
    /// `SET ROLE`, `SET SESSION AUTHORIZATION`: not supported.
    SetRole,
    /// `SHOW name`, `SHOW ALL`.
    Show(String),
    /// `DISCARD ALL` and the like: settings back to their defaults.
    Discard,
    /// `DEALLOCATE name` (`None`: `ALL`).
    Deallocate(Option<String>),
    /// SQL for the engine.
    Sql(String),
}

impl Command {
    /// The command tag a client sees for the commands answered here.
    pub fn tag(&self) -> &'static str {
        match self {
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Rollback => "ROLLBACK",
            Command::Set { .. } | Command::SetTransaction => "SET",
            Command::Discard => "DISCARD ALL",
            Command::Deallocate(_) => "DEALLOCATE",
            Command::Show(_) => "SHOW",
            Command::Savepoint(tag) => tag,
            Command::RollbackToSavepoint => "ROLLBACK",
            Command::Empty | Command::SetRole | Command::Sql(_) => "",
        }
    }
}

/// Who is asking, for the functions that name the session.
#[derive(Debug, Clone)]
pub struct SessionNames {
    pub user: String,
    pub schema: String,
}

/// Splits and reads `text`.
pub fn commands(
    parser: &PostgresCompatibilityParser,
    text: &str,
    names: &SessionNames,
) -> Vec<Command> {
    if text.chars().all(|c| c == ';' || c.is_whitespace()) {
        return vec![Command::Empty];
    }
    match parser.parse(text) {
        Ok(statements) if !statements.is_empty() => statements
            .into_iter()
            .map(|statement| command(statement, names))
            .collect(),
        _ => vec![Command::Sql(text.to_string())],
    }
}

fn command(mut statement: Statement, names: &SessionNames) -> Command {
    match &statement {
        Statement::StartTransaction { .. } => Command::Begin,
        Statement::Commit { .. } => Command::Commit,
        Statement::Rollback {
            savepoint: None, ..
        } => Command::Rollback,
        Statement::Rollback { .. } => Command::RollbackToSavepoint,
        Statement::Savepoint { .. } => Command::Savepoint("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Command::Savepoint("RELEASE"),
        Statement::Set(set) => set_command(set),
        Statement::ShowVariable { variable } => Command::Show(
            variable
                .iter()
                .map(|part| part.value.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Statement::Discard { .. } => Command::Discard,
        Statement::Deallocate { name, .. } => Command::Deallocate(
            (!name.value.eq_ignore_ascii_case("all")).then(|| name.value.clone()),
        ),
        _ => {
            let _ = statement.visit(&mut SessionFunctions(names));
            Command::Sql(statement.to_string())
        }
    }
}

fn set_command(set: &Set) -> Command {
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => Command::Set {
            name: variable.to_string(),
            value: values
                .iter()
                .map(setting_value)
                .collect::<Vec<_>>()
                .join(", "),
        },
        Set::SetTimeZone { value, .. } => Command::Set {
            name: "TimeZone".into(),
            value: setting_value(value),
        },
        Set::SetNames { charset_name, .. } => Command::Set {
            name: "client_encoding".into(),
            value: charset_name.value.clone(),
        },
        Set::SetRole { .. } | Set::SetSessionAuthorization(_) => Command::SetRole,
        _ => Command::SetTransaction,
    }
}

/// A `SET` value as Postgres takes it: quoted strings unquoted, words and
/// numbers as written.
fn setting_value(expr: &Expr) -> String {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

/// Replaces `current_user`, `session_user`, `user` and `current_schema()`
/// with the connection's values (a projection keeps the function's name as
/// its column name, as Postgres shows it).
struct SessionFunctions<'a>(&'a SessionNames);

impl SessionFunctions<'_> {
    fn value_of(&self, expr: &Expr) -> Option<(String, &'static str)> {
        let Expr::Function(function) = expr else {
            return None;
        };
        let name = function
            .name
            .0
            .last()?
            .as_ident()?
            .value
            .to_ascii_lowercase();
        match name.as_str() {
            "session_user" | "current_user" | "user" => Some((self.0.user.clone(), "current_user")),
            "current_schema" => Some((self.0.schema.clone(), "current_schema")),
            _ => None,
        }
    }
}

impl VisitorMut for SessionFunctions<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(expr) = item
                    && let Some((_, column)) = self.value_of(expr)
                {
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: Ident::new(column),
                    };
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some((value, _)) = self.value_of(expr) {
            *expr = Expr::value(Value::SingleQuotedString(value));
        } else if let Some(replaced) = replaced_function(expr) {
            *expr = replaced;
        }
        ControlFlow::Continue(())
    }
}

/// Postgres functions DataFusion lacks, as the SQL they stand for:
/// `to_regtype(name)` (psycopg's type lookup) as the `pg_type` query (null
/// for a type that does not exist), and the set-returning
/// `generate_subscripts(array, dim)` (SQLAlchemy's key reflection, beside
/// an `unnest` of the same array) as an `unnest` of the positions.
const REPLACED_FUNCTIONS: [(&str, usize, &str); 2] = [
    (
        "to_regtype",
        1,
        "(SELECT oid FROM pg_catalog.pg_type WHERE typname = {0} LIMIT 1)",
    ),
    (
        "generate_subscripts",
        2,
        "unnest(range(1, CAST(coalesce(array_length({0}, {1}), 0) AS BIGINT) + 1))",
    ),
];

fn replaced_function(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else {
        return None;
    };
    let name = function.name.0.last()?.as_ident()?;
    let (_, arity, template) = REPLACED_FUNCTIONS
        .iter()
        .find(|(known, _, _)| name.value.eq_ignore_ascii_case(known))?;
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    if list.args.len() != *arity {
        return None;
    }
    let mut sql = template.to_string();
    for (i, argument) in list.args.iter().enumerate() {
        let FunctionArg::Unnamed(FunctionArgExpr::Expr(argument)) = argument else {
            return None;
        };
        sql = sql.replace(&format!("{{{i}}}"), &argument.to_string());
    }
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .ok()?
        .parse_expr()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<Command> {
        let names = SessionNames {
            user: "ada".into(),
            schema: "sales".into(),
        };
        commands(&PostgresCompatibilityParser::new(), text, &names)
    }

    #[test]
    fn transaction_and_setting_commands_are_answered_here() {
        assert_eq!(read("BEGIN; COMMIT"), vec![Command::Begin, Command::Commit]);
        assert_eq!(read("rollback"), vec![Command::Rollback]);
        assert_eq!(read(" ; "), vec![Command::Empty]);
        assert_eq!(
            read("SET search_path TO sales, public"),
            vec![Command::Set {
                name: "search_path".into(),
                value: "sales, public".into()
            }]
        );
        assert_eq!(
            read("SET TIME ZONE 'Europe/Paris'"),
            vec![Command::Set {
                name: "TimeZone".into(),
                value: "Europe/Paris".into()
            }]
        );
        assert_eq!(
            read("SHOW TRANSACTION ISOLATION LEVEL"),
            vec![Command::Show("transaction isolation level".into())]
        );
        assert_eq!(read("DEALLOCATE ALL"), vec![Command::Deallocate(None)]);
    }

    #[test]
    fn session_functions_become_the_connection_values() {
        let commands = read("SELECT current_user, current_schema()");
        let [Command::Sql(sql)] = commands.as_slice() else {
            panic!("one SQL statement: {commands:?}")
        };
        assert_eq!(
            sql,
            "SELECT 'ada' AS current_user, 'sales' AS current_schema"
        );
    }

    #[test]
    fn lakehouse_sql_the_postgres_dialect_cannot_read_goes_through_as_written() {
        let text = "SELECT * FROM trips VERSION AS OF 3";
        assert_eq!(read(text), vec![Command::Sql(text.into())]);
    }
}
