//! The `lakehouse sql`, `put` and `history` commands against a running
//! server, and `lakehouse config show`, as a person or a script would run
//! them.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use lakehouse_tests::{TestServer, server_binary};

fn lakehouse(server: &TestServer, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(server_binary())
        .args(args)
        .env("LAKEHOUSE_SERVER", &server.address)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn put_sql_and_history_from_the_command_line() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.csv");
    std::fs::write(&file, "id,name,zip\n1,Ann,02134\n2,\"Bo, B\",10001\n").unwrap();
    let file = file.to_str().unwrap();

    let put = stdout(&lakehouse(
        &server,
        &["put", file, "--table", "people", "--column", "zip:text"],
        None,
    ));
    assert!(
        put.starts_with("public.people: version 1, 2 rows, 40 bytes in "),
        "{put}"
    );

    let again = lakehouse(
        &server,
        &["put", "-", "--table", "people", "--json"],
        Some(b"id,name,zip\n3,Cy,00501\n"),
    );
    let loaded: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(loaded["version"], 2);
    assert_eq!(loaded["rows"], 1);

    let table = stdout(&lakehouse(
        &server,
        &["sql", "SELECT id, name, zip FROM people ORDER BY id"],
        None,
    ));
    assert_eq!(
        table,
        "+----+-------+-------+\n\
         | id | name  | zip   |\n\
         +----+-------+-------+\n\
         | 1  | Ann   | 02134 |\n\
         | 2  | Bo, B | 10001 |\n\
         | 3  | Cy    | 00501 |\n\
         +----+-------+-------+\n\
         (3 rows)\n"
    );
    let csv = stdout(&lakehouse(
        &server,
        &[
            "sql",
            "SELECT * FROM people WHERE id < 3 ORDER BY id",
            "--format",
            "csv",
        ],
        None,
    ));
    assert_eq!(csv, "id,name,zip\n1,Ann,02134\n2,\"Bo, B\",10001\n");
    let json = stdout(&lakehouse(
        &server,
        &[
            "sql",
            "SELECT id FROM people ORDER BY id",
            "--format",
            "json",
        ],
        None,
    ));
    assert_eq!(json.trim(), r#"[{"id":1},{"id":2},{"id":3}]"#);
    let arrow = lakehouse(
        &server,
        &["sql", "SELECT id FROM people", "--format", "arrow"],
        None,
    );
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.stdout), None)
            .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3);

    let history = stdout(&lakehouse(
        &server,
        &["history", "people", "--format", "csv"],
        None,
    ));
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(
        lines[0],
        "version,committed_at,operation,rows_added,rows_removed,total_rows,bytes,idempotency_key,committed_by"
    );
    assert!(
        lines[1].starts_with("1,") && lines[1].contains(",create,2,0,2,"),
        "{history}"
    );
    assert!(
        lines[2].starts_with("2,") && lines[2].contains(",append,1,0,3,"),
        "{history}"
    );

    let bad = lakehouse(
        &server,
        &["put", "-", "--table", "people"],
        Some(b"id,name,zip\n4\n"),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "lakehouse: InvalidArgument: CSV line 2: the record has 1 fields where the first record has 3\n"
    );
    let missing = lakehouse(&server, &["sql", "SELECT * FROM nobody"], None);
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .starts_with("lakehouse: NotFound: table public.nobody does not exist")
    );
}

#[test]
fn config_show_prints_every_setting_in_effect_and_where_a_file_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lakehouse.toml");
    std::fs::write(
        &file,
        "storage = \"/srv/lake\"\nlisten = \"0.0.0.0:9000\"\n\n[[auth.users]]\nname = \"ann\"\nrole = \"admin\"\npassword_hash = \"$argon2id$v=19$secret\"\n",
    )
    .unwrap();
    let shown = Command::new(server_binary())
        .args(["config", "show", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .env("LAKEHOUSE_ROW_GROUP_ROWS", "1000")
        .output()
        .unwrap();
    let text = String::from_utf8(shown.stdout.clone()).unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    for line in [
        "listen = \"127.0.0.1:0\"",
        "storage = \"/srv/lake\"",
        "row_group_rows = 1000",
        "log_filter = \"info\"",
        "http_listen = \"127.0.0.1:0\"",
        "# Address to serve Flight SQL on, e.g. 0.0.0.0:50051; port 0 picks a free port",
        "# [auth]: 1 users, 0 API tokens (not shown)",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }
    assert!(
        !text.contains("argon2"),
        "a password hash was printed:\n{text}"
    );

    std::fs::write(&file, "row_group_rows = 1000\nlisen = \"x\"\n").unwrap();
    let refused = Command::new(server_binary())
        .args(["config", "show", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("lakehouse.toml") && message.contains("lisen"),
        "{message}"
    );
}
