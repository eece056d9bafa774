"""DuckDB for post-run steps: one way to open it, and safe quoting.

Every connection gets the same memory cap (past it DuckDB spills to disk instead of growing)
and a spill folder of its own under the system temp folder, removed on close: an in-memory
DuckDB would otherwise spill into ``./.tmp`` of whatever folder the command ran in.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

DUCKDB_MEMORY = "1GB"


def connect(memory: str = DUCKDB_MEMORY) -> tuple[Any, str]:
    """``(connection, spill folder)``: the memory cap (``memory``, e.g. ``"2GB"``) and a spill
    folder of its own; give both to :func:`close`."""
    import duckdb

    spill = tempfile.mkdtemp(prefix="clipsieve-duckdb-")
    con = duckdb.connect()
    con.execute(f"SET memory_limit = {text(memory)}")
    con.execute(f"SET temp_directory = {text(spill)}")
    con.execute("SET preserve_insertion_order = true")
    return con, spill


def close(con: Any, spill: str) -> None:
    """Close ``con`` and remove its spill folder."""
    con.close()
    shutil.rmtree(spill, ignore_errors=True)


@contextmanager
def connection() -> Iterator[Any]:
    """A connection from :func:`connect` for a ``with`` block."""
    con, spill = connect()
    try:
        yield con
    finally:
        close(con, spill)


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def text(value: str) -> str:
    """``value`` as a quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"
