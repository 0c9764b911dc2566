//! `lakehouse put`: streams a CSV file to the server in chunks, with a
//! progress bar on a terminal.

use std::io::Read;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lakehouse_client::Client;
use serde_json::{Map, Value, json};

use crate::{CliError, PutArgs};

/// The upload command's options as the server reads them.
fn options(args: &PutArgs) -> Result<Value, CliError> {
    let mut options = Map::new();
    options.insert("table".into(), json!(args.table));
    options.insert("mode".into(), json!(args.mode.as_str()));
    options.insert("header".into(), json!(!args.no_header));
    options.insert("evolve".into(), json!(args.evolve));
    let optional = [
        ("schema", &args.schema),
        ("delimiter", &args.delimiter),
        ("quote", &args.quote),
        ("escape", &args.escape),
        ("idempotency_key", &args.idempotency_key),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            options.insert(key.into(), json!(value));
        }
    }
    if !args.null_values.is_empty() {
        options.insert("null_values".into(), json!(args.null_values));
    }
    if !args.columns.is_empty() {
        let columns = args
            .columns
            .iter()
            .map(|spec| {
                let (name, data_type) = spec.split_once(':').ok_or_else(|| {
                    CliError::Usage(format!(
                        "--column {spec:?}: write NAME:TYPE, as in zip:text"
                    ))
                })?;
                Ok(json!({"name": name, "type": data_type}))
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        options.insert("columns".into(), Value::Array(columns));
    }
    if !args.embed.is_empty() {
        let embed = args
            .embed
            .iter()
            .map(|spec| {
                let usage = || {
                    CliError::Usage(format!(
                        "--embed {spec:?}: write TARGET=SOURCE[:MODEL], as in summary_embedding=summary"
                    ))
                };
                let (target, rest) = spec.split_once('=').ok_or_else(usage)?;
                let (source, model) = match rest.split_once(':') {
                    Some((source, model)) => (source, Some(model)),
                    None => (rest, None),
                };
                if target.is_empty() || source.is_empty() {
                    return Err(usage());
                }
                Ok(json!({"source": source, "target": target, "model": model}))
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        options.insert("embed".into(), Value::Array(embed));
    }
    Ok(Value::Object(options))
}

pub async fn put(client: &mut Client, args: &PutArgs) -> Result<(), CliError> {
    let options = options(args)?;
    let file_error = |source| CliError::File {
        path: args.file.clone(),
        source,
    };
    let (reader, size): (Box<dyn Read + Send>, Option<u64>) = if args.file == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = std::fs::File::open(&args.file).map_err(file_error)?;
        let size = file.metadata().map_err(file_error)?.len();
        (Box::new(file), Some(size))
    };
    let bar = progress_bar(size);
    let started = Instant::now();
    let counted = bar.clone();
    let mut lines = 0u64;
    // Counting lines for the rate costs a pass over the file: only for a bar.
    let visible = !bar.is_hidden();
    let chunks = read_chunks(reader, args.chunk_bytes.max(1)).inspect(move |chunk| {
        if let Ok(bytes) = chunk
            && visible
        {
            let newlines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
            lines += newlines;
            counted.inc(bytes.len() as u64);
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            counted.set_message(format!(
                "~{} rows/s",
                thousands((lines as f64 / secs) as u64)
            ));
        }
    });
    let loaded = client.put_csv(&options, chunks).await.map_err(|e| match e {
        lakehouse_client::ClientError::Read(source) => file_error(source),
        other => other.into(),
    });
    bar.finish_and_clear();
    let loaded = loaded?;
    if args.json {
        let body = json!({
            "table": loaded.table, "version": loaded.version, "rows": loaded.rows,
            "bytes": loaded.bytes, "deduplicated": loaded.deduplicated,
        });
        println!("{body}");
        return Ok(());
    }
    let secs = started.elapsed().as_secs_f64();
    if loaded.deduplicated {
        println!(
            "{}: this idempotency key already loaded version {} ({} rows); nothing added",
            loaded.table,
            loaded.version,
            thousands(loaded.rows)
        );
    } else {
        println!(
            "{}: version {}, {} rows, {} bytes in {secs:.1} s ({} rows/s)",
            loaded.table,
            loaded.version,
            thousands(loaded.rows),
            thousands(loaded.bytes),
            thousands((loaded.rows as f64 / secs.max(1e-3)) as u64)
        );
    }
    Ok(())
}

/// Reads `reader` on a thread of its own, in chunks of `size` bytes, a few
/// chunks ahead of the upload.
fn read_chunks(
    mut reader: Box<dyn Read + Send>,
    size: usize,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        loop {
            let mut chunk = Vec::with_capacity(size);
            match (&mut reader).take(size as u64).read_to_end(&mut chunk) {
                Ok(0) => break,
                Ok(_) => {
                    if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A bar on standard error when it is a terminal; nothing otherwise.
fn progress_bar(size: Option<u64>) -> ProgressBar {
    let bar = match size {
        Some(size) => ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if size.is_some() {
        "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg} eta {eta}"
    } else {
        "{spinner} {bytes} {bytes_per_sec} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// 1234567 as 1,234,567.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
