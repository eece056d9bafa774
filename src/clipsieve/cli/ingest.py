"""``clipsieve download`` and ``clipsieve ingest-meta``: start a run from a dataset metafile.

``download`` fetches a metafile's videos (only the needed sections when the metafile has spans)
into ``OUT/videos/`` and writes ``OUT/videos.parquet`` with a status and a failure reason per
file. ``ingest-meta`` turns the metafile's spans into a run folder's ``videos.parquet`` and
``clips.parquet`` (probed, with captions and ``caption_src``), with no shot detection.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

from clipsieve.cli.common import console, fail, progress_bar, user_errors
from clipsieve.ingest.metafiles import FORMATS, HDVG_ANCHORS

_FORMAT_HELP = f"Metafile format ({', '.join(FORMATS)}); default: guessed from the file."
_RANGE_HELP = "Videos START:END by index in the metafile (END exclusive), e.g. 0:100."
_ANCHOR_HELP = (
    f"HD-VG scene frames count from the span {' or '.join(HDVG_ANCHORS)} (see docs/ingest.md)."
)


def download(
    metafile: Path = typer.Argument(..., help="Metafile (HD-VG json, Panda-70M/WebVid csv, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for videos/ and videos.parquet."),
    format: str | None = typer.Option(None, "--format", "-f", help=_FORMAT_HELP),
    range_: str | None = typer.Option(None, "--range", help=_RANGE_HELP),
    max_height: int = typer.Option(720, "--max-height", help="Largest video height (0: any)."),
    yt_format: str | None = typer.Option(
        None, "--yt-format", help="Raw yt-dlp format string (overrides --max-height/--audio)."
    ),
    audio: bool = typer.Option(False, "--audio/--no-audio", help="Also fetch the audio track."),
    whole: bool = typer.Option(False, "--whole", help="Fetch whole videos, not only the spans."),
    workers: int = typer.Option(4, "--workers", "-j", help="Videos fetched at the same time."),
    retries: int = typer.Option(3, "--retries", help="Retries after a network failure."),
    backoff: float = typer.Option(2.0, "--backoff", help="First retry wait in seconds (doubles)."),
    socket_timeout: float = typer.Option(30.0, "--socket-timeout", help="Seconds per read."),
    cookies: Path | None = typer.Option(None, "--cookies", help="Netscape cookies.txt file."),
    hdvg_anchor: str = typer.Option("start", "--hdvg-anchor", help=_ANCHOR_HELP),
) -> None:
    """Download a metafile's videos (resumable: finished files are skipped)."""
    from clipsieve.ingest.download import DownloadOptions, download_metafile
    from clipsieve.ingest.metafiles import read_metafile

    with user_errors():
        meta = read_metafile(metafile, format, range_, hdvg_anchor=hdvg_anchor)
        opts = DownloadOptions(
            max_height=max_height or None,
            format=yt_format,
            audio=audio,
            sections=not whole,
            workers=workers,
            retries=max(0, retries),
            backoff_s=max(0.0, backoff),
            socket_timeout_s=socket_timeout,
            cookies=str(cookies) if cookies else None,
        )
        console.print(
            f"{meta.path.name}: {meta.format}, {len(meta.videos)} of {meta.total_videos} videos, "
            f"{len(meta.spans())} spans"
        )
        with progress_bar() as progress:
            task = progress.add_task("download", total=len(meta.videos), rate="", current="")

            def on_progress(done: int, total: int, video_id: str) -> None:
                progress.update(task, completed=done, total=total, current=video_id[:40])

            result = download_metafile(meta, out, opts, progress=on_progress)
        reasons = Counter(
            r["download_reason"] for r in result.table.to_pylist() if r["status"] == "error"
        )
        console.print(
            f"files: {result.fetched} fetched, {result.skipped} already finished, "
            f"{result.failed} failed → {result.path}"
        )
        for reason, count in reasons.most_common():
            console.print(f"  [red]{reason}[/] ×{count}", highlight=False)


def ingest_meta(
    metafile: Path = typer.Argument(..., help="Metafile (HD-VG json, Panda-70M/WebVid csv, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for videos/clips.parquet."),
    videos: Path | None = typer.Option(
        None, "--videos", help="Folder with the files (a `clipsieve download` --out folder)."
    ),
    format: str | None = typer.Option(None, "--format", "-f", help=_FORMAT_HELP),
    range_: str | None = typer.Option(None, "--range", help=_RANGE_HELP),
    whole: bool = typer.Option(False, "--whole", help="The files are whole videos (--whole)."),
    hdvg_anchor: str = typer.Option("start", "--hdvg-anchor", help=_ANCHOR_HELP),
) -> None:
    """Plan clips from a metafile's spans and captions (no shot detection)."""
    from clipsieve.ingest.metafiles import read_metafile
    from clipsieve.ingest.spans import ingest_metafile
    from clipsieve.pipeline_run import prepare_run_dir
    from clipsieve.runlock import run_lock

    with user_errors(), run_lock(out, "ingest-meta", create=True):
        meta = read_metafile(metafile, format, range_, hdvg_anchor=hdvg_anchor)
        if videos is not None and not videos.is_dir():
            raise fail(
                f"--videos {videos}: not a folder (give the --out folder of `clipsieve download`)"
            )
        prepare_run_dir(out, restart=False)
        with progress_bar() as progress:
            task = progress.add_task("probe", total=None, rate="", current="")

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = ingest_metafile(
                meta, out, videos, use_sections=not whole, progress=on_progress
            )
        rows = result.clips.to_pylist()
        bad_videos = sum(1 for r in result.videos.to_pylist() if r["status"] == "error")
        kept = sum(1 for r in rows if r["keep"] and r["status"] != "error")
        waiting = sum(1 for r in rows if "file not found" in (r.get("error") or ""))
        console.print(
            f"{result.videos.num_rows} files ({bad_videos} with errors), {len(rows)} spans → "
            f"{len(rows)} clip rows, {kept} ready to cut → {out}"
        )
        if waiting:  # rows, not nothing: a later run fills them once the files exist
            console.print(
                f"{waiting} rows wait for their files (error 'file not found'): run `clipsieve "
                "download` (or pass --videos DIR), then `clipsieve run` plans them",
                style="yellow",
                highlight=False,
                soft_wrap=True,
            )


def register_ingest_meta(app: typer.Typer) -> None:
    """Add ``download`` and ``ingest-meta`` to ``app``."""
    app.command("download")(download)
    app.command("ingest-meta")(ingest_meta)
