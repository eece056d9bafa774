"""Where an export lands: a local folder, or a folder at a URL (``s3://bucket/exports/wds``).

Either way the export is built in a fresh local staging folder and only then made visible, and a
folder is only ever replaced when it holds ``export.json`` (so an export never deletes files it
did not make):

* a **local folder** is built beside ``out`` and swapped in whole (the old export stays complete
  until the new one is);
* a **URL folder** gets the staged files uploaded, ``export.json`` last, and then loses the
  objects of the previous export that the new one did not write. Webdataset shards written on
  Ray workers are uploaded by the workers themselves (:attr:`shard_target`), so a cluster with no
  shared disk exports into a bucket without sending every shard through the driver.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from clipsieve.errors import UserError
from clipsieve.storage import is_url, upload_file, url_filesystem

MARKER = "export.json"


class ExportError(UserError):
    """An export that cannot be done as asked (one line naming the thing and the fix)."""


class LocalDestination:
    """A local export folder, built beside it and swapped in whole."""

    def __init__(self, out: Path) -> None:
        self.out = out

    @property
    def final(self) -> Path:
        return self.out

    def prepare(self) -> Path:
        """A fresh staging folder beside ``out``, after checking ``out`` may be replaced;
        partial folders of killed exports are cleared."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise ExportError(f"{out} is a file: choose a folder for --out")
        if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
            raise ExportError(
                f"{out} is not empty and was not made by `clipsieve export`: choose a new --out"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in out.parent.glob(f".{out.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        return self.staging

    @property
    def shard_target(self) -> str:
        return str(self.staging)

    def publish(self, written: Collection[str] = ()) -> None:
        """Replace ``out`` by the finished staging folder."""
        out = self.out
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "export")
            os.replace(self.staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.staging, out)

    def cleanup(self) -> None:
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)


class UrlDestination:
    """An export folder at a URL (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs, self.root = url_filesystem(self.url)

    @property
    def final(self) -> str:
        return self.url

    @property
    def shard_target(self) -> str:
        return self.url

    def prepare(self) -> Path:
        """A local staging folder for what the driver writes; the URL folder must be empty or
        hold a previous export."""
        self.before = self._files()
        if self.before and MARKER not in self.before:
            raise ExportError(
                f"{self.url} is not empty and was not made by `clipsieve export`: choose a new "
                "--out"
            )
        self.staging = Path(tempfile.mkdtemp(prefix="clipsieve-export-"))
        return self.staging

    def _files(self) -> set[str]:
        """Paths under the folder, relative to it."""
        try:
            found: Any = self.fs.find(self.root)
        except FileNotFoundError:
            return set()
        return {name[len(self.root) + 1 :] for name in found if name.startswith(self.root + "/")}

    def publish(self, written: Collection[str] = ()) -> None:
        """Upload the staged files (``export.json`` last), then drop the previous export's
        objects the new one does not have; ``written``: what the workers uploaded themselves."""
        staged = sorted(
            p.relative_to(self.staging).as_posix() for p in self.staging.rglob("*") if p.is_file()
        )
        for rel in [r for r in staged if r != MARKER] + [MARKER]:
            upload_file(self.staging / rel, f"{self.url}/{rel}", rel, self.url)
        stale = [f"{self.root}/{rel}" for rel in self.before - set(staged) - set(written)]
        if stale:
            self.fs.rm(stale)

    def cleanup(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def destination_for(out: str | Path) -> LocalDestination | UrlDestination:
    return UrlDestination(str(out)) if is_url(str(out)) else LocalDestination(Path(out))
