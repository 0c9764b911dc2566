//! The example extension: word counting, small enough to read in one
//! sitting, with one of each contribution an extension can make:
//!
//! - `word_count(text)`, a scalar function: the words in each value;
//! - `words(text)`, a table function: one row per word with its position;
//! - `count_words`, a DoAction: `{"text": "..."}` in, `{"words": n}` out.
//!
//! A word is a maximal run of characters that are not white space. It is
//! off by default; enable it with `--enable-extension example`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use lakehouse_extension::{
    Access, Action, Contributions, Extension, Host, Result, ScalarFunction, TableFunction,
    parse_body,
};
use serde::Deserialize;

/// The extension, to register in a [`lakehouse_extension::Registry`].
pub struct Example;

impl Extension for Example {
    fn name(&self) -> &'static str {
        "example"
    }

    fn description(&self) -> &'static str {
        "An example extension: word_count(text), words(text) and the count_words action"
    }

    fn enabled_by_default(&self) -> bool {
        false
    }

    fn contributions(&self, _host: &Host) -> Result<Contributions> {
        Ok(Contributions {
            scalar_functions: vec![ScalarFunction {
                udf: ScalarUDF::new_from_impl(WordCount::new()),
                description: "word_count(text): the number of words in text (null stays null)"
                    .into(),
            }],
            table_functions: vec![TableFunction {
                name: "words".into(),
                function: Arc::new(Words),
                description: "words('text'): one row per word: position (from 1) and word".into(),
            }],
            actions: vec![Arc::new(CountWords)],
        })
    }
}

fn word_count(text: &str) -> i64 {
    text.split_whitespace().count() as i64
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct WordCount {
    signature: Signature,
}

impl WordCount {
    fn new() -> Self {
        Self {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for WordCount {
    fn name(&self) -> &str {
        "word_count"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let texts = args.args[0].to_array(args.number_rows)?;
        let texts = cast(&texts, &DataType::Utf8)?;
        let texts = texts
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("cast to Utf8 gives a StringArray");
        let counts: Int64Array = texts.iter().map(|t| t.map(word_count)).collect();
        Ok(ColumnarValue::Array(Arc::new(counts) as ArrayRef))
    }
}

#[derive(Debug)]
struct Words;

impl TableFunctionImpl for Words {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let [
            Expr::Literal(
                ScalarValue::Utf8(Some(text))
                | ScalarValue::Utf8View(Some(text))
                | ScalarValue::LargeUtf8(Some(text)),
                _,
            ),
        ] = args.exprs()
        else {
            return plan_err!("words takes one argument, a string literal: words('to be or not')");
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("position", DataType::Int64, false),
            Field::new("word", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(1..=words.len() as i64)),
                Arc::new(StringArray::from(words)),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

struct CountWords;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountWordsBody {
    text: String,
}

#[async_trait]
impl Action for CountWords {
    fn name(&self) -> &str {
        "count_words"
    }

    fn description(&self) -> &str {
        "Counts the words of a text (example extension)."
    }

    fn body(&self) -> &str {
        "{\"text\": \"...\"}"
    }

    fn result(&self) -> &str {
        "JSON {\"words\": n}"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    async fn run(&self, body: &[u8]) -> Result<Vec<u8>> {
        let body: CountWordsBody = parse_body(self.name(), body)?;
        let answer = serde_json::json!({ "words": word_count(&body.text) });
        Ok(answer.to_string().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakehouse_extension::ExtensionError;

    #[test]
    fn words_are_runs_of_non_space() {
        assert_eq!(word_count("  to be\tor\nnot  "), 4);
        assert_eq!(word_count(""), 0);
        assert_eq!(word_count("héllo wörld"), 2);
    }

    #[tokio::test]
    async fn the_action_answers_json_and_refuses_bad_bodies() {
        let answer = CountWords.run(br#"{"text": "a b c"}"#).await.unwrap();
        assert_eq!(answer, br#"{"words":3}"#);
        let err = CountWords.run(br#"{"txt": 1}"#).await.unwrap_err();
        assert!(matches!(err, ExtensionError::InvalidArgument(_)), "{err}");
    }
}
