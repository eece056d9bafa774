"""Post-run steps and the one runner that applies them (see base.py and runner.py)."""

from clipsieve.steps.base import AlignedUpdates, PostRunStep, StepContext
from clipsieve.steps.runner import StepOutcome, StepRunner, apply_step, save_clips

__all__ = [
    "AlignedUpdates",
    "PostRunStep",
    "StepContext",
    "StepOutcome",
    "StepRunner",
    "apply_step",
    "save_clips",
]
