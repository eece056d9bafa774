"""Train the quality classifier from a run's labels, and predict with it into the run's table.

``train`` writes ``RUN_DIR/classifier/``: ``model.json`` (XGBoost JSON with the feature list
inside), ``metrics.json`` (cross-validated accuracy / ROC-AUC / PR-AUC with 95% intervals,
importances; what the report reads) and ``importance.png``. ``predict`` adds the
``quality_prob`` column, which top-N selection can rank by, as a row-local post-run step.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from clipsieve.errors import UserError
from clipsieve.select.classifier import (
    CLASSIFIER_DIR,
    IMPORTANCE_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PROB_COLUMN,
)
from clipsieve.steps.base import PostRunStep


def train(
    run_dir: Path,
    labels: Path | None,
    features: list[str],
    out: Path | None = None,
    folds: int = 5,
    seed: int = 0,
) -> dict:
    """Train, cross-validate and save; returns the metrics written to ``metrics.json``."""
    from clipsieve.labels import labels_path
    from clipsieve.runfolder import load_clips
    from clipsieve.select.classifier import (
        feature_matrix,
        match_labels,
        plot_importance,
        read_labels,
        save_model,
        train_classifier,
    )
    from clipsieve.table import write_json

    clips = load_clips(run_dir)
    if labels is None:
        labels = labels_path(run_dir)
        if not labels.is_file():
            raise UserError(
                f"{run_dir} has no labels yet: label clips with `clipsieve annotate {run_dir}` "
                "or pass --labels annotations.json"
            )
    x_all = feature_matrix(clips, features, run_dir)
    known = read_labels(labels)
    rows, y, unmatched = match_labels(clips, known, run_dir)
    if len(rows) == 0:
        example = next(iter(known), "none")
        raise UserError(
            f"none of the {len(known)} labels in {labels} names a clip of {run_dir} (e.g. "
            f"'{example}'): keys must be clip paths, clip ids or scene names"
        )
    result = train_classifier(x_all[rows], y, features, folds=folds, seed=seed)
    folder = out or Path(run_dir) / CLASSIFIER_DIR
    model_path = save_model(result, folder / MODEL_FILE, labels_source=str(labels))
    plot = plot_importance(result.metrics["importance_gain"], folder / IMPORTANCE_FILE)
    metrics = {
        **result.metrics,
        "labels_file": str(labels),
        "labels_total": len(known),
        "labels_unmatched": len(unmatched),
        "unmatched_examples": unmatched[:5],
        "model": str(model_path),
        "importance_plot": str(plot),
    }
    write_json(metrics, folder / METRICS_FILE)
    return metrics


class PredictStep(PostRunStep):
    """``quality_prob`` from a trained classifier: a row-local post-run step (the model sees
    one batch of feature columns at a time)."""

    name = "predict"
    version = "1"
    writes = (PROB_COLUMN,)

    def __init__(self, run_dir: Path, model_path: Path) -> None:
        from clipsieve.select.classifier import load_model

        self.run_dir = run_dir
        self.model_path = model_path
        self.model = load_model(model_path)
        self.reads = tuple(self.model.features)
        self.digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
        self.scored = 0

    def apply(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        prob = self.model.predict(pa.Table.from_batches([batch]), self.run_dir)
        values = np.asarray(prob, dtype=np.float64)
        valid = ~np.isnan(values)
        self.scored += int(valid.sum())
        return {PROB_COLUMN: pa.array(values, pa.float64(), mask=~valid)}

    def params(self) -> dict[str, Any]:
        return {"model": str(self.model_path), "model_sha256": self.digest, **self.model.info}

    def summary(self) -> dict[str, Any]:
        return {"scored": self.scored}


def predict(run_dir: Path, model_path: Path | None = None) -> tuple[int, Path]:
    """Add ``quality_prob`` to the run's clips; returns (clips scored, model used)."""
    from clipsieve.steps import apply_step

    model_path = model_path or Path(run_dir) / CLASSIFIER_DIR / MODEL_FILE
    step = PredictStep(Path(run_dir), model_path)
    apply_step(run_dir, step)
    return step.scored, model_path
