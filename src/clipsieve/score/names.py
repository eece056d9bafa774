"""The scorers by name, apart from the stage so that reading the names (config checks, the
command line's defaults) imports no decoder or model library."""

from __future__ import annotations

from clipsieve.registry import Registry

# name -> "module:Class"; imported on use so an unused scorer's dependencies never load.
SCORERS: dict[str, str] = {
    "static": "clipsieve.score.static:RgbDiffScorer",
    "motion": "clipsieve.score.motion:FlowScorer",
    "camera": "clipsieve.score.camera:CameraMotionScorer",
    "quality": "clipsieve.score.quality:QualityScorer",
    "phash": "clipsieve.score.phash:PHashScorer",
    "ocr": "clipsieve.score.ocr:TextScorer",
    "nsfw": "clipsieve.score.nsfw:NsfwScorer",
    "transition": "clipsieve.score.embed:TransitionScorer",
    "embed": "clipsieve.score.embed:EmbeddingScorer",
    "aesthetic": "clipsieve.score.aesthetic:LaionAestheticScorer",
    "aesthetic_siglip": "clipsieve.score.aesthetic:SiglipAestheticScorer",
    "match": "clipsieve.score.match:MatchScorer",
}
SCORER_REGISTRY = Registry("scorer", SCORERS, "clipsieve.scorers")
# what `run` and `score` use when told nothing: cheap, CPU-only, no model download
DEFAULT_SCORERS: tuple[str, ...] = ("static", "motion", "camera", "quality", "phash")
