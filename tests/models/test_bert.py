"""BERT family: parity with Hugging Face BertForPreTraining, padding, bidirectionality, heads, presets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fromzero.errors import ConfigError
from fromzero.models import Bert, BertConfig, create_model, list_models, model_config

TINY = {"vocab_size": 97, "max_positions": 32, "n_layer": 2, "n_head": 4, "n_embd": 32, "dropout": 0.0}
BERT_PRESETS = [name for name in list_models() if name.startswith("bert-")]


def tiny(**kw) -> Bert:
    torch.manual_seed(0)
    return create_model("bert", **{**TINY, **kw}).eval()


def perturb_vectors(model: torch.nn.Module) -> None:
    """Nonzero biases and LayerNorm parameters, so a wrong or missing copy shows up."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))


def hf_state_dict(ours: Bert) -> dict[str, torch.Tensor]:
    """Our weights under BertForPreTraining's names, through the interop key map (qkv = [query; key; value])."""
    from fromzero.interop import to_hf_checkpoint

    export = to_hf_checkpoint(ours)
    assert export.architecture == "BertForPreTraining"
    # HF keeps the tied decoder weight and a second name of the output bias; give it those too
    return {**export.state, "cls.predictions.decoder.weight": export.state["bert.embeddings.word_embeddings.weight"],
            "cls.predictions.decoder.bias": export.state["cls.predictions.bias"]}


def test_matches_hf_bert_for_pretraining_with_padding():
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    ours = tiny(mlp_hidden=48, init_std=0.2)  # weights large enough that tanh-GELU would miss 1e-4 (by 6x)
    perturb_vectors(ours)
    cfg = transformers.BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=48, hidden_act="gelu", hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0, max_position_embeddings=32,
                                  type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0)
    hf = transformers.BertForPreTraining(cfg).eval()
    hf.load_state_dict(hf_state_dict(ours), strict=True)  # strict: the map covers every HF tensor

    torch.manual_seed(2)
    lengths = [20, 13, 7]
    ids = torch.randint(1, 97, (3, 20))
    mask = (torch.arange(20) < torch.tensor(lengths)[:, None]).long()
    ids = ids.masked_fill(mask == 0, 0)
    types = (torch.arange(20) >= torch.tensor([9, 6, 3])[:, None]).long() * mask  # sentence B after a split
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        hidden = ours(ids, attention_mask=mask, token_type_ids=types)
        mlm = ours.mlm_logits(hidden)
        nsp = ours.nsp_logits(ours.pool(hidden))
    real = mask.bool()  # padded positions are unused; their values legitimately differ
    assert (hidden[real] - ref.hidden_states[-1][real]).abs().max() < 1e-4
    assert (mlm[real] - ref.prediction_logits[real]).abs().max() < 1e-4
    assert (nsp - ref.seq_relationship_logits).abs().max() < 1e-4


@pytest.mark.parametrize("pre_norm", [False, True])
def test_real_tokens_unchanged_by_padding(pre_norm):
    model = tiny(pre_norm=pre_norm)
    torch.manual_seed(3)
    a, b = torch.randint(1, 97, (1, 9)), torch.randint(1, 97, (1, 5))
    types_a = torch.tensor([[0] * 4 + [1] * 5])
    with torch.no_grad():
        alone_a = model(a, token_type_ids=types_a)
        alone_b = model(b)
        ids = torch.cat([a, F.pad(b, (0, 4))])  # right-pad b to length 9
        mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4])
        types = torch.cat([types_a, torch.zeros(1, 9, dtype=torch.long)])
        batch = model(ids, attention_mask=mask, token_type_ids=types)
        extra = model(F.pad(a, (0, 6)), attention_mask=F.pad(torch.ones(1, 9), (0, 6)),
                      token_type_ids=F.pad(types_a, (0, 6)))
    assert torch.allclose(batch[0], alone_a[0], atol=1e-5)
    assert torch.allclose(batch[1, :5], alone_b[0], atol=1e-5)
    assert torch.allclose(extra[0, :9], alone_a[0], atol=1e-5)


def test_bidirectional_later_token_changes_earlier_outputs():
    model = tiny()
    ids = torch.randint(1, 97, (1, 10), generator=torch.Generator().manual_seed(4))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] % 96) + 1 if ids[0, -1] % 96 + 1 != ids[0, -1] else 50
    with torch.no_grad():
        h1, h2 = model(ids), model(changed)
    assert (h1[0, 0] - h2[0, 0]).abs().max() > 1e-4  # a causal model would leave position 0 unchanged


def test_segment_embeddings_matter():
    model = tiny()
    ids = torch.randint(1, 97, (2, 8), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        h0 = model(ids)
        h0_explicit = model(ids, token_type_ids=torch.zeros_like(ids))
        h1 = model(ids, token_type_ids=torch.ones_like(ids))
    assert torch.equal(h0, h0_explicit)
    assert (h0 - h1).abs().max() > 1e-3


def test_mlm_head_is_tied_and_matches_the_formula():
    model = tiny()
    perturb_vectors(model)
    head = model.mlm_head
    assert head.decoder.weight is model.tok_emb.weight
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in set(model.parameters()))
    h = torch.randn(2, 5, 32)
    with torch.no_grad():
        t = F.layer_norm(F.gelu(h @ head.dense.weight.T + head.dense.bias), (32,), head.norm.weight,
                         head.norm.bias, 1e-12)
        expected = t @ model.tok_emb.weight.T + head.decoder.bias  # LN(GELU(W h + b)) E^T + b_out
        got = model.mlm_logits(h)
        flat = model.mlm_logits(h.reshape(10, 32))  # any leading shape, e.g. masked positions only
    assert got.shape == (2, 5, 97)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(flat, got.reshape(10, 97), atol=1e-6)


def test_pooler_and_nsp_head():
    model = tiny()
    perturb_vectors(model)
    h = torch.randn(3, 6, 32)
    with torch.no_grad():
        pooled = model.pool(h)
        assert torch.allclose(pooled, torch.tanh(h[:, 0] @ model.pooler.weight.T + model.pooler.bias))
        assert model.nsp_logits(pooled).shape == (3, 2)
    no_nsp = tiny(nsp_head=False)
    assert no_nsp.nsp_head is None and not any("nsp" in k for k in no_nsp.state_dict())
    with pytest.raises(ValueError, match="no NSP head"):
        no_nsp.nsp_logits(pooled)


def test_pooler_and_mlm_head_are_optional():
    """A bare encoder (Hugging Face BertModel without heads) has no head tensors and says so when asked."""
    bare = tiny(pooler=False, mlm_head=False, nsp_head=False)
    assert sorted(k for k in bare.state_dict() if not k.startswith(("blocks.", "tok_emb", "pos_emb", "type_emb"))) \
        == ["emb_norm.bias", "emb_norm.weight"]
    h = bare(torch.randint(1, 97, (2, 5)))
    with pytest.raises(ValueError, match="no pooler"):
        bare.pool(h)
    with pytest.raises(ValueError, match="no masked-LM head"):
        bare.mlm_logits(h)
    with_heads = tiny()
    unexpected = bare.load_state_dict(with_heads.state_dict(), strict=False).unexpected_keys
    assert {k.split(".")[0] for k in unexpected} == {"pooler", "mlm_head", "nsp_head"}  # the encoder is shared
    ids = torch.randint(1, 97, (2, 5))
    assert torch.equal(with_heads(ids), bare(ids))
    with pytest.raises(ConfigError, match=r"model\.nsp_head"):
        model_config("bert", {"pooler": False})


def test_pre_norm_runs_and_differs_from_post_norm():
    post, pre = tiny(init_std=0.3), tiny(pre_norm=True, init_std=0.3)  # wide init: residual branches matter
    assert post.norm_f is None and pre.norm_f is not None
    missing = pre.load_state_dict(post.state_dict(), strict=False).missing_keys
    assert missing == ["norm_f.weight", "norm_f.bias"]  # same weights; only the layout of the blocks differs
    ids = torch.randint(1, 97, (2, 8), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        h_post, h_pre = post(ids), pre(ids)
    assert h_pre.shape == h_post.shape and torch.isfinite(h_pre).all()
    assert (h_pre - h_post).abs().max() > 1e-3


def test_init_and_dropout_settings():
    torch.manual_seed(0)
    model = create_model("bert", **{**TINY, "n_embd": 128, "n_head": 4, "dropout": 0.1, "attn_dropout": 0.2})
    assert abs(model.blocks[0].mlp.fc.weight.std().item() - 0.02) < 0.002  # BERT: no residual scaling
    assert abs(model.blocks[0].mlp.proj.weight.std().item() - 0.02) < 0.002
    assert torch.count_nonzero(model.tok_emb.weight[model.config.pad_id]) == 0
    assert torch.count_nonzero(model.mlm_head.decoder.bias) == 0
    attn = model.blocks[0].attn
    assert attn.dropout == 0.2 and attn.resid_dropout.p == 0.1 and model.drop.p == 0.1


def test_too_long_input_raises():
    with pytest.raises(ValueError, match="max_positions"):
        tiny()(torch.zeros(1, 33, dtype=torch.long))


PRESET_SHAPES = {"bert-tiny": (2, 128, 2), "bert-mini": (4, 256, 4), "bert-small": (4, 512, 8),
                 "bert-medium": (8, 512, 8), "bert-base": (12, 768, 12)}


def test_preset_shapes():
    assert sorted(BERT_PRESETS) == sorted(PRESET_SHAPES)
    for name, (layers, width, heads) in PRESET_SHAPES.items():
        c = model_config(name)
        assert (c.n_layer, c.n_embd, c.n_head, c.vocab_size) == (layers, width, heads, 30522)
        assert (c.max_positions, c.type_vocab_size, c.ffn_hidden, c.pre_norm) == (512, 2, 4 * width, False)


@pytest.mark.parametrize("name", BERT_PRESETS)
def test_presets_build_and_run(name):
    small = {"vocab_size": 1000, "max_positions": 64, "n_layer": 1} if model_config(name).n_embd > 128 else {}
    torch.manual_seed(0)
    model = create_model(name, **small).eval()
    c = model.config
    ids = torch.randint(0, c.vocab_size, (2, 12))
    with torch.no_grad():
        h = model(ids, attention_mask=torch.ones_like(ids))
        assert h.shape == (2, 12, c.n_embd)
        assert model.mlm_logits(h).shape == (2, 12, c.vocab_size)
        assert model.nsp_logits(model.pool(h)).shape == (2, 2)
    assert len(model.blocks) == c.n_layer


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"model\.n_embd") as err:
        model_config("bert-tiny", {"n_embd": 100, "n_head": 3})
    assert "divisible" in str(err.value)
    with pytest.raises(ConfigError, match=r"model\.attn_dropout"):
        model_config("bert-tiny", {"attn_dropout": 1.5})
    with pytest.raises(ConfigError, match=r"model\.pad_id"):
        model_config("bert-tiny", {"pad_id": 30522})
    with pytest.raises(ConfigError, match=r"did you mean 'model\.max_positions'"):
        model_config("bert-tiny", {"max_position": 128})
    assert isinstance(model_config("bert", {"n_layer": 1}), BertConfig)
