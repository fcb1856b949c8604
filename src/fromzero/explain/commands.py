"""What ``fromzero explain`` and ``fromzero attack`` do with a run directory, start to end.

Every input is checked before anything is written (the run's kind, the methods, the target, the input
texts), so a bad command line leaves no output folder behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.errors import ConfigError, DataError
from fromzero.explain.attributions import METHODS
from fromzero.explain.classifier import load_classifier
from fromzero.explain.embedding_attack import accuracy_under_attack, embedding_rms
from fromzero.explain.global_explain import explain_split
from fromzero.explain.image_runs import (
    grad_cam,
    pixel_accuracy_under_attack,
    require_image_classifier,
)
from fromzero.explain.local import ATTENTION, explain_texts
from fromzero.explain.plots import attack_curve_png, gradcam_png
from fromzero.explain.splits import image_split, text_split
from fromzero.explain.textfooler import Neighbours, accuracy_by_budget, attack_example
from fromzero.progress import progress
from fromzero.runs import load_run

TEXT_METHODS = (*METHODS, ATTENTION)
ATTACKS = ("fgsm", "pgd", "textfooler-lite")


def read_inputs(value: str) -> list[str]:
    """``--input``: a file (one text per non-empty line) when such a file exists, else the text itself."""
    path = Path(value)
    if path.is_file():
        try:
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text (byte {err.start}); give one text per line") from None
        texts = [line for line in lines if line]
        if not texts:
            raise DataError(f"{path}: empty; give one text per line (or the text itself as --input)")
        return texts
    if not value.strip():
        raise DataError("--input: empty text; give a text or a file with one text per line")
    return [value]


def _methods(method: str, image: bool) -> list[str]:
    if image:
        if method not in ("gradcam", "all"):
            raise ConfigError(f"--method {method}: an image run is explained with gradcam (or all)")
        return ["gradcam"]
    if method == "gradcam":
        raise ConfigError("--method gradcam: Grad-CAM is for image runs; use ig, grad-x-input, occlusion or "
                          "attention on a text run")
    return list(TEXT_METHODS) if method == "all" else [method]


def explain_run(run_dir: str | Path, *, inputs: str | None = None, dataset: str | None = None,
                method: str = "all", target: str | None = None, out: str | Path | None = None, steps: int = 50,
                limit: int | None = None, show: bool = True) -> dict[str, Any]:
    """``fromzero explain``: local explanations of ``inputs``, or per-class ones over split ``dataset``."""
    if (inputs is None) == (dataset is None):
        raise ConfigError("explain: give exactly one of --input TEXT|FILE and --dataset SPLIT")
    run = load_run(run_dir)
    folder = Path(out) if out is not None else run.path / "explain"
    if run.is_image_run:
        require_image_classifier(run, "explain")
        _methods(method, image=True)
        if inputs is None:
            raise ConfigError("--dataset: global explanations are for text runs; give image files with --input")
        return {**_explain_images(run, inputs, target, folder), "out": str(folder)}
    clf = load_classifier(run.path, "explain", run=run)
    methods = _methods(method, image=False)
    goal = clf.target_index(target)
    if dataset is not None:
        chosen = [m for m in methods if m in METHODS]
        if not chosen:
            raise ConfigError("--dataset: attention maps are per input; use --method ig, grad-x-input or occlusion")
        features = text_split(clf, dataset, limit)
        # one method per global report: the first asked for (all: grad-x-input, the cheapest faithful one)
        pick = "grad-x-input" if method == "all" else chosen[0]
        return {**explain_split(clf, features, dataset, pick, folder, steps=steps, show=show), "out": str(folder)}
    return {**explain_texts(clf, read_inputs(inputs), methods, folder, goal, steps, show), "out": str(folder)}


def _explain_images(run: Any, inputs: str, target: str | None, folder: Path) -> dict[str, Any]:
    import torch

    from fromzero.vision.predict import read_for_run

    names = list(run.vision["class_names"])
    files = [line.strip() for line in Path(inputs).read_text(encoding="utf-8").splitlines() if line.strip()] \
        if Path(inputs).suffix == ".txt" else [inputs]
    images = torch.stack([read_for_run(run, f) for f in files])
    goal = None
    if target is not None:
        if target not in names:
            raise ConfigError(f"--target: {target!r} is not a class of {run.path}; choose one of {', '.join(names)}")
        goal = torch.full((len(files),), names.index(target))
    cam, classes = grad_cam(run, images, goal)
    records = []
    for i, f in enumerate(files):
        png = gradcam_png(folder / f"gradcam_{i}.png", images[i].permute(1, 2, 0).numpy(), cam[i].numpy(),
                          f"{Path(f).name}: {names[int(classes[i])]}")
        records.append({"image": f, "target": names[int(classes[i])], "png": png.name})
    report = {"run": str(run.path), "method": "gradcam", "inputs": records}
    write_text(folder / "gradcam.json", json.dumps(report, indent=2) + "\n")
    return report


def attack_run(run_dir: str | Path, method: str, eps: Sequence[float], *, steps: int = 10, split: str = "test",
               out: str | Path | None = None, limit: int | None = None, neighbours: int = 8,
               show: bool = True) -> dict[str, Any]:
    """``fromzero attack``: accuracy of ``split`` under ``method`` at each eps; writes attack.json and the curve."""
    if method not in ATTACKS:
        raise ConfigError(f"--method {method}: choose one of {', '.join(ATTACKS)}")
    if any(e < 0 for e in eps):
        raise ConfigError(f"--eps: must be >= 0, got {min(eps)}")
    run = load_run(run_dir)
    folder = Path(out) if out is not None else run.path
    if run.is_image_run:
        require_image_classifier(run, "attack")
        if method == "textfooler-lite":
            raise ConfigError("--method textfooler-lite: a word-substitution attack is for text runs; use fgsm or pgd")
        images, labels = image_split(run, split, limit)
        acc = pixel_accuracy_under_attack(run, images, labels, method, eps, steps, show=show)
        extra: dict[str, Any] = {"space": "pixels in [0, 1]", "examples": len(images)}
        unit = "pixel"
    else:
        clf = load_classifier(run.path, "attack", run=run)
        if clf.problem != "single_label":
            raise ConfigError(f"{run.path}: a {clf.problem} classifier; `fromzero attack` scores single-label "
                              "accuracy")
        features = text_split(clf, split, limit)
        if method == "textfooler-lite":
            acc, extra, unit = _textfooler(clf, features, eps, neighbours, show)
        else:
            acc = accuracy_under_attack(clf, features, method, eps, steps, show=show)
            extra, unit = {"space": "token embeddings", "embedding_rms": embedding_rms(clf)}, "embedding"
        extra["examples"] = len(features)
    report = {"run": str(run.path), "method": method, "split": split, "steps": steps if method == "pgd" else None,
              "eps": list(eps), "accuracy": acc, **extra}
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "attack.json", json.dumps(report, indent=2) + "\n")
    attack_curve_png(folder / "plots" / f"attack_{method}.png", eps, acc, method, unit)
    return {**report, "out": str(folder)}


def _textfooler(clf: Any, features: list[dict], eps: Sequence[float], k: int, show: bool
                ) -> tuple[list[float], dict[str, Any], str]:
    if any(e > 1 for e in eps):
        raise ConfigError(f"--eps: textfooler-lite's eps is the fraction of tokens substituted, in [0, 1]; got "
                          f"{max(eps)}")
    near = Neighbours(clf, k)
    results = [attack_example(clf, f, near, max(eps)) for f in progress(features, desc="textfooler-lite",
                                                                          unit="example", enabled=show)]
    examples = [{"original": clf.run.tokenizer.decode(f["input_ids"], skip_special_tokens=True),
                 "adversarial": clf.run.tokenizer.decode(r.ids, skip_special_tokens=True),
                 "substitutions": r.flipped_after}
                for f, r in zip(features, results, strict=True) if r.flipped_after][:10]
    extra = {"space": "token substitutions (eps: fraction of editable tokens)", "neighbours": k,
             "adversarial_examples": examples}
    return accuracy_by_budget(results, list(eps)), extra, "fraction of tokens"
