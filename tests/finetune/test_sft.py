"""Supervised fine-tuning (task.kind: sft): the reply-only loss mask against hand-built masks, the loss against a
naive cross-entropy, prompt_loss, truncation from the left, data errors naming file:line, and end-to-end runs of a
tiny GPT (full and LoRA) on generated instruction pairs: falling loss, replies that stop at the template's stop
string, exact match equal to a hand count, the run directory loading back as a plain GPT run (generate, eval,
serve)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from fromzero.cli import main
from fromzero.data.chat_template import get_chat_template
from fromzero.data.sft_data import (
    IGNORE_INDEX,
    Conversation,
    SFTTruncationStats,
    encode_conversation,
    generation_prompt,
    parse_conversation,
    read_sft,
)
from fromzero.data.task_encoding import TaskBatches
from fromzero.data.tokenizers import TokenizerConfig, train_tokenizer
from fromzero.errors import ConfigError, DataError
from fromzero.eval.sft_metrics import response_metrics
from fromzero.finetune.recipe import load_finetune_recipe
from fromzero.finetune.sft import check_sft_base
from fromzero.generation import SamplingConfig, generate_text
from fromzero.generation.chat import greedy_replies, user_prompts
from fromzero.models import build_model, model_config
from fromzero.objectives import CausalLM
from fromzero.pretrain.runner import pretrain
from fromzero.runs import load_run
from fromzero.serve.engine import Engine
from fromzero.train.loggers import read_metrics

ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ?:+\n<|>"
PLAIN = get_chat_template("plain")


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([ALPHABET], TokenizerConfig(kind="char"))


def _conv(*pairs: str, system: str | None = None) -> Conversation:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": c} for i, c in enumerate(pairs)]
    row = {"messages": messages, **({"system": system} if system else {})}
    return parse_conversation(row, "test:1")


def _hand_labels(tok, pieces: list[tuple[str, bool]]) -> tuple[list[int], list[int]]:
    """input_ids / labels from (text, scored) pieces written out by hand: one character = one token."""
    text = "".join(p for p, _ in pieces)
    mask = [s for p, s in pieces for _ in p]
    ids = tok.encode(text)
    assert len(ids) == len(text) == len(mask)
    return ids[:-1], [t if m else IGNORE_INDEX for t, m in zip(ids[1:], mask[1:], strict=True)]


def test_label_mask_two_turns_plain_equals_hand_built(tok) -> None:
    conv = _conv("hi", "yo", "ok?", "no", system="Be brief")
    ids, labels = _hand_labels(tok, [("Be brief\n\nUser: hi\nAssistant:", False), (" yo\nUser:", True),
                                     (" ok?\nAssistant:", False), (" no\nUser:", True)])
    feature = encode_conversation(conv, tok, PLAIN, max_len=128)
    assert feature == {"input_ids": ids, "labels": labels}


def test_label_mask_two_turns_tagged_equals_hand_built(tok) -> None:
    conv = _conv("hi", "yo", "ok?", "no")
    ids, labels = _hand_labels(tok, [("<|user|>\nhi<|end|>\n<|assistant|>\n", False), ("yo<|end|>\n", True),
                                     ("<|user|>\nok?<|end|>\n<|assistant|>\n", False), ("no<|end|>\n", True)])
    assert encode_conversation(conv, tok, get_chat_template("tagged"), max_len=128) == {"input_ids": ids,
                                                                                        "labels": labels}


def test_prompt_loss_scores_every_token_and_agrees_on_replies(tok) -> None:
    conv = _conv("hi", "yo", "ok?", "no")
    masked = encode_conversation(conv, tok, PLAIN, 128)
    full = encode_conversation(conv, tok, PLAIN, 128, prompt_loss=True)
    assert full["input_ids"] == masked["input_ids"]
    assert full["labels"] == full["input_ids"][1:] + [tok.encode(":")[0]]  # every next token, the last one too
    scored = [i for i, y in enumerate(masked["labels"]) if y != IGNORE_INDEX]
    assert 0 < len(scored) < len(full["labels"])
    assert all(full["labels"][i] == masked["labels"][i] for i in scored)


def test_loss_equals_naive_cross_entropy_over_scored_positions(tok) -> None:
    torch.manual_seed(0)
    model = build_model(model_config("gpt-char-tiny", {"vocab_size": tok.vocab_size, "block_size": 64}))
    feats = [encode_conversation(_conv("hi", "yo", "ok?", "no"), tok, PLAIN, 64),
             encode_conversation(_conv("2+2?", "4"), tok, PLAIN, 64)]  # different lengths: padding in the batch
    batch = TaskBatches(feats, 2, pad_id=tok.pad_id, shuffle=False, token_labels=True).batch(0)
    out = CausalLM()(model.eval(), batch)
    total, n = 0.0, 0
    with torch.no_grad():
        for f in feats:  # each row alone, no padding: -log softmax at every scored position, by hand
            logits = model(torch.tensor([f["input_ids"]]))[0].double()
            for t, y in enumerate(f["labels"]):
                if y != IGNORE_INDEX:
                    total += float(torch.logsumexp(logits[t], 0) - logits[t, y])
                    n += 1
    assert out.weight == n == sum(y != IGNORE_INDEX for f in feats for y in f["labels"])
    assert math.isclose(float(out.loss.detach()), total / n, rel_tol=1e-5)


def test_truncation_cuts_the_prompt_from_the_left_and_keeps_the_reply(tok) -> None:
    conv = _conv("a" * 60 + "b" * 10, "yes")  # 97 characters rendered; 36 fit (35 inputs + the last label)
    stats = SFTTruncationStats()
    f = encode_conversation(conv, tok, PLAIN, max_len=35, stats=stats)
    assert len(f["input_ids"]) == 35
    kept = tok.decode(f["input_ids"] + [f["labels"][-1]])
    assert kept == "a" * 5 + "b" * 10 + "\nAssistant: yes\nUser:"  # the oldest text went first
    assert tok.decode([y for y in f["labels"] if y != IGNORE_INDEX]) == " yes\nUser:"
    assert (stats.seen, stats.truncated, stats.tokens_dropped, stats.responses_cut) == (1, 1, 97 - 36, 0)
    long_reply = _conv("hi", "z" * 40)
    f = encode_conversation(long_reply, tok, PLAIN, max_len=20, stats=stats)
    assert len(f["input_ids"]) == 20 and stats.responses_cut == 1 and "1 final replies cut" in str(stats)
    assert tok.decode(f["input_ids"][:1]) == ":"  # one token of prompt left before the reply
    with pytest.raises(DataError, match=r"test:1: 96 tokens exceed task.max_len 35"):
        encode_conversation(conv, tok, PLAIN, max_len=35, policy="error")


@pytest.mark.parametrize(("line", "message"), [
    ('{"prompt": "hi", "response": "  "}', r"x\.jsonl:2: empty response"),
    ('{"prompt": "hi"', r"x\.jsonl:2: malformed JSON"),
    ('{"text": "hi"}', r"x\.jsonl:2: expected \"prompt\" and \"response\", or \"messages\""),
    ('{"messages": [{"role": "user", "content": "hi"}]}', r"x\.jsonl:2: .* must end with an assistant reply"),
    ('{"messages": [{"role": "bot", "content": "hi"}]}', r"x\.jsonl:2: messages\[0\] must be"),
    ('{"prompt": "hi", "response": "a\\nUser: b"}', r"x\.jsonl:2: assistant message 1 contains .* stop string"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, tok, line: str, message: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"prompt": "fine", "response": "ok", "system": "s"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message):
        for conv in read_sft(path):
            encode_conversation(conv, tok, PLAIN, 64)


def test_unknown_template_and_non_gpt_base_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"r\.yaml: task\.chat_template: unknown chat template 'chatml'"):
        path = tmp_path / "r.yaml"
        path.write_text(yaml.safe_dump({"base": "x", "task": {"kind": "sft", "train": "a.jsonl",
                                                              "validation": "b.jsonl", "chat_template": "chatml"}}))
        load_finetune_recipe(path)
    task = load_finetune_recipe(None, ["--base=x", "--task.kind=sft", "--task.train=a", "--task.validation=b",
                                       "--task.max_len=100"]).task
    with pytest.raises(ConfigError, match="base is a bert run; use a gpt run"):
        check_sft_base(model_config("bert-tiny"), task, "r.yaml")
    with pytest.raises(ConfigError, match=r"task.max_len: 100 exceeds the base model's context \(block_size 64\)"):
        check_sft_base(model_config("gpt-char-tiny", {"block_size": 64}), task, "r.yaml")


def test_response_metrics_by_hand() -> None:
    preds, refs = [" a Person", "a place", "How", "x y"], ["a person", "a location", "how", "x z"]
    m = response_metrics(preds, refs)
    assert m["exact_match"] == 2 / 4
    assert math.isclose(m["f1"], (1 + 0 + 1 + 0.5) / 4)  # "a" is an article: {place} vs {location} share nothing


# ------------------------------------------------------------------------------------- end to end, tiny GPT

ANIMALS = {"cat": "meow", "dog": "woof", "cow": "moo", "owl": "hoot", "duck": "quack", "hen": "cluck"}


@pytest.fixture(scope="module")
def sft_base(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path, tiny_overrides: list[str]) -> Path:
    out = tmp_path_factory.mktemp("sft") / "base"
    pretrain(None, [*tiny_overrides, "--model.block_size=48", f"--data.inputs=[{small_corpus}]",
                    "--train.max_steps=10", "--train.eval_every=0", "--sample.generation.max_new_tokens=4"],
             out=out, progress=False)
    return out


@pytest.fixture(scope="module")
def sft_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """30 instruction pairs (6 animals x 5) for training; validation and test ask the same 6 questions."""
    folder = tmp_path_factory.mktemp("sft_data")
    rows = [{"prompt": f"sound of {a}?", "response": s, "group": "sound"} for a, s in ANIMALS.items()]
    files = {}
    for split, reps in (("train", 5), ("validation", 1), ("test", 1)):
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows * reps), encoding="utf-8")
    return files


def _sft_recipe(tmp: Path, base: Path, files: dict[str, Path], method: dict, steps: int, lr: float) -> Path:
    recipe = {"seed": 0, "base": str(base), "method": method, "select_metric": "exact_match",
              "task": {"kind": "sft", "max_len": 48, "eval_examples": 4, "max_new_tokens": 10, "eval_base": True,
                       **{s: str(p) for s, p in files.items()}},
              "train": {"max_steps": steps, "batch_size": 10, "threads": 1, "log_every": 5, "eval_every": steps},
              "optim": {"lr": lr, "warmup_steps": 5}}
    path = tmp / f"sft_{method['name']}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory, sft_base: Path, sft_files) -> Path:
    tmp = tmp_path_factory.mktemp("sft_full")
    out = tmp / "run"
    assert main(["finetune", str(_sft_recipe(tmp, sft_base, sft_files, {"name": "full"}, 150, 3e-3)), "--out",
                 str(out), "--no-progress"]) == 0
    return out


def test_full_sft_learns_stops_and_scores_exactly(full_run: Path, sft_files) -> None:
    losses = [r["loss"] for r in read_metrics(full_run / "metrics.jsonl") if "loss" in r and "val_loss" not in r]
    assert losses[-1] < 0.5 * losses[0]
    saved = json.loads((full_run / "eval.json").read_text())["test"]
    samples = [json.loads(line) for line in (full_run / "samples_test.jsonl").read_text().splitlines()]
    assert [s["reference"] for s in samples] == list(ANIMALS.values())
    hand = sum(s["generation"].strip().lower() == s["reference"] for s in samples) / len(samples)
    assert saved["metrics"]["exact_match"] == saved["metrics"]["exact_match_sound"] == hand >= 5 / 6
    assert saved["baselines"]["majority"]["exact_match"] == 1 / 6  # one constant reply fits one animal of six
    assert saved["baselines"]["base_zero_shot"]["exact_match"] < hand
    run = load_run(full_run)  # a plain GPT run: GPT's own parameter names, no head wrapper
    assert set(load_file(full_run / "model.safetensors")) <= set(run.model.state_dict())
    prompts = [generation_prompt(c, PLAIN) for c in read_sft(sft_files["test"])]
    details = generate_text(run.model, run.tokenizer, prompts, SamplingConfig(max_new_tokens=16, greedy=True,
                                                                              stop=list(PLAIN.stop)),
                            return_details=True)
    right = [d for d, s in zip(details, samples, strict=True) if d.text.strip() == s["reference"]]
    assert right and all(d.finish_reason == "stop" for d in right)  # ended by the template's "\nUser:"
    assert [d.text for d in details] == [s["generation"] for s in samples]


def test_sft_run_loads_back_for_generate_eval_and_serve(full_run: Path, capsys) -> None:
    run = load_run(full_run)
    expected = greedy_replies(run.model, run.tokenizer, PLAIN, user_prompts(PLAIN, ["sound of owl?"]), 10)[0]
    capsys.readouterr()
    assert main(["generate", str(full_run), "--chat", "--greedy", "--max-tokens", "16", "--prompt",
                 "sound of owl?"]) == 0
    assert capsys.readouterr().out == f"User: sound of owl?\nAssistant:{expected}\n"
    first = json.loads((full_run / "eval.json").read_text())["test"]
    assert main(["eval", str(full_run)]) == 0
    assert json.loads((full_run / "eval.json").read_text())["test"] == first
    engine = Engine.from_run_dir(full_run)
    assert engine.kind == "generate" and engine.chat_template.name == "plain"
    ids = engine.encode(engine.chat_prompt([{"role": "user", "content": "sound of owl?"}]))
    stream = engine.stream(engine.prepare_prompt(ids), SamplingConfig(max_new_tokens=16, greedy=True,
                                                                      stop=list(engine.chat_template.stop)))
    assert "".join(stream) == expected


def test_lora_sft_trains_only_adapters(tmp_path: Path, sft_base: Path, sft_files) -> None:
    method = {"name": "lora", "lora": {"rank": 4, "alpha": 8, "targets": ["*attn.qkv", "*mlp.fc"]}}
    out = tmp_path / "lora"
    assert main(["finetune", str(_sft_recipe(tmp_path, sft_base, sft_files, method, 10, 1e-2)), "--out", str(out),
                 "--no-progress"]) == 0
    info = json.loads((out / "finetune.json").read_text())
    adapter = load_file(out / "adapter.safetensors")
    assert adapter and all(k.rsplit(".", 1)[1] in ("lora_a", "lora_b") for k in adapter)
    assert info["trainable_parameters"] == sum(t.numel() for t in adapter.values())
    base, merged = load_file(sft_base / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(merged) == set(base)  # GPT's names; only the adapted layers' weights moved
    adapted = {k.rsplit(".", 1)[0] + ".weight" for k in adapter}
    for name, tensor in base.items():
        assert torch.equal(tensor, merged[name]) == (name not in adapted), name



def test_batched_replies_equal_one_prompt_at_a_time(full_run: Path) -> None:
    """Prompts of very different lengths (one longer than the context) in one batch decode as they would alone."""
    run = load_run(full_run)
    texts = ["sound of cat?", "the " * 12 + "sound of dog?", "sound of owl?", "x" * 80 + " sound of hen?"]
    prompts = user_prompts(PLAIN, texts)
    batched = greedy_replies(run.model, run.tokenizer, PLAIN, prompts, 10, batch_size=4)
    assert batched == [greedy_replies(run.model, run.tokenizer, PLAIN, [p], 10)[0] for p in prompts]
    assert batched[0].strip() == "meow"


def test_partial_sft_leaves_frozen_blocks_bit_identical(tmp_path: Path, sft_base: Path, sft_files) -> None:
    method = {"name": "partial", "freeze": {"first_n_blocks": 1, "embeddings": True}}
    out = tmp_path / "partial"
    assert main(["finetune", str(_sft_recipe(tmp_path, sft_base, sft_files, method, 10, 1e-2)), "--out", str(out),
                 "--no-progress"]) == 0
    base, tuned = load_file(sft_base / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(tuned) == set(base)
    # lm_head.weight is tok_emb.weight (tied): freezing the embeddings freezes the output layer too
    frozen = {k for k in base if k.startswith(("blocks.0.", "tok_emb.", "pos_emb.", "lm_head."))}
    for name in base:
        assert torch.equal(base[name], tuned[name]) == (name in frozen), name
