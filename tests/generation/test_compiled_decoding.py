"""The torch.compile'd decode step (DecodeOptions(compile=True)) equals uncached decoding token for token:
GPT and Llama-style, batch 1 and a padded batch of 8. One-layer models keep the compiles short (each
batch shape class compiles once: one row, and several rows)."""

from __future__ import annotations

import pytest
import torch

from fromzero.generation import DecodeOptions, SamplingConfig, generate_tokens
from fromzero.models import create_model

pytestmark = [pytest.mark.slow,  # TorchInductor compiles C++: seconds per graph
              pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")]
GREEDY = SamplingConfig(max_new_tokens=16, greedy=True)
PROMPTS_8 = [[3, 1, 4, 1, 5], [9, 2, 6, 5, 3, 5, 8, 9, 7], [2], [7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9],
             [6, 6], [1, 2, 3], [31, 30, 29, 28, 27, 26, 25], [11, 13, 17, 19]]
ARCHS = {
    "gpt": ("gpt-char-tiny", {}),
    "llama": ("llama-tiny", {"n_embd": 64, "n_head": 4, "n_kv_head": 2, "block_size": 64}),
}



def rows(model: torch.nn.Module, prompts: list[list[int]], **kw: object) -> list[list[int | None]]:
    return [list(r) for r in zip(*generate_tokens(model, prompts, GREEDY, **kw), strict=True)]


@pytest.mark.parametrize("arch", ARCHS)
def test_compiled_step_equals_uncached_at_batch_1_and_padded_batch_8(arch: str) -> None:
    name, overrides = ARCHS[arch]
    torch.manual_seed(0)
    model = create_model(name, vocab_size=32, n_layer=1, init_std=0.5, **overrides).eval()
    compiled = DecodeOptions(compile=True)
    for prompts in (PROMPTS_8[3:4], PROMPTS_8):
        out = rows(model, prompts, options=compiled)
        assert out == rows(model, prompts, use_cache=False)
        assert len({t for row in out for t in row}) > 3
