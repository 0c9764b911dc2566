//! `embed(text [, model])`: the vector of each text, as a
//! `FixedSizeList<Float32, dimensions>` of the model's length.
//!
//! An async scalar function: a batch's distinct non-null texts go to the
//! model in one call (which the model splits into its own batches), so an
//! HTTP provider is never called per row and never blocks a query thread.
//! Nulls stay null; an empty string embeds as the model embeds it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use lakehouse_extension::{EmbeddingService, embed_strings, vector_type};

/// The SQL name.
pub const EMBED: &str = "embed";

/// Texts sent to the model per call when a batch is large; bounds memory
/// and lets a long query make progress batch by batch.
const TEXTS_PER_CALL: usize = 8192;

#[derive(Debug)]
pub struct Embed {
    models: Arc<dyn EmbeddingService>,
    signature: Signature,
}

impl PartialEq for Embed {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.models, &other.models)
    }
}

impl Eq for Embed {}

impl std::hash::Hash for Embed {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        EMBED.hash(state);
    }
}

impl Embed {
    pub fn udf(models: Arc<dyn EmbeddingService>) -> ScalarUDF {
        let string = |n| {
            TypeSignature::Uniform(
                n,
                vec![DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8],
            )
        };
        let embed = Self {
            models,
            signature: Signature::one_of(vec![string(1), string(2)], Volatility::Volatile),
        };
        AsyncScalarUDF::new(Arc::new(embed)).into_scalar_udf()
    }

    /// The model a call names: its second argument, which must be a constant.
    fn model_name(args: &[Option<&ScalarValue>], count: usize) -> Result<Option<String>> {
        if count < 2 {
            return Ok(None);
        }
        match args.get(1).copied().flatten() {
            Some(value) => match value.try_as_str() {
                Some(Some(name)) => Ok(Some(name.to_string())),
                _ => plan_err!("embed(text, model): model must be a string, got {value}"),
            },
            None => {
                plan_err!("embed(text, model): model must be a constant string such as 'local'")
            }
        }
    }
}

impl ScalarUDFImpl for Embed {
    fn name(&self) -> &str {
        EMBED
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!("embed's type depends on its model: return_field_from_args answers it")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let model = Self::model_name(args.scalar_arguments, args.arg_fields.len())?;
        let info = self
            .models
            .model(model.as_deref())
            .map_err(|e| datafusion::common::DataFusionError::Plan(e.to_string()))?;
        Ok(Arc::new(Field::new(
            EMBED,
            vector_type(info.dimensions),
            true,
        )))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!("embed() runs asynchronously; this call path cannot evaluate it")
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for Embed {
    fn ideal_batch_size(&self) -> Option<usize> {
        Some(TEXTS_PER_CALL)
    }

    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let model = match args.args.get(1) {
            Some(ColumnarValue::Scalar(value)) => value.try_as_str().flatten().map(str::to_string),
            Some(ColumnarValue::Array(_)) => {
                return exec_err!("embed(text, model): model must be a constant string");
            }
            None => None,
        };
        let rows = args.number_rows;
        let texts = args.args[0].to_array(rows)?;
        let texts = cast(&texts, &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        let vectors = embed_strings(self.models.as_ref(), model.as_deref(), texts).await?;
        Ok(ColumnarValue::Array(vectors))
    }
}
