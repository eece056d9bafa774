"""Which clip rows leave the pipeline.

Rows are never dropped while the pipeline runs; filters only set ``keep``/``drop_reason``. This is
the one place that turns those marks into a selection, so every writer exports the same rows.
Allow-list semantics: a row is exported only if ``keep`` is true (null is not true), its
``status`` is ``ok`` and it has a cut clip file (``path``).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from clipsieve.table import STATUS_OK


def kept_mask(clips: pa.Table) -> pa.ChunkedArray:
    """Boolean mask (never null) of the rows that belong in the exported training set."""
    if clips.num_rows == 0:
        return pa.chunked_array([pa.array([], pa.bool_())])
    ok = pc.equal(clips["status"], STATUS_OK) if "status" in clips.column_names else None
    keep = pc.equal(clips["keep"], True) if "keep" in clips.column_names else None
    has_path = pc.is_valid(clips["path"]) if "path" in clips.column_names else None
    if ok is None or keep is None or has_path is None:
        missing = [c for c in ("status", "keep", "path") if c not in clips.column_names]
        raise ValueError(f"clip table lacks column(s) {', '.join(missing)}: cannot export")
    mask = pc.and_kleene(pc.and_kleene(keep, ok), has_path)
    return pc.fill_null(mask, False)


def kept_clips(clips: pa.Table) -> pa.Table:
    """The exported rows, in table order."""
    return clips.filter(kept_mask(clips))
