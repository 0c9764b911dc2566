//! `lakehouse-bench`: runs SQL files against a lakehouse server through the
//! Rust Flight SQL client, against the server's own engine in-process (no
//! Flight), or against plain DataFusion in-process over the same Parquet
//! files, and prints each run's wall times as JSON lines.
//!
//! Every target is timed by the same loop (warm-up runs, then samples,
//! each collecting every batch of the result), so the difference between
//! two targets is what one layer adds: Flight (flight against embedded),
//! the server's catalog and table providers (embedded against in-process).
//! The Python
//! harnesses (`benches/tpch.py`, `benches/vectors.py`) run the peers, check
//! results and write the tables.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use clap::{Parser, ValueEnum};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::TryStreamExt;
use lakehouse_client::Client;
use lakehouse_engine::query::Planned;
use lakehouse_server::config::{ServeArgs, Settings};
use lakehouse_server::server::Core;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
#[command(about = "Time SQL queries through Flight SQL or DataFusion in-process")]
struct Args {
    /// Where the queries run.
    #[arg(long, value_enum)]
    target: Target,
    /// The server (`host:port`), for `--target flight`.
    #[arg(long)]
    server: Option<String>,
    /// A directory of `<table>.parquet` files, registered under their
    /// names, for `--target in-process`.
    #[arg(long)]
    tables: Option<PathBuf>,
    /// A server's storage directory (no server running on it), for
    /// `--target embedded`.
    #[arg(long)]
    storage: Option<String>,
    /// SQL files to run, one query each; the file stem names the query.
    #[arg(required_unless_present = "stdin")]
    queries: Vec<PathBuf>,
    /// Reads SQL file paths from stdin, one per line, and answers each as
    /// it comes, so one process (its caches and allocator warm) serves a
    /// harness that interleaves it with other engines.
    #[arg(long, conflicts_with = "queries")]
    stdin: bool,
    /// Runs per query before timing.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed runs per query.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Writes each query's result (of the last run) to `<dir>/<query>.arrow`.
    #[arg(long)]
    results: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    /// A running server, through the Rust Flight SQL client (`--server`).
    Flight,
    /// Plain DataFusion over Parquet files (`--tables`), with DataFusion's
    /// default settings unless `DATAFUSION_*` variables change them (e.g.
    /// `DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS=true`), to measure a
    /// setting before the server adopts it.
    InProcess,
    /// The server's engine, catalog and extensions in this process
    /// (`--storage`).
    Embedded,
}

/// Something that answers SQL with every batch of the result.
enum Runner {
    Flight(Client),
    InProcess(SessionContext),
    Embedded(Box<Core>),
}

impl Runner {
    async fn open(args: &Args) -> Result<Self> {
        match args.target {
            Target::Flight => {
                let server = args
                    .server
                    .as_deref()
                    .context("--target flight needs --server")?;
                Ok(Self::Flight(Client::connect(server).await?))
            }
            Target::InProcess => {
                let dir = args
                    .tables
                    .as_deref()
                    .context("--target in-process needs --tables")?;
                let ctx = SessionContext::new_with_config(SessionConfig::from_env()?);
                for entry in
                    std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?
                {
                    let path = entry?.path();
                    if path.extension().is_some_and(|e| e == "parquet") {
                        let name = path
                            .file_stem()
                            .and_then(|s| s.to_str())
                            .context("table file name")?;
                        let location = path.to_str().context("table path is not UTF-8")?;
                        ctx.register_parquet(name, location, ParquetReadOptions::default())
                            .await?;
                    }
                }
                Ok(Self::InProcess(ctx))
            }
            Target::Embedded => {
                let storage = args
                    .storage
                    .clone()
                    .context("--target embedded needs --storage")?;
                let config = ServeArgs {
                    config: None,
                    settings: Settings {
                        storage: Some(storage),
                        ..Settings::default()
                    },
                }
                .resolve()?;
                Ok(Self::Embedded(Box::new(Core::open(&config).await?)))
            }
        }
    }

    async fn run(&mut self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        Ok(match self {
            Self::Flight(client) => client.query_with_schema(sql).await?,
            Self::InProcess(ctx) => {
                let frame = ctx.sql(sql).await?;
                let schema = frame.schema().inner().clone();
                (schema, frame.collect().await?)
            }
            Self::Embedded(core) => {
                let plan = core.engine.plan(sql).await?;
                let Planned::Query(plan) = core.engine.classify(plan)? else {
                    bail!("{sql:?} is not a query");
                };
                let stream = core.engine.execute_query(plan).await?;
                let schema = stream.schema();
                (schema, stream.try_collect().await?)
            }
        })
    }
}

fn write_result(
    dir: &Path,
    query: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    let path = dir.join(format!("{query}.arrow"));
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = FileWriter::try_new(file, schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let mut runner = Runner::open(&args).await?;
    if args.stdin {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            time_query(&mut runner, Path::new(line.trim()), &args).await?;
        }
    } else {
        for path in &args.queries {
            time_query(&mut runner, path, &args).await?;
        }
    }
    Ok(())
}

/// Runs the SQL file at `path` (warm-up runs, then samples) and prints its
/// JSON line.
async fn time_query(runner: &mut Runner, path: &Path, args: &Args) -> Result<()> {
    let query = path
        .file_stem()
        .and_then(|s| s.to_str())
        .context("query file name")?;
    let sql =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut ms = Vec::with_capacity(args.samples);
    let mut last = (Arc::new(Schema::empty()), Vec::new());
    for run in 0..args.warmup + args.samples {
        let started = Instant::now();
        last = runner
            .run(&sql)
            .await
            .with_context(|| format!("running {query}"))?;
        if run >= args.warmup {
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let (schema, batches) = &last;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let bytes: usize = batches
        .iter()
        .flat_map(RecordBatch::columns)
        .map(|column| column.to_data().get_slice_memory_size())
        .sum::<Result<usize, _>>()?;
    if let Some(dir) = &args.results {
        write_result(dir, query, schema, batches)?;
    }
    println!(
        "{}",
        serde_json::json!({ "query": query, "ms": ms, "rows": rows, "bytes": bytes })
    );
    std::io::stdout().flush()?;
    Ok(())
}
