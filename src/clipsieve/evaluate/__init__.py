"""Evaluation of a finished run: is the selection better than random, are new captions better?

``clipsieve evaluate RUN_DIR`` compares the selected clips with random subsets of the same size
drawn from the same pool (:mod:`~clipsieve.evaluate.subset`), new captions with the source
captions on the same clips (:mod:`~clipsieve.evaluate.captions`), with CLIP text–frame
similarity when a CLIP checkpoint is available (:mod:`~clipsieve.evaluate.clipsim`), and writes
``RUN_DIR/evaluation.json``, which the HTML report shows. This module stays import-light (the
report reads the file name from here without loading torch).
"""

EVALUATION_FILE = "evaluation.json"

__all__ = ["EVALUATION_FILE"]
