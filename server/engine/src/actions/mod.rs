//! Every DoAction verb in one registry: the server's own (tables, catalog)
//! and the installed extensions', all implementing the extension API's
//! [`Action`] trait.
//!
//! `ListActions` lists the registry, DoAction runs from it after checking
//! the caller's role against the action's [`Access`], and the protocol
//! reference in docs/flight-sql.md is generated from it
//! ([`Actions::reference`]), so the three can never disagree.

mod acceleration;
mod catalog;
mod tables;

use std::collections::BTreeMap;
use std::sync::Arc;

use lakehouse_core::auth::{Identity, Role};
use lakehouse_extension::{Access, Action, ExtensionError};

use crate::error::{Error, Result};
use crate::extensions::Extensions;
use crate::ingest::Ingest;
use crate::query::Accelerated;

/// The server's own actions, in the order `ListActions` gives them.
pub fn server_actions(
    ingest: &Ingest,
    extensions: &Extensions,
    accelerated: &Arc<Accelerated>,
) -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(tables::CreateTable(ingest.clone())),
        Arc::new(tables::TableHistory(ingest.catalog().clone())),
        Arc::new(tables::Vacuum(ingest.catalog().clone())),
        Arc::new(tables::Compact(ingest.clone())),
        Arc::new(tables::RegisterParquet(ingest.clone())),
        Arc::new(tables::RepairTable(ingest.catalog().clone())),
        Arc::new(acceleration::AcceleratedTables(accelerated.clone())),
        Arc::new(catalog::RefreshCatalog(ingest.catalog().clone())),
        Arc::new(catalog::CheckCatalog(ingest.catalog().clone())),
        Arc::new(catalog::ListExtensions(extensions.clone())),
    ]
}

/// The actions a server answers, by name.
#[derive(Clone, Default)]
pub struct Actions {
    /// The server's own first, then the extensions' by name, each with
    /// who adds it (`server` or the extension's name).
    ordered: Vec<(String, Arc<dyn Action>)>,
    by_name: BTreeMap<String, Arc<dyn Action>>,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.ordered.iter().map(|(_, a)| a.name()))
            .finish()
    }
}

impl Actions {
    /// The server's actions `own` and every action the installed
    /// `extensions` add; an extension may not take a name already taken.
    pub fn new(own: Vec<Arc<dyn Action>>, extensions: &Extensions) -> Result<Self> {
        let mut from_extensions = extensions.actions().to_vec();
        from_extensions.sort_by(|a, b| a.name().cmp(b.name()));
        let mut actions = Self::default();
        for action in own {
            actions.add(action, "server")?;
        }
        for action in from_extensions {
            let owner = extensions.owner_of_action(action.name()).to_string();
            actions.add(action, &owner)?;
        }
        Ok(actions)
    }

    fn add(&mut self, action: Arc<dyn Action>, owner: &str) -> Result<()> {
        let name = action.name().to_string();
        if self.by_name.contains_key(&name) {
            return Err(Error::Extension(ExtensionError::Conflict(format!(
                "extension {owner:?} adds the action {name:?}, which the server already has; disable the extension"
            ))));
        }
        self.by_name.insert(name, action.clone());
        self.ordered.push((owner.to_string(), action));
        Ok(())
    }

    /// Every action, the server's own first.
    pub fn list(&self) -> impl Iterator<Item = &Arc<dyn Action>> {
        self.ordered.iter().map(|(_, action)| action)
    }

    /// Runs `action` as `identity`; `None` when there is no such action.
    pub async fn run(
        &self,
        identity: &Identity,
        action: &str,
        body: &[u8],
    ) -> Option<Result<Vec<u8>>> {
        let handler = self.by_name.get(action)?;
        if let Err(refused) =
            identity.require(role_for(handler.access()), &format!("the {action} action"))
        {
            return Some(Err(refused.into()));
        }
        Some(handler.run(body).await.map_err(Error::from))
    }

    /// Whether the action waits for a query slot before it runs (see
    /// [`Action::takes_query_slot`]).
    pub fn takes_query_slot(&self, action: &str) -> bool {
        self.by_name
            .get(action)
            .is_some_and(|handler| handler.takes_query_slot())
    }

    /// The reference table of docs/flight-sql.md: one row per action with
    /// the role it needs, its body and its result.
    pub fn reference(&self) -> String {
        let escape = |text: &str| text.replace('|', "\\|");
        let mut table = String::from(
            "| action | from | role | what it does | body | result |\n| --- | --- | --- | --- | --- | --- |\n",
        );
        for (owner, action) in &self.ordered {
            table.push_str(&format!(
                "| `{}` | {owner} | {} | {} | `{}` | {} |\n",
                action.name(),
                action.access().role(),
                escape(action.description()),
                escape(action.body()),
                escape(action.result()),
            ));
        }
        table
    }
}

/// The role an action's declared access needs.
fn role_for(access: Access) -> Role {
    match access {
        Access::Read => Role::Reader,
        Access::Write => Role::Writer,
        Access::Admin => Role::Admin,
    }
}

/// A server error carried through the [`Action`] trait whole, so the
/// Flight boundary answers it by its own kind.
fn host_error(error: Error) -> ExtensionError {
    ExtensionError::Host(Box::new(error))
}
