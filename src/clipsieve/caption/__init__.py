"""Captioning: turn kept clips into text with a vision-language model, then clean and rewrite.

``backends.py`` holds the one interface every backend implements (OpenAI-compatible HTTP in
``openai_compat.py``, Gemini in ``gemini.py``, a local transformers VLM in ``local_vlm.py``);
``frames.py`` samples and encodes a clip's frames once; ``prompts.py`` renders the shipped
templates; ``clean.py`` and ``rewrite.py`` post-process; ``stage.py`` runs it over a clip table and
``command.py`` is ``clipsieve caption``.
"""
