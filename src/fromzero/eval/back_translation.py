"""Back-translation: paraphrase a labelled text file through a pivot language and back.

Each text x is translated by a forward seq2seq run (say en -> es) and the pivot back by a backward run
(es -> en); the round trip x' = BWD(FWD(x)) keeps x's label and every other field (Sennrich et al. 2016,
https://arxiv.org/abs/1511.06709; as augmentation for classification: Xie et al. 2019, UDA,
https://arxiv.org/abs/1904.12848). Both runs are ``fromzero finetune`` run directories of
``task.kind: seq2seq``; inputs are encoded as their fine-tuning encoded them (``encode_seq2seq``: the
text's tokens cut to ``task.max_len - 1``, then eos) and decoded by ``generation/seq2seq_batch.decode_texts``
in length-sorted batches, at most ``task.max_target_len`` (else ``max_len``) new tokens.

Decoding, and why:

    sampling (default)   the forward pass samples the pivot with temperature tau (seeded), the backward pass
                         decodes it greedily. The variety comes from the pivot (Edunov et al. 2018,
                         https://arxiv.org/abs/1808.09381: sampled back-translations beat beam ones as
                         training data), while the way back stays the backward model's most likely reading,
                         so the paraphrase drifts as little as the pivot allows. Paraphrase k of every row
                         uses a seed drawn from (seed, k); the draws also depend on the batch a row lands in
                         (``batch_size`` and the file), so the same file, options and seed give the same
                         output.
    beam (``beam`` = N)  both directions beam search of width N with the run's GNMT length penalty
                         (N = 1: greedy): the single most likely round trip, deterministic, so one per row
                         (``n_aug`` must be 1; the beam search returns its best hypothesis only).

A round trip that returns the input unchanged (after collapsing whitespace), an empty pivot or paraphrase, or
a repeat of an earlier paraphrase of the same row adds no example: it is counted and dropped.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from fromzero.atomic import write_text
from fromzero.data.augment_text import read_text_rows
from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import CheckpointError, ConfigError
from fromzero.generation.sampling import SamplingConfig
from fromzero.generation.seq2seq_batch import decode_texts
from fromzero.runs import load_run


@dataclass(frozen=True)
class BackTranslationConfig:
    """Paraphrases per row, decoding (``beam`` None: sampling at ``temperature``; N: beam N), batch and seed."""

    n_aug: int = 1
    beam: int | None = None
    temperature: float = 0.8
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_aug < 1:
            raise ConfigError(f"--n-aug: must be >= 1, got {self.n_aug}")
        if self.beam is not None and self.beam < 1:
            raise ConfigError(f"--beam: must be >= 1, got {self.beam}")
        if self.beam is not None and self.n_aug > 1:
            raise ConfigError(f"--n-aug {self.n_aug} with --beam: beam search gives one round trip per row (its "
                              "best hypothesis); drop --beam to sample the pivot, or use --n-aug 1")
        if self.temperature < 0:
            raise ConfigError(f"--temperature: must be >= 0 (0 = greedy), got {self.temperature}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size: must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class Translator:
    """A seq2seq run ready to translate: model, tokenizer and its task's length limits and length penalty."""

    path: Path
    model: nn.Module
    tokenizer: Tokenizer
    max_len: int
    max_new_tokens: int
    length_penalty: float


def load_translator(run_dir: str | Path, option: str) -> Translator:
    """Load a ``task.kind: seq2seq`` fine-tune; anything else is a one-line error naming ``option``."""
    path = Path(run_dir)
    if not (path / "config.yaml").is_file():
        raise CheckpointError(f"{option} {path}: not a run directory (no config.yaml); give a `fromzero finetune` "
                              "run directory of task.kind seq2seq")
    run = load_run(path)
    if run.kind != "seq2seq":
        raise CheckpointError(f"{option} {path}: a {run.kind} run, not a translation run; give a `fromzero "
                              "finetune` run directory of task.kind seq2seq (e.g. en->es)")
    task = run.config["task"]
    max_len = int(task.get("max_len") or run.model.config.max_positions)
    return Translator(path, run.model, run.tokenizer, max_len, int(task.get("max_target_len") or max_len),
                      float(task.get("length_penalty", 0.0)))


def encode_inputs(translator: Translator, texts: Sequence[str]) -> list[list[int]]:
    """Encoder ids as the run's fine-tuning made them: the text's tokens cut to max_len - 1, then eos."""
    eos = translator.tokenizer.eos_id
    if eos is None:
        raise CheckpointError(f"{translator.path}: the tokenizer has no end-of-text token; not a seq2seq run")
    return [ids[:translator.max_len - 1] + [eos] for ids in translator.tokenizer.encode_batch(list(texts))]


def translate(translator: Translator, texts: Sequence[str], *, cfg: SamplingConfig | None = None, beam: int = 1,
              batch_size: int = 32, progress: bool = False) -> list[str]:
    """One translation per text: sampled as ``cfg`` says, else greedy (``beam`` 1) or beam search."""
    ids = encode_inputs(translator, texts)
    return decode_texts(translator.model, translator.tokenizer, ids, max_new_tokens=translator.max_new_tokens,
                        batch_size=batch_size if beam == 1 else max(1, batch_size // beam), cfg=cfg,
                        progress=progress, beam_size=beam, alpha=translator.length_penalty)


def sample_seed(seed: int, k: int) -> int:
    """The sampling seed of paraphrase ``k`` (a str seed is hashed deterministically, SHA-512)."""
    return random.Random(f"back-translate:{seed}:{k}").getrandbits(63)


def round_trips(texts: Sequence[str], fwd: Translator, bwd: Translator, cfg: BackTranslationConfig,
                progress: bool = False) -> list[list[tuple[str, str]]]:
    """For each text, ``cfg.n_aug`` (pivot, paraphrase) pairs (see the module docstring for the decoding)."""
    out: list[list[tuple[str, str]]] = [[] for _ in texts]
    beam = cfg.beam or 1
    for k in range(cfg.n_aug):
        sampling = None if cfg.beam is not None else SamplingConfig(
            max_new_tokens=fwd.max_new_tokens, temperature=cfg.temperature, seed=sample_seed(cfg.seed, k))
        pivots = translate(fwd, texts, cfg=sampling, beam=beam, batch_size=cfg.batch_size, progress=progress)
        backs = translate(bwd, pivots, beam=beam, batch_size=cfg.batch_size, progress=progress)
        for row, pivot, back in zip(out, pivots, backs, strict=True):
            row.append((pivot, back))
    return out


def _norm(text: str) -> str:
    return " ".join(text.split())


def collect(rows: Sequence[dict[str, Any]], trips: Sequence[Sequence[tuple[str, str]]],
            text_field: str = "text") -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Each row, then its new paraphrases (``augment: bt``, ``pivot`` kept); the counts of what was dropped."""
    counts = {"rows": len(rows), "kept": 0, "unchanged": 0, "empty": 0, "duplicate": 0}
    out = []
    for row, pairs in zip(rows, trips, strict=True):
        out.append(row)
        seen = {_norm(row[text_field])}
        for pivot, back in pairs:
            key = _norm(back)
            reason = ("empty" if not _norm(pivot) or not key else "unchanged" if key == _norm(row[text_field])
                      else "duplicate" if key in seen else None)
            if reason:
                counts[reason] += 1
                continue
            seen.add(key)
            counts["kept"] += 1
            out.append({**row, text_field: back.strip(), "augment": "bt", "pivot": pivot.strip()})
    counts["written"] = len(out)
    return out, counts


def back_translate_file(source: str | Path, target: str | Path, fwd_run: str | Path, bwd_run: str | Path,
                        cfg: BackTranslationConfig, text_field: str = "text",
                        progress: bool = False) -> dict[str, int]:
    """Write ``source`` (JSONL) with every row's kept round trips after it into ``target`` (atomically)."""
    target = Path(target)
    if target.exists():
        raise ConfigError(f"{target}: output exists; choose a new path or remove it")
    rows = read_text_rows(source, text_field)
    fwd = load_translator(fwd_run, "--back-translate FWD")
    bwd = load_translator(bwd_run, "--back-translate BWD")
    trips = round_trips([r[text_field] for r in rows], fwd, bwd, cfg, progress)
    out, counts = collect(rows, trips, text_field)
    write_text(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    return counts
