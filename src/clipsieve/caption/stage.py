"""The caption stage: ask a VLM about each selected clip, many requests in flight at once.

Each worker thread takes one clip: decode its frames once (``frames.py``), encode them to JPEG
once, render the prompt, call the backend (which retries with backoff). ``concurrency`` threads
keep that many requests in flight; frame decoding overlaps with waiting on the server.

A clip whose request fails for good keeps its row: ``caption_error`` says why, ``caption`` stays
as it was, and a re-run asks again only for those rows (and for rows never captioned). When the
backend turns out to be unusable for every row (server down, key rejected) the stage stops sending,
records "not attempted" on the remaining rows and reports one message (``aborted``) instead of
failing thousands of rows one timeout at a time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from clipsieve.caption.backend_registry import make_backend
from clipsieve.caption.backends import CaptionBackend, CaptionReply, CaptionRequest
from clipsieve.caption.clean import (
    add_score_words,
    clean_caption,
    duplicate_flags,
    looks_english,
)
from clipsieve.caption.columns import CAPTION_COLUMNS, apply_columns, init_source_captions
from clipsieve.caption.errors import CaptionFailed
from clipsieve.caption.frames import ClipFrames
from clipsieve.caption.prompts import PromptTemplate, load_prompt
from clipsieve.caption.rewrite import parse_rewrite, rewrite_prompt
from clipsieve.media.frames import SampleError
from clipsieve.stage import Resources, Stage
from clipsieve.table import STATUS_ERROR, error_text

UNREACHABLE_LIMIT = 3  # consecutive clips that could not reach the server before the run stops
DROP_REASONS = ("caption_empty", "caption_language", "caption_duplicate")


@dataclass
class CaptionStats:
    """Counts and totals of one caption (or rewrite) pass."""

    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    seconds: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0

    @property
    def clips_per_s(self) -> float:
        return self.succeeded / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return (self.tokens_in + self.tokens_out) / self.seconds if self.seconds > 0 else 0.0


def run_parallel(items: Sequence[int], work: Callable[[int], None], concurrency: int) -> None:
    """Call ``work(i)`` for every item on ``concurrency`` threads; return when all are done."""
    if concurrency <= 1 or len(items) <= 1:
        for item in items:
            work(item)
        return
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="caption")
    try:
        for future in [pool.submit(work, item) for item in items]:
            future.result()
    except BaseException:
        # Ctrl-C / SIGTERM: the requests in flight finish (their answers are saved by the
        # caller), the ones not started are dropped instead of being sent after the interrupt
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def backend_params(
    backend: str,
    base_url: Sequence[str] = (),
    model: str | None = None,
    api_key_env: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    timeout_s: float | None = None,
    max_tries: int | None = None,
) -> dict[str, Any]:
    """The parameters ``backend`` takes from the caption command's options (the ones given):
    servers, key and timeout for the remote APIs, tries for anything but a local model."""
    params: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "temperature": temperature}
    if backend == "openai":
        params.update(base_url=list(base_url) or None, api_key_env=api_key_env, timeout_s=timeout_s)
    elif backend == "gemini":
        params.update(api_key_env=api_key_env, timeout_s=timeout_s)
    if backend != "local":
        params["max_tries"] = max_tries
    return {k: v for k, v in params.items() if v is not None}


@dataclass
class CaptionStage(Stage):
    """Caption clip rows with a VLM backend (see the module docstring)."""

    name: ClassVar[str] = "caption"
    version: ClassVar[str] = "1"
    table: ClassVar[str] = "clips"
    inputs: ClassVar[tuple[str, ...]] = ("path", "source_path", "start_frame", "end_frame", "keep")
    output_columns: ClassVar[tuple[str, ...]] = CAPTION_COLUMNS
    worker_resources: ClassVar[Resources] = Resources(cpus=1.0)
    # the column that says why a row's last request failed (a re-run asks those rows again)
    error_column: ClassVar[str] = "caption_error"
    answer_column: ClassVar[str] = "caption_raw"  # set once a row has an answer

    backend: str = "openai"
    backend_params: dict[str, Any] = field(default_factory=dict)
    prompt: str = "recaption"
    frames: int | None = None
    frame_size: int | None = None
    exact_frames: bool = False
    concurrency: int = 8
    all_rows: bool = False
    overwrite: bool = False

    on_row: Callable[[bool], None] | None = field(default=None, repr=False, compare=False)
    _backend: CaptionBackend | None = field(default=None, init=False, repr=False)
    _template: PromptTemplate | None = field(default=None, init=False, repr=False)
    _frames: ClipFrames | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _decode_slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(os.cpu_count() or 1),
        init=False,
        repr=False,
    )
    _unreachable_run: int = field(default=0, init=False, repr=False)
    aborted: str | None = field(default=None, init=False)
    stats: CaptionStats = field(default_factory=CaptionStats, init=False)

    def params(self) -> dict[str, Any]:
        backend = self.backend_instance.describe()
        return {
            "backend": backend,
            "prompt": self.prompt,
            "frames": self.frame_spec_params(),
            "concurrency": self.concurrency,
            "all_rows": self.all_rows,
            "overwrite": self.overwrite,
        }

    def frame_spec_params(self) -> dict[str, Any]:
        spec = self.backend_instance.default_frames(self.frames, self.frame_size)
        return {
            "count": spec.count,
            "positions": spec.positions,
            "size": spec.size,
            "short_side": spec.short_side,
            "exact": self.exact_frames,
        }

    @property
    def backend_instance(self) -> CaptionBackend:
        if self._backend is None:
            self._backend = make_backend(self.backend, **self.backend_params)
        return self._backend

    @property
    def template(self) -> PromptTemplate:
        if self._template is None:
            self._template = load_prompt(self.prompt)
        return self._template

    def teardown(self) -> None:
        """Close the backend's connections (or free its GPU memory)."""
        if self._backend is not None:
            self._backend.close()

    def setup(self) -> None:
        """Build the backend, load the prompt and the frame sampler (no request yet)."""
        backend = self.backend_instance
        _ = self.template
        self._frames = ClipFrames(
            backend.default_frames(self.frames, self.frame_size), exact=self.exact_frames
        )

    @property
    def workers(self) -> int:
        """Request threads: ``concurrency`` per server (a pool of servers keeps each busy)."""
        backend = self.backend_instance
        limit = backend.max_concurrency
        per_server = max(1, min(self.concurrency, limit) if limit else self.concurrency)
        return per_server * int(getattr(backend, "servers", 1))

    # ------------------------------------------------------------------------ selection

    def eligible(self, row: dict[str, Any]) -> bool:
        """Rows the user wants captioned: kept and ok, or every row with ``all_rows``."""
        if self.all_rows:
            return bool(row.get("path") or row.get("source_path"))
        return row.get("keep") is True and row.get("status") != STATUS_ERROR

    def wanted(self, row: dict[str, Any]) -> bool:
        """Eligible rows without an answer yet or whose last attempt failed."""
        if not self.eligible(row):
            return False
        return (
            self.overwrite
            or row.get(self.answer_column) is None
            or bool(row.get(self.error_column))
        )

    def prepare_rows(self, rows: list[dict[str, Any]]) -> None:
        """Rows as this stage reads them (in place): source captions moved aside on the first
        caption run."""
        init_source_captions(rows)

    def selection_view(self, rows: list[dict[str, Any]]) -> None:
        """Rows as the choice of what to ask judges them (in place): source captions aside,
        and this pass's own earlier marks undone (a re-run must not skip rows it dropped)."""
        self.prepare_rows(rows)
        unmark_rows(rows)

    def request_for(
        self, row: dict[str, Any], images: Any, jpegs: tuple[bytes, ...]
    ) -> CaptionRequest:
        """The question for one clip."""
        return CaptionRequest(self.template.render(row), images, jpegs)

    def answer_columns(self, reply: CaptionReply) -> dict[str, Any]:
        """The columns an answer sets (the error column cleared)."""
        return {
            "caption_raw": reply.text,
            "caption": reply.text,
            "caption_rewrite": None,
            "caption_rewrite_error": None,
            "caption_model": reply.model,
            "caption_prompt": self.template.name,
            "caption_tokens_in": reply.tokens_in,
            "caption_tokens_out": reply.tokens_out,
            "caption_latency_s": round(reply.latency_s, 4),
            "caption_attempts": reply.attempts,
            "caption_truncated": reply.truncated,
            "caption_error": None,
        }

    # ------------------------------------------------------------------------ captioning

    def process(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        self.caption_rows(rows)
        return apply_columns(batch, rows)

    def caption_rows(self, rows: list[dict[str, Any]]) -> list[int]:
        """Caption the wanted rows of ``rows`` in place; returns their indices."""
        if self._frames is None:
            self.setup()
        self.prepare_rows(rows)
        todo = [i for i, row in enumerate(rows) if self.wanted(row)]

        def work(index: int) -> None:
            rows[index] = self._caption_one(rows[index])

        import time

        started = time.perf_counter()
        run_parallel(todo, work, self.workers)
        self.stats.seconds += time.perf_counter() - started
        return todo

    def _caption_one(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        error = self.error_column
        if self.aborted:
            out[error] = error_text(self.name, f"not attempted: {self.aborted}")
            self._count(None)
            return out
        assert self._frames is not None
        try:
            # Requests wait on the server; decoding wants a core. At most one decode per core
            # runs at a time, so 16 requests in flight do not mean 16 decoders thrashing.
            with self._decode_slots:
                images = self._frames.arrays(row)
                jpegs = self._frames.jpegs(images) if self.backend_instance.wants_jpeg else ()
            reply = self.backend_instance.caption(self.request_for(row, images, jpegs))
        except SampleError as exc:
            out[error] = error_text(self.name, f"cannot read frames: {exc}")
            self._count(None)
            return out
        except CaptionFailed as exc:
            out[error] = error_text(self.name, exc)
            self._note_failure(exc)
            self._count(None)
            return out
        except Exception as exc:
            # A backend or decoder bug met by one odd answer or clip must cost that row only:
            # raised from a worker it would stop the run and lose the unsaved chunk.
            out[error] = error_text(self.name, f"{type(exc).__name__}: {exc}")
            self._count(None)
            return out
        out.update(self.answer_columns(reply))
        self._count(reply)
        return out

    def _note_failure(self, exc: CaptionFailed) -> None:
        with self._lock:
            if exc.kind == "fatal":
                self.aborted = self.aborted or str(exc)
            elif exc.kind == "unreachable":
                self._unreachable_run += 1
                if self._unreachable_run >= UNREACHABLE_LIMIT:
                    self.aborted = self.aborted or f"{exc} ({UNREACHABLE_LIMIT} clips in a row)"

    def _count(self, reply: CaptionReply | None) -> None:
        with self._lock:
            self.stats.attempted += 1
            if reply is None:
                self.stats.failed += 1
            else:
                self._unreachable_run = 0
                self.stats.succeeded += 1
                self.stats.tokens_in += reply.tokens_in or 0
                self.stats.tokens_out += reply.tokens_out or 0
        if self.on_row is not None:
            self.on_row(reply is not None)

    # ------------------------------------------------------------------------ rewrite

    def rewrite_rows(
        self, rows: list[dict[str, Any]], template: PromptTemplate, stats: CaptionStats
    ) -> list[int]:
        """Rewrite captioned rows (not yet rewritten, or all with ``overwrite``) in place."""
        import time

        todo = [
            i
            for i, row in enumerate(rows)
            if self.eligible(row)
            and row.get("caption_raw")
            and not row.get("caption_error")
            and (self.overwrite or row.get("caption_rewrite") is None)
        ]

        def work(index: int) -> None:
            row = dict(rows[index])
            source = clean_caption(row["caption_raw"], bool(row.get("caption_truncated")))
            failed = True
            try:
                if self.aborted:
                    raise CaptionFailed(f"not attempted: {self.aborted}")
                reply = self.backend_instance.caption(
                    CaptionRequest(rewrite_prompt(template, source or row["caption_raw"]))
                )
                row["caption_rewrite"] = parse_rewrite(reply.text)
                row["caption_rewrite_error"] = None
                failed = False
                with self._lock:
                    stats.tokens_in += reply.tokens_in or 0
                    stats.tokens_out += reply.tokens_out or 0
            except CaptionFailed as exc:
                row["caption_rewrite_error"] = error_text("rewrite", exc)
                self._note_failure(exc)
            except Exception as exc:  # a bad JSON answer, or any one-row surprise (see above)
                row["caption_rewrite_error"] = error_text("rewrite", exc)
            with self._lock:
                stats.attempted += 1
                stats.failed += failed
                stats.succeeded += not failed
            rows[index] = row
            if self.on_row is not None:
                self.on_row(not failed)

        started = time.perf_counter()
        run_parallel(todo, work, self.workers)
        stats.seconds += time.perf_counter() - started
        return todo


# ---------------------------------------------------------------------------- post-processing


@dataclass(frozen=True)
class PostOptions:
    """How ``caption`` is derived from the stored answers, and which rows it marks.

    ``clean``: Open-Sora-style text cleaning; ``english_only``: mark non-English captions;
    ``drop_empty``: mark rows whose caption ended up empty; ``dedup``: mark repeated captions
    (the first clip keeps it); ``score_words``: append aesthetic/motion levels in words.
    """

    clean: bool = False
    english_only: bool = False
    drop_empty: bool = True
    dedup: bool = False
    score_words: bool = False


def unmark_rows(rows: list[dict[str, Any]]) -> None:
    """Undo the marks an earlier caption post-processing set (in place).

    Done before selecting rows to caption too: a clip dropped only for its old caption (e.g. in
    the wrong language) is a candidate for a new one.
    """
    for row in rows:
        if row.get("keep") is False and row.get("drop_reason") in DROP_REASONS:
            row["keep"], row["drop_reason"] = True, None


def postprocess_rows(
    rows: list[dict[str, Any]], options: PostOptions, seen: set[str] | None = None
) -> dict[str, int]:
    """Recompute ``caption`` and the caption marks of every row in place; returns mark counts.

    ``caption`` is always rebuilt from ``caption_rewrite`` or ``caption_raw``, so re-running with
    other options never cleans twice or appends score words twice; rows an earlier run marked
    for a caption reason are unmarked first, then marked again as the options say. ``seen``:
    caption keys of earlier batches, for duplicate marks over a streamed table.
    """
    counts = dict.fromkeys(DROP_REASONS, 0)
    unmark_rows(rows)
    for row in rows:
        base = row.get("caption_rewrite") or row.get("caption_raw")
        if base is None:
            continue
        text = clean_caption(base, bool(row.get("caption_truncated"))) if options.clean else base
        text = " ".join(text.split())
        if options.score_words and text:
            text = add_score_words(text, row.get("aes"), row.get("flow_mean"))
        row["caption"] = text
        if row.get("keep") is not True:
            continue
        reason = None
        if not text and options.drop_empty:
            reason = "caption_empty"
        elif text and options.english_only and not looks_english(text):
            reason = "caption_language"
        if reason:
            row["keep"], row["drop_reason"] = False, reason
            counts[reason] += 1
    if options.dedup:
        kept = [i for i, row in enumerate(rows) if row.get("keep") is True and row.get("caption")]
        for index, duplicate in zip(
            kept, duplicate_flags([rows[i]["caption"] for i in kept], seen), strict=True
        ):
            if duplicate:
                rows[index]["keep"], rows[index]["drop_reason"] = False, "caption_duplicate"
                counts["caption_duplicate"] += 1
    return counts
