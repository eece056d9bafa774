"""Captions vs re-captions: do the new captions describe the clips better than the old ones?

Only clips that have both a source caption (``caption_src``) and a new one (``caption``) are
compared, so the comparison is paired: each clip is its own control. With a CLIP model the
per-clip difference ``sim(new) − sim(old)`` (the corrected CLIP score of
:mod:`clipsieve.evaluate.clipsim`) gets a bootstrap 95% interval of its mean and a win rate (the
share of clips whose new caption scores higher). Text statistics need no model: length in words,
the share written all in lower case, the share that start with a capital and end with
punctuation, vocabulary size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from clipsieve.evaluate.subset import CONFIDENCE, bootstrap_means, metric_seed
from clipsieve.table import STATUS_OK

OLD, NEW = "caption_src", "caption"
_WORD = re.compile(r"[\w'-]+", re.UNICODE)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def caption_pairs(rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indices of rows without errors that have both a source and a new caption."""
    return [
        i
        for i, r in enumerate(rows)
        if r.get("status") == STATUS_OK and _text(r.get(OLD)) and _text(r.get(NEW))
    ]


def text_stats(texts: Sequence[str]) -> dict[str, Any]:
    """Model-free statistics of a set of captions."""
    words = [_WORD.findall(t) for t in texts]
    lengths = np.array([len(w) for w in words], np.float64)
    letters = [[c for c in t if c.isalpha()] for t in texts]
    n = len(texts)

    def share(flags: Sequence[bool]) -> float | None:
        return float(np.mean(flags)) if n else None

    return {
        "n": n,
        "mean_words": float(lengths.mean()) if n else None,
        "median_words": float(np.median(lengths)) if n else None,
        "min_words": int(lengths.min()) if n else None,
        "max_words": int(lengths.max()) if n else None,
        "mean_chars": float(np.mean([len(t) for t in texts])) if n else None,
        "share_lowercase": share([bool(ls) and all(c.islower() for c in ls) for ls in letters]),
        "share_capitalised": share([bool(ls) and ls[0].isupper() for ls in letters]),
        "share_end_punctuation": share([t.rstrip()[-1:] in (".", "!", "?") for t in texts]),
        "vocabulary": len({w.lower() for ws in words for w in ws}),
    }


@dataclass
class PairedResult:
    """New vs old caption on the same clips."""

    n: int
    old_mean: float
    new_mean: float
    diff: float  # mean of new - old
    ci_low: float
    ci_high: float
    plus_minus: float
    win_rate: float  # share of clips where the new caption scores higher
    tie_rate: float
    draws: int
    seed: int
    verdict: str
    outcome: str  # better | worse | unclear

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare_paired(
    old: np.ndarray, new: np.ndarray, draws: int = 1000, seed: int = 0, what: str = "CLIP score"
) -> PairedResult:
    """Bootstrap the mean per-clip difference ``new − old`` and count wins."""
    old, new = np.asarray(old, np.float64), np.asarray(new, np.float64)
    if len(old) == 0 or len(old) != len(new):
        raise ValueError("paired comparison needs equally many old and new values, at least one")
    diffs = new - old
    used_seed = metric_seed(seed, "captions")
    boots = bootstrap_means(diffs, draws, np.random.default_rng(used_seed))
    alpha = (1 - CONFIDENCE) / 2
    low, high = (float(v) for v in np.quantile(boots, [alpha, 1 - alpha]))
    mean = float(diffs.mean())
    wins, ties = float(np.mean(diffs > 0)), float(np.mean(diffs == 0))
    outcome = "better" if low > 0 else "worse" if high < 0 else "unclear"
    half = (high - low) / 2
    tail = f"(win rate {wins:.0%}, n={len(diffs)})"
    amount = f"{abs(mean):.3g} ± {half:.2g}"
    if outcome == "better":
        line = f"new captions beat the source captions on {what} by {amount} {tail}"
    elif outcome == "worse":
        line = f"new captions are worse than the source captions on {what} by {amount} {tail}"
    else:
        sign = "+" if mean >= 0 else "−"
        tail = f"(95% interval includes 0; win rate {wins:.0%}, n={len(diffs)})"
        line = (
            f"no clear difference between new and source captions on {what}: {sign}{amount} {tail}"
        )
    return PairedResult(
        n=len(diffs),
        old_mean=float(old.mean()),
        new_mean=float(new.mean()),
        diff=mean,
        ci_low=low,
        ci_high=high,
        plus_minus=half,
        win_rate=wins,
        tie_rate=ties,
        draws=draws,
        seed=used_seed,
        verdict=line,
        outcome=outcome,
    )


__all__ = ["NEW", "OLD", "PairedResult", "caption_pairs", "compare_paired", "text_stats"]
