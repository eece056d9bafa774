"""Selected vs random subsets on synthetic tables: a truly better selection is detected, a random
one is not, directions and pools are honoured, and a seed reproduces every number."""

from __future__ import annotations

import numpy as np
import pytest

from clipsieve.errors import UserError
from clipsieve.evaluate.subset import (
    Metric,
    column_values,
    compare,
    default_metrics,
    format_p,
    pool_mask,
    selected_mask,
)


def table(values: np.ndarray, keep: np.ndarray, column: str = "score") -> list[dict]:
    return [
        {
            "clip_id": f"c{i}",
            "status": "ok",
            "keep": bool(k),
            "drop_reason": None if k else "filter: x",
            column: float(v),
        }
        for i, (v, k) in enumerate(zip(values, keep, strict=True))
    ]


def run(rows: list[dict], metric: str = "score", draws: int = 1000, seed: int = 0):
    m = Metric.parse(metric)
    return compare(
        column_values(rows, m.column), selected_mask(rows), pool_mask(rows), m, draws, seed
    )


def test_truly_better_selection_is_detected() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(10.0, 2.0, 200)
    keep = values > np.quantile(values, 0.8)  # the top 40: truly better
    result = run(table(values, keep))
    assert result.outcome == "better"
    assert result.n_selected == 40 and result.n_pool == 200
    assert result.ci_low > 0 and result.gain > result.plus_minus
    assert result.selected_mean == pytest.approx(values[keep].mean())
    assert result.random_mean == pytest.approx(values.mean(), abs=0.1)
    assert result.p_text == "p < 0.001"
    assert result.verdict.startswith("selected beats random on score by ")
    assert result.verdict.endswith("(p < 0.001, n=40 of 200)")


def test_random_selection_interval_covers_zero() -> None:
    values = np.random.default_rng(2).normal(10.0, 2.0, 200)
    covered = 0
    for trial in range(20):
        keep = np.zeros(200, bool)
        keep[np.random.default_rng(100 + trial).choice(200, 40, replace=False)] = True
        result = run(table(values, keep), draws=300, seed=trial)
        covered += result.ci_low <= 0 <= result.ci_high
    assert covered >= 17  # a 95% interval; 20 independent random selections


def test_one_random_selection_is_unclear() -> None:
    values = np.random.default_rng(3).normal(0.0, 1.0, 100)
    keep = np.zeros(100, bool)
    keep[np.random.default_rng(4).choice(100, 30, replace=False)] = True
    result = run(table(values, keep))
    assert result.outcome == "unclear"
    assert result.ci_low < 0 < result.ci_high
    assert result.verdict.startswith("no clear difference between selected and random on score")


def test_seed_reproduces_and_changes_numbers() -> None:
    values = np.random.default_rng(5).normal(0.0, 1.0, 80)
    rows = table(values, values > 0.5)
    a, b, c = run(rows, seed=7), run(rows, seed=7), run(rows, seed=8)
    assert a.to_json() == b.to_json()
    assert a.random_mean != c.random_mean
    assert a.selected_mean == c.selected_mean


def test_lower_is_better_direction() -> None:
    values = np.random.default_rng(6).uniform(0, 1, 100)
    rows = table(values, values < 0.3)
    low = run(rows, "score:low")
    assert low.outcome == "better" and low.gain > 0 and low.diff < 0
    assert "score (lower is better)" in low.verdict
    high = run(rows, "score")
    assert high.outcome == "worse" and high.verdict.startswith("selected is worse than random")
    assert high.p_value == pytest.approx(1.0)
    # known clipsieve columns default to their natural direction
    assert Metric.parse("border_frac").higher_is_better is False
    assert Metric.parse("border_frac:high").higher_is_better is True


def test_pool_excludes_length_policy_drops_and_nulls() -> None:
    values = np.arange(20, dtype=float)
    rows = table(values, values >= 15)
    rows.append(
        {
            "clip_id": "short",
            "status": "ok",
            "keep": False,
            "drop_reason": "too_short",
            "score": 1000.0,
        }
    )
    rows.append({"clip_id": "bad", "status": "error", "keep": True, "score": 1000.0})
    rows.append({"clip_id": "unscored", "status": "ok", "keep": True, "score": None})
    result = run(rows)
    assert result.n_pool == 20 and result.n_selected == 5
    assert result.selected_mean == pytest.approx(17.0)


def test_whole_pool_selected_is_skipped() -> None:
    rows = table(np.arange(10, dtype=float), np.ones(10, bool))
    result = run(rows)
    assert result.outcome == "skipped" and result.gain is None
    assert "whole pool" in result.verdict


def test_p_value_formatting() -> None:
    assert format_p(0, 1000) == (pytest.approx(1 / 1001), "p < 0.001")
    p, text = format_p(34, 1000)
    assert p == pytest.approx(35 / 1001) and text == "p = 0.035"


def test_metric_parsing_errors() -> None:
    with pytest.raises(UserError, match="'high' or 'low'"):
        Metric.parse("flow_mean:up")
    with pytest.raises(UserError, match="name a column"):
        Metric.parse(":low")


def test_default_metrics_skip_ids_and_empty_columns() -> None:
    rows = [{"flow_mean": 1.0, "cluster_id": 3, "topn_rank": 1, "aes": None, "border_frac": 0.1}]
    names = ["flow_mean", "cluster_id", "topn_rank", "aes", "border_frac"]
    metrics = default_metrics(rows, names)
    assert [m.column for m in metrics] == ["flow_mean", "border_frac"]
    assert metrics[1].higher_is_better is False


def test_constant_column_is_skipped() -> None:
    result = run(table(np.zeros(10), np.arange(10) < 3))
    assert result.outcome == "skipped" and "same value" in result.verdict
