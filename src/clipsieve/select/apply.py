"""Filter, top-N and dedup applied to a run folder: what ``clipsieve filter``, ``topn`` and
``dedup`` do, as plain functions the command line and Python callers share.

Each function takes the command's options as parameters, applies its post-run step(s) through
the streaming runner (the table is never loaded whole) and returns what the command prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from clipsieve.engine.ray_pool import RayOptions
from clipsieve.errors import UserError
from clipsieve.runfolder import clips_path
from clipsieve.steps import StepRunner, apply_step
from clipsieve.table import stream_parquet
from clipsieve.vectors import has_vectors


@dataclass
class FilterOutcome:
    """The funnel (``funnel.json``), where it was written, and top-N's summary when the preset
    re-applied it."""

    funnel: dict[str, Any]
    path: Path
    top_n: dict[str, Any] | None = None

    @property
    def stale_selection(self) -> bool:
        """Dedup or top-N marked rows before this filter: they should run again over the rows
        the filter now keeps."""
        reasons = self.funnel["excluded_before"]
        return any(r == "duplicate" or r.startswith("top_n: ") for r in reasons)


def filter_run(
    run_dir: str | Path,
    where: Sequence[str] = (),
    preset: str | None = None,
    keep_unscored: bool = False,
    flags: Mapping[str, float] | None = None,
    lang: Sequence[str] = (),
    remove_empty_caption: bool = False,
) -> FilterOutcome:
    """Mark the clips that fail ``where`` (expressions, and-ed), a ``preset`` (name or YAML file)
    and the Open-Sora-style ``flags`` (``{"fmin": 48, "aesmin": 5}``); write the funnel."""
    from clipsieve.select.datautil import flag_conditions
    from clipsieve.select.filter import FilterStep, combine, write_funnel
    from clipsieve.select.presets import load_preset
    from clipsieve.select.topk import TOPN_REASON, TopNStep

    runner = StepRunner(run_dir)
    names = runner.context().schema.names
    flags = dict(flags or {})
    spec = load_preset(preset) if preset else None
    parts = list(spec.where) if spec else []
    parts += flag_conditions(flags, list(lang), remove_empty_caption, names)
    parts += list(where)
    expression = combine(parts)
    if not expression:
        raise UserError("nothing to filter by: pass --where EXPR, --preset NAME or a flag")
    sources = {"preset": spec.name if spec else None, "flags": flags}
    # a preset that re-applies top-N lets the filter judge the rows top-N dropped
    release = (TOPN_REASON,) if spec and spec.top_n else ()
    step = FilterStep(expression, keep_unscored, sources, release)
    runner.apply(step)
    funnel = step.funnel()
    top_n = None
    if spec and spec.top_n:
        topn = TopNStep(spec.top_n.by, spec.top_n.n, spec.top_n.ascending)
        runner.apply(topn)
        top_n = topn.summary()
        funnel["top_n"] = top_n
        funnel["kept_after_top_n"] = top_n["kept"]
    return FilterOutcome(funnel, write_funnel(run_dir, funnel), top_n)


def topn_run(
    run_dir: str | Path, by: str, n: int | None = 1, ascending: bool = False
) -> dict[str, Any]:
    """Keep the best ``n`` clips per source video by ``by`` (None: no cap) and one per span."""
    from clipsieve.select.topk import TopNStep

    step = TopNStep(by, n, ascending)
    apply_step(run_dir, step)
    return step.summary()


@dataclass
class DedupOutcome:
    """What dedup found, the table it marked, and the embedding pass's errors if it ran."""

    summary: dict[str, Any]
    clips_file: Path
    embed_errors: dict[str, int] = field(default_factory=dict)


def dedup_run(
    run_dir: str | Path,
    ray: RayOptions | None = None,
    on_note: Callable[[str], None] | None = None,
    **options: Any,
) -> DedupOutcome:
    """Find duplicate clips, keep the best copy of each group and mark the others.

    ``options`` are :class:`~clipsieve.select.dedup.DedupParams`' fields (``methods``: exact,
    phash, semantic, empty for every method the table has columns for; ``phash_threshold``,
    ``cosine_threshold``, ``keep_best``, ...). Semantic dedup on clips without embeddings embeds
    them first (here, or on Ray with ``ray``); ``on_note`` hears that it does."""
    from clipsieve.select.dedup import DedupParams, DedupStep

    params = DedupParams(**options)
    errors: dict[str, int] = {}
    if "semantic" in params.methods or (not params.methods and ray is not None):
        errors = embed_missing(run_dir, ray, on_note)
    step = DedupStep(params)
    outcome = apply_step(run_dir, step)
    return DedupOutcome(step.summary(), outcome.clips_file, errors)


def embed_missing(
    run_dir: str | Path, ray: RayOptions | None, on_note: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Embed the clips (the ``embed`` scorer) when the run has no embeddings yet: the step
    semantic dedup needs, and the costly one (a decode and an encoder pass per clip). Returns
    the embedding errors by message."""
    from clipsieve.score.rescore import score_step

    if (
        has_vectors(run_dir, "embedding")
        or "embedding" in pq.read_schema(clips_path(run_dir)).names
    ):
        return {}
    if on_note is not None:
        where = "on Ray" if ray is not None else "here"
        on_note(f"the clips have no embeddings yet: embedding them {where} first")
    return dict(score_step(run_dir, ["embed"], ray=ray).errors)


def marked_duplicates(clips_file: str | Path, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The first ``limit`` rows marked as copies (``clip_id``, ``dup_group``, ``dup_of``,
    ``dup_method``) and how many there are in all, streamed."""
    shown: list[dict[str, Any]] = []
    total = 0
    columns = ["clip_id", "dup_group", "dup_of", "dup_method"]
    for batch in stream_parquet(clips_file).iter_batches(columns=columns):
        marked = batch.filter(pc.is_valid(batch.column("dup_of")))
        total += marked.num_rows
        shown.extend(marked.slice(0, max(0, limit - len(shown))).to_pylist())
    return shown, total
