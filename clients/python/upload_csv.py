"""Upload a CSV file to Lakehouse with plain pyarrow.flight (no Flight SQL library).

    .venv/bin/python clients/python/upload_csv.py trips.csv --table trips
    .venv/bin/python clients/python/upload_csv.py data.tsv --table t --delimiter $'\\t' --mode append

The protocol (docs/flight-sql.md, "CSV upload"): a DoPut whose descriptor is a
command holding JSON {"ingest_csv": {...options}}, and whose stream is record
batches of one binary column; the values are consecutive chunks of the file,
cut anywhere. The server parses while bytes arrive and answers with JSON:
table, version, rows, bytes.
"""

import argparse
import json

import pyarrow as pa
import pyarrow.flight as flight

CHUNK_SCHEMA = pa.schema([("chunk", pa.binary())])


def upload_csv(client: flight.FlightClient, source, options: dict, chunk_bytes: int = 1 << 20) -> dict:
    """Streams `source` (a path or a binary file object) as a CSV upload.

    `options` is the object inside {"ingest_csv": ...}: table, schema, mode,
    header, delimiter, quote, escape, null_values, idempotency_key, evolve,
    columns. Returns the server's result.

    If reading `source` fails, the upload is abandoned with a message whose
    app_metadata is b"abort" and the server commits nothing. (Just closing
    the writer would tell the server the file is complete, and pyarrow has
    no way to cancel a DoPut.)
    """
    command = json.dumps({"ingest_csv": options}).encode()
    descriptor = flight.FlightDescriptor.for_command(command)
    writer, reader = client.do_put(descriptor, CHUNK_SCHEMA)
    stream = open(source, "rb") if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__") else source
    try:
        while chunk := stream.read(chunk_bytes):
            writer.write_batch(pa.record_batch([pa.array([chunk], pa.binary())], schema=CHUNK_SCHEMA))
    except BaseException:
        writer.write_metadata(b"abort")
        try:
            writer.close()
        except pa.ArrowException:
            pass  # the server's answer to the abort
        raise
    finally:
        if stream is not source:
            stream.close()
    writer.done_writing()
    answer = reader.read()
    writer.close()
    return json.loads(answer.to_pybytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--table", required=True)
    parser.add_argument("--schema")
    parser.add_argument("--mode", default="create_append", choices=["create", "append", "overwrite", "create_append"])
    parser.add_argument("--delimiter")
    parser.add_argument("--no-header", action="store_true")
    parser.add_argument("--idempotency-key")
    parser.add_argument("--server", default="grpc://127.0.0.1:50051")
    args = parser.parse_args()

    options = {"table": args.table, "mode": args.mode, "header": not args.no_header}
    for key in ("schema", "delimiter", "idempotency_key"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    client = flight.connect(args.server)
    result = upload_csv(client, args.csv, options)
    print(f"{result['table']}: version {result['version']}, {result['rows']} rows, {result['bytes']} bytes")


if __name__ == "__main__":
    main()
