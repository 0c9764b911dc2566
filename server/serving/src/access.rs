//! Whether a caller's role allows what a statement does: the same rules
//! for every protocol.

use lakehouse_core::auth::{Identity, Role};
use lakehouse_engine::error::Result;
use lakehouse_engine::query::Update;

/// Refuses a catalog-changing statement the caller's role does not allow.
pub fn check_update(identity: &Identity, update: &Update) -> Result<()> {
    let (role, what) = match update {
        Update::CreateTable { table, .. } => (Role::Writer, format!("creating table {table}")),
        Update::Insert { table, .. } => (Role::Writer, format!("writing to table {table}")),
        Update::CreateSchema { name, .. } => (Role::Writer, format!("creating schema {name:?}")),
        Update::DropTable { table, .. } => (Role::Admin, format!("dropping table {table}")),
        Update::Merge(spec) => (Role::Writer, format!("merging into table {}", spec.table)),
        Update::AlterTable(alter) => (Role::Admin, format!("altering table {}", alter.table)),
        Update::CreateView { view, .. } => (Role::Writer, format!("creating view {view}")),
        Update::DropView { view, .. } => (Role::Writer, format!("dropping view {view}")),
        Update::ChangeRows(change) => (
            Role::Writer,
            format!(
                "changing rows of table {} ({})",
                change.table,
                change.operation.as_str().to_uppercase()
            ),
        ),
    };
    Ok(identity.require(role, &what)?)
}
