"""Concept balance: keep any one cluster from dominating the exported set.

Two rules, both over the clips that are still kept and have a ``cluster_id``:

* ``cap=N``: at most N clips per cluster.
* ``temp=T`` (temperature sampling, as used to balance languages or domains in training
  mixtures): the target share of cluster c is ``n_c^(1/T) / sum_j n_j^(1/T)``. T=1 keeps the
  current mix, larger T flattens it towards uniform. Each cluster keeps ``share_c * N`` clips
  where N is the number of clips balanced, so over-represented concepts are cut down to their
  tempered share and a cluster smaller than its share keeps all its clips (the result has at
  most N clips). With ``size=M`` (``temp=2,size=500``) N is M and the places a small cluster
  cannot fill go to the others in proportion to their shares, so M clips are kept when there
  are that many. Quotas are rounded by largest remainder, so they add up exactly.

Which clips of a cluster stay is a seeded random choice over the clips sorted by ``clip_id``, so
the result does not depend on row order and is the same for the same seed. Balancing owns the
drop reason ``balance``: a new run first restores the clips it dropped before, then decides
afresh (see :mod:`clipsieve.select.marks`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from clipsieve.errors import UserError
from clipsieve.select.marks import apply_marks, eligible_rows, release_own_marks, string_list

BALANCE_REASON = "balance"


class BalanceError(UserError):
    """A ``--balance`` spec that cannot be read."""


@dataclass(frozen=True)
class BalanceSpec:
    """``cap`` (clips per cluster) or ``temperature`` (with an optional total ``size``)."""

    cap: int | None = None
    temperature: float | None = None
    size: int | None = None

    def __str__(self) -> str:
        if self.cap is not None:
            return f"cap={self.cap}"
        size = f",size={self.size}" if self.size is not None else ""
        return f"temp={self.temperature:g}{size}"


def parse_balance(text: str) -> BalanceSpec:
    """``cap=N`` | ``temp=T`` | ``temp=T,size=M`` → :class:`BalanceSpec`."""
    usage = "use --balance cap=N or --balance temp=T (optionally temp=T,size=M)"
    parts: dict[str, str] = {}
    for item in text.replace(" ", "").split(","):
        key, sep, value = item.partition("=")
        if not sep or not value or key not in ("cap", "temp", "size") or key in parts:
            raise BalanceError(f"cannot read --balance '{text}': {usage}")
        parts[key] = value
    try:
        if "cap" in parts:
            if set(parts) != {"cap"}:
                raise BalanceError(f"--balance '{text}': cap takes no other setting; {usage}")
            cap = int(parts["cap"])
            if cap < 1:
                raise BalanceError(f"--balance cap must be at least 1, got {cap}")
            return BalanceSpec(cap=cap)
        if "temp" not in parts:
            raise BalanceError(f"cannot read --balance '{text}': {usage}")
        temperature = float(parts["temp"])
        size = int(parts["size"]) if "size" in parts else None
    except ValueError:
        raise BalanceError(f"cannot read --balance '{text}': {usage}") from None
    if not temperature > 0 or not np.isfinite(temperature):
        raise BalanceError(f"--balance temp must be a positive number, got {parts['temp']}")
    if size is not None and size < 1:
        raise BalanceError(f"--balance size must be at least 1, got {size}")
    return BalanceSpec(temperature=temperature, size=size)


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Integer quotas summing to ``total`` in proportion to ``shares`` (ties to lower index)."""
    raw = shares / shares.sum() * total
    base = np.floor(raw).astype(np.int64)
    rest = total - int(base.sum())
    order = np.lexsort((np.arange(len(raw)), -(raw - base)))
    base[order[:rest]] += 1
    return base


def quotas(counts: dict[int, int], spec: BalanceSpec) -> dict[int, int]:
    """How many clips of each cluster to keep."""
    ids = sorted(counts)
    n = np.array([counts[c] for c in ids], dtype=np.float64)
    if spec.cap is not None:
        return {c: min(counts[c], spec.cap) for c in ids}
    if not ids or n.sum() == 0:
        return dict.fromkeys(ids, 0)
    assert spec.temperature is not None
    available = n.astype(np.int64)
    weights = np.where(n > 0, n ** (1.0 / spec.temperature), 0.0)
    total = int(available.sum()) if spec.size is None else min(spec.size, int(available.sum()))
    if spec.size is None:
        out = np.minimum(_largest_remainder(weights, total), available)
        return {c: int(q) for c, q in zip(ids, out, strict=True)}
    # Water-filling: clusters whose share exceeds what they have keep everything; the rest of
    # the budget is shared by the others. Caps are found on exact shares and rounding happens
    # once at the end, so the split of the remainder is not biased by repeated rounding.
    full = np.zeros(len(ids), dtype=bool)
    while True:
        budget = total - int(available[full].sum())
        open_weights = np.where(full, 0.0, weights)
        if budget <= 0 or open_weights.sum() == 0:
            break
        newly = ~full & (open_weights / open_weights.sum() * budget > available)
        if not newly.any():
            break
        full |= newly
    out = np.where(full, available, 0)
    if budget > 0 and open_weights.sum() > 0:
        out = out + _largest_remainder(open_weights, budget)
    return {c: int(q) for c, q in zip(ids, np.minimum(out, available), strict=True)}


def _cluster_seed(seed: int, cluster: int) -> int:
    digest = hashlib.sha256(f"balance:{seed}:{cluster}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@dataclass
class BalanceResult:
    table: pa.Table
    before: dict[int, int]
    after: dict[int, int]
    quotas: dict[int, int]


def balance_clusters(clips: pa.Table, spec: BalanceSpec, seed: int = 0) -> BalanceResult:
    """Mark the clips over each cluster's quota ``keep=false, drop_reason='balance'``."""
    if "cluster_id" not in clips.column_names:
        raise BalanceError("the clip table has no cluster_id column: run `clipsieve cluster` first")
    keep, reasons = release_own_marks(clips, lambda r: r == BALANCE_REASON)
    eligible = eligible_rows(clips, keep)
    cluster_ids = clips.column("cluster_id").to_pylist()
    clip_ids = string_list(clips, "clip_id")
    members: dict[int, list[int]] = {}
    for i, cid in enumerate(cluster_ids):
        if eligible[i] and cid is not None:
            members.setdefault(int(cid), []).append(i)
    before = {c: len(rows) for c, rows in sorted(members.items())}
    wanted = quotas(before, spec)
    for cluster, rows in members.items():
        rows = sorted(rows, key=lambda i: (clip_ids[i] or "", i))
        rng = np.random.default_rng(_cluster_seed(seed, cluster))
        chosen = set(rng.permutation(len(rows))[: wanted[cluster]].tolist())
        for position, i in enumerate(rows):
            if position not in chosen:
                keep[i] = False
                reasons[i] = BALANCE_REASON
    after = {c: min(before[c], wanted[c]) for c in before}
    return BalanceResult(apply_marks(clips, keep, reasons), before, after, wanted)
