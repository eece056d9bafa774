"""Download a metafile's videos with yt-dlp: only the needed spans, resumable, reasons recorded.

Why the details matter:

* **Sections.** HD-VG-130M needs a few seconds of each long YouTube video. With sections on, each
  section is fetched through yt-dlp's ``download_ranges`` into ``{video_id}.{k}.mp4`` (ffmpeg reads
  only that range; ``force_keyframes_at_cuts`` re-encodes the edges so frame 0 of the file is the
  section start, which the span arithmetic relies on). A source whose format cannot be fetched
  partially (yt-dlp says so) is fetched whole once and the row says ``download_mode='whole'``.
* **Resume.** A file counts as finished only under its final name (yt-dlp writes ``.part`` files
  and renames at the end) *and* when it probes as a video with frames; a re-run fetches only what
  is missing and never touches the network for a finished video.
* **Reasons.** Every failure becomes a short category in ``download_reason`` (``http_404``,
  ``private``, ``unavailable``, ``age_restricted``, ``bot_check``, ``geo_blocked``, ``network``,
  ``timeout``, ...) and ``status='error'`` with ``error='download: <reason>: <message>'``. Only
  transient reasons are retried, with exponential backoff.
* **Contained.** yt-dlp is driven through its Python API, which reads no config files and runs
  no update check; the options below also disable its cache, remote JS components, playlists,
  geo-bypass headers and every side file, so it contacts nothing but the URL it is given.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.errors import UserError
from clipsieve.ingest.folder import VIDEO_EXTENSIONS
from clipsieve.ingest.metafiles import Metafile, MetaVideo
from clipsieve.ingest.spans import (
    META_VIDEO_FIELDS,
    FileTarget,
    cast_meta_columns,
    file_targets,
    target_row,
)
from clipsieve.runfolder import VIDEOS_FILE
from clipsieve.table import STATUS_ERROR, STATUS_OK, VIDEO_SCHEMA, rows_to_table, write_parquet

STAGE = "download"
RETRYABLE = frozenset({"network", "timeout", "http_429", "http_5xx"})
_PARTIAL_UNSUPPORTED = (
    "cannot be partially downloaded",
    "requested downloading the video partially",
)

# (reason, lower-case fragments of yt-dlp's message); the first match wins.
_REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("private", ("private video", "this video is private")),
    ("bot_check", ("not a bot", "confirm you’re not a bot", "confirm you're not a bot")),
    ("age_restricted", ("confirm your age", "age-restricted", "age restricted", "inappropriate")),
    (
        "geo_blocked",
        ("available in your country", "geo restrict", "geo-restrict", "blocked it in"),
    ),
    ("members_only", ("members-only", "join this channel", "members only")),
    ("login_required", ("sign in", "login required", "cookies")),
    ("copyright", ("copyright",)),
    ("live", ("live event", "is live", "premieres in")),
    ("format_unavailable", ("requested format is not available", "no video formats")),
    ("unsupported_url", ("unsupported url",)),
    ("http_404", ("http error 404", "404: not found")),
    ("http_403", ("http error 403",)),
    ("http_410", ("http error 410",)),
    ("http_429", ("http error 429", "too many requests")),
    (
        "unavailable",
        (
            "video unavailable",
            "has been removed",
            "no longer available",
            "does not exist",
            "account associated with this video has been terminated",
            "is not available",
        ),
    ),
    ("timeout", ("timed out", "timeout")),
    (
        "network",
        (
            "connection",
            "content too short",
            "contenttooshort",
            "incomplete",
            "remote end closed",
            "unable to download",
            "urlopen error",
            "name or service not known",
            "network",
            "giving up after",
            "did not get any data",
            "ffmpeg exited",
            "broken pipe",
        ),
    ),
)


def classify_failure(message: str) -> str:
    """A short category for a yt-dlp error message (``other`` when nothing matches)."""
    text = message.lower()
    if "http error 5" in text:
        return "http_5xx"
    for reason, fragments in _REASONS:
        if any(f in text for f in fragments):
            return reason
    return "other"


def format_selector(max_height: int | None = 720, audio: bool = False) -> str:
    """A yt-dlp format string: best mp4 at most ``max_height`` (unknown heights allowed).

    Video-only streams are preferred (text-to-video data needs no audio and they are smaller);
    with ``audio`` the best ≤ ``max_height`` video is merged with the best audio.
    """
    cap = f"[height<=?{max_height}]" if max_height else ""
    if audio:
        return f"bv*{cap}[ext=mp4]+ba[ext=m4a]/bv*{cap}+ba/b{cap}"
    return f"bv*{cap}[ext=mp4]/bv*{cap}/b{cap}[ext=mp4]/b{cap}"


@dataclass(frozen=True)
class DownloadOptions:
    """How to fetch; the fields are recorded in ``videos.parquet``'s metadata."""

    max_height: int | None = 720
    format: str | None = None  # a raw yt-dlp format string; overrides max_height/audio
    audio: bool = False
    sections: bool = True  # fetch only the metafile's sections when it has any
    workers: int = 4
    retries: int = 3  # extra attempts after a transient failure (network, timeout, 429, 5xx)
    backoff_s: float = 2.0  # wait before retry k: backoff_s * 2**k * (1 ± 25 %)
    socket_timeout_s: float = 30.0
    cookies: str | None = None
    force_keyframes_at_cuts: bool = True

    def selector(self) -> str:
        return self.format or format_selector(self.max_height, self.audio)


class DownloadOptionsError(UserError):
    """An unusable download option (cookies file missing, bad worker count)."""


class _FetchError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Log:
    """Collects yt-dlp's messages instead of printing them (workers share one console)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        pass

    info = debug

    def warning(self, msg: str) -> None:
        pass

    def error(self, msg: str) -> None:
        self.errors.append(" ".join(str(msg).split()))


def media_dir(out_dir: Path) -> Path:
    return out_dir / "videos"


def _finished(folder: Path, file_id: str) -> tuple[Path, dict[str, Any]] | None:
    """The finished file of ``file_id`` and its probe facts, or None."""
    from clipsieve.media.probe import ProbeError, probe_video

    for ext in sorted(VIDEO_EXTENSIONS):
        candidate = folder / f"{file_id}{ext}"
        if not candidate.is_file():
            continue
        try:
            facts = probe_video(candidate, timeout_s=60)
        except ProbeError:
            continue
        if facts.get("num_frames"):
            return candidate, facts
    return None


def finished_file(folder: Path, file_id: str) -> Path | None:
    """``{file_id}.{ext}`` when it exists under its final name and probes as a video."""
    found = _finished(folder, file_id)
    return found[0] if found else None


def _remove_unfinished(folder: Path, file_id: str) -> None:
    """Delete a final-named file that failed the finished check (yt-dlp would trust it)."""
    for ext in VIDEO_EXTENSIONS:
        (folder / f"{file_id}{ext}").unlink(missing_ok=True)


def _ydl_options(opts: DownloadOptions, outtmpl: str, log: _Log) -> dict[str, Any]:
    from clipsieve.media.ffmpeg import ffmpeg_exe

    params: dict[str, Any] = {
        "outtmpl": {"default": outtmpl},
        "format": opts.selector(),
        "merge_output_format": "mp4",
        "logger": log,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "socket_timeout": opts.socket_timeout_s,
        "retries": 2,  # in-attempt resumes of a dropped transfer; attempts are ours
        "fragment_retries": 2,
        "extractor_retries": 0,
        "continuedl": True,
        "overwrites": False,
        "cachedir": False,
        "remote_components": [],
        "geo_bypass": False,
        "writeinfojson": False,
        "writethumbnail": False,
        "writesubtitles": False,
        "writeautomaticsub": False,
        "getcomments": False,
        "mark_watched": False,
        "ffmpeg_location": ffmpeg_exe(),
        "force_keyframes_at_cuts": opts.force_keyframes_at_cuts,
    }
    if opts.cookies:
        params["cookiefile"] = opts.cookies
    return params


def _fetch(
    video: MetaVideo, targets: list[FileTarget], folder: Path, opts: DownloadOptions
) -> None:
    """One yt-dlp call for ``targets`` of ``video`` (all sections, or the whole file)."""
    for target in targets:
        _remove_unfinished(folder, target.file_id)
    from yt_dlp import YoutubeDL
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor
    from yt_dlp.utils import DownloadError

    from clipsieve.media.ffmpeg import ffmpeg_exe

    # yt-dlp finds ffmpeg for range downloads through a context variable, which every worker
    # thread starts without: set it here, in the thread that downloads.
    FFmpegPostProcessor._ffmpeg_location.set(ffmpeg_exe())
    log = _Log()
    sections = [t.section for t in targets if t.section is not None]
    if sections:
        outtmpl = str(folder / f"{video.video_id}.%(section_number)s.%(ext)s")
    else:
        outtmpl = str(folder / f"{video.video_id}.%(ext)s")
    params = _ydl_options(opts, outtmpl, log)
    if sections:

        def ranges(info: dict[str, Any], ydl: Any) -> Any:
            for section in sections:
                yield {
                    "start_time": section.start_s,
                    "end_time": section.end_s,
                    "index": section.number,
                }

        params["download_ranges"] = ranges
    try:
        with YoutubeDL(params) as ydl:
            info = ydl.extract_info(video.url, download=True)
    except DownloadError as exc:
        message = " ".join(str(exc).split()).removeprefix("ERROR: ")
        raise _FetchError(classify_failure(message), message) from None
    except Exception as exc:  # yt-dlp raises many types; all become a recorded reason
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise _FetchError(classify_failure(message), message) from None
    if info is None and log.errors:
        raise _FetchError(classify_failure(log.errors[-1]), log.errors[-1])
    if info is not None and info.get("_type") == "playlist":
        raise _FetchError("playlist", "the URL is a playlist, not one video")


def _attempts(
    video: MetaVideo,
    targets: list[FileTarget],
    folder: Path,
    opts: DownloadOptions,
    sleep: Callable[[float], None],
) -> tuple[int, _FetchError | None]:
    """Fetch with retries on transient failures; (attempts made, last error or None)."""
    for attempt in range(opts.retries + 1):
        try:
            _fetch(video, targets, folder, opts)
            return attempt + 1, None
        except _FetchError as exc:
            if exc.reason not in RETRYABLE or attempt == opts.retries:
                return attempt + 1, exc
            sleep(opts.backoff_s * (2**attempt) * random.uniform(0.75, 1.25))
    raise AssertionError("unreachable")  # pragma: no cover


def download_video(
    video: MetaVideo,
    out_dir: Path,
    opts: DownloadOptions,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """``videos`` rows for every file of ``video``, fetching only what is not finished yet."""
    folder = media_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    targets = file_targets(video, opts.sections)
    mode = "section" if any(t.section is not None for t in targets) else "whole"
    done = {t.file_id: finished_file(folder, t.file_id) for t in targets}
    missing = [t for t in targets if done[t.file_id] is None]
    attempts, failure, note = 0, None, None
    if missing and not video.url:
        failure = _FetchError("no_url", "the metafile gives no URL for this video")
    elif missing:
        attempts, failure = _attempts(video, missing, folder, opts, sleep)
        if (
            failure is not None
            and mode == "section"
            and any(m in str(failure).lower() for m in _PARTIAL_UNSUPPORTED)
        ):
            # The source cannot be cut remotely: fetch it whole once; all spans live in it.
            note = f"sections unsupported ({failure}); fetched whole"
            targets, mode = file_targets(video, use_sections=False), "whole"
            done = {t.file_id: finished_file(folder, t.file_id) for t in targets}
            missing = [t for t in targets if done[t.file_id] is None]
            more, failure = _attempts(video, missing, folder, opts, sleep) if missing else (0, None)
            attempts += more
    fetched_ids = {t.file_id for t in missing}
    rows = []
    for target in targets:
        found = _finished(folder, target.file_id)
        path = found[0] if found else None
        row = target_row(target, path or folder / f"{target.file_id}.mp4")
        row.update(
            download_mode=mode,
            download_attempts=attempts,
            download_skipped=target.file_id not in fetched_ids,
            download_note=note,
            download_reason=None,
        )
        if found is not None:
            facts = {k: v for k, v in found[1].items() if k in VIDEO_SCHEMA.names}
            row.update(facts, status=STATUS_OK)
        else:
            reason = failure.reason if failure else "incomplete"
            message = str(failure) if failure else "yt-dlp finished but the file is missing"
            row.update(
                status=STATUS_ERROR,
                error=f"{STAGE}: {reason}: {' '.join(message.split())[:400]}",
                download_reason=reason,
            )
        rows.append(row)
    return rows


@dataclass
class DownloadResult:
    table: pa.Table
    path: Path
    fetched: int  # files fetched by this call
    skipped: int  # files already finished before this call
    failed: int


def download_metafile(
    meta: Metafile,
    out_dir: str | Path,
    opts: DownloadOptions | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Fetch every video of ``meta`` into ``out_dir/videos/`` and write ``out_dir/videos.parquet``.

    The table is written even when interrupted (Ctrl-C): rows of videos not reached yet are
    absent, and a re-run picks them up. Row order follows the metafile, not completion order.
    """
    opts = opts or DownloadOptions()
    out_dir = Path(out_dir)
    if opts.workers < 1:
        raise DownloadOptionsError(f"--workers {opts.workers}: give 1 or more")
    if opts.cookies and not Path(opts.cookies).is_file():
        raise DownloadOptionsError(
            f"cookies file not found: {opts.cookies} (export a Netscape cookies.txt)"
        )
    try:
        media_dir(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadOptionsError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    results: dict[int, list[dict[str, Any]]] = {}
    pool = ThreadPoolExecutor(max_workers=opts.workers, thread_name_prefix="download")
    try:
        futures = {
            pool.submit(download_video, video, out_dir, opts, sleep): i
            for i, video in enumerate(meta.videos)
        }
        for future in as_completed(futures):
            index = futures[future]
            results[index] = future.result()
            if progress is not None:
                progress(len(results), len(meta.videos), meta.videos[index].video_id)
    finally:
        # On Ctrl-C, queued videos are cancelled; the ones in flight finish or leave .part files.
        pool.shutdown(wait=True, cancel_futures=True)
        rows = [row for i in sorted(results) for row in results[i]]
        table = cast_meta_columns(rows_to_table(rows, VIDEO_SCHEMA), META_VIDEO_FIELDS)
        provenance = {
            "clipsieve_download": {
                "metafile": str(meta.path),
                "format": meta.format,
                "options": asdict(opts),
                "yt_dlp": _yt_dlp_version(),
            }
        }
        path = write_parquet(table, out_dir / VIDEOS_FILE, provenance)
    fetched = sum(1 for r in rows if r["status"] == STATUS_OK and not r["download_skipped"])
    skipped = sum(1 for r in rows if r["download_skipped"] and r["status"] == STATUS_OK)
    failed = sum(1 for r in rows if r["status"] == STATUS_ERROR)
    return DownloadResult(table, path, fetched, skipped, failed)


def _yt_dlp_version() -> str:
    from yt_dlp.version import __version__

    return __version__
