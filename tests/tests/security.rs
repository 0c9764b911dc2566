//! Authentication, roles and TLS through the Rust Flight SQL client.
//!
//! Users and tokens are made with the real `lakehouse user add` and
//! `lakehouse token add`; the certificate is generated in the test.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use lakehouse_tests::client::{Client, ConnectOptions, Credentials, Ingest, IngestMode};
use lakehouse_tests::{TestServer, server_binary};
use tonic::Code;

/// Runs `lakehouse ARGS` with `stdin`; returns stdout and stderr.
fn lakehouse(args: &[&str], stdin: &str) -> (String, String) {
    let mut child = Command::new(server_binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lakehouse");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A config with reader `bob` (password "hunter2") and writer token
/// `loader`; returns the token.
fn write_config(path: &Path) -> String {
    let (bob, _) = lakehouse(
        &["user", "add", "bob", "--role", "reader", "--password-stdin"],
        "hunter2\n",
    );
    let (loader, shown) = lakehouse(&["token", "add", "loader", "--role", "writer"], "");
    let token = shown.rsplit(": ").next().unwrap().trim().to_string();
    std::fs::write(path, format!("{bob}\n{loader}")).unwrap();
    token
}

fn numbers() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap()
}

async fn connect(server: &TestServer, credentials: Option<Credentials>) -> Client {
    let options = ConnectOptions {
        credentials,
        ..Default::default()
    };
    Client::connect_with(&server.address, &options)
        .await
        .expect("connect")
}

#[tokio::test]
async fn logins_tokens_and_roles_from_the_rust_client() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lakehouse.toml");
    let token = write_config(&config);
    let server = TestServer::start_on(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );

    let refused = connect(&server, None).await.query("SELECT 1").await;
    assert_eq!(refused.unwrap_err().code(), Some(Code::Unauthenticated));
    let wrong = ConnectOptions {
        credentials: Some(Credentials::Password {
            user: "bob".into(),
            password: "hunter3".into(),
        }),
        ..Default::default()
    };
    let refused = Client::connect_with(&server.address, &wrong).await;
    assert_eq!(refused.unwrap_err().code(), Some(Code::Unauthenticated));

    let mut loader = connect(&server, Some(Credentials::Token(token))).await;
    let written = loader
        .ingest(Ingest::new("nums", IngestMode::Create), vec![numbers()])
        .await
        .unwrap();
    assert_eq!(written, 3);
    let denied = loader.update("DROP TABLE nums").await.unwrap_err();
    assert_eq!(denied.code(), Some(Code::PermissionDenied), "{denied}");

    let mut bob = connect(
        &server,
        Some(Credentials::Password {
            user: "bob".into(),
            password: "hunter2".into(),
        }),
    )
    .await;
    let sum = bob.query("SELECT sum(n) AS s FROM nums").await.unwrap();
    assert_eq!(lakehouse_tests::rows(&sum), vec!["6"]);
    let denied = bob
        .ingest(Ingest::new("nums", IngestMode::Append), vec![numbers()])
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Some(Code::PermissionDenied), "{denied}");
    let denied = bob.update("CREATE TABLE copy AS SELECT * FROM nums").await;
    assert_eq!(denied.unwrap_err().code(), Some(Code::PermissionDenied));
}

#[tokio::test]
async fn tls_from_the_rust_client() {
    let dir = tempfile::tempdir().unwrap();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = generated.cert.pem();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).unwrap();
    let server = TestServer::start_on(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let options = ConnectOptions {
        tls_ca_pem: Some(cert.into_bytes()),
        ..Default::default()
    };
    let mut client = Client::connect_with(&server.address, &options)
        .await
        .unwrap();
    let answer = client.query("SELECT 40 + 2 AS a").await.unwrap();
    assert_eq!(lakehouse_tests::rows(&answer), vec!["42"]);
    // Logging in to a server without authentication is harmless.
    let with_login = ConnectOptions {
        credentials: Some(Credentials::Password {
            user: "anyone".into(),
            password: "anything".into(),
        }),
        ..options.clone()
    };
    let mut client = Client::connect_with(&server.address, &with_login)
        .await
        .unwrap();
    assert_eq!(
        lakehouse_tests::rows(&client.query("SELECT 1").await.unwrap()),
        vec!["1"]
    );
    let plain = Client::connect(&server.address).await;
    let refused = match plain {
        Ok(mut client) => client.query("SELECT 1").await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(refused.is_err(), "a plain-text client was served over TLS");
}
