"""What the report needs from a run's tables, in bounded memory at any size.

Counts (the funnel, errors, drop reasons, how many clips each score has, duplicate groups) are
exact: DuckDB aggregates over ``clips.parquet``. Pictures (histograms, percentile galleries,
distributions) and cards come from a bounded row set: a uniform sample of ``sample_rows`` clips
(seeded, so the same table gives the same report) plus every row a section shows (the first
kept clips, the first examples of each drop reason, the first duplicate groups, the clips
nearest each cluster centre), in table order. A table of at most ``sample_rows`` clips is read
whole, so small runs get exactly the report they always had.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.report.sections import (
    CLUSTERS_FILE,
    EXAMPLES_PER_REASON,
    MAX_DUP_GROUPS,
    read_json,
)
from clipsieve.steps.sql import connection, ident, text

SAMPLE_ROWS = 100_000
MAX_ERRORS = 1000

# columns the report reads, with the type to use where a table lacks one
_CLIP_COLUMNS = {
    "clip_id": "VARCHAR", "video_id": "VARCHAR", "shot_index": "INTEGER", "path": "VARCHAR",
    "source_path": "VARCHAR", "status": "VARCHAR", "error": "VARCHAR", "keep": "BOOLEAN",
    "drop_reason": "VARCHAR", "filter_pass": "BOOLEAN", "dup_group": "BIGINT",
}  # fmt: skip
_VIDEO_COLUMNS = {"video_id": "VARCHAR", "path": "VARCHAR", "status": "VARCHAR", "error": "VARCHAR"}
_KEPT = "(coalesce(keep, false) AND coalesce(status = 'ok', false))"
_NOT_ERROR = "(status IS DISTINCT FROM 'error')"


@dataclass
class ReportData:
    """Exact counts plus the bounded rows the report draws from (see the module docstring)."""

    rows: list[dict[str, Any]]
    counts: list[tuple[str, int]]
    errors: list[dict[str, str]]
    errors_total: int
    drop_reasons: list[tuple[str, int]]
    kept_rows: list[dict[str, Any]]
    kept_total: int
    funnel_stats: dict[str, Any]
    score_counts: dict[str, int]
    reason_totals: dict[str, int]
    dup_total: int
    total: int
    sampled: int | None = None  # size of the uniform sample when the table was bigger
    schema: pa.Schema = field(default_factory=lambda: pa.schema([]))
    content: dict[str, Any] | None = None  # content types and detectors (see content_summary)


def _source(con: Any, name: str, table: pa.Table | Path, columns: dict[str, str]) -> pa.Schema:
    """Register ``table`` (or its Parquet file) as view ``name``, with ``_row`` and every
    column of ``columns`` (null when the table lacks it)."""
    if isinstance(table, pa.Table):
        con.register(f"{name}_arrow", table)
        origin = f"(SELECT *, row_number() OVER () - 1 AS _row FROM {name}_arrow)"
        schema = table.schema
    else:
        import pyarrow.parquet as pq

        origin = (
            f"(SELECT * EXCLUDE (file_row_number), file_row_number AS _row "
            f"FROM read_parquet({text(str(table))}, file_row_number = true))"
        )
        schema = pq.read_schema(table)
    extra = ", ".join(
        f'NULL::{kind} AS "{col}"' for col, kind in columns.items() if col not in schema.names
    )
    con.execute(f"CREATE VIEW {name} AS SELECT *{', ' + extra if extra else ''} FROM {origin}")
    return schema


def load_report_data(
    run_dir: Path,
    clips: pa.Table | Path | None,
    videos: pa.Table | Path | None,
    score_columns: Sequence[str],
    max_thumbs: int,
    sample_rows: int = SAMPLE_ROWS,
) -> ReportData:
    """Query the tables once for everything the report shows."""
    with connection() as con:
        clips = clips if clips is not None else pa.table({"clip_id": pa.array([], pa.string())})
        schema = _source(con, "clips", clips, _CLIP_COLUMNS)
        if videos is not None:
            _source(con, "videos", videos, _VIDEO_COLUMNS)
        else:
            con.execute(
                "CREATE VIEW videos AS SELECT NULL::VARCHAR AS video_id, NULL::VARCHAR AS path, "
                "NULL::VARCHAR AS status, NULL::VARCHAR AS error WHERE false"
            )
        return _query(con, run_dir, schema, score_columns, max_thumbs, sample_rows)


def _pairs(con: Any, query: str) -> list[tuple[Any, int]]:
    return [(row[0], int(row[1])) for row in con.sql(query).fetchall()]


def _query(
    con: Any,
    run_dir: Path,
    schema: pa.Schema,
    score_columns: Sequence[str],
    max_thumbs: int,
    sample_rows: int,
) -> ReportData:
    total, errs, kept, dropped, cut, shots, ok_rows = con.sql(
        f"""SELECT count(*),
                   count(*) FILTER (WHERE status = 'error'),
                   count(*) FILTER (WHERE {_KEPT}),
                   count(*) FILTER (WHERE NOT {_KEPT} AND {_NOT_ERROR}),
                   count(*) FILTER (WHERE coalesce(path <> '', false) AND status = 'ok'),
                   count(DISTINCT (video_id, shot_index)) FILTER (WHERE shot_index IS NOT NULL),
                   count(*) FILTER (WHERE {_NOT_ERROR})
            FROM clips"""
    ).fetchall()[0]
    v_total, v_ok, v_err = con.sql(
        "SELECT count(*), count(*) FILTER (WHERE status = 'ok'), "
        "count(*) FILTER (WHERE status = 'error') FROM videos"
    ).fetchall()[0]
    counts = [
        ("videos ingested", v_total),
        ("videos probed ok", v_ok),
        ("videos with errors", v_err),
        ("shots detected", shots),
        ("clips planned", total),
        ("clips kept", kept),
        ("clips dropped", dropped),
        ("clips with errors", errs),
        ("clips cut", cut),
    ]
    errors = [
        {"what": "video", "item": path or vid, "error": error or ""}
        for vid, path, error in con.sql(
            f"SELECT video_id, path, error FROM videos WHERE status = 'error' LIMIT {MAX_ERRORS}"
        ).fetchall()
    ]
    errors += [
        {"what": "clip", "item": f"{cid} ({source or vid})", "error": error or ""}
        for cid, source, vid, error in con.sql(
            "SELECT clip_id, source_path, video_id, error FROM clips WHERE status = 'error' "
            f"ORDER BY _row LIMIT {max(0, MAX_ERRORS - len(errors))}"
        ).fetchall()
    ]
    reason = (
        "coalesce(nullif(drop_reason, ''), CASE WHEN keep = false THEN 'not selected' "
        "ELSE 'not decided' END)"
    )
    drop_reasons = _pairs(
        con,
        f"SELECT {reason}, count(*) FROM clips WHERE NOT {_KEPT} AND {_NOT_ERROR} GROUP BY 1",
    )
    no_reason = "coalesce(nullif(drop_reason, ''), 'not kept (no reason)')"
    funnel_stats = {
        "total": total,
        "ok": ok_rows,
        "kept": kept,
        "later": Counter(
            dict(
                _pairs(
                    con,
                    f"SELECT {no_reason}, count(*) FROM clips WHERE filter_pass = true "
                    f"AND NOT {_KEPT} AND {_NOT_ERROR} GROUP BY 1",
                )
            )
        ),
        "reasons": Counter(
            dict(
                _pairs(
                    con,
                    f"SELECT {no_reason}, count(*) FROM clips WHERE NOT {_KEPT} "
                    f"AND {_NOT_ERROR} GROUP BY 1",
                )
            )
        ),
    }
    score_counts: dict[str, int] = {}
    numeric = [c for c in score_columns if c in schema.names]
    if numeric:
        parts = ", ".join(
            f"count(*) FILTER (WHERE isfinite(CAST({ident(c)} AS DOUBLE)))" for c in numeric
        )
        values = con.sql(f"SELECT {parts} FROM clips").fetchall()[0]
        score_counts = dict(zip(numeric, (int(v) for v in values), strict=True))
    reason_totals = dict(
        _pairs(
            con,
            f"SELECT drop_reason, count(*) FROM clips WHERE NOT {_KEPT} AND {_NOT_ERROR} "
            "AND coalesce(drop_reason, '') <> '' GROUP BY 1",
        )
    )
    groups = [
        g
        for (g,) in con.sql(
            "SELECT dup_group FROM clips WHERE dup_group IS NOT NULL GROUP BY dup_group "
            "HAVING count(*) > 1 ORDER BY CAST(dup_group AS VARCHAR)"
        ).fetchall()
    ]
    nearest = _cluster_ids(run_dir)
    chosen = _chosen_rows(con, total, max_thumbs, groups[:MAX_DUP_GROUPS], nearest, sample_rows)
    own = ", ".join(ident(n) for n in schema.names)  # the table's columns, not the added nulls
    rows = con.sql(
        f"SELECT {own} FROM clips WHERE _row IN ({chosen}) ORDER BY _row"
    ).to_arrow_table()
    rows = _restore_types(rows, schema).to_pylist()
    kept_rows = con.sql(
        f"SELECT {own} FROM clips WHERE {_KEPT} ORDER BY _row LIMIT {max_thumbs}"
    ).to_arrow_table()
    return ReportData(
        content=content_summary(con, schema),
        rows=rows,
        counts=counts,
        errors=errors,
        errors_total=v_err + errs,
        drop_reasons=sorted(drop_reasons, key=lambda kv: (-kv[1], kv[0])),
        kept_rows=_restore_types(kept_rows, schema).to_pylist(),
        kept_total=kept,
        funnel_stats=funnel_stats,
        score_counts=score_counts,
        reason_totals=reason_totals,
        dup_total=len(groups),
        total=total,
        sampled=sample_rows if total > sample_rows else None,
        schema=schema,
    )


# the offline content detectors' flags (score/content.py): a clip counts when the flag is true
CONTENT_DETECTORS = ("split_screen", "pip", "ken_burns")
CONTENT_RATIOS = ("overlay_text_ratio", "still_area_frac", "logo_area")
EXAMPLES_PER_TYPE = 4


def content_summary(con: Any, schema: pa.Schema) -> dict[str, Any] | None:
    """What the clips are: counts per ``content_type`` (all and kept), per flag, unreadable
    answers, a few example rows per type, and how many clips each offline detector flagged.
    None when neither the classify pass nor the content scorers ran."""
    names = set(schema.names)
    out: dict[str, Any] = {"types": [], "flags": [], "examples": {}, "detectors": []}
    if "content_type" in names:
        out["types"] = [
            (kind, int(n), int(kept))
            for kind, n, kept in con.sql(
                f"SELECT content_type, count(*), count(*) FILTER (WHERE {_KEPT}) FROM clips "
                "WHERE content_type IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
        ]
        out["unanswered"] = con.sql(
            "SELECT count(*) FROM clips WHERE content_type IS NULL AND content_error IS NOT NULL"
        ).fetchall()[0][0]
        if "content_flags" in names:
            out["flags"] = _pairs(
                con,
                "SELECT flag, count(*) FROM (SELECT unnest(content_flags) AS flag FROM clips) "
                "GROUP BY 1 ORDER BY 2 DESC, 1",
            )
        own = ", ".join(ident(n) for n in schema.names)
        examples = con.sql(
            f"SELECT {own} FROM clips WHERE content_type IS NOT NULL QUALIFY row_number() "
            f"OVER (PARTITION BY content_type ORDER BY _row) <= {EXAMPLES_PER_TYPE} ORDER BY _row"
        ).to_arrow_table()
        for row in _restore_types(examples, schema).to_pylist():
            out["examples"].setdefault(row["content_type"], []).append(row)
    for column in CONTENT_DETECTORS:
        if column in names:
            flagged = con.sql(f"SELECT count(*) FROM clips WHERE {ident(column)}").fetchall()
            out["detectors"].append((column, int(flagged[0][0])))
    for column in CONTENT_RATIOS:
        if column in names:
            value = con.sql(
                f"SELECT count(*) FILTER (WHERE {ident(column)} > 0.05), count({ident(column)}) "
                "FROM clips"
            ).fetchall()[0]
            out["detectors"].append((f"{column} > 0.05", int(value[0])))
    return out if out["types"] or out["detectors"] else None


def _cluster_ids(run_dir: Path) -> list[str]:
    info = read_json(run_dir / CLUSTERS_FILE) or {}
    ids: list[str] = []
    for entry in info.get("clusters") or []:
        if isinstance(entry, dict):
            ids.extend(str(i) for i in entry.get("nearest") or [])
    return ids


def _chosen_rows(
    con: Any,
    total: int,
    max_thumbs: int,
    groups: list[Any],
    nearest: list[str],
    sample_rows: int,
) -> str:
    """A query of the ``_row`` positions the bounded row set holds."""
    if total <= sample_rows:
        return "SELECT _row FROM clips"
    parts = [
        f"SELECT _row FROM clips USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE (0)",
        f"SELECT _row FROM clips WHERE {_KEPT} ORDER BY _row "
        f"LIMIT {max(max_thumbs, EXAMPLES_PER_REASON)}",
        f"SELECT _row FROM (SELECT _row, row_number() OVER (PARTITION BY drop_reason ORDER BY "
        f"_row) AS n FROM clips WHERE NOT {_KEPT} AND {_NOT_ERROR} AND drop_reason IS NOT NULL)"
        f" WHERE n <= {EXAMPLES_PER_REASON}",
    ]
    if groups:
        listed = ", ".join(str(int(g)) for g in groups)
        parts.append(f"SELECT _row FROM clips WHERE dup_group IN ({listed})")
    if nearest:
        listed = ", ".join(text(i) for i in nearest)
        parts.append(f"SELECT _row FROM clips WHERE clip_id IN ({listed})")
    return " UNION ".join(f"SELECT _row FROM ({part})" for part in parts)


def _restore_types(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """DuckDB's answer with the table's own column types back (int32 stays int32, ...)."""
    try:
        return rows.cast(pa.schema([schema.field(n) for n in rows.schema.names]))
    except pa.ArrowException:
        return rows
