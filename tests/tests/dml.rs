//! DELETE and UPDATE through the Rust Flight SQL client: affected-row
//! counts from ExecuteUpdate, subqueries in WHERE, concurrent statements on
//! the same files, and the status codes of what is refused.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use lakehouse_tests::client::{Client, Ingest, IngestMode};
use lakehouse_tests::{TestServer, rows};
use tonic::Code;

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("tag", DataType::Utf8, true),
    ]));
    let tags: StringArray = ids.clone().map(|i| Some(format!("t{}", i % 4))).collect();
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(ids)), Arc::new(tags)],
    )
    .unwrap()
}

/// A table of `(start, end)` id ranges, one append each.
async fn table(client: &mut Client, name: &str, parts: &[(i64, i64)]) {
    for (i, &(start, end)) in parts.iter().enumerate() {
        let mode = if i == 0 {
            IngestMode::Create
        } else {
            IngestMode::Append
        };
        client
            .ingest(Ingest::new(name, mode), vec![batch(start..end)])
            .await
            .unwrap();
    }
}

async fn one(client: &mut Client, sql: &str) -> String {
    rows(&client.query(sql).await.unwrap()).join(",")
}

#[tokio::test]
async fn delete_and_update_answer_the_rows_they_changed() {
    let server = TestServer::start();
    let mut client = server.client().await;
    table(&mut client, "t", &[(0, 100), (100, 200)]).await;
    assert_eq!(
        client.update("DELETE FROM t WHERE id < 10").await.unwrap(),
        10
    );
    assert_eq!(
        client
            .update("UPDATE t SET tag = concat(tag, '!') WHERE id >= 190")
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        one(&mut client, "SELECT count(*), min(id) FROM t").await,
        "190|10"
    );
    assert_eq!(
        one(&mut client, "SELECT count(*) FROM t WHERE tag LIKE '%!'").await,
        "10"
    );
    assert_eq!(
        one(
            &mut client,
            "SELECT string_agg(operation || ':' || rows_removed, ' ' ORDER BY version) FROM table_history('t')"
        )
        .await,
        "create:0 append:0 delete:10 update:10"
    );
}

#[tokio::test]
async fn a_subquery_chooses_the_rows() {
    let server = TestServer::start();
    let mut client = server.client().await;
    table(&mut client, "t", &[(0, 50)]).await;
    table(&mut client, "gone", &[(40, 45)]).await;
    assert_eq!(
        client
            .update("DELETE FROM t WHERE id IN (SELECT id FROM gone)")
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        client
            .update("UPDATE t SET tag = 'max' WHERE id = (SELECT max(id) FROM t)")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        one(
            &mut client,
            "SELECT count(*), max(id) FROM t WHERE tag <> 'max' OR tag IS NULL"
        )
        .await,
        "44|48"
    );
}

#[tokio::test]
async fn concurrent_deletes_of_the_same_file_both_land() {
    let server = TestServer::start();
    let mut client = server.client().await;
    table(&mut client, "t", &[(0, 1000)]).await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(server.client().await);
    }
    let deletes = clients.iter_mut().enumerate().map(|(i, c)| {
        let sql = format!("DELETE FROM t WHERE id % 4 = {i}");
        async move { c.update(&sql).await }
    });
    let deleted: Vec<i64> = futures::future::join_all(deletes)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(deleted, [250, 250, 250, 250]);
    assert_eq!(one(&mut client, "SELECT count(*) FROM t").await, "0");
}

#[tokio::test]
async fn what_is_refused_says_why() {
    let server = TestServer::start();
    let mut client = server.client().await;
    table(&mut client, "t", &[(0, 10)]).await;
    let cases = [
        (
            "DELETE FROM t WHERE nope = 1",
            Code::InvalidArgument,
            "nope",
        ),
        ("UPDATE t SET nope = 1", Code::InvalidArgument, "nope"),
        ("UPDATE t SET id = 'x'", Code::InvalidArgument, "x"),
        (
            "DELETE FROM missing WHERE id = 1",
            Code::NotFound,
            "missing",
        ),
        (
            "DELETE FROM t WHERE id = 1 LIMIT 1",
            Code::Unimplemented,
            "LIMIT",
        ),
        (
            "UPDATE t SET tag = o.tag FROM t AS o WHERE t.id = o.id",
            Code::Unimplemented,
            "FROM",
        ),
    ];
    for (sql, code, names) in cases {
        let err = client.update(sql).await.unwrap_err();
        assert_eq!(err.code(), Some(code), "{sql}: {err}");
        assert!(err.to_string().contains(names), "{sql}: {err}");
    }
    assert_eq!(one(&mut client, "SELECT count(*) FROM t").await, "10");
    assert_eq!(client.update("TRUNCATE TABLE t").await.unwrap(), 10);
    assert_eq!(one(&mut client, "SELECT count(*) FROM t").await, "0");
}

#[tokio::test]
async fn merge_alter_views_and_time_travel_through_the_rust_client() {
    let server = TestServer::start();
    let mut client = server.client().await;
    table(&mut client, "t", &[(0, 10)]).await;
    table(&mut client, "s", &[(5, 15)]).await;
    let merged = client
        .update(
            "MERGE INTO t USING s ON t.id = s.id \
             WHEN MATCHED THEN UPDATE SET tag = 'both' \
             WHEN NOT MATCHED THEN INSERT (id, tag) VALUES (s.id, 'new')",
        )
        .await
        .unwrap();
    assert_eq!(merged, 10);
    assert_eq!(
        one(
            &mut client,
            "SELECT tag, count(*) FROM t GROUP BY tag ORDER BY tag"
        )
        .await,
        "both|5,new|5,t0|2,t1|1,t2|1,t3|1"
    );
    assert_eq!(
        client
            .update("ALTER TABLE t ADD COLUMN score DOUBLE DEFAULT 1.5")
            .await
            .unwrap(),
        0
    );
    client
        .update("ALTER TABLE t RENAME COLUMN tag TO label")
        .await
        .unwrap();
    assert_eq!(
        one(&mut client, "SELECT label, score FROM t WHERE id = 0").await,
        "t0|1.5"
    );
    assert_eq!(
        one(&mut client, "SELECT count(*) FROM t VERSION AS OF 1").await,
        "10"
    );
    client
        .update("CREATE VIEW fresh AS SELECT id FROM t WHERE label = 'new'")
        .await
        .unwrap();
    assert_eq!(one(&mut client, "SELECT count(*) FROM fresh").await, "5");
    let info = client
        .flight_sql()
        .get_tables(arrow_flight::sql::CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: vec!["VIEW".into()],
            include_schema: false,
        })
        .await
        .unwrap();
    let views = client.fetch(info).await.unwrap();
    assert_eq!(rows(&views), vec!["lakehouse|public|fresh|VIEW"]);
    let err = client
        .update("ALTER TABLE t DROP COLUMN nope")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    assert!(err.to_string().contains("has no column"), "{err}");
    // RENAME TO: refused while a view reads the table, or onto a taken name.
    let err = client
        .update("ALTER TABLE t RENAME TO t2")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    assert!(err.to_string().contains("view public.fresh"), "{err}");
    client.update("DROP VIEW fresh").await.unwrap();
    let err = client
        .update("ALTER TABLE t RENAME TO s")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err}");
    client.update("ALTER TABLE t RENAME TO t2").await.unwrap();
    assert_eq!(one(&mut client, "SELECT count(*) FROM t2").await, "15");
    let err = client.query("SELECT * FROM t").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
}
