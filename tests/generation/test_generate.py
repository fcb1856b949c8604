"""Decoding: KV cache vs full recompute vs a naive decoder, padding, eos, context limit, text and stop strings."""

from __future__ import annotations

import pytest
import torch

from decoding_reference import naive_greedy
from fromzero.generation import (
    SamplingConfig,
    TextRow,
    generate_text,
    generate_tokens,
    stop_boundary,
    stream_text,
)
from fromzero.models import create_model

GREEDY = SamplingConfig(max_new_tokens=30, greedy=True)
ARCHS = {
    "learned": {},
    "llama": {"pos": "rope", "n_kv_head": 2, "norm": "rmsnorm", "mlp": "swiglu", "bias": False,
              "tie_weights": False},
}
PROMPTS = [[3, 1, 4, 1, 5], [9, 2, 6, 5, 3, 5, 8, 9, 7], [2]]



def tiny(arch: str = "learned", **overrides: object) -> torch.nn.Module:
    # A large init spreads the logits apart so argmax never hinges on float rounding.
    torch.manual_seed(0)
    return create_model("gpt-char-tiny", vocab_size=32, init_std=0.5, **{**ARCHS[arch], **overrides})


def run(model: torch.nn.Module, prompts: list[list[int]], cfg: SamplingConfig = GREEDY,
        **kwargs: object) -> list[list[int | None]]:
    """Generated tokens per row (columns of the step stream)."""
    steps = list(generate_tokens(model, prompts, cfg, **kwargs))
    return [list(row) for row in zip(*steps, strict=True)]


@pytest.mark.parametrize("arch", ARCHS)
def test_cache_equals_recompute_and_naive_decoder_single_prompt(arch: str) -> None:
    model = tiny(arch).eval()
    [cached] = run(model, PROMPTS[:1])
    [recomputed] = run(model, PROMPTS[:1], use_cache=False)
    assert len(cached) == 30 and len(set(cached)) > 3  # long and not a single repeated token
    assert cached == recomputed == naive_greedy(model, PROMPTS[0], 30)


@pytest.mark.parametrize("arch", ARCHS)
def test_left_padded_batch_equals_each_prompt_alone(arch: str) -> None:
    model = tiny(arch)
    cached = run(model, PROMPTS)
    assert cached == run(model, PROMPTS, use_cache=False)
    for prompt, row in zip(PROMPTS, cached, strict=True):
        assert row == run(model, [prompt])[0] == naive_greedy(model, prompt, 30)


def test_sampling_is_seeded_and_temperature_zero_is_greedy() -> None:
    model = tiny()
    sample = SamplingConfig(max_new_tokens=20, temperature=1.0, top_k=10, seed=123)
    assert run(model, PROMPTS, sample) == run(model, PROMPTS, sample)
    outs = {str(run(model, PROMPTS, SamplingConfig(max_new_tokens=20, seed=s))) for s in range(4)}
    assert len(outs) > 1
    assert run(model, PROMPTS, SamplingConfig(max_new_tokens=30, temperature=0.0)) == run(model, PROMPTS)


def test_eos_finishes_a_row_and_generation_ends_when_all_finish() -> None:
    model = tiny()
    free = run(model, PROMPTS)
    eos = free[0][6]  # a token row 0 produces at step 6
    rows = run(model, PROMPTS, eos_id=eos)
    for free_row, row in zip(free, rows, strict=True):
        first = free_row.index(eos) if eos in free_row[: len(row)] else None
        if first is None:
            assert row == free_row[: len(row)]
        else:  # the eos itself is yielded once, then None
            assert row[: first + 1] == free_row[: first + 1] and set(row[first + 1:]) <= {None}
    assert rows[0][free[0].index(eos)] == eos
    [single] = run(model, PROMPTS[:1], eos_id=eos)
    assert single == free[0][: free[0].index(eos) + 1]  # a single row stops right at eos


def naive_sliding_greedy(model: torch.nn.Module, prompt: list[int], n: int, block: int) -> list[int]:
    """Reference for the context policy: when the window is full, continue from its last block // 2 tokens."""
    ids, start = list(prompt), 0
    with torch.no_grad():
        for _ in range(n):
            if len(ids) - start >= block:
                start = len(ids) - block // 2
            ids.append(int(model(torch.tensor([ids[start:]]))[0, -1].argmax()))
    return ids[len(prompt):]


@pytest.mark.parametrize("arch", ARCHS)
def test_generation_past_the_context_slides_the_window(arch: str) -> None:
    model = tiny(arch, block_size=16)
    cfg = SamplingConfig(max_new_tokens=50, greedy=True)  # > 3 windows of 16
    [cached] = run(model, [PROMPTS[1]], cfg)
    [uncached] = run(model, [PROMPTS[1]], cfg, use_cache=False)
    assert len(cached) == 50
    assert cached == uncached == naive_sliding_greedy(model, PROMPTS[1], 50, 16)
    batch = run(model, PROMPTS, cfg)  # left-padded rows slide together and still match the uncached path
    assert batch == run(model, PROMPTS, cfg, use_cache=False)


def test_long_prompts_are_left_truncated() -> None:
    model = tiny(block_size=16)
    cfg = SamplingConfig(max_new_tokens=5, greedy=True)
    long_prompt = [i % 32 for i in range(40)]
    assert run(model, [long_prompt], cfg) == run(model, [long_prompt[-15:]], cfg)
    assert len(run(model, [long_prompt], cfg)[0]) == 5


def test_bad_prompts_raise_and_model_mode_is_restored() -> None:
    model = tiny().train()
    with pytest.raises(ValueError, match="at least one prompt"):
        generate_tokens(model, [], GREEDY)
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        generate_tokens(model, [[1], []], GREEDY)
    for _ in generate_tokens(model, [[1, 2]], SamplingConfig(max_new_tokens=3)):
        assert not model.training and torch.is_grad_enabled()  # eval inside; caller's grad mode untouched
    assert model.training


class CharTokenizer:
    """One id per character of a fixed 32-character alphabet; id 31 ('#') may serve as eos."""

    alphabet = "abcdefghijklmnopqrstuvwxyz .,!?#"

    def __init__(self, eos_id: int | None = None) -> None:
        self.eos_id, self.pad_id = eos_id, None

    def encode(self, text: str) -> list[int]:
        return [self.alphabet.index(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.alphabet[i] for i in ids)


def test_stop_boundary_holds_back_partial_stops_and_incomplete_characters() -> None:
    assert stop_boundary("hello wor", ["world"]) == (6, False)
    assert stop_boundary("hello world!", ["world"]) == (6, True)
    assert stop_boundary("a STOP b END", ["END", "STOP"]) == (2, True)  # earliest occurrence wins
    assert stop_boundary("abc\ufffd", []) == (3, False)
    assert stop_boundary("abc", ["xyz"]) == (3, False)
    assert stop_boundary("abcab", ["abx", "bq"]) == (3, False)  # longest possible prefix held back


def test_text_row_decodes_multibyte_characters_whole() -> None:
    text = "héllo, wörld ✓"
    row = TextRow(lambda ids: bytes(ids).decode("utf-8", errors="replace"), [], None, prompt_tokens=1)
    deltas = [row.push(b) for b in text.encode("utf-8")]
    deltas.append(row.finish("length"))
    assert "".join(deltas) == text and not any("\ufffd" in d for d in deltas)
    assert row.result().completion_tokens == len(text.encode("utf-8"))


def test_stop_string_ends_text_and_stream_equals_batch() -> None:
    model, tok = tiny(), CharTokenizer()
    free = generate_text(model, tok, ["hello"], GREEDY)[0]
    stop = free[12:14]
    cfg = SamplingConfig(max_new_tokens=30, greedy=True, stop=[stop])
    stream = stream_text(model, tok, "hello", cfg)
    deltas = list(stream)
    expected = free[: free.index(stop)]
    assert "".join(deltas) == expected == generate_text(model, tok, ["hello"], cfg)[0]
    details = stream.generation
    assert (details.finish_reason, details.text, details.prompt_tokens) == ("stop", expected, 5)
    assert details.completion_tokens == free.index(stop) + len(stop)  # tokens after the stop are not run
    assert generate_text(model, tok, ["hello"], GREEDY, return_details=True)[0].finish_reason == "length"


def test_generate_text_batch_matches_streams_with_stop_eos_and_sampling() -> None:
    model, tok = tiny(), CharTokenizer(eos_id=31)
    prompts = ["the cat", "a", "once upon a time"]
    free = generate_text(model, tok, prompts, SamplingConfig(max_new_tokens=25, greedy=True), return_details=True)
    assert "eos" in {r.finish_reason for r in free}
    stop = free[2].text[3:5]
    cfg = SamplingConfig(max_new_tokens=25, greedy=True, stop=[stop])
    batch = generate_text(model, tok, prompts, cfg, return_details=True)
    assert batch[2].finish_reason == "stop"
    for prompt, unstopped, result in zip(prompts, free, batch, strict=True):
        cut = unstopped.text.find(stop)
        assert result.text == (unstopped.text[:cut] if cut >= 0 else unstopped.text)
        assert result.finish_reason == ("stop" if cut >= 0 else unstopped.finish_reason)
        assert result.text == "".join(stream_text(model, tok, prompt, cfg)) and "#" not in result.text
        if result.finish_reason == "eos":
            assert result.token_ids[-1] == 31
    sampled = SamplingConfig(max_new_tokens=25, temperature=0.9, top_p=0.9, seed=5, stop=[stop])
    streamed = "".join(stream_text(model, tok, "the cat", sampled))
    assert streamed == generate_text(model, tok, ["the cat"], sampled)[0]
    with pytest.raises(ValueError, match="empty"):
        generate_text(model, tok, [""], cfg)
