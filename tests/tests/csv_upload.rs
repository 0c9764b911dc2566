//! CSV upload over DoPut through the Rust client: inference and widening,
//! explicit columns, bad files refused with their line, drift and
//! evolution, idempotency, and an abandoned upload committing nothing.

use bytes::Bytes;
use lakehouse_tests::client::{Client, ClientError, CsvLoaded};
use lakehouse_tests::{TestServer, message, rows};
use serde_json::{Value, json};
use tonic::Code;

/// `text` cut into chunks of `size` bytes.
fn chunks(text: &[u8], size: usize) -> impl futures::Stream<Item = std::io::Result<Bytes>> + use<> {
    let pieces: Vec<std::io::Result<Bytes>> = text
        .chunks(size.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(pieces)
}

async fn put(client: &mut Client, options: Value, text: &str) -> Result<CsvLoaded, ClientError> {
    client.put_csv(&options, chunks(text.as_bytes(), 7)).await
}

async fn query(client: &mut Client, sql: &str) -> Vec<String> {
    rows(&client.query(sql).await.unwrap())
}

async fn column_types(client: &mut Client, table: &str) -> Vec<String> {
    let (schema, _) = client
        .query_with_schema(&format!("SELECT * FROM {table} LIMIT 0"))
        .await
        .unwrap();
    schema
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect()
}

#[tokio::test]
async fn infers_types_and_reads_back_what_was_sent() {
    let server = TestServer::start();
    let mut client = server.client().await;
    let csv = "id,price,ok,day,at,at_utc,zip,name\r\n\
               1,9.5,true,2024-01-05,2024-01-05 10:30:00,2024-01-05T10:30:00Z,02134,\"Smith, J\"\r\n\
               2,,false,2024-02-29,2024-02-29T23:59:59.123456,2024-02-29 23:59:59+02:00,10001,\"two\r\nlines\"\r\n\
               3,-1e3,TRUE,,,,,Ørsted 😀\r\n";
    let loaded = put(&mut client, json!({"table": "shop"}), csv)
        .await
        .unwrap();
    assert_eq!(
        loaded,
        CsvLoaded {
            table: "public.shop".into(),
            version: 1,
            rows: 3,
            bytes: csv.len() as u64,
            deduplicated: false
        }
    );
    assert_eq!(
        column_types(&mut client, "shop").await,
        [
            "id:Int64",
            "price:Float64",
            "ok:Boolean",
            "day:Date32",
            "at:Timestamp(µs)",
            "at_utc:Timestamp(µs, \"UTC\")",
            "zip:Utf8",
            "name:Utf8"
        ]
    );
    assert_eq!(
        query(&mut client, "SELECT * FROM shop ORDER BY id").await,
        [
            "1|9.5|true|2024-01-05|2024-01-05T10:30:00|2024-01-05T10:30:00Z|02134|Smith, J",
            "2||false|2024-02-29|2024-02-29T23:59:59.123456|2024-02-29T21:59:59Z|10001|two\r\nlines",
            "3|-1000.0|true|||||Ørsted 😀",
        ]
    );
}

#[tokio::test]
async fn a_late_value_widens_its_column_before_commit() {
    let server = TestServer::start();
    let mut client = server.client().await;
    // Far past the first block of records, so inference has settled.
    let mut csv = String::from("n,code,when\n");
    for i in 0..40_000 {
        csv.push_str(&format!("{i},{i},2024-01-01\n"));
    }
    csv.push_str("2.5,A-17,2024-01-01 12:00:00\n");
    let loaded = client
        .put_csv(&json!({"table": "wide"}), chunks(csv.as_bytes(), 64 * 1024))
        .await
        .unwrap();
    assert_eq!(loaded.rows, 40_001);
    assert_eq!(
        column_types(&mut client, "wide").await,
        ["n:Float64", "code:Utf8", "when:Timestamp(µs)"]
    );
    assert_eq!(
        query(
            &mut client,
            "SELECT n, code, \"when\" FROM wide WHERE n > 39998 ORDER BY n"
        )
        .await,
        ["39999.0|39999|2024-01-01T00:00:00"]
    );
    assert_eq!(
        query(
            &mut client,
            "SELECT n, code, \"when\" FROM wide WHERE code = 'A-17'"
        )
        .await,
        ["2.5|A-17|2024-01-01T12:00:00"]
    );
    assert_eq!(
        query(&mut client, "SELECT count(*) FROM table_history('wide')").await,
        ["1"]
    );
}

#[tokio::test]
async fn explicit_columns_win_and_other_dialects_work() {
    let server = TestServer::start();
    let mut client = server.client().await;
    let options = json!({
        "table": "t", "header": false, "delimiter": ";", "quote": "'", "null_values": ["NA"],
        "columns": [{"name": "code", "type": "text"}, {"name": "qty", "type": "int32"},
                    {"name": "price", "type": "decimal(10,2)"}]
    });
    put(&mut client, options, "007;5;1.50\n'a;b';NA;2\n")
        .await
        .unwrap();
    assert_eq!(
        column_types(&mut client, "t").await,
        ["code:Utf8", "qty:Int32", "price:Decimal128(10, 2)"]
    );
    assert_eq!(
        query(&mut client, "SELECT * FROM t ORDER BY code").await,
        ["007|5|1.50", "a;b||2.00"]
    );
    // An explicit type that a value does not fit is an error with its line.
    let options = json!({"table": "u", "columns": [{"name": "qty", "type": "int64"}]});
    let err = put(&mut client, options, "qty\n1\n2\nmany\n")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    assert!(
        message(&err).contains("CSV line 4, column \"qty\": \"many\" is not a valid Int64"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_files_are_refused_with_their_line_and_nothing_is_committed() {
    let server = TestServer::start();
    let mut client = server.client().await;
    put(&mut client, json!({"table": "t"}), "id,name\n1,a\n")
        .await
        .unwrap();
    let cases: [(&[u8], &str); 6] = [
        (
            b"id,name\n2,b\n3\n",
            "CSV line 3: the record has 1 fields where the first record has 2",
        ),
        (
            b"id,name\n2,b\nx,c\n",
            "CSV line 3, column \"id\": \"x\" is not a valid Int64",
        ),
        (
            b"id,name\n2,\"b\xff\"\n",
            "CSV line 2, column \"name\": the field is not valid UTF-8",
        ),
        (b"", "CSV line 1: the upload is empty"),
        (
            b"id,name\n",
            "CSV line 1: the file has a header and no records",
        ),
        (
            b"id,name\n2,\"open\n3,c\n",
            "CSV line 2: a quoted field is not closed",
        ),
    ];
    for (body, expected) in cases {
        let err = client
            .put_csv(&json!({"table": "t", "mode": "append"}), chunks(body, 3))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
        assert!(
            message(&err).contains(expected),
            "{expected:?} not in {err}"
        );
        assert_eq!(
            query(&mut client, "SELECT max(version) FROM table_history('t')").await,
            ["1"]
        );
    }
    assert_eq!(query(&mut client, "SELECT * FROM t").await, ["1|a"]);
    let err = put(
        &mut client,
        json!({"table": "t", "delimeter": ";"}),
        "a\n1\n",
    )
    .await
    .unwrap_err();
    assert!(message(&err).contains("unknown field `delimeter`"), "{err}");
    // The first failure did not leave data files behind to be found later.
    assert_eq!(query(&mut client, "SELECT count(*) FROM t").await, ["1"]);
}

#[tokio::test]
async fn drift_is_refused_unless_evolving() {
    let server = TestServer::start();
    let mut client = server.client().await;
    put(&mut client, json!({"table": "p"}), "id,name,age\n1,a,30\n")
        .await
        .unwrap();
    let err = put(
        &mut client,
        json!({"table": "p", "mode": "append"}),
        "id,name,city\n2,b,Oslo\n",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    let text = message(&err);
    assert!(text.contains("added columns: city (Utf8)"), "{text}");
    assert!(text.contains("missing columns: age (Int64)"), "{text}");
    let err = put(
        &mut client,
        json!({"table": "p", "columns": [{"name": "age", "type": "text"}]}),
        "id,name,age\n2,b,x\n",
    )
    .await
    .unwrap_err();
    assert!(
        message(&err).contains("retyped columns: age (table has Int64, data has Utf8)"),
        "{err}"
    );

    let loaded = put(
        &mut client,
        json!({"table": "p", "evolve": true}),
        "id,name,city\n2,b,Oslo\n",
    )
    .await
    .unwrap();
    assert_eq!(loaded.version, 2);
    assert_eq!(
        query(&mut client, "SELECT * FROM p ORDER BY id").await,
        ["1|a|30|", "2|b||Oslo"]
    );
    assert_eq!(
        query(&mut client, "SELECT * FROM \"p@v1\"").await,
        ["1|a|30"]
    );
    assert_eq!(
        query(&mut client, "SELECT id FROM p WHERE city IS NULL").await,
        ["1"]
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_adds_nothing() {
    let server = TestServer::start();
    let mut client = server.client().await;
    let options = json!({"table": "k", "idempotency_key": "file-1"});
    let first = put(&mut client, options.clone(), "x\n1\n2\n")
        .await
        .unwrap();
    let again = put(&mut client, options, "x\n1\n2\n").await.unwrap();
    assert_eq!(
        (first.version, first.rows, first.deduplicated),
        (1, 2, false)
    );
    assert_eq!(
        (again.version, again.rows, again.deduplicated),
        (1, 2, true)
    );
    assert_eq!(query(&mut client, "SELECT count(*) FROM k").await, ["2"]);
}

#[tokio::test]
async fn an_abandoned_upload_commits_nothing() {
    let server = TestServer::start();
    let mut client = server.client().await;
    put(&mut client, json!({"table": "a"}), "x\n1\n")
        .await
        .unwrap();
    let failing = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"x\n2\n3\n")),
        Err(std::io::Error::other("disk went away")),
    ]);
    let err = client
        .put_csv(&json!({"table": "a"}), failing)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Read(_)), "{err}");
    let mut fresh = server.client().await;
    assert_eq!(query(&mut fresh, "SELECT * FROM a").await, ["1"]);
    assert_eq!(
        query(&mut fresh, "SELECT count(*) FROM table_history('a')").await,
        ["1"]
    );
}
