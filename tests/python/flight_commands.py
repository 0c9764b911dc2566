"""Flight SQL commands encoded by hand (protobuf Any around the command),
for tests that drive the server with plain pyarrow.flight."""

import pyarrow.flight as flight

SQL_PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def command(name: str, body: bytes) -> bytes:
    """A Flight SQL command wrapped in google.protobuf.Any."""
    return field(1, (SQL_PREFIX + name).encode()) + field(2, body)


def statement_query(sql: str) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_command(command("CommandStatementQuery", field(1, sql.encode())))


def statement_ingest(table: str, if_exists: int = 1) -> flight.FlightDescriptor:
    """CommandStatementIngest creating `table` (if_not_exist CREATE; if_exists
    FAIL by default, 2 to APPEND, 3 to REPLACE)."""
    options = bytes([0x08, 0x01, 0x10, if_exists])
    return flight.FlightDescriptor.for_command(
        command("CommandStatementIngest", field(1, options) + field(2, table.encode()))
    )


def substrait_plan(plan: bytes, version: str = "0.85.0") -> flight.FlightDescriptor:
    """CommandStatementSubstraitPlan carrying a serialized Substrait Plan."""
    body = field(1, field(1, plan) + field(2, version.encode()))
    return flight.FlightDescriptor.for_command(command("CommandStatementSubstraitPlan", body))
