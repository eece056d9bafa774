"""Shared pieces of the command line: the error console, one-line user errors, progress bars.

Every sub-command module (``shots/command.py``, ``select/command.py``, ...) uses these so all
commands fail the same way: a :class:`~clipsieve.errors.UserError` becomes one red line naming
the thing and the fix, with exit code 2, never a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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

console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as one error line; raise the returned exit (code 2)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line and exit code 2; Ctrl-C into a hint."""
    try:
        yield
    except UserError as exc:
        raise fail(str(exc)) from None
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
