"""`fromzero augment --back-translate`: the round trip equals the decoding functions called directly (sampled
pivots; beam search one row at a time; greedy through the plain seq2seq path), labels and fields are kept,
unchanged / empty / repeated round trips are counted and dropped, and the same seed gives the same file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.errors import ConfigError
from fromzero.eval.back_translation import BackTranslationConfig, collect, load_translator, sample_seed
from fromzero.generation import SamplingConfig, seq2seq_text
from fromzero.generation.seq2seq_batch import decode_texts
from fromzero.generation.seq2seq_beam import beam_search_seq2seq
from translation_runs import make_translation_runs, toy_sentences


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_translation_runs(tmp_path_factory.mktemp("bt"), steps=100)


@pytest.fixture()
def rows_file(tmp_path: Path) -> tuple[Path, list[dict]]:
    rows = [{"text": t, "label": "AB"[i % 2], "id": i} for i, t in enumerate(toy_sentences(12, 7))]
    rows.append({"text": "  red   dog  ", "label": "A", "id": 99})  # whitespace is not a paraphrase
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, rows


def _augment(src: Path, out: Path, fwd: Path, bwd: Path, *extra: str) -> list[dict]:
    assert main(["augment", str(src), str(out), "--back-translate", str(fwd), str(bwd), "--no-progress",
                 *extra]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def _expected(rows: list[dict], trips: list[list[tuple[str, str]]]) -> tuple[list[dict], dict[str, int]]:
    """The output written naively: a row, then each round trip that is new, non-empty and not the input."""
    out, counts = [], {"unchanged": 0, "empty": 0, "duplicate": 0}
    for row, pairs in zip(rows, trips, strict=True):
        out.append(row)
        seen = [" ".join(row["text"].split())]
        for pivot, back in pairs:
            if pivot.strip() == "" or back.strip() == "":
                counts["empty"] += 1
            elif " ".join(back.split()) == seen[0]:
                counts["unchanged"] += 1
            elif " ".join(back.split()) in seen:
                counts["duplicate"] += 1
            else:
                seen.append(" ".join(back.split()))
                out.append({**row, "text": back.strip(), "augment": "bt", "pivot": pivot.strip()})
    return out, counts


def _ids(tok, texts: list[str], max_len: int) -> list[list[int]]:
    return [tok.encode(t)[:max_len - 1] + [tok.eos_id] for t in texts]


def test_sampled_round_trip_equals_decoding_directly(runs, rows_file, tmp_path: Path, capsys) -> None:
    fwd, bwd = runs
    src, rows = rows_file
    got = _augment(src, tmp_path / "out.jsonl", fwd, bwd, "--n-aug", "3", "--seed", "5", "--temperature", "1.0",
                   "--batch-size", "4")
    f, b = load_translator(fwd, "f"), load_translator(bwd, "b")
    assert (f.max_len, f.max_new_tokens) == (16, 12)  # the recipe's task.max_len / max_target_len
    texts = [r["text"] for r in rows]
    trips: list[list[tuple[str, str]]] = [[] for _ in rows]
    for k in range(3):
        cfg = SamplingConfig(max_new_tokens=12, temperature=1.0, seed=sample_seed(5, k))
        pivots = decode_texts(f.model, f.tokenizer, _ids(f.tokenizer, texts, 16), max_new_tokens=12, batch_size=4,
                              cfg=cfg)
        backs = decode_texts(b.model, b.tokenizer, _ids(b.tokenizer, pivots, 16), max_new_tokens=12, batch_size=4)
        for trip, p, q in zip(trips, pivots, backs, strict=True):
            trip.append((p, q))
    want, counts = _expected(rows, trips)
    assert got == want
    by_id = {r["id"]: r for r in rows}
    for r in got:  # label and every other field kept
        assert {k: v for k, v in r.items() if k not in ("text", "augment", "pivot")} == \
            {k: v for k, v in by_id[r["id"]].items() if k != "text"}
    kept = len(got) - len(rows)
    assert kept + sum(counts.values()) == 3 * len(rows) and kept > 0
    line = capsys.readouterr().out
    assert (f"kept {kept} of {3 * len(rows)} round trips, dropped {counts['unchanged']} unchanged, "
            f"{counts['empty']} empty, {counts['duplicate']} repeated") in line


def test_beam_round_trip_equals_beam_search_row_by_row(runs, rows_file, tmp_path: Path) -> None:
    fwd, bwd = runs
    src, rows = rows_file
    got = _augment(src, tmp_path / "out.jsonl", fwd, bwd, "--beam", "3")
    f, b = load_translator(fwd, "f"), load_translator(bwd, "b")
    assert f.length_penalty == pytest.approx(0.6)  # the recipe's default task.length_penalty

    def beam(t, text: str) -> str:  # one input alone: no batching, no padding
        tok = t.tokenizer
        best = beam_search_seq2seq(t.model, _ids(tok, [text], t.max_len), beam_size=3, max_new_tokens=12,
                                   eos_id=tok.eos_id, pad_id=tok.pad_id, alpha=0.6,
                                   decoder_start_id=t.model.config.decoder_start_id)[0]
        return tok.decode(best, skip_special_tokens=True).strip()

    trips = []
    for r in rows:
        pivot = beam(f, r["text"])
        trips.append([(pivot, beam(b, pivot))])
    assert got == _expected(rows, trips)[0]


def test_greedy_round_trip_equals_the_plain_seq2seq_path(runs, rows_file, tmp_path: Path) -> None:
    fwd, bwd = runs
    src, rows = rows_file
    got = _augment(src, tmp_path / "out.jsonl", fwd, bwd, "--beam", "1")
    f, b = load_translator(fwd, "f"), load_translator(bwd, "b")
    greedy = SamplingConfig(max_new_tokens=12, greedy=True)
    trips = []
    for r in rows:
        pivot = seq2seq_text(f.model, f.tokenizer, [r["text"]], greedy)[0].strip()
        trips.append([(pivot, seq2seq_text(b.model, b.tokenizer, [pivot], greedy)[0].strip())])
    assert got == _expected(rows, trips)[0]
    # "large" -> "grande" -> "big" even when both runs are right: such rows come back changed and are kept
    assert any(r.get("augment") == "bt" and "large" in rows[r["id"] if r["id"] < 99 else -1]["text"] for r in got)


def test_same_seed_same_file_other_seed_other_file(runs, rows_file, tmp_path: Path) -> None:
    fwd, bwd = runs
    src, _ = rows_file
    a = _augment(src, tmp_path / "a.jsonl", fwd, bwd, "--n-aug", "2", "--seed", "1")
    again = _augment(src, tmp_path / "b.jsonl", fwd, bwd, "--n-aug", "2", "--seed", "1")
    other = _augment(src, tmp_path / "c.jsonl", fwd, bwd, "--n-aug", "2", "--seed", "2")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes() and a == again
    assert a != other


def test_collect_counts_by_hand() -> None:
    rows = [{"text": "a b", "label": "X"}, {"text": "c", "label": "Y", "n": 1}]
    trips = [[("p", " a  b "), ("p", "b a"), ("", "z"), ("q", "b  a")], [("r", ""), ("s", "d ")]]
    out, counts = collect(rows, trips)
    assert counts == {"rows": 2, "kept": 2, "unchanged": 1, "empty": 2, "duplicate": 1, "written": 4}
    assert out == [rows[0], {"text": "b a", "label": "X", "augment": "bt", "pivot": "p"},
                   rows[1], {"text": "d", "label": "Y", "n": 1, "augment": "bt", "pivot": "s"}]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_aug": 2, "beam": 4}, "--n-aug 2 with --beam"), ({"beam": 0}, "--beam: must be >= 1"),
    ({"temperature": -1.0}, "--temperature"), ({"n_aug": 0}, "--n-aug")])
def test_config_errors_name_the_option(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BackTranslationConfig(**kwargs)
