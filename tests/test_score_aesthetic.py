"""Aesthetic scorers (LAION on CLIP, v2.5 on SigLIP) with tiny random checkpoints served under
their published names from CLIPSIEVE_MODELS, offline: the default loading path end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from clipsieve.media.frames import Frames
from clipsieve.models import encoders
from clipsieve.models.registry import ModelUnavailable
from clipsieve.runfolder import load_clips
from clipsieve.score import aesthetic
from clipsieve.score.aesthetic import LaionAestheticScorer, SiglipAestheticScorer
from clipsieve.score.rescore import score_step
from clipsieve.steps import save_clips
from clipsieve.testing import randominit


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny checkpoints laid out as ``$CLIPSIEVE_MODELS/<published id>``."""
    root = tmp_path_factory.mktemp("models")
    randominit.write_clip(root / encoders.DEFAULT_CLIP)
    randominit.write_siglip(root / encoders.DEFAULT_SIGLIP)
    randominit.write_laion_head(root / aesthetic.LAION_HEAD, input_size=24)
    randominit.write_v25_head(root / aesthetic.V25_HEAD.rsplit("/", 1)[-1], input_size=48)
    return root


@pytest.fixture
def offline(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLIPSIEVE_MODELS", str(models_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoders.clear_encoder_cache()
    yield models_dir
    encoders.clear_encoder_cache()


def clip_frames(n: int, seed: int, size: tuple[int, int] = (64, 48)) -> Frames:
    images = np.random.default_rng(seed).integers(0, 256, (n, size[1], size[0], 3), np.uint8)
    return Frames(images, np.arange(n), np.arange(n) / 25.0, 25.0, size)


def test_laion_aes_is_mean_of_head_on_normalised_clip(offline: Path) -> None:
    scorer = LaionAestheticScorer()
    frames = clip_frames(3, 0)
    out = scorer.score(frames)
    assert set(out) == {"aes"} and np.isfinite(out["aes"])
    # The same number by hand: normalised CLIP image embedding -> the published MLP -> mean.
    enc = encoders.load_hub_encoder("clip", encoders.DEFAULT_CLIP)
    emb = torch.from_numpy(enc.features(frames.images))
    emb = emb / emb.norm(dim=1, keepdim=True)
    head = aesthetic.LaionAestheticHead(24)
    head.load_state_dict(torch.load(offline / aesthetic.LAION_HEAD, weights_only=True))
    with torch.no_grad():
        expected = head.eval()(emb)[:, 0].mean().item()
    assert out["aes"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert sorted(k for k in head.state_dict() if k.endswith("weight")) == [
        f"layers.{i}.weight" for i in (0, 2, 4, 6, 7)
    ]


def test_batched_equals_per_clip_and_empty_is_null(offline: Path) -> None:
    scorer = SiglipAestheticScorer()
    clips = [clip_frames(4, 1), clip_frames(4, 2, (40, 40)), clip_frames(0, 3)]
    batched = scorer.score_rows(clips, [{}, {}, {}])
    single = [scorer.score(clip_frames(4, 1)), scorer.score(clip_frames(4, 2, (40, 40)))]
    assert batched[2] == {"aes_siglip": None}
    for got, want in zip(batched[:2], single, strict=True):
        assert got["aes_siglip"] == pytest.approx(want["aes_siglip"], rel=1e-4, abs=1e-5)
    assert scorer.frame_spec().count == 4
    assert LaionAestheticScorer().frame_spec().fractions == (0.1, 0.5, 0.9)


def test_missing_weights_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPSIEVE_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoders.clear_encoder_cache()
    with pytest.raises(ModelUnavailable) as err:
        LaionAestheticScorer().setup()
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "aesthetic scorer needs openai/clip-vit-large-patch14; "
        "set CLIPSIEVE_MODELS or run with network once ("
    )


def test_head_for_another_backbone_is_refused(offline: Path, tmp_path: Path) -> None:
    wrong = randominit.write_laion_head(tmp_path / "b32.pth", input_size=512)
    with pytest.raises(ModelUnavailable, match="expects 512-d embeddings, the backbone gives 24-d"):
        LaionAestheticScorer(head=str(wrong)).setup()


def test_score_run_end_to_end(offline: Path, run_copy: Path) -> None:
    clips = load_clips(run_copy)
    texts = ["a red ball" if i % 2 else None for i in range(clips.num_rows)]
    save_clips(run_copy, clips.append_column("caption_src", [texts]), {"name": "test"})
    scored = score_run(run_copy, ["aesthetic", "aesthetic_siglip", "match", "static"])
    rows = [r for r in scored.to_pylist() if r["keep"] and r["status"] != "error"]
    assert rows
    for row in rows:
        assert np.isfinite(row["aes"]) and np.isfinite(row["aes_siglip"])
        assert row["rgb_diff_mean"] is not None and row["score_errors"] is None
        if row["caption_src"]:
            assert -100.0 <= row["match"] <= row["match_max"] <= 100.0
        else:
            assert row["match"] is None and row["match_max"] is None
    # Provenance names the models that produced the columns.
    stage = load_clips(run_copy).schema.metadata
    assert b"openai/clip-vit-large-patch14" in b"".join(stage.values())


@pytest.fixture
def no_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty model folder and no hub: every model scorer is unavailable."""
    monkeypatch.setenv("CLIPSIEVE_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoders.clear_encoder_cache()


def test_run_continues_without_unavailable_scorer(run_copy: Path, no_models: None) -> None:
    scored = score_run(run_copy, ["static", "aesthetic"])
    assert "aes" not in scored.column_names and "rgb_diff_mean" in scored.column_names
    rows = [r for r in scored.to_pylist() if r["keep"] and r["status"] != "error"]
    assert rows and all(r["rgb_diff_mean"] is not None for r in rows)
    assert all(r["score_errors"].startswith("aesthetic: aesthetic scorer needs") for r in rows)


def test_only_unavailable_scorers_leave_rows_ok(run_copy: Path, no_models: None) -> None:
    before = load_clips(run_copy).column("status").to_pylist()
    scored = score_run(run_copy, ["aesthetic_siglip"])
    assert scored.column("status").to_pylist() == before  # no clip marked broken
    errors = [e for e in scored.column("score_errors").to_pylist() if e]
    assert errors and all("aesthetic_siglip scorer needs google/siglip" in e for e in errors)


def score_run(run_dir: Path, scorers: list[str]):
    """Score the run, then its whole clip table (small test runs)."""
    score_step(run_dir, scorers)
    return load_clips(run_dir)
