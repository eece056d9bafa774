"""Keys and URL credentials never reach a file; a key goes only where the user sent it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import caption_server
from clipsieve.caption.openai_compat import OpenAIBackend
from clipsieve.cli import app
from clipsieve.redact import redact_text, redact_value
from clipsieve.runfolder import load_clips

KEY = "sk-secret-key-123456"
PASSWORD = "pw-secret-987"


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with caption_server.StandInServer() as srv:
        yield srv


def test_redact_text_masks_url_credentials_query_secrets_and_known_keys() -> None:
    text = (
        f"http://user:{PASSWORD}@host:8000/v1 s3://AKIA:abc@bucket/x "
        "https://cdn/v.mp4?sig=ABCDEF&start=3 https://x/y?X-Amz-Signature=deadbeef "
        f"Authorization: Bearer {KEY} and {KEY} again"
    )
    out = redact_text(text, [KEY])
    for secret in (PASSWORD, "AKIA", "abc@", "ABCDEF", "deadbeef", KEY):
        assert secret not in out
    assert "http://***@host:8000/v1" in out and "sig=***&start=3" in out
    assert redact_value({"a": [f"http://u:{PASSWORD}@h"], "n": 3}) == {
        "a": ["http://***@h"],
        "n": 3,
    }
    assert redact_text("plain words, /a/b.mp4, http://host/v1") == (
        "plain words, /a/b.mp4, http://host/v1"
    )


def test_openai_key_is_not_sent_to_other_servers_unasked(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --api-key-env, $OPENAI_API_KEY went to any --base-url, plain http included."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    unasked = OpenAIBackend(base_url=server.url, model="echo")
    assert unasked.key_env is None and "Authorization" not in unasked.client.headers
    unasked.close()
    assert OpenAIBackend(base_url="https://api.openai.com/v1").key_env == "OPENAI_API_KEY"
    assert OpenAIBackend(base_url="http://api.openai.com/v1").key_env is None  # not over http
    asked = OpenAIBackend(base_url=server.url, api_key_env="OPENAI_API_KEY")
    assert asked.client.headers["Authorization"] == f"Bearer {KEY}"
    asked.close()


def _file_texts(folder: Path) -> Iterator[tuple[Path, str]]:
    """Every file under ``folder`` as text; Parquet files as their rows and metadata."""
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
            yield path, json.dumps([table.to_pylist(), meta], default=str)
        else:
            yield path, path.read_bytes().decode("utf-8", errors="replace")


def test_credentials_never_reach_a_file(
    run_copy: Path, server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A key in --base-url and a key echoed by the server were stored verbatim in run.json,
    the Parquet metadata, report.html, caption_error and the exported training manifest."""
    monkeypatch.setenv("MY_KEY", KEY)
    host = server.url.removeprefix("http://")
    url = f"http://user:{PASSWORD}@{host}"
    common = ["--api-key-env", "MY_KEY", "--frame-size", "64", "--tries", "1"]
    for base_url, sent in ((server.url, f"Bearer {KEY}"), (url, "Basic ")):
        leaked = CliRunner().invoke(
            app, ["caption", str(run_copy), "--base-url", base_url, *common, "--model", "leak-key"]
        )
        assert leaked.exit_code == 2, leaked.output  # 403 is fatal: one line, the key masked
        assert KEY not in leaked.output and PASSWORD not in leaked.output
        assert server.authorizations[-1].startswith(sent)  # the credentials asked for went
        errors = [e for e in load_clips(run_copy).column("caption_error").to_pylist() if e]
        assert errors and all("bad credentials: B" in e and "***" in e for e in errors)
    common = ["--base-url", url, *common]
    ok = CliRunner().invoke(app, ["caption", str(run_copy), *common, "--overwrite"])
    assert ok.exit_code == 0, ok.output
    for args in (
        ["export", str(run_copy), "--format", "webdataset", "--out", str(tmp_path / "wds")],
        ["export", str(run_copy), "--format", "opensora-csv", "--out", str(tmp_path / "os")],
        ["export", str(run_copy), "--format", "views"],
        ["report", str(run_copy)],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    files = [*_file_texts(run_copy), *_file_texts(tmp_path / "wds"), *_file_texts(tmp_path / "os")]
    assert len(files) > 5
    for path, text in files:
        assert KEY not in text and PASSWORD not in text, path
    run_json = (run_copy / "run.json").read_text()
    assert "http://***@127.0.0.1" in run_json  # what was used is still on record
