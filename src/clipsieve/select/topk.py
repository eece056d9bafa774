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
import pyarrow.compute as pc

from clipsieve.errors import UserError
from clipsieve.select.columns import missing_column_message
from clipsieve.select.marks import set_column
from clipsieve.steps.base import AlignedUpdates, PostRunStep, StepContext
from clipsieve.steps.sql import connection, ident, text

TOPN_REASON = "top_n: "
SPAN_COLUMNS = ("span_group", "span_id")  # the first the table has names a row's original clip
STEP_NAME = "topn"
STEP_VERSION = "1"
TOPN_MEMORY = "2GB"  # DuckDB's cap for the ranking (the bound for topn is 3 GB)


def is_topn_reason(reason: str) -> bool:
    return reason.startswith(TOPN_REASON)


def _check_by(schema: pa.Schema, by: str) -> None:
    if by not in schema.names:
        raise UserError(missing_column_message(by, schema.names))
    kind = schema.field(by).type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise UserError(f"top-N: column '{by}' is {kind}, not numeric: rank by a score")


class TopNStep(PostRunStep):
    """Top-N per video as a global post-run step.

    DuckDB ranks the rows (window functions over the columns named in :attr:`reads`, spilling
    to disk past its memory cap) and streams the marks back in table order; the rules are the
    module's, in SQL: the best row of each span, then the best ``n`` span winners of each video.
    """

    name = STEP_NAME
    version = STEP_VERSION
    writes = ("keep", "drop_reason", "topn_rank")

    def __init__(self, by: str, n: int | None = 1, ascending: bool = False) -> None:
        if n is not None and n < 1:
            raise UserError(f"top-N: n must be at least 1, got {n}")
        self.by, self.n, self.ascending = by, n, ascending
        self.span_column: str | None = None
        self.reads = ()
        self.counts: Counter[str] = Counter()
        self._updates: AlignedUpdates | None = None

    def query(self, schema: pa.Schema) -> str:
        """The ranking query over the view ``clips`` (columns plus ``_row``), in table order."""
        _check_by(schema, self.by)
        names = schema.names
        self.span_column = next((c for c in SPAN_COLUMNS if c in names), None)
        self.reads = tuple(
            c
            for c in (
                "clip_id",
                "video_id",
                self.by,
                self.span_column,
                "keep",
                "drop_reason",
                "status",
            )  # fmt: skip
            if c is not None and c in names
        )
        keep = "coalesce(keep, true)" if "keep" in names else "true"
        reason = "drop_reason" if "drop_reason" in names else "NULL::VARCHAR"
        ok = "coalesce(status <> 'error', true)" if "status" in names else "true"
        span = f"CAST({ident(self.span_column)} AS VARCHAR)" if self.span_column else "NULL"
        owned = f"(NOT {keep} AND coalesce(starts_with({reason}, {text(TOPN_REASON)}), false))"
        order = "ASC" if self.ascending else "DESC"
        cap = "NULL" if self.n is None else str(int(self.n))
        kept = f"(d.sr = 1 AND ({cap} IS NULL OR d.own_rank <= {cap}))"
        over = f"{TOPN_REASON}beyond the top {self.n} of its video"
        return f"""
        WITH base AS (
          SELECT _row, clip_id, video_id, {span} AS span,
                 {keep} OR {owned} AS keep0,
                 CASE WHEN {owned} THEN NULL ELSE {reason} END AS reason0,
                 ({keep} OR {owned}) AND {ok} AS eligible,
                 CASE WHEN isnan(CAST({ident(self.by)} AS DOUBLE)) THEN NULL
                      ELSE CAST({ident(self.by)} AS DOUBLE) END AS score
          FROM clips),
        scored AS (
          SELECT _row, video_id, score, clip_id,
                 coalesce(span, 'clip:' || clip_id) AS span_key
          FROM base WHERE eligible AND score IS NOT NULL),
        span_rank AS (
          SELECT *, row_number() OVER (
            PARTITION BY video_id, span_key ORDER BY score {order}, clip_id) AS sr
          FROM scored),
        winners AS (
          SELECT _row, video_id, span_key, row_number() OVER (
            PARTITION BY video_id ORDER BY score {order}, clip_id) AS vr
          FROM span_rank WHERE sr = 1),
        decided AS (
          SELECT s._row, s.sr, w.vr AS own_rank, ww.vr AS winner_rank
          FROM span_rank s
          LEFT JOIN winners w ON w._row = s._row
          LEFT JOIN winners ww ON ww.video_id = s.video_id AND ww.span_key = s.span_key)
        SELECT
          CASE WHEN NOT b.eligible THEN b.keep0
               WHEN b.score IS NULL THEN false
               ELSE {kept} END AS keep,
          CASE WHEN NOT b.eligible THEN b.reason0
               WHEN b.score IS NULL THEN {text(f"{TOPN_REASON}no {self.by} value")}
               WHEN {kept} THEN NULL
               WHEN d.sr = 1 THEN {text(over)}
               WHEN {cap} IS NULL OR d.winner_rank <= {cap}
                 THEN {text(f"{TOPN_REASON}not the best of its span")}
               ELSE {text(over)} END AS drop_reason,
          CAST(CASE WHEN b.eligible AND {kept} THEN d.own_rank END AS INTEGER) AS topn_rank,
          b.eligible AS _eligible
        FROM base b LEFT JOIN decided d ON d._row = b._row
        ORDER BY b._row"""

    def prepare(self, ctx: StepContext) -> None:
        # 2 GB: the windows of 10M clips spill less (36 s at 10M vs 41 s with 1 GB; 2.2 GB peak)
        sql = ctx.sql(memory=TOPN_MEMORY)
        reader = sql.sql(self.query(ctx.schema)).to_arrow_reader(ctx.batch_rows)
        self._updates = AlignedUpdates(reader)

    def apply(self, batch: pa.RecordBatch | pa.Table) -> dict[str, pa.Array]:
        assert self._updates is not None, "prepare() first"
        part = self._updates.take(batch.num_rows)
        self._count(part)
        return {
            "keep": part.column("keep").combine_chunks(),
            "drop_reason": part.column("drop_reason").combine_chunks().cast(pa.string()),
            "topn_rank": part.column("topn_rank").combine_chunks().cast(pa.int32()),
        }

    def _count(self, part: pa.Table) -> None:
        eligible = part.column("_eligible")
        reasons = pc.filter(part.column("drop_reason"), eligible)
        self.counts["eligible"] += pc.sum(eligible).as_py() or 0
        self.counts["kept"] += pc.count(part.column("topn_rank")).as_py()
        self.counts["videos"] += pc.sum(pc.equal(part.column("topn_rank"), 1)).as_py() or 0
        for item in pc.value_counts(reasons.drop_null()).to_pylist():
            text = item["values"]
            kind = "span" if "span" in text else "cap" if "beyond" in text else "unscored"
            self.counts[kind] += item["counts"]

    def params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("by", "n", "ascending", "span_column")}

    def summary(self) -> dict[str, Any]:
        return {
            **self.params(),
            "eligible": self.counts["eligible"],
            "kept": self.counts["kept"],
            "dropped_unscored": self.counts["unscored"],
            "dropped_same_span": self.counts["span"],
            "dropped_over_cap": self.counts["cap"],
            "videos": self.counts["videos"],
        }


def select_top_n(
    clips: pa.Table, by: str, n: int | None = 1, ascending: bool = False
) -> tuple[pa.Table, dict[str, Any]]:
    """Mark an in-memory ``clips`` table so at most ``n`` rows per video and one per span stay
    kept (the same query as the streamed step, over the Arrow table)."""
    step = TopNStep(by, n, ascending)
    with connection() as con:
        rows = pa.array(np.arange(clips.num_rows, dtype=np.int64))
        view = clips.drop_columns([c for c in clips.column_names if c not in (*_NEEDED, by)])
        con.register("clips_arrow", view.append_column("_row", rows))
        con.execute("CREATE VIEW clips AS SELECT * FROM clips_arrow")
        answer = con.sql(step.query(clips.schema)).to_arrow_table()
    step._updates = AlignedUpdates(iter(answer.to_batches()), answer.schema)
    table = clips
    for name, values in step.apply(clips).items():
        table = set_column(table, name, values)
    return table, step.summary()


_NEEDED = ("clip_id", "video_id", "keep", "drop_reason", "status", *SPAN_COLUMNS)


def step_record(summary: dict[str, Any]) -> dict[str, Any]:
    """Provenance entry of a top-N applied inside another command (a filter preset)."""
    params = {k: summary[k] for k in ("by", "n", "ascending", "span_column")}
    return {"name": STEP_NAME, "version": STEP_VERSION, "params": params, "summary": summary}
