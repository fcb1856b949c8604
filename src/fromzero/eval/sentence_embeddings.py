"""Sentence embeddings from a BERT run: unit-norm mean-pooled last hidden states (Sentence-BERT's recipe).

    e(text) = normalize( sum_t m_t h_t / sum_t m_t ),   h = run.model.hidden_states(ids, mask)  (T, C)

An imported ``sentence-transformers/all-MiniLM-L6-v2`` (``fromzero import-hf``) gives the embeddings it
was trained to give. Texts are batched and right-padded; the padding mask keeps every embedding equal
to the text's embedding alone. Used by zero-shot classification (:mod:`fromzero.eval.zero_shot`) and the
recommenders' title features (``recommend/features.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fromzero.errors import ConfigError
from fromzero.models.heads import pool_hidden
from fromzero.progress import progress as progress_bar
from fromzero.runs import Run, load_run

BATCH = 128


def load_encoder_run(path: str, where: str) -> Run:
    """A BERT-like encoder run (a tokenizer and ``hidden_states``, not a fine-tune); ``where`` names the
    option or key that gave ``path`` in the error."""
    run = load_run(path)
    if run.tokenizer is None or not hasattr(run.model, "hidden_states") or run.info is not None:
        raise ConfigError(f"{where}: {path} is not a BERT encoder run (import one with `fromzero import-hf`, "
                          "e.g. sentence-transformers/all-MiniLM-L6-v2)")
    return run


@torch.inference_mode()
def sentence_embeddings(run: Run, texts: Sequence[str], progress: bool = True, desc: str = "embeddings",
                        batch_size: int = BATCH) -> np.ndarray:
    """(N, C) float32 unit-norm mean-pooled embeddings of ``texts`` (each cut to the run's context)."""
    pad = run.model_config.pad_id
    limit = run.model_config.max_positions
    out = []
    bar = progress_bar(total=len(texts), desc=desc, unit="text", enabled=progress)
    for start in range(0, len(texts), batch_size):
        rows = [ids[:limit] for ids in run.tokenizer.encode_batch(list(texts[start:start + batch_size]),
                                                                    add_special_tokens=True)]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])  # (B, T)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.bool)  # (B, T)
        hidden = run.model.hidden_states(ids, attention_mask=mask)  # (B, T, C)
        mean = pool_hidden(hidden, mask, "mean")  # (B, C)
        out.append(torch.nn.functional.normalize(mean.float(), dim=-1).numpy())
        bar.update(len(rows))
    bar.close()
    if not out:
        return np.zeros((0, run.model_config.n_embd), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)
