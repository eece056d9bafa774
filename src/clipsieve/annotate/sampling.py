"""The order in which the labelling page offers clips.

* ``random``: a seeded shuffle — unbiased labels, the right start for a first classifier;
* ``stratified``: quantile bins of one score column, visited round-robin, so the first few dozen
  labels already span the whole range of that score (rare extremes are not left to chance);
* ``uncertainty``: active learning — clips whose current classifier probability is closest to
  0.5 first, where a new label teaches the next model the most.

Only clips with a playable file are offered; the order is fixed when the server starts (restart
it after retraining to pick up the new model).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clipsieve.annotate.catalog import Catalog
from clipsieve.errors import UserError

MODES = ("random", "stratified", "uncertainty")
STRATIFY_DEFAULTS = ("flow_mean", "rgb_diff_mean", "quality_prob", "sharpness", "duration_s")


def _random(indices: Sequence[int], seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(i) for i in rng.permutation(np.asarray(indices, dtype=np.int64))]


def stratified_order(values: np.ndarray, bins: int, seed: int) -> list[int]:
    """Positions of ``values`` visiting quantile bins round-robin (NaN values form one more bin).

    Within a bin the order is random, so every prefix of the result is close to an equal share
    of each bin.
    """
    rng = np.random.default_rng(seed)
    finite = np.flatnonzero(~np.isnan(values))
    groups: list[list[int]] = []
    if len(finite):
        edges = np.quantile(values[finite], np.linspace(0.0, 1.0, bins + 1)[1:-1])
        which = np.searchsorted(edges, values[finite], side="right")
        for b in range(bins):
            members = finite[which == b]
            if len(members):
                groups.append([int(i) for i in rng.permutation(members)])
    missing = np.flatnonzero(np.isnan(values))
    if len(missing):
        groups.append([int(i) for i in rng.permutation(missing)])
    order: list[int] = []
    depth = 0
    while len(order) < len(values):
        for group in groups:
            if depth < len(group):
                order.append(group[depth])
        depth += 1
    return order


def uncertainty_order(prob: np.ndarray) -> list[int]:
    """Positions sorted by ``|p - 0.5|`` (most uncertain first); unscored (NaN) clips last."""
    distance = np.abs(np.asarray(prob, dtype=np.float64) - 0.5)
    distance = np.where(np.isnan(distance), np.inf, distance)
    return [int(i) for i in np.argsort(distance, kind="stable")]


def clip_order(
    catalog: Catalog,
    mode: str = "random",
    seed: int = 0,
    stratify_by: str | None = None,
    bins: int = 5,
    model: str | Path | None = None,
) -> list[int]:
    """Catalog positions of the playable clips in the order the page should offer them."""
    if mode not in MODES:
        raise UserError(f"unknown --sample '{mode}' (choose {', '.join(MODES)})")
    playable = [e.index for e in catalog.entries if e.key is not None]
    if not playable:
        raise UserError(
            f"{catalog.root} has no clip files to play: cut clips with `clipsieve run` first"
        )
    if mode == "random":
        return _random(playable, seed)
    table = catalog.table.take(playable)
    if mode == "stratified":
        from clipsieve.select.classifier import feature_matrix

        column = stratify_by or next(
            (c for c in STRATIFY_DEFAULTS if c in table.column_names), None
        )
        if column is None:
            raise UserError(
                f"{catalog.root} has none of {', '.join(STRATIFY_DEFAULTS)}: name a numeric "
                "column with --stratify-by"
            )
        values = feature_matrix(table, [column], catalog.root)[:, 0]
        return [playable[i] for i in stratified_order(values, bins, seed)]
    from clipsieve.select.classifier import CLASSIFIER_DIR, MODEL_FILE, load_model

    model_path = Path(model) if model else catalog.root / CLASSIFIER_DIR / MODEL_FILE
    if not model_path.is_file():
        raise UserError(
            f"--sample uncertainty needs a classifier and {model_path} does not exist: run "
            f"`clipsieve train-classifier {catalog.root}` first or pass --model"
        )
    prob = load_model(model_path).predict(table, catalog.root)
    return [playable[i] for i in uncertainty_order(prob)]
