"""pHash near-duplicates among millions of clips: banded LSH, then the exact distance.

All-pairs comparison of n clips costs n²; even inside KMeans partitions of 20,000 it took
minutes at 200,000 clips. Here each clip's per-frame 64-bit hashes are cut into *bands*: a band
is a fixed random subset of ``bits`` bit positions of the hash at one frame position. Two clips
whose hashes at that position agree on every bit of the band land in the same bucket and become
a candidate pair; every candidate is then checked with the same mean informative Hamming
distance (and quarter turns) as the all-pairs path, so LSH can miss a pair but never invents one.

Why it finds near-duplicates: two hashes ``d`` bits apart agree on a random ``bits``-bit band
with probability about ``(1 - d/64) ** bits``; with ``bands`` bands per frame position and F
positions, a pair is missed with probability about ``(1 - (1 - d/64) ** bits) ** (bands * F)``.
With the defaults (24 bits at up to 16M clips, 16 bands, 4 positions) that is under 0.2 % for
pairs 6 bits apart per frame, about 7 % at 8 bits and a third at 10 bits (the default
threshold). Re-encodes and rescales of the same footage sit at 0-6 bits (benchmarks/dedup.py).
Unrelated hashes (32 bits apart) share a bucket with probability ``2 ** -bits``; ``bits`` grows
with the number of clips so random candidates stay a few per clip.

Quarter turns: the upright hashes are indexed, and each clip is looked up with its hashes
turned (:func:`~clipsieve.score.phash.rotate_hashes`), as the all-pairs path compares them; a
turn is a bit permutation plus an XOR, so a turned key is made from the upright hash directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from clipsieve.score.phash import rotate_hashes

DEFAULT_BANDS = 16  # per frame position
VERIFY_BLOCK = 1 << 18  # candidate pairs checked at once (their rows are turned: 256 B each)
KEY_CHUNK = 1 << 20  # rows whose band keys are made (and run ends found) at once


def band_bits(n: int) -> int:
    """Bits per band for ``n`` clips: random pairs per bucket stay near one in 16."""
    return int(min(32, max(16, math.ceil(math.log2(max(n, 2))) + 4)))


def _byte_tables(subset: np.ndarray) -> np.ndarray:
    """``(8, 256)`` uint32 tables: table[j][v] is byte ``j``'s share of the band key when that
    byte (most significant first) of the hash is ``v``. A key is then 8 table look-ups."""
    tables = np.zeros((8, 256), np.uint32)
    values = np.arange(256)
    for out_bit, position in enumerate(subset.tolist()):
        byte, bit = divmod(position, 8)
        tables[byte] |= (((values >> (7 - bit)) & 1) << out_bit).astype(np.uint32)
    return tables


def _keys(hash_bytes: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Band keys of hashes given as ``(n, 8)`` big-endian bytes."""
    keys = tables[0][hash_bytes[:, 0]]
    for byte in range(1, 8):
        keys |= tables[byte][hash_bytes[:, byte]]
    return keys


def _run_pairs(packed: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs ``(smaller, larger)`` sharing a key, at least one side upright.

    ``packed`` holds ``key << 32 | index`` words: the upright keys of the ``usable`` rows, then
    each quarter turn's; entry ``index`` belongs to row ``usable[index % m]`` and is upright
    when ``index < m``. It is sorted in place (numpy's plain sort of the words is far faster
    than ``argsort`` of the keys); a key equal to a neighbour marks a run, found a chunk at a
    time, and only those few runs are expanded, all pairs of a run at once.
    """
    packed.sort()
    total = len(packed)
    multi = np.zeros(total, bool)
    for start in range(0, total - 1, KEY_CHUNK):
        stop = min(total - 1, start + KEY_CHUNK)
        high = packed[start : stop + 1] >> np.uint64(32)
        same = high[1:] == high[:-1]
        multi[start:stop] |= same
        multi[start + 1 : stop + 1] |= same
    if not multi.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    chosen = packed[multi]
    del multi
    members = (chosen & np.uint64(0xFFFFFFFF)).astype(np.int64)
    run_key = chosen >> np.uint64(32)
    del chosen
    starts = np.flatnonzero(np.r_[True, run_key[1:] != run_key[:-1]])
    del run_key
    lengths = np.diff(np.r_[starts, len(members)])
    m = len(usable)
    # a run sorts its upright entries first (smaller index): one without any proposes nothing
    useful = members[starts] < m
    starts, lengths = starts[useful], lengths[useful]
    # most runs are two entries (random keys meeting): their one pair without expansion;
    # longer runs expand to all position pairs ``i < j`` (their first entry has the smaller index)
    two = lengths == 2
    left, right = [starts[two]], [starts[two] + 1]
    long_starts, long_lengths = starts[~two], lengths[~two]
    if len(long_starts):
        cells = long_lengths * long_lengths
        run = np.repeat(np.arange(len(long_starts)), cells)
        cell = np.arange(cells.sum()) - np.repeat(np.cumsum(cells) - cells, cells)
        i, j = cell // long_lengths[run], cell % long_lengths[run]
        upper = i < j
        left.append(long_starts[run[upper]] + i[upper])
        right.append(long_starts[run[upper]] + j[upper])
    a, b = members[np.concatenate(left)], members[np.concatenate(right)]
    del members
    owner_a, owner_b = usable[a % m], usable[b % m]
    keep = (a < m) & (owner_a != owner_b)  # at least one side upright, two different clips
    a, b = owner_a[keep], owner_b[keep]
    return np.minimum(a, b), np.maximum(a, b)


def _pack_keys(
    packed: np.ndarray, hash_bytes: np.ndarray, turn_tables: list[tuple[np.ndarray, np.uint32]]
) -> np.ndarray:
    """Fill ``packed`` with every turn's ``key << 32 | index`` words, a chunk of rows at a time
    (no whole-column temporaries: at 10M clips a band's words are 320 MB, the rest is small).
    ``turn_tables``: per turn, the byte tables and the constant its keys are XORed with."""
    m = len(hash_bytes)
    for turn, (tables, flip) in enumerate(turn_tables):
        for start in range(0, m, KEY_CHUNK):
            stop = min(m, start + KEY_CHUNK)
            keys = _keys(hash_bytes[start:stop], tables)
            if flip:
                keys ^= flip
            words = keys.astype(np.uint64)
            words <<= np.uint64(32)
            words |= np.arange(turn * m + start, turn * m + stop, dtype=np.uint64)
            packed[turn * m + start : turn * m + stop] = words
    return packed


def _turn_sources() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per quarter turn: ``(source, flip)``. Bit ``q`` (most significant first) of a turned hash
    is bit ``source[q]`` of the upright hash, inverted where ``flip[q]``: turning is a fixed
    permutation of the 64 bits and an XOR (:func:`rotate_hashes`), so a turned hash's band key
    is the upright hash's key over permuted bits, XOR a constant. No turned copy of the hashes
    is needed (at 10M clips those were 240 MB per frame position)."""
    singles = np.uint64(1) << (np.uint64(63) - np.arange(64, dtype=np.uint64))
    out = {}
    for k in range(4):
        zero = rotate_hashes(np.zeros(1, np.uint64), k)[0]
        moved = rotate_hashes(singles, k) ^ zero
        target = 63 - np.log2(moved.astype(np.float64)).round().astype(np.int64)
        source = np.empty(64, np.int64)
        source[target] = np.arange(64)
        flip = ((int(zero) >> (63 - np.arange(64))) & 1).astype(bool)
        out[k] = (source, flip)
    return out


_TURNS = _turn_sources()


def _turn_tables(subset: np.ndarray, turns: tuple[int, ...]) -> list[tuple[np.ndarray, np.uint32]]:
    """Byte tables and XOR constants of one band (``subset`` of bit positions) for each turn."""
    out = []
    for k in turns:
        source, flip = _TURNS[k]
        constant = sum(1 << j for j, position in enumerate(subset.tolist()) if flip[position])
        out.append((_byte_tables(source[subset]), np.uint32(constant)))
    return out


def candidate_pairs(
    hashes: np.ndarray,
    mask: np.ndarray,
    rotations: bool = True,
    bands: int = DEFAULT_BANDS,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Unique candidate pairs ``(i, j)``, ``i < j``, as ``(m, 2)`` int64 arrays, one per band
    (so a caller can verify and drop them before the next band: a band of 10M clips proposes
    about 1.5M random pairs).

    ``hashes``/``mask``: ``(n, F)`` resampled frame hashes and their informative mask (as
    :func:`clipsieve.select.dedup.hash_matrix` gives them).
    """
    n, frames = hashes.shape
    rng = np.random.default_rng(seed)
    bits = band_bits(n)
    turns = (0, 1, 2, 3) if rotations else (0,)
    for position in range(frames):
        usable = np.flatnonzero(mask[:, position])
        if len(usable) < 2:
            continue
        column = hashes[usable, position].astype(">u8").view(np.uint8).reshape(-1, 8)
        packed = np.empty(len(usable) * len(turns), np.uint64)
        for _ in range(bands):
            subset = np.sort(rng.choice(64, bits, replace=False))
            a, b = _run_pairs(_pack_keys(packed, column, _turn_tables(subset, turns)), usable)
            codes = _unique(a * n + b)
            del a, b
            yield np.stack([codes // n, codes % n], axis=1)
        del packed, column


def _unique(codes: np.ndarray) -> np.ndarray:
    codes = np.sort(codes)
    return codes[np.r_[True, codes[1:] != codes[:-1]]] if len(codes) else codes


def verify_pairs(
    hashes: np.ndarray,
    mask: np.ndarray,
    pairs: np.ndarray,
    threshold: float,
    rotations: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs within threshold, their distances)``: the mean informative Hamming distance,
    smallest over the second clip's quarter turns (the all-pairs rule, pair by pair). Only the
    rows of a block of pairs are turned, never the whole hash matrix."""
    turns = (0, 1, 2, 3) if rotations else (0,)
    kept: list[np.ndarray] = []
    distances: list[np.ndarray] = []
    for start in range(0, len(pairs), VERIFY_BLOCK):
        block = pairs[start : start + VERIFY_BLOCK]
        a, b = block[:, 0], block[:, 1]
        both = mask[a] & mask[b]
        count = both.sum(axis=1)
        left, right = hashes[a], hashes[b]
        best = np.full(len(block), np.inf)
        for k in turns:
            differing = np.bitwise_count(left ^ rotate_hashes(right, k)).astype(np.float64)
            total = np.where(both, differing, 0.0).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = np.where(count > 0, total / np.maximum(count, 1), np.inf)
            best = np.minimum(best, mean)
        hit = best <= threshold
        kept.append(block[hit])
        distances.append(best[hit])
    if not kept:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    return np.concatenate(kept), np.concatenate(distances)


def phash_pairs_lsh(
    hashes: np.ndarray,
    mask: np.ndarray,
    threshold: float,
    rotations: bool = True,
    bands: int = DEFAULT_BANDS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, within ``threshold`` found through the bands, with their
    distances (see the module docstring for what can be missed). Candidates are verified a
    band at a time: memory holds one band's candidates and the pairs found."""
    n = len(hashes)
    kept: dict[int, float] = {}
    for candidates in candidate_pairs(hashes, mask, rotations, bands, seed):
        pairs, distances = verify_pairs(hashes, mask, candidates, threshold, rotations)
        codes = (pairs[:, 0] * n + pairs[:, 1]).tolist()
        kept.update(zip(codes, distances.tolist(), strict=True))
    codes = np.array(sorted(kept), np.int64)
    pairs = np.stack([codes // n, codes % n], axis=1) if len(codes) else np.zeros((0, 2), np.int64)
    return pairs, np.array([kept[c] for c in codes.tolist()], np.float64)
