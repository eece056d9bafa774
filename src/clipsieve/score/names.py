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
    "overlay_text": "clipsieve.score.content:OverlayTextScorer",
    "layout": "clipsieve.score.content:LayoutScorer",
    "still": "clipsieve.score.content:StillScorer",
    "logo": "clipsieve.score.content:LogoScorer",
}
# names that stand for several scorers (``--scorers content``)
SCORER_GROUPS: dict[str, tuple[str, ...]] = {
    "content": ("overlay_text", "layout", "still", "logo"),
}
SCORER_REGISTRY = Registry("scorer", SCORERS, "clipsieve.scorers")
# what `run` and `score` use when told nothing: cheap, CPU-only, no model download
DEFAULT_SCORERS: tuple[str, ...] = ("static", "motion", "camera", "quality", "phash")


def expand_groups(names: list[str] | tuple[str, ...]) -> list[str]:
    """``names`` with each group replaced by its scorers, in order, without repeats."""
    out: list[str] = []
    for name in names:
        for member in SCORER_GROUPS.get(name, (name,)):
            if member not in out:
                out.append(member)
    return out
