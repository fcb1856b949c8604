"""Held-out loss and perplexity of a language model.

    loss = -(1/N) sum_t log p(x_t | x_<t),   ppl = exp(loss),   bits/token = loss / ln 2

Text longer than the context is scored in windows; with ``stride < seq_len``
each window re-reads ``seq_len - stride`` tokens of context and scores only
the new ones, which gives a lower (more faithful) perplexity at more cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fromzero.data.corpus import iter_documents
from fromzero.data.loader import count_windows, sequential_windows
from fromzero.errors import DataError
from fromzero.objectives import CausalLM
from fromzero.progress import progress as progress_bar
from fromzero.runs import Run


def encode_files(run: Run, inputs: Sequence[str | Path], text_field: str = "text") -> np.ndarray:
    """Tokenize documents with the run's tokenizer, joined by its end-of-text token."""
    tok = run.tokenizer
    ids: list[int] = []
    for doc in iter_documents(inputs, text_field=text_field):
        if ids and tok.eos_id is not None:
            ids.append(tok.eos_id)
        ids.extend(tok.encode(doc.text))
    return np.asarray(ids, dtype=np.int64)


@torch.no_grad()
def perplexity(run: Run, tokens: np.ndarray, *, seq_len: int | None = None, batch_size: int = 8,
               stride: int | None = None, progress: bool = True) -> dict[str, float]:
    """Token-weighted mean loss, perplexity and bits per token over ``tokens``."""
    model = run.model
    seq_len = seq_len or run.model_config.block_size
    if len(tokens) < 2:
        raise DataError("evaluation text has fewer than 2 tokens; give a longer file")
    seq_len = min(seq_len, len(tokens) - 1)
    objective, total, count = CausalLM(), 0.0, 0
    batches = sequential_windows(tokens, seq_len, batch_size, stride=stride)
    n_batches = math.ceil(count_windows(len(tokens), seq_len, stride) / batch_size)
    for batch in progress_bar(batches, total=n_batches, enabled=progress, desc="eval", unit="batch"):
        out = objective(model, batch)
        total += float(out.loss) * out.weight
        count += out.weight
    loss = total / max(count, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "bits_per_token": loss / math.log(2),
            "tokens": count, "seq_len": seq_len}
