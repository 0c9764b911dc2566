//! `lakehouse-bench`: runs SQL files against a lakehouse server through the
//! Rust Flight SQL client, or against DataFusion in-process over the same
//! Parquet files, and prints each run's wall times as JSON lines.
//!
//! Both targets are timed by the same loop (warm-up runs, then samples,
//! each collecting every batch of the result), so the difference between
//! them is what the server and the Flight transport add. The Python harness
//! (`benches/tpch.py`) runs the peers, checks results and writes the tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use clap::{Parser, ValueEnum};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use lakehouse_client::Client;

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
    /// SQL files to run, one query each; the file stem names the query.
    #[arg(required = true)]
    queries: Vec<PathBuf>,
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
    Flight,
    InProcess,
}

/// Something that answers SQL with every batch of the result.
enum Runner {
    Flight(Client),
    InProcess(SessionContext),
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
                let ctx = SessionContext::new();
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
    for path in &args.queries {
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
    }
    Ok(())
}
