"""Peak training memory, predicted term by term, and the largest batch that fits a memory budget.

Per process (P parameters, P_t trainable; docs/16-speed.md has the full model and its measured error):
    params 4 P;  grads 4 P_t (frozen parameters have none);  AdamW 8 P_t + 4 per trainable tensor (its step)
    activations: what autograd keeps for the backward pass, tensor by tensor as this code computes it (the
    per-layer accounting of Korthikanti et al. 2022, https://arxiv.org/abs/2205.05198, section 4.1, redone
    for fp32 / bf16 tensors and PyTorch's CPU kernels), x the micro-batch per process
    bf16 autocast: + 2 bytes per linear weight (the cast copies the backward pass reads)
Activation checkpointing (Chen et al. 2016, https://arxiv.org/abs/1604.06174) keeps each block's input and
recomputes one block at a time. Sharding follows ZeRO (Rajbhandari et al. 2020,
https://arxiv.org/abs/1910.02054): FSDP over N ranks keeps 1/N of params, grads and optimizer state plus,
whole, the root's parameters (outside the blocks; FSDP2 keeps them gathered from forward to backward) and
their gradients, two blocks' parameters (running and prefetched) and one block's gradient; DDP keeps full
replicas plus gradient buckets as large as the gradients. ``batch_size`` is global: each rank gets 1/N.

The peak is params + optimizer state + the largest of five moments of a step:
    forward    activations; frozen blocks' tensors in passing; FSDP's all-gather buffer of the root
    loss       activations + the gradients of log-softmax and logits (2 x 4 V per scored row)
    backward   the last block's (output freed, its gradient made) or the first's (all other gradients made)
    gradients  all gradients + a tied embedding's gradient and its sum with the output layer's
    step       all gradients + the optimizer's temporaries (per-tensor: 2 x the largest tensor; foreach: P_t)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from fromzero.train.cost_estimate import BlockSpec, ModelSpec

FP32 = 4
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
BATCH_LIMIT = 1 << 20  # largest_batch searches no further
OPTIMIZER_STATES = {"adamw": 2, "adam": 2, "sgd": 1, "rmsprop": 2}  # fp32 tensors per trainable parameter


def parse_size(text: str) -> int:
    """'512MiB', '8GiB', '8GB', '1.5G', '4096' (bytes) -> bytes; powers of 1024 for KiB/MiB/GiB/TiB,
    of 1000 for K/KB/M/MB/G/GB/T/TB. Raises ValueError on anything else or a size that is not positive."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise ValueError(f"expected a size such as 512MiB, 8GiB or 8GB, got {text!r}")
    size = int(float(m.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"must be a positive size, got {text!r}")
    return size


@dataclass(frozen=True)
class Workload:
    """What one training sequence asks of the model: its lengths and what the loss reads."""

    tokens: int  # tokens per sequence (encoder input, or the whole sequence of a decoder-only model)
    target_tokens: int = 0  # decoder tokens of an encoder-decoder model
    scored_fraction: float = 1.0  # masked LM: share of tokens through the vocabulary head
    nsp: bool = False  # masked LM: the next-sentence head reads the pooled [CLS] vector
    padding_mask: bool = False  # batches carry an attention mask


def workload_for(objective: str, cfg: Any, seq_len: int) -> Workload:
    """A pretraining objective's workload (``cfg``: its config, or a run's objective section as a dict)."""
    def get(key: str, default: Any) -> Any:
        value = cfg.get(key) if isinstance(cfg, dict) else getattr(cfg, key, None)
        return default if value is None else value

    if objective == "masked_lm":
        return Workload(seq_len, scored_fraction=get("mask_prob", 0.15), nsp=get("nsp", True), padding_mask=True)
    if objective == "span_corruption":
        from fromzero.data.span_corruption_batches import input_and_target_lengths

        _, target = input_and_target_lengths(seq_len, get("noise_density", 0.15), get("mean_span_length", 3.0))
        return Workload(seq_len, target_tokens=target, padding_mask=True)
    return Workload(seq_len)


@dataclass(frozen=True)
class PlanSettings:
    """The assumptions of a plan (the train config's keys, or ``fromzero info`` options)."""

    batch_size: int = 1  # sequences per micro-batch, all ranks together
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    activation_checkpointing: bool = False
    parallel: str = "none"  # none | ddp | fsdp
    nproc: int = 1
    optimizer: str = "adamw"
    optimizer_kernel: str = "per_tensor"  # per_tensor | foreach | fused

    @property
    def rank_batch(self) -> int:
        """Sequences each rank runs per micro-batch."""
        return math.ceil(self.batch_size / self.nproc)


@dataclass(frozen=True)
class MemoryPlan:
    """Predicted bytes per rank; ``peak`` is reached at ``phase`` (forward, loss, backward, gradients or step;
    ``moments`` has each one's bytes on top of params and optimizer state)."""

    params: int
    grads: int
    optimizer: int
    activations: int  # kept for the backward pass at the end of the forward pass, loss buffers included
    loss_buffers: int  # of which: log-softmax over the vocabulary (or the task's logits) and targets
    weight_copies: int  # bf16 autocast copies of the linear weights
    temporary: int  # the transient on top of the rest at the peak moment
    peak: int
    phase: str
    settings: PlanSettings
    moments: dict[str, int] = field(default_factory=dict)


# -- activations per sequence -------------------------------------------------------------------------
def norm_bytes(kind: str, width: int, tokens: int) -> int:
    """LayerNorm keeps its input and mean/rstd; fromzero's RMSNorm its input, rsqrt and the normalised copy."""
    per_token = width + 2 if kind == "layernorm" else 2 * width + 1
    return FP32 * per_token * tokens


def attention_bytes(b: BlockSpec, q: int, k: int, a: int, *, flash: bool, dropout: bool, mask: bool,
                    kv_inner: int) -> int:
    """SDPA's kept tensors for ``q`` queries over ``k`` keys (output included).

    flash: q, k, v (a (q I + 2 k I_kv)), grouped-query repeats (2 k I), RoPE's rotated q, k, the output
    (q I) and log-sum-exp (4 q H), plus the float mask made from a bool one (a q k). math: copies of q, k, v
    ((q + 2 k) I), the output (a q I), and H q k probabilities (x3 with dropout: softmax, mask, dropped); the
    math path computes in fp32 even under bf16 autocast."""
    inner, H = b.inner, b.heads
    if not flash:
        return FP32 * (q * inner + 2 * k * inner + H * q * k * (3 if dropout else 1)) + a * q * inner
    n = a * (q * inner + 2 * k * kv_inner + q * inner) + FP32 * q * H
    n += a * 2 * k * inner if kv_inner != inner else 0
    n += a * (q * inner + k * kv_inner) if b.rope else 0
    return n + (a * q * k if mask else 0)


def _ffn_bytes(b: BlockSpec, tokens: int, a: int) -> int:
    """GELU keeps its input, its output is the next layer's input (2F); ReLU keeps its output, which is
    the next input (F); a gated FFN keeps gate, activation, up and product (4F); inner dropout adds a
    mask and the dropped copy."""
    kept = {"gelu": 1, "relu": 1, "gated": 3}[b.ffn_kind]
    proj_keeps = "mlp.proj" in b.saving
    if b.inner_dropout:
        kept += 1 + proj_keeps
    elif b.ffn_kind != "relu":
        kept += proj_keeps
    fc_keeps = bool({"mlp.fc", "mlp.gate", "mlp.up"} & b.saving)
    return a * tokens * (kept * b.ffn + fc_keeps * b.width + (b.width if b.dropout else 0))


def block_activation_bytes(b: BlockSpec, tokens: int, a: int, *, mask: bool = False, memory: int = 0) -> int:
    """Bytes one block keeps per sequence of ``tokens`` (``memory``: the encoder's tokens, decoder blocks)."""
    if not b.grad:
        return 0
    C, T = b.width, tokens
    flash = not (b.attn_dropout or b.position_bias)
    n = 2 * norm_bytes(b.norm, C, T) + _ffn_bytes(b, T, a)
    n += a * C * T * (("attn.qkv" in b.saving) + b.dropout) + a * T * b.lora_rank
    n += attention_bytes(b, T, T, a, flash=flash, dropout=b.attn_dropout, mask=mask and flash,
                         kv_inner=b.kv_inner)
    n -= 0 if flash or "attn.proj" in b.saving else a * T * b.inner  # math: proj alone keeps the output
    if b.cross:
        n += norm_bytes(b.norm, C, T) + a * C * T * (("cross_attn.q" in b.saving) + b.dropout)
        n += attention_bytes(b, T, memory, a, flash=not b.attn_dropout, dropout=b.attn_dropout, mask=False,
                             kv_inner=b.inner) + (a * memory if mask else 0)
    return n


def _stack_bytes(spec: ModelSpec, name: str, blocks: tuple[BlockSpec, ...], w: Workload, a: int) -> int:
    """Blocks plus what their stack keeps once: T5's bool mask where the position bias is added, the
    encoder output every decoder block reads, and (encoder-decoder) the stack's dropouts and final norm."""
    decoder = blocks[0].cross
    T = w.target_tokens if decoder else w.tokens
    n = sum(block_activation_bytes(b, T, a, mask=w.padding_mask, memory=w.tokens) for b in blocks)
    if not blocks[-1].grad:
        return n
    n += T * T if blocks[0].position_bias and w.padding_mask else 0
    n += a * spec.width * w.tokens if decoder and any("cross_attn.kv" in b.saving for b in blocks) else 0
    if spec.family == "t5":
        n += norm_bytes("rmsnorm", spec.width, T) + FP32 * spec.width * T * 2 * spec.dropout
    return n


def _embedding_bytes(spec: ModelSpec, w: Workload) -> int:
    """Token ids (int64) of each trained embedding, BERT's embedding sum + LayerNorm, embedding dropout."""
    if not spec.embeddings_train:
        return 0
    T, C = w.tokens, spec.width
    if spec.family == "bert":
        return 16 * T + norm_bytes("layernorm", C, T) + FP32 * C * T * spec.dropout
    return 8 * (T + w.target_tokens) + (FP32 * C * T * spec.dropout if spec.family == "gpt" else 0)


def _vocab_rows(spec: ModelSpec, w: Workload) -> float:
    """Rows through the vocabulary projection per sequence (0 for a task head)."""
    if spec.task_head:
        return 0.0
    return {"t5": w.target_tokens, "bert": w.scored_fraction * w.tokens}.get(spec.family, w.tokens)


def _output_bytes(spec: ModelSpec, w: Workload, a: int) -> tuple[int, int]:
    """(everything kept after the last block, of which loss buffers): final norm, output layer input,
    log-softmax over the vocabulary with int64 targets, or the task head's tensors."""
    C, T = spec.width, w.target_tokens or w.tokens
    rows = _vocab_rows(spec, w)
    loss = int(rows * (FP32 * spec.vocab + 8))
    n = norm_bytes("layernorm", C, T) if spec.family == "gpt" else 0
    if spec.family == "bert" and not spec.task_head:  # MLM transform on the scored rows: dense, GELU, norm
        n += int(rows * (3 * a * C + norm_bytes("layernorm", C, 1))) + w.tokens
    if spec.output_trains and not spec.task_head:
        n += int(a * C * rows) if spec.family != "bert" else 0
    pooled = (w.nsp and not spec.task_head) or (spec.task_head == "SequenceClassifier" and spec.pooling == "cls")
    if pooled and spec.family == "bert":  # the pooler reads hidden[:, 0]: fp32 keeps the whole hidden tensor
        n += (FP32 * C * w.tokens if a == FP32 else a * C) + a * C
    if spec.task_head == "SequenceClassifier":
        n += FP32 * w.tokens * (spec.pooling == "mean") + (FP32 + a) * C * spec.head_dropout + a * C
        loss = FP32 * spec.num_labels + 8
    elif spec.task_head:  # token classification, span QA: per token
        n += T * ((FP32 * C if spec.head_dropout else 0) + a * C)
        loss = T * (FP32 * spec.num_labels + 8)
    return n + loss, loss


def block_transient_bytes(b: BlockSpec, tokens: int, a: int) -> int:
    """The backward pass's transient inside a block, on top of what it keeps: the gradients flowing through
    the FFN (the hidden gradient and the activation's temporary, 2F) and the residual stream (C); on the
    math attention path the probabilities' gradients (2 H S) when larger."""
    if not b.grad:
        return 0
    ffn = 2 * b.ffn + b.width
    return a * tokens * max(ffn, 0 if not (b.attn_dropout or b.position_bias) else 2 * b.heads * tokens)


def sequence_activation_bytes(spec: ModelSpec, w: Workload, precision: str = "fp32") -> dict[str, int]:
    """Bytes kept per sequence: ``blocks`` (all stacks), ``embedding``, ``output`` (after the last block,
    loss buffers included), ``loss`` (part of ``output``), ``block_max`` (the largest single block),
    ``block_inputs`` (what checkpointing keeps instead of ``blocks``) and ``transient`` (the largest block's
    backward transient)."""
    a = 2 if precision == "bf16" else FP32
    blocks = sum(_stack_bytes(spec, name, stack, w, a) for name, stack in spec.stacks)
    output, loss = _output_bytes(spec, w, a)
    block_max = inputs = transient = 0
    for _, stack in spec.stacks:
        T = w.target_tokens if stack[0].cross else w.tokens
        for b in stack:
            block_max = max(block_max, block_activation_bytes(b, T, a, mask=w.padding_mask, memory=w.tokens))
            transient = max(transient, block_transient_bytes(b, T, a))
            inputs += FP32 * spec.width * T if b.grad else 0
    return {"blocks": blocks, "embedding": _embedding_bytes(spec, w), "output": output, "loss": loss,
            "block_max": block_max, "block_inputs": inputs, "transient": transient}


def a_bytes(s: PlanSettings) -> int:
    """Bytes per activation element: 2 under bf16 autocast, else 4."""
    return 2 if s.precision == "bf16" else FP32


# -- the plan -----------------------------------------------------------------------------------------
def state_bytes(spec: ModelSpec, s: PlanSettings) -> dict[str, int]:
    """Params, grads and optimizer state per rank (FSDP: sharded 1/N plus what is gathered)."""
    if s.optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"unknown optimizer {s.optimizer!r}; known: {', '.join(OPTIMIZER_STATES)}")
    states = OPTIMIZER_STATES[s.optimizer]
    optimizer = FP32 * states * spec.trainable + (FP32 * spec.trainable_tensors if states == 2 and
                                                   s.optimizer.startswith("adam") else 0)
    params, grads = FP32 * spec.params, FP32 * spec.trainable
    gathered = gathered_grads = gather_buffer = buckets = 0
    if s.parallel == "fsdp" and s.nproc > 1:
        blocks = [b for _, stack in spec.stacks for b in stack]
        root = spec.params - sum(b.params for b in blocks)  # embeddings, heads: gathered from forward to backward
        root_grads = spec.trainable - sum(b.trainable for b in blocks)
        params, grads, optimizer = (math.ceil(x / s.nproc) for x in (params, grads, optimizer))
        gathered = FP32 * (root + 2 * max((b.params for b in blocks), default=0))
        gathered_grads = FP32 * (root_grads + max((b.trainable for b in blocks), default=0))
        gather_buffer = FP32 * root  # the root's all-gather output, beside the parameters copied out of it
    elif s.parallel == "ddp" and s.nproc > 1:
        buckets = grads
    return {"params": params, "grads": grads, "optimizer": optimizer, "gathered": gathered,
            "gathered_grads": gathered_grads, "gather_buffer": gather_buffer, "buckets": buckets}


class _ParamOn:
    """Stands in for a parameter on ``device`` when asking which optimizer kernel torch would run there."""

    def __init__(self, device: Any) -> None:
        self.device = device

    def is_floating_point(self) -> bool:
        return True


def optimizer_kernel(name: str, device: Any) -> str:
    """The Adam(W) kernel the Trainer's optimizer runs on ``device`` (a torch.device): train.optim's choice
    where it makes one, else torch's default (foreach on CUDA, the per-tensor loop elsewhere)."""
    from fromzero.train import optim

    choose = getattr(optim, "adam_implementation", None)
    if name not in ("adam", "adamw"):
        return "per_tensor"
    if choose is None:
        return "foreach" if device.type == "cuda" else "per_tensor"
    kernel = choose([_ParamOn(device)])
    return "fused" if kernel.get("fused") else "foreach" if kernel.get("foreach") else "per_tensor"


def optimizer_temporary(spec: ModelSpec, s: PlanSettings) -> int:
    """The update's transient: the per-tensor loop makes sqrt(v) and its quotient for one tensor at a
    time (2 x the largest), foreach makes sqrt(v) for all at once, the fused kernel nothing."""
    if not s.optimizer.startswith("adam") or s.optimizer_kernel == "fused":
        return 0
    trainable = spec.trainable // (s.nproc if s.parallel == "fsdp" else 1)
    return FP32 * (trainable if s.optimizer_kernel == "foreach" else 2 * spec.largest_trainable)


def _passing_bytes(spec: ModelSpec, w: Workload, a: int) -> int:
    """Blocks that keep nothing (frozen, nothing trains before them) still hold their FFN's input, hidden,
    activation and output for a moment in the forward pass."""
    return max((a * (w.target_tokens if x.cross else w.tokens) * (2 * x.ffn + 2 * x.width)
                for _, stack in spec.stacks for x in stack if not x.grad), default=0)


def _moments(spec: ModelSpec, w: Workload, s: PlanSettings) -> tuple[dict[str, int], dict[str, int], int]:
    """(bytes on top of params + optimizer state at each moment a step may peak, the transient part of each,
    the activations kept at the end of the forward pass)."""
    b, st, a = s.rank_batch, state_bytes(spec, s), a_bytes(s)
    act = sequence_activation_bytes(spec, w, s.precision)
    rows = _vocab_rows(spec, w)
    held = (2 * spec.matmul_weights if a == 2 else 0) + st["gathered"]  # bf16 copies, gathered FSDP params
    if a == 2 and s.activation_checkpointing:  # a block's copies live only while it is recomputed
        blocks = [x.matmul for _, stack in spec.stacks for x in stack]
        held_backward = 2 * (spec.matmul_weights - sum(blocks) + max(blocks, default=0)) + st["gathered"]
    else:
        held_backward = held
    head_grad = FP32 * spec.vocab * spec.width if spec.output_trains and rows else 0
    stored = act["block_inputs"] if s.activation_checkpointing else act["blocks"]
    kept = b * (stored + act["embedding"] + act["output"])
    temporary = {
        # frozen blocks' tensors in passing, or (FSDP, at the start: nothing kept yet) the root's all-gather
        "forward": max(b * _passing_bytes(spec, w, a), st["gather_buffer"] - kept),
        "loss": int(b * rows * spec.vocab * (2 * FP32 + (2 if a == 2 else 0))),  # grads of log-softmax, logits
        "backward": b * (act["transient"] + act["block_max"] * s.activation_checkpointing) + st["gathered_grads"],
        # a tied embedding's gradient is added to the output layer's: the new gradient and the sum, for a moment
        "gradients": 2 * FP32 * spec.vocab * spec.width * (spec.embeddings_train and spec.tied_output),
        "step": optimizer_temporary(spec, s)}
    # the backward pass of the last block (the output's tensors are freed, its gradient made) or of the first
    # (the other blocks' activations are freed, their gradients made)
    backward = max(b * (stored + act["embedding"]) + head_grad,
                   b * (act["embedding"] + act["block_max"] * (not s.activation_checkpointing)) + st["grads"])
    alive = {"forward": kept + held, "loss": kept + held, "backward": backward + held_backward,
             "gradients": st["grads"] + st["gathered"] + st["gathered_grads"], "step": st["grads"]}
    return {k: alive[k] + temporary[k] for k in alive}, temporary, kept


def plan_memory(spec: ModelSpec, workload: Workload, settings: PlanSettings) -> MemoryPlan:
    """Predicted peak bytes per rank of one training step (see the module docstring for the model)."""
    st = state_bytes(spec, settings)
    moments, temporary, kept = _moments(spec, workload, settings)
    phase = max(moments, key=moments.__getitem__)
    copies = 2 * spec.matmul_weights if settings.precision == "bf16" else 0
    loss = settings.rank_batch * sequence_activation_bytes(spec, workload, settings.precision)["loss"]
    return MemoryPlan(params=st["params"], grads=st["grads"], optimizer=st["optimizer"], activations=kept,
                      loss_buffers=loss, weight_copies=copies, temporary=temporary[phase],
                      peak=st["params"] + st["optimizer"] + st["buckets"] + moments[phase], phase=phase,
                      settings=settings, moments=moments)


def largest_batch(spec: ModelSpec, workload: Workload, settings: PlanSettings, budget: int,
                  limit: int = BATCH_LIMIT) -> int:
    """The largest global micro-batch (a multiple of nproc) whose predicted peak fits ``budget``; 0 if none,
    ``limit`` x nproc if even that fits. The peak grows with the batch: doubling brackets it, bisection finds it."""
    from dataclasses import replace

    n = settings.nproc

    def fits(per_rank: int) -> bool:
        return plan_memory(spec, workload, replace(settings, batch_size=per_rank * n)).peak <= budget

    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= limit and fits(high):
        low, high = high, high * 2
    if high > limit:
        return limit * n if fits(limit) else _bisect(fits, low, limit) * n
    return _bisect(fits, low, high) * n


def _bisect(fits: Any, low: int, high: int) -> int:
    """The largest b in [low, high) with fits(b), given fits(low) and not fits(high)."""
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low
