"""The ffmpeg binary and a safe way to run it.

ffmpeg comes from the ``imageio-ffmpeg`` wheel (a static binary inside the package), so no
system package is needed. Every call has a timeout and returns a one-line error on failure.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Sequence

DEFAULT_TIMEOUT_S = 600.0


class FFmpegError(RuntimeError):
    """ffmpeg failed or timed out; the message is one line naming the cause."""


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: ``$CLIPSIEVE_FFMPEG``, else imageio-ffmpeg's, else PATH's."""
    override = os.environ.get("CLIPSIEVE_FFMPEG")
    if override:
        return override
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # pragma: no cover - only without the wheel
        found = shutil.which("ffmpeg")
        if found:
            return found
        raise FFmpegError(
            "ffmpeg not found: install clipsieve's dependencies (imageio-ffmpeg) "
            "or set CLIPSIEVE_FFMPEG"
        ) from None


# what ffmpeg prints after the real cause: saying these instead of the cause explains nothing
_GENERIC = (
    "Conversion failed",
    "Task finished with error",
    "Terminating thread",
    "Error sending frames",
    "Nothing was written",
    "Could not open encoder before EOF",
    "Error while filtering",
    "Error opening output file",
    "Error while opening encoder",
    "Error initializing output stream",
)
_LOG_PREFIX = re.compile(r"^(\[[^\]]*@ 0x[0-9a-f]+\]\s*)+")


_COMPLAINT = re.compile(
    r"error|invalid|cannot|could not|unable|unsupported|not divisible|no such|denied|"
    r"failed|too (small|large|big|many)|mismatch|corrupt|partial file|out of",
    re.IGNORECASE,
)


def _last_error_line(stderr: str) -> str:
    """The line of ffmpeg's output that says why it failed: the first specific complaint (an
    encoder's or demuxer's), not the generic lines printed after it nor its info lines."""
    lines = [_LOG_PREFIX.sub("", ln.strip()) for ln in stderr.splitlines() if ln.strip()]
    specific = [ln for ln in lines if ln and not any(g in ln for g in _GENERIC)]
    complaints = [ln for ln in specific if _COMPLAINT.search(ln)]
    if complaints:
        return complaints[0]
    if specific:
        return specific[-1]
    return lines[-1] if lines else "no output"


def run_ffmpeg(
    args: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S, what: str = "ffmpeg"
) -> subprocess.CompletedProcess[str]:
    """Run ``ffmpeg -hide_banner -nostdin -y ARGS``; raise :class:`FFmpegError` on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, errors="replace"
        )
    except subprocess.TimeoutExpired:
        raise FFmpegError(f"{what} timed out after {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        raise FFmpegError(
            f"{what} failed (exit {proc.returncode}): {_last_error_line(proc.stderr)}"
        )
    return proc
