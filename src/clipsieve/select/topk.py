"""Top-N per source video: rank by a score, keep the best few of each video.

The original filtering project kept, for every source video, the best-scored scenes and never
two scenes cut from the same original clip span. Rules, in order:

1. rows are ranked by ``by`` (descending, or ascending with ``ascending=True``), ties broken by
   ``clip_id`` so the result never depends on row order;
2. a row whose span already supplied a kept row is dropped (``top_n: not the best of its
   span``); the span is the original clip the row was cut from: ``span_group`` (metafile
   ingest: an HD-VG clip ``<video>.<k>`` holds several scenes), else ``span_id``, else the row
   itself;
3. a row of a video that already has ``n`` kept rows is dropped (``top_n: beyond the top N of
   its video``); ``n=None`` sets no per-video cap (only the span rule applies);
4. a row with no ``by`` value fails (allow-list: an unscored clip never wins a slot).

Like ``filter``, a re-run clears its own earlier ``top_n`` marks first and decides only rows that
are still kept. ``topn_rank`` is the 1-based rank of a kept row within its video.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from clipsieve.errors import UserError
from clipsieve.select.columns import missing_column_message
from clipsieve.select.marks import (
    apply_marks,
    eligible_rows,
    release_own_marks,
    set_column,
    string_list,
)

TOPN_REASON = "top_n: "
SPAN_COLUMNS = ("span_group", "span_id")  # the first the table has names a row's original clip
STEP_NAME = "topn"
STEP_VERSION = "1"


def is_topn_reason(reason: str) -> bool:
    return reason.startswith(TOPN_REASON)


def release_top_n(clips: pa.Table) -> pa.Table:
    """``clips`` with earlier top-N marks cleared (before a filter that re-applies top-N)."""
    keep, reasons = release_own_marks(clips, is_topn_reason)
    return apply_marks(clips, keep, reasons)


def _scores(clips: pa.Table, by: str) -> list[float | None]:
    if by not in clips.column_names:
        raise UserError(missing_column_message(by, clips.column_names))
    column = clips.column(by)
    if not (
        pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
        or pa.types.is_boolean(column.type)
    ):
        raise UserError(f"top-N: column '{by}' is {column.type}, not numeric: rank by a score")
    out: list[float | None] = []
    for v in column.to_pylist():
        out.append(None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v))
    return out


def select_top_n(
    clips: pa.Table, by: str, n: int | None = 1, ascending: bool = False
) -> tuple[pa.Table, dict[str, Any]]:
    """Mark ``clips`` so at most ``n`` rows per video and one per span stay kept."""
    if n is not None and n < 1:
        raise UserError(f"top-N: n must be at least 1, got {n}")
    scores = _scores(clips, by)
    keep, reasons = release_own_marks(clips, is_topn_reason)
    eligible = eligible_rows(clips, keep)
    clip_ids = string_list(clips, "clip_id")
    videos = string_list(clips, "video_id")
    span_column = next((c for c in SPAN_COLUMNS if c in clips.column_names), None)
    spans = string_list(clips, span_column) if span_column else [None] * clips.num_rows
    sign = 1.0 if ascending else -1.0
    order = sorted(
        (i for i in np.flatnonzero(eligible) if scores[i] is not None),
        key=lambda i: (sign * scores[i], clip_ids[i] or ""),  # type: ignore[operator]
    )
    per_video: Counter[str | None] = Counter()
    used_spans: set[tuple[str | None, str]] = set()
    rank: list[int | None] = [None] * clips.num_rows
    counts = Counter[str]()
    for i in np.flatnonzero(eligible):
        if scores[i] is None:
            keep[i] = False
            reasons[i] = f"{TOPN_REASON}no {by} value"
            counts["unscored"] += 1
    for i in order:
        span = (videos[i], spans[i]) if spans[i] is not None else (videos[i], f"clip:{clip_ids[i]}")
        if span in used_spans:
            keep[i] = False
            reasons[i] = f"{TOPN_REASON}not the best of its span"
            counts["span"] += 1
            continue
        if n is not None and per_video[videos[i]] >= n:
            keep[i] = False
            reasons[i] = f"{TOPN_REASON}beyond the top {n} of its video"
            counts["cap"] += 1
            continue
        used_spans.add(span)
        per_video[videos[i]] += 1
        rank[i] = per_video[videos[i]]
    table = apply_marks(clips, keep, reasons)
    table = set_column(table, "topn_rank", pa.array(rank, pa.int32()))
    summary = {
        "by": by,
        "n": n,
        "ascending": ascending,
        "span_column": span_column,
        "eligible": int(eligible.sum()),
        "kept": int(sum(1 for r in rank if r is not None)),
        "dropped_unscored": counts["unscored"],
        "dropped_same_span": counts["span"],
        "dropped_over_cap": counts["cap"],
        "videos": len(per_video),
    }
    return table, summary


def step_record(summary: dict[str, Any]) -> dict[str, Any]:
    """Provenance entry for ``save_clips``."""
    params = {k: summary[k] for k in ("by", "n", "ascending", "span_column")}
    return {"name": STEP_NAME, "version": STEP_VERSION, "params": params, "summary": summary}
