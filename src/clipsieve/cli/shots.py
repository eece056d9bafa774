"""``clipsieve detect-shots``: shot boundaries of videos, for people, benchmarks and other tools.

With ``--json`` it prints one JSON object per video per line, in the order given::

    {"video": PATH, "fps": F, "num_frames": N, "cuts": [frame, ...]}

where a cut ``N`` means frame ``N`` (0-based, decode order) is the first frame of a new shot.
A video that cannot be read gets ``{"video": PATH, "error": "<one line>"}`` instead, the other
videos are still processed, and the command exits with status 1 at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from clipsieve.cli.common import console, progress_bar
from clipsieve.shots.detectors import DEFAULT_DETECTOR, DETECTOR_REGISTRY, ShotDetector


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def detect_shots(
    videos: list[Path] = typer.Argument(..., help="Video files."),
    detector: str = typer.Option(
        DEFAULT_DETECTOR,
        "--detector",
        "-d",
        help=f"Detector: {', '.join(DETECTOR_REGISTRY.names())} (default {DEFAULT_DETECTOR}).",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per video per line."),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="Detector threshold (content: 27, adaptive: 3.0 ratio, histogram: 0.05, "
        "transnet: 0.5 probability, hybrid: 0.5 TransNetV2 probability for unsure frames).",
    ),
    min_scene_len: int | None = typer.Option(
        None, "--min-scene-len", help="Minimum shot length in frames (content/adaptive/histogram)."
    ),
) -> None:
    """Detect shot cuts; a cut N means frame N is the first frame of a new shot."""
    from clipsieve.shots.detectors import get_detector

    err = console
    params: dict[str, object] = {}
    if threshold is not None:
        key = "adaptive_threshold" if detector == "adaptive" else "threshold"
        params[key] = threshold
    if min_scene_len is not None:
        if detector not in ("content", "adaptive", "histogram"):
            err.print(f"[bold red]error:[/] --min-scene-len does not apply to {detector}")
            raise typer.Exit(code=2)
        params["min_scene_len"] = min_scene_len
    try:
        shot_detector = get_detector(detector, **params)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None

    failed = 0
    table = Table(title=f"shots ({detector})")
    for column in ("video", "fps", "frames", "cuts"):
        table.add_column(column, justify="left" if column in ("video", "cuts") else "right")
    # Progress goes to stderr and only on a terminal: stdout stays pure JSON lines for tools.
    with progress_bar(transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("shots", total=len(videos), rate="", current="")
        for video in videos:
            progress.update(task, current=video.name[:40])
            failed += _detect_one(shot_detector, video, as_json, table, err)
            progress.advance(task)
    if not as_json and table.row_count:
        Console().print(table)
    if failed:
        raise typer.Exit(code=1)


def _detect_one(
    shot_detector: ShotDetector, video: Path, as_json: bool, table: Table, err: Console
) -> int:
    """Detect one video and print or tabulate the result; 1 if it failed, else 0."""
    try:
        if not video.is_file():
            raise FileNotFoundError(f"no such file: {video}")
        result = shot_detector.detect(video)
        if result.num_frames == 0:
            raise ValueError(f"no frames decoded from {video}")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # one bad video must not stop the others
        if as_json:
            typer.echo(json.dumps({"video": str(video), "error": _one_line(exc)}))
        else:
            err.print(f"[red]{video}[/]: {_one_line(exc)}", highlight=False)
        return 1
    if as_json:
        typer.echo(json.dumps(result.to_json(str(video))))
    else:
        cuts = ", ".join(str(c) for c in result.cuts) or "-"
        table.add_row(str(video), f"{result.fps:.3f}", str(result.num_frames), cuts)
    return 0


def register(app: typer.Typer) -> None:
    """Add the ``detect-shots`` command to ``app``."""
    app.command("detect-shots")(detect_shots)
