"""benchmarks/trec_table.py --smoke on a toy TREC-like task with tiny runs: every row of the table is produced
through the CLI, the numbers in the JSON are the run directories' own, the baselines equal a hand count, the
stratified subsets hold the asked share of each class, and the section lands between its markers."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from toy_data import make_topic_rows
from translation_runs import make_translation_runs

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "trec_table.py"
TOPICS = {"COLOR": ["red", "blue", "green"], "ANIMAL": ["cat", "dog", "fish"], "SIZE": ["big", "large", "small"]}
FILLER = ["the", "a", "we", "saw", "liked", "today"]
LABELS = "COLOR: a colour such as red\nANIMAL: an animal such as a dog\nSIZE: how big or small\n"


@pytest.fixture(scope="module")
def trec_table():
    spec = importlib.util.spec_from_file_location("trec_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["trec_table"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["trec_table"]


def _toy_task(folder: Path) -> Path:
    folder.mkdir()
    for split, n, seed in (("train", 60, 0), ("validation", 9, 1), ("test", 12, 2)):
        rows = make_topic_rows(n, seed, TOPICS, FILLER, 2)
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "labels.yaml").write_text(LABELS, encoding="utf-8")
    return folder


def test_stratified_subset_keeps_each_class_share(trec_table) -> None:
    rows = [{"text": str(i), "label": "ABC"[i % 3] if i < 90 else "D"} for i in range(93)]  # 30/30/30 + 3
    sub = trec_table.stratified_subset(rows, 0.1, seed=4)
    assert Counter(r["label"] for r in sub) == {"A": 3, "B": 3, "C": 3, "D": 1}  # at least one of the rare class
    assert sub == sorted(sub, key=lambda r: int(r["text"])) and len({r["text"] for r in sub}) == len(sub)
    assert sub == trec_table.stratified_subset(rows, 0.1, seed=4) != trec_table.stratified_subset(rows, 0.1, seed=5)


def test_smoke_table_through_the_cli(trec_table, tiny_bert_run: Path, tiny_run: Path, tmp_path: Path,
                                    capsys) -> None:
    data = _toy_task(tmp_path / "data")
    fwd, bwd = make_translation_runs(tmp_path / "mt", steps=10)
    results_md = tmp_path / "results.md"
    results_md.write_text("# Results\n\nkeep me\n", encoding="utf-8")
    out = tmp_path / "table"
    argv = ["--smoke", "--out", str(out), "--base", str(tiny_bert_run), "--data", str(data), "--labels",
            str(data / "labels.yaml"), "--gpt", str(tiny_run), "--bt", str(fwd), str(bwd), "--bt-n-aug", "1",
            "--seeds", "2", "--fractions", "0.1", "--results", str(results_md)]
    res = trec_table.main(argv)["rows"]

    test = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    majority = Counter(json.loads(line)["label"] for line in (data / "train.jsonl").read_text().splitlines())
    top = majority.most_common(1)[0][0]
    assert res["baselines"]["majority"]["accuracy"] == pytest.approx(sum(r["label"] == top for r in test) / 12)
    assert res["baselines"]["chance"]["accuracy"] == pytest.approx(1 / 3)
    zero = json.loads((out / "zero_shot.json").read_text())["metrics"]
    assert res["zero_shot"]["accuracy"] == zero["accuracy"]
    assert set(res["few_shot"]["k"]) == {"0", "1", "4", "8"} and res["few_shot"]["examples"] == 8
    for key in ("full", "lora", "lstm"):
        saved = json.loads((out / key / "eval.json").read_text())["test"]["metrics"]
        assert (res[key]["accuracy"], res[key]["f1_macro"]) == (saved["accuracy"], saved["f1_macro"])
    assert json.loads((out / "lstm" / "finetune.json").read_text())["family"] == "rnn"

    aug = res["augment"]
    assert set(aug) == {"0.1"} and set(aug["0.1"]) == {"subset", "eda", "bt"}
    cell = aug["0.1"]["eda"]
    accs = [json.loads((out / "aug" / f"p01_s{s}_eda" / "eval.json").read_text())["test"]["metrics"]["accuracy"]
            for s in (0, 1)]
    assert cell["accuracy"]["mean"] == pytest.approx(sum(accs) / 2)
    assert cell["accuracy"]["std"] == pytest.approx(abs(accs[0] - accs[1]) / 2 ** 0.5)  # sample std of two
    assert aug["0.1"]["subset"]["rows"] == 6 and cell["rows"] == 6 * 5  # 2 per class; EDA adds 4 per row
    assert 6 <= aug["0.1"]["bt"]["rows"] <= 12  # one round trip per question, some dropped
    recipe = yaml.safe_load((out / "aug" / "p01_s0_bt" / "config.yaml").read_text())
    assert recipe["task"]["train"] == str(out / "subsets" / "p01_s0_bt.jsonl") and recipe["seed"] == 0
    assert recipe["method"]["name"] == "lora"

    text = results_md.read_text()
    assert text.startswith("# Results\n\nkeep me\n") and text.count("<!-- trec_table:start -->") == 1
    section = text[text.index("<!-- trec_table:start -->"):text.index("<!-- trec_table:end -->")]
    assert "| 8-shot prompting" in section and "| 10% | + back-translation |" in section
    assert (out / "trec_table.md").read_text().strip() in text

    # --reuse: nothing trains again, and the same numbers come back; without --bt that row says why
    capsys.readouterr()
    again = trec_table.main([*[a for a in argv if a not in ("--bt", str(fwd), str(bwd))], "--reuse", "--only",
                             "augment"])["rows"]["augment"]
    assert again["0.1"]["eda"]["accuracy"] == cell["accuracy"]
    assert again["0.1"]["bt"] == {"not_run": "no translation runs: give --bt FWD BWD"}
    assert "not run: no translation runs" in results_md.read_text()
    printed = capsys.readouterr().out
    assert "reuse aug/p01_s1_eda" in printed and "$ fromzero" not in printed
