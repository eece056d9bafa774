"""``clipsieve caption`` without the command line: caption a finished run folder.

Answers are saved as they arrive: each chunk of answered rows is appended to
``RUN/captions/part-NNNNNN.parquet`` (``clip_id`` + the caption columns), so Ctrl-C, SIGTERM or
a crash loses at most the chunk in flight, and a re-run skips every row a part already
answered. When every wanted row has an answer, one post-run step (:class:`CaptionMergeStep`)
joins the parts into the table (DuckDB, latest part wins), runs the optional rewrite pass and
the post-processing (clean, marks, duplicate captions across the whole table), and the parts are
removed. Bytes written: the answers once, the table once.

Order: caption the wanted rows, optionally rewrite, post-process every caption, merge, then
optionally recompute the text-video ``match`` score against the new captions.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from clipsieve.caption.columns import (
    CAPTION_FIELDS,
    MARK_FIELDS,
    SOURCE_CAPTION_COLUMNS,
    apply_columns,
    init_source_captions,
)
from clipsieve.caption.errors import BackendUnavailable
from clipsieve.caption.prompts import PromptTemplate, load_prompt
from clipsieve.caption.ray_exec import RayCaptioner
from clipsieve.caption.stage import (
    CaptionStage,
    CaptionStats,
    PostOptions,
    postprocess_rows,
    unmark_rows,
)
from clipsieve.engine.ray_pool import RayOptions
from clipsieve.errors import UserError
from clipsieve.steps import AlignedUpdates, PostRunStep, StepContext, StepRunner
from clipsieve.steps.sql import text
from clipsieve.table import error_text, write_parquet

MATCH_SCORER = "match"
PARTS_DIR = "captions"
ANSWER_SCHEMA = pa.schema([pa.field("clip_id", pa.string()), *CAPTION_FIELDS])


@dataclass
class CaptionOutcome:
    """What a caption run did (for the summary line and for tests)."""

    caption: CaptionStats
    rewrite: CaptionStats | None = None
    marks: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # caption_error text -> rows
    aborted: str | None = None
    rematched: bool = False
    rematch_note: str | None = None  # why --rematch produced no match column (weights absent)
    run_dir: Path | None = None

    @property
    def clips(self) -> pa.Table:
        """The captioned clip table (read on demand: small runs and tests)."""
        from clipsieve.runfolder import load_clips

        assert self.run_dir is not None
        return load_clips(self.run_dir)


class AnswerParts:
    """The append-only answer parts of one run folder (``folder``: ``captions/`` for the caption
    pass, ``classify/`` for the classify pass; ``schema``: ``clip_id`` and the answer columns)."""

    def __init__(
        self, run_dir: Path, folder: str = PARTS_DIR, schema: pa.Schema = ANSWER_SCHEMA
    ) -> None:
        self.dir = run_dir / folder
        self.schema = schema

    def paths(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet")) if self.dir.is_dir() else []

    def answered(self) -> set[str]:
        """Clip ids a part already holds an answer for (a resumed run skips them)."""
        done: set[str] = set()
        for path in self.paths():
            done.update(pq.read_table(path, columns=["clip_id"]).column(0).to_pylist())
        return done

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Write one part atomically (the next number; never rewrites an earlier part)."""
        if not rows:
            return
        paths = self.paths()
        number = int(paths[-1].stem.split("-")[1]) + 1 if paths else 0
        table = pa.Table.from_pylist(
            [{name: row.get(name) for name in self.schema.names} for row in rows],
            schema=self.schema,
        )
        write_parquet(table, self.dir / f"part-{number:06d}.parquet")

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# what CaptionStage.wanted and the row preparation look at (counting needs no other column)
WANTED_COLUMNS = (
    "clip_id", "keep", "status", "drop_reason", "path", "source_path", "caption_raw",
    "caption_error", *SOURCE_CAPTION_COLUMNS, "caption_src",
)  # fmt: skip


def _candidate_rows(
    ctx: StepContext,
    stage: CaptionStage,
    batch_rows: int = 4096,
    columns: tuple[str, ...] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The table's rows (``columns`` of them, default all), batch by batch, as ``stage`` sees
    them (the caption stage: source captions moved to ``caption_src`` on the first run, caption
    marks undone)."""
    names = [n for n in columns if n in ctx.schema.names] if columns else ctx.schema.names
    for batch in ctx.scan(names, batch_rows):
        rows = batch.to_pylist()
        stage.selection_view(rows)
        yield rows


class _Reachability:
    """Whether the backend answered the first check (asked once, before the first request)."""

    def __init__(self) -> None:
        self.checked = False
        self.unavailable: BackendUnavailable | None = None


def _todo_chunks(
    ctx: StepContext,
    stage: CaptionStage,
    parts: AnswerParts,
    chunk_rows: int,
    reach: _Reachability,
) -> Iterator[list[dict[str, Any]]]:
    """Chunks of the wanted rows no part answers yet. If the backend cannot be reached, every
    wanted row records why (a part of errors) and nothing is yielded. ``reach.checked`` set
    beforehand skips the check (Ray with a local model: the workers load it, not the driver)."""
    done = parts.answered()
    for rows in _candidate_rows(ctx, stage):
        todo = [r for r in rows if r["clip_id"] not in done and stage.wanted(r)]
        if not todo:
            continue
        if not reach.checked:
            reach.checked = True
            try:
                stage.backend_instance.check()
            except BackendUnavailable as exc:
                reach.unavailable = exc
        if reach.unavailable is not None:  # every wanted row records why, then the run stops
            error = error_text(stage.name, reach.unavailable)
            parts.append([{**r, stage.error_column: error} for r in todo])
            continue
        for start in range(0, len(todo), chunk_rows):
            yield todo[start : start + chunk_rows]


def caption_answers(
    ctx: StepContext,
    stage: CaptionStage,
    parts: AnswerParts,
    chunk_rows: int,
    captioner: RayCaptioner | None = None,
) -> None:
    """Ask the backend for every wanted row no part answers yet; append answers as parts
    (here, or from Ray workers through ``captioner``: the driver writes every part)."""
    reach = _Reachability()
    # a local VLM's check is loading it: on Ray that happens on the workers, not here too
    reach.checked = captioner is not None and stage.backend == "local"
    chunks = _todo_chunks(ctx, stage, parts, chunk_rows, reach)
    if captioner is not None:
        captioner.run(chunks, parts.append)
    else:
        for chunk in chunks:
            asked = list(chunk)  # caption_rows puts a new dict in place of each answered row
            try:
                # after an abort the stage marks rows "not attempted" without asking the server
                stage.caption_rows(chunk)
            except BaseException:  # Ctrl-C, SIGTERM: keep the answers that came back
                parts.append(
                    [row for row, before in zip(chunk, asked, strict=True) if row is not before]
                )
                raise
            parts.append(chunk)
    if reach.unavailable is not None:
        raise reach.unavailable


def aligned_answers(ctx: StepContext, parts: AnswerParts) -> AlignedUpdates | None:
    """The parts' answers in table order (DuckDB joins them by ``clip_id``, the latest part
    winning); ``_answered`` says which rows have one. None when there are no parts."""
    paths = parts.paths()
    if not paths:
        return None
    listed = ", ".join(text(str(p)) for p in paths)
    columns = ", ".join(f'a."{n}"' for n in parts.schema.names[1:])
    query = f"""
        WITH answers AS (
          SELECT * FROM read_parquet([{listed}], filename = true)
          QUALIFY row_number() OVER (PARTITION BY clip_id ORDER BY filename DESC) = 1)
        SELECT a.clip_id IS NOT NULL AS _answered, {columns}
        FROM clips c LEFT JOIN answers a ON a.clip_id = c.clip_id
        ORDER BY c._row"""
    return AlignedUpdates(ctx.sql().sql(query).to_arrow_reader(ctx.batch_rows))


class CaptionMergeStep(PostRunStep):
    """Join the answer parts into the table, rewrite, post-process (a global step: DuckDB
    joins the parts by ``clip_id``, the latest part winning, in table order)."""

    name = "caption"
    writes = tuple(f.name for f in (*CAPTION_FIELDS, *MARK_FIELDS))

    def __init__(
        self,
        stage: CaptionStage,
        post: PostOptions,
        parts: AnswerParts,
        rewrite: PromptTemplate | None,
        rewrite_name: str | None,
    ) -> None:
        self.stage, self.post, self.parts = stage, post, parts
        self.rewrite, self.rewrite_name = rewrite, rewrite_name
        self.rewrite_stats = CaptionStats() if rewrite is not None else None
        self.marks: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self._seen: set[str] = set()
        self._answers: AlignedUpdates | None = None
        self.engine = "local"  # where the answers were asked from (recorded)

    def prepare(self, ctx: StepContext) -> None:
        self._answers = aligned_answers(ctx, self.parts)

    def apply(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        table = pa.Table.from_batches([batch])
        rows = table.to_pylist()
        init_source_captions(rows)
        unmark_rows(rows)
        if self._answers is not None:
            answers = self._answers.take(len(rows)).to_pylist()
            for i, answer in enumerate(answers):
                if answer.pop("_answered"):
                    rows[i].update(answer)
        if self.rewrite is not None and self.rewrite_stats is not None and not self.stage.aborted:
            self.stage.rewrite_rows(rows, self.rewrite, self.rewrite_stats)
        for reason, n in postprocess_rows(rows, self.post, self._seen).items():
            self.marks[reason] = self.marks.get(reason, 0) + n
        for row in rows:
            if row.get("caption_error"):
                self.errors[row["caption_error"]] = self.errors.get(row["caption_error"], 0) + 1
        updated = apply_columns(table, rows)
        return {name: updated.column(name) for name in self.writes}

    def record(self) -> dict[str, Any]:
        step = self.stage.describe()
        step["params"]["post"] = vars(self.post)
        step["params"]["rewrite"] = self.rewrite_name
        step["params"]["engine"] = self.engine
        step["outputs"] = list(self.writes)
        step["summary"] = {"marks": self.marks, "errors": sum(self.errors.values())}
        return step


def ask_all(
    runner: StepRunner,
    stage: CaptionStage,
    parts: AnswerParts,
    merge: PostRunStep,
    chunk_rows: int,
    ray: RayOptions | None,
    progress: Callable[[str, int], None] | None,
) -> None:
    """Ask ``stage``'s backend about every wanted row no part answers yet (here, or from Ray
    actors), saving answers as parts. When the backend turns out unusable, what was recorded is
    merged (``merge``) before the error goes up, so no answer is lost."""
    ctx = runner.context()
    if progress is not None:
        done = parts.answered()
        columns = (*WANTED_COLUMNS, stage.answer_column, stage.error_column)
        wanted = sum(
            1 for rows in _candidate_rows(ctx, stage, columns=columns) for r in rows
            if r["clip_id"] not in done and stage.wanted(r)
        )  # fmt: skip
        progress(stage.name, wanted)
    try:
        with contextlib.ExitStack() as stack:
            captioner = None if ray is None else stack.enter_context(RayCaptioner(stage, ray))
            caption_answers(ctx, stage, parts, max(1, chunk_rows), captioner)
    except BackendUnavailable:
        runner.apply(merge)
        parts.clear()
        stage.teardown()
        raise
    finally:
        ctx.close()


def caption_run(
    run_dir: str | Path,
    stage: CaptionStage,
    post: PostOptions,
    rewrite: str | None = None,
    rematch: bool = False,
    progress: Callable[[str, int], None] | None = None,
    chunk_rows: int = 64,
    ray: RayOptions | None = None,
) -> CaptionOutcome:
    """Caption ``run_dir`` with ``stage``; ``rewrite``: a prompt name to run the rewrite pass;
    ``ray``: ask from a pool of Ray actors (the answers still come back here to be saved).

    ``progress(phase, total)`` is called when a phase starts; per-row progress goes through
    ``stage.on_row``. Raises a :class:`UserError` (after merging what was recorded) when the
    backend is unusable.
    """
    run_dir = Path(run_dir)
    runner = StepRunner(run_dir)
    parts = AnswerParts(run_dir)
    stage.setup()
    rewrite_template = load_prompt(rewrite) if rewrite else None  # fail fast on a bad name
    merge = CaptionMergeStep(stage, post, parts, rewrite_template, rewrite)
    merge.engine = "ray" if ray is not None else "local"
    outcome = CaptionOutcome(caption=stage.stats, run_dir=run_dir)
    ask_all(runner, stage, parts, merge, chunk_rows, ray, progress)
    if rewrite_template is not None and progress is not None and not stage.aborted:
        progress("rewrite", 0)
    runner.apply(merge)
    parts.clear()
    outcome.rewrite = merge.rewrite_stats
    outcome.marks = merge.marks
    outcome.errors = merge.errors
    outcome.aborted = stage.aborted
    stage.teardown()
    if stage.aborted:
        raise UserError(f"captioning stopped: {stage.aborted}")
    if rematch:
        outcome.rematch_note = rematch_run(run_dir)
        outcome.rematched = outcome.rematch_note is None
    return outcome


def rematch_run(run_dir: str | Path) -> str | None:
    """Recompute the ``match`` score against the new ``caption`` column (score stage registry);
    None when it was written, else why not (the scorer's first error)."""
    from clipsieve.runfolder import clips_path
    from clipsieve.score.names import SCORER_REGISTRY
    from clipsieve.score.rescore import score_step

    if MATCH_SCORER not in SCORER_REGISTRY:
        raise UserError(
            f"--rematch needs the text-video '{MATCH_SCORER}' scorer, which this clipsieve "
            f"does not have (known scorers: {', '.join(SCORER_REGISTRY.names())}); drop --rematch"
        )
    step = score_step(run_dir, [MATCH_SCORER])
    if MATCH_SCORER in pq.read_schema(clips_path(run_dir)).names:
        return None
    first = next(iter(step.errors), None)
    return first or "the match scorer wrote no column"
