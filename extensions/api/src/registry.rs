//! The registry: every extension a server is built with, and installing
//! the ones configuration enables with every name checked for clashes.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::TableFunctionImpl;
use datafusion::logical_expr::ScalarUDF;
use serde::Serialize;

use crate::{Action, Contributions, Extension, ExtensionError, Host, Result};

/// Which extensions configuration turns on and off, by name; the rest
/// follow their own default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub enable: Vec<String>,
    pub disable: Vec<String>,
}

/// What kind of SQL function an extension adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionKind {
    Scalar,
    Table,
}

impl FunctionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Table => "table",
        }
    }
}

/// One SQL function an installed extension added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionInfo {
    pub name: String,
    pub kind: FunctionKind,
    pub extension: String,
    pub description: String,
}

/// One extension the server was built with, as `list_extensions` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionInfo {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    /// What it added (empty when disabled).
    pub functions: Vec<FunctionInfo>,
    pub actions: Vec<String>,
}

/// The enabled extensions' contributions, ready to register.
pub struct Installed {
    pub extensions: Vec<ExtensionInfo>,
    pub scalar_functions: Vec<ScalarUDF>,
    pub table_functions: Vec<(String, Arc<dyn TableFunctionImpl>)>,
    pub actions: Vec<Arc<dyn Action>>,
}

impl Installed {
    /// Every function the enabled extensions added.
    pub fn functions(&self) -> impl Iterator<Item = &FunctionInfo> {
        self.extensions.iter().flat_map(|e| e.functions.iter())
    }
}

/// Every extension a server is built with.
#[derive(Default)]
pub struct Registry {
    extensions: Vec<Arc<dyn Extension>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an extension; its name must be new.
    pub fn register(&mut self, extension: impl Extension) -> Result<()> {
        let name = extension.name();
        check_name("extension", name)?;
        if self.extensions.iter().any(|e| e.name() == name) {
            return Err(ExtensionError::Conflict(format!(
                "two extensions are named {name:?}"
            )));
        }
        self.extensions.push(Arc::new(extension));
        Ok(())
    }

    /// The names of every extension, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.extensions.iter().map(|e| e.name()).collect()
    }

    /// Installs the extensions `selection` leaves enabled. Refuses a
    /// selection naming an unknown extension, and any two contributions
    /// with one name (functions share one namespace, actions another),
    /// naming both owners.
    pub fn install(&self, selection: &Selection, host: &Host) -> Result<Installed> {
        self.check_selection(selection)?;
        let mut installed = Installed {
            extensions: Vec::new(),
            scalar_functions: Vec::new(),
            table_functions: Vec::new(),
            actions: Vec::new(),
        };
        let mut function_owner: HashMap<String, &'static str> = HashMap::new();
        let mut action_owner: HashMap<String, &'static str> = HashMap::new();
        for extension in &self.extensions {
            let name = extension.name();
            let enabled = if selection.disable.iter().any(|d| d == name) {
                false
            } else {
                selection.enable.iter().any(|e| e == name) || extension.enabled_by_default()
            };
            let mut info = ExtensionInfo {
                name: name.to_string(),
                description: extension.description().to_string(),
                enabled,
                functions: Vec::new(),
                actions: Vec::new(),
            };
            if enabled {
                let Contributions {
                    scalar_functions,
                    table_functions,
                    actions,
                } = extension.contributions(host)?;
                for function in scalar_functions {
                    let function_name = function.udf.name().to_string();
                    claim(&mut function_owner, "SQL function", &function_name, name)?;
                    info.functions.push(FunctionInfo {
                        name: function_name,
                        kind: FunctionKind::Scalar,
                        extension: name.to_string(),
                        description: function.description,
                    });
                    installed.scalar_functions.push(function.udf);
                }
                for function in table_functions {
                    claim(&mut function_owner, "SQL function", &function.name, name)?;
                    info.functions.push(FunctionInfo {
                        name: function.name.clone(),
                        kind: FunctionKind::Table,
                        extension: name.to_string(),
                        description: function.description,
                    });
                    installed
                        .table_functions
                        .push((function.name, function.function));
                }
                for action in actions {
                    claim(&mut action_owner, "action", action.name(), name)?;
                    info.actions.push(action.name().to_string());
                    installed.actions.push(action);
                }
            }
            installed.extensions.push(info);
        }
        Ok(installed)
    }

    fn check_selection(&self, selection: &Selection) -> Result<()> {
        let known = self.names();
        for name in selection.enable.iter().chain(&selection.disable) {
            if !known.contains(&name.as_str()) {
                return Err(ExtensionError::Conflict(format!(
                    "configuration names extension {name:?}, which this server does not have (it has: {})",
                    known.join(", ")
                )));
            }
        }
        if let Some(both) = selection
            .enable
            .iter()
            .find(|e| selection.disable.contains(e))
        {
            return Err(ExtensionError::Conflict(format!(
                "configuration both enables and disables extension {both:?}"
            )));
        }
        Ok(())
    }
}

/// Records `owner` as the owner of `name`, refusing a name already owned.
fn claim(
    owners: &mut HashMap<String, &'static str>,
    what: &str,
    name: &str,
    owner: &'static str,
) -> Result<()> {
    check_name(what, name)?;
    if let Some(first) = owners.insert(name.to_string(), owner) {
        return Err(ExtensionError::Conflict(format!(
            "extensions {first:?} and {owner:?} both add the {what} {name:?}; disable one of them"
        )));
    }
    Ok(())
}

/// Names are lower-case identifiers, so SQL can call them unquoted.
fn check_name(what: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ExtensionError::Conflict(format!(
            "the {what} name {name:?} is not a lower-case identifier"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScalarFunction;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};

    struct Adds {
        name: &'static str,
        functions: &'static [&'static str],
        default_on: bool,
    }

    impl Extension for Adds {
        fn name(&self) -> &'static str {
            self.name
        }

        fn description(&self) -> &'static str {
            "adds functions for a test"
        }

        fn enabled_by_default(&self) -> bool {
            self.default_on
        }

        fn contributions(&self, _host: &Host) -> Result<Contributions> {
            let scalar_functions = self
                .functions
                .iter()
                .map(|name| ScalarFunction {
                    udf: create_udf(
                        name,
                        vec![],
                        DataType::Int64,
                        Volatility::Immutable,
                        Arc::new(|_| Ok(ColumnarValue::Scalar(1i64.into()))),
                    ),
                    description: format!("returns 1 ({name})"),
                })
                .collect();
            Ok(Contributions {
                scalar_functions,
                ..Contributions::default()
            })
        }
    }

    fn registry(extensions: Vec<Adds>) -> Registry {
        let mut registry = Registry::new();
        for extension in extensions {
            registry.register(extension).unwrap();
        }
        registry
    }

    fn adds(name: &'static str, functions: &'static [&'static str]) -> Adds {
        Adds {
            name,
            functions,
            default_on: true,
        }
    }

    #[test]
    fn two_extensions_cannot_add_one_function_name() {
        let registry = registry(vec![adds("a", &["one", "same"]), adds("b", &["same"])]);
        let err = registry
            .install(&Selection::default(), &Host::default())
            .err()
            .expect("a clash is refused");
        assert_eq!(
            err.to_string(),
            "extensions \"a\" and \"b\" both add the SQL function \"same\"; disable one of them"
        );
        let without_b = Selection {
            disable: vec!["b".into()],
            ..Selection::default()
        };
        let installed = registry.install(&without_b, &Host::default()).unwrap();
        let names: Vec<_> = installed.functions().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["one", "same"]);
    }

    #[test]
    fn a_disabled_extension_adds_nothing_and_stays_listed() {
        let mut off_by_default = adds("quiet", &["hush"]);
        off_by_default.default_on = false;
        let registry = registry(vec![adds("loud", &["shout"]), off_by_default]);
        let installed = registry
            .install(&Selection::default(), &Host::default())
            .unwrap();
        assert_eq!(installed.scalar_functions.len(), 1);
        assert!(!installed.extensions[1].enabled);
        assert!(installed.extensions[1].functions.is_empty());

        let flipped = Selection {
            enable: vec!["quiet".into()],
            disable: vec!["loud".into()],
        };
        let installed = registry.install(&flipped, &Host::default()).unwrap();
        let names: Vec<_> = installed
            .scalar_functions
            .iter()
            .map(|f| f.name())
            .collect();
        assert_eq!(names, ["hush"]);
    }

    #[test]
    fn selections_and_names_are_checked() {
        let registry = registry(vec![adds("a", &["one"])]);
        let unknown = Selection {
            enable: vec!["nope".into()],
            ..Selection::default()
        };
        let err = registry.install(&unknown, &Host::default()).err().unwrap();
        assert!(
            err.to_string().contains("does not have (it has: a)"),
            "{err}"
        );
        let both = Selection {
            enable: vec!["a".into()],
            disable: vec!["a".into()],
        };
        assert!(registry.install(&both, &Host::default()).is_err());
        let mut twice = Registry::new();
        twice.register(adds("a", &[])).unwrap();
        assert!(twice.register(adds("a", &[])).is_err());
        let shouting = registry_result(adds("b", &["Shout"])).err().unwrap();
        assert!(
            shouting.to_string().contains("not a lower-case identifier"),
            "{shouting}"
        );
    }

    fn registry_result(extension: Adds) -> Result<Installed> {
        let mut registry = Registry::new();
        registry.register(extension)?;
        registry.install(&Selection::default(), &Host::default())
    }
}
