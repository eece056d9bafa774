"""One writer at a time per run folder: an advisory lock on ``RUN/.clipsieve.lock``.

Two commands changing one run folder at once lose work (a `filter` renaming its table over a
`topn` that read the old one; a `caption` merging while `run` adds videos). Every command that
writes to a run folder holds this lock for its whole length; a second one refuses in one line
naming the holder, or waits for it with ``wait``.

Why ``flock``: the kernel drops the lock when its holder dies, however it dies (``kill -9``,
out of memory), so a stale lock never needs to be broken by hand; the file's text (command, pid,
start time) is only there to say who holds it. The lock is reentrant inside one process: the
`run` command holds it and the step runner it calls takes it again without blocking on itself.
It is advisory and local: it guards commands on one machine (a URL run folder is guarded through
its staging folder), not a copy of the folder on another host.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from clipsieve.errors import UserError

LOCK_FILE = ".clipsieve.lock"
POLL_SECONDS = 0.5


class RunFolderBusy(UserError):
    """Another command holds the run folder (one line naming it and what to do)."""


class _Registry:
    """The locks this process holds, by folder: what makes the lock reentrant. One per process
    because an ``flock`` belongs to an open file, and a second open file in the same process
    would wait for the first forever."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.held: dict[str, int] = {}  # folder → the open file holding its flock


_REGISTRY = _Registry()


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another clipsieve command"
    command, pid, since = info.get("command"), info.get("pid"), info.get("since")
    text = f"`clipsieve {command}`" if command else "another clipsieve command"
    return f"{text} (pid {pid}, since {since})" if pid else text


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def run_lock(
    run_dir: str | Path, command: str, wait: float = 0.0, create: bool = False
) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the ``with`` block.

    ``wait``: seconds to wait for another holder before refusing (0: refuse at once).
    ``create``: make the folder first (a first `run` locks the folder it is about to fill);
    otherwise a missing folder is not locked (the command says in its own line that it is
    not a run folder, and no empty folder is left behind).
    """
    folder = Path(run_dir).resolve()
    key = str(folder)
    with _REGISTRY.guard:
        inner = key in _REGISTRY.held
    if inner:  # this process holds it already (an outer block releases it)
        yield
        return
    if not create and not folder.is_dir():
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        # an unwritable folder has its own one-line error where the command writes; a lock
        # cannot be kept there, and nothing can be changed there either
        yield
        return
    deadline = time.monotonic() + wait
    while not _try_lock(fd):
        if time.monotonic() >= deadline:
            os.close(fd)
            raise RunFolderBusy(
                f"{run_dir} is in use by {_holder(path)}: wait for it to finish, then run this "
                "command again (one command changes a run folder at a time)"
            )
        time.sleep(POLL_SECONDS)
    since = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"command": command, "pid": os.getpid(), "since": since}).encode(), 0)
    with _REGISTRY.guard:
        _REGISTRY.held[key] = fd
    try:
        yield
    finally:
        with _REGISTRY.guard:
            del _REGISTRY.held[key]
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
