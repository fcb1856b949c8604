"""Chat-style generation: wrap prompts in a chat template and decode replies that end at its stop strings.

Used by SFT evaluation (greedy replies to every validation / test prompt) and
by ``fromzero generate --chat``. The template is the one the model was
fine-tuned with (``data/chat_template.py``), so the reply ends where training
taught it to: at the template's stop string (excluded from the text) or eos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from torch import nn

from fromzero.data.chat_template import ChatTemplate
from fromzero.generation.generate import TextCodec, TextRow, collect_rows, fit_prompt, generate_tokens
from fromzero.generation.sampling import SamplingConfig
from fromzero.progress import progress as progress_bar


def user_prompts(template: ChatTemplate, texts: Sequence[str]) -> list[str]:
    """Each text as one user turn, rendered up to where the assistant's reply begins."""
    return [template.render([{"role": "user", "content": t}]) for t in texts]


def with_template_stops(cfg: SamplingConfig, template: ChatTemplate) -> SamplingConfig:
    """``cfg`` plus the template's stop strings (kept once each, the caller's first)."""
    stops = list(dict.fromkeys([*cfg.stop, *template.stop]))
    return replace(cfg, stop=stops)


def greedy_replies(model: nn.Module, tokenizer: TextCodec, template: ChatTemplate, prompts: Sequence[str],
                   max_new_tokens: int, *, batch_size: int = 64, progress: bool = False) -> list[str]:
    """Greedy replies to rendered ``prompts`` (see :func:`~fromzero.data.sft_data.generation_prompt`).

    Each reply stops at the template's stop string, eos, or the length limit: ``max_new_tokens`` for the
    reply plus the tokens of the longest stop string, so a reply of ``max_new_tokens`` still has room to
    end properly. A prompt keeps its last ``block_size - limit`` tokens (cut from the left, as SFT
    training cuts), so prompt and reply fit the context and the window never slides mid-reply. Prompts
    are decoded ``batch_size`` at a time in order of length (left-padded, KV cache), so rows of a batch
    are about as long as each other and each decodes as it would alone. Replies come back in the order
    of ``prompts``, as generated (not stripped; the stop string excluded).
    """
    room = max((len(tokenizer.encode(s)) for s in template.stop), default=0)
    cfg = SamplingConfig(max_new_tokens=max_new_tokens + room, greedy=True, stop=list(template.stop))
    keep = max(1, model.config.block_size - cfg.max_new_tokens)
    encoded = [fit_prompt(tokenizer.encode(p), keep + 1, i) for i, p in enumerate(prompts)]  # last `keep` ids
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    replies: list[str] = [""] * len(encoded)
    starts = range(0, len(order), batch_size)
    for start in progress_bar(starts, desc="generate", unit="batch", enabled=progress and len(starts) > 1, leave=False):
        idx = order[start:start + batch_size]
        rows = [TextRow(tokenizer.decode, cfg.stop, tokenizer.eos_id, len(encoded[i])) for i in idx]
        tokens = generate_tokens(model, [encoded[i] for i in idx], cfg, eos_id=tokenizer.eos_id, pad_id=pad)
        for i, result in zip(idx, collect_rows(tokens, rows), strict=True):
            replies[i] = result.text
    return replies
