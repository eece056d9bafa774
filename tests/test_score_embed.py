"""Embedding scorers: hidden-cut detection, clip vectors and the model registry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from clipsieve.media.frames import Frames
from clipsieve.models.registry import ModelUnavailable, resolve_model
from clipsieve.score import embed
from clipsieve.score.embed import EmbeddingScorer, TransitionScorer


def scene_a(shift: int) -> np.ndarray:
    """Colour ramps with a yellow disc; ``shift`` pans the picture a few pixels."""
    y, x = np.mgrid[0:224, 0:224]
    img = np.stack([(x + shift) % 256, y, 255 - (x + shift) % 256], -1).astype(np.uint8)
    cv2.circle(img, (80 + shift, 112), 40, (255, 255, 0), -1)
    return img


def scene_b(shift: int) -> np.ndarray:
    """Blue stripes on black with a green square: nothing in common with ``scene_a``."""
    img = np.zeros((224, 224, 3), np.uint8)
    for i in range(0, 224, 16):
        img[:, i : i + 8] = (20, 20, 200)
    cv2.rectangle(img, (60 + shift, 60), (160 + shift, 160), (0, 200, 0), -1)
    return img


def make_frames(images: list[np.ndarray], fps: float = 2.0) -> Frames:
    n = len(images)
    return Frames(
        images=np.stack(images),
        indices=np.arange(n),
        times_s=np.arange(n) / fps,
        fps=fps,
        source_size=(224, 224),
    )


def test_identical_frames_are_cos_one_and_not_suspect() -> None:
    scorer = TransitionScorer()
    scorer.setup()
    out = scorer.score(make_frames([scene_a(0)] * 5))
    assert out["embed_cos_min"] == pytest.approx(1.0, abs=1e-5)
    assert out["embed_cos_mean"] == pytest.approx(1.0, abs=1e-5)
    assert out["embed_mse_mean"] == pytest.approx(0.0, abs=1e-8)
    assert out["transition_suspect"] is False


def test_hidden_cut_is_flagged() -> None:
    scorer = TransitionScorer()
    scorer.setup()
    same = scorer.score(make_frames([scene_a(s) for s in (0, 4, 8, 12, 16, 20)]))
    cut = scorer.score(
        make_frames([scene_a(s) for s in (0, 4, 8)] + [scene_b(s) for s in (0, 4, 8)])
    )
    # A slow pan stays near-identical in embedding space; the cut drops far below 0.8.
    assert same["embed_cos_min"] > 0.95
    assert same["transition_suspect"] is False
    assert cut["embed_cos_min"] < 0.6
    assert cut["transition_suspect"] is True
    # One bad pair of five: the mean stays high while the minimum exposes the cut.
    assert cut["embed_cos_mean"] > cut["embed_cos_min"] + 0.3
    # Uniformly low similarity (every pair a jump, like frantic motion) is no dip: not a cut,
    # unless the plain EasyAnimate rule is asked for.
    jumpy = [scene_a(0), scene_b(0), scene_a(8), scene_b(8), scene_a(16), scene_b(16)]
    frantic = scorer.score(make_frames(jumpy))
    assert frantic["embed_cos_min"] < 0.8 and frantic["transition_suspect"] is False
    plain = TransitionScorer(min_dip=0.0)
    plain.setup()
    assert plain.score(make_frames(jumpy))["transition_suspect"] is True
    # MSE of unit vectors is (2 - 2 cos) / 1280 per pair.
    assert cut["embed_mse_mean"] == pytest.approx((2 - 2 * cut["embed_cos_mean"]) / 1280, rel=1e-4)


def test_single_frame_gives_nulls() -> None:
    out = TransitionScorer().score(make_frames([scene_a(0)]))
    assert out == dict.fromkeys(TransitionScorer.columns)


def test_embedding_is_unit_1280_and_shared_features() -> None:
    frames = make_frames([scene_a(0), scene_a(4), scene_b(0), scene_b(4)])
    out = EmbeddingScorer().score(frames)
    vec = np.asarray(out["embedding"], np.float32)
    assert vec.shape == (embed.FEATURE_DIM,)
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    assert out["embed_model"] == "package:efficientnet-lite0"
    # Features were cached on the clip; a transition scorer on the same frames reuses them.
    (key,) = [k for k in frames.cache if k.startswith("embed:")]
    cached = frames.cache[key]
    TransitionScorer().score(frames)
    assert [k for k in frames.cache if k.startswith("embed:")] == [key]
    assert frames.cache[key] is cached
    # Same content -> same vector; different content -> clearly different vector.
    again = np.asarray(EmbeddingScorer().score(make_frames([scene_a(0)] * 4))["embedding"])
    other = np.asarray(EmbeddingScorer().score(make_frames([scene_b(0)] * 4))["embedding"])
    assert float(again @ other) < 0.6


def test_model_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    real_build = embed.build_efficientnet_lite0

    def counting_build(ref):  # type: ignore[no-untyped-def]
        loads.append(ref.spec)
        return real_build(ref)

    monkeypatch.setattr(embed, "build_efficientnet_lite0", counting_build)
    embed.load_encoder.cache_clear()
    try:
        transition, embedding = TransitionScorer(), EmbeddingScorer()
        transition.setup()
        embedding.setup()
        for _ in range(2):
            transition.score(make_frames([scene_a(0), scene_b(0)]))
            embedding.score(make_frames([scene_a(0), scene_b(0)]))
        assert loads == ["package:efficientnet-lite0"]
    finally:
        embed.load_encoder.cache_clear()


def test_classify_returns_topk_imagenet() -> None:
    encoder = embed.load_encoder()
    idx, prob = encoder.classify(np.stack([scene_a(0), scene_b(0)]), k=3)
    assert idx.shape == (2, 3) and prob.shape == (2, 3)
    assert ((idx >= 0) & (idx < 1000)).all()
    assert (
        (np.diff(prob, axis=1) <= 0).all() and (prob > 0).all() and (prob.sum(1) <= 1 + 1e-6).all()
    )


def test_resolve_packaged_model_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = resolve_model("package:efficientnet-lite0")
    assert ref.kind == "package"
    assert ref.path.is_file() and ref.path.suffix == ".pth"


def test_local_checkpoint_path_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    ckpt = tmp_path / "lite0.pt"
    torch.save({"state_dict": embed.load_encoder().model.state_dict()}, ckpt)
    scorer = EmbeddingScorer(model=str(ckpt))
    vec = scorer.score(make_frames([scene_a(0)] * 2))["embedding"]
    ref_vec = EmbeddingScorer().score(make_frames([scene_a(0)] * 2))["embedding"]
    assert np.allclose(vec, ref_vec, atol=1e-6)
    embed.load_encoder.cache_clear()


def test_unavailable_models_raise_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CLIPSIEVE_MODELS", str(tmp_path))
    with pytest.raises(ModelUnavailable) as err:
        resolve_model("no-such-org/no-such-model-xyz")
    message = str(err.value)
    assert "\n" not in message
    assert "no-such-org/no-such-model-xyz" in message and "CLIPSIEVE_MODELS" in message
    with pytest.raises(ModelUnavailable, match="not found"):
        resolve_model(str(tmp_path / "missing.pth"))
    with pytest.raises(ModelUnavailable, match="unknown packaged model"):
        resolve_model("package:resnet9000")


def test_models_dir_serves_hub_ids(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "org" / "model").mkdir(parents=True)
    monkeypatch.setenv("CLIPSIEVE_MODELS", str(tmp_path))
    ref = resolve_model("org/model")
    assert ref.kind == "hub" and ref.path == tmp_path / "org" / "model"
