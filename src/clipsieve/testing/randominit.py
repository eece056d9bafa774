"""Randomly initialised checkpoints of the real encoder and head architectures.

The learned scorers load published weights that a machine without hub access does not have.
Tests, benchmarks and smoke runs still need to exercise the real loading path, so this module
writes checkpoints with the same classes, file layout and state-dict keys as the published
ones (``save_pretrained`` folders for CLIP/SigLIP/VAE, ``torch.save`` state dicts for the MLP
heads), either tiny (milliseconds per frame) or at ViT-L/14 size for timing. Their scores are
meaningless; their shapes, dtypes and code paths are the real ones.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

from clipsieve.score.aesthetic import AestheticV25Head, LaionAestheticHead


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _clip_tokenizer(out: Path) -> None:
    """A CLIP BPE tokenizer with a character vocabulary (no merges), saved next to the model."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in string.ascii_lowercase + string.digits + ".,!?'-":
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(out)


def write_clip(out: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """A ``CLIPModel`` folder (config, safetensors, tokenizer); ``size``: tiny or vit-l-14."""
    from transformers import CLIPConfig, CLIPModel

    _quiet()
    torch.manual_seed(seed)
    token_ids = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    if size == "vit-l-14":
        config = CLIPConfig(
            text_config={
                "vocab_size": 49408,
                "hidden_size": 768,
                "intermediate_size": 3072,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "max_position_embeddings": 77,
                **token_ids,
            },
            vision_config={
                "hidden_size": 1024,
                "intermediate_size": 4096,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "image_size": 224,
                "patch_size": 14,
            },
            projection_dim=768,
        )
    else:
        config = CLIPConfig(
            text_config={
                "vocab_size": 128,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "max_position_embeddings": 77,
                **token_ids,
            },
            vision_config={
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": 32,
                "patch_size": 8,
            },
            projection_dim=24,
        )
    out = Path(out)
    CLIPModel(config).eval().save_pretrained(out)
    _clip_tokenizer(out)
    return out


def write_siglip(out: str | Path, seed: int = 0) -> Path:
    """A tiny ``SiglipModel`` folder (both towers, as the published checkpoints have)."""
    from transformers import SiglipConfig, SiglipModel

    _quiet()
    torch.manual_seed(seed)
    config = SiglipConfig(
        text_config={
            "vocab_size": 128,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        vision_config={
            "hidden_size": 48,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
    )
    out = Path(out)
    SiglipModel(config).eval().save_pretrained(out)
    return out


def write_sdxl_vae(out: str | Path, seed: int = 0) -> Path:
    """A tiny ``AutoencoderKL`` folder with SDXL-VAE's 4 latent channels and scaling factor."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
        scaling_factor=0.13025,
    )
    out = Path(out)
    vae.eval().save_pretrained(out)
    return out


def _write_head(head: torch.nn.Module, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), path)
    return path


def write_laion_head(path: str | Path, input_size: int, seed: int = 0) -> Path:
    """A ``sac+logos+ava1-l14-linearMSE``-shaped state dict (keys ``layers.N.*``)."""
    torch.manual_seed(seed)
    return _write_head(LaionAestheticHead(input_size), path)


def write_v25_head(path: str | Path, input_size: int, seed: int = 0) -> Path:
    """An ``aesthetic_predictor_v2_5.pth``-shaped state dict (keys ``scoring_head.N.*``)."""
    torch.manual_seed(seed)
    return _write_head(AestheticV25Head(input_size), path)


def write_bart(out: str | Path, seed: int = 0) -> Path:
    """A tiny ``BartForConditionalGeneration`` folder with a byte-level BPE tokenizer (every
    byte a token, no merges): the summariser's real loading and generation path, no download."""
    import json
    import tempfile

    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    _quiet()
    torch.manual_seed(seed)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for char in bytes_to_unicode().values():
        vocab.setdefault(char, len(vocab))
    vocab["<mask>"] = len(vocab)
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = BartTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"))
    config = BartConfig(
        vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_position_embeddings=1024, pad_token_id=1, bos_token_id=0,
        eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=0,
    )  # fmt: skip
    BartForConditionalGeneration(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
