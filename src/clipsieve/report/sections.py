"""The selection parts of the report: funnel, score histograms, galleries, duplicates, clusters.

Each builder turns the clip rows (plus ``funnel.json`` / ``clusters.json`` when the selection
commands wrote them) into plain dicts for the template. Thumbnails come from one shared
:class:`ThumbBudget`, so a run with many scores and clusters still renders in seconds: once the
budget is spent, cards say "no thumbnail" instead of decoding more video.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from clipsieve.report import figures
from clipsieve.table import STATUS_ERROR, STATUS_OK

FUNNEL_FILE = "funnel.json"
CLUSTERS_FILE = "clusters.json"
PERCENTILES = (5, 25, 50, 75, 95)
NOT_SCORES = frozenset({"cluster_id", "dup_group", "filter_pass", "text_boxes"})
EXAMPLES_PER_REASON = 4
MAX_DUP_GROUPS = 12
MAX_CLUSTER_GRIDS = 24
PER_CLUSTER = 4

Row = dict[str, Any]
CardMaker = Callable[[Mapping[str, Any]], dict[str, Any]]


class ThumbBudget:
    """Counts thumbnails decoded for the selection sections; a card past the budget has none."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cache: dict[str, str | None] = {}

    def get(self, clip_id: str, make: Callable[[], str | None]) -> str | None:
        if clip_id in self._cache:
            return self._cache[clip_id]
        if self.used >= self.limit:
            return None
        self.used += 1
        self._cache[clip_id] = make()
        return self._cache[clip_id]


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON side file of the run, or None when absent or unreadable (a report never fails)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_kept(row: Mapping[str, Any]) -> bool:
    return row.get("keep") is True and row.get("status") == STATUS_OK


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# ----------------------------------------------------------------------------------- funnel


def funnel(
    clips: Sequence[Row],
    recorded: Mapping[str, Any] | None,
    stats: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Funnel rows ``{"label", "rows_in", "passed", "pct"}`` and where they come from.

    From ``funnel.json`` (the filter's steps, in order) when present; otherwise rebuilt from the
    table: all clips, clips without errors, then one step per drop reason, largest first.
    ``stats``: the same counts computed over the whole table (``total``, ``ok``, ``kept``,
    ``later``, ``reasons``) when ``clips`` is only a sample of it.
    """
    steps: list[dict[str, Any]] = []
    if recorded and isinstance(recorded.get("steps"), list):
        total = recorded.get("total", stats["total"] if stats else len(clips))
        steps.append({"label": "clips in the table", "rows_in": total, "passed": total})
        eligible = recorded.get("eligible")
        if eligible is not None:
            steps.append(
                {"label": "still kept when the filter ran", "rows_in": total, "passed": eligible}
            )
        for step in recorded["steps"]:
            if isinstance(step, Mapping):
                steps.append(
                    {
                        "label": str(step.get("condition")),
                        "rows_in": step.get("rows_in"),
                        "passed": step.get("passed"),
                    }
                )
        # rows that passed the filter (``filter_pass``) but a later step (dedup, top-N,
        # balance) dropped: one more step per reason, so the funnel ends at the kept count
        later = (
            stats["later"]
            if stats
            else Counter(
                str(c.get("drop_reason") or "not kept (no reason)")
                for c in clips
                if c.get("filter_pass") is True
                and not is_kept(c)
                and c.get("status") != STATUS_ERROR
            )
        )
        alive = steps[-1]["passed"] if steps else 0
        for reason, n in sorted(later.items(), key=lambda kv: (-kv[1], kv[0])):
            steps.append(
                {"label": f"not dropped by {reason}", "rows_in": alive, "passed": alive - n}
            )
            alive -= n
        source = f"funnel.json: {recorded.get('where', '')}"
    else:
        ok = [c for c in clips if c.get("status") != STATUS_ERROR]
        total = stats["total"] if stats else len(clips)
        ok_count = stats["ok"] if stats else len(ok)
        steps.append({"label": "clips planned", "rows_in": total, "passed": total})
        steps.append({"label": "without errors", "rows_in": total, "passed": ok_count})
        reasons = (
            stats["reasons"]
            if stats
            else Counter(
                c.get("drop_reason") or "not kept (no reason)" for c in ok if not is_kept(c)
            )
        )
        alive = ok_count
        for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            steps.append(
                {"label": f"not dropped by {reason}", "rows_in": alive, "passed": alive - n}
            )
            alive -= n
        source = "keep / drop_reason counts (no funnel.json)"
    top = max((s["rows_in"] or 0 for s in steps), default=0) or 1
    for step in steps:
        passed = step["passed"] or 0
        step["pct"] = round(100.0 * passed / top, 1)
    kept = stats["kept"] if stats else sum(is_kept(c) for c in clips)
    return {"steps": steps, "source": source, "kept": kept}


def thresholds(recorded: Mapping[str, Any] | None) -> dict[str, list[tuple[float, str]]]:
    """Column -> [(value, label)] of the numeric thresholds in ``funnel.json``'s steps."""
    out: dict[str, list[tuple[float, str]]] = {}
    for step in (recorded or {}).get("steps") or []:
        if not isinstance(step, Mapping) or not step.get("column"):
            continue
        value, op = step.get("value"), str(step.get("op") or "")
        values = value if isinstance(value, list) and "between" in op else [value]
        for v in values:
            number = _number(v)
            if number is not None:
                out.setdefault(str(step["column"]), []).append((number, f"{op} {v:g}"))
    return out


# ------------------------------------------------------------------------ scores and galleries


def numeric_columns(
    clips: Sequence[Row], table_scores: Sequence[str], counts: Mapping[str, int] | None = None
) -> list[str]:
    """Score columns worth a histogram: numeric, not ids, with at least one value (``counts``:
    values per column over the whole table, when ``clips`` is a sample)."""
    out = []
    for name in table_scores:
        if name in NOT_SCORES or name.startswith("dup_"):
            continue
        if counts is not None:
            if counts.get(name, 0) > 0:
                out.append(name)
        elif any(_number(c.get(name)) is not None for c in clips):
            out.append(name)
    return out


def histograms(
    clips: Sequence[Row],
    columns: Sequence[str],
    lines: Mapping[str, list[tuple[float, str]]],
    counts: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    out = []
    for name in columns:
        scored = [c for c in clips if _number(c.get(name)) is not None]
        values = [float(c[name]) for c in scored]
        kept = [float(c[name]) for c in scored if is_kept(c)]
        out.append(
            {
                "column": name,
                "image": figures.histogram(name, values, kept, lines.get(name, [])),
                "count": counts.get(name, len(values)) if counts else len(values),
                "thresholds": [label for _, label in lines.get(name, [])],
            }
        )
    return out


def percentile_galleries(
    clips: Sequence[Row], columns: Sequence[str], card: CardMaker
) -> list[dict[str, Any]]:
    """Per score: the clips at the 5/25/50/75/95th percentile (nearest rank), with values."""
    out = []
    for name in columns:
        scored = sorted(
            (c for c in clips if _number(c.get(name)) is not None and c.get("status") == STATUS_OK),
            key=lambda c: (float(c[name]), str(c.get("clip_id"))),
        )
        if not scored:
            continue
        cards = []
        for p in PERCENTILES:
            row = scored[round(p / 100 * (len(scored) - 1))]
            cards.append({**card(row), "label": f"p{p}: {name} = {float(row[name]):.4g}"})
        out.append({"column": name, "cards": cards})
    return out


def _reason_column(reason: str, recorded: Mapping[str, Any] | None) -> str | None:
    for step in (recorded or {}).get("steps") or []:
        if isinstance(step, Mapping) and reason.endswith(str(step.get("condition"))):
            return step.get("column")
    return None


def drop_examples(
    clips: Sequence[Row],
    recorded: Mapping[str, Any] | None,
    card: CardMaker,
    totals: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Kept examples once, then up to :data:`EXAMPLES_PER_REASON` dropped clips per reason."""
    kept = [c for c in clips if is_kept(c)][:EXAMPLES_PER_REASON]
    by_reason: dict[str, list[Row]] = {}
    for c in clips:
        if not is_kept(c) and c.get("status") != STATUS_ERROR and c.get("drop_reason"):
            by_reason.setdefault(str(c["drop_reason"]), []).append(c)
    groups = []

    def size(reason: str) -> int:
        return totals.get(reason, len(by_reason[reason])) if totals else len(by_reason[reason])

    for reason, rows in sorted(by_reason.items(), key=lambda kv: (-size(kv[0]), kv[0])):
        column = _reason_column(reason, recorded)
        cards = []
        for row in rows[:EXAMPLES_PER_REASON]:
            value = row.get(column) if column else None
            label = f"{column} = {value:.4g}" if _number(value) is not None else None
            cards.append({**card(row), "label": label})
        groups.append({"reason": reason, "total": size(reason), "cards": cards})
    return {"kept": [card(c) for c in kept], "groups": groups}


def duplicate_groups(
    clips: Sequence[Row], card: CardMaker, total: int | None = None
) -> dict[str, Any]:
    """Duplicate groups (``dup_group``), the kept copy first, at most :data:`MAX_DUP_GROUPS`."""
    groups: dict[Any, list[Row]] = {}
    for c in clips:
        if c.get("dup_group") is not None:
            groups.setdefault(c["dup_group"], []).append(c)
    groups = {g: rows for g, rows in groups.items() if len(rows) > 1}
    out = []
    for group in sorted(groups, key=str)[:MAX_DUP_GROUPS]:
        rows = sorted(groups[group], key=lambda c: (c.get("dup_of") is not None, str(c["clip_id"])))
        cards = []
        for row in rows[:PER_CLUSTER]:
            if row.get("dup_of"):
                role = f"duplicate of {row['dup_of']}"
            else:  # and why it won (dedup's ranking: quality first by default)
                role = f"kept copy: {row['dup_kept_by']}" if row.get("dup_kept_by") else "kept copy"
            cards.append({**card(row), "label": role})
        out.append({"group": str(group), "size": len(rows), "cards": cards})
    return {"groups": out, "total": len(groups) if total is None else total}


# ---------------------------------------------------------------------------------- clusters


def clusters_section(
    info: Mapping[str, Any] | None, by_id: Mapping[str, Row], card: CardMaker
) -> dict[str, Any] | None:
    """Map, count plot, keyword table and sample grids from ``clusters.json``."""
    if not info or not isinstance(info.get("clusters"), list):
        return None
    entries = [c for c in info["clusters"] if isinstance(c, Mapping)]
    names = {}
    for c in entries:
        words = [k.get("word") for k in c.get("keywords") or [] if isinstance(k, Mapping)]
        label = c.get("description") or ", ".join(words[:2])
        names[int(c["id"])] = f"{c['id']}: {label}" if label else str(c["id"])
    points = (info.get("map") or {}).get("points") or []
    ids = [str(c["id"]) for c in entries]
    balance = info.get("balance")
    if balance:
        series = {
            "kept before balance": [balance["before"].get(i, 0) for i in ids],
            "kept after balance": [balance["after"].get(i, 0) for i in ids],
        }
    else:
        series = {
            "clips": [c.get("size", 0) for c in entries],
            "kept": [c.get("kept", 0) for c in entries],
        }
    rows = []
    for c in entries[:MAX_CLUSTER_GRIDS]:
        samples = [by_id[i] for i in c.get("nearest") or [] if i in by_id][:PER_CLUSTER]
        rows.append(
            {
                "id": c["id"],
                "size": c.get("size"),
                "kept": c.get("kept"),
                "keywords": ", ".join(
                    f"{k['word']} ({k['score']:.2f})" for k in c.get("keywords") or []
                ),
                "source": c.get("keyword_source"),
                "description": c.get("description"),
                "cards": [card(r) for r in samples],
            }
        )

    def fmt(value: Any) -> str:
        return f"{value:.3f}" if _number(value) is not None else "n/a"

    return {
        "k": info.get("k"),
        "k_mode": info.get("k_mode"),
        "silhouette": fmt(info.get("silhouette")),
        "davies_bouldin": fmt(info.get("davies_bouldin")),
        "n_clustered": info.get("n_clustered"),
        "map": figures.cluster_map(points, names, (info.get("map") or {}).get("method", "tsne"))
        if points
        else None,
        "counts": figures.bars("clips per cluster", ids, series),
        "balance": balance,
        "rows": rows,
        "hidden": max(0, len(entries) - MAX_CLUSTER_GRIDS),
    }


# --------------------------------------------------------------------- motion and duration


def distributions(clips: Sequence[Row]) -> list[dict[str, Any]]:
    """Camera-motion classes and clip durations, all clips without errors vs kept."""
    ok = [c for c in clips if c.get("status") == STATUS_OK]
    out = []
    motion = Counter(str(c["camera_motion"]) for c in ok if c.get("camera_motion"))
    if motion:
        labels = sorted(motion, key=lambda m: (-motion[m], m))
        kept = Counter(str(c["camera_motion"]) for c in ok if c.get("camera_motion") and is_kept(c))
        out.append(
            {
                "title": "camera motion",
                "image": figures.bars(
                    "camera motion",
                    labels,
                    {"all": [motion[m] for m in labels], "kept": [kept[m] for m in labels]},
                ),
            }
        )
    durations = [(_duration(c), is_kept(c)) for c in ok]
    values = [d for d, _ in durations if d is not None]
    if values:
        out.append(
            {
                "title": "duration (s)",
                "image": figures.histogram(
                    "duration (s)", values, [d for d, k in durations if d is not None and k]
                ),
            }
        )
    return out


def _duration(row: Mapping[str, Any]) -> float | None:
    if _number(row.get("duration_s")) is not None:
        return float(row["duration_s"])
    if row.get("num_frames") and row.get("fps"):
        return row["num_frames"] / row["fps"]
    return None


def selection_context(
    run_dir: Path,
    clips: Sequence[Row],
    table_scores: Sequence[str],
    card: CardMaker,
    exact: Any = None,
) -> dict[str, Any]:
    """Everything the template's selection sections need.

    ``exact``: a :class:`~clipsieve.report.data.ReportData` whose whole-table counts replace
    the ones ``clips`` (then a bounded sample) would give.
    """
    recorded = read_json(run_dir / FUNNEL_FILE)
    counts = exact.score_counts if exact is not None else None
    columns = numeric_columns(clips, table_scores, counts)
    by_id = {str(c.get("clip_id")): c for c in clips}
    return {
        "funnel": funnel(clips, recorded, exact.funnel_stats if exact is not None else None),
        "histograms": histograms(clips, columns, thresholds(recorded), counts),
        "galleries": percentile_galleries(clips, columns, card),
        "examples": drop_examples(
            clips, recorded, card, exact.reason_totals if exact is not None else None
        ),
        "duplicates": duplicate_groups(clips, card, exact.dup_total if exact is not None else None),
        "clusters": clusters_section(read_json(run_dir / CLUSTERS_FILE), by_id, card),
        "distributions": distributions(clips),
    }
