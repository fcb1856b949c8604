"""What a model costs: parameters and FLOPs per token; and what the memory planner reads from a model.

FLOPs per token (Kaplan et al. 2020 for 2N; the 4*L*T*C attention term as counted
in the PaLM paper, Chowdhery et al. 2022, appendix B), for context T:
    forward  = 2 * (weights of all matmuls, incl. the output projection) + 4 * L * T * C
               (a recurrent model: no attention term; its LSTM/GRU matrices count as matmul weights)
    training = 3 * forward        (the backward pass costs about twice the forward)
Training memory is :mod:`fromzero.train.memory_plan`; :func:`describe_model` gives it a built model's
parameter counts and blocks (build on the meta device: nothing is allocated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fromzero.models import build_model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Unique parameters (tied weights counted once), total and without embeddings."""
    seen, total, embed, trainable = set(), 0, 0, 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
            if isinstance(module, nn.Embedding) or type(module).__name__ == "LearnedPositions":
                embed += p.numel()
    return {"total": total, "trainable": trainable, "non_embedding": total - embed}


RECURRENT = ("weight_ih_l", "weight_hh_l")  # an LSTM/GRU layer's input and recurrent matrices


def cost_estimate(model_cfg: Any, seq_len: int | None = None, batch_size: int = 1) -> dict[str, Any]:
    """Parameter counts, FLOPs per token and per training step of ``batch_size`` sequences of ``seq_len``
    tokens (default: the context) for a model config. Training memory is ``memory_plan``'s."""
    with torch.device("meta"):  # no memory is allocated, so gpt2-medium is as cheap as a toy
        model = build_model(model_cfg)
    T = seq_len or getattr(model_cfg, "block_size", None) or getattr(model_cfg, "max_positions", 1)
    L = getattr(model_cfg, "n_layer", 0)
    if hasattr(model_cfg, "n_decoder_layer"):  # encoder-decoder: count both stacks
        L += model_cfg.n_decoder_layer or model_cfg.n_layer
    C = getattr(model_cfg, "n_embd", None) or getattr(model_cfg, "d_model", 1)
    params = count_parameters(model)
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    # recurrent layers (models/rnn.py) hold their matrices under torch's names and attend to nothing
    matmul += sum(p.numel() for n, p in model.named_parameters() if n.split(".")[-1].startswith(RECURRENT))
    fwd = 2 * matmul + (0 if hasattr(model_cfg, "cell") else 4 * L * T * C)
    return {"parameters": params, "seq_len": T,
            "flops_per_token": {"forward": fwd, "training": 3 * fwd, "training_step": 3 * fwd * T * batch_size}}


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M'; bytes with unit 'B' use powers of 1024."""
    base, names = (1024.0, ["", "Ki", "Mi", "Gi", "Ti"]) if unit == "B" else (1000.0, ["", "K", "M", "G", "T"])
    for name in names:
        if abs(n) < base or name == names[-1]:
            return f"{n:.3g}{name}{unit}" if name else f"{n:.0f}{unit}"
        n /= base
    return f"{n}{unit}"


# -- what the memory formula reads from a built model (train/memory_plan.py) ---------------------------
@dataclass(frozen=True)
class BlockSpec:
    """One Transformer block as the activation formula sees it (widths in numbers per token).

    ``saving`` names the block's linear layers that keep their input for the backward pass: those whose
    weight trains or that carry a LoRA adapter (a frozen weight needs only itself to pass the gradient
    on). ``grad`` is False when nothing at or before the block trains: autograd then keeps nothing.
    """

    width: int
    heads: int
    inner: int  # query / output width of attention, n_head * head_dim
    kv_inner: int  # key / value width, n_kv_head * head_dim
    ffn: int
    ffn_kind: str  # gelu | relu | gated
    norm: str  # layernorm | rmsnorm
    pre_norm: bool = True
    dropout: bool = False  # residual-branch dropout
    attn_dropout: bool = False  # dropout on attention probabilities: the math (not flash) SDPA path
    inner_dropout: bool = False  # dropout between the FFN's two layers (T5)
    position_bias: bool = False  # a trained additive bias (T5): the math SDPA path
    rope: bool = False
    cross: bool = False
    saving: frozenset[str] = frozenset()
    lora_rank: int = 0  # sum of adapter ranks over the block's adapted linear layers
    grad: bool = True
    params: int = 0
    trainable: int = 0
    matmul: int = 0  # numel of the block's linear weights and adapters (bf16 autocast copies them)


@dataclass(frozen=True)
class ModelSpec:
    """Parameter counts, block stacks and the parts around them of a built (e.g. meta-device) model."""

    family: str  # gpt | bert | t5 (the backbone's)
    params: int
    trainable: int
    trainable_tensors: int
    largest_trainable: int  # numel of the largest trainable tensor (the per-tensor optimizer's temporary)
    matmul_weights: int  # numel of every linear weight and adapter (bf16 autocast keeps a copy of each)
    width: int
    vocab: int
    stacks: tuple[tuple[str, tuple[BlockSpec, ...]], ...]  # (ModuleList name, its blocks) in forward order
    embeddings_train: bool = True  # the token embedding trains (its inputs and sums are kept)
    dropout: bool = False  # the backbone's embedding / hidden dropout is active
    output_trains: bool = True  # the output layer (LM head or task head) trains
    tied_output: bool = False  # the vocabulary projection is the token embedding (one gradient, added twice)
    task_head: str | None = None  # SequenceClassifier | TokenClassifier | SpanQA, or None: the family's own
    pooling: str | None = None  # a SequenceClassifier's pooling
    head_dropout: bool = False
    num_labels: int = 0


def _unique_params(model: nn.Module) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for p in model.parameters():
        seen.setdefault(id(p), p)
    return list(seen.values())


def _linears(block: nn.Module) -> dict[str, nn.Linear]:
    return {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}


def _block_spec(block: nn.Module, grad: bool, position_bias: bool) -> BlockSpec:
    """Read one fromzero.nn.Block: attention shape, FFN kind, norms, dropouts, which linears keep inputs."""
    attn, mlp = block.attn, block.mlp
    linears = _linears(block)
    saving = frozenset(n for n, m in linears.items() if m.weight.requires_grad or hasattr(m, "lora_a"))
    lora = sum(m.lora_a.shape[0] for m in linears.values() if hasattr(m, "lora_a"))
    kind = "gated" if hasattr(mlp, "gate") else ("relu" if type(mlp).__name__ == "ReLUFFN" else "gelu")
    inner_drop = getattr(mlp, "inner_dropout", None)
    return BlockSpec(
        width=attn.qkv.in_features, heads=attn.n_head, inner=attn.n_head * attn.head_dim,
        kv_inner=attn.n_kv_head * attn.head_dim, ffn=mlp.proj.in_features, ffn_kind=kind,
        norm="rmsnorm" if "RMS" in type(block.norm1).__name__ else "layernorm", pre_norm=block.pre_norm,
        dropout=attn.resid_dropout.p > 0, attn_dropout=float(attn.dropout) > 0,
        inner_dropout=inner_drop is not None and inner_drop.p > 0, position_bias=position_bias,
        rope=attn.rope is not None, cross=block.cross_attn is not None, saving=saving, lora_rank=lora, grad=grad,
        params=sum(p.numel() for p in block.parameters()),
        trainable=sum(p.numel() for p in block.parameters() if p.requires_grad),
        matmul=sum(m.weight.numel() + (m.lora_a.numel() + m.lora_b.numel() if hasattr(m, "lora_a") else 0)
                   for m in linears.values()))


def _stacks(model: nn.Module) -> tuple[tuple[str, tuple[BlockSpec, ...]], ...]:
    """Every ModuleList of Blocks, in forward (registration) order; ``grad`` follows the first trainable tensor."""
    from fromzero.nn import Block

    stacks, trains_so_far = [], False
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and module and all(isinstance(b, Block) for b in module):
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            bias = getattr(parent, "rel_bias", None)
            blocks = []
            for block in module:
                trains_so_far |= any(p.requires_grad for p in block.parameters())
                bias_grad = bias is not None and bias.weight.requires_grad
                blocks.append(_block_spec(block, trains_so_far, bias_grad))
            stacks.append((name, tuple(blocks)))
        elif not isinstance(module, nn.ModuleList) and not stacks:
            trains_so_far |= any(p.requires_grad for p in module.parameters(recurse=False))
    return tuple(stacks)


def describe_model(model: nn.Module) -> ModelSpec:
    """What :mod:`fromzero.train.memory_plan` needs of a built model (build it on the meta device: free)."""
    from fromzero.models import family_of

    backbone = getattr(model, "backbone", model)
    params = _unique_params(model)
    trainable = [p for p in params if p.requires_grad]
    emb = getattr(backbone, "tok_emb", None)
    if not isinstance(emb, nn.Embedding):
        raise ValueError(f"{type(backbone).__name__} has no token embedding (tok_emb): the memory planner reads "
                         "text models (GPT, BERT, T5 and their task heads)")
    task_head = type(model).__name__ if backbone is not model else None
    head = model.head if task_head else getattr(backbone, "lm_head", None) or getattr(backbone, "mlm_head", None)
    head_drop = getattr(head, "dropout", None) if task_head else None
    drop = getattr(backbone, "drop", None) or getattr(getattr(backbone, "encoder", None), "drop", None)
    classifier = getattr(head, "classifier", None) or getattr(head, "qa_outputs", None)
    adapters = [m for m in model.modules() if hasattr(m, "lora_a")]
    return ModelSpec(
        family=family_of(backbone.config).name, params=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in trainable), trainable_tensors=len(trainable),
        largest_trainable=max((p.numel() for p in trainable), default=0),
        matmul_weights=sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
        + sum(m.lora_a.numel() + m.lora_b.numel() for m in adapters),
        width=emb.embedding_dim, vocab=emb.num_embeddings, stacks=_stacks(model),
        embeddings_train=emb.weight.requires_grad, dropout=drop is not None and drop.p > 0,
        output_trains=head is not None and any(p.requires_grad for p in head.parameters()),
        tied_output=any(getattr(m, "weight", None) is emb.weight for m in (getattr(backbone, "lm_head", None),
                        getattr(getattr(backbone, "mlm_head", None), "decoder", None)) if m is not None),
        task_head=task_head, pooling=getattr(model, "pooling", None),
        head_dropout=head_drop is not None and head_drop.p > 0,
        num_labels=classifier.out_features if classifier is not None else 0)
