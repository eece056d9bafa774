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


def phash_distance(
    hashes_a: Sequence[int], hashes_b: Sequence[int], rotations: bool = False
) -> float | None:
    """Mean Hamming distance (0-64 bits) between two clips' frame hashes, frame by frame.

    Frames are paired by position in the clip: with equal counts the i-th with the i-th; when a
    short clip yielded fewer frames, each frame of the shorter list is paired with the frame of
    the longer list at the same relative position (centre of its share). Pairs where either frame
    is flat (:func:`is_informative`) are skipped; ``None`` when no pair is left (two blank clips
    are not evidence of a duplicate). 0 means identical, <= ~8 a near duplicate, ~32 unrelated.
    With ``rotations`` it is the smallest distance over the four quarter turns of ``hashes_b``
    (:func:`rotate_hashes`), so a copy stored with another display rotation still matches.
    """
    if not hashes_a or not hashes_b:
        raise ValueError("phash_distance needs at least one hash on each side")
    short, long_ = sorted((list(hashes_a), list(hashes_b)), key=len)
    picks = [int((i + 0.5) * len(long_) / len(short)) for i in range(len(short))]
    pairs = [(s, long_[j]) for s, j in zip(short, picks, strict=True)]
    pairs = [(a, b) for a, b in pairs if is_informative(a) and is_informative(b)]
    if not pairs:
        return None
    firsts = np.array([to_unsigned(a) for a, _ in pairs], np.uint64)
    seconds = np.array([to_unsigned(b) for _, b in pairs], np.uint64)
    best = 64.0
    for turns in (0, 1, 2, 3) if rotations else (0,):
        turned = rotate_hashes(seconds, turns)
        best = min(best, float(np.mean(np.bitwise_count(firsts ^ turned))))
    return best


_U = np.arange(8)[:, None]
_V = np.arange(8)[None, :]
# For a quarter turn k of the image, which DCT coefficients change sign (see rotate_hashes).
_ROT_FLIP = {1: _U % 2 == 1, 2: (_U + _V) % 2 == 1, 3: _V % 2 == 1}


def rotate_hashes(hashes: np.ndarray, turns: int) -> np.ndarray:
    """The pHashes the same frames would have if turned by ``turns`` quarter turns (approx.).

    pHash bits are the signs of the 8x8 low-frequency DCT coefficients C(u, v) against their
    median. Turning the image permutes and negates coefficients: a quarter turn maps C(u, v) to
    (-1)^u C(v, u), a half turn to (-1)^(u+v) C(u, v), three quarters to (-1)^v C(v, u). With the
    median near zero a negated coefficient flips its bit, so the turned hash is the transposed
    bit matrix with those bits inverted. Measured on real film frames: within ~3 of 64 bits of
    hashing the really turned frame (unrelated frames differ by ~32).
    """
    if turns % 4 == 0:
        return hashes
    k = turns % 4
    x = np.asarray(hashes, dtype=np.uint64)
    if k in (1, 3):
        x = _transpose8x8(x)
    return x ^ _FLIP_MASKS[k]


def _pack_bits(matrix: np.ndarray) -> np.uint64:
    """An 8x8 0/1 matrix as the uint64 whose most significant bit is ``matrix[0, 0]``."""
    value = 0
    for bit in np.broadcast_to(matrix, (8, 8)).reshape(64).astype(int).tolist():
        value = (value << 1) | bit
    return np.uint64(value)


_FLIP_MASKS = {k: _pack_bits(flip) for k, flip in _ROT_FLIP.items()}


def _transpose8x8(x: np.ndarray) -> np.ndarray:
    """Transpose the 8x8 bit matrix held in each uint64 (row = byte, most significant first):
    the three swap steps of Hacker's Delight's ``transpose8``, on whole arrays and without
    unpacking a bit."""
    steps = ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0))
    for shift, mask in steps:
        s, m = np.uint64(shift), np.uint64(mask)
        t = (x ^ (x >> s)) & m
        x = x ^ t ^ (t << s)
    return x


@dataclass
class PHashScorer(Scorer):
    """``phash``: list of ``count`` 64-bit perceptual hashes (signed int64 form), one per frame.

    Frames are placed uniformly over the clip and decoded small and grey (phash works on a 32x32
    grey thumbnail anyway, so ``short_side`` 128 loses nothing and keeps decoding cheap).
    """

    name: ClassVar[str] = "phash"
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
