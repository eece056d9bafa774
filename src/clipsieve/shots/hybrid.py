"""The default shot detector: a cheap pass over tiny frames, TransNetV2 only where it is unsure.

Why this shape. Decoding is most of the cost of shot detection, and TransNetV2 is the most
accurate detector we have but runs at tens of frames per second on a CPU. So:

1. **One decode** at 48x27 RGB (TransNetV2's input size), deblocking skipped, threaded.
2. **Cheap signals** per frame: mean absolute pixel change to the previous frame (``d1``), a
   colour-histogram distance to the previous frame (``h1``), mean brightness (``y``), and the
   change over a longer span (``dk``, frame ``i`` against ``i - k``) that reveals dissolves.
3. **Hard cuts**: ``d1`` peaks that stand out from their neighbourhood (an adaptive ratio, as in
   PySceneDetect's AdaptiveDetector). A peak that is large on every signal is accepted as is;
   one that is small on either is dropped; the rest are *unsure*. A *flash* (the picture returns
   to the pre-peak frame within a few frames: photo flashes, welding sparks) is never a cut.
4. **Fades** through black are found from brightness ramps: a fade-out is a steady darkening to
   black, a fade-in a steady brightening from black. A dip to black without a held black frame
   is one transition; with a black hold, fade-out and fade-in are two boundaries (the black is a
   shot of its own). A transition still running at the end of the video has no shot after it and
   is not reported.
5. **Dissolves**: long-span change with no hard cut inside (``dk`` high) marks a candidate
   region, kept only when some stretch of it is close to a linear blend of its ends (a
   cross-fade; camera motion is not, see :func:`blend_residual`).
6. **TransNetV2 arbitrates**: unsure hard cuts and dissolve candidates are checked by running the
   model only on the frames in doubt (50 around an unsure cut, a dissolve's span) plus the
   package's 25 frames of context on each side; ranges closer than 50 frames share a window
   (:func:`~clipsieve.shots.transnet.predict_spans`). In bfloat16 where the CPU has it, with
   every close call recomputed in float32. For a static video (slides, screen captures) nothing
   is unsure and the model never runs.

Each reported cut is the first frame of the new shot; a gradual transition's is its first frame.

Long videos are detected in chunks of :data:`CHUNK_FRAMES` frames that overlap by
:data:`OVERLAP_FRAMES` (far more than any fade, dissolve or model window needs), each cut taken
from the chunk in which it lies farther from the edge, so memory stays bounded however long the
video is, and a video shorter than one chunk gives exactly the single-pass result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from clipsieve.shots.base import ShotResult, torch_threads
from clipsieve.shots.decode import FrameReader
from clipsieve.shots.transnet import INPUT_H, INPUT_W, PRECISIONS, STEP, true_runs

CHUNK_FRAMES = 9000
"""Frames per detection chunk (6 min at 25 fps; ~35 MB of 48x27 frames plus their signals)."""
OVERLAP_FRAMES = 300
"""Frames two chunks share: each side keeps the cuts of its own half of the overlap."""
BF16_MARGIN = 0.02
"""A bfloat16 probability this close to a threshold is recomputed in float32: about 3x the
largest bfloat16 error seen near the thresholds, over the 2,062 frames the detector predicts on
the dev videos and those of ``benchmarks/peers.py`` (0.005 for probabilities of 0.05-0.15, 0.007
for 0.4-0.6; up to 0.02 for 0.15-0.3, where no decision is made)."""


@dataclass
class Signals:
    """Per-frame cheap signals; index ``i`` compares frame ``i`` with frame ``i - 1``."""

    y: np.ndarray  # mean brightness 0..255
    d1: np.ndarray  # mean |frame_i - frame_i-1|, 0..255
    h1: np.ndarray  # histogram distance to previous frame, 0..1
    dk: np.ndarray  # mean |frame_i - frame_i-k|
    flat: np.ndarray  # spatial std of the frame (a black frame has ~0)


def _hist(frames: np.ndarray, bins: int = 4) -> np.ndarray:
    """Joint RGB histogram per frame, ``bins**3`` cells, normalised to sum 1."""
    q = (frames >> (8 - int(np.log2(bins)))).astype(np.int32)
    codes = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    codes = codes.reshape(len(frames), -1)
    n_cells = bins**3
    offsets = (np.arange(len(frames)) * n_cells)[:, None]
    counts = np.bincount((codes + offsets).ravel(), minlength=len(frames) * n_cells)
    return counts.reshape(len(frames), n_cells) / codes.shape[1]


def compute_signals(frames: np.ndarray, k: int = 8) -> Signals:
    """Cheap signals for ``frames`` (n, h, w, 3) uint8."""
    n = len(frames)
    f = frames.reshape(n, -1).astype(np.int16)
    y = f.mean(axis=1).astype(np.float32) if n else np.zeros(0, np.float32)
    flat = f.std(axis=1).astype(np.float32) if n else np.zeros(0, np.float32)
    d1 = np.zeros(n, np.float32)
    dk = np.zeros(n, np.float32)
    h1 = np.zeros(n, np.float32)
    if n > 1:
        d1[1:] = np.abs(f[1:] - f[:-1]).mean(axis=1)
        hist = _hist(frames)
        h1[1:] = 0.5 * np.abs(hist[1:] - hist[:-1]).sum(axis=1)
        for i in range(1, n):
            j = max(0, i - k)
            dk[i] = np.abs(f[i] - f[j]).mean()
    return Signals(y=y, d1=d1, h1=h1, dk=dk, flat=flat)


def blend_residual(
    frames: np.ndarray, a: int, b: int, shortest: int = 8, longest: int = 48, step: int = 4
) -> float:
    """How far the best stretch of frames ``a..b`` is from a linear blend of its two ends.

    A dissolve is a cross-fade: each frame inside it is ``(1 - w) * first + w * last``. Camera
    motion, which also makes the long-span change ``dk`` high, is not: its middle frames are not
    a ghosted mix of the ends. The residual is the mean absolute difference from the blend,
    over the change between the ends; the smallest over stretches of 8 to 48 frames starting
    every 4 frames is returned. On the dev set every dissolve candidate TransNetV2 confirmed
    scored 0.04-0.08 and every other but five scored 0.17 or more, so the model is asked
    about 12 of 76 candidates instead of all (it was most of the detector's cost).
    """
    f = frames[a : b + 1].astype(np.float32)
    best = 1.0
    for s in range(0, len(f) - shortest, step):
        for e in range(s + shortest, min(len(f), s + longest + 1), step):
            change = float(np.abs(f[e] - f[s]).mean())
            if change < 1.0:
                continue  # the ends are alike: nothing blends
            w = (np.arange(e - s + 1, dtype=np.float32) / (e - s))[:, None, None, None]
            blend = f[s] + (f[e] - f[s]) * w
            best = min(best, float(np.abs(f[s : e + 1] - blend).mean()) / change)
    return best


def _local_level(x: np.ndarray, i: int, half: int) -> float:
    """Typical value of ``x`` around ``i``, ignoring ``i - 1 .. i + 1`` (the peak itself)."""
    lo, hi = max(1, i - half), min(len(x), i + half + 1)
    around = np.concatenate([x[lo : max(lo, i - 1)], x[min(hi, i + 2) : hi]])
    if around.size == 0:
        return 0.0
    return float(np.percentile(around, 75))


@dataclass
class HybridDetector:
    """Cheap signals + fade logic + TransNetV2 on unsure windows (see module docs)."""

    name: ClassVar[str] = "hybrid"
    segmentable: ClassVar[bool] = True  # already reads long videos in overlapping chunks
    threshold: float = 0.5  # TransNetV2 probability that confirms an unsure candidate
    weak_threshold: float = 0.1  # ... or this probability for a peak that stands out by ...
    weak_ratio: float = 5.5  # ... this factor above its neighbourhood
    cut_min: float = 6.0  # d1 below this is never a hard cut (0..255 scale)
    cut_sure: float = 30.0  # d1 at or above this, with a clear ratio and histogram change: sure
    hist_sure: float = 0.35  # histogram distance for a sure cut
    ratio: float = 2.5  # a peak must exceed its neighbourhood level by this factor
    spike_min: float = 20.0  # an isolated spike this big ...
    spike_ratio: float = 12.0  # ... and this many times its neighbourhood is a sure cut
    still_level: float = 0.3  # neighbourhood d1 at or below this: the pictures around are still
    still_step: float = 2.0  # smallest d1 step between still pictures that is a cut
    black: float = 12.0  # mean brightness at or below which a frame counts as black
    fade_min_len: int = 5  # frames of steady ramp for a fade
    black_hold: int = 4  # black frames that make fade-out/fade-in two boundaries
    dissolve_min: float = 12.0  # dk level that makes a dissolve candidate
    blend_max: float = 0.12  # ... whose best linear-blend residual is at most this
    use_model: bool = True  # False: cheap pass only (unsure candidates are decided by ratio)
    # the model's: auto = bfloat16 where the CPU has it natively; float32; bfloat16 = even
    # where it is emulated. Close calls are re-checked in float32 either way (same decisions)
    precision: str = "auto"
    threads: int = 0
    _model: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"
            )

    def params(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "threshold",
                "weak_threshold",
                "weak_ratio",
                "cut_min",
                "cut_sure",
                "hist_sure",
                "ratio",
                "spike_min",
                "spike_ratio",
                "still_level",
                "still_step",
                "black",
                "fade_min_len",
                "black_hold",
                "dissolve_min",
                "blend_max",
                "use_model",
                "precision",
            )
        }

    # ------------------------------------------------------------------------------ public

    def detect(
        self, path: str | Path, start_frame: int = 0, end_frame: int | None = None
    ) -> ShotResult:
        reader = FrameReader(
            path, size=(INPUT_W, INPUT_H), start_frame=start_frame, end_frame=end_frame
        )
        cuts: list[int] = []
        window: list[np.ndarray] = []
        first: int | None = None  # frame number of the first decoded frame
        offset = 0  # frame number of window[0]
        for index, image in reader:
            if first is None:
                first = offset = index
            window.append(image)
            if len(window) == CHUNK_FRAMES + OVERLAP_FRAMES:
                cuts += self._chunk_cuts(window, offset, last=False, leading=offset == first)
                window = window[CHUNK_FRAMES:]
                offset += CHUNK_FRAMES
        if window:
            cuts += self._chunk_cuts(window, offset, last=True, leading=offset == first)
        return ShotResult(
            fps=reader.info.fps or 0.0,
            num_frames=reader.num_frames,
            cuts=sorted(set(cuts)),
            first_frame=first if first is not None else start_frame,
        )

    def _chunk_cuts(
        self, window: list[np.ndarray], offset: int, last: bool, leading: bool
    ) -> list[int]:
        """Cuts of one chunk that belong to it: past the first half-overlap (except in the
        leading chunk) and before the last half-overlap (except in the last), as video frame
        numbers."""
        found, _ = self.detect_frames(np.stack(window))
        low = 0 if leading else OVERLAP_FRAMES // 2
        high = len(window) if last else CHUNK_FRAMES + OVERLAP_FRAMES // 2
        return [offset + c for c in found if low <= c < high]

    def detect_frames(
        self, frames: np.ndarray, probs: np.ndarray | None = None
    ) -> tuple[list[int], dict[str, Any]]:
        """Cuts for an (n, 27, 48, 3) uint8 RGB array; ``probs`` skips the model (testing)."""
        n = len(frames)
        if n < 2:
            return [], {}
        sig = compute_signals(frames)
        sure, unsure = self._hard_cut_candidates(frames, sig)
        fades = self._fades(sig)
        dissolves = self._dissolve_candidates(frames, sig, sure + unsure, fades)
        needs = [(c - STEP // 2, c + STEP // 2) for c in unsure]
        needs += [(min(a, (a + b) // 2 - STEP // 2), max(b + 1, (a + b) // 2 + STEP // 2))
                  for a, b in dissolves]  # fmt: skip
        model_probs: dict[int, float] = {}
        if needs and self.use_model and probs is None:
            probs = self._predict_spans(frames, needs, unsure, dissolves)
        accepted: list[int] = list(sure)
        for c in unsure:
            if probs is not None and self.use_model:
                window = probs[max(0, c - 2) : min(n, c + 2)]
                p = float(window.max()) if window.size else 0.0
                model_probs[c] = p
                # Strong cheap evidence needs only weak support from the model.
                lvl = max(_local_level(sig.d1, c, 8), 1.0)
                if p >= self.threshold or (
                    p >= self.weak_threshold and sig.d1[c] >= self.weak_ratio * lvl
                ):
                    accepted.append(c)
            elif sig.d1[c] >= 2 * self.cut_min:
                accepted.append(c)
        for a, b in dissolves:
            if probs is None or not self.use_model or b >= n - 2:
                continue  # (a change still running at the end has no shot after it)
            seg = probs[a : b + 1]
            above = np.nonzero(seg >= self.threshold)[0]
            if above.size:
                accepted.append(a + int(above[0]))
        events = sorted(set(accepted) | {f for f in fades})
        cuts = self._merge(events, n)
        debug = {
            "sure": sure,
            "unsure": unsure,
            "fades": fades,
            "dissolves": dissolves,
            "model": model_probs,
        }
        return cuts, debug

    # ---------------------------------------------------------------------------- stages

    def _hard_cut_candidates(self, frames: np.ndarray, sig: Signals) -> tuple[list[int], list[int]]:
        n = len(frames)
        sure: list[int] = []
        unsure: list[int] = []
        d1 = sig.d1
        for i in range(1, n):
            v = d1[i]
            if v < self.still_step:
                continue
            if v < d1[i - 1] or (i + 1 < n and v <= d1[i + 1]):
                continue  # not a local peak
            level = _local_level(d1, i, 8)
            # A step between two still pictures (slides, screen captures, stills): the frames
            # around it do not change at all, so even a small step is a new picture.
            still = level <= self.still_level
            if not still and (v < self.cut_min or v < self.ratio * max(level, 1.0)):
                continue
            if self._is_flash(frames, i, v):
                continue
            both_dark = sig.y[i] <= self.black and sig.y[i - 1] <= self.black
            if both_dark:
                continue
            floor = max(level, 1.0)
            strong = v >= self.cut_sure and sig.h1[i] >= self.hist_sure and v >= 4 * floor
            isolated = v >= self.spike_min and v >= self.spike_ratio * floor
            if not strong and self._is_overlay(frames, i):
                continue  # a caption or logo popping on or off is not a cut
            if still or strong or isolated:
                sure.append(i)
            else:
                unsure.append(i)
        return sure, unsure

    @staticmethod
    def _is_overlay(frames: np.ndarray, i: int, level: int = 25) -> bool:
        """The change from ``i - 1`` to ``i`` is confined to the top or bottom third.

        Burned-in captions, lower thirds and logos appear in those bands; a new slide or still
        changes the middle of the picture too (measured on the shared set: captions change rows
        21-24 of 27, every slide change spans rows 4-21).
        """
        diff = np.abs(frames[i].astype(np.int16) - frames[i - 1].astype(np.int16)).max(axis=2)
        rows = np.nonzero((diff > level).any(axis=1))[0]
        if rows.size == 0:
            return False
        third = frames.shape[1] / 3
        return bool(rows.max() < third or rows.min() >= 2 * third)

    @staticmethod
    def _is_flash(frames: np.ndarray, i: int, jump: float) -> bool:
        """The picture at ``i - 1`` comes back within 3 frames: a flash, not a cut."""
        before = frames[i - 1].astype(np.int16)
        for k in range(1, 4):
            if i + k >= len(frames):
                break
            back = float(np.abs(frames[i + k].astype(np.int16) - before).mean())
            if back < 0.35 * jump:
                return True
        return False

    def _fades(self, sig: Signals) -> list[int]:
        """First frames of fades to/from black (see module docs)."""
        y = sig.y
        n = len(y)
        dark = (y <= self.black) & (sig.flat <= 2 * self.black)
        events: list[int] = []
        for i, j in true_runs(dark):
            # black run [i, j]; look for a darkening ramp before it and a brightening after it
            out_start = self._ramp_start(y, i, direction=-1)
            in_end = self._ramp_start(y, j, direction=+1)
            has_out = out_start is not None and i - out_start >= self.fade_min_len
            has_in = in_end is not None and in_end - j >= self.fade_min_len and in_end < n - 1
            hold = j - i + 1
            if has_out and has_in and hold < self.black_hold:
                events.append(int(out_start))  # one dip to black
            else:
                if has_out:
                    events.append(int(out_start))
                if has_in and j + 1 < n:
                    events.append(j + 1)
        return events

    def _ramp_start(self, y: np.ndarray, edge: int, direction: int) -> int | None:
        """Walk away from a black run while brightness keeps rising; where the ramp ends.

        ``direction=-1`` walks back in time from the run's first frame (a fade-out's start),
        ``+1`` forward from its last frame (a fade-in's end). ``None`` when there is no ramp.
        """
        n = len(y)
        k = edge
        steps = 0
        while 0 <= k + direction < n:
            nxt = k + direction
            if y[nxt] > y[k] + 0.3 or (y[nxt] > y[k] - 0.3 and y[nxt] <= self.black):
                k = nxt
                steps += 1
                continue
            break
        amplitude = y[k] - y[edge]
        if steps == 0 or amplitude < 3 * self.black:
            return None
        if direction > 0:
            return n - 1 if k >= n - 1 else k  # n - 1: still brightening at the end
        # The first few percent of a fade-out change too slowly to see; start where it shows.
        while k < edge and y[k] > y[edge] + 0.97 * amplitude:
            k += 1
        return k

    def _dissolve_candidates(
        self, frames: np.ndarray, sig: Signals, cuts: list[int], fades: list[int]
    ) -> list[tuple[int, int]]:
        """Regions with long-span change and no cut/fade, where some stretch of frames is a
        linear blend of its two ends (:func:`blend_residual`)."""
        n = len(sig.dk)
        hot = sig.dk >= self.dissolve_min
        taken = np.zeros(n, bool)
        for c in [*cuts, *fades]:
            taken[max(0, c - 10) : min(n, c + 30)] = True
        regions: list[tuple[int, int]] = []
        i = 0
        while i < n:
            if not hot[i] or taken[i]:
                i += 1
                continue
            j = i
            while j + 1 < n and hot[j + 1] and not taken[j + 1]:
                j += 1
            if j - i + 1 >= 4:
                regions.append((max(0, i - 8), min(n - 1, j)))
            i = j + 1
        return [(a, b) for a, b in regions if blend_residual(frames, a, b) <= self.blend_max]

    # ---------------------------------------------------------------------------- model

    def load(self) -> None:
        """Load TransNetV2 now rather than at the first unsure candidate (e.g. before timing)."""
        if self.use_model:
            self._load()

    def _load(self) -> Any:
        if self._model is None:
            from clipsieve.shots.transnet import load_transnet

            self._model = load_transnet()
        return self._model

    def _predict_spans(
        self,
        frames: np.ndarray,
        needs: list[tuple[int, int]],
        unsure: list[int],
        dissolves: list[tuple[int, int]],
    ) -> np.ndarray:
        """TransNetV2 probabilities on the ``[a, b)`` frame ranges in doubt (zero elsewhere):
        the 50 frames around an unsure cut, a dissolve candidate's frames (at least 50).

        A doubtful frame sits in the middle of its range so that it sees about 50 frames of
        context on each side, as in the package's windows: with only 25 (a 54-frame window
        around a cut) weak cuts lost half their probability (0.51 → 0.24) and dev-set F1 fell
        from 0.944 to 0.929. Long runs of doubt (dissolves, fast cutting) are predicted 125
        frames per window instead of 50 (:func:`~clipsieve.shots.transnet.predict_spans`).

        In bfloat16 (``precision``), every model window (``transnet.span_windows``) holding a
        frame whose probability lies within :data:`BF16_MARGIN` of a threshold it is compared
        with is predicted again in float32. bfloat16 moves a probability near a threshold by
        less than a third of that margin, and a window's float32 probabilities are exactly what
        a float32 run computes, so every decision is the one float32 would make, at bfloat16's
        speed for the rest. (Re-predicting the whole merged range instead: 396 frames in
        float32 against 348 on the 13 videos of ``benchmarks/peers.py``, 7.4 against 6.2 CPU-s.)
        """
        from clipsieve.shots.transnet import predict_windows, span_windows, use_bfloat16

        bfloat16 = use_bfloat16(self.precision)
        windows = span_windows(needs, len(frames))
        with torch_threads(self.threads):
            probs = predict_windows(self._load(), frames, windows, bfloat16)
            if not bfloat16:
                return probs
            close = self._close_frames(probs, unsure, dissolves)
            again = [(a, b) for a, b in windows if any(a <= c < b for c in close)]
            if again:
                exact = predict_windows(self._load(), frames, again, bfloat16=False)
                for a, b in again:
                    probs[a:b] = exact[a:b]
        return probs

    def _close_frames(
        self, probs: np.ndarray, unsure: list[int], dissolves: list[tuple[int, int]]
    ) -> list[int]:
        """Frames whose probability lies within :data:`BF16_MARGIN` of a threshold it decides
        against, so that bfloat16's error could change a decision: near either threshold in
        the frames around an unsure cut (their maximum is compared with both); near the
        threshold in a dissolve candidate up to the first frame clearly above it (the first
        frame above it is the cut)."""
        n = len(probs)
        close: list[int] = []
        for c in unsure:
            lo = max(0, c - 2)
            window = probs[lo : min(n, c + 2)]
            near = np.abs(window[:, None] - [self.threshold, self.weak_threshold]).min(axis=1)
            close += (lo + np.flatnonzero(near < BF16_MARGIN)).tolist()
        for a, b in dissolves:
            seg = probs[a : b + 1]
            above = np.flatnonzero(seg >= self.threshold + BF16_MARGIN)
            upto = seg[: above[0] + 1] if above.size else seg  # the frames that decide the cut
            close += (a + np.flatnonzero(np.abs(upto - self.threshold) < BF16_MARGIN)).tolist()
        return close

    # ---------------------------------------------------------------------------- merge

    @staticmethod
    def _merge(events: list[int], n: int) -> list[int]:
        """One cut per boundary: events closer than 3 frames collapse to the earliest."""
        out: list[int] = []
        for e in sorted(events):
            if not 0 < e < n:
                continue
            if out and e - out[-1] < 3:
                continue
            out.append(e)
        return out
