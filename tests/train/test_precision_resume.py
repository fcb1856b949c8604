"""``precision: auto`` on the CPU probes once per run: a resumed run keeps the precision its checkpoint
trained in, even where a new probe would answer otherwise (near a tie the answer can flip between runs)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from fromzero.pretrain.runner import pretrain
from fromzero.train import precision_probe
from fromzero.train.checkpoint import latest_checkpoint


def _answering(monkeypatch: pytest.MonkeyPatch, answer: str, calls: list[str]) -> None:
    def probe(step, device, **kwargs):
        calls.append(answer)
        return types.SimpleNamespace(fastest=answer)
    monkeypatch.setattr(precision_probe, "probe_precision", probe)


def test_resume_keeps_the_precision_the_checkpoint_trained_in(tmp_path: Path, small_corpus: Path,
                                                              tiny_overrides: list[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    args = [*tiny_overrides, f"--data.inputs=[{small_corpus}]", "--train.precision=auto", "--sample.prompts=[]"]
    calls: list[str] = []
    _answering(monkeypatch, "bf16", calls)
    pretrain(None, [*args, "--train.max_steps=10"], out=out, progress=False)
    assert calls == ["bf16"]
    ckpt = latest_checkpoint(out / "checkpoints")
    assert json.loads((ckpt.path / "state.json").read_text())["trainer"]["precision"] == "bf16"

    _answering(monkeypatch, "fp32", calls)  # a new probe would now pick fp32
    pretrain(None, [*args, "--train.max_steps=20"], out=out, resume=True, progress=False)
    assert calls == ["bf16"]  # not probed again
    assert json.loads((out / "summary.json").read_text())["precision"] == "bf16"

    fresh = tmp_path / "fresh"  # a new run does probe
    pretrain(None, [*args, "--train.max_steps=10"], out=fresh, progress=False)
    assert calls == ["bf16", "fp32"]
    assert json.loads((fresh / "summary.json").read_text())["precision"] == "fp32"
