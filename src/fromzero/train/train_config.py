"""The ``train`` section of every recipe: how long and how to train, on how many processes, and how often
to evaluate, log and checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fromzero.config import field, require


@dataclass(frozen=True)
class TrainConfig:
    """How long and how to train; how often to evaluate, log and checkpoint."""

    max_steps: int = field(1000, help="optimizer steps")
    batch_size: int = field(16, help="sequences per micro-batch over all processes (each of N takes 1/N of them)")
    seq_len: int | None = field(None, help="tokens per sequence (null = the model's block_size)")
    grad_accum: int = field(1, help="micro-batches per optimizer step")
    grad_clip: float = field(1.0, help="max global gradient norm (0 disables clipping)")
    precision: Literal["auto", "fp32", "bf16"] = field("auto", help="auto: bf16 on bf16 GPUs; on CPU a 2 s probe picks")
    device: str = field("auto", help="'auto', 'cpu', 'cuda', 'cuda:1', 'mps'")
    threads: int | None = field(None, help="CPU threads for torch (null = torch's default)")
    log_every: int = field(10, help="steps between train-loss log records")
    eval_every: int = field(100, help="steps between validation evaluations (0 = only at the end)")
    eval_batches: int = field(20, help="validation batches per evaluation")
    ckpt_every: int = field(200, help="steps between checkpoints (0 = only at the end)")
    keep_last: int = field(3, help="checkpoints to keep (0 = all)")
    early_stop_patience: int = field(0, help="stop after this many evaluations without improvement (0 = off)")
    early_stop_min_delta: float = field(0.0, help="improvement in val loss that resets patience")
    parallel: Literal["auto", "none", "ddp", "fsdp"] = field(
        "auto", help="with several processes (--nproc, torchrun): ddp (whole model per process) or fsdp "
                     "(FSDP2: parameters, gradients and optimizer state sharded); auto = ddp")
    activation_checkpointing: bool = field(
        False, help="recompute each Transformer block's activations in the backward pass: less memory, "
                    "about 1/3 more compute")
    compile: bool = field(False, help="torch.compile each Transformer block's forward for training")
    checkpoint_format: Literal["consolidated", "sharded"] = field(
        "consolidated", help="consolidated: one safetensors set, written by rank 0 (any process count resumes "
                             "it); sharded: a torch.distributed.checkpoint folder, one shard per process")

    def __post_init__(self) -> None:
        for key in ("max_steps", "batch_size", "grad_accum", "log_every", "eval_batches"):
            require(getattr(self, key) > 0, key, f"must be positive, got {getattr(self, key)}")
        for key in ("eval_every", "ckpt_every", "keep_last", "early_stop_patience"):
            require(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        require(self.seq_len is None or self.seq_len > 0, "seq_len", "must be positive")
        require(self.grad_clip >= 0, "grad_clip", "must be >= 0")
        require(self.threads is None or self.threads > 0, "threads", "must be positive")
