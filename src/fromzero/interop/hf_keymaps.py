"""Hugging Face <-> fromzero key maps, config translations and model classes, one table per family.

Read a table as "fromzero name <- Hugging Face name(s)"; the engine in :mod:`fromzero.interop.keymap`
applies it both ways. Backbone names are inside the base model (``transformer.``, ``model.``, ``bert.``,
none for T5); head names are full.

    GPT-2 (GPT2LMHeadModel)          tok_emb / pos_emb / blocks.i.{norm1,attn,norm2,mlp} / norm_f
                                     <- wte / wpe / h.i.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}
                                     / ln_f; Conv1D weights are (in, out): transposed; c_attn is [q; k; v] as ours
    Llama (LlamaForCausalLM)         attn.qkv = cat(q_proj, k_proj, v_proj), sizes (H*hd, Hkv*hd, Hkv*hd);
                                     mlp.gate / up / proj <- gate_proj / up_proj / down_proj; RoPE is rotate-half
                                     in both, so q and k need no permutation
    BERT (BertModel, BertFor*)       attn.qkv = cat(query, key, value); pooler / mlm_head / nsp_head
                                     <- pooler.dense / cls.predictions / cls.seq_relationship, each optional
    T5 (T5ForConditionalGeneration)  self-attention qkv = cat(q, k, v); cross-attention kv = cat(k, v);
                                     relative bias only in block 0 of each stack; FFN wi (ReLU) or wi_0 / wi_1
                                     (gated GELU) -> mlp.fc or mlp.gate / mlp.up

Ties: GPT-2, Llama and T5 share the output projection with the embedding unless the checkpoint has a different
``lm_head.weight``; BERT's MLM decoder is always the word embedding. T5 v1.0 scales decoder outputs by
d_model^-0.5 when tied (our ``tie_weights``); v1.1 is untied and unscaled. transformers 5 writes
``tie_word_embeddings: true`` for every T5 and ``scale_decoder_outputs`` separately, so both are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fromzero.errors import CheckpointError
from fromzero.interop.keymap import CONCAT, TRANSPOSE, Architecture, ConfigMap, KeyMap, Rule

Weights = Any  # a `has(name) -> bool` / `same(a, b) -> bool` view of a checkpoint, see hf.Checkpoint


def _wb(ours: str, hf: str, when: str | None = None) -> tuple[Rule, Rule]:
    """A weight + bias pair (linear layer or LayerNorm) copied as is."""
    return Rule(f"{ours}.weight", f"{hf}.weight", when=when), Rule(f"{ours}.bias", f"{hf}.bias", when=when)


def _conv(ours: str, hf: str) -> tuple[Rule, Rule]:
    """GPT-2's Conv1D: weight stored (in, out), so transposed; bias copied."""
    return Rule(f"{ours}.weight", f"{hf}.weight", TRANSPOSE), Rule(f"{ours}.bias", f"{hf}.bias")


def _untied(hf: Mapping[str, Any], weights: Weights, embedding: str) -> bool:
    """The output projection is its own tensor: present and different (HF unties then too), or declared so."""
    if weights.has("lm_head.weight"):
        return not weights.same("lm_head.weight", embedding)
    return hf.get("tie_word_embeddings", True) is False  # declared untied but absent: the rule reports it missing


# -- GPT-2 ---------------------------------------------------------------------------------------------------------

def _gpt2_from_extra(hf: Mapping[str, Any], weights: Weights) -> dict[str, Any]:
    return {"tie_weights": not _untied(hf, weights, "transformer.wte.weight")}


GPT2 = KeyMap(
    name="gpt2", family="gpt", model_type="gpt2", base_prefix="transformer.", top_level=("lm_head",),
    backbone=(
        Rule("tok_emb.weight", "wte.weight"),
        Rule("pos_emb.weight", "wpe.weight"),
        *_wb("blocks.{i}.norm1", "h.{i}.ln_1"),
        *_conv("blocks.{i}.attn.qkv", "h.{i}.attn.c_attn"),
        *_conv("blocks.{i}.attn.proj", "h.{i}.attn.c_proj"),
        *_wb("blocks.{i}.norm2", "h.{i}.ln_2"),
        *_conv("blocks.{i}.mlp.fc", "h.{i}.mlp.c_fc"),
        *_conv("blocks.{i}.mlp.proj", "h.{i}.mlp.c_proj"),
        *_wb("norm_f", "ln_f"),
    ),
    heads=(Rule("lm_head.weight", "lm_head.weight", when="untied"),),
    layers=lambda c: {"i": c.n_layer},
    conditions={"untied": lambda c: not c.tie_weights},
    splits={},
    config=ConfigMap(
        fields=(("vocab_size", "vocab_size", 50257, None), ("n_positions", "block_size", 1024, None),
                ("n_layer", "n_layer", 12, None), ("n_head", "n_head", 12, None), ("n_embd", "n_embd", 768, None),
                ("n_inner", "mlp_hidden", None, None), ("layer_norm_epsilon", "norm_eps", 1e-5, None),
                ("resid_pdrop", "dropout", 0.1, None), ("embd_pdrop", None, 0.1, "dropout"),
                ("attn_pdrop", None, 0.1, "dropout"), ("initializer_range", "init_std", 0.02, None)),
        ours_fixed={"mlp": "gelu", "norm": "layernorm", "pos": "learned", "bias": True, "n_kv_head": None},
        hf_fixed={"activation_function": "gelu_new", "scale_attn_weights": True, "use_cache": True},
        hf_accept={
            "activation_function": (("gelu_new", "gelu_pytorch_tanh"), "fromzero's GPT MLP is tanh-approximated "
                                    "GELU (gelu_new)"),
            "scale_attn_weights": ((True,), "attention logits are always scaled by 1/sqrt(head_dim)"),
            "scale_attn_by_inverse_layer_idx": ((False,), "per-layer attention scaling is not implemented"),
            "add_cross_attention": ((False,), "GPT-2 with cross-attention is not a decoder-only model"),
        },
        from_extra=_gpt2_from_extra,
        to_extra=lambda c: {"tie_word_embeddings": c.tie_weights},
    ),
    tied={"lm_head.weight": "transformer.wte.weight"},
    ignore=(r"transformer\.h\.\d+\.attn\.(bias|masked_bias)",),  # causal-mask buffers of old checkpoints
)


# -- Llama ---------------------------------------------------------------------------------------------------------

def _rope_theta(hf: Mapping[str, Any]) -> float:
    """RoPE base from transformers 5's rope_parameters or 4's rope_theta; scaled RoPE variants are refused."""
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling")
    kind = params.get("rope_type", "default") if isinstance(params, dict) else "default"
    if scaling or kind != "default":
        raise CheckpointError(f"config.json: rope scaling {scaling or params!r} is not supported; fromzero's RoPE "
                              "is the plain (default) one, so long-context variants (linear, dynamic, yarn, llama3) "
                              "would compute different attention")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def _llama_from_extra(hf: Mapping[str, Any], weights: Weights) -> dict[str, Any]:
    hidden, heads = hf.get("hidden_size", 4096), hf.get("num_attention_heads", 32)
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim * heads != hidden:
        raise CheckpointError(f"config.json: head_dim={head_dim} differs from hidden_size/num_attention_heads = "
                              f"{hidden}/{heads}; fromzero's decoder ties the head width to the model width")
    kv = hf.get("num_key_value_heads") or heads
    return {"rope_theta": _rope_theta(hf), "n_kv_head": kv if kv != heads else None,
            "tie_weights": not _untied(hf, weights, "model.embed_tokens.weight")}


def _llama_to_extra(c: Any) -> dict[str, Any]:
    return {"num_key_value_heads": c.n_kv_head or c.n_head, "head_dim": c.head_dim, "rope_theta": c.rope_theta,
            "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
            "tie_word_embeddings": c.tie_weights}


LLAMA = KeyMap(
    name="llama", family="gpt", model_type="llama", base_prefix="model.", top_level=("lm_head",),
    backbone=(
        Rule("tok_emb.weight", "embed_tokens.weight"),
        Rule("blocks.{i}.norm1.weight", "layers.{i}.input_layernorm.weight"),
        Rule("blocks.{i}.attn.qkv.weight", ("layers.{i}.self_attn.q_proj.weight", "layers.{i}.self_attn.k_proj.weight",
                                            "layers.{i}.self_attn.v_proj.weight"), CONCAT, split="qkv"),
        Rule("blocks.{i}.attn.proj.weight", "layers.{i}.self_attn.o_proj.weight"),
        Rule("blocks.{i}.norm2.weight", "layers.{i}.post_attention_layernorm.weight"),
        Rule("blocks.{i}.mlp.gate.weight", "layers.{i}.mlp.gate_proj.weight"),
        Rule("blocks.{i}.mlp.up.weight", "layers.{i}.mlp.up_proj.weight"),
        Rule("blocks.{i}.mlp.proj.weight", "layers.{i}.mlp.down_proj.weight"),
        Rule("norm_f.weight", "norm.weight"),
    ),
    heads=(Rule("lm_head.weight", "lm_head.weight", when="untied"),),
    layers=lambda c: {"i": c.n_layer},
    conditions={"untied": lambda c: not c.tie_weights},
    splits={"qkv": lambda c: [c.n_head * c.head_dim] + [(c.n_kv_head or c.n_head) * c.head_dim] * 2},
    config=ConfigMap(
        fields=(("vocab_size", "vocab_size", 32000, None), ("max_position_embeddings", "block_size", 2048, None),
                ("num_hidden_layers", "n_layer", 32, None), ("num_attention_heads", "n_head", 32, None),
                ("hidden_size", "n_embd", 4096, None), ("intermediate_size", "mlp_hidden", 11008, "ffn_hidden"),
                ("rms_norm_eps", "norm_eps", 1e-6, None), ("initializer_range", "init_std", 0.02, None)),
        ours_fixed={"mlp": "swiglu", "norm": "rmsnorm", "pos": "rope", "bias": False},
        hf_fixed={"hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0,
                  "pretraining_tp": 1, "use_cache": True},
        hf_accept={
            "hidden_act": (("silu",), "fromzero's SwiGLU gates with SiLU"),
            "attention_bias": ((False,), "fromzero's Llama-style decoder has no attention biases"),
            "mlp_bias": ((False,), "fromzero's Llama-style decoder has no MLP biases"),
        },
        from_extra=_llama_from_extra,
        to_extra=_llama_to_extra,
    ),
    tied={"lm_head.weight": "model.embed_tokens.weight"},
    ignore=(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq", r"model\.rotary_emb\.inv_freq"),
)


# -- BERT ----------------------------------------------------------------------------------------------------------

def _qkv_rows(c: Any) -> list[int]:
    return [c.n_embd] * 3


def _bert_from_extra(hf: Mapping[str, Any], weights: Weights) -> dict[str, Any]:
    """Optional parts exist exactly when their tensors do (bert-base-uncased says BertForMaskedLM and has all)."""
    return {"pooler": weights.has("bert.pooler.dense.weight") or weights.needs("pooler"),
            "mlm_head": weights.has("cls.predictions.transform.dense.weight") or weights.needs("mlm_head"),
            "nsp_head": weights.has("cls.seq_relationship.weight") or weights.needs("nsp_head"),
            "pre_norm": False}


BERT = KeyMap(
    name="bert", family="bert", model_type="bert", base_prefix="bert.",
    top_level=("cls", "classifier", "qa_outputs"),
    backbone=(
        Rule("tok_emb.weight", "embeddings.word_embeddings.weight"),
        Rule("pos_emb.weight", "embeddings.position_embeddings.weight"),
        Rule("type_emb.weight", "embeddings.token_type_embeddings.weight"),
        *_wb("emb_norm", "embeddings.LayerNorm"),
        *(Rule(f"blocks.{{i}}.attn.qkv.{s}", tuple(f"encoder.layer.{{i}}.attention.self.{x}.{s}"
                                                    for x in ("query", "key", "value")), CONCAT, split="qkv")
          for s in ("weight", "bias")),
        *_wb("blocks.{i}.attn.proj", "encoder.layer.{i}.attention.output.dense"),
        *_wb("blocks.{i}.norm1", "encoder.layer.{i}.attention.output.LayerNorm"),
        *_wb("blocks.{i}.mlp.fc", "encoder.layer.{i}.intermediate.dense"),
        *_wb("blocks.{i}.mlp.proj", "encoder.layer.{i}.output.dense"),
        *_wb("blocks.{i}.norm2", "encoder.layer.{i}.output.LayerNorm"),
        *_wb("pooler", "pooler.dense", when="pooler"),
    ),
    heads=(
        *_wb("mlm_head.dense", "cls.predictions.transform.dense", when="mlm_head"),
        *_wb("mlm_head.norm", "cls.predictions.transform.LayerNorm", when="mlm_head"),
        Rule("mlm_head.decoder.bias", "cls.predictions.bias", when="mlm_head"),
        *_wb("nsp_head", "cls.seq_relationship", when="nsp_head"),
    ),
    layers=lambda c: {"i": c.n_layer},
    conditions={"pooler": lambda c: c.pooler, "mlm_head": lambda c: c.mlm_head, "nsp_head": lambda c: c.nsp_head},
    splits={"qkv": _qkv_rows},
    config=ConfigMap(
        fields=(("vocab_size", "vocab_size", 30522, None), ("max_position_embeddings", "max_positions", 512, None),
                ("type_vocab_size", "type_vocab_size", 2, None), ("num_hidden_layers", "n_layer", 12, None),
                ("num_attention_heads", "n_head", 12, None), ("hidden_size", "n_embd", 768, None),
                ("intermediate_size", "mlp_hidden", 3072, "ffn_hidden"),
                ("hidden_dropout_prob", "dropout", 0.1, None),
                ("attention_probs_dropout_prob", "attn_dropout", 0.1, None),
                ("layer_norm_eps", "norm_eps", 1e-12, None), ("pad_token_id", "pad_id", 0, None),
                ("initializer_range", "init_std", 0.02, None)),
        ours_fixed={"pre_norm": False},
        hf_fixed={"hidden_act": "gelu", "position_embedding_type": "absolute", "use_cache": True},
        hf_accept={
            "hidden_act": (("gelu",), "fromzero's BERT uses exact (erf) GELU"),
            "position_embedding_type": (("absolute",), "fromzero's BERT has learned absolute positions only"),
            "is_decoder": ((False,), "fromzero's BERT is an encoder"),
            "add_cross_attention": ((False,), "fromzero's BERT has no cross-attention"),
        },
        from_extra=_bert_from_extra,
        to_extra=lambda c: {"attention_probs_dropout_prob": c.dropout if c.attn_dropout is None else c.attn_dropout},
    ),
    tied={"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
          "cls.predictions.decoder.bias": "cls.predictions.bias"},
    ignore=(r"bert\.embeddings\.(position_ids|token_type_ids)",),
    renames=((r"LayerNorm\.gamma$", "LayerNorm.weight"), (r"LayerNorm\.beta$", "LayerNorm.bias")),
)


# -- T5 ------------------------------------------------------------------------------------------------------------

def _t5_block(stack: str, p: str) -> tuple[Rule, ...]:
    """Rules of one T5 stack; p is its block placeholder ({i} encoder, {d} decoder)."""
    ours, hf = f"{stack}.blocks.{p}", f"{stack}.block.{p}.layer"
    ffn = 2 if stack == "decoder" else 1
    rules = [
        Rule(f"{ours}.norm1.weight", f"{hf}.0.layer_norm.weight"),
        Rule(f"{ours}.attn.qkv.weight", tuple(f"{hf}.0.SelfAttention.{x}.weight" for x in "qkv"), CONCAT,
             split="qkv"),
        Rule(f"{ours}.attn.proj.weight", f"{hf}.0.SelfAttention.o.weight"),
        Rule(f"{ours}.norm2.weight", f"{hf}.{ffn}.layer_norm.weight"),
        Rule(f"{ours}.mlp.fc.weight", f"{hf}.{ffn}.DenseReluDense.wi.weight", when="relu"),
        Rule(f"{ours}.mlp.gate.weight", f"{hf}.{ffn}.DenseReluDense.wi_0.weight", when="gated"),
        Rule(f"{ours}.mlp.up.weight", f"{hf}.{ffn}.DenseReluDense.wi_1.weight", when="gated"),
        Rule(f"{ours}.mlp.proj.weight", f"{hf}.{ffn}.DenseReluDense.wo.weight"),
    ]
    if stack == "decoder":
        rules += [
            Rule(f"{ours}.norm_cross.weight", f"{hf}.1.layer_norm.weight"),
            Rule(f"{ours}.cross_attn.q.weight", f"{hf}.1.EncDecAttention.q.weight"),
            Rule(f"{ours}.cross_attn.kv.weight", tuple(f"{hf}.1.EncDecAttention.{x}.weight" for x in "kv"), CONCAT,
                 split="kv"),
            Rule(f"{ours}.cross_attn.proj.weight", f"{hf}.1.EncDecAttention.o.weight"),
        ]
    bias = f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    return (Rule(f"{stack}.rel_bias.weight", bias), Rule(f"{stack}.norm_f.weight", f"{stack}.final_layer_norm.weight"),
            *rules)


_T5_FFN = {"relu": "relu", "gated-gelu": "gated-gelu"}


def _t5_from_extra(hf: Mapping[str, Any], weights: Weights) -> dict[str, Any]:
    """FFN kind; tie = scale (T5 v1.0); an unscaled model gets its own output layer, the embedding's copy if absent."""
    proj = hf.get("feed_forward_proj", "relu")
    if proj not in _T5_FFN:
        raise CheckpointError(f"config.json: feed_forward_proj={proj!r} is not supported; fromzero's T5 has "
                              f"{' and '.join(_T5_FFN)} feed-forward layers")
    scale = hf.get("scale_decoder_outputs")
    if scale is None:
        scale = hf.get("tie_word_embeddings", True) is not False
    if scale and weights.has("lm_head.weight") and not weights.same("lm_head.weight", "shared.weight"):
        raise CheckpointError("config.json: decoder outputs are scaled by d_model^-0.5 (tied T5 v1.0), but "
                              "lm_head.weight differs from shared.weight; fromzero's T5 scales only tied outputs")
    return {"ffn": _T5_FFN[proj], "tie_weights": bool(scale)}


def _t5_to_extra(c: Any) -> dict[str, Any]:
    return {"feed_forward_proj": c.ffn, "is_gated_act": c.ffn == "gated-gelu", "tie_word_embeddings": c.tie_weights,
            "scale_decoder_outputs": c.tie_weights, "num_decoder_layers": c.n_dec_layer}


T5 = KeyMap(
    name="t5", family="t5", model_type="t5", base_prefix="", top_level=(),
    backbone=(Rule("tok_emb.weight", "shared.weight"), *_t5_block("encoder", "{i}"), *_t5_block("decoder", "{d}")),
    heads=(Rule("lm_head.weight", "lm_head.weight", when="untied"),),
    layers=lambda c: {"i": c.n_layer, "d": c.n_dec_layer},
    conditions={"untied": lambda c: not c.tie_weights, "relu": lambda c: c.ffn == "relu",
                "gated": lambda c: c.ffn == "gated-gelu"},
    splits={"qkv": lambda c: [c.n_head * c.d_kv] * 3, "kv": lambda c: [c.n_head * c.d_kv] * 2},
    config=ConfigMap(
        fields=(("vocab_size", "vocab_size", 32128, None), ("num_layers", "n_layer", 6, None),
                ("num_decoder_layers", "n_decoder_layer", None, None), ("num_heads", "n_head", 8, None),
                ("d_model", "d_model", 512, None), ("d_kv", "d_kv", 64, None), ("d_ff", "d_ff", 2048, None),
                ("dropout_rate", "dropout", 0.1, None), ("layer_norm_epsilon", "norm_eps", 1e-6, None),
                ("relative_attention_num_buckets", "rel_buckets", 32, None),
                ("relative_attention_max_distance", "rel_max_distance", 128, None),
                ("pad_token_id", "pad_id", 0, None), ("eos_token_id", "eos_id", 1, None),
                ("decoder_start_token_id", "decoder_start_id", 0, None), ("n_positions", "max_positions", 512, None),
                ("initializer_factor", "init_factor", 1.0, None)),
        ours_fixed={},
        hf_fixed={"is_encoder_decoder": True, "use_cache": True},
        hf_accept={},
        from_extra=_t5_from_extra,
        to_extra=_t5_to_extra,
    ),
    # HF keeps copies of the shared embedding; the decoder's cross-attention never has a relative bias.
    tied={"encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight",
          "lm_head.weight": "shared.weight"},
    ignore=(r"decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight",),
    fill_missing={"lm_head.weight": "shared.weight"},  # unscaled but tied (v1.1 saved with equal weights)
)

KEYMAPS = {km.name: km for km in (GPT2, LLAMA, BERT, T5)}

# -- Hugging Face classes ------------------------------------------------------------------------------------------

_NO_HEADS = {"pooler": True, "mlm_head": False, "nsp_head": False}
_BERT_HEADS = (
    ("BertForSequenceClassification", "AutoModelForSequenceClassification", "sequence", True, "classifier"),
    ("BertForTokenClassification", "AutoModelForTokenClassification", "token", False, "classifier"),
    ("BertForQuestionAnswering", "AutoModelForQuestionAnswering", "qa", False, "qa_outputs"),
)

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("GPT2LMHeadModel", GPT2, "AutoModelForCausalLM"),
    Architecture("LlamaForCausalLM", LLAMA, "AutoModelForCausalLM"),
    Architecture("T5ForConditionalGeneration", T5, "AutoModelForSeq2SeqLM"),
    Architecture("BertModel", BERT, "AutoModel", parts=_NO_HEADS, prefixed=False, optional=("pooler",)),
    Architecture("BertForPreTraining", BERT, "AutoModelForPreTraining",
                 parts={"pooler": True, "mlm_head": True, "nsp_head": True}),
    Architecture("BertForMaskedLM", BERT, "AutoModelForMaskedLM",
                 parts={"pooler": False, "mlm_head": True, "nsp_head": False}),
    Architecture("BertForNextSentencePrediction", BERT, "AutoModelForNextSentencePrediction",
                 parts={"pooler": True, "mlm_head": False, "nsp_head": True}),
    *(Architecture(name, BERT, auto, parts={**_NO_HEADS, "pooler": pooler}, head=head,
                   head_rules=_wb(f"head.{layer}", layer))
      for name, auto, head, pooler, layer in _BERT_HEADS),
)}

# Import-only: base classes without an output layer (tied output = embedding; an untied one is reported missing).
IMPORT_ALIASES = {"GPT2Model": "GPT2LMHeadModel", "LlamaModel": "LlamaForCausalLM",
                  "T5Model": "T5ForConditionalGeneration"}
DEFAULT_ARCHITECTURE = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "bert": "BertModel",
                        "t5": "T5ForConditionalGeneration"}
