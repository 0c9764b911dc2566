//! What `knn()`, `fts()` and `hybrid()` share: their common arguments, and the table
//! a planned search becomes. Searching happens when DataFusion scans that
//! table, with the query's filters on the vector table's own columns
//! handed to the search as a prefilter.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use lakehouse_extension::{
    EmbeddingService, HybridRequest, SearchRequest, TextSearchRequest, VectorService,
};

/// The columns the searches add.
pub const DISTANCE: &str = "_distance";
pub const SCORE: &str = "_score";

pub(crate) fn text_argument(function: &str, expr: &Expr, what: &str) -> DFResult<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Ok(s.clone()),
        other => plan_err!("{function}: the {what} must be a string literal, not {other}"),
    }
}

/// A search's options argument: a JSON object of `fields`, absent ones
/// taking their defaults.
pub(crate) fn options_argument<T: serde::de::DeserializeOwned + Default>(
    function: &str,
    expr: Option<&Expr>,
    fields: &str,
) -> DFResult<T> {
    let Some(expr) = expr else {
        return Ok(T::default());
    };
    serde_json::from_str(&text_argument(function, expr, "options")?).map_err(|e| {
        plan_datafusion_err!("{function}: the options are not valid JSON of {fields}: {e}")
    })
}

/// Most rows one search returns: its results are held in memory.
const MAX_K: i64 = 100_000;

pub(crate) fn k_argument(function: &str, expr: &Expr) -> DFResult<usize> {
    match expr {
        Expr::Literal(ScalarValue::Int64(Some(k)), _) if *k > MAX_K => {
            plan_err!("{function}: k is {k}; at most {MAX_K} rows per search")
        }
        Expr::Literal(ScalarValue::Int64(Some(k)), _) if *k > 0 => Ok(*k as usize),
        Expr::Literal(ScalarValue::Int64(Some(k)), _) => {
            plan_err!("{function}: k must be a positive number of rows, not {k}")
        }
        other => plan_err!("{function}: k must be an integer literal, not {other}"),
    }
}

/// The type of the table's column `column` (which must exist), and the
/// schema of a search over the table: its columns plus `added`.
pub(crate) fn search_schema(
    service: &dyn VectorService,
    function: &str,
    table: &str,
    column: &str,
    added: &str,
) -> DFResult<(SchemaRef, DataType)> {
    let columns = service.table_schema(table).map_err(external)?;
    let field = columns.field_with_name(column).map_err(|_| {
        plan_datafusion_err!(
            "{function}: table {table} has no column {column:?} (its columns: {})",
            columns
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let column_type = field.data_type().clone();
    let mut fields: Vec<Field> = columns
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(added, DataType::Float32, true));
    Ok((Arc::new(Schema::new(fields)), column_type))
}

/// What a planned search will ask the service.
#[derive(Debug, Clone)]
pub(crate) enum Search {
    Nearest(SearchRequest),
    /// Nearest to a text's embedding, made when the search runs.
    NearestText {
        request: SearchRequest,
        text: String,
        model: String,
        embeddings: Arc<dyn EmbeddingService>,
    },
    Text(TextSearchRequest),
    /// Both, of one text, fused by rank; its embedding is made when the
    /// search runs.
    Hybrid {
        request: HybridRequest,
        model: String,
        embeddings: Arc<dyn EmbeddingService>,
    },
}

pub(crate) fn external(e: lakehouse_extension::ExtensionError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// One knn or fts call, planned; searching happens when it is scanned.
#[derive(Debug)]
pub(crate) struct SearchTable {
    pub(crate) service: Arc<dyn VectorService>,
    pub(crate) search: Search,
    pub(crate) schema: SchemaRef,
}

impl SearchTable {
    fn on_table_columns(&self, filter: &Expr) -> bool {
        filter.column_refs().iter().all(|c| {
            c.name != DISTANCE && c.name != SCORE && self.schema.field_with_name(&c.name).is_ok()
        })
    }
}

#[async_trait]
impl TableProvider for SearchTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.on_table_columns(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let pushed: Vec<Expr> = filters
            .iter()
            .filter(|f| self.on_table_columns(f))
            .map(|f| unqualified(f.clone()))
            .collect::<DFResult<_>>()?;
        let filter = pushed.into_iter().reduce(Expr::and);
        // The table columns the query reads: a knn search takes only
        // those from storage (the vector column only to rank by it).
        let schema = match projection {
            Some(projection) => Arc::new(self.schema.project(projection)?),
            None => self.schema.clone(),
        };
        let columns = projection.map(|_| {
            schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|name| name != DISTANCE && name != SCORE)
                .collect::<Vec<_>>()
        });
        let batches = match self.search.clone() {
            Search::Nearest(mut request) => {
                request.filter = filter;
                request.columns = columns;
                self.service.search(request).await
            }
            Search::NearestText {
                mut request,
                text,
                model,
                embeddings,
            } => {
                let vector = embeddings
                    .embed(Some(&model), &[text])
                    .await
                    .map_err(external)?;
                request.query = vector.values;
                request.filter = filter;
                request.columns = columns;
                self.service.search(request).await
            }
            Search::Text(mut request) => {
                request.filter = filter;
                self.service.text_search(request).await
            }
            Search::Hybrid {
                mut request,
                model,
                embeddings,
            } => {
                let vector = embeddings
                    .embed(Some(&model), std::slice::from_ref(&request.text))
                    .await
                    .map_err(external)?;
                request.vector = vector.values;
                request.filter = filter;
                self.service.hybrid_search(request).await
            }
        }
        .map_err(external)?;
        let batches = batches
            .into_iter()
            .map(|b| align(&b, &schema))
            .collect::<DFResult<Vec<_>>>()?;
        Ok(MemorySourceConfig::try_new_exec(&[batches], schema, None)?)
    }
}

/// Column references without their table qualifier, as the search sees
/// the table's own columns.
fn unqualified(expr: Expr) -> DFResult<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
            c.name,
        )))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// The search's batch in the planned schema (names in order, types cast).
fn align(batch: &RecordBatch, schema: &SchemaRef) -> DFResult<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                plan_datafusion_err!("the search returned no column {}", field.name())
            })?;
            Ok(cast(column, field.data_type())?)
        })
        .collect::<DFResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}
