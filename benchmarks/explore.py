"""How fast the threshold explorer answers at scale: control moved → new count.

    python benchmarks/explore.py [--clips 1000000] [--folder DIR] [--moves 60]

Builds (or reuses) the synthetic run folder of ``benchmarks/scale.py`` with ``--clips`` rows,
starts the explorer's app on loopback with uvicorn, and moves one control at a time the way the
page does (a POST of every range to ``/api/count``), timing each answer end to end over HTTP.
Also times the start (reading the score columns) and the strips at a threshold, and reports
peak memory. Target: at most 300 ms from a moved control to the new count at a million clips.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from annotate_server import serve_app  # noqa: E402
from clipsieve.explore.data import ExploreData  # noqa: E402
from clipsieve.explore.server import create_app  # noqa: E402
from scale import build_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--folder", type=Path, default=None, help="Reuse this run folder.")
    parser.add_argument("--moves", type=int, default=60)
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="clipsieve-explore-")) / "run"
    if not (folder / "clips.parquet").is_file():
        started = time.perf_counter()
        build_run(folder, args.clips, embeddings=0)
        print(f"built {args.clips:,} clips in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    data = ExploreData(folder)
    load_s = time.perf_counter() - started
    print(f"start: {len(data.columns)} columns of {data.total:,} kept clips read in {load_s:.2f} s")
    rng = np.random.default_rng(0)
    names = list(data.columns)
    ranges = {n: [data.columns[n].lo, data.columns[n].hi] for n in names}
    count_ms, server_ms, strip_ms = [], [], []
    with serve_app(create_app(data)) as url, httpx.Client(base_url=url, timeout=30) as client:
        client.post("/api/count", json={"ranges": ranges})  # the page's first call
        for move in range(args.moves):
            name = names[move % len(names)]
            column = data.columns[name]
            lo, hi = sorted(rng.uniform(column.lo, column.hi, 2))
            ranges[name] = [float(lo), float(column.hi)] if move % 2 else [float(lo), float(hi)]
            started = time.perf_counter()
            answer = client.post("/api/count", json={"ranges": ranges}).json()
            count_ms.append(1000 * (time.perf_counter() - started))
            server_ms.append(answer["ms"])
            if move % 10 == 0:
                started = time.perf_counter()
                client.post("/api/strip", json={"ranges": ranges, "column": name, "edge": "lo"})
                strip_ms.append(1000 * (time.perf_counter() - started))

    def summary(values: list[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return (
            f"median {statistics.median(values):.1f} ms, p95 {p95:.1f} ms, max {max(values):.1f} ms"
        )

    print(f"moved control → new count over HTTP ({len(count_ms)} moves): {summary(count_ms)}")
    print(f"  of which counting in the server: {summary(server_ms)}")
    print(f"strips at a threshold: {summary(strip_ms)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MB")


if __name__ == "__main__":
    main()
