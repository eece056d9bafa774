"""Report figures as PNG data URIs (matplotlib, Agg, no pyplot state).

Every figure is rendered into its own :class:`matplotlib.figure.Figure` (never the global pyplot
figure, so renders cannot leak into each other) and returned as ``data:image/png;base64,...`` so
the report stays one file that opens from disk with no server.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np

KEPT_COLOUR = "#2563eb"
ALL_COLOUR = "#c7ccd3"
LINE_COLOUR = "#b42318"
DPI = 100


def _figure(width: float, height: float):  # -> matplotlib.figure.Figure
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.set_layout_engine("constrained")
    return fig


def _data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def histogram(
    title: str,
    values: Sequence[float],
    kept: Sequence[float] = (),
    thresholds: Sequence[tuple[float, str]] = (),
    bins: int = 30,
) -> str:
    """All clips (grey) and kept clips (blue) of one score, with threshold lines (red)."""
    fig = _figure(4.2, 2.6)
    ax = fig.add_subplot()
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 1.0)
    for value, _ in thresholds:
        low, high = min(low, value), max(high, value)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    ax.hist(data, bins=edges, color=ALL_COLOUR, label=f"all ({data.size})")
    kept_data = np.asarray(kept, dtype=np.float64)
    kept_data = kept_data[np.isfinite(kept_data)]
    ax.hist(kept_data, bins=edges, color=KEPT_COLOUR, label=f"kept ({kept_data.size})")
    for value, label in thresholds:
        ax.axvline(value, color=LINE_COLOUR, linestyle="--", linewidth=1.2)
        ax.annotate(
            label,
            (value, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -10),
            textcoords="offset points",
            fontsize=7,
            color=LINE_COLOUR,
        )
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("clips", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    return _data_uri(fig)


def bars(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[int]],
    colours: Sequence[str] = (ALL_COLOUR, KEPT_COLOUR),
    ylabel: str = "clips",
) -> str:
    """Grouped bar chart: one group per label, one bar per series (e.g. all vs kept)."""
    fig = _figure(min(12.0, max(4.2, 0.45 * len(labels) * max(1, len(series)) + 1.5)), 2.8)
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for i, (name, counts) in enumerate(series.items()):
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            counts,
            width,
            label=name,
            color=colours[i % len(colours)],
        )
    ax.set_xticks(x, [str(label) for label in labels], rotation=30 if len(labels) > 6 else 0)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    if len(series) > 1:
        ax.legend(fontsize=7, frameon=False)
    return _data_uri(fig)


def cluster_map(
    points: Sequence[Mapping[str, float]],
    labels: Mapping[int, str],
    method: str,
) -> str:
    """Scatter of the 2-D map coloured by cluster, each cluster annotated at its median point."""
    from matplotlib import colormaps

    fig = _figure(7.0, 5.0)
    ax = fig.add_subplot()
    clusters = np.array([int(p["cluster"]) for p in points])
    xy = np.array([[p["x"], p["y"]] for p in points], dtype=np.float64).reshape(-1, 2)
    cmap = colormaps["tab20"]
    for cluster in sorted(set(clusters.tolist())):
        mask = clusters == cluster
        colour = cmap(cluster % 20)
        ax.scatter(xy[mask, 0], xy[mask, 1], s=14, color=colour, alpha=0.8, linewidths=0)
        cx, cy = np.median(xy[mask], axis=0)
        ax.annotate(
            labels.get(cluster, str(cluster)),
            (cx, cy),
            fontsize=7,
            ha="center",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "alpha": 0.85},
        )
    ax.set_title(f"clusters ({method.upper()} map of the clip embeddings)", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return _data_uri(fig)
