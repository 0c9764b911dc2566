//! The extensions this server is built with, installed as configuration
//! says: their SQL functions registered in the query session (never over a
//! built-in one), their actions handed to the action registry
//! ([`crate::actions`]), and what was installed visible through the
//! `list_extensions` action and the `extension_functions()` table function.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::plan_err;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::Result as DFResult;
use datafusion::prelude::SessionContext;
use lakehouse_extension::{
    Action, ExtensionError, ExtensionInfo, FunctionInfo, Host, Installed, Registry, Selection,
};

use crate::error::{Error, Result};

/// The SQL name of the table function listing extension functions.
pub const FUNCTIONS_TABLE: &str = "extension_functions";

/// The installed extensions: what they are and the actions they serve.
#[derive(Clone, Default)]
pub struct Extensions {
    listed: Arc<Vec<ExtensionInfo>>,
    actions: Arc<Vec<Arc<dyn Action>>>,
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions")
            .field("listed", &self.listed)
            .finish_non_exhaustive()
    }
}

impl Extensions {
    /// Installs the extensions `selection` enables and registers their
    /// functions in `ctx`.
    pub fn install(
        registry: &Registry,
        selection: &Selection,
        host: &Host,
        ctx: &SessionContext,
    ) -> Result<Self> {
        let Installed {
            extensions,
            scalar_functions,
            table_functions,
            actions,
        } = registry.install(selection, host)?;
        let state = ctx.state();
        let owner = |name: &str| {
            extensions
                .iter()
                .flat_map(|e| &e.functions)
                .find(|f| f.name == name)
                .map_or("?", |f| f.extension.as_str())
                .to_string()
        };
        let built_in = |name: &str| {
            state.scalar_functions().contains_key(name)
                || state.aggregate_functions().contains_key(name)
                || state.window_functions().contains_key(name)
                || state.table_functions().contains_key(name)
                || name == FUNCTIONS_TABLE
        };
        for udf in scalar_functions {
            if built_in(udf.name()) {
                return Err(taken("SQL function", udf.name(), &owner(udf.name())));
            }
            ctx.register_udf(udf);
        }
        for (name, function) in table_functions {
            if built_in(&name) {
                return Err(taken("SQL function", &name, &owner(&name)));
            }
            ctx.register_udtf(&name, function);
        }
        let listed = Arc::new(extensions);
        ctx.register_udtf(
            FUNCTIONS_TABLE,
            Arc::new(FunctionsTable {
                listed: listed.clone(),
            }),
        );
        Ok(Self {
            listed,
            actions: Arc::new(actions),
        })
    }

    /// Every extension the server is built with, enabled or not.
    pub fn listed(&self) -> &[ExtensionInfo] {
        &self.listed
    }

    /// The actions the installed extensions add.
    pub fn actions(&self) -> &[Arc<dyn Action>] {
        &self.actions
    }

    /// The extension that adds the action `name`.
    pub fn owner_of_action(&self, name: &str) -> &str {
        self.listed
            .iter()
            .find(|e| e.actions.iter().any(|a| a == name))
            .map_or("?", |e| e.name.as_str())
    }
}

fn taken(what: &str, name: &str, extension: &str) -> Error {
    Error::Extension(ExtensionError::Conflict(format!(
        "extension {extension:?} adds the {what} {name:?}, which the server already has; disable the extension"
    )))
}

/// `extension_functions()`: one row per function the extensions added.
#[derive(Debug)]
struct FunctionsTable {
    listed: Arc<Vec<ExtensionInfo>>,
}

impl TableFunctionImpl for FunctionsTable {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("{FUNCTIONS_TABLE}() takes no arguments");
        }
        let functions: Vec<&FunctionInfo> = self.listed.iter().flat_map(|e| &e.functions).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("function_name", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("extension", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, false),
        ]));
        let column = |get: fn(&FunctionInfo) -> &str| {
            Arc::new(StringArray::from_iter_values(
                functions.iter().map(|f| get(f)),
            ))
        };
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                column(|f| &f.name),
                column(|f| f.kind.as_str()),
                column(|f| &f.extension),
                column(|f| &f.description),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}
