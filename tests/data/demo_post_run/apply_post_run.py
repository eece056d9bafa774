"""How the fixture in this folder was made (kept so it can be made again).

``input/`` is the clip table that ``clipsieve run`` wrote for the demo sample set (the demo's
config) with clipsieve 6055402, the version before the post-run step runner: the old layout,
with the 1280-d ``embedding`` inside ``clips.parquet``; clip files are not included. The
expected files are what that version's post-run commands made of it::

    git worktree add --detach /tmp/old 6055402
    cp -r tests/data/demo_post_run/input /tmp/fixture
    PYTHONPATH=/tmp/old/src .venv/bin/python tests/data/demo_post_run/apply_post_run.py /tmp/fixture
    # expected.parquet = /tmp/fixture/clips.parquet without the embedding column;
    # funnel.json, clusters.json copied as they are

``tests/test_post_run_equivalence.py`` applies the same commands with the current code.
"""

import sys
from pathlib import Path

from clipsieve.cli import app
from clipsieve.demo import DEMO_WHERE, write_demo_labels

COMMANDS = (
    ["filter", "{run}", "--where", DEMO_WHERE],
    ["dedup", "{run}", "--keep-best", "resolution,duration_s"],  # the old default ranking
    ["train-classifier", "{run}", "--labels", "{labels}", "--folds", "3"],
    ["predict", "{run}"],
    ["topn", "{run}", "--by", "quality_prob", "-n", "3"],
    ["cluster", "{run}", "--k", "auto", "--balance", "cap=6"],
)


def apply(run: Path) -> None:
    labels = write_demo_labels(run)
    for words in COMMANDS:
        args = [w.format(run=run, labels=labels) for w in words]
        code = app(args, prog_name="clipsieve", standalone_mode=False)
        assert code in (None, 0), (args, code)


if __name__ == "__main__":
    apply(Path(sys.argv[1]))
