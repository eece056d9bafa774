"""Config files under fuzzing: any input is a valid config or one ConfigError line, never a crash.

Hypothesis builds documents from the real config's keys (so most inputs reach deep into the
validation) mixed with junk keys, wrong types, odd strings and raw bytes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipsieve.config import ConfigError, RunConfig, config_from_dict, load_config

SECTIONS = {f.name: f.type for f in dataclasses.fields(RunConfig)}
KEYS = {
    section.name: [f.name for f in dataclasses.fields(getattr(RunConfig(), section.name))]
    for section in dataclasses.fields(RunConfig)
}
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["hybrid", "content", "copy", "reencode", "even", "fixed", "ray", "local"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def documents(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 9)) == 0:
        return draw(values)  # not even a mapping
    doc: dict[str, object] = {}
    for section in draw(st.lists(st.sampled_from([*KEYS, "bogus"]), max_size=4, unique=True)):
        keys = KEYS.get(section, ["x"])
        body = {
            key: draw(values)
            for key in draw(st.lists(st.sampled_from([*keys, "nope"]), max_size=3, unique=True))
        }
        doc[section] = body if draw(st.integers(0, 7)) else draw(values)
    return doc


def _one_line(exc: ConfigError) -> bool:
    text = str(exc)
    return text.startswith("config: ") and "\n" not in text and len(text) < 2000


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_any_document_is_a_config_or_one_line(doc: object) -> None:
    try:
        config = config_from_dict(doc)
    except ConfigError as exc:
        assert _one_line(exc), str(exc)
    else:
        assert isinstance(config, RunConfig)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_any_file_content_is_a_config_or_one_line(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as exc:
        assert _one_line(exc), str(exc)


def test_yaml_tags_never_construct_objects(tmp_path: Path) -> None:
    """A python/object tag is refused as invalid YAML instead of running anything."""
    path = tmp_path / "c.yaml"
    path.write_text("cut: !!python/object/apply:os.system ['echo owned > owned.txt']\n")
    try:
        load_config(path)
    except ConfigError as exc:
        assert _one_line(exc)
    assert not (tmp_path / "owned.txt").exists() and not Path("owned.txt").exists()
    assert yaml.safe_dump({"a": 1})  # safe_load/safe_dump are what the loader uses
