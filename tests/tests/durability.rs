//! What survives: restarts keep every table and version, concurrent appends
//! all land with consecutive versions, a graceful stop exits cleanly.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use lakehouse_tests::client::{Ingest, IngestMode};
use lakehouse_tests::{TestServer, rows};

fn ids(range: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(range))]).unwrap()
}

fn version_files(storage: &std::path::Path, table: &str) -> Vec<String> {
    let dir = storage.join("_catalog/tables/public").join(table);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_restart_keeps_every_table_and_version() {
    let mut first = TestServer::start();
    let dir = first.take_storage().unwrap();
    let mut client = first.client().await;
    client
        .ingest(Ingest::new("a", IngestMode::Create), vec![ids(0..1000)])
        .await
        .unwrap();
    client
        .ingest(Ingest::new("a", IngestMode::Append), vec![ids(1000..1500)])
        .await
        .unwrap();
    client.update("CREATE SCHEMA s").await.unwrap();
    client
        .update("CREATE TABLE s.b AS SELECT id * 2 AS twice FROM a WHERE id < 10")
        .await
        .unwrap();
    client
        .update("CREATE TABLE gone AS SELECT 1 AS x")
        .await
        .unwrap();
    client.update("DROP TABLE gone").await.unwrap();
    let before_a = rows(
        &client
            .query("SELECT count(*), sum(id) FROM a")
            .await
            .unwrap(),
    );
    let before_b = rows(
        &client
            .query("SELECT twice FROM s.b ORDER BY twice")
            .await
            .unwrap(),
    );
    drop(client);
    assert!(first.stop().await.success(), "graceful stop exits 0");

    let second = TestServer::start_on(dir.path(), &[]);
    let mut client = second.client().await;
    assert_eq!(
        rows(
            &client
                .query("SELECT count(*), sum(id) FROM a")
                .await
                .unwrap()
        ),
        before_a
    );
    assert_eq!(
        rows(
            &client
                .query("SELECT twice FROM s.b ORDER BY twice")
                .await
                .unwrap()
        ),
        before_b
    );
    assert!(client.query("SELECT * FROM gone").await.is_err());
    assert_eq!(version_files(dir.path(), "a").len(), 2);
    // History continues where it stopped.
    client
        .ingest(Ingest::new("a", IngestMode::Append), vec![ids(0..1)])
        .await
        .unwrap();
    assert_eq!(version_files(dir.path(), "a").len(), 3);
}

#[tokio::test]
async fn concurrent_appends_all_land_with_consecutive_versions() {
    const CLIENTS: i64 = 8;
    const APPENDS: i64 = 20;
    const ROWS: i64 = 100;
    let server = TestServer::start();
    let mut client = server.client().await;
    client.update("CREATE TABLE t (id BIGINT)").await.unwrap();

    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut client = server.client().await;
        tasks.push(tokio::spawn(async move {
            for a in 0..APPENDS {
                let start = (c * APPENDS + a) * ROWS;
                client
                    .ingest(
                        Ingest::new("t", IngestMode::Append),
                        vec![ids(start..start + ROWS)],
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = CLIENTS * APPENDS * ROWS;
    let result = client
        .query("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM t")
        .await
        .unwrap();
    assert_eq!(
        rows(&result),
        vec![format!("{total}|{total}|0|{}", total - 1)]
    );

    // One version per append, plus the create and the background
    // compactions of the small appended files (which may still be
    // committing), all numbered without a gap.
    let history = client
        .query("SELECT count(*) FILTER (WHERE operation = 'append') FROM table_history('t')")
        .await
        .unwrap();
    assert_eq!(rows(&history), vec![(CLIENTS * APPENDS).to_string()]);
    let versions = version_files(&server.storage, "t");
    let expected: Vec<String> = (1..=versions.len() as u64)
        .map(|v| format!("{v:020}.json"))
        .collect();
    assert_eq!(versions, expected);
    assert!(versions.len() as i64 > CLIENTS * APPENDS);
}

#[tokio::test]
async fn an_idempotency_key_adds_rows_once() {
    let server = TestServer::start();
    let mut client = server.client().await;
    let mut request = Ingest::new("t", IngestMode::CreateAppend);
    request.idempotency_key = Some("load-2024-06-01");
    assert_eq!(
        client
            .ingest(request.clone(), vec![ids(0..10)])
            .await
            .unwrap(),
        10
    );
    assert_eq!(client.ingest(request, vec![ids(0..10)]).await.unwrap(), 10);
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM t").await.unwrap()),
        vec!["10"]
    );
    assert_eq!(version_files(&server.storage, "t").len(), 1);
}

#[tokio::test]
async fn a_busy_port_and_unusable_storage_are_clear_errors() {
    let server = TestServer::start();
    let output = std::process::Command::new(lakehouse_tests::server_binary())
        .args(["serve", "--listen", &server.address, "--storage"])
        .arg(&server.storage)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot listen on") && stderr.contains("--listen"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let file = tempfile::NamedTempFile::new().unwrap();
    let output = std::process::Command::new(lakehouse_tests::server_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--storage"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot start on storage"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// CSV rows `from..from + n`, about 40 bytes each.
fn csv_rows(from: u64, n: u64) -> bytes::Bytes {
    let mut text = String::new();
    for i in from..from + n {
        text.push_str(&format!(
            "{i},name-{i},{}.25,2024-01-{:02}\n",
            i % 1000,
            i % 28 + 1
        ));
    }
    text.into()
}

#[tokio::test]
async fn a_server_killed_during_a_large_upload_keeps_the_previous_version() {
    let mut server = TestServer::start();
    let dir = server.take_storage().unwrap();
    let mut client = server.client().await;
    let header = bytes::Bytes::from_static(b"id,name,score,day\n");
    let first = futures::stream::iter(vec![Ok(header.clone()), Ok(csv_rows(0, 1000))]);
    client
        .put_csv(&serde_json::json!({"table": "big"}), first)
        .await
        .unwrap();

    // An upload that never ends on its own; the server dies in its middle.
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let mut sent_tx = Some(sent_tx);
    let endless = futures::stream::iter(std::iter::once(header)).chain(futures::stream::unfold(
        0u64,
        move |chunk| {
            if chunk == 40 {
                sent_tx.take().map(|tx| tx.send(()));
            }
            let rows = csv_rows(1000 + chunk * 25_000, 25_000);
            async move { Some((rows, chunk + 1)) }
        },
    ));
    let mut uploader = server.client().await;
    let upload = tokio::spawn(async move {
        uploader
            .put_csv(&serde_json::json!({"table": "big"}), endless.map(Ok))
            .await
    });
    sent_rx.await.unwrap();
    // Kill it while a data file is being written: wait for the part.
    let parts = dir.path().join("data/public/big");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::fs::read_dir(&parts)
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().contains('#'))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no data file was started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.kill();
    assert!(upload.await.unwrap().is_err());

    let restarted = TestServer::start_on(dir.path(), &[]);
    let mut client = restarted.client().await;
    let check = |batches: Vec<RecordBatch>| rows(&batches);
    assert_eq!(
        check(
            client
                .query("SELECT count(*), sum(id) FROM big")
                .await
                .unwrap()
        ),
        vec!["1000|499500"]
    );
    assert_eq!(
        check(
            client
                .query("SELECT max(version) FROM table_history('big')")
                .await
                .unwrap()
        ),
        vec!["1"]
    );
    // What the dead upload wrote is an orphan, and vacuum takes it away.
    let report: serde_json::Value = serde_json::from_slice(
        &client
            .action("vacuum", r#"{"table": "big", "min_file_age_secs": 0}"#)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(report["versions_removed"], 0, "{report}");
    assert!(report["files_removed"].as_u64().unwrap() >= 1, "{report}");
    let data_files: Vec<String> = std::fs::read_dir(dir.path().join("data/public/big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        data_files.len(),
        1,
        "only the committed file remains: {data_files:?} {report}"
    );
    assert_eq!(
        check(client.query("SELECT count(*) FROM big").await.unwrap()),
        vec!["1000"]
    );
}
