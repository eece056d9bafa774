"""Selected vs random: is the selection better than picking the same number of clips at random?

A selection (filter, dedup, top-N, ...) is only worth its complexity if the clips it keeps score
better than a random subset of the same size taken from the same pool. For one metric column:

* **selected** = rows with ``keep`` true and ``status`` ok that have a value for the metric;
* **pool** = rows with ``status`` ok that were *eligible* for selection, i.e. not dropped by the
  length policy (``drop_reason`` ``too_short`` / ``short_tail``: those clips were never
  candidates, and keeping them in the pool would compare against clips no selection could pick),
  and that have a value. The selected rows are part of the pool.
* **random** = ``draws`` subsets of the selected size drawn without replacement from the pool
  (one seeded generator per metric, so adding a metric never changes another's numbers).

The reported difference is selected mean − mean of the random means. Its 95% interval combines
both sources of noise: the selected mean is bootstrapped (resampled with replacement ``draws``
times), each bootstrap mean is paired with one random-subset mean, and the 2.5/97.5 percentiles
of those differences are the interval. The p-value is permutation style: the share of random
subsets at least as good as the selection, ``(1 + k) / (1 + draws)``, so it is never 0.

Direction: higher is better unless the metric is named ``column:low`` (or is one of the known
lower-is-better clipsieve columns in :data:`LOWER_IS_BETTER`); ``column:high`` forces higher.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from clipsieve.errors import UserError
from clipsieve.shots.policy import DROP_SHORT_TAIL, DROP_TOO_SHORT
from clipsieve.table import STATUS_OK

POLICY_REASONS: frozenset[str] = frozenset({DROP_TOO_SHORT, DROP_SHORT_TAIL})
"""Drop reasons that put a clip outside the pool: the length policy decided before selection."""

LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"border_frac", "frozen_ratio", "text_area_ratio", "text_boxes", "nsfw_score"}
)
"""clipsieve score columns where a smaller value means a better clip (black bars, frozen frames,
burned-in text, nudity)."""

NOT_METRICS: frozenset[str] = frozenset(
    {"cluster_id", "cluster_dist", "dup_group", "topn_rank", "filter_pass"}
)
"""Numeric columns that are ids or ranks of the selection itself, not clip quality."""

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Metric:
    """A column to compare and which way is better."""

    column: str
    higher_is_better: bool = True

    @classmethod
    def parse(cls, text: str) -> Metric:
        """``flow_mean``, ``flow_mean:high`` or ``border_frac:low``."""
        column, _, direction = text.strip().partition(":")
        column, direction = column.strip(), direction.strip().lower()
        if not column:
            raise UserError(f"--metric {text!r}: name a column, e.g. --metric flow_mean")
        if direction not in ("", "high", "low"):
            raise UserError(f"--metric {text!r}: the direction after ':' must be 'high' or 'low'")
        if direction:
            return cls(column, direction == "high")
        return cls(column, column not in LOWER_IS_BETTER)

    @property
    def label(self) -> str:
        return self.column if self.higher_is_better else f"{self.column} (lower is better)"


@dataclass
class SubsetResult:
    """Everything measured for one metric; ``verdict`` is the plain-language line."""

    metric: str
    higher_is_better: bool
    n_selected: int
    n_pool: int
    draws: int
    seed: int
    verdict: str
    outcome: str  # better | worse | unclear | skipped
    selected_mean: float | None = None
    # the comparison (None when the metric was skipped)
    random_mean: float | None = None
    diff: float | None = None  # selected - random (raw units)
    gain: float | None = None  # diff in the "better" direction: positive: the selection is better
    ci_low: float | None = None  # interval of ``gain``
    ci_high: float | None = None
    plus_minus: float | None = None  # half-width of the interval, for "gain ± plus_minus"
    p_value: float | None = None
    p_text: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def selected_mask(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Rows a training set would contain: kept and without errors."""
    return np.array(
        [r.get("keep") is True and r.get("status") == STATUS_OK for r in rows], dtype=bool
    )


def pool_mask(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Rows that were candidates for selection: no errors and not dropped by the length policy."""
    return np.array(
        [
            r.get("status") == STATUS_OK
            and not (r.get("keep") is False and r.get("drop_reason") in POLICY_REASONS)
            for r in rows
        ],
        dtype=bool,
    )


def metric_seed(seed: int, column: str) -> int:
    """A per-metric seed that depends only on the user's seed and the column name."""
    return (int(seed) * 1_000_003 + zlib.crc32(column.encode("utf-8"))) % (2**32)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def column_values(rows: Sequence[Mapping[str, Any]], column: str) -> np.ndarray:
    """The column as float64, NaN where null, non-numeric or non-finite."""
    values = np.array([_number(r.get(column)) for r in rows], dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    return values


def random_subset_means(
    pool: np.ndarray, n: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Means of ``draws`` subsets of size ``n`` drawn without replacement from ``pool``."""
    return np.array([pool[rng.choice(len(pool), n, replace=False)].mean() for _ in range(draws)])


def bootstrap_means(
    values: np.ndarray, draws: int, rng: np.random.Generator, chunk: int = 200
) -> np.ndarray:
    """Means of ``draws`` resamples (with replacement) of ``values``, in bounded memory."""
    out = np.empty(draws, np.float64)
    for start in range(0, draws, chunk):
        count = min(chunk, draws - start)
        picks = rng.integers(0, len(values), size=(count, len(values)))
        out[start : start + count] = values[picks].mean(axis=1)
    return out


def format_p(k: int, draws: int) -> tuple[float, str]:
    """(p, text): ``p < 1/draws`` when no random subset was as good, else ``p = ...``."""
    p = (1 + k) / (1 + draws)
    if k == 0:
        return p, f"p < {1 / draws:.2g}"
    return p, f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def _fmt(x: float) -> str:
    """Three significant digits, no exponent for everyday magnitudes."""
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"
    return f"{x:.2e}"


def compare(
    values: np.ndarray,
    selected: np.ndarray,
    pool: np.ndarray,
    metric: Metric,
    draws: int = 1000,
    seed: int = 0,
) -> SubsetResult:
    """Selected vs random subsets of the pool on one metric (see the module docs).

    ``values`` holds the metric per row (NaN = no value); ``selected``/``pool`` are row masks.
    """
    has = np.isfinite(values)
    sel = values[selected & has]
    pool_values = values[(pool | selected) & has]
    n, size = len(sel), len(pool_values)
    used_seed = metric_seed(seed, metric.column)
    base: dict[str, Any] = {
        "metric": metric.column,
        "higher_is_better": metric.higher_is_better,
        "n_selected": n,
        "n_pool": size,
        "draws": draws,
        "seed": used_seed,
    }
    why = None
    if n == 0:
        why = "no selected clip has a value"
    elif n >= size:
        why = "the selection is the whole pool, so a random subset of its size is the same set"
    elif np.ptp(pool_values) == 0:
        why = "every pool clip has the same value"
    if why is not None:
        return SubsetResult(
            **base,
            selected_mean=float(sel.mean()) if n else None,
            verdict=f"{metric.column}: not compared ({why}; n={n} of {size})",
            outcome="skipped",
        )
    rng = np.random.default_rng(used_seed)
    randoms = random_subset_means(pool_values, n, draws, rng)
    boots = bootstrap_means(sel, draws, rng)
    sign = 1.0 if metric.higher_is_better else -1.0
    sel_mean, rand_mean = float(sel.mean()), float(randoms.mean())
    diff = sel_mean - rand_mean
    gains = sign * (boots - randoms)
    alpha = (1 - CONFIDENCE) / 2
    low, high = (float(v) for v in np.quantile(gains, [alpha, 1 - alpha]))
    as_good = int(np.sum(sign * randoms >= sign * sel_mean - 1e-12 * max(1.0, abs(sel_mean))))
    p, p_text = format_p(as_good, draws)
    gain = sign * diff
    half = (high - low) / 2
    result = SubsetResult(
        **base,
        selected_mean=sel_mean,
        random_mean=rand_mean,
        diff=diff,
        gain=gain,
        ci_low=low,
        ci_high=high,
        plus_minus=half,
        p_value=p,
        p_text=p_text,
        verdict="",
        outcome="unclear",
    )
    result.outcome = "better" if low > 0 else "worse" if high < 0 else "unclear"
    result.verdict = verdict(result)
    return result


def verdict(r: SubsetResult) -> str:
    """``selected beats random on flow_mean by 3.2 ± 0.8 (p < 0.001, n=19 of 30)``."""
    assert r.gain is not None and r.plus_minus is not None
    tail = f"({r.p_text}, n={r.n_selected} of {r.n_pool})"
    if r.outcome == "unclear":  # a small p can come with a wide interval on a few clips
        tail = f"(95% interval includes 0; {r.p_text}, n={r.n_selected} of {r.n_pool})"
    name = r.metric if r.higher_is_better else f"{r.metric} (lower is better)"
    amount = f"{_fmt(abs(r.gain))} ± {_fmt(r.plus_minus)}"
    if r.outcome == "better":
        return f"selected beats random on {name} by {amount} {tail}"
    if r.outcome == "worse":
        return f"selected is worse than random on {name} by {amount} {tail}"
    return (
        f"no clear difference between selected and random on {name}: "
        f"{'+' if r.gain >= 0 else '−'}{amount} {tail}"
    )


def default_metrics(rows: Sequence[Mapping[str, Any]], numeric: Sequence[str]) -> list[Metric]:
    """Every numeric score column with at least one value (ids and ranks left out)."""
    out = []
    for column in numeric:
        if column in NOT_METRICS or column.startswith("dup_"):
            continue
        if np.isfinite(column_values(rows, column)).any():
            out.append(Metric.parse(column))
    return out


__all__ = [
    "LOWER_IS_BETTER",
    "NOT_METRICS",
    "POLICY_REASONS",
    "Metric",
    "SubsetResult",
    "bootstrap_means",
    "column_values",
    "compare",
    "default_metrics",
    "format_p",
    "metric_seed",
    "pool_mask",
    "random_subset_means",
    "selected_mask",
    "verdict",
]
