//! Vector tables and knn through the Rust Flight SQL client: ingest of a
//! fixed-size-list column, filtered knn, an index built over DoAction, and
//! the errors a client sees.

use std::sync::Arc;

use arrow::array::{FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use lakehouse_tests::client::{Ingest, IngestMode};
use lakehouse_tests::{TestServer, message, rows};
use tonic::Code;

const DIM: i32 = 4;

/// Row i has state "IL" when i is even and vector [i, 0, 0, 0].
fn points(count: i64) -> RecordBatch {
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("emb", DataType::FixedSizeList(item.clone(), DIM), false),
    ]));
    let values = Float32Array::from_iter_values((0..count).flat_map(|i| [i as f32, 0.0, 0.0, 0.0]));
    let emb = FixedSizeListArray::try_new(item, DIM, Arc::new(values), None).unwrap();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..count)),
            Arc::new(StringArray::from_iter_values(
                (0..count).map(|i| if i % 2 == 0 { "IL" } else { "WI" }),
            )),
            Arc::new(emb),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn knn_filters_before_searching_and_indexes_are_versions() {
    let server = TestServer::start();
    let mut client = server.client().await;
    client
        .ingest(
            Ingest::new("points", IngestMode::Create),
            vec![points(1000)],
        )
        .await
        .unwrap();

    let near = client
        .query("SELECT id, round(_distance, 2) FROM knn('points', 'emb', [10.2, 0, 0, 0], 3)")
        .await
        .unwrap();
    assert_eq!(rows(&near), vec!["10|0.04", "11|0.64", "9|1.44"]);

    let filtered = client
        .query("SELECT id FROM knn('points', 'emb', [10.2, 0, 0, 0], 3) WHERE state = 'WI'")
        .await
        .unwrap();
    assert_eq!(rows(&filtered), vec!["11", "9", "13"]);

    let made = client
        .action(
            "create_index",
            r#"{"table": "points", "column": "emb", "index_type": "ivf_flat", "params": {"num_partitions": 2}}"#,
        )
        .await
        .unwrap();
    let made: serde_json::Value = serde_json::from_slice(&made).unwrap();
    assert_eq!(made["table_version"], 2);
    let history = client
        .query("SELECT version, operation FROM table_history('points')")
        .await
        .unwrap();
    assert_eq!(rows(&history), vec!["1|create", "2|index"]);
    let after = client
        .query("SELECT id FROM knn('points', 'emb', [10.2, 0, 0, 0], 1, '{\"nprobes\": 2}')")
        .await
        .unwrap();
    assert_eq!(rows(&after), vec!["10"]);

    let wrong = client
        .query("SELECT * FROM knn('points', 'emb', [1, 2], 3)")
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Some(Code::InvalidArgument));
    assert!(
        message(&wrong).contains("4 dimensions; the query has 2"),
        "{}",
        message(&wrong)
    );
    let missing = client
        .action("drop_index", r#"{"table": "points", "name": "nope"}"#)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some(Code::NotFound));
}
