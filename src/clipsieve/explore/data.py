"""What the threshold explorer computes: histograms, the live count, clips near a threshold, and
the chosen ranges as a filter expression and a preset.

The score columns (numbers and booleans, bookkeeping columns left out) are read once, column by
column, into numpy arrays (a million clips and ten columns: ~100 MB); nothing else of the table
is held. Each range's pass mask is cached, so moving one control recomputes one column's mask
and ANDs it with the others: a few milliseconds at a million clips.

Conditions follow ``clipsieve filter``: allow-lists over kept, healthy clips; a clip whose value
is null fails a condition on that column (``--keep-unscored`` is not offered here).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from clipsieve.errors import UserError
from clipsieve.export.opensora import score_columns
from clipsieve.runfolder import clips_path, resolve_clip_file
from clipsieve.select.expr import ident_text

BINS = 40
STRIP = 6  # clips shown on each side of a threshold
# flags of the content detectors and similar: a two-sided range on 0/1
BOOLEAN = "bool"


@dataclass
class Column:
    name: str
    values: np.ndarray  # float64, NaN for null
    kind: str  # "number" | "bool"
    lo: float
    hi: float
    counts: list[int] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "min": self.lo, "max": self.hi,
                "counts": self.counts, "edges": self.edges,
                "nulls": int(np.isnan(self.values).sum())}  # fmt: skip


class ExploreData:
    """The explorer's view of one run folder (see the module docstring)."""

    def __init__(self, run_dir: str | Path, columns: list[str] | None = None) -> None:
        self.run_dir = Path(run_dir)
        path = clips_path(self.run_dir)
        schema = pq.read_schema(path)
        names = columns or [
            *score_columns(schema),
            *(f.name for f in schema if pa.types.is_boolean(f.type) and f.name not in _SKIP),
        ]
        unknown = [n for n in names if n not in schema.names]
        if unknown:
            raise UserError(f"{self.run_dir} has no column {unknown[0]!r} to explore")
        if not names:
            raise UserError(f"{self.run_dir} has no score columns: run `clipsieve score` first")
        extra = [c for c in ("clip_id", "path", "keep", "status") if c in schema.names]
        table = pq.read_table(path, columns=[*names, *extra])
        rows = table.num_rows
        keep = table.column("keep") if "keep" in extra else pa.chunked_array([[True] * rows])
        ok = (
            pc.equal(table.column("status"), "ok")
            if "status" in extra
            else pa.chunked_array([[True] * rows])
        )
        self.eligible = np.asarray(
            pc.and_(pc.fill_null(keep, False), pc.fill_null(ok, False)).to_numpy(
                zero_copy_only=False
            ),
            bool,
        )
        self.clip_ids = (
            table.column("clip_id").combine_chunks()
            if "clip_id" in extra
            else pa.array([str(i) for i in range(rows)])
        )
        self.paths = (
            table.column("path").combine_chunks()
            if "path" in extra
            else pa.nulls(rows, pa.string())
        )
        self.columns = {name: _column(name, table.column(name)) for name in names}
        self.total = int(self.eligible.sum())
        self._masks: dict[str, tuple[tuple[float, float], np.ndarray]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------ queries

    def ranges(self, conditions: dict[str, Any]) -> dict[str, tuple[float, float]]:
        """Checked ``{column: (lo, hi)}``; one line for a column that is not explored."""
        out = {}
        for name, bounds in conditions.items():
            if name not in self.columns:
                raise UserError(f"no explored column {name!r}")
            lo, hi = (float(b) for b in bounds)
            if math.isnan(lo) or math.isnan(hi) or lo > hi:
                raise UserError(f"{name}: give a range low to high, not {bounds}")
            out[name] = (lo, hi)
        return out

    def mask(self, name: str, bounds: tuple[float, float]) -> np.ndarray:
        """Rows whose ``name`` is within ``bounds`` (cached per column)."""
        with self._lock:
            cached = self._masks.get(name)
            if cached is not None and cached[0] == bounds:
                return cached[1]
        values = self.columns[name].values
        with np.errstate(invalid="ignore"):
            passed = (values >= bounds[0]) & (values <= bounds[1])
        with self._lock:
            self._masks[name] = (bounds, passed)
        return passed

    def passing(
        self, ranges: dict[str, tuple[float, float]], skip: str | None = None
    ) -> np.ndarray:
        """Eligible rows that pass every range (but ``skip``'s)."""
        passed = self.eligible.copy()
        for name, bounds in ranges.items():
            if name != skip and self._narrows(name, bounds):
                passed &= self.mask(name, bounds)
        return passed

    def _narrows(self, name: str, bounds: tuple[float, float]) -> bool:
        """A range that covers the whole column keeps nulls too: it is no condition."""
        column = self.columns[name]
        return bounds[0] > column.lo or bounds[1] < column.hi

    def count(self, ranges: dict[str, tuple[float, float]]) -> dict[str, Any]:
        passed = self.passing(ranges)
        return {"count": int(passed.sum()), "total": self.total}

    def strip(
        self, ranges: dict[str, tuple[float, float]], name: str, edge: str
    ) -> dict[str, list[dict[str, Any]]]:
        """Clips that pass every other range and sit just inside and just outside ``name``'s
        ``edge`` (``lo`` or ``hi``) threshold, nearest first."""
        bounds = ranges.get(name, (self.columns[name].lo, self.columns[name].hi))
        threshold = bounds[0] if edge == "lo" else bounds[1]
        others = self.passing(ranges, skip=name)
        values = self.columns[name].values
        with np.errstate(invalid="ignore"):
            inside = others & (values >= bounds[0]) & (values <= bounds[1])
            outside = others & ((values < threshold) if edge == "lo" else (values > threshold))
        return {"inside": self._nearest(inside, values, threshold),
                "outside": self._nearest(outside, values, threshold)}  # fmt: skip

    def _nearest(self, rows: np.ndarray, values: np.ndarray, threshold: float) -> list[dict]:
        index = np.flatnonzero(rows)
        if index.size == 0:
            return []
        distance = np.abs(values[index] - threshold)
        take = min(STRIP, index.size)
        chosen = index[np.argpartition(distance, take - 1)[:take]]
        chosen = chosen[np.argsort(np.abs(values[chosen] - threshold), kind="stable")]
        return [
            {"row": int(i), "clip_id": self.clip_ids[int(i)].as_py(),
             "value": float(values[i]), "has_file": bool(self.paths[int(i)].as_py())}
            for i in chosen
        ]  # fmt: skip

    def clip_file(self, row: int) -> Path | None:
        """The clip file of ``row`` when it lies inside the run folder (no other path is ever
        served); None otherwise."""
        if not 0 <= row < len(self.paths):
            return None
        value = self.paths[row].as_py()
        found = resolve_clip_file(self.run_dir.resolve(), value) if value else None
        return found[1] if found else None

    # ------------------------------------------------------------------------ results

    def expression(self, ranges: dict[str, tuple[float, float]]) -> str:
        """The chosen ranges as one ``clipsieve filter --where`` expression."""
        parts = []
        for name, (lo, hi) in ranges.items():
            column = self.columns[name]
            if not self._narrows(name, (lo, hi)):
                continue
            col = ident_text(name)
            if column.kind == BOOLEAN:
                if lo == hi:
                    parts.append(col if lo >= 0.5 else f"not {col}")
                continue
            if lo > column.lo and hi < column.hi:
                parts.append(f"{col} between {_num(lo)} and {_num(hi)}")
            elif lo > column.lo:
                parts.append(f"{col} >= {_num(lo)}")
            else:
                parts.append(f"{col} <= {_num(hi)}")
        return " and ".join(parts)

    def preset_yaml(self, ranges: dict[str, tuple[float, float]], name: str) -> str:
        """A preset file ``clipsieve filter --preset FILE`` accepts."""
        where = [p for p in self.expression(ranges).split(" and ") if p]
        doc = {
            "name": name,
            "description": f"thresholds chosen with `clipsieve explore` on {self.run_dir.name}",
            "where": where,
        }
        return yaml.safe_dump(doc, sort_keys=False)


_SKIP = {"keep", "filter_pass"}


def _num(value: float) -> str:
    """Exactly the threshold the count used (the shortest text that reads back as it)."""
    return repr(float(value))


def _column(name: str, data: pa.ChunkedArray) -> Column:
    kind = BOOLEAN if pa.types.is_boolean(data.type) else "number"
    values = np.asarray(pc.cast(data, pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Column(name, values, kind, 0.0, 1.0, [0] * BINS, [0.0, 1.0])
    lo, hi = float(finite.min()), float(finite.max())
    if kind == BOOLEAN:
        counts = [int((finite == 0).sum()), int((finite == 1).sum())]
        return Column(name, values, kind, 0.0, 1.0, counts, [0.0, 0.5, 1.0])
    top = hi if hi > lo else lo + 1.0
    counts, edges = np.histogram(finite, bins=BINS, range=(lo, top))
    return Column(name, values, kind, lo, hi, counts.tolist(), edges.tolist())
