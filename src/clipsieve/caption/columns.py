"""The caption columns, their types, and writing them into a clip table without touching others.

Columns (all null until set):

* ``caption``: the final caption (post-processed from ``caption_rewrite`` or ``caption_raw``);
* ``caption_src``: the source caption the clip came with (e.g. from a metafile), kept unchanged;
* ``caption_raw``: the VLM's answer as received; ``caption_rewrite``: the rewrite pass's answer;
* ``caption_model``, ``caption_prompt``: what produced ``caption_raw``;
* ``caption_tokens_in``, ``caption_tokens_out``, ``caption_latency_s``, ``caption_attempts``,
  ``caption_truncated`` (the answer stopped at max_tokens);
* ``caption_error``: why the last caption attempt failed (a re-run retries these rows);
  ``caption_rewrite_error``: why the rewrite failed (the pre-rewrite caption is kept).

A failed caption does not set the clip's ``status`` to ``error``: the clip itself is fine, and a
timeout at a busy server says nothing about the video. ``status``/``error`` stay for broken clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

CAPTION_FIELDS: tuple[pa.Field, ...] = (
    pa.field("caption", pa.string()),
    pa.field("caption_src", pa.string()),
    pa.field("caption_raw", pa.string()),
    pa.field("caption_rewrite", pa.string()),
    pa.field("caption_model", pa.string()),
    pa.field("caption_prompt", pa.string()),
    pa.field("caption_tokens_in", pa.int64()),
    pa.field("caption_tokens_out", pa.int64()),
    pa.field("caption_latency_s", pa.float64()),
    pa.field("caption_attempts", pa.int32()),
    pa.field("caption_truncated", pa.bool_()),
    pa.field("caption_error", pa.string()),
    pa.field("caption_rewrite_error", pa.string()),
)
CAPTION_COLUMNS: tuple[str, ...] = tuple(f.name for f in CAPTION_FIELDS)
# Columns the caption step may change besides its own (post-processing marks rows).
MARK_FIELDS: tuple[pa.Field, ...] = (
    pa.field("keep", pa.bool_()),
    pa.field("drop_reason", pa.string()),
)
SOURCE_CAPTION_COLUMNS = ("caption", "text")  # what a metafile ingest may have filled


def init_source_captions(rows: Sequence[dict[str, Any]]) -> None:
    """On the first caption run, move a pre-existing caption into ``caption_src`` (in place)."""
    for row in rows:
        if "caption_src" in row:
            continue
        source = next((row.get(c) for c in SOURCE_CAPTION_COLUMNS if row.get(c)), None)
        row["caption_src"] = source
        row["caption"] = None


def apply_columns(table: pa.Table, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """``table`` with the caption and mark columns replaced by the values in ``rows``.

    Other columns keep their exact types (an all-null score column stays a float column), which a
    round trip through Python rows would not guarantee.
    """
    if len(rows) != table.num_rows:
        raise ValueError(f"{len(rows)} rows for a table of {table.num_rows}")
    for field in (*CAPTION_FIELDS, *MARK_FIELDS):
        values = pa.array([row.get(field.name) for row in rows], type=field.type)
        index = table.schema.get_field_index(field.name)
        if index >= 0:
            table = table.set_column(index, field, values)
        else:
            table = table.append_column(field, values)
    return table
