//! `knn(table, column, query, k [, options])`: the `k` rows of a vector
//! table nearest to `query`, nearest first, with their `_distance`; and
//! `fts(table, column, query, k)`: the `k` best BM25 matches of a text
//! query, with their `_score`.
//!
//! `query` is any constant expression giving a vector (an array literal,
//! `[0.1, 0.2]`, or an expression over literals), a statement parameter
//! (`$1`), bound when the prepared statement runs, or a text, embedded when
//! the search runs with the model that fills the column (or the default
//! model, when the column declares none and its length fits). `options` is a JSON
//! object: `{"nprobes": 20, "ef": 64, "refine": 5, "metric": "cosine"}`.
//! Filters on the table's columns in the query's `WHERE` are handed to the
//! search as a prefilter, so `k` rows come back whenever `k` rows match;
//! filters on `_distance` apply afterwards.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{
    Column, DFSchema, ParamValues, ScalarValue, plan_datafusion_err, plan_err,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{ColumnarValue, Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_plan::ExecutionPlan;
use lakehouse_extension::{
    EMBED_MODEL_KEY, EmbeddingService, Parameterized, ParameterizedTable, SearchOptions,
    SearchRequest, TextSearchRequest, VectorService,
};

/// The SQL names.
pub const KNN: &str = "knn";
pub const FTS: &str = "fts";
/// The columns they add.
pub const DISTANCE: &str = "_distance";
pub const SCORE: &str = "_score";

#[derive(Debug)]
pub struct Knn {
    search: Arc<dyn VectorService>,
    embeddings: Option<Arc<dyn EmbeddingService>>,
}

impl Knn {
    pub fn new(
        search: Arc<dyn VectorService>,
        embeddings: Option<Arc<dyn EmbeddingService>>,
    ) -> Self {
        Self { search, embeddings }
    }
}

/// A text query's model: the one the column declares, else the default
/// when its vectors have the column's length.
fn text_model(
    embeddings: Option<&Arc<dyn EmbeddingService>>,
    column: &Field,
    table: &str,
) -> DFResult<(Arc<dyn EmbeddingService>, String)> {
    let Some(embeddings) = embeddings else {
        return plan_err!(
            "{KNN}: a text query needs the embed extension, which is off; give a vector"
        );
    };
    let declared = column.metadata().get(EMBED_MODEL_KEY).cloned();
    let info = embeddings.model(declared.as_deref()).map_err(external)?;
    if let DataType::FixedSizeList(_, dims) = column.data_type()
        && *dims as usize != info.dimensions
    {
        return plan_err!(
            "{KNN}: column {} of {table} holds {dims}-dimensional vectors but model '{}' makes {}; give a vector, or a model's vectors of that length",
            column.name(),
            info.name,
            info.dimensions
        );
    }
    Ok((embeddings.clone(), info.name))
}

fn text_argument(function: &str, expr: &Expr, what: &str) -> DFResult<String> {
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

/// Most rows one search returns: its results are held in memory.
const MAX_K: i64 = 100_000;

fn k_argument(function: &str, expr: &Expr) -> DFResult<usize> {
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
fn search_schema(
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

/// A constant vector from a scalar (a list of numbers).
fn vector_from_scalar(value: &ScalarValue) -> DFResult<Vec<f32>> {
    query_vector(&Expr::Literal(value.clone(), None))
}

/// Evaluates a constant expression to a vector of f32.
fn query_vector(expr: &Expr) -> DFResult<Vec<f32>> {
    let empty = Arc::new(Schema::empty());
    let physical = create_physical_expr(expr, &DFSchema::empty(), &ExecutionProps::new())
        .map_err(|e| plan_datafusion_err!("{KNN}: the query must be a constant vector: {e}"))?;
    let one_row = RecordBatch::try_new_with_options(
        empty,
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let value = match physical.evaluate(&one_row)? {
        ColumnarValue::Array(array) => array,
        ColumnarValue::Scalar(scalar) => scalar.to_array_of_size(1)?,
    };
    let values = match value.data_type() {
        DataType::List(_) => value.as_list::<i32>().value(0),
        DataType::LargeList(_) => value.as_list::<i64>().value(0),
        DataType::FixedSizeList(..) => value.as_fixed_size_list().value(0),
        other => {
            return plan_err!("{KNN}: the query must be a vector (a list of numbers), not {other}");
        }
    };
    if value.is_null(0) {
        return plan_err!("{KNN}: the query vector is null");
    }
    let values = cast(&values, &DataType::Float32)?;
    let values = values.as_primitive::<datafusion::arrow::datatypes::Float32Type>();
    if values.null_count() > 0 {
        return plan_err!("{KNN}: the query vector has a null element");
    }
    Ok(values.values().to_vec())
}

impl TableFunctionImpl for Knn {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(4..=5).contains(&exprs.len()) {
            return plan_err!(
                "{KNN} takes (table, column, query, k [, options]), e.g. knn('docs', 'emb', [0.1, 0.2], 10); got {} arguments",
                exprs.len()
            );
        }
        let table = text_argument(KNN, &exprs[0], "table name")?;
        let column = text_argument(KNN, &exprs[1], "column name")?;
        let k = k_argument(KNN, &exprs[3])?;
        let options: SearchOptions = match exprs.get(4) {
            Some(expr) => serde_json::from_str(&text_argument(KNN, expr, "options")?).map_err(|e| {
                plan_datafusion_err!(
                    "{KNN}: the options are not valid JSON of nprobes, ef, refine and metric: {e}"
                )
            })?,
            None => SearchOptions::default(),
        };
        let (schema, column_type) =
            search_schema(self.search.as_ref(), KNN, &table, &column, DISTANCE)?;
        if !matches!(column_type, DataType::FixedSizeList(..)) {
            return plan_err!(
                "{KNN}: column {column} of {table} is {column_type}, not a vector column"
            );
        }
        let embed_text = |text: String| -> DFResult<Arc<dyn TableProvider>> {
            let field = schema.field_with_name(&column)?;
            let (embeddings, model) = text_model(self.embeddings.as_ref(), field, &table)?;
            Ok(Arc::new(SearchTable {
                service: self.search.clone(),
                search: Search::NearestText {
                    request: SearchRequest {
                        table: table.clone(),
                        column: column.clone(),
                        query: Vec::new(),
                        k,
                        filter: None,
                        options: options.clone(),
                    },
                    text,
                    model,
                    embeddings,
                },
                schema: schema.clone(),
            }))
        };
        if let Expr::Literal(
            ScalarValue::Utf8(Some(text))
            | ScalarValue::Utf8View(Some(text))
            | ScalarValue::LargeUtf8(Some(text)),
            _,
        ) = &exprs[2]
        {
            return embed_text(text.clone());
        }
        let planned = PlannedKnn {
            service: self.search.clone(),
            request: SearchRequest {
                table,
                column,
                query: Vec::new(),
                k,
                filter: None,
                options,
            },
            column_type,
            schema,
        };
        match &exprs[2] {
            Expr::Placeholder(placeholder) => {
                Ok(Arc::new(ParameterizedTable(Arc::new(KnnWithParameter {
                    planned,
                    parameter: placeholder.id.clone(),
                }))))
            }
            query => planned.with_query(query_vector(query)?),
        }
    }
}

/// A knn call with everything but its query vector.
#[derive(Debug, Clone)]
struct PlannedKnn {
    service: Arc<dyn VectorService>,
    request: SearchRequest,
    column_type: DataType,
    schema: SchemaRef,
}

impl PlannedKnn {
    fn with_query(&self, query: Vec<f32>) -> DFResult<Arc<dyn TableProvider>> {
        let request = &self.request;
        if let DataType::FixedSizeList(_, dims) = &self.column_type
            && *dims as usize != query.len()
        {
            return plan_err!(
                "{KNN}: column {} of {} holds vectors of {dims} dimensions; the query has {}",
                request.column,
                request.table,
                query.len()
            );
        }
        Ok(Arc::new(SearchTable {
            service: self.service.clone(),
            search: Search::Nearest(SearchRequest {
                query,
                ..request.clone()
            }),
            schema: self.schema.clone(),
        }))
    }
}

/// knn whose query vector is a statement parameter.
#[derive(Debug)]
struct KnnWithParameter {
    planned: PlannedKnn,
    parameter: String,
}

impl Parameterized for KnnWithParameter {
    fn schema(&self) -> SchemaRef {
        self.planned.schema.clone()
    }

    fn parameters(&self) -> Vec<(String, DataType)> {
        vec![(self.parameter.clone(), self.planned.column_type.clone())]
    }

    fn bind(&self, values: &ParamValues) -> DFResult<Arc<dyn TableProvider>> {
        let value = values.get_placeholders_with_values(&self.parameter)?;
        self.planned.with_query(vector_from_scalar(&value.value)?)
    }
}

#[derive(Debug)]
pub struct Fts {
    search: Arc<dyn VectorService>,
}

impl Fts {
    pub fn new(search: Arc<dyn VectorService>) -> Self {
        Self { search }
    }
}

impl TableFunctionImpl for Fts {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() != 4 {
            return plan_err!(
                "{FTS} takes (table, column, query, k), e.g. fts('docs', 'body', 'forklift safety', 10); got {} arguments",
                exprs.len()
            );
        }
        let table = text_argument(FTS, &exprs[0], "table name")?;
        let column = text_argument(FTS, &exprs[1], "column name")?;
        let query = text_argument(FTS, &exprs[2], "query")?;
        let k = k_argument(FTS, &exprs[3])?;
        let (schema, column_type) =
            search_schema(self.search.as_ref(), FTS, &table, &column, SCORE)?;
        if !matches!(
            column_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            return plan_err!("{FTS}: column {column} of {table} is {column_type}, not text");
        }
        Ok(Arc::new(SearchTable {
            service: self.search.clone(),
            search: Search::Text(TextSearchRequest {
                table,
                column,
                query,
                k,
                filter: None,
            }),
            schema,
        }))
    }
}

/// What a planned search will ask the service.
#[derive(Debug, Clone)]
enum Search {
    Nearest(SearchRequest),
    /// Nearest to a text's embedding, made when the search runs.
    NearestText {
        request: SearchRequest,
        text: String,
        model: String,
        embeddings: Arc<dyn EmbeddingService>,
    },
    Text(TextSearchRequest),
}

fn external(e: lakehouse_extension::ExtensionError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// One knn or fts call, planned; searching happens when it is scanned.
#[derive(Debug)]
struct SearchTable {
    service: Arc<dyn VectorService>,
    search: Search,
    schema: SchemaRef,
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
        let batches = match self.search.clone() {
            Search::Nearest(mut request) => {
                request.filter = filter;
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
                self.service.search(request).await
            }
            Search::Text(mut request) => {
                request.filter = filter;
                self.service.text_search(request).await
            }
        }
        .map_err(external)?;
        let batches = batches
            .into_iter()
            .map(|b| align(&b, &self.schema))
            .collect::<DFResult<Vec<_>>>()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema.clone(),
            projection.cloned(),
        )?)
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
