"""Caption post-processing: text cleaning, a language check, score words and duplicates.

Cleaning follows what Open-Sora's ``--clean-caption`` / ``--refine-llm-caption`` do to VLM output:
HTML entities and tags, URLs, "The video shows ..."-style openers, repeated whitespace, and a
sentence cut off at the end (an answer that hit max_tokens). The language check is a light
heuristic (alphabet + English function words) so it needs no model download; it is meant to
catch a VLM answering in the wrong language, not to identify languages.

Everything here is a pure function of text (and of score columns for the suffix), so the final
caption can be recomputed from the stored raw answer with other options, without asking the VLM
again.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+", re.IGNORECASE)
_TAG = re.compile(r"</?[a-zA-Z][^<>]{0,200}>")
_SUBJECT = r"(?:video|clip|footage|image|images|scene|frames?|sequence|shot|animation|film)"
_VERB = (
    r"(?:shows?|showcases?|depicts?|features?|captures?|presents?|displays?|portrays?|"
    r"illustrates?|highlights?|is showing|begins with|opens with|starts with)"
)
_OPENERS = [
    re.compile(
        rf"^(?:the|this|in the|in this)\s+(?:short\s+|brief\s+)?{_SUBJECT}\s+(?:also\s+)?"
        rf"{_VERB}\b(?:\s+(?:that|how)\b)?\s*[:,]?\s*",
        re.IGNORECASE,
    ),
    re.compile(rf"^(?:in|throughout|during)\s+(?:the|this)\s+{_SUBJECT}\s*,\s*", re.IGNORECASE),
    re.compile(rf"^(?:the|these)\s+{_SUBJECT}\s+(?:show|depict|feature)\s*", re.IGNORECASE),
    re.compile(
        r"^(?:here is|here's)\s+(?:a|the)\s+(?:\w+\s+){0,3}(?:caption|description)\s*:\s*",
        re.IGNORECASE,
    ),
    re.compile(r"^(?:caption|description)\s*:\s*", re.IGNORECASE),
]
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?(?=\s|$)")
_TERMINAL = (".", "!", "?", '"', "'", ")", "]")

ENGLISH_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "in",
        "on",
        "at",
        "to",
        "with",
        "from",
        "by",
        "for",
        "into",
        "onto",
        "over",
        "under",
        "is",
        "are",
        "was",
        "were",
        "be",
        "being",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "their",
        "they",
        "he",
        "she",
        "his",
        "her",
        "him",
        "we",
        "you",
        "while",
        "as",
        "up",
        "down",
        "out",
        "off",
        "near",
        "next",
        "behind",
        "front",
        "through",
        "then",
    ]
)


def strip_openers(text: str) -> str:
    """Remove leading "The video shows ..."-style phrases (repeatedly: they stack)."""
    for _ in range(3):
        before = text
        for pattern in _OPENERS:
            text = pattern.sub("", text, count=1).lstrip()
        if text == before:
            break
    return text


def trim_unfinished(text: str, truncated: bool = False) -> str:
    """Drop a trailing sentence that was cut off.

    A caption that ends without terminal punctuation but contains an earlier complete sentence
    (or one the backend marked ``truncated``) loses the unfinished tail; a single unpunctuated
    sentence is kept whole, because lowercase short captions often carry no final period.
    """
    stripped = text.rstrip()
    if not stripped or (stripped.endswith(_TERMINAL) and not truncated):
        return stripped
    ends = list(_SENTENCE_END.finditer(stripped))
    if not ends:
        return stripped
    cuts = [m.end() for m in ends if m.end() < len(stripped)]
    if not cuts:
        return stripped
    return stripped[: cuts[-1]].rstrip()


def clean_caption(text: str | None, truncated: bool = False) -> str:
    """The cleaned caption ('' when nothing is left)."""
    if not text:
        return ""
    starts_upper = text.lstrip()[:1].isupper()
    for _ in range(2):  # double-escaped entities (&amp;amp;) are common in scraped text
        text = html.unescape(text)
    text = _TAG.sub(" ", text)
    text = _URL.sub(" ", text)
    text = text.replace("\u200b", " ").strip().strip('"').strip()
    text = " ".join(text.split())
    text = strip_openers(text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = trim_unfinished(text, truncated)
    text = text.strip(" ,;:-")
    if text and starts_upper and text[0].islower():
        text = text[0].upper() + text[1:]
    return text


def looks_english(text: str | None, min_words: int = 4) -> bool:
    """A light check that ``text`` is English (no model, no download).

    At least 85 % of its letters must be ASCII and, for texts of ``min_words`` words or more,
    at least 12 % of the words must be common English function words ("a", "the", "with", ...).
    Short texts pass on the alphabet test alone.
    """
    if not text:
        return False
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    if sum(c.isascii() for c in letters) / len(letters) < 0.85:
        return False
    words = re.findall(r"[a-z']+", text.lower())
    if len(words) < min_words:
        return True
    return sum(w in ENGLISH_WORDS for w in words) / len(words) >= 0.12


def dedup_key(text: str) -> str:
    """Captions that differ only in case, punctuation or spacing share this key."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def duplicate_flags(captions: Sequence[str | None], seen: set[str] | None = None) -> list[bool]:
    """True for each caption that repeats an earlier one (the first occurrence is kept).

    ``seen``: the keys of earlier batches, updated in place (a table streamed batch by batch).
    """
    seen = set() if seen is None else seen
    flags = []
    for caption in captions:
        key = dedup_key(caption) if caption else ""
        flags.append(bool(key) and key in seen)
        if key:
            seen.add(key)
    return flags


# Open-Sora v1.3 conditioned on scores by appending them to the caption; here they are words.
AES_LEVELS: tuple[tuple[float, str], ...] = ((4.0, "low"), (5.5, "medium"), (6.5, "good"))
MOTION_LEVELS: tuple[tuple[float, str], ...] = (
    (0.3, "almost no"),
    (2.0, "slight"),
    (6.0, "moderate"),
)


def _level(value: float, levels: Iterable[tuple[float, str]], top: str) -> str:
    for limit, word in levels:
        if value < limit:
            return word
    return top


def score_words(aes: float | None, motion: float | None) -> str:
    """Score levels as a sentence, e.g. "aesthetic quality: high. moderate motion."

    ``aes`` is the LAION 0-10 aesthetic score (5.5 fair, 6.5 high as Open-Sora reads it);
    ``motion`` is ``flow_mean`` (pixels per 0.25 s step at 240p).
    """
    parts = []
    if aes is not None:
        parts.append(f"aesthetic quality: {_level(float(aes), AES_LEVELS, 'high')}.")
    if motion is not None:
        parts.append(f"{_level(float(motion), MOTION_LEVELS, 'fast')} motion.")
    return " ".join(parts)


def add_score_words(caption: str, aes: float | None, motion: float | None) -> str:
    """``caption`` followed by :func:`score_words` (unchanged when there is nothing to add)."""
    words = score_words(aes, motion)
    if not caption or not words:
        return caption
    if caption[:1].isupper():
        words = words[0].upper() + words[1:]
    sep = "" if caption.endswith(_TERMINAL) else "."
    return f"{caption}{sep} {words}"
