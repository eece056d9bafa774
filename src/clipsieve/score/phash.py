"""Perceptual hashes of a few frames per clip, for near-duplicate detection later.

``imagehash.phash`` (DCT of a 32x32 grey thumbnail, 64 bits: the sign of the 8x8 low-frequency
coefficients against their median) survives re-encoding, rescaling and small colour shifts, so two
clips cut from re-uploads of the same video hash within a few bits of each other while unrelated
footage differs in about half of the 64 bits (~32).

Storage: Arrow infers Python ints as int64, and a 64-bit hash is >= 2**63 half of the time, so
the hashes are stored as *signed* 64-bit integers (two's complement of the unsigned hash, see
:func:`to_signed`). Hamming distance is the same for either representation; :func:`hamming`
accepts both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import imagehash
import numpy as np
from PIL import Image

from clipsieve.score.base import Frames, FrameSpec, Scorer

_MASK64 = (1 << 64) - 1

MIN_INFORMATIVE_BITS = 24
"""A frame hash with fewer set bits than this comes from a (nearly) flat frame.

pHash sets a bit where a low-frequency DCT coefficient exceeds the median of the 64, so any frame
with texture has about 32 set bits. A flat frame (black, a fade, a blank title card) has all-zero
AC coefficients and hashes to almost no set bits, so every black frame of every video would
"match" every other; such frames are left out of comparisons.
"""


def to_signed(value: int) -> int:
    """The unsigned 64-bit ``value`` as a signed int64 (two's complement), for Arrow/Parquet."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    """Back from :func:`to_signed` to the hash as an integer in [0, 2**64)."""
    return value & _MASK64


def phash_int(image: np.ndarray) -> int:
    """64-bit perceptual hash of a uint8 RGB or grey image, as an unsigned int (row-major bits)."""
    bits = imagehash.phash(Image.fromarray(np.ascontiguousarray(image))).hash.ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned form)."""
    return ((a ^ b) & _MASK64).bit_count()


def is_informative(value: int) -> bool:
    """Whether a frame hash carries texture (see :data:`MIN_INFORMATIVE_BITS`)."""
    return (value & _MASK64).bit_count() >= MIN_INFORMATIVE_BITS


def phash_distance(hashes_a: Sequence[int], hashes_b: Sequence[int]) -> float | None:
    """Mean Hamming distance (0-64 bits) between two clips' frame hashes, frame by frame.

    Frames are paired by position in the clip: with equal counts the i-th with the i-th; when a
    short clip yielded fewer frames, each frame of the shorter list is paired with the frame of
    the longer list at the same relative position (centre of its share). Pairs where either frame
    is flat (:func:`is_informative`) are skipped; ``None`` when no pair is left (two blank clips
    are not evidence of a duplicate). 0 means identical, <= ~8 a near duplicate, ~32 unrelated.
    """
    if not hashes_a or not hashes_b:
        raise ValueError("phash_distance needs at least one hash on each side")
    short, long_ = sorted((list(hashes_a), list(hashes_b)), key=len)
    picks = [int((i + 0.5) * len(long_) / len(short)) for i in range(len(short))]
    pairs = [(s, long_[j]) for s, j in zip(short, picks, strict=True)]
    bits = [hamming(a, b) for a, b in pairs if is_informative(a) and is_informative(b)]
    return float(np.mean(bits)) if bits else None


@dataclass
class PHashScorer(Scorer):
    """``phash``: list of ``count`` 64-bit perceptual hashes (signed int64 form), one per frame.

    Frames are placed uniformly over the clip and decoded small and grey (phash works on a 32x32
    grey thumbnail anyway, so ``short_side`` 128 loses nothing and keeps decoding cheap).
    """

    name: ClassVar[str] = "phash"
    version: ClassVar[str] = "1"
    columns: ClassVar[tuple[str, ...]] = ("phash",)

    count: int = 4
    short_side: int = 128

    def frame_spec(self) -> FrameSpec:
        return FrameSpec(
            count=self.count, positions="uniform", short_side=self.short_side, color="gray"
        )

    def score(self, frames: Frames) -> dict[str, Any]:
        if len(frames.images) == 0:
            return {"phash": None}
        return {"phash": [to_signed(phash_int(img)) for img in frames.images]}
