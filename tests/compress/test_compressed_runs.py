"""Compressed runs are ordinary run directories: the methods compose (prune -> distill -> quantize), and the
result loads, generates, evaluates, describes itself and serves through the same commands as any run."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import torch
import yaml

from fromzero.cli import main
from fromzero.compress.calibration import calibration_batches, forward
from fromzero.finetune.evaluate import evaluate_finetuned_run
from fromzero.nn.quantized_linear import QuantizedLinear
from fromzero.runs import load_run
from fromzero.serve import BackgroundServer, Engine, create_app
from toy_data import make_topic_rows

WORDS = {"sport": ["ball", "goal", "team"], "food": ["bread", "soup", "apple"], "music": ["song", "drum", "tune"]}
FILLER = ["the", "a", "we", "saw", "liked", "big", "small", "today"]


@pytest.fixture(scope="module")
def composed(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GPT: 30% of its heads removed, then 50% Wanda-pruned, then dynamic int8."""
    root = tmp_path_factory.mktemp("composed")
    assert main(["compress", "prune", str(tiny_run), "--sparsity", "0.3", "--structured", "heads",
                 "--out", str(root / "heads"), "--no-progress"]) == 0
    assert main(["compress", "prune", str(root / "heads"), "--sparsity", "0.5", "--method", "wanda",
                 "--out", str(root / "wanda"), "--no-progress"]) == 0
    assert main(["compress", "quantize", str(root / "wanda"), "--mode", "dynamic-int8", "--out", str(root / "q"),
                 "--no-progress"]) == 0
    return root / "q"


def test_steps_compose_and_are_recorded(composed: Path, tiny_run: Path) -> None:
    info = json.loads((composed / "compression.json").read_text())
    assert [s["op"] for s in info["steps"]] == ["structured", "prune", "quantize"]
    run = load_run(composed)
    heads = [run.model.get_submodule(name).n_head for name in info["steps"][0]["heads"]]
    assert heads and all(h < run.model_config.n_head for h in heads)
    assert {type(run.model.get_submodule(n)) for n in info["steps"][2]["modules"]} == {QuantizedLinear}
    # the structure survived both later steps: fewer parameters than the source, same vocabulary
    source = load_run(tiny_run)
    assert run.tokenizer.vocab_size == source.tokenizer.vocab_size
    assert (composed / "model.safetensors").stat().st_size < (tiny_run / "model.safetensors").stat().st_size / 2


def test_composed_run_generates_evaluates_and_describes_itself(composed: Path, capsys) -> None:
    assert main(["generate", str(composed), "--prompt", "Eliza", "--max-tokens", "12", "--greedy"]) == 0
    text = capsys.readouterr().out
    assert text.strip()
    assert main(["eval", str(composed), "--no-progress"]) == 0
    loss = json.loads((composed / "eval.json").read_text())["validation split"]["loss"]
    assert 0.0 < loss < 10.0
    assert main(["info", str(composed)]) == 0
    described = capsys.readouterr().out
    assert "step 1: structured" in described and "step 3: quantize" in described


def test_composed_run_serves_the_loaded_models_tokens(composed: Path) -> None:
    """The server's greedy completion equals greedy decoding of the same loaded model, token for token."""
    run = load_run(composed)
    prompt = run.tokenizer.encode("Eliza")
    ids = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(6):
            ids = torch.cat([ids, run.model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    expected = run.tokenizer.decode(ids[0, len(prompt):].tolist())
    engine = Engine.from_run_dir(composed)
    with BackgroundServer(create_app(engine)) as server:
        reply = httpx.post(server.url + "/v1/completions", json={"model": engine.model_id, "prompt": "Eliza",
                                                                  "max_tokens": 6, "temperature": 0}, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["text"] == expected


def _classifier(folder: Path, base: Path) -> Path:
    files = {}
    for split, n, seed in (("train", 24, 0), ("validation", 9, 1), ("test", 9, 2)):
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in make_topic_rows(n, seed, WORDS, FILLER, 3)))
    recipe = {"seed": 0, "base": str(base), "task": {"kind": "sequence_classification", "max_len": 24,
                                                     **{s: str(p) for s, p in files.items()}},
              "method": {"name": "full"}, "select_metric": "accuracy",
              "train": {"max_steps": 4, "batch_size": 8, "threads": 1, "log_every": 2, "eval_every": 4},
              "optim": {"lr": 3e-3, "warmup_steps": 0}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["finetune", str(folder / "recipe.yaml"), "--out", str(folder / "ft"), "--no-progress"]) == 0
    return folder / "ft"


def test_quantized_classifier_evaluates_on_its_test_split(tiny_bert_run: Path, tmp_path: Path) -> None:
    ft = _classifier(tmp_path, tiny_bert_run)
    out = tmp_path / "ft-int8"
    assert main(["compress", "quantize", str(ft), "--mode", "dynamic-int8", "--out", str(out), "--no-progress"]) == 0
    report = evaluate_finetuned_run(out, progress=False)
    assert 0.0 <= report["test"]["metrics"]["accuracy"] <= 1.0
    # the int8 classifier's logits stay near the float one's on the same held-out batch
    float_run, int8_run = load_run(ft), load_run(out)
    batch = calibration_batches(float_run, 1, 8)[0]
    a, b = forward(float_run.model, batch), forward(int8_run.model, batch)
    assert (a - b).abs().max() <= 0.05 * a.abs().max()


LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy_runs"


@pytest.mark.parametrize("name", ["t5_run", "t5_mt", "gpt_cls", "gpt_sft"])
@pytest.mark.parametrize("mode", ["dynamic-int8", "weight-int4"])
def test_every_run_kind_quantizes_reloads_and_stays_close(name: str, mode: str, tmp_path: Path) -> None:
    """T5 (pretrained and seq2seq), a GPT classifier and an SFT GPT: quantize (int4 with GPTQ on the run's own
    calibration batches), reload through load_run, and the logits stay near the float model's."""
    extra = ["--group-size", "16", "--gptq", "--calibration", "2"] if mode == "weight-int4" else []
    out = tmp_path / "q"
    assert main(["compress", "quantize", str(LEGACY / name), "--mode", mode, "--out", str(out), "--no-progress",
                 *extra]) == 0
    source, quantized = load_run(LEGACY / name), load_run(out)
    assert any(isinstance(m, QuantizedLinear) for m in quantized.model.modules())
    batch = calibration_batches(source, 1, 4, seed=5)[0]
    with torch.no_grad():
        a, b = forward(source.model, batch), forward(quantized.model, batch)
    tolerance = 0.02 if mode == "dynamic-int8" else 0.08  # of the logits' range (measured: <= 0.007 / 0.03)
    assert (a - b).abs().max() <= tolerance * (a.max() - a.min())


def test_structured_t5_exports_to_onnx(tmp_path: Path) -> None:
    """Per-layer head counts and T5's head_index (shared relative bias) survive tracing: ONNX Runtime agrees."""
    from fromzero.interop.onnx_export import export_onnx

    pruned = tmp_path / "t5-heads"
    assert main(["compress", "prune", str(LEGACY / "t5_run"), "--sparsity", "0.5", "--structured", "heads",
                 "--out", str(pruned), "--no-progress"]) == 0
    export = export_onnx(pruned, tmp_path / "onnx")
    assert export.max_abs_diff is not None and export.max_abs_diff <= 1e-4
