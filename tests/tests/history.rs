//! Table history, time travel and vacuum, from SQL and DoAction.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use lakehouse_tests::client::{Ingest, IngestMode};
use lakehouse_tests::{TestServer, rows};
use tonic::Code;

fn ids(range: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(range))]).unwrap()
}

async fn three_versions(server: &TestServer) {
    let mut client = server.client().await;
    client
        .ingest(Ingest::new("t", IngestMode::Create), vec![ids(0..3)])
        .await
        .unwrap();
    let mut append = Ingest::new("t", IngestMode::Append);
    append.idempotency_key = Some("batch-2");
    client.ingest(append, vec![ids(3..5)]).await.unwrap();
    client
        .ingest(Ingest::new("t", IngestMode::Replace), vec![ids(100..101)])
        .await
        .unwrap();
}

#[tokio::test]
async fn history_and_time_travel_from_sql() {
    let server = TestServer::start();
    three_versions(&server).await;
    let mut client = server.client().await;

    let history = client
        .query("SELECT version, operation, rows_added, total_rows, idempotency_key FROM table_history('t')")
        .await
        .unwrap();
    assert_eq!(
        rows(&history),
        vec!["1|create|3|3|", "2|append|2|5|batch-2", "3|overwrite|1|1|"]
    );
    let bytes = client
        .query("SELECT bool_and(bytes > 0) FROM table_history('public.t')")
        .await
        .unwrap();
    assert_eq!(rows(&bytes), vec!["true"]);

    for (version, expected) in [(1, "3|0|2"), (2, "5|0|4"), (3, "1|100|100")] {
        let sql = format!("SELECT count(*), min(id), max(id) FROM \"t@v{version}\"");
        assert_eq!(
            rows(&client.query(&sql).await.unwrap()),
            vec![expected],
            "{sql}"
        );
    }
    let joined = client
        .query("SELECT count(*) FROM \"t@v2\" AS old JOIN \"t@v1\" AS older ON old.id = older.id")
        .await
        .unwrap();
    assert_eq!(rows(&joined), vec!["3"]);

    let err = client.query("SELECT * FROM \"t@v9\"").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    assert!(err.to_string().contains("version 9"), "{err}");
    let err = client.query("SELECT * FROM \"t@9\"").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    let err = client
        .query("SELECT * FROM table_history('nope')")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("public.nope"), "{err}");
    let err = client
        .update("INSERT INTO \"t@v1\" VALUES (1)")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");

    // A dropped table keeps its history and its old versions.
    client.update("DROP TABLE t").await.unwrap();
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM \"t@v2\"").await.unwrap()),
        vec!["5"]
    );
    assert_eq!(
        rows(
            &client
                .query("SELECT max(version) FROM table_history('t')")
                .await
                .unwrap()
        ),
        vec!["4"]
    );
}

#[tokio::test]
async fn history_and_vacuum_actions() {
    let mut server = TestServer::start();
    three_versions(&server).await;
    let mut client = server.client().await;

    let history: serde_json::Value = serde_json::from_slice(
        &client
            .action("table_history", r#"{"table": "t"}"#)
            .await
            .unwrap(),
    )
    .unwrap();
    let versions: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert_eq!(history[1]["idempotency_key"], "batch-2");
    assert_eq!(history[2]["operation"], "overwrite");

    // Default retention (7 days): nothing is old enough to go.
    let kept: serde_json::Value =
        serde_json::from_slice(&client.action("vacuum", r#"{"table": "t"}"#).await.unwrap())
            .unwrap();
    assert_eq!(
        (
            kept["versions_removed"].as_u64(),
            kept["files_removed"].as_u64()
        ),
        (Some(0), Some(0))
    );

    let report: serde_json::Value = serde_json::from_slice(
        &client
            .action(
                "vacuum",
                r#"{"table": "t", "retain_hours": 0, "min_file_age_secs": 0}"#,
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(report["newest_version"], 3);
    assert_eq!(report["versions_removed"], 2);
    assert_eq!(report["files_removed"], 2);
    assert!(report["bytes_removed"].as_u64().unwrap() > 0);
    assert_eq!(
        rows(&client.query("SELECT id FROM t").await.unwrap()),
        vec!["100"]
    );
    assert_eq!(
        rows(&client.query("SELECT id FROM \"t@v3\"").await.unwrap()),
        vec!["100"]
    );
    let err = client.query("SELECT * FROM \"t@v1\"").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");

    for (action, body, code) in [
        (
            "vacuum",
            r#"{"table": "t", "retain": 1}"#,
            Code::InvalidArgument,
        ),
        ("vacuum", "not json", Code::InvalidArgument),
        ("table_history", r#"{"table": "missing"}"#, Code::NotFound),
        ("no_such_action", "{}", Code::InvalidArgument),
    ] {
        let err = client.action(action, body).await.unwrap_err();
        assert_eq!(err.code(), Some(code), "{action} {body}: {err}");
    }
    let listed: Vec<String> = {
        use futures::TryStreamExt;
        let actions = client
            .flight_sql()
            .inner_mut()
            .list_actions(arrow_flight::Empty {})
            .await
            .unwrap()
            .into_inner();
        actions.map_ok(|a| a.r#type).try_collect().await.unwrap()
    };
    assert!(
        listed.contains(&"table_history".to_string()) && listed.contains(&"vacuum".to_string()),
        "{listed:?}"
    );

    // History survives a restart, minus what vacuum removed.
    let dir = server.take_storage().unwrap();
    drop(client);
    server.stop().await;
    let again = TestServer::start_on(dir.path(), &[]);
    let mut client = again.client().await;
    let history = client
        .query("SELECT version FROM table_history('t')")
        .await
        .unwrap();
    assert_eq!(rows(&history), vec!["3"]);
}
