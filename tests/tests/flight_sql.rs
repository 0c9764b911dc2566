//! Every Flight SQL command the server supports, through arrow-flight's Rust
//! Flight SQL client against the real binary.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::FlightDescriptor;
use arrow_flight::sql::{Any, CommandGetPrimaryKeys, CommandStatementQuery, ProstMessageExt};
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, SqlInfo};
use lakehouse_tests::client::{Ingest, IngestMode};
use lakehouse_tests::{TestServer, count, rows};
use prost::Message;
use tonic::Code;

fn people(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new("active", DataType::Boolean, true),
    ]));
    let names: Vec<Option<String>> = ids
        .iter()
        .map(|i| (i % 5 != 0).then(|| format!("p{i}")))
        .collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(
                ids.iter().map(|i| *i as f64 / 2.0).collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(
                ids.iter().map(|i| i % 2 == 0).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn ingest_modes_and_queries() {
    let server = TestServer::start();
    let mut client = server.client().await;

    let written = client
        .ingest(
            Ingest::new("people", IngestMode::Create),
            vec![people(&[1, 2, 3]), people(&[4, 5])],
        )
        .await
        .unwrap();
    assert_eq!(written, 5);
    let err = client
        .ingest(
            Ingest::new("people", IngestMode::Create),
            vec![people(&[9])],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err}");

    client
        .ingest(
            Ingest::new("people", IngestMode::Append),
            vec![people(&[6])],
        )
        .await
        .unwrap();
    client
        .ingest(
            Ingest::new("people", IngestMode::CreateAppend),
            vec![people(&[7])],
        )
        .await
        .unwrap();
    let batches = client
        .query("SELECT count(*) AS n, sum(id) AS s FROM people")
        .await
        .unwrap();
    assert_eq!(rows(&batches), vec!["7|28"]);

    client
        .ingest(
            Ingest::new("people", IngestMode::Replace),
            vec![people(&[10, 20])],
        )
        .await
        .unwrap();
    let batches = client
        .query("SELECT id, name, active FROM people ORDER BY id")
        .await
        .unwrap();
    assert_eq!(rows(&batches), vec!["10||true", "20||true"]);

    let err = client
        .ingest(
            Ingest::new("missing", IngestMode::Append),
            vec![people(&[1])],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
}

#[tokio::test]
async fn strings_leave_as_classic_utf8() {
    let server = TestServer::start();
    let mut client = server.client().await;
    client
        .ingest(
            Ingest::new("people", IngestMode::Create),
            vec![people(&[1, 2])],
        )
        .await
        .unwrap();
    let (schema, batches) = client
        .query_with_schema(
            "SELECT name, upper(name) AS u, arrow_cast('x', 'Utf8View') AS v FROM people",
        )
        .await
        .unwrap();
    for field in schema.fields() {
        assert_eq!(field.data_type(), &DataType::Utf8, "{field:?}");
    }
    for batch in &batches {
        for column in batch.columns() {
            assert_eq!(column.data_type(), &DataType::Utf8);
        }
    }
}

#[tokio::test]
async fn updates_commit_to_the_catalog() {
    let server = TestServer::start();
    let mut client = server.client().await;
    client
        .ingest(
            Ingest::new("people", IngestMode::Create),
            vec![people(&[1, 2, 3, 4])],
        )
        .await
        .unwrap();

    assert_eq!(
        client
            .update("CREATE TABLE evens AS SELECT id, name FROM people WHERE active")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        client
            .update("INSERT INTO evens VALUES (100, 'x'), (101, 'y')")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        client
            .update("INSERT INTO evens SELECT id, name FROM people WHERE id = 1")
            .await
            .unwrap(),
        1
    );
    let batches = client
        .query("SELECT id FROM evens ORDER BY id")
        .await
        .unwrap();
    assert_eq!(rows(&batches), vec!["1", "2", "4", "100", "101"]);

    client
        .update("CREATE TABLE empty_one (a INT, b VARCHAR)")
        .await
        .unwrap();
    assert_eq!(
        count(&client.query("SELECT * FROM empty_one").await.unwrap()),
        0
    );

    client.update("CREATE SCHEMA sales").await.unwrap();
    client
        .update("CREATE TABLE sales.orders AS SELECT 1 AS id")
        .await
        .unwrap();
    assert_eq!(
        rows(&client.query("SELECT id FROM sales.orders").await.unwrap()),
        vec!["1"]
    );
    let err = client.update("CREATE SCHEMA sales").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err}");

    client.update("DROP TABLE evens").await.unwrap();
    let err = client.query("SELECT * FROM evens").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    client.update("DROP TABLE IF EXISTS evens").await.unwrap();
    let err = client.update("DROP TABLE evens").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");

    let err = client
        .update("CREATE TABLE people AS SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err}");
    client
        .update("CREATE TABLE IF NOT EXISTS people AS SELECT 1")
        .await
        .unwrap();
    client
        .update("CREATE OR REPLACE TABLE people AS SELECT 7 AS only")
        .await
        .unwrap();
    assert_eq!(
        rows(&client.query("SELECT * FROM people").await.unwrap()),
        vec!["7"]
    );

    assert_eq!(client.update("DELETE FROM people").await.unwrap(), 1);
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM people").await.unwrap()),
        vec!["0"]
    );
    let err = client
        .update("CREATE TEMPORARY VIEW v AS SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::Unimplemented), "{err}");
}

#[tokio::test]
async fn an_update_sent_as_a_query_runs_once_and_reports_its_rows() {
    let server = TestServer::start();
    let mut client = server.client().await;
    let batches = client
        .query("CREATE TABLE t AS SELECT * FROM (VALUES (1), (2)) AS v(a)")
        .await
        .unwrap();
    assert_eq!(rows(&batches), vec!["2"]);
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM t").await.unwrap()),
        vec!["2"]
    );
}

#[tokio::test]
async fn prepared_statements_bind_parameters() {
    let server = TestServer::start();
    let mut client = server.client().await;
    client
        .ingest(
            Ingest::new("people", IngestMode::Create),
            vec![people(&[1, 2, 3, 4, 5, 6])],
        )
        .await
        .unwrap();

    // As the JDBC driver does it: every query prepared, dataset schema read first.
    let mut statement = client
        .prepare("SELECT id, name FROM people WHERE id > $1 AND active = ? ORDER BY id")
        .await
        .unwrap();
    let dataset = statement.dataset_schema().unwrap().clone();
    assert_eq!(dataset.fields().len(), 2);
    assert_eq!(dataset.field(0).data_type(), &DataType::Int64);
    let parameters = statement.parameter_schema().unwrap().clone();
    assert_eq!(parameters.fields().len(), 2);
    assert_eq!(parameters.field(0).data_type(), &DataType::Int64);
    assert_eq!(parameters.field(1).data_type(), &DataType::Boolean);

    // Two parameter rows run in turn, results concatenated.
    let bind = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("$1", DataType::Int64, false),
            Field::new("$2", DataType::Boolean, false),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![3, 0])),
            Arc::new(BooleanArray::from(vec![true, false])),
        ],
    )
    .unwrap();
    statement.set_parameters(bind).unwrap();
    let info = statement.execute().await.unwrap();
    let batches = client.fetch(info).await.unwrap();
    assert_eq!(rows(&batches), vec!["4|p4", "6|p6", "1|p1", "3|p3", "5|"]);

    // A parameter of another integer width is cast to what the plan expects.
    let mut statement = client
        .prepare("SELECT count(*) FROM people WHERE id <= ?")
        .await
        .unwrap();
    let bind = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("p", DataType::Int32, false)])),
        vec![Arc::new(arrow::array::Int32Array::from(vec![2]))],
    )
    .unwrap();
    statement.set_parameters(bind).unwrap();
    let batches = client
        .fetch(statement.execute().await.unwrap())
        .await
        .unwrap();
    assert_eq!(rows(&batches), vec!["2"]);
    statement.close().await.unwrap();

    // An update prepared has an empty dataset schema and runs as an update.
    let mut insert = client
        .prepare("INSERT INTO people (id, name) VALUES ($1, $2)")
        .await
        .unwrap();
    assert!(insert.dataset_schema().unwrap().fields().is_empty());
    let bind = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("$1", DataType::Int64, false),
            Field::new("$2", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![70, 71])),
            Arc::new(StringArray::from(vec!["a", "b"])),
        ],
    )
    .unwrap();
    insert.set_parameters(bind).unwrap();
    assert_eq!(insert.execute_update().await.unwrap(), 2);
    let batches = client
        .query("SELECT name FROM people WHERE id >= 70 ORDER BY id")
        .await
        .unwrap();
    assert_eq!(rows(&batches), vec!["a", "b"]);
}

#[tokio::test]
async fn metadata_commands_answer() {
    let server = TestServer::start();
    let mut client = server.client().await;
    client
        .ingest(
            Ingest::new("people", IngestMode::Create),
            vec![people(&[1])],
        )
        .await
        .unwrap();
    client.update("CREATE SCHEMA sales").await.unwrap();
    client
        .update("CREATE TABLE sales.orders AS SELECT 1 AS id")
        .await
        .unwrap();
    let sql = client.flight_sql();

    let info = sql.get_catalogs().await.unwrap();
    let catalogs = client.fetch(info).await.unwrap();
    assert_eq!(rows(&catalogs), vec!["lakehouse"]);

    let info = client
        .flight_sql()
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: Some("sal%".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        rows(&client.fetch(info).await.unwrap()),
        vec!["lakehouse|sales"]
    );

    let info = client
        .flight_sql()
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: Some("%e%".into()),
            table_types: vec!["TABLE".into()],
            include_schema: true,
        })
        .await
        .unwrap();
    let tables = client.fetch(info).await.unwrap();
    assert_eq!(count(&tables), 2);
    assert_eq!(
        rows(&[tables[0].project(&[0, 1, 2, 3]).unwrap()]),
        vec![
            "lakehouse|public|people|TABLE",
            "lakehouse|sales|orders|TABLE"
        ]
    );
    let schema_column = tables[0]
        .column_by_name("table_schema")
        .expect("include_schema");
    let people_schema = arrow::ipc::convert::try_schema_from_ipc_buffer(
        schema_column
            .as_any()
            .downcast_ref::<arrow::array::BinaryArray>()
            .unwrap()
            .value(0),
    )
    .unwrap();
    assert_eq!(people_schema.field(1).name(), "name");

    let info = client.flight_sql().get_table_types().await.unwrap();
    assert_eq!(
        rows(&client.fetch(info).await.unwrap()),
        vec!["TABLE", "VIEW"]
    );

    let info = client
        .flight_sql()
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::SqlIdentifierQuoteChar,
        ])
        .await
        .unwrap();
    assert_eq!(count(&client.fetch(info).await.unwrap()), 2);
    let info = client.flight_sql().get_sql_info(vec![]).await.unwrap();
    assert!(count(&client.fetch(info).await.unwrap()) > 80);

    let info = client
        .flight_sql()
        .get_xdbc_type_info(Default::default())
        .await
        .unwrap();
    let types = client.fetch(info).await.unwrap();
    let names: Vec<String> = types
        .iter()
        .flat_map(|batch| {
            let names = batch
                .column_by_name("type_name")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            names
                .iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    for name in [
        "DECIMAL",
        "TIMESTAMP WITH TIME ZONE",
        "INTERVAL",
        "ARRAY",
        "STRUCT",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }

    let info = client
        .flight_sql()
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "people".into(),
        })
        .await
        .unwrap();
    assert_eq!(count(&client.fetch(info).await.unwrap()), 0);
    let info = client
        .flight_sql()
        .get_exported_keys(arrow_flight::sql::CommandGetExportedKeys {
            catalog: None,
            db_schema: None,
            table: "people".into(),
        })
        .await
        .unwrap();
    assert_eq!(count(&client.fetch(info).await.unwrap()), 0);
}

#[tokio::test]
async fn get_schema_and_poll_flight_info_are_served() {
    let server = TestServer::start();
    let mut client = server.client().await;
    client
        .ingest(
            Ingest::new("people", IngestMode::Create),
            vec![people(&[1])],
        )
        .await
        .unwrap();
    let command = CommandStatementQuery {
        query: "SELECT id, name FROM people".into(),
        transaction_id: None,
    };
    let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    let result = client
        .flight_sql()
        .inner_mut()
        .get_schema(descriptor.clone())
        .await
        .unwrap()
        .into_inner();
    let schema = Schema::try_from(&result).unwrap();
    assert_eq!(schema.fields().len(), 2);
    let poll = client
        .flight_sql()
        .inner_mut()
        .poll_flight_info(descriptor)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(poll.progress, Some(1.0));
    assert!(poll.info.is_some());
}

#[tokio::test]
async fn bad_requests_get_their_codes_and_the_server_keeps_serving() {
    let server = TestServer::start();
    let mut client = server.client().await;
    client
        .ingest(
            Ingest::new("people", IngestMode::Create),
            vec![people(&[1, 2])],
        )
        .await
        .unwrap();

    let err = client.query("SELEC nonsense").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    assert!(err.to_string().contains("parse"), "{err}");

    let err = client.query("SELECT * FROM nope").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    assert!(err.to_string().contains("public.nope"), "{err}");

    let err = client.query("SELECT nope FROM people").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");

    for refused in [
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc'",
        "COPY (SELECT 1) TO '/tmp/out.csv'",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM 'data/public/people/x.parquet'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let err = client.query(refused).await.unwrap_err();
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{refused}: {err}");
        assert!(err.to_string().contains("disabled"), "{refused}: {err}");
    }

    let drift = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("extra", DataType::Int64, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(Int64Array::from(vec![1])),
        ],
    )
    .unwrap();
    let err = client
        .ingest(Ingest::new("people", IngestMode::Append), vec![drift])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("added columns: extra") && text.contains("missing columns: name"),
        "{text}"
    );
    assert!(text.contains("retyped columns: id"), "{text}");

    let ticket = arrow_flight::Ticket::new(b"\x0a\x03bad".to_vec());
    let err = client
        .flight_sql()
        .do_get(ticket)
        .await
        .expect_err("a malformed ticket is refused");
    let status = match err {
        arrow_flight::error::FlightError::Tonic(status) => status,
        other => panic!("{other}"),
    };
    assert_ne!(status.code(), Code::Ok);
    assert_ne!(status.code(), Code::Internal, "{status}");

    let foreign = arrow_flight::sql::TicketStatementQuery {
        statement_handle: b"not json".to_vec().into(),
    };
    let ticket = arrow_flight::Ticket::new(foreign.as_any().encode_to_vec());
    match client.flight_sql().do_get(ticket).await {
        Err(arrow_flight::error::FlightError::Tonic(status)) => {
            assert_eq!(status.code(), Code::InvalidArgument)
        }
        Err(other) => panic!("{other}"),
        Ok(stream) => {
            let result: Result<Vec<_>, _> = futures::TryStreamExt::try_collect(stream).await;
            assert!(result.is_err());
        }
    }

    let any = Any {
        type_url: "type.googleapis.com/unknown".into(),
        value: vec![].into(),
    };
    let err = client
        .flight_sql()
        .do_get(arrow_flight::Ticket::new(any.encode_to_vec()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("unknown"), "{err}");

    // After all of that, the server still answers.
    assert_eq!(
        rows(&client.query("SELECT count(*) FROM people").await.unwrap()),
        vec!["2"]
    );
}

#[tokio::test]
async fn overwrite_information_schema_and_statistics() {
    let server = TestServer::start();
    let mut client = server.client().await;
    client
        .ingest(
            Ingest::new("people", IngestMode::Create),
            vec![people(&[1, 2, 3])],
        )
        .await
        .unwrap();

    assert_eq!(
        client
            .update("INSERT OVERWRITE people SELECT * FROM people WHERE id = 2")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        rows(&client.query("SELECT id FROM people").await.unwrap()),
        vec!["2"]
    );

    let tables = client
        .query("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = 'public'")
        .await
        .unwrap();
    assert_eq!(rows(&tables), vec!["public|people"]);
    let shown = client.query("SHOW TABLES").await.unwrap();
    assert!(
        rows(&shown).iter().any(|r| r.contains("|people|")),
        "{:?}",
        rows(&shown)
    );

    // Row counts come from the manifest: COUNT(*) needs no scan.
    let plan = client
        .query("EXPLAIN SELECT count(*) FROM people")
        .await
        .unwrap();
    let text = rows(&plan).join("\n");
    assert!(!text.contains("DataSourceExec"), "{text}");
}

#[tokio::test]
async fn manifest_statistics_prune_whole_files() {
    let server = TestServer::start();
    let mut client = server.client().await;
    for k in 0..3 {
        let ids: Vec<i64> = (k * 100..k * 100 + 100).collect();
        client
            .ingest(
                Ingest::new("people", IngestMode::CreateAppend),
                vec![people(&ids)],
            )
            .await
            .unwrap();
    }
    let plan = client
        .query("EXPLAIN ANALYZE SELECT count(*) FROM people WHERE id >= 250")
        .await
        .unwrap();
    let text = rows(&plan).join("\n");
    assert!(
        text.contains("files_ranges_pruned_statistics=3 total → 1 matched"),
        "{text}"
    );
    let counted = client
        .query("SELECT count(*), min(name), max(id) FROM people WHERE id >= 250")
        .await
        .unwrap();
    assert_eq!(rows(&counted), vec!["50|p251|299"]);
}

/// A small query is answered in one round trip, not held back by Nagle's
/// algorithm until the client's delayed ACK (40 ms, twice per query, before
/// the server set TCP_NODELAY on accepted connections). The bound leaves
/// ten times a debug build's own time per query and is still below one
/// delayed ACK.
#[tokio::test]
async fn small_queries_do_not_wait_for_delayed_acks() {
    let server = TestServer::start();
    let mut client = server.client().await;
    client.query("SELECT 1").await.unwrap();
    let mut times = Vec::new();
    for _ in 0..9 {
        let started = std::time::Instant::now();
        client.query("SELECT 1").await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < std::time::Duration::from_millis(35),
        "SELECT 1 took {median:?} (median of 9): small answers wait for delayed ACKs"
    );
}

/// The Substrait plan DataFusion's producer makes of `sql` over tables of
/// the given names and rows, as a client building plans would send it.
async fn substrait_command(
    sql: &str,
    tables: &[(&str, RecordBatch)],
) -> arrow_flight::sql::CommandStatementSubstraitPlan {
    use arrow_flight::sql::{CommandStatementSubstraitPlan, SubstraitPlan};
    use datafusion::prelude::SessionContext;
    use datafusion_substrait::logical_plan::producer::to_substrait_plan;

    let producer = SessionContext::new();
    for (name, batch) in tables {
        producer.register_batch(*name, batch.clone()).unwrap();
    }
    let plan = producer
        .sql(sql)
        .await
        .unwrap()
        .into_optimized_plan()
        .unwrap();
    let plan = to_substrait_plan(&plan, &producer.state()).unwrap();
    CommandStatementSubstraitPlan {
        plan: Some(SubstraitPlan {
            plan: plan.encode_to_vec().into(),
            version: "0.85.0".into(),
        }),
        transaction_id: None,
    }
}

/// A Substrait plan runs like the SQL it was made from (order included,
/// through GetFlightInfo, PollFlightInfo and GetSchema); a plan naming a
/// table the catalog does not have fails as SQL would.
#[tokio::test]
async fn substrait_plans_run_like_sql() {
    let server = TestServer::start();
    let mut client = server.client().await;
    client
        .ingest(
            Ingest::new("people", IngestMode::Create),
            vec![people(&[1, 2, 3, 4, 5, 6])],
        )
        .await
        .unwrap();
    let sql = "SELECT active, count(*) AS n, sum(score) AS total FROM people \
               WHERE id > 1 GROUP BY active ORDER BY active DESC";
    let command = substrait_command(sql, &[("people", people(&[]))]).await;
    let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    let info = client
        .flight_sql()
        .inner_mut()
        .get_flight_info(descriptor.clone())
        .await
        .unwrap()
        .into_inner();
    let from_plan = rows(&client.fetch(info).await.unwrap());
    assert_eq!(from_plan, rows(&client.query(sql).await.unwrap()));
    assert_eq!(from_plan, vec!["true|3|6.0", "false|2|4.0"]);

    let polled = client
        .flight_sql()
        .inner_mut()
        .poll_flight_info(descriptor.clone())
        .await
        .unwrap()
        .into_inner();
    let info = polled
        .info
        .expect("a short query answers in its first poll");
    assert_eq!(rows(&client.fetch(info).await.unwrap()), from_plan);

    let schema = client
        .flight_sql()
        .inner_mut()
        .get_schema(descriptor)
        .await
        .unwrap()
        .into_inner();
    let schema = Schema::try_from(&schema).unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["active", "n", "total"]);

    let missing = substrait_command("SELECT id FROM nobody", &[("nobody", people(&[]))]).await;
    let refused = client
        .flight_sql()
        .inner_mut()
        .get_flight_info(FlightDescriptor::new_cmd(missing.as_any().encode_to_vec()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused}");
    assert!(refused.message().contains("nobody"), "{refused}");
}
