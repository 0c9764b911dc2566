"""Query a Lakehouse table with ADBC: parameters, a prepared statement run
for several values, the table's history and a read of an earlier version.

    .venv/bin/python clients/python/query_adbc.py candidates --column state --value IL

Works on any table; with the staffing demo loaded (clients/python/
staffing_demo.py, then `lakehouse put demo/candidates.csv --table candidates`)
the defaults show candidates by state.
"""

import argparse

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa


def explore(conn, table: str, column: str, values: list) -> dict:
    """Runs the example's queries; returns what it prints."""
    with conn.cursor() as cur:
        # `?` (or `$1`) placeholders: values travel as Arrow, never spliced into SQL.
        cur.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}" = ?', parameters=(values[0],))
        first_count = cur.fetchone()[0]

        # One prepared statement, executed once per value.
        counts = {}
        for value in values:
            cur.execute(f'SELECT count(*) AS n FROM "{table}" WHERE "{column}" = $1', parameters=(value,))
            counts[value] = cur.fetchone()[0]

        cur.execute(f"SELECT version, operation, rows_added, total_rows FROM table_history('{table}') ORDER BY version")
        history: pa.Table = cur.fetch_arrow_table()

        # Every version stays readable (until vacuumed) as "table@vN".
        first_version = history.column("version")[0].as_py()
        cur.execute(f'SELECT count(*) FROM "{table}@v{first_version}"')
        rows_at_first = cur.fetchone()[0]
    return {"first_count": first_count, "counts": counts, "history": history, "rows_at_first_version": rows_at_first}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", nargs="?", default="candidates")
    parser.add_argument("--column", default="state")
    parser.add_argument("--value", action="append", help="repeatable; default IL, TX, GA")
    parser.add_argument("--server", default="grpc://127.0.0.1:50051")
    args = parser.parse_args()
    values = args.value or ["IL", "TX", "GA"]
    with flightsql.connect(args.server, autocommit=True) as conn:
        found = explore(conn, args.table, args.column, values)
    print(f"{args.column} = {values[0]!r}: {found['first_count']} rows")
    for value, n in found["counts"].items():
        print(f"  {value}: {n}")
    print(found["history"])
    print(f"rows at the first version: {found['rows_at_first_version']}")


if __name__ == "__main__":
    main()
