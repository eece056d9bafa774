"""Config: defaults, YAML round trip of the commented default file, one-line errors."""

from __future__ import annotations

import pytest

from clipsieve.config import (
    DEFAULT_CONFIG_YAML,
    ConfigError,
    RunConfig,
    config_from_dict,
    load_config,
)


def test_default_yaml_equals_default_objects(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(DEFAULT_CONFIG_YAML)
    assert load_config(path) == RunConfig()


def test_values_are_typed_and_ints_accepted_for_floats():
    config = config_from_dict({"policy": {"min_s": 3, "max_s": None}, "cut": {"mode": "copy"}})
    assert config.policy.min_s == 3.0 and isinstance(config.policy.min_s, float)
    assert config.policy.max_s is None
    assert config.cut.mode == "copy"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"policy": {"max_len": 3}}, "unknown key 'policy.max_len'"),
        ({"polcy": {}}, "unknown key 'polcy'"),
        ({"policy": {"min_s": "two"}}, "policy.min_s must be a number"),
        ({"cut": {"mode": "fast"}}, "cut.mode must be 'reencode' | 'copy'"),
        ({"cut": {"crf": 99}}, "cut.crf must be between 0 and 51"),
        ({"policy": {"min_s": 5, "max_s": 2}}, "policy.max_s must be >= policy.min_s"),
        ({"export": {"formats": ["parquet", "xml"]}}, "unknown format"),
        ({"cut": {"enabled": "yes"}}, "cut.enabled must be true/false"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_errors_name_the_field_in_one_line(data, fragment):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_unreadable_and_invalid_files_give_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)
