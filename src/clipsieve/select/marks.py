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
