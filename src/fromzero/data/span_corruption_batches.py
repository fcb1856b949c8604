"""T5 span-corruption batches: drop random spans of the input, to be predicted after sentinel tokens.

Raffel et al. 2019, https://arxiv.org/abs/1910.10683 (section 3.1.4 and 3.3.4), following the reference
``random_spans_helper``, ``random_spans_noise_mask`` and ``noise_span_to_unique_sentinel`` of
google-research/text-to-text-transfer-transformer ``t5/data/preprocessors.py``::

    tokens   Thank you  for inviting  me to your party  last  week .
    inputs   Thank you  <extra_id_0>  me to your party  <extra_id_1>  week . </s>
    targets  <extra_id_0> for inviting <extra_id_1> last <extra_id_2> </s>

Loss: L = -(1/N) sum_t log p(y_t | y_<t, inputs) over the N target tokens (the decoder is teacher-forced
on the targets shifted right, starting with the pad id as in T5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fromzero.config import field, require
from fromzero.data.loader import IGNORE_INDEX, batch_seed
from fromzero.data.token_shards import ShardedTokens, as_token_stream
from fromzero.errors import DataError


@dataclass(frozen=True)
class SpanCorruptionConfig:
    """T5 span corruption (the ``objective:`` section of a span-corruption recipe)."""

    noise_density: float = field(0.15, help="fraction of the raw tokens that are corrupted (moved to targets)")
    mean_span_length: float = field(3.0, help="mean length of a corrupted span, in tokens")
    n_sentinels: int = field(100, help="sentinel tokens <extra_id_0> .. <extra_id_{n-1}> in the vocabulary")

    def __post_init__(self) -> None:
        require(0.0 < self.noise_density < 1.0, "noise_density", f"must be in (0, 1), got {self.noise_density}")
        require(self.mean_span_length >= 1.0, "mean_span_length", f"must be >= 1, got {self.mean_span_length}")
        require(self.n_sentinels >= 1, "n_sentinels", f"must be >= 1, got {self.n_sentinels}")


def sentinel_tokens(n: int) -> list[str]:
    """The Hugging Face T5 sentinel names ``<extra_id_0>`` .. ``<extra_id_{n-1}>``."""
    return [f"<extra_id_{i}>" for i in range(n)]


def _counts(length: int, noise_density: float, mean_span_length: float) -> tuple[int, int]:
    """(num_noise_tokens, num_noise_spans) for a raw length, exactly as :func:`random_spans_noise_mask` uses."""
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_spans = max(int(round(num_noise / mean_span_length)), 1)
    return num_noise, min(num_spans, length - num_noise)


def _corrupted_lengths(length: int, noise_density: float, mean_span_length: float) -> tuple[int, int]:
    """(inputs, targets) lengths, eos included, after corrupting ``length`` raw tokens."""
    noise, spans = _counts(max(length, 2), noise_density, mean_span_length)
    return length - noise + spans + 1, noise + spans + 1


def input_and_target_lengths(inputs_length: int, noise_density: float, mean_span_length: float) -> tuple[int, int]:
    """(tokens_length, targets_length): raw tokens to draw so corrupted inputs are exactly ``inputs_length``.

    For a raw length t: noise = round(t * density), spans = round(noise / mean), and
        inputs(t)  = (t - noise) + spans + 1      kept tokens, one sentinel per span, eos
        targets(t) = noise + spans + 1            span tokens, one sentinel per span, eos
    Like the reference ``random_spans_helper``, start at t = inputs_length - 1 and grow t while
    inputs(t + 1) <= inputs_length; inputs(t) grows by 0 or 1 per step, so the result is exact (except
    after the reference's tweak for density 0.5, which may drop t by one so targets fit in inputs_length,
    and for densities so high that spans are clipped to the non-noise count; then inputs may be shorter
    and are padded). (The clips of :func:`random_spans_noise_mask`, noise in [1, t-1] and spans >= 1, are applied here
    too; they only matter for tiny lengths, where the reference would under-count the targets.)
    """
    tokens_length = inputs_length - 1
    while _corrupted_lengths(tokens_length + 1, noise_density, mean_span_length)[0] <= inputs_length:
        tokens_length += 1
    if noise_density == 0.5 and _corrupted_lengths(tokens_length, 0.5, mean_span_length)[1] > inputs_length:
        tokens_length -= 1  # the reference's tweak so targets are not longer than inputs
    return tokens_length, _corrupted_lengths(tokens_length, noise_density, mean_span_length)[1]


def _random_segmentation(num_items: int, num_segments: int, gen: torch.Generator) -> torch.Tensor:
    """Uniformly random composition of num_items into num_segments positive parts (lengths, long)."""
    cuts = torch.randperm(num_items - 1, generator=gen)[: num_segments - 1].sort().values + 1
    bounds = torch.cat([torch.zeros(1, dtype=torch.long), cuts, torch.tensor([num_items])])
    return bounds.diff()


def random_spans_noise_mask(length: int, noise_density: float, mean_span_length: float,
                            generator: torch.Generator) -> torch.Tensor:
    """Bool (length,) noise mask of random spans, the reference algorithm.

    num_noise = round(length * density) clipped to [1, length - 1]; num_spans = round(num_noise / mean)
    (at least 1, and at most the non-noise count so every gap is non-empty). Noise and non-noise counts
    are each cut into num_spans random positive parts; spans alternate non-noise, noise, ..., so the mask
    starts with non-noise and ends with noise. All such masks are equally likely.
    """
    orig_length, length = length, max(length, 2)
    num_noise, num_spans = _counts(length, noise_density, mean_span_length)
    noise = _random_segmentation(num_noise, num_spans, generator)
    keep = _random_segmentation(length - num_noise, num_spans, generator)
    lengths = torch.stack([keep, noise], dim=1).flatten()  # (2 * num_spans,) non-noise, noise, ...
    is_noise = torch.tensor([False, True]).repeat(num_spans)
    return is_noise.repeat_interleave(lengths)[:orig_length]


def _spans_to_sentinels(tokens: torch.Tensor, mask: torch.Tensor, sentinels: torch.Tensor) -> torch.Tensor:
    """Replace each run of masked tokens by the next sentinel (reference noise_span_to_unique_sentinel)."""
    first = mask.clone()
    first[1:] &= ~mask[:-1]
    span_index = first.long().cumsum(0) - 1
    if int(first.sum()) > len(sentinels):
        raise ValueError(f"{int(first.sum())} spans but only {len(sentinels)} sentinel ids")
    out = torch.where(first, sentinels[span_index.clamp(min=0, max=len(sentinels) - 1)], tokens)
    return out[~mask | first]


def _target_span_ids(noise_mask: torch.Tensor) -> torch.Tensor:
    """Per target position of :func:`corrupt`: i >= 1 on tokens of noise span i, 0 on sentinels and eos."""
    mask = noise_mask.bool()
    first = mask.clone()
    first[1:] &= ~mask[:-1]
    number = first.long().cumsum(0) * mask  # span number on noise tokens, 0 elsewhere
    aligned = _spans_to_sentinels(number, ~mask, torch.zeros(len(mask), dtype=torch.long))
    return torch.cat([aligned, torch.zeros(1, dtype=torch.long)])


def corrupt(tokens: torch.Tensor, noise_mask: torch.Tensor, sentinel_ids: Sequence[int], eos_id: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of T5 span corruption, both ending with eos.

    inputs: each noise span replaced by one sentinel (first span -> sentinel_ids[0]) ;
    targets: each non-noise span replaced by one sentinel, i.e. sentinel_i followed by noise span i.
    As in T5 the mask must start with non-noise (every mask of :func:`random_spans_noise_mask` does);
    a mask ending with non-noise gives a final sentinel in the targets, as in the paper's example.
    """
    mask = noise_mask.bool()
    if len(mask) and mask[0]:
        raise ValueError("noise_mask must start with a non-noise token (T5 span corruption convention)")
    sentinels = torch.as_tensor(list(sentinel_ids), dtype=torch.long)
    eos = torch.tensor([eos_id], dtype=torch.long)
    tokens = tokens.long()
    inputs = torch.cat([_spans_to_sentinels(tokens, mask, sentinels), eos])
    targets = torch.cat([_spans_to_sentinels(tokens, ~mask, sentinels), eos])
    return inputs, targets


def merge(inputs: torch.Tensor | Sequence[int], targets: torch.Tensor | Sequence[int], sentinel_ids: Sequence[int],
          eos_id: int) -> list[int]:
    """The original tokens: each sentinel of ``inputs`` replaced by what follows it in ``targets``.

    Trailing eos and padding after it are removed; this inverts :func:`corrupt`.
    """
    def strip(seq: torch.Tensor | Sequence[int]) -> list[int]:
        ids = [int(i) for i in seq]
        return ids[: len(ids) - ids[::-1].index(eos_id) - 1] if eos_id in ids else ids

    position = {s: i for i, s in enumerate(sentinel_ids)}
    spans: dict[int, list[int]] = {}
    current: list[int] | None = None
    for tok in strip(targets):
        if tok in position:
            current = spans.setdefault(tok, [])
        elif current is not None:
            current.append(tok)
    out: list[int] = []
    for tok in strip(inputs):
        out.extend(spans.get(tok, []) if tok in position else [tok])
    return out


class SpanCorruptionBatches:
    """T5 training batches; ``batch(step, micro)`` is a pure function of (seed, step, micro).

    Each row corrupts ``tokens_length`` consecutive stream tokens (from :func:`input_and_target_lengths`),
    so its inputs are exactly ``input_length`` tokens and its targets exactly ``targets_length`` (only
    noise_density 0.5 or above can give one input token fewer, which is padded). Documents are not
    separated: the stream's eos separators are ordinary tokens here, as T5 concatenates documents
    (reduce_concat_tokens) before splitting them into ``tokens_length`` pieces.
    """

    def __init__(self, tokens: np.ndarray | ShardedTokens, *, input_length: int, batch_size: int, seed: int,
                 cfg: SpanCorruptionConfig, sentinel_ids: Sequence[int], eos_id: int, pad_id: int,
                 decoder_start_id: int | None = None) -> None:
        if input_length < 4 or batch_size < 1:
            raise ValueError(f"need input_length >= 4 and batch_size >= 1, got {input_length} and {batch_size}")
        self.tokens_length, self.targets_length = input_and_target_lengths(
            input_length, cfg.noise_density, cfg.mean_span_length)
        if len(tokens) < self.tokens_length:
            raise DataError(f"the training split has {len(tokens)} tokens but span corruption with "
                            f"input_length={input_length} draws {self.tokens_length}; use a shorter input_length")
        spans = _counts(self.tokens_length, cfg.noise_density, cfg.mean_span_length)[1]
        if len(sentinel_ids) < spans:
            raise ValueError(f"input_length={input_length} makes {spans} spans but only {len(sentinel_ids)} "
                             "sentinel ids were given; raise n_sentinels")
        self.tokens, self.input_length, self.batch_size, self.seed, self.cfg = (
            as_token_stream(tokens), input_length, batch_size, seed, cfg)
        self.sentinel_ids, self.eos_id, self.pad_id = list(sentinel_ids), eos_id, pad_id
        self.decoder_start_id = pad_id if decoder_start_id is None else decoder_start_id

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """``input_ids, attention_mask`` (B, input_length); ``labels, decoder_input_ids,
        decoder_attention_mask, target_span_ids`` (B, targets_length); labels are -100 on padding;
        target_span_ids is i (1-based) on the tokens of noise span i, 0 on sentinels, eos and padding."""
        gen = torch.Generator().manual_seed(batch_seed(self.seed, step, micro))
        n, b = self.tokens_length, self.batch_size
        starts = torch.randint(0, len(self.tokens) - n + 1, (b,), generator=gen).tolist()
        inputs = torch.full((b, self.input_length), self.pad_id, dtype=torch.long)
        labels = torch.full((b, self.targets_length), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros(b, self.input_length, dtype=torch.long)
        spans = torch.zeros(b, self.targets_length, dtype=torch.long)
        for row, s in enumerate(starts):
            raw = torch.from_numpy(np.asarray(self.tokens[s:s + n], dtype=np.int64))
            mask = random_spans_noise_mask(n, self.cfg.noise_density, self.cfg.mean_span_length, gen)
            x, y = corrupt(raw, mask, self.sentinel_ids, self.eos_id)
            spans[row, :len(y)] = _target_span_ids(mask)
            if len(x) > self.input_length or len(y) > self.targets_length:  # impossible by the length arithmetic
                raise AssertionError(f"corrupted lengths {len(x)}, {len(y)} exceed {self.input_length}, "
                                     f"{self.targets_length}")
            inputs[row, :len(x)], labels[row, :len(y)], attention[row, :len(x)] = x, y, 1
        real = labels != IGNORE_INDEX
        decoder_inputs = torch.cat([torch.full((b, 1), self.decoder_start_id), labels[:, :-1]], dim=1)
        decoder_inputs = decoder_inputs.masked_fill(decoder_inputs == IGNORE_INDEX, self.pad_id)
        return {"input_ids": inputs, "attention_mask": attention, "labels": labels,
                "decoder_input_ids": decoder_inputs, "decoder_attention_mask": real.long(), "target_span_ids": spans}
