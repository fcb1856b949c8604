"""Inference facade: one run directory -> text generation (GPT), seq2seq (T5) or embeddings (BERT).

The engine owns the model and tokenizer and knows each family's conventions
(prompt truncation side, eos handling, special tokens), so the HTTP layer
deals only in token ids and text. It is not thread-safe for compute: the
scheduler calls :meth:`Engine.stream` and :meth:`Engine.embed` from its one
worker thread. Tokenizing (:meth:`Engine.encode`) is safe from any thread.

Embeddings (BERT runs) are the mean of the final hidden states over real
(non-pad) tokens, [CLS] and [SEP] included, scaled to unit L2 norm, so the dot
product of two embeddings is their cosine similarity:

    e = h_mean / ||h_mean||_2,   h_mean = sum_t m_t h_t / sum_t m_t

Classification runs (a classifier head on top of an encoder) will add a
``classify`` kind here: the engine maps the run's head to a new method and
``Engine.endpoints`` gains the route name; the app then registers its route.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from fromzero.data.chat_template import ChatTemplate, get_chat_template
from fromzero.errors import CheckpointError, DataError
from fromzero.generation import Generation, SamplingConfig, TextRow, fit_prompt, generate_seq2seq, generate_tokens
from fromzero.models import family_of
from fromzero.run_dir import Run, load_run

EngineKind = Literal["generate", "seq2seq", "embed"]
_KINDS: dict[str, EngineKind] = {"gpt": "generate", "t5": "seq2seq", "bert": "embed"}
_EMBED_BATCH = 32  # inputs per forward pass: bounds activation memory for long input lists


@dataclass
class EngineStats:
    """Counters the worker thread increments (read them for monitoring and tests)."""

    tokens_generated: int = 0  # every sampled token, cancelled generations included
    generations_started: int = 0
    embedding_inputs: int = 0


class GenerationStream:
    """One generation, one step per token: each ``next()`` samples one token and returns its text delta.

    The delta may be empty (text held back for a possible stop string or an
    incomplete character). Iteration ends once the row finished; then
    :attr:`generation` holds the result. :meth:`close` stops early (frees the
    decoding state and restores the model's mode).
    """

    def __init__(self, tokens: Iterator[list[int | None]], row: TextRow, stats: EngineStats) -> None:
        self._tokens, self._row, self._stats = tokens, row, stats

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> str:
        if self._row.done:
            self.close()
            raise StopIteration
        step = next(self._tokens, None)
        if step is None:  # max_new_tokens reached
            return self._row.finish("length")
        self._stats.tokens_generated += 1
        token = step[0]
        assert token is not None, "a single row stops right after its eos"
        return self._row.push(token)

    def close(self) -> None:
        """Stop decoding now; the generator's cleanup restores the model's train/eval mode."""
        self._tokens.close()

    @property
    def generation(self) -> Generation:
        """The finished generation (text, token ids, finish reason, counts)."""
        return self._row.result()


class Engine:
    """A loaded run directory ready to serve: ``kind`` says which endpoints it answers."""

    def __init__(self, run: Run, *, model_id: str | None = None, chat_template: str = "plain") -> None:
        family = family_of(run.model_config).name
        if family not in _KINDS:
            raise CheckpointError(f"{run.path}: a {family} run cannot be served; serve handles gpt, t5 and bert runs")
        assert run.model is not None, "load the run with weights"
        self.run, self.model, self.tokenizer = run, run.model, run.tokenizer
        self.kind: EngineKind = _KINDS[family]
        self.family = family
        self.model_id = model_id or run.path.resolve().name
        self.created = int(run.weights.stat().st_mtime) if run.weights is not None else int(time.time())
        self.chat_template: ChatTemplate = get_chat_template(chat_template)
        self.stats = EngineStats()
        cfg = run.model_config
        self.context_length: int = cfg.block_size if family == "gpt" else cfg.max_positions
        self.eos_id = self.tokenizer.eos_id if self.tokenizer.eos_id is not None else getattr(cfg, "eos_id", None)
        pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else getattr(cfg, "pad_id", 0)
        self.pad_id: int = pad

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, model_id: str | None = None, chat_template: str = "plain",
                     device: str = "cpu") -> Engine:
        """Load a run directory (config, tokenizer, weights) and wrap it."""
        return cls(load_run(run_dir, device=device), model_id=model_id, chat_template=chat_template)

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The OpenAI routes this run answers (without the /v1/ prefix)."""
        return ("embeddings",) if self.kind == "embed" else ("completions", "chat/completions")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as this family reads it (BERT runs add [CLS] .. [SEP]).

        Raises DataError for text that is not valid Unicode (a lone surrogate, which JSON can carry).
        """
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise DataError(f"text is not valid Unicode: {err.reason} at character {err.start}") from None
        return self.tokenizer.encode(text, add_special_tokens=self.kind == "embed")

    def prepare_prompt(self, ids: Sequence[int]) -> list[int]:
        """Family conventions on a prompt: an empty GPT prompt becomes eos; T5 inputs end with eos."""
        ids = list(ids)
        if self.kind == "generate" and not ids and self.eos_id is not None:
            return [self.eos_id]
        if self.kind == "seq2seq" and self.eos_id is not None and (not ids or ids[-1] != self.eos_id):
            return ids + [self.eos_id]
        return ids

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The chat template applied to ``messages``, ending where the assistant's reply begins."""
        return self.chat_template.render(messages)

    def stream(self, ids: list[int], cfg: SamplingConfig) -> GenerationStream:
        """Start generating from prepared prompt ids (GPT keeps the last context-1, T5 the first context)."""
        if self.kind == "embed":
            raise ValueError(f"{self.model_id} is an encoder run: it embeds, it does not generate")
        self.stats.generations_started += 1
        if self.kind == "generate":
            ids = fit_prompt(ids, self.context_length)
            tokens = generate_tokens(self.model, [ids], cfg, eos_id=self.eos_id, pad_id=self.pad_id)
        else:
            ids = ids[:self.context_length]
            tokens = generate_seq2seq(self.model, [ids], cfg, eos_id=self.eos_id, pad_id=self.pad_id,
                                      decoder_start_id=self.model.config.decoder_start_id)
        row = TextRow(self.tokenizer.decode, cfg.stop, self.eos_id, prompt_tokens=len(ids))
        return GenerationStream(tokens, row, self.stats)

    def embed(self, inputs: Sequence[Sequence[int]]) -> list[list[float]]:
        """Unit-norm mean-pooled embeddings of token-id inputs (each truncated to the context)."""
        if self.kind != "embed":
            raise ValueError(f"{self.model_id} is a {self.family} run: embeddings need a bert run")
        if any(len(ids) == 0 for ids in inputs):
            raise ValueError("an embedding input is empty: give at least one token")
        out: list[list[float]] = []
        for start in range(0, len(inputs), _EMBED_BATCH):
            out += self._embed_batch([list(ids[:self.context_length]) for ids in inputs[start:start + _EMBED_BATCH]])
        self.stats.embedding_inputs += len(inputs)
        return out

    def _embed_batch(self, rows: list[list[int]]) -> list[list[float]]:
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.pad_id] * (width - len(r)) for r in rows], dtype=torch.long)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.bool)
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            hidden = self.model.hidden_states(ids.to(device), attention_mask=mask.to(device))  # (B, T, C)
            weights = mask.to(device).unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            mean = (hidden * weights).sum(1) / weights.sum(1)  # (B, C)
            unit = torch.nn.functional.normalize(mean.float(), dim=-1)
        return unit.cpu().tolist()
