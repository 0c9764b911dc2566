//! Committing a compaction: the same rows in fewer files, as a new version.
//!
//! A compaction is planned on one version and committed on whatever version
//! is newest by then. Appends that landed meanwhile keep their files, since
//! they only add; but if the files being replaced are gone from the newest
//! version (an overwrite, a drop, another server's compaction), the merged
//! files no longer stand for anything current and the commit is refused.

use super::{Catalog, DataFile, Manifest, Operation, TableRef};
use crate::error::{Error, Result};
use chrono::Utc;

impl Catalog {
    /// Commits a version of `table` in which the files at `replaced` are
    /// swapped for `merged` (written with the same rows, in the same order);
    /// the merged files take the place of the first replaced one.
    pub async fn commit_compaction(
        &self,
        table: &TableRef,
        replaced: &[String],
        merged: Vec<DataFile>,
    ) -> Result<u64> {
        self.commit_derived(table, |current| {
            Ok(Manifest {
                version: current.version + 1,
                operation: Operation::Compact,
                committed_at: Utc::now(),
                idempotency_key: None,
                rows_added: 0,
                files: swap_files(table, &current.files, replaced, &merged)?,
                ..current.clone()
            })
        })
        .await
    }
}

/// `files` with every path in `replaced` removed and `merged` in the place
/// of the first; a conflict when any replaced file is no longer there.
fn swap_files(
    table: &TableRef,
    files: &[DataFile],
    replaced: &[String],
    merged: &[DataFile],
) -> Result<Vec<DataFile>> {
    let replaced: std::collections::HashSet<&str> = replaced.iter().map(String::as_str).collect();
    let present = files
        .iter()
        .filter(|f| replaced.contains(f.path.as_str()))
        .count();
    if present != replaced.len() {
        return Err(Error::CommitConflict {
            table: table.clone(),
            detail: format!(
                "{} of the {} files being compacted are no longer in the newest version \
                 (overwritten, dropped or compacted by another writer)",
                replaced.len() - present,
                replaced.len()
            ),
        });
    }
    let mut swapped = Vec::with_capacity(files.len() - present + merged.len());
    let mut inserted = false;
    for file in files {
        if !replaced.contains(file.path.as_str()) {
            swapped.push(file.clone());
        } else if !inserted {
            swapped.extend(merged.iter().cloned());
            inserted = true;
        }
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, rows: u64) -> DataFile {
        DataFile {
            path: path.to_string(),
            rows,
            bytes: rows * 10,
            columns: Vec::new(),
        }
    }

    fn paths(files: &[DataFile]) -> Vec<&str> {
        files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn merged_files_take_the_place_of_the_first_replaced() {
        let table = TableRef::parse("t").unwrap();
        let files = [file("a", 1), file("b", 1), file("big", 9), file("c", 1)];
        let replaced = ["a".to_string(), "b".to_string(), "c".to_string()];
        let swapped = swap_files(&table, &files, &replaced, &[file("m", 3)]).unwrap();
        assert_eq!(paths(&swapped), ["m", "big"]);
    }

    #[test]
    fn a_replaced_file_gone_from_the_newest_version_is_a_conflict() {
        let table = TableRef::parse("t").unwrap();
        let files = [file("a", 1), file("new", 1)];
        let replaced = ["a".to_string(), "b".to_string()];
        let err = swap_files(&table, &files, &replaced, &[file("m", 2)]).unwrap_err();
        assert!(matches!(err, Error::CommitConflict { .. }), "{err}");
        assert!(err.to_string().contains("1 of the 2 files"), "{err}");
    }
}
