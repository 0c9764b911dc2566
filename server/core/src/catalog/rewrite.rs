//! Committing a rewrite of some of a Parquet table's files: the files
//! holding affected rows swapped for new ones, as a new version.
//!
//! Compaction (the same rows in fewer files), `DELETE` and `UPDATE`
//! (copy-on-write: only the files holding matching rows are rewritten) are
//! planned on one version and committed on whatever version is newest by
//! then. Appends that landed meanwhile keep their files, since they only
//! add; but if a file being replaced is gone from the newest version (an
//! overwrite, a drop, another delete, update or compaction), the new files
//! no longer stand for anything current and the commit is refused as a
//! conflict the client can retry.

use super::{Catalog, DataFile, Manifest, Operation, TableRef, author};
use crate::error::{Error, Result};
use chrono::Utc;

/// Files of one version rewritten as others.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// `compact`, `delete`, `update` or `merge`.
    pub operation: Operation,
    /// Paths of the files replaced.
    pub replaced: Vec<String>,
    /// The files written in their place (not yet committed).
    pub written: Vec<DataFile>,
    /// Rows added (`merge` inserts).
    pub rows_added: u64,
    /// Rows removed (`delete`) or changed (`update`).
    pub rows_removed: u64,
}

impl Catalog {
    /// Commits a version of `table` in which the files `rewrite` replaced
    /// are swapped for the ones it wrote, which take the place of the first
    /// replaced one.
    pub async fn commit_rewrite(&self, table: &TableRef, rewrite: &Rewrite) -> Result<u64> {
        self.commit_derived(table, |current| {
            Ok(Manifest {
                version: current.version + 1,
                operation: rewrite.operation,
                committed_at: Utc::now(),
                idempotency_key: None,
                user: author(),
                rows_added: rewrite.rows_added,
                rows_removed: rewrite.rows_removed,
                files: swap_files(table, current, rewrite)?,
                ..current.clone()
            })
        })
        .await
    }
}

/// `current`'s files with every replaced one removed and the written ones
/// in the place of the first (at the end when none is replaced); a
/// conflict when any replaced file is no longer there.
fn swap_files(table: &TableRef, current: &Manifest, rewrite: &Rewrite) -> Result<Vec<DataFile>> {
    let replaced: std::collections::HashSet<&str> =
        rewrite.replaced.iter().map(String::as_str).collect();
    let files = &current.files;
    let present = files
        .iter()
        .filter(|f| replaced.contains(f.path.as_str()))
        .count();
    if present != replaced.len() {
        return Err(Error::CommitConflict {
            table: table.clone(),
            detail: format!(
                "{} of the {} files this {} rewrote are no longer in the newest version \
                 (version {}: overwritten, dropped, or rewritten by another delete, update \
                 or compaction); run the statement again",
                replaced.len() - present,
                replaced.len(),
                rewrite.operation.as_str(),
                current.version
            ),
        });
    }
    let mut swapped = Vec::with_capacity(files.len() - present + rewrite.written.len());
    let mut inserted = false;
    for file in files {
        if !replaced.contains(file.path.as_str()) {
            swapped.push(file.clone());
        } else if !inserted {
            swapped.extend(rewrite.written.iter().cloned());
            inserted = true;
        }
    }
    if !inserted {
        // Nothing replaced: a merge that only inserts.
        swapped.extend(rewrite.written.iter().cloned());
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{MANIFEST_FORMAT, TableKind};
    use arrow::datatypes::Schema;
    use std::sync::Arc;

    fn file(path: &str, rows: u64) -> DataFile {
        DataFile {
            path: path.to_string(),
            rows,
            bytes: rows * 10,
            columns: Vec::new(),
        }
    }

    fn version(files: Vec<DataFile>) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            table: TableRef::parse("t").unwrap(),
            version: 7,
            kind: TableKind::Parquet,
            operation: Operation::Append,
            committed_at: Utc::now(),
            idempotency_key: None,
            user: None,
            rows_added: 0,
            rows_removed: 0,
            schema: Arc::new(Schema::empty()),
            files,
            lance: None,
            storage: None,
        }
    }

    fn rewrite(replaced: &[&str], written: Vec<DataFile>) -> Rewrite {
        Rewrite {
            operation: Operation::Delete,
            replaced: replaced.iter().map(|p| p.to_string()).collect(),
            written,
            rows_added: 0,
            rows_removed: 1,
        }
    }

    fn paths(files: &[DataFile]) -> Vec<&str> {
        files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn written_files_take_the_place_of_the_first_replaced() {
        let table = TableRef::parse("t").unwrap();
        let current = version(vec![
            file("a", 1),
            file("b", 1),
            file("big", 9),
            file("c", 1),
        ]);
        let swapped = swap_files(
            &table,
            &current,
            &rewrite(&["a", "b", "c"], vec![file("m", 3)]),
        )
        .unwrap();
        assert_eq!(paths(&swapped), ["m", "big"]);
    }

    #[test]
    fn a_delete_of_every_row_of_a_file_writes_nothing_in_its_place() {
        let table = TableRef::parse("t").unwrap();
        let current = version(vec![file("a", 1), file("b", 1)]);
        let swapped = swap_files(&table, &current, &rewrite(&["a"], Vec::new())).unwrap();
        assert_eq!(paths(&swapped), ["b"]);
    }

    #[test]
    fn files_written_without_replacing_any_are_added() {
        let table = TableRef::parse("t").unwrap();
        let current = version(vec![file("a", 1)]);
        let swapped = swap_files(&table, &current, &rewrite(&[], vec![file("new", 2)])).unwrap();
        assert_eq!(paths(&swapped), ["a", "new"]);
    }

    #[test]
    fn a_replaced_file_gone_from_the_newest_version_is_a_conflict() {
        let table = TableRef::parse("t").unwrap();
        let current = version(vec![file("a", 1), file("new", 1)]);
        let err =
            swap_files(&table, &current, &rewrite(&["a", "b"], vec![file("m", 2)])).unwrap_err();
        assert!(matches!(err, Error::CommitConflict { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("1 of the 2 files this delete rewrote"),
            "{message}"
        );
        assert!(message.contains("version 7"), "{message}");
    }
}
