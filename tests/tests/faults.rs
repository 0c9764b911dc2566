//! Proof that nothing is lost: the server SIGKILLed at random moments during
//! uploads and appends, and many writers racing readers on one table.
//!
//! Every write adds one batch of `BATCH` rows whose ids are `k * BATCH ..
//! (k + 1) * BATCH` for a batch number `k` no other write uses, so a read
//! can tell a complete batch from a partial one, a lost batch from a
//! duplicated one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::{Array, FixedSizeListArray, Float32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use lakehouse_tests::client::{Client, Ingest, IngestMode};
use lakehouse_tests::{TestServer, rows};
use parking_lot::Mutex;

const BATCH: u64 = 1000;

fn batch(k: u64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let ids = Int64Array::from_iter_values((k * BATCH) as i64..((k + 1) * BATCH) as i64);
    RecordBatch::try_new(schema, vec![Arc::new(ids)]).unwrap()
}

fn csv(k: u64) -> bytes::Bytes {
    let mut text = String::from("id\n");
    for id in k * BATCH..(k + 1) * BATCH {
        text.push_str(&format!("{id}\n"));
    }
    text.into()
}

/// Writes batch `k` by Arrow ingest (even `k`) or CSV upload (odd `k`).
/// What the writers of a kill loop write.
#[derive(Debug, Clone, Copy)]
enum Writes {
    /// Arrow and CSV appends, alternately, to a Parquet table.
    ArrowAndCsv,
    /// Arrow appends with an embedding column, to a vector table.
    Vectors,
}

/// Appends batch `k`; false when the write failed (the server was killed).
async fn write(client: &mut Client, writes: Writes, k: u64) -> bool {
    let appended = match writes {
        Writes::Vectors => {
            client
                .ingest(Ingest::new("t", IngestMode::Append), vec![vector_batch(k)])
                .await
        }
        Writes::ArrowAndCsv if k.is_multiple_of(2) => {
            client
                .ingest(Ingest::new("t", IngestMode::Append), vec![batch(k)])
                .await
        }
        Writes::ArrowAndCsv => {
            let body = futures::stream::iter([Ok(csv(k))]);
            client
                .put_csv(&serde_json::json!({"table": "t", "mode": "append"}), body)
                .await
                .map(|_| 0)
        }
    };
    appended.is_ok()
}

/// The seed of a kill loop's random moments: `LAKEHOUSE_FAULT_SEED`, or
/// the clock (printed, so that a failing run can be repeated).
fn fault_seed() -> XorShift {
    let seed = std::env::var("LAKEHOUSE_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("fault seed {seed} (LAKEHOUSE_FAULT_SEED repeats it)");
    XorShift(seed)
}

/// Table `t` created on `dir` with batch 0, then `runs` times: a server
/// started on `dir`, the table checked as it sees it, `writers` writers appending fresh batches until a write fails, and
/// the server SIGKILLed at a random moment of the writes. Returns the
/// batches acknowledged, the first (`0`, written before) included.
async fn kill_during_writes(
    dir: &std::path::Path,
    writes: Writes,
    runs: usize,
    writers: u64,
    checked: &mut u64,
) -> BTreeSet<u64> {
    {
        let server = TestServer::start_on(dir, &[]);
        let first = match writes {
            Writes::ArrowAndCsv => batch(0),
            Writes::Vectors => vector_batch(0),
        };
        server
            .client()
            .await
            .ingest(Ingest::new("t", IngestMode::Create), vec![first])
            .await
            .unwrap();
        server.kill();
    }
    let mut random = fault_seed();
    let next_batch = Arc::new(AtomicU64::new(1));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::from([0])));
    for run in 0..runs {
        let server = TestServer::start_on(dir, &[]);
        let mut checker = server.client().await;
        let snapshot = acknowledged.lock().clone();
        let present = check_table(&mut checker, &snapshot, checked).await;
        assert!(present.len() >= snapshot.len());
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let mut client = server.client().await;
            let (next_batch, acknowledged) = (next_batch.clone(), acknowledged.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let k = next_batch.fetch_add(1, Ordering::Relaxed);
                    if !write(&mut client, writes, k).await {
                        return;
                    }
                    acknowledged.lock().insert(k);
                }
            }));
        }
        // The fault: SIGKILL at a random moment of the writes. Writers
        // stop only on a failed write, so each kill cuts writes short.
        tokio::time::sleep(Duration::from_millis(random.below(400))).await;
        server.kill();
        for task in tasks {
            task.await.unwrap();
        }
        eprintln!(
            "{writes:?} run {run}: {} batches acknowledged so far",
            acknowledged.lock().len()
        );
    }
    acknowledged.lock().clone()
}

/// A small deterministic generator, so that a failing run can be repeated
/// with its seed.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn one(batches: &[RecordBatch]) -> String {
    rows(batches).into_iter().next().unwrap_or_default()
}

/// Checks the table as a restarted server sees it: every batch whole and
/// once, every acknowledged batch there, every version after `checked`
/// readable with the row count its history records (`checked` moves to the
/// newest). Returns the batches present.
async fn check_table(
    client: &mut Client,
    acknowledged: &BTreeSet<u64>,
    checked: &mut u64,
) -> BTreeSet<u64> {
    let counts = one(&client
        .query("SELECT count(*), count(DISTINCT id) FROM t")
        .await
        .unwrap());
    let (total, distinct) = counts.split_once('|').unwrap();
    assert_eq!(total, distinct, "duplicated rows");
    let partial = client
        .query(&format!(
            "SELECT id / {BATCH} AS k, count(*) FROM t GROUP BY 1 HAVING count(*) <> {BATCH}"
        ))
        .await
        .unwrap();
    assert!(
        rows(&partial).is_empty(),
        "partial batches: {:?}",
        rows(&partial)
    );
    let present: BTreeSet<u64> = rows(
        &client
            .query(&format!("SELECT DISTINCT id / {BATCH} FROM t"))
            .await
            .unwrap(),
    )
    .iter()
    .map(|k| k.parse().unwrap())
    .collect();
    let lost: Vec<_> = acknowledged.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged batches lost: {lost:?}");
    for line in rows(
        &client
            .query(&format!(
                "SELECT version, total_rows FROM table_history('t') WHERE version > {checked}"
            ))
            .await
            .unwrap(),
    ) {
        let (version, expected) = line.split_once('|').unwrap();
        *checked = (*checked).max(version.parse().unwrap());
        let read = one(&client
            .query(&format!("SELECT count(*) FROM \"t@v{version}\""))
            .await
            .unwrap());
        assert_eq!(read, expected, "version {version} reads back differently");
    }
    present
}

#[tokio::test]
async fn fifty_kills_during_uploads_and_appends_lose_nothing_and_show_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let snapshot = kill_during_writes(dir.path(), Writes::ArrowAndCsv, 50, 3, &mut checked).await;

    let server = TestServer::start_on(dir.path(), &[]);
    let mut client = server.client().await;
    let present = check_table(&mut client, &snapshot, &mut checked).await;
    let total_before = one(&client.query("SELECT count(*) FROM t").await.unwrap());
    // Orphans (data files of uploads the kills cut short) go with vacuum;
    // every version stays readable.
    let vacuum = r#"{"table": "t", "retain_hours": 100000, "min_file_age_secs": 0}"#;
    let report: serde_json::Value =
        serde_json::from_slice(&client.action("vacuum", vacuum).await.unwrap()).unwrap();
    assert_eq!(report["versions_removed"], 0, "{report}");
    assert!(report["files_removed"].as_u64().unwrap() >= 1, "{report}");
    eprintln!("vacuum after 50 kills: {report}");
    let again: serde_json::Value =
        serde_json::from_slice(&client.action("vacuum", vacuum).await.unwrap()).unwrap();
    assert_eq!(again["files_removed"], 0, "{again}");
    // After vacuum, every version from the first is read again.
    assert_eq!(check_table(&mut client, &snapshot, &mut 0).await, present);
    assert_eq!(
        one(&client.query("SELECT count(*) FROM t").await.unwrap()),
        total_before
    );
    let leftovers: Vec<_> = walk(&dir.path().join("data"))
        .into_iter()
        .filter(|p| p.contains('#'))
        .collect();
    assert!(leftovers.is_empty(), "unfinished parts left: {leftovers:?}");
}

/// Batch `k` with an embedding column: a vector table (a Lance dataset).
fn vector_batch(k: u64) -> RecordBatch {
    let ids = batch(k);
    let values = Float32Array::from_iter_values((0..BATCH * 4).map(|i| (k * 4 + i % 4) as f32));
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let emb = FixedSizeListArray::try_new(item, 4, Arc::new(values), None).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("emb", emb.data_type().clone(), true),
    ]));
    RecordBatch::try_new(schema, vec![ids.column(0).clone(), Arc::new(emb)]).unwrap()
}

#[tokio::test]
async fn twenty_kills_during_vector_table_appends_lose_nothing_and_show_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let snapshot = kill_during_writes(dir.path(), Writes::Vectors, 20, 2, &mut checked).await;
    let server = TestServer::start_on(dir.path(), &[]);
    let mut client = server.client().await;
    check_table(&mut client, &snapshot, &mut checked).await;
    // A write after the kills lands on the committed version, never on
    // what a killed write left in the dataset.
    client
        .ingest(
            Ingest::new("t", IngestMode::Append),
            vec![vector_batch(1 << 20)],
        )
        .await
        .unwrap();
    let mut with_last = snapshot.clone();
    with_last.insert(1 << 20);
    check_table(&mut client, &with_last, &mut checked).await;
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn sixteen_writers_and_eight_readers_lose_and_duplicate_nothing() {
    const WRITERS: u64 = 16;
    const APPENDS: u64 = 50;
    let server = TestServer::start();
    let mut client = server.client().await;
    client
        .ingest(Ingest::new("t", IngestMode::Create), vec![batch(0)])
        .await
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..8 {
        let mut client = server.client().await;
        let done = done.clone();
        readers.push(tokio::spawn(async move {
            let (mut reads, mut last) = (0u64, 0u64);
            while !done.load(Ordering::Acquire) {
                let line = one(&client
                    .query(&format!(
                        "SELECT count(*), count(DISTINCT id), count(DISTINCT id / {BATCH}) FROM t"
                    ))
                    .await
                    .unwrap());
                let numbers: Vec<u64> = line.split('|').map(|n| n.parse().unwrap()).collect();
                // A committed version: whole batches, each once, never fewer
                // than this reader saw before.
                assert_eq!(numbers[0], numbers[1], "duplicated rows: {line}");
                assert_eq!(numbers[0], numbers[2] * BATCH, "partial batch: {line}");
                assert!(numbers[0] >= last, "went back from {last} to {line}");
                last = numbers[0];
                reads += 1;
            }
            reads
        }));
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut client = server.client().await;
        writers.push(tokio::spawn(async move {
            for a in 0..APPENDS {
                let k = 1 + w * APPENDS + a;
                assert!(
                    write(&mut client, Writes::ArrowAndCsv, k).await,
                    "append of batch {k} failed"
                );
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::Release);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.unwrap();
    }
    let total = (1 + WRITERS * APPENDS) * BATCH;
    assert_eq!(
        one(&client
            .query("SELECT count(*), count(DISTINCT id) FROM t")
            .await
            .unwrap()),
        format!("{total}|{total}")
    );
    // One version per append, plus those of background compactions (the
    // appends are small files), numbered without a gap.
    assert_eq!(
        one(&client
            .query(
                "SELECT count(*) FILTER (WHERE operation = 'append'), count(*) - max(version), \
                        count(*) FILTER (WHERE operation NOT IN ('create', 'append', 'compact')), \
                        count(*) FILTER (WHERE operation = 'compact') > 0 \
                        FROM table_history('t')"
            )
            .await
            .unwrap()),
        format!("{}|0|0|true", WRITERS * APPENDS)
    );
    eprintln!(
        "{} appends by {WRITERS} writers while 8 readers read {reads} times",
        WRITERS * APPENDS
    );
    assert!(reads >= 8);
}
