"""Text preprocessing steps: each on hand-written inputs, composition order, errors, and a fine-tune using them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fromzero.config import from_dict
from fromzero.data.preprocessing import (
    STEPS,
    PreprocessConfig,
    PreprocessStats,
    apply_steps,
    preprocess_examples,
    preprocess_text,
)
from fromzero.data.task_data import TextExample
from fromzero.errors import ConfigError
from fromzero.finetune.recipe import TaskConfig
from toy_data import finetune_topic_run, make_topic_rows

# (step, input, expected output), all written by hand
CASES = [
    ("lowercase", "The Cat SAT", "the cat sat"),
    ("strip_accents", "Café naïve résumé Ångström", "Cafe naive resume Angstrom"),
    ("strip_accents", "北京 ＡＢ", "北京 ＡＢ"),  # CJK and full-width letters untouched (NFD, not NFKD)
    ("normalize_whitespace", "  a\tb \n\n c  ", "a b c"),
    ("remove_punctuation", "Hello, world! (yes)", "Hello world yes"),
    ("remove_punctuation", "你好，世界。", "你好 世界"),
    ("remove_stopwords", "The cat is on the mat.", "cat mat."),
    ("remove_stopwords", "What is THE answer ?", "answer ?"),  # lower-cased lookup; punctuation-only kept
    ("remove_stopwords", "我 的 猫 不 好", "猫 不 好"),  # Chinese list; the negation 不 stays
    ("stem", "running", "run"),
    ("stem", "cats jumped generously, studies", "cat jump generous, studi"),
    ("lemmatize", "mice ran better", "mouse run good"),
    ("lemmatize", "geese were running.", "goose be run."),
]


@pytest.mark.parametrize(("step", "text", "expected"), CASES)
def test_each_step_on_hand_written_inputs(step: str, text: str, expected: str) -> None:
    assert apply_steps([text], [step]) == [expected]


def test_jieba_segmentation_of_a_known_sentence() -> None:
    pytest.importorskip("jieba")
    assert apply_steps(["我爱北京天安门"], ["segment_zh"]) == ["我 爱 北京 天安门"]
    # pieces without Han characters are kept whole (jieba alone would split "café" at the accent)
    assert apply_steps(["café 我爱北京天安门"], ["segment_zh"]) == ["café 我 爱 北京 天安门"]


def test_steps_compose_in_the_order_given() -> None:
    pytest.importorskip("jieba")
    # stop words are whole words: only after segmentation can 的 / 我 be found
    assert apply_steps(["我的猫"], ["segment_zh", "remove_stopwords"]) == ["猫"]
    assert apply_steps(["我的猫"], ["remove_stopwords", "segment_zh"]) == ["我 的 猫"]
    text = "  The RUNNING Cafés,   are near!"
    expected = text
    for name in ("normalize_whitespace", "lowercase", "strip_accents", "remove_stopwords", "stem"):
        expected = STEPS[name](expected)
    assert expected == "run cafe, near!"  # the, are: stop words; near is not on the list
    assert apply_steps([text], ["normalize_whitespace", "lowercase", "strip_accents", "remove_stopwords", "stem"]
                       ) == [expected]


def test_apply_steps_is_pure_and_empty_steps_are_identity() -> None:
    texts = ["A B", "c"]
    assert apply_steps(texts, []) == texts
    assert apply_steps(texts, ["lowercase"]) == ["a b", "c"]
    assert texts == ["A B", "c"]


def test_an_emptied_text_keeps_its_original_form_and_is_counted() -> None:
    examples = [TextExample("Who is he?", "person", where="f:1"),
                TextExample("The BALL", "sport", text_pair="and the GOAL", where="f:2")]
    stats = PreprocessStats()
    out = preprocess_examples(examples, ["lowercase", "remove_stopwords"], stats)
    # "who is he?" -> stop words who / is / he? removed -> empty -> the original text is kept
    assert [(e.text, e.text_pair, e.label, e.where) for e in out] == [
        ("Who is he?", None, "person", "f:1"), ("ball", "goal", "sport", "f:2")]
    assert stats.to_dict() == {"texts": 3, "changed": 2, "kept_original": 1}
    assert preprocess_text("Who is he?", ["remove_stopwords"]) == "Who is he?"
    assert preprocess_text("The BALL", ["lowercase", "remove_stopwords"]) == "ball"


def test_an_unknown_step_is_one_config_error_with_the_key_a_hint_and_the_known_steps() -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(TaskConfig, {"train": "t.jsonl", "validation": "v.jsonl", "preprocess": ["lowercase", "stemm"]},
                  file="recipe.yaml", prefix="task")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("recipe.yaml: task.preprocess[1]: unknown preprocessing step 'stemm'")
    assert "did you mean 'stem'?" in message
    assert all(name in message for name in STEPS)
    with pytest.raises(ConfigError, match=r"steps\[0\]: unknown preprocessing step 'zzz' \(known steps:"):
        PreprocessConfig(steps=["zzz"])
    with pytest.raises(ConfigError, match="unknown preprocessing step 'Lowercase'"):
        apply_steps(["x"], ["Lowercase"])
    assert PreprocessConfig(steps=["lowercase", "stem"]).steps == ["lowercase", "stem"]


def test_preprocess_is_refused_for_tasks_whose_offsets_it_would_move() -> None:
    with pytest.raises(ConfigError, match="task.preprocess: text steps apply to sequence_classification, not span_qa"):
        from_dict(TaskConfig, {"kind": "span_qa", "train": "t.json", "validation": "v.json",
                               "preprocess": ["lowercase"]}, file="recipe.yaml", prefix="task")


WORDS = {"sport": ["Ball", "Goal", "Team"], "food": ["Bread", "Soup", "Apple"]}
FILLER = ["The", "a", "we", "Saw", "big", "today"]


def test_a_tiny_finetune_with_preprocessing_trains_and_serving_applies_the_same_steps(tiny_run: Path,
                                                                                      tmp_path: Path) -> None:
    from fromzero.serve.engine import Engine

    splits = {s: make_topic_rows(n, seed, WORDS, FILLER, 2) for s, n, seed in
              (("train", 24, 0), ("validation", 8, 1), ("test", 8, 2))}
    run_dir = finetune_topic_run(tmp_path, tiny_run, splits, max_len=24, max_steps=4, batch_size=6, log_every=2,
                                 eval_every=2, task={"preprocess": ["lowercase", "remove_stopwords"]})
    info = json.loads((run_dir / "finetune.json").read_text(encoding="utf-8"))
    assert info["preprocess"] == ["lowercase", "remove_stopwords"]
    assert info["steps"] == 4
    assert info["preprocess_counts"]["train"] == {"texts": 24, "changed": 24, "kept_original": 0}
    rows = [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert rows and all(r["loss"] == r["loss"] for r in rows)  # trained, finite losses
    engine = Engine.from_run_dir(run_dir)
    tok = engine.tokenizer
    assert engine.preprocess == ("lowercase", "remove_stopwords")
    assert engine.encode("The BALL we Saw") == tok.encode("ball saw", add_special_tokens=False)
