//! `MERGE INTO target USING source ON ... WHEN [NOT] MATCHED ...` on
//! Parquet tables, copy-on-write like `DELETE` and `UPDATE`, as one version.
//!
//! DataFusion does not plan `MERGE`, so the parsed statement is kept as a
//! plan node of its own (its clauses as SQL text) and run as three queries
//! over the version it starts on, in a session that also sees that
//! version's files as `lakehouse_merge.run.target` (with the file column)
//! and `lakehouse_merge.run.affected`:
//! 1. which files hold a target row the source matches (a join, with the
//!    ON condition pushed where DataFusion can);
//! 2. no target row of those files may match more than one source row
//!    (the SQL standard's rule: otherwise which update wins is undefined);
//! 3. those files' rows after the matched clauses (the first clause whose
//!    condition holds acts: new values, or the row left out), and the
//!    source rows no target row matches after the not-matched clauses
//!    (inserted), written as new files in one stream.
//!
//! The commit swaps the affected files for the new ones; a concurrent
//! rewrite of the same files runs the statement again on the newest version
//! (see `copy_on_write`). The affected-row count is the rows updated,
//! deleted and inserted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Instant;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Int64Type, UInt64Type};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::TableProvider;
use datafusion::execution::{SendableRecordBatchStream, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Ident, Merge, MergeAction, MergeClauseKind, MergeInsertKind, ObjectName,
    TableFactor,
};
use futures::{StreamExt, TryStreamExt};
use tracing::info;

use super::QueryEngine;
use super::carried::{Carried, carry};
use super::copy_on_write::MAX_ATTEMPTS;
use super::provider::{FILE_COLUMN, Nullability, ParquetTable};
use super::statement::table_ref;
use crate::error::{CoreError, Error, Result};
use lakehouse_core::catalog::{
    CATALOG_NAME, DataFile, Manifest, Operation, Rewrite, TableKind, TableRef, delete_uncommitted,
};

/// The catalog and schema the statement's own tables are under.
pub(super) const WORK: &str = "lakehouse_merge.run";
/// The column the rewrite query tells each row's acting clause in.
pub(super) const ACTION_COLUMN: &str = "__lakehouse_action";

/// A `MERGE` statement, its parts as SQL text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct MergeSpec {
    pub table: TableRef,
    /// What the statement's expressions call the target.
    target_alias: String,
    /// The source relation without its alias, and its alias.
    source: String,
    source_alias: String,
    on: String,
    pub(super) matched: Vec<MatchedClause>,
    pub(super) inserts: Vec<InsertClause>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub(super) struct MatchedClause {
    condition: Option<String>,
    /// Column -> new value; `None` deletes the row.
    update: Option<Vec<(String, String)>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub(super) struct InsertClause {
    condition: Option<String>,
    /// The columns named; none: every column, in the table's order.
    columns: Vec<String>,
    values: Vec<String>,
}

impl InsertClause {
    /// The value this clause gives the table's column `column` (at
    /// `position`), if it gives one.
    fn value_for(&self, position: usize, column: &str) -> Option<&str> {
        if self.columns.is_empty() {
            return self.values.get(position).map(String::as_str);
        }
        let named = self.columns.iter().position(|c| c == column)?;
        self.values.get(named).map(String::as_str)
    }

    /// Refuses values that do not fit the table's `columns`.
    fn check(&self, table: &TableRef, columns: &[String]) -> Result<()> {
        let expected = if self.columns.is_empty() {
            columns.len()
        } else {
            self.columns.len()
        };
        if self.values.len() != expected {
            return Err(Error::invalid(format!(
                "WHEN NOT MATCHED THEN INSERT in MERGE INTO {table} gives {} values for {expected} \
                 columns; name the columns or give one value per column",
                self.values.len()
            )));
        }
        match self.columns.iter().find(|c| !columns.contains(c)) {
            Some(unknown) => Err(Error::invalid(format!(
                "table {table} has no column {unknown:?} to insert into"
            ))),
            None => Ok(()),
        }
    }
}

impl MergeSpec {
    /// The matched clauses (1-based, as the action column numbers them)
    /// that delete.
    pub(super) fn delete_clauses(&self) -> Vec<i64> {
        (1..)
            .zip(&self.matched)
            .filter(|(_, c)| c.update.is_none())
            .map(|(k, _)| k)
            .collect()
    }
}

impl Carried for MergeSpec {
    const NAME: &'static str = "Merge";
}

/// The plan of a parsed `MERGE`.
pub fn merge_plan(merge: &Merge, normalize: bool) -> Result<LogicalPlan> {
    let name_of = |i: &Ident| {
        if normalize && i.quote_style.is_none() {
            i.value.to_lowercase()
        } else {
            i.value.clone()
        }
    };
    let last = |name: &ObjectName| -> Result<Ident> {
        name.0
            .last()
            .and_then(|part| part.as_ident())
            .cloned()
            .ok_or_else(|| Error::invalid(format!("{name} is not a name")))
    };
    let TableFactor::Table {
        name: target,
        alias: target_alias,
        ..
    } = &merge.table
    else {
        return Err(Error::invalid("MERGE INTO takes a table name".to_string()));
    };
    let reference =
        datafusion::sql::planner::object_name_to_table_reference(target.clone(), normalize)?;
    let table = table_ref(&reference)?;
    let unsupported = |what: &str| Error::NotSupported(format!("{what} in MERGE INTO {table}"));
    let target_alias = match target_alias {
        Some(alias) => alias.name.to_string(),
        None => last(target)?.to_string(),
    };
    let mut source = merge.source.clone();
    let source_alias = match &mut source {
        TableFactor::Table { name, alias, .. } => match alias.take() {
            Some(alias) => alias.name.to_string(),
            None => last(name)?.to_string(),
        },
        TableFactor::Derived { alias, .. } => alias
            .take()
            .ok_or_else(|| {
                Error::invalid(format!(
                    "the source subquery of MERGE INTO {table} needs an alias: USING (SELECT ...) AS s"
                ))
            })?
            .name
            .to_string(),
        _ => return Err(unsupported("a source that is not a table or a subquery")),
    };
    let column = |name: &ObjectName| -> Result<String> { Ok(name_of(&last(name)?)) };
    let mut matched = Vec::new();
    let mut inserts = Vec::new();
    for clause in &merge.clauses {
        let condition = clause.predicate.as_ref().map(ToString::to_string);
        match (&clause.clause_kind, &clause.action) {
            (MergeClauseKind::Matched, MergeAction::Update(update)) => {
                if update.update_predicate.is_some() || update.delete_predicate.is_some() {
                    return Err(unsupported("UPDATE ... WHERE / DELETE WHERE (Oracle)"));
                }
                let assignments = update
                    .assignments
                    .iter()
                    .map(|a| match &a.target {
                        AssignmentTarget::ColumnName(name) => {
                            Ok((column(name)?, a.value.to_string()))
                        }
                        AssignmentTarget::Tuple(_) => Err(unsupported("tuple assignments")),
                    })
                    .collect::<Result<_>>()?;
                matched.push(MatchedClause {
                    condition,
                    update: Some(assignments),
                });
            }
            (MergeClauseKind::Matched, MergeAction::Delete { .. }) => matched.push(MatchedClause {
                condition,
                update: None,
            }),
            (
                MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget,
                MergeAction::Insert(insert),
            ) => {
                if insert.insert_predicate.is_some() {
                    return Err(unsupported("INSERT ... WHERE (Oracle)"));
                }
                let MergeInsertKind::Values(values) = &insert.kind else {
                    return Err(unsupported("INSERT ROW"));
                };
                let [row] = values.rows.as_slice() else {
                    return Err(Error::invalid(format!(
                        "WHEN NOT MATCHED THEN INSERT in MERGE INTO {table} takes one row of values"
                    )));
                };
                let columns = insert
                    .columns
                    .iter()
                    .map(column)
                    .collect::<Result<Vec<_>>>()?;
                inserts.push(InsertClause {
                    condition,
                    columns,
                    values: row.content.iter().map(ToString::to_string).collect(),
                });
            }
            (MergeClauseKind::NotMatchedBySource, _) => {
                return Err(unsupported("WHEN NOT MATCHED BY SOURCE"));
            }
            (kind, action) => {
                return Err(Error::invalid(format!(
                    "WHEN {kind} THEN {action} is not a MERGE clause (matched rows are updated or \
                     deleted, unmatched ones inserted)"
                )));
            }
        }
    }
    Ok(carry(MergeSpec {
        table,
        target_alias,
        source: source.to_string(),
        source_alias,
        on: merge.on.to_string(),
        matched,
        inserts,
    }))
}

/// A column name as a quoted SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The generated queries, for the table's columns.
pub(super) struct Queries<'a> {
    pub(super) spec: &'a MergeSpec,
    pub(super) columns: Vec<String>,
}

impl Queries<'_> {
    fn source_relation(&self) -> String {
        format!("{} AS {}", self.spec.source, self.spec.source_alias)
    }

    fn target_column(&self, column: &str) -> String {
        format!("{}.{}", self.spec.target_alias, quoted(column))
    }

    /// Files (by position) with a target row the source matches, and how
    /// many join rows each gives.
    fn matching_files(&self) -> String {
        format!(
            "SELECT {t}.{file} AS f, count(*) AS n FROM {WORK}.target AS {t} JOIN {s} ON {on} GROUP BY 1",
            t = self.spec.target_alias,
            file = FILE_COLUMN,
            s = self.source_relation(),
            on = self.spec.on
        )
    }

    /// How many target rows the source matches more than once, of the
    /// rows `keyed` gives, each with a distinct `__lakehouse_row`.
    pub(super) fn ambiguous_rows(&self, keyed: &str) -> String {
        format!(
            "SELECT count(*) AS n FROM (SELECT {t}.__lakehouse_row FROM ({keyed}) AS {t} \
             JOIN {s} ON {on} GROUP BY 1 HAVING count(*) > 1)",
            t = self.spec.target_alias,
            s = self.source_relation(),
            on = self.spec.on
        )
    }

    /// Every row of the affected files as the matched clauses leave it,
    /// with the acting clause (1-based, 0 for none) in [`ACTION_COLUMN`].
    fn rewritten(&self) -> Result<String> {
        self.rewritten_from(&format!("{WORK}.affected"), "LEFT JOIN", &[])
    }

    /// The rows of `target` as the matched clauses leave them, joined to
    /// the source by `join`, with the acting clause in [`ACTION_COLUMN`]
    /// and the target's `extra` columns after.
    pub(super) fn rewritten_from(
        &self,
        target: &str,
        join: &str,
        extra: &[&str],
    ) -> Result<String> {
        let s = &self.spec.source_alias;
        let hit = format!("{s}.__lakehouse_hit IS NOT NULL");
        let when = |clause: &MatchedClause| match &clause.condition {
            Some(condition) => format!("{hit} AND ({condition})"),
            None => hit.clone(),
        };
        let mut select = Vec::new();
        for column in &self.columns {
            let mut case = String::from("CASE");
            for clause in &self.spec.matched {
                let value = clause
                    .update
                    .as_ref()
                    .and_then(|set| set.iter().find(|(c, _)| c == column))
                    .map_or_else(|| self.target_column(column), |(_, v)| format!("({v})"));
                case.push_str(&format!(" WHEN {} THEN {value}", when(clause)));
            }
            case.push_str(&format!(
                " ELSE {} END AS {}",
                self.target_column(column),
                quoted(column)
            ));
            select.push(case);
        }
        let mut action = String::from("CASE");
        for (k, clause) in self.spec.matched.iter().enumerate() {
            action.push_str(&format!(" WHEN {} THEN {}", when(clause), k + 1));
        }
        select.push(format!("{action} ELSE 0 END AS {ACTION_COLUMN}"));
        select.extend(extra.iter().map(|c| self.target_column(c)));
        let source = self.spec.source.clone();
        Ok(format!(
            "SELECT {} FROM {target} AS {t} {join} \
             (SELECT *, TRUE AS __lakehouse_hit FROM {source} AS {s}) AS {s} ON {on}",
            select.join(", "),
            t = self.spec.target_alias,
            on = self.spec.on
        ))
    }

    /// The source rows no target row matches, as the not-matched clauses
    /// insert them. A column no clause gives is left out (written as its
    /// default, else null); one some clauses give is null in the others.
    pub(super) fn inserted(&self) -> Result<String> {
        let when = |clause: &InsertClause| {
            clause
                .condition
                .clone()
                .unwrap_or_else(|| "TRUE".to_string())
        };
        for clause in &self.spec.inserts {
            clause.check(&self.spec.table, &self.columns)?;
        }
        let mut select = Vec::new();
        for (position, column) in self.columns.iter().enumerate() {
            let given = self
                .spec
                .inserts
                .iter()
                .any(|clause| clause.value_for(position, column).is_some());
            if !given {
                continue;
            }
            let mut case = String::from("CASE");
            for clause in &self.spec.inserts {
                let value = clause.value_for(position, column).unwrap_or("NULL");
                case.push_str(&format!(" WHEN {} THEN ({value})", when(clause)));
            }
            case.push_str(&format!(" END AS {}", quoted(column)));
            select.push(case);
        }
        let any = self
            .spec
            .inserts
            .iter()
            .map(|c| format!("({})", when(c)))
            .collect::<Vec<_>>()
            .join(" OR ");
        Ok(format!(
            "SELECT {} FROM {s} WHERE NOT EXISTS (SELECT 1 FROM {WORK}.target AS {t} WHERE {on}) AND ({any})",
            select.join(", "),
            s = self.source_relation(),
            t = self.spec.target_alias,
            on = self.spec.on
        ))
    }
}

impl QueryEngine {
    /// Runs a `MERGE` (again on the newest version after a conflict);
    /// returns the rows updated, deleted and inserted.
    pub(super) async fn merge(&self, spec: &MergeSpec) -> Result<u64> {
        let mut attempt = 1;
        loop {
            let planned = self.catalog.table(&spec.table)?;
            if planned.kind != TableKind::Parquet {
                return self.merge_rows(spec).await;
            }
            match self.merge_on(spec, &planned).await {
                Err(Error::Core(CoreError::CommitConflict { .. })) if attempt < MAX_ATTEMPTS => {
                    info!(table = %spec.table, attempt,
                        "another writer rewrote the same files first; running MERGE again on the newest version");
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    async fn merge_on(&self, spec: &MergeSpec, planned: &Arc<Manifest>) -> Result<u64> {
        let started = Instant::now();
        let table = &spec.table;
        let _reading = self.catalog.reading(table, planned.version);
        let _uploading = self.catalog.uploading(table);
        let queries = Queries {
            spec,
            columns: planned
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        };
        let affected: Vec<DataFile> = if spec.matched.is_empty() {
            Vec::new()
        } else {
            let target = Arc::new(ParquetTable::with_file_column(planned.clone()));
            let found = self
                .collect_work(&queries.matching_files(), target.clone(), target)
                .await?;
            let mut positions: Vec<u64> = Vec::new();
            for batch in &found {
                positions.extend(batch.column(0).as_primitive::<UInt64Type>().values().iter());
            }
            positions.sort_unstable();
            positions
                .into_iter()
                .map(|p| planned.files[p as usize].clone())
                .collect()
        };
        let target = Arc::new(ParquetTable::with_file_column(planned.clone()));
        let only_affected = Arc::new(ParquetTable::new(
            Arc::new(Manifest {
                files: affected.clone(),
                ..planned.as_ref().clone()
            }),
            Nullability::OfTheVersion,
        ));
        if !affected.is_empty() {
            let keyed =
                format!("SELECT *, row_number() OVER () AS __lakehouse_row FROM {WORK}.affected");
            self.refuse_ambiguous(&queries, &keyed, target.clone(), only_affected.clone())
                .await?;
        }
        let updated = Arc::new(AtomicU64::new(0));
        let deleted = Arc::new(AtomicU64::new(0));
        let inserted = Arc::new(AtomicU64::new(0));
        let mut streams: Vec<SendableRecordBatchStream> = Vec::new();
        if !affected.is_empty() {
            let rewritten = self
                .work_stream(&queries.rewritten()?, target.clone(), only_affected.clone())
                .await?;
            streams.push(acting_rows(
                rewritten,
                spec.delete_clauses(),
                updated.clone(),
                deleted.clone(),
            ));
        }
        if !spec.inserts.is_empty() {
            let rows = self
                .work_stream(&queries.inserted()?, target.clone(), only_affected)
                .await?;
            let counted = inserted.clone();
            streams.push(Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    rows.schema(),
                    rows.inspect_ok(move |b| {
                        counted.fetch_add(b.num_rows() as u64, AtomicOrdering::Relaxed);
                    }),
                ),
            ));
        }
        let batches = futures::stream::iter(streams)
            .flatten()
            .map_err(Error::from_datafusion);
        let written = self
            .ingest
            .write_files(
                &self.catalog.storage_for(table),
                planned.schema.clone(),
                batches,
            )
            .await?;
        let (updated, deleted, inserted) = (
            updated.load(AtomicOrdering::Relaxed),
            deleted.load(AtomicOrdering::Relaxed),
            inserted.load(AtomicOrdering::Relaxed),
        );
        let changed = updated + deleted + inserted;
        if changed == 0 {
            delete_uncommitted(self.catalog.store().as_ref(), &written).await;
            info!(table = %table, "MERGE matched and inserted nothing; nothing changed");
            return Ok(0);
        }
        let affected_rows: u64 = affected.iter().map(|f| f.rows).sum();
        let files_written = written.len();
        let rewrite = Rewrite {
            operation: Operation::Merge,
            replaced: affected.iter().map(|f| f.path.clone()).collect(),
            written,
            rows_added: inserted,
            rows_removed: updated + deleted,
        };
        let version = self
            .commit_rewritten(table, rewrite, affected_rows - deleted + inserted, || {
                format!(
                    "MERGE INTO {table}: {} files held {affected_rows} rows, {deleted} deleted and {inserted} inserted",
                    affected.len()
                )
            })
            .await?;
        info!(table = %table, version, updated, deleted, inserted, files_read = affected.len(),
            files_written, seconds = started.elapsed().as_secs_f64(), "merged");
        Ok(changed)
    }

    /// Refuses the statement when a target row of `keyed` (see
    /// [`Queries::ambiguous_rows`]) matches more than one source row.
    pub(super) async fn refuse_ambiguous(
        &self,
        queries: &Queries<'_>,
        keyed: &str,
        target: Arc<dyn TableProvider>,
        affected: Arc<dyn TableProvider>,
    ) -> Result<()> {
        let ambiguous = self
            .collect_work(&queries.ambiguous_rows(keyed), target, affected)
            .await?;
        let rows = ambiguous
            .first()
            .map_or(0, |b| b.column(0).as_primitive::<Int64Type>().value(0));
        if rows > 0 {
            return Err(Error::invalid(format!(
                "MERGE INTO {}: {rows} target row(s) match more than one source row, so which \
                 change applies is undefined; make the ON condition match at most one source row \
                 per target row",
                queries.spec.table
            )));
        }
        Ok(())
    }

    /// Plans `sql` in a session that also sees `target` and `affected`
    /// under [`WORK`], and starts it.
    pub(super) async fn work_stream(
        &self,
        sql: &str,
        target: Arc<dyn TableProvider>,
        affected: Arc<dyn TableProvider>,
    ) -> Result<SendableRecordBatchStream> {
        let work = MemorySchemaProvider::new();
        work.register_table("target".into(), target)?;
        work.register_table("affected".into(), affected)?;
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema("run", Arc::new(work))?;
        let catalogs = MemoryCatalogProviderList::new();
        let ours = self
            .ctx
            .catalog(CATALOG_NAME)
            .ok_or_else(|| Error::internal("the engine's catalog is not registered"))?;
        catalogs.register_catalog(CATALOG_NAME.to_string(), ours);
        catalogs.register_catalog("lakehouse_merge".to_string(), Arc::new(catalog));
        let state = SessionStateBuilder::new_from_existing(self.ctx.state())
            .with_catalog_list(Arc::new(catalogs))
            .build();
        let plan = state
            .create_logical_plan(sql)
            .await
            .map_err(Error::from_datafusion)?;
        self.execute_query(plan).await
    }

    async fn collect_work(
        &self,
        sql: &str,
        target: Arc<dyn TableProvider>,
        affected: Arc<dyn TableProvider>,
    ) -> Result<Vec<RecordBatch>> {
        self.work_stream(sql, target, affected)
            .await?
            .try_collect()
            .await
            .map_err(Error::from_datafusion)
    }
}

/// The rewritten rows without those a delete clause acted on and without
/// the action column, counting updated and deleted rows.
fn acting_rows(
    rows: SendableRecordBatchStream,
    deletes: Vec<i64>,
    updated: Arc<AtomicU64>,
    deleted: Arc<AtomicU64>,
) -> SendableRecordBatchStream {
    let schema = rows.schema();
    let action = schema
        .index_of(ACTION_COLUMN)
        .expect("the rewrite query has it");
    let kept: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| i != action)
        .collect();
    let out_schema = Arc::new(schema.project(&kept).expect("columns exist"));
    let stream = rows.map(move |batch| {
        let batch = batch?;
        let actions = batch.column(action).as_primitive::<Int64Type>();
        let keep: BooleanArray = actions
            .values()
            .iter()
            .map(|a| Some(!deletes.contains(a)))
            .collect();
        let removed = batch.num_rows() - keep.true_count();
        let acted = actions.values().iter().filter(|a| **a != 0).count();
        deleted.fetch_add(removed as u64, AtomicOrdering::Relaxed);
        updated.fetch_add((acted - removed) as u64, AtomicOrdering::Relaxed);
        let filtered = filter_record_batch(&batch, &keep)?;
        Ok(filtered.project(&kept)?)
    });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(out_schema, stream))
}
