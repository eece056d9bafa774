"""Global steps whose algorithm needs its columns as one table (dedup, cluster).

:class:`NarrowTableStep` reads only the columns the step names (and its vectors, from
``vectors/``), hands them to :meth:`compute` as one Arrow table, and streams the answer's
written columns back into the full table. Memory is the narrow columns plus the answer, never
the whole table; the algorithm inside ``compute`` sets the rest of the bound.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import pyarrow as pa

from clipsieve.steps.base import AlignedUpdates, PostRunStep, StepContext
from clipsieve.vectors import attach_vectors


class NarrowTableStep(PostRunStep, ABC):
    """Base for global steps over a narrow table (subclasses set ``reads``/``writes``)."""

    vectors: tuple[str, ...] = ()  # vector columns to join from vectors/ by clip_id
    all_scalars: bool = False  # read every column of clips.parquet (it holds no vectors)

    @abstractmethod
    def compute(self, narrow: pa.Table, ctx: StepContext) -> pa.Table:
        """The ``writes`` columns for every row of ``narrow``, in the same order."""

    def prepare(self, ctx: StepContext) -> None:
        columns = ctx.schema.names if self.all_scalars else ["clip_id", *self.reads]
        narrow = ctx.read_columns(list(dict.fromkeys(columns)))
        for column in self.vectors:
            narrow = attach_vectors(narrow, ctx.run_dir, column)
        answer = self.compute(narrow, ctx)
        del narrow
        answer = answer.select(list(self.writes))
        self._updates = AlignedUpdates(iter(answer.to_batches()), answer.schema)

    def apply(self, batch: pa.RecordBatch) -> dict[str, Any]:
        part = self._updates.take(batch.num_rows)
        return {name: part.column(name) for name in self.writes}
