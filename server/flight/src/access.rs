//! Who made a request, and whether their role allows what it does.
//!
//! The service wrapper authenticates every call and puts the caller's
//! [`Identity`] in the request's extensions; the handlers below read it
//! where the operation becomes known. A request without one is refused,
//! so a handler reached some other way fails closed.

use tonic::Request;

use lakehouse_core::auth::{Identity, Role};
use lakehouse_engine::error::{CoreError, Error, Result};
use lakehouse_engine::query::Update;

/// The identity the service wrapper attached to `request`.
pub fn caller<T>(request: &Request<T>) -> Result<Identity> {
    request
        .extensions()
        .get::<Identity>()
        .cloned()
        .ok_or_else(|| Error::from(CoreError::Unauthenticated("authentication required".into())))
}

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
