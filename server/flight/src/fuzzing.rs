//! Entry points for fuzzing what clients send before any check of ours has
//! run: CSV uploads (the whole parse, infer, widen and convert path, into
//! an in-memory store) and Flight SQL commands and tickets.
//!
//! Each takes arbitrary bytes and must return, never panic or hang; an
//! error is a fine answer. The mutation fuzzer in this module's tests runs
//! them for a bounded time in `just test` (`LAKEHOUSE_FUZZ_SECS` for longer
//! runs by hand); it needs only the stable toolchain CI has. They are
//! public so that coverage-guided fuzzers (cargo-fuzz on nightly) can call
//! the same code.

use std::sync::Arc;

use arrow_flight::sql::{Any, Command};
use bytes::Bytes;
use prost::Message;

use crate::tickets::StatementTicket;
use lakehouse_core::catalog::Catalog;
use lakehouse_engine::ingest::{CsvOptions, FileLayout, Ingest};

/// Uploads `data` as a CSV file. The first byte picks the dialect and how
/// the rest is cut into chunks, so one input explores both.
pub fn csv_upload(data: &[u8]) {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let delimiter = [",", ";", "\t", "|"][usize::from(control & 3)];
    let header = control & 4 == 0;
    let chunk = 1 + usize::from(control >> 3);
    let options = serde_json::json!({
        "ingest_csv": {"table": "fuzzed", "header": header, "delimiter": delimiter}
    });
    let Ok(options) = CsvOptions::from_command(options.to_string().as_bytes()) else {
        return;
    };
    let chunks: Vec<lakehouse_engine::Result<Bytes>> = body
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let store = Arc::new(object_store::memory::InMemory::new());
        let catalog = Arc::new(Catalog::load(store).await.expect("an empty catalog loads"));
        let ingest = Ingest::new(catalog, FileLayout::default());
        let _ = ingest
            .write_csv(options, futures::stream::iter(chunks))
            .await;
    });
}

/// Decodes `data` as every client-sent message the Flight layer reads:
/// a protobuf `Any` command (descriptors, tickets), this server's statement
/// tickets, and a CSV upload command.
pub fn flight_message(data: &[u8]) {
    if let Ok(any) = Any::decode(data)
        && let Ok(Command::TicketStatementQuery(ticket)) = Command::try_from(any)
    {
        let _ = StatementTicket::decode(&ticket.statement_handle);
    }
    let _ = StatementTicket::decode(data);
    let _ = CsvOptions::from_command(data);
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::{Duration, Instant};

    use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt, TicketStatementQuery};

    use super::*;

    /// Seconds each target is fuzzed; `LAKEHOUSE_FUZZ_SECS` for longer runs.
    fn budget() -> Duration {
        Duration::from_secs(
            std::env::var("LAKEHOUSE_FUZZ_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(10),
        )
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Changes `input` by one to four random edits: flip a bit, set an
    /// interesting byte, insert, delete, duplicate a run, or splice in a
    /// part of another seed.
    fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
        const INTERESTING: &[u8] = b",;\t|\"\n\r\\\x00\xff-+.eE:TZ 0123456789";
        let mut out = input.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(out.len() + 1);
            match rng.below(6) {
                0 if !out.is_empty() => {
                    let i = at.min(out.len() - 1);
                    out[i] ^= 1 << rng.below(8);
                }
                1 if !out.is_empty() => {
                    let i = at.min(out.len() - 1);
                    out[i] = INTERESTING[rng.below(INTERESTING.len())];
                }
                2 => out.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
                3 if at < out.len() => {
                    let end = (at + 1 + rng.below(16)).min(out.len());
                    out.drain(at..end);
                }
                4 if at < out.len() => {
                    let end = (at + 1 + rng.below(64)).min(out.len());
                    let run = out[at..end].to_vec();
                    out.splice(at..at, run);
                }
                _ => {
                    let other = &seeds[rng.below(seeds.len())];
                    let from = rng.below(other.len());
                    let end = (from + 1 + rng.below(64)).min(other.len());
                    out.splice(at..at, other[from..end].iter().copied());
                }
            }
        }
        out
    }

    /// Runs `target` on mutations of `seeds` for the budget; a panic fails
    /// with the seed and the input, saved to a file to replay.
    fn fuzz(name: &str, seeds: Vec<Vec<u8>>, target: fn(&[u8])) {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        let mut rng = Rng(seed);
        let deadline = Instant::now() + budget();
        let mut corpus = seeds.clone();
        let mut runs = 0u64;
        while Instant::now() < deadline {
            let base = &corpus[rng.below(corpus.len())];
            let input = if rng.below(10) == 0 {
                (0..rng.below(256)).map(|_| rng.next() as u8).collect()
            } else {
                mutate(&mut rng, base, &seeds)
            };
            if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
                let path = std::env::temp_dir().join(format!("lakehouse-fuzz-{name}-{seed}.bin"));
                std::fs::write(&path, &input).unwrap();
                panic!("{name}: panicked on an input saved to {}", path.display());
            }
            if corpus.len() < 512 && rng.below(8) == 0 {
                corpus.push(input);
            }
            runs += 1;
        }
        eprintln!(
            "fuzzed {name}: {runs} inputs in {:?} (seed {seed})",
            budget()
        );
        assert!(runs > 0);
    }

    #[test]
    fn csv_uploads_never_panic() {
        let seeds = vec![
            b"\x00id,name,score,day,at\n1,a,1.5,2024-01-02,2024-01-02T03:04:05Z\n2,\"b,c\",-2e3,2024-12-31,\n".to_vec(),
            b"\x00n\n1\n2\n99999999999999999999\n".to_vec(),
            b"\x01a;b\n\"x\"\"y\";TRUE\n;false\n".to_vec(),
            b"\x04\"unterminated\n1,2,3\n4\n".to_vec(),
            b"\x10v\n1\n2.5\nabc\n\n".to_vec(),
        ];
        fuzz("csv", seeds, csv_upload);
    }

    #[test]
    fn flight_messages_never_panic() {
        let query = CommandStatementQuery {
            query: "SELECT 1".into(),
            transaction_id: None,
        };
        let ticket = TicketStatementQuery {
            statement_handle: StatementTicket::Query {
                sql: "SELECT 1".into(),
                plan: None,
            }
            .encode(),
        };
        let seeds = vec![
            query.as_any().encode_to_vec(),
            ticket.as_any().encode_to_vec(),
            br#"{"ingest_csv": {"table": "t", "mode": "append", "columns": [{"name": "a", "type": "int64"}]}}"#.to_vec(),
            StatementTicket::Affected { rows: 3 }.encode().to_vec(),
        ];
        fuzz("flight", seeds, flight_message);
    }
}
