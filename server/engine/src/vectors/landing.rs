//! Landing a change on a vector table: the Lance commit and the catalog
//! version that pins it, one after the other, safe against other writers on
//! the same storage.
//!
//! A catalog version pins one dataset version, which holds every row of the
//! table; so a dataset version is only worth pinning when it is exactly the
//! pinned one plus this change. Lance commits on its newest version, which
//! may be another server's write still on its way to the catalog, or a
//! write that never got there (a crash, a failed commit). So every change
//! is applied on the pinned version made newest (restored when something
//! else is newest), must land right after it (Lance did not fold another
//! commit in), and its catalog version must come right after the pinning
//! one ([`Catalog::commit_on`]). When any step finds another writer first,
//! the change is applied again on the new pinned version: Lance keeps the
//! operation (appended fragments, a built index), so nothing is rewritten.
//! The versions that lost stay in the dataset's history, pinned by nothing.

use std::sync::Arc;
use std::time::Duration;

use lance::Dataset;
use lance::dataset::CommitBuilder;
use lance::dataset::builder::DatasetBuilder;
use lance::dataset::transaction::{Operation as LanceOperation, Transaction};
use tracing::{debug, info};

use super::{VectorTables, WriteRequest, describe, lance_error};
use crate::error::{CoreError, Error, Result};
use lakehouse_core::catalog::{
    Catalog, Commit, Committed, LanceData, LanceWrite, Manifest, Operation, RowCounts, TableRef,
};

/// Attempts at landing one change before giving up with a conflict.
const MAX_ATTEMPTS: u32 = 200;
/// Times the catalog is read again before a newer dataset version is taken
/// for a write that failed and the pinned version restored.
const SETTLE_ATTEMPTS: u32 = 5;

/// A change to a vector table's dataset, made on one catalog version.
pub(super) struct Change<'a> {
    /// The catalog version the change was made on.
    pub base: Arc<Manifest>,
    /// What Lance records of the change, to apply again on a newer version.
    pub operation: LanceOperation,
    /// The change as already committed to the dataset, and the dataset
    /// version it was applied on.
    pub applied: Option<(u64, Dataset)>,
    pub pin: Pin<'a>,
}

/// What the catalog version pinning a change says.
pub(super) enum Pin<'a> {
    /// Rows were appended: an `append` version.
    Rows(WriteRequest<'a>),
    /// An index was built, dropped or extended: an `index` version.
    Index,
    /// Rows were deleted, updated or merged: a `delete`, `update` or
    /// `merge` version.
    Rewrite {
        operation: Operation,
        rows: RowCounts,
    },
}

impl VectorTables {
    /// Makes `change` the table's next version; returns that version and
    /// the dataset as pinned by it.
    pub(super) async fn land(
        &self,
        catalog: &Catalog,
        table: &TableRef,
        mut change: Change<'_>,
    ) -> Result<(Committed, Dataset)> {
        for attempt in 1..=MAX_ATTEMPTS {
            let (live, landed) = match change.applied.take() {
                Some((on, dataset)) if dataset.version().version == on + 1 => {
                    (change.base.clone(), dataset)
                }
                _ => {
                    let (live, head) = self.pinned_head(catalog, table).await?;
                    check_replayable(catalog, table, &change, &live).await?;
                    match self.apply(table, &change.operation, head).await? {
                        Some(landed) => (live, landed),
                        None => {
                            debug!(table = %table, attempt, "another dataset commit came first; applying the change again");
                            back_off(attempt).await;
                            continue;
                        }
                    }
                }
            };
            let data = describe(table, &landed).await?;
            self.make_durable(table).await?;
            match self.pin(catalog, table, &change, &live, data).await {
                Ok(committed) => {
                    if attempt > 1 {
                        info!(table = %table, attempts = attempt, version = committed.version,
                            "landed after other writers' commits");
                    }
                    return Ok((committed, landed));
                }
                Err(Error::Core(CoreError::BaseMoved { .. })) => {
                    debug!(table = %table, attempt, "another catalog version came first; applying the change again");
                    catalog.refresh_table(table).await?;
                    back_off(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(gave_up(table))
    }

    /// The table's live manifest and its dataset at the pinned version,
    /// made the newest version if it was not (restored on top of what is).
    ///
    /// A newer dataset version is most often another server's write
    /// between its dataset and its catalog commit, or one this server has
    /// not read of yet: the catalog is read again, a few times over some
    /// milliseconds, before the pinned version is restored.
    pub(super) async fn pinned_head(
        &self,
        catalog: &Catalog,
        table: &TableRef,
    ) -> Result<(Arc<Manifest>, Dataset)> {
        for attempt in 1..=MAX_ATTEMPTS {
            // The catalog first: the dataset version a catalog version pins
            // was committed before it, so `latest` is never older.
            let live = catalog.table(table)?;
            let latest = self.latest(table, &self.uri(live.storage())?).await?;
            let pin = pinned(table, &live)?;
            if latest.version().version == pin.version {
                return Ok((live, latest));
            }
            if attempt <= SETTLE_ATTEMPTS {
                if attempt > 1 {
                    back_off(attempt).await;
                }
                catalog.refresh_table(table).await?;
                continue;
            }
            info!(table = %table, pinned = pin.version, newest = latest.version().version,
                "the dataset's newest version is not the committed one (a write that failed, or one in flight elsewhere); restoring the committed version to write on");
            let restore = LanceOperation::Restore {
                version: pin.version,
            };
            match self.apply(table, &restore, latest).await? {
                Some(restored) => return Ok((live, restored)),
                None => {
                    back_off(attempt).await;
                    catalog.refresh_table(table).await?;
                }
            }
        }
        Err(gave_up(table))
    }

    async fn latest(&self, table: &TableRef, uri: &str) -> Result<Dataset> {
        DatasetBuilder::from_uri(uri)
            .with_session(self.session.clone())
            .load()
            .await
            .map_err(|e| lance_error(table, "opening", e))
    }

    /// Commits `operation` on `head`; `None` when it did not land right
    /// after it (another commit came first or in between). One try: Lance's
    /// own retries would fold other commits in, which is no use here.
    async fn apply(
        &self,
        table: &TableRef,
        operation: &LanceOperation,
        head: Dataset,
    ) -> Result<Option<Dataset>> {
        let on = head.version().version;
        let transaction = Transaction::new(on, operation.clone(), None);
        let committed = CommitBuilder::new(Arc::new(head))
            .with_session(self.session.clone())
            .with_max_retries(0)
            .execute(transaction)
            .await;
        match committed {
            Ok(landed) if landed.version().version == on + 1 => Ok(Some(landed)),
            Ok(_) => Ok(None),
            Err(e) if is_conflict(&e) => Ok(None),
            Err(e) => Err(lance_error(table, "committing to", e)),
        }
    }

    /// Commits the catalog version pinning `data`, right after `live`.
    async fn pin(
        &self,
        catalog: &Catalog,
        table: &TableRef,
        change: &Change<'_>,
        live: &Manifest,
        data: LanceData,
    ) -> Result<Committed> {
        match &change.pin {
            Pin::Rows(request) => {
                let rows_added = data.rows.saturating_sub(pinned(table, live)?.rows);
                let commit = Commit {
                    table: table.clone(),
                    mode: request.mode,
                    schema: request.schema.clone(),
                    files: Vec::new(),
                    lance: Some(LanceWrite { data, rows_added }),
                    idempotency_key: request.idempotency_key.map(str::to_string),
                    evolve: false,
                    storage: None,
                };
                Ok(catalog.commit_on(commit, live.version).await?)
            }
            Pin::Index | Pin::Rewrite { .. } => {
                let (operation, rows) = match change.pin {
                    Pin::Rewrite { operation, rows } => (operation, rows),
                    _ => (Operation::Index, RowCounts::default()),
                };
                let version = catalog
                    .commit_lance_version(table, data, operation, rows, live.version)
                    .await?;
                Ok(Committed {
                    version,
                    rows: rows.affected(),
                    deduplicated: false,
                })
            }
        }
    }
}

/// Whether Lance refused a commit because another came first.
fn is_conflict(e: &lance::Error) -> bool {
    matches!(
        e,
        lance::Error::CommitConflict { .. }
            | lance::Error::RetryableCommitConflict { .. }
            | lance::Error::IncompatibleTransaction { .. }
            | lance::Error::TooMuchWriteContention { .. }
    )
}

fn gave_up(table: &TableRef) -> Error {
    CoreError::CommitConflict {
        table: table.clone(),
        detail: format!(
            "other writers kept committing first; gave up after {MAX_ATTEMPTS} attempts"
        ),
    }
    .into()
}

/// The dataset version a vector table's manifest pins.
fn pinned(table: &TableRef, manifest: &Manifest) -> Result<LanceData> {
    manifest.lance.ok_or_else(|| {
        Error::invalid(format!(
            "table {table} is stored as Parquet, not as a vector table"
        ))
    })
}

/// Whether `change`, made on its base version, still means the same on
/// `live`: appended rows need the same columns; an index, a delete or an
/// update needs the same fragments, so only appends may have come between
/// (the rows they added were not there for the delete or update to see).
async fn check_replayable(
    catalog: &Catalog,
    table: &TableRef,
    change: &Change<'_>,
    live: &Manifest,
) -> Result<()> {
    if live.version == change.base.version {
        return Ok(());
    }
    let conflict = |detail: String| -> Error {
        CoreError::CommitConflict {
            table: table.clone(),
            detail,
        }
        .into()
    };
    match change.pin {
        Pin::Rows(_) if live.schema != change.base.schema => Err(conflict(format!(
            "version {} changed the table's columns while rows were being appended to version {}; append them again",
            live.version, change.base.version
        ))),
        Pin::Rows(_) => Ok(()),
        Pin::Index | Pin::Rewrite { .. } => {
            let what = match change.pin {
                Pin::Rewrite { operation, .. } => operation.as_str(),
                _ => "index change",
            };
            for version in change.base.version + 1..=live.version {
                let between = catalog.version(table, version).await?;
                if between.operation != Operation::Append {
                    return Err(conflict(format!(
                        "version {version} ({}) came while this {what} was being made on version {}; run the request again",
                        between.operation.as_str(),
                        change.base.version
                    )));
                }
            }
            Ok(())
        }
    }
}

/// Waits a little, more after each failed attempt and never in step with
/// the writer that won, before trying again.
async fn back_off(attempt: u32) {
    let ceiling_ms = u64::from(attempt.min(20)) * 5;
    let jitter = uuid::Uuid::new_v4().as_u128() as u64 % (ceiling_ms + 1);
    tokio::time::sleep(Duration::from_millis(jitter)).await;
}
