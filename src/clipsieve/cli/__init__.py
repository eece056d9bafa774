"""The ``clipsieve`` command line: parsing, calling the domain functions, printing.

Nothing here is needed by Python callers: every command's work is a plain function in its
domain package (``clipsieve.select.filter.filter_run``, ...); a module of this package only turns
flags into that call and its result into lines and tables.
"""

from clipsieve.cli.app import app, main

__all__ = ["app", "main"]
