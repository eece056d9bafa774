"""Shared pieces of the command line: the error console, one-line user errors, progress bars.

Every sub-command module (``cli/shots.py``, ``cli/select.py``, ...) uses these so all
commands fail the same way: a :class:`~clipsieve.errors.UserError` becomes one red line naming
the thing and the fix, with exit code 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from clipsieve.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as one error line; raise the returned exit (code 2)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def at_least(option: str, value: float | None, low: float) -> None:
    """Refuse ``option``'s value below ``low`` in one line (None: not given, left alone)."""
    if value is not None and value < low:
        shown = int(low) if float(low).is_integer() else low
        raise UserError(f"{option} {value}: must be at least {shown}")


def os_error_message(exc: OSError) -> str:
    """One line for a failed file operation: the path, the system's reason, what to check."""
    reason = exc.strerror or type(exc).__name__
    where = exc.filename or ""
    if where and isinstance(where, str) and Path(where).name.startswith("."):
        where = str(Path(where).parent)  # a temporary beside the target: name the folder
    hints = {
        "EEXIST": "a file is in the way of a folder",
        "ENOTDIR": "a part of the path is a file, not a folder",
        "ENOSPC": "the disk is full: free space or choose another place",
        "EACCES": "no permission: choose a writable place",
        "EROFS": "a read-only file system: choose a writable place",
    }
    import errno

    hint = hints.get(errno.errorcode.get(exc.errno or 0, ""), "check the path")
    return f"cannot use {where}: {reason} ({hint})" if where else f"{reason} ({hint})"


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line and exit code 2; Ctrl-C into a hint."""
    try:
        yield
    except UserError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        # a path the user gave that cannot be made or written (a file in the way, /proc, a
        # full disk): one line naming it, not a traceback
        raise fail(os_error_message(exc)) from None
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted.[/] Finished work is saved; run the same command again to resume."
        )
        raise typer.Exit(code=130) from None


@contextlib.contextmanager
def progress_bar(transient: bool = False, disable: bool = False) -> Iterator[Progress]:
    """A rich progress display on stderr with count, rate, elapsed time and ETA columns.

    Tasks take the extra fields ``rate`` and ``current`` (pass ``rate="", current=""``).
    ``transient`` clears it when done; ``disable`` hides it (e.g. when stderr is no terminal).
    """
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[current]}", style="dim"),
    )
    with Progress(*columns, console=console, transient=transient, disable=disable) as progress:
        yield progress


def keep_text(value: str) -> str:
    """Typer parser for RUN_DIR arguments: keeps ``s3://...`` intact (a Path would collapse
    the double slash); :func:`run_folder_command` turns it into a local folder."""
    return value


@contextlib.contextmanager
def note_removed_views(run_dir: Path) -> Iterator[None]:
    """Say so when a command's step removed the run folder's csv/jsonl views (they described
    the table before the step) and how to write them again."""
    from clipsieve.steps.runner import VIEW_FILES

    before = [name for name in VIEW_FILES if (run_dir / name).is_file()]
    try:
        yield
    finally:
        gone = [name for name in before if not (run_dir / name).is_file()]
        if gone:
            console.print(
                f"removed {', '.join(gone)} (they showed the table before this step); "
                f"`clipsieve export {run_dir} --format views` writes them again",
                style="dim",
                highlight=False,
                soft_wrap=True,
            )


@contextlib.contextmanager
def holding(lock: contextlib.AbstractContextManager[None]) -> Iterator[None]:
    """Hold a run folder's lock (:mod:`clipsieve.runlock`) for a command's body; a busy folder
    is one line and exit code 2 (the body's own errors are its own)."""
    with contextlib.ExitStack() as stack:
        with user_errors():
            stack.enter_context(lock)
        yield


def command_name(command: Callable[..., Any]) -> str:
    """``filter_command`` → ``filter``: how the lock file names the holder."""
    return command.__name__.removesuffix("_command").replace("_", "-")


def run_folder_command(
    command: F | None = None, *, local_clips: bool = False, lock: bool = True
) -> Any:
    """Let a post-run command take a run folder URL as ``run_dir``, holding its lock.

    A URL run folder (``s3://bucket/run``) is pulled into its staging folder (tables and files,
    not the shards or clips: clips are read from their URLs), the command runs on that local
    folder, and the files it wrote or changed are uploaded afterwards. A local ``run_dir`` is
    passed through as a Path. ``local_clips``: the command needs the clip files on disk (the
    labelling page serves them), so a URL is refused with what to do instead. ``lock``: hold the
    run folder's lock for the whole command (one writer at a time); the labelling page, which
    only appends labels to its own store while it serves, does not.
    """
    if command is None:
        return functools.partial(run_folder_command, local_clips=local_clips, lock=lock)
    name = command_name(command)

    def guard(folder: Path) -> contextlib.AbstractContextManager[None]:
        from clipsieve.runlock import run_lock

        return holding(run_lock(folder, name)) if lock else contextlib.nullcontext()

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from clipsieve.storage import RunLocation, is_url

        target = str(kwargs["run_dir"])
        if not is_url(target):
            kwargs["run_dir"] = Path(target)
            with guard(kwargs["run_dir"]), note_removed_views(kwargs["run_dir"]):
                return command(*args, **kwargs)
        if local_clips:
            raise fail(
                f"this command needs the clip files on disk, and {target} is a URL: copy the "
                "run folder down (e.g. `aws s3 sync URL ./run`) and give the local folder"
            )
        location = RunLocation.resolve(target)
        with guard(location.local):
            with user_errors():
                before = location.pull_folder()
            kwargs["run_dir"] = location.local
            try:
                with note_removed_views(location.local):
                    return command(*args, **kwargs)
            finally:
                with user_errors():
                    changed = location.push_changes(before, skip=("shards", "clips"))
                if changed:
                    console.print(
                        f"uploaded {', '.join(sorted(changed)[:6])} to {target}", style="dim"
                    )

    return wrapper
