//! Several servers on one storage directory: appends through any of them,
//! to Parquet and to vector (Lance) tables, all land exactly once and every
//! acknowledged one is visible to every server after a refresh.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, FixedSizeListArray, Float32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use lakehouse_tests::client::{Client, Ingest, IngestMode};
use lakehouse_tests::{TestServer, rows};

const DIMS: i32 = 4;

/// Rows `ids` of a table with an id column and, for a vector table, an
/// embedding column.
fn batch(ids: std::ops::Range<i64>, vectors: bool) -> RecordBatch {
    let id = Int64Array::from_iter_values(ids.clone());
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut columns: Vec<Arc<dyn Array>> = vec![Arc::new(id)];
    if vectors {
        let values = Float32Array::from_iter_values(
            ids.flat_map(|i| (0..DIMS).map(move |d| (i * DIMS as i64 + d as i64) as f32)),
        );
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let emb = FixedSizeListArray::try_new(item, DIMS, Arc::new(values), None).unwrap();
        fields.push(Field::new("emb", emb.data_type().clone(), true));
        columns.push(Arc::new(emb));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

async fn refresh(client: &mut Client) {
    client.action("refresh_catalog", "").await.unwrap();
}

async fn ids(client: &mut Client, table: &str) -> Vec<i64> {
    let batches = client
        .query(&format!("SELECT id FROM {table} ORDER BY id"))
        .await
        .unwrap();
    rows(&batches).iter().map(|r| r.parse().unwrap()).collect()
}

#[tokio::test]
async fn a_server_with_a_stale_view_appends_to_a_vector_table_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let one = TestServer::start_on(dir.path(), &[]);
    let mut first = one.client().await;
    first
        .ingest(
            Ingest::new("v", IngestMode::Create),
            vec![batch(0..10, true)],
        )
        .await
        .unwrap();
    let two = TestServer::start_on(dir.path(), &[]);
    let mut second = two.client().await;
    first
        .ingest(
            Ingest::new("v", IngestMode::Append),
            vec![batch(10..20, true)],
        )
        .await
        .unwrap();
    // The second server has not refreshed: it still pins the first version.
    second
        .ingest(
            Ingest::new("v", IngestMode::Append),
            vec![batch(20..30, true)],
        )
        .await
        .unwrap();
    for client in [&mut first, &mut second] {
        refresh(client).await;
        assert_eq!(ids(client, "v").await, (0..30).collect::<Vec<_>>());
    }
}

/// Two servers, four writers on each, `commits` appends per writer of
/// `rows` rows each, all to one table.
async fn two_servers_append_at_once(vectors: bool, commits: i64) {
    const WRITERS: i64 = 4;
    const ROWS: i64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let servers = [
        TestServer::start_on(dir.path(), &[]),
        TestServer::start_on(dir.path(), &[]),
    ];
    let mut setup = servers[0].client().await;
    setup
        .ingest(
            Ingest::new("shared", IngestMode::Create),
            vec![batch(-ROWS..0, vectors)],
        )
        .await
        .unwrap();
    refresh(&mut servers[1].client().await).await;
    let mut writers = Vec::new();
    for (s, server) in servers.iter().enumerate() {
        for w in 0..WRITERS {
            let mut client = server.client().await;
            let writer = s as i64 * WRITERS + w;
            writers.push(tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for c in 0..commits {
                    let first = (writer * commits + c) * ROWS;
                    client
                        .ingest(
                            Ingest::new("shared", IngestMode::Append),
                            vec![batch(first..first + ROWS, vectors)],
                        )
                        .await
                        .unwrap_or_else(|e| panic!("writer {writer}, commit {c}: {e}"));
                    acknowledged.extend(first..first + ROWS);
                }
                acknowledged
            }));
        }
    }
    let mut expected: BTreeSet<i64> = (-ROWS..0).collect();
    for writer in writers {
        expected.extend(writer.await.unwrap());
    }
    assert_eq!(expected.len() as i64, ROWS * (1 + 2 * WRITERS * commits));
    let expected: Vec<i64> = expected.into_iter().collect();
    for server in &servers {
        let mut client = server.client().await;
        refresh(&mut client).await;
        let seen = ids(&mut client, "shared").await;
        assert_eq!(seen.len(), expected.len(), "rows lost or duplicated");
        assert_eq!(seen, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_times_four_writers_append_to_a_parquet_table_and_lose_nothing() {
    two_servers_append_at_once(false, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_times_four_writers_append_to_a_vector_table_and_lose_nothing() {
    two_servers_append_at_once(true, 200).await;
}
