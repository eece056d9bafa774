"""Concept clusters of the clip embeddings: KMeans, quality scores, a 2-D map.

Follows the video-clustering study this project copies: mean-pooled frame embeddings per clip,
KMeans (k fixed, or picked by silhouette over a range), silhouette and Davies-Bouldin scores for
the chosen k, and a t-SNE map. Clips are clustered on the ``embedding`` column that the opt-in
``embed`` scorer writes (unit-length vectors, so Euclidean distance ranks like cosine distance).

Only rows with an embedding and ``status`` ok are clustered; the others get null ``cluster_id``
and ``cluster_dist``. Everything is seeded, so the same table and seed give the same clusters.
Keywords (``select/keywords.py``) and balancing (``select/balance.py``) build on the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clipsieve.errors import UserError

EMBEDDING_COLUMN = "embedding"
MAX_MAP_POINTS = 5000  # t-SNE is O(n log n) but slow in practice; bigger runs are subsampled
MAX_SCORE_POINTS = 10000  # silhouette is O(n^2): scored on a seeded sample above this
SERIAL_BELOW = 5000  # rows under which KMeans/t-SNE run single-threaded (see _threads)


class ClusterError(UserError):
    """The run cannot be clustered as asked (no embeddings, too few clips, bad k)."""


@dataclass
class Embeddings:
    """The clustered rows: their row numbers in the clip table, ids and the vector matrix."""

    rows: np.ndarray  # int64 positions in the clip table
    clip_ids: list[str]
    vectors: np.ndarray  # (n, d) float32
    model: str | None


@dataclass
class Clustering:
    """One KMeans result with the numbers the report and ``clusters.json`` show."""

    k: int
    labels: np.ndarray  # (n,) int cluster per embedded row
    distances: np.ndarray  # (n,) distance of each row to its own centre
    centres: np.ndarray  # (k, d)
    silhouette: float | None
    davies_bouldin: float | None
    k_scores: list[dict[str, Any]] = field(default_factory=list)  # the auto-k search


def load_embeddings(clips: pa.Table, run_dir: object = "RUN") -> Embeddings:
    """The ``embedding`` vectors of the clustered rows, or one error line saying how to add them."""
    how = f"run `clipsieve score {run_dir} --scorers embed` first"
    if EMBEDDING_COLUMN not in clips.column_names:
        raise ClusterError(f"{run_dir} has no '{EMBEDDING_COLUMN}' column: {how}")
    column = clips.column(EMBEDDING_COLUMN).combine_chunks()
    has_vector = column.is_valid().to_numpy(zero_copy_only=False)
    status = (
        clips.column("status").to_pylist()
        if "status" in clips.column_names
        else ["ok"] * clips.num_rows
    )
    models = (
        clips.column("embed_model").to_pylist()
        if "embed_model" in clips.column_names
        else [None] * clips.num_rows
    )
    rows = [i for i in range(clips.num_rows) if has_vector[i] and status[i] != "error"]
    if not rows:
        raise ClusterError(f"no clip in {run_dir} has an embedding: {how}")
    used = sorted({str(models[i]) for i in rows if models[i] is not None})
    if len(used) > 1:
        raise ClusterError(
            f"embeddings in {run_dir} come from different encoders ({', '.join(used)}): "
            f"re-run `clipsieve score {run_dir} --scorers embed` so all clips use one"
        )
    # straight from Arrow's flat value buffer: no Python float per element (1280 per clip)
    chosen = column.take(pa.array(rows, pa.int64()))
    lengths = pc.list_value_length(chosen).to_numpy(zero_copy_only=False)
    if len(set(lengths.tolist())) != 1 or lengths[0] == 0:
        raise ClusterError(
            f"embeddings in {run_dir} differ in length: re-run "
            f"`clipsieve score {run_dir} --scorers embed`"
        )
    flat = chosen.flatten().to_numpy(zero_copy_only=False)
    matrix = np.asarray(flat, dtype=np.float32).reshape(len(rows), int(lengths[0]))
    ids = [str(x) for x in clips.column("clip_id").to_pylist()]
    return Embeddings(
        rows=np.asarray(rows, dtype=np.int64),
        clip_ids=[ids[i] for i in rows],
        vectors=matrix,
        model=used[0] if used else None,
    )


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """One BLAS/OpenMP thread for small inputs.

    On small inputs threads buy nothing, and on a busy machine OpenMP's spinning workers make
    t-SNE and KMeans many times slower (measured: t-SNE of 60 points 106 s with the default
    threads vs 2.7 s with one, on 2 shared cores). Big inputs keep the library's default.
    """
    if n >= SERIAL_BELOW:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _kmeans(vectors: np.ndarray, k: int, seed: int):  # -> sklearn KMeans
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, random_state=seed, n_init=10).fit(vectors)


def _scores(vectors: np.ndarray, labels: np.ndarray, seed: int) -> tuple[float, float] | None:
    """(silhouette, Davies-Bouldin), or None when fewer than 2 distinct clusters exist."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    distinct = len(np.unique(labels))
    if distinct < 2 or distinct >= len(labels):
        return None
    sample = min(len(labels), MAX_SCORE_POINTS)
    sil = silhouette_score(vectors, labels, sample_size=sample, random_state=seed)
    return float(sil), float(davies_bouldin_score(vectors, labels))


def k_range(n: int, k_min: int, k_max: int) -> range:
    """The k values auto-k tries: ``k_min..k_max`` limited to ``n - 1`` (silhouette needs it)."""
    return range(max(2, k_min), min(k_max, n - 1) + 1)


def cluster_embeddings(
    vectors: np.ndarray,
    k: int | None,
    *,
    seed: int = 0,
    k_min: int = 2,
    k_max: int = 20,
) -> Clustering:
    """KMeans with ``k`` clusters, or (``k`` None) the k in ``k_min..k_max`` with best silhouette.

    Ties in silhouette go to the smaller k (fewer, broader concepts are easier to balance).
    """
    with _threads(len(vectors)):
        return _cluster(vectors, k, seed=seed, k_min=k_min, k_max=k_max)


def _cluster(
    vectors: np.ndarray, k: int | None, *, seed: int, k_min: int, k_max: int
) -> Clustering:
    n = len(vectors)
    k_scores: list[dict[str, Any]] = []
    if k is None:
        candidates = k_range(n, k_min, k_max)
        if len(candidates) == 0:
            raise ClusterError(
                f"auto k needs at least {max(3, k_min + 1)} clips with embeddings, found {n}: "
                "pass a fixed --k or score more clips"
            )
        best: tuple[float, int] | None = None
        for candidate in candidates:
            labels = _kmeans(vectors, candidate, seed).labels_
            scored = _scores(vectors, labels, seed)
            sil, dbi = scored if scored else (None, None)
            k_scores.append({"k": candidate, "silhouette": sil, "davies_bouldin": dbi})
            if sil is not None and (best is None or sil > best[0] + 1e-12):
                best = (sil, candidate)
        k = best[1] if best else candidates[0]
    if k < 1:
        raise ClusterError(f"--k must be at least 1, got {k}")
    if k > n:
        raise ClusterError(f"--k {k} is more than the {n} clips with embeddings: pass a smaller k")
    model = _kmeans(vectors, k, seed)
    labels = model.labels_.astype(np.int64)
    centres = model.cluster_centers_.astype(np.float32)
    distances = np.linalg.norm(vectors - centres[labels], axis=1)
    scored = _scores(vectors, labels, seed)
    return Clustering(
        k=k,
        labels=labels,
        distances=distances.astype(np.float64),
        centres=centres,
        silhouette=scored[0] if scored else None,
        davies_bouldin=scored[1] if scored else None,
        k_scores=k_scores,
    )


def nearest_to_centre(clustering: Clustering, cluster: int, count: int) -> np.ndarray:
    """Positions (into the embedded rows) of the ``count`` members closest to the centre."""
    members = np.flatnonzero(clustering.labels == cluster)
    order = np.argsort(clustering.distances[members], kind="stable")
    return members[order[:count]]


def map_coordinates(vectors: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(positions, (m, 2) coordinates, method) of a 2-D map of the embedded rows.

    t-SNE as the study drew it; above :data:`MAX_MAP_POINTS` rows a seeded sample is mapped.
    With fewer than 5 rows t-SNE is meaningless and the two main PCA axes are used instead.
    """
    n = len(vectors)
    positions = np.arange(n)
    if n > MAX_MAP_POINTS:
        rng = np.random.default_rng(seed)
        positions = np.sort(rng.choice(n, MAX_MAP_POINTS, replace=False))
    data = vectors[positions].astype(np.float64)
    if len(data) < 5:
        centred = data - data.mean(axis=0, keepdims=True)
        if len(data) < 2:
            return positions, np.zeros((len(data), 2)), "pca"
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        coords = centred @ vt[:2].T
        if coords.shape[1] < 2:
            coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        return positions, coords, "pca"
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(data) - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca")
    with _threads(len(data)):
        return positions, tsne.fit_transform(data), "tsne"
