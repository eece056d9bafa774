"""Hub encoders (CLIP, SigLIP, SDXL-VAE): loading by path and via CLIPSIEVE_MODELS, and their
use as the backbone of the transition and embedding scorers. Tiny random checkpoints of the
real architectures stand in for the published weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipsieve.errors import UserError
from clipsieve.media.frames import Frames
from clipsieve.models import encoders
from clipsieve.models.registry import ModelUnavailable, resolve_model
from clipsieve.score.embed import EmbeddingScorer, TransitionScorer
from clipsieve.score.stage import make_scorer
from clipsieve.testing import randominit


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_encoders")
    return {
        "clip": randominit.write_clip(root / "clip"),
        "siglip": randominit.write_siglip(root / "siglip"),
        "vae": randominit.write_sdxl_vae(root / "vae"),
    }


@pytest.fixture(autouse=True)
def fresh_cache():
    encoders.clear_encoder_cache()
    yield
    encoders.clear_encoder_cache()


def frames_of(images: np.ndarray) -> Frames:
    n = len(images)
    return Frames(images, np.arange(n), np.arange(n) / 2.0, 2.0, images.shape[2:0:-1])


def pictures(n: int, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_clip_image_and_text_features_by_path(tiny: dict[str, Path]) -> None:
    enc = encoders.load_hub_encoder("clip", str(tiny["clip"]))
    assert isinstance(enc, encoders.ClipEncoder) and enc.size == 32 and enc.dim == 24
    feats = enc.features(pictures(3))
    assert feats.shape == (3, 24) and feats.dtype == np.float32 and np.isfinite(feats).all()
    text = enc.text_features(["a photo of a cat", "waves on a beach at dusk " * 20])
    assert text.shape == (2, 24) and np.isfinite(text).all()
    # Frame order inside a batch does not change a frame's features.
    again = enc.features(pictures(3)[::-1])[::-1]
    assert np.allclose(feats, again, atol=1e-5)


def test_models_dir_serves_hub_ids_offline(
    tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "openai").mkdir()
    (tmp_path / "openai" / "clip-vit-large-patch14").symlink_to(tiny["clip"])
    monkeypatch.setenv("CLIPSIEVE_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = encoders.load_hub_encoder(*encoders.parse_encoder("clip"))
    assert enc.spec == "clip:openai/clip-vit-large-patch14" and enc.dim == 24


def test_siglip_vision_tower_pooled(tiny: dict[str, Path]) -> None:
    enc = encoders.load_hub_encoder("siglip", str(tiny["siglip"]))
    assert enc.dim == 48 and enc.size == 32 and not enc.crop
    assert enc.features(pictures(2)).shape == (2, 48)


def test_prepare_crops_clip_and_squashes_siglip() -> None:
    # A wide frame whose left and right thirds are white: the CLIP crop keeps only the middle.
    image = np.zeros((1, 60, 180, 3), np.uint8)
    image[:, :, :60] = image[:, :, 120:] = 255
    zero, one = np.zeros(3, np.float32), np.ones(3, np.float32)
    cropped = encoders.prepare_images(image, 30, True, zero, one)
    squashed = encoders.prepare_images(image, 30, False, zero, one)
    assert cropped.shape == squashed.shape == (1, 3, 30, 30)
    assert cropped.max() < 0.05 and squashed.max() > 0.95


def test_transition_on_sdxl_vae_and_embedding_on_clip(tiny: dict[str, Path]) -> None:
    same = frames_of(np.repeat(pictures(1, 224, 224), 3, axis=0))
    cut = frames_of(np.concatenate([pictures(2, 224, 224, 1)[:1], pictures(2, 224, 224, 2)]))
    vae = TransitionScorer(encoder=f"sdxl-vae:{tiny['vae']}")
    steady, jumpy = vae.score(same), vae.score(cut)
    assert steady["embed_cos_min"] == pytest.approx(1.0, abs=1e-5)
    assert steady["transition_suspect"] is False
    assert jumpy["embed_cos_min"] < steady["embed_cos_min"]
    scorer = EmbeddingScorer(encoder=f"clip:{tiny['clip']}")
    out = scorer.score(same)
    assert out["embed_model"] == f"clip:{tiny['clip']}"
    assert len(out["embedding"]) == 24
    assert np.linalg.norm(out["embedding"]) == pytest.approx(1.0, abs=1e-5)
    assert scorer.params()["encoder"] == f"clip:{tiny['clip']}"


def test_unknown_encoder_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown encoder 'resnet'"):
        make_scorer("embed", encoder="resnet")


def test_missing_encoder_weights_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLIPSIEVE_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as err:
        TransitionScorer(encoder="sdxl-vae:no-org/no-vae").setup()
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "transition scorer needs no-org/no-vae; set CLIPSIEVE_MODELS or run with network once"
    )
    # A folder that is not a checkpoint of the family is refused in one line too.
    (tmp_path / "junk").mkdir()
    with pytest.raises(ModelUnavailable, match="is not a CLIP checkpoint"):
        encoders.load_hub_encoder("clip", str(tmp_path / "junk"))


def test_hub_file_and_url_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPSIEVE_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    head = tmp_path / "org" / "repo" / "head.pth"
    head.parent.mkdir(parents=True)
    head.write_bytes(b"x")
    assert resolve_model("org/repo/head.pth").path == head
    (tmp_path / "weights.pth").write_bytes(b"x")
    assert resolve_model("https://example.invalid/a/weights.pth").path == tmp_path / "weights.pth"
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE is set"):
        resolve_model("https://example.invalid/a/other.pth")
