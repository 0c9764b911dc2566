//! Time travel clauses: `t VERSION AS OF 3`, `t TIMESTAMP AS OF '2026-12-01
//! 10:00:00'` (Delta Lake's spelling) and `t FOR SYSTEM_TIME AS OF '...'`
//! (SQL:2011's), rewritten to the time-travel name `"t@v3"` before parsing.
//!
//! The SQL dialect the server parses has no table versions (DataFusion would
//! parse them in other dialects and then silently read the newest version),
//! so the clause is found in the statement's tokens: a table name, the
//! clause, a version number or a time in quotes. A time resolves to the
//! version current then: the newest committed at or before it. Times
//! without an offset are UTC.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::{Keyword, RESERVED_FOR_TABLE_ALIAS};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};

use crate::error::{Error, Result};
use lakehouse_core::catalog::{CATALOG_NAME, TableRef};

/// What a clause asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Version(u64),
    Time(DateTime<Utc>),
}

/// `sql` with every time travel clause replaced by the time-travel name of
/// the version `resolve` finds for the table and clause.
pub fn rewrite_as_of(
    sql: &str,
    resolve: impl Fn(&TableRef, AsOf) -> Result<u64>,
) -> Result<Cow<'_, str>> {
    if !has_word_of(sql) {
        return Ok(Cow::Borrowed(sql));
    }
    let Ok(mut tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        // Not SQL the parser takes either; it reports the error.
        return Ok(Cow::Borrowed(sql));
    };
    let mut changed = false;
    let mut at = 0;
    while let Some(clause) = find_clause(&tokens, at)? {
        let table = table_ref(&clause.name)?;
        let version = resolve(&table, clause.as_of)?;
        let last = clause.name.last().expect("a name has a part");
        let versioned = Token::Word(Word {
            value: format!("{}@v{version}", last.value),
            quote_style: Some('"'),
            keyword: Keyword::NoKeyword,
        });
        tokens.splice(clause.name_end..clause.end, [versioned]);
        at = clause.name_end + 1;
        changed = true;
    }
    if !changed {
        return Ok(Cow::Borrowed(sql));
    }
    Ok(Cow::Owned(tokens.iter().map(Token::to_string).collect()))
}

/// Whether `sql` has the word `OF` anywhere (in any case): every statement
/// is planned through here, and most (a knn() call with a vector literal
/// among them) need no second tokenizing.
fn has_word_of(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let word = |i: usize| {
        bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    bytes.windows(2).enumerate().any(|(i, pair)| {
        pair.eq_ignore_ascii_case(b"of") && (i == 0 || !word(i - 1)) && !word(i + 2)
    })
}

/// One clause found: the table name's parts, the token span from the name's
/// last part to the clause's end, and what it asks for.
struct Clause {
    name: Vec<Word>,
    /// Index of the name's last part.
    name_end: usize,
    /// One past the clause's last token.
    end: usize,
    as_of: AsOf,
}

/// The next clause at or after token `from`.
fn find_clause(tokens: &[Token], from: usize) -> Result<Option<Clause>> {
    for i in from..tokens.len() {
        if !is_keyword(&tokens[i], Keyword::AS) {
            continue;
        }
        let Some(of) = next_significant(tokens, i + 1) else {
            continue;
        };
        if !is_keyword(&tokens[of], Keyword::OF) {
            continue;
        }
        let Some(kind) = previous_significant(tokens, i) else {
            continue;
        };
        let (by_version, before_kind) = match &tokens[kind] {
            t if is_keyword(t, Keyword::VERSION) => (true, kind),
            t if is_keyword(t, Keyword::TIMESTAMP) => (false, kind),
            t if is_keyword(t, Keyword::SYSTEM_TIME) => match previous_significant(tokens, kind) {
                Some(f) if is_keyword(&tokens[f], Keyword::FOR) => (false, f),
                _ => continue,
            },
            _ => continue,
        };
        let Some((name, name_end)) = name_before(tokens, before_kind) else {
            continue;
        };
        let Some(mut value) = next_significant(tokens, of + 1) else {
            return Err(Error::invalid(
                "AS OF needs a version number or a time in quotes",
            ));
        };
        if !by_version && is_keyword(&tokens[value], Keyword::TIMESTAMP) {
            value = next_significant(tokens, value + 1).unwrap_or(value);
        }
        let as_of = match (&tokens[value], by_version) {
            (Token::Number(n, _), true) => AsOf::Version(n.parse().map_err(|_| {
                Error::invalid(format!(
                    "VERSION AS OF {n}: a version is a whole number from 1"
                ))
            })?),
            (Token::SingleQuotedString(text), false) => AsOf::Time(parse_time(text)?),
            (other, true) => {
                return Err(Error::invalid(format!(
                    "VERSION AS OF takes a version number, as in VERSION AS OF 3, not {other}"
                )));
            }
            (other, false) => {
                return Err(Error::invalid(format!(
                    "TIMESTAMP AS OF takes a time in quotes, as in TIMESTAMP AS OF '2026-12-01 10:00:00', not {other}"
                )));
            }
        };
        return Ok(Some(Clause {
            name,
            name_end,
            end: value + 1,
            as_of,
        }));
    }
    Ok(None)
}

/// The dotted name ending right before token `before` (whitespace
/// between), and the index of its last part.
fn name_before(tokens: &[Token], before: usize) -> Option<(Vec<Word>, usize)> {
    let last = previous_significant(tokens, before)?;
    let Token::Word(word) = &tokens[last] else {
        return None;
    };
    // Words such as `returns` or `version` name tables too; only those
    // that cannot end a table name (`FROM`, `WHERE`, `JOIN`, ...) are not.
    if word.quote_style.is_none() && RESERVED_FOR_TABLE_ALIAS.contains(&word.keyword) {
        return None;
    }
    let mut parts = vec![word.clone()];
    let mut i = last;
    while i >= 2 && tokens[i - 1] == Token::Period {
        let Token::Word(part) = &tokens[i - 2] else {
            break;
        };
        parts.insert(0, part.clone());
        i -= 2;
    }
    Some((parts, last))
}

fn table_ref(parts: &[Word]) -> Result<TableRef> {
    let names: Vec<String> = parts
        .iter()
        .map(|w| match w.quote_style {
            Some(_) => w.value.clone(),
            None => w.value.to_lowercase(),
        })
        .collect();
    match names.as_slice() {
        [table] => Ok(TableRef::new(super::session::schema().as_deref(), table)?),
        [schema, table] => Ok(TableRef::new(Some(schema), table)?),
        [catalog, schema, table] if catalog == CATALOG_NAME => {
            Ok(TableRef::new(Some(schema), table)?)
        }
        [catalog, ..] => Err(Error::invalid(format!(
            "catalog {catalog:?} does not exist; this server has one catalog, {CATALOG_NAME:?}"
        ))),
        [] => Err(Error::internal("a table name without parts")),
    }
}

/// A time as written in a clause: RFC 3339, or `YYYY-MM-DD[ HH:MM:SS[.f]]`
/// taken as UTC.
fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let bare = text.trim_end_matches(" UTC").trim_end_matches('Z');
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(bare, format) {
            return Ok(time.and_utc());
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(bare, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(Error::invalid(format!(
        "{text:?} is not a time: write '2026-12-01 10:00:00' (UTC), '2026-12-01' or RFC 3339 \
         ('2026-12-01T10:00:00+01:00')"
    )))
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none())
}

fn next_significant(tokens: &[Token], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&i| !matches!(tokens[i], Token::Whitespace(_)))
}

fn previous_significant(tokens: &[Token], before: usize) -> Option<usize> {
    (0..before)
        .rev()
        .find(|&i| !matches!(tokens[i], Token::Whitespace(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str) -> Result<String> {
        rewrite_as_of(sql, |table, as_of| {
            Ok(match as_of {
                AsOf::Version(v) => v,
                AsOf::Time(t) => {
                    assert_eq!(table.to_string(), "sales.orders");
                    t.timestamp() as u64 % 100
                }
            })
        })
        .map(|s| s.into_owned())
    }

    #[test]
    fn clauses_become_time_travel_names() {
        assert_eq!(
            rewrite("SELECT * FROM t VERSION AS OF 3 WHERE a = 1").unwrap(),
            "SELECT * FROM \"t@v3\" WHERE a = 1"
        );
        assert_eq!(
            rewrite("select count(*) from sales.orders timestamp as of '1970-01-01 00:00:42' o")
                .unwrap(),
            "select count(*) from sales.\"orders@v42\" o"
        );
        assert_eq!(
            rewrite(
                "SELECT * FROM sales.orders FOR SYSTEM_TIME AS OF TIMESTAMP '1970-01-01T00:00:07Z' \
                 JOIN x VERSION AS OF 2 ON true"
            )
            .unwrap(),
            "SELECT * FROM sales.\"orders@v7\" JOIN \"x@v2\" ON true"
        );
        // Table names that are also SQL words.
        assert_eq!(
            rewrite("SELECT count(*) FROM sales.returns VERSION AS OF 1").unwrap(),
            "SELECT count(*) FROM sales.\"returns@v1\""
        );
        assert_eq!(
            rewrite("SELECT * FROM events VERSION AS OF 2").unwrap(),
            "SELECT * FROM \"events@v2\""
        );
    }

    #[test]
    fn other_sql_is_left_alone() {
        for sql in [
            "SELECT 1",
            "SELECT 'VERSION AS OF 3' AS of",
            "SELECT CAST(a AS INT) FROM t",
            "SELECT version FROM t",
        ] {
            assert_eq!(rewrite(sql).unwrap(), sql);
        }
    }

    #[test]
    fn only_statements_with_the_word_of_are_tokenized() {
        assert!(has_word_of("select * from t version as of 3"));
        assert!(has_word_of(
            "SELECT * FROM t FOR SYSTEM_TIME AS\nOF '2026-01-01'"
        ));
        assert!(!has_word_of("SELECT offset, profile FROM t OFFSET 3"));
        assert!(!has_word_of(
            "SELECT id FROM knn('t', 'emb', [0.1, 0.2], 10)"
        ));
    }

    #[test]
    fn bad_clauses_say_what_is_expected() {
        let err = rewrite("SELECT * FROM t VERSION AS OF 'x'").unwrap_err();
        assert!(err.to_string().contains("VERSION AS OF 3"), "{err}");
        let err = rewrite("SELECT * FROM t TIMESTAMP AS OF 'yesterday'").unwrap_err();
        assert!(
            err.to_string().contains("\"yesterday\" is not a time"),
            "{err}"
        );
    }

    #[test]
    fn times_parse_in_the_usual_forms() {
        let at = |s| parse_time(s).unwrap().to_rfc3339();
        assert_eq!(at("2026-12-01 10:00:00"), "2026-12-01T10:00:00+00:00");
        assert_eq!(
            at("2026-12-01T10:00:00.5Z"),
            "2026-12-01T10:00:00.500+00:00"
        );
        assert_eq!(at("2026-12-01T11:00:00+01:00"), "2026-12-01T10:00:00+00:00");
        assert_eq!(at("2026-12-01"), "2026-12-01T00:00:00+00:00");
    }
}
