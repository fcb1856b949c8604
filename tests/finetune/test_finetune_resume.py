"""Resumable fine-tuning: a fine-tune interrupted mid-run and resumed ends bit-identical (weights, best step,
metrics) to an uninterrupted one, for full and LoRA; the best weights survive the interruption; a changed
recipe is refused naming the key; checkpoints hold only trainable tensors, honour keep_last and are gone
after success. Also `fromzero info` on a finished and an unfinished fine-tuned run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from fromzero.cli import main
from fromzero.errors import CheckpointError, TrainingStopped
from fromzero.eval.task_metrics import score_outputs
from fromzero.finetune.runner import finetune
from fromzero.train.loggers import read_metrics
from toy_data import make_topic_rows

WORDS = {"sport": ["ball", "goal", "team"], "food": ["bread", "soup", "apple"], "music": ["song", "drum", "tune"]}
FILLER = ["the", "a", "we", "saw", "liked", "big", "small", "today"]
METHODS = {"full": {"name": "full"},
           "lora": {"name": "lora", "lora": {"rank": 4, "alpha": 8, "dropout": 0.1, "targets": ["*attn.qkv"]}}}
# Validation f1_macro at the evaluations of steps 2, 4, 6, 8, 10: best at step 4, before the interruption
# (at the step-8 evaluation) and not at a checkpoint step (3, 6, 9), so only the checkpoint's saved best
# weights can make the resumed run end with the same weights as the uninterrupted one.
SCRIPT = [0.5, 0.9, 0.3, 0.4, 0.2]


class Interrupted(Exception):
    """Stands in for a kill: raised out of the Trainer's evaluation hook."""


class ScriptedScorer:
    """The real scorer with f1_macro replaced by a scripted sequence; raises at evaluation ``stop_at``."""

    def __init__(self, script: list[float], stop_at: int | None = None) -> None:
        self.script, self.stop_at, self.calls = list(script), stop_at, 0

    def __call__(self, outputs) -> dict[str, float]:
        self.calls += 1
        if self.calls == self.stop_at:
            raise Interrupted(f"evaluation {self.calls}")
        return {**score_outputs(outputs), "f1_macro": self.script[self.calls - 1]}


@pytest.fixture(scope="module")
def task_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("resume_tasks")
    files = {}
    for split, n, seed in (("train", 40, 0), ("validation", 12, 1), ("test", 12, 2)):
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in make_topic_rows(n, seed, WORDS, FILLER, 3)))
    return files


def _recipe(tmp: Path, base: Path, files: dict[str, Path], method: str) -> Path:
    recipe = {"seed": 3, "base": str(base),
              "task": {"max_len": 24, "dropout": 0.1, **{s: str(p) for s, p in files.items()}},
              "method": METHODS[method], "select_metric": "f1_macro",
              "train": {"max_steps": 10, "batch_size": 8, "threads": 1, "precision": "fp32",
                        "log_every": 1, "eval_every": 2,
                        "eval_batches": 1, "ckpt_every": 3, "keep_last": 1},
              "optim": {"lr": 1e-2, "warmup_steps": 2}}
    path = tmp / f"{method}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def _trajectory(run: Path) -> list[dict]:
    timing = ("elapsed_s", "tokens_per_s")
    return [{k: v for k, v in r.items() if k not in timing} for r in read_metrics(run / "metrics.jsonl")]


def _interrupt(recipe: Path, out: Path) -> None:
    with pytest.raises(Interrupted):
        finetune(recipe, scorer=ScriptedScorer(SCRIPT, stop_at=4), out=out, progress=False)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_interrupted_then_resumed_equals_uninterrupted(method: str, tiny_run: Path, task_files, tmp_path: Path
                                                       ) -> None:
    recipe = _recipe(tmp_path, tiny_run, task_files, method)
    reference = finetune(recipe, scorer=ScriptedScorer(SCRIPT), out=tmp_path / "reference", progress=False)
    assert reference.info["best_step"] == 4

    run = tmp_path / "resumed"
    _interrupt(recipe, run)
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["step_000006"]  # keep_last: 1 pruned step 3
    saved = load_file(str(run / "checkpoints" / "step_000006" / "model.safetensors"))
    trainable = {n for n, p in reference_model_params(reference.run_dir, method)}
    assert set(saved) == trainable  # trainable tensors only: LoRA checkpoints leave the frozen backbone out
    best = load_file(str(run / "checkpoints" / "step_000006" / "best.safetensors"))
    assert set(best) == trainable and any(not torch.equal(best[k], saved[k]) for k in best)  # step 4, not 6

    resumed = finetune(recipe, scorer=ScriptedScorer(SCRIPT[3:]), out=run, progress=False, resume=True)
    assert resumed.info["resumed_from_step"] == 6
    for name in ("model.safetensors", *(["adapter.safetensors"] if method == "lora" else [])):
        want, got = load_file(str(reference.run_dir / name)), load_file(str(run / name))
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want), f"{name} differs after resume"
    for key in ("best_step", "best_validation", "steps", "stopped_early", "trainable_parameters"):
        assert resumed.info[key] == reference.info[key], key
    assert _trajectory(run) == _trajectory(reference.run_dir)  # the same losses, lrs and grad norms
    assert not (run / "checkpoints").exists() and not (reference.run_dir / "checkpoints").exists()


def reference_model_params(run: Path, method: str) -> list[tuple[str, torch.Tensor]]:
    """Names of the trainable tensors the method leaves (as the fine-tune's checkpoints store them)."""
    from fromzero.finetune.methods import apply_method, build_task_model
    from fromzero.finetune.recipe import load_finetune_recipe
    from fromzero.runs import load_run

    recipe = load_finetune_recipe(run / "config.yaml")
    model = build_task_model(load_run(recipe.base).model, recipe.task, 3)
    apply_method(model, recipe)
    names = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert (method == "lora") == all("lora" in n or n.startswith("head.") for n, _ in names)
    return names


@pytest.mark.parametrize(("override", "key"), [
    ("--method.name=full", "method.name"),
    ("--method.lora.rank=8", "method.lora.rank"),
    ("--seed=4", "seed"),
    ("--task.max_len=20", "task.max_len"),
    ("--select_metric=accuracy", "select_metric"),
])
def test_resume_refuses_a_changed_recipe(override: str, key: str, tiny_run: Path, task_files, tmp_path: Path,
                                         capsys) -> None:
    recipe = _recipe(tmp_path, tiny_run, task_files, "lora")
    run = tmp_path / "run"
    _interrupt(recipe, run)
    assert main(["finetune", str(recipe), override, "--out", str(run), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'config.yaml'}: {key} was " in err and len(err.strip().splitlines()) == 1
    assert (run / "checkpoints" / "step_000006").is_dir()  # nothing was touched


def test_resume_needs_an_unfinished_run(tiny_run: Path, task_files, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, tiny_run, task_files, "lora")
    with pytest.raises(CheckpointError, match="nothing to resume"):
        finetune(recipe, scorer=score_outputs, out=tmp_path / "none", progress=False, resume=True)
    _interrupt(recipe, tmp_path / "run")
    with pytest.raises(CheckpointError, match="pass --resume"):
        finetune(recipe, scorer=score_outputs, out=tmp_path / "run", progress=False)
    # train.* may change on resume (here: more steps), as when resuming a pretraining run
    done = finetune(recipe, ["--train.max_steps=12"], scorer=ScriptedScorer(SCRIPT[3:] + [0.1]),
                    out=tmp_path / "run", progress=False, resume=True)
    assert done.info["steps"] == 12 and done.info["best_step"] == 4
    with pytest.raises(CheckpointError, match="already finished"):
        finetune(recipe, scorer=score_outputs, out=tmp_path / "run", progress=False, resume=True)


def test_info_on_finished_and_unfinished_runs(tiny_run: Path, task_files, tmp_path: Path, capsys) -> None:
    recipe = _recipe(tmp_path, tiny_run, task_files, "lora")
    _interrupt(recipe, tmp_path / "run")
    assert main(["info", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "unfinished: latest checkpoint at step 6 of 10" in out and "--resume" in out

    assert main(["finetune", str(recipe), "--out", str(tmp_path / "run"), "--resume", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "run")]) == 0
    lines = capsys.readouterr().out.splitlines()
    info = json.loads((tmp_path / "run" / "finetune.json").read_text())
    test = json.loads((tmp_path / "run" / "eval.json").read_text())["test"]
    text = "\n".join(lines)
    assert f"base: {tiny_run} (gpt)" in text
    assert "task: sequence_classification, problem single_label, max_len 24" in text
    assert "labels: 3 (food, music, sport)" in text
    assert f"method: lora, rank 4, alpha 8, {len(info['lora_layers'])} layers adapted" in text
    assert (f"parameters: {info['trainable_parameters']:,} trainable of {info['total_parameters']:,} "
            f"({info['trainable_percent']:.2f}%)") in text
    assert f"best step {info['best_step']} by validation f1_macro, resumed from step 6" in text
    assert f"f1_macro {info['best_validation']['val_f1_macro']:.4f}" in text
    assert f"test ({test['examples']:,} examples, eval.json): accuracy {test['metrics']['accuracy']:.4f}" in text
    assert f"peak RSS {info['peak_rss_mb']:.0f} MiB" in text


class SignallingScorer(ScriptedScorer):
    """The scripted scorer that sends this process SIGTERM during evaluation ``signal_at`` (a preemption)."""

    def __init__(self, script: list[float], signal_at: int) -> None:
        super().__init__(script)
        self.signal_at = signal_at

    def __call__(self, outputs) -> dict[str, float]:
        if self.calls + 1 == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().__call__(outputs)


def test_sigterm_mid_finetune_checkpoints_and_resumes_bit_identically(tiny_run: Path, task_files, tmp_path: Path
                                                                      ) -> None:
    recipe = _recipe(tmp_path, tiny_run, task_files, "lora")
    reference = finetune(recipe, scorer=ScriptedScorer(SCRIPT), out=tmp_path / "reference", progress=False)
    run = tmp_path / "preempted"
    with pytest.raises(TrainingStopped, match="stopped by SIGTERM at step 8") as info:  # the 4th evaluation
        finetune(recipe, scorer=SignallingScorer(SCRIPT, signal_at=4), out=run, progress=False)
    assert info.value.exit_code == 143
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000008"]  # the signal's checkpoint
    resumed = finetune(recipe, scorer=ScriptedScorer(SCRIPT[4:]), out=run, progress=False, resume=True)
    assert resumed.info["resumed_from_step"] == 8 and resumed.info["best_step"] == reference.info["best_step"]
    for name in ("model.safetensors", "adapter.safetensors"):
        want, got = load_file(str(reference.run_dir / name)), load_file(str(run / name))
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want), name
    assert _trajectory(run) == _trajectory(reference.run_dir)
