"""Shared row-marking rules for the selection commands (filter, dedup, top-N).

Rows are never removed: a selection step sets ``keep=false`` and a ``drop_reason``. Each step
owns the drop reasons it writes (``filter: ...``, ``duplicate``, ``top_n: ...``) and, when run
again, first clears *its own* earlier marks, then decides afresh over the rows that are still
kept. So re-running ``filter`` with a looser threshold brings back rows the old threshold
dropped, but it never resurrects rows that the length policy, a cut error, dedup or another
step dropped (their reason stays as it was).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def bool_column(table: pa.Table, name: str, default: bool) -> np.ndarray:
    """Column ``name`` as a numpy bool array, nulls (and a missing column) as ``default``."""
    if name not in table.column_names:
        return np.full(table.num_rows, default, dtype=bool)
    values = table.column(name).to_pylist()
    return np.array([default if v is None else bool(v) for v in values], dtype=bool)


def string_list(table: pa.Table, name: str) -> list[str | None]:
    """Column ``name`` as a list of strings (None where null or where the column is absent)."""
    if name not in table.column_names:
        return [None] * table.num_rows
    return [None if v is None else str(v) for v in table.column(name).to_pylist()]


def set_column(table: pa.Table, name: str, values: pa.Array | list[object]) -> pa.Table:
    """``table`` with column ``name`` replaced (same position) or appended."""
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    if name in table.column_names:
        index = table.column_names.index(name)
        return table.set_column(index, pa.field(name, array.type), array)
    return table.append_column(pa.field(name, array.type), array)


def release_own_marks(
    table: pa.Table, owns: Callable[[str], bool]
) -> tuple[np.ndarray, list[str | None]]:
    """(keep, drop_reason) with the marks this step wrote earlier cleared.

    ``owns(reason)`` says whether a drop reason was written by the calling step; those rows get
    ``keep=true`` back and their reason cleared. Every other row is left exactly as it was.
    """
    keep = bool_column(table, "keep", True)
    reasons = string_list(table, "drop_reason")
    for i, reason in enumerate(reasons):
        if not keep[i] and reason is not None and owns(reason):
            keep[i] = True
            reasons[i] = None
    return keep, reasons


def eligible_rows(table: pa.Table, keep: np.ndarray) -> np.ndarray:
    """Rows a selection step decides about: still kept and not failed (``status`` != error)."""
    status = string_list(table, "status")
    return keep & np.array([s != "error" for s in status], dtype=bool)


def apply_marks(table: pa.Table, keep: np.ndarray, reasons: list[str | None]) -> pa.Table:
    """``table`` with its ``keep`` and ``drop_reason`` columns replaced."""
    table = set_column(table, "keep", pa.array(keep.tolist(), pa.bool_()))
    return set_column(table, "drop_reason", pa.array(reasons, pa.string()))


# -------------------------------------------------------------- vectorised, for streamed batches


def released_marks(
    table: pa.Table | pa.RecordBatch, prefix: str | tuple[str, ...], exact: bool = False
) -> tuple[pa.Array, pa.Array]:
    """``(keep, drop_reason)`` arrays with the marks whose reason starts with ``prefix`` (the
    calling step's own; with ``exact``, whose reason *is* ``prefix``) cleared; nulls in
    ``keep`` read as true. The Arrow twin of :func:`release_own_marks` for steps that work
    batch by batch."""
    n = table.num_rows
    names = table.schema.names
    keep = (
        pc.fill_null(_array(table, "keep"), True) if "keep" in names else pa.array(np.ones(n, bool))
    )
    reasons = (
        _array(table, "drop_reason").cast(pa.string())
        if "drop_reason" in names
        else pa.nulls(n, pa.string())
    )
    ours = pa.array(np.zeros(n, bool))
    for one in (prefix,) if isinstance(prefix, str) else prefix:
        match = pc.equal(reasons, one) if exact else pc.starts_with(reasons, one)
        ours = pc.or_(ours, pc.fill_null(match, False))
    owned = pc.and_(pc.invert(keep), ours)
    keep = pc.or_(keep, owned)
    reasons = pc.if_else(owned, pa.nulls(n, pa.string()), reasons)
    return keep, reasons


def eligible_mask(table: pa.Table | pa.RecordBatch, keep: pa.Array) -> pa.Array:
    """Rows a selection step decides about (kept, ``status`` not error), never null."""
    if "status" not in table.schema.names:
        return keep
    status = _array(table, "status")
    return pc.and_(keep, pc.fill_null(pc.not_equal(status, "error"), True))


def _array(table: pa.Table | pa.RecordBatch, name: str) -> pa.Array:
    column = table.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
