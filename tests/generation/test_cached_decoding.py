"""Cached decoding equals uncached decoding token for token: GPT, Llama-style and T5, batch 1 and a padded
batch of 8, under each eager decode path (the plan, the module path, and at batch 1 the plan's split-linear
path on two threads) and with the model in bf16 / fp16. The compiled step: test_compiled_decoding.py.

References: the uncached path recomputes every window in one forward (no cache, no plan), and
``naive_greedy`` runs the plain module forward on the unpadded sequence. A large init spreads the logits
apart so argmax never hinges on float rounding (batched and unbatched matmuls round differently).
"""

from __future__ import annotations

import pytest
import torch

from decoding_reference import naive_greedy
from fromzero.generation import BatchDecoder, SamplingConfig, generate_seq2seq, generate_tokens
from fromzero.generation.decode_plan import DecodePlan, PlanLinear
from fromzero.models import create_model

GREEDY = SamplingConfig(max_new_tokens=24, greedy=True)
PROMPTS_8 = [[3, 1, 4, 1, 5], [9, 2, 6, 5, 3, 5, 8, 9, 7], [2], [7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9],
             [6, 6], [1, 2, 3], [31, 30, 29, 28, 27, 26, 25], [11, 13, 17, 19]]



def gpt() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("gpt-char-tiny", vocab_size=32, init_std=0.5).eval()


def llama() -> torch.nn.Module:
    """llama-tiny shrunk: RoPE, grouped-query attention (4 query heads, 2 key/value heads), RMSNorm, SwiGLU."""
    torch.manual_seed(0)
    return create_model("llama-tiny", vocab_size=32, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, block_size=64,
                        init_std=0.5).eval()


MODELS = {"gpt": gpt, "llama": llama}


def rows(steps: list[list[int | None]]) -> list[list[int | None]]:
    return [list(r) for r in zip(*steps, strict=True)]


def decode(model: torch.nn.Module, prompts: list[list[int]], path: str, cfg: SamplingConfig = GREEDY) -> list:
    """Tokens per row through one decode path: plan (default), module (GPT.decode_step), split (2 threads)."""
    if path == "split":
        torch.set_num_threads(2)
        try:
            assert DecodePlan(model).layers[0][2].split is not None  # the split path is what runs
            return rows(list(generate_tokens(model, prompts, cfg)))
        finally:
            torch.set_num_threads(1)
    if path != "module":
        return rows(list(generate_tokens(model, prompts, cfg)))
    with torch.inference_mode():  # the BatchDecoder generate_tokens builds, with the module-path step
        decoder = BatchDecoder(model, len(prompts), step_fn=model.decode_step)
        tagged = [decoder.add(p, cfg, tag=i) for i, p in enumerate(prompts)]
        for _ in range(cfg.max_new_tokens):
            decoder.step()
    return [row.generated for row in tagged]


@pytest.mark.parametrize("path", ["plan", "module", "split"])
@pytest.mark.parametrize("arch", MODELS)
def test_batch_1_cached_equals_uncached_and_naive(arch: str, path: str) -> None:
    model = MODELS[arch]()
    uncached = rows(list(generate_tokens(model, PROMPTS_8[:1], GREEDY, use_cache=False)))
    assert decode(model, PROMPTS_8[:1], path) == uncached == [naive_greedy(model, PROMPTS_8[0], 24)]
    assert len(set(uncached[0])) > 3  # not one repeated token


@pytest.mark.parametrize("path", ["plan", "module"])  # the split path is for one row only
@pytest.mark.parametrize("arch", MODELS)
def test_padded_batch_8_cached_equals_uncached_and_each_row_alone(arch: str, path: str) -> None:
    model = MODELS[arch]()
    cached = decode(model, PROMPTS_8, path)
    assert cached == rows(list(generate_tokens(model, PROMPTS_8, GREEDY, use_cache=False)))
    for prompt, row in zip(PROMPTS_8[::3], cached[::3], strict=True):
        assert row == naive_greedy(model, prompt, 24)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("arch", MODELS)
def test_half_precision_model_cached_equals_uncached_in_that_dtype(arch: str, dtype: torch.dtype) -> None:
    """A model cast to bf16/fp16 decodes with its cache in that dtype; the reference recomputes in it too.

    Where bf16/fp16 matmuls are native (AVX512-BF16, AMX, GPUs) one-row and whole-window kernels round
    differently, so two rows may part at a near-tie: allowed only where the reference's own logits of the
    two tokens are within the dtype's rounding (2 units of its epsilon times the largest logit).
    """
    model = MODELS[arch]().to(dtype)
    tol_units = 2 * torch.finfo(dtype).eps
    for prompts in (PROMPTS_8[3:4], PROMPTS_8):
        cached = decode(model, prompts, "plan")
        uncached = rows(list(generate_tokens(model, prompts, GREEDY, use_cache=False)))
        for prompt, a, b in zip(prompts, cached, uncached, strict=True):
            if a == b:
                continue
            k = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
            with torch.no_grad():
                logits = model(torch.tensor([prompt + a[:k]]))[0, -1].float()
            gap = abs(float(logits[a[k]] - logits[b[k]]))
            assert gap <= tol_units * float(logits.abs().max()), (prompt, k, gap)
        matched = sum(a == b for a, b in zip(cached, uncached, strict=True))
        assert matched >= len(prompts) - 2  # a near-tie is rare: most rows agree token for token
    assert len({t for row in cached for t in row}) > 3


def test_seeded_sampling_of_a_row_is_the_same_alone_and_in_a_batch() -> None:
    model = gpt()
    cfg = SamplingConfig(max_new_tokens=20, temperature=1.0, top_k=10, top_p=0.9, seed=7)
    batch = rows(list(generate_tokens(model, PROMPTS_8, cfg)))
    assert batch == rows(list(generate_tokens(model, PROMPTS_8, cfg, use_cache=False)))
    for prompt, row in zip(PROMPTS_8, batch, strict=True):
        assert row == rows(list(generate_tokens(model, [prompt], cfg)))[0]


def t5(**overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    kw = {"vocab_size": 32, "n_layer": 2, "n_head": 4, "d_model": 32, "d_kv": 8, "d_ff": 64, "rel_buckets": 8,
          "rel_max_distance": 16, "tie_weights": False, "init_factor": 4.0, **overrides}
    return create_model("t5", **kw).eval()


@pytest.mark.parametrize("batch", [1, 8])
def test_t5_cached_equals_uncached(batch: int) -> None:
    model = t5()
    ids = {"eos_id": None, "pad_id": 0, "decoder_start_id": 0}
    inputs = PROMPTS_8 if batch > 1 else [PROMPTS_8[3]]
    cached = rows(list(generate_seq2seq(model, inputs, GREEDY, **ids)))
    assert cached == rows(list(generate_seq2seq(model, inputs, GREEDY, use_cache=False, **ids)))
    assert len({t for row in cached for t in row}) > 4
    if batch > 1:  # right padding of the encoder inputs changes no row
        assert cached[3] == rows(list(generate_seq2seq(model, [inputs[3]], GREEDY, **ids)))[0]


def test_plan_linear_kernels_match_f_linear() -> None:
    """Each kernel PlanLinear picks (split batched matmul for one row, prepacked oneDNN for several)."""
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(96, 40, generator=gen), torch.randn(96, generator=gen)
    with torch.inference_mode():
        for chunks, pack in [(1, False), (2, True), (4, True)]:
            layer = PlanLinear(weight, bias, chunks, pack)
            for rows_ in (1, 3, 8):
                x = torch.randn(rows_, 40, generator=gen)
                torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, weight, bias))
            assert (layer.packed is not None) == (pack and torch.backends.mkldnn.is_available())
