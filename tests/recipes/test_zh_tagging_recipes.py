"""recipes/finetune_zh_seg.yaml and finetune_zh_pos.yaml fine-tune in seconds on a tiny prepared slice with
a tiny Chinese BERT, and the `f1` they report is the word-level (SIGHAN) F1 of their predictions."""

from __future__ import annotations

from pathlib import Path

import pytest

from fromzero.data.datasets.zh_segmentation import prepare_pos, prepare_segmentation
from fromzero.data.word_tags import decode_words
from fromzero.eval.task_metrics import score_outputs
from fromzero.eval.task_outputs import TaskOutputs
from fromzero.finetune.runner import finetune
from fromzero.train.loggers import read_metrics
from toy_data import write_zh_word_sources

RECIPES = Path(__file__).parents[2] / "recipes"


@pytest.fixture(scope="module")
def zh_slice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Path]]]:
    """A tiny BERT pretrained on the toy Chinese paragraphs (one WordPiece token per hanzi), and the
    paragraphs prepared as both tasks."""
    from fromzero.pretrain.runner import pretrain

    folder = tmp_path_factory.mktemp("zh")
    seg, tag = write_zh_word_sources(folder, n=60)
    corpus = folder / "corpus.txt"
    corpus.write_text(seg.read_text(encoding="utf-8").replace(" ", "").replace("/b", "").replace("/m", "")
                      .replace("/e", "").replace("/s", ""), encoding="utf-8")
    base = folder / "bert"
    pretrain(None, ["--model.name=bert-tiny", "--model.n_embd=32", "--model.n_head=2", "--model.max_positions=64",
                    "--model.dropout=0.0", "--objective.name=masked_lm", "--objective.nsp=false",
                    "--data.tokenizer.kind=wordpiece", "--data.tokenizer.vocab_size=200", f"--data.inputs=[{corpus}]",
                    "--train.max_steps=2", "--train.batch_size=4", "--train.seq_len=32", "--train.threads=1",
                    "--train.eval_every=0", "--train.eval_batches=1", "--train.log_every=1", "--sample.prompts=[]"],
             out=base, progress=False)
    data = {"seg": prepare_segmentation(folder / "seg", path=seg, n_validation=6, n_test=6),
            "pos": prepare_pos(folder / "pos", path=tag, n_validation=6, n_test=6)}
    return base, data


def _naive_word_f1(outputs: TaskOutputs) -> float:
    """Words decoded from the gold and predicted tags, counted as (sentence, start, end, type) spans."""
    def spans(tag_lists: list[list[str]]) -> set[tuple]:
        out = set()
        for i, tags in enumerate(tag_lists):
            pos = 0
            for word, kind in decode_words(["x"] * len(tags), tags):
                if kind != "O":
                    out.add((i, pos, pos + len(word), kind))
                pos += len(word)
        return out

    gold, pred = spans(outputs.y_true), spans(outputs.y_pred)
    return 2 * len(gold & pred) / (len(gold) + len(pred))


@pytest.mark.parametrize("name", ["seg", "pos"])
def test_recipe_fine_tunes_a_tiny_slice(name: str, zh_slice, tmp_path: Path) -> None:
    base, data = zh_slice
    seen: list[TaskOutputs] = []

    def scorer(outputs: TaskOutputs) -> dict[str, float]:
        seen.append(outputs)
        return score_outputs(outputs)

    overrides = [f"--base={base}", *(f"--task.{s}={p}" for s, p in data[name].items()), "--task.max_len=32",
                 "--train.max_steps=30", "--train.batch_size=8", "--train.log_every=5", "--train.eval_every=15",
                 "--optim.warmup_steps=2", "--optim.lr=3e-3"]
    result = finetune(RECIPES / f"finetune_zh_{name}.yaml", overrides, scorer=scorer, out=tmp_path / "run",
                      progress=False)
    losses = [r["loss"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0] * 0.7, losses
    assert result.info["num_labels"] == (4 if name == "seg" else 10)  # B/M/E/S; B- x 7 + I-n, I-v, I-t
    for outputs in seen:  # seqeval's span F1, reported as `f1`, is the word F1 of the decoded predictions
        assert score_outputs(outputs)["f1"] == pytest.approx(_naive_word_f1(outputs))
    assert len(seen) >= 2 and score_outputs(seen[-1])["f1"] > 0.5  # it learned (30 steps: ~0.9)
