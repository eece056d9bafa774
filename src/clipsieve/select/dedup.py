"""Duplicate clips: exact copies, perceptual near-duplicates and semantic near-duplicates.

Three detectors link pairs of clips; linked clips form groups (union-find), and each group keeps
its best member by a configurable ranking while the others get ``keep=false`` and
``drop_reason='duplicate'``. Columns: ``dup_group`` (int, null for clips without a duplicate),
``dup_of`` (the kept copy's ``clip_id``, null for the kept copy), ``dup_method`` (which detectors
linked the group, e.g. ``"exact+phash"``).

* **exact**: SHA-256 of the cut clip file; a row that was never cut hashes its source file plus
  its frame span, so two rows naming the same span of the same bytes match.
* **phash**: mean Hamming distance (0-64 bits) of the clips' per-frame pHashes, frames paired by
  relative position (as :func:`clipsieve.score.phash.phash_distance`). *Degenerate frames are
  ignored*: pHash sets a bit where a DCT coefficient exceeds the median of the 64 low-frequency
  coefficients, so a textured frame has exactly 32 set bits, while a flat frame (black, a fade,
  a blank title card) has all-zero AC coefficients and hashes to nearly no set bits — every black
  frame of every video would "match". A frame hash with fewer than :data:`MIN_INFORMATIVE_BITS`
  set bits is left out of the comparison; two clips with no informative frame pair are not
  compared at all. By default the distance is the smallest over the four quarter turns of one
  side (:func:`rotate_hashes`), so a copy stored with another display rotation still matches.
* **semantic**: cosine similarity of the ``embedding`` vectors (unit length) at or above a
  threshold, SemDeDup-style.

Scaling: all-pairs comparison is quadratic, so when there are more than ``partition_size``
candidate rows they are first split by KMeans (on the embeddings; for pHash on the hash bits,
whose squared Euclidean distance *is* the Hamming distance) and pairs are compared only inside
a partition, block by block, so memory stays bounded. As in SemDeDup this can miss a pair that
straddles two partitions; near-duplicates are close, so they rarely do.

Like ``filter``, ``dedup`` clears its own earlier ``duplicate`` marks first and only considers
rows that are still kept; run it after ``filter`` so the kept copy is one that passed.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clipsieve.errors import UserError
from clipsieve.runfolder import VIDEOS_FILE
from clipsieve.score.phash import MIN_INFORMATIVE_BITS, rotate_hashes
from clipsieve.select.columns import missing_column_message
from clipsieve.select.marks import eligible_mask, released_marks, set_column
from clipsieve.steps.base import StepContext
from clipsieve.steps.narrow import NarrowTableStep
from clipsieve.vectors import vectors_for_rows, vectors_to_numpy

DUPLICATE_REASON = "duplicate"
METHODS = ("exact", "phash", "semantic")
STEP_NAME = "dedup"
STEP_VERSION = "1"
_BLOCK = 512


AUTO_RANKING = (
    "quality_prob",  # a classifier trained on the user's own labels knows best
    "source_bitrate",  # bits per second of the source: a starved re-encode has few
    "sharpness",
    "aes",
    "resolution",
    "duration_s",
)
SOURCE_BITRATE = "source_bitrate"  # from videos.parquet by video_id (not a table column)


class DedupError(UserError):
    """Bad dedup settings or a table the requested detector cannot use."""


@dataclass
class DedupParams:
    """Dedup settings (all recorded in provenance).

    ``methods`` empty means every detector whose column exists (exact always).
    ``keep_best`` ranks a group's members: column names, best = highest; prefix ``-`` for
    lowest-is-best; nulls rank last; ``clip_id`` breaks ties. ``("auto",)``: by quality, the
    columns of :data:`AUTO_RANKING` the table has (a re-encoded, starved copy loses to the
    original even at the same resolution and length).
    """

    methods: tuple[str, ...] = ()
    phash_threshold: float = 10.0
    phash_rotations: bool = True
    cosine_threshold: float = 0.98
    keep_best: tuple[str, ...] = ("auto",)
    partition_size: int = 20000
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise DedupError(f"unknown dedup method '{unknown[0]}' (known: {', '.join(METHODS)})")
        if not 0 <= self.phash_threshold <= 64:
            raise DedupError(f"--phash-threshold must be 0-64 bits, got {self.phash_threshold}")
        if not -1 <= self.cosine_threshold <= 1:
            raise DedupError(f"--cosine must be between -1 and 1, got {self.cosine_threshold}")
        if self.partition_size < 2:
            raise DedupError(f"partition size must be at least 2, got {self.partition_size}")


@dataclass
class DedupResult:
    table: pa.Table
    summary: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- helpers


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def exact_keys(clips: pa.Table, rows: Sequence[int]) -> dict[int, str]:
    """Content key per row: hash of the clip file, else of the source file plus the span.

    Only ``rows`` are read (a block of a big table costs that block, not the table).
    """
    if not len(rows):
        return {}
    present = [c for c in EXACT_COLUMNS if c in clips.column_names]
    if not present:
        return {}
    part = clips.select(present).take(pa.array(list(rows), pa.int64())).to_pylist()
    source_digest: dict[str, str] = {}
    keys: dict[int, str] = {}
    for i, row in zip(rows, part, strict=True):
        path = row.get("path")
        if path and os.path.isfile(path):
            keys[i] = "clip:" + file_digest(path)
            continue
        source, start, end = row.get("source_path"), row.get("start_frame"), row.get("end_frame")
        spans = "start_frame" in present and "end_frame" in present
        if source and spans and start is not None and os.path.isfile(source):
            if source not in source_digest:
                source_digest[source] = file_digest(source)
            keys[i] = f"span:{source_digest[source]}:{start}:{end}"
    return keys


EXACT_COLUMNS = ("path", "source_path", "start_frame", "end_frame")
ExactBlocks = Callable[[], Iterable[tuple[int, pa.Table]]]


def table_blocks(clips: pa.Table, block: int = 65_536) -> ExactBlocks:
    """``(offset, slice)`` blocks of an in-memory table (what :func:`exact_pairs` reads)."""
    return lambda: ((start, clips.slice(start, block)) for start in range(0, clips.num_rows, block))


def exact_pairs(blocks: ExactBlocks, eligible: np.ndarray) -> np.ndarray:
    """``(first row, later row)`` links of eligible rows with the same content key (a star per
    key).

    ``blocks`` yields ``(offset, table)`` with the :data:`EXACT_COLUMNS` (a step streams them
    from the file, so the paths are never all in memory); keys are kept as 16-byte digests in
    numpy and grouped by sorting: 24 bytes per candidate, not a Python string each.
    """
    positions: list[np.ndarray] = []
    digests: list[np.ndarray] = []
    for offset, part in blocks():
        local = np.flatnonzero(eligible[offset : offset + part.num_rows])
        keys = exact_keys(part, local.tolist())
        if keys:
            positions.append(offset + np.fromiter(keys, np.int64, len(keys)))
            digests.append(
                np.array([hashlib.sha256(k.encode()).digest()[:16] for k in keys.values()], "S16")
            )
    if not positions:
        return np.zeros((0, 2), np.int64)
    where, digest = np.concatenate(positions), np.concatenate(digests)
    order = np.lexsort((where, digest))
    where, digest = where[order], digest[order]
    new_key = np.ones(len(digest), bool)
    new_key[1:] = digest[1:] != digest[:-1]
    first = where[np.flatnonzero(new_key)][np.cumsum(new_key) - 1]
    later = ~new_key
    return np.stack([first[later], where[later]], axis=1)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def hash_matrix(
    values: Sequence[Sequence[int] | None], frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """(hashes (n, frames) uint64, informative mask (n, frames)) from per-row pHash lists.

    Each row's hashes are resampled to ``frames`` positions by relative position (the rule of
    :func:`clipsieve.score.phash.phash_distance`); degenerate (flat-frame) hashes are masked.
    """
    n = len(values)
    hashes = np.zeros((n, frames), dtype=np.uint64)
    mask = np.zeros((n, frames), dtype=bool)
    for r, row in enumerate(values):
        if not row:
            continue
        arr = np.array([int(v) & 0xFFFFFFFFFFFFFFFF for v in row], dtype=np.uint64)
        picks = [int((i + 0.5) * len(arr) / frames) for i in range(frames)]
        hashes[r] = arr[picks]
    mask = _popcount(hashes) >= MIN_INFORMATIVE_BITS
    return hashes, mask


def _list_lengths(chunk: pa.Array) -> np.ndarray:
    return np.asarray(
        pc.fill_null(pc.list_value_length(chunk), 0).to_numpy(zero_copy_only=False), np.int64
    )


def hash_matrix_chunks(
    chunks: Callable[[], Iterable[pa.Array]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows with hashes, hashes (m, frames) uint64, informative mask) from ``phash`` list
    chunks in table order: the :func:`hash_matrix` rule without a Python int per hash.

    ``chunks`` is called twice: once for the longest list and the rows that have one, then to
    fill the matrix in place, so only one chunk of lists is held (at 10M clips the lists are
    360 MB and the matrix 320 MB; holding both, and a combined copy, was the peak)."""
    frames, count, n = 0, 0, 0
    for chunk in chunks():
        lengths = _list_lengths(chunk)
        if len(lengths):
            frames = max(frames, int(lengths.max()))
        count += int((lengths > 0).sum())
        n += len(lengths)
    if count == 0:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.uint64), np.zeros((0, 0), bool)
    rows = np.empty(count, np.int64)
    hashes = np.empty((count, frames), np.uint64)
    offset, filled = 0, 0
    for chunk in chunks():
        size = len(chunk)
        lengths = _list_lengths(chunk)
        have = lengths > 0
        local = np.flatnonzero(have)
        if len(local):
            if len(local) < len(chunk):
                chunk, lengths = chunk.filter(pa.array(have)), lengths[have]
            values = chunk.flatten().cast(pa.int64()).to_numpy(zero_copy_only=False)
            flat = np.asarray(values).view(np.uint64)
            if (lengths == frames).all():  # as many hashes as positions: no per-row picks
                block = flat.reshape(-1, frames)
            else:
                starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
                per_row = (np.arange(frames)[None, :] + 0.5) * lengths[:, None] / frames
                block = flat[starts[:, None] + per_row.astype(np.int64)]
            hashes[filled : filled + len(local)] = block
            rows[filled : filled + len(local)] = offset + local
            filled += len(local)
        offset += size
    return rows, hashes, _popcount(hashes) >= MIN_INFORMATIVE_BITS


def hash_matrix_arrow(
    column: pa.Array | pa.ChunkedArray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`hash_matrix_chunks` of ``rows`` of an in-memory ``phash`` column; the returned
    rows index ``column``."""
    if len(rows) == len(column):
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        return hash_matrix_chunks(lambda: chunks)
    chosen = column.take(pa.array(rows, pa.int64()))
    found, hashes, mask = hash_matrix_chunks(
        lambda: chosen.chunks if isinstance(chosen, pa.ChunkedArray) else [chosen]
    )
    return rows[found], hashes, mask


@dataclass(frozen=True)
class _Planes:
    """Hashes as 0/1 float planes for Hamming distances by matrix products.

    ``bits``: (n, frames*64) hash bits, zeroed on uninformative frames; ``care``: (n, frames*64)
    1 where the frame is informative; ``frames``: (n, frames) the informative mask as 0/1.
    """

    bits: np.ndarray
    care: np.ndarray
    frames: np.ndarray


def _planes(hashes: np.ndarray, mask: np.ndarray) -> _Planes:
    raw = hashes.astype(">u8").view(np.uint8).reshape(*hashes.shape, 8)
    bits = np.unpackbits(raw, axis=-1).astype(np.float32)  # (n, frames, 64)
    care = np.broadcast_to(mask[..., None], bits.shape).astype(np.float32)
    n = len(hashes)
    return _Planes((bits * care).reshape(n, -1), care.reshape(n, -1), mask.astype(np.float32))


def _plane_distances(a: _Planes, b: _Planes) -> np.ndarray:
    """Mean informative Hamming distance, every row of ``a`` against every row of ``b``.

    Over the frames informative on both sides, the differing bits are
    ``a.bits . (b.care - b.bits) + (a.care - a.bits) . b.bits`` (1-then-0 plus 0-then-1), two
    matrix products that BLAS runs far faster than XOR/popcount over a (rows, rows, frames)
    array. The counts are small integers, exact in float32.
    """
    differing = a.bits @ (b.care - b.bits).T + (a.care - a.bits) @ b.bits.T
    count = a.frames @ b.frames.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, differing / np.maximum(count, 1), np.inf)


def phash_distances(
    a: np.ndarray, a_mask: np.ndarray, b: np.ndarray, b_mask: np.ndarray
) -> np.ndarray:
    """Mean Hamming distance between every row of ``a`` and of ``b`` over informative frames.

    Returns (len(a), len(b)) float; ``inf`` where no frame position is informative on both.
    """
    return _plane_distances(_planes(a, a_mask), _planes(b, b_mask))


PARTITION_FIT_ROWS = 50_000  # KMeans for partitioning is fitted on a seeded sample this big
PREDICT_BLOCK = 65_536


def partitions(vectors: np.ndarray, size: int, seed: int) -> list[np.ndarray]:
    """Row-index groups of at most about ``size`` rows (KMeans when there are more rows).

    The KMeans is fitted on a seeded sample of at most :data:`PARTITION_FIT_ROWS` rows and
    assigns the rest block by block in float32, so a million float16 vectors are never copied
    whole into float64.
    """
    n = len(vectors)
    if n <= size:
        return [np.arange(n)]
    from sklearn.cluster import MiniBatchKMeans

    k = math.ceil(n / size)
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3)
    if n <= PARTITION_FIT_ROWS:
        labels = model.fit_predict(np.asarray(vectors, np.float32))
    else:
        rng = np.random.default_rng(seed)
        fit_rows = np.sort(rng.choice(n, PARTITION_FIT_ROWS, replace=False))
        model.fit(np.asarray(vectors[fit_rows], np.float32))
        labels = np.concatenate(
            [
                model.predict(np.asarray(vectors[start : start + PREDICT_BLOCK], np.float32))
                for start in range(0, n, PREDICT_BLOCK)
            ]
        )
    return [np.flatnonzero(labels == c) for c in range(k) if np.any(labels == c)]


def _blocks(n: int, block: int = _BLOCK) -> Iterator[tuple[int, int]]:
    for start in range(0, n, block):
        yield start, min(n, start + block)


def phash_pairs(
    hashes: np.ndarray,
    mask: np.ndarray,
    threshold: float,
    size: int,
    seed: int,
    rotations: bool = True,
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, distance), i < j, with mean informative Hamming distance <= ``threshold``.

    With ``rotations`` the distance is the smallest over the four quarter turns of the second
    clip's hashes (:func:`rotate_hashes`), so a copy stored with a different display rotation
    (portrait re-upload of a landscape video) still matches.
    """
    usable = np.flatnonzero(mask.any(axis=1))
    if len(usable) < 2:
        return []
    bits = np.unpackbits(hashes[usable].view(np.uint8), axis=1).astype(np.float32)
    turns = (0, 1, 2, 3) if rotations else (0,)
    out: list[tuple[int, int, float]] = []
    for part in partitions(bits, size, seed):
        idx = usable[part]
        h, m = hashes[idx], mask[idx]
        upright = _planes(h, m)
        turned = [upright] + [_planes(rotate_hashes(h, k), m) for k in turns[1:]]
        for s0, s1 in _blocks(len(idx)):
            rows = _Planes(upright.bits[s0:s1], upright.care[s0:s1], upright.frames[s0:s1])
            d = np.min(
                [
                    _plane_distances(rows, _Planes(t.bits[s0:], t.care[s0:], t.frames[s0:]))
                    for t in turned
                ],
                axis=0,
            )
            for a, b in zip(*np.nonzero(d <= threshold), strict=True):
                i, j = s0 + int(a), s0 + int(b)
                if i < j:
                    out.append((int(idx[i]), int(idx[j]), float(d[a, b])))
    return out


def semantic_pairs(
    vectors: np.ndarray, threshold: float, size: int, seed: int
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine), i < j, with cosine similarity >= ``threshold`` (rows unit length)."""
    if len(vectors) < 2:
        return []
    out: list[tuple[int, int, float]] = []
    for part in partitions(vectors, size, seed):
        v = np.asarray(vectors[part], np.float32)  # float16 storage, float32 products
        for s0, s1 in _blocks(len(part)):
            sims = v[s0:s1] @ v[s0:].T
            for a, b in zip(*np.nonzero(sims >= threshold), strict=True):
                i, j = s0 + int(a), s0 + int(b)
                if i < j:
                    out.append((int(part[i]), int(part[j]), float(sims[a, b])))
    return out


Ranked = list[tuple[list[int], str | None]]  # a group best first, and why the best won


def ranking_columns(keep_best: Sequence[str], have: Sequence[str]) -> list[str]:
    """The ranking specs in effect: ``auto`` → the :data:`AUTO_RANKING` columns in ``have``."""
    if tuple(keep_best) == ("auto",):
        return [c for c in AUTO_RANKING if c in have]
    return list(keep_best)


def _rank_key(
    clips: pa.Table, keep_best: Sequence[str]
) -> Callable[[Sequence[Sequence[int]]], Ranked]:
    """Check the ranking columns now (one line for a missing or non-numeric one); return
    ``ranker(groups)``, which orders each group's rows for choosing its kept copy: the columns
    (highest first, ``-col`` lowest first, missing last), then ``clip_id``, and says which
    column decided. Only the members of real groups are ever converted."""
    specs = []
    for spec in ranking_columns(keep_best, clips.column_names):
        name, lowest = (spec[1:], True) if spec.startswith("-") else (spec, False)
        if name not in clips.column_names:
            raise DedupError(missing_column_message(name, clips.column_names) + " (--keep-best)")
        column = clips.column(name)
        numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        if not (numeric or pa.types.is_boolean(column.type) or pa.types.is_null(column.type)):
            raise DedupError(
                f"--keep-best column '{name}' is {column.type}, not numeric: rank by a score"
            )
        specs.append((name, column, lowest))

    def ranker(groups: Sequence[Sequence[int]]) -> Ranked:
        members = [i for group in groups for i in group]
        index = pa.array(members, pa.int64())
        columns = []
        for name, column, lowest in specs:
            chosen = column.take(index)
            if pa.types.is_boolean(chosen.type):
                chosen = chosen.cast(pa.int8())
            values = chosen.cast(pa.float64()).to_numpy(zero_copy_only=False)
            columns.append((name, np.asarray(values, np.float64), lowest))
        ids = clips.column("clip_id").take(index).to_pylist()
        position = {row: p for p, row in enumerate(members)}

        def key(row: int) -> tuple[Any, ...]:
            at = position[row]
            parts: list[Any] = []
            for _, values, lowest in columns:
                v = values[at]
                parts.append((1, 0.0) if math.isnan(v) else (0, v if lowest else -v))
            return (*parts, ids[at] or "")

        def why(best: int, second: int) -> str | None:
            for name, values, lowest in columns:
                a, b = values[position[best]], values[position[second]]
                if a != b and not (math.isnan(a) and math.isnan(b)):
                    word = "lower" if lowest else "higher"
                    shown = "none" if math.isnan(b) else f"{b:.4g}"
                    return f"{word} {name} ({a:.4g} vs {shown})"
            return None

        ranked = []
        for group in groups:
            order = sorted(group, key=key)
            ranked.append((order, why(order[0], order[1]) if len(order) > 1 else None))
        return ranked

    return ranker


def _methods(clips: pa.Table, params: DedupParams, vector_file: bool = False) -> tuple[str, ...]:
    """The detectors to run; ``semantic`` needs the ``embedding`` column or the run folder's
    ``vectors/embedding.parquet`` (``vector_file``)."""
    columns = {"phash": "phash", "semantic": "embedding"}

    def available(column: str) -> bool:
        return column in clips.column_names or (column == "embedding" and vector_file)

    if params.methods:
        for method in params.methods:
            column = columns.get(method)
            if column and not available(column):
                raise DedupError(missing_column_message(column, clips.column_names))
        return params.methods
    return tuple(m for m in METHODS if m == "exact" or available(columns[m]))


def _embeddings(clips: pa.Table, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row indices with a vector, unit vectors) for ``rows``; one embedding model only."""
    if "embed_model" in clips.column_names:
        models = {m for m in (clips.column("embed_model").to_pylist()[i] for i in rows) if m}
        if len(models) > 1:
            raise DedupError(
                f"embeddings from different models ({', '.join(sorted(models))}) cannot be "
                "compared: re-run `clipsieve score RUN --scorers embed` with one model"
            )
    column = clips.column("embedding").combine_chunks()
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    have = np.asarray([i for i in rows if valid[i]], dtype=np.int64)
    if len(have) == 0:
        return have, np.zeros((0, 0), dtype=np.float32)
    # from Arrow's flat value buffer: no Python float per element
    vectors = vectors_to_numpy(column.take(pa.array(have)))
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return have, vectors


HashMatrix = tuple[np.ndarray, np.ndarray, np.ndarray]  # rows, hashes, informative mask


def _phash_links(
    clips: pa.Table, rows: np.ndarray, params: DedupParams, matrix: HashMatrix | None = None
) -> np.ndarray:
    """pHash pairs among ``rows``: all pairs up to ``partition_size`` clips (as always), banded
    LSH verified by the exact distance above it (:mod:`clipsieve.select.dedup_lsh`).
    ``matrix``: the hash matrix of every row, made already (:func:`hash_matrix_arrow`)."""
    if matrix is None:
        have, hashes, mask = hash_matrix_arrow(clips.column("phash"), rows)
    else:
        all_rows, all_hashes, all_mask = matrix
        wanted = np.zeros(clips.num_rows, bool)
        wanted[rows] = True
        pick = wanted[all_rows]
        del wanted
        if pick.all():  # no copy of the matrix (320 MB at 10M clips) when every row is eligible
            have, hashes, mask = matrix
        else:
            have, hashes, mask = all_rows[pick], all_hashes[pick], all_mask[pick]
    if len(have) < 2:
        return np.zeros((0, 2), np.int64)
    if len(have) <= params.partition_size:
        found = phash_pairs(
            hashes, mask, params.phash_threshold, params.partition_size, params.seed,
            params.phash_rotations,
        )  # fmt: skip
        pairs = np.array([(a, b) for a, b, _ in found], np.int64).reshape(-1, 2)
    else:
        from clipsieve.select.dedup_lsh import phash_pairs_lsh

        pairs, _ = phash_pairs_lsh(
            hashes, mask, params.phash_threshold, params.phash_rotations, seed=params.seed
        )
    return have[pairs]


def _semantic_links(
    clips: pa.Table, rows: np.ndarray, params: DedupParams, run_dir: Path | None
) -> np.ndarray:
    """Semantic pairs among ``rows``: the vectors of the table's ``embedding`` column, or of
    ``vectors/embedding.parquet`` read as float16 blocks (a million 768-d vectors: 1.5 GB)."""
    if "embedding" in clips.column_names:
        have, vectors = _embeddings(clips, rows)
    else:
        assert run_dir is not None
        _check_one_model(clips, rows)
        have, vectors = vectors_for_rows(
            clips, rows, run_dir, "embedding", normalize=True, dtype=np.float16
        )
    if len(have) < 2:
        return np.zeros((0, 2), np.int64)
    found = semantic_pairs(vectors, params.cosine_threshold, params.partition_size, params.seed)
    pairs = np.array([(a, b) for a, b, _ in found], np.int64).reshape(-1, 2)
    return have[pairs]


def _check_one_model(clips: pa.Table, rows: np.ndarray) -> None:
    if "embed_model" not in clips.column_names:
        return
    chosen = clips.column("embed_model").take(pa.array(rows, pa.int64()))
    models = sorted(m for m in pc.unique(chosen).to_pylist() if m)
    if len(models) > 1:
        raise DedupError(
            f"embeddings from different models ({', '.join(models)}) cannot be "
            "compared: re-run `clipsieve score RUN --scorers embed` with one model"
        )


def deduplicate(
    clips: pa.Table,
    params: DedupParams | None = None,
    run_dir: Path | None = None,
    exact_blocks: ExactBlocks | None = None,
    hash_matrix: HashMatrix | None = None,
) -> DedupResult:
    """Find duplicate groups among kept rows and mark all but the best of each group.

    ``run_dir``: where ``vectors/embedding.parquet`` is, when the table has no ``embedding``
    column. ``exact_blocks``: the exact detector's columns block by block (default: slices of
    ``clips``). ``hash_matrix``: the pHash matrix of every row, made from a ``phash`` column
    the caller no longer holds (the lists of 10M clips are 360 MB).

    Linked rows form groups as connected components of the pair graph (scipy), so the only
    per-row Python work is ranking the members of real groups.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    params = params or DedupParams()
    has_file = run_dir is not None and (Path(run_dir) / "vectors" / "embedding.parquet").is_file()
    if hash_matrix is not None and "phash" not in clips.column_names:
        clips = clips.append_column("phash", pa.nulls(clips.num_rows, pa.list_(pa.int64())))
    methods = _methods(clips, params, has_file)
    rank_key = _rank_key(clips, params.keep_best)
    keep, reasons = released_marks(clips, DUPLICATE_REASON, exact=True)
    eligible = eligible_mask(clips, keep).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(eligible)
    n = clips.num_rows

    links: dict[str, np.ndarray] = {}
    if "exact" in methods:
        links["exact"] = exact_pairs(exact_blocks or table_blocks(clips), eligible)
    if "phash" in methods:
        links["phash"] = _phash_links(clips, rows, params, hash_matrix)
    if "semantic" in methods:
        links["semantic"] = _semantic_links(clips, rows, params, run_dir)
    pair_counts = {m: len(links.get(m, ())) for m in methods}

    all_pairs = np.concatenate([links[m] for m in links]) if links else np.zeros((0, 2), np.int64)
    graph = coo_matrix(
        (np.ones(len(all_pairs), np.int8), (all_pairs[:, 0], all_pairs[:, 1])), shape=(n, n)
    )
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component[rows], minlength=n) if len(rows) else np.zeros(n, np.int64)
    in_group = rows[sizes[component[rows]] > 1]
    # a pair names the first detector that linked it (exact, then phash, then semantic)
    seen: set[int] = set()
    group_methods: dict[int, set[str]] = {}
    for method in METHODS:
        for a, b in links.get(method, np.zeros((0, 2), np.int64)).tolist():
            code = min(a, b) * n + max(a, b)
            if code not in seen:
                seen.add(code)
                group_methods.setdefault(int(component[a]), set()).add(method)

    members_of: dict[int, list[int]] = {}
    for i in in_group.tolist():
        members_of.setdefault(int(component[i]), []).append(i)
    ids = clips.column("clip_id")
    ranked = rank_key(list(members_of.values()))
    ranked.sort(key=lambda group: ids[group[0][0]].as_py() or "")
    real = [members for members, _ in ranked]

    dup_group = np.full(n, -1, np.int64)
    dup_of: dict[int, str] = {}
    dup_method: dict[int, str] = {}
    dup_kept_by: dict[int, str] = {}
    dropped = np.zeros(n, bool)
    for gid, (members, reason) in enumerate(ranked):
        best = members[0]
        dup_kept_by[best] = reason or "first clip_id (the ranking columns tie)"
        text = "+".join(m for m in METHODS if m in group_methods[int(component[best])])
        best_id = ids[best].as_py()
        for i in members:
            dup_group[i] = gid
            dup_method[i] = text
            if i != best:
                dup_of[i] = best_id
                dropped[i] = True

    keep_np = keep.to_numpy(zero_copy_only=False) & ~dropped
    reasons = pc.if_else(pa.array(dropped), DUPLICATE_REASON, reasons).cast(pa.string())
    table = set_column(clips, "keep", pa.array(keep_np, pa.bool_()))
    table = set_column(table, "drop_reason", reasons)
    table = set_column(table, "dup_group", pa.array(dup_group, pa.int64(), mask=dup_group < 0))
    table = set_column(table, "dup_of", _sparse_strings(n, dup_of))
    table = set_column(table, "dup_method", _sparse_strings(n, dup_method))
    table = set_column(table, "dup_kept_by", _sparse_strings(n, dup_kept_by))
    summary = {
        "methods": list(methods),
        "candidates": len(rows),
        "pairs": pair_counts,
        "groups": len(real),
        "dropped": sum(len(m) - 1 for m in real),
    }
    return DedupResult(table, summary)


def _sparse_strings(n: int, values: dict[int, str]) -> pa.Array:
    """A string column of ``n`` nulls with ``values`` at their positions, made by taking from
    the distinct values (no Python object per row: 10M rows would be 80 MB of list alone)."""
    if not values:
        return pa.nulls(n, pa.string())
    distinct = sorted(set(values.values()))
    code = {value: i for i, value in enumerate(distinct)}
    positions = np.fromiter(values.keys(), np.int64, len(values))
    codes = np.fromiter((code[v] for v in values.values()), np.int32, len(values))
    index = np.zeros(n, np.int32)
    index[positions] = codes
    missing = np.ones(n, bool)
    missing[positions] = False
    return pa.array(distinct, pa.string()).take(pa.array(index, mask=missing))


READS = ("clip_id", "keep", "drop_reason", "status")  # + ranking, phash, embed_model


def with_source_bitrate(narrow: pa.Table, ctx: StepContext) -> pa.Table:
    """``narrow`` plus ``source_bitrate``: each clip's source video's bits per second, from
    ``videos.parquet`` by ``video_id`` (streamed: the ids are not kept)."""
    videos_file = ctx.run_dir / VIDEOS_FILE
    if not videos_file.is_file() or "video_id" not in ctx.schema.names:
        return narrow
    if "bitrate" not in pq.read_schema(videos_file).names:
        return narrow
    videos = pq.read_table(videos_file, columns=["video_id", "bitrate"])
    parts = []
    for batch in ctx.scan(["video_id"]):
        at = pc.index_in(batch.column("video_id"), value_set=videos.column("video_id"))
        parts.append(videos.column("bitrate").take(at).cast(pa.float64()))
    values = pa.chunked_array(parts, pa.float64()) if parts else pa.chunked_array([], pa.float64())
    return narrow.append_column(SOURCE_BITRATE, values)


class DedupStep(NarrowTableStep):
    """Dedup as a post-run step: reads only the columns the detectors and the ranking need
    (embeddings from ``vectors/``) and streams the marks back into the table."""

    name = STEP_NAME
    version = STEP_VERSION
    writes = ("keep", "drop_reason", "dup_group", "dup_of", "dup_method", "dup_kept_by")

    def __init__(self, params: DedupParams) -> None:
        self.settings = params
        ranking = tuple(c.lstrip("-") for c in params.keep_best if c != "auto")
        if tuple(params.keep_best) == ("auto",):
            ranking = tuple(c for c in AUTO_RANKING if c != SOURCE_BITRATE)
        self.source_bitrate = tuple(params.keep_best) == ("auto",)
        wanted = params.methods or METHODS
        self.wants_phash = "phash" in wanted
        extra = ["embed_model"] if "semantic" in wanted else []
        # the exact detector's paths are streamed (EXACT_COLUMNS) and the pHash lists turned
        # into a matrix (compute) before the detectors run: neither is held as a column
        self.reads = tuple(dict.fromkeys((*READS, *ranking, *extra)))
        self.result_summary: dict[str, Any] = {}

    def compute(self, narrow: pa.Table, ctx: StepContext) -> pa.Table:
        # an older run folder keeps its embedding inside the table: read it from there
        if "embedding" in ctx.schema.names and "semantic" in (self.settings.methods or METHODS):
            narrow = narrow.append_column(
                "embedding", ctx.read_columns(["embedding"]).column("embedding")
            )

        if self.source_bitrate:
            narrow = with_source_bitrate(narrow, ctx)

        def exact_blocks() -> Iterable[tuple[int, pa.Table]]:
            offset = 0
            for batch in ctx.scan(EXACT_COLUMNS):
                yield offset, pa.Table.from_batches([batch])
                offset += batch.num_rows

        matrix = None
        if self.wants_phash and "phash" in ctx.schema.names:
            matrix = hash_matrix_chunks(lambda: (b.column("phash") for b in ctx.scan(["phash"])))
        result = deduplicate(narrow, self.settings, ctx.run_dir, exact_blocks, matrix)
        self.result_summary = result.summary
        return result.table

    def params(self) -> dict[str, Any]:
        return step_record(self.settings, self.result_summary or {"methods": []})["params"]

    def summary(self) -> dict[str, Any]:
        return self.result_summary


def step_record(params: DedupParams, summary: dict[str, Any]) -> dict[str, Any]:
    """Provenance entry for ``save_clips`` (parameters and what they found)."""
    settings = asdict(params)
    settings["methods"] = summary["methods"]
    settings["keep_best"] = list(params.keep_best)
    settings["min_informative_bits"] = MIN_INFORMATIVE_BITS
    return {"name": STEP_NAME, "version": STEP_VERSION, "params": settings, "summary": summary}
