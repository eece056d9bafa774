"""The local VLM backend loads a tiny random image-text-to-text model through its real path.

Qwen2.5-VL's processor needs torchvision (its video processor), which does not import with the CPU
torch used here, so the checkpoint is a tiny LLaVA (CLIP vision tower + Llama text model): the same
``AutoProcessor`` / ``AutoModelForImageTextToText`` loading, chat template and generate path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipsieve.caption.backend_registry import make_backend
from clipsieve.caption.backends import CaptionRequest


def _tiny_llava(folder: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    special = ["<pad>", "<s>", "</s>", "<image>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["describe the clip: a dog runs on a beach. USER ASSISTANT"], trainer)
    template = (
        "{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'text' %}{{ c['text'] }}"
        "{% endif %}{% endfor %}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", bos_token="<s>", pad_token="<pad>"
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
        image_token="<image>",
    )
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in special}
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=256,
            eos_token_id=ids["</s>"],
            pad_token_id=ids["<pad>"],
            bos_token_id=ids["<s>"],
        ),
        image_token_index=ids["<image>"],
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["</s>"]
    model.generation_config.pad_token_id = ids["<pad>"]
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_tiny_random_vlm_captions_through_the_real_loading_path(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    checkpoint = _tiny_llava(tmp_path / "tiny-llava")
    backend = make_backend(
        "local", model=str(checkpoint), max_tokens=5, temperature=0.0, device="cpu"
    )
    backend.check()  # resolve + load once
    frames = np.random.default_rng(0).integers(0, 255, (2, 48, 64, 3), dtype=np.uint8)
    reply = backend.caption(CaptionRequest("describe the clip", frames))
    assert isinstance(reply.text, str) and reply.model == str(checkpoint)
    assert 1 <= reply.tokens_out <= 5 and reply.tokens_in > 2 * 16  # two images, 16 patches
    assert reply.truncated == (reply.tokens_out == 5)
    backend.close()
