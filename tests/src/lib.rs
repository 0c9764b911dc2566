//! End-to-end harness: the real `lakehouse` binary, started on port 0
//! against a storage directory, and killed when the handle drops.
//!
//! Readiness is the one line the server prints on stdout once it is bound
//! and its catalog is loaded; no sleeps and no fixed ports. The binary is
//! `$LAKEHOUSE_BIN`, or `lakehouse` beside the test's own target directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use arrow::array::RecordBatch;
use lakehouse_client::Client;

pub use lakehouse_client as client;

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The server binary under test.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LAKEHOUSE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    profile_dir.join("lakehouse")
}

/// A running server; stopped (SIGKILL) on drop.
pub struct TestServer {
    child: Option<Child>,
    pub address: String,
    /// Where `/health`, `/ready` and `/metrics` answer.
    pub http_address: Option<String>,
    pub storage: PathBuf,
    /// Keeps the temporary storage directory alive when the server owns it.
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server on fresh temporary storage.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary storage directory");
        let mut server = Self::start_on(dir.path(), &[]);
        server._dir = Some(dir);
        server
    }

    /// Starts a server on `storage` with extra flags.
    pub fn start_on(storage: &Path, extra: &[&str]) -> Self {
        let binary = server_binary();
        assert!(
            binary.exists(),
            "server binary {} not found: build it with `cargo build -p lakehouse` or set LAKEHOUSE_BIN",
            binary.display()
        );
        let mut child = Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--storage"])
            .arg(storage)
            .args(extra)
            .env(
                "LAKEHOUSE_LOG_FILTER",
                std::env::var("LAKEHOUSE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut http_address = None;
            let address = lines.by_ref().map_while(Result::ok).find_map(|line| {
                if let Some(http) = line.strip_prefix("lakehouse http on ") {
                    http_address = Some(http.to_string());
                }
                line.strip_prefix("lakehouse listening on ")
                    .map(str::to_string)
            });
            let _ = tx.send(address.map(|a| (a, http_address)));
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let (address, http_address) = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(addresses)) => addresses,
            other => {
                let _ = child.kill();
                panic!(
                    "server did not become ready: {other:?} (exit: {:?})",
                    child.wait()
                );
            }
        };
        Self {
            child: Some(child),
            address,
            http_address,
            storage: storage.to_path_buf(),
            _dir: None,
        }
    }

    /// The body of a plain `GET` of `path` on the HTTP port.
    pub async fn http_get(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.http_address.as_deref().expect("the HTTP port is on");
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect to the HTTP port");
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
            .await
            .expect("send the request");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .expect("read the answer");
        answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default()
    }

    /// A gauge or counter of `/metrics` without labels.
    pub async fn metric(&self, name: &str) -> f64 {
        let body = self.http_get("/metrics").await;
        body.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("/metrics has no {name}"))
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.address)
            .await
            .expect("connect to the test server")
    }

    /// Asks the server to stop (SIGTERM) and waits for it to exit, without
    /// blocking the runtime that drives this process's client connections.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("a running server");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        tokio::task::spawn_blocking(move || child.wait().expect("server exit status"))
            .await
            .expect("waiting for the server")
    }

    /// Kills the server without warning (SIGKILL).
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Takes the temporary storage directory so it outlives this server.
    pub fn take_storage(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// All rows of `batches` rendered as text lines, for comparisons.
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| arrow::util::display::array_value_to_string(c, row).expect("displayable"))
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// The server's error message as sent, without the client's escaping.
pub fn message(err: &client::ClientError) -> String {
    err.status()
        .map_or_else(|| err.to_string(), |s| s.message().to_string())
}

/// Total rows over `batches`.
pub fn count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}
