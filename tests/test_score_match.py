"""Text-video matching: 100 x cosine of caption and frames, caption selection, null handling and
category prompts, on a tiny random CLIP checkpoint loaded by path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipsieve.errors import UserError
from clipsieve.media.frames import Frames
from clipsieve.models import encoders
from clipsieve.score.match import MatchScorer, option_column, row_text
from clipsieve.score.stage import make_scorer
from clipsieve.testing import randominit

pytestmark = pytest.mark.usefixtures("fresh_encoders")


def frames(n: int, seed: int) -> Frames:
    images = np.random.default_rng(seed).integers(0, 256, (n, 40, 60, 3), np.uint8)
    return Frames(images, np.arange(n), np.arange(n) / 25.0, 25.0, (60, 40))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_match_is_100_cosine_mean_and_max(tiny_clip: str) -> None:
    scorer = MatchScorer(model=tiny_clip)
    clip = frames(3, 0)
    (out,) = scorer.score_rows([clip], [{"caption_src": "a dog runs on grass"}])
    enc = encoders.load_hub_encoder("clip", tiny_clip)
    sims = (
        100 * unit(enc.features(clip.images)) @ unit(enc.text_features(["a dog runs on grass"]))[0]
    )
    assert out["match"] == pytest.approx(float(sims.mean()), abs=1e-3)
    assert out["match_max"] == pytest.approx(float(sims.max()), abs=1e-3)
    assert -100 <= out["match"] <= out["match_max"] <= 100


def test_text_selection_and_nulls(tiny_clip: str) -> None:
    assert row_text({"caption": "new", "caption_src": "old"}, None) == "new"
    assert row_text({"caption": "  ", "caption_src": "old"}, None) == "old"
    assert row_text({"caption": None, "caption_src": None}, None) is None
    assert row_text({"caption": "new", "title": "t"}, "title") == "t"
    scorer = MatchScorer(model=tiny_clip)
    rows = [{"caption": "a cat"}, {"caption": None}, {}, {"caption_src": "a cat"}]
    out = scorer.score_rows([frames(3, 1)] * 3 + [frames(0, 2)], rows)
    assert out[0]["match"] is not None
    assert out[1] == out[2] == {"match": None, "match_max": None}  # no text: null, not 0
    assert out[3]["match"] is None  # no frames
    # Same frames, same caption: same score whichever column it came from.
    (again,) = scorer.score_rows([frames(3, 1)], [{"caption_src": "a cat"}])
    assert again["match"] == pytest.approx(out[0]["match"], abs=1e-4)


def test_category_prompts(tiny_clip: str) -> None:
    assert option_column("Wild Animal!") == "match_wild_animal"
    scorer = make_scorer("match", model=tiny_clip, prompts="animal")
    assert scorer.columns == ("match", "match_max", "match_animal")
    out = scorer.score(frames(3, 3))  # no row: caption columns null, prompt scored
    assert out["match"] is None and -100 <= out["match_animal"] <= 100
    two = MatchScorer(model=tiny_clip, prompts=["animal", "city street"])
    both = two.score(frames(3, 3))
    assert both["match_animal"] == pytest.approx(out["match_animal"], abs=1e-4)
    assert both["match_city_street"] != both["match_animal"]


def test_bad_parameters_are_user_errors() -> None:
    with pytest.raises(UserError, match="template"):
        make_scorer("match", template="a photo")
    with pytest.raises(UserError, match="same column"):
        make_scorer("match", prompts=["a b", "a-b"])


def test_missing_model_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPSIEVE_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception, match=r"^match scorer needs laion/CLIP-ViT-g-14-laion2B"):
        MatchScorer(model="laion/CLIP-ViT-g-14-laion2B-s12B-b42K").setup()


def test_aesthetic_and_match_share_one_clip_pass(
    tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clipsieve.score.aesthetic import LaionAestheticScorer

    head = randominit.write_laion_head(tmp_path / "head.pth", input_size=24)
    aes = LaionAestheticScorer(model=tiny_clip, head=str(head))
    match = MatchScorer(model=tiny_clip)
    assert aes.frame_spec() == match.frame_spec()  # so the sampler hands both the same Frames
    aes.setup()
    enc = encoders.load_hub_encoder("clip", tiny_clip)
    calls: list[int] = []
    real = enc.encode_prepared
    monkeypatch.setattr(enc, "encode_prepared", lambda x: calls.append(len(x)) or real(x))
    clips = [frames(3, 5), frames(3, 6)]
    aes.score_rows(clips, [{}, {}])
    match.score_rows(clips, [{"caption": "a"}, {"caption": "b"}])
    assert calls == [6]  # one image pass, both clips batched together
