"""A whole run: ingest → probe → shots → policy → cut → export → report, resumable.

``run.json`` records the config, software versions and every stage's name, version and
parameters. A re-run into the same directory resumes only when those match: results made with
different parameters must never be merged silently into one table.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.config import RunConfig
from clipsieve.engine.base import (
    ProgressCallback,
    RunResult,
    StageProgressCallback,
)
from clipsieve.engine.checkpoint import SHARD_DIR
from clipsieve.engine.executors import make_executor
from clipsieve.engine.replan import replan
from clipsieve.errors import UserError
from clipsieve.export import export_run
from clipsieve.ingest.folder import ingest_rows
from clipsieve.media.cut import GROUP_CLIPS
from clipsieve.media.sources import SourceCache
from clipsieve.pipeline import build_pipeline, software_versions
from clipsieve.redact import redact_value
from clipsieve.runfolder import CLIPS_DIR, CLIPS_FILE, INPUTS_FILE, RUN_JSON, VIDEOS_FILE
from clipsieve.runlock import run_lock
from clipsieve.stage import Pipeline
from clipsieve.steps.carry import (
    PREVIOUS_FILE,
    carry_over,
    carry_steps,
    keep_previous_table,
)
from clipsieve.steps.relocate import relocate_clips
from clipsieve.storage import RunLocation, is_url, upload_table_files
from clipsieve.table import write_json, write_parquet
from clipsieve.vectors import VECTOR_DIR


class RunDirError(UserError):
    """The output folder cannot be used for this run (one line saying why and what to do)."""


@dataclass
class RunOutputs:
    result: RunResult
    run_dir: Path  # where the files were made (the staging folder of a URL run folder)
    files: dict[str, Path | str]  # the run's top-level files (URLs for a URL run folder)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _settings(stage: dict[str, Any]) -> dict[str, Any]:
    """A stage's parameters without those that only say where outputs go (a moved folder)."""
    skip = set(stage.get("location_params") or ())
    return {k: v for k, v in stage["params"].items() if k not in skip}


def _check_resumable(location: RunLocation, stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The previous run.json, or None; refuse to resume a run made with other stage params."""
    run_dir = location.target
    path = location.local / RUN_JSON
    if location.remote:
        text = location.read_text(RUN_JSON)
    else:
        text = path.read_text(encoding="utf-8") if path.exists() else None
    if text is None:
        return None
    try:
        previous = json.loads(text)
    except ValueError:
        raise RunDirError(
            f"{location.url(RUN_JSON)} is not valid JSON; remove it or choose another --out"
        ) from None
    before = {s["name"]: s for s in previous.get("stages", [])}
    for stage in stages:
        old = before.get(stage["name"])
        # run.json holds the parameters as recorded: credentials in URLs masked
        if old is not None and (_settings(old), old["version"]) != (
            _settings({**stage, "params": redact_value(stage["params"])}),
            stage["version"],
        ):
            raise RunDirError(
                f"{run_dir} holds a run made with different '{stage['name']}' settings; "
                "use a new --out folder or pass --restart to discard it"
            )
    return previous


def _check_out_outside_inputs(run_dir: Path, inputs: Sequence[str | Path]) -> None:
    """Refuse an output folder inside an input folder: the next run would search it and take
    its own clips as new videos (clips of clips, the run growing each time)."""
    out = run_dir.resolve()
    for item in inputs:
        folder = Path(item).expanduser()
        if folder.is_dir() and out.is_relative_to(folder.resolve()):
            raise RunDirError(
                f"--out {run_dir} is inside the input folder {item}: the next run would take "
                "its own clips as new videos; choose an --out outside it"
            )


def _previous_steps(
    previous: dict[str, Any] | None, stages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The post-run steps recorded in the previous run.json, kept across a resumed `run`.
    A folder written before steps were listed apart had them among ``stages``: those whose
    name is no stage of this pipeline are taken from there."""
    if not previous:
        return []
    names = {s["name"] for s in stages}
    older = [s for s in previous.get("stages", []) if s.get("name") not in names]
    return [*older, *previous.get("steps", [])]


RUN_OUTPUTS = (
    SHARD_DIR, CLIPS_DIR, RUN_JSON, VIDEOS_FILE, CLIPS_FILE, VECTOR_DIR, "captions",
    PREVIOUS_FILE, INPUTS_FILE,
)  # fmt: skip


def choose_engine(
    config: RunConfig,
    engine: str | None = None,
    workers: int | None = None,
    address: str | None = None,
) -> str | None:
    """Apply ``--engine``/``--workers``/``--address`` to ``config.engine`` (an address implies
    Ray). Local workers are capped per core; returns the one-line note when they were."""
    from clipsieve.engine.executors import EXECUTORS
    from clipsieve.engine.local import capped_workers

    if engine is not None and engine not in EXECUTORS:
        raise UserError(f"--engine must be one of {', '.join(EXECUTORS)}, not {engine!r}")
    if workers is not None:
        config.engine.workers = workers
    note = None
    if config.engine.executor != "ray" and engine != "ray" and address is None:
        config.engine.workers, note = capped_workers(config.engine.workers)
    if engine is not None:
        config.engine.executor = engine  # type: ignore[assignment]
    if address is not None:
        config.engine.address = address
        config.engine.executor = "ray"
    return note


def prepare_run_dir(location: RunLocation | Path, restart: bool) -> None:
    """Create the run folder (or clear it with ``restart``) and check it is writable.

    A URL run folder is checked with a probe object, cleared remotely on ``restart``, and its
    staging shards are made equal to the remote ones (the remote folder is what resumes).
    """
    if not isinstance(location, RunLocation):
        location = RunLocation.resolve(location)
    run_dir = location.local
    if restart:
        location.remove(RUN_OUTPUTS)
    if restart and run_dir.exists():
        for name in RUN_OUTPUTS:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(
            f"cannot write to output folder {run_dir}: {exc.strerror or exc} "
            "(choose a writable --out)"
        ) from None
    location.check_writable()
    location.sync_shards(SHARD_DIR)


@dataclass
class PreparedRun:
    """A validated run: folder ready, inputs found, stages built, ``run.json`` written."""

    run_dir: Path  # where files are made: the run folder, or a URL run folder's staging
    config: RunConfig
    pipeline: Pipeline
    rows: list[dict[str, Any]]
    run_info: dict[str, Any]
    location: RunLocation

    def save_run_json(self) -> None:
        """Write ``run.json`` (atomically) and upload it to a URL run folder."""
        write_json(self.run_info, self.run_dir / RUN_JSON)
        self.location.upload([RUN_JSON])


def prepare_run(
    inputs: Sequence[str | Path],
    run_dir: str | Path,
    config: RunConfig,
    *,
    restart: bool = False,
    pipeline: Pipeline | None = None,
    rows: list[dict[str, Any]] | None = None,
) -> PreparedRun:
    """Everything that can fail because of the user, done before any video is touched.

    ``rows``: ready ``videos`` rows (from a metafile, carrying their clip spans) instead of
    searching ``inputs`` for files; the run then plans clips from the spans, not from shots.
    """
    location = RunLocation.resolve(run_dir)
    run_dir = location.local
    from_spans = rows is not None
    if rows is None:
        rows = ingest_rows([str(p) for p in inputs])
    prepare_run_dir(location, restart)
    if not location.remote:
        _check_out_outside_inputs(run_dir, inputs)
    publish_to = location.url("clips") if location.remote else None
    pipeline = pipeline or build_pipeline(
        config, run_dir, from_spans=from_spans, publish_to=publish_to
    )
    stages = pipeline.describe()
    previous = _check_resumable(location, stages)
    replanned = None if location.remote else replan(run_dir, rows)
    invocations = list((previous or {}).get("invocations", []))
    invocations.append({"started": _now()})
    if replanned is not None:
        done_again = {
            "replanned": replanned.changed,
            "retried": replanned.retried,
            "recut": replanned.recut,
        }
        invocations[-1].update({k: v for k, v in done_again.items() if v})
    run_info: dict[str, Any] = {
        "inputs": [str(p) for p in inputs],
        "config": config.to_dict(),
        "stages": stages,
        "steps": _previous_steps(previous, stages),
        "versions": software_versions(),
        "invocations": invocations,
        "num_videos": len(rows),
    }
    prepared = PreparedRun(run_dir, config, pipeline, rows, run_info, location)
    prepared.save_run_json()
    return prepared


def _execute(
    prepared: PreparedRun,
    provenance: dict[str, Any],
    progress: ProgressCallback | None,
    stage_progress: StageProgressCallback | None,
) -> RunResult:
    """Run the configured engine; it leaves shards plus the two merged tables in the folder."""
    engine = prepared.config.engine
    grouped = GROUP_CLIPS if engine.executor == "local" else None
    executor = make_executor(
        engine.executor,
        prepared.pipeline,
        prepared.run_dir,
        location=prepared.location,
        workers=engine.workers,
        # locally a video's clips go out in groups one ffmpeg process cuts (the source decoded
        # once); Ray sizes its blocks from the input unless told
        clips_per_task=engine.clips_per_task or grouped,
        address=engine.address,
    )
    return executor.run(
        prepared.rows, progress=progress, stage_progress=stage_progress, metadata=provenance
    )


def execute_run(
    prepared: PreparedRun,
    progress: ProgressCallback | None = None,
    stage_progress: StageProgressCallback | None = None,
) -> RunOutputs:
    """Process (or resume) every video, then write the tables, exports and report."""
    run_dir, config, run_info = prepared.run_dir, prepared.config, prepared.run_info
    provenance = {
        "clipsieve_stages": run_info["stages"],
        "clipsieve_versions": run_info["versions"],
    }
    kept = None if prepared.location.remote else keep_previous_table(run_dir)
    started = time.perf_counter()
    result = _execute(prepared, provenance, progress, stage_progress)
    engine_seconds = time.perf_counter() - started
    if kept is not None:  # post-run columns back in: marks, captions, clusters, ...
        carried = carry_over(run_dir, kept)
        run_info["steps"] = carry_steps(run_info["steps"], carried.rows_added)
    if not prepared.location.remote:  # a moved or copied run folder: paths follow it
        relocate_clips(run_dir, run_dir / "clips")
    if any(is_url(str(row.get("path") or "")) for row in prepared.rows):
        SourceCache().clear()  # this node's copies of URL sources (the cut clips are made)
    files: dict[str, Path] = {
        VIDEOS_FILE: result.videos_path,
        CLIPS_FILE: result.clips_path,
    }
    # The run folder always holds both Parquet tables; csv/jsonl are the optional exports.
    other_formats = tuple(f for f in config.export.formats if f != "parquet")
    exported = export_run(
        run_dir, result.clips_path, formats=other_formats, root=prepared.location.target
    )
    files.update({path.name: path for path in exported.values()})

    run_info["invocations"][-1].update(
        {
            "finished": _now(),
            "processed": result.processed,
            "skipped": result.skipped,
            "engine": result.engine,
            "workers": result.workers,
            "engine_seconds": round(engine_seconds, 3),
            "engine_startup_seconds": round(result.startup_s, 3),
        }
    )
    # A list in pipeline order (run.json is written with sorted keys, a dict would lose it).
    run_info["stage_stats"] = [
        {
            "stage": stage.name,
            "seconds": round(s.seconds, 3),
            "rows_in": s.rows_in,
            "rows_out": s.rows_out,
            "errors": dict(s.errors),
        }
        for stage in prepared.pipeline.stages
        if (s := result.stats.get(stage.name)) is not None
    ]
    prepared.save_run_json()
    if config.report.enabled:
        from clipsieve.report.html import write_report

        files["report.html"] = write_report(
            run_dir, result.videos_path, result.clips_path, run_info
        )
    if prepared.location.remote:
        return RunOutputs(result, run_dir, dict(upload_table_files(prepared.location, files)))
    return RunOutputs(result, run_dir, dict(files))


def run_folder_lock(run_dir: str | Path) -> contextlib.AbstractContextManager[None]:
    """The run folder's lock (:mod:`clipsieve.runlock`) for a whole `run`: the local folder,
    or a URL run folder's staging folder. Made before the folder is prepared."""
    return run_lock(RunLocation.resolve(run_dir).local, "run", create=True)


def run_pipeline(
    inputs: Sequence[str | Path],
    run_dir: str | Path,
    config: RunConfig,
    progress: ProgressCallback | None = None,
    stage_progress: StageProgressCallback | None = None,
    **prepare: Any,
) -> RunOutputs:
    """Run (or resume) the whole pipeline on ``inputs`` (or metafile ``rows``) into ``run_dir``,
    holding the run folder's lock. ``prepare``: :func:`prepare_run`'s keyword options
    (``restart``, ``pipeline``, ``rows``)."""
    with run_folder_lock(run_dir):
        prepared = prepare_run(inputs, run_dir, config, **prepare)
        return execute_run(prepared, progress=progress, stage_progress=stage_progress)


def probe_inputs(
    inputs: list[str],
    out: str | Path,
    progress: ProgressCallback | None = None,
) -> tuple[pa.Table, Path]:
    """``clipsieve ingest``: find the videos of ``inputs`` and probe them into
    ``OUT/videos.parquet`` (a broken file gets an error row); returns the table and its path."""
    from clipsieve.media.probe import ProbeStage
    from clipsieve.table import VIDEO_SCHEMA, concat_tables, rows_to_table

    out = Path(out)
    prepare_run_dir(out, restart=False)
    rows = ingest_rows(inputs)
    stage = ProbeStage()
    stage.setup()
    parts = []
    for done, row in enumerate(rows, 1):
        parts.append(stage.process(rows_to_table([row], VIDEO_SCHEMA)))
        if progress is not None:
            progress(row["path"], done, len(rows))
    videos = concat_tables(parts, VIDEO_SCHEMA)
    path = write_parquet(videos, out / VIDEOS_FILE, {"clipsieve_stages": [stage.describe()]})
    return videos, path
