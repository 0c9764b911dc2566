//! Embedding on ingest: a table may declare that a vector column is the
//! embedding of a text column by a named model; every write then fills it.
//!
//! The declaration lives in the vector column's Arrow field metadata
//! (`lakehouse.embed.source`, `lakehouse.embed.model`), so it is stored
//! with the table's schema in every version, in Parquet manifests and Lance
//! datasets alike, and `knn()` can find the model that embeds a text query.
//!
//! A write that leaves such a column out gets it computed, batch by batch
//! as the rows stream in, with progress logged on long loads; a write that
//! carries the column keeps the vectors it has and gets the null ones
//! computed (so `INSERT` naming only the text columns works too).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::{Stream, TryStreamExt};
use lakehouse_extension::EmbeddingService;
use lakehouse_extension::{embed_strings, vector_type};
use serde::Deserialize;
use tracing::info;

use crate::error::{Error, Result};
use lakehouse_core::catalog::TableRef;

use lakehouse_extension::{EMBED_MODEL_KEY as MODEL_KEY, EMBED_SOURCE_KEY as SOURCE_KEY};

/// Batches being embedded at once: one embedding while the next decodes.
const EMBED_AHEAD: usize = 2;
/// How often a long load logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// "Fill column `target` with the embedding of column `source`."
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedSpec {
    pub source: String,
    pub target: String,
    /// A configured model; the default one when left out.
    pub model: Option<String>,
}

impl EmbedSpec {
    /// Parses the ADBC option `lakehouse.embed`:
    /// `TARGET=SOURCE[:MODEL]`, several separated by commas.
    pub fn parse_option(value: &str) -> Result<Vec<Self>> {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|one| {
                let (target, rest) = one.split_once('=').ok_or_else(|| {
                    Error::invalid(format!(
                        "lakehouse.embed {one:?} is not TARGET=SOURCE[:MODEL], e.g. summary_embedding=summary:local"
                    ))
                })?;
                let (source, model) = match rest.split_once(':') {
                    Some((source, model)) => (source, Some(model.trim().to_string())),
                    None => (rest, None),
                };
                Ok(Self {
                    source: source.trim().to_string(),
                    target: target.trim().to_string(),
                    model,
                })
            })
            .collect()
    }
}

/// The declaration on a table's vector column, if it has one.
pub fn declared(field: &Field) -> Option<(&str, &str)> {
    let metadata = field.metadata();
    Some((metadata.get(SOURCE_KEY)?, metadata.get(MODEL_KEY)?))
}

/// One column to fill on this write.
#[derive(Debug, Clone)]
struct Fill {
    source: String,
    target: Field,
    model: String,
    /// The upload carries the column: only its nulls are computed.
    present: bool,
}

/// What one write embeds.
#[derive(Debug, Clone, Default)]
pub struct EmbedPlan {
    fills: Vec<Fill>,
}

impl EmbedPlan {
    /// The columns `input` leaves out that the table (`existing`) or the
    /// request (`requested`, for a new table) declares embedded. Requested
    /// declarations on an existing table must match its own.
    pub fn new(
        table: &TableRef,
        existing: Option<&Schema>,
        input: &Schema,
        requested: &[EmbedSpec],
        models: Option<&Arc<dyn EmbeddingService>>,
    ) -> Result<Self> {
        let mut fills = Vec::new();
        if let Some(existing) = existing {
            for spec in requested {
                let matches = existing
                    .field_with_name(&spec.target)
                    .ok()
                    .and_then(declared)
                    .is_some_and(|(source, model)| {
                        source == spec.source && spec.model.as_deref().is_none_or(|m| m == model)
                    });
                if !matches {
                    return Err(Error::invalid(format!(
                        "table {table} exists and its column {:?} is not declared as the embedding of {:?}; embeddings are declared when a table is created",
                        spec.target, spec.source
                    )));
                }
            }
            for field in existing.fields() {
                if let Some((source, model)) = declared(field) {
                    fills.push(Fill {
                        source: source.to_string(),
                        target: field.as_ref().clone(),
                        model: model.to_string(),
                        present: input.field_with_name(field.name()).is_ok(),
                    });
                }
            }
        } else {
            for spec in requested {
                let models = models.ok_or_else(|| {
                    Error::invalid(
                        "this server has no embedding models (the embed extension is off)",
                    )
                })?;
                let info = models.model(spec.model.as_deref())?;
                let metadata = HashMap::from([
                    (SOURCE_KEY.to_string(), spec.source.clone()),
                    (MODEL_KEY.to_string(), info.name.clone()),
                ]);
                fills.push(Fill {
                    source: spec.source.clone(),
                    target: Field::new(&spec.target, vector_type(info.dimensions), true)
                        .with_metadata(metadata),
                    model: info.name,
                    present: input.field_with_name(&spec.target).is_ok(),
                });
            }
        }
        for fill in &fills {
            let source = input.field_with_name(&fill.source).map_err(|_| {
                Error::invalid(format!(
                    "column {:?} of {table} is the embedding of column {:?}, which the upload does not carry",
                    fill.target.name(),
                    fill.source
                ))
            })?;
            if !matches!(
                source.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                return Err(Error::invalid(format!(
                    "column {:?} of {table} is embedded from column {:?}, which is {} instead of text",
                    fill.target.name(),
                    fill.source,
                    source.data_type()
                )));
            }
        }
        if !fills.is_empty() && models.is_none() {
            return Err(Error::invalid(format!(
                "table {table} fills columns with embeddings but this server has no embedding models (the embed extension is off)"
            )));
        }
        Ok(Self { fills })
    }

    pub fn is_empty(&self) -> bool {
        self.fills.is_empty()
    }

    /// `input` with the filled columns added at the end.
    pub fn schema(&self, input: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(
            self.fills
                .iter()
                .filter(|f| !f.present)
                .map(|f| f.target.clone()),
        );
        Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()))
    }

    /// `batches` with the filled columns computed, a few batches ahead,
    /// logging progress every ten seconds.
    pub fn apply<S>(
        self,
        table: TableRef,
        models: Arc<dyn EmbeddingService>,
        schema: SchemaRef,
        batches: S,
    ) -> impl Stream<Item = Result<RecordBatch>> + Send
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        let plan = Arc::new(self);
        let started = Instant::now();
        let mut rows = 0usize;
        let mut logged = Instant::now();
        batches
            .map_ok(move |batch| {
                let (plan, models, schema) = (plan.clone(), models.clone(), schema.clone());
                async move { plan.fill(models.as_ref(), &schema, batch).await }
            })
            .try_buffered(EMBED_AHEAD)
            .inspect_ok(move |batch| {
                rows += batch.num_rows();
                if logged.elapsed() >= PROGRESS_EVERY {
                    logged = Instant::now();
                    let secs = started.elapsed().as_secs_f64();
                    info!(
                        table = %table, rows, rows_per_sec = (rows as f64 / secs.max(1e-9)) as u64,
                        "embedding on ingest"
                    );
                }
            })
    }

    async fn fill(
        &self,
        models: &dyn EmbeddingService,
        schema: &SchemaRef,
        batch: RecordBatch,
    ) -> Result<RecordBatch> {
        let mut columns = batch.columns().to_vec();
        for fill in &self.fills {
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| Error::internal(format!("column {name:?} left the batch")))
            };
            let text = cast(&column(&fill.source)?, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            if !fill.present {
                columns.push(
                    embed_strings(models, Some(&fill.model), text)
                        .await
                        .map_err(Error::from_datafusion)?,
                );
                continue;
            }
            let given = column(fill.target.name())?;
            if given.null_count() == 0 {
                continue;
            }
            // Only rows without a vector are embedded; the rest keep theirs.
            let wanted = arrow::compute::is_null(&given)?;
            let texts = arrow::compute::nullif(text, &arrow::compute::not(&wanted)?)?;
            let computed = embed_strings(models, Some(&fill.model), texts.as_string::<i32>())
                .await
                .map_err(Error::from_datafusion)?;
            let computed = cast(&computed, given.data_type())?;
            let merged = arrow::compute::kernels::zip::zip(&wanted, &computed, &given)?;
            let at = batch.schema().index_of(fill.target.name())?;
            columns[at] = merged;
        }
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adbc_option_names_target_source_and_model() {
        let specs = EmbedSpec::parse_option("emb=summary:local, title_emb = title").unwrap();
        assert_eq!(
            specs,
            vec![
                EmbedSpec {
                    source: "summary".into(),
                    target: "emb".into(),
                    model: Some("local".into())
                },
                EmbedSpec {
                    source: "title".into(),
                    target: "title_emb".into(),
                    model: None
                },
            ]
        );
        let e = EmbedSpec::parse_option("summary").unwrap_err();
        assert!(e.to_string().contains("TARGET=SOURCE"), "{e}");
    }
}
