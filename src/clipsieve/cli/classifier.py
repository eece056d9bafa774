"""``clipsieve train-classifier`` and ``clipsieve predict``: the learned quality score.

``train-classifier`` writes ``RUN_DIR/classifier/``: ``model.json`` (XGBoost JSON with the
feature list inside), ``metrics.json`` (cross-validated accuracy / ROC-AUC / PR-AUC with 95%
intervals, importances; what the report reads) and ``importance.png``. ``predict`` adds the
``quality_prob`` column to the run's clip table, which top-N selection can rank by.
"""

from __future__ import annotations

from pathlib import Path

import typer

from clipsieve.cli.common import console, keep_text, run_folder_command, user_errors
from clipsieve.errors import UserError
from clipsieve.select.classifier import (
    ORIGINAL_FEATURES,
    PROB_COLUMN,
)
from clipsieve.select.classifier_run import predict, train


def _parse_features(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise UserError(f"--features names a column twice: {text}")
    return names


@run_folder_command
def train_classifier_command(
    run_dir: Path = typer.Argument(
        ..., parser=keep_text, help="A finished run folder with score columns."
    ),
    labels: Path | None = typer.Option(
        None,
        "--labels",
        "-l",
        help="annotations.json ({scene_path: 0|1}) or a labels.sqlite store "
        "(default: RUN_DIR/labels.sqlite from `clipsieve annotate`).",
    ),
    features: str = typer.Option(
        ",".join(ORIGINAL_FEATURES),
        "--features",
        "-f",
        help="Comma-separated numeric columns (default: the original project's seven).",
    ),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds (at least 3)."),
    seed: int = typer.Option(0, "--seed", help="Seed for folds, bootstrap and XGBoost."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for model.json/metrics.json (default RUN_DIR/classifier)."
    ),
) -> None:
    """Train an XGBoost good/bad classifier on labelled clips, with cross-validated metrics."""
    with user_errors():
        if folds < 3:
            raise UserError(
                f"--folds must be at least 3 (one fold tests, one early-stops): {folds}"
            )
        with console.status("training (cross-validation) …"):
            metrics = train(run_dir, labels, _parse_features(features), out, folds, seed)
    cv = metrics["cv"]
    console.print(
        f"labels: {metrics['n_labels']} matched ({metrics['n_good']} good / {metrics['n_bad']} "
        f"bad), {metrics['labels_unmatched']} unmatched · {metrics['folds']}-fold CV, "
        f"{metrics['rounds']} rounds"
    )
    for name in ("accuracy", "roc_auc", "pr_auc"):
        low, high = cv[name]["ci95"] or (float("nan"), float("nan"))
        console.print(f"  {name:<9} {cv[name]['value']:.3f}  (95% CI {low:.3f}–{high:.3f})")
    console.print(f"  majority-class accuracy {metrics['majority_baseline_accuracy']:.3f}")
    top = sorted(metrics["importance_gain"].items(), key=lambda kv: -kv[1])
    console.print("  importance: " + ", ".join(f"{k} {v:.2f}" for k, v in top))
    console.print(f"model → {metrics['model']}")


@run_folder_command
def predict_command(
    run_dir: Path = typer.Argument(..., parser=keep_text, help="A finished run folder."),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="model.json (default RUN_DIR/classifier/model.json)."
    ),
) -> None:
    """Add the classifier's P(good) as the `quality_prob` column of the run's clips."""
    with user_errors():
        scored, used = predict(run_dir, model)
    console.print(f"{PROB_COLUMN} for {scored} clips from {used} → {run_dir}")


def register_classifier(app: typer.Typer) -> None:
    """Add ``train-classifier`` and ``predict`` to ``app``."""
    app.command("train-classifier")(train_classifier_command)
    app.command("predict")(predict_command)
