//! DoAction `register_parquet`: Parquet files already in the store become
//! a table version without being copied.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use lakehouse_tests::client::{Client, ClientError};
use lakehouse_tests::{TestServer, message, rows};
use parquet::arrow::ArrowWriter;
use serde_json::Value;
use tonic::Code;

fn write_parquet(path: &Path, ids: std::ops::Range<i64>, with_name: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut columns: Vec<Arc<dyn arrow::array::Array>> =
        vec![Arc::new(Int64Array::from_iter_values(ids.clone()))];
    if with_name {
        fields.push(Field::new("name", DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from_iter_values(
            ids.map(|i| format!("n{i}")),
        )));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

async fn register(client: &mut Client, body: &str) -> Result<Value, ClientError> {
    let answer = client.action("register_parquet", body).await?;
    Ok(serde_json::from_slice(&answer).unwrap())
}

#[tokio::test]
async fn registers_files_in_place_once() {
    let server = TestServer::start();
    let store = server.storage.clone();
    write_parquet(&store.join("imports/a.parquet"), 0..100, true);
    write_parquet(&store.join("imports/b.parquet"), 100..150, true);
    write_parquet(&store.join("imports/narrow.parquet"), 0..10, false);
    let mut client = server.client().await;

    let body = r#"{"table": "imported", "paths": ["imports/a.parquet", "./imports/b.parquet"]}"#;
    let first = register(&mut client, body).await.unwrap();
    assert_eq!(first["version"], 1, "{first}");
    assert_eq!(first["files_added"], 2, "{first}");
    assert_eq!(first["rows_added"], 150, "{first}");
    let query = "SELECT count(*), min(id), max(id), max(name) FROM imported";
    assert_eq!(rows(&client.query(query).await.unwrap()), ["150|0|149|n99"]);
    // Pruning uses the footers' statistics, as for written files.
    assert_eq!(
        rows(
            &client
                .query("SELECT count(*) FROM imported WHERE id >= 120")
                .await
                .unwrap()
        ),
        ["30"]
    );

    let again = register(&mut client, body).await.unwrap();
    assert_eq!(
        (
            again["version"].clone(),
            again["files_added"].clone(),
            again["already_registered"].clone()
        ),
        (1.into(), 0.into(), 2.into())
    );
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM imported").await.unwrap()),
        ["150"]
    );

    let err = register(
        &mut client,
        r#"{"table": "imported", "paths": ["imports/narrow.parquet"]}"#,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    assert!(message(&err).contains("missing columns: name"), "{err}");

    let err = register(
        &mut client,
        r#"{"table": "x", "paths": ["imports/a.parquet", "imports/narrow.parquet"]}"#,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    assert!(
        message(&err)
            .contains("imports/narrow.parquet does not have the columns of imports/a.parquet"),
        "{err}"
    );

    let err = register(
        &mut client,
        r#"{"table": "x", "paths": ["imports/none.parquet"]}"#,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    assert!(message(&err).contains("imports/none.parquet"), "{err}");

    let err = register(
        &mut client,
        r#"{"table": "x", "paths": ["../secret.parquet"]}"#,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");

    std::fs::write(store.join("imports/text.parquet"), "not parquet").unwrap();
    let err = register(
        &mut client,
        r#"{"table": "x", "paths": ["imports/text.parquet"]}"#,
    )
    .await
    .unwrap_err();
    assert!(
        message(&err).contains("imports/text.parquet is not a readable Parquet file"),
        "{err}"
    );

    // Vacuum leaves registered files alone: they are outside the table's prefix.
    client.update("DROP TABLE imported").await.unwrap();
    client
        .action(
            "vacuum",
            r#"{"table": "imported", "retain_hours": 0, "min_file_age_secs": 0}"#,
        )
        .await
        .unwrap();
    assert!(store.join("imports/a.parquet").exists());
}
