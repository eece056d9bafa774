"""Caption post-processing, the rewrite parser and the prompt templates (pure functions)."""

from __future__ import annotations

import pytest

from clipsieve.caption.clean import (
    add_score_words,
    clean_caption,
    duplicate_flags,
    looks_english,
    score_words,
)
from clipsieve.caption.prompts import load_prompt, shipped_prompts
from clipsieve.caption.rewrite import parse_rewrite
from clipsieve.caption.stage import PostOptions, postprocess_rows
from clipsieve.errors import UserError


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("The video shows a dog running on a beach.", "A dog running on a beach."),
        ("the video showcases a red car driving at night", "a red car driving at night"),
        ("In this video, a man cooks pasta.", "A man cooks pasta."),
        ("This clip depicts that  two   kids play.", "Two kids play."),
        ("Caption: a cat sleeps.", "A cat sleeps."),
        (
            "a boat &amp;amp; a pier, see https://x.io/a?b=1 <b>now</b>.",
            "a boat & a pier, see now.",
        ),
        ("A bird flies. The sky is blue. Then the bird", "A bird flies. The sky is blue."),
        ("a single unpunctuated caption", "a single unpunctuated caption"),
        ("  ", ""),
        (None, ""),
    ],
)
def test_clean_caption(raw, clean) -> None:
    assert clean_caption(raw) == clean


def test_clean_trims_truncated_answers_even_when_punctuated() -> None:
    assert clean_caption("A man walks. He opens the door and.", truncated=True) == "A man walks."


def test_english_heuristic() -> None:
    assert looks_english("a man walks a dog in the park at sunset")
    assert looks_english("red car")  # short: alphabet test only
    assert not looks_english("Ein Mann geht mit einem Hund durch den Park")
    assert not looks_english("un homme promène un chien dans le parc")
    assert not looks_english("一个男人在公园里遛狗")
    assert not looks_english("")


def test_duplicates_keep_the_first() -> None:
    flags = duplicate_flags(["A dog runs.", "a dog runs", "A cat.", None, "A DOG RUNS!"])
    assert flags == [False, True, False, False, True]


def test_score_words() -> None:
    assert score_words(6.8, 0.1) == "aesthetic quality: high. almost no motion."
    assert score_words(5.0, None) == "aesthetic quality: medium."
    assert (
        add_score_words("A dog runs", 3.0, 7.0)
        == "A dog runs. Aesthetic quality: low. fast motion."
    )
    assert add_score_words("a dog", None, None) == "a dog"


@pytest.mark.parametrize(
    "answer",
    [
        '{"caption": "a dog runs"}',
        'Sure! ```json\n{"caption": "a dog runs"}\n```',
        "Here: {'caption': 'a dog runs'} hope it helps",
        '{"rewritten_caption": "a dog runs", "notes": 1}',
        '{"caption": "a dog runs", "extra": {"x": "}"}}',
        '"caption": "a dog runs",',
    ],
)
def test_parse_rewrite_is_robust(answer) -> None:
    assert parse_rewrite(answer) == "a dog runs"


def test_parse_rewrite_fails_without_caption() -> None:
    with pytest.raises(ValueError, match="no caption"):
        parse_rewrite("I cannot help with that.")


def test_shipped_prompts_render_caption_and_camera_motion(tmp_path) -> None:
    assert {"recaption", "detailed", "camera", "rewrite"} <= set(shipped_prompts())
    recaption = load_prompt("recaption")
    text = recaption.render({"caption_src": "a dog", "camera_motion": "pan_left"})
    assert '"a dog"' in text and "lowercase" in text and "100 words" in text
    camera = load_prompt("camera").render({"caption_src": "a dog", "camera_motion": "pan_left"})
    assert "the camera pans left" in camera and '"a dog"' in camera
    assert "(no caption yet)" in recaption.render({"caption_src": None})
    assert "$" not in load_prompt("camera").render({})
    own = tmp_path / "p.txt"
    own.write_text("say $caption", encoding="utf-8")
    assert load_prompt(str(own)).render({"caption": "hi"}) == "say hi"
    with pytest.raises(UserError, match="unknown prompt"):
        load_prompt("no-such-prompt")


def _row(raw: str | None, **kw) -> dict:
    return {"keep": True, "drop_reason": None, "caption_raw": raw, **kw}


def test_postprocess_marks_and_is_idempotent() -> None:
    rows = [
        _row("The video shows a dog running."),
        _row("the video shows a dog running"),
        _row("The video shows"),
        _row("Ein Mann geht mit einem Hund durch den Park."),
        _row(None),
        _row("A cat.", keep=False, drop_reason="too_short"),
    ]
    options = PostOptions(clean=True, english_only=True, dedup=True)
    counts = postprocess_rows(rows, options)
    assert [r["caption"] for r in rows[:3]] == ["A dog running.", "a dog running", ""]
    assert [r["drop_reason"] for r in rows] == [
        None,
        "caption_duplicate",
        "caption_empty",
        "caption_language",
        None,
        "too_short",
    ]
    assert counts == {"caption_empty": 1, "caption_language": 1, "caption_duplicate": 1}
    assert "caption" not in rows[4]
    again = postprocess_rows(rows, PostOptions())  # other options: marks undone, raw restored
    assert again == {"caption_empty": 0, "caption_language": 0, "caption_duplicate": 0}
    assert rows[1]["keep"] is True and rows[0]["caption"] == "The video shows a dog running."
    assert rows[5]["keep"] is False and rows[5]["drop_reason"] == "too_short"
