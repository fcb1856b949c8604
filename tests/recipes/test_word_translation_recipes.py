"""recipes/t5_pinyin_init.yaml + finetune_zh_pinyin.yaml and t5_cedict_init.yaml + finetune_cedict_zh_en.yaml
run end to end in seconds on a ~200-pair slice prepared from tiny fake package files (a tiny T5 base made by
the init recipe itself), the loss falls, and the reported exact_match equals a hand count over the saved
test decodings (BLEU / chrF against sacrebleu are tests/finetune/test_seq2seq_finetune.py's business)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.data.datasets.cedict import prepare_cedict_zh_en
from fromzero.data.datasets.zh_pinyin import prepare_zh_pinyin
from fromzero.eval.task_metrics import exact_match, score_outputs
from fromzero.eval.task_outputs import TaskOutputs
from fromzero.pretrain.runner import pretrain
from fromzero.train.loggers import read_metrics

RECIPES = Path(__file__).parents[2] / "recipes"
SYLLABLES = {"中": "zhong", "国": "guo", "人": "ren", "大": "da", "小": "xiao", "山": "shan", "水": "shui"}
WORDS = ["".join(p) for p in itertools.product(SYLLABLES, repeat=3)][:240]  # 200 train + 20 + 20 held out
TINY_T5 = ["--model.d_model=64", "--model.n_head=2", "--model.d_kv=32", "--model.d_ff=128", "--model.n_layer=2",
           "--model.dropout=0.0"]


def _prepare(name: str, folder: Path) -> dict[str, Path]:
    pinyin = {w: " ".join(SYLLABLES[c] for c in w) for w in WORDS}
    if name == "pinyin":
        src = folder / "pinyin.txt"
        src.write_text("".join(f"{w} {p}\n" for w, p in pinyin.items()), encoding="utf-8")
        return prepare_zh_pinyin(folder / "data", path=src, n_validation=20, n_test=20)
    src = folder / "cedict.txt"  # the "English" gloss of a word: its syllables, capitalised
    src.write_text("".join(f"{w} {w} [x] /{p.title()} (note)/\n" for w, p in pinyin.items()), encoding="utf-8")
    return prepare_cedict_zh_en(folder / "data", path=src, n_validation=20, n_test=20)


@pytest.mark.parametrize(("name", "init", "recipe", "tokenizer"), [
    ("pinyin", "t5_pinyin_init", "finetune_zh_pinyin", []),
    ("cedict", "t5_cedict_init", "finetune_cedict_zh_en", ["--data.tokenizer.vocab_size=60"]),
])
def test_init_and_finetune_recipes_run_on_a_slice(name: str, init: str, recipe: str, tokenizer: list[str],
                                                  tmp_path: Path) -> None:
    data = _prepare(name, tmp_path)
    corpora = [tmp_path / "data" / "corpus_src.jsonl", tmp_path / "data" / "corpus_tgt.jsonl"]
    base = tmp_path / "base"
    pretrain(RECIPES / f"{init}.yaml", [*TINY_T5, *tokenizer, f"--data.inputs=[{corpora[0]},{corpora[1]}]",
                                         "--train.seq_len=32"], out=base, progress=False)
    overrides = [f"--base={base}", *(f"--task.{s}={p}" for s, p in data.items()), "--train.max_steps=200",
                 "--train.batch_size=16", "--train.log_every=5", "--train.eval_every=100", "--train.eval_batches=2",
                 "--task.eval_examples=8", "--optim.warmup_steps=5", "--optim.lr=3e-3"]
    assert main(["finetune", str(RECIPES / f"{recipe}.yaml"), *overrides, "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0  # the CLI also decodes the test split into eval.json + samples_test.tsv
    losses = [r["loss"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0] * 0.7, losses
    rows = [line.split("\t") for line in (tmp_path / "run" / "samples_test.tsv").read_text(encoding="utf-8")
            .splitlines()[1:]]
    hits = sum(1 for r in rows if len(r) > 2 and " ".join(r[2].split()) == r[1])  # by hand: whole strings equal
    test = json.loads((tmp_path / "run" / "eval.json").read_text())["test"]
    assert len(rows) == 20 and test["metrics"]["exact_match"] == pytest.approx(hits / 20)
    assert set(test["metrics"]) == {"bleu", "chrf", "exact_match"}


def test_exact_match_by_hand() -> None:
    hyps = ["zhong guo", "zhong  guo ", "Zhong guo", "zhongguo", ""]
    refs = ["zhong guo"] * 5
    assert exact_match(hyps, refs) == 2 / 5  # whitespace runs and ends only: case and spacing inside words count
    assert exact_match([], []) == 0.0
    outputs = TaskOutputs(kind="seq2seq", problem="single_label", y_true=refs, y_pred=hyps, sources=["中国"] * 5)
    assert score_outputs(outputs)["exact_match"] == 2 / 5  # what fine-tuning reports for seq2seq
