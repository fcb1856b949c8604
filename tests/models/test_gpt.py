"""GPT family, over every registered preset, plus parity with Hugging Face GPT-2 on a tiny config."""

from __future__ import annotations

import math

import pytest
import torch

from fromzero.errors import ConfigError
from fromzero.models import GPT, GPTConfig, create_model, list_models, model_config

SMALL = {"n_layer": 1, "block_size": 32, "vocab_size": 97}
GPT_PRESETS = [name for name in list_models() if isinstance(model_config(name), GPTConfig)]


def small_overrides(name: str) -> dict:
    """Shrink presets that would be slow to build in a test; keep the small ones as they are."""
    c = model_config(name)
    big = c.vocab_size > 1000 or c.block_size > 256 or 12 * c.n_layer * c.n_embd**2 > 3_000_000
    return SMALL if big else {}


def build(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **{**small_overrides(name), **kw}).eval()


def test_registry_is_not_empty():
    assert "gpt-char-small" in list_models() and "llama-tiny" in list_models()


@pytest.mark.parametrize("name", GPT_PRESETS)
def test_forward_shape_and_initial_loss(name):
    model = build(name)
    c = model.config
    ids = torch.randint(0, c.vocab_size, (2, min(16, c.block_size)))
    with torch.no_grad():
        logits = model(ids)
    assert logits.shape == (*ids.shape, c.vocab_size)
    # random targets: with tied weights an untrained model favours repeating its input token
    targets = torch.randint(0, c.vocab_size, ids.shape)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    # near-uniform prediction: ln V, plus var/2 for small Gaussian logits (0.22 at width 1024)
    assert logits.std() < 1.0
    assert abs(loss.item() - math.log(c.vocab_size) - logits.var().item() / 2) < 0.3


@pytest.mark.parametrize("name", GPT_PRESETS)
def test_weight_tying(name):
    model = build(name)
    tied = model.lm_head.weight.data_ptr() == model.tok_emb.weight.data_ptr()
    assert tied == model.config.tie_weights
    if tied:
        assert model.lm_head.weight is model.tok_emb.weight


@pytest.mark.parametrize("name", GPT_PRESETS)
def test_too_long_input_raises(name):
    model = build(name)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, model.config.block_size + 1, dtype=torch.long))


def test_parameter_count_gpt_char_small():
    model = create_model("gpt-char-small")
    c = model.config
    V, P, L, C = c.vocab_size, c.block_size, c.n_layer, c.n_embd
    per_block = (
        2 * C  # norm1 weight + bias
        + C * 3 * C + 3 * C  # qkv
        + C * C + C  # attention output projection
        + 2 * C  # norm2
        + C * 4 * C + 4 * C  # fc
        + 4 * C * C + C  # mlp projection
    )
    expected = V * C + P * C + L * per_block + 2 * C  # + final norm; the head is tied
    assert sum(p.numel() for p in model.parameters()) == expected == 826_112


def test_residual_projections_have_scaled_init():
    torch.manual_seed(0)
    model = create_model("gpt-char-small", n_layer=8, n_embd=256, n_head=4)
    std = 0.02 / math.sqrt(2 * 8)
    for block in model.blocks:
        for w in (block.attn.proj.weight, block.mlp.proj.weight):
            assert abs(w.std().item() - std) / std < 0.05
            assert abs(w.mean().item()) < 0.1 * std
        for w in (block.attn.qkv.weight, block.mlp.fc.weight):
            assert abs(w.std().item() - 0.02) / 0.02 < 0.05
        assert torch.count_nonzero(block.attn.qkv.bias) == 0


def test_config_error_names_key():
    with pytest.raises(ConfigError, match=r"model\.n_embd") as err:
        model_config("gpt-char-small", {"n_embd": 100, "n_head": 3})
    assert "divisible" in str(err.value)
    with pytest.raises(ConfigError, match=r"recipe\.yaml: model\.n_kv_head"):
        model_config("gpt-char-small", {"n_kv_head": 3}, file="recipe.yaml")
    with pytest.raises(ConfigError, match=r"model\.nembd.*did you mean 'model\.n_embd'"):
        model_config("gpt-char-small", {"nembd": 64})


def test_unknown_preset_suggests_closest():
    with pytest.raises(ConfigError, match="did you mean 'gpt-char-small'"):
        model_config("gpt-char-smal")
    with pytest.raises(ConfigError, match="did you mean 'llama-tiny'"):
        create_model("lama-tiny")


def test_family_name_with_overrides():
    model = create_model("gpt", n_layer=1, n_embd=32, n_head=2, vocab_size=11, block_size=8)
    assert isinstance(model, GPT) and len(model.blocks) == 1


def copy_into_hf_gpt2(ours: GPT, hf: torch.nn.Module) -> None:
    """Our weights into GPT2LMHeadModel through the interop key map (Conv1D transposes, fused c_attn)."""
    from fromzero.interop import to_hf_checkpoint

    result = hf.load_state_dict(to_hf_checkpoint(ours).state, strict=False)
    assert result.missing_keys == ["lm_head.weight"] and not result.unexpected_keys  # lm_head is tied to wte


def test_logits_match_hf_gpt2():
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    torch.manual_seed(0)
    ours = create_model("gpt", vocab_size=97, block_size=32, n_layer=2, n_head=4, n_embd=32).eval()
    with torch.no_grad():  # nonzero biases and norm parameters so every copy is exercised
        for p in ours.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                  activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                                  attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=True)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    copy_into_hf_gpt2(ours, hf)
    ids = torch.randint(0, 97, (2, 32))
    with torch.no_grad():
        ref = hf(ids).logits
        got = ours(ids)
    assert (got - ref).abs().max() < 1e-4
