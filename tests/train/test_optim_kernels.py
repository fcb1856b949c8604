"""Adam(W) kernel choice: fused where torch has one, the same updates as a hand-written AdamW, and
checkpoints that move between the fused and the per-tensor implementations."""

from __future__ import annotations

import pytest
import torch

from fromzero.models import create_model
from fromzero.train.optim import OptimConfig, adam_implementation, build_optimizer


def reference_adamw(params, grads_per_step, lr, betas, eps, weight_decays):
    """AdamW (Loshchilov & Hutter 2019, Algorithm 2) in float64, one tensor at a time."""
    b1, b2 = betas
    params = [p.double().clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            g = g.double()
            p.mul_(1 - lr * weight_decays[i])
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            p.sub_(lr * m_hat / (v_hat.sqrt() + eps))
    return params


def test_cpu_gets_the_fused_kernel():
    model = create_model("gpt-char-tiny", n_layer=1)
    for name in ("adamw", "adam"):
        opt = build_optimizer(model, OptimConfig(name=name))
        assert opt.defaults["fused"] is True and not opt.defaults["foreach"]


def test_kernel_choice_by_device_and_dtype():
    assert adam_implementation([torch.zeros(2), torch.zeros(3)]) == {"fused": True}
    assert adam_implementation([torch.zeros(2), torch.zeros(2, device="meta")]) == {}  # two device types
    assert adam_implementation([torch.zeros(2, device="meta")]) == {}  # no fused or foreach kernel there
    assert adam_implementation([]) == {}


def test_fused_adamw_matches_a_hand_written_adamw():
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", n_layer=1, block_size=16)
    cfg = OptimConfig(lr=1e-2, weight_decay=0.1, betas=[0.9, 0.95], eps=1e-8)
    opt = build_optimizer(model, cfg)
    assert opt.defaults["fused"]
    params = [p for g in opt.param_groups for p in g["params"]]
    decays = [g["weight_decay"] for g in opt.param_groups for _ in g["params"]]
    start = [p.detach().clone() for p in params]
    grads_per_step = []
    for _ in range(5):
        x = torch.randint(0, 128, (2, 16))
        opt.zero_grad(set_to_none=True)
        model(x).logsumexp(-1).mean().backward()
        grads_per_step.append([p.grad.detach().clone() for p in params])
        opt.step()
    expected = reference_adamw(start, grads_per_step, cfg.lr, cfg.betas, cfg.eps, decays)
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.detach().double(), e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("saved_with", [{"foreach": False}, {"fused": True}])
def test_checkpoints_move_between_implementations(saved_with):
    """A state saved by the per-tensor AdamW (checkpoints written before fused) resumes in the fused one."""
    def run(opt_factory, model, steps, state=None, first=0):
        opt = opt_factory(model)
        if state is not None:
            opt.load_state_dict(state)
        for i in range(first, first + steps):
            torch.manual_seed(100 + i)
            opt.zero_grad(set_to_none=True)
            model(torch.randint(0, 128, (2, 8))).square().mean().backward()
            opt.step()
        return opt

    cfg = OptimConfig(lr=1e-2)
    torch.manual_seed(0)
    a = create_model("gpt-char-tiny", n_layer=1)
    b = create_model("gpt-char-tiny", n_layer=1)
    b.load_state_dict(a.state_dict())

    def other(model):
        groups = build_optimizer(model, cfg).param_groups
        return torch.optim.AdamW([{k: v for k, v in g.items() if k in ("params", "weight_decay")} for g in groups],
                                 lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, **saved_with)

    saved = run(other, a, 3).state_dict()
    run(lambda m: build_optimizer(m, cfg), a, 2, saved, first=3)  # resumed with the fused kernel
    run(other, b, 5)  # uninterrupted
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
