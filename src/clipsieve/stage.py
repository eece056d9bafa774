"""The stage protocol.

A stage is a small dataclass: its fields are its parameters (recorded for provenance), it declares
name, version, input columns, :meth:`Stage.outputs` and :meth:`Stage.resources`, loads heavy
things once in :meth:`Stage.setup`, transforms a batch of rows in :meth:`Stage.process` and
releases what it holds in :meth:`Stage.teardown`. It knows nothing about which executor
runs it: the local runner, Ray Data's ``map_batches`` or a unit test on three rows all call the
same two methods.

Batches are ``pyarrow.Table`` objects, the format Ray Data hands to ``map_batches`` with
``batch_format="pyarrow"``. Most stages think in rows, so :class:`RowStage` converts and turns
any exception raised for one row into ``status='error'`` plus a one-line ``error`` on that row:
a bad video never stops the run.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from clipsieve.table import (
    CLIP_SCHEMA,
    STATUS_ERROR,
    VIDEO_SCHEMA,
    error_text,
    rows_to_table,
    table_to_rows,
)


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs; executors use it for placement (e.g. Ray ``num_gpus``)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int | None = None


class StageError(Exception):
    """A per-row failure with a message meant for the user (recorded in the row's ``error``)."""


@dataclass
class Stage(ABC):
    """Base of every pipeline stage. Subclasses are dataclasses; their fields are parameters."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    table: ClassVar[str] = "clips"  # which table the stage reads: "videos" or "clips"
    output_table: ClassVar[str | None] = None  # defaults to ``table``
    inputs: ClassVar[tuple[str, ...]] = ()
    output_columns: ClassVar[tuple[str, ...]] = ()  # see :meth:`outputs`
    worker_resources: ClassVar[Resources] = Resources()  # see :meth:`resources`
    # parameters that say where outputs go, not how they are made: a moved run folder changes
    # them and still resumes (``run`` compares the others)
    location_params: ClassVar[tuple[str, ...]] = ()

    def outputs(self) -> tuple[str, ...]:
        """The columns :meth:`process` writes; a stage whose columns depend on its parameters
        overrides this, the others declare :attr:`output_columns`."""
        return self.output_columns

    def resources(self) -> Resources:
        """What one worker needs; executors place the stage by it (Ray: ``num_gpus``). A stage
        whose needs depend on its parameters overrides this, the others declare
        :attr:`worker_resources`."""
        return self.worker_resources

    def params(self) -> dict[str, Any]:
        """Parameters for provenance (``run.json``, Parquet metadata)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "table": self.table,
            "output_table": self.output_table or self.table,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs()),
            "resources": dataclasses.asdict(self.resources()),
            "params": self.params(),
            "location_params": list(self.location_params),
        }

    def setup(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Load models or open handles once per worker. Default: nothing to load."""

    def teardown(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Release what :meth:`setup` opened (connections, GPU memory) when the worker is done
        with the stage. Default: nothing to release."""

    @abstractmethod
    def process(self, batch: pa.Table) -> pa.Table:
        """Transform one batch. Must not raise for a bad row: record it on the row."""


def _output_schema(stage: Stage) -> pa.Schema:
    return VIDEO_SCHEMA if (stage.output_table or stage.table) == "videos" else CLIP_SCHEMA


@dataclass
class RowStage(Stage):
    """A stage that maps each row to one row (dict) or to several rows (list of dicts).

    Rows whose ``status`` is already ``error`` pass through untouched (they are kept so the run
    can explain every input, but there is nothing to do on them). An exception in
    :meth:`process_row` marks the row ``status='error'`` with ``error='<stage>: <reason>'``.
    """

    skip_errored: ClassVar[bool] = True

    @abstractmethod
    def process_row(self, row: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
        """Return the updated row, or a list of output rows (a 1→N stage)."""

    def on_error(self, row: dict[str, Any], exc: BaseException) -> list[dict[str, Any]]:
        """Rows to emit when :meth:`process_row` failed. Default: the input row, marked."""
        failed = dict(row)
        failed["status"] = STATUS_ERROR
        failed["error"] = error_text(self.name, exc)
        return [failed]

    def passthrough(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows to emit for an input row that had already failed upstream."""
        return [row]

    def process(self, batch: pa.Table) -> pa.Table:
        return self.map_rows(batch, self.process_row)

    def map_rows(
        self,
        batch: pa.Table,
        fn: Callable[[dict[str, Any]], dict[str, Any] | list[dict[str, Any]]],
    ) -> pa.Table:
        """:meth:`process` with ``fn`` in place of :meth:`process_row` (same error handling)."""
        out: list[dict[str, Any]] = []
        for row in table_to_rows(batch):
            if self.skip_errored and row.get("status") == STATUS_ERROR:
                out.extend(self.passthrough(row))
                continue
            try:
                result = fn(row)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # a bad row must not stop the run
                out.extend(self.on_error(row, exc))
                continue
            out.extend(result if isinstance(result, list) else [result])
        return rows_to_table(out, _output_schema(self))


def merge_row(row: Mapping[str, Any], **updates: Any) -> dict[str, Any]:
    """A copy of ``row`` with ``updates`` applied (stages never mutate their input)."""
    merged = dict(row)
    merged.update(updates)
    return merged


Segment = tuple[int, int | None]
"""``[start_frame, end_frame)`` of a video; ``None``: to the end of the file."""


class SegmentedStage(ABC):
    """A ``videos`` stage whose work on one long video splits into independent segments.

    An engine may run :meth:`process_segment` for each segment on a different worker and then
    :meth:`combine_segments` the parts, so one long video does not keep a single worker busy
    while the others wait. The stage's own ``process`` runs the same segments one after the
    other, so the result never depends on which engine ran it or how many workers it had.
    """

    @abstractmethod
    def segments(self, row: dict[str, Any]) -> list[Segment]:
        """How to split ``row``'s work; an empty list means "do it whole"."""

    @abstractmethod
    def process_segment(self, row: dict[str, Any], segment: Segment) -> dict[str, Any]:
        """The part of the result that belongs to ``segment`` (plain, picklable values)."""

    @abstractmethod
    def combine_segments(self, row: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
        """The finished row from every segment's part, in segment order."""


@dataclass
class Pipeline:
    """The stages of a run: over ``videos``, the one that plans ``clips`` rows, over ``clips``.

    Executors (``engine/``) decide how to run them; :func:`clipsieve.pipeline.build_pipeline`
    decides which they are.
    """

    video_stages: list[Stage]
    plan_stage: Stage
    clip_stages: list[Stage] = field(default_factory=list)

    @property
    def stages(self) -> list[Stage]:
        return [*self.video_stages, self.plan_stage, *self.clip_stages]

    def describe(self) -> list[dict[str, Any]]:
        return [stage.describe() for stage in self.stages]
