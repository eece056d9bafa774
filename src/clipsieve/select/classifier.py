"""A learned quality score: XGBoost on stored score columns, trained from a few hundred labels.

The original filtering project labelled ~260 HD-VG scenes good/bad and trained XGBoost on seven
features (:data:`ORIGINAL_FEATURES`); this module is that step made measurable and reproducible:

* labels come from an ``annotations.json`` (``{scene_path: 0|1}``) or the labelling page's SQLite
  store, matched to clips by clip path, clip id or scene name (see :func:`match_labels`);
* stratified k-fold cross-validation where every fold model early-stops on the *next* fold and is
  scored on its own held-out fold, so no test row ever influences when training stops;
* accuracy / ROC-AUC / PR-AUC on the pooled out-of-fold predictions with bootstrap 95% intervals,
  plus the per-fold spread and the majority-class baseline (a number that means nothing without it);
* the model is saved in XGBoost's own JSON format with its feature list, training metrics and the
  clipsieve version stored as booster attributes inside that file: no pickle, loadable by any
  XGBoost, and :func:`load_model` refuses a file that lacks the feature list.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from clipsieve.errors import UserError

ORIGINAL_FEATURES: tuple[str, ...] = (
    "rgb_diff_max",
    "rgb_diff_mean",
    "flow_max",
    "flow_mean",
    "embed_mse_mean",
    "embed_cos_mean",
    "num_frames",
)
PROB_COLUMN = "quality_prob"
MODEL_FILE = "model.json"
METRICS_FILE = "metrics.json"
IMPORTANCE_FILE = "importance.png"
CLASSIFIER_DIR = "classifier"
MIN_PER_CLASS = 3  # k-fold with a separate early-stopping fold needs three folds per class

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "max_depth": 3,
    "eta": 0.1,
    "subsample": 0.9,
    "min_child_weight": 1.0,
    "tree_method": "hist",
}
MAX_ROUNDS = 300
EARLY_STOPPING_ROUNDS = 30
_VIDEO_SUFFIX = re.compile(r"\.(mp4|mkv|webm|mov|avi|m4v|ts)$", re.IGNORECASE)


def _declared_columns(module_name: str, class_name: str) -> tuple[str, ...] | None:
    """A scorer class's literal ``columns`` tuple, read from its source without importing it.

    Scorer modules import torch and model code (seconds); an error message should not wait
    for that. None when the declaration is not a literal, and the caller imports instead.
    """
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                target = item.target if isinstance(item, ast.AnnAssign) else None
                if isinstance(target, ast.Name) and target.id == "columns" and item.value:
                    try:
                        return tuple(ast.literal_eval(item.value))
                    except ValueError:
                        return None
    return None


def scorer_for_column(column: str) -> str | None:
    """The registered scorer whose output includes ``column`` (None if none does)."""
    import importlib

    from clipsieve.score.names import SCORER_REGISTRY

    for name in SCORER_REGISTRY.names():
        module_name, class_name = SCORER_REGISTRY.target(name).split(":")
        columns = _declared_columns(module_name, class_name)
        if columns is None:
            try:
                cls = getattr(importlib.import_module(module_name), class_name)
            except Exception:  # an optional scorer whose dependencies are missing
                continue
            columns = tuple(getattr(cls, "columns", ()))
        if column in columns:
            return name
    return None


def _missing_column_error(run_dir: str | Path, column: str) -> UserError:
    if column == PROB_COLUMN:
        return UserError(
            f"{run_dir} has no column '{column}': run `clipsieve predict {run_dir}` first"
        )
    scorer = scorer_for_column(column)
    if scorer is not None:
        return UserError(
            f"{run_dir} has no column '{column}': it is made by the '{scorer}' scorer; run "
            f"`clipsieve score {run_dir} --scorers {scorer}` or leave it out of --features"
        )
    return UserError(
        f"{run_dir} has no column '{column}': no scorer makes it; check the name in --features"
    )


def feature_matrix(
    clips: pa.Table, features: Sequence[str], run_dir: str | Path = "RUN_DIR"
) -> np.ndarray:
    """``features`` of every clip as float64 (null → NaN, which XGBoost treats as missing)."""
    if not features:
        raise UserError("--features is empty: name at least one numeric score column")
    columns = []
    for name in features:
        if name not in clips.column_names:
            raise _missing_column_error(run_dir, name)
        column = clips.column(name)
        kind = column.type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            raise UserError(
                f"column '{name}' holds {kind}, not numbers: pick numeric score columns for "
                "--features"
            )
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        columns.append(np.asarray(values, dtype=np.float64))
    return np.column_stack(columns) if columns else np.empty((clips.num_rows, 0))


# ---------------------------------------------------------------------------- labels


def read_labels(path: str | Path) -> dict[str, int]:
    """Labels from an ``annotations.json`` (``{key: 0|1}``) or a labelling-page SQLite store."""
    from clipsieve.labels import LabelStore, is_label_store

    path = Path(path)
    if not path.is_file():
        raise UserError(f"labels file {path} does not exist: pass an annotations.json or labels")
    if is_label_store(path):
        return LabelStore(path, create=False).current()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is neither JSON nor an SQLite label store: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object {{scene_path: 0 or 1}}")
    labels: dict[str, int] = {}
    for key, value in data.items():
        if isinstance(value, bool) or value not in (0, 1):
            raise UserError(f"{path}: label of '{key}' is {value!r}; labels must be 0 or 1")
        labels[str(key)] = int(value)
    return labels


def scene_name(key: str) -> str:
    """The last path component without a video suffix (``a\\b\\x.4_16`` → ``x.4_16``).

    Works for both separators because the original project's keys are Windows paths; only known
    video suffixes are stripped, since HD-VG scene ids themselves contain dots.
    """
    last = re.split(r"[\\/]", key.strip())[-1]
    return _VIDEO_SUFFIX.sub("", last)


def match_labels(
    clips: pa.Table, labels: Mapping[str, int], run_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Row indices and labels of the clips that ``labels`` names; plus the unmatched keys.

    A key matches a clip by, in order: its clip id, its path (as stored, or relative to the run
    folder), its dataset scene id (``span_id``), or its scene name (:func:`scene_name` of the key
    equals that of the clip id, the clip's path or its ``span_id``).
    """
    ids = clips.column("clip_id").to_pylist()
    paths = clips.column("path").to_pylist() if "path" in clips.column_names else [None] * len(ids)
    # Metafile ingest keeps the dataset's own scene id (HD-VG ``clip_id``) as ``span_id``.
    spans = clips.column("span_id").to_pylist() if "span_id" in clips.column_names else []
    exact: dict[str, int] = {}
    by_scene: dict[str, int] = {}
    root = Path(run_dir).resolve() if run_dir is not None else None
    for index, (clip_id, path) in enumerate(zip(ids, paths, strict=True)):
        exact.setdefault(clip_id, index)
        by_scene.setdefault(scene_name(clip_id), index)
        if path:
            exact.setdefault(path, index)
            by_scene.setdefault(scene_name(path), index)
            if root is not None:
                with contextlib.suppress(ValueError):
                    exact.setdefault(str(Path(path).resolve().relative_to(root)), index)
    for index, span_id in enumerate(spans):
        if span_id:
            exact.setdefault(span_id, index)
            by_scene.setdefault(scene_name(span_id), index)
    rows: dict[int, int] = {}
    unmatched = []
    for key, value in labels.items():
        index = exact.get(key)
        if index is None:
            index = exact.get(key.replace("\\", "/"))
        if index is None:
            index = by_scene.get(scene_name(key))
        if index is None:
            unmatched.append(key)
        else:
            rows[index] = value
    order = sorted(rows)
    return np.array(order, dtype=np.int64), np.array([rows[i] for i in order]), unmatched


# ---------------------------------------------------------------------------- metrics


def roc_auc(y: np.ndarray, prob: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic (ties count half); NaN with one class.

    Plain numpy because the bootstrap calls it thousands of times and sklearn's input
    validation costs more than the computation itself.
    """
    from scipy.stats import rankdata

    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = rankdata(prob)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(y: np.ndarray, prob: np.ndarray) -> float:
    """PR-AUC as average precision (sklearn's definition: precision summed at each recall step)."""
    positives = int(y.sum())
    if positives == 0:
        return math.nan
    order = np.argsort(-prob, kind="mergesort")
    scores, hits = prob[order], y[order]
    # Thresholds sit at distinct scores: the last index of every run of equal scores.
    last = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    tp = np.cumsum(hits)[last]
    precision = tp / (last + 1)
    recall_step = np.diff(np.r_[0, tp]) / positives
    return float(np.sum(precision * recall_step))


def _scores(y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(np.mean((prob >= 0.5) == (y == 1))),
        "roc_auc": roc_auc(y, prob),
        "pr_auc": average_precision(y, prob),
    }


def bootstrap_intervals(
    y: np.ndarray, prob: np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of each metric over resampled (label, prediction) pairs."""
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {"accuracy": [], "roc_auc": [], "pr_auc": []}
    for _ in range(n):
        pick = rng.integers(0, len(y), len(y))
        if len(np.unique(y[pick])) < 2:
            continue
        for name, value in _scores(y[pick], prob[pick]).items():
            samples[name].append(value)
    tail = (1.0 - level) / 2.0 * 100.0
    return {
        name: [float(np.percentile(vals, tail)), float(np.percentile(vals, 100.0 - tail))]
        for name, vals in samples.items()
        if vals
    }


# ---------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """A trained model plus what cross-validation said about it."""

    booster: Any  # xgboost.Booster
    features: list[str]
    metrics: dict[str, Any]
    oof_prob: np.ndarray = field(repr=False)


def _train_booster(
    x: np.ndarray,
    y: np.ndarray,
    features: Sequence[str],
    params: Mapping[str, Any],
    rounds: int,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
) -> Any:
    import xgboost as xgb

    train = xgb.DMatrix(x, label=y, feature_names=list(features), missing=np.nan)
    if valid is None:
        return xgb.train(dict(params), train, num_boost_round=rounds)
    dvalid = xgb.DMatrix(valid[0], label=valid[1], feature_names=list(features), missing=np.nan)
    return xgb.train(
        dict(params),
        train,
        num_boost_round=rounds,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=EARLY_STOPPING_ROUNDS,
        verbose_eval=False,
    )


def _predict(booster: Any, x: np.ndarray, features: Sequence[str]) -> np.ndarray:
    import xgboost as xgb

    data = xgb.DMatrix(x, feature_names=list(features), missing=np.nan)
    best = booster.attr("best_iteration")
    if best is not None:
        return booster.predict(data, iteration_range=(0, int(best) + 1))
    return booster.predict(data)


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    features: Sequence[str],
    folds: int = 5,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Cross-validate, then fit the final model on every labelled row.

    Fold ``i`` is the test fold, fold ``i+1`` the early-stopping fold, the rest train. The final
    model uses the median best round count of the folds, so it needs no held-out data of its own.
    """
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y, minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise UserError(
            f"need at least {MIN_PER_CLASS} good and {MIN_PER_CLASS} bad labels that match clips; "
            f"have {counts[1]} good and {counts[0]} bad: label more clips"
        )
    k = int(min(folds, counts.min()))
    if k < 3:
        raise UserError(f"--folds must be at least 3 (one fold tests, one early-stops), not {k}")
    # A few hundred rows train fastest on one thread; threads only pay off on big tables.
    threads = 1 if len(y) < 20_000 else (os.cpu_count() or 1)
    merged = {**DEFAULT_PARAMS, "seed": seed, "nthread": threads, **(params or {})}
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    for index, (_, test) in enumerate(splitter.split(x, y)):
        fold_of[test] = index
    oof = np.full(len(y), np.nan)
    per_fold: list[dict[str, float]] = []
    best_rounds: list[int] = []
    for test_fold in range(k):
        valid_fold = (test_fold + 1) % k
        test = fold_of == test_fold
        valid = fold_of == valid_fold
        train = ~(test | valid)
        booster = _train_booster(
            x[train], y[train], features, merged, MAX_ROUNDS, valid=(x[valid], y[valid])
        )
        best_rounds.append(int(booster.best_iteration) + 1)
        oof[test] = _predict(booster, x[test], features)
        per_fold.append(_scores(y[test], oof[test]))
    rounds = int(np.median(best_rounds))
    final = _train_booster(x, y, features, merged, rounds)
    pooled = _scores(y, oof)
    intervals = bootstrap_intervals(y, oof, seed=seed)
    fold_stats = {
        name: {
            "mean": float(np.nanmean([f[name] for f in per_fold])),
            "std": float(np.nanstd([f[name] for f in per_fold])),
        }
        for name in pooled
    }
    gain = final.get_score(importance_type="gain")
    total = sum(gain.values()) or 1.0
    metrics = {
        "n_labels": int(len(y)),
        "n_good": int(counts[1]),
        "n_bad": int(counts[0]),
        "folds": k,
        "seed": seed,
        "rounds": rounds,
        "fold_best_rounds": best_rounds,
        "params": {key: merged[key] for key in sorted(merged)},
        "features": list(features),
        "cv": {
            name: {"value": pooled[name], "ci95": intervals.get(name), "folds": fold_stats[name]}
            for name in pooled
        },
        "majority_baseline_accuracy": float(counts.max() / counts.sum()),
        "importance_gain": {name: float(gain.get(name, 0.0) / total) for name in features},
    }
    return TrainResult(booster=final, features=list(features), metrics=metrics, oof_prob=oof)


# ---------------------------------------------------------------------------- model files


@dataclass
class QualityModel:
    """A loaded classifier: the booster and the feature columns it expects, in order."""

    booster: Any
    features: list[str]
    info: dict[str, Any]

    def predict(self, clips: pa.Table, run_dir: str | Path = "RUN_DIR") -> np.ndarray:
        """P(good) for every row of ``clips`` (rows with no feature value at all get NaN)."""
        x = feature_matrix(clips, self.features, run_dir)
        prob = _predict(self.booster, x, self.features).astype(np.float64)
        prob[np.all(np.isnan(x), axis=1)] = np.nan
        return prob


def save_model(result: TrainResult, path: str | Path, labels_source: str = "") -> Path:
    """Write the model as XGBoost JSON with features, metrics and versions as attributes."""
    import xgboost as xgb

    from clipsieve.version import __version__

    path = Path(path)
    if path.suffix != ".json":
        raise UserError(f"model file {path} must end in .json (XGBoost's JSON model format)")
    path.parent.mkdir(parents=True, exist_ok=True)
    booster = result.booster
    booster.set_attr(
        clipsieve_features=json.dumps(result.features),
        clipsieve_version=__version__,
        xgboost_version=xgb.__version__,
        clipsieve_labels=labels_source,
        clipsieve_cv=json.dumps(result.metrics.get("cv", {})),
    )
    tmp = path.with_name(f".{path.name}.tmp.json")
    booster.save_model(str(tmp))
    tmp.replace(path)
    return path


def load_model(path: str | Path) -> QualityModel:
    """Load a model written by :func:`save_model` (an XGBoost JSON file with a feature list)."""
    import xgboost as xgb

    path = Path(path)
    if not path.is_file():
        raise UserError(f"model {path} does not exist: train one with `clipsieve train-classifier`")
    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except xgb.core.XGBoostError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        first = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", first)  # XGBoost's "[time] file:line: "
        raise UserError(f"{path} is not an XGBoost JSON model: {first}") from None
    raw = booster.attr("clipsieve_features")
    if not raw:
        raise UserError(
            f"{path} has no clipsieve feature list: train it with `clipsieve train-classifier`"
        )
    features = json.loads(raw)
    info = {key: booster.attr(key) for key in ("clipsieve_version", "xgboost_version")}
    info["clipsieve_labels"] = booster.attr("clipsieve_labels")
    return QualityModel(booster=booster, features=list(features), info=info)


def plot_importance(importance: Mapping[str, float], path: str | Path) -> Path:
    """A horizontal bar chart of relative gain per feature (PNG, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(importance, key=lambda n: importance[n])
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(names) + 1.2))
    ax.barh(names, [importance[n] for n in names], color="#4c72b0")
    ax.set_xlabel("share of total gain")
    ax.set_title("quality classifier: feature importance")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
