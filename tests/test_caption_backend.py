"""Caption backends against the stand-in server: retries, Retry-After, giving up, request shapes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import numpy as np
import pytest

import caption_server
from caption_server import closed_port_url as _closed_port_url
from clipsieve.caption.backend_registry import make_backend
from clipsieve.caption.backends import (
    CaptionRequest,
    RetryPolicy,
    call_with_retries,
    parse_retry_after,
)
from clipsieve.caption.errors import BackendUnavailable, CaptionFailed, RetryableError
from clipsieve.caption.frames import ClipFrames
from clipsieve.caption.openai_compat import OpenAIBackend
from clipsieve.errors import UserError
from clipsieve.media.frames import FrameSpec


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    with caption_server.StandInServer(slow_s=1.5) as srv:
        yield srv


@pytest.fixture
def request_() -> CaptionRequest:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 48, 64, 3), dtype=np.uint8)
    jpegs = ClipFrames(FrameSpec(count=3)).jpegs(frames)
    return CaptionRequest("describe the clip", frames, jpegs)


def _backend(server: object, model: str, sleeps: list[float] | None = None, **kw) -> OpenAIBackend:
    backend = OpenAIBackend(base_url=server.url, model=model, backoff_s=0.01, **kw)
    if sleeps is not None:
        backend.policy.sleep = sleeps.append
    return backend


def test_echo_caption_with_usage(server, request_) -> None:
    server.reset()
    reply = _backend(server, "echo").caption(request_)
    assert reply.text.startswith("The video shows clip ") and reply.text.endswith("in 3 frames.")
    assert reply.tokens_in == 3 + 3 * 85 and reply.tokens_out == len(reply.text.split())
    assert reply.attempts == 1 and reply.latency_s > 0 and not reply.truncated
    assert server.requests == [("echo", server.requests[0][1], 200)]


def test_payload_has_base64_jpeg_data_urls(request_) -> None:
    payload = OpenAIBackend(model="m", max_tokens=77, temperature=0.0).payload(request_)
    parts = payload["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 3 + ["text"]
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1])[:3] == b"\xff\xd8\xff"  # JPEG magic
    assert payload["max_tokens"] == 77 and payload["temperature"] == 0.0
    json.dumps(payload)  # serialisable as is


def test_rate_limit_honours_retry_after(server, request_) -> None:
    server.reset()
    sleeps: list[float] = []
    reply = _backend(server, "rate-limit", sleeps).caption(request_)
    assert reply.attempts == 2 and sleeps == [1.0]
    assert [status for _, _, status in server.requests] == [429, 200]


def test_500_is_retried_with_backoff_then_succeeds(server, request_) -> None:
    server.reset()
    sleeps: list[float] = []
    reply = _backend(server, "flaky", sleeps).caption(request_)
    assert reply.attempts == 2 and len(sleeps) == 1 and 0.005 <= sleeps[0] <= 0.01


def test_gives_up_cleanly_after_n_tries(server, request_) -> None:
    server.reset()
    sleeps: list[float] = []
    with pytest.raises(CaptionFailed) as info:
        _backend(server, "error-500", sleeps, max_tries=3).caption(request_)
    assert "HTTP 500" in str(info.value) and "gave up after 3 tries" in str(info.value)
    assert info.value.kind == "transient" and len(sleeps) == 2 and len(server.requests) == 3


def test_malformed_json_is_retried_then_recorded(server, request_) -> None:
    with pytest.raises(CaptionFailed, match="malformed JSON"):
        _backend(server, "malformed", [], max_tries=2).caption(request_)


def test_slow_answer_times_out(server, request_) -> None:
    with pytest.raises(CaptionFailed, match="timed out"):
        _backend(server, "slow", [], max_tries=2, timeout_s=0.2).caption(request_)


def test_unauthorized_is_fatal_and_names_the_key_variable(server, request_) -> None:
    with pytest.raises(CaptionFailed) as info:
        _backend(server, "unauthorized", [], api_key_env="MY_KEY").caption(request_)
    assert info.value.kind == "fatal" and "$MY_KEY" in str(info.value)


def test_unreachable_server_is_one_clear_line(request_) -> None:
    url = _closed_port_url()
    backend = OpenAIBackend(base_url=url, backoff_s=0.0, max_tries=2)
    with pytest.raises(BackendUnavailable) as info:
        backend.check()
    message = str(info.value)
    assert url in message and "--base-url" in message and "\n" not in message
    assert isinstance(info.value, UserError)
    with pytest.raises(CaptionFailed) as failed:
        backend.caption(request_)
    assert failed.value.kind == "unreachable"


def test_api_key_comes_from_named_env_var(monkeypatch) -> None:
    monkeypatch.setenv("CAPTION_TEST_KEY", "sk-test")
    backend = OpenAIBackend(api_key_env="CAPTION_TEST_KEY")
    assert backend.client.headers["Authorization"] == "Bearer sk-test"
    assert "sk-test" not in json.dumps(backend.describe())
    backend.close()


def test_retry_policy_backoff_and_jitter() -> None:
    policy = RetryPolicy(max_tries=4, backoff_s=1.0, max_backoff_s=3.0, sleep=lambda s: None)
    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 3.0), (4, 3.0)]:
        delays = [policy.delay(attempt, None) for _ in range(50)]
        assert all(cap / 2 <= d <= cap for d in delays) and len(set(delays)) > 1
    assert policy.delay(1, 7.0) == 7.0
    calls = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RetryableError("busy")
        return "ok"

    assert call_with_retries(attempt, policy) == ("ok", 3)


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_unknown_backend_and_bad_params_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown caption backend"):
        make_backend("nope")
    with pytest.raises(UserError, match="caption backend 'openai'"):
        make_backend("openai", colour="red")


def test_gemini_request_construction_without_network(monkeypatch, request_) -> None:
    from google.genai import types

    monkeypatch.setenv("GEMINI_TEST_KEY", "k")
    backend = make_backend("gemini", api_key_env="GEMINI_TEST_KEY", max_tokens=50)
    spec = backend.default_frames(None, None)
    assert (spec.count, spec.positions, spec.size) == (3, "ends", (240, 240))
    contents = backend.contents(request_)
    parts = contents[0].parts
    assert [p.inline_data.mime_type for p in parts[:3]] == ["image/jpeg"] * 3
    assert parts[0].inline_data.data == request_.jpegs[0] and parts[3].text == request_.prompt
    config = backend.config()
    assert isinstance(config, types.GenerateContentConfig) and config.max_output_tokens == 50

    calls = []

    class FakeModels:
        def generate_content(self, *, model, contents, config):
            calls.append((model, contents, config))
            usage = types.GenerateContentResponseUsageMetadata(
                prompt_token_count=300, candidates_token_count=9
            )
            candidate = types.Candidate(
                content=types.Content(role="model", parts=[types.Part(text="a dog runs.")]),
                finish_reason=types.FinishReason.STOP,
            )
            return types.GenerateContentResponse(candidates=[candidate], usage_metadata=usage)

    class FakeClient:
        models = FakeModels()

    backend._client = FakeClient()
    reply = backend.caption(request_)
    assert (reply.text, reply.tokens_in, reply.tokens_out) == ("a dog runs.", 300, 9)
    assert calls[0][0] == "gemini-2.0-flash" and calls[0][1] == contents


def test_gemini_retries_429_and_fails_fatal_on_403(monkeypatch, request_) -> None:
    from google.genai import errors

    monkeypatch.setenv("GEMINI_API_KEY", "k")
    backend = make_backend("gemini", backoff_s=0.0, max_tries=2)
    codes = iter([429, 429, 403])

    class FakeModels:
        def generate_content(self, **kwargs):
            code = next(codes)
            raise errors.APIError(code, {"error": {"message": "nope", "status": "X"}})

    backend._client = type("C", (), {"models": FakeModels()})()
    with pytest.raises(CaptionFailed, match="HTTP 429.*gave up after 2 tries"):
        backend.caption(request_)
    with pytest.raises(CaptionFailed) as info:
        backend.caption(request_)
    assert info.value.kind == "fatal"


def test_gemini_without_key_is_one_line(monkeypatch) -> None:
    monkeypatch.delenv("NO_SUCH_GEMINI_KEY", raising=False)
    backend = make_backend("gemini", api_key_env="NO_SUCH_GEMINI_KEY")
    with pytest.raises(BackendUnavailable, match=r"\$NO_SUCH_GEMINI_KEY"):
        backend.check()


def test_local_vlm_missing_model_is_one_line(tmp_path) -> None:
    backend = make_backend("local", model=str(tmp_path / "absent"))
    with pytest.raises(BackendUnavailable, match="local caption backend"):
        backend.check()


def test_local_vlm_builds_chat_inputs_and_decodes_new_tokens(request_) -> None:
    import torch

    from clipsieve.caption.local_vlm import LocalVLMBackend, chat_messages

    seen = {}

    class FakeProcessor:
        def apply_chat_template(self, messages, add_generation_prompt, tokenize):
            seen["messages"] = messages
            return "TEMPLATE"

        def __call__(self, text, images, return_tensors, padding):
            seen["images"] = images
            from transformers import BatchFeature

            return BatchFeature({"input_ids": torch.tensor([[1, 2, 3, 4]])})

        def decode(self, tokens, skip_special_tokens):
            return " ".join(str(int(t)) for t in tokens)

    class FakeModel:
        device = torch.device("cpu")

        def generate(self, input_ids, max_new_tokens, do_sample, **kw):
            seen["generate"] = (max_new_tokens, do_sample, kw)
            return torch.cat([input_ids, torch.tensor([[7, 8]])], dim=1)

    backend = LocalVLMBackend(model="x", max_tokens=12, temperature=0.0)
    backend._processor, backend._model = FakeProcessor(), FakeModel()
    reply = backend.caption(request_)
    assert reply.text == "7 8" and (reply.tokens_in, reply.tokens_out) == (4, 2)
    assert seen["messages"] == chat_messages(request_.prompt, 3)
    assert [type(i).__name__ for i in seen["images"]] == ["Image"] * 3
    assert seen["images"][0].size == (64, 48) and seen["generate"] == (12, False, {})
