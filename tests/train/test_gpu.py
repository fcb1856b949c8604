"""The GPU path: the same Trainer and decoding on CUDA with bf16, fused AdamW, flash SDPA and torch.compile.

Every test here needs a CUDA GPU and skips with that reason elsewhere (pytest -rs shows it). On a GPU
machine: ``pytest tests/train/test_gpu.py -rs``. Speed (MFU) is measured by benchmarks/gpu_mfu.py, not here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fromzero.generation import SamplingConfig, generate_tokens
from fromzero.models import create_model
from fromzero.objectives import CausalLM
from fromzero.train.optim import OptimConfig, build_optimizer
from fromzero.train.precision import resolve_precision
from fromzero.train.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU on this machine: the GPU path is tested where one exists")


class _Tokens:
    """Deterministic random token batches (a pure function of step and micro)."""

    def __init__(self, vocab: int, batch: int, seq: int, seed: int) -> None:
        self.vocab, self.batch_size, self.seq, self.seed = vocab, batch, seq, seed

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 31 + micro)
        ids = torch.randint(0, self.vocab, (self.batch_size, self.seq + 1), generator=g)
        # A learnable pattern: every token repeats the one before it with probability 1/2.
        keep = torch.rand(ids.shape, generator=g) < 0.5
        ids[:, 1:] = torch.where(keep[:, 1:], ids[:, :-1], ids[:, 1:])
        return {"input_ids": ids[:, :-1], "labels": ids[:, 1:]}


def test_auto_precision_is_bf16_on_a_bf16_gpu() -> None:
    want = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == want


def test_fused_adamw_on_cuda_matches_the_cpu_reference() -> None:
    torch.manual_seed(0)
    cpu = create_model("gpt-char-tiny", dropout=0.0)
    gpu = create_model("gpt-char-tiny", dropout=0.0).cuda()
    gpu.load_state_dict(cpu.state_dict())
    cfg = OptimConfig(lr=1e-3, weight_decay=0.1)
    opt_cpu, opt_gpu = build_optimizer(cpu, cfg), build_optimizer(gpu, cfg)
    x = torch.randint(0, 128, (4, 32))
    for model, opt, dev in ((cpu, opt_cpu, "cpu"), (gpu, opt_gpu, "cuda")):
        for _ in range(3):
            loss = F.cross_entropy(model(x.to(dev))[:, :-1].flatten(0, 1), x.to(dev)[:, 1:].flatten())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    for (name, a), b in zip(cpu.state_dict().items(), gpu.state_dict().values(), strict=True):
        torch.testing.assert_close(b.cpu(), a, atol=2e-4, rtol=2e-3, msg=name)


@pytest.mark.parametrize("compile_model", [False, True])
def test_trainer_learns_on_cuda_in_bf16(tmp_path, compile_model: bool) -> None:
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", dropout=0.0)
    data = _Tokens(128, 8, 64, seed=1)
    cfg = TrainConfig(max_steps=60, batch_size=8, device="cuda", precision="bf16", compile=compile_model,
                      eval_every=0, ckpt_every=0, eval_batches=2, log_every=10)
    trainer = Trainer(model, CausalLM(), data, _Tokens(128, 8, 64, seed=2), cfg,
                      OptimConfig(lr=3e-3, warmup_steps=5), tmp_path / "run", progress=False)
    result = trainer.fit()
    assert trainer.precision == "bf16"
    assert result.val_loss is not None and result.val_loss < 4.2  # random guessing is ln(128) = 4.85


def test_cached_decoding_equals_recomputation_on_cuda() -> None:
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", dropout=0.0).cuda()
    prompts = [[1, 2, 3, 4, 5], [7, 8], [9, 10, 11]]
    cfg = SamplingConfig(max_new_tokens=20, greedy=True)
    cached = list(generate_tokens(model, prompts, cfg, use_cache=True))
    uncached = list(generate_tokens(model, prompts, cfg, use_cache=False))
    assert cached == uncached
