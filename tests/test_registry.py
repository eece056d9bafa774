"""One registry for scorers, shot detectors, caption backends and export formats: the same
lookup, the same one-line error naming the valid names, and ``module:Class`` for any class."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from clipsieve.caption.backend_registry import BACKEND_REGISTRY, make_backend
from clipsieve.errors import UserError
from clipsieve.export.manifests import MANIFEST_REGISTRY, JsonlManifest, training_formats
from clipsieve.media.frames import Frames, FrameSpec
from clipsieve.score.base import Scorer
from clipsieve.score.names import SCORER_REGISTRY
from clipsieve.score.stage import make_scorer
from clipsieve.shots.detectors import DETECTOR_REGISTRY, get_detector

REGISTRIES = [
    (SCORER_REGISTRY, "scorer", "motion"),
    (DETECTOR_REGISTRY, "shot detector", "hybrid"),
    (BACKEND_REGISTRY, "caption backend", "openai"),
    (MANIFEST_REGISTRY, "export format", "jsonl"),
]


class MeanScorer(Scorer):
    """A scorer a plugin package could ship: frame spec, columns, score."""

    name: ClassVar[str] = "mean"
    columns: ClassVar[tuple[str, ...]] = ("mean_level",)

    def frame_spec(self) -> FrameSpec:
        return FrameSpec(count=2, short_side=16)

    def score(self, frames: Frames) -> dict[str, float]:
        return {"mean_level": float(frames.images.mean())}


class TsvManifest(JsonlManifest):
    file_name = "clips.tsv"


@pytest.mark.parametrize(("registry", "kind", "builtin"), REGISTRIES)
def test_unknown_names_are_one_line_with_the_valid_ones(registry, kind, builtin) -> None:
    assert builtin in registry.names() and builtin in registry
    with pytest.raises(UserError) as info:
        registry.load("no-such-thing")
    message = str(info.value)
    assert message.startswith(f"unknown {kind} 'no-such-thing'") and builtin in message
    assert "\n" not in message and "module:Class" in message


@pytest.mark.parametrize(("registry", "kind", "builtin"), REGISTRIES)
def test_a_target_that_cannot_be_imported_is_one_line(registry, kind, builtin) -> None:
    with pytest.raises(UserError, match=f"{kind} 'nowhere.at_all:Thing': cannot load"):
        registry.load("nowhere.at_all:Thing")


def test_any_class_by_module_and_name() -> None:
    scorer = make_scorer(f"{__name__}:MeanScorer")
    assert isinstance(scorer, MeanScorer)
    assert MANIFEST_REGISTRY.load(f"{__name__}:TsvManifest") is TsvManifest
    assert f"{__name__}:TsvManifest" in MANIFEST_REGISTRY
    assert training_formats()[0] == "webdataset"


def test_bad_parameters_are_one_line_naming_the_implementation() -> None:
    with pytest.raises(UserError, match="scorer 'motion'"):
        make_scorer("motion", colour="red")
    with pytest.raises(UserError, match="shot detector 'content'"):
        get_detector("content", bogus=1)
    with pytest.raises(UserError, match="caption backend 'openai'"):
        make_backend("openai", colour="red")


def test_a_plugin_scorer_runs_decode_once_beside_the_built_ins(sample_set: Path) -> None:
    from clipsieve.score.stage import ScoreStage
    from clipsieve.table import CLIP_SCHEMA, rows_to_table

    video = sample_set / "cuts.mp4"
    stage = ScoreStage(scorers=["static", f"{__name__}:MeanScorer"])
    stage.setup()
    row = {"clip_id": "c", "path": str(video), "status": "ok", "keep": True, "fps": 25.0}
    out = stage.process(rows_to_table([row], CLIP_SCHEMA)).to_pylist()[0]
    assert out["score_errors"] is None
    assert 0 <= out["mean_level"] <= 255 and out["rgb_diff_mean"] is not None
