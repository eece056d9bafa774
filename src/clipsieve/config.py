"""Run configuration: YAML → typed dataclasses, with defaults and one-line validation errors.

Every section is a dataclass; unknown keys and wrong types are rejected with a message that names
the field (``config: policy.max_s must be a number or null, got 'ten'``), because a silently ignored
typo in a curation recipe costs a whole run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from clipsieve.errors import UserError
from clipsieve.score.names import DEFAULT_SCORERS, SCORER_REGISTRY, expand_groups


class ConfigError(UserError):
    """A user-caused configuration problem; the message is one line naming the field."""


@dataclass
class ShotsConfig:
    detector: str = "hybrid"  # content | adaptive | histogram | transnet | hybrid
    params: dict[str, Any] = field(default_factory=dict)  # passed to the detector
    segment_s: float | None = 600.0  # longer videos are detected in segments, in parallel


@dataclass
class PolicyConfig:
    min_s: float = 2.0  # shots shorter than this are dropped (row kept, drop_reason too_short)
    max_s: float | None = 10.0  # longer shots are split; null disables splitting
    trim_frames: int = 0  # frames removed at each end of a shot that touches a cut
    split: Literal["even", "fixed"] = "even"  # even pieces (no loss) or fixed max_s pieces


@dataclass
class CutConfig:
    enabled: bool = True  # false: plan clips only (timestamps), write no clip files
    mode: Literal["reencode", "copy"] = "reencode"  # copy is fast but keyframe-aligned
    crf: int = 18
    preset: str = "veryfast"
    short_side: int | None = None  # resize so the shorter side is this (never upscales)
    fps: float | None = None  # output frame rate; null keeps the source rate
    timeout_s: float = 600.0


@dataclass
class ScoreConfig:
    # Scorers run on every kept clip after cutting (decoding each clip once for all of them).
    scorers: list[str] = field(default_factory=lambda: list(DEFAULT_SCORERS))
    params: dict[str, Any] = field(default_factory=dict)  # {scorer: {param: value}}


@dataclass
class ExportConfig:
    formats: list[str] = field(default_factory=lambda: ["parquet", "csv", "jsonl"])


@dataclass
class ReportConfig:
    enabled: bool = True


@dataclass
class EngineConfig:
    executor: Literal["local", "ray"] = "local"  # ray: Ray Data on a machine or cluster
    workers: int | None = None  # worker processes (null: one per core); ray: CPUs of a local Ray
    # clips cut+scored per task (null: local 1, so long videos spread out; ray 2 per video
    # batched into a task, 4-16, since a Ray Data task costs ~0.15 s of scheduling)
    clips_per_task: int | None = None
    address: str | None = None  # ray: auto | HOST:PORT | ray://HOST:PORT; null: start locally


@dataclass
class RunConfig:
    shots: ShotsConfig = field(default_factory=ShotsConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    cut: CutConfig = field(default_factory=CutConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(
            "null" if a is type(None) else _type_name(a) for a in typing.get_args(tp)
        )
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true/false"
    if tp is str:
        return "a string"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is list:
        if isinstance(value, list):
            (item,) = typing.get_args(tp)
            return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str and isinstance(value, str):
        return value
    raise ConfigError(f"config: {where} must be {_type_name(tp)}, got {value!r}")


def _build(cls: Any, data: Any, where: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"config: {where or 'the file'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known:
            raise ConfigError(f"config: unknown key {path!r} (known: {', '.join(known)})")
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def config_from_dict(data: Any) -> RunConfig:
    config = _build(RunConfig, data, "")
    _validate(config)
    return config


def _validate(config: RunConfig) -> None:
    policy = config.policy
    if policy.min_s < 0:
        raise ConfigError("config: policy.min_s must be >= 0")
    if policy.max_s is not None and policy.max_s < max(policy.min_s, 1e-6):
        raise ConfigError("config: policy.max_s must be >= policy.min_s (or null)")
    if policy.trim_frames < 0:
        raise ConfigError("config: policy.trim_frames must be >= 0")
    if config.shots.segment_s is not None and config.shots.segment_s < 10:
        raise ConfigError("config: shots.segment_s must be >= 10 seconds (or null)")
    if not 0 <= config.cut.crf <= 51:
        raise ConfigError("config: cut.crf must be between 0 and 51")
    if config.engine.workers is not None and config.engine.workers < 1:
        raise ConfigError("config: engine.workers must be >= 1 (or null for one per core)")
    if config.engine.clips_per_task is not None and config.engine.clips_per_task < 1:
        raise ConfigError("config: engine.clips_per_task must be >= 1")
    if config.cut.short_side is not None and config.cut.short_side < 2:
        raise ConfigError("config: cut.short_side must be >= 2 (or null)")
    unknown_scorers = [s for s in expand_groups(config.score.scorers) if s not in SCORER_REGISTRY]
    if unknown_scorers:
        raise ConfigError(
            f"config: score.scorers has unknown scorer(s) {unknown_scorers} "
            f"(known: {', '.join(SCORER_REGISTRY.names())})"
        )
    unknown = set(config.export.formats) - {"parquet", "csv", "jsonl"}
    if unknown:
        raise ConfigError(
            f"config: export.formats has unknown format(s) {sorted(unknown)} "
            "(known: parquet, csv, jsonl)"
        )


def load_config(path: str | Path | None) -> RunConfig:
    """Read a YAML config file; ``None`` gives the defaults."""
    if path is None:
        return RunConfig()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config: cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config: {file} is not UTF-8 text (byte {exc.start}); save it as UTF-8 YAML"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config: {file} is not valid YAML{where}") from None
    return config_from_dict(data)


DEFAULT_CONFIG_YAML = """\
# clipsieve run configuration. Every key is optional; these are the defaults.

shots:
  # Shot detector: hybrid (default: fast multi-signal pass, TransNetV2 where unsure),
  # content / adaptive (PySceneDetect), histogram, transnet (TransNetV2 on every frame).
  detector: hybrid
  params: {}            # detector parameters, e.g. {threshold: 27.0} for content
  segment_s: 600        # a video over 2 segments is detected in segments on several workers
                        # (same cuts as whole); null: one task per video

policy:
  min_s: 2.0            # shots shorter than this are dropped (row kept, drop_reason too_short)
  max_s: 10.0           # longer shots are split into pieces; null keeps them whole
  split: even           # even: equal pieces, nothing lost; fixed: max_s pieces, short tail dropped
  trim_frames: 0        # frames removed at each end of a shot that touches a cut

cut:
  enabled: true         # false plans clips (timestamps only) without writing clip files
  mode: reencode        # reencode: frame-accurate (libx264); copy: fast, keyframe-aligned
  crf: 18
  preset: veryfast
  short_side: null      # e.g. 720 to resize the shorter side (never upscales)
  fps: null             # output frame rate; null keeps the source rate
  timeout_s: 600

score:
  # static (rgb_diff), motion (optical flow), camera (pan/tilt/zoom/static), quality
  # (sharpness, exposure, borders, frozen frames), phash (perceptual hashes for dedup)
  scorers: [static, motion, camera, quality, phash]
  params: {}            # per scorer, e.g. {motion: {method: farneback}}

export:
  formats: [parquet, csv, jsonl]   # csv is Open-Sora's layout

report:
  enabled: true

engine:
  executor: local       # local (process pool on this machine) or ray (Ray Data)
  workers: null         # worker processes (null: one per core); ray: CPUs of a local Ray
  clips_per_task: null  # clips cut+scored per task (null: local 8, ray 4-16; small: spread)
  address: null         # ray: auto, HOST:PORT or ray://HOST:PORT; null starts Ray locally
"""
