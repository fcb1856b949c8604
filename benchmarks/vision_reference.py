"""fromzero's ResNet-18 beside torchvision's resnet18, in one process: training images/s on the same input,
and (with --accuracy-steps) test accuracy after the same steps of the same recipe through the same Trainer.

torchvision's compiled ops need the CUDA build of torch, so this runs in a separate environment:

    python3.11 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tvenv/bin/pip install -e .
    /tmp/tvenv/bin/python benchmarks/vision_reference.py --threads 2 --accuracy-steps 600

It writes benchmarks/results/vision_reference.json, which benchmarks/vision_table.py merges into
docs/results.md. Speed: alternating rounds of `rounds` timed training steps (forward, backward, AdamW) per
model, median per model; both models in train mode on identical random batches.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from vision_table import cpu_name  # noqa: E402

from fromzero.config import field  # noqa: E402
from fromzero.models import create_model, register_family, register_model  # noqa: E402


def torchvision_resnet18(in_channels: int, num_classes: int, small_stem: bool) -> nn.Module:
    """torchvision's resnet18; with ``small_stem`` its stem becomes one 3x3 stride-1 conv and no max-pool
    (the change fromzero's ``stem: small`` makes for 28x28 inputs)."""
    model = torchvision.models.resnet18(num_classes=num_classes)
    if small_stem or in_channels != 3:
        k, s, p = (3, 1, 1) if small_stem else (7, 2, 3)
        model.conv1 = nn.Conv2d(in_channels, 64, k, s, p, bias=False)
    if small_stem:
        model.maxpool = nn.Identity()
    return model


@dataclass(frozen=True)
class TorchvisionResNetConfig:
    """torchvision's resnet18 as a registered family, so `train_vision` trains it like any fromzero model."""

    in_channels: int = field(1, help="input channels")
    num_classes: int = field(10, help="classes")
    small_stem: bool = field(True, help="3x3 stride-1 stem, no max-pool")


class TorchvisionResNet(nn.Module):
    def __init__(self, config: TorchvisionResNetConfig) -> None:
        super().__init__()
        self.config = config
        self.net = torchvision_resnet18(config.in_channels, config.num_classes, config.small_stem)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(pixels)


register_family("torchvision-resnet18", TorchvisionResNetConfig, TorchvisionResNet)
register_model("torchvision-resnet18-small")(lambda: TorchvisionResNetConfig())


def step_time(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    t0 = time.perf_counter()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def speed(models: dict[str, nn.Module], shape: tuple[int, ...], classes: int, rounds: int, steps: int) -> dict:
    """Median seconds per training step of each model, measured in alternating rounds."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(*shape, generator=gen), torch.randint(0, classes, (shape[0],), generator=gen)
    opts = {n: torch.optim.AdamW(m.parameters(), lr=1e-3) for n, m in models.items()}
    times: dict[str, list[float]] = {n: [] for n in models}
    for n, m in models.items():  # warm-up
        m.train()
        step_time(m, opts[n], x, y)
    for _ in range(rounds):
        for n, m in models.items():
            times[n] += [step_time(m, opts[n], x, y) for _ in range(steps)]
    return {n: statistics.median(t) for n, t in times.items()}


def speed_rows(args: argparse.Namespace) -> list[dict]:
    rows = []
    for label, small, shape in (("28x28 grayscale, small stem", True, (args.batch, 1, 28, 28)),
                                ("3x64x64, ImageNet stem", False, (args.batch, 3, 64, 64))):
        ours = create_model("resnet18" if not small else "resnet18-small", in_channels=shape[1], num_classes=10)
        theirs = torchvision_resnet18(shape[1], 10, small)
        medians = speed({"fromzero": ours, "torchvision": theirs}, shape, 10, args.rounds, args.steps)
        for name, model in (("fromzero", ours), ("torchvision", theirs)):
            rows.append({"name": f"{name} resnet18 ({label}, batch {args.batch})",
                         "parameters": sum(p.numel() for p in model.parameters()),
                         "images_per_s": args.batch / medians[name],
                         "ratio": medians["torchvision"] / medians[name]})
    return rows


def accuracy(recipe: str, steps: int, threads: int, runs: Path) -> dict:
    """Test accuracy, images/s and wall time of fromzero resnet18-small and torchvision's resnet18 (same small
    stem) after the same steps of one recipe, through the same data pipeline and Trainer."""
    from fromzero.vision.runner import train_vision

    result = {}
    for name in ("resnet18-small", "torchvision-resnet18-small"):
        out = runs / f"{recipe}_{name}"
        done = train_vision(ROOT / "recipes" / "vision" / f"{recipe}.yaml",
                            [f"--model={{name: {name}}}", f"--train.max_steps={steps}", f"--train.threads={threads}"],
                            out=out, progress=False)
        result[name] = {"accuracy": done.test_metrics["accuracy"], "images_per_s": done.info["images_per_s"],
                        "train_s": done.info["train_wall_s"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model per round")
    parser.add_argument("--accuracy-steps", type=int, default=0, help="0: no accuracy runs")
    parser.add_argument("--accuracy-recipe", default="digits_cnn",
                        help="recipe under recipes/vision/ both ResNet-18s train on (its model replaced)")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed rounds (keep the saved ones)")
    parser.add_argument("--runs", default="runs/vision_reference")
    parser.add_argument("--out", default="benchmarks/results/vision_reference.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = ROOT / args.out
    report = json.loads(out.read_text()) if out.is_file() else {}  # separate invocations add their parts
    report.update({"cpu": cpu_name(), "torch": torch.__version__, "torchvision": torchvision.__version__})
    command = "python benchmarks/vision_reference.py " + " ".join(sys.argv[1:])
    if not args.no_speed:
        report.update({"command": command, "threads": args.threads, "speed": speed_rows(args)})
    if args.accuracy_steps:
        report["accuracy"] = {"command": command, "recipe": args.accuracy_recipe, "steps": args.accuracy_steps,
                              "threads": args.threads,
                              "runs": accuracy(args.accuracy_recipe, args.accuracy_steps, args.threads,
                                               ROOT / args.runs)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
