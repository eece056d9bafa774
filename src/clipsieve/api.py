"""clipsieve from Python: the functions the command line calls, with the same parameters.

::

    import clipsieve

    outputs = clipsieve.run(["videos/"], "runs/a", workers=4)
    run = clipsieve.open_run("runs/a")
    run.filter(where=["flow_mean >= 0.5"], aesmin=4.5)
    run.dedup(methods=["phash"])
    run.clips().filter(pl.col("keep")).select("clip_id", "flow_mean").collect()
    run.export("webdataset")

Every step holds the run folder's lock while it writes (one writer at a time, as the commands),
streams the table instead of loading it, and records itself in ``run.json`` and the table's
provenance. Errors a user can cause are :class:`~clipsieve.errors.UserError` with one line.
A run folder here is a local path (the command line also takes ``s3://`` URLs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipsieve.errors import UserError
from clipsieve.runfolder import CLIPS_FILE, RUN_JSON, VIDEOS_FILE, clips_path
from clipsieve.score.names import DEFAULT_SCORERS

if TYPE_CHECKING:  # imported on use: `import clipsieve` stays light
    import polars as pl

    from clipsieve.classify.run import ClassifyOutcome
    from clipsieve.config import RunConfig
    from clipsieve.engine.ray_pool import RayOptions
    from clipsieve.export.training import ExportSummary
    from clipsieve.pipeline_run import RunOutputs
    from clipsieve.select.apply import DedupOutcome, FilterOutcome
    from clipsieve.select.cluster_run import ClusterOutcome


def _config(config: RunConfig | Mapping[str, Any] | str | Path | None) -> RunConfig:
    """A :class:`~clipsieve.config.RunConfig` from one, a mapping (the YAML's shape) or a file."""
    from clipsieve.config import RunConfig, config_from_dict, load_config

    if isinstance(config, RunConfig):
        return config
    if isinstance(config, Mapping):
        return config_from_dict(dict(config))
    return load_config(Path(config) if config is not None else None)


def _ray(engine: str, address: str | None, workers: int | None, gpus: float = 0.0) -> Any:
    from clipsieve.engine.ray_pool import ray_options

    return ray_options(engine, address, workers, gpus)


def run(
    inputs: Sequence[str | Path],
    out: str | Path,
    config: RunConfig | Mapping[str, Any] | str | Path | None = None,
    *,
    engine: str | None = None,
    workers: int | None = None,
    address: str | None = None,
    restart: bool = False,
    metafile: str | Path | None = None,
    videos: str | Path | None = None,
    select: str | None = None,
) -> RunOutputs:
    """``clipsieve run``: ingest → probe → shots → policy → cut → score → exports → report on
    ``inputs`` (files, folders or URLs) into the run folder ``out``; resumes an earlier run there.

    ``config``: a RunConfig, a dict shaped like the YAML file, or the file. ``metafile`` (with
    ``videos``, the download folder, and ``select``, ``"START:END"``) takes the videos, spans and
    captions from a metafile instead of ``inputs`` (pass ``[]``)."""
    from clipsieve.pipeline_run import choose_engine, run_pipeline

    settings = _config(config)
    choose_engine(settings, engine, workers, address)
    rows = None
    if metafile is not None:
        from clipsieve.ingest.metafiles import read_metafile
        from clipsieve.ingest.spans import resolve_rows

        meta = read_metafile(metafile, select=select)
        rows = resolve_rows(meta, Path(videos) if videos else None)
        inputs = [str(metafile)]
    elif not inputs:
        raise UserError("give video files or folders, or metafile=FILE")
    return run_pipeline([str(i) for i in inputs], out, settings, restart=restart, rows=rows)


def open_run(path: str | Path) -> Run:
    """A finished run folder, to read its tables and apply post-run steps."""
    folder = Path(path)
    clips_path(folder)  # one line saying how to make it when it is not a finished run
    return Run(folder)


@dataclass
class Run:
    """One run folder. Tables are read lazily (polars scans the Parquet files); each step
    method is the command of the same name."""

    path: Path

    # ------------------------------------------------------------------------ reading

    def clips(self) -> pl.LazyFrame:
        """The clip table as a polars LazyFrame (vector columns live apart: :meth:`vectors`)."""
        import polars as pl

        return pl.scan_parquet(clips_path(self.path))

    def videos(self) -> pl.LazyFrame:
        import polars as pl

        return pl.scan_parquet(self.path / VIDEOS_FILE)

    def vectors(self, column: str = "embedding") -> pl.LazyFrame:
        """``clip_id`` and the vector column (e.g. embeddings), joinable to :meth:`clips`."""
        import polars as pl

        from clipsieve.vectors import VECTOR_DIR

        path = self.path / VECTOR_DIR / f"{column}.parquet"
        if not path.is_file():
            raise UserError(f"{self.path} has no vectors '{column}': score with 'embed' first")
        return pl.scan_parquet(path)

    def arrow(self) -> Any:
        """The clip table as a pyarrow Dataset (for Arrow, DuckDB or Ray readers)."""
        import pyarrow.dataset as ds

        return ds.dataset(self.path / CLIPS_FILE, format="parquet")

    @property
    def info(self) -> dict[str, Any]:
        """``run.json``: config, stages, the steps applied since, invocations."""
        path = self.path / RUN_JSON
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    # ------------------------------------------------------------------------ steps

    def filter(
        self,
        where: str | Sequence[str] = (),
        preset: str | None = None,
        keep_unscored: bool = False,
        lang: Sequence[str] = (),
        remove_empty_caption: bool = False,
        **flags: float,
    ) -> FilterOutcome:
        """``clipsieve filter``: mark clips that fail ``where`` (and-ed), a ``preset`` or the
        Open-Sora flags (``fmin=48``, ``aesmin=5``, ``text_area_max=0.02``, ...)."""
        from clipsieve.select.apply import filter_run

        conditions = [where] if isinstance(where, str) else list(where)
        named = {k.replace("_", "-") if k == "text_area_max" else k: v for k, v in flags.items()}
        return filter_run(
            self.path, conditions, preset, keep_unscored, named, lang, remove_empty_caption
        )

    def dedup(
        self,
        methods: Sequence[str] = (),
        engine: str = "local",
        address: str | None = None,
        workers: int | None = None,
        **options: Any,
    ) -> DedupOutcome:
        """``clipsieve dedup``: ``methods`` exact, phash, semantic (empty: all the table can);
        ``options``: phash_threshold, phash_rotations, cosine_threshold, keep_best,
        partition_size, seed. ``engine="ray"`` embeds missing clips on Ray."""
        from clipsieve.select.apply import dedup_run

        ray = _ray(engine, address, workers)
        return dedup_run(self.path, ray, methods=tuple(methods), **options)

    def topn(self, by: str, n: int | None = 1, ascending: bool = False) -> dict[str, Any]:
        """``clipsieve topn``: the best ``n`` clips per source video (None: no cap)."""
        from clipsieve.select.apply import topn_run

        return topn_run(self.path, by, n, ascending)

    def score(
        self,
        scorers: str | Sequence[str] = DEFAULT_SCORERS,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        options: Sequence[str] = (),
        engine: str = "local",
        address: str | None = None,
        workers: int | None = None,
        gpus_per_worker: float = 0.0,
    ) -> dict[str, int]:
        """``clipsieve score``: add score columns (``scorers`` names, groups such as ``content``,
        or ``module:Class``); returns the errors by message."""
        from clipsieve.score.rescore import score_step, with_options

        names = [s.strip() for s in scorers.split(",")] if isinstance(scorers, str) else scorers
        settings = {k: dict(v) for k, v in (params or {}).items()}
        chosen = with_options([n for n in names if n], settings, options)
        ray = _ray(engine, address, workers, gpus_per_worker)
        return dict(score_step(self.path, chosen, settings, ray=ray).errors)

    def cluster(self, k: int | str = "auto", **options: Any) -> ClusterOutcome:
        """``clipsieve cluster``: ``options`` are the fields of
        :class:`~clipsieve.select.cluster_run.ClusterParams` (k_min, k_max, seed, nearest,
        keywords, balance="cap=100", describe=...)."""
        from clipsieve.select.balance import parse_balance
        from clipsieve.select.cluster_run import ClusterParams, cluster_run

        if isinstance(options.get("balance"), str):
            options["balance"] = parse_balance(options["balance"])
        params = ClusterParams(k=None if k == "auto" else int(k), **options)
        return cluster_run(self.path, params)

    def caption(
        self,
        backend: str = "openai",
        base_url: str | Sequence[str] = (),
        model: str | None = None,
        *,
        prompt: str = "recaption",
        clean: bool = False,
        english_only: bool = False,
        dedup: bool = False,
        rewrite: str | None = None,
        rematch: bool = False,
        engine: str = "local",
        address: str | None = None,
        workers: int | None = None,
        **options: Any,
    ) -> Any:
        """``clipsieve caption``: ``options`` are the request and selection options (api_key_env,
        frames, frame_size, concurrency, max_tokens, temperature, timeout_s, max_tries,
        all_rows, overwrite); ``rewrite``: a rewrite prompt name to run the rewrite pass."""
        from clipsieve.caption.run import caption_run
        from clipsieve.caption.stage import CaptionStage, PostOptions

        stage = CaptionStage(prompt=prompt, **self._vlm(backend, base_url, model, options))
        post = PostOptions(clean=clean, english_only=english_only, dedup=dedup)
        ray = _ray(engine, address, workers)
        return caption_run(self.path, stage, post, rewrite=rewrite, rematch=rematch, ray=ray)

    def classify(
        self,
        labels: str = "broad",
        backend: str = "openai",
        base_url: str | Sequence[str] = (),
        model: str | None = None,
        *,
        engine: str = "local",
        address: str | None = None,
        workers: int | None = None,
        **options: Any,
    ) -> ClassifyOutcome:
        """``clipsieve classify``: ``labels`` a preset (broad, panda70m) or a YAML file;
        ``options`` as for :meth:`caption`."""
        from clipsieve.classify.run import classify_run
        from clipsieve.classify.stage import ClassifyStage

        stage = ClassifyStage(labels=labels, **self._vlm(backend, base_url, model, options))
        return classify_run(self.path, stage, ray=_ray(engine, address, workers))

    @staticmethod
    def _vlm(
        backend: str, base_url: str | Sequence[str], model: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        """Stage fields from the request options (backend parameters apart)."""
        from clipsieve.caption.stage import backend_params

        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        request = {k: options.pop(k, None) for k in ("api_key_env", "max_tokens", "temperature",
                                                     "timeout_s", "max_tries")}  # fmt: skip
        params = backend_params(backend, urls, model, **request)
        return {"backend": backend, "backend_params": params, **options}

    def export(
        self,
        format: str = "webdataset",  # noqa: A002 - the command's name for it
        out: str | Path | None = None,
        link: str = "copy",
        shard_size: str = "1GB",
        shard_count: int | None = None,
        engine: str = "local",
        address: str | None = None,
        workers: int | None = None,
    ) -> ExportSummary:
        """``clipsieve export``: the kept clips as a training set (default folder
        ``RUN/export/FORMAT``)."""
        from clipsieve.export.training import ExportStep, export_target, parse_size
        from clipsieve.steps import apply_step

        target = export_target(self.path, format, out)
        ray: RayOptions | None = _ray(engine, address, workers)
        step = ExportStep(
            target, format, link=link, shard_bytes=parse_size(shard_size),
            shard_count=shard_count, ray=ray,
        )  # fmt: skip
        apply_step(self.path, step)
        assert step.result is not None
        return step.result

    def report(self, out: str | Path | None = None) -> Path:
        """``clipsieve report``: write ``report.html``; returns its path."""
        from clipsieve.report.html import ReportStep
        from clipsieve.steps import apply_step

        step = ReportStep(Path(out) if out else None)
        apply_step(self.path, step)
        assert step.path is not None
        return step.path
