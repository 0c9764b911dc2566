//! A damaged table, as an operator meets it: a torn manifest does not stop
//! the server, the other tables are served, a query on the damaged table
//! names the file and the fix, `lakehouse doctor` lists the damage, and the
//! repair_table action (or `lakehouse repair`) rolls the table back.

use std::process::Command;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use lakehouse_tests::client::{Ingest, IngestMode};
use lakehouse_tests::{TestServer, message, rows, server_binary};

fn ids(range: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(range))]).unwrap()
}

fn doctor(storage: &std::path::Path) -> (bool, String) {
    let out = Command::new(server_binary())
        .args(["doctor", "--storage"])
        .arg(storage)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn a_torn_manifest_is_named_served_around_and_repaired() {
    let mut first = TestServer::start();
    let dir = first.take_storage().unwrap();
    let mut client = first.client().await;
    client
        .ingest(Ingest::new("good", IngestMode::Create), vec![ids(0..10)])
        .await
        .unwrap();
    client
        .ingest(Ingest::new("hurt", IngestMode::Create), vec![ids(0..100)])
        .await
        .unwrap();
    client
        .ingest(Ingest::new("hurt", IngestMode::Append), vec![ids(100..150)])
        .await
        .unwrap();
    drop(client);
    assert!(first.stop().await.success());

    let manifest = dir
        .path()
        .join("_catalog/tables/public/hurt/00000000000000000002.json");
    let whole = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &whole[..whole.len() / 2]).unwrap();
    let (healthy, report) = doctor(dir.path());
    assert!(!healthy, "doctor exits 1 on damage:\n{report}");
    assert!(
        report.contains("table public.hurt version 2:")
            && report.contains("00000000000000000002.json")
            && report.contains("lakehouse repair"),
        "{report}"
    );

    let second = TestServer::start_on(dir.path(), &[]);
    let mut client = second.client().await;
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM good").await.unwrap()),
        ["10"]
    );
    let refused = client.query("SELECT count(*) FROM hurt").await.unwrap_err();
    assert_eq!(refused.code(), Some(tonic::Code::DataLoss), "{refused}");
    let text = message(&refused);
    assert!(
        text.contains("00000000000000000002.json")
            && text.contains("table public.hurt cannot be read or written")
            && text.contains("repair_table"),
        "{text}"
    );
    let append = client
        .ingest(Ingest::new("hurt", IngestMode::Append), vec![ids(150..160)])
        .await
        .unwrap_err();
    assert_eq!(append.code(), Some(tonic::Code::DataLoss), "{append}");

    let checked: serde_json::Value =
        serde_json::from_slice(&client.action("check_catalog", "").await.unwrap()).unwrap();
    assert_eq!(checked[0]["table"], "public.hurt");
    let repaired: serde_json::Value = serde_json::from_slice(
        &client
            .action("repair_table", r#"{"table": "hurt"}"#)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(repaired["version"], 1, "{repaired}");
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM hurt").await.unwrap()),
        ["100"]
    );
    client
        .ingest(Ingest::new("hurt", IngestMode::Append), vec![ids(100..110)])
        .await
        .unwrap();
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM hurt").await.unwrap()),
        ["110"]
    );
    assert!(
        dir.path()
            .join("_quarantine/_catalog/tables/public/hurt/00000000000000000002.json")
            .is_file()
    );
    let (healthy, report) = doctor(dir.path());
    assert!(healthy, "{report}");
    drop(client);
    assert!(second.stop().await.success());
}

#[tokio::test]
async fn lakehouse_repair_rolls_back_a_table_whose_data_file_is_gone() {
    let mut first = TestServer::start();
    let dir = first.take_storage().unwrap();
    let mut client = first.client().await;
    client
        .ingest(Ingest::new("t", IngestMode::Create), vec![ids(0..5)])
        .await
        .unwrap();
    client
        .ingest(Ingest::new("t", IngestMode::Append), vec![ids(5..8)])
        .await
        .unwrap();
    drop(client);
    assert!(first.stop().await.success());
    let v1 = std::fs::read_to_string(
        dir.path()
            .join("_catalog/tables/public/t/00000000000000000001.json"),
    )
    .unwrap();
    let newest_file = std::fs::read_dir(dir.path().join("data/public/t"))
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| !v1.contains(e.file_name().to_string_lossy().as_ref()))
        .expect("the file version 2 added");
    std::fs::remove_file(newest_file.path()).unwrap();

    let (healthy, report) = doctor(dir.path());
    assert!(!healthy && report.contains("is missing"), "{report}");
    let repaired = Command::new(server_binary())
        .args(["repair", "--table", "t", "--storage"])
        .arg(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&repaired.stdout);
    assert!(
        repaired.status.success(),
        "{}",
        String::from_utf8_lossy(&repaired.stderr)
    );
    assert!(said.contains("table public.t is at version 1"), "{said}");

    let second = TestServer::start_on(dir.path(), &[]);
    let mut client = second.client().await;
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM t").await.unwrap()),
        ["5"]
    );
}
