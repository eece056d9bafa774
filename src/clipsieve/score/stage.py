"""The ``score`` stage: decode each clip once, run every requested scorer on it.

Scorers are registered by name (``SCORERS``). Every scorer's columns are always present in the
output (null when not computed), so tables from different runs line up. A scorer that fails on
one clip leaves its columns null and records ``"<scorer>: <reason>"`` in ``score_errors``; the
other scorers' values are kept. A clip that cannot be decoded at all gets ``status='error'``.
Rows dropped by the length policy (``keep == False``) are not scored: they have no clip file.

A scorer whose model cannot be loaded (``ModelUnavailable`` in ``setup``: hub weights absent) is
left out of the run: its columns are not written, every scored row's ``score_errors`` says why,
and the stage's provenance lists it under ``unavailable``; the other scorers run as usual.
Scorers with a ``score_rows(frames, rows)`` method (the learned ones) get all clips of a batch
at once, so their model sees one large batch of frames, and they can read row columns such as
the caption.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from clipsieve.media.frames import FrameSampler, SampleError
from clipsieve.media.source_check import SourceChanged, SourceCheck
from clipsieve.models.registry import ModelUnavailable
from clipsieve.score.base import Frames, Scorer
from clipsieve.score.names import DEFAULT_SCORERS, SCORER_REGISTRY, expand_groups
from clipsieve.stage import Resources, RowStage, StageError, merge_row
from clipsieve.table import CLIP_SCHEMA, STATUS_ERROR, error_text, rows_to_table, table_to_rows


def make_scorer(name: str, **params: Any) -> Scorer:
    """Build a scorer by name (built-in, plugin, or ``module:Class``); a bad name or
    parameter is one UserError."""
    scorer: Scorer = SCORER_REGISTRY.create(name, **params)
    return scorer


@dataclass
class ScoreStage(RowStage):
    """Run scorers over clip rows, decoding each clip once for all of them."""

    name: ClassVar[str] = "score"
    table: ClassVar[str] = "clips"
    inputs: ClassVar[tuple[str, ...]] = ("path", "source_path", "start_frame", "end_frame", "fps")

    scorers: list[str] = field(default_factory=lambda: list(DEFAULT_SCORERS))
    scorer_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    _scorers: list[Scorer] = field(default_factory=list, init=False, repr=False, compare=False)
    _sampler: FrameSampler | None = field(default=None, init=False, repr=False, compare=False)
    _unavailable: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _sources: SourceCheck = field(
        default_factory=SourceCheck, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.scorers = expand_groups(self.scorers)
        self._scorers = [make_scorer(n, **self.scorer_params.get(n, {})) for n in self.scorers]
        self._sampler = FrameSampler({s.name: s.frame_spec() for s in self._scorers})

    def resources(self) -> Resources:
        """One CPU; plus a GPU when a scorer runs a large model (CLIP, SigLIP, a hub encoder).

        Executors place the stage by this (Ray: an actor pool with ``num_gpus``); on a machine
        or cluster without GPUs they run it on CPU as usual.
        """
        wants_gpu = any(s.uses_gpu() for s in self._scorers)
        return Resources(cpus=1.0, gpus=1.0 if wants_gpu else 0.0)

    def outputs(self) -> tuple[str, ...]:
        return (*[c for s in self._active() for c in s.columns], "score_errors")

    def _active(self) -> list[Scorer]:
        return [s for s in self._scorers if s.name not in self._unavailable]

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "scorers": [
                {"name": s.name, "version": s.version, "params": s.params()} for s in self._scorers
            ]
        }
        if self._unavailable:
            params["unavailable"] = dict(self._unavailable)
        return params

    def mark_unavailable(self, reasons: dict[str, str]) -> None:
        """Record scorers that could not be set up elsewhere (a Ray worker), so this stage's
        outputs and record agree with what the workers score, without loading models here."""
        self._unavailable.update(reasons)

    def unavailable(self) -> dict[str, str]:
        return dict(self._unavailable)

    def setup(self) -> None:
        for scorer in self._active():
            try:
                scorer.setup()
            except ModelUnavailable as exc:
                self._unavailable[scorer.name] = " ".join(str(exc).split())
        if self._unavailable:  # stop decoding frames that only the skipped scorers wanted
            self._sampler = FrameSampler({s.name: s.frame_spec() for s in self._active()})

    def teardown(self) -> None:
        for scorer in self._scorers:
            scorer.teardown()

    def _empty(self) -> dict[str, Any]:
        return {column: None for column in self.outputs()}

    def _sample(self, row: dict[str, Any]) -> dict[str, Frames]:
        assert self._sampler is not None
        if not self._sampler.specs:  # every requested scorer is unavailable: nothing to decode
            return {}
        clip_file = row.get("path")
        try:
            if clip_file and Path(clip_file).is_file():
                return self._sampler.sample(clip_file, fps=row.get("fps"))
            if row.get("source_path"):
                return self._sampler.sample(
                    self._sources.source(row),
                    start_frame=int(row["start_frame"]),
                    end_frame=int(row["end_frame"]),
                    fps=row.get("fps"),
                )
        except (SampleError, SourceChanged) as exc:
            raise StageError(str(exc)) from None
        raise StageError("row has neither a clip file nor a source path")

    def _score_many(
        self, rows: list[dict[str, Any]], sampled: list[dict[str, Frames]]
    ) -> list[dict[str, Any]]:
        """Score columns plus ``score_errors`` for rows whose frames were sampled."""
        values = [self._empty() for _ in rows]
        errors: list[list[str]] = [[] for _ in rows]
        for scorer in self._scorers:
            if scorer.name in self._unavailable:
                for err in errors:
                    err.append(error_text(scorer.name, self._unavailable[scorer.name]))
                continue
            frames = [s[scorer.name] for s in sampled]
            results: list[dict[str, Any] | None] = [None] * len(rows)
            if len(rows) > 1:
                try:
                    results = list(scorer.score_rows(frames, rows))
                except Exception:  # noqa: BLE001 - retried per row below to find the bad one
                    results = [None] * len(rows)
            for i, result in enumerate(results):
                if result is None:
                    try:
                        result = scorer.score_rows([frames[i]], [rows[i]])[0]
                    except Exception as exc:  # one scorer's failure must not lose the others
                        errors[i].append(error_text(scorer.name, exc))
                        continue
                values[i].update({c: result.get(c) for c in scorer.columns})
        for value, err in zip(values, errors, strict=True):
            value["score_errors"] = "; ".join(err) or None
        return values

    def process(self, batch: pa.Table) -> pa.Table:
        """Sample every row, then run each scorer over all sampled rows of the batch."""
        rows = table_to_rows(batch)
        out: list[dict[str, Any] | None] = [None] * len(rows)
        todo: list[int] = []
        sampled: list[dict[str, Frames]] = []
        for i, row in enumerate(rows):
            if row.get("status") == STATUS_ERROR:
                out[i] = row
            elif row.get("keep") is False:
                out[i] = merge_row(row, **{k: row.get(k) for k in self.outputs()})
            else:
                try:
                    sampled.append(self._sample(row))
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # a bad clip must not stop the run
                    out[i] = self.on_error(row, exc)[0]
                    continue
                todo.append(i)
        scored = self._score_many([rows[i] for i in todo], sampled) if todo else []
        for i, values in zip(todo, scored, strict=True):
            out[i] = merge_row(rows[i], **values)
        return rows_to_table([r for r in out if r is not None], CLIP_SCHEMA)

    def process_row(self, row: dict[str, Any]) -> dict[str, Any]:
        if row.get("keep") is False:
            return merge_row(row, **{k: row.get(k) for k in self.outputs()})
        return merge_row(row, **self._score_many([row], [self._sample(row)])[0])
