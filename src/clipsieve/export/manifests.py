"""Export formats that list the clips in a manifest file beside a ``clips/`` folder.

Each format is a :class:`ManifestWriter`: the manifest's file name, and how a batch of kept
rows (``path`` already relative to the export folder) is written. The export streams the rows
through it batch by batch. Formats are found by name through :data:`MANIFEST_REGISTRY`: the
built-ins here, others through the ``clipsieve.exporters`` entry point group or
``module:Class``. (``webdataset`` is not a manifest: its shards hold the clips; see
``webdataset.py``.)
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from clipsieve.export.easyanimate import EasyAnimateWriter
from clipsieve.export.opensora import opensora_columns, opensora_table
from clipsieve.registry import Registry
from clipsieve.table import CsvFileWriter, JsonlFileWriter, atomic_path, caption_of


class ManifestWriter(ABC):
    """Writes one export's manifest; a context manager that leaves a complete file or none.

    ``schema``: the clip table's schema (the rows' columns); ``root``: the folder the export
    will finally be at (formats with absolute paths, such as Open-Sora's, write them from it).
    """

    file_name: ClassVar[str]

    def __init__(self, target: Path, schema: pa.Schema, root: Path) -> None:
        self.target, self.schema, self.root = target, schema, root
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ManifestWriter:
        self.open(self._stack)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)

    @abstractmethod
    def open(self, stack: contextlib.ExitStack) -> None:
        """Open the manifest at :attr:`target`, registering its closing on ``stack``."""

    @abstractmethod
    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append a batch of rows (never empty)."""


class JsonlManifest(ManifestWriter):
    file_name = "clips.jsonl"

    def open(self, stack: contextlib.ExitStack) -> None:
        self._writer = stack.enter_context(JsonlFileWriter(self.target))

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._writer.write(pa.Table.from_pylist(rows, schema=self.schema))


class OpenSoraCsvManifest(ManifestWriter):
    """Open-Sora's csv: its column order first, ``path`` absolute under the export folder."""

    file_name = "clips.csv"

    def open(self, stack: contextlib.ExitStack) -> None:
        columns = opensora_columns(self.schema)
        self._writer = stack.enter_context(CsvFileWriter(self.target, columns))

    def write(self, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(rows, schema=self.schema)
        self._writer.write(opensora_table(table, self.root))


class EasyAnimateManifest(ManifestWriter):
    """EasyAnimate's json list of ``{"file_path", "text"}``."""

    file_name = "easyanimate.json"

    def open(self, stack: contextlib.ExitStack) -> None:
        self._writer = stack.enter_context(EasyAnimateWriter(self.target))

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._writer.write([(r["path"], caption_of(r)) for r in rows])


class ParquetManifest(ManifestWriter):
    """The clip table's kept rows, every column, as Parquet."""

    file_name = "clips.parquet"

    def open(self, stack: contextlib.ExitStack) -> None:
        tmp = stack.enter_context(atomic_path(self.target))
        self._writer = stack.enter_context(pq.ParquetWriter(tmp, self.schema, compression="zstd"))

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))


# name -> "module:Class"
MANIFESTS: dict[str, str] = {
    "jsonl": "clipsieve.export.manifests:JsonlManifest",
    "opensora-csv": "clipsieve.export.manifests:OpenSoraCsvManifest",
    "easyanimate-json": "clipsieve.export.manifests:EasyAnimateManifest",
    "parquet": "clipsieve.export.manifests:ParquetManifest",
}
MANIFEST_REGISTRY = Registry("export format", MANIFESTS, "clipsieve.exporters")


def training_formats() -> list[str]:
    """Every format ``export --format`` takes: webdataset, then the manifest formats."""
    return ["webdataset", *MANIFEST_REGISTRY.names()]
