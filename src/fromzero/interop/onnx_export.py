"""Export any run directory's model to ONNX and check it with ONNX Runtime: ``fromzero export-onnx RUN OUT``.

    OUT/model.onnx          the graph (inputs and outputs: see fromzero.interop.onnx_graph), dynamic batch and
                            sequence axes, float32 weights inside
    OUT/model.int8.onnx     with --int8: ONNX Runtime dynamic quantization (int8 weights, per output channel;
                            activations quantized per call)
    OUT/onnx_export.json    family, kind, inputs, outputs, opset, the checks and library versions
    OUT/tokenizer.json      copied from the run (+ labels.txt for a classifier or tagger)

The exporter is ``torch.onnx.export(..., dynamo=False)``, the TorchScript tracer: it handles every family
here in about a second for a tiny model. The torch.export-based exporter (``dynamo=True``, the default since
torch 2.9, needs onnxscript) fails on T5 (its SDPA decomposition reshapes a non-contiguous tensor) and takes
~10x longer. Tracing freezes Python decisions, so the export is checked after the fact: ONNX Runtime's output
at two (batch, sequence) shapes other than the traced one, padded rows included, must be within 1e-4 of
PyTorch's, or nothing is written. (A model whose own float32 rounding moves its outputs by more than that, as
large activations can, passes when ONNX Runtime is within 4x PyTorch's distance from a float64 run; the record
says so.) Dynamic int8 quantization: Jacob et al. 2018 (https://arxiv.org/abs/1712.05877).
"""

from __future__ import annotations

import copy
import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fromzero.atomic import require_new_folder
from fromzero.errors import CheckpointError, ConfigError
from fromzero.interop.onnx_graph import OnnxGraph, example_inputs
from fromzero.interop.onnx_runtime import OnnxModel, ort_versions, require_module
from fromzero.models.registry import family_of
from fromzero.runs import load_run
from fromzero.runs.compression import quantized_step
from fromzero.runs.run import Run
from fromzero.staging import staged_dir

MODEL_FILE, INT8_FILE, RECORD_FILE = "model.onnx", "model.int8.onnx", "onnx_export.json"
DEFAULT_OPSET = 17  # the first with LayerNormalization; ONNX Runtime has run it since 1.14
MIN_OPSET, MAX_OPSET = 17, 20  # 20: the newest the TorchScript exporter writes
TOLERANCE = 1e-4  # max |ONNX Runtime - PyTorch| of the float graph
ROUNDING_FACTOR = 4.0  # past TOLERANCE: ONNX Runtime's float64 error may be this many times PyTorch float32's
TRACE_SHAPE = (2, 16)  # (batch, sequence) of the traced example
CHECK_SHAPES = ((1, 7), (3, 29))  # two others, checked after export; the second has padded rows


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote and measured. ``checks``: float graph vs PyTorch, one dict per shape
    (``inputs``: each input's shape; ``max_abs_diff``); ``int8_checks``: the int8 graph vs PyTorch (also
    ``argmax_agreement`` for logits). Both empty with ``check=False``."""

    out: Path
    model_path: Path
    int8_path: Path | None
    family: str
    kind: str
    inputs: list[str]
    output: str
    opset: int
    checks: list[dict[str, Any]] = field(default_factory=list)
    int8_checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float | None:
        """Largest float-graph difference over the checked shapes (None when not checked)."""
        return max((c["max_abs_diff"] for c in self.checks), default=None)

    @property
    def int8_max_abs_diff(self) -> float | None:
        """Largest int8-graph difference from PyTorch's float output (None without --int8 or checks)."""
        return max((c["max_abs_diff"] for c in self.int8_checks), default=None)


def _load_float_run(run_dir: str | Path) -> Run:
    """The run with its weights, after refusing one whose linear layers are quantized (no float graph)."""
    run = load_run(run_dir, with_weights=False)
    run.require_text("export-onnx")
    step = quantized_step(run.compression)
    if step is not None:
        raise CheckpointError(f"{run.path}: a quantized run ({step.get('mode', 'quantize')} in compression.json) "
                              "has no float graph to export; export the float run it came from, then quantize "
                              "the ONNX model with --int8")
    return load_run(run_dir)


def _check_options(out: Path, opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"--opset: must be in [{MIN_OPSET}, {MAX_OPSET}], got {opset}")
    require_new_folder(out, "choose a new OUT folder or delete this one")


def _shape(graph: OnnxGraph, batch: int, seq: int) -> tuple[int, int]:
    """(batch, seq), the sequence shortened to what the model's learned positions cover."""
    return batch, min(seq, graph.max_len or seq)


def _export_graph(graph: OnnxGraph, path: Path, opset: int) -> None:
    example = example_inputs(graph, *_shape(graph, *TRACE_SHAPE))
    sig = graph.signature
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter's deprecation notice and tracer warnings about Python-side size checks
        # (e.g. "sequence exceeds block_size"): the checks below are what says the graph generalises
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, tuple(example.values()), str(path), input_names=list(sig.inputs),
                          output_names=[sig.output], dynamic_axes=sig.dynamic_axes(), opset_version=opset,
                          do_constant_folding=True, dynamo=False)
    graph.eval()
    require_module("onnx").checker.check_model(str(path))


def _compare(graph: OnnxGraph, session: OnnxModel, batch: int, seq: int, seed: int,
             tolerance: float | None) -> dict[str, Any]:
    """Run both on one random padded batch: each input's shape, max |ORT - PyTorch|, argmax agreement; past
    ``tolerance``, also both one's distance from a float64 run of the same model (see :func:`_float64_errors`)."""
    inputs = example_inputs(graph, batch, seq, seed)
    with torch.no_grad():
        expected = graph(*inputs.values()).float()
    got = session(**inputs)
    result: dict[str, Any] = {"inputs": {k: list(v.shape) for k, v in inputs.items()},
                              "max_abs_diff": float((got - expected).abs().max())}
    if graph.signature.output == "logits":
        result["argmax_agreement"] = float((got.argmax(-1) == expected.argmax(-1)).float().mean())
    if tolerance is not None and not result["max_abs_diff"] <= tolerance:
        result.update(_float64_errors(graph, inputs, got, expected))
    return result


@torch.no_grad()
def _float64_errors(graph: OnnxGraph, inputs: dict[str, torch.Tensor], got: torch.Tensor,
                    expected: torch.Tensor) -> dict[str, float]:
    """How far PyTorch's float32 output and ONNX Runtime's are from the model run in float64. A model whose
    float32 rounding alone moves outputs by more than the tolerance (large activations) is not an export bug
    when ONNX Runtime is no further off than PyTorch itself."""
    exact = copy.deepcopy(graph).double()(*inputs.values())
    f32 = torch.finfo(torch.float32)
    exact = exact.clamp(f32.min, f32.max)  # SpanQA's masked positions: the float32 lowest value on both sides
    return {"pytorch_float32_vs_float64": float((expected.double() - exact).abs().max()),
            "onnxruntime_vs_float64": float((got.double() - exact).abs().max())}


def _within(check: dict[str, Any], tolerance: float) -> bool:
    """Within ``tolerance`` of PyTorch, or (float32 rounding) within ROUNDING_FACTOR x PyTorch's own float32
    error of the float64 output."""
    if check["max_abs_diff"] <= tolerance:
        return True
    return "onnxruntime_vs_float64" in check and \
        check["onnxruntime_vs_float64"] <= ROUNDING_FACTOR * check["pytorch_float32_vs_float64"]


def _check(graph: OnnxGraph, path: Path, tolerance: float | None) -> list[dict[str, Any]]:
    """Compare ``path`` with PyTorch at CHECK_SHAPES; past ``tolerance`` (when given) is an export bug."""
    session = OnnxModel(path)
    checks = [_compare(graph, session, *_shape(graph, b, t), seed=i + 1, tolerance=tolerance)
              for i, (b, t) in enumerate(CHECK_SHAPES)]
    for c in checks:
        if tolerance is not None and not _within(c, tolerance):
            raise RuntimeError(f"ONNX Runtime's {graph.signature.output} differ from PyTorch's by "
                               f"{c['max_abs_diff']:.3g} > {tolerance} at inputs {c['inputs']}; the export is wrong "
                               "(nothing was written): please report it")
    return checks


def _quantize(model_path: Path, int8_path: Path) -> None:
    """ONNX Runtime dynamic quantization, after its recommended pre-processing (shape inference, graph
    optimisation): int8 weights of every MatMul and Gather, one scale per output channel, 7-bit range
    (``reduce_range``). On CPUs without VNNI, ONNX Runtime's u8 x s8 kernels can saturate their 16-bit sums;
    per-channel scales at the full 8-bit range then lose most accuracy (tiny GPT, BERT, T5: max |logit error|
    1.15 / 0.45 / 1.10; per-tensor 0.16 / 0.17 / 0.29), per-channel at 7 bits the least (0.16 / 0.05 / 0.19).
    VNNI CPUs lose little from the dropped bit."""
    require_module("onnxruntime.quantization")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = int8_path.with_name(f".{int8_path.stem}.pre.onnx")
    try:
        quant_pre_process(str(model_path), str(prepared))
        quantize_dynamic(str(prepared), str(int8_path), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True)
    finally:
        prepared.unlink(missing_ok=True)


def _record(run: Run, graph: OnnxGraph, opset: int, result: OnnxExport, out: Path) -> dict[str, Any]:
    sig = graph.signature
    dims = {n: ["batch", sig.dynamic_axes()[n][1]] for n in sig.inputs}
    record = {"format": 1, "source": str(run.path.resolve()), "family": graph.family, "kind": graph.kind,
              "exporter": "torch.onnx.export (TorchScript tracer, dynamo=False)", "opset": opset,
              "inputs": [{"name": n, "dtype": "int64", "shape": dims[n]} for n in sig.inputs],
              "outputs": [{"name": sig.output, "dtype": "float32", "shape": list(sig.output_axes)}],
              "max_sequence": graph.max_len, "vocab_size": graph.vocab_size, "tolerance": TOLERANCE,
              "checks": result.checks, "files": {"model": MODEL_FILE, "tokenizer": "tokenizer.json"},
              "bytes": {MODEL_FILE: (out / MODEL_FILE).stat().st_size}, "versions": ort_versions()}
    if graph.head:
        record.update(problem=run.problem, labels=list(run.vocab.labels) if run.vocab else None)
    if (out / "labels.txt").is_file():
        record["files"]["labels"] = "labels.txt"
    if result.int8_path is not None:
        record["files"]["int8"] = INT8_FILE
        record["bytes"][INT8_FILE] = (out / INT8_FILE).stat().st_size
        record["int8"] = {"method": "onnxruntime.quantization: quant_pre_process, quantize_dynamic",
                          "weight_type": "QInt8", "per_channel": True, "reduce_range": True,
                          "checks": result.int8_checks}
    return record


def export_onnx(run_dir: str | Path, out: str | Path, *, int8: bool = False, opset: int | None = None,
                check: bool = True) -> OnnxExport:
    """Export ``run_dir``'s model to ``out``/model.onnx (+ model.int8.onnx with ``int8``) and, with ``check``,
    verify it with ONNX Runtime (float: within 1e-4 of PyTorch). ``out`` must be new or empty; every input is
    checked before anything is written, and a failed export leaves nothing at ``out``."""
    out, opset = Path(out), DEFAULT_OPSET if opset is None else int(opset)
    _check_options(out, opset)
    for name in ("onnx", "onnxruntime", *(("onnxruntime.quantization",) if int8 else ())):
        require_module(name)
    run = _load_float_run(run_dir)
    graph = OnnxGraph(run.model, family_of(run.model_config).name, run.kind)
    sig = graph.signature
    with staged_dir(out) as tmp:
        _export_graph(graph, tmp / MODEL_FILE, opset)
        result = OnnxExport(out, out / MODEL_FILE, out / INT8_FILE if int8 else None, graph.family, graph.kind,
                            list(sig.inputs), sig.output, opset)
        if check:
            result.checks = _check(graph, tmp / MODEL_FILE, TOLERANCE)
        if int8:
            _quantize(tmp / MODEL_FILE, tmp / INT8_FILE)
            result.int8_checks = _check(graph, tmp / INT8_FILE, None) if check else []
        for name in ("tokenizer.json", "labels.txt"):
            if (run.path / name).is_file():
                shutil.copyfile(run.path / name, tmp / name)
        record = _record(run, graph, opset, result, tmp)
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return result
