"""ONNX export (``fromzero export-onnx``). Each family's tiny model, randomly initialised (weights perturbed so
outputs are O(1)) and saved as a run directory, is exported; ONNX Runtime's output must match the reference,
the run's PyTorch model called the way ``finetune/predict.py`` and the families call it (not the export
wrapper), within 1e-4 at two shapes other than the traced one, one with padded rows. Bad inputs are one line,
exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model

from fromzero.atomic import write_text
from fromzero.cli import main
from fromzero.config import dump_yaml, to_dict
from fromzero.data.tokenizers import TokenizerConfig, train_tokenizer
from fromzero.interop.onnx_export import export_onnx
from fromzero.interop.onnx_runtime import OnnxModel
from fromzero.models import build_model, model_config
from fromzero.models.heads import build_head
from fromzero.models.registry import family_of
from fromzero.runs import load_run

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (onnx extra)")
pytest.importorskip("onnx", reason="onnx is not installed (onnx extra)")

VOCAB = 90
TINY = {
    "gpt": ("gpt-char-tiny", {"vocab_size": VOCAB, "n_embd": 32, "n_head": 4, "block_size": 48}),
    "bert": ("bert-tiny", {"vocab_size": VOCAB, "n_embd": 32, "n_head": 2, "max_positions": 48}),
    "t5": ("t5-tiny", {"vocab_size": VOCAB, "d_model": 32, "d_kv": 8, "d_ff": 48, "n_layer": 1}),
}
LABELS = ["alpha", "beta", "gamma"]
TOL = 1e-4


def _perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return model.eval()


def save_tiny_run(path: Path, family: str, kind: str = "pretrained", seed: int = 0) -> Path:
    """A randomly initialised tiny model of ``family`` saved as a run directory (a fine-tune for a head ``kind``)."""
    torch.manual_seed(seed)
    name, overrides = TINY[family]
    cfg = model_config(name, overrides)
    model = build_model(cfg)
    path.mkdir(parents=True)
    train_tokenizer(["the quick brown fox jumps over the lazy dog"] * 4,
                    TokenizerConfig(kind="char", vocab_size=VOCAB)).save(path / "tokenizer.json")
    if kind == "pretrained":
        write_text(path / "config.yaml", dump_yaml({"model": {"name": name, **overrides}}))
    else:
        model = build_head(model, kind, len(LABELS))
        info = {"family": family_of(cfg).name, "model": to_dict(cfg), "kind": kind, "problem": "single_label",
                "num_labels": len(LABELS), "pooling": getattr(model, "pooling", None), "labels": LABELS}
        write_text(path / "config.yaml", dump_yaml({"base": "elsewhere", "task": {"kind": kind, "max_len": 48}}))
        write_text(path / "finetune.json", json.dumps(info))
        write_text(path / "labels.txt", "".join(f"{x}\n" for x in LABELS))
    save_model(_perturbed(model, seed + 1), str(path / "model.safetensors"))
    return path


def _batch(lengths: list[int], seed: int) -> dict[str, torch.Tensor]:
    """Right-padded random ids (pad id 0), its mask, two segments, and a decoder prefix."""
    gen = torch.Generator().manual_seed(seed)
    T = max(lengths)
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()
    return {"input_ids": torch.randint(1, VOCAB, (len(lengths), T), generator=gen) * mask, "attention_mask": mask,
            "token_type_ids": (torch.arange(T) >= T // 2).long().expand(len(lengths), T) * mask,
            "decoder_input_ids": torch.randint(0, VOCAB, (len(lengths), 5), generator=gen)}


@torch.no_grad()
def _reference(run_dir: Path, family: str, kind: str, x: dict[str, torch.Tensor]) -> torch.Tensor:
    """The run's model called directly: an LM on ids alone, BERT's MLM head on its hidden states, T5 with a
    decoder prefix, a task head as finetune/predict.py calls it."""
    model = load_run(run_dir).model
    if kind != "pretrained":
        extra = {"token_type_ids": x["token_type_ids"]} if family == "bert" else {}
        return model(x["input_ids"], attention_mask=x["attention_mask"], **extra)
    if family == "gpt":
        return model(x["input_ids"])
    if family == "t5":
        return model(x["input_ids"], attention_mask=x["attention_mask"], decoder_input_ids=x["decoder_input_ids"])
    hidden = model(x["input_ids"], attention_mask=x["attention_mask"], token_type_ids=x["token_type_ids"])
    return model.mlm_logits(hidden)


CASES = [("gpt", "pretrained", ["input_ids"], (VOCAB,)),
         ("bert", "pretrained", ["input_ids", "attention_mask", "token_type_ids"], (VOCAB,)),
         ("bert", "sequence_classification", ["input_ids", "attention_mask", "token_type_ids"], (3,)),
         ("bert", "token_classification", ["input_ids", "attention_mask", "token_type_ids"], (3,)),
         ("bert", "span_qa", ["input_ids", "attention_mask", "token_type_ids"], (2,)),
         ("gpt", "sequence_classification", ["input_ids", "attention_mask"], (3,)),
         ("t5", "pretrained", ["input_ids", "attention_mask", "decoder_input_ids"], (VOCAB,))]


@pytest.mark.parametrize(("family", "kind", "inputs", "width"), CASES, ids=[f"{f}-{k}" for f, k, *_ in CASES])
def test_onnx_runtime_matches_pytorch_at_two_shapes_with_padding(family, kind, inputs, width, tmp_path) -> None:
    run = save_tiny_run(tmp_path / "run", family, kind)
    export = export_onnx(run, tmp_path / "onnx")
    assert export.inputs == inputs and export.max_abs_diff <= TOL
    ort = OnnxModel(tmp_path / "onnx" / "model.onnx")
    assert ort.input_names == inputs
    for lengths, seed in (([9, 4, 1, 6], 3), ([5, 5], 4)):  # padded rows; neither is the traced (2, 16)
        x = _batch(lengths, seed)
        expected = _reference(run, family, kind, x)
        got = ort(**{k: x[k] for k in inputs})
        assert got.shape == expected.shape and got.shape[-1:] == width
        assert expected.abs().max() > 0.5  # outputs large enough for 1e-4 to mean something
        assert (got - expected).abs().max() <= TOL, (lengths, (got - expected).abs().max())
    record = json.loads((tmp_path / "onnx" / "onnx_export.json").read_text())
    assert (record["family"], record["kind"], record["opset"]) == (family, kind, 17)
    assert [i["name"] for i in record["inputs"]] == inputs and len(record["checks"]) == 2
    assert all(c["max_abs_diff"] <= TOL for c in record["checks"])
    assert {"torch", "onnx", "onnxruntime"} <= set(record["versions"])
    assert (tmp_path / "onnx" / "tokenizer.json").read_bytes() == (run / "tokenizer.json").read_bytes()
    assert (tmp_path / "onnx" / "labels.txt").is_file() == (kind != "pretrained")


def test_int8_model_of_a_trained_run_loads_runs_and_stays_close(tiny_run: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    import onnx

    assert main(["export-onnx", str(tiny_run), str(tmp_path / "onnx"), "--int8"]) == 0
    assert "model.int8.onnx" in capsys.readouterr().out
    path = tmp_path / "onnx" / "model.int8.onnx"
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul"}, ops
    ids = torch.randint(1, 60, (3, 11), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = load_run(tiny_run).model(ids)
    got = OnnxModel(path)(input_ids=ids)
    diff = float((got - expected).abs().max())
    assert got.shape == expected.shape and 0 < diff < 0.25 * float(expected.abs().max())
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() > 0.8
    assert (OnnxModel(tmp_path / "onnx" / "model.onnx")(input_ids=ids) - expected).abs().max() <= TOL
    record = json.loads((tmp_path / "onnx" / "onnx_export.json").read_text())
    assert record["files"]["int8"] == "model.int8.onnx" and len(record["int8"]["checks"]) == 2
    assert record["bytes"]["model.int8.onnx"] < record["bytes"]["model.onnx"]


def test_onnx_model_fills_a_missing_mask_and_segments_and_refuses_unknown_inputs(tmp_path: Path) -> None:
    run = save_tiny_run(tmp_path / "run", "bert", "token_classification")
    export_onnx(run, tmp_path / "onnx", check=False)
    ort = OnnxModel(tmp_path / "onnx" / "model.onnx", threads=2)
    ids = _batch([6, 6], 6)["input_ids"].numpy().astype("int32")  # numpy, another int dtype
    full = ort(input_ids=ids, attention_mask=torch.ones(2, 6, dtype=torch.long),
               token_type_ids=torch.zeros(2, 6, dtype=torch.long))
    assert torch.equal(ort(input_ids=ids), full)
    assert not torch.equal(ort(input_ids=ids, token_type_ids=torch.ones(2, 6, dtype=torch.long)), full)
    with pytest.raises(ValueError, match="dtype float32"):
        ort(input_ids=ids, attention_mask=torch.ones(2, 6))
    with pytest.raises(ValueError, match="decoder_input_ids"):
        ort(input_ids=ids, decoder_input_ids=ids)
    record = json.loads((tmp_path / "onnx" / "onnx_export.json").read_text())
    assert record["checks"] == []


def test_an_output_off_by_1e_3_is_an_export_bug_and_nothing_is_written(tmp_path: Path, monkeypatch) -> None:
    run = save_tiny_run(tmp_path / "run", "gpt")
    real = OnnxModel.__call__
    monkeypatch.setattr(OnnxModel, "__call__", lambda self, **x: real(self, **x) + 1e-3)
    with pytest.raises(RuntimeError, match="export is wrong"):
        export_onnx(run, tmp_path / "onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_float32_rounding_of_large_logits_is_not_an_export_bug(tmp_path: Path) -> None:
    run = save_tiny_run(tmp_path / "run", "gpt")
    model = load_run(run).model
    with torch.no_grad():
        model.norm_f.weight.mul_(1000.0)  # logits in the thousands: float32 rounding alone exceeds 1e-4
    save_model(model, str(run / "model.safetensors"))
    export = export_onnx(run, tmp_path / "onnx")
    assert export.max_abs_diff > TOL
    for c in export.checks:  # both float32 runs are about equally far from the float64 one
        assert c["onnxruntime_vs_float64"] <= 4 * c["pytorch_float32_vs_float64"]
        assert c["pytorch_float32_vs_float64"] > TOL


def _quantized(run: Path) -> None:
    step = {"op": "quantize", "mode": "dynamic-int8", "group_size": None, "rounding": "rtn", "keep_float": [],
            "modules": []}
    write_text(run / "compression.json", json.dumps({"format": 1, "source": "x", "steps": [step]}))


BAD = [("not-a-run", lambda t: t.joinpath("nothing").mkdir(), ["nothing"], ["nothing", "not a run directory"]),
       ("out-not-empty", lambda t: t.joinpath("onnx").mkdir() or t.joinpath("onnx", "keep.txt").write_text("x"),
        ["run"], ["onnx", "not empty"]),
       ("quantized-run", lambda t: _quantized(t / "run"), ["run"], ["compression.json", "float run", "--int8"]),
       ("opset-too-old", lambda t: None, ["run", "--opset", "13"], ["--opset", "13"])]


@pytest.mark.parametrize(("setup", "argv", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_inputs_are_one_line_exit_2_nothing_written(setup, argv, expected, tmp_path, capsys,
                                                        monkeypatch) -> None:
    save_tiny_run(tmp_path / "run", "gpt")
    setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["export-onnx", argv[0], "onnx", *argv[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert all(s in err for s in expected), err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
