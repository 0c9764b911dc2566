//! The server's catalog actions: read what other servers committed, check
//! the catalog for damage, and list the extensions the server is built
//! with.

use std::sync::Arc;

use async_trait::async_trait;
use lakehouse_core::catalog::Catalog;
use lakehouse_extension::{Access, Action, Result, expect_empty_body, to_json};

use super::host_error;
use crate::extensions::Extensions;

/// `refresh_catalog`.
pub struct RefreshCatalog(pub Arc<Catalog>);

#[async_trait]
impl Action for RefreshCatalog {
    fn name(&self) -> &str {
        "refresh_catalog"
    }

    fn description(&self) -> &str {
        "Reads what other servers on the same storage committed since this one loaded: new schemas, \
         tables and versions."
    }

    fn body(&self) -> &str {
        "empty or {}"
    }

    fn result(&self) -> &str {
        "JSON {versions_added}"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        expect_empty_body(self.name(), body)?;
        let added = self.0.refresh().await.map_err(|e| host_error(e.into()))?;
        to_json(&serde_json::json!({ "versions_added": added }))
    }
}

/// `list_extensions`.
pub struct ListExtensions(pub Extensions);

#[async_trait]
impl Action for ListExtensions {
    fn name(&self) -> &str {
        "list_extensions"
    }

    fn description(&self) -> &str {
        "The extensions this server is built with."
    }

    fn body(&self) -> &str {
        "empty or {}"
    }

    fn result(&self) -> &str {
        "JSON array of {name, description, enabled, functions: [{name, kind, extension, description}], actions}"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        expect_empty_body(self.name(), body)?;
        to_json(&self.0.listed())
    }
}

/// `check_catalog`.
pub struct CheckCatalog(pub Arc<Catalog>);

#[async_trait]
impl Action for CheckCatalog {
    fn name(&self) -> &str {
        "check_catalog"
    }

    fn description(&self) -> &str {
        "Lists every damaged manifest and every data file the newest version of a table names but the \
         store lacks (what `lakehouse doctor` prints); changes nothing."
    }

    fn body(&self) -> &str {
        "empty or {}"
    }

    fn result(&self) -> &str {
        "JSON array of {table, version, path, detail}"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        expect_empty_body(self.name(), body)?;
        to_json(&self.0.check().await.map_err(|e| host_error(e.into()))?)
    }
}
