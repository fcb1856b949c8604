"""Sequence-to-sequence fine-tuning (task.kind: seq2seq) on a tiny T5: feature layout against a hand-built
example, the loss against a naive per-token cross-entropy, every method end to end through the CLI on a toy
word-reversal task, BLEU/chrF equal to sacrebleu on independently decoded outputs, the run directory loads
back as a plain T5 and `fromzero generate` translates with it, and bad inputs fail naming file:line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import sacrebleu
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file

from fromzero.cli import main
from fromzero.data.seq2seq_data import IGNORE_INDEX, collate_seq2seq, encode_seq2seq
from fromzero.data.task_data import TextPair
from fromzero.data.truncation import TruncationStats
from fromzero.errors import DataError
from fromzero.finetune.evaluate import load_finetuned
from fromzero.generation import SamplingConfig, seq2seq_text
from fromzero.generation.seq2seq_beam import beam_search_seq2seq
from fromzero.models import build_model, model_config
from fromzero.models.t5 import T5, T5Config, shift_right
from fromzero.objectives.seq2seq import Seq2SeqLM
from fromzero.runs import load_weights
from translation_runs import tiny_t5_base

WORDS = ["red", "blue", "green", "cat", "dog", "fish", "big", "small"]


class CharTokenizer:
    """A fake tokenizer: letter i of the alphabet -> id 3 + i; eos 1, pad 0."""

    eos_id, pad_id = 1, 0

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [[3 + ord(c) - ord("a") for c in t] for t in texts]


def test_features_shift_right_and_mask_padding_by_hand() -> None:
    pairs = [TextPair("ab", "abc", "f:1"), TextPair("b", "a", "f:2")]
    feats = encode_seq2seq(pairs, CharTokenizer(), max_len=8, max_target_len=8, decoder_start_id=0)
    # a=3, b=4, c=5, eos=1, start=pad=0
    assert feats[0] == {"input_ids": [3, 4, 1], "labels": [3, 4, 5, 1], "decoder_input_ids": [0, 3, 4, 5]}
    assert feats[1] == {"input_ids": [4, 1], "labels": [3, 1], "decoder_input_ids": [0, 3]}
    batch = collate_seq2seq(feats, pad_id=0)
    assert batch["input_ids"].tolist() == [[3, 4, 1], [4, 1, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[3, 4, 5, 1], [3, 1, -100, -100]]
    assert batch["decoder_input_ids"].tolist() == [[0, 3, 4, 5], [0, 3, 0, 0]]
    # the model family's own shift-right (Hugging Face's) gives the same decoder inputs wherever a label is
    # scored; it feeds eos into padded positions where we feed pad, which no scored position can see (causal)
    scored = batch["labels"] != IGNORE_INDEX
    assert torch.equal(shift_right(batch["labels"], 0, 0)[scored], batch["decoder_input_ids"][scored])


def test_truncation_counts_and_error_names_the_line() -> None:
    pairs = [TextPair("abcdef", "abc", "f.tsv:1"), TextPair("ab", "abcdefg", "f.tsv:2"), TextPair("a", "b", "f.tsv:3")]
    stats = TruncationStats()
    feats = encode_seq2seq(pairs, CharTokenizer(), max_len=4, max_target_len=5, decoder_start_id=0, stats=stats)
    assert feats[0]["input_ids"] == [3, 4, 5, 1] and feats[1]["labels"] == [3, 4, 5, 6, 1]
    assert (stats.seen, stats.truncated, stats.tokens_dropped) == (3, 2, 3 + 3)
    with pytest.raises(DataError, match=r"f\.tsv:1: the source has 6 tokens"):
        encode_seq2seq(pairs, CharTokenizer(), max_len=4, max_target_len=5, decoder_start_id=0, policy="error")


def test_loss_equals_naive_per_token_cross_entropy() -> None:
    torch.manual_seed(0)
    model = T5(T5Config(vocab_size=30, n_layer=2, n_head=2, d_model=16, d_kv=8, d_ff=32, dropout=0.0)).eval()
    pairs = [TextPair("abcde", "ab", ""), TextPair("b", "abcdefg", ""), TextPair("cc", "dd", "")]
    feats = encode_seq2seq(pairs, CharTokenizer(), max_len=16, max_target_len=16, decoder_start_id=0)
    out = Seq2SeqLM()(model, collate_seq2seq(feats, pad_id=0))
    total, n = 0.0, 0
    with torch.no_grad():
        for f in feats:  # each example alone, unpadded: -log p(y_t | y_<t, x), summed over every target token
            logits = model(torch.tensor([f["input_ids"]]), decoder_input_ids=torch.tensor([f["decoder_input_ids"]]))
            logp = F.log_softmax(logits[0].double(), dim=-1)
            for t, y in enumerate(f["labels"]):
                total -= float(logp[t, y])
                n += 1
    assert out.weight == n == 3 + 8 + 3
    assert float(out.loss.detach()) == pytest.approx(total / n, abs=1e-5)


def test_label_smoothing_equals_the_mixture_target_by_hand() -> None:
    torch.manual_seed(1)
    model = T5(T5Config(vocab_size=12, n_layer=1, n_head=2, d_model=16, d_kv=8, d_ff=32, dropout=0.0)).eval()
    pairs = [TextPair("abc", "ab", ""), TextPair("b", "abcd", "")]
    feats = encode_seq2seq(pairs, CharTokenizer(), max_len=8, max_target_len=8, decoder_start_id=0)
    eps, plain = 0.1, Seq2SeqLM()(model, collate_seq2seq(feats, pad_id=0))
    out = Seq2SeqLM(label_smoothing=eps)(model, collate_seq2seq(feats, pad_id=0))
    total, n = 0.0, 0
    with torch.no_grad():
        for f in feats:  # target (1 - eps) one-hot + eps / V: loss (1 - eps) (-log p_y) + eps mean_v (-log p_v)
            logp = F.log_softmax(model(torch.tensor([f["input_ids"]]),
                                       decoder_input_ids=torch.tensor([f["decoder_input_ids"]]))[0].double(), -1)
            for t, y in enumerate(f["labels"]):
                total += (1 - eps) * -float(logp[t, y]) + eps * -float(logp[t].mean())
                n += 1
    assert float(out.loss.detach()) == pytest.approx(total / n, abs=1e-5)
    assert float(out.metrics["nll"]) == pytest.approx(float(plain.loss.detach()), abs=1e-6)
    assert float(out.loss.detach()) != pytest.approx(float(plain.loss.detach()), abs=1e-3)


# ------------------------------------------------------------------------------------- end to end (CLI)


def _reversal_tsv(path: Path, n: int, seed: int, bad_line: int | None = None) -> Path:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = rng.sample(WORDS, 3)
        lines.append(" ".join(words) if i + 1 == bad_line else f"{' '.join(words)}\t{' '.join(reversed(words))}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny T5 pretrained for 4 span-corruption steps on the toy words (BPE, so words are few tokens)."""
    return tiny_t5_base(tmp_path_factory.mktemp("t5base"), WORDS, vocab_size=300)


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pairs")
    return {s: _reversal_tsv(folder / f"{s}.tsv", n, k) for s, n, k in
            (("train", 24, 0), ("validation", 8, 1), ("test", 8, 2))}


METHODS = {
    "full": {"name": "full"},
    "partial": {"name": "partial", "freeze": {"frozen": ["encoder.*"]}},
    "lora": {"name": "lora", "lora": {"rank": 4, "alpha": 8,
                                      "targets": ["*attn.qkv", "*attn.proj", "*cross_attn.q", "*cross_attn.kv"]}},
}


def _recipe(tmp: Path, base: Path, files: dict[str, Path], method: str, steps: int = 30, **extra) -> Path:
    recipe = {"seed": 0, "base": str(base),
              "task": {"kind": "seq2seq", "max_len": 16, "max_target_len": 12, "eval_examples": 4,
                       **{s: str(p) for s, p in files.items()}},
              "method": METHODS[method], "select_metric": "chrf",
              "train": {"max_steps": steps, "batch_size": 8, "threads": 1, "log_every": 5, "eval_every": 15},
              "optim": {"lr": 1e-2 if method == "lora" else 3e-3, "warmup_steps": 0}, **extra}
    path = tmp / f"seq2seq_{method}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def _train_losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r and "val_loss" not in r]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_finetune_seq2seq_every_method(method: str, t5_run: Path, pair_files, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["finetune", str(_recipe(tmp_path, t5_run, pair_files, method)), "--out", str(out),
                 "--no-progress"]) == 0
    losses = _train_losses(out)
    assert losses[-1] < losses[0]  # it learns
    saved = json.loads((out / "eval.json").read_text())
    test = saved["test"]
    assert test["examples"] == 8 and set(test["metrics"]) == {"bleu", "chrf", "exact_match"}

    # decoded outputs saved with their sources and references, and BLEU/chrF are sacrebleu's on them
    rows = [line.split("\t") for line in (out / "samples_test.tsv").read_text().splitlines()]
    assert rows[0] == ["source", "reference", "hypothesis"] and len(rows) == 9
    sources, refs, hyps = zip(*[(r[0], r[1], r[2] if len(r) > 2 else "") for r in rows[1:]], strict=True)
    assert list(refs) == [line.split("\t")[1] for line in pair_files["test"].read_text().splitlines()]
    assert test["metrics"]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score)
    assert test["metrics"]["chrf"] == pytest.approx(sacrebleu.corpus_chrf(list(hyps), [list(refs)]).score)
    assert test["metrics"]["exact_match"] == sum(h == r for h, r in zip(hyps, refs, strict=True)) / 8

    # the run loads back and decodes identically, one input at a time through the plain seq2seq path
    run = load_finetuned(out)
    assert isinstance(run.model, T5)
    greedy = SamplingConfig(max_new_tokens=12, greedy=True)
    again = [seq2seq_text(run.model, run.tokenizer, [s], greedy)[0].strip() for s in sources]
    assert again == list(hyps)
    # `fromzero eval` from the run directory alone reproduces the test entry
    (out / "eval.json").unlink()
    assert main(["eval", str(out)]) == 0
    assert json.loads((out / "eval.json").read_text())["test"] == test
    capsys.readouterr()
    # `fromzero generate` works on the fine-tuned run: the weights are a plain T5's
    assert main(["generate", str(out), "--prompt", sources[0], "--greedy", "--max-tokens", "12"]) == 0
    assert capsys.readouterr().out.strip() == f"{sources[0]} -> {hyps[0]}".strip()

    base = load_file(str(t5_run / "model.safetensors"))
    tuned = load_file(str(out / "model.safetensors"))
    assert set(tuned) == set(base)  # T5's own parameter names, no head
    info = json.loads((out / "finetune.json").read_text())
    plain = build_model(model_config(info["family"], info["model"]))
    load_weights(plain, out / "model.safetensors", "finetune.json")  # strict: loads into a bare T5
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    if method == "full":
        assert changed
    elif method == "partial":
        assert changed and not any(k.startswith("encoder.") for k in changed)
    else:
        adapters = load_file(str(out / "adapter.safetensors"))
        assert adapters and all(k.endswith(("lora_a", "lora_b")) for k in adapters)
        lora_params = sum(v.numel() for v in adapters.values())
        assert info["trainable_parameters"] == lora_params  # only adapters train
        assert changed and all(k.endswith(("attn.qkv.weight", "attn.proj.weight", "cross_attn.q.weight",
                                           "cross_attn.kv.weight")) for k in changed)


def test_beam_decoding_of_the_test_split_equals_beam_search_on_the_saved_model(t5_run: Path, pair_files,
                                                                             tmp_path: Path) -> None:
    out = tmp_path / "beam"
    recipe = _recipe(tmp_path, t5_run, pair_files, "full", steps=10)
    assert main(["finetune", str(recipe), "--task.beam_size=3", "--task.length_penalty=1.0",
                 "--task.label_smoothing=0.1", "--out", str(out), "--no-progress"]) == 0
    rows = [line.split("\t") for line in (out / "samples_test.tsv").read_text().splitlines()[1:]]
    run = load_finetuned(out)
    tok = run.tokenizer
    ids = [[*tok.encode(r[0]), tok.eos_id] for r in rows]
    best = beam_search_seq2seq(run.model, ids, beam_size=3, max_new_tokens=12, eos_id=tok.eos_id, pad_id=tok.pad_id,
                               decoder_start_id=run.model.config.decoder_start_id, alpha=1.0)
    assert [tok.decode(b, skip_special_tokens=True).strip() for b in best] == [r[2] if len(r) > 2 else "" for r in rows]


def test_bad_tsv_line_names_file_and_line(t5_run: Path, pair_files, tmp_path: Path, capsys) -> None:
    bad = _reversal_tsv(tmp_path / "bad.tsv", 6, 3, bad_line=4)
    files = {**pair_files, "train": bad}
    code = main(["finetune", str(_recipe(tmp_path, t5_run, files, "full", steps=2)), "--out", str(tmp_path / "r"),
                 "--no-progress"])
    assert code == 2
    assert f"{bad}:4: expected 'source<TAB>target'" in capsys.readouterr().err


@pytest.mark.parametrize(("override", "message"), [
    ("--select_metric=f1", "select_metric: 'f1' is not one of bleu, chrf, loss"),
    ("--task.eval_examples=-1", "task.eval_examples: must be >= 0"),
    ("--task.beam_size=0", "task.beam_size: must be >= 1"),
    ("--task.label_smoothing=1.5", "task.label_smoothing: must be in [0, 1)"),
])
def test_recipe_errors_name_the_key(override: str, message: str, t5_run: Path, pair_files, tmp_path: Path,
                                    capsys) -> None:
    code = main(["finetune", str(_recipe(tmp_path, t5_run, pair_files, "full", steps=2)), override,
                 "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 2 and message in capsys.readouterr().err


def test_seq2seq_needs_an_encoder_decoder_base(tiny_run: Path, pair_files, tmp_path: Path, capsys) -> None:
    code = main(["finetune", str(_recipe(tmp_path, tiny_run, pair_files, "full", steps=2)),
                 "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 2 and "task.kind: seq2seq needs an encoder-decoder (t5) base run" in capsys.readouterr().err


def test_jsonl_pairs_read_like_tsv(tmp_path: Path) -> None:
    from fromzero.data.seq2seq_data import read_seq2seq_pairs

    path = tmp_path / "p.jsonl"
    path.write_text('{"source": "a b", "target": "b a"}\n\n{"source": "c", "target": ""}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"p\.jsonl:3: expected non-empty string fields"):
        read_seq2seq_pairs(path)
    path.write_text('{"source": "a b", "target": "b a"}\n', encoding="utf-8")
    assert read_seq2seq_pairs(path) == [TextPair("a b", "b a", f"{path}:1")]
    tsv = tmp_path / "p.tsv"
    tsv.write_text("the dog\tel perro\n", encoding="utf-8")
    assert read_seq2seq_pairs(tsv, reverse=True) == [TextPair("el perro", "the dog", f"{tsv}:1")]  # es -> en
    assert IGNORE_INDEX == -100


def test_from_scratch_starts_from_a_seeded_fresh_init(t5_run: Path, pair_files, tmp_path: Path) -> None:
    """The no-pretraining baseline: same architecture and tokenizer, weights from the seeded initialiser."""
    out = tmp_path / "scratch"
    recipe = _recipe(tmp_path, t5_run, pair_files, "partial", steps=2, from_scratch=True)
    assert main(["finetune", str(recipe), "--out", str(out), "--no-progress"]) == 0
    info = json.loads((out / "finetune.json").read_text())
    torch.manual_seed(0)  # the recipe's seed
    fresh = build_model(model_config(info["family"], info["model"])).state_dict()
    tuned, base = load_file(str(out / "model.safetensors")), load_file(str(t5_run / "model.safetensors"))
    frozen = [k for k in tuned if k.startswith("encoder.")]
    assert frozen and all(torch.equal(tuned[k], fresh[k]) and not torch.equal(tuned[k], base[k]) for k in frozen)
