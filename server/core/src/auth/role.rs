//! Roles and the identity a call runs as.
//!
//! Three roles, each allowing everything the one below it does: a reader
//! queries; a writer also ingests and creates; an admin also drops,
//! vacuums and manages indexes. What an operation needs is decided where
//! the operation is known (the statement kind, the DoPut command, the
//! action), through [`Identity::require`].

use std::fmt;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Writer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a call runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user or API token name from configuration.
    pub name: String,
    pub role: Role,
}

impl Identity {
    /// The identity of every call when authentication is off.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            role: Role::Admin,
        }
    }

    /// Refuses `what` (e.g. "dropping a table") unless this identity's role
    /// is at least `needed`.
    pub fn require(&self, needed: Role, what: &str) -> Result<()> {
        if self.role >= needed {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!(
            "{what} needs the {needed} role; {:?} is a {}",
            self.name, self.role
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_allows_what_the_roles_below_it_do() {
        let reader = Identity {
            name: "r".into(),
            role: Role::Reader,
        };
        let admin = Identity {
            name: "a".into(),
            role: Role::Admin,
        };
        assert!(reader.require(Role::Reader, "querying").is_ok());
        let refused = reader.require(Role::Writer, "ingesting").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "permission denied: ingesting needs the writer role; \"r\" is a reader"
        );
        for role in [Role::Reader, Role::Writer, Role::Admin] {
            assert!(admin.require(role, "anything").is_ok());
        }
    }
}
