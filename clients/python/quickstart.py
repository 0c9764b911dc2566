"""Load a CSV file into Lakehouse and query it, with ADBC.

    .venv/bin/python clients/python/quickstart.py trips.csv --table trips

Reads the CSV with pyarrow (streaming, typed), bulk-ingests it as a new table
(or appends with --mode append), then prints the table's size and first rows.
"""

import argparse

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.csv as csv


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--table", required=True)
    parser.add_argument("--mode", default="create_append", choices=["create", "append", "replace", "create_append"])
    parser.add_argument("--server", default="grpc://127.0.0.1:50051")
    args = parser.parse_args()

    reader = csv.open_csv(args.csv, read_options=csv.ReadOptions(block_size=8 << 20))
    with flightsql.connect(args.server, autocommit=True) as conn, conn.cursor() as cur:
        rows = cur.adbc_ingest(args.table, reader, mode=args.mode)
        print(f"ingested {rows} rows into {args.table}")
        cur.execute(f'SELECT count(*) FROM "{args.table}"')
        print(f"{args.table} now has {cur.fetchone()[0]} rows")
        cur.execute(f'SELECT * FROM "{args.table}" LIMIT 5')
        print(cur.fetch_arrow_table())


if __name__ == "__main__":
    main()
