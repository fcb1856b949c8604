"""T5 family: every registered preset; logits and greedy parity with Hugging Face T5 / T5 v1.1 on tiny
configs; padding, causality and KV-cache invariants; the T5 init."""

from __future__ import annotations

import math
import tempfile

import pytest
import torch

from fromzero.errors import ConfigError
from fromzero.generation import SamplingConfig, generate_seq2seq
from fromzero.models import T5, create_model, family_of, list_models, model_config
from fromzero.models.t5 import shift_right

T5_PRESETS = [n for n in list_models() if family_of(model_config(n)).name == "t5"]
TINY = {"vocab_size": 99, "d_model": 32, "d_kv": 12, "d_ff": 48, "n_layer": 2, "n_decoder_layer": 3, "n_head": 4,
        "rel_buckets": 8, "rel_max_distance": 20, "dropout": 0.0}


def tiny(**kw: object) -> T5:
    torch.manual_seed(0)
    return create_model("t5", **{**TINY, **kw}).eval()


def padded_batch(vocab: int = 99) -> tuple[torch.Tensor, torch.Tensor]:
    """Three encoder rows of 30, 20 and 5 real tokens, right-padded with 0."""
    torch.manual_seed(1)
    ids = torch.randint(2, vocab, (3, 30))
    mask = torch.ones(3, 30, dtype=torch.long)
    mask[1, 20:] = 0
    mask[2, 5:] = 0
    return ids.masked_fill(mask == 0, 0), mask


# -- registry presets ------------------------------------------------------------------------------------------

def test_presets_are_registered():
    assert {"t5-tiny", "t5-small", "t5-base", "t5-v1_1-small"} <= set(T5_PRESETS)


@pytest.mark.parametrize("name", T5_PRESETS)
def test_preset_forward_shape_initial_loss_and_tying(name):
    c = model_config(name)
    small = {"vocab_size": 97, "n_layer": 1, "n_decoder_layer": 1} if c.vocab_size > 10_000 else {}
    torch.manual_seed(0)
    model = create_model(name, **small).eval()
    c = model.config
    ids, dec = torch.randint(0, c.vocab_size, (2, 9)), torch.randint(0, c.vocab_size, (2, 6))
    with torch.no_grad():
        logits = model(ids, decoder_input_ids=dec)
    assert logits.shape == (2, 6, c.vocab_size)
    assert (model.lm_head.weight is model.tok_emb.weight) == c.tie_weights
    if c.tie_weights:
        # N(0, 1) embeddings ride the residual stream to the tied head: the input token's own logit,
        # |e|^2 / sqrt(d_model) ~ sqrt(d_model), dominates at init (in T5's init, as in Hugging Face's)
        assert (logits.argmax(-1) == dec).float().mean() > 0.9
    else:
        # expected cross entropy for a uniformly random target: logsumexp(z) - mean(z) ~ ln V + var(z)/2
        loss = (logits.logsumexp(-1) - logits.mean(-1)).mean().item()
        assert logits.std() < 1.5 and abs(loss - math.log(c.vocab_size) - logits.var().item() / 2) < 0.3


def test_parameter_counts_match_the_published_models():
    """T5-small 60.5M, T5 v1.1 small 77.0M (the Hugging Face checkpoints' counts); counted without building."""
    def count(c):
        d, inner, ff = c.d_model, c.n_head * c.d_kv, c.d_ff * (2 if c.ffn == "gated-gelu" else 1)
        attn = 4 * d * inner
        enc = c.n_layer * (attn + ff * d + c.d_ff * d + 2 * d)
        dec = c.n_dec_layer * (2 * attn + ff * d + c.d_ff * d + 3 * d)
        head = 0 if c.tie_weights else c.vocab_size * d
        return c.vocab_size * d + enc + dec + 2 * d + 2 * c.rel_buckets * c.n_head + head
    assert count(model_config("t5-small")) == 60_506_624
    assert count(model_config("t5-v1_1-small")) == 76_961_152
    model = tiny()
    assert sum(p.numel() for p in model.parameters()) == count(model.config)


@pytest.mark.parametrize("key,value,match", [
    ("rel_buckets", 7, "even"), ("rel_max_distance", 4, "exceed"), ("ffn", "swiglu", "ffn"),
    ("eos_id", 500, "not a token id"), ("dropout", 1.0, r"\[0, 1\)"), ("d_kv", 0, "positive"),
])
def test_invalid_config_names_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match) as err:
        model_config("t5-tiny", {key: value, "vocab_size": 100})
    assert f"model.{key}" in str(err.value)


# -- Hugging Face parity -----------------------------------------------------------------------------------------

def hf_pair(gated: bool, n_dec: int = 3) -> tuple[torch.nn.Module, T5]:
    """A random tiny HF T5 (v1.0: relu, tied, scaled) or T5 v1.1 (gated-gelu, untied), and ours with its weights."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    hf_cfg = transformers.T5Config(
        vocab_size=99, d_model=32, d_kv=12, d_ff=48, num_layers=2, num_decoder_layers=n_dec, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=20, dropout_rate=0.0,
        feed_forward_proj="gated-gelu" if gated else "relu", tie_word_embeddings=not gated,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    hf = transformers.T5ForConditionalGeneration(hf_cfg).eval()
    if gated:  # transformers 5 ties lm_head to the embedding even for v1.1; give it its own weights
        assert not hf_cfg.scale_decoder_outputs
        hf.lm_head.weight = torch.nn.Parameter(torch.randn(99, 32))
    from fromzero.interop import load_hf_model  # the interop key map: fused qkv / cross kv, block-0 relative bias

    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        ours = load_hf_model(folder).model
    c = ours.config
    assert (c.ffn, c.tie_weights, c.n_dec_layer, c.d_kv, c.rel_buckets) == (hf_cfg.feed_forward_proj, not gated, n_dec,
                                                                            12, 8)
    return hf, ours


@pytest.mark.parametrize("gated", [False, True], ids=["t5-relu-tied", "t5v1.1-gated-untied"])
def test_logits_match_huggingface_with_padding(gated):
    hf, ours = hf_pair(gated)
    ids, mask = padded_batch()
    torch.manual_seed(2)
    dec = torch.randint(2, 99, (3, 25))
    dec_mask = torch.ones(3, 25, dtype=torch.long)
    dec_mask[2, 15:] = 0  # a right-padded target row
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask).logits
        got = ours(ids, attention_mask=mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask)
        ref_enc = hf.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        got_enc = ours.encode(ids, mask)
    real = dec_mask.bool()
    assert (got[real] - ref[real]).abs().max() < 1e-4
    assert ref.abs().max() > 1.0  # not a trivially small comparison
    assert (got_enc[mask.bool()] - ref_enc[mask.bool()]).abs().max() < 1e-4


@pytest.mark.parametrize("gated", [False, True], ids=["t5-relu-tied", "t5v1.1-gated-untied"])
def test_greedy_generation_matches_huggingface(gated):
    # equal encoder/decoder depth: transformers 5's generate() sizes its cache by the encoder depth
    hf, ours = hf_pair(gated, n_dec=2)
    ids, mask = padded_batch()
    rows = [r[m.bool()].tolist() for r, m in zip(ids, mask, strict=True)]
    steps = list(generate_seq2seq(ours, rows, SamplingConfig(max_new_tokens=12, greedy=True), eos_id=1, pad_id=0,
                                  decoder_start_id=0))
    with torch.no_grad():
        ref = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False)[:, 1:]
    for row, ref_row in zip(zip(*steps, strict=True), ref.tolist(), strict=True):
        toks = [t for t in row if t is not None]
        assert toks == ref_row[: len(toks)] and len(toks) >= 1
        assert len(toks) == 12 or toks[-1] == 1  # ran to the limit or stopped at eos, as HF did


# -- invariants --------------------------------------------------------------------------------------------------

def test_decoder_is_causal():
    model = tiny()
    ids, mask = padded_batch()
    dec = torch.randint(2, 99, (3, 12))
    with torch.no_grad():
        ref = model(ids, attention_mask=mask, decoder_input_ids=dec)
        for t in (0, 4, 10):
            changed = dec.clone()
            changed[:, t + 1:] = torch.randint(2, 99, changed[:, t + 1:].shape)
            out = model(ids, attention_mask=mask, decoder_input_ids=changed)
            assert torch.allclose(out[:, : t + 1], ref[:, : t + 1], atol=1e-6)
            assert not torch.allclose(out[:, t + 1:], ref[:, t + 1:], atol=1e-3)


def test_cross_attention_ignores_padded_encoder_positions():
    model = tiny()
    ids, mask = padded_batch()
    dec = torch.randint(2, 99, (3, 8))
    noisy = ids.clone()
    noisy[mask == 0] = torch.randint(2, 99, (int((mask == 0).sum()),))  # other tokens under the padding
    with torch.no_grad():
        ref = model(ids, attention_mask=mask, decoder_input_ids=dec)
        assert torch.allclose(model(noisy, attention_mask=mask, decoder_input_ids=dec), ref, atol=1e-6)
        unmasked = model(noisy, decoder_input_ids=dec)  # without the mask the padding would matter
    assert not torch.allclose(unmasked[1:], ref[1:], atol=1e-3)


def test_encoder_and_logits_unchanged_by_extra_padding():
    model = tiny()
    ids = torch.randint(2, 99, (1, 9))
    dec = torch.randint(2, 99, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 7, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 9), torch.zeros(1, 7)], dim=1)
    with torch.no_grad():
        alone, with_pad = model.encode(ids), model.encode(padded, mask)
        assert torch.allclose(with_pad[:, :9], alone, atol=1e-5)
        assert torch.allclose(model(padded, attention_mask=mask, decoder_input_ids=dec),
                              model(ids, decoder_input_ids=dec), atol=1e-5)


@pytest.mark.parametrize("gated", [False, True])
def test_kv_cache_chunks_equal_full_decode(gated):
    model = tiny(ffn="gated-gelu" if gated else "relu", tie_weights=not gated)
    ids, mask = padded_batch()
    dec = torch.randint(2, 99, (3, 14))
    cache = model.new_cache(batch=3, max_len=14)
    with torch.no_grad():
        memory = model.encode(ids, mask)
        full = model.decode(dec, memory, mask)
        parts, start = [], 0
        for size in (3, 1, 1, 4, 1, 4):  # a prefill, single steps and chunks
            parts.append(model.decode(dec[:, start:start + size], memory, mask, cache=cache))
            start += size
    assert cache.length == 14 and all(k is not None for k in cache.cross.keys)
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


def test_init_follows_mesh_tf_t5():
    torch.manual_seed(0)
    model = create_model("t5", vocab_size=500, n_layer=2, n_head=8, d_model=256, d_kv=64, d_ff=1024)
    untied = create_model("t5", vocab_size=500, n_layer=1, n_head=8, d_model=256, d_kv=64, d_ff=1024,
                          tie_weights=False)
    d, inner, blk = 256, 512, model.encoder.blocks[0]
    expected = {
        "embedding": (model.tok_emb.weight, 1.0),
        "q": (blk.attn.qkv.weight[:inner], (d * 64) ** -0.5),
        "k, v": (blk.attn.qkv.weight[inner:], d**-0.5),
        "o": (blk.attn.proj.weight, inner**-0.5),
        "cross q": (model.decoder.blocks[1].cross_attn.q.weight, (d * 64) ** -0.5),
        "cross kv": (model.decoder.blocks[1].cross_attn.kv.weight, d**-0.5),
        "wi": (blk.mlp.fc.weight, d**-0.5),
        "wo": (blk.mlp.proj.weight, 1024**-0.5),
        "untied lm_head (Mesh TF dense)": (untied.lm_head.weight, d**-0.5),
    }
    for name, (w, std) in expected.items():
        assert abs(w.std().item() / std - 1) < 0.05, name
    assert torch.all(blk.norm1.weight == 1) and torch.all(model.decoder.norm_f.weight == 1)
    assert model.encoder.rel_bias.weight.shape == (32, 8)


def test_shift_right():
    labels = torch.tensor([[5, 6, 7, 1], [8, 1, -100, -100]])
    assert shift_right(labels, decoder_start_id=0, pad_id=0).tolist() == [[0, 5, 6, 7], [0, 8, 1, 0]]
