//! `knn(table, column, query, k [, options])`: the `k` rows of a vector
//! table nearest to `query`, nearest first, with their `_distance`.
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

use datafusion::arrow::array::{Array, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{DFSchema, ParamValues, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{ColumnarValue, Expr};
use datafusion::physical_expr::create_physical_expr;
use lakehouse_extension::{
    EMBED_MODEL_KEY, EmbeddingService, Parameterized, ParameterizedTable, SearchOptions,
    SearchRequest, VectorService,
};

use crate::search::{
    DISTANCE, Search, SearchTable, external, k_argument, options_argument, search_schema,
    text_argument,
};

/// The SQL name.
pub const KNN: &str = "knn";

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
pub(crate) fn text_model(
    function: &str,
    embeddings: Option<&Arc<dyn EmbeddingService>>,
    column: &Field,
    table: &str,
) -> DFResult<(Arc<dyn EmbeddingService>, String)> {
    let Some(embeddings) = embeddings else {
        return plan_err!(
            "{function}: a text query needs the embed extension, which is off; give a vector"
        );
    };
    let declared = column.metadata().get(EMBED_MODEL_KEY).cloned();
    let info = embeddings.model(declared.as_deref()).map_err(external)?;
    if let DataType::FixedSizeList(_, dims) = column.data_type()
        && *dims as usize != info.dimensions
    {
        return plan_err!(
            "{function}: column {} of {table} holds {dims}-dimensional vectors but model '{}' makes {}; give a vector, or a model's vectors of that length",
            column.name(),
            info.name,
            info.dimensions
        );
    }
    Ok((embeddings.clone(), info.name))
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
        let options: SearchOptions =
            options_argument(KNN, exprs.get(4), "nprobes, ef, refine and metric")?;
        let (schema, column_type) =
            search_schema(self.search.as_ref(), KNN, &table, &column, DISTANCE)?;
        if !matches!(column_type, DataType::FixedSizeList(..)) {
            return plan_err!(
                "{KNN}: column {column} of {table} is {column_type}, not a vector column"
            );
        }
        let embed_text = |text: String| -> DFResult<Arc<dyn TableProvider>> {
            let field = schema.field_with_name(&column)?;
            let (embeddings, model) = text_model(KNN, self.embeddings.as_ref(), field, &table)?;
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
                        columns: None,
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
                columns: None,
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
