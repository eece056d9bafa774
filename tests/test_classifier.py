"""The XGBoost quality classifier: metrics, label matching, model files, CLI train/predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from typer.testing import CliRunner

from clipsieve.annotate.catalog import Catalog
from clipsieve.annotate.sampling import clip_order
from clipsieve.cli import app
from clipsieve.errors import UserError
from clipsieve.labels import LabelStore, labels_path
from clipsieve.runfolder import load_clips
from clipsieve.select.classifier import (
    average_precision,
    load_model,
    match_labels,
    read_labels,
    roc_auc,
    save_model,
    scene_name,
    train_classifier,
)

FEATURES = ["a", "b", "noise1", "noise2"]


@pytest.fixture(scope="module")
def rule_model() -> tuple:
    """300 rows labelled by a clear rule on two of four features, trained once."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 4))
    x[rng.random(x.shape) < 0.05] = np.nan  # XGBoost must cope with unscored values
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) > 0).astype(int)
    return x, y, train_classifier(x, y, FEATURES, folds=5, seed=0)


def test_rule_is_learned_with_cross_validated_metrics(rule_model: tuple) -> None:
    _, y, result = rule_model
    cv = result.metrics["cv"]
    assert cv["accuracy"]["value"] > 0.9
    assert cv["roc_auc"]["value"] > 0.95 and cv["pr_auc"]["value"] > 0.95
    for name in ("accuracy", "roc_auc", "pr_auc"):
        low, high = cv[name]["ci95"]
        assert low <= cv[name]["value"] <= high and high - low < 0.2
    assert result.metrics["n_labels"] == 300 and result.metrics["folds"] == 5
    assert result.metrics["majority_baseline_accuracy"] == pytest.approx(
        max(y.mean(), 1 - y.mean())
    )
    importance = result.metrics["importance_gain"]
    assert importance["a"] > importance["b"] > max(importance["noise1"], importance["noise2"])
    assert not np.isnan(result.oof_prob).any()


def test_numpy_metrics_match_sklearn_including_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        prob = np.round(rng.random(40), 1)  # many ties
        assert roc_auc(y, prob) == pytest.approx(roc_auc_score(y, prob))
        assert average_precision(y, prob) == pytest.approx(average_precision_score(y, prob))


def test_model_json_round_trip(rule_model: tuple, tmp_path: Path) -> None:
    x, _, result = rule_model
    path = save_model(result, tmp_path / "model.json", labels_source="rule")
    document = json.loads(path.read_text())  # plain XGBoost JSON, no pickle
    attributes = document["learner"]["attributes"]
    assert json.loads(attributes["clipsieve_features"]) == FEATURES
    assert attributes["clipsieve_version"]
    model = load_model(path)
    assert model.features == FEATURES
    table = pa.table({name: x[:, i] for i, name in enumerate(FEATURES)})
    expected = result.booster.inplace_predict(x)
    assert np.allclose(model.predict(table), expected, atol=1e-6)
    with pytest.raises(UserError, match="no column 'noise2'"):
        model.predict(table.drop_columns(["noise2"]))


def test_foreign_or_broken_model_files_are_user_errors(rule_model: tuple, tmp_path: Path) -> None:
    _, _, result = rule_model
    plain = tmp_path / "plain.json"
    booster = result.booster.copy()
    booster.set_attr(clipsieve_features=None)
    booster.save_model(str(plain))
    with pytest.raises(UserError, match="no clipsieve feature list"):
        load_model(plain)
    broken = tmp_path / "broken.json"
    broken.write_text("{not a model")
    with pytest.raises(UserError, match="not an XGBoost JSON model"):
        load_model(broken)
    with pytest.raises(UserError, match="must end in .json"):
        save_model(result, tmp_path / "model.pkl")


def test_too_few_labels_is_a_user_error() -> None:
    x = np.arange(10, dtype=float)[:, None]
    with pytest.raises(UserError, match="at least 3 good and 3 bad"):
        train_classifier(x, np.array([1] * 8 + [0] * 2), ["a"])


def test_labels_match_clips_by_path_id_or_scene_name(tmp_path: Path) -> None:
    run = tmp_path / "run"
    clips = pa.table(
        {
            "clip_id": ["v1.0_1", "v1.0_2", "abc_0000_0", "abc_0001_0", "slug-1a2b"],
            "path": [None, None, str(run / "clips/abc_0000_0.mp4"), str(run / "clips/x.mp4"), None],
            "span_id": [None, None, None, None, "v 2.3_4"],  # a metafile scene id
        }
    )
    labels = {
        "frames_output\\v1\\v1.0_1": 1,  # the original project's Windows scene folder
        "v1.0_2": 0,  # a clip id
        str(run / "clips/abc_0000_0.mp4"): 1,  # the stored path
        "clips/x.mp4": 0,  # relative to the run folder (what `annotate --export` writes)
        "frames_output\\v 2\\v 2.3_4": 1,
        "missing.3_4": 1,
    }
    rows, y, unmatched = match_labels(clips, labels, run)
    assert rows.tolist() == [0, 1, 2, 3, 4] and y.tolist() == [1, 0, 1, 0, 1]
    assert unmatched == ["missing.3_4"]
    assert scene_name("a/b/44ot5_2UaaU.4_16") == "44ot5_2UaaU.4_16"
    assert scene_name("clips/x.mp4") == "x"


def test_read_labels_checks_values_and_reads_the_store(tmp_path: Path) -> None:
    good = tmp_path / "a.json"
    good.write_text(json.dumps({"x": 1, "y": 0}))
    assert read_labels(good) == {"x": 1, "y": 0}
    for bad in ({"x": 2}, {"x": True}, ["x"]):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(UserError):
            read_labels(path)
    store = LabelStore(tmp_path / "labels.sqlite")
    store.add("c1", "label", 1, "ann")
    store.add("c2", "skip", None, "ann")
    assert read_labels(store.path) == {"c1": 1}
    with pytest.raises(UserError, match="does not exist"):
        read_labels(tmp_path / "nope.json")


def test_train_and_predict_commands_on_a_run(run_copy: Path, tmp_path: Path) -> None:
    clips = load_clips(run_copy).to_pylist()
    scored = [c for c in clips if c.get("flow_mean") is not None]
    median = float(np.median([c["flow_mean"] for c in scored]))
    labels = {c["path"] or c["clip_id"]: int(c["flow_mean"] > median) for c in scored}
    labels_file = tmp_path / "annotations.json"
    labels_file.write_text(json.dumps(labels))
    runner = CliRunner()

    missing = runner.invoke(app, ["train-classifier", str(run_copy), "--labels", str(labels_file)])
    assert missing.exit_code == 2
    assert "embed_mse_mean" in missing.output and "'transition' scorer" in missing.output

    features = "rgb_diff_max,rgb_diff_mean,flow_max,flow_mean,num_frames"
    args = ["train-classifier", str(run_copy), "--labels", str(labels_file), "-f", features]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = run_copy / "classifier"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n_labels"] == len(labels) and metrics["labels_unmatched"] == 0
    assert metrics["features"] == features.split(",")
    assert (folder / "importance.png").read_bytes()[:4] == b"\x89PNG"
    assert load_model(folder / "model.json").features == features.split(",")

    result = runner.invoke(app, ["predict", str(run_copy)])
    assert result.exit_code == 0, result.output
    table = load_clips(run_copy)
    prob = table.column("quality_prob").to_pylist()
    assert len(prob) == len(clips)
    assert all(p is None or 0.0 <= p <= 1.0 for p in prob)
    truth = [labels.get(c["path"] or c["clip_id"]) for c in clips]
    pairs = [(p, t) for p, t in zip(prob, truth, strict=True) if t is not None]
    fit = np.mean([(p >= 0.5) == (t == 1) for p, t in pairs])
    assert fit >= 0.9  # it fits its own rule on the training clips
    run_info = json.loads((run_copy / "run.json").read_text())
    assert any(step["name"] == "predict" for step in run_info["steps"])
    assert not (run_copy / "clips.csv").exists()  # the view described the old table
    views = CliRunner().invoke(app, ["export", str(run_copy), "--format", "views"])
    assert views.exit_code == 0, views.output
    assert "quality_prob" in (run_copy / "clips.csv").read_text().splitlines()[0]

    # Active learning: the labelling page offers the clips the model is least sure about first.
    catalog = Catalog.load(run_copy)
    order = clip_order(catalog, "uncertainty")
    assert sorted(order) == sorted(e.index for e in catalog.entries if e.key)
    doubt = [abs(prob[i] - 0.5) if prob[i] is not None else 9.0 for i in order]
    assert doubt == sorted(doubt)

    # Labels from the labelling page's store are the default source.
    store = LabelStore(labels_path(run_copy))
    for clip in scored:
        store.add(clip["clip_id"], "label", int(clip["flow_mean"] > median), "tester")
    result = runner.invoke(app, ["train-classifier", str(run_copy), "-f", features])
    assert result.exit_code == 0, result.output
    assert "labels.sqlite" in json.loads((folder / "metrics.json").read_text())["labels_file"]
