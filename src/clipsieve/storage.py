"""Run folders at a local path or at an fsspec URL (``s3://bucket/run``, ``gs://...``, ...).

A run folder at a URL is worked on through a local **staging folder** with the same layout as
a local run, so every writer keeps its atomic local write and only uploads finished files:

- shards, the merged tables, ``run.json``, the exports and the report are written into the
  staging folder first and then uploaded; a video's ``videos`` shard (the commit marker) is
  uploaded after its ``clips`` shard, so the remote folder has the same exactly-once marker as
  a local one (an S3 PUT is atomic: an object is either all there or not there);
- clip files are cut into the staging folder of the worker that cuts them, scored there, and
  uploaded to ``URL/clips/`` by :class:`PublishClipsStage`, which deletes the local copy and
  puts the URL in the ``path`` column; nodes of a cluster never need a shared filesystem;
- before a run, :meth:`RunLocation.sync_shards` makes the staging shards equal the remote
  ones, so the remote folder is the truth a resume starts from, on any machine.

Credentials and endpoints come from the backend's own configuration (for S3: the ``AWS_*``
environment variables or ``~/.aws``), which Ray workers and pool workers inherit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from clipsieve.errors import UserError
from clipsieve.runfolder import CLIPS_FILE
from clipsieve.stage import Resources, RowStage, StageError, merge_row

STAGING_ENV = "CLIPSIEVE_STAGING_DIR"  # where URL run folders are staged (default: the temp dir)


class StorageError(UserError):
    """A run folder URL cannot be used (missing backend package, no bucket, no access)."""


def is_url(target: str | os.PathLike[str]) -> bool:
    """True for ``proto://...`` except ``file://`` (a local path spelt as a URL)."""
    text = str(target)
    return "://" in text and not text.startswith("file://")


def staging_dir_for(url: str) -> Path:
    """The local staging folder of a URL run folder: the same on every run of that URL (so a
    resume on this machine finds its work) and on every node of a cluster (a pure function
    of the URL and ``$CLIPSIEVE_STAGING_DIR``)."""
    root = Path(os.environ.get(STAGING_ENV) or Path(tempfile.gettempdir()) / "clipsieve-staging")
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return root.absolute() / digest


def error_line(exc: BaseException) -> str:
    """The first line of a backend's error (botocore's run to several), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def upload_file(local: str | os.PathLike[str], target: str, name: str, folder: str) -> None:
    """Copy the finished local file to the URL ``target``; a failure (after the backend's own
    retries) is one line naming ``name`` and its ``folder``."""
    fs, inner = url_filesystem(target)
    try:
        fs.put_file(str(local), inner)
    except Exception as exc:  # the backend's own error types
        raise upload_failed(name, folder, exc) from None


def upload_failed(name: str, target: str, exc: BaseException) -> StorageError:
    """The one line for an upload that failed after the backend's own retries."""
    return StorageError(
        f"upload of {name} to {target} failed: {error_line(exc)}; finished work is saved, run the "
        "same command again to resume"
    )


def url_filesystem(url: str) -> tuple[Any, str]:
    """``(fsspec filesystem, path inside it)``, with one clear error for a missing backend."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        protocol = url.split("://", 1)[0]
        package = {"gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}.get(protocol)
        install = "'clipsieve[s3]'" if protocol in ("s3", "s3a") else package
        hint = install or f"the fsspec backend for {protocol}://"
        raise StorageError(
            f"cannot open {url}: its backend is not installed (pip install {hint})"
        ) from exc
    except ValueError as exc:
        raise StorageError(
            f"cannot open {url}: {exc} (use a local path or an fsspec URL such as s3://bucket/run)"
        ) from None


def av_source(path: str) -> str | BinaryIO:
    """What PyAV should open for ``path``: the path itself, or a file object for a URL.

    Readers of clips (scorers, captioning, thumbnails) take either, so a run folder at a URL
    is read without copying it down first.
    """
    if not is_url(path):
        return path
    fs, inner = url_filesystem(path)
    try:
        return fs.open(inner, "rb", block_size=4 * 1024 * 1024)
    except FileNotFoundError:
        raise FileNotFoundError(path) from None


def file_sizes(paths: Sequence[str], threads: int = 32) -> list[int | None]:
    """The size of each file (a local path or a URL), None where it is missing.

    URLs are asked in parallel (one HEAD each, ``threads`` at a time): a batch of clips in a
    bucket is sized in the time of a few requests, not thousands one after another.
    """
    from concurrent.futures import ThreadPoolExecutor

    def size(path: str) -> int | None:
        try:
            if not is_url(path):
                return os.stat(path).st_size if os.path.isfile(path) else None
            fs, inner = url_filesystem(path)
            return int(fs.size(inner))
        except FileNotFoundError:
            return None

    if not any(is_url(p) for p in paths):
        return [size(p) for p in paths]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(size, paths))


def copy_file(source: str, target: Path) -> None:
    """Copy a local file or a URL's object to the local ``target``."""
    if not is_url(source):
        import shutil

        shutil.copyfile(source, target)
        return
    fs, inner = url_filesystem(source)
    fs.get_file(inner, str(target))


@dataclass(frozen=True)
class RunLocation:
    """Where a run folder lives (``target``) and where its files are made (``local``).

    For a local run both are the same folder and nothing is uploaded. Holds only strings, so it
    pickles to pool and Ray workers; the filesystem is opened where it is used (fsspec caches
    one instance per process).
    """

    target: str  # the absolute local path, or the URL without a trailing slash
    local: Path

    @classmethod
    def resolve(cls, run_dir: str | os.PathLike[str]) -> RunLocation:
        text = str(run_dir)
        if text.startswith("file://"):
            text = text[len("file://") :]
        if is_url(text):
            url = text.rstrip("/")
            return cls(url, staging_dir_for(url))
        # absolute: clip paths in the table must not depend on the working directory
        path = Path(text).absolute()
        return cls(str(path), path)

    @property
    def remote(self) -> bool:
        return is_url(self.target)

    def url(self, rel: str) -> str:
        """The full address of ``rel`` (a ``/``-separated path inside the run folder)."""
        return f"{self.target}/{rel}" if self.remote else str(self.local / rel)

    def _fs(self) -> tuple[Any, str]:
        return url_filesystem(self.target)

    def check_writable(self) -> None:
        """Write and delete one small object, so a wrong bucket or missing credentials fail
        before any video is touched, with one line."""
        if not self.remote:
            return
        fs, root = self._fs()
        probe = f"{root}/.write-test"
        try:
            fs.pipe(probe, b"")
            fs.rm(probe)
        except Exception as exc:  # backends raise their own types (botocore, aiohttp, ...)
            raise StorageError(
                f"cannot write to run folder {self.target}: {error_line(exc)} "
                "(check the bucket exists and the credentials, e.g. the AWS_* variables)"
            ) from None

    def upload(self, rels: Iterable[str]) -> None:
        """Copy finished local files to the remote folder, in the order given."""
        if not self.remote:
            return
        for rel in rels:
            upload_file(self.local / rel, self.url(rel), rel, self.target)

    def read_text(self, rel: str) -> str | None:
        """A small remote file's text (``run.json``), or None if it is not there."""
        fs, root = self._fs()
        try:
            return fs.cat_file(f"{root}/{rel}").decode("utf-8")
        except FileNotFoundError:
            return None

    def remove(self, rels: Iterable[str]) -> None:
        """Delete remote files or folders (``--restart``); missing ones are fine."""
        if not self.remote:
            return
        fs, root = self._fs()
        for rel in rels:
            target = f"{root}/{rel}"
            if fs.exists(target):
                fs.rm(target, recursive=True)

    def sync_shards(self, shard_dir: str) -> tuple[int, int]:
        """Make the local shards equal the remote ones before a resume.

        Remote shards missing here are downloaded; local ones the remote folder lacks (the run
        was killed before their upload finished, or the remote run was removed) are deleted and
        redone. Returns ``(downloaded, deleted)``.
        """
        if not self.remote:
            return 0, 0
        fs, root = self._fs()
        fs.invalidate_cache()
        remote_dir = f"{root}/{shard_dir}"
        remote = {p.rsplit("/", 1)[-1] for p in fs.glob(f"{remote_dir}/*.parquet")}
        local_dir = self.local / shard_dir
        local_dir.mkdir(parents=True, exist_ok=True)
        local = {p.name for p in local_dir.glob("*.parquet")}
        deleted = 0
        for name in sorted(local - remote):
            (local_dir / name).unlink(missing_ok=True)
            deleted += 1
        # clips shards first; each lands under a temp name (which ShardStore.remove_partial
        # clears) and is renamed into place, so a killed download never leaves a marker, or a
        # truncated shard, that looks finished
        missing = sorted(remote - local, key=lambda n: (n.endswith(".videos.parquet"), n))
        temps = [local_dir / f".{n}.tmp" for n in missing]
        if missing:
            fs.get([f"{remote_dir}/{n}" for n in missing], [str(t) for t in temps])
        for name, temp in zip(missing, temps, strict=True):
            os.replace(temp, local_dir / name)
        return len(missing), deleted

    def pull_folder(self, skip: tuple[str, ...] = ("shards", "clips")) -> dict[str, tuple]:
        """Download the run folder's files except ``skip`` folders (the tables, run.json, what
        post-run commands wrote) into staging, so a post-run command works on local files.

        Staged files the remote folder lacks are deleted. Returns a snapshot for
        :meth:`push_changes`.
        """
        fs, root = self._fs()
        fs.invalidate_cache()
        remote = self._remote_files(fs, root, skip)
        rels = [p[len(root) + 1 :] for p in remote]
        if CLIPS_FILE not in rels:
            raise StorageError(
                f"{self.target} has no clips.parquet: run `clipsieve run INPUT --out "
                f"{self.target}` first"
            )
        for stale in set(self._local_files(skip)) - set(rels):
            (self.local / stale).unlink(missing_ok=True)
        self.local.mkdir(parents=True, exist_ok=True)
        fs.get(remote, [str(self.local / rel) for rel in rels])
        return self._local_files(skip)

    def push_changes(self, before: dict[str, tuple], skip: tuple[str, ...] = ()) -> list[str]:
        """Upload the staged files that are new or changed since ``before``; their names."""
        changed = [rel for rel, stat in self._local_files(skip).items() if before.get(rel) != stat]
        self.upload(changed)
        return changed

    @staticmethod
    def _remote_files(fs: Any, root: str, skip: tuple[str, ...]) -> list[str]:
        """Remote file paths outside the ``skip`` folders, which are never listed (a big run
        holds millions of clips and shards)."""
        try:
            entries = fs.ls(root, detail=True)
        except FileNotFoundError:
            return []
        files = []
        for entry in entries:
            name = entry["name"].rstrip("/")
            if _under(name[len(root) + 1 :], skip):
                continue
            files.extend(fs.find(name) if entry["type"] == "directory" else [name])
        return files

    def _local_files(self, skip: tuple[str, ...]) -> dict[str, tuple]:
        """``{relative path: (size, mtime_ns)}`` of the staged files outside ``skip`` (those
        folders are not walked)."""
        files = {}
        for folder, dirs, names in os.walk(self.local):
            rel_dir = Path(folder).relative_to(self.local).as_posix()
            prefix = "" if rel_dir == "." else rel_dir + "/"
            dirs[:] = [d for d in dirs if not _under(prefix + d, skip)]
            for name in names:
                if not name.startswith("."):
                    stat = os.stat(os.path.join(folder, name))
                    files[prefix + name] = (stat.st_size, stat.st_mtime_ns)
        return files


def _under(rel: str, folders: tuple[str, ...]) -> bool:
    return any(rel == f or rel.startswith(f + "/") for f in folders)


@dataclass
class PublishClipsStage(RowStage):
    """Upload each cut clip from the staging folder to the run folder URL; ``path`` becomes
    the URL and the local copy is deleted (a cluster node's disk holds only clips in flight).

    Added after the clip stages that read the clip file (or right after the cut when a GPU
    stage may run on another node, which then reads the URL). A failed upload raises
    :class:`StorageError`, which stops the run (see :meth:`on_error`).
    """

    name: ClassVar[str] = "publish"
    version: ClassVar[str] = "1"
    table: ClassVar[str] = "clips"
    inputs: ClassVar[tuple[str, ...]] = ("path",)
    output_columns: ClassVar[tuple[str, ...]] = ("path",)
    worker_resources: ClassVar[Resources] = Resources(cpus=1.0)

    staging_dir: str  # the local clips folder the cut writes into
    url: str  # the remote clips folder

    def process_row(self, row: dict[str, Any]) -> dict[str, Any]:
        path = row.get("path")
        if not path or is_url(path):
            return row
        local = Path(path)
        try:
            rel = local.relative_to(self.staging_dir)
        except ValueError:
            return row  # not made by this run's cut (e.g. an input clip): leave it
        if not local.is_file():
            raise StageError(f"clip file {local} vanished before its upload")
        target = f"{self.url}/{rel.as_posix()}"
        upload_file(local, target, local.name, target)
        local.unlink(missing_ok=True)
        return merge_row(row, path=target)

    def on_error(self, row: dict[str, Any], exc: BaseException) -> list[dict[str, Any]]:
        """A failed upload stops the run instead of failing the row: it is the store, not the
        clip (every later upload would fail too), and a resume redoes the unfinished video."""
        if isinstance(exc, StorageError):
            raise exc
        return super().on_error(row, exc)


def upload_table_files(location: RunLocation, files: dict[str, Path]) -> dict[str, str]:
    """Upload the run's finished top-level files; their addresses, for the summary."""
    rels = [path.relative_to(location.local).as_posix() for path in files.values()]
    location.upload(rels)
    return {name: location.url(rel) for name, rel in zip(files, rels, strict=True)}
